//! Webhook delivery: every group event of an account POSTed, signed, to each of its endpoints.
//!
//! - One task per active endpoint, so each endpoint has one request in flight at a time and
//!   receives its events in sequence order. A supervisor starts and stops those tasks as
//!   endpoints are added, removed, paused or resumed: at once when the store says so (for
//!   changes by this server or, as a hint, by the CLI), and at the latest within
//!   [`WebhookOptions::poll`].
//! - The endpoint's cursor lives in the store and advances only after a 2xx, so delivery is
//!   at-least-once across failures, outages and restarts: the next attempt starts from the
//!   cursor. Receivers deduplicate by `sequence`.
//! - A failed attempt (non-2xx, timeout, connection error) is retried with exponential backoff
//!   and full jitter; after [`WebhookOptions::max_failures`] consecutive failures the endpoint
//!   is paused until resumed (`imgroups webhook resume ID` or `POST /v1/webhooks:resume`).
//!
//! Request: `POST <url>` with `content-type: application/json`, body
//! `wire::event_json`, and headers
//! - `x-imgroups-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
//! - `x-imgroups-webhook-id: <endpoint id>`, `x-imgroups-sequence: <sequence>`,
//!   `x-imgroups-attempt: <1, 2, …>`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use imgroups_core::port::{Notices, Store, Webhook};
use imgroups_core::{AccountId, Event, WebhookId};
use rand::Rng;
use sha2::Sha256;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::wire;

/// Signature header name.
pub const SIGNATURE_HEADER: &str = "x-imgroups-signature";

#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Consecutive failed attempts after which an endpoint is paused.
    pub max_failures: u32,
    /// Time allowed for one attempt (connect + answer).
    pub timeout: Duration,
    /// Delay before the first retry; doubles per failure (with jitter) up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How often the endpoint table is re-read and an idle endpoint re-checks the log, in case
    /// a notice was lost.
    pub poll: Duration,
    /// Where several processes serve one store, each endpoint is delivered by one of them at
    /// a time under a lease this long, renewed while it delivers ([`Hooks::claim_webhook`]).
    ///
    /// [`Hooks::claim_webhook`]: imgroups_core::port::Hooks::claim_webhook
    pub lease: Duration,
    /// Where deliveries may go (scheme and destination addresses); see [`crate::egress`].
    pub egress: Arc<crate::egress::Policy>,
    /// Most endpoints one account may register through the API.
    pub max_per_account: u32,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            max_failures: 10,
            timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            poll: Duration::from_secs(2),
            lease: Duration::from_secs(10),
            egress: Arc::new(crate::egress::Policy::default()),
            max_per_account: DEFAULT_MAX_PER_ACCOUNT,
        }
    }
}

/// Default of [`WebhookOptions::max_per_account`].
pub const DEFAULT_MAX_PER_ACCOUNT: u32 = 10;

/// `t=<t>,v1=<hex>`: HMAC-SHA256 with `secret` over `<t>.<body>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this never fails.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Starts the supervisor; it and every delivery task are owned by `tasks` and end when
/// `shutdown` is cancelled.
pub(crate) fn start(
    store: Arc<dyn Store>,
    options: WebhookOptions,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) {
    let client = match reqwest::Client::builder()
        .timeout(options.timeout)
        // A redirect could point anywhere: the receiver must answer itself.
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(crate::egress::Resolver {
            policy: options.egress.clone(),
        }))
        .user_agent(concat!("imgroups-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "cannot create the webhook http client; webhooks are off");
            return;
        }
    };
    let supervisor = Supervisor {
        store,
        options,
        client,
        shutdown,
        tasks: tasks.clone(),
        running: HashMap::new(),
    };
    tasks.spawn(supervisor.run());
}

struct Supervisor {
    store: Arc<dyn Store>,
    options: WebhookOptions,
    client: reqwest::Client,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Endpoint id → (its stop switch, its task).
    running: HashMap<WebhookId, (CancellationToken, JoinHandle<()>)>,
}

impl Supervisor {
    async fn run(mut self) {
        // Listen before reading the table, so a change made in between still wakes us.
        let mut changes = self.store.webhook_changes();
        loop {
            changes.mark_unchanged();
            self.reconcile().await;
            let changed = async {
                if changes.changed().await.is_err() {
                    // No more change signals: the poll alone from here on.
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => {
                    for (stop, _) in self.running.values() {
                        stop.cancel();
                    }
                    return;
                }
                _ = changed => {}
                _ = tokio::time::sleep(self.options.poll) => {}
            }
        }
    }

    /// Runs one task per active endpoint: starts missing ones, stops removed or paused ones.
    async fn reconcile(&mut self) {
        let hooks = match self.store.webhooks(None).await {
            Ok(hooks) => hooks,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read webhooks");
                return;
            }
        };
        // A task that paused its endpoint has ended; forget it so a resume starts a new one.
        self.running.retain(|_, (_, task)| !task.is_finished());
        let active: HashMap<WebhookId, &Webhook> = hooks
            .iter()
            .filter(|h| !h.paused)
            .map(|h| (h.id, h))
            .collect();
        self.running.retain(|id, (stop, _)| {
            let keep = active.contains_key(id);
            if !keep {
                stop.cancel();
            }
            keep
        });
        for (id, hook) in active {
            if self.running.contains_key(&id) {
                continue;
            }
            let stop = self.shutdown.child_token();
            let endpoint = Endpoint {
                store: self.store.clone(),
                client: self.client.clone(),
                options: self.options.clone(),
                hook: hook.clone(),
                stop: stop.clone(),
                renewed: None,
                metrics: EndpointMetrics::new(id),
            };
            let task = self.tasks.spawn(endpoint.run());
            self.running.insert(id, (stop, task));
        }
    }
}

