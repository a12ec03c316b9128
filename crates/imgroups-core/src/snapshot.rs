//! Snapshots of the simulated world: everything a reset with accounts clears
//! ([`crate::port::Store::reset`]), as one versioned JSON file (`docs/simulator.md`,
//! "Snapshots"; schema in `docs/snapshot.schema.json`).
//!
//! A snapshot is the store's rows in a form both stores share: accounts with their token
//! hashes, logs, messages, direct chats, webhooks and faults; groups with their members and
//! icons; chat backgrounds; the directory; the controllable clock. Events and messages are
//! the engine's own JSON of a [`Change`] and a [`Message`] (what every store keeps on disk,
//! [`crate::port::tx::stored`]), so a file is readable and a newer kind is refused by an older
//! binary rather than carried blind. Idempotency records, admin tokens, webhook leases and
//! what an observing backend read from chat.db are not part of it.
//!
//! Exporting is a read of one consistent view; importing replaces the world in one write,
//! as a reset with accounts does, and counts as a reset (open streams end with
//! `reason=reset`). The file keeps every id (tokens, webhooks and faults are named by id
//! in the CLI and the console) and every sequence, so an import followed by an export gives
//! the same bytes. Unlike a reset, an import may move a log's head back: cursors taken
//! before it belong to another world.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::clock::SimClock;
use crate::error::{Error, Result};
use crate::ids::MAX_ADDRESS_BYTES;
use crate::model::{Change, Message, Timestamp};
use crate::text::DISPLAY_NAME;

/// The `format` every snapshot file names.
pub const FORMAT: &str = "imgroups-snapshot";
/// The version this binary writes and reads.
pub const VERSION: u32 = 1;

/// The simulated world. Lists are in the store's order: accounts, tokens, webhooks and faults
/// by id, groups by creation, members by when they joined, messages by place, events by
/// sequence, the directory and backgrounds by key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub format: String,
    pub version: u32,
    /// The controllable clock of a deterministic run (`serve --seed`), if the store has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockState>,
    pub accounts: Vec<AccountState>,
    /// Addresses the directory answers as not on iMessage.
    pub unreachable: Vec<String>,
    pub groups: Vec<GroupState>,
    pub backgrounds: Vec<BackgroundState>,
}

/// [`SimClock`] in a file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockState {
    pub now: Timestamp,
    pub seed: u64,
    pub ids: u64,
}

impl From<SimClock> for ClockState {
    fn from(clock: SimClock) -> Self {
        ClockState {
            now: clock.now,
            seed: clock.seed,
            ids: clock.ids,
        }
    }
}

impl From<ClockState> for SimClock {
    fn from(clock: ClockState) -> Self {
        SimClock {
            now: clock.now,
            seed: clock.seed,
            ids: clock.ids,
        }
    }
}

/// One account and everything that is its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountState {
    pub id: i64,
    pub address: String,
    pub created_at: Timestamp,
    /// The log's newest sequence (events may have been cleared below it).
    pub head_seq: u64,
    pub pruned_through: u64,
    pub reset_through: u64,
    pub tokens: Vec<TokenState>,
    pub direct_chats: Vec<DirectChatState>,
    pub messages: Vec<MessageState>,
    pub events: Vec<EventState>,
    pub webhooks: Vec<WebhookState>,
    pub faults: Vec<FaultState>,
}

/// A token: its hash only (the secret was shown once), so a snapshot holds no usable secret
/// of an account, yet the clients of the exported world keep working after an import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenState {
    pub id: i64,
    /// SHA-256 of the token, lower-case hex.
    #[serde(with = "hex_bytes")]
    pub hash: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectChatState {
    pub address: String,
    pub created_at: Timestamp,
}

/// An account's copy of a message, at its place in the account's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageState {
    pub place: i64,
    pub guid: String,
    pub chat_guid: String,
    pub created_at: Timestamp,
    pub is_from_me: bool,
    pub is_read: bool,
    pub message: Message,
}

/// One event of an account's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventState {
    pub seq: u64,
    pub chat_guid: String,
    pub occurred_at: Timestamp,
    pub is_from_me: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    pub change: Change,
}

