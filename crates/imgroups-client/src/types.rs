//! Public value types: chats, participants, icons, messages, tapbacks and events (group,
//! message, chat), in the official SDK's shape. They serialize to the SDK's JSON shape
//! (camelCase, `type` tags, RFC 3339 times).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imgroups_proto::pbjson_types::Timestamp;
use imgroups_proto::{pb, sdk};
use imgroups_types::{Address, ChatGuid};
use serde::Serialize;

use crate::error::{Code, Error, ErrorKind, Result};

pub use imgroups_proto::sdk::Service;

/// A participant or actor: an address on one service. Serializes in the official SDK's
/// shape ([`imgroups_proto::sdk::Participant`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Participant {
    /// The phone number (E.164) or email address.
    pub address: Address,
    /// The service the address is reached on.
    pub service: Service,
    /// The country of a phone number (ISO 3166 code), when the server knows it.
    pub country: Option<String>,
}

impl Participant {
    /// The SDK-shape view of this participant.
    fn sdk(&self) -> sdk::Participant<'_> {
        sdk::Participant {
            address: self.address.as_str(),
            service: self.service,
            country: self.country.as_deref(),
        }
    }
}

impl Serialize for Participant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.sdk().serialize(s)
    }
}

impl Participant {
    fn from_wire(info: pb::SingleServiceAddressInfo) -> Result<Self> {
        let address = Address::parse(&info.address)
            .map_err(|_| Error::malformed(format!("invalid address {:?}", info.address)))?;
        Ok(Participant {
            address,
            service: Service::from_wire(info.service),
            country: info.country,
        })
    }
}

/// A chat as the calling account sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Chat {
    /// The chat's GUID (`any;+;…` for a group, `any;-;ADDRESS` for a direct chat).
    #[serde(serialize_with = "display")]
    pub guid: ChatGuid,
    /// The identifier part of the GUID, when the server sends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_identifier: Option<String>,
    /// The group's stable id, when the server sends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Empty until the group is named (as in the official SDK).
    pub display_name: String,
    /// Whether this is a group (as opposed to a direct chat).
    pub is_group: bool,
    /// The chat's service.
    pub service: Service,
    /// Whether the account archived the chat.
    pub is_archived: bool,
    /// Whether Messages filed the chat under unknown senders.
    pub is_filtered: bool,
    /// Unread messages, when the server counts them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_count: Option<i32>,
    /// The *other* members, in the order they joined; never the calling account.
    pub participants: Vec<Participant>,
}

impl Chat {
    pub(crate) fn from_wire(chat: Option<pb::Chat>) -> Result<Self> {
        let chat = chat.ok_or_else(|| Error::malformed("expected chat in response"))?;
        Ok(Chat {
            guid: parse_guid(&chat.guid)?,
            chat_identifier: chat.chat_identifier,
            group_id: chat.group_id,
            display_name: chat.display_name.unwrap_or_default(),
            is_group: chat.is_group,
            service: Service::from_wire(chat.service),
            is_archived: chat.is_archived,
            is_filtered: chat.is_filtered,
            unread_count: chat.unread_count,
            participants: chat
                .participants
                .into_iter()
                .map(Participant::from_wire)
                .collect::<Result<_>>()?,
        })
    }
}

/// A group's icon: the exact bytes and the MIME type the server detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupIcon {
    /// The image, byte for byte as it was set.
    pub data: Vec<u8>,
    /// `image/png`, `image/jpeg`, `image/gif`, `image/heic` or `image/heif`.
    pub mime_type: String,
}

/// A message's GUID (on imgroups an upper-case UUID, the same in every member's view). A
/// value of this type is non-empty, trimmed and free of whitespace and control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageGuid(String);

impl MessageGuid {
    /// Longest GUID accepted; real ones are far shorter.
    const MAX_LEN: usize = 200;

    /// Checks and trims `guid`; a malformed one is a validation error
    /// (`invalidArgument`, `field=messageGuid`) made here, before anything is sent.
    pub fn parse(guid: &str) -> Result<Self> {
        let guid = guid.trim();
        let why = if guid.is_empty() {
            Some("a message guid cannot be empty".to_owned())
        } else if guid.len() > Self::MAX_LEN {
            Some(format!(
                "message guid is longer than {} characters",
                Self::MAX_LEN
            ))
        } else if guid.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some(format!("invalid message guid {guid:?}: it contains spaces"))
        } else {
            None
        };
        match why {
            None => Ok(MessageGuid(guid.to_owned())),
            Some(why) => Err(Error::local(
                ErrorKind::Validation,
                Code::InvalidArgument,
                "invalidArgument",
                why,
            )
            .with_context("field", "messageGuid")),
        }
    }

    /// The GUID as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn from_wire(guid: String) -> Result<Self> {
        MessageGuid::parse(&guid)
            .map_err(|_| Error::malformed(format!("invalid message guid {guid:?}")))
    }
}

impl std::fmt::Display for MessageGuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for MessageGuid {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        MessageGuid::parse(s)
    }
}

impl AsRef<str> for MessageGuid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for MessageGuid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A tapback. Parse one from its name with [`str::parse`]: `love`, `like`, `dislike`,
/// `laugh`, `emphasize`, `question`, or an emoji (`"🎉".parse()`).
///
/// Serializes as `{"kind":"love"}` or `{"kind":"emoji","emoji":"🎉"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reaction {
    /// ❤️
    Love,
    /// 👍
    Like,
    /// 👎
    Dislike,
    /// 😂
    Laugh,
    /// ‼️
    Emphasize,
    /// ❓
    Question,
    /// Any emoji.
    Emoji(String),
    /// A sticker tapback (seen from other servers; imgroups does not place stickers).
    Sticker,
}

