//! [`FakeHelper`]: the helper's end of the BlueBubbles socket protocol, behaving as the real
//! helper does (BlueBubblesApp/bluebubbles-helper, `Messages/MacOS-11+/BlueBubblesHelper/`;
//! `BBH` below), backed by [`FakeMessages`] for what Messages writes. Each behaviour names the
//! source it was read from:
//!
//! - greets with `{"event":"ping","message":"Helper Connected!","process":<bundle id>}` as soon
//!   as it is connected (BBH `NetworkController.m` `didConnectToHost:`); the process is
//!   Messages' `com.apple.MobileSMS` unless [`FakeHelperOptions::process`] says otherwise;
//! - writes every answer as `JSON + "\r\n"` (BBH `NetworkController.m` `sendMessage:`);
//! - treats each socket read as one message, keeping only the part before a `}\n{` when two
//!   requests arrived in one read, and ignoring what does not parse (BBH `NetworkController.m`
//!   `socket:didReadData:` and `BlueBubblesHelper.m` `handleMessage:`): a server that writes
//!   requests back to back loses all but the first;
//! - finds chats with one exact `existingChatWithGUID:` on `chat.guid`, answering `Chat does
//!   not exist!` (or `Provide a chat GUID!`) otherwise (BBH `BlueBubblesHelper.m` `getChat::`);
//! - answers the group actions with the real texts, in the real order of checks, including the
//!   second answer some of them send after the lookup failed (`handleMessage:`
//!   `set-display-name`, `add-participant`, `remove-participant`, `update-group-photo`,
//!   `leave-chat`);
//! - for `update-group-photo` with a file Messages cannot read (anywhere but under
//!   `Library/Messages/Attachments`), calls `sendGroupPhotoUpdate:nil`, which removes the
//!   photo, and still answers success (BBH `prepareFileTransferForAttachment:filename:` returns
//!   nil, then `handleMessage:` `update-group-photo`);
//! - `start-typing` / `stop-typing` (`chatGuid`): finds the chat as every action does and
//!   answers `{transactionId}` (BBH `handleMessage:`, which sets `localUserIsTyping`); Messages
//!   writes nothing for it, so the fake records each one it carried out
//!   ([`FakeHelper::typing`]) for tests to see it arrived;
//! - ignores actions it does not know, without an answer (`handleMessage:`, last `else`).
//!
//! Unlike the real one it does not reconnect by itself (the `imgroups-fake-helper` binary
//! does).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actuator::{wire, HelperAction, HelperChat};
use crate::MESSAGES_BUNDLE_ID;

use super::messages::{FakeMessages, FakeMessagesError};

/// How the fake answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum FakeReply {
    /// As the real helper: applies the action to chat.db (see the module doc).
    #[default]
    Apply,
    /// Applies nothing and answers every group action with this error.
    Reject(String),
    /// Applies nothing and answers success: Messages took it and wrote nothing (yet).
    AckOnly,
    /// Applies nothing and never answers (to test timeouts).
    Silent,
}

/// Options for [`FakeHelper::connect`].
#[derive(Clone, Debug)]
pub struct FakeHelperOptions {
    /// Waited before handling each request.
    pub delay: Duration,
    pub reply: FakeReply,
    /// The bundle id its `ping` names (`None`: no `process` key, as older helpers send).
    pub process: Option<String>,
}

impl Default for FakeHelperOptions {
    fn default() -> FakeHelperOptions {
        FakeHelperOptions {
            delay: Duration::ZERO,
            reply: FakeReply::Apply,
            process: Some(MESSAGES_BUNDLE_ID.to_owned()),
        }
    }
}

/// A typing indicator the fake showed or hid in Messages (`start-typing` / `stop-typing`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypingSeen {
    /// `chatGuid` exactly as it was sent.
    pub chat_guid: String,
    /// `start-typing` (`true`) or `stop-typing`.
    pub typing: bool,
}

/// A running fake helper connection. Dropping it closes the connection.
pub struct FakeHelper {
    task: JoinHandle<io::Result<()>>,
    handled: watch::Receiver<usize>,
    typing: watch::Receiver<Vec<TypingSeen>>,
}

