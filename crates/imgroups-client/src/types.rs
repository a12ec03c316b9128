//! Public value types: chats, participants, icons and group events, in the official SDK's
//! shape. They serialize to the SDK's JSON shape (camelCase, `type` tags, RFC 3339 times).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imgroups_core::{Address, ChatGuid};
use imgroups_proto::pbjson_types::Timestamp;
use imgroups_proto::{pb, sdk};
use serde::Serialize;

use crate::error::{Error, Result};

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

/// A message snapshot (the `initialMessage` of a created chat).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The message's GUID.
    pub guid: String,
    /// The text, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The subject line, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When the message was created.
    #[serde(serialize_with = "rfc3339_serde")]
    pub date_created: SystemTime,
    /// Whether the calling account sent it.
    pub is_from_me: bool,
    /// Whether it was sent (not only queued).
    pub is_sent: bool,
}

impl Message {
    pub(crate) fn from_wire(m: pb::Message) -> Result<Self> {
        let content = m
            .content
            .ok_or_else(|| Error::malformed("expected content in message"))?;
        Ok(Message {
            guid: m.guid,
            text: content.text,
            subject: m.subject,
            date_created: time(m.date_created, "dateCreated")?,
            is_from_me: m.is_from_me,
            is_sent: m.is_sent,
        })
    }
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

/// One durable group change, with its place in the account's event log.
///
/// Serializes like the official SDK's `GroupEvent` ([`imgroups_proto::sdk::GroupEvent`], the
/// shape the server's console shows too):
/// `{"type":"group.changed","sequence":7,"chatGuid":"any;+;chat…","occurredAt":"…Z",
/// "isFromMe":true,"actor":{…},"change":{"type":"participantAdded","participant":{…}}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEvent {
    /// Position in the account's log: 1, 2, 3, … with no gaps across all of its events.
    pub sequence: u64,
    /// The group that changed.
    pub chat_guid: ChatGuid,
    /// When the change was committed.
    pub occurred_at: SystemTime,
    /// Whether the calling account (from any of its devices) made the change.
    pub is_from_me: bool,
    /// Who made the change, where it can be named.
    pub actor: Option<Participant>,
    /// What changed.
    pub change: GroupChange,
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
        let chat_guid = self.chat_guid.to_string();
        sdk::GroupEvent {
            sequence: self.sequence,
            chat_guid: &chat_guid,
            occurred_at: sdk_time(self.occurred_at),
            is_from_me: self.is_from_me,
            actor: self.actor.as_ref().map(Participant::sdk),
            change: self.change.sdk(),
        }
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
        Ok(Some(GroupEvent {
            sequence,
            chat_guid: parse_guid(&e.chat_guid)?,
            occurred_at: time(e.occurred_at, "occurredAt")?,
            is_from_me: e.is_from_me,
            actor: e.actor.map(Participant::from_wire).transpose()?,
            change,
        }))
    }

    /// One human-readable line, e.g.
    /// `#7 2025-01-02T03:04:05.000Z any;+;chat… participantAdded bob@example.com by me`.
    pub fn to_line(&self) -> String {
        let detail = match &self.change {
            GroupChange::DisplayNameChanged { display_name } => format!(" {display_name:?}"),
            GroupChange::ParticipantAdded { participant }
            | GroupChange::ParticipantRemoved { participant }
            | GroupChange::ParticipantLeft { participant } => format!(" {}", participant.address),
            GroupChange::IconChanged | GroupChange::IconRemoved => String::new(),
        };
        let by = match (&self.actor, self.is_from_me) {
            (_, true) => " by me".to_owned(),
            (Some(actor), false) => format!(" by {}", actor.address),
            (None, false) => String::new(),
        };
        format!(
            "#{} {} {} {}{detail}{by}",
            self.sequence,
            rfc3339(self.occurred_at),
            self.chat_guid,
            self.change.type_name()
        )
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
    /// The replay is complete: every event up to `head_sequence` was sent (`catchup.complete`).
    Complete {
        /// The log's last sequence when the replay started.
        head_sequence: u64,
    },
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

fn rfc3339_serde<S: serde::Serializer>(
    t: &SystemTime,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    sdk_time(*t).serialize(s)
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
}
