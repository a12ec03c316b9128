//! `imgroups token create|list|revoke`: API tokens, the secret shown once.

use imgroups_core::{admin, Address, Error};

use crate::cli::TokenCmd;
use crate::output::{print_each, print_text, rfc3339};
use crate::store::with_store;

pub(crate) fn run(cmd: TokenCmd) -> Result<(), Error> {
    match cmd {
        TokenCmd::Create {
            address,
            json,
            data,
        } => with_store(&data, |store| async move {
            let address = Address::parse(&address)?;
            let token = admin::create_token(&*store, &address).await?;
            print_token(&address, &token, json);
            Ok(())
        }),
        TokenCmd::List { json, data } => with_store(&data, |store| async move {
            print_each(store.list_tokens().await?, |t| {
                let status = if t.revoked { "revoked" } else { "active" };
                let created = rfc3339(t.created_at.seconds());
                if json {
                    serde_json::json!({
                        "id": t.id,
                        "account": t.address.to_string(),
                        "created": created,
                        "createdUnix": t.created_at.seconds(),
                        "status": status,
                    })
                    .to_string()
                } else {
                    format!("{}\t{}\t{created}\t{status}", t.id, t.address)
                }
            });
            Ok(())
        }),
        TokenCmd::Revoke { token, data } => with_store(&data, |store| async move {
            let id = admin::revoke_token(&*store, &token).await?;
            eprintln!("revoked token {id}");
            Ok(())
        }),
    }
}

/// A new token: the bare token (the contract), or `{"account":…,"token":…}`.
pub(crate) fn print_token(address: &Address, token: &str, json: bool) {
    let line = if json {
        serde_json::json!({ "account": address.to_string(), "token": token }).to_string()
    } else {
        token.to_owned()
    };
    print_text(&format!("{line}\n"));
}