impl FakeHelper {
    /// Connects to a [`BlueBubblesHelper`](crate::BlueBubblesHelper) at `addr` and serves
    /// requests against the chat.db at `db` until the server closes the connection.
    pub async fn connect(
        addr: SocketAddr,
        db: impl Into<PathBuf>,
        options: FakeHelperOptions,
    ) -> io::Result<FakeHelper> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let messages = FakeMessages::new(db);
        let (count, handled) = watch::channel(0);
        let (typed, typing) = watch::channel(Vec::new());
        let task = tokio::spawn(serve(stream, messages, options, count, typed));
        Ok(FakeHelper {
            task,
            handled,
            typing,
        })
    }

    /// The typing indicators it carried out, in order.
    pub fn typing(&self) -> Vec<TypingSeen> {
        self.typing.borrow().clone()
    }

    /// Follows [`FakeHelper::typing`] as it grows (the fake binary prints each one).
    pub fn typing_updates(&self) -> watch::Receiver<Vec<TypingSeen>> {
        self.typing.clone()
    }

    /// How many messages (socket reads) it has handled.
    pub fn handled(&self) -> usize {
        *self.handled.borrow()
    }

    /// Waits until it has handled `n` messages (or its connection ended).
    pub async fn wait_handled(&self, n: usize) {
        let mut handled = self.handled.clone();
        let _ = handled.wait_for(|&h| h >= n).await;
    }

    /// Runs until the server closes the connection.
    pub async fn closed(mut self) -> io::Result<()> {
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(io::Error::other(e)),
        }
    }

    /// Whether the server closed the connection (or it failed).
    pub fn is_closed(&self) -> bool {
        self.task.is_finished()
    }

    /// Closes the connection, as a helper does when Messages quits.
    pub async fn disconnect(mut self) {
        self.task.abort();
        // The socket is closed once the task is gone.
        let _ = (&mut self.task).await;
    }
}

impl Drop for FakeHelper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    stream: TcpStream,
    messages: FakeMessages,
    options: FakeHelperOptions,
    handled: watch::Sender<usize>,
    typing: watch::Sender<Vec<TypingSeen>>,
) -> io::Result<()> {
    let (mut read, mut write) = stream.into_split();
    write
        .write_all(wire::ping(options.process.as_deref()).as_bytes())
        .await?;
    // GCDAsyncSocket's `readDataWithTimeout:` hands over whatever one read returned.
    let mut buf = vec![0_u8; 64 * 1024];
    loop {
        let n = read.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let message = first_message(&String::from_utf8_lossy(&buf[..n]));
        if !options.delay.is_zero() {
            tokio::time::sleep(options.delay).await;
        }
        let (messages, reply) = (messages.clone(), options.reply.clone());
        let answers = tokio::task::spawn_blocking(move || respond(&messages, &reply, message))
            .await
            .map_err(io::Error::other)?;
        if let Some(seen) = answers.typing {
            typing.send_modify(|all| all.push(seen));
        }
        for answer in answers.lines {
            write.write_all(answer.as_bytes()).await?;
        }
        handled.send_modify(|h| *h += 1);
    }
}

/// One read as the helper parses it: cut before a second object glued on with `}\n{`.
fn first_message(read: &str) -> Option<Map<String, Value>> {
    let text = match read.find("}\n{") {
        Some(i) => &read[..=i],
        None => read,
    };
    match serde_json::from_str::<Value>(text.trim()) {
        Ok(Value::Object(message)) => Some(message),
        _ => None,
    }
}

