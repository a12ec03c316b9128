//! The application functions every transport calls: wire request in, wire response out.
//! gRPC handlers (and HTTP routes) only authenticate and unwrap; the behaviour lives here once.

use std::sync::Arc;

use imgroups_core::idempotency;
use imgroups_core::port::Webhook;
use imgroups_core::{
    admin, AccountId, ChatGuid, Command, Engine, Error, ErrorKind, InitialMessage, Limits, Outcome,
    Result, WebhookId,
};
use imgroups_proto::pb;

use crate::wire;

/// Who is calling, and the idempotency key from transport metadata (if any).
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) account: AccountId,
    pub(crate) idempotency_key: Option<String>,
    /// The bearer token, so streams can end when it is revoked.
    pub(crate) token: crate::revocation::Token,
}

impl Caller {
    /// The request's `client_message_id` wins over the `x-idempotency-key` header (checked
    /// in [`App::caller`]).
    fn key(&self, client_message_id: Option<String>) -> Result<Option<String>> {
        match client_message_id.filter(|k| !k.is_empty()) {
            Some(key) => {
                idempotency::check_key(&key, "clientMessageId")?;
                Ok(Some(key))
            }
            None => Ok(self.idempotency_key.clone()),
        }
    }
}

#[derive(Clone)]
pub(crate) struct App {
    pub(crate) engine: Arc<Engine>,
    pub(crate) limits: Limits,
    /// Where webhooks registered through the API may point, and how many per account.
    pub(crate) webhooks: crate::WebhookOptions,
}

fn expect_chat(outcome: Outcome) -> Result<pb::Chat> {
    match outcome {
        Outcome::Chat(chat) | Outcome::Created { chat, .. } => Ok(wire::chat(&chat)),
        Outcome::Empty => {
            tracing::error!("write returned no chat");
            Err(Error::internal())
        }
    }
}

