//! Writes on a real Mac: ack, then observe. An accepted change is handed to the Messages
//! helper; the call is answered only once the rows Messages writes for it have been read from
//! chat.db and recorded, so the answer and the event agree. The ingest thread reports every
//! recorded change here ([`Waiters::observed`]); a write waits for the ones it expects.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use imgroups_core::{Address, ChatGuid, Error, ErrorKind, Mutation, Observed};
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

impl Waiters {
    /// Message events just recorded.
    pub(crate) fn observed_messages(&self, _events: &[imgroups_core::ObservedMessage]) {}
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
