//! The store port: everything the server (and the CLI) needs from a store. Implementations:
//! `imgroups-store-sqlite` (embedded, the default) and `imgroups-store-postgres` (several
//! servers on one database), both held to the same conformance suite (`imgroups-store-tests`).
//!
//! A store keeps the source of truth — chat state, the per-account event logs, idempotency
//! records, accounts and tokens, webhook endpoints and cursors — and promises, per account,
//! that sequences are 1, 2, 3, … in commit order with no gap and no reuse, and that nothing is
//! answered, notified or readable before it is durable.
//!
//! It knows nothing of the rules: the engine hands it units of work ([`Work`]) to run inside
//! its write transactions and queries ([`ReadFn`]) to run on a snapshot.
//!
//! After each commit that appended events it sends a [`Notice`] per account with the new head
//! — never the events. Notices may be lost (across processes they travel as hints), so a
//! reader treats one as "read the log up to here" and also reads on any gap it sees and on a
//! slow periodic check; a lost notice delays delivery, never skips an event.
//!
//! The simulator's directory and injected faults are not part of this port: a store that can
//! serve the simulator keeps them too, through [`crate::port::sim`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{broadcast, watch};

use crate::clock::SimClock;
use crate::error::{Error, Reason, Result};
use crate::ids::Address;
use crate::model::{AccountId, Event, Outcome, Timestamp, TokenId, WebhookId};
use crate::port::tx::{Reader, Tx};
use crate::snapshot::Snapshot;

/// A unit of work run inside a write transaction, with other requests' units (group commit).
/// What it returns is the request's answer; see [`crate::port::tx`] for what an error means.
pub type Work = Box<dyn FnOnce(&mut dyn Tx) -> Result<Outcome> + Send>;

/// A query run on a read snapshot.
pub type ReadFn = Box<dyn FnOnce(&mut dyn Reader) + Send>;

/// What one commit did to one account's log, for whoever listens: sent once the commit is
/// durable. "The log now ends at `head`" — never the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    pub account: AccountId,
    pub head: u64,
}

/// One commit's notices.
pub type Notices = Arc<[Notice]>;

/// Where an account's log stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    /// The latest sequence (0 before the first event).
    pub head: u64,
    /// Events up to and including this sequence were removed by retention (0: none).
    pub pruned_through: u64,
    /// Events up to and including this sequence were cleared by a simulator reset
    /// ([`Store::reset`]; 0: none). Unlike retention, a reset is asked for: a cursor before
    /// it simply continues after it.
    pub reset_through: u64,
}

impl LogBounds {
    /// Fails with `preconditionFailed` (`reason=cursorTooOld`) when reading after `after`
    /// would silently skip pruned events.
    pub fn check_cursor(&self, after: u64) -> Result<()> {
        // What retention removed after the cursor is gone anyway when a later reset cleared
        // it too.
        if after < self.pruned_through && self.reset_through < self.pruned_through {
            let oldest = self.pruned_through + 1;
            return Err(Error::precondition(
                Reason::CursorTooOld,
                format!("events before sequence {oldest} are no longer retained"),
            )
            .with("oldest", oldest)
            .with("after", after));
        }
        Ok(())
    }

    /// Where a reader whose cursor is `after` really starts: after what a reset cleared.
    pub fn start(&self, after: u64) -> u64 {
        after.max(self.reset_through)
    }
}

/// What [`Store::reset`] clears besides the simulated world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResetScope {
    /// Accounts, their tokens, webhooks and logs too (admin tokens stay).
    pub accounts: bool,
}

/// The error a live stream ends with when the world it follows was reset: its events up to
/// then are gone, and the client should start over (a cursor it kept still works: reading
/// after it continues with what came after the reset).
pub fn reset_error() -> Error {
    Error::precondition(
        Reason::Reset,
        "the simulator was reset; the events before it are gone",
    )
}

/// What [`Log::read_events_each`] hands each event to: lent, not given, so that a store may
/// read the next row into the same event, reusing its strings (BENCHMARKS.md, "M3 … rows read
/// into the event before them").
pub type EachEvent = Box<dyn FnMut(&Event) + Send>;

