//! `imgroups webhook add|list|rm|resume`: endpoints that get an account's events, signed.

use imgroups_core::{admin, Address, Error, WebhookId};

use crate::cli::WebhookCmd;
use crate::output::{print_each, print_text};
use crate::store::with_store;

pub(crate) fn run(cmd: WebhookCmd) -> Result<(), Error> {
    match cmd {
        WebhookCmd::Add {
            url,
            account,
            json,
            data,
        } => with_store(&data, |store| async move {
            let address = Address::parse(&account)?;
            let hook = admin::add_webhook_for(&*store, &address, &url).await?;
            if json {
                let line = serde_json::json!({
                    "id": hook.id,
                    "account": address.to_string(),
                    "url": url,
                    "secret": hook.secret,
                });
                print_text(&format!("{line}\n"));
            } else {
                print_text(&format!("id {}\nsecret {}\n", hook.id, hook.secret));
            }
            Ok(())
        }),
        WebhookCmd::List { json, data } => with_store(&data, |store| async move {
            print_each(store.webhooks(None).await?, |h| {
                let status = if h.paused { "paused" } else { "active" };
                if json {
                    serde_json::json!({
                        "id": h.id,
                        "account": h.address.to_string(),
                        "url": h.url,
                        "status": status,
                        "cursor": h.cursor,
                        "failures": h.failures,
                        "lastError": h.last_error,
                    })
                    .to_string()
                } else {
                    format!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        h.id,
                        h.address,
                        h.url,
                        status,
                        h.cursor,
                        h.failures,
                        h.last_error.as_deref().unwrap_or("-")
                    )
                }
            });
            Ok(())
        }),
        WebhookCmd::Rm { id, data } => with_store(&data, |store| async move {
            store.remove_webhook(None, WebhookId(id)).await?;
            eprintln!("removed webhook {id}");
            Ok(())
        }),
        WebhookCmd::Resume { id, data } => with_store(&data, |store| async move {
            store.resume_webhook(None, WebhookId(id)).await?;
            eprintln!("resumed webhook {id}");
            Ok(())
        }),
    }
}