/// The answer lines for one message, in order (and the typing indicator it carried out).
fn respond(
    messages: &FakeMessages,
    reply: &FakeReply,
    message: Option<Map<String, Value>>,
) -> Answers {
    let Some(message) = message else {
        return Answers {
            transaction: None,
            lines: Vec::new(),
            typing: None,
        };
    };
    let action = message.get("action").and_then(Value::as_str).unwrap_or("");
    let empty = Map::new();
    let data = message
        .get("data")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let transaction = message
        .get("transactionId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut out = Answers {
        transaction,
        lines: Vec::new(),
        typing: None,
    };
    let group_action = matches!(
        action,
        "set-display-name"
            | "add-participant"
            | "remove-participant"
            | "update-group-photo"
            | "leave-chat"
            | "send-message"
            | "send-reaction"
            | "edit-message"
            | "unsend-message"
            | "mark-chat-read"
            | "start-typing"
            | "stop-typing"
    );
    match reply {
        _ if !group_action => {}
        FakeReply::Silent => {}
        FakeReply::Reject(error) => out.error(error),
        FakeReply::AckOnly => out.ok(),
        FakeReply::Apply => apply(messages, action, data, &mut out),
    }
    out
}

/// `handleMessage:`'s branches for the group actions.
fn apply(messages: &FakeMessages, action: &str, data: &Map<String, Value>, out: &mut Answers) {
    let text = |key: &str| data.get(key).and_then(Value::as_str).map(str::to_owned);
    match action {
        "set-display-name" => {
            let Some(name) = text("newName") else {
                return out.error("Provide a new name for the chat!");
            };
            let Some(chat) = get_chat(messages, data, out) else {
                return;
            };
            out.result(messages.apply(&HelperAction::Rename { chat, name }));
        }
        "add-participant" | "remove-participant" => {
            let adding = action == "add-participant";
            let chat = get_chat(messages, data, out);
            let Some(address) = text("address") else {
                // Sic: the same text for both (BBH `handleMessage:`).
                return out.error("Provide an address to add!");
            };
            let failed = if adding {
                "Failed to add address to chat!"
            } else {
                "Failed to remove address from chat!"
            };
            let Some(chat) = chat else {
                return out.error(failed);
            };
            let action = if adding {
                HelperAction::AddParticipant { chat, address }
            } else {
                HelperAction::RemoveParticipant { chat, address }
            };
            match messages.apply(&action) {
                Ok(_) => out.ok(),
                Err(FakeMessagesError::Sql(e)) => out.error(&format!("fake Messages failed: {e}")),
                Err(_) => out.error(failed),
            }
        }
        "update-group-photo" => {
            let chat = get_chat(messages, data, out);
            if let Some(chat) = chat {
                let file = text("filePath").filter(|p| !p.is_empty());
                let action = match file {
                    Some(file) if messages.readable_by_messages(Path::new(&file)) => {
                        HelperAction::SetIcon {
                            chat,
                            file: PathBuf::from(file),
                        }
                    }
                    // `prepareFileTransferForAttachment:` gave nil, or no file was given:
                    // `sendGroupPhotoUpdate:nil` removes the photo.
                    _ => HelperAction::RemoveIcon { chat },
                };
                if let Err(e) = messages.apply(&action) {
                    tracing::debug!(error = %e, "fake Messages could not change the photo");
                }
            }
            // Answered success whatever happened.
            out.ok();
        }
        "leave-chat" => {
            if let Some(chat) = get_chat(messages, data, out) {
                if chat.is_direct() {
                    return out.error("Chat does not exist!");
                }
                out.result(messages.apply(&HelperAction::Leave { chat }));
            }
        }
        // The message actions (BBH `handleMessage:`; BB `PrivateApiMessage.ts`), in groups and
        // direct chats alike.
        "send-message" => {
            let Some(chat) = get_any_chat(messages, data, out) else {
                return;
            };
            let Some(message) = text("message") else {
                return out.error("Provide a message!");
            };
            out.result(messages.apply(&HelperAction::SendMessage {
                chat,
                text: message,
                subject: text("subject").filter(|s| !s.is_empty()),
                effect: text("effectId").filter(|s| !s.is_empty()),
                reply_to: text("selectedMessageGuid").filter(|s| !s.is_empty()),
            }));
        }
        "send-reaction" => {
            let Some(chat) = get_any_chat(messages, data, out) else {
                return;
            };
            let (Some(message), Some(reaction)) =
                (text("selectedMessageGuid"), text("reactionType"))
            else {
                return out.error("Provide a message GUID and a reaction type!");
            };
            out.result(messages.apply(&HelperAction::SendReaction {
                chat,
                message,
                reaction,
            }));
        }
        "edit-message" => {
            let Some(chat) = get_any_chat(messages, data, out) else {
                return;
            };
            let (Some(message), Some(edited)) = (text("messageGuid"), text("editedMessage")) else {
                return out.error("Provide a message GUID and the edited message!");
            };
            out.result(messages.apply(&HelperAction::EditMessage {
                chat,
                message,
                text: edited,
            }));
        }
        "unsend-message" => {
            let Some(chat) = get_any_chat(messages, data, out) else {
                return;
            };
            let Some(message) = text("messageGuid") else {
                return out.error("Provide a message GUID!");
            };
            out.result(messages.apply(&HelperAction::UnsendMessage { chat, message }));
        }
        "mark-chat-read" => {
            if let Some(chat) = get_any_chat(messages, data, out) {
                out.result(messages.apply(&HelperAction::MarkChatRead { chat }));
            }
        }
        // `getChat::`, then `setLocalUserIsTyping:` and success; nothing reaches chat.db.
        "start-typing" | "stop-typing" => {
            if let Some(chat) = get_any_chat(messages, data, out) {
                let typing = action == "start-typing";
                let chat_guid = chat.helper_guid().to_owned();
                match messages.apply(&HelperAction::SetTyping { chat, typing }) {
                    Ok(_) => {
                        out.typing = Some(TypingSeen { chat_guid, typing });
                        out.ok();
                    }
                    Err(e) => out.error(&e.to_string()),
                }
            }
        }
        _ => {}
    }
}

