//! Messages observed on a real network (a Mac's chat.db): what was said and what happened to
//! it afterwards, recorded for every local account that keeps the chat, exactly as our own
//! message writes are (the per-account copies and events of [`super::messages`]).
//!
//! The observed record is the truth (`Checks::Trust` for messages): nothing is refused for
//! Apple's windows or for who may do what, because it already happened. What cannot be placed
//! (a tapback on a message nobody here holds, a chat no local account keeps) is skipped with a
//! warning, so one odd row cannot stop the stream. Each item carries an id in its source and
//! is recorded at most once (`Tx::mark_observed`; on a source's first read a message said is
//! recorded without its id, see [`ObservedMessages::first_read`]), with the source's cursor
//! saved in the same transaction: exactly once across restarts.

use std::collections::hash_map::{Entry, HashMap};
use std::sync::Arc;

use crate::command::{Command, MessageOp};
use crate::error::{Error, ErrorKind, Result};
use crate::idempotency::{self, Keyed};
use crate::ids::{Address, ChatGuid, ChatKind};
use crate::model::{AccountId, AppliedReaction, Change, Message, Outcome, Reaction, Timestamp};
use crate::port::backend::ObservedNetwork;
use crate::port::tx::{Delivery, NewEvent, Tx};

use super::messages::{
    edit_allowed, holders, notify, own_live_message, target, unsend_allowed, unsent,
    views as message_views, View,
};
use super::rules::audience;
use super::Engine;

/// What happened to a message, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageEvent {
    /// A message was said (or, when importing history, had been: it comes with what happened
    /// to it since, so that it is stored as it is now).
    Received {
        guid: String,
        text: String,
        subject: Option<String>,
        effect_id: Option<String>,
        reply_to: Option<String>,
        /// For an incoming message: when I read it. For one of mine in a direct chat: when the
        /// other side read it.
        read_at: Option<Timestamp>,
        edited_at: Option<Timestamp>,
        retracted_at: Option<Timestamp>,
    },
    /// The actor set (`set`) or removed a tapback on `target`.
    Reaction {
        target: String,
        reaction: Reaction,
        set: bool,
    },
    /// The actor (its sender) changed the text of `target`.
    Edited { target: String, text: String },
    /// The actor (its sender) unsent `target`.
    Unsent { target: String },
    /// The actor read `target` (a read receipt, direct chats only).
    Read { target: String },
    /// The actor (`me`) read these messages it received in the chat, each at its time, on
    /// this device or another: what `chats.markRead` does on the simulator (each message read,
    /// one `chat.markedRead` when anything was unread). No receipts are sent: the network
    /// already did whatever it does for a read.
    MarkedRead { read: Vec<(String, Timestamp)> },
}

/// One observed message event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedMessage {
    /// The observing account's address: the chat is named as it sees it.
    pub me: Address,
    /// A group (`any;+;…`) or a direct chat with someone (`any;-;ADDRESS`).
    pub chat: ChatGuid,
    /// Who said or did it (`me` for my own).
    pub actor: Address,
    pub at: Timestamp,
    pub event: MessageEvent,
}

/// What one read of the network found, recorded in one transaction.
#[derive(Debug, Clone, Default)]
pub struct ObservedMessages {
    /// Names the source, for its cursor and its ids (e.g. `chatdb.messages`).
    pub source: String,
    /// Where the next read resumes; saved with the events.
    pub cursor: String,
    /// In the order they happened, each with its id in the source: an id recorded before is
    /// skipped.
    pub items: Vec<(String, ObservedMessage)>,
    /// The source is read from its beginning for the first time and its cursor alone makes
    /// the read exactly-once (it says how far a read cut short got): a message said
    /// ([`MessageEvent::Received`]) is recorded without its id, which saves a write per
    /// message of a long history; read again (a renumbered source read from the beginning),
    /// it is known by its GUID in the account's messages. Other events keep their ids.
    pub first_read: bool,
}

impl Engine {
    /// Records observed messages (see the module doc) and the cursor in one transaction.
    /// Returns how many items were recorded now.
    pub async fn record_messages(&self, batch: ObservedMessages) -> Result<usize> {
        let recorded = self
            .record_history(vec![super::observe::ObservedPart::Messages(batch)])
            .await?;
        Ok(recorded.iter().map(|(count, _)| count).sum())
    }
}