impl Reaction {
    /// `love`, `like`, …, `emoji`, `sticker`.
    pub fn kind(&self) -> &'static str {
        self.sdk().kind.as_str()
    }

    /// The SDK-shape view of this tapback.
    fn sdk(&self) -> sdk::Reaction<'_> {
        use sdk::ReactionKind as K;
        let (kind, emoji) = match self {
            Reaction::Love => (K::Love, None),
            Reaction::Like => (K::Like, None),
            Reaction::Dislike => (K::Dislike, None),
            Reaction::Laugh => (K::Laugh, None),
            Reaction::Emphasize => (K::Emphasize, None),
            Reaction::Question => (K::Question, None),
            Reaction::Emoji(emoji) => (K::Emoji, Some(emoji.as_str())),
            Reaction::Sticker => (K::Sticker, None),
        };
        sdk::Reaction { kind, emoji }
    }

    pub(crate) fn to_wire(&self) -> pb::MessageReaction {
        use pb::MessageReactionKind as K;
        let (kind, emoji) = match self {
            Reaction::Love => (K::Love, None),
            Reaction::Like => (K::Like, None),
            Reaction::Dislike => (K::Dislike, None),
            Reaction::Laugh => (K::Laugh, None),
            Reaction::Emphasize => (K::Emphasize, None),
            Reaction::Question => (K::Question, None),
            Reaction::Emoji(emoji) => (K::Emoji, Some(emoji.clone())),
            Reaction::Sticker => (K::Sticker, None),
        };
        pb::MessageReaction {
            kind: kind as i32,
            emoji,
        }
    }

    pub(crate) fn from_wire(r: Option<pb::MessageReaction>) -> Result<Self> {
        use pb::MessageReactionKind as K;
        let r = r.ok_or_else(|| Error::malformed("expected reaction"))?;
        Ok(match K::try_from(r.kind) {
            Ok(K::Love) => Reaction::Love,
            Ok(K::Like) => Reaction::Like,
            Ok(K::Dislike) => Reaction::Dislike,
            Ok(K::Laugh) => Reaction::Laugh,
            Ok(K::Emphasize) => Reaction::Emphasize,
            Ok(K::Question) => Reaction::Question,
            Ok(K::Emoji) => Reaction::Emoji(r.emoji.unwrap_or_default()),
            Ok(K::Sticker) => Reaction::Sticker,
            Err(_) => {
                return Err(Error::malformed(format!(
                    "unknown reaction kind {}",
                    r.kind
                )))
            }
        })
    }
}

impl std::fmt::Display for Reaction {
    /// The name, or the emoji itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reaction::Emoji(emoji) => f.write_str(emoji),
            other => f.write_str(other.kind()),
        }
    }
}

impl std::str::FromStr for Reaction {
    type Err = Error;

    /// A name (`love`, `like`, `dislike`, `laugh`, `emphasize`, `question`, case-blind) or an
    /// emoji. A word that is neither (`lvoe`) is refused rather than sent as an "emoji".
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        Ok(match s.to_ascii_lowercase().as_str() {
            "love" => Reaction::Love,
            "like" => Reaction::Like,
            "dislike" => Reaction::Dislike,
            "laugh" => Reaction::Laugh,
            "emphasize" => Reaction::Emphasize,
            "question" => Reaction::Question,
            "sticker" => Reaction::Sticker,
            _ if !s.is_empty()
                && s.chars().count() <= 16
                && !s
                    .chars()
                    .any(|c| c.is_ascii_alphanumeric() || c.is_whitespace() || c.is_control()) =>
            {
                Reaction::Emoji(s.to_owned())
            }
            _ => {
                return Err(Error::local(
                    ErrorKind::Validation,
                    Code::InvalidArgument,
                    "invalidArgument",
                    format!(
                        "unknown tapback {s:?}: expected love, like, dislike, laugh, \
                         emphasize, question or an emoji"
                    ),
                )
                .with_context("field", "reaction"))
            }
        })
    }
}

impl Serialize for Reaction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.sdk().serialize(s)
    }
}

/// A styled span of a message's text; `start` and `length` count UTF-16 code units.
/// Serializes in the SDK shape ([`imgroups_proto::sdk::TextFormat`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextFormat {
    /// The style, e.g. `bold`, `italic`, `underline`, `strikethrough`.
    pub style: String,
    /// First UTF-16 code unit.
    pub start: u32,
    /// Length in UTF-16 code units.
    pub length: u32,
    /// A text effect's name, if any.
    pub effect_name: Option<String>,
}

impl Serialize for TextFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.sdk().serialize(s)
    }
}

impl TextFormat {
    /// `style` over `length` UTF-16 code units from `start`.
    pub fn new(style: impl Into<String>, start: u32, length: u32) -> Self {
        TextFormat {
            style: style.into(),
            start,
            length,
            effect_name: None,
        }
    }

    /// The SDK-shape view of this span.
    fn sdk(&self) -> sdk::TextFormat<'_> {
        sdk::TextFormat {
            style: &self.style,
            start: self.start,
            length: self.length,
            effect_name: self.effect_name.as_deref(),
        }
    }

    pub(crate) fn to_wire(&self) -> pb::TextFormat {
        pb::TextFormat {
            r#type: self.style.clone(),
            start: i32::try_from(self.start).unwrap_or(i32::MAX),
            length: i32::try_from(self.length).unwrap_or(i32::MAX),
            effect_name: self.effect_name.clone(),
        }
    }

    fn from_wire(f: pb::TextFormat) -> Self {
        TextFormat {
            style: f.r#type,
            start: u32::try_from(f.start).unwrap_or(0),
            length: u32::try_from(f.length).unwrap_or(0),
            effect_name: f.effect_name,
        }
    }
}

/// A tapback on a message now. Serializes in the SDK shape
/// ([`imgroups_proto::sdk::AppliedReaction`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedReaction {
    /// The tapback.
    pub reaction: Reaction,
    /// Who put it there; absent when it is the calling account's.
    pub sender: Option<Participant>,
    /// Whether the calling account put it there.
    pub is_from_me: bool,
    /// When.
    pub date_created: SystemTime,
}

impl AppliedReaction {
    /// The SDK-shape view of this tapback.
    fn sdk(&self) -> sdk::AppliedReaction<'_> {
        sdk::AppliedReaction {
            reaction: self.reaction.sdk(),
            sender: self.sender.as_ref().map(Participant::sdk),
            is_from_me: self.is_from_me,
            date_created: sdk_time(self.date_created),
        }
    }
}

