//! Writes on a real Mac: ack, then observe. An accepted change is handed to the Messages
//! helper; the call is answered only once the rows Messages writes for it have been read from
//! chat.db and recorded, so the answer and the event agree. The ingest thread reports every
//! recorded change here ([`Waiters::observed`]); a write waits for the ones it expects.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use imgroups_core::{
    Address, ChatGuid, Error, ErrorKind, MessageEvent, Mutation, Observed, ObservedMessage,
    Reaction,
};
use tokio::sync::oneshot;

/// One change a write expects to see, by its actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expect {
    Renamed(String),
    Added(Address),
    Removed(Address),
    Left,
    IconSet,
    IconRemoved,
}

impl Expect {
    /// What a write of `mutation` will show in chat.db: one row per address for membership
    /// changes, one row otherwise.
    pub(crate) fn of(mutation: &Mutation) -> Vec<Expect> {
        match mutation {
            Mutation::SetDisplayName(name) => vec![Expect::Renamed(name.clone())],
            Mutation::AddParticipants(addresses) => {
                addresses.iter().cloned().map(Expect::Added).collect()
            }
            Mutation::RemoveParticipants(addresses) => {
                addresses.iter().cloned().map(Expect::Removed).collect()
            }
            Mutation::Leave => vec![Expect::Left],
            Mutation::SetIcon { .. } => vec![Expect::IconSet],
            Mutation::RemoveIcon => vec![Expect::IconRemoved],
        }
    }

    fn matches(&self, mutation: &Mutation) -> bool {
        match (self, mutation) {
            (Expect::Renamed(name), Mutation::SetDisplayName(seen)) => name == seen,
            (Expect::Added(address), Mutation::AddParticipants(seen)) => seen.contains(address),
            (Expect::Removed(address), Mutation::RemoveParticipants(seen)) => {
                seen.contains(address)
            }
            (Expect::Left, Mutation::Leave)
            | (Expect::IconSet, Mutation::SetIcon { .. })
            | (Expect::IconRemoved, Mutation::RemoveIcon) => true,
            _ => false,
        }
    }
}

struct Waiter {
    chat: ChatGuid,
    actor: Address,
    left: Vec<Expect>,
    done: Option<oneshot::Sender<()>>,
}

/// The writes waiting to be observed.
#[derive(Default)]
pub(crate) struct Waiters {
    waiting: Mutex<Vec<Waiter>>,
    messages: Mutex<Vec<MessageWaiter>>,
}

/// A registered wait; withdrawn when dropped.
pub(crate) struct Wait {
    waiters: Arc<Waiters>,
    rx: Option<oneshot::Receiver<()>>,
}

impl Waiters {
    /// Registers a write's expectations before it is carried out, so that nothing recorded in
    /// between is missed.
    pub(crate) fn expect(
        self: &Arc<Self>,
        chat: &ChatGuid,
        actor: &Address,
        left: Vec<Expect>,
    ) -> Wait {
        let (tx, rx) = oneshot::channel();
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.push(Waiter {
            chat: chat.clone(),
            actor: actor.clone(),
            left,
            done: Some(tx),
        });
        Wait {
            waiters: self.clone(),
            rx: Some(rx),
        }
    }

    /// Changes just recorded: settles the waits they complete.
    pub(crate) fn observed(&self, changes: &[Observed]) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if waiting.is_empty() {
            return;
        }
        for change in changes {
            for waiter in waiting.iter_mut() {
                if waiter.chat != change.chat || waiter.actor != change.actor {
                    continue;
                }
                if let Some(i) = waiter.left.iter().position(|e| e.matches(&change.mutation)) {
                    waiter.left.remove(i);
                }
                if waiter.left.is_empty() {
                    if let Some(done) = waiter.done.take() {
                        let _ = done.send(());
                    }
                }
            }
        }
        waiting.retain(|w| w.done.is_some());
    }
}

/// What a message write expects to see recorded, by me, in its chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExpectMessage {
    /// A message of mine with this text (its GUID is the answer).
    Said(String),
    Reaction {
        target: String,
        reaction: Reaction,
        set: bool,
    },
    Edited {
        target: String,
        text: String,
    },
    Unsent(String),
    /// Messages I received in the chat read (`mark-chat-read`).
    MarkedRead,
}

