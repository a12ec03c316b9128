//! `imgroups admin token`: a new admin token (the console's credential).

use imgroups_core::{admin, Error};

use crate::cli::AdminCmd;
use crate::output::print_text;
use crate::store::with_store;

pub(crate) fn run(cmd: AdminCmd) -> Result<(), Error> {
    match cmd {
        AdminCmd::Token { json, data } => with_store(&data, |store| async move {
            let token = admin::create_admin_token(&*store).await?;
            let line = if json {
                serde_json::json!({ "token": token }).to_string()
            } else {
                token
            };
            print_text(&format!("{line}\n"));
            Ok(())
        }),
    }
}
