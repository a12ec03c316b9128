//! The rules for messages: what is said in a chat, and what happens to it afterwards (tapbacks,
//! edits, unsends, reads). Applied inside one write transaction, like the group rules.
//!
//! Every local account in a chat keeps its own copy of each message (its view: `is_from_me`,
//! its read state, the chat's GUID as it sees it) and gets each change as an event in its log,
//! in the same per-account sequence as group events. A message's place in an account's order
//! is the sequence of the event that delivered it, so listing newest first and paging by place
//! stay stable while new messages arrive.
//!
//! Apple's limits modelled, because a bot that streams answers by editing hits them on a real
//! line: an edit within 15 minutes of sending and at most 5 edits; an unsend within 2 minutes;
//! only the sender edits or unsends; one tapback per person per message.

use crate::command::{MessageOp, NewMessage};
use crate::error::{Error, Reason, Result};
use crate::ids::{Address, ChatGuid, ChatKind};
use crate::model::{AccountId, AppliedReaction, Change, Message, Outcome, Reaction, Timestamp};
use crate::port::backend::RecordedNetwork;
use crate::port::tx::{Delivery, MessageQuery, NewEvent, Reader, Tx};

use super::rules::{audience, visible_group};

/// How long after sending a message can be edited.
pub const EDIT_WINDOW_SECS: i64 = 15 * 60;
/// How many times a message can be edited.
pub const MAX_EDITS: u32 = 5;
/// How long after sending a message can be unsent.
pub const UNSEND_WINDOW_SECS: i64 = 2 * 60;
/// Page size when none is given.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page size accepted.
pub const MAX_PAGE_SIZE: usize = 1000;

/// One local account's view of a chat.
#[derive(Debug, Clone)]
pub(super) struct View {
    pub(super) account: AccountId,
    pub(super) address: Address,
    pub(super) chat: ChatGuid,
}

/// Applies `op` by `actor` (an account's address, or a simulated person) in `chat`, on a
/// recorded network.
pub(crate) fn execute(
    tx: &mut dyn Tx,
    network: &dyn RecordedNetwork,
    actor: &Address,
    chat: &ChatGuid,
    op: &MessageOp,
) -> Result<Outcome> {
    let now = tx.now();
    match op {
        MessageOp::Send(new) => {
            let views = views(tx, actor, chat, Some(network))?;
            send(tx, actor, chat, &views, new, now).map(|m| Outcome::Message(Box::new(m)))
        }
        MessageOp::React {
            message,
            reaction,
            set,
        } => {
            let views = views(tx, actor, chat, None)?;
            react(tx, actor, chat, &views, message, reaction, *set, now)
                .map(|m| Outcome::Message(Box::new(m)))
        }
        MessageOp::Edit { message, text } => {
            let views = views(tx, actor, chat, None)?;
            edit(tx, actor, chat, &views, message, text, now).map(|m| Outcome::Message(Box::new(m)))
        }
        MessageOp::Unsend { message } => {
            let views = views(tx, actor, chat, None)?;
            unsend(tx, actor, chat, &views, message, now).map(|_| Outcome::Empty)
        }
        MessageOp::MarkRead => {
            let views = views(tx, actor, chat, None)?;
            mark_read(tx, actor, chat, &views, now).map(|()| Outcome::Empty)
        }
        MessageOp::SetBackground { data, mime, hash } => {
            let views = views(tx, actor, chat, None)?;
            let key = chat_key(actor, chat)?;
            // The same image again changes nothing.
            if tx.background_hash(&key)?.as_deref() != Some(hash.as_slice()) {
                tx.set_background(&key, Some((data, mime, hash)))?;
                notify_chat(tx, actor, &views, &Change::BackgroundChanged, now)?;
            }
            Ok(Outcome::Empty)
        }
        MessageOp::RemoveBackground => {
            let views = views(tx, actor, chat, None)?;
            let key = chat_key(actor, chat)?;
            if tx.background_hash(&key)?.is_some() {
                tx.set_background(&key, None)?;
                notify_chat(tx, actor, &views, &Change::BackgroundRemoved, now)?;
            }
            Ok(Outcome::Empty)
        }
        // Sharing a name and photo shows on the other side's devices only: nothing of it is
        // in the API's model (no event, no field of a chat), so the chat is checked and the
        // request accepted, as a real line answers it.
        MessageOp::ShareContactInfo => {
            views(tx, actor, chat, None)?;
            Ok(Outcome::Empty)
        }
    }
}

