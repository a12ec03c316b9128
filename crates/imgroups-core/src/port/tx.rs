//! What the engine needs from a store inside one write transaction ([`Tx`]) or one read
//! snapshot ([`Reader`]). A store hands these to the engine's code: [`super::store::Log::write`]
//! runs a unit of work on a [`Tx`], [`super::store::Log::read`] a query on a [`Reader`].
//!
//! Everything done through one [`Tx`] commits or rolls back together, and commit order is
//! total, so: **per account, `append_event` hands out sequence numbers that increase by exactly
//! one in commit order, with no gaps and no reuse.**
//!
//! The engine checks every rule before its first write through the [`Tx`], so a unit of work
//! that returns an error has changed nothing (at most it recorded that answer with
//! [`Tx::idempotency_put`], which is bookkeeping, not a change): stores need no per-request
//! savepoint, and a store may treat an error returned after a change as a bug (the SQLite store
//! then fails the whole batch).

use crate::error::Result;
use crate::ids::{Address, ChatGuid};
use crate::model::{AccountId, Change, GroupKey, Message, Timestamp};
use crate::port::sim::SimTx;

/// A group as stored (one row shared by every member's view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    pub key: GroupKey,
    pub identifier: String,
    pub group_id: String,
    pub display_name: Option<String>,
    pub icon_hash: Option<Vec<u8>>,
}

/// An event about to be appended; the store assigns its sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent<'a> {
    pub chat_guid: &'a ChatGuid,
    pub occurred_at: Timestamp,
    pub is_from_me: bool,
    pub actor: Option<&'a Address>,
    pub change: &'a Change,
}

/// One account's copy of a message being delivered ([`Tx::deliver_message`]): what in it is
/// the account's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery<'a> {
    pub account: AccountId,
    /// The chat as this account sees it.
    pub chat_guid: &'a ChatGuid,
    /// Whether the account sent it.
    pub is_from_me: bool,
    /// When it was read as delivered (incoming: by the account; its own: a receipt); `None`
    /// for a message that arrives unread.
    pub date_read: Option<Timestamp>,
}

impl Delivery<'_> {
    /// The account's copy of `message` sent by `actor`: the same content, with this copy's
    /// chat, ownership, sender (none for its own) and read time.
    pub fn copy_of(&self, message: &Message, actor: &Address) -> Message {
        Message {
            chat_guid: Some(self.chat_guid.clone()),
            is_from_me: self.is_from_me,
            sender: (!self.is_from_me).then(|| actor.clone()),
            date_read: self.date_read,
            ..message.clone()
        }
    }
}

/// [`Tx::deliver_new_message`] by looking each account's copy up first, then
/// [`Tx::deliver_message`] to those that hold none: the default, and what a store falls back on
/// when it cannot tell from the content alone.
pub fn deliver_to_new<T: Tx + ?Sized>(
    tx: &mut T,
    message: &Message,
    actor: &Address,
    occurred_at: Timestamp,
    copies: &[Delivery<'_>],
) -> Result<usize> {
    let mut new = Vec::with_capacity(copies.len());
    for copy in copies {
        if tx.message(copy.account, &message.guid)?.is_none() {
            new.push(*copy);
        }
    }
    if !new.is_empty() {
        tx.deliver_message(message, actor, occurred_at, &new)?;
    }
    Ok(new.len())
}

/// [`Tx::deliver_message`] as one [`Tx::append_event`] and one [`Tx::put_message`] per copy,
/// each with the whole copy: the default, and what a store falls back on when it cannot share
/// the content.
pub fn deliver_each<T: Tx + ?Sized>(
    tx: &mut T,
    message: &Message,
    actor: &Address,
    occurred_at: Timestamp,
    copies: &[Delivery<'_>],
) -> Result<Vec<u64>> {
    let mut places = Vec::with_capacity(copies.len());
    for delivery in copies {
        let copy = delivery.copy_of(message, actor);
        let change = Change::MessageReceived {
            message: Box::new(copy.clone()),
        };
        let place = tx.append_event(
            delivery.account,
            NewEvent {
                chat_guid: delivery.chat_guid,
                occurred_at,
                is_from_me: delivery.is_from_me,
                actor: Some(actor),
                change: &change,
            },
        )?;
        tx.put_message(delivery.account, place, &copy)?;
        places.push(place);
    }
    Ok(places)
}

/// Which idempotency record: keys are scoped to (account, method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyScope<'a> {
    pub account: AccountId,
    pub method: &'a str,
    pub key: &'a str,
}

/// What is remembered under an idempotency key (see [`crate::idempotency`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// [`crate::Command::fingerprint`] of the request first made under the key.
    pub fingerprint: Vec<u8>,
    /// Its answer, encoded by [`crate::idempotency`]; opaque to stores.
    pub outcome: String,
}