/// What the checking transaction of a message write found.
enum Step {
    /// The key was used before: this is the first answer.
    Replay(Result<Outcome>),
    /// The rules refused (remembered under the key, like any final answer).
    Refused(Result<Outcome>),
    /// Every rule passed: carry it out.
    Go { actor: Address },
}

impl Engine {
    /// A message write on an observed network, which carries actions out itself: the same
    /// rules as on the simulator, checked in a transaction that changes nothing; then the
    /// network carries the action out and returns once it was observed and recorded; the answer is read after it
    /// (the message as the account now sees it).
    pub(super) async fn execute_observed_message(
        &self,
        network: Arc<dyn ObservedNetwork>,
        account: AccountId,
        key: Option<String>,
        command: Command,
    ) -> Result<Outcome> {
        let Command::Message { chat, op } = command.clone() else {
            return Err(Error::internal());
        };
        let keyed = Keyed::new(key, &command).map(Arc::new);
        let ttl = self.config.idempotency_ttl;
        let (tx_step, rx_step) = tokio::sync::oneshot::channel();
        let step_keyed = keyed.clone();
        let (step_chat, step_op) = (chat.clone(), op.clone());
        self.store
            .write(Box::new(move |tx| {
                let step = (|| -> Result<Step> {
                    if let Some(keyed) = step_keyed.as_deref() {
                        if let Some(first) = idempotency::replay(tx, account, keyed, ttl)? {
                            return Ok(Step::Replay(first));
                        }
                    }
                    let actor = tx.account_address(account)?;
                    match check(tx, &actor, &step_chat, &step_op) {
                        Ok(()) => Ok(Step::Go { actor }),
                        Err(err)
                            if matches!(err.kind, ErrorKind::Unavailable | ErrorKind::Internal) =>
                        {
                            Err(err)
                        }
                        Err(err) => {
                            let refused = Err(err);
                            if let Some(keyed) = step_keyed.as_deref() {
                                idempotency::remember(tx, account, keyed, &refused)?;
                            }
                            Ok(Step::Refused(refused))
                        }
                    }
                })()?;
                let _ = tx_step.send(step);
                Ok(Outcome::Empty)
            }))
            .await?;
        let actor = match rx_step.await.map_err(|_| Error::internal())? {
            Step::Replay(answer) | Step::Refused(answer) => return answer,
            Step::Go { actor } => actor,
        };
        let answer = match network.carry_out_message(&chat, &actor, &op).await {
            Ok(sent) => match (&op, sent) {
                (MessageOp::Send(_), Some(guid)) => self
                    .get_message(account, guid)
                    .await
                    .map(|m| Outcome::Message(Box::new(m))),
                (MessageOp::React { message, .. } | MessageOp::Edit { message, .. }, _) => self
                    .get_message(account, message.clone())
                    .await
                    .map(|m| Outcome::Message(Box::new(m))),
                _ => Ok(Outcome::Empty),
            },
            Err(err) => Err(err),
        };
        if let Some(keyed) = keyed {
            let remembered = answer.clone();
            self.store
                .write(Box::new(move |tx| {
                    idempotency::remember(tx, account, &keyed, &remembered)?;
                    Ok(Outcome::Empty)
                }))
                .await?;
        }
        answer
    }
}

