//! `imgroups chats create|get|count|read|typing` on a running server, and how a chat is
//! printed.

use std::process::ExitCode;

use imgroups_client::{Chat, ChatGuid, Client, CreateChatOptions};

use crate::cli::remote::{ChatsArgs, ChatsCmd, OnOff};
use crate::output::{json_line, print_lines, terminal_safe};
use crate::remote::{addresses, chat_guid, run as connect, Outcome};

pub(crate) fn run(args: ChatsArgs) -> ExitCode {
    let json = args.remote.json();
    connect(&args.remote, |client| async move {
        chats(&client, args.cmd, json).await
    })
}

async fn chats(client: &Client, cmd: ChatsCmd, json: bool) -> Outcome {
    match cmd {
        ChatsCmd::Create {
            addresses: a,
            message,
        } => {
            let options = CreateChatOptions {
                message,
                ..Default::default()
            };
            let created = client.chats().create(&addresses(&a)?, options).await?;
            if json {
                print_lines([json_line(&created)]);
            } else {
                print_lines([created.chat.guid.to_string()]);
            }
        }
        ChatsCmd::Get { chat } => {
            let chat = client.chats().get(&chat_guid(&chat)?).await?;
            print_chat(&chat, json);
        }
        ChatsCmd::Read { chat } => {
            let chat = chat_guid(&chat)?;
            client.chats().mark_read(&chat).await?;
            print_done(&chat, json);
        }
        ChatsCmd::Typing { chat, state } => {
            let chat = chat_guid(&chat)?;
            client.chats().set_typing(&chat, state == OnOff::On).await?;
            print_done(&chat, json);
        }
        ChatsCmd::Count { include_archived } => {
            let count = client.chats().count(include_archived).await?;
            if json {
                print_lines([json_line(&serde_json::json!({ "count": count }))]);
            } else {
                print_lines([count.to_string()]);
            }
        }
    }
    Ok(())
}

fn chat_lines(chat: &Chat) -> Vec<String> {
    let people: Vec<&str> = chat
        .participants
        .iter()
        .map(|p| p.address.as_str())
        .collect();
    let safe = |text: &str| terminal_safe(text, false).into_owned();
    vec![
        format!("guid\t{}", safe(&chat.guid.to_string())),
        format!("name\t{}", safe(&chat.display_name)),
        format!("group\t{}", chat.is_group),
        format!("participants\t{}", safe(&people.join(", "))),
    ]
}

/// A chat: tab-separated lines, or the SDK's `Chat` as JSON.
pub(crate) fn print_chat(chat: &Chat, json: bool) {
    if json {
        print_lines([json_line(chat)]);
    } else {
        print_lines(chat_lines(chat));
    }
}

/// What a command with no result prints with `--json`, so every command's stdout parses.
pub(crate) fn print_done(chat: &ChatGuid, json: bool) {
    if json {
        print_lines([json_line(
            &serde_json::json!({ "chatGuid": chat.to_string() }),
        )]);
    }
}