/// A webhook endpoint with its secret (deliveries are signed with it) and its cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookState {
    pub id: i64,
    pub url: String,
    pub secret: String,
    pub cursor: u64,
    pub failures: u32,
    pub paused: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: Timestamp,
}

/// An injected fault as stored (`remaining`: uses left, none for every call).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultState {
    pub id: i64,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    pub retryable: bool,
    pub latency_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// A group: its identity, name, members in joining order and icon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupState {
    pub identifier: String,
    pub group_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_hex_bytes"
    )]
    pub icon_hash: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub members: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<ImageState>,
}

/// An image's bytes (standard base64) and type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageState {
    pub mime: String,
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

/// A chat's background, keyed as the engine keys it (`engine::messages::chat_key`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackgroundState {
    pub chat_key: String,
    #[serde(with = "hex_bytes")]
    pub hash: Vec<u8>,
    pub image: ImageState,
}

impl Snapshot {
    /// An empty world of this version.
    pub fn empty() -> Snapshot {
        Snapshot {
            format: FORMAT.to_owned(),
            version: VERSION,
            clock: None,
            accounts: Vec::new(),
            unreachable: Vec::new(),
            groups: Vec::new(),
            backgrounds: Vec::new(),
        }
    }

    /// The file: pretty JSON (two-space indent) with a final newline. The same world gives
    /// the same bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Plain data with string keys: serialising cannot fail.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Reads a file and checks it ([`Snapshot::check`]): `invalidArgument` naming the line
    /// and column of a syntax or shape error, or what is inconsistent.
    pub fn from_json(bytes: &[u8]) -> Result<Snapshot> {
        // The format and version first, so that a newer file is named as such rather than
        // as an unknown field somewhere inside.
        #[derive(Deserialize)]
        struct Head {
            format: Option<String>,
            version: Option<u32>,
        }
        let head: Head = serde_json::from_slice(bytes).map_err(|err| syntax(&err))?;
        if head.format.as_deref() != Some(FORMAT) {
            return Err(Error::invalid(format!(
                "not an imgroups snapshot: `format` must be \"{FORMAT}\""
            ))
            .with("field", "format"));
        }
        match head.version {
            Some(VERSION) => {}
            Some(v) if v > VERSION => {
                return Err(Error::invalid(format!(
                    "snapshot version {v} is newer than this imgroups reads ({VERSION}); run a \
                     newer imgroups"
                ))
                .with("field", "version"))
            }
            _ => {
                return Err(
                    Error::invalid(format!("`version` must be {VERSION}")).with("field", "version")
                )
            }
        }
        let snapshot: Snapshot = serde_json::from_slice(bytes).map_err(|err| syntax(&err))?;
        snapshot.check()?;
        Ok(snapshot)
    }