/// The key of what a chat's members share (its background): a group's identifier, or a
/// direct chat's two addresses in order, so both sides name it alike.
pub fn chat_key(me: &Address, chat: &ChatGuid) -> Result<String> {
    Ok(match chat.kind() {
        ChatKind::Group => format!("group:{}", chat.id()),
        ChatKind::Direct => {
            let other = Address::parse(chat.id()).map_err(|_| Error::chat_not_found(chat))?;
            let (a, b) = if me.as_str() <= other.as_str() {
                (me.as_str(), other.as_str())
            } else {
                (other.as_str(), me.as_str())
            };
            format!("direct:{a}|{b}")
        }
    })
}

/// Appends a chat event by `actor` to the log of everyone in the chat.
fn notify_chat(
    tx: &mut dyn Tx,
    actor: &Address,
    views: &[View],
    change: &Change,
    now: Timestamp,
) -> Result<()> {
    for view in views {
        append(tx, actor, view, change, now)?;
    }
    Ok(())
}

/// Sends `new` as `actor` (the first message of `chats.create`).
pub(crate) fn send_new(
    tx: &mut dyn Tx,
    network: &dyn RecordedNetwork,
    actor: &Address,
    chat: &ChatGuid,
    new: &NewMessage,
) -> Result<Message> {
    let views = views(tx, actor, chat, Some(network))?;
    let now = tx.now();
    send(tx, actor, chat, &views, new, now)
}

/// Who a message `account` sends in `chat` reaches: the other members of a group, the other
/// person of a direct chat; `None` for a group the account cannot see (the rules then refuse
/// the message, and no limit should answer first).
pub(super) fn recipients(
    tx: &mut dyn Tx,
    account: AccountId,
    chat: &ChatGuid,
) -> Result<Option<Vec<Address>>> {
    match chat.kind() {
        ChatKind::Direct => Ok(Address::parse(chat.id()).ok().map(|peer| vec![peer])),
        ChatKind::Group => {
            let Some(group) = tx.group(chat.id())? else {
                return Ok(None);
            };
            let me = tx.account_address(account)?;
            let mut members = tx.members(group.key)?;
            if !members.contains(&me) {
                return Ok(None);
            }
            members.retain(|m| *m != me);
            Ok(Some(members))
        }
    }
}

/// Most of an account's messages a send-limit check reads: a day of a line that the daily
/// limit lets send at most a few thousand, and what it received meanwhile.
const LIMIT_HISTORY: usize = 50_000;

/// When each of `account`'s messages created since `since` was created, and whether it is
/// its own, for the send/receive ratio of send limits (newest first, at most
/// [`LIMIT_HISTORY`]).
pub(super) fn times_since(
    tx: &mut dyn Tx,
    account: AccountId,
    since: Timestamp,
) -> Result<Vec<(Timestamp, bool)>> {
    tx.message_times(account, since, LIMIT_HISTORY)
}

