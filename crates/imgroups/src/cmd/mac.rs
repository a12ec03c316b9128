//! `imgroups mac messages`: start Messages with the helper loaded, as BlueBubbles does
//! (`imgroups_chatdb::mac::launch`; docs/mac.md, step 3).

use std::sync::Arc;
use std::time::Duration;

use imgroups_chatdb::mac::launch::{self, LaunchOptions};
use imgroups_chatdb::mac::system::{RealSystem, System};
use imgroups_core::{Error, ErrorKind};

use crate::cli::MacCmd;
use crate::output::print_text;

pub(crate) fn run(cmd: MacCmd) -> Result<(), Error> {
    match cmd {
        MacCmd::Messages {
            helper_dylib,
            ping_timeout_secs,
        } => {
            let runtime = crate::runtime(tokio::runtime::Builder::new_current_thread())?;
            runtime.block_on(async move {
                let system: Arc<dyn System> = Arc::new(RealSystem);
                // The library first: a missing file is the user's to fix whatever holds the
                // port (and the port may be held by a test or the BlueBubbles server).
                if !system.exists(&helper_dylib) {
                    return Err(failed(launch::LaunchError::NoDylib(helper_dylib)));
                }
                let helper = launch::bind_helper_port(&*system).await.map_err(failed)?;
                let options = LaunchOptions {
                    ping_timeout: Duration::from_secs(ping_timeout_secs),
                    ..LaunchOptions::new(helper_dylib)
                };
                let launched = launch::launch_messages(&options, system, &helper)
                    .await
                    .map_err(failed)?;
                print_text(&format!(
                    "messages started (pid {}); helper connected\n",
                    launched.pid
                ));
                Ok(())
            })
        }
    }
}

/// The launcher's texts already say what to do; the failure is the machine's, not the
/// request's (`internalError`, exit 1), like a taken port for `serve`.
fn failed(err: launch::LaunchError) -> Error {
    Error::new(ErrorKind::Internal, err.to_string())
}