/// The durable log and the write path.
#[async_trait]
pub trait Log: Send + Sync + 'static {
    /// Runs `work` inside a write transaction and returns its answer once the transaction is
    /// durable. If the transaction cannot commit, the answer is a retryable error and nothing
    /// of `work` remains.
    async fn write(&self, work: Work) -> Result<Outcome>;

    /// Runs `query` on a snapshot that reflects only durable commits.
    async fn read(&self, query: ReadFn) -> Result<()>;

    async fn log_bounds(&self, account: AccountId) -> Result<LogBounds>;

    /// Up to `limit` events with `after < sequence <= up_to`, in order. `up_to` must be a head
    /// this store reported (by a [`Notice`] or [`Log::log_bounds`]): those events are durable,
    /// so the read need not wait for anything. A first event that is not `after + 1` (or none,
    /// when `up_to > after`) means retention removed some: ask [`Log::log_bounds`].
    async fn read_events(
        &self,
        account: AccountId,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<Event>>;

    /// [`Log::read_events`], with each event handed to `each` as it is read, in order, on the
    /// thread that reads it; answers the first and last sequences read (`None` for none).
    /// A catch-up encodes there what it sends: each event is then made, encoded and dropped
    /// by one thread, while the events of a page read on one thread and dropped on another
    /// cost their allocator's cross-thread frees (BENCHMARKS.md, "M3"). The default reads a
    /// page with [`Log::read_events`] and hands its events over.
    async fn read_events_each(
        &self,
        account: AccountId,
        after: u64,
        up_to: u64,
        limit: usize,
        mut each: EachEvent,
    ) -> Result<Option<(u64, u64)>> {
        let page = self.read_events(account, after, up_to, limit).await?;
        let read = page
            .first()
            .zip(page.last())
            .map(|(a, b)| (a.sequence, b.sequence));
        page.iter().for_each(&mut each);
        Ok(read)
    }

    /// Notices of commits from now on (made by this process or, where the store can tell, by
    /// others). A receiver that lags has missed notices, never events.
    fn notices(&self) -> broadcast::Receiver<Notices>;

    /// Deletes idempotency records made before `cutoff` (they have expired).
    async fn forget_keys_before(&self, cutoff: Timestamp) -> Result<()>;
}

/// A token as listed; never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: TokenId,
    pub address: Address,
    pub created_at: Timestamp,
    pub revoked: bool,
}

/// An admin token as listed; never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminTokenInfo {
    pub id: TokenId,
    pub created_at: Timestamp,
}

/// An account as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub id: AccountId,
    pub address: Address,
    pub created_at: Timestamp,
}

/// Which token to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRef {
    Id(TokenId),
    /// The token itself (stores look it up by its hash).
    Secret(String),
}

/// Accounts and their tokens.
#[async_trait]
pub trait Accounts: Send + Sync + 'static {
    /// The account a bearer token belongs to: `unauthenticated` for an unknown token,
    /// `tokenBlocked` for a revoked one. A revocation takes effect on the next call, in every
    /// process serving this store.
    async fn authenticate(&self, token: &str) -> Result<AccountId>;

    /// What [`Accounts::authenticate`] would answer for `token` without a query, when this
    /// process checked it recently and nothing may have been revoked since; `None`: ask
    /// `authenticate`. Every call passes here, so this answers the usual case without the
    /// boxed future of an async method. The default knows nothing.
    fn authenticate_cached(&self, _token: &str) -> Option<AccountId> {
        None
    }

    /// Creates the account if it does not exist; returns it and whether it was created.
    async fn ensure_account(&self, address: &Address) -> Result<(AccountId, bool)>;

    async fn find_account(&self, address: &Address) -> Result<Option<AccountId>>;

    /// Stores a new token for `account`, given its hash ([`crate::tokens`]).
    async fn add_token(&self, account: AccountId, hash: Vec<u8>) -> Result<TokenId>;

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>>;

    /// Revokes a token (`invalidArgument`, `field=token` if there is none such).
    async fn revoke_token(&self, token: &TokenRef) -> Result<TokenId>;

    /// Every account, by id.
    async fn list_accounts(&self) -> Result<Vec<AccountInfo>>;

    /// Stores a new admin token (the console's credential), given its hash
    /// ([`crate::tokens::new_admin_token`]). Admin tokens are not account tokens: they open
    /// the console and its API only.
    async fn add_admin_token(&self, hash: Vec<u8>) -> Result<()>;

    /// `Ok` if `token` is an admin token of this store; `unauthenticated` otherwise. Takes
    /// effect at once in every process serving the store.
    async fn authenticate_admin(&self, token: &str) -> Result<()>;

    /// Every admin token, by id.
    async fn list_admin_tokens(&self) -> Result<Vec<AdminTokenInfo>>;

    /// Removes an admin token (`invalidArgument`, `field=token` if there is none such). As
    /// [`Accounts::authenticate_admin`] reads the store on every call, it is refused at once
    /// by every process serving the store.
    async fn revoke_admin_token(&self, token: &TokenRef) -> Result<TokenId>;
}

