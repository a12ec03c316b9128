//! MessageService (docs/protocol.md §12): sending text, reading messages, and changing them
//! afterwards (tapbacks, edits, unsends). `SubscribeMessageEvents` is a stream
//! (`crate::grpc::streams`). Attachments, multipart messages, app cards, stickers and embedded
//! media are not served.

use imgroups_core::engine::messages::query::Listing;
use imgroups_core::{Command, Error, NewMessage, Outcome, Result, Timestamp};
use imgroups_proto::pb;
use imgroups_proto::pbjson_types::{self, Empty};

use super::{message_of, Rpc, Write};
use crate::app::{App, Caller};
use crate::wire;

/// Sends a text message; answers with it as stored.
pub(crate) struct SendTextMessage;

impl Write for SendTextMessage {
    const PATH: &'static str = "/photon.imessage.v1.MessageService/SendTextMessage";
    type Req = pb::SendTextMessageRequest;
    type Resp = pb::MessageResponse;

    fn command(_: &App, req: Self::Req) -> Result<(Command, Option<String>)> {
        let formatting = req
            .formatting
            .into_iter()
            .map(wire::text_format_in)
            .collect::<Result<Vec<_>>>()?;
        let message = NewMessage::new(
            &req.text,
            req.subject,
            req.effect_id,
            req.reply_to.map(|r| r.message_guid),
            formatting,
        )?;
        Ok((
            Command::send_text(&req.chat_guid, message)?,
            req.client_message_id,
        ))
    }

    fn respond(outcome: Outcome) -> Result<Self::Resp> {
        message_response(outcome)
    }
}

/// The answer of a write that changes a message: the message after it.
fn message_response(outcome: Outcome) -> Result<pb::MessageResponse> {
    Ok(pb::MessageResponse {
        message: Some(message_of(outcome)?),
        mini_app_card_session: None,
    })
}

/// A listing's filters and page, as both listings take them.
fn listing(
    page_size: Option<i32>,
    page_token: Option<String>,
    is_from_me: Option<bool>,
    is_read: Option<bool>,
    before: Option<pbjson_types::Timestamp>,
    after: Option<pbjson_types::Timestamp>,
) -> Listing {
    Listing {
        page_size: page_size.map(i64::from),
        page_token,
        is_from_me,
        is_read,
        before: time(before),
        after: time(after),
    }
}

/// The chat and message a change names.
fn target(target: Option<pb::MessageTarget>) -> Result<pb::MessageTarget> {
    target.ok_or_else(|| Error::invalid("target is required").with("field", "target"))
}

/// Sets or removes the caller's tapback; answers with the message.
pub(crate) struct SetReaction;

impl Write for SetReaction {
    const PATH: &'static str = "/photon.imessage.v1.MessageService/SetReaction";
    type Req = pb::SetReactionRequest;
    type Resp = pb::MessageResponse;

    fn command(_: &App, req: Self::Req) -> Result<(Command, Option<String>)> {
        let target = target(req.target)?;
        let reaction = wire::reaction_in(req.reaction)?;
        let command = Command::react(
            &target.chat_guid,
            &target.message_guid,
            reaction,
            req.is_set,
        )?;
        Ok((command, req.client_message_id))
    }

    fn respond(outcome: Outcome) -> Result<Self::Resp> {
        message_response(outcome)
    }
}

/// Edits one of the caller's messages; answers with it.
pub(crate) struct EditMessage;

impl Write for EditMessage {
    const PATH: &'static str = "/photon.imessage.v1.MessageService/EditMessage";
    type Req = pb::EditMessageRequest;
    type Resp = pb::MessageResponse;

    fn command(_: &App, req: Self::Req) -> Result<(Command, Option<String>)> {
        let target = target(req.target)?;
        let command = Command::edit(&target.chat_guid, &target.message_guid, &req.new_text)?;
        Ok((command, req.client_message_id))
    }

    fn respond(outcome: Outcome) -> Result<Self::Resp> {
        message_response(outcome)
    }
}

/// Unsends one of the caller's messages.
pub(crate) struct UnsendMessage;