/// Reads, inside or outside a write transaction.
pub trait Reader {
    /// The address of an account; an unknown account is an internal error.
    fn account_address(&mut self, account: AccountId) -> Result<Address>;
    fn group(&mut self, identifier: &str) -> Result<Option<GroupRow>>;
    /// Current members including the local account, in the order they joined.
    fn members(&mut self, group: GroupKey) -> Result<Vec<Address>>;
    /// The icon's bytes and MIME type.
    fn icon(&mut self, group: GroupKey) -> Result<Option<(Vec<u8>, String)>>;
    /// Groups the address is currently a member of, oldest first.
    fn groups_of(&mut self, address: &Address) -> Result<Vec<GroupRow>>;
    /// Groups whose current members include every one of `addresses`, oldest first. Its cost
    /// must follow the address in the fewest groups, not the one in the most: a create looks
    /// for the group it would duplicate with it, and the creator (or a participant) may be in
    /// a great many groups.
    fn groups_with_all(&mut self, addresses: &[Address]) -> Result<Vec<GroupRow>>;
    fn has_direct_chat(&mut self, account: AccountId, address: &Address) -> Result<bool>;
    fn count_direct_chats(&mut self, account: AccountId) -> Result<u64>;
    /// A backend's saved position in the source it observes (e.g. its chat.db cursor), as
    /// the backend wrote it with [`Tx::set_observer_cursor`]; `None` before the first.
    fn observer_cursor(&mut self, source: &str) -> Result<Option<String>>;
    /// The account's copy of message `guid`, with its place in the account's order.
    fn message(&mut self, account: AccountId, guid: &str) -> Result<Option<(u64, Message)>>;
    /// The account's messages matching `query`, newest (highest place) first.
    fn list_messages(
        &mut self,
        account: AccountId,
        query: &MessageQuery,
    ) -> Result<Vec<(u64, Message)>>;
    /// The SHA-256 of the background of the chat keyed `chat` (see
    /// [`crate::engine::messages::chat_key`]), if it has one.
    fn background_hash(&mut self, chat: &str) -> Result<Option<Vec<u8>>>;
    /// When each of the account's messages created at or after `since` was created, and
    /// whether it is its own: newest (highest place) first, at most `limit` (the history the
    /// send limits count). Two values a row, no message read whole: a send under limits pays
    /// for this.
    fn message_times(
        &mut self,
        account: AccountId,
        since: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, bool)>>;
}

/// Which of an account's messages to list ([`Reader::list_messages`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageQuery {
    /// Only this chat (as the account sees it); `None`: every chat.
    pub chat: Option<ChatGuid>,
    /// Only places below this one (the page token's position).
    pub below: Option<u64>,
    /// At most this many.
    pub limit: usize,
    pub is_from_me: Option<bool>,
    /// Read means: from me, or read by me ([`Message::is_read`]).
    pub is_read: Option<bool>,
    /// Only messages created strictly before this time.
    pub created_before: Option<Timestamp>,
    /// Only messages created at or after this time.
    pub created_after: Option<Timestamp>,
}