/// Events read from the log per query by a delivery task.
const PAGE: usize = 64;

struct Endpoint {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    options: WebhookOptions,
    hook: Webhook,
    stop: CancellationToken,
    /// When this process last took or renewed the endpoint's lease (`None`: it does not hold
    /// it).
    renewed: Option<Instant>,
    metrics: EndpointMetrics,
}

/// One endpoint's metric handles, labelled with its id once when its task starts.
struct EndpointMetrics {
    delivered: ::metrics::Counter,
    failed: ::metrics::Counter,
    lag: ::metrics::Gauge,
}

impl EndpointMetrics {
    fn new(id: WebhookId) -> Self {
        crate::metrics::install();
        let endpoint = id.to_string();
        EndpointMetrics {
            delivered: ::metrics::counter!("imgroups_webhook_deliveries_total", "endpoint" => endpoint.clone()),
            failed: ::metrics::counter!("imgroups_webhook_failures_total", "endpoint" => endpoint.clone()),
            lag: ::metrics::gauge!("imgroups_webhook_lag_events", "endpoint" => endpoint),
        }
    }
}

impl Endpoint {
    /// Takes or renews the lease when a third of it has passed; the endpoint's stored cursor
    /// when this process newly took it. `Err(())`: another process holds it.
    async fn hold_lease(&mut self) -> Result<Option<u64>, ()> {
        let lease = self.options.lease;
        if self.renewed.is_some_and(|at| at.elapsed() < lease / 3) {
            return Ok(None);
        }
        let had = self.renewed.is_some();
        match self.store.claim_webhook(self.hook.id, lease).await {
            Ok(Some(cursor)) => {
                self.renewed = Some(Instant::now());
                Ok((!had).then_some(cursor))
            }
            Ok(None) => {
                self.renewed = None;
                Err(())
            }
            Err(err) => {
                tracing::warn!(error = %err, "webhook: cannot renew the delivery lease");
                // Keep delivering while the lease we had may still run; stop once it may not.
                match self.renewed {
                    Some(at) if at.elapsed() < lease * 2 / 3 => Ok(None),
                    _ => {
                        self.renewed = None;
                        Err(())
                    }
                }
            }
        }
    }

    async fn run(mut self) {
        // Listen before reading, so a commit between the read and the wait still wakes us.
        let mut notices = self.store.notices();
        let mut cursor = self.hook.cursor;
        let account = self.hook.account;
        loop {
            match self.hold_lease().await {
                // Another process may have delivered further while it held the lease.
                Ok(Some(stored)) => cursor = cursor.max(stored),
                Ok(None) => {}
                Err(()) => {
                    // Another process delivers this endpoint; look again when its lease may
                    // have run out.
                    tokio::select! {
                        _ = self.stop.cancelled() => return,
                        _ = tokio::time::sleep(self.options.lease / 3) => continue,
                    }
                }
            }
            let head = match self.store.log_bounds(account).await {
                // What a simulator reset cleared is not owed to anyone (the store moved the
                // endpoint's cursor past it too).
                Ok(bounds) => {
                    cursor = bounds.start(cursor);
                    bounds.head
                }
                Err(err) => {
                    tracing::warn!(error = %err, "webhook: cannot read the head");
                    0
                }
            };
            self.metrics.lag.set(head.saturating_sub(cursor) as f64);
            if cursor < head {
                let page = match self.store.read_events(account, cursor, head, PAGE).await {
                    Ok(page) => page,
                    Err(err) => {
                        tracing::warn!(error = %err, "webhook: cannot read the log");
                        Vec::new()
                    }
                };
                if let Some(first) = page.first().filter(|e| e.sequence != cursor + 1) {
                    // Retention pruned events this endpoint never got: stop visibly rather
                    // than skip them (an at-least-once consumer must not lose events silently).
                    let why = format!(
                        "events after sequence {cursor} were removed by retention before delivery (oldest kept: {})",
                        first.sequence
                    );
                    tracing::warn!(webhook = %self.hook.id, %why, "webhook paused");
                    if let Err(err) = self.store.webhook_failed(self.hook.id, &why, 1).await {
                        tracing::warn!(error = %err, "webhook: cannot record a failure");
                    }
                    return;
                }
                if let Some(last) = page.last() {
                    let last = last.sequence;
                    for event in page {
                        if !self.deliver(&event).await {
                            return;
                        }
                        self.metrics
                            .lag
                            .set(head.saturating_sub(event.sequence) as f64);
                    }
                    cursor = last;
                    continue;
                }
            }
            if !wait_for_events(&mut notices, account, &self.stop, self.options.poll).await {
                return;
            }
        }
    }