/// The token from an `authorization` header value: `Bearer <token>` (scheme case-insensitive).
pub(crate) fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl App {
    /// Authentication, the same for every transport: `authorization: Bearer <token>`, plus the
    /// optional `x-idempotency-key`. The values are the raw header/metadata values.
    pub(crate) async fn caller(
        &self,
        authorization: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<Caller> {
        let token = bearer(authorization).ok_or_else(|| {
            Error::new(
                ErrorKind::Unauthenticated,
                "missing bearer token: send `authorization: Bearer <token>`",
            )
        })?;
        let account = self.engine.store().authenticate(token).await?;
        let idempotency_key = idempotency_key.map(str::trim).filter(|k| !k.is_empty());
        if let Some(key) = idempotency_key {
            idempotency::check_key(key, "x-idempotency-key")?;
        }
        let idempotency_key = idempotency_key.map(str::to_owned);
        Ok(Caller {
            account,
            idempotency_key,
            token: crate::revocation::Token::new(token),
        })
    }

    async fn write(
        &self,
        caller: &Caller,
        key: Option<String>,
        command: Command,
    ) -> Result<Outcome> {
        let key = caller.key(key)?;
        self.engine.execute(caller.account, key, command).await
    }

    pub(crate) async fn set_display_name(
        &self,
        caller: &Caller,
        req: pb::SetDisplayNameRequest,
    ) -> Result<pb::SetDisplayNameResponse> {
        let command = Command::set_display_name(&req.chat_guid, &req.display_name)?;
        let outcome = self.write(caller, req.client_message_id, command).await?;
        Ok(pb::SetDisplayNameResponse {
            chat: Some(expect_chat(outcome)?),
        })
    }

    pub(crate) async fn add_participants(
        &self,
        caller: &Caller,
        req: pb::AddParticipantsRequest,
    ) -> Result<pb::AddParticipantsResponse> {
        let command = Command::add_participants(&req.chat_guid, &req.addresses)?;
        let outcome = self.write(caller, req.client_message_id, command).await?;
        Ok(pb::AddParticipantsResponse {
            chat: Some(expect_chat(outcome)?),
        })
    }

    pub(crate) async fn remove_participants(
        &self,
        caller: &Caller,
        req: pb::RemoveParticipantsRequest,
    ) -> Result<pb::RemoveParticipantsResponse> {
        let command = Command::remove_participants(&req.chat_guid, &req.addresses)?;
        let outcome = self.write(caller, req.client_message_id, command).await?;
        Ok(pb::RemoveParticipantsResponse {
            chat: Some(expect_chat(outcome)?),
        })
    }

    pub(crate) async fn leave_group(
        &self,
        caller: &Caller,
        req: pb::LeaveGroupRequest,
    ) -> Result<()> {
        let command = Command::leave(&req.chat_guid)?;
        self.write(caller, req.client_message_id, command).await?;
        Ok(())
    }

    pub(crate) async fn set_icon(&self, caller: &Caller, req: pb::SetIconRequest) -> Result<()> {
        let command = Command::set_icon(&req.chat_guid, req.data, &self.limits)?;
        self.write(caller, req.client_message_id, command).await?;
        Ok(())
    }

    pub(crate) async fn remove_icon(
        &self,
        caller: &Caller,
        req: pb::RemoveIconRequest,
    ) -> Result<()> {
        let command = Command::remove_icon(&req.chat_guid)?;
        self.write(caller, req.client_message_id, command).await?;
        Ok(())
    }

    pub(crate) async fn get_icon(
        &self,
        caller: &Caller,
        req: pb::GetIconRequest,
    ) -> Result<pb::GetIconResponse> {
        let (data, mime_type) = self.engine.get_icon(caller.account, req.chat_guid).await?;
        Ok(pb::GetIconResponse { data, mime_type })
    }

    pub(crate) async fn create_chat(
        &self,
        caller: &Caller,
        req: pb::CreateChatRequest,
    ) -> Result<pb::CreateChatResponse> {
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
        match self.write(caller, req.client_message_id, command).await? {
            Outcome::Created { chat, message } => Ok(pb::CreateChatResponse {
                chat: Some(wire::chat(&chat)),
                initial_message: message.as_ref().map(wire::message),
            }),
            other => Ok(pb::CreateChatResponse {
                chat: Some(expect_chat(other)?),
                initial_message: None,
            }),
        }
    }

    pub(crate) async fn get_chat(
        &self,
        caller: &Caller,
        req: pb::GetChatRequest,
    ) -> Result<pb::GetChatResponse> {
        let chat = self.engine.get_chat(caller.account, req.chat_guid).await?;
        Ok(pb::GetChatResponse {
            chat: Some(wire::chat(&chat)),
        })
    }

    pub(crate) async fn get_chat_count(
        &self,
        caller: &Caller,
        _req: pb::GetChatCountRequest,
    ) -> Result<pb::GetChatCountResponse> {
        let count = self.engine.count_chats(caller.account).await?;
        Ok(pb::GetChatCountResponse {
            count: i64::try_from(count).unwrap_or(i64::MAX),
        })
    }

    /// The chat filter of an event subscription (any transport): none, or a group the caller
    /// can see.
    pub(crate) async fn subscription_filter(
        &self,
        caller: &Caller,
        chat: Option<String>,
    ) -> Result<Option<ChatGuid>> {
        let Some(chat) = chat.filter(|c| !c.trim().is_empty()) else {
            return Ok(None);
        };
        let guid = ChatGuid::parse(&chat)?;
        guid.require_group()?;
        // Only a group I can see may be watched.
        self.engine.get_chat(caller.account, chat).await?;
        Ok(Some(guid))
    }

    /// Registers a webhook for the caller's account.
    ///
    /// The URL must pass the server's egress policy (checked again at every delivery), and an
    /// account has at most [`WebhookOptions::max_per_account`](crate::WebhookOptions)
    /// endpoints. Two registrations racing at the cap may both pass: the cap bounds abuse, it
    /// is not an exact quota.
    pub(crate) async fn add_webhook(&self, caller: &Caller, url: &str) -> Result<Webhook> {
        let store = self.engine.store();
        imgroups_core::port::WebhookUrl::parse(url)?;
        self.webhooks.egress.check_url(url).await?;
        let max = self.webhooks.max_per_account;
        if store.webhooks(Some(caller.account)).await?.len() >= max as usize {
            return Err(Error::new(
                imgroups_core::ErrorKind::PreconditionFailed,
                format!("an account may have at most {max} webhook endpoints; remove one first"),
            )
            .with("limit", max));
        }
        admin::add_webhook(&**store, caller.account, url).await
    }

    pub(crate) async fn webhooks(&self, caller: &Caller) -> Result<Vec<Webhook>> {
        self.engine.store().webhooks(Some(caller.account)).await
    }

    pub(crate) async fn remove_webhook(&self, caller: &Caller, id: WebhookId) -> Result<()> {
        self.engine
            .store()
            .remove_webhook(Some(caller.account), id)
            .await
    }

    pub(crate) async fn resume_webhook(&self, caller: &Caller, id: WebhookId) -> Result<Webhook> {
        self.engine
            .store()
            .resume_webhook(Some(caller.account), id)
            .await
    }
}

/// The answer for an RPC this server does not implement.
pub(crate) fn unimplemented(method: &str) -> Error {
    Error::new(
        ErrorKind::Unimplemented,
        format!("{method} is not supported by this server"),
    )
    .with("method", method)
}
