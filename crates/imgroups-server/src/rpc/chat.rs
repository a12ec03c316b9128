//! ChatService (docs/protocol.md §3): creating and reading chats. `SubscribeChatEvents` is a
//! stream (`crate::grpc::streams`); the other methods of the service are not served.

use imgroups_core::{Command, Error, InitialMessage, Outcome, Result};
use imgroups_proto::pb;
use imgroups_proto::pbjson_types::Empty;

use super::{chat_of, Rpc, Write};
use crate::app::{App, Caller};
use crate::wire;

/// Creates a group (or finds the direct chat), with an optional first message.
pub(crate) struct CreateChat;

impl Write for CreateChat {
    const PATH: &'static str = "/photon.imessage.v1.ChatService/CreateChat";
    type Req = pb::CreateChatRequest;
    type Resp = pb::CreateChatResponse;

    fn command(_: &App, req: Self::Req) -> Result<(Command, Option<String>)> {
        let service = req.service;
        if service != pb::ChatServiceType::Unspecified as i32
            && service != pb::ChatServiceType::Imessage as i32
        {
            return Err(
                Error::not_supported("only imessage chats can be created").with("field", "service")
            );
        }
        let message = req.initial_message.map(|m| InitialMessage {
            text: m.text,
            subject: m.subject.filter(|s| !s.is_empty()),
            effect_id: m.effect_id.filter(|s| !s.is_empty()),
        });
        let command = Command::create_chat(&req.addresses, message)?;
        Ok((command, req.client_message_id))
    }

    fn respond(outcome: Outcome) -> Result<Self::Resp> {
        Ok(match outcome {
            Outcome::Created { chat, message } => pb::CreateChatResponse {
                chat: Some(wire::chat(&chat)),
                initial_message: message.as_deref().map(wire::message),
            },
            other => pb::CreateChatResponse {
                chat: Some(chat_of(other)?),
                initial_message: None,
            },
        })
    }
}

/// One chat the caller sees.
pub(crate) struct GetChat;

impl Rpc for GetChat {
    const PATH: &'static str = "/photon.imessage.v1.ChatService/GetChat";
    type Req = pb::GetChatRequest;
    type Resp = pb::GetChatResponse;

    async fn call(app: &App, caller: &Caller, req: Self::Req) -> Result<Self::Resp> {
        let chat = app.engine.get_chat(caller.account, req.chat_guid).await?;
        Ok(pb::GetChatResponse {
            chat: Some(wire::chat(&chat)),
        })
    }
}

/// How many chats the caller sees.
pub(crate) struct GetChatCount;

impl Rpc for GetChatCount {
    const PATH: &'static str = "/photon.imessage.v1.ChatService/GetChatCount";
    type Req = pb::GetChatCountRequest;
    type Resp = pb::GetChatCountResponse;

    async fn call(app: &App, caller: &Caller, _: Self::Req) -> Result<Self::Resp> {
        let count = app.engine.count_chats(caller.account).await?;
        Ok(pb::GetChatCountResponse {
            count: i64::try_from(count).unwrap_or(i64::MAX),
        })
    }
}

/// Marks everything received in a chat read (`chat.markedRead` for the caller; read receipts
/// to the other side of a direct chat).
pub(crate) struct MarkChatRead;

impl Write for MarkChatRead {
    const PATH: &'static str = "/photon.imessage.v1.ChatService/MarkChatRead";
    type Req = pb::MarkChatReadRequest;
    type Resp = Empty;

    fn command(_: &App, req: Self::Req) -> Result<(Command, Option<String>)> {
        Ok((Command::mark_read(&req.chat_guid)?, None))
    }

    fn respond(_: Outcome) -> Result<Self::Resp> {
        Ok(Empty {})
    }
}

/// Shows or hides the caller's typing indicator in a chat it can see. Typing is transient, as
/// in iMessage: never stored and never in the log; the console's conversation view shows it,
/// and on a Mac Messages is told (`Engine::set_typing`).
pub(crate) struct SetTyping;

impl Rpc for SetTyping {
    const PATH: &'static str = "/photon.imessage.v1.ChatService/SetTyping";
    type Req = pb::SetTypingRequest;
    type Resp = Empty;

    async fn call(app: &App, caller: &Caller, req: Self::Req) -> Result<Self::Resp> {
        let chat = app
            .engine
            .set_typing(caller.account, req.chat_guid, req.is_typing)
            .await?;
        let me = app.engine.account_address(caller.account).await?;
        let now = app.engine.store().now().await?;
        app.typing.set(&me, &chat.guid, req.is_typing, now);
        Ok(Empty {})
    }
}

/// Sets the chat's background, shared by everyone in it (`chat.backgroundChanged`).
pub(crate) struct SetBackground;

impl Write for SetBackground {
    const PATH: &'static str = "/photon.imessage.v1.ChatService/SetBackground";
    const LARGE_BODY: bool = true;
    type Req = pb::SetBackgroundRequest;
    type Resp = Empty;

    fn command(app: &App, req: Self::Req) -> Result<(Command, Option<String>)> {
        let command = Command::set_background(&req.chat_guid, req.data, &app.limits)?;
        Ok((command, None))
    }

    fn respond(_: Outcome) -> Result<Self::Resp> {
        Ok(Empty {})
    }
}

/// Removes the chat's background (`chat.backgroundRemoved`).
pub(crate) struct RemoveBackground;

impl Write for RemoveBackground {
    const PATH: &'static str = "/photon.imessage.v1.ChatService/RemoveBackground";
    type Req = pb::RemoveBackgroundRequest;
    type Resp = Empty;

    fn command(_: &App, req: Self::Req) -> Result<(Command, Option<String>)> {
        Ok((Command::remove_background(&req.chat_guid)?, None))
    }

    fn respond(_: Outcome) -> Result<Self::Resp> {
        Ok(Empty {})
    }
}

/// Shares the caller's name and photo with the chat.
pub(crate) struct ShareContactInfo;

impl Write for ShareContactInfo {
    const PATH: &'static str = "/photon.imessage.v1.ChatService/ShareContactInfo";
    type Req = pb::ShareContactInfoRequest;
    type Resp = Empty;

    fn command(_: &App, req: Self::Req) -> Result<(Command, Option<String>)> {
        Ok((Command::share_contact_info(&req.chat_guid)?, None))
    }

    fn respond(_: Outcome) -> Result<Self::Resp> {
        Ok(Empty {})
    }
}

/// Whether the chat has a background.
pub(crate) struct HasBackground;

impl Rpc for HasBackground {
    const PATH: &'static str = "/photon.imessage.v1.ChatService/HasBackground";
    type Req = pb::HasBackgroundRequest;
    type Resp = pb::HasBackgroundResponse;

    async fn call(app: &App, caller: &Caller, req: Self::Req) -> Result<Self::Resp> {
        let present = app
            .engine
            .has_background(caller.account, req.chat_guid)
            .await?;
        Ok(pb::HasBackgroundResponse {
            background_present: present,
        })
    }
}