/// A URL webhook deliveries can be made to: `http://` or `https://` with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

/// Longest webhook URL accepted.
pub const MAX_WEBHOOK_URL_LEN: usize = 2048;

impl WebhookUrl {
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::invalid(format!("invalid webhook url {url:?}: {why}")).with("field", "url")
        };
        if url.len() > MAX_WEBHOOK_URL_LEN {
            // Not echoed: the limit says enough, and the URL may be megabytes.
            return Err(Error::invalid(format!(
                "invalid webhook url: longer than {MAX_WEBHOOK_URL_LEN} bytes"
            ))
            .with("field", "url")
            .because(Reason::TooLong)
            .with("limit", MAX_WEBHOOK_URL_LEN));
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace"));
        }
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| bad("must start with http:// or https://"))?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() || host.starts_with(':') {
            return Err(bad("has no host"));
        }
        Ok(WebhookUrl(url.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One registered endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: WebhookId,
    pub account: AccountId,
    /// The account's address, for listings.
    pub address: Address,
    pub url: String,
    /// The HMAC-SHA256 key deliveries are signed with.
    pub secret: String,
    /// Last sequence acknowledged with a 2xx.
    pub cursor: u64,
    /// Consecutive failed attempts since the last success.
    pub failures: u32,
    pub paused: bool,
    /// What the last failed attempt saw (status or transport error), lower case.
    pub last_error: Option<String>,
    pub created_at: Timestamp,
}

/// Webhook endpoints and their durable delivery cursors. `account: Some(a)` limits a change to
/// `a`'s endpoints (what an API caller may touch); an id that is not there is
/// `invalidArgument`, `field=id`.
#[async_trait]
pub trait Hooks: Send + Sync + 'static {
    /// Changes whenever endpoints are added, removed, paused or resumed (by this process or,
    /// where the store can tell, by others; like notices, a hint): re-read them then.
    fn webhook_changes(&self) -> watch::Receiver<u64>;

    /// Registers `url` for `account`, signed with `secret`. Delivery starts after the
    /// account's head at this moment: events already in the log are not sent.
    async fn add_webhook(
        &self,
        account: AccountId,
        url: &WebhookUrl,
        secret: &str,
    ) -> Result<Webhook>;
    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>>;
    /// Every endpoint, or only `account`'s, by id.
    async fn webhooks(&self, account: Option<AccountId>) -> Result<Vec<Webhook>>;
    async fn remove_webhook(&self, account: Option<AccountId>, id: WebhookId) -> Result<()>;
    /// Un-pauses an endpoint and clears its failure count; delivery resumes from its cursor.
    async fn resume_webhook(&self, account: Option<AccountId>, id: WebhookId) -> Result<Webhook>;
    /// The endpoint acknowledged `sequence`: its cursor moves there (never back) and its
    /// failure count is cleared.
    async fn webhook_delivered(&self, id: WebhookId, sequence: u64) -> Result<()>;
    /// Records a failed attempt; pauses the endpoint once `max_failures` consecutive attempts
    /// failed. Returns whether it is now paused.
    async fn webhook_failed(&self, id: WebhookId, error: &str, max_failures: u32) -> Result<bool>;

    /// Takes or renews this process's lease to deliver endpoint `id` for `lease`: its cursor
    /// if this process may deliver it now, `None` if another process holds the lease (or the
    /// endpoint is paused or gone). Where several processes serve one store, each endpoint is
    /// delivered by one at a time, and another takes over once a lease runs out unrenewed.
    /// A store served by one process only needs no lease: this default says "yours".
    async fn claim_webhook(&self, id: WebhookId, lease: Duration) -> Result<Option<u64>> {
        let _ = lease;
        Ok(self
            .webhook(id)
            .await?
            .filter(|hook| !hook.paused)
            .map(|hook| hook.cursor))
    }
}

/// A whole store.
#[async_trait]
pub trait Store: Log + Accounts + Hooks {
    /// Clears the simulated world in one transaction: chats (groups, members, icons,
    /// backgrounds, direct chats), messages, idempotency records, the contents of every log,
    /// injected faults and the directory's unreachable addresses. Sequences never go back:
    /// each account keeps its head (and what retention pruned), its `reset_through` becomes
    /// that head ([`LogBounds::reset_through`]), and webhook cursors move to it. Accounts and
    /// tokens stay, unless `scope.accounts`, which removes them and their webhooks too (admin
    /// tokens always stay). Safe while servers run on the store: their writers forget what
    /// they cached, and [`Store::resets`] moves for every process.
    async fn reset(&self, scope: ResetScope) -> Result<()>;