/// One write transaction.
pub trait Tx: Reader {
    /// This transaction's commit time: never earlier than an earlier transaction's.
    fn now(&self) -> Timestamp;
    /// Sixteen bytes for a new identifier (a message GUID, a group's names): random, or,
    /// when the store has a controllable clock ([`crate::clock::SimClock`]), the next ones
    /// derived from its seed, counted in this transaction.
    fn fresh_id(&mut self) -> Result<[u8; 16]>;
    /// Accounts among these addresses, in the order given.
    fn accounts_for(&mut self, addresses: &[Address]) -> Result<Vec<(AccountId, Address)>>;
    /// Inserts a group; `None` if the identifier is taken.
    fn create_group(
        &mut self,
        identifier: &str,
        group_id: &str,
        now: Timestamp,
    ) -> Result<Option<GroupKey>>;
    fn set_display_name(&mut self, group: GroupKey, name: &str) -> Result<()>;
    fn add_member(&mut self, group: GroupKey, address: &Address) -> Result<()>;
    fn remove_member(&mut self, group: GroupKey, address: &Address) -> Result<()>;
    fn set_icon(&mut self, group: GroupKey, data: &[u8], mime: &str, hash: &[u8]) -> Result<()>;
    fn clear_icon(&mut self, group: GroupKey) -> Result<()>;
    fn ensure_direct_chat(
        &mut self,
        account: AccountId,
        address: &Address,
        now: Timestamp,
    ) -> Result<()>;
    /// Stores the account's copy of `message` (its chat is `message.chat_guid`) at `place`,
    /// or replaces the copy with the same GUID (keeping its place). Places order an account's
    /// messages: the engine uses the sequence of the event that delivered the message, so
    /// they are unique per account and grow in commit order. The copy reads back exactly as
    /// put, whatever a store shares between copies; an account's own copy has no sender
    /// ([`Message::sender`]), which a store may rely on.
    fn put_message(&mut self, account: AccountId, place: u64, message: &Message) -> Result<()>;
    /// Delivers a new message: for each of `copies`, in order, appends `message.received` by
    /// `actor` at `occurred_at` to the copy's account log (in the copy's chat, `is_from_me` as
    /// the copy says) and stores that account's copy at the place that event's sequence (as
    /// [`Tx::put_message`] would). Returns the places, in the order of `copies`.
    ///
    /// Every copy is [`Delivery::copy_of`] `message`: the content is the same for everyone,
    /// only the chat as each account sees it, whether it is its own (then with no sender, else
    /// sent by `actor`) and its read time differ. So a store may keep the content once per
    /// message and per member only what differs; whatever it does, each event must go on
    /// showing the message as delivered, whatever later puts of the copies change, and each
    /// copy must read back exactly as delivered until then. The default stores each event and
    /// copy whole ([`deliver_each`]).
    fn deliver_message(
        &mut self,
        message: &Message,
        actor: &Address,
        occurred_at: Timestamp,
        copies: &[Delivery<'_>],
    ) -> Result<Vec<u64>> {
        deliver_each(self, message, actor, occurred_at, copies)
    }
    /// [`Tx::deliver_message`] to those of `copies` whose account holds no message with
    /// `message.guid` yet (an observed source read again from its beginning records what it
    /// recorded before); returns how many were delivered. The default looks each account's
    /// copy up first; a store that keeps each message's content once knows, when the content
    /// is new, that nobody holds it, and need not look (a first start on a long history
    /// records a million messages this way).
    fn deliver_new_message(
        &mut self,
        message: &Message,
        actor: &Address,
        occurred_at: Timestamp,
        copies: &[Delivery<'_>],
    ) -> Result<usize> {
        deliver_to_new(self, message, actor, occurred_at, copies)
    }
    /// A long import begins (a first start recording a whole history): the store may stop
    /// maintaining what only listings read (indexes by chat, unread) until
    /// [`Tx::end_bulk_import`], which builds it again in one pass; nothing the import itself
    /// reads may go. The store must end it by itself if the import never does (a crash
    /// midway): at its next open. The default does nothing.
    fn begin_bulk_import(&mut self) -> Result<()> {
        Ok(())
    }
    /// Ends [`Tx::begin_bulk_import`] (or does nothing if none began): what it stopped
    /// maintaining is built again, in this transaction.
    fn end_bulk_import(&mut self) -> Result<()> {
        Ok(())
    }
    /// Sets (or, with `None`, removes) the background of the chat keyed `chat`: the image's
    /// bytes, MIME type and SHA-256.
    fn set_background(
        &mut self,
        chat: &str,
        background: Option<(&[u8], &str, &[u8])>,
    ) -> Result<()>;
    /// Saves a backend's position in the source it observes. It commits with the
    /// transaction's events or not at all, so a restart resumes exactly after what was
    /// recorded.
    fn set_observer_cursor(&mut self, source: &str, cursor: &str) -> Result<()>;
    /// Notes that the change `id` of `source` (e.g. a chat.db message GUID) is recorded:
    /// `true` the first time, `false` if it already was — then it must not be recorded again.
    /// Commits with the transaction.
    fn mark_observed(&mut self, source: &str, id: &str) -> Result<bool>;
    /// Appends to the account's log and returns the new sequence (previous head + 1).
    fn append_event(&mut self, account: AccountId, event: NewEvent<'_>) -> Result<u64>;
    /// The record under `scope`, unless it was made before `not_before` (expired).
    fn idempotency_get(
        &mut self,
        scope: KeyScope<'_>,
        not_before: Timestamp,
    ) -> Result<Option<Recorded>>;
    /// Records (or replaces an expired) answer under `scope`, made at `at`. It commits with
    /// the transaction's changes or not at all.
    fn idempotency_put(
        &mut self,
        scope: KeyScope<'_>,
        record: &Recorded,
        at: Timestamp,
    ) -> Result<()>;
    /// The simulator's state in this transaction ([`crate::port::sim`]), if the store keeps
    /// it: only the simulated network ([`crate::port::RecordedNetwork`]) asks. The default: none.
    fn sim(&mut self) -> Option<&mut dyn SimTx> {
        None
    }
}

/// How a [`Change`] is stored: a kind code and an optional value. Stable: every store keeps
/// these numbers (and the JSON of the message kinds) on disk.
pub mod stored {
    use std::borrow::Cow;

    use crate::ids::Address;
    use crate::model::{Change, Message, Reaction, Timestamp};

    const DISPLAY_NAME: i64 = 1;
    const ADDED: i64 = 2;
    const REMOVED: i64 = 3;
    const LEFT: i64 = 4;
    const ICON_CHANGED: i64 = 5;
    const ICON_REMOVED: i64 = 6;
    /// The value is the message's JSON.
    const MESSAGE_RECEIVED: i64 = 10;
    /// The value is the change's JSON (`{"MessageEdited":{…}}`, …): what the kinds below do
    /// not cover (an edit with formatting, an emoji tapback), and every message change
    /// written before they existed.
    const MESSAGE_CHANGE: i64 = 11;
    /// A `message.received` whose message the store keeps apart, once for every member
    /// ([`crate::port::Tx::deliver_message`]): the value is the store's reference to it, and
    /// only that store decodes it ([`decode`] does not).
    pub const MESSAGE_DELIVERED: i64 = 12;
    // The common message changes in a compact form instead of JSON: a catch-up reads them by
    // the million, and decoding their JSON was ~4 % of its whole cost (BENCHMARKS.md, "M3").
    // Numbers first, each followed by one space; the message GUID (and an edit's text) last,
    // taken as they are, so they may hold any character.
    /// `message.unsent`: `"{retracted at} {message GUID}"`.
    const MESSAGE_UNSENT: i64 = 13;
    /// `message.read`: `"{read at} {message GUID}"`.
    const MESSAGE_READ: i64 = 14;
    /// `message.reactionAdded` with one of the six tapbacks: `"{tapback} {message GUID}"`, the
    /// tapback by name (`love`, …).
    const TAPBACK_ADDED: i64 = 15;
    /// `message.reactionRemoved`, as [`TAPBACK_ADDED`].
    const TAPBACK_REMOVED: i64 = 16;
    /// `message.edited` without formatting: `"{edited at} {GUID length in bytes} {message
    /// GUID}{text}"`.
    const MESSAGE_EDITED: i64 = 17;
    const CHAT_MARKED_READ: i64 = 20;
    const BACKGROUND_CHANGED: i64 = 21;
    const BACKGROUND_REMOVED: i64 = 22;

    /// `change` as (kind, value).
    #[inline]
    pub fn encode(change: &Change) -> (i64, Option<Cow<'_, str>>) {
        let json = |value: serde_json::Result<String>| {
            // Serialising plain data to a string cannot fail.
            Some(Cow::Owned(value.unwrap_or_default()))
        };
        match change {
            Change::DisplayNameChanged { display_name } => {
                (DISPLAY_NAME, Some(Cow::Borrowed(display_name)))
            }
            Change::ParticipantAdded { participant } => {
                (ADDED, Some(Cow::Borrowed(participant.as_str())))
            }
            Change::ParticipantRemoved { participant } => {
                (REMOVED, Some(Cow::Borrowed(participant.as_str())))
            }
            Change::ParticipantLeft { participant } => {
                (LEFT, Some(Cow::Borrowed(participant.as_str())))
            }
            Change::IconChanged => (ICON_CHANGED, None),
            Change::IconRemoved => (ICON_REMOVED, None),
            Change::MessageReceived { message } => {
                (MESSAGE_RECEIVED, json(serde_json::to_string(message)))
            }
            Change::MessageUnsent {
                message_guid,
                retracted_at,
            } => (
                MESSAGE_UNSENT,
                Some(Cow::Owned(format!("{} {message_guid}", retracted_at.0))),
            ),
            Change::MessageRead {
                message_guid,
                read_at,
            } => (
                MESSAGE_READ,
                Some(Cow::Owned(format!("{} {message_guid}", read_at.0))),
            ),
            Change::ReactionAdded {
                message_guid,
                reaction,
            } if !matches!(reaction, Reaction::Emoji(_)) => (
                TAPBACK_ADDED,
                Some(Cow::Owned(format!("{reaction} {message_guid}"))),
            ),
            Change::ReactionRemoved {
                message_guid,
                reaction,
            } if !matches!(reaction, Reaction::Emoji(_)) => (
                TAPBACK_REMOVED,
                Some(Cow::Owned(format!("{reaction} {message_guid}"))),
            ),
            Change::MessageEdited {
                message_guid,
                text,
                formatting,
                edited_at,
            } if formatting.is_empty() => (
                MESSAGE_EDITED,
                Some(Cow::Owned(format!(
                    "{} {} {message_guid}{text}",
                    edited_at.0,
                    message_guid.len()
                ))),
            ),
            Change::MessageEdited { .. }
            | Change::ReactionAdded { .. }
            | Change::ReactionRemoved { .. } => {
                (MESSAGE_CHANGE, json(serde_json::to_string(change)))
            }
            Change::ChatMarkedRead => (CHAT_MARKED_READ, None),
            Change::BackgroundChanged => (BACKGROUND_CHANGED, None),
            Change::BackgroundRemoved => (BACKGROUND_REMOVED, None),
        }
    }

    /// The change stored as (kind, value); `None` for a kind this version does not know, and
    /// for [`MESSAGE_DELIVERED`], which needs its store.
    #[inline]
    pub fn decode(kind: i64, value: Option<Cow<'_, str>>) -> Option<Change> {
        // An owned value moves into the change (one allocation per event read, not two); a
        // borrowed one is copied only where the change keeps it whole.
        let whole = |value: Option<Cow<'_, str>>| value.map(Cow::into_owned).unwrap_or_default();
        let participant = |value| Address::from_trusted(whole(value));
        Some(match kind {
            DISPLAY_NAME => Change::DisplayNameChanged {
                display_name: whole(value),
            },
            ADDED => Change::ParticipantAdded {
                participant: participant(value),
            },
            REMOVED => Change::ParticipantRemoved {
                participant: participant(value),
            },
            LEFT => Change::ParticipantLeft {
                participant: participant(value),
            },
            ICON_CHANGED => Change::IconChanged,
            ICON_REMOVED => Change::IconRemoved,
            MESSAGE_RECEIVED => Change::MessageReceived {
                message: Box::new(serde_json::from_str::<Message>(value.as_deref()?).ok()?),
            },
            MESSAGE_CHANGE => serde_json::from_str::<Change>(value.as_deref()?).ok()?,
            MESSAGE_UNSENT => {
                let (at, guid) = number(value.as_deref()?)?;
                Change::MessageUnsent {
                    message_guid: guid.to_owned(),
                    retracted_at: Timestamp(at),
                }
            }
            MESSAGE_READ => {
                let (at, guid) = number(value.as_deref()?)?;
                Change::MessageRead {
                    message_guid: guid.to_owned(),
                    read_at: Timestamp(at),
                }
            }
            TAPBACK_ADDED | TAPBACK_REMOVED => {
                let (name, guid) = value.as_deref()?.split_once(' ')?;
                let reaction = tapback(name)?;
                let message_guid = guid.to_owned();
                match kind {
                    TAPBACK_ADDED => Change::ReactionAdded {
                        message_guid,
                        reaction,
                    },
                    _ => Change::ReactionRemoved {
                        message_guid,
                        reaction,
                    },
                }
            }
            MESSAGE_EDITED => {
                let (at, rest) = number(value.as_deref()?)?;
                let (guid_len, rest) = number(rest)?;
                let (guid, text) = rest.split_at_checked(usize::try_from(guid_len).ok()?)?;
                Change::MessageEdited {
                    message_guid: guid.to_owned(),
                    text: text.to_owned(),
                    formatting: Vec::new(),
                    edited_at: Timestamp(at),
                }
            }
            CHAT_MARKED_READ => Change::ChatMarkedRead,
            BACKGROUND_CHANGED => Change::BackgroundChanged,
            BACKGROUND_REMOVED => Change::BackgroundRemoved,
            _ => return None,
        })
    }

    /// The number before the first space of `value`, and what follows that space.
    fn number(value: &str) -> Option<(i64, &str)> {
        let (number, rest) = value.split_once(' ')?;
        Some((number.parse().ok()?, rest))
    }

    /// One of the six tapbacks by the name [`TAPBACK_ADDED`] stores (an emoji is not one).
    fn tapback(name: &str) -> Option<Reaction> {
        Reaction::named(name).filter(|reaction| !matches!(reaction, Reaction::Emoji(_)))
    }

    /// A message row's JSON (see [`crate::port::Tx::put_message`]).
    pub fn encode_message(message: &Message) -> String {
        serde_json::to_string(message).unwrap_or_default()
    }

    /// A message row from its JSON; `None` if it is not one.
    pub fn decode_message(json: &str) -> Option<Message> {
        serde_json::from_str(json).ok()
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::model::TextFormat;

        #[test]
        fn every_kind_round_trips() {
            let message = Message {
                guid: "A".into(),
                text: "hi".into(),
                date_created: Timestamp(5),
                is_sent: true,
                sender: Some(Address::from_trusted("a@example.com".into())),
                formatting: vec![],
                reactions: vec![],
                ..Message::default()
            };
            for change in [
                Change::IconRemoved,
                Change::MessageReceived {
                    message: Box::new(message),
                },
                Change::ReactionAdded {
                    message_guid: "A".into(),
                    reaction: Reaction::Emoji("🎉".into()),
                },
                Change::MessageUnsent {
                    message_guid: "A".into(),
                    retracted_at: Timestamp(9),
                },
                // The compact kinds, with GUIDs and texts that hold their separators.
                Change::MessageUnsent {
                    message_guid: "p:0/A B".into(),
                    retracted_at: Timestamp(-9),
                },
                Change::MessageRead {
                    message_guid: "A B".into(),
                    read_at: Timestamp(1_700_000_000_123),
                },
                Change::ReactionAdded {
                    message_guid: "A B".into(),
                    reaction: Reaction::Question,
                },
                Change::ReactionRemoved {
                    message_guid: "A".into(),
                    reaction: Reaction::Love,
                },
                Change::ReactionRemoved {
                    message_guid: "A".into(),
                    reaction: Reaction::Emoji("love".into()),
                },
                Change::MessageEdited {
                    message_guid: "A 1".into(),
                    text: " 2 é, new".into(),
                    formatting: vec![],
                    edited_at: Timestamp(3),
                },
                Change::MessageEdited {
                    message_guid: "A".into(),
                    text: "".into(),
                    formatting: vec![],
                    edited_at: Timestamp(3),
                },
                Change::MessageEdited {
                    message_guid: "A".into(),
                    text: "bold".into(),
                    formatting: vec![TextFormat {
                        style: "bold".into(),
                        start: 0,
                        length: 4,
                        effect_name: None,
                    }],
                    edited_at: Timestamp(3),
                },
                Change::ChatMarkedRead,
                Change::BackgroundRemoved,
            ] {
                let (kind, value) = encode(&change);
                let back = decode(kind, value);
                assert_eq!(back.as_ref(), Some(&change));
            }
        }

        /// What an earlier version wrote as JSON is still read, and a compact value that is
        /// not one is refused rather than misread.
        #[test]
        fn message_changes_written_as_json_are_read_and_bad_values_refused() {
            let change = Change::MessageRead {
                message_guid: "A".into(),
                read_at: Timestamp(7),
            };
            let json = serde_json::to_string(&change).unwrap();
            assert_eq!(decode(MESSAGE_CHANGE, Some(json.into())), Some(change));
            for (kind, value) in [
                (MESSAGE_READ, "7"),
                (MESSAGE_READ, "x A"),
                (TAPBACK_ADDED, "🎉 A"),
                (TAPBACK_REMOVED, "emoji A"),
                (MESSAGE_EDITED, "3 9 A"),
                (MESSAGE_EDITED, "3 1"),
            ] {
                assert_eq!(decode(kind, Some(value.into())), None, "{kind} {value:?}");
            }
        }
    }
}