/// The local accounts that keep `chat` (as `actor` names it), each with its view. A group
/// must include `actor`. A direct chat is with the address in its GUID. A send on a recorded
/// network (`start`: that network) may start it, for both sides, if the network says that
/// address is reachable; otherwise (`None`: any other action, or an observed network, where a
/// chat is started on the device) `actor`'s account must already have it.
pub(super) fn views(
    tx: &mut dyn Tx,
    actor: &Address,
    chat: &ChatGuid,
    start: Option<&dyn RecordedNetwork>,
) -> Result<Vec<View>> {
    match chat.kind() {
        ChatKind::Group => {
            let (_, members) = visible_group(tx, actor, chat)?;
            Ok(audience(tx, &members)?
                .into_iter()
                .map(|(account, address)| View {
                    account,
                    address,
                    chat: chat.clone(),
                })
                .collect())
        }
        ChatKind::Direct => {
            let other = Address::parse(chat.id()).map_err(|_| Error::chat_not_found(chat))?;
            if &other == actor {
                return Err(Error::invalid("a direct chat is with someone else")
                    .with("field", "chatGuid")
                    .with("chatguid", chat));
            }
            let people = [actor.clone(), other.clone()];
            let audience = audience(tx, &people)?;
            let mine = audience.iter().find(|(_, a)| a == actor).map(|(id, _)| *id);
            if let Some(network) = start {
                network.reachable(tx, &other)?;
                let now = tx.now();
                for (account, address) in &audience {
                    let peer = if address == actor { &other } else { actor };
                    tx.ensure_direct_chat(*account, peer, now)?;
                }
            } else if let Some(account) = mine {
                if !tx.has_direct_chat(account, &other)? {
                    return Err(Error::chat_not_found(chat));
                }
            }
            let mut keeps = Vec::with_capacity(audience.len());
            for (account, address) in audience {
                // Without a send the other side may not have the chat yet (`chats.create`
                // of a direct chat makes only mine): it sees nothing of a chat it does not have.
                let peer = if &address == actor { &other } else { actor };
                if start.is_some() || tx.has_direct_chat(account, peer)? {
                    keeps.push((account, address));
                }
            }
            Ok(keeps
                .into_iter()
                .map(|(account, address)| {
                    let peer = if &address == actor { &other } else { actor };
                    View {
                        account,
                        chat: ChatGuid::direct(peer),
                        address,
                    }
                })
                .collect())
        }
    }
}

fn send(
    tx: &mut dyn Tx,
    actor: &Address,
    chat: &ChatGuid,
    views: &[View],
    new: &NewMessage,
    now: Timestamp,
) -> Result<Message> {
    if let Some(reply_to) = &new.reply_to {
        if holders(tx, views, reply_to)?.is_empty() {
            return Err(Error::message_not_found(reply_to)
                .with("field", "replyTo")
                .with("chatguid", chat));
        }
    }
    let guid = crate::clock::guid(tx.fresh_id()?);
    // The sender's view; each member's copy differs only in what `Delivery` says.
    let message = Message {
        guid,
        text: new.text.clone(),
        subject: new.subject.clone(),
        date_created: now,
        is_from_me: true,
        is_sent: true,
        chat_guid: Some(chat.clone()),
        sender: None,
        effect_id: new.effect_id.clone(),
        reply_to: new.reply_to.clone(),
        formatting: new.formatting.clone(),
        date_read: None,
        date_edited: None,
        edits: 0,
        date_retracted: None,
        reactions: Vec::new(),
    };
    let copies: Vec<Delivery<'_>> = views
        .iter()
        .map(|view| Delivery {
            account: view.account,
            chat_guid: &view.chat,
            is_from_me: &view.address == actor,
            date_read: None,
        })
        .collect();
    tx.deliver_message(&message, actor, now, &copies)?;
    // A simulated person has no copy of their own: answer with the sender's view.
    Ok(match copies.iter().find(|c| c.is_from_me) {
        Some(mine) => mine.copy_of(&message, actor),
        None => message,
    })
}

/// The copies of message `guid` in these views (each in the view's own chat), with their
/// places.
pub(super) fn holders(
    tx: &mut dyn Tx,
    views: &[View],
    guid: &str,
) -> Result<Vec<(View, u64, Message)>> {
    let mut found = Vec::new();
    for view in views {
        if let Some((place, message)) = tx.message(view.account, guid)? {
            if message.chat_guid.as_ref() == Some(&view.chat) {
                found.push((view.clone(), place, message));
            }
        }
    }
    Ok(found)
}