    /// How many resets this store has had (0 before the first), read from the store, so a
    /// reset made by any process (the CLI beside a server, another node) shows here. Cheap
    /// enough to poll twice a second.
    async fn resets(&self) -> Result<u64>;

    /// The simulated world as one consistent view ([`crate::snapshot`]): what a reset with
    /// accounts would clear, and the controllable clock. Safe while servers write.
    async fn export(&self) -> Result<Snapshot>;

    /// Replaces the simulated world with `snapshot` (checked by the caller:
    /// [`Snapshot::check`]) in one transaction: a reset with accounts
    /// ([`Store::reset`]), then the snapshot's rows with their ids, sequences and clock
    /// (none: the store's clock goes). Counts as a reset ([`Store::resets`]) and revokes every
    /// token servers cached; admin tokens stay. Nothing changes if it fails.
    async fn import(&self, snapshot: Snapshot) -> Result<()>;

    /// The controllable clock of deterministic runs, if the store has one
    /// ([`crate::clock`]): while it does, it is the store's time (commit times, message
    /// dates, the edit and unsend windows, idempotency expiry, fault time limits) and new
    /// identifiers are derived from its seed.
    async fn clock(&self) -> Result<Option<SimClock>>;

    /// Gives the store a controllable clock seeded with `seed`, at
    /// [`crate::clock::SIM_EPOCH`] (a clock with the same seed is kept as it is, so a restart
    /// continues the run; another seed is refused with `preconditionFailed`), or, with
    /// `None`, takes it away: system time and random identifiers again.
    async fn set_clock(&self, seed: Option<u64>) -> Result<Option<SimClock>>;

    /// Moves the controllable clock forward by `nanos`, ordered with every write: writes
    /// after it see the new time. Without a clock `preconditionFailed`
    /// (`reason=clockNotControllable`); a negative duration is `invalidArgument`. Either way
    /// nothing changes.
    async fn advance_clock(&self, nanos: i64) -> Result<SimClock>;

    /// The store's time: its controllable clock's, or else the system's.
    async fn now(&self) -> Result<Timestamp> {
        Ok(self.clock().await?.map_or_else(Timestamp::now, |c| c.now))
    }

    /// Finishes the writes already queued and stops. Later calls fail with `unavailable`.
    async fn close(&self);

    /// A cheap round trip to the store, for readiness checks: `Ok` when it answers queries.
    /// (Migrations run when a store opens, so an open store has them done.) The default reads
    /// an empty snapshot.
    async fn ready(&self) -> Result<()> {
        self.read(Box::new(|_| {})).await
    }
}

/// Runs `query` on a snapshot of `store` and returns its result.
pub async fn read<T, Q>(store: &dyn Store, query: Q) -> Result<T>
where
    T: Send + 'static,
    Q: FnOnce(&mut dyn Reader) -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    store
        .read(Box::new(move |r| {
            // The receiver is gone only if the caller stopped waiting.
            let _ = tx.send(query(r));
        }))
        .await?;
    rx.await.map_err(|_| {
        tracing::error!("the store ran a read without running its query");
        Error::internal()
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_from_before_a_reset_continues_after_it() {
        let bounds = |pruned_through, reset_through| LogBounds {
            head: 100,
            pruned_through,
            reset_through,
        };
        // Retention alone: a cursor before what it removed is refused.
        let err = bounds(40, 0).check_cursor(10).unwrap_err();
        assert_eq!(err.context_value("reason"), Some("cursorTooOld"));
        assert_eq!(bounds(40, 0).start(10), 10);
        // A later reset cleared that part anyway: the cursor continues after the reset.
        bounds(40, 60).check_cursor(10).expect("continues");
        assert_eq!(bounds(40, 60).start(10), 60);
        assert_eq!(bounds(0, 60).start(80), 80);
        // Retention after a reset still protects what came after it.
        let err = bounds(80, 60).check_cursor(70).unwrap_err();
        assert_eq!(err.context_value("reason"), Some("cursorTooOld"));
    }

    #[test]
    fn webhook_urls() {
        assert!(WebhookUrl::parse("http://127.0.0.1:8080/hook").is_ok());
        assert!(WebhookUrl::parse("https://example.com").is_ok());
        for bad in [
            "",
            "ftp://x",
            "http://",
            "http:///x",
            "http://a b",
            "example.com",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "x".repeat(MAX_WEBHOOK_URL_LEN));
        let err = WebhookUrl::parse(&long).unwrap_err();
        assert_eq!(err.context_value("reason"), Some("tooLong"));
        assert_eq!(err.context_value("limit"), Some("2048"));
        assert!(err.message.len() < 100);
    }
}
