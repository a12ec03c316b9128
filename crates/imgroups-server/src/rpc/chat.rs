//! ChatService (docs/protocol.md §3): creating and reading chats. `SubscribeChatEvents` is a
//! stream (`crate::grpc::streams`); the other methods of the service are not served.

use imgroups_core::{Command, Error, InitialMessage, Outcome, Result};
use imgroups_proto::pb;

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
                initial_message: message.as_ref().map(wire::message),
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
