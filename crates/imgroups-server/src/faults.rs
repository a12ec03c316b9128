//! Injected faults (simulator controls): the next N calls of a method, or every call for a
//! while, fail with a chosen error code and retryable flag, or are delayed — so a bot's retry
//! and error handling can be tested against the real server.
//!
//! Faults live in the store, beside its port ([`imgroups_core::port::SimControls`]:
//! `imgroups sim fault`, the console), so every process serving it sees the same ones. Only
//! the simulator has them: without its controls ([`crate::Options::sim`], `None` on a Mac)
//! nothing is read and no fault ever applies. Each process keeps the armed faults in memory,
//! re-read every [`REFRESH_EVERY`] and at once after a change made through this process's
//! console. A call checks an atomic flag first: while no fault is armed anywhere, that load is
//! all it costs. A counted fault is used up in the store (`SimControls::take_fault`, atomic
//! across processes), so N means N calls in total, whichever process serves them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use imgroups_core::port::{Fault, NewFault, SimControls, Store};
use imgroups_core::{AccountId, Error, ErrorKind, Result, Timestamp};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::wire;

/// Longest latency a fault may add: ten minutes.
pub const MAX_FAULT_LATENCY_MS: u64 = 600_000;

/// A fault as someone asks for it — the CLI's flags, the console's form — before it is
/// checked. One place decides what a valid fault is, for both.
#[derive(Debug, Clone, Default)]
pub struct FaultRequest<'a> {
    /// `*` or an RPC name ([`crate::method_names`]).
    pub method: &'a str,
    /// A wire error code ([`crate::fault_codes`]); `None`: latency only.
    pub code: Option<&'a str>,
    pub retryable: bool,
    pub latency_ms: u64,
    /// Applies to this many calls (at least 1); `None`: every call.
    pub count: Option<u32>,
    /// Disarms after this many seconds (at least 1); `None`: no time limit.
    pub for_secs: Option<u64>,
}

impl FaultRequest<'_> {
    /// `invalidArgument` naming the field (`method`, `code`, `latencyMs`, `count`,
    /// `forSecs`) for anything a fault cannot be.
    pub fn check(&self) -> Result<()> {
        let method = self.method;
        let names = crate::method_names();
        if method != "*" && !names.contains(&method) {
            return Err(Error::invalid(format!(
                "unknown method {method:?}; use * or one of: {}",
                names.join(", ")
            ))
            .with("field", "method"));
        }
        if let Some(code) = self.code {
            if wire::kind_of_code(code).is_none() {
                let codes: Vec<&str> = crate::fault_codes().collect();
                return Err(Error::invalid(format!(
                    "unknown error code {code:?}; one of: {}",
                    codes.join(", ")
                ))
                .with("field", "code"));
            }
        }
        if self.code.is_none() && self.latency_ms == 0 {
            return Err(Error::invalid(
                "a fault needs an error code (--code), a latency (--latency-ms) or both",
            )
            .with("field", "code"));
        }
        if self.latency_ms > MAX_FAULT_LATENCY_MS {
            return Err(Error::invalid(format!(
                "the latency is at most {MAX_FAULT_LATENCY_MS} ms"
            ))
            .with("field", "latencyMs"));
        }
        if self.count == Some(0) {
            return Err(Error::invalid("count must be at least 1").with("field", "count"));
        }
        if self.for_secs == Some(0) {
            return Err(Error::invalid("forSecs must be at least 1").with("field", "forSecs"));
        }
        Ok(())
    }

    /// The checked fault for `account`, its time limit counted from `now` (the store's time,
    /// [`imgroups_core::port::Store::now`], so a controllable clock runs it out).
    pub fn fault(&self, account: AccountId, now: Timestamp) -> Result<NewFault> {
        self.check()?;
        let until = self.for_secs.map(|secs| {
            let nanos = i64::try_from(secs)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000_000);
            Timestamp(now.0.saturating_add(nanos))
        });
        Ok(NewFault {
            account,
            method: self.method.to_owned(),
            error_code: self.code.map(str::to_owned),
            retryable: self.retryable,
            latency_ms: self.latency_ms,
            count: self.count,
            until,
        })
    }
}

/// How often the armed faults are re-read from the store: a fault added by the CLI, or by
/// another process, applies within about this long.
pub(crate) const REFRESH_EVERY: Duration = Duration::from_millis(250);

/// The armed faults, as this process last read them.
pub(crate) struct Faults {
    /// Where faults are kept; `None`: not the simulator, nothing to apply.
    controls: Option<Arc<dyn SimControls>>,
    /// For the store's time (a controllable clock runs timed faults out).
    store: Arc<dyn Store>,
    any: AtomicBool,
    armed: RwLock<Arc<[Fault]>>,
}

impl Faults {
    /// Reads the armed faults, then keeps them fresh until `stop`. Without `controls` there
    /// is nothing to read: none is ever armed.
    pub(crate) async fn start(
        controls: Option<Arc<dyn SimControls>>,
        store: Arc<dyn Store>,
        stop: CancellationToken,
        tasks: &TaskTracker,
    ) -> Arc<Faults> {
        let faults = Arc::new(Faults {
            controls,
            store,
            any: AtomicBool::new(false),
            armed: RwLock::new(Arc::from(Vec::new())),
        });
        if faults.controls.is_none() {
            return faults;
        }
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
        let Some(controls) = &self.controls else {
            return;
        };
        match controls.faults().await {
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

    /// Whether any fault is armed at all: while none is, [`Faults::apply`] does nothing and
    /// a caller may skip it.
    pub(crate) fn any_armed(&self) -> bool {
        self.any.load(Ordering::Acquire)
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
        // The store's time, read only when a timed fault could apply (a controllable clock
        // may have run it out since the faults were last read).
        let mut now: Option<Timestamp> = None;
        for fault in armed.iter() {
            let spec = &fault.spec;
            if spec.account != account || (spec.method != "*" && spec.method != method) {
                continue;
            }
            if let Some(until) = spec.until {
                let now = match now {
                    Some(now) => now,
                    None => *now.insert(self.store.now().await?),
                };
                if until <= now {
                    continue;
                }
            }
            // Counted faults are used up in the store, so N calls fail in total across
            // processes; a fault without a count needs no write.
            if spec.count.is_some() {
                // Armed faults were read through the controls, so they are there.
                let Some(controls) = &self.controls else {
                    continue;
                };
                if !controls.take_fault(fault.id).await? {
                    continue;
                }
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