    /// What the stores cannot hold or the engine would misread: ids and keys that repeat,
    /// events out of order or beyond their log's head, messages that repeat a GUID; and what
    /// the input policy refuses everywhere else (`text`): group names and renames the API
    /// would not have stored, addresses that are empty, too long or hold control characters
    /// or white space.
    pub fn check(&self) -> Result<()> {
        let bad = |what: String, field: &str| Err(Error::invalid(what).with("field", field));
        let address = |address: &str, at: &str| -> Result<()> {
            let fine = !address.is_empty()
                && address.len() <= MAX_ADDRESS_BYTES
                && !address.chars().any(|c| c.is_control() || c.is_whitespace());
            match fine {
                true => Ok(()),
                false => Err(Error::invalid(format!(
                    "{at}: {address:?} is not an address (empty, longer than \
                     {MAX_ADDRESS_BYTES} bytes, or with control characters or white space)"
                ))
                .with("field", "address")),
            }
        };
        let name = |name: &str, at: &str| -> Result<()> {
            match DISPLAY_NAME.check(name) {
                Ok(checked) if checked == name => Ok(()),
                Ok(_) => Err(Error::invalid(format!(
                    "{at}: the name {name:?} has white space around it"
                ))
                .with("field", "display_name")),
                Err(err) => Err(Error {
                    message: format!("{at}: {}", err.message),
                    ..err
                }),
            }
        };
        let mut ids = HashSet::new();
        let mut addresses = HashSet::new();
        let mut tokens = (HashSet::new(), HashSet::new());
        let mut webhooks = HashSet::new();
        let mut faults = HashSet::new();
        for account in &self.accounts {
            let at = format!("account {}", account.address);
            address(&account.address, &format!("account {}", account.id))?;
            if !ids.insert(account.id) || !addresses.insert(account.address.as_str()) {
                return bad(format!("{at}: its id or address repeats"), "accounts");
            }
            if account.pruned_through > account.head_seq || account.reset_through > account.head_seq
            {
                return bad(
                    format!("{at}: pruned_through and reset_through cannot pass head_seq"),
                    "head_seq",
                );
            }
            for token in &account.tokens {
                if !tokens.0.insert(token.id) || !tokens.1.insert(token.hash.as_slice()) {
                    return bad(format!("{at}: token {} repeats", token.id), "tokens");
                }
            }
            for hook in &account.webhooks {
                if !webhooks.insert(hook.id) {
                    return bad(format!("{at}: webhook {} repeats", hook.id), "webhooks");
                }
            }
            for fault in &account.faults {
                if !faults.insert(fault.id) {
                    return bad(format!("{at}: fault {} repeats", fault.id), "faults");
                }
            }
            let mut last = 0;
            for event in &account.events {
                match &event.change {
                    Change::DisplayNameChanged { display_name } if !display_name.is_empty() => {
                        name(display_name, &format!("{at}: event {}", event.seq))?;
                    }
                    _ => {}
                }
                if event.seq <= last || event.seq > account.head_seq {
                    return bad(
                        format!(
                            "{at}: event {} is out of order or beyond head_seq {}",
                            event.seq, account.head_seq
                        ),
                        "events",
                    );
                }
                last = event.seq;
            }
            let mut places = HashSet::new();
            let mut guids = HashSet::new();
            for message in &account.messages {
                if !places.insert(message.place) || !guids.insert(message.guid.as_str()) {
                    return bad(
                        format!("{at}: message {} repeats a place or a GUID", message.guid),
                        "messages",
                    );
                }
            }
            let mut direct = HashSet::new();
            for chat in &account.direct_chats {
                address(&chat.address, &format!("{at}: a direct chat"))?;
                if !direct.insert(chat.address.as_str()) {
                    return bad(
                        format!("{at}: direct chat with {} repeats", chat.address),
                        "direct_chats",
                    );
                }
            }
        }
        let mut groups = HashSet::new();
        for group in &self.groups {
            if !groups.insert(group.identifier.as_str()) {
                return bad(format!("group {} repeats", group.identifier), "groups");
            }
            let at = format!("group {}", group.identifier);
            if let Some(display_name) = &group.display_name {
                name(display_name, &at)?;
            }
            for member in &group.members {
                address(member, &at)?;
            }
            let mut members = HashSet::new();
            if let Some(member) = group.members.iter().find(|m| !members.insert(m.as_str())) {
                return bad(
                    format!("group {}: member {member} repeats", group.identifier),
                    "members",
                );
            }
        }
        for who in &self.unreachable {
            address(who, "unreachable")?;
        }
        let mut unreachable = HashSet::new();
        if let Some(address) = self.unreachable.iter().find(|a| !unreachable.insert(*a)) {
            return bad(
                format!("unreachable address {address} repeats"),
                "unreachable",
            );
        }
        let mut keys = HashSet::new();
        if let Some(key) = self
            .backgrounds
            .iter()
            .find(|b| !keys.insert(b.chat_key.as_str()))
        {
            return bad(
                format!("background {} repeats", key.chat_key),
                "backgrounds",
            );
        }
        Ok(())
    }
}

fn syntax(err: &serde_json::Error) -> Error {
    Error::invalid(format!(
        "snapshot: {err}" // serde_json names the line and column
    ))
    .with("line", err.line())
    .with("column", err.column())
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        hex::decode(&*text).map_err(serde::de::Error::custom)
    }
}