impl Write for UnsendMessage {
    const PATH: &'static str = "/photon.imessage.v1.MessageService/UnsendMessage";
    type Req = pb::UnsendMessageRequest;
    type Resp = Empty;

    fn command(_: &App, req: Self::Req) -> Result<(Command, Option<String>)> {
        let target = target(req.target)?;
        let command = Command::unsend(&target.chat_guid, &target.message_guid)?;
        Ok((command, req.client_message_id))
    }

    fn respond(_: Outcome) -> Result<Self::Resp> {
        Ok(Empty {})
    }
}

/// Tells the sender of a message that arrived while the caller was in a Focus mode that it
/// was seen anyway. The simulated network has no Focus modes, so nothing is recorded: the
/// message must exist in the chat.
pub(crate) struct NotifySilencedMessage;

impl Rpc for NotifySilencedMessage {
    const PATH: &'static str = "/photon.imessage.v1.MessageService/NotifySilencedMessage";
    type Req = pb::NotifySilencedMessageRequest;
    type Resp = Empty;

    async fn call(app: &App, caller: &Caller, req: Self::Req) -> Result<Self::Resp> {
        let chat = app.engine.get_chat(caller.account, req.chat_guid).await?;
        let message = app
            .engine
            .get_message(caller.account, req.message_guid)
            .await?;
        if message.chat_guid.as_ref() != Some(&chat.guid) {
            return Err(Error::message_not_found(&message.guid)
                .with("field", "messageGuid")
                .with("chatguid", &chat.guid));
        }
        Ok(Empty {})
    }
}

/// One message the caller can see.
pub(crate) struct GetMessage;

impl Rpc for GetMessage {
    const PATH: &'static str = "/photon.imessage.v1.MessageService/GetMessage";
    type Req = pb::GetMessageRequest;
    type Resp = pb::GetMessageResponse;

    async fn call(app: &App, caller: &Caller, req: Self::Req) -> Result<Self::Resp> {
        let message = app
            .engine
            .get_message(caller.account, req.message_guid)
            .await?;
        Ok(pb::GetMessageResponse {
            message: Some(wire::message(&message)),
        })
    }
}

fn time(t: Option<pbjson_types::Timestamp>) -> Option<Timestamp> {
    t.map(|t| {
        Timestamp(
            t.seconds
                .saturating_mul(1_000_000_000)
                .saturating_add(i64::from(t.nanos)),
        )
    })
}

/// The caller's recent messages in every chat, newest first.
pub(crate) struct ListRecentMessages;

impl Rpc for ListRecentMessages {
    const PATH: &'static str = "/photon.imessage.v1.MessageService/ListRecentMessages";
    type Req = pb::ListRecentMessagesRequest;
    type Resp = pb::ListRecentMessagesResponse;

    async fn call(app: &App, caller: &Caller, req: Self::Req) -> Result<Self::Resp> {
        let listing = listing(
            req.page_size,
            req.page_token,
            req.is_from_me,
            req.is_read,
            req.before,
            req.after,
        );
        let (messages, next) = app
            .engine
            .list_messages(caller.account, None, listing)
            .await?;
        Ok(pb::ListRecentMessagesResponse {
            messages: messages.iter().map(wire::message).collect(),
            next_page_token: next,
        })
    }
}

/// The caller's messages in one chat, newest first.
pub(crate) struct ListChatMessages;

impl Rpc for ListChatMessages {
    const PATH: &'static str = "/photon.imessage.v1.MessageService/ListChatMessages";
    type Req = pb::ListChatMessagesRequest;
    type Resp = pb::ListChatMessagesResponse;

    async fn call(app: &App, caller: &Caller, req: Self::Req) -> Result<Self::Resp> {
        let listing = listing(
            req.page_size,
            req.page_token,
            req.is_from_me,
            req.is_read,
            req.before,
            req.after,
        );
        let (messages, next) = app
            .engine
            .list_messages(caller.account, Some(req.chat_guid), listing)
            .await?;
        Ok(pb::ListChatMessagesResponse {
            messages: messages.iter().map(wire::message).collect(),
            next_page_token: next,
        })
    }
}