/// The copies of the message `guid` that `actor` acts on: `messageNotFound` unless `actor`
/// can see it (in its own view, for an account).
pub(super) fn target(
    tx: &mut dyn Tx,
    actor: &Address,
    chat: &ChatGuid,
    views: &[View],
    guid: &str,
) -> Result<Vec<(View, u64, Message)>> {
    let found = holders(tx, views, guid)?;
    let actor_has_view = views.iter().any(|v| &v.address == actor);
    let visible = if actor_has_view {
        found.iter().any(|(v, _, _)| &v.address == actor)
    } else {
        !found.is_empty()
    };
    if !visible {
        return Err(Error::message_not_found(guid)
            .with("field", "messageGuid")
            .with("chatguid", chat));
    }
    Ok(found)
}

/// Who sent a message, from any copy of it.
fn author(view: &View, message: &Message) -> Address {
    if message.is_from_me {
        view.address.clone()
    } else {
        message
            .sender
            .clone()
            .unwrap_or_else(|| view.address.clone())
    }
}

/// The copy `actor` sees, for the answer: its own, else the sender's view of the first copy.
fn actor_copy(actor: &Address, copies: &[(View, u64, Message)]) -> Option<Message> {
    copies
        .iter()
        .find(|(v, _, _)| &v.address == actor)
        .or_else(|| copies.first())
        .map(|(_, _, m)| m.clone())
}

pub(super) fn unsent(guid: &str, chat: &ChatGuid) -> Error {
    Error::precondition(Reason::MessageUnsent, format!("message {guid} was unsent"))
        .with("messageguid", guid)
        .with("chatguid", chat)
}

/// Appends `change` by `actor` to every holder's log.
pub(super) fn notify(
    tx: &mut dyn Tx,
    actor: &Address,
    copies: &[(View, u64, Message)],
    change: &Change,
    now: Timestamp,
) -> Result<()> {
    for (view, _, _) in copies {
        append(tx, actor, view, change, now)?;
    }
    Ok(())
}

/// Appends `change` by `actor` to the log of `view`'s account.
fn append(
    tx: &mut dyn Tx,
    actor: &Address,
    view: &View,
    change: &Change,
    now: Timestamp,
) -> Result<u64> {
    tx.append_event(
        view.account,
        NewEvent {
            chat_guid: &view.chat,
            occurred_at: now,
            is_from_me: &view.address == actor,
            actor: Some(actor),
            change,
        },
    )
}

#[allow(clippy::too_many_arguments)]
fn react(
    tx: &mut dyn Tx,
    actor: &Address,
    chat: &ChatGuid,
    views: &[View],
    guid: &str,
    reaction: &Reaction,
    set: bool,
    now: Timestamp,
) -> Result<Message> {
    let mut copies = target(tx, actor, chat, views, guid)?;
    let Some(first) = copies.first().map(|(_, _, m)| m.clone()) else {
        return Err(Error::message_not_found(guid));
    };
    if first.is_unsent() {
        return Err(unsent(guid, chat));
    }
    let current = first
        .reactions
        .iter()
        .find(|r| &r.sender == actor)
        .map(|r| r.reaction.clone());
    let changes = tapback_changes(guid, current.as_ref(), reaction, set);
    if changes.is_empty() {
        return actor_copy(actor, &copies).ok_or_else(|| Error::message_not_found(guid));
    }
    for (view, place, message) in &mut copies {
        message.reactions.retain(|r| &r.sender != actor);
        if set {
            message.reactions.push(AppliedReaction {
                reaction: reaction.clone(),
                sender: actor.clone(),
                is_from_me: &view.address == actor,
                date_created: now,
            });
        }
        tx.put_message(view.account, *place, message)?;
    }
    for change in &changes {
        notify(tx, actor, &copies, change, now)?;
    }
    actor_copy(actor, &copies).ok_or_else(|| Error::message_not_found(guid))
}

