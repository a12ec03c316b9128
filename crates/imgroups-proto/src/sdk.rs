//! The SDK shape of events: the JSON of the official TypeScript SDK's `GroupEvent`,
//! `MessageEvent` and `ChatEvent` (`type` tags, camelCase names, RFC 3339 times with
//! milliseconds, `iMessage`/`SMS`/`RCS`), one object per event with the change's fields
//! beside the envelope (`type`, `sequence`, `chatGuid`, `occurredAt`, `isFromMe`, `actor`).
//!
//! It is defined here once and used by everything that shows events to people: the server's
//! web console (and `imgroups sim expect --json`) and the Rust SDK, whose events, messages,
//! tapbacks and formatting serialize through these views, so `imgroups events tail --json`
//! prints this too. The other documented event shape, the proto3 JSON of the protocol's
//! `*ChangeEvent` messages that SSE and webhooks send, is the server's (`wire::event_json`).
//!
//! One part differs from the official SDK on purpose: a `message.received` event's `message`
//! is the Rust SDK's [`Message`] (`text`, `formatting`, `effectId`, `replyTo`, `reactions` at
//! its top level, as `imgroups messages get --json` prints it), where the official SDK's
//! `Message` nests the text in `content` and says `replyTargetGuid` and `appliedReactions`.
//! A `message.edited` event's `content` is nested as the official SDK has it.
//!
//! The types borrow: they are views made just before serializing, from a wire event
//! ([`GroupEvent::from_wire`], [`MessageEvent::from_wire`], [`ChatEvent::from_wire`]) or from
//! the SDK's own types.
//!
//! ```json
//! {"type":"group.changed","sequence":7,"chatGuid":"any;+;chat1","occurredAt":"2025-01-02T03:04:05.123Z",
//!  "isFromMe":false,"actor":{"address":"a@example.com","service":"iMessage"},
//!  "change":{"type":"displayNameChanged","displayName":"Weekend"}}
//! {"type":"message.reactionAdded","sequence":8,"chatGuid":"any;+;chat1","occurredAt":"2025-01-02T03:04:06.000Z",
//!  "isFromMe":true,"messageGuid":"8C1F…","reaction":{"kind":"emoji","emoji":"🎉"}}
//! {"type":"chat.markedRead","sequence":9,"chatGuid":"any;-;a@example.com","occurredAt":"2025-01-02T03:04:07.000Z","isFromMe":true}
//! ```

use std::borrow::Cow;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::pb;

/// The messaging service of a chat or address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Service {
    /// iMessage.
    #[serde(rename = "iMessage")]
    IMessage,
    /// SMS (text message).
    #[serde(rename = "SMS")]
    Sms,
    /// RCS.
    #[serde(rename = "RCS")]
    Rcs,
    /// Not stated by the server, or a service this SDK does not know.
    #[serde(rename = "unknown")]
    Unknown,
}

impl Service {
    /// The service of a wire `ChatServiceType` value.
    pub fn from_wire(value: i32) -> Self {
        match pb::ChatServiceType::try_from(value) {
            Ok(pb::ChatServiceType::Imessage) => Service::IMessage,
            Ok(pb::ChatServiceType::Sms) => Service::Sms,
            Ok(pb::ChatServiceType::Rcs) => Service::Rcs,
            Ok(pb::ChatServiceType::Unspecified) | Err(_) => Service::Unknown,
        }
    }

    /// `iMessage`, `SMS`, `RCS` or `unknown`, as the official SDK names them.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::IMessage => "iMessage",
            Service::Sms => "SMS",
            Service::Rcs => "RCS",
            Service::Unknown => "unknown",
        }
    }
}

/// A participant or actor: `{"address", "service", "country"?}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Participant<'a> {
    /// The phone number (E.164) or email address.
    pub address: &'a str,
    /// The service the address is reached on.
    pub service: Service,
    /// The country of a phone number, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<&'a str>,
}

impl<'a> Participant<'a> {
    /// The participant of a wire address.
    pub fn from_wire(info: &'a pb::SingleServiceAddressInfo) -> Self {
        Participant {
            address: &info.address,
            service: Service::from_wire(info.service),
            country: info.country.as_deref(),
        }
    }
}

/// What changed: `{"type": "displayNameChanged", "displayName": …}`, `{"type":
/// "participantAdded", "participant": {…}}`, …, `{"type": "iconChanged"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupChange<'a> {
    /// The group was renamed.
    DisplayNameChanged {
        /// The new name.
        display_name: &'a str,
    },
    /// `participant` joined; the event's actor added them.
    ParticipantAdded {
        /// Who joined.
        participant: Participant<'a>,
    },
    /// `participant` was removed by the event's actor.
    ParticipantRemoved {
        /// Who was removed.
        participant: Participant<'a>,
    },
    /// `participant` left by themselves.
    ParticipantLeft {
        /// Who left.
        participant: Participant<'a>,
    },
    /// The group icon changed.
    IconChanged,
    /// The group icon was removed.
    IconRemoved,
}