impl Serialize for AppliedReaction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.sdk().serialize(s)
    }
}

/// A message as the calling account sees it. Serializes in the shape of
/// [`imgroups_proto::sdk::Message`] (`text` at the top, as `imgroups messages get --json` prints
/// it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message's GUID, the same in every member's view.
    pub guid: MessageGuid,
    /// The text; absent once unsent.
    pub text: Option<String>,
    /// The subject line, if any.
    pub subject: Option<String>,
    /// Styled spans of the text.
    pub formatting: Vec<TextFormat>,
    /// The bubble or screen effect it was sent with.
    pub effect_id: Option<String>,
    /// The message this one answers.
    pub reply_to: Option<MessageGuid>,
    /// Who sent it; absent for the calling account's own messages.
    pub sender: Option<Participant>,
    /// Whether the calling account sent it.
    pub is_from_me: bool,
    /// Whether it was sent (not only queued).
    pub is_sent: bool,
    /// Whether it reached the other side.
    pub is_delivered: bool,
    /// When the message was created.
    pub date_created: SystemTime,
    /// When it was delivered.
    pub date_delivered: Option<SystemTime>,
    /// When it was read: by this account (incoming), or by the other side of a direct chat
    /// (the account's own).
    pub date_read: Option<SystemTime>,
    /// When it was last edited.
    pub date_edited: Option<SystemTime>,
    /// When it was unsent.
    pub date_retracted: Option<SystemTime>,
    /// Its tapbacks now, at most one per person.
    pub reactions: Vec<AppliedReaction>,
    /// The chats it is in, as the calling account sees them.
    pub chat_guids: Vec<ChatGuid>,
}

impl Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.sdk().serialize(s)
    }
}

impl Message {
    /// The SDK-shape view of this message.
    fn sdk(&self) -> sdk::Message<'_> {
        sdk::Message {
            guid: self.guid.as_str(),
            text: self.text.as_deref(),
            subject: self.subject.as_deref(),
            formatting: self.formatting.iter().map(TextFormat::sdk).collect(),
            effect_id: self.effect_id.as_deref(),
            reply_to: self.reply_to.as_ref().map(MessageGuid::as_str),
            sender: self.sender.as_ref().map(Participant::sdk),
            is_from_me: self.is_from_me,
            is_sent: self.is_sent,
            is_delivered: self.is_delivered,
            date_created: sdk_time(self.date_created),
            date_delivered: self.date_delivered.map(sdk_time),
            date_read: self.date_read.map(sdk_time),
            date_edited: self.date_edited.map(sdk_time),
            date_retracted: self.date_retracted.map(sdk_time),
            reactions: self.reactions.iter().map(AppliedReaction::sdk).collect(),
            chat_guids: self
                .chat_guids
                .iter()
                .map(|g| std::borrow::Cow::Owned(String::from(g)))
                .collect(),
        }
    }

    /// Whether its sender took it back ([`Messages::unsend`](crate::Messages::unsend)).
    pub fn is_unsent(&self) -> bool {
        self.date_retracted.is_some()
    }

    /// The chat it is in (the first of [`chat_guids`](Self::chat_guids)).
    pub fn chat_guid(&self) -> Option<&ChatGuid> {
        self.chat_guids.first()
    }

    pub(crate) fn from_wire(m: pb::Message) -> Result<Self> {
        let content = m
            .content
            .ok_or_else(|| Error::malformed("expected content in message"))?;
        let opt_time =
            |t: Option<Timestamp>, field: &str| t.map(|t| time(Some(t), field)).transpose();
        Ok(Message {
            guid: MessageGuid::from_wire(m.guid)?,
            // An unsent message arrives with empty content.
            text: content
                .text
                .filter(|t| !t.is_empty() || m.date_retracted.is_none()),
            subject: m.subject,
            formatting: content
                .formatting
                .into_iter()
                .map(TextFormat::from_wire)
                .collect(),
            effect_id: content.expressive_send_style_id,
            reply_to: m
                .reply_target_guid
                .filter(|g| !g.is_empty())
                .map(MessageGuid::from_wire)
                .transpose()?,
            sender: m.sender.map(Participant::from_wire).transpose()?,
            is_from_me: m.is_from_me,
            is_sent: m.is_sent,
            is_delivered: m.is_delivered,
            date_created: time(m.date_created, "dateCreated")?,
            date_delivered: opt_time(m.date_delivered, "dateDelivered")?,
            date_read: opt_time(m.date_read, "dateRead")?,
            date_edited: opt_time(m.date_edited, "dateEdited")?,
            date_retracted: opt_time(m.date_retracted, "dateRetracted")?,
            reactions: m
                .applied_reactions
                .into_iter()
                .map(|r| {
                    Ok(AppliedReaction {
                        reaction: Reaction::from_wire(r.reaction)?,
                        sender: r.sender.map(Participant::from_wire).transpose()?,
                        is_from_me: r.is_from_me,
                        date_created: time(r.date_created, "dateCreated")?,
                    })
                })
                .collect::<Result<_>>()?,
            chat_guids: m
                .chat_guids
                .iter()
                .map(|g| parse_guid(g))
                .collect::<Result<_>>()?,
        })
    }
}

/// One page of messages, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    /// The messages of this page, newest first.
    pub messages: Vec<Message>,
    /// Pass it as `page_token` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// What an address is known to be reachable on ([`Addresses::info`](crate::Addresses::info)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressInfo {
    /// The address as the server normalised it.
    pub address: String,
    /// The services it was seen on (iMessage, SMS, RCS order); empty when unreachable.
    pub services: Vec<Service>,
    /// Its region (ISO 3166-1 alpha-2), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// What [`Chats::create`](crate::Chats::create) returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateChatResult {
    /// The chat created (or the existing one with the same people).
    pub chat: Chat,
    /// The first message, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_message: Option<Message>,
}