/// The events a tapback request makes, given the person's current tapback on the message:
/// one per person, so setting another replaces it (removed, then added); the same one again,
/// or removing one that is not there, changes nothing.
pub(super) fn tapback_changes(
    guid: &str,
    current: Option<&Reaction>,
    reaction: &Reaction,
    set: bool,
) -> Vec<Change> {
    let added = || Change::ReactionAdded {
        message_guid: guid.to_owned(),
        reaction: reaction.clone(),
    };
    let removed = |old: &Reaction| Change::ReactionRemoved {
        message_guid: guid.to_owned(),
        reaction: old.clone(),
    };
    match (current, set) {
        (Some(old), true) if old == reaction => Vec::new(),
        (Some(old), true) => vec![removed(old), added()],
        (None, true) => vec![added()],
        (Some(old), false) if old == reaction => vec![removed(old)],
        (_, false) => Vec::new(),
    }
}

/// Checks that `actor` sent the message and it was not unsent.
pub(super) fn own_live_message(
    actor: &Address,
    chat: &ChatGuid,
    guid: &str,
    copies: &[(View, u64, Message)],
) -> Result<Message> {
    let Some((view, _, message)) = copies.first() else {
        return Err(Error::message_not_found(guid));
    };
    if &author(view, message) != actor {
        return Err(Error::precondition(
            Reason::NotFromMe,
            format!("only the sender can change message {guid}"),
        )
        .with("messageguid", guid)
        .with("chatguid", chat));
    }
    if message.is_unsent() {
        return Err(unsent(guid, chat));
    }
    Ok(message.clone())
}

/// Apple's edit limits: within [`EDIT_WINDOW_SECS`] of sending, at most [`MAX_EDITS`] times.
pub(super) fn edit_allowed(message: &Message, guid: &str, now: Timestamp) -> Result<()> {
    if now.seconds() - message.date_created.seconds() > EDIT_WINDOW_SECS {
        return Err(Error::precondition(
            Reason::EditWindowClosed,
            format!(
                "message {guid} was sent more than {} minutes ago and can no longer be edited",
                EDIT_WINDOW_SECS / 60
            ),
        )
        .with("messageguid", guid)
        .with("limit", EDIT_WINDOW_SECS));
    }
    if message.edits >= MAX_EDITS {
        return Err(Error::precondition(
            Reason::TooManyEdits,
            format!("message {guid} was already edited {MAX_EDITS} times"),
        )
        .with("messageguid", guid)
        .with("limit", MAX_EDITS));
    }
    Ok(())
}

fn edit(
    tx: &mut dyn Tx,
    actor: &Address,
    chat: &ChatGuid,
    views: &[View],
    guid: &str,
    text: &str,
    now: Timestamp,
) -> Result<Message> {
    let mut copies = target(tx, actor, chat, views, guid)?;
    let message = own_live_message(actor, chat, guid, &copies)?;
    edit_allowed(&message, guid, now)?;
    for (view, place, message) in &mut copies {
        message.text = text.to_owned();
        // Ranges of the old text mean nothing in the new one.
        message.formatting.clear();
        message.date_edited = Some(now);
        message.edits += 1;
        tx.put_message(view.account, *place, message)?;
    }
    let change = Change::MessageEdited {
        message_guid: guid.to_owned(),
        text: text.to_owned(),
        formatting: Vec::new(),
        edited_at: now,
    };
    notify(tx, actor, &copies, &change, now)?;
    actor_copy(actor, &copies).ok_or_else(|| Error::message_not_found(guid))
}

/// Apple's unsend limit: within [`UNSEND_WINDOW_SECS`] of sending.
pub(super) fn unsend_allowed(message: &Message, guid: &str, now: Timestamp) -> Result<()> {
    if now.seconds() - message.date_created.seconds() > UNSEND_WINDOW_SECS {
        return Err(Error::precondition(
            Reason::UnsendWindowClosed,
            format!(
                "message {guid} was sent more than {} minutes ago and can no longer be unsent",
                UNSEND_WINDOW_SECS / 60
            ),
        )
        .with("messageguid", guid)
        .with("limit", UNSEND_WINDOW_SECS));
    }
    Ok(())
}