impl<'a> GroupChange<'a> {
    /// The SDK's `change.type`: `displayNameChanged`, `participantAdded`, …
    pub fn type_name(&self) -> &'static str {
        match self {
            GroupChange::DisplayNameChanged { .. } => "displayNameChanged",
            GroupChange::ParticipantAdded { .. } => "participantAdded",
            GroupChange::ParticipantRemoved { .. } => "participantRemoved",
            GroupChange::ParticipantLeft { .. } => "participantLeft",
            GroupChange::IconChanged => "iconChanged",
            GroupChange::IconRemoved => "iconRemoved",
        }
    }

    /// The change of a wire event; `None` for a change this version does not know, or one
    /// without its participant.
    pub fn from_wire(change: &'a pb::group_change_event::Change) -> Option<Self> {
        use pb::group_change_event::Change as C;
        let participant =
            |p: &'a Option<pb::SingleServiceAddressInfo>| p.as_ref().map(Participant::from_wire);
        Some(match change {
            C::DisplayNameChanged(c) => GroupChange::DisplayNameChanged {
                display_name: &c.display_name,
            },
            C::ParticipantAdded(c) => GroupChange::ParticipantAdded {
                participant: participant(&c.participant)?,
            },
            C::ParticipantRemoved(c) => GroupChange::ParticipantRemoved {
                participant: participant(&c.participant)?,
            },
            C::ParticipantLeft(c) => GroupChange::ParticipantLeft {
                participant: participant(&c.participant)?,
            },
            C::IconChanged(_) => GroupChange::IconChanged,
            C::IconRemoved(_) => GroupChange::IconRemoved,
        })
    }
}

impl Serialize for GroupChange<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("type", self.type_name())?;
        match self {
            GroupChange::DisplayNameChanged { display_name } => {
                map.serialize_entry("displayName", display_name)?;
            }
            GroupChange::ParticipantAdded { participant }
            | GroupChange::ParticipantRemoved { participant }
            | GroupChange::ParticipantLeft { participant } => {
                map.serialize_entry("participant", participant)?;
            }
            GroupChange::IconChanged | GroupChange::IconRemoved => {}
        }
        map.end()
    }
}

/// A point in time, shown as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, milliseconds, like a JS `Date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    /// Seconds since the Unix epoch; negative before it.
    pub seconds: i64,
    /// Milliseconds within the second (0 to 999).
    pub millis: u32,
}

impl Time {
    /// The time of a wire timestamp. Before 1970 it keeps whole seconds only, rounded towards
    /// the epoch (nobody's group changed then).
    pub fn from_wire(t: &pbjson_types::Timestamp) -> Self {
        let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
        if nanos >= 0 {
            Time {
                seconds: (nanos / 1_000_000_000) as i64,
                millis: ((nanos % 1_000_000_000) / 1_000_000) as u32,
            }
        } else {
            Time {
                seconds: -((-nanos / 1_000_000_000) as i64),
                millis: 0,
            }
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn rfc3339(self) -> String {
        let days = self.seconds.div_euclid(86_400);
        let rem = self.seconds.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60,
            self.millis
        )
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// One durable group change with its place in the account's log, as the official SDK's
/// `GroupEvent` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type", rename = "group.changed")]
pub struct GroupEvent<'a> {
    /// Position in the account's log.
    pub sequence: u64,
    /// The group that changed.
    pub chat_guid: &'a str,
    /// When the change was committed.
    pub occurred_at: Time,
    /// Whether the account itself made the change.
    pub is_from_me: bool,
    /// Who made the change, where it can be named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<Participant<'a>>,
    /// What changed.
    pub change: GroupChange<'a>,
}

impl<'a> GroupEvent<'a> {
    /// The SDK's event `type`.
    pub const TYPE: &'static str = "group.changed";

    /// The event of a wire event at `sequence`; `None` for a change this version does not
    /// know, or an event missing its time or a participant.
    pub fn from_wire(sequence: u64, event: &'a pb::GroupChangeEvent) -> Option<Self> {
        Some(GroupEvent {
            sequence,
            chat_guid: &event.chat_guid,
            occurred_at: Time::from_wire(event.occurred_at.as_ref()?),
            is_from_me: event.is_from_me,
            actor: event.actor.as_ref().map(Participant::from_wire),
            change: GroupChange::from_wire(event.change.as_ref()?)?,
        })
    }
}

/// Writes an event's envelope into `map`: `type`, `sequence`, `chatGuid`, `occurredAt`,
/// `isFromMe`, `actor` (when named), in the order [`GroupEvent`] writes them. Message and chat
/// events add their fields after it, flat, as the official SDK's events have them.
fn envelope<M: SerializeMap>(
    map: &mut M,
    event_type: &str,
    sequence: u64,
    chat_guid: &str,
    occurred_at: Time,
    is_from_me: bool,
    actor: Option<&Participant<'_>>,
) -> Result<(), M::Error> {
    map.serialize_entry("type", event_type)?;
    map.serialize_entry("sequence", &sequence)?;
    map.serialize_entry("chatGuid", chat_guid)?;
    map.serialize_entry("occurredAt", &occurred_at)?;
    map.serialize_entry("isFromMe", &is_from_me)?;
    if let Some(actor) = actor {
        map.serialize_entry("actor", actor)?;
    }
    Ok(())
}

/// A tapback's kind: `love`, `like`, `dislike`, `laugh`, `emphasize`, `question`, `emoji`,
/// `sticker`, or `unknown` for a kind this version does not know (as the official SDK says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ReactionKind {
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
    /// Any emoji, named in the reaction's `emoji`.
    Emoji,
    /// A sticker tapback.
    Sticker,
    /// A kind this version does not know.
    Unknown,
}

impl ReactionKind {
    /// The kind of a wire `MessageReactionKind` value.
    pub fn from_wire(value: i32) -> Self {
        use pb::MessageReactionKind as K;
        match K::try_from(value) {
            Ok(K::Love) => ReactionKind::Love,
            Ok(K::Like) => ReactionKind::Like,
            Ok(K::Dislike) => ReactionKind::Dislike,
            Ok(K::Laugh) => ReactionKind::Laugh,
            Ok(K::Emphasize) => ReactionKind::Emphasize,
            Ok(K::Question) => ReactionKind::Question,
            Ok(K::Emoji) => ReactionKind::Emoji,
            Ok(K::Sticker) => ReactionKind::Sticker,
            Err(_) => ReactionKind::Unknown,
        }
    }

