//! Injected faults (simulator controls): the next N calls of a method, or every call for a
//! while, fail with a chosen error code and retryable flag, or are delayed — so a bot's retry
//! and error handling can be tested against the real server.
//!
//! Faults live in the store (`imgroups sim fault`, the console), so every process serving it
//! sees the same ones. Each process keeps the armed faults in memory, re-read every
//! [`REFRESH_EVERY`] and at once after a change made through this process's console. A call
//! checks an atomic flag first: while no fault is armed anywhere, that load is all it costs.
//! A counted fault is used up in the store (`Faults::take_fault`, atomic across processes),
//! so N means N calls in total, whichever process serves them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use imgroups_core::port::{Fault, Store};
use imgroups_core::{AccountId, Error, ErrorKind, Result, Timestamp};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::wire;

/// How often the armed faults are re-read from the store: a fault added by the CLI, or by
/// another process, applies within about this long.
pub(crate) const REFRESH_EVERY: Duration = Duration::from_millis(250);

/// The armed faults, as this process last read them.
pub(crate) struct Faults {
    store: Arc<dyn Store>,
    any: AtomicBool,
    armed: RwLock<Arc<[Fault]>>,
}

impl Faults {
    /// Reads the armed faults, then keeps them fresh until `stop`.
    pub(crate) async fn start(
        store: Arc<dyn Store>,
        stop: CancellationToken,
        tasks: &TaskTracker,
    ) -> Arc<Faults> {
        let faults = Arc::new(Faults {
            store,
            any: AtomicBool::new(false),
            armed: RwLock::new(Arc::from(Vec::new())),
        });
        faults.refresh().await;
        let keeper = faults.clone();
        tasks.spawn(async move {
            let mut every = tokio::time::interval(REFRESH_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = every.tick() => keeper.refresh().await,
                }
            }
        });
        faults
    }

    /// Re-reads the armed faults now (after a change made here).
    pub(crate) async fn refresh(&self) {
        match self.store.faults().await {
            Ok(armed) => {
                self.any.store(!armed.is_empty(), Ordering::Release);
                if let Ok(mut slot) = self.armed.write() {
                    *slot = Arc::from(armed);
                }
            }
            // The store is busy or gone: keep what we had, try again on the next tick.
            Err(err) => tracing::debug!(error = %err, "cannot re-read injected faults"),
        }
    }

    /// Applies the first armed fault for this account and method (`method` is the RPC name,
    /// or the HTTP path of a route that has none): waits its latency, then fails with its
    /// error if it has one. `Ok` when no fault applies.
    pub(crate) async fn apply(&self, account: AccountId, method: &str) -> Result<()> {
        if !self.any.load(Ordering::Acquire) {
            return Ok(());
        }
        let armed = match self.armed.read() {
            Ok(armed) => armed.clone(),
            Err(_) => return Ok(()),
        };
        let now = Timestamp::now();
        for fault in armed.iter() {
            let spec = &fault.spec;
            if spec.account != account || (spec.method != "*" && spec.method != method) {
                continue;
            }
            if spec.until.is_some_and(|until| until <= now) {
                continue;
            }
            // Counted faults are used up in the store, so N calls fail in total across
            // processes; a fault without a count needs no write.
            if spec.count.is_some() && !self.store.take_fault(fault.id).await? {
                continue;
            }
            tracing::warn!(
                fault = fault.id.0,
                account = %fault.address,
                method,
                error_code = spec.error_code.as_deref().unwrap_or("none"),
                latency_ms = spec.latency_ms,
                "injected fault applied"
            );
            if spec.latency_ms > 0 {
                tokio::time::sleep(Duration::from_millis(spec.latency_ms)).await;
            }
            return match &spec.error_code {
                Some(code) => Err(injected(fault, method, code)),
                None => Ok(()),
            };
        }
        Ok(())
    }
}

/// The error an injected fault fails a call with: the chosen code and retryable flag, and a
/// message and `fault` context entry that say it was injected.
fn injected(fault: &Fault, method: &str, code: &str) -> Error {
    // Codes are checked when a fault is made; one from a newer version is still an error.
    let kind = wire::kind_of_code(code).unwrap_or(ErrorKind::Unavailable);
    Error::new(
        kind,
        format!("injected fault {}: {method} fails with {code}", fault.id.0),
    )
    .with("fault", fault.id.0)
    .retryable(fault.spec.retryable)
}
