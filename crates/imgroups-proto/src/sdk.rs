//! The SDK shape of a group event: the JSON of the official TypeScript SDK's `GroupEvent`
//! (`type` tags, camelCase names, RFC 3339 times with milliseconds, `iMessage`/`SMS`/`RCS`).
//!
//! It is defined here once and used by everything that shows events to people: the server's
//! web console and the Rust SDK (whose `GroupEvent` serializes through [`GroupEvent`], so
//! `imgroups events tail --json` prints this too). The other documented event shape, the
//! proto3 JSON of `GroupChangeEvent` that SSE and webhooks send, is the server's.
//!
//! The types borrow: they are views made just before serializing, from a wire event
//! ([`GroupEvent::from_wire`]) or from the SDK's own types.
//!
//! ```json
//! {"type":"group.changed","sequence":7,"chatGuid":"any;+;chat1","occurredAt":"2025-01-02T03:04:05.123Z",
//!  "isFromMe":false,"actor":{"address":"a@example.com","service":"iMessage"},
//!  "change":{"type":"displayNameChanged","displayName":"Weekend"}}
//! ```

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
}