    /// `love`, `like`, …, `emoji`, `sticker`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReactionKind::Love => "love",
            ReactionKind::Like => "like",
            ReactionKind::Dislike => "dislike",
            ReactionKind::Laugh => "laugh",
            ReactionKind::Emphasize => "emphasize",
            ReactionKind::Question => "question",
            ReactionKind::Emoji => "emoji",
            ReactionKind::Sticker => "sticker",
            ReactionKind::Unknown => "unknown",
        }
    }
}

/// A tapback: `{"kind":"love"}`, or `{"kind":"emoji","emoji":"🎉"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Reaction<'a> {
    /// The tapback's kind.
    pub kind: ReactionKind,
    /// The emoji of an emoji tapback (and only of one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emoji: Option<&'a str>,
}

impl<'a> Reaction<'a> {
    /// The tapback of a wire reaction; an emoji tapback without its emoji shows `""`.
    pub fn from_wire(r: &'a pb::MessageReaction) -> Self {
        let kind = ReactionKind::from_wire(r.kind);
        Reaction {
            kind,
            emoji: (kind == ReactionKind::Emoji).then(|| r.emoji.as_deref().unwrap_or_default()),
        }
    }
}

/// A styled span of a message's text: `{"type":"bold","start":0,"length":3}`; `start` and
/// `length` count UTF-16 code units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TextFormat<'a> {
    /// `bold`, `italic`, `underline`, `strikethrough`, …
    #[serde(rename = "type")]
    pub style: &'a str,
    /// First UTF-16 code unit.
    pub start: u32,
    /// Length in UTF-16 code units.
    pub length: u32,
    /// A text effect's name, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect_name: Option<&'a str>,
}

impl<'a> TextFormat<'a> {
    /// The span of a wire range; a negative number (never sent) shows as 0.
    pub fn from_wire(f: &'a pb::TextFormat) -> Self {
        TextFormat {
            style: &f.r#type,
            start: u32::try_from(f.start).unwrap_or(0),
            length: u32::try_from(f.length).unwrap_or(0),
            effect_name: f.effect_name.as_deref(),
        }
    }
}

/// A tapback on a message now: `{"reaction":{…},"sender":{…}?,"isFromMe":…,"dateCreated":…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedReaction<'a> {
    /// The tapback.
    pub reaction: Reaction<'a>,
    /// Who put it there; absent when it is the calling account's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<Participant<'a>>,
    /// Whether the calling account put it there.
    pub is_from_me: bool,
    /// When.
    pub date_created: Time,
}

impl<'a> AppliedReaction<'a> {
    /// The tapback of a wire one; `None` without its reaction or time.
    pub fn from_wire(r: &'a pb::MessageAppliedReaction) -> Option<Self> {
        Some(AppliedReaction {
            reaction: Reaction::from_wire(r.reaction.as_ref()?),
            sender: r.sender.as_ref().map(Participant::from_wire),
            is_from_me: r.is_from_me,
            date_created: Time::from_wire(r.date_created.as_ref()?),
        })
    }
}

