//! The engine: what every transport and tool calls. It validates, decides and records — the
//! rules live in [`rules`] — through the two ports it is given: a [`Store`] for state and the
//! log, a [`Network`] for the iMessage side. A write reads api → engine → store port; the
//! store runs the engine's unit of work inside its transaction and never sees a rule.
//!
//! The network is matched once per write: on a recorded network (the simulator) the write's
//! unit of work checks and records it in one transaction; on an observed one (a Mac) the
//! unit only checks, the network carries the change out and it is recorded when seen
//! (`observe.rs`, [`Engine::record_observed`]).

pub mod messages;
mod observe;
mod observe_messages;
pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use crate::command::Command;
use crate::error::Result;
use crate::idempotency::{self, Keyed};
use crate::limits::{Limiter, SendLimits};
use crate::model::{AccountId, Chat, Message, Outcome, Timestamp};
use crate::port::store::{self, Store};
use crate::port::Network;

pub use observe::{BulkImport, ObservedBatch, ObservedGroup, ObservedPart};
pub use observe_messages::{MessageEvent, ObservedMessage, ObservedMessages};
pub use rules::{address_not_found, query, Checks, Decision, Observed};

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long idempotency keys are remembered.
    pub idempotency_ttl: Duration,
    /// The send limits of a real line, enforced on accounts' new messages (simulator,
    /// `serve --limits`); `None`: no limits.
    pub send_limits: Option<SendLimits>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            idempotency_ttl: idempotency::DEFAULT_TTL,
            send_limits: None,
        }
    }
}

/// The engine over one store and one network; cheap to share (`Arc`).
pub struct Engine {
    store: Arc<dyn Store>,
    network: Network,
    config: EngineConfig,
    /// What each line sent, when send limits are on.
    limiter: Option<Arc<Limiter>>,
}