mod opt_hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => super::hex_bytes::serialize(bytes, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
        text.map(|t| hex::decode(&*t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(&*text)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> Snapshot {
        let mut world = Snapshot::empty();
        world.clock = Some(ClockState {
            now: Timestamp(1_000),
            seed: 7,
            ids: 3,
        });
        world.accounts.push(AccountState {
            id: 1,
            address: "bot@example.com".into(),
            created_at: Timestamp(5),
            head_seq: 2,
            pruned_through: 0,
            reset_through: 0,
            tokens: vec![TokenState {
                id: 1,
                hash: vec![0xab; 32],
                label: None,
                created_at: Timestamp(5),
                revoked_at: None,
            }],
            direct_chats: vec![],
            messages: vec![],
            events: vec![EventState {
                seq: 2,
                chat_guid: "any;+;chat1".into(),
                occurred_at: Timestamp(6),
                is_from_me: true,
                actor: None,
                change: Change::DisplayNameChanged {
                    display_name: "Dinner".into(),
                },
            }],
            webhooks: vec![],
            faults: vec![],
        });
        world.groups.push(GroupState {
            identifier: "chat1".into(),
            group_id: "G".into(),
            display_name: Some("Dinner".into()),
            icon_hash: Some(vec![1, 2]),
            created_at: Timestamp(5),
            members: vec!["bot@example.com".into(), "zoe@example.com".into()],
            icon: Some(ImageState {
                mime: "image/png".into(),
                data: vec![0, 1, 2, 255],
            }),
        });
        world
    }

    #[test]
    fn a_file_reads_back_to_the_same_world_and_the_same_bytes() {
        let bytes = world().to_json();
        let read = Snapshot::from_json(&bytes).unwrap();
        assert_eq!(read, world());
        assert_eq!(read.to_json(), bytes);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("\"hash\": \"abababab"), "{text}");
        assert!(text.contains("\"data\": \"AAEC/w==\""), "{text}");
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn the_format_and_version_are_checked_first() {
        let err = Snapshot::from_json(br#"{"accounts": []}"#).unwrap_err();
        assert!(
            err.to_string().contains("not an imgroups snapshot"),
            "{err}"
        );
        let newer = br#"{"format": "imgroups-snapshot", "version": 9, "whatever": 1}"#;
        let err = Snapshot::from_json(newer).unwrap_err();
        assert!(
            err.to_string().contains("newer than this imgroups"),
            "{err}"
        );
    }

    #[test]
    fn shape_errors_name_the_line() {
        let text = String::from_utf8(world().to_json())
            .unwrap()
            .replace("\"head_seq\": 2", "\"head_seq\": \"two\"");
        let err = Snapshot::from_json(text.as_bytes()).unwrap_err();
        let line = text.lines().position(|l| l.contains("\"two\"")).unwrap() + 1;
        assert_eq!(err.context_value("line"), Some(line.to_string().as_str()));
    }

    #[test]
    fn inconsistent_worlds_are_refused() {
        let mut world = world();
        world.accounts[0].events[0].seq = 3;
        let err = world.check().unwrap_err();
        assert!(err.to_string().contains("beyond head_seq 2"), "{err}");

        let mut world = self::tests::world();
        world.groups[0].members.push("zoe@example.com".into());
        let err = world.check().unwrap_err();
        assert!(
            err.to_string().contains("member zoe@example.com repeats"),
            "{err}"
        );

        let mut world = self::tests::world();
        let again = world.accounts[0].clone();
        world.accounts.push(again);
        assert!(world.check().is_err());
    }

    #[test]
    fn names_and_addresses_follow_the_input_policy() {
        let mut world = world();
        world.groups[0].display_name = Some("evil\u{202e}name".into());
        let err = world.check().unwrap_err();
        assert!(err.to_string().starts_with("group chat1: "), "{err}");
        assert_eq!(err.context_value("reason"), Some("controlCharacter"));

        let mut world = self::tests::world();
        world.accounts[0].events[0].change = Change::DisplayNameChanged {
            display_name: "\u{200b}".into(),
        };
        let err = world.check().unwrap_err();
        assert!(err.to_string().contains("event 2"), "{err}");

        let mut world = self::tests::world();
        world.groups[0].members.push("zoe @example.com".into());
        assert!(world
            .check()
            .unwrap_err()
            .to_string()
            .contains("not an address"));
        let mut world = self::tests::world();
        world.unreachable.push("a\u{1b}[2J".into());
        assert!(world.check().is_err());
    }
}
