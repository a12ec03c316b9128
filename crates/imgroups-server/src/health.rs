//! Being operable: liveness, readiness and the drain before shutdown, over both transports.
//!
//! - gRPC: the standard health service (`grpc.health.v1.Health`), SERVING for `""` and each
//!   of our services until shutdown begins, then NOT_SERVING.
//! - HTTP: `GET /healthz` (the process serves), `GET /readyz` (the store answers and we are not
//!   draining), `GET /metrics`.
//!
//! On shutdown the server first *drains*: it says it is going away (NOT_SERVING, `/readyz`
//! 503) while still serving everything, for [`crate::OpsOptions::drain`], so a load balancer
//! that polls either stops sending new work before the listeners close.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use imgroups_core::port::Store;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::rpc::{self, Served};

/// The services whose health is reported: `""` (the server as a whole) and each service with
/// a registered operation.
fn health_services() -> impl Iterator<Item = &'static str> {
    let mut services: Vec<&'static str> = Served::get().methods().map(rpc::service_path).collect();
    services.dedup();
    std::iter::once("").chain(services)
}

/// How long `/readyz` waits for the store before it calls it not ready.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Shared by the transports: is this server ready, and is it going away.
#[derive(Clone)]
pub(crate) struct Health {
    store: Arc<dyn Store>,
    draining: Arc<AtomicBool>,
    health: HealthReporter,
}

/// Why `/readyz` says no.
pub(crate) enum NotReady {
    Draining,
    Store,
}

impl NotReady {
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            NotReady::Draining => "the server is shutting down",
            NotReady::Store => "the store does not answer",
        }
    }
}

impl Health {
    /// Reports SERVING for every service we serve.
    pub(crate) async fn new(store: Arc<dyn Store>, health: HealthReporter) -> Health {
        for service in health_services() {
            health
                .set_service_status(service, ServingStatus::Serving)
                .await;
        }
        Health {
            store,
            draining: Arc::new(AtomicBool::new(false)),
            health,
        }
    }

    /// Ready: not draining, and the store answers a cheap query (it is open, so its
    /// migrations are done).
    pub(crate) async fn ready(&self) -> Result<(), NotReady> {
        if self.draining.load(Ordering::Relaxed) {
            return Err(NotReady::Draining);
        }
        match tokio::time::timeout(READY_TIMEOUT, self.store.ready()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "readiness check: the store failed");
                Err(NotReady::Store)
            }
            Err(_) => {
                tracing::warn!("readiness check: the store did not answer in time");
                Err(NotReady::Store)
            }
        }
    }

    /// Shutdown has begun: from now on, not ready and NOT_SERVING.
    pub(crate) async fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        for service in health_services() {
            self.health
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
    }

    /// The listeners are closing: ends open health `Watch` streams (their status channels
    /// go away), which graceful shutdown would otherwise wait for forever.
    pub(crate) async fn stopped(&self) {
        let mut health = self.health.clone();
        for service in health_services() {
            health.clear_service_status(service).await;
        }
    }
}
