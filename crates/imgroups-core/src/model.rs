//! What the engine returns and records: chat snapshots, messages and events.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::ids::{Address, ChatGuid};

/// Declares a store key: an integer newtype, so keys of different tables cannot be mixed up.
macro_rules! key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

key!(
    /// The store's key for an account (one iMessage identity).
    AccountId
);
key!(
    /// The store's key for a group: the one row every member's view shares.
    GroupKey
);
key!(
    /// The store's key for an API token (what `token list` shows; never the secret).
    TokenId
);
key!(
    /// The store's key for a webhook endpoint.
    WebhookId
);
key!(
    /// The store's key for an injected fault (simulator).
    FaultId
);

/// A point in time, nanoseconds since the Unix epoch (good until 2262).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(since.as_nanos()).unwrap_or(i64::MAX))
    }

    pub fn seconds(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    pub fn subsec_nanos(self) -> i32 {
        // rem_euclid of 1e9 always fits in i32.
        self.0.rem_euclid(1_000_000_000) as i32
    }
}

/// A chat as one account sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chat {
    pub guid: ChatGuid,
    /// Group: `chat` + 18 digits; direct: the other person's address.
    pub chat_identifier: String,
    /// Groups only: upper-case UUID shared by every member.
    pub group_id: Option<String>,
    pub display_name: Option<String>,
    pub is_group: bool,
    /// The other members, never me, in the order they joined.
    pub participants: Vec<Address>,
}

/// A message snapshot (only the initial message of `chats.create` exists today).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub guid: String,
    pub text: String,
    pub subject: Option<String>,
    pub date_created: Timestamp,
    pub is_from_me: bool,
    pub is_sent: bool,
}

/// The optional first message of `chats.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitialMessage {
    pub text: String,
    pub subject: Option<String>,
    pub effect_id: Option<String>,
}

/// One change to a group, as recorded in the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    DisplayNameChanged { display_name: String },
    ParticipantAdded { participant: Address },
    ParticipantRemoved { participant: Address },
    ParticipantLeft { participant: Address },
    IconChanged,
    IconRemoved,
}

/// One entry of an account's event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// 1, 2, 3, … per account, in commit order.
    pub sequence: u64,
    pub chat_guid: ChatGuid,
    /// When the change was committed.
    pub occurred_at: Timestamp,
    /// The actor is this account (from any of its devices).
    pub is_from_me: bool,
    pub actor: Option<Address>,
    pub change: Change,
}

/// What a successful write returns; kept verbatim for idempotent replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Chat(Chat),
    Empty,
    Created {
        chat: Chat,
        message: Option<Message>,
    },
}
