//! `imgroups messages …` on a running server, through the Rust SDK: send, list (a page or
//! every page), recent, get, tapbacks, edit, unsend; and how a message is printed.
//!
//! Malformed chat GUIDs, message GUIDs and tapback names are usage errors (exit 2), refused
//! before anything is sent; everything else is the server's to refuse.

use std::process::ExitCode;

use futures::StreamExt;
use imgroups_client::{rfc3339, ChatGuid, Client, ListOptions, Message, Reaction, SendOptions};

use super::chats::print_done;
use crate::cli::remote::{MessagesArgs, MessagesCmd, PageArgs};
use crate::output::{json_line, print_lines, terminal_safe, Out};
use crate::remote::{chat_guid, message_guid, run as connect, Failure, Outcome};

pub(crate) fn run(args: MessagesArgs) -> ExitCode {
    let json = args.remote.json();
    connect(&args.remote, |client| async move {
        messages(&client, args.cmd, json).await
    })
}

fn reaction(kind: &str) -> Result<Reaction, Failure> {
    kind.parse()
        .map_err(|err: imgroups_client::Error| Failure::new(2, err.code(), err.message()))
}

async fn messages(client: &Client, cmd: MessagesCmd, json: bool) -> Outcome {
    let messages = client.messages();
    match cmd {
        MessagesCmd::Send {
            chat,
            text,
            reply_to,
            subject,
        } => {
            let chat = chat_guid(&chat)?;
            let options = SendOptions {
                reply_to: reply_to.as_deref().map(message_guid).transpose()?,
                subject,
                ..SendOptions::default()
            };
            let sent = messages.send_text(&chat, &text, options).await?;
            if json {
                print_lines([json_line(&sent)]);
            } else {
                print_lines([terminal_safe(sent.guid.as_str(), false).into_owned()]);
            }
        }
        MessagesCmd::List { chat, page } => {
            let chat = chat_guid(&chat)?;
            return list(client, Some(chat), page, json).await;
        }
        MessagesCmd::Recent { page } => return list(client, None, page, json).await,
        MessagesCmd::Get { guid } => {
            let message = messages.get(&message_guid(&guid)?).await?;
            print_message(&message, json);
        }
        MessagesCmd::React { chat, guid, kind } => {
            return react(client, &chat, &guid, &kind, true, json).await;
        }
        MessagesCmd::Unreact { chat, guid, kind } => {
            return react(client, &chat, &guid, &kind, false, json).await;
        }
        MessagesCmd::Edit { chat, guid, text } => {
            let (chat, guid) = (chat_guid(&chat)?, message_guid(&guid)?);
            let message = messages.edit(&chat, &guid, &text).await?;
            print_message(&message, json);
        }
        MessagesCmd::Unsend { chat, guid } => {
            let (chat, guid) = (chat_guid(&chat)?, message_guid(&guid)?);
            messages.unsend(&chat, &guid).await?;
            print_done(&chat, json);
        }
    }
    Ok(())
}

async fn react(
    client: &Client,
    chat: &str,
    guid: &str,
    kind: &str,
    set: bool,
    json: bool,
) -> Outcome {
    let (chat, guid, kind) = (chat_guid(chat)?, message_guid(guid)?, reaction(kind)?);
    let message = client
        .messages()
        .set_reaction(&chat, &guid, &kind, set)
        .await?;
    print_message(&message, json);
    Ok(())
}

/// A page (and, when there are more, the token of the next on stderr, or in the JSON
/// object), or with `--all` every page as it arrives.
async fn list(client: &Client, chat: Option<ChatGuid>, page: PageArgs, json: bool) -> Outcome {
    let options = ListOptions {
        page_size: page.page_size,
        page_token: page.page_token,
        ..ListOptions::default()
    };
    if page.all {
        let mut all = client.messages().list_all(chat.as_ref(), options);
        let mut out = Out::new();
        while let Some(message) = all.next().await {
            let message = message?;
            let line = if json {
                json_line(&message)
            } else {
                message_line(&message)
            };
            if out.line(&line).is_err() {
                return Ok(()); // stdout closed (`| head`)
            }
        }
        return Ok(());
    }
    let page = match &chat {
        Some(chat) => client.messages().list_in_chat(chat, options).await?,
        None => client.messages().list_recent(options).await?,
    };
    if json {
        print_lines([json_line(&page)]);
        return Ok(());
    }
    print_lines(page.messages.iter().map(message_line));
    if let Some(token) = &page.next_page_token {
        eprintln!(
            "more: --page-token {} (or --all)",
            terminal_safe(token, false)
        );
    }
    Ok(())
}

fn sender(message: &Message) -> String {
    match (&message.sender, message.is_from_me) {
        (_, true) => "me".to_owned(),
        (Some(p), false) => p.address.to_string(),
        (None, false) => "?".to_owned(),
    }
}

fn text(message: &Message) -> String {
    if message.is_unsent() {
        return "(unsent)".to_owned();
    }
    terminal_safe(message.text.as_deref().unwrap_or_default(), false).into_owned()
}

/// `GUID<TAB>TIME<TAB>SENDER<TAB>TEXT`, the sender `me` for the account's own.
fn message_line(message: &Message) -> String {
    format!(
        "{}\t{}\t{}\t{}",
        terminal_safe(message.guid.as_str(), false),
        rfc3339(message.date_created),
        terminal_safe(&sender(message), false),
        text(message)
    )
}

/// A message: tab-separated `key value` lines, or the SDK's `Message` as JSON.
fn print_message(message: &Message, json: bool) {
    if json {
        print_lines([json_line(message)]);
        return;
    }
    let safe = |s: &str| terminal_safe(s, false).into_owned();
    let mut lines = vec![format!("guid\t{}", safe(message.guid.as_str()))];
    if let Some(chat) = message.chat_guid() {
        lines.push(format!("chat\t{}", safe(&chat.to_string())));
    }
    lines.push(format!("from\t{}", safe(&sender(message))));
    lines.push(format!("date\t{}", rfc3339(message.date_created)));
    lines.push(format!("text\t{}", text(message)));
    if let Some(subject) = &message.subject {
        lines.push(format!("subject\t{}", safe(subject)));
    }
    if let Some(reply_to) = &message.reply_to {
        lines.push(format!("replyTo\t{}", safe(reply_to.as_str())));
    }
    if let Some(edited) = message.date_edited {
        lines.push(format!("edited\t{}", rfc3339(edited)));
    }
    if let Some(read) = message.date_read {
        lines.push(format!("read\t{}", rfc3339(read)));
    }
    if !message.reactions.is_empty() {
        let reactions: Vec<String> = message
            .reactions
            .iter()
            .map(|r| {
                let by = match (&r.sender, r.is_from_me) {
                    (_, true) => "me".to_owned(),
                    (Some(p), false) => p.address.to_string(),
                    (None, false) => "?".to_owned(),
                };
                format!("{} by {by}", r.reaction)
            })
            .collect();
        lines.push(format!("reactions\t{}", safe(&reactions.join(", "))));
    }
    print_lines(lines);
}