    /// Delivers one event until a 2xx; false when the task must stop (shutdown, removal,
    /// pause).
    async fn deliver(&mut self, event: &Event) -> bool {
        let body = match wire::event_json(event).map(|v| v.to_string()) {
            Ok(body) => body,
            Err(err) => {
                tracing::error!(error = %err, "webhook: cannot encode event");
                return false;
            }
        };
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            if self.hold_lease().await.is_err() {
                // Lost to another process (this one stalled): it delivers from here.
                return false;
            }
            let outcome = tokio::select! {
                _ = self.stop.cancelled() => return false,
                outcome = self.post(event.sequence, &body, attempt) => outcome,
            };
            let why = match outcome {
                Ok(()) => {
                    self.metrics.delivered.increment(1);
                    if let Err(err) = self
                        .store
                        .webhook_delivered(self.hook.id, event.sequence)
                        .await
                    {
                        // Delivered, but the cursor did not move: it will be sent again after a
                        // restart, which at-least-once allows.
                        tracing::warn!(error = %err, "webhook: cannot record the delivery");
                    }
                    return true;
                }
                Err(why) => why,
            };
            self.metrics.failed.increment(1);
            tracing::debug!(webhook = %self.hook.id, sequence = event.sequence, %why, "webhook attempt failed");
            match self
                .store
                .webhook_failed(self.hook.id, &why, self.options.max_failures)
                .await
            {
                Ok(true) => {
                    tracing::warn!(
                        webhook = %self.hook.id,
                        url = %self.hook.url,
                        "webhook paused after {} consecutive failures",
                        self.options.max_failures
                    );
                    return false;
                }
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, "webhook: cannot record a failure"),
            }
            let delay = backoff(&self.options, attempt);
            tokio::select! {
                _ = self.stop.cancelled() => return false,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One attempt. `Err` says what went wrong, in lower case, for `last_error`.
    /// Deliberately vague about why a connection failed (see [`crate::egress`]); the detail
    /// is logged at debug level.
    async fn post(&self, sequence: u64, body: &str, attempt: u32) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.hook.url).map_err(|_| "invalid url".to_owned())?;
        // Re-checked at every attempt: the policy may have changed since registration (or the
        // endpoint came from the CLI, which does not know the server's policy).
        if self.options.egress.check_delivery(&url).is_err() {
            return Err(crate::egress::REFUSED.to_owned());
        }
        let now = imgroups_core::Timestamp::now().seconds();
        let response = self
            .client
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                SIGNATURE_HEADER,
                signature(&self.hook.secret, now, body.as_bytes()),
            )
            .header("x-imgroups-webhook-id", self.hook.id.to_string())
            .header("x-imgroups-sequence", sequence.to_string())
            .header("x-imgroups-attempt", attempt.to_string())
            .body(body.to_owned())
            .send()
            .await
            .map_err(|err| {
                tracing::debug!(webhook = %self.hook.id, error = ?err, "webhook request failed");
                if refused(&err) {
                    crate::egress::REFUSED.to_owned()
                } else {
                    // One text for refused, reset, unreachable and timed out alike.
                    "no answer (connection failed or timed out)".to_owned()
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("http status {}", status.as_u16()))
        }
    }
}

/// Whether the egress resolver refused every address of the endpoint's host.
fn refused(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<crate::egress::Refused>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Waits until `account`'s log may have moved: a notice for it, lost notices, or `poll`
/// (a lost hint delays delivery, never skips it). False when the task must stop.
async fn wait_for_events(
    notices: &mut broadcast::Receiver<Notices>,
    account: AccountId,
    stop: &CancellationToken,
    poll: Duration,
) -> bool {
    let timeout = tokio::time::sleep(poll);
    tokio::pin!(timeout);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return false,
            notice = notices.recv() => match notice {
                Ok(notices) => {
                    if notices.iter().any(|n| n.account == account) {
                        return true;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => return true,
                Err(broadcast::error::RecvError::Closed) => {
                    (&mut timeout).await;
                    return true;
                }
            },
            _ = &mut timeout => return true,
        }
    }
}

/// Full jitter over an exponential ceiling: uniform in `[ceiling/2, ceiling]`.
fn backoff(options: &WebhookOptions, attempt: u32) -> Duration {
    let exp = options
        .initial_backoff
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let ceiling = exp.min(options.max_backoff);
    let half = ceiling / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
    half + Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Reference computed independently: HMAC-SHA256("secret", "1700000000.{}").
        let sig = signature("secret", 1_700_000_000, b"{}");
        assert!(sig.starts_with("t=1700000000,v1="));
        assert_eq!(sig.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(sig, signature("secret", 1_700_000_001, b"{}"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let options = WebhookOptions {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..WebhookOptions::default()
        };
        for attempt in 1..40 {
            let d = backoff(&options, attempt);
            assert!(d <= Duration::from_millis(1001), "{d:?}");
        }
        let first = backoff(&options, 1);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(101));
    }
}
