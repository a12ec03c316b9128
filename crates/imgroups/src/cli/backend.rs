//! `serve`'s backend flags: the simulator (default) or this Mac's Messages (`--backend
//! chatdb`, docs/mac.md).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use imgroups_core::{Address, Error, ErrorKind};

/// Which iMessage network `serve` works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BackendKind {
    /// The embedded simulator: many accounts, puppets, nothing to set up.
    Sim,
    /// This Mac's Messages: reads `Library/Messages/chat.db` read-only, changes groups
    /// through the Messages helper (--helper).
    Chatdb,
}

#[derive(clap::Args)]
pub(crate) struct BackendArgs {
    /// The iMessage network: `sim` (the simulator) or `chatdb` (this Mac's Messages: reads
    /// HOME/Library/Messages/chat.db, writes through the Messages helper).
    #[arg(long, value_enum, env = "IMGROUPS_BACKEND", default_value = "sim")]
    pub(crate) backend: BackendKind,
    /// With --backend chatdb: the home directory whose Library/Messages/chat.db is read
    /// (default: $HOME). `~` in attachment paths means this directory.
    #[arg(long, env = "IMGROUPS_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// With --backend chatdb: listen here for the Messages helper (the BlueBubbles Private
    /// API helper inside Messages connects to it; its default port is 45670 + uid - 501).
    /// Without it the server is read-only: writes fail with operationNotSupported.
    #[arg(long, env = "IMGROUPS_HELPER", value_name = "ADDR")]
    helper: Option<std::net::SocketAddr>,
    /// With --helper: also accept a non-loopback address (refused otherwise: the helper
    /// connects from this Mac only); logged as a warning.
    #[arg(long, env = "IMGROUPS_HELPER_ALLOW_REMOTE")]
    helper_allow_remote: bool,
    /// With --backend chatdb: re-read chat.db at least this often, in milliseconds, even when
    /// no file notification arrived (the safety net for lost notifications).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(10..))]
    chatdb_rescan_ms: u64,
    /// With --backend chatdb: how long a write waits for the helper's answer and then for its
    /// change to appear in chat.db, in seconds, before it answers `unavailable` (retryable).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    helper_timeout_secs: u64,
}

impl BackendArgs {
    pub(crate) fn home(&self) -> Result<PathBuf, Error> {
        match &self.home {
            Some(home) => Ok(home.clone()),
            None => std::env::var_os("HOME").map(PathBuf::from).ok_or_else(|| {
                Error::invalid("--backend chatdb needs --home DIR: $HOME is not set")
                    .with("field", "home")
            }),
        }
    }

    /// The Mac's own address: `account` when given, else read from chat.db.
    pub(crate) fn account(&self, account: Option<&str>) -> Result<Address, Error> {
        if let Some(account) = account {
            return Address::parse(account).map_err(|e| e.with("field", "account"));
        }
        let home = self.home()?;
        let found = imgroups_macos::detect_account(&home).map_err(unreadable)?;
        let found = found.ok_or_else(|| {
            Error::invalid(
                "cannot tell this Mac's own iMessage address from chat.db (no message sent \
                 from it yet): pass --account ADDRESS",
            )
            .with("field", "account")
        })?;
        Address::parse(&found).map_err(|e| e.with("field", "account"))
    }

    /// The backend, before it is started with its engine (inside the runtime: the helper's
    /// listener is bound here).
    /// Also returns where the helper is awaited (with --helper).
    pub(crate) async fn mac(
        &self,
        me: Address,
    ) -> Result<(imgroups_macos::Mac, Option<std::net::SocketAddr>), Error> {
        let mut listening = None;
        let helper = match self.helper {
            None => None,
            Some(addr) => {
                let options = imgroups_chatdb::HelperOptions {
                    allow_remote: self.helper_allow_remote,
                    ..Default::default()
                };
                let helper = imgroups_chatdb::BlueBubblesHelper::bind_with(addr, options)
                    .await
                    .map_err(|err| {
                        // A refused address is the caller's mistake; anything else the machine's.
                        let kind = if err.kind() == std::io::ErrorKind::InvalidInput {
                            ErrorKind::InvalidArgument
                        } else {
                            ErrorKind::Internal
                        };
                        let message =
                            format!("cannot listen on {addr} for the Messages helper: {err}");
                        let err = Error::new(kind, message);
                        if kind == ErrorKind::InvalidArgument {
                            err.with("field", "helper")
                        } else {
                            err
                        }
                    })?
                    .with_timeout(Duration::from_secs(self.helper_timeout_secs));
                listening = Some(helper.local_addr());
                tracing::info!(addr = %helper.local_addr(), "waiting for the Messages helper");
                Some(Arc::new(helper) as Arc<dyn imgroups_chatdb::Actuator>)
            }
        };
        let mac = imgroups_macos::Mac::new(imgroups_macos::MacOptions {
            home: self.home()?,
            me,
            helper,
            rescan: Duration::from_millis(self.chatdb_rescan_ms),
            write_timeout: Duration::from_secs(self.helper_timeout_secs),
        })
        .map_err(unreadable)?;
        Ok((mac, listening))
    }
}

fn unreadable(message: String) -> Error {
    Error::new(ErrorKind::Internal, message)
}