/// One durable change with its place in the account's event log. `C` is what changed: a
/// [`GroupChange`] ([`GroupEvent`]), a [`MessageChange`] ([`MessageEvent`]), a
/// [`ChatChange`] ([`ChatEvent`]), or any of them ([`Change`], the default: what a catch-up
/// or a [`Resumable`](crate::Resumable) delivers).
///
/// Every event serializes in the official SDK's event shape ([`imgroups_proto::sdk`], the
/// shape the server's console shows too): a group event like its `GroupEvent`,
/// `{"type":"group.changed","sequence":7,"chatGuid":"any;+;chat…","occurredAt":"…Z",
/// "isFromMe":true,"actor":{…},"change":{"type":"participantAdded","participant":{…}}}`;
/// message and chat events like its `MessageEvent` and `ChatEvent`, the change's fields
/// beside the envelope: `{"type":"message.received","sequence":8,"chatGuid":…,
/// "occurredAt":…,"isFromMe":…,"actor":…,"message":{…}}` (the message as [`Message`]
/// serializes), `{"type":"message.edited",…,"messageGuid":…,"content":{"text":…,
/// "formatting":[…]},"editedAt":…}`, `{"type":"message.reactionAdded",…,"messageGuid":…,
/// "reaction":{"kind":"love"}}`, `{"type":"chat.markedRead",…}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<C = Change> {
    /// Position in the account's log: 1, 2, 3, … with no gaps across all of its events.
    pub sequence: u64,
    /// The chat the change happened in.
    pub chat_guid: ChatGuid,
    /// When the change was committed.
    pub occurred_at: SystemTime,
    /// Whether the calling account (from any of its devices) made the change.
    pub is_from_me: bool,
    /// Who made the change, where it can be named.
    pub actor: Option<Participant>,
    /// What changed.
    pub change: C,
}

/// A change to a group ([`Groups::subscribe_events`](crate::Groups::subscribe_events)).
pub type GroupEvent = Event<GroupChange>;
/// A message sent, changed or read ([`Messages::subscribe`](crate::Messages::subscribe)).
pub type MessageEvent = Event<MessageChange>;
/// A change to a chat as a whole ([`Chats::subscribe_events`](crate::Chats::subscribe_events)).
pub type ChatEvent = Event<ChatChange>;

impl<C> Event<C> {
    /// The same event with its change mapped.
    fn map_change<D>(self, f: impl FnOnce(C) -> D) -> Event<D> {
        Event {
            sequence: self.sequence,
            chat_guid: self.chat_guid,
            occurred_at: self.occurred_at,
            is_from_me: self.is_from_me,
            actor: self.actor,
            change: f(self.change),
        }
    }

    /// The official SDK's `GroupEvent` view of this envelope with a group `change`.
    fn sdk_group<'a>(&'a self, chat_guid: &'a str, change: &'a GroupChange) -> sdk::GroupEvent<'a> {
        sdk::GroupEvent {
            sequence: self.sequence,
            chat_guid,
            occurred_at: sdk_time(self.occurred_at),
            is_from_me: self.is_from_me,
            actor: self.actor.as_ref().map(Participant::sdk),
            change: change.sdk(),
        }
    }

    /// The official SDK's `MessageEvent` view of this envelope with a message `change`.
    fn sdk_message<'a>(
        &'a self,
        chat_guid: &'a str,
        change: &'a MessageChange,
    ) -> sdk::MessageEvent<'a> {
        sdk::MessageEvent {
            sequence: self.sequence,
            chat_guid,
            occurred_at: sdk_time(self.occurred_at),
            is_from_me: self.is_from_me,
            actor: self.actor.as_ref().map(Participant::sdk),
            change: change.sdk(),
        }
    }

    /// The official SDK's `ChatEvent` view of this envelope with a chat `change`.
    fn sdk_chat<'a>(&'a self, chat_guid: &'a str, change: &ChatChange) -> sdk::ChatEvent<'a> {
        sdk::ChatEvent {
            sequence: self.sequence,
            chat_guid,
            occurred_at: sdk_time(self.occurred_at),
            is_from_me: self.is_from_me,
            actor: self.actor.as_ref().map(Participant::sdk),
            change: change.sdk(),
        }
    }

    /// The envelope of a wire event.
    fn envelope(
        sequence: u64,
        chat_guid: &str,
        occurred_at: Option<Timestamp>,
        is_from_me: bool,
        actor: Option<pb::SingleServiceAddressInfo>,
        change: C,
    ) -> Result<Self> {
        Ok(Event {
            sequence,
            chat_guid: parse_guid(chat_guid)?,
            occurred_at: time(occurred_at, "occurredAt")?,
            is_from_me,
            actor: actor.map(Participant::from_wire).transpose()?,
            change,
        })
    }

    /// `#7 2025-01-02T03:04:05.000Z any;+;chat… <what><detail> by …`.
    fn line(&self, what: &str, detail: &str) -> String {
        let by = match (&self.actor, self.is_from_me) {
            (_, true) => " by me".to_owned(),
            (Some(actor), false) => format!(" by {}", actor.address),
            (None, false) => String::new(),
        };
        format!(
            "#{} {} {} {what}{detail}{by}",
            self.sequence,
            rfc3339(self.occurred_at),
            self.chat_guid,
        )
    }
}

impl From<GroupEvent> for Event {
    fn from(e: GroupEvent) -> Self {
        e.map_change(Change::Group)
    }
}

impl From<MessageEvent> for Event {
    fn from(e: MessageEvent) -> Self {
        e.map_change(Change::Message)
    }
}

impl From<ChatEvent> for Event {
    fn from(e: ChatEvent) -> Self {
        e.map_change(Change::Chat)
    }
}

/// What an [`Event`] of any kind carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// A change to a group.
    Group(GroupChange),
    /// A message sent, changed or read.
    Message(MessageChange),
    /// A change to a chat as a whole.
    Chat(ChatChange),
}

