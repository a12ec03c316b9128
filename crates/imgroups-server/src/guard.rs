//! What a request must pass before its body is read, on either transport: the token, the
//! account's request rate and injected faults ([`Guard::admit`]); the caps on open event
//! streams, per account and per token ([`Guard::open_stream`]); and the limits of the network
//! surface ([`NetLimits`]).
//!
//! Each transport calls these from its own door before it reads a body: gRPC in
//! `crate::grpc::guard` (which also reads the one message within the method's limit), HTTP in
//! its route handlers and the `Authed` extractor, which axum runs before the body extractor.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imgroups_core::{AccountId, Error, ErrorKind, Reason, Result};

use crate::app::{App, Caller};
use crate::revocation::Token;

/// The error context key (and so `error-context-retryafter`) carrying the seconds after which
/// a retry can succeed; over HTTP also the `Retry-After` header.
pub(crate) const RETRY_AFTER: &str = "retryafter";

/// Limits of the network surface. Each is a `serve` flag (docs/operating.md, "Limits").
#[derive(Debug, Clone)]
pub struct NetLimits {
    /// Largest request message (gRPC) or body (HTTP) of every method but the icon upload,
    /// whose limit follows the icon limit.
    pub max_message_bytes: usize,
    /// A request body not received in full within this is cut.
    pub body_timeout: Duration,
    /// Most open event streams (live, catch-up, SSE) per account. 0: no cap.
    pub max_event_streams: usize,
    /// Most open event streams per token, within the account's cap: one leaked or runaway
    /// token (one device) cannot take every place of its account. 0: no cap of its own.
    pub max_event_streams_per_token: usize,
    /// Requests per second per account, as a token bucket. 0: no rate limit.
    pub rate_per_sec: u32,
    /// The bucket's size: how many requests may come at once.
    pub rate_burst: u32,
    /// Bytes of request bodies the whole server reads at once (declared sizes: a gRPC
    /// message's length prefix, an HTTP `content-length`, or the route's limit for a body of
    /// unknown length). More: `RESOURCE_EXHAUSTED` / 413 with `reason=bodiesInFlight`,
    /// retryable. 0: no budget.
    pub max_body_bytes_in_flight: usize,
    /// The same, per account, within the server's budget: one account's stalled uploads
    /// cannot take every place. 0: no budget of its own.
    pub max_body_bytes_in_flight_per_account: usize,
}

impl Default for NetLimits {
    fn default() -> Self {
        NetLimits {
            max_message_bytes: 256 * 1024,
            body_timeout: Duration::from_secs(30),
            max_event_streams: 16_384,
            // As the account's: by default an account with one token (the usual case, and
            // the benchmarks' 10,000 idle subscribers) keeps the whole account cap.
            max_event_streams_per_token: 16_384,
            rate_per_sec: 0,
            rate_burst: 100,
            max_body_bytes_in_flight: 256 << 20,
            max_body_bytes_in_flight_per_account: 64 << 20,
        }
    }
}

/// Room for the rest of a `SetIcon` request (GUID, key, framing) besides the icon itself.
pub const ICON_OVERHEAD_BYTES: usize = 64 * 1024;

/// The shared state of the checks.
#[derive(Clone)]
pub(crate) struct Guard {
    pub(crate) app: App,
    pub(crate) limits: NetLimits,
    /// Largest `SetIcon` message over gRPC.
    pub(crate) icon_message_bytes: usize,
    /// Per account (every token of it); `None` when off. Its memory grows with the number of
    /// accounts that called, which only an admin can raise.
    rate: Option<Arc<Limiter>>,
    streams: Arc<Mutex<OpenStreams>>,
    /// Request body bytes being read, in all and per account.
    bodies: Arc<Mutex<BodiesInFlight>>,
    /// Injected faults (simulator controls), applied once a call is admitted.
    pub(crate) faults: Arc<crate::faults::Faults>,
}

/// Open event streams by account and by token; one lock, so both counts move together.
#[derive(Default)]
struct OpenStreams {
    accounts: HashMap<AccountId, usize>,
    tokens: HashMap<Token, usize>,
}

