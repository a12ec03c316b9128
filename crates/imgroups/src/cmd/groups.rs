//! `imgroups groups …` on a running server: every action of `imgroups_core::action`, made
//! through the Rust SDK, and `groups icon get`.
//!
//! An action is parsed into the same core command the server would make of the request, so
//! what the server would refuse without looking at any state (an empty name, a duplicate
//! address, a file that is no image) is refused here with the server's code, and the
//! command then picks the SDK call. The chat GUID and each address are checked first, as
//! usage (exit 2).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use imgroups_client::{ChatGuid, Client};
use imgroups_core::{Command, Limits, Mutation};

use super::chats::{print_chat, print_done};
use crate::cli::action::Invocation;
use crate::cli::remote::{GroupsArgs, GroupsCmd};
use crate::output::{json_line, print_lines, terminal_safe};
use crate::remote::{addresses, chat_guid, io_failure, refused, run as connect, Failure, Outcome};

/// No icon limits here: they are the server's to set (`serve --max-icon-bytes …`).
const SERVER_DECIDES: Limits = Limits {
    max_icon_bytes: usize::MAX,
    max_icon_pixels: u64::MAX,
    max_icon_side: u32::MAX,
};

pub(crate) fn run(args: GroupsArgs) -> ExitCode {
    let json = args.remote.json();
    connect(&args.remote, |client| async move {
        match args.cmd {
            GroupsCmd::Act(invocation) => act(&client, &invocation, json).await,
            GroupsCmd::IconGet { chat, output } => icon_get(&client, &chat, &output, json).await,
        }
    })
}

async fn act(client: &Client, invocation: &Invocation, json: bool) -> Outcome {
    let chat = chat_guid(&invocation.chat)?;
    addresses(&invocation.addresses().cloned().collect::<Vec<_>>())?;
    let command = invocation.command(&SERVER_DECIDES).map_err(refused)?;
    let Command::Group { mutation, .. } = command else {
        return Err(Failure::new(1, "internalError", "not a group action"));
    };
    let groups = client.groups();
    // Every mutation a person can make has its SDK call: a new one does not compile until
    // it is given one here.
    let changed = match mutation {
        Mutation::SetDisplayName(name) => Some(groups.set_display_name(&chat, &name).await?),
        Mutation::AddParticipants(people) => Some(groups.add_participants(&chat, &people).await?),
        Mutation::RemoveParticipants(people) => {
            Some(groups.remove_participants(&chat, &people).await?)
        }
        Mutation::Leave => {
            groups.leave(&chat).await?;
            None
        }
        Mutation::SetIcon { data, .. } => {
            groups.set_icon(&chat, data).await?;
            None
        }
        Mutation::RemoveIcon => {
            groups.remove_icon(&chat).await?;
            None
        }
    };
    match changed {
        Some(chat) => print_chat(&chat, json),
        None => print_done(&chat, json),
    }
    Ok(())
}

async fn icon_get(client: &Client, chat: &str, output: &Path, json: bool) -> Outcome {
    let chat: ChatGuid = chat_guid(chat)?;
    let icon = client.groups().get_icon(&chat).await?;
    if output.as_os_str() == "-" {
        let mut stdout = std::io::stdout().lock();
        // A closed pipe is not an error.
        let _ = stdout.write_all(&icon.data).and_then(|()| stdout.flush());
        return Ok(());
    }
    std::fs::write(output, &icon.data)
        .map_err(|err| io_failure(&format!("cannot write {}", output.display()), err))?;
    if json {
        print_lines([json_line(&serde_json::json!({
            "chatGuid": chat.to_string(),
            "path": output.display().to_string(),
            "bytes": icon.data.len(),
            "mimeType": icon.mime_type,
        }))]);
    } else {
        eprintln!(
            "wrote {} bytes ({}) to {}",
            icon.data.len(),
            terminal_safe(&icon.mime_type, false),
            output.display()
        );
    }
    Ok(())
}