/// The rules of a message write, as on the simulator ([`super::messages`]), without writing:
/// the chat is visible, a reply's target and an action's message are in it, only the sender
/// edits or unsends and within Apple's limits, nothing is done to an unsent message. A direct
/// chat must exist already (starting one needs a chat Messages has: `chats.create` is not
/// supported on an observed network).
fn check(tx: &mut dyn Tx, actor: &Address, chat: &ChatGuid, op: &MessageOp) -> Result<()> {
    let now = tx.now();
    match op {
        MessageOp::Send(new) => {
            let views = message_views(tx, actor, chat, None)?;
            if views.iter().all(|v| &v.address != actor) {
                return Err(Error::chat_not_found(chat));
            }
            if let Some(reply_to) = &new.reply_to {
                if holders(tx, &views, reply_to)?.is_empty() {
                    return Err(Error::message_not_found(reply_to)
                        .with("field", "replyTo")
                        .with("chatguid", chat));
                }
            }
            Ok(())
        }
        MessageOp::React { message, .. } => {
            let views = message_views(tx, actor, chat, None)?;
            let copies = target(tx, actor, chat, &views, message)?;
            if copies.iter().any(|(_, _, m)| m.is_unsent()) {
                return Err(unsent(message, chat));
            }
            Ok(())
        }
        MessageOp::Edit { message, .. } => {
            let views = message_views(tx, actor, chat, None)?;
            let copies = target(tx, actor, chat, &views, message)?;
            let found = own_live_message(actor, chat, message, &copies)?;
            edit_allowed(&found, message, now)
        }
        MessageOp::Unsend { message } => {
            let views = message_views(tx, actor, chat, None)?;
            let copies = target(tx, actor, chat, &views, message)?;
            let found = own_live_message(actor, chat, message, &copies)?;
            unsend_allowed(&found, message, now)
        }
        MessageOp::MarkRead => {
            message_views(tx, actor, chat, None)?;
            Ok(())
        }
        MessageOp::SetBackground { .. }
        | MessageOp::RemoveBackground
        | MessageOp::ShareContactInfo => Err(Error::not_supported(
            "chat backgrounds and sharing contact info are not carried out on this backend yet",
        )),
    }
}

/// Who keeps each chat — the local accounts that do, each with its view — by chat and
/// observer, found once for all the parts one transaction records
/// ([`super::observe::ObservedPart`]): a part of messages holds no group change (those are
/// parts of their own), and nothing a message does changes who keeps its chat; a part of group
/// changes forgets the chats it touches ([`Keepers::changed`]). A first start's parts of
/// messages are cut at every group change (~20 messages each on the bench's history): found
/// once per part, the keepers cost ~7 % of a million-message first start (BENCHMARKS.md).
#[derive(Default)]
pub(super) struct Keepers<'p> {
    views: HashMap<(&'p ChatGuid, &'p Address), Vec<View>>,
    /// Every observer (`ObservedMessage::me`) in `views`' keys.
    observers: Vec<&'p Address>,
}

impl<'p> Keepers<'p> {
    /// A part of group changes was recorded after the parts before: what it may have changed
    /// (the members of the groups it created, changed or settled) is found again.
    pub(super) fn changed(&mut self, batch: &'p super::observe::ObservedBatch) {
        if self.views.is_empty() {
            return;
        }
        let chats = (batch.new_groups.iter().map(|g| &g.chat))
            .chain(batch.changes.iter().map(|(_, o)| &o.chat))
            .chain(batch.settle.iter().map(|g| &g.chat));
        for chat in chats {
            for me in &self.observers {
                self.views.remove(&(chat, *me));
            }
        }
    }
}

pub(super) fn record<'p>(
    tx: &mut dyn Tx,
    batch: &'p ObservedMessages,
    keepers: &mut Keepers<'p>,
) -> Result<usize> {
    let mut recorded = 0;
    for (id, item) in &batch.items {
        let unmarked = batch.first_read && matches!(item.event, MessageEvent::Received { .. });
        if !unmarked && !tx.mark_observed(&batch.source, id)? {
            continue;
        }
        let applied = match keepers.views.entry((&item.chat, &item.me)) {
            Entry::Occupied(views) => apply(tx, item, views.get()),
            Entry::Vacant(place) => match views(tx, item) {
                Ok(views) => {
                    if !keepers.observers.contains(&&item.me) {
                        keepers.observers.push(&item.me);
                    }
                    apply(tx, item, place.insert(views))
                }
                Err(err) => Err(err),
            },
        };
        match applied {
            Ok(()) => recorded += 1,
            Err(err) if matches!(err.kind, ErrorKind::Unavailable | ErrorKind::Internal) => {
                return Err(err)
            }
            // A tapback on a message not kept (attachments only), a chat with a handle that
            // is no address: common in a long history, so not worth a warning each.
            Err(err)
                if matches!(
                    err.kind,
                    ErrorKind::MessageNotFound | ErrorKind::ChatNotFound
                ) =>
            {
                tracing::debug!(
                    source = %batch.source,
                    id = %id,
                    chat = %item.chat,
                    error = %err,
                    "observed message skipped"
                )
            }
            Err(err) => tracing::warn!(
                source = %batch.source,
                id = %id,
                chat = %item.chat,
                error = %err,
                "observed message skipped"
            ),
        }
    }
    tx.set_observer_cursor(&batch.source, &batch.cursor)?;
    Ok(recorded)
}