/// A message as the calling account sees it, as the Rust SDK's `Message` (and `imgroups
/// messages get --json`) shows it: the text at the top (`text`, `formatting`, `effectId`)
/// where the official SDK's `Message` nests it in `content`, `replyTo` for its
/// `replyTargetGuid` and `reactions` for its `appliedReactions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message<'a> {
    /// The message's GUID, the same in every member's view.
    pub guid: &'a str,
    /// The text; absent once unsent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    /// The subject line, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<&'a str>,
    /// Styled spans of the text.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub formatting: Vec<TextFormat<'a>>,
    /// The bubble or screen effect it was sent with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect_id: Option<&'a str>,
    /// The message this one answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<&'a str>,
    /// Who sent it; absent for the calling account's own messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<Participant<'a>>,
    /// Whether the calling account sent it.
    pub is_from_me: bool,
    /// Whether it was sent (not only queued).
    pub is_sent: bool,
    /// Whether it reached the other side.
    pub is_delivered: bool,
    /// When the message was created.
    pub date_created: Time,
    /// When it was delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_delivered: Option<Time>,
    /// When it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_read: Option<Time>,
    /// When it was last edited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_edited: Option<Time>,
    /// When it was unsent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_retracted: Option<Time>,
    /// Its tapbacks now, at most one per person.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<AppliedReaction<'a>>,
    /// The chats it is in, as the calling account sees them.
    pub chat_guids: Vec<Cow<'a, str>>,
}

impl<'a> Message<'a> {
    /// The message of a wire message; `None` without its creation time, or with a tapback
    /// missing its reaction or time.
    pub fn from_wire(m: &'a pb::Message) -> Option<Self> {
        let content = m.content.as_ref();
        let time = |t: &Option<pbjson_types::Timestamp>| t.as_ref().map(Time::from_wire);
        Some(Message {
            guid: &m.guid,
            // An unsent message may arrive with empty text: it has none any more.
            text: content
                .and_then(|c| c.text.as_deref())
                .filter(|t| !t.is_empty() || m.date_retracted.is_none()),
            subject: m.subject.as_deref(),
            formatting: content
                .map(|c| c.formatting.iter().map(TextFormat::from_wire).collect())
                .unwrap_or_default(),
            effect_id: content.and_then(|c| c.expressive_send_style_id.as_deref()),
            reply_to: m.reply_target_guid.as_deref().filter(|g| !g.is_empty()),
            sender: m.sender.as_ref().map(Participant::from_wire),
            is_from_me: m.is_from_me,
            is_sent: m.is_sent,
            is_delivered: m.is_delivered,
            date_created: Time::from_wire(m.date_created.as_ref()?),
            date_delivered: time(&m.date_delivered),
            date_read: time(&m.date_read),
            date_edited: time(&m.date_edited),
            date_retracted: time(&m.date_retracted),
            reactions: m
                .applied_reactions
                .iter()
                .map(AppliedReaction::from_wire)
                .collect::<Option<_>>()?,
            chat_guids: m
                .chat_guids
                .iter()
                .map(|g| Cow::Borrowed(g.as_str()))
                .collect(),
        })
    }
}

/// A message's content after an edit, as the official SDK's `MessageContent` nests it:
/// `{"text":…,"formatting":[…]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MessageContent<'a> {
    /// The text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    /// Styled spans of the text (always present, perhaps empty).
    pub formatting: Vec<TextFormat<'a>>,
}

impl<'a> MessageContent<'a> {
    /// The content of a wire one.
    pub fn from_wire(c: &'a pb::MessageContent) -> Self {
        MessageContent {
            text: c.text.as_deref(),
            formatting: c.formatting.iter().map(TextFormat::from_wire).collect(),
        }
    }
}

/// Which change a message event is, and its `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageChangeKind {
    /// `message.received`
    Received,
    /// `message.edited`
    Edited,
    /// `message.unsent`
    Unsent,
    /// `message.read`
    Read,
    /// `message.reactionAdded`
    ReactionAdded,
    /// `message.reactionRemoved`
    ReactionRemoved,
}

impl MessageChangeKind {
    /// The event's `type`: `message.received`, `message.edited`, …
    pub fn type_name(self) -> &'static str {
        match self {
            MessageChangeKind::Received => "message.received",
            MessageChangeKind::Edited => "message.edited",
            MessageChangeKind::Unsent => "message.unsent",
            MessageChangeKind::Read => "message.read",
            MessageChangeKind::ReactionAdded => "message.reactionAdded",
            MessageChangeKind::ReactionRemoved => "message.reactionRemoved",
        }
    }
}

