//! Revocation ends open streams, and so does a simulator reset.
//!
//! A call authenticates once, when it starts; a stream may then stay open for days. So every
//! stream registers the token it was opened with here ([`Revocations::hold`]), and a watcher
//! re-authenticates the distinct tokens of open streams every [`CHECK_EVERY`]. When one comes
//! back revoked (or unknown), every stream opened with it is told ([`Held::stop`]) and ends
//! with `tokenBlocked`.
//!
//! Why a periodic check and not a new signal from the store: the stores already make a repeat
//! `authenticate` nearly free while nothing was revoked (a `stat` of the revocations file for
//! SQLite, an atomic load for PostgreSQL, see `imgroups_core::tokens::TokenCache`), and every
//! revocation — by the CLI beside the server, or by any process on a shared PostgreSQL
//! database — already reaches that cache. Checking every open token each tick also leaves no
//! window between a stream's first authentication and its registration here. The hot path of
//! event delivery is untouched: a token's cancellation is a child of the server's shutdown,
//! and stream tasks wait on it where they waited on the shutdown, so they wait on nothing more.
//!
//! A simulator reset (`Store::reset`) clears every log, so a live stream would otherwise go
//! on as if nothing happened and its client would never learn that the world it mirrors is
//! gone. The same watcher reads the store's reset count each tick (a reset by the CLI or by
//! another node counts too); when it moves, every stream open at that moment ends with
//! `preconditionFailed`, `reason=reset` ([`imgroups_core::port::reset_error`]). Token
//! cancellations are children of the current *reset epoch*, a token replaced at each reset.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imgroups_core::port::Store;
use imgroups_core::tokens::ADMIN_TOKEN_PREFIX;
use imgroups_core::{Error, ErrorKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the tokens of open streams are re-authenticated: a revoked token's streams end
/// within about this long.
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(500);

/// A bearer token, kept to re-authenticate streams opened with it. Never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Token(Arc<str>);

impl Token {
    pub(crate) fn new(token: &str) -> Self {
        Token(token.into())
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// The tokens of open streams.
pub(crate) struct Revocations {
    open: Mutex<HashMap<Token, Entry>>,
    shutdown: CancellationToken,
    /// The current reset epoch: cancelled (and replaced) when the store is reset.
    epoch: Mutex<Epoch>,
}

struct Epoch {
    /// The store's reset count this epoch began at.
    resets: Option<u64>,
    ended: CancellationToken,
}

struct Entry {
    streams: usize,
    revoked: CancellationToken,
    /// The epoch `revoked` is a child of.
    epoch: CancellationToken,
}

/// One stream's registration; withdrawn when dropped.
pub(crate) struct Held {
    registry: Arc<Revocations>,
    token: Token,
    revoked: CancellationToken,
    /// The reset epoch the stream was opened in.
    epoch: CancellationToken,
}

impl Held {
    /// Cancelled once the token is found revoked, or when the server shuts down: what the
    /// stream waits on to stop.
    pub(crate) fn stop(&self) -> &CancellationToken {
        &self.revoked
    }

    /// Whether the stream stops because its token was revoked (not for shutdown or a reset).
    pub(crate) fn was_revoked(&self) -> bool {
        self.revoked.is_cancelled() && !self.registry.shutdown.is_cancelled() && !self.was_reset()
    }

    /// Whether the stream stops because the store was reset (not for shutdown).
    pub(crate) fn was_reset(&self) -> bool {
        self.epoch.is_cancelled() && !self.registry.shutdown.is_cancelled()
    }

    /// The error the stream ends with, if it was stopped for a reason the client must hear.
    pub(crate) fn ending(&self) -> Option<Error> {
        if self.was_reset() {
            Some(imgroups_core::port::reset_error())
        } else if self.was_revoked() {
            Some(revoked_error())
        } else {
            None
        }
    }
}

/// The error a stream ends with when its token is revoked: what a call with that token gets.
pub(crate) fn revoked_error() -> Error {
    Error::new(ErrorKind::TokenBlocked, "this token has been revoked")
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut open) = self.registry.open.lock() {
            if let Some(entry) = open.get_mut(&self.token) {
                entry.streams -= 1;
                if entry.streams == 0 {
                    open.remove(&self.token);
                }
            }
        }
    }
}

impl Revocations {
    /// Starts the watcher (ended by `shutdown`; `tasks` waits for it).
    pub(crate) fn start(
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> Arc<Revocations> {
        let registry = Arc::new(Revocations {
            open: Mutex::new(HashMap::new()),
            shutdown: shutdown.clone(),
            epoch: Mutex::new(Epoch {
                resets: None,
                ended: shutdown.child_token(),
            }),
        });
        tasks.spawn(registry.clone().watch(store, shutdown));
        registry
    }

    /// The current reset epoch.
    fn epoch(&self) -> CancellationToken {
        match self.epoch.lock() {
            Ok(epoch) => epoch.ended.clone(),
            Err(_) => self.shutdown.child_token(),
        }
    }

    /// The store's reset count is `resets`: if it moved since the epoch began, every stream
    /// open now ends (with `reason=reset`) and a new epoch begins. The first count seen only
    /// starts the first epoch. A server that made the reset itself calls this at once, rather
    /// than leave its streams running until the next tick.
    pub(crate) fn saw_resets(&self, resets: u64) {
        let Ok(mut epoch) = self.epoch.lock() else {
            return;
        };
        match epoch.resets {
            None => epoch.resets = Some(resets),
            Some(known) if resets > known => {
                tracing::info!("the simulator was reset; ending every open stream");
                epoch.resets = Some(resets);
                let ended = std::mem::replace(&mut epoch.ended, self.shutdown.child_token());
                ended.cancel();
            }
            Some(_) => {}
        }
    }

    /// Registers a stream opened with `token`.
    pub(crate) fn hold(self: &Arc<Self>, token: &Token) -> Held {
        let epoch = self.epoch();
        let revoked = match self.open.lock() {
            Ok(mut open) => {
                let entry = open.entry(token.clone()).or_insert_with(|| Entry {
                    streams: 0,
                    revoked: epoch.child_token(),
                    epoch: epoch.clone(),
                });
                // The streams of an earlier epoch were ended by a reset; this one starts anew.
                if entry.epoch.is_cancelled() && !epoch.is_cancelled() {
                    entry.revoked = epoch.child_token();
                    entry.epoch = epoch.clone();
                }
                entry.streams += 1;
                entry.revoked.clone()
            }
            // Poisoned: cannot happen (nothing panics under the lock); the stream then simply
            // ends on the next call's authentication instead.
            Err(_) => epoch.child_token(),
        };
        Held {
            registry: self.clone(),
            token: token.clone(),
            revoked,
            epoch,
        }
    }

    async fn watch(self: Arc<Self>, store: Arc<dyn Store>, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(CHECK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            match store.resets().await {
                Ok(resets) => self.saw_resets(resets),
                Err(err) => tracing::debug!(error = %err, "cannot read the reset count"),
            }
            let tokens: Vec<(Token, CancellationToken)> = match self.open.lock() {
                Ok(open) => open
                    .iter()
                    .filter(|(_, entry)| !entry.revoked.is_cancelled())
                    .map(|(token, entry)| (token.clone(), entry.revoked.clone()))
                    .collect(),
                Err(_) => return,
            };
            for (token, revoked) in tokens {
                // The console's streams are opened with an admin token.
                let checked = if token.0.starts_with(ADMIN_TOKEN_PREFIX) {
                    store.authenticate_admin(&token.0).await
                } else {
                    store.authenticate(&token.0).await.map(drop)
                };
                match checked {
                    Ok(()) => {}
                    Err(err) => match err.kind {
                        ErrorKind::TokenBlocked | ErrorKind::Unauthenticated => {
                            tracing::info!("token revoked; ending the streams opened with it");
                            revoked.cancel();
                        }
                        // The store is unreachable, say: keep the streams, try again.
                        _ => tracing::debug!(error = %err, "cannot re-check a stream's token"),
                    },
                }
            }
        }
    }
}