impl ExpectMessage {
    /// The GUID of the message seen, when `event` is what is expected.
    fn matches(&self, event: &MessageEvent) -> Option<String> {
        match (self, event) {
            (
                ExpectMessage::Said(text),
                MessageEvent::Received {
                    guid, text: seen, ..
                },
            ) if text == seen => Some(guid.clone()),
            (
                ExpectMessage::Reaction {
                    target,
                    reaction,
                    set,
                },
                MessageEvent::Reaction {
                    target: t,
                    reaction: r,
                    set: s,
                },
            ) if target == t && reaction == r && set == s => Some(target.clone()),
            (
                ExpectMessage::Edited { target, text },
                MessageEvent::Edited {
                    target: t,
                    text: seen,
                },
            ) if target == t && text == seen => Some(target.clone()),
            (ExpectMessage::Unsent(target), MessageEvent::Unsent { target: t }) if target == t => {
                Some(target.clone())
            }
            (ExpectMessage::MarkedRead, MessageEvent::MarkedRead { .. }) => Some(String::new()),
            _ => None,
        }
    }
}

struct MessageWaiter {
    chat: ChatGuid,
    actor: Address,
    expect: ExpectMessage,
    done: Option<oneshot::Sender<String>>,
}

/// A registered message wait; withdrawn when dropped.
pub(crate) struct MessageWait {
    waiters: Arc<Waiters>,
    rx: Option<oneshot::Receiver<String>>,
}

impl Waiters {
    /// Registers a message write's expectation before it is carried out.
    pub(crate) fn expect_message(
        self: &Arc<Self>,
        chat: &ChatGuid,
        actor: &Address,
        expect: ExpectMessage,
    ) -> MessageWait {
        let (tx, rx) = oneshot::channel();
        let mut waiting = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        waiting.push(MessageWaiter {
            chat: chat.clone(),
            actor: actor.clone(),
            expect,
            done: Some(tx),
        });
        MessageWait {
            waiters: self.clone(),
            rx: Some(rx),
        }
    }

    /// Message events just recorded: settles the waits they complete (each event settles at
    /// most one wait, so two sends of the same text get one message each).
    pub(crate) fn observed_messages(&self, events: &[ObservedMessage]) {
        let mut waiting = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        if waiting.is_empty() {
            return;
        }
        for event in events {
            let found = waiting.iter_mut().find_map(|w| {
                if w.done.is_none() || w.chat != event.chat || w.actor != event.actor {
                    return None;
                }
                w.expect.matches(&event.event).map(|guid| (w, guid))
            });
            if let Some((waiter, guid)) = found {
                if let Some(done) = waiter.done.take() {
                    let _ = done.send(guid);
                }
            }
        }
        waiting.retain(|w| w.done.is_some());
    }
}

impl MessageWait {
    /// The GUID of the message seen, once it was recorded; at most `timeout`.
    pub(crate) async fn done(mut self, timeout: Duration) -> Result<String, Error> {
        let Some(rx) = self.rx.take() else {
            return Err(Error::internal());
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(guid)) => Ok(guid),
            Ok(Err(_)) | Err(_) => Err(not_seen(timeout)),
        }
    }
}

impl Drop for MessageWait {
    fn drop(&mut self) {
        self.rx.take();
        let mut waiting = self
            .waiters
            .messages
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        waiting.retain(|w| w.done.as_ref().is_some_and(|tx| !tx.is_closed()));
    }
}

fn not_seen(timeout: Duration) -> Error {
    // Not retryable: Messages took the change; a retry would make it again.
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "Messages accepted the change but it was not seen in chat.db within {} s; it may \
             still happen, and is then recorded as an event (not retried, so that it is not \
             made twice)",
            timeout.as_secs_f64()
        ),
    )
    .retryable(false)
}

impl Wait {
    /// Waits until every expected change was recorded, for at most `timeout`.
    pub(crate) async fn done(mut self, timeout: Duration) -> Result<(), Error> {
        let Some(rx) = self.rx.take() else {
            return Ok(());
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(())) => Ok(()),
            // Not retryable: Messages took the change; a retry would make it again.
            Ok(Err(_)) | Err(_) => Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "Messages accepted the change but it was not seen in chat.db within {} s; \
                     it may still happen, and is then recorded as an event (not retried, so \
                     that it is not made twice)",
                    timeout.as_secs_f64()
                ),
            )
            .retryable(false)),
        }
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        // A finished or abandoned wait: withdraw every waiter whose receiver is gone.
        self.rx.take();
        let mut waiting = self
            .waiters
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        waiting.retain(|w| w.done.as_ref().is_some_and(|tx| !tx.is_closed()));
    }
}