/// What a message event says, after its envelope: `message` (`message.received`);
/// `messageGuid` and `content`, `editedAt` (`message.edited`); `retractedAt`
/// (`message.unsent`); `readAt` (`message.read`); `reaction` (`message.reactionAdded`,
/// `message.reactionRemoved`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageChange<'a> {
    /// A message arrived in the chat, or was sent from this account.
    Received {
        /// The message as stored when it was sent (boxed: it is much the largest change).
        message: Box<Message<'a>>,
    },
    /// A message was edited by its sender.
    Edited {
        /// The message edited.
        message_guid: &'a str,
        /// Its content after the edit.
        content: MessageContent<'a>,
        /// When it was edited.
        edited_at: Time,
    },
    /// A message was unsent by its sender.
    Unsent {
        /// The message unsent.
        message_guid: &'a str,
        /// When it was unsent.
        retracted_at: Time,
    },
    /// One of this account's messages was read by the other side of a direct chat.
    Read {
        /// The message read.
        message_guid: &'a str,
        /// When it was read.
        read_at: Time,
    },
    /// The event's actor put a tapback on a message.
    ReactionAdded {
        /// The message reacted to.
        message_guid: &'a str,
        /// The tapback.
        reaction: Reaction<'a>,
    },
    /// The event's actor took a tapback off a message.
    ReactionRemoved {
        /// The message.
        message_guid: &'a str,
        /// The tapback taken off.
        reaction: Reaction<'a>,
    },
}

impl<'a> MessageChange<'a> {
    /// Which change this is.
    pub fn kind(&self) -> MessageChangeKind {
        match self {
            MessageChange::Received { .. } => MessageChangeKind::Received,
            MessageChange::Edited { .. } => MessageChangeKind::Edited,
            MessageChange::Unsent { .. } => MessageChangeKind::Unsent,
            MessageChange::Read { .. } => MessageChangeKind::Read,
            MessageChange::ReactionAdded { .. } => MessageChangeKind::ReactionAdded,
            MessageChange::ReactionRemoved { .. } => MessageChangeKind::ReactionRemoved,
        }
    }

    /// The change of a wire event; `None` for one this version does not show (a sticker
    /// placed), or one missing its message, time or reaction.
    pub fn from_wire(change: &'a pb::message_change_event::Change) -> Option<Self> {
        use pb::message_change_event::Change as C;
        let time = |t: &Option<pbjson_types::Timestamp>| t.as_ref().map(Time::from_wire);
        Some(match change {
            C::MessageReceived(c) => MessageChange::Received {
                message: Box::new(Message::from_wire(c.message.as_ref()?)?),
            },
            C::MessageEdited(c) => MessageChange::Edited {
                message_guid: &c.message_guid,
                content: c
                    .content
                    .as_ref()
                    .map(MessageContent::from_wire)
                    .unwrap_or_default(),
                edited_at: time(&c.edited_at)?,
            },
            C::MessageUnsent(c) => MessageChange::Unsent {
                message_guid: &c.message_guid,
                retracted_at: time(&c.retracted_at)?,
            },
            C::MessageRead(c) => MessageChange::Read {
                message_guid: &c.message_guid,
                read_at: time(&c.read_at)?,
            },
            C::ReactionAdded(c) => MessageChange::ReactionAdded {
                message_guid: &c.message_guid,
                reaction: Reaction::from_wire(c.reaction.as_ref()?),
            },
            C::ReactionRemoved(c) => MessageChange::ReactionRemoved {
                message_guid: &c.message_guid,
                reaction: Reaction::from_wire(c.reaction.as_ref()?),
            },
            C::StickerPlaced(_) => return None,
        })
    }

    /// Writes the change's fields into an event's map, after the envelope.
    fn write<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        match self {
            MessageChange::Received { message } => map.serialize_entry("message", message),
            MessageChange::Edited {
                message_guid,
                content,
                edited_at,
            } => {
                map.serialize_entry("messageGuid", message_guid)?;
                map.serialize_entry("content", content)?;
                map.serialize_entry("editedAt", edited_at)
            }
            MessageChange::Unsent {
                message_guid,
                retracted_at,
            } => {
                map.serialize_entry("messageGuid", message_guid)?;
                map.serialize_entry("retractedAt", retracted_at)
            }
            MessageChange::Read {
                message_guid,
                read_at,
            } => {
                map.serialize_entry("messageGuid", message_guid)?;
                map.serialize_entry("readAt", read_at)
            }
            MessageChange::ReactionAdded {
                message_guid,
                reaction,
            }
            | MessageChange::ReactionRemoved {
                message_guid,
                reaction,
            } => {
                map.serialize_entry("messageGuid", message_guid)?;
                map.serialize_entry("reaction", reaction)
            }
        }
    }
}