/// The local accounts that keep the chat, each with its view. A group: the accounts among its
/// members now (whoever said it; it was said). A direct chat between `me` and someone: both
/// sides that are accounts, the chat made for them if they did not have it yet.
fn views(tx: &mut dyn Tx, item: &ObservedMessage) -> Result<Vec<View>> {
    match item.chat.kind() {
        ChatKind::Group => {
            let row = tx
                .group(item.chat.id())?
                .ok_or_else(|| Error::chat_not_found(&item.chat))?;
            let members = tx.members(row.key)?;
            Ok(audience(tx, &members)?
                .into_iter()
                .map(|(account, address)| View {
                    account,
                    address,
                    chat: item.chat.clone(),
                })
                .collect())
        }
        ChatKind::Direct => {
            let other =
                Address::parse(item.chat.id()).map_err(|_| Error::chat_not_found(&item.chat))?;
            let people = [item.me.clone(), other.clone()];
            let mut views = Vec::new();
            for (account, address) in audience(tx, &people)? {
                let peer = if address == item.me { &other } else { &item.me };
                tx.ensure_direct_chat(account, peer, item.at)?;
                views.push(View {
                    account,
                    chat: ChatGuid::direct(peer),
                    address,
                });
            }
            Ok(views)
        }
    }
}

fn apply(tx: &mut dyn Tx, item: &ObservedMessage, views: &[View]) -> Result<()> {
    let actor = &item.actor;
    let at = item.at;
    match &item.event {
        MessageEvent::Received {
            guid,
            text,
            subject,
            effect_id,
            reply_to,
            read_at,
            edited_at,
            retracted_at,
        } => {
            let mut copies = Vec::with_capacity(views.len());
            for view in views {
                let from_me = &view.address == actor;
                copies.push(Delivery {
                    account: view.account,
                    chat_guid: &view.chat,
                    is_from_me: from_me,
                    // Incoming: my read state. Mine: a receipt, which only direct chats have.
                    date_read: if from_me && item.chat.kind() == ChatKind::Group {
                        None
                    } else {
                        *read_at
                    },
                });
            }
            // The content every copy shares (`Delivery` gives each its own view of it).
            let message = Message {
                guid: guid.clone(),
                text: if retracted_at.is_some() {
                    String::new()
                } else {
                    text.clone()
                },
                subject: subject.clone().filter(|_| retracted_at.is_none()),
                date_created: at,
                is_from_me: false,
                is_sent: true,
                chat_guid: None,
                sender: Some(actor.clone()),
                effect_id: effect_id.clone().filter(|_| retracted_at.is_none()),
                reply_to: reply_to.clone(),
                formatting: Vec::new(),
                date_read: None,
                date_edited: *edited_at,
                edits: u32::from(edited_at.is_some()),
                date_retracted: *retracted_at,
                reactions: Vec::new(),
            };
            // Only to the accounts that do not hold it yet (a source read anew).
            tx.deliver_new_message(&message, actor, at, &copies)?;
            Ok(())
        }
        MessageEvent::Reaction {
            target,
            reaction,
            set,
        } => react(tx, actor, views, target, reaction, *set, at),
        MessageEvent::Edited { target, text } => {
            let mut copies = found(tx, views, target, &item.chat)?;
            for (view, place, message) in &mut copies {
                message.text = text.clone();
                message.formatting.clear();
                message.date_edited = Some(at);
                message.edits += 1;
                tx.put_message(view.account, *place, message)?;
            }
            let change = Change::MessageEdited {
                message_guid: target.clone(),
                text: text.clone(),
                formatting: Vec::new(),
                edited_at: at,
            };
            notify(tx, actor, &copies, &change, at)
        }
        MessageEvent::Unsent { target } => {
            let mut copies = found(tx, views, target, &item.chat)?;
            // Unsent already (seen in the history import, or twice): nothing more happened.
            copies.retain(|(_, _, m)| !m.is_unsent());
            if copies.is_empty() {
                return Ok(());
            }
            for (view, place, message) in &mut copies {
                message.text.clear();
                message.subject = None;
                message.formatting.clear();
                message.effect_id = None;
                message.date_retracted = Some(at);
                tx.put_message(view.account, *place, message)?;
            }
            let change = Change::MessageUnsent {
                message_guid: target.clone(),
                retracted_at: at,
            };
            notify(tx, actor, &copies, &change, at)
        }
        MessageEvent::MarkedRead { read } => {
            let mine = views
                .iter()
                .find(|v| &v.address == actor)
                .ok_or_else(|| Error::chat_not_found(&item.chat))?;
            let mut changed = false;
            for (guid, read_at) in read {
                // Not kept (no text), mine, or recorded read already (read as it arrived, or
                // this read recorded before): nothing to do.
                let Some((place, mut message)) = tx.message(mine.account, guid)? else {
                    continue;
                };
                if message.is_from_me
                    || message.date_read.is_some()
                    || message.chat_guid.as_ref() != Some(&mine.chat)
                {
                    continue;
                }
                message.date_read = Some(*read_at);
                tx.put_message(mine.account, place, &message)?;
                changed = true;
            }
            if changed {
                tx.append_event(
                    mine.account,
                    NewEvent {
                        chat_guid: &mine.chat,
                        occurred_at: at,
                        is_from_me: true,
                        actor: Some(actor),
                        change: &Change::ChatMarkedRead,
                    },
                )?;
            }
            Ok(())
        }
        MessageEvent::Read { target } => {
            let copies = found(tx, views, target, &item.chat)?;
            for (view, place, mut message) in copies {
                // Only the sender's copy gets a receipt, and only the first time.
                if &view.address == actor || !message.is_from_me || message.date_read.is_some() {
                    continue;
                }
                message.date_read = Some(at);
                tx.put_message(view.account, place, &message)?;
                tx.append_event(
                    view.account,
                    NewEvent {
                        chat_guid: &view.chat,
                        occurred_at: at,
                        is_from_me: false,
                        actor: Some(actor),
                        change: &Change::MessageRead {
                            message_guid: target.clone(),
                            read_at: at,
                        },
                    },
                )?;
            }
            Ok(())
        }
    }
}