fn unsend(
    tx: &mut dyn Tx,
    actor: &Address,
    chat: &ChatGuid,
    views: &[View],
    guid: &str,
    now: Timestamp,
) -> Result<()> {
    let mut copies = target(tx, actor, chat, views, guid)?;
    let message = own_live_message(actor, chat, guid, &copies)?;
    unsend_allowed(&message, guid, now)?;
    for (view, place, message) in &mut copies {
        // The content is gone for everyone; what remains is that something was unsent.
        message.text.clear();
        message.subject = None;
        message.formatting.clear();
        message.effect_id = None;
        message.date_retracted = Some(now);
        tx.put_message(view.account, *place, message)?;
    }
    let change = Change::MessageUnsent {
        message_guid: guid.to_owned(),
        retracted_at: now,
    };
    notify(tx, actor, &copies, &change, now)
}

/// Every message of `view`'s chat matching `filter`, newest first.
fn all_in_chat(
    tx: &mut dyn Tx,
    view: &View,
    is_from_me: Option<bool>,
    is_read: Option<bool>,
) -> Result<Vec<(u64, Message)>> {
    let mut all = Vec::new();
    let mut below = None;
    loop {
        let page = tx.list_messages(
            view.account,
            &MessageQuery {
                chat: Some(view.chat.clone()),
                below,
                limit: MAX_PAGE_SIZE,
                is_from_me,
                is_read,
                created_before: None,
                created_after: None,
            },
        )?;
        let full = page.len() == MAX_PAGE_SIZE;
        below = page.last().map(|(place, _)| *place);
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}

/// `actor` read everything received in the chat. Its own view marks the messages read and
/// logs `chat.markedRead` (if anything was unread); in a direct chat, the other side gets a
/// read receipt (`message.read`) for each of its messages not yet read. Groups send no
/// receipts, as in iMessage by default.
fn mark_read(
    tx: &mut dyn Tx,
    actor: &Address,
    chat: &ChatGuid,
    views: &[View],
    now: Timestamp,
) -> Result<()> {
    // What the actor just read, when it keeps the chat itself: in a direct chat those are
    // exactly the other side's messages still waiting for a receipt, so they are looked up
    // by GUID rather than by reading through everything the other side ever sent.
    let mut newly_read = None;
    if let Some(mine) = views.iter().find(|v| &v.address == actor) {
        let unread = all_in_chat(tx, mine, Some(false), Some(false))?;
        newly_read = Some(
            unread
                .iter()
                .map(|(_, m)| m.guid.clone())
                .collect::<Vec<_>>(),
        );
        if !unread.is_empty() {
            for (place, mut message) in unread {
                message.date_read = Some(now);
                tx.put_message(mine.account, place, &message)?;
            }
            tx.append_event(
                mine.account,
                NewEvent {
                    chat_guid: &mine.chat,
                    occurred_at: now,
                    is_from_me: true,
                    actor: Some(actor),
                    change: &Change::ChatMarkedRead,
                },
            )?;
        }
    }
    if chat.kind() == ChatKind::Direct {
        for other in views.iter().filter(|v| &v.address != actor) {
            let sent = match &newly_read {
                Some(guids) => {
                    let mut sent = Vec::with_capacity(guids.len());
                    for guid in guids {
                        if let Some(copy) = tx.message(other.account, guid)? {
                            sent.push(copy);
                        }
                    }
                    sent
                }
                // A simulated person keeps no copies: look through what it was sent.
                None => all_in_chat(tx, other, Some(true), None)?,
            };
            for (place, mut message) in sent {
                let theirs = message.is_from_me && message.chat_guid.as_ref() == Some(&other.chat);
                if !theirs || message.date_read.is_some() || message.is_unsent() {
                    continue;
                }
                message.date_read = Some(now);
                tx.put_message(other.account, place, &message)?;
                tx.append_event(
                    other.account,
                    NewEvent {
                        chat_guid: &other.chat,
                        occurred_at: now,
                        is_from_me: false,
                        actor: Some(actor),
                        change: &Change::MessageRead {
                            message_guid: message.guid.clone(),
                            read_at: now,
                        },
                    },
                )?;
            }
        }
    }
    Ok(())
}

/// Read-side operations on messages.
pub mod query {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::engine::rules::query::get_chat;

    /// What a listing asks for, as the wire gives it.
    #[derive(Debug, Clone, Default)]
    pub struct Listing {
        /// `None` or 0: [`DEFAULT_PAGE_SIZE`].
        pub page_size: Option<i64>,
        pub page_token: Option<String>,
        pub is_from_me: Option<bool>,
        pub is_read: Option<bool>,
        pub before: Option<Timestamp>,
        pub after: Option<Timestamp>,
    }

    /// One page, newest first, and the token of the next (`None`: this is the last).
    pub type Page = (Vec<Message>, Option<String>);

    /// Whether the chat has a background, as `account` sees it.
    pub fn has_background<R: Reader + ?Sized>(
        r: &mut R,
        account: AccountId,
        chat: &str,
    ) -> Result<bool> {
        let chat = get_chat(r, account, chat)?.guid;
        let me = r.account_address(account)?;
        Ok(r.background_hash(&chat_key(&me, &chat)?)?.is_some())
    }

    /// The account's copy of message `guid`.
    pub fn get_message<R: Reader + ?Sized>(
        r: &mut R,
        account: AccountId,
        guid: &str,
    ) -> Result<Message> {
        let guid = crate::command::message_guid(guid, "messageGuid")?;
        r.message(account, &guid)?
            .map(|(_, m)| m)
            .ok_or_else(|| Error::message_not_found(&guid).with("field", "messageGuid"))
    }

    /// One page of the account's messages in `chat` (or in every chat), newest first.
    pub fn list<R: Reader + ?Sized>(
        r: &mut R,
        account: AccountId,
        chat: Option<&str>,
        listing: &Listing,
    ) -> Result<Page> {
        let chat = match chat {
            Some(chat) => Some(get_chat(r, account, chat)?.guid),
            None => None,
        };
        let size = match listing.page_size {
            None | Some(0) => DEFAULT_PAGE_SIZE,
            Some(n) if n > 0 && n as u64 <= MAX_PAGE_SIZE as u64 => n as usize,
            Some(n) => {
                return Err(
                    Error::invalid(format!("pageSize {n} is outside 1..={MAX_PAGE_SIZE}"))
                        .with("field", "pageSize")
                        .because(Reason::OutOfRange)
                        .with("limit", MAX_PAGE_SIZE),
                )
            }
        };
        let scope = scope_of(chat.as_ref());
        let below = match listing.page_token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => Some(parse_token(token, &scope)?),
            None => None,
        };
        let mut page = r.list_messages(
            account,
            &MessageQuery {
                chat,
                below,
                limit: size + 1,
                is_from_me: listing.is_from_me,
                is_read: listing.is_read,
                created_before: listing.before,
                created_after: listing.after,
            },
        )?;
        let next = if page.len() > size {
            page.truncate(size);
            page.last().map(|(place, _)| token(*place, &scope))
        } else {
            None
        };
        Ok((page.into_iter().map(|(_, m)| m).collect(), next))
    }

    /// What a token is bound to: one chat, or the recent messages of every chat.
    fn scope_of(chat: Option<&ChatGuid>) -> String {
        let scope = chat.map_or_else(|| "*".to_owned(), ToString::to_string);
        let digest = Sha256::digest(scope.as_bytes());
        digest[..4].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn token(place: u64, scope: &str) -> String {
        format!("{place:x}.{scope}")
    }

    fn parse_token(token: &str, scope: &str) -> Result<u64> {
        let invalid = |why: &str| {
            Error::invalid(format!("invalid pageToken: {why}"))
                .with("field", "pageToken")
                .because(Reason::InvalidPageToken)
        };
        let (place, bound) = token
            .split_once('.')
            .ok_or_else(|| invalid("not a token this server handed out"))?;
        let place = u64::from_str_radix(place, 16)
            .map_err(|_| invalid("not a token this server handed out"))?;
        if bound != scope {
            return Err(invalid("it belongs to another listing (another chat?)"));
        }
        Ok(place)
    }
}