/// A message sent, changed or read, with its place in the account's log, as the official
/// SDK's `MessageEvent` shows it: the envelope of [`GroupEvent`] with the change's fields
/// beside it, e.g. `{"type":"message.reactionAdded","sequence":9,"chatGuid":…,"occurredAt":…,
/// "isFromMe":false,"actor":{…},"messageGuid":"8C1F…","reaction":{"kind":"love"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEvent<'a> {
    /// Position in the account's log.
    pub sequence: u64,
    /// The chat the message is in.
    pub chat_guid: &'a str,
    /// When the change was committed.
    pub occurred_at: Time,
    /// Whether the account itself made the change.
    pub is_from_me: bool,
    /// Who made the change, where it can be named.
    pub actor: Option<Participant<'a>>,
    /// What changed.
    pub change: MessageChange<'a>,
}

impl<'a> MessageEvent<'a> {
    /// The event of a wire event at `sequence`; `None` for a change this version does not
    /// show, or an event missing its time or a part of its change.
    pub fn from_wire(sequence: u64, event: &'a pb::MessageChangeEvent) -> Option<Self> {
        Some(MessageEvent {
            sequence,
            chat_guid: &event.chat_guid,
            occurred_at: Time::from_wire(event.occurred_at.as_ref()?),
            is_from_me: event.is_from_me,
            actor: event.actor.as_ref().map(Participant::from_wire),
            change: MessageChange::from_wire(event.change.as_ref()?)?,
        })
    }
}

impl Serialize for MessageEvent<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        envelope(
            &mut map,
            self.change.kind().type_name(),
            self.sequence,
            self.chat_guid,
            self.occurred_at,
            self.is_from_me,
            self.actor.as_ref(),
        )?;
        self.change.write(&mut map)?;
        map.end()
    }
}

/// A change to a chat as a whole; its `type` says it all (`chat.markedRead`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatChange {
    /// `chat.markedRead`: the account marked the chat read.
    MarkedRead,
    /// `chat.backgroundChanged`
    BackgroundChanged,
    /// `chat.backgroundRemoved`
    BackgroundRemoved,
    /// `chat.archived`
    Archived,
    /// `chat.unarchived`
    Unarchived,
}

impl ChatChange {
    /// The event's `type`: `chat.markedRead`, `chat.backgroundChanged`, …
    pub fn type_name(self) -> &'static str {
        match self {
            ChatChange::MarkedRead => "chat.markedRead",
            ChatChange::BackgroundChanged => "chat.backgroundChanged",
            ChatChange::BackgroundRemoved => "chat.backgroundRemoved",
            ChatChange::Archived => "chat.archived",
            ChatChange::Unarchived => "chat.unarchived",
        }
    }

    /// The change of a wire event.
    pub fn from_wire(change: &pb::chat_change_event::Change) -> Self {
        use pb::chat_change_event::Change as C;
        match change {
            C::MarkedRead(_) => ChatChange::MarkedRead,
            C::BackgroundChanged(_) => ChatChange::BackgroundChanged,
            C::BackgroundRemoved(_) => ChatChange::BackgroundRemoved,
            C::Archived(_) => ChatChange::Archived,
            C::Unarchived(_) => ChatChange::Unarchived,
        }
    }
}

/// A change to a chat with its place in the account's log, as the official SDK's
/// `ChatEvent` shows it: the envelope alone, e.g. `{"type":"chat.markedRead","sequence":10,
/// "chatGuid":…,"occurredAt":…,"isFromMe":true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatEvent<'a> {
    /// Position in the account's log.
    pub sequence: u64,
    /// The chat that changed.
    pub chat_guid: &'a str,
    /// When the change was committed.
    pub occurred_at: Time,
    /// Whether the account itself made the change.
    pub is_from_me: bool,
    /// Who made the change, where it can be named.
    pub actor: Option<Participant<'a>>,
    /// What changed.
    pub change: ChatChange,
}

impl<'a> ChatEvent<'a> {
    /// The event of a wire event at `sequence`; `None` for a change this version does not
    /// know, or an event missing its time.
    pub fn from_wire(sequence: u64, event: &'a pb::ChatChangeEvent) -> Option<Self> {
        Some(ChatEvent {
            sequence,
            chat_guid: &event.chat_guid,
            occurred_at: Time::from_wire(event.occurred_at.as_ref()?),
            is_from_me: event.is_from_me,
            actor: event.actor.as_ref().map(Participant::from_wire),
            change: ChatChange::from_wire(event.change.as_ref()?),
        })
    }
}