/// The copies of `guid` in these views; `messageNotFound` when nobody here holds it (its row
/// was never recorded: a chat not kept, or text we do not serve yet).
fn found(
    tx: &mut dyn Tx,
    views: &[View],
    guid: &str,
    chat: &ChatGuid,
) -> Result<Vec<(View, u64, Message)>> {
    let copies = holders(tx, views, guid)?;
    if copies.is_empty() {
        return Err(Error::message_not_found(guid).with("chatguid", chat));
    }
    Ok(copies)
}

/// One tapback per person per message: setting another replaces it (removed, then added);
/// removing one that is not there changes nothing.
fn react(
    tx: &mut dyn Tx,
    actor: &Address,
    views: &[View],
    guid: &str,
    reaction: &Reaction,
    set: bool,
    at: Timestamp,
) -> Result<()> {
    let chat = views.first().map(|v| v.chat.clone());
    let mut copies = holders(tx, views, guid)?;
    let Some(first) = copies.first().map(|(_, _, m)| m.clone()) else {
        let err = Error::message_not_found(guid);
        return Err(match chat {
            Some(chat) => err.with("chatguid", chat),
            None => err,
        });
    };
    let current = first
        .reactions
        .iter()
        .find(|r| &r.sender == actor)
        .map(|r| r.reaction.clone());
    let changes = super::messages::tapback_changes(guid, current.as_ref(), reaction, set);
    if changes.is_empty() {
        return Ok(());
    }
    for (view, place, message) in &mut copies {
        message.reactions.retain(|r| &r.sender != actor);
        if set {
            message.reactions.push(AppliedReaction {
                reaction: reaction.clone(),
                sender: actor.clone(),
                is_from_me: &view.address == actor,
                date_created: at,
            });
        }
        tx.put_message(view.account, *place, message)?;
    }
    for change in &changes {
        notify(tx, actor, &copies, change, at)?;
    }
    Ok(())
}