impl Event {
    /// The event's type: `group.changed`, `message.received`, `chat.markedRead`, …
    pub fn event_type(&self) -> &'static str {
        match &self.change {
            Change::Group(_) => GroupEvent::TYPE,
            Change::Message(change) => change.event_type(),
            Change::Chat(change) => change.event_type(),
        }
    }

    /// One human-readable line, as [`GroupEvent::to_line`] and [`MessageEvent::to_line`].
    pub fn to_line(&self) -> String {
        match &self.change {
            Change::Group(c) => self.line(c.type_name(), &group_detail(c)),
            Change::Message(c) => self.line(c.event_type(), &c.detail()),
            Change::Chat(c) => self.line(c.event_type(), ""),
        }
    }

    /// The JSON shape (see [`Event`]), as one compact line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The catch-up frame this event is.
    pub(crate) fn into_catch_up(self) -> CatchUpEvent {
        let Event {
            sequence,
            chat_guid,
            occurred_at,
            is_from_me,
            actor,
            change,
        } = self;
        let envelope = Event {
            sequence,
            chat_guid,
            occurred_at,
            is_from_me,
            actor,
            change: (),
        };
        match change {
            Change::Group(c) => CatchUpEvent::Group(envelope.map_change(|()| c)),
            Change::Message(c) => CatchUpEvent::Message(envelope.map_change(|()| c)),
            Change::Chat(c) => CatchUpEvent::Chat(envelope.map_change(|()| c)),
        }
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let chat_guid = String::from(&self.chat_guid);
        match &self.change {
            Change::Group(c) => self.sdk_group(&chat_guid, c).serialize(s),
            Change::Message(c) => self.sdk_message(&chat_guid, c).serialize(s),
            Change::Chat(c) => self.sdk_chat(&chat_guid, c).serialize(s),
        }
    }
}

/// The change a [`GroupEvent`] carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupChange {
    /// The group was renamed.
    DisplayNameChanged {
        /// The new name.
        display_name: String,
    },
    /// `participant` joined; the event's `actor` added them.
    ParticipantAdded {
        /// Who joined.
        participant: Participant,
    },
    /// `participant` was removed by the event's `actor`.
    ParticipantRemoved {
        /// Who was removed.
        participant: Participant,
    },
    /// `participant` left by themselves (actor = participant).
    ParticipantLeft {
        /// Who left.
        participant: Participant,
    },
    /// Fetch the new bytes with [`Groups::get_icon`](crate::Groups::get_icon).
    IconChanged,
    /// The group icon was removed.
    IconRemoved,
}

impl GroupChange {
    /// The SDK's `change.type`: `displayNameChanged`, `participantAdded`, …
    pub fn type_name(&self) -> &'static str {
        self.sdk().type_name()
    }

    /// The SDK-shape view of this change.
    fn sdk(&self) -> sdk::GroupChange<'_> {
        match self {
            GroupChange::DisplayNameChanged { display_name } => {
                sdk::GroupChange::DisplayNameChanged { display_name }
            }
            GroupChange::ParticipantAdded { participant } => sdk::GroupChange::ParticipantAdded {
                participant: participant.sdk(),
            },
            GroupChange::ParticipantRemoved { participant } => {
                sdk::GroupChange::ParticipantRemoved {
                    participant: participant.sdk(),
                }
            }
            GroupChange::ParticipantLeft { participant } => sdk::GroupChange::ParticipantLeft {
                participant: participant.sdk(),
            },
            GroupChange::IconChanged => sdk::GroupChange::IconChanged,
            GroupChange::IconRemoved => sdk::GroupChange::IconRemoved,
        }
    }
}

impl Serialize for GroupChange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.sdk().serialize(s)
    }
}

impl Serialize for GroupEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.sdk_group(&String::from(&self.chat_guid), &self.change)
            .serialize(s)
    }
}

impl GroupEvent {
    /// The SDK's event `type`.
    pub const TYPE: &'static str = sdk::GroupEvent::TYPE;

    /// Maps a wire event; `Ok(None)` for a change variant this SDK does not know (skipped, as
    /// the official SDK does, so newer servers stay compatible).
    pub(crate) fn from_wire(sequence: u64, e: pb::GroupChangeEvent) -> Result<Option<Self>> {
        use pb::group_change_event::Change as C;
        let participant = |p: Option<pb::SingleServiceAddressInfo>| {
            p.ok_or_else(|| Error::malformed("expected participant in group change"))
                .and_then(Participant::from_wire)
        };
        let change = match e.change {
            Some(C::DisplayNameChanged(c)) => GroupChange::DisplayNameChanged {
                display_name: c.display_name,
            },
            Some(C::ParticipantAdded(c)) => GroupChange::ParticipantAdded {
                participant: participant(c.participant)?,
            },
            Some(C::ParticipantRemoved(c)) => GroupChange::ParticipantRemoved {
                participant: participant(c.participant)?,
            },
            Some(C::ParticipantLeft(c)) => GroupChange::ParticipantLeft {
                participant: participant(c.participant)?,
            },
            Some(C::IconChanged(_)) => GroupChange::IconChanged,
            Some(C::IconRemoved(_)) => GroupChange::IconRemoved,
            None => return Ok(None),
        };
        Event::envelope(
            sequence,
            &e.chat_guid,
            e.occurred_at,
            e.is_from_me,
            e.actor,
            change,
        )
        .map(Some)
    }

    /// One human-readable line, e.g.
    /// `#7 2025-01-02T03:04:05.000Z any;+;chat… participantAdded bob@example.com by me`.
    pub fn to_line(&self) -> String {
        self.line(self.change.type_name(), &group_detail(&self.change))
    }

