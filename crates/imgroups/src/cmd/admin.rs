//! `imgroups admin token [list|revoke]`: admin tokens (the console's credential).

use imgroups_core::{admin, Error};

use crate::cli::{AdminCmd, AdminTokenCmd};
use crate::output::{print_each, print_text, rfc3339};
use crate::store::with_store;

pub(crate) fn run(cmd: AdminCmd) -> Result<(), Error> {
    match cmd {
        AdminCmd::Token {
            action: None,
            json,
            data,
        } => with_store(&data, |store| async move {
            let token = admin::create_admin_token(&*store).await?;
            let line = if json {
                serde_json::json!({ "token": token }).to_string()
            } else {
                token
            };
            print_text(&format!("{line}\n"));
            Ok(())
        }),
        AdminCmd::Token {
            action: Some(AdminTokenCmd::List { json, data }),
            ..
        } => with_store(&data, |store| async move {
            print_each(store.list_admin_tokens().await?, |t| {
                let created = rfc3339(t.created_at.seconds());
                if json {
                    serde_json::json!({
                        "id": t.id,
                        "created": created,
                        "createdUnix": t.created_at.seconds(),
                    })
                    .to_string()
                } else {
                    format!("{}\t{created}", t.id)
                }
            });
            Ok(())
        }),
        AdminCmd::Token {
            action: Some(AdminTokenCmd::Revoke { token, data }),
            ..
        } => with_store(&data, |store| async move {
            let id = admin::revoke_admin_token(&*store, &token).await?;
            eprintln!("revoked admin token {id}");
            Ok(())
        }),
    }
}
