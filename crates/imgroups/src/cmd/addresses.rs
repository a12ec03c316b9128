//! `imgroups addresses check` on a running server.

use std::process::ExitCode;

use imgroups_client::Client;

use crate::cli::remote::{AddressesArgs, AddressesCmd};
use crate::output::{json_line, print_lines, terminal_safe};
use crate::remote::{addresses, run as connect, Outcome};

pub(crate) fn run(args: AddressesArgs) -> ExitCode {
    let json = args.remote.json();
    connect(&args.remote, |client| async move {
        check(&client, args.cmd, json).await
    })
}

async fn check(client: &Client, cmd: AddressesCmd, json: bool) -> Outcome {
    let AddressesCmd::Check { address } = cmd;
    let Some(address) = addresses(&[address])?.pop() else {
        return Ok(());
    };
    let lookup = client.addresses();
    let info = lookup.info(&address).await?;
    let available = lookup.is_imessage_available(&address).await?;
    let silenced = lookup.is_silenced_by_focus(&address).await?;
    if json {
        print_lines([json_line(&serde_json::json!({
            "address": info.address,
            "isIMessageAvailable": available,
            "services": info.services,
            "country": info.country,
            "isSilencedByFocus": silenced,
        }))]);
    } else {
        let services: Vec<&str> = info.services.iter().map(|s| s.as_str()).collect();
        print_lines([
            format!("address\t{}", terminal_safe(&info.address, false)),
            format!("imessage\t{available}"),
            format!("services\t{}", services.join(", ")),
            format!("focus\t{}", if silenced { "silenced" } else { "off" }),
        ]);
    }
    Ok(())
}