/// The limiter and what it needs, when `command` is a new message and limits are on.
fn limited<'c>(
    limiter: Option<&'c Limiter>,
    command: &'c Command,
) -> Option<(&'c Limiter, &'c crate::ids::ChatGuid, &'c str)> {
    match (limiter, command) {
        (
            Some(limiter),
            Command::Message {
                chat,
                op: crate::command::MessageOp::Send(new),
            },
        ) => Some((limiter, chat, new.text.as_str())),
        _ => None,
    }
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, network: Network, config: EngineConfig) -> Self {
        let limiter = config
            .send_limits
            .clone()
            .map(|limits| Arc::new(Limiter::new(limits)));
        Engine {
            store,
            network,
            config,
            limiter,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Applies a write as `account`. With a key, a repeat of the same request returns the
    /// original outcome (success or error) without a new effect, and a different request under
    /// the same key fails with `duplicateMessage` (see [`crate::idempotency`]). Returns once
    /// the write is durable.
    pub async fn execute(
        &self,
        account: AccountId,
        key: Option<String>,
        command: Command,
    ) -> Result<Outcome> {
        let network = match &self.network {
            Network::Recorded(network) => network.clone(),
            Network::Observed(network) => {
                return self
                    .execute_observed(network.clone(), account, key, command)
                    .await
            }
        };
        let keyed = Keyed::new(key, &command);
        let ttl = self.config.idempotency_ttl;
        let limiter = self.limiter.clone();
        self.store
            .write(Box::new(move |tx| {
                // A replay is answered before this runs, so it is never limited or counted.
                idempotency::run(tx, account, keyed.as_ref(), ttl, |tx| {
                    let Some((limiter, chat, text)) = limited(limiter.as_deref(), &command) else {
                        return rules::execute(tx, &*network, account, &command);
                    };
                    let now = tx.now();
                    let Some(recipients) = messages::recipients(tx, account, chat)? else {
                        return rules::execute(tx, &*network, account, &command);
                    };
                    let history = match limiter.history_since(now) {
                        Some(since) => messages::times_since(tx, account, since)?,
                        None => Vec::new(),
                    };
                    limiter.check(account, now, &recipients, text, &history)?;
                    let outcome = rules::execute(tx, &*network, account, &command)?;
                    limiter.record(account, now, &recipients, text);
                    Ok(outcome)
                })
            }))
            .await
    }

    /// `person`, someone in a simulated network who need not be an account (a *puppet*),
    /// makes the group change or says or does in a chat what `command` says, under the same
    /// rules as an account; every account in the chat sees it with `person` as actor. Refused
    /// on an observed network (there, people act on their own devices), and for chat
    /// creation. Answers what an account's write would (the message sent, …). A group change
    /// is recorded as any change made elsewhere is ([`rules::ingest`]), under the rules.
    pub async fn act_as(&self, person: &crate::ids::Address, command: Command) -> Result<Outcome> {
        let network = match &self.network {
            Network::Recorded(network) => network.clone(),
            Network::Observed(_) => {
                return Err(crate::Error::not_supported(
                    "puppets exist only in the simulator: on a real network, people change \
                     groups on their own devices",
                ))
            }
        };
        let (chat, mutation) = match command {
            Command::Group { chat, mutation } => (chat, mutation),
            Command::Message { chat, op } => {
                let person = person.clone();
                return self
                    .store
                    .write(Box::new(move |tx| {
                        messages::execute(tx, &*network, &person, &chat, &op)
                    }))
                    .await;
            }
            Command::CreateChat { .. } => {
                return Err(crate::Error::not_supported(
                    "a simulated person can change groups and talk, not create chats",
                ))
            }
        };
        let observed = Observed {
            chat,
            actor: person.clone(),
            occurred_at: None,
            mutation,
        };
        self.store
            .write(Box::new(move |tx| {
                rules::ingest(tx, Some(&*network), &observed, Checks::Enforce)
                    .map(|()| Outcome::Empty)
            }))
            .await?;
        Ok(Outcome::Empty)
    }

    /// The address of an account.
    pub async fn account_address(&self, account: AccountId) -> Result<crate::ids::Address> {
        store::read(&*self.store, move |r| r.account_address(account)).await
    }

    /// Whether the chat has a background, as the account sees it.
    pub async fn has_background(&self, account: AccountId, chat: String) -> Result<bool> {
        store::read(&*self.store, move |r| {
            messages::query::has_background(r, account, &chat)
        })
        .await
    }

    /// The account's copy of message `guid` (`messageNotFound` if it has none).
    pub async fn get_message(&self, account: AccountId, guid: String) -> Result<Message> {
        store::read(&*self.store, move |r| {
            messages::query::get_message(r, account, &guid)
        })
        .await
    }

    /// One page of the account's messages in `chat` (or in every chat), newest first.
    pub async fn list_messages(
        &self,
        account: AccountId,
        chat: Option<String>,
        listing: messages::query::Listing,
    ) -> Result<messages::query::Page> {
        store::read(&*self.store, move |r| {
            messages::query::list(r, account, chat.as_deref(), &listing)
        })
        .await
    }

    /// Shows (`typing`) or hides the account's typing indicator in `chat`, which it must see
    /// (`chatNotFound` otherwise); returns the chat. Transient: never stored, never in the log.
    /// An observed network is told (a Mac's Messages shows it to the others, and may refuse it
    /// as it refuses writes); on a recorded one there is nobody else to tell (the server keeps
    /// the indicators its console shows).
    pub async fn set_typing(&self, account: AccountId, chat: String, typing: bool) -> Result<Chat> {
        let chat = self.get_chat(account, chat).await?;
        if let Network::Observed(network) = &self.network {
            let me = self.account_address(account).await?;
            network.set_typing(&chat.guid, &me, typing).await?;
        }
        Ok(chat)
    }

    pub async fn get_chat(&self, account: AccountId, chat: String) -> Result<Chat> {
        store::read(&*self.store, move |r| query::get_chat(r, account, &chat)).await
    }

    /// The icon's bytes and MIME type.
    pub async fn get_icon(&self, account: AccountId, chat: String) -> Result<(Vec<u8>, String)> {
        store::read(&*self.store, move |r| query::get_icon(r, account, &chat)).await
    }

    /// One page of the groups `account` is in, newest first, with the total and each icon's
    /// hash ([`query::list_groups`]).
    pub async fn list_groups(
        &self,
        account: AccountId,
        offset: usize,
        limit: usize,
    ) -> Result<query::GroupPage> {
        store::read(&*self.store, move |r| {
            query::list_groups(r, account, offset, limit)
        })
        .await
    }

    pub async fn count_chats(&self, account: AccountId) -> Result<u64> {
        store::read(&*self.store, move |r| query::count_chats(r, account)).await
    }

    /// Deletes idempotency records older than the configured time, by the store's clock
    /// (run now and then).
    pub async fn forget_expired_keys(&self) -> Result<()> {
        let ttl = i64::try_from(self.config.idempotency_ttl.as_nanos()).unwrap_or(i64::MAX);
        let cutoff = Timestamp(self.store.now().await?.0.saturating_sub(ttl));
        self.store.forget_keys_before(cutoff).await
    }
}