/// One less for `key`, forgetting it at zero so the maps hold only keys with open streams.
fn release<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(key);
        }
    }
}

type Limiter = governor::RateLimiter<
    AccountId,
    governor::state::keyed::HashMapStateStore<AccountId>,
    governor::clock::DefaultClock,
>;

impl Guard {
    pub(crate) fn new(app: App, limits: NetLimits, faults: Arc<crate::faults::Faults>) -> Self {
        let icon_message_bytes = app.limits.max_icon_bytes + ICON_OVERHEAD_BYTES;
        Guard {
            app,
            icon_message_bytes,
            rate: NonZeroU32::new(limits.rate_per_sec).map(|per_sec| {
                let burst = NonZeroU32::new(limits.rate_burst).unwrap_or(NonZeroU32::MIN);
                let quota = governor::Quota::per_second(per_sec).allow_burst(burst);
                Arc::new(governor::RateLimiter::hashmap(quota))
            }),
            limits,
            streams: Arc::default(),
            bodies: Arc::default(),
            faults,
        }
    }

    /// Authenticates from the raw `authorization` and `x-idempotency-key` values, takes one
    /// request from the account's bucket, then applies any fault injected for the account and
    /// `method` (the RPC name).
    pub(crate) async fn admit(
        &self,
        method: &str,
        authorization: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<Caller> {
        match self.admit_now(authorization, idempotency_key) {
            Some(admitted) => admitted,
            None => {
                self.admit_later(method, authorization, idempotency_key)
                    .await
            }
        }
    }

    /// [`Guard::admit`]'s general path: the token looked up, the rate taken, any fault
    /// applied.
    pub(crate) async fn admit_later(
        &self,
        method: &str,
        authorization: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<Caller> {
        let caller = self.app.caller(authorization, idempotency_key).await?;
        self.take(&caller.account)?;
        self.faults.apply(caller.account, method).await?;
        Ok(caller)
    }

    /// [`Guard::admit`] without waiting, when it can answer so: a token this process has
    /// checked already and no fault armed. Every call passes here, and the usual one then
    /// costs no store query and no boxed future. `None`: take the general path, which also
    /// words every authentication error.
    pub(crate) fn admit_now(
        &self,
        authorization: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Option<Result<Caller>> {
        if self.faults.any_armed() {
            return None;
        }
        let token = crate::app::bearer(authorization)?;
        let account = self.app.engine.store().authenticate_cached(token)?;
        // As `App::caller` does, once the token is good.
        let idempotency_key = idempotency_key.map(str::trim).filter(|k| !k.is_empty());
        if let Some(key) = idempotency_key {
            if let Err(err) = imgroups_core::idempotency::check_key(key, "x-idempotency-key") {
                return Some(Err(err));
            }
        }
        Some(self.take(&account).map(|()| Caller {
            account,
            idempotency_key: idempotency_key.map(str::to_owned),
            token: Token::new(token),
        }))
    }

    /// One request from the account's token bucket, or `RateLimited` with a retry hint.
    fn take(&self, account: &AccountId) -> Result<()> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        let Err(not_until) = rate.check_key(account) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(governor::clock::Clock::now(rate.clock()));
        let wait = wait.as_secs_f64().ceil().max(1.0) as u64;
        Err(Error::new(
            ErrorKind::RateLimited,
            format!(
                "more than {} requests per second (burst {}) for this account: retry later",
                self.limits.rate_per_sec, self.limits.rate_burst
            ),
        )
        .because(Reason::RequestRate)
        .with("limit", self.limits.rate_per_sec)
        .with(RETRY_AFTER, wait))
    }

    /// Counts one more open event stream for the caller's account and token until the
    /// permit is dropped, or `RateLimited` when either has its cap
    /// ([`NetLimits::max_event_streams`], [`NetLimits::max_event_streams_per_token`]) open
    /// already. Nothing is counted when refused.
    pub(crate) fn open_stream(&self, caller: &Caller) -> Result<StreamPermit> {
        let too_many = |max: usize, holder: &str| {
            Error::new(
                ErrorKind::RateLimited,
                format!("this {holder} has {max} event streams open already: close one first"),
            )
            .because(Reason::TooManyStreams)
            .with("limit", max)
            .with(RETRY_AFTER, 5)
        };
        let per_account = self.limits.max_event_streams;
        let per_token = self.limits.max_event_streams_per_token;
        let mut open = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let open = &mut *open;
        let account = open.accounts.get(&caller.account).copied().unwrap_or(0);
        if per_account != 0 && account >= per_account {
            return Err(too_many(per_account, "account"));
        }
        let token = open.tokens.get(&caller.token).copied().unwrap_or(0);
        if per_token != 0 && token >= per_token {
            return Err(too_many(per_token, "token"));
        }
        open.accounts.insert(caller.account, account + 1);
        open.tokens.insert(caller.token.clone(), token + 1);
        Ok(StreamPermit {
            account: caller.account,
            token: caller.token.clone(),
            streams: self.streams.clone(),
        })
    }
}

/// Request body bytes being read; one lock, so both counts move together. Taken once per
/// body that is still on its way (never for a gRPC message that came with its headers).
#[derive(Default)]
struct BodiesInFlight {
    total: usize,
    accounts: HashMap<AccountId, usize>,
}

impl Guard {
    /// Reserves `bytes` of the body budgets ([`NetLimits::max_body_bytes_in_flight`] and its
    /// per-account share) for a body of `account` until the reservation is dropped, or
    /// `TooLarge` with `reason=bodiesInFlight`, retryable, when either is spent. A body larger
    /// than a budget on its own would never fit: the method's size limit, which is smaller
    /// by default, refuses it first.
    pub(crate) fn reserve_body(&self, account: AccountId, bytes: usize) -> Result<BodyReservation> {
        let total_cap = self.limits.max_body_bytes_in_flight;
        let account_cap = self.limits.max_body_bytes_in_flight_per_account;
        let spent = |cap: usize, whose: &str| {
            Error::new(
                ErrorKind::TooLarge,
                format!(
                    "{whose} has {cap} bytes of request bodies on their way already: retry later"
                ),
            )
            .because(Reason::BodiesInFlight)
            .with("limit", cap)
            .with(RETRY_AFTER, 1)
            .retryable(true)
        };
        let mut bodies = self.bodies.lock().unwrap_or_else(|e| e.into_inner());
        let held = bodies.accounts.get(&account).copied().unwrap_or(0);
        if account_cap != 0 && held.saturating_add(bytes) > account_cap {
            return Err(spent(account_cap, "this account"));
        }
        if total_cap != 0 && bodies.total.saturating_add(bytes) > total_cap {
            return Err(spent(total_cap, "the server"));
        }
        bodies.total += bytes;
        bodies.accounts.insert(account, held + bytes);
        Ok(BodyReservation {
            account,
            bytes,
            bodies: self.bodies.clone(),
        })
    }
}

/// Bytes of the body budgets held by one request body; dropping it gives them back.
pub(crate) struct BodyReservation {
    account: AccountId,
    bytes: usize,
    bodies: Arc<Mutex<BodiesInFlight>>,
}

impl Drop for BodyReservation {
    fn drop(&mut self) {
        let mut bodies = self.bodies.lock().unwrap_or_else(|e| e.into_inner());
        bodies.total = bodies.total.saturating_sub(self.bytes);
        if let Some(held) = bodies.accounts.get_mut(&self.account) {
            *held = held.saturating_sub(self.bytes);
            if *held == 0 {
                bodies.accounts.remove(&self.account);
            }
        }
    }
}

/// One open event stream of an account and token; dropping it closes the counts.
pub(crate) struct StreamPermit {
    account: AccountId,
    token: Token,
    streams: Arc<Mutex<OpenStreams>>,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        release(&mut open.accounts, &self.account);
        release(&mut open.tokens, &self.token);
    }
}

/// The error of a body larger than `limit`.
pub(crate) fn too_large(limit: usize, what: &str) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("{what} is larger than this method's limit of {limit} bytes"),
    )
    .because(Reason::TooLarge)
    .with("limit", limit)
}

/// The error of a body not received within `timeout`.
pub(crate) fn body_timeout(timeout: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "the request body was not received within {} s",
            timeout.as_secs()
        ),
    )
}
