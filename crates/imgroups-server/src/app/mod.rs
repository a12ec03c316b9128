//! The application layer every transport calls: authentication, writes through the engine
//! with their idempotency key, subscription checks and webhooks for an account ([`App`]), and
//! what the operator's console does with an admin token ([`AdminApp`]). The operations
//! themselves are `crate::rpc`; transports decode, call here, encode.

mod admin;
mod typing;

pub(crate) use admin::{AdminApp, Item};
pub(crate) use typing::Typing;

use std::sync::Arc;

use imgroups_core::idempotency;
use imgroups_core::port::Webhook;
use imgroups_core::{
    admin as core_admin, AccountId, ChatGuid, Command, Engine, Error, ErrorKind, Limits, Outcome,
    Result, WebhookId,
};

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

/// The application of an account's token: what the API's operations run on.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) engine: Arc<Engine>,
    pub(crate) limits: Limits,
    /// Where webhooks registered through the API may point, and how many per account.
    pub(crate) webhooks: crate::WebhookOptions,
    /// Typing indicators (transient; the console shows them).
    pub(crate) typing: Arc<Typing>,
    /// The simulator's directory ([`crate::Options::sim`]); `None`: nobody is marked
    /// unreachable.
    pub(crate) sim: Option<Arc<dyn imgroups_core::port::SimControls>>,
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

    /// Runs `command` as the caller, under the request's `client_message_id` or else the
    /// call's idempotency key.
    pub(crate) async fn write(
        &self,
        caller: &Caller,
        client_message_id: Option<String>,
        command: Command,
    ) -> Result<Outcome> {
        let key = caller.key(client_message_id)?;
        self.engine.execute(caller.account, key, command).await
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

    /// The chat a message or chat stream is limited to, checked: `None` for every chat;
    /// otherwise a chat (group or direct) the caller can see.
    pub(crate) async fn chat_filter(
        &self,
        caller: &Caller,
        chat: Option<String>,
    ) -> Result<Option<ChatGuid>> {
        let Some(chat) = chat.filter(|c| !c.trim().is_empty()) else {
            return Ok(None);
        };
        let chat = self.engine.get_chat(caller.account, chat).await?;
        Ok(Some(chat.guid))
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
                ErrorKind::PreconditionFailed,
                format!("an account may have at most {max} webhook endpoints; remove one first"),
            )
            .with("limit", max));
        }
        core_admin::add_webhook(&**store, caller.account, url).await
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