/// `getChat::`: the chat whose `chat.guid` is exactly `data.chatGuid`.
fn get_chat(
    messages: &FakeMessages,
    data: &Map<String, Value>,
    out: &mut Answers,
) -> Option<HelperChat> {
    let Some(guid) = data.get("chatGuid").and_then(Value::as_str) else {
        out.error("Provide a chat GUID!");
        return None;
    };
    match messages.has_chat(guid) {
        Ok(true) => {}
        Ok(false) => {
            out.error("Chat does not exist!");
            return None;
        }
        Err(e) => {
            out.error(&format!("fake Messages failed: {e}"));
            return None;
        }
    }
    match HelperChat::from_helper_guid(guid) {
        Some(chat) if !chat.is_direct() => Some(chat),
        _ => {
            // A one-to-one chat: no group action applies to it.
            out.error("Chat does not exist!");
            None
        }
    }
}

/// `getChat::` for the message actions: any chat, group or direct, by its exact GUID.
fn get_any_chat(
    messages: &FakeMessages,
    data: &Map<String, Value>,
    out: &mut Answers,
) -> Option<HelperChat> {
    let Some(guid) = data.get("chatGuid").and_then(Value::as_str) else {
        out.error("Provide a chat GUID!");
        return None;
    };
    match messages.has_chat(guid) {
        Ok(true) => {}
        Ok(false) => {
            out.error("Chat does not exist!");
            return None;
        }
        Err(e) => {
            out.error(&format!("fake Messages failed: {e}"));
            return None;
        }
    }
    let chat = HelperChat::from_helper_guid(guid);
    if chat.is_none() {
        out.error("Chat does not exist!");
    }
    chat
}

/// The answers of one message; nothing is sent without a transaction id (as `handleMessage:`
/// checks `transaction != nil` before every answer).
struct Answers {
    transaction: Option<String>,
    lines: Vec<String>,
    typing: Option<TypingSeen>,
}

impl Answers {
    fn ok(&mut self) {
        if let Some(t) = &self.transaction {
            self.lines.push(wire::answer(t, None));
        }
    }

    fn error(&mut self, error: &str) {
        if let Some(t) = &self.transaction {
            self.lines.push(wire::answer(t, Some(error)));
        }
    }

    fn result<T>(&mut self, result: Result<T, FakeMessagesError>) {
        match result {
            Ok(_) => self.ok(),
            Err(e) => self.error(&e.to_string()),
        }
    }
}