impl Serialize for ChatEvent<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        envelope(
            &mut map,
            self.change.type_name(),
            self.sequence,
            self.chat_guid,
            self.occurred_at,
            self.is_from_me,
            self.actor.as_ref(),
        )?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_with_milliseconds() {
        let at = |seconds, nanos| Time::from_wire(&pbjson_types::Timestamp { seconds, nanos });
        assert_eq!(at(0, 0).rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            at(1_735_787_045, 123_999_999).rfc3339(),
            "2025-01-02T03:04:05.123Z"
        );
        assert_eq!(at(951_782_400, 0).rfc3339(), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(-2, 500_000_000).rfc3339(), "1969-12-31T23:59:59.000Z");
    }

    #[test]
    fn a_wire_event_in_the_sdk_shape() {
        let address = |a: &str| pb::SingleServiceAddressInfo {
            address: a.into(),
            service: pb::ChatServiceType::Imessage as i32,
            country: None,
        };
        let event = pb::GroupChangeEvent {
            chat_guid: "any;+;chat1".into(),
            occurred_at: Some(pbjson_types::Timestamp {
                seconds: 0,
                nanos: 0,
            }),
            actor: Some(address("a@example.com")),
            is_from_me: false,
            change: Some(pb::group_change_event::Change::ParticipantAdded(
                pb::GroupParticipantAdded {
                    participant: Some(address("b@example.com")),
                },
            )),
        };
        let view = GroupEvent::from_wire(7, &event).expect("known change");
        assert_eq!(
            serde_json::to_string(&view).expect("json"),
            r#"{"type":"group.changed","sequence":7,"chatGuid":"any;+;chat1","occurredAt":"1970-01-01T00:00:00.000Z","isFromMe":false,"actor":{"address":"a@example.com","service":"iMessage"},"change":{"type":"participantAdded","participant":{"address":"b@example.com","service":"iMessage"}}}"#
        );
        let unknown = pb::GroupChangeEvent {
            change: None,
            ..event
        };
        assert_eq!(GroupEvent::from_wire(7, &unknown), None);
    }

    /// A wire message event at 1970-01-01T00:00:01Z, by bob unless it is mine.
    fn message_event(
        change: pb::message_change_event::Change,
        mine: bool,
    ) -> pb::MessageChangeEvent {
        pb::MessageChangeEvent {
            chat_guid: "any;+;chat1".into(),
            occurred_at: Some(at(1)),
            actor: (!mine).then(|| pb::SingleServiceAddressInfo {
                address: "bob@example.com".into(),
                service: pb::ChatServiceType::Imessage as i32,
                country: None,
            }),
            is_from_me: mine,
            change: Some(change),
        }
    }

    fn at(seconds: i64) -> pbjson_types::Timestamp {
        pbjson_types::Timestamp { seconds, nanos: 0 }
    }

    fn sdk_json(event: &pb::MessageChangeEvent) -> serde_json::Value {
        let view = MessageEvent::from_wire(8, event).expect("shown");
        serde_json::from_str(&serde_json::to_string(&view).expect("json")).expect("parse")
    }

    #[test]
    fn message_events_in_the_sdk_shape() {
        use pb::message_change_event::Change as C;
        use serde_json::json;
        let envelope = |event_type: &str, mine: bool| {
            let mut e = json!({
                "type": event_type, "sequence": 8, "chatGuid": "any;+;chat1",
                "occurredAt": "1970-01-01T00:00:01.000Z", "isFromMe": mine,
            });
            if !mine {
                e["actor"] = json!({"address": "bob@example.com", "service": "iMessage"});
            }
            e
        };
        let with = |mut e: serde_json::Value, fields: serde_json::Value| {
            for (k, v) in fields.as_object().expect("object") {
                e[k] = v.clone();
            }
            e
        };

        let message = pb::Message {
            guid: "G1".into(),
            content: Some(pb::MessageContent {
                text: Some("Yes!".into()),
                formatting: vec![pb::TextFormat {
                    r#type: "bold".into(),
                    start: 0,
                    length: 3,
                    effect_name: None,
                }],
                ..Default::default()
            }),
            subject: Some("Re: dinner".into()),
            date_created: Some(at(1)),
            sender: Some(pb::SingleServiceAddressInfo {
                address: "bob@example.com".into(),
                service: pb::ChatServiceType::Imessage as i32,
                country: None,
            }),
            is_sent: true,
            is_delivered: true,
            reply_target_guid: Some("G0".into()),
            applied_reactions: vec![pb::MessageAppliedReaction {
                message_guid: "G1".into(),
                target_part_index: None,
                reaction: Some(pb::MessageReaction {
                    kind: pb::MessageReactionKind::Love as i32,
                    emoji: None,
                }),
                sender: None,
                is_from_me: true,
                date_created: Some(at(2)),
            }],
            chat_guids: vec!["any;+;chat1".into()],
            ..Default::default()
        };
        let received = message_event(
            C::MessageReceived(pb::MessageReceived {
                message: Some(message),
            }),
            false,
        );
        assert_eq!(
            sdk_json(&received),
            with(
                envelope("message.received", false),
                json!({"message": {
                    "guid": "G1", "text": "Yes!", "subject": "Re: dinner",
                    "formatting": [{"type": "bold", "start": 0, "length": 3}],
                    "replyTo": "G0",
                    "sender": {"address": "bob@example.com", "service": "iMessage"},
                    "isFromMe": false, "isSent": true, "isDelivered": true,
                    "dateCreated": "1970-01-01T00:00:01.000Z",
                    "reactions": [{"reaction": {"kind": "love"}, "isFromMe": true,
                                   "dateCreated": "1970-01-01T00:00:02.000Z"}],
                    "chatGuids": ["any;+;chat1"],
                }})
            )
        );

        let edited = message_event(
            C::MessageEdited(pb::MessageEdited {
                message_guid: "G1".into(),
                content: Some(pb::MessageContent {
                    text: Some("Yes!!".into()),
                    ..Default::default()
                }),
                edited_at: Some(at(3)),
            }),
            false,
        );
        assert_eq!(
            sdk_json(&edited),
            with(
                envelope("message.edited", false),
                json!({"messageGuid": "G1", "content": {"text": "Yes!!", "formatting": []},
                       "editedAt": "1970-01-01T00:00:03.000Z"})
            )
        );

        let unsent = message_event(
            C::MessageUnsent(pb::MessageUnsent {
                message_guid: "G1".into(),
                retracted_at: Some(at(4)),
            }),
            true,
        );
        assert_eq!(
            sdk_json(&unsent),
            with(
                envelope("message.unsent", true),
                json!({"messageGuid": "G1", "retractedAt": "1970-01-01T00:00:04.000Z"})
            )
        );

        let read = message_event(
            C::MessageRead(pb::MessageRead {
                message_guid: "G1".into(),
                read_at: Some(at(5)),
            }),
            false,
        );
        assert_eq!(
            sdk_json(&read),
            with(
                envelope("message.read", false),
                json!({"messageGuid": "G1", "readAt": "1970-01-01T00:00:05.000Z"})
            )
        );

        let party = Some(pb::MessageReaction {
            kind: pb::MessageReactionKind::Emoji as i32,
            emoji: Some("🎉".into()),
        });
        let added = message_event(
            C::ReactionAdded(pb::MessageReactionAdded {
                message_guid: "G1".into(),
                target_part_index: None,
                reaction: party,
            }),
            false,
        );
        assert_eq!(
            sdk_json(&added),
            with(
                envelope("message.reactionAdded", false),
                json!({"messageGuid": "G1", "reaction": {"kind": "emoji", "emoji": "🎉"}})
            )
        );
        let removed = message_event(
            C::ReactionRemoved(pb::MessageReactionRemoved {
                message_guid: "G1".into(),
                target_part_index: None,
                reaction: Some(pb::MessageReaction {
                    kind: pb::MessageReactionKind::Like as i32,
                    emoji: None,
                }),
            }),
            true,
        );
        assert_eq!(
            sdk_json(&removed),
            with(
                envelope("message.reactionRemoved", true),
                json!({"messageGuid": "G1", "reaction": {"kind": "like"}})
            )
        );

        // The envelope comes first, in the order a group event writes it.
        let line = serde_json::to_string(&MessageEvent::from_wire(8, &unsent).expect("shown"))
            .expect("json");
        assert_eq!(
            line,
            r#"{"type":"message.unsent","sequence":8,"chatGuid":"any;+;chat1","occurredAt":"1970-01-01T00:00:01.000Z","isFromMe":true,"messageGuid":"G1","retractedAt":"1970-01-01T00:00:04.000Z"}"#
        );

        // A sticker placed has no SDK form here; neither has an event without its time.
        let sticker = message_event(C::StickerPlaced(Default::default()), false);
        assert_eq!(MessageEvent::from_wire(8, &sticker), None);
        let timeless = pb::MessageChangeEvent {
            occurred_at: None,
            ..read
        };
        assert_eq!(MessageEvent::from_wire(8, &timeless), None);
    }

    #[test]
    fn chat_events_in_the_sdk_shape() {
        let event = pb::ChatChangeEvent {
            chat_guid: "any;-;bob@example.com".into(),
            occurred_at: Some(at(1)),
            actor: None,
            is_from_me: true,
            change: Some(pb::chat_change_event::Change::MarkedRead(
                pb::ChatMarkedRead {},
            )),
        };
        let view = ChatEvent::from_wire(10, &event).expect("known change");
        assert_eq!(
            serde_json::to_string(&view).expect("json"),
            r#"{"type":"chat.markedRead","sequence":10,"chatGuid":"any;-;bob@example.com","occurredAt":"1970-01-01T00:00:01.000Z","isFromMe":true}"#
        );
        let background = pb::ChatChangeEvent {
            change: Some(pb::chat_change_event::Change::BackgroundRemoved(
                pb::ChatBackgroundRemoved {},
            )),
            ..event
        };
        let view = ChatEvent::from_wire(11, &background).expect("known change");
        assert_eq!(view.change.type_name(), "chat.backgroundRemoved");
    }
}
