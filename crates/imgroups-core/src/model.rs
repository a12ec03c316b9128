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

    #[inline]
    pub fn seconds(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    #[inline]
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

/// A message as one account sees it: its content, who sent it, and what happened to it since
/// (read, edited, unsent, tapbacks). Every member keeps its own copy, so that `is_from_me`,
/// the read state and the chat's GUID are those of its view.
///
/// Stored as JSON (inside events and message rows) and kept in idempotency records: new
/// fields are optional with defaults, so records written before they existed still decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Upper-case UUID, the same in every member's view.
    pub guid: String,
    /// Empty once unsent.
    pub text: String,
    pub subject: Option<String>,
    pub date_created: Timestamp,
    pub is_from_me: bool,
    pub is_sent: bool,
    /// The chat as this account sees it (`None` only in answers recorded before messages
    /// were kept per chat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_guid: Option<ChatGuid>,
    /// Who sent it; `None` for my own messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Address>,
    /// The bubble or screen effect (`com.apple.MobileSMS.expressivesend.impact`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect_id: Option<String>,
    /// The message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub formatting: Vec<TextFormat>,
    /// When I read it (incoming messages), or when the other side of a direct chat read it
    /// (my own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_read: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_edited: Option<Timestamp>,
    /// How many times it was edited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub edits: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_retracted: Option<Timestamp>,
    /// The tapbacks on it now, oldest first; at most one per person.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<AppliedReaction>,
}

/// A message with nothing in it yet (no GUID, no text, created at the epoch): what a decoder
/// fills in.
impl Default for Message {
    fn default() -> Self {
        Message {
            guid: String::new(),
            text: String::new(),
            subject: None,
            date_created: Timestamp(0),
            is_from_me: false,
            is_sent: false,
            chat_guid: None,
            sender: None,
            effect_id: None,
            reply_to: None,
            formatting: Vec::new(),
            date_read: None,
            date_edited: None,
            edits: 0,
            date_retracted: None,
            reactions: Vec::new(),
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Message {
    /// Whether I have read it: my own messages count as read.
    pub fn is_read(&self) -> bool {
        self.is_from_me || self.date_read.is_some()
    }

    pub fn is_unsent(&self) -> bool {
        self.date_retracted.is_some()
    }
}

/// A styled span of a message's text; `start` and `length` count UTF-16 code units, as the
/// wire does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextFormat {
    /// The style (`bold`, `italic`, `underline`, `strikethrough`, or an effect).
    pub style: String,
    pub start: u32,
    pub length: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect_name: Option<String>,
}

/// A tapback: one of the six classic kinds, or any emoji.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reaction {
    Love,
    Like,
    Dislike,
    Laugh,
    Emphasize,
    Question,
    Emoji(String),
}

impl Reaction {
    /// The six classic tapbacks and `emoji`, as the CLI and the console name them.
    pub const NAMES: [&'static str; 7] = [
        "love",
        "like",
        "dislike",
        "laugh",
        "emphasize",
        "question",
        "emoji",
    ];

    /// A tapback by name (`love`, `like`, …), or any other text as an emoji.
    pub fn named(name: &str) -> Option<Reaction> {
        Some(match name {
            "love" => Reaction::Love,
            "like" => Reaction::Like,
            "dislike" => Reaction::Dislike,
            "laugh" => Reaction::Laugh,
            "emphasize" => Reaction::Emphasize,
            "question" => Reaction::Question,
            "" => return None,
            other => Reaction::Emoji(other.to_owned()),
        })
    }
}

impl std::fmt::Display for Reaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reaction::Love => "love",
            Reaction::Like => "like",
            Reaction::Dislike => "dislike",
            Reaction::Laugh => "laugh",
            Reaction::Emphasize => "emphasize",
            Reaction::Question => "question",
            Reaction::Emoji(emoji) => emoji,
        })
    }
}

/// A tapback on a message, as the viewer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedReaction {
    pub reaction: Reaction,
    pub sender: Address,
    pub is_from_me: bool,
    pub date_created: Timestamp,
}

/// The optional first message of `chats.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitialMessage {
    pub text: String,
    pub subject: Option<String>,
    pub effect_id: Option<String>,
}

/// One change, as recorded in an account's event log: to a group, to a message, or to a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    DisplayNameChanged {
        display_name: String,
    },
    ParticipantAdded {
        participant: Address,
    },
    ParticipantRemoved {
        participant: Address,
    },
    ParticipantLeft {
        participant: Address,
    },
    IconChanged,
    IconRemoved,
    /// A message arrived in the chat (also my own, sent from any of my devices).
    MessageReceived {
        message: Box<Message>,
    },
    MessageEdited {
        message_guid: String,
        text: String,
        formatting: Vec<TextFormat>,
        edited_at: Timestamp,
    },
    MessageUnsent {
        message_guid: String,
        retracted_at: Timestamp,
    },
    ReactionAdded {
        message_guid: String,
        reaction: Reaction,
    },
    ReactionRemoved {
        message_guid: String,
        reaction: Reaction,
    },
    /// The other side of a direct chat read my message.
    MessageRead {
        message_guid: String,
        read_at: Timestamp,
    },
    /// I marked the chat read (on any of my devices).
    ChatMarkedRead,
    /// Someone in the chat set its background (a chat's background is shared by everyone in
    /// it, as in Messages).
    BackgroundChanged,
    BackgroundRemoved,
}

/// Which stream a change belongs to: each `Subscribe*` method carries one, catch-up all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    Group,
    Message,
    Chat,
}

impl Change {
    #[inline]
    pub fn domain(&self) -> Domain {
        match self {
            Change::DisplayNameChanged { .. }
            | Change::ParticipantAdded { .. }
            | Change::ParticipantRemoved { .. }
            | Change::ParticipantLeft { .. }
            | Change::IconChanged
            | Change::IconRemoved => Domain::Group,
            Change::MessageReceived { .. }
            | Change::MessageEdited { .. }
            | Change::MessageUnsent { .. }
            | Change::ReactionAdded { .. }
            | Change::ReactionRemoved { .. }
            | Change::MessageRead { .. } => Domain::Message,
            Change::ChatMarkedRead | Change::BackgroundChanged | Change::BackgroundRemoved => {
                Domain::Chat
            }
        }
    }

    /// The event type SSE, webhooks and the console name it by (`group.changed`,
    /// `message.received`, …).
    pub fn event_type(&self) -> &'static str {
        match self {
            Change::DisplayNameChanged { .. }
            | Change::ParticipantAdded { .. }
            | Change::ParticipantRemoved { .. }
            | Change::ParticipantLeft { .. }
            | Change::IconChanged
            | Change::IconRemoved => "group.changed",
            Change::MessageReceived { .. } => "message.received",
            Change::MessageEdited { .. } => "message.edited",
            Change::MessageUnsent { .. } => "message.unsent",
            Change::ReactionAdded { .. } => "message.reactionAdded",
            Change::ReactionRemoved { .. } => "message.reactionRemoved",
            Change::MessageRead { .. } => "message.read",
            Change::ChatMarkedRead => "chat.markedRead",
            Change::BackgroundChanged => "chat.backgroundChanged",
            Change::BackgroundRemoved => "chat.backgroundRemoved",
        }
    }
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
        message: Option<Box<Message>>,
    },
    /// A message as the writer sees it after the write.
    Message(Box<Message>),
}