    /// The SDK's JSON shape, as one compact line.
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One frame of a catch-up replay.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CatchUpEvent {
    /// A group event from the log.
    Group(GroupEvent),
    /// A message event from the log.
    Message(MessageEvent),
    /// A chat event from the log.
    Chat(ChatEvent),
    /// The replay is complete: every event up to `head_sequence` was sent (`catchup.complete`).
    Complete {
        /// The log's last sequence when the replay started.
        head_sequence: u64,
    },
}

/// What a group event's line says after its type.
fn group_detail(change: &GroupChange) -> String {
    match change {
        GroupChange::DisplayNameChanged { display_name } => format!(" {display_name:?}"),
        GroupChange::ParticipantAdded { participant }
        | GroupChange::ParticipantRemoved { participant }
        | GroupChange::ParticipantLeft { participant } => format!(" {}", participant.address),
        GroupChange::IconChanged | GroupChange::IconRemoved => String::new(),
    }
}

/// The change a [`MessageEvent`] carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageChange {
    /// A message arrived in the chat, or was sent from this account (`is_from_me`).
    Received {
        /// The message as stored when it was sent.
        message: Box<Message>,
    },
    /// A message was edited by its sender.
    Edited {
        /// The message edited.
        message_guid: MessageGuid,
        /// The text after the edit.
        text: Option<String>,
        /// The formatting after the edit.
        formatting: Vec<TextFormat>,
        /// When it was edited.
        edited_at: SystemTime,
    },
    /// A message was unsent by its sender.
    Unsent {
        /// The message unsent.
        message_guid: MessageGuid,
        /// When it was unsent.
        retracted_at: SystemTime,
    },
    /// One of this account's messages was read by the other side of a direct chat.
    Read {
        /// The message read.
        message_guid: MessageGuid,
        /// When it was read.
        read_at: SystemTime,
    },
    /// The event's actor put a tapback on a message.
    ReactionAdded {
        /// The message reacted to.
        message_guid: MessageGuid,
        /// The tapback.
        reaction: Reaction,
    },
    /// The event's actor took a tapback off a message.
    ReactionRemoved {
        /// The message.
        message_guid: MessageGuid,
        /// The tapback taken off.
        reaction: Reaction,
    },
}

impl MessageChange {
    /// The event type: `message.received`, `message.edited`, `message.unsent`,
    /// `message.read`, `message.reactionAdded` or `message.reactionRemoved`.
    pub fn event_type(&self) -> &'static str {
        use sdk::MessageChangeKind as K;
        match self {
            MessageChange::Received { .. } => K::Received,
            MessageChange::Edited { .. } => K::Edited,
            MessageChange::Unsent { .. } => K::Unsent,
            MessageChange::Read { .. } => K::Read,
            MessageChange::ReactionAdded { .. } => K::ReactionAdded,
            MessageChange::ReactionRemoved { .. } => K::ReactionRemoved,
        }
        .type_name()
    }

    /// The GUID of the message the change is about.
    pub fn message_guid(&self) -> &MessageGuid {
        match self {
            MessageChange::Received { message } => &message.guid,
            MessageChange::Edited { message_guid, .. }
            | MessageChange::Unsent { message_guid, .. }
            | MessageChange::Read { message_guid, .. }
            | MessageChange::ReactionAdded { message_guid, .. }
            | MessageChange::ReactionRemoved { message_guid, .. } => message_guid,
        }
    }

    fn detail(&self) -> String {
        let guid = self.message_guid();
        match self {
            MessageChange::Received { message } => {
                format!(" {guid} {:?}", message.text.as_deref().unwrap_or_default())
            }
            MessageChange::Edited { text, .. } => {
                format!(" {guid} {:?}", text.as_deref().unwrap_or_default())
            }
            MessageChange::ReactionAdded { reaction, .. }
            | MessageChange::ReactionRemoved { reaction, .. } => format!(" {guid} {reaction}"),
            MessageChange::Unsent { .. } | MessageChange::Read { .. } => format!(" {guid}"),
        }
    }

    /// The SDK-shape view of this change.
    fn sdk(&self) -> sdk::MessageChange<'_> {
        match self {
            MessageChange::Received { message } => sdk::MessageChange::Received {
                message: Box::new(message.sdk()),
            },
            MessageChange::Edited {
                message_guid,
                text,
                formatting,
                edited_at,
            } => sdk::MessageChange::Edited {
                message_guid: message_guid.as_str(),
                content: sdk::MessageContent {
                    text: text.as_deref(),
                    formatting: formatting.iter().map(TextFormat::sdk).collect(),
                },
                edited_at: sdk_time(*edited_at),
            },
            MessageChange::Unsent {
                message_guid,
                retracted_at,
            } => sdk::MessageChange::Unsent {
                message_guid: message_guid.as_str(),
                retracted_at: sdk_time(*retracted_at),
            },
            MessageChange::Read {
                message_guid,
                read_at,
            } => sdk::MessageChange::Read {
                message_guid: message_guid.as_str(),
                read_at: sdk_time(*read_at),
            },
            MessageChange::ReactionAdded {
                message_guid,
                reaction,
            } => sdk::MessageChange::ReactionAdded {
                message_guid: message_guid.as_str(),
                reaction: reaction.sdk(),
            },
            MessageChange::ReactionRemoved {
                message_guid,
                reaction,
            } => sdk::MessageChange::ReactionRemoved {
                message_guid: message_guid.as_str(),
                reaction: reaction.sdk(),
            },
        }
    }
}

impl MessageEvent {
    /// Maps a wire event; `Ok(None)` for a change this SDK does not know (a sticker placed,
    /// or a variant added later), which is skipped.
    pub(crate) fn from_wire(sequence: u64, e: pb::MessageChangeEvent) -> Result<Option<Self>> {
        use pb::message_change_event::Change as C;
        let guid = MessageGuid::from_wire;
        let change = match e.change {
            Some(C::MessageReceived(c)) => MessageChange::Received {
                message: Box::new(Message::from_wire(c.message.ok_or_else(|| {
                    Error::malformed("expected message in message.received")
                })?)?),
            },
            Some(C::MessageEdited(c)) => {
                let content = c.content.unwrap_or_default();
                MessageChange::Edited {
                    message_guid: guid(c.message_guid)?,
                    text: content.text,
                    formatting: content
                        .formatting
                        .into_iter()
                        .map(TextFormat::from_wire)
                        .collect(),
                    edited_at: time(c.edited_at, "editedAt")?,
                }
            }
            Some(C::MessageUnsent(c)) => MessageChange::Unsent {
                message_guid: guid(c.message_guid)?,
                retracted_at: time(c.retracted_at, "retractedAt")?,
            },
            Some(C::MessageRead(c)) => MessageChange::Read {
                message_guid: guid(c.message_guid)?,
                read_at: time(c.read_at, "readAt")?,
            },
            Some(C::ReactionAdded(c)) => MessageChange::ReactionAdded {
                message_guid: guid(c.message_guid)?,
                reaction: Reaction::from_wire(c.reaction)?,
            },
            Some(C::ReactionRemoved(c)) => MessageChange::ReactionRemoved {
                message_guid: guid(c.message_guid)?,
                reaction: Reaction::from_wire(c.reaction)?,
            },
            Some(C::StickerPlaced(_)) | None => return Ok(None),
        };
        Event::envelope(
            sequence,
            &e.chat_guid,
            e.occurred_at,
            e.is_from_me,
            e.actor,
            change,
        )
        .map(Some)
    }

    /// One human-readable line, e.g.
    /// `#8 2025-01-02T03:04:05.000Z any;+;chat… message.received 8C1F… "hi" by bob@example.com`.
    pub fn to_line(&self) -> String {
        self.line(self.change.event_type(), &self.change.detail())
    }

    /// The JSON shape (see [`Event`]), as one compact line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Serialize for MessageEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.sdk_message(&String::from(&self.chat_guid), &self.change)
            .serialize(s)
    }
}

/// The change a [`ChatEvent`] carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChatChange {
    /// The account marked the chat read (from any of its devices).
    MarkedRead,
    /// The chat's background was set.
    BackgroundChanged,
    /// The chat's background was removed.
    BackgroundRemoved,
    /// The account archived the chat.
    Archived,
    /// The account unarchived the chat.
    Unarchived,
}

impl ChatChange {
    /// The event type: `chat.markedRead`, `chat.backgroundChanged`, …
    pub fn event_type(&self) -> &'static str {
        self.sdk().type_name()
    }

    /// The SDK-shape view of this change.
    fn sdk(&self) -> sdk::ChatChange {
        match self {
            ChatChange::MarkedRead => sdk::ChatChange::MarkedRead,
            ChatChange::BackgroundChanged => sdk::ChatChange::BackgroundChanged,
            ChatChange::BackgroundRemoved => sdk::ChatChange::BackgroundRemoved,
            ChatChange::Archived => sdk::ChatChange::Archived,
            ChatChange::Unarchived => sdk::ChatChange::Unarchived,
        }
    }
}

impl ChatEvent {
    /// Maps a wire event; `Ok(None)` for a change this SDK does not know.
    pub(crate) fn from_wire(sequence: u64, e: pb::ChatChangeEvent) -> Result<Option<Self>> {
        use pb::chat_change_event::Change as C;
        let change = match e.change {
            Some(C::MarkedRead(_)) => ChatChange::MarkedRead,
            Some(C::BackgroundChanged(_)) => ChatChange::BackgroundChanged,
            Some(C::BackgroundRemoved(_)) => ChatChange::BackgroundRemoved,
            Some(C::Archived(_)) => ChatChange::Archived,
            Some(C::Unarchived(_)) => ChatChange::Unarchived,
            None => return Ok(None),
        };
        Event::envelope(
            sequence,
            &e.chat_guid,
            e.occurred_at,
            e.is_from_me,
            e.actor,
            change,
        )
        .map(Some)
    }

    /// One human-readable line, e.g. `#9 2025-01-02T03:04:05.000Z any;-;bob@… chat.markedRead by me`.
    pub fn to_line(&self) -> String {
        self.line(self.change.event_type(), "")
    }

    /// The JSON shape (see [`Event`]), as one compact line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Serialize for ChatEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.sdk_chat(&String::from(&self.chat_guid), &self.change)
            .serialize(s)
    }
}

pub(crate) fn parse_guid(guid: &str) -> Result<ChatGuid> {
    ChatGuid::parse(guid).map_err(|_| Error::malformed(format!("invalid chat guid {guid:?}")))
}

fn time(t: Option<Timestamp>, field: &str) -> Result<SystemTime> {
    let t = t.ok_or_else(|| Error::malformed(format!("expected {field}")))?;
    let nanos = u32::try_from(t.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| Error::malformed(format!("invalid {field}")))?;
    let secs = Duration::from_secs(t.seconds.unsigned_abs());
    let at = if t.seconds >= 0 {
        UNIX_EPOCH.checked_add(secs)
    } else {
        UNIX_EPOCH.checked_sub(secs)
    };
    at.and_then(|at| at.checked_add(Duration::from_nanos(u64::from(nanos))))
        .ok_or_else(|| Error::malformed(format!("invalid {field}")))
}

fn display<T: std::fmt::Display, S: serde::Serializer>(
    value: &T,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// A time as the SDK shape shows it. Before 1970 only whole seconds are kept, rounded towards
/// the epoch (nobody's group changed then).
fn sdk_time(t: SystemTime) -> sdk::Time {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => sdk::Time {
            seconds: d.as_secs() as i64,
            millis: d.subsec_millis(),
        },
        Err(e) => sdk::Time {
            seconds: -(e.duration().as_secs() as i64),
            millis: 0,
        },
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC (millisecond precision, like a JS `Date`).
pub fn rfc3339(t: SystemTime) -> String {
    sdk_time(t).rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc_millis() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_735_787_045_123);
        assert_eq!(rfc3339(t), "2025-01-02T03:04:05.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn events_serialize_in_the_sdk_shape() {
        let event = GroupEvent {
            sequence: 7,
            chat_guid: ChatGuid::group("chat1"),
            occurred_at: UNIX_EPOCH,
            is_from_me: false,
            actor: Some(Participant {
                address: Address::parse("a@example.com").unwrap(),
                service: Service::IMessage,
                country: None,
            }),
            change: GroupChange::DisplayNameChanged {
                display_name: "Weekend".into(),
            },
        };
        let json: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "group.changed",
                "sequence": 7,
                "chatGuid": "any;+;chat1",
                "occurredAt": "1970-01-01T00:00:00.000Z",
                "isFromMe": false,
                "actor": {"address": "a@example.com", "service": "iMessage"},
                "change": {"type": "displayNameChanged", "displayName": "Weekend"}
            })
        );
        assert_eq!(
            event.to_line(),
            "#7 1970-01-01T00:00:00.000Z any;+;chat1 displayNameChanged \"Weekend\" by a@example.com"
        );
    }

    /// The Rust SDK's events serialize exactly as the shared views of their wire events do
    /// (what the server's console shows): one shape, made in `imgroups_proto::sdk`.
    #[test]
    fn message_and_chat_events_serialize_as_the_shared_views() {
        use pb::message_change_event::Change as C;
        let at = |seconds| Some(Timestamp { seconds, nanos: 0 });
        let bob = || pb::SingleServiceAddressInfo {
            address: "bob@example.com".into(),
            service: pb::ChatServiceType::Imessage as i32,
            country: None,
        };
        let event = |change| pb::MessageChangeEvent {
            chat_guid: "any;+;chat1".into(),
            occurred_at: at(1),
            actor: Some(bob()),
            is_from_me: false,
            change: Some(change),
        };
        let emoji = Some(pb::MessageReaction {
            kind: pb::MessageReactionKind::Emoji as i32,
            emoji: Some("🎉".into()),
        });
        let wire = [
            event(C::MessageReceived(pb::MessageReceived {
                message: Some(pb::Message {
                    guid: "G1".into(),
                    content: Some(pb::MessageContent {
                        text: Some("Yes!".into()),
                        ..Default::default()
                    }),
                    date_created: at(1),
                    sender: Some(bob()),
                    is_sent: true,
                    reply_target_guid: Some("G0".into()),
                    applied_reactions: vec![pb::MessageAppliedReaction {
                        message_guid: "G1".into(),
                        target_part_index: None,
                        reaction: emoji.clone(),
                        sender: Some(bob()),
                        is_from_me: false,
                        date_created: at(2),
                    }],
                    chat_guids: vec!["any;+;chat1".into()],
                    ..Default::default()
                }),
            })),
            event(C::MessageEdited(pb::MessageEdited {
                message_guid: "G1".into(),
                content: Some(pb::MessageContent {
                    text: Some("Yes!!".into()),
                    formatting: vec![TextFormat::new("bold", 0, 3).to_wire()],
                    ..Default::default()
                }),
                edited_at: at(3),
            })),
            event(C::MessageUnsent(pb::MessageUnsent {
                message_guid: "G1".into(),
                retracted_at: at(4),
            })),
            event(C::MessageRead(pb::MessageRead {
                message_guid: "G1".into(),
                read_at: at(5),
            })),
            event(C::ReactionAdded(pb::MessageReactionAdded {
                message_guid: "G1".into(),
                target_part_index: None,
                reaction: emoji.clone(),
            })),
            event(C::ReactionRemoved(pb::MessageReactionRemoved {
                message_guid: "G1".into(),
                target_part_index: None,
                reaction: Some(Reaction::Love.to_wire()),
            })),
        ];
        for (n, e) in wire.into_iter().enumerate() {
            let sequence = n as u64 + 1;
            let view = serde_json::to_string(&sdk::MessageEvent::from_wire(sequence, &e).unwrap())
                .unwrap();
            let ours = MessageEvent::from_wire(sequence, e).unwrap().unwrap();
            assert_eq!(ours.to_json(), view, "{}", ours.change.event_type());
            assert_eq!(Event::<Change>::from(ours).to_json(), view);
        }

        let chat = pb::ChatChangeEvent {
            chat_guid: "any;-;bob@example.com".into(),
            occurred_at: at(6),
            actor: None,
            is_from_me: true,
            change: Some(pb::chat_change_event::Change::MarkedRead(
                pb::ChatMarkedRead {},
            )),
        };
        let view = serde_json::to_string(&sdk::ChatEvent::from_wire(9, &chat).unwrap()).unwrap();
        let ours = ChatEvent::from_wire(9, chat).unwrap().unwrap();
        assert_eq!(
            ours.to_json(),
            r#"{"type":"chat.markedRead","sequence":9,"chatGuid":"any;-;bob@example.com","occurredAt":"1970-01-01T00:00:06.000Z","isFromMe":true}"#
        );
        assert_eq!(ours.to_json(), view);
        assert_eq!(Event::<Change>::from(ours).to_json(), view);
    }

    /// `events tail --json` keeps the names it had for a received message: the message's
    /// `text` and `replyTo` at its top, as `messages get --json` prints a message.
    #[test]
    fn a_received_message_keeps_its_field_names() {
        let message = Message {
            guid: MessageGuid::parse("G1").unwrap(),
            text: Some("Yes!".into()),
            subject: None,
            formatting: vec![],
            effect_id: None,
            reply_to: Some(MessageGuid::parse("G0").unwrap()),
            sender: None,
            is_from_me: true,
            is_sent: true,
            is_delivered: true,
            date_created: UNIX_EPOCH,
            date_delivered: None,
            date_read: None,
            date_edited: None,
            date_retracted: None,
            reactions: vec![],
            chat_guids: vec![ChatGuid::group("chat1")],
        };
        let event = MessageEvent {
            sequence: 8,
            chat_guid: ChatGuid::group("chat1"),
            occurred_at: UNIX_EPOCH,
            is_from_me: true,
            actor: None,
            change: MessageChange::Received {
                message: Box::new(message),
            },
        };
        let json: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "message.received", "sequence": 8, "chatGuid": "any;+;chat1",
                "occurredAt": "1970-01-01T00:00:00.000Z", "isFromMe": true,
                "message": {
                    "guid": "G1", "text": "Yes!", "replyTo": "G0", "isFromMe": true,
                    "isSent": true, "isDelivered": true,
                    "dateCreated": "1970-01-01T00:00:00.000Z", "chatGuids": ["any;+;chat1"],
                }
            })
        );
    }
}
