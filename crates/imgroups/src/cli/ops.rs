//! `serve`'s operations flags: a metrics listener of its own and the drain before shutdown
//! (docs/operating.md), and the listener they make.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use imgroups_core::Error;

/// Operations: metrics and graceful shutdown.
#[derive(clap::Args)]
pub(crate) struct OpsArgs {
    /// Also serve Prometheus metrics (`GET /metrics`, no token) on this address, besides the
    /// HTTP listener's own `/metrics`; port 0 picks a free port. `serve` then prints
    /// `metrics listening on HOST:PORT` right after the `console` line.
    #[arg(long, env = "IMGROUPS_METRICS", value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// On SIGTERM/SIGINT, keep serving this many milliseconds while gRPC health says
    /// NOT_SERVING and /readyz answers 503, so load balancers stop sending new work before the
    /// listeners close. 0 stops at once; behind Kubernetes, a few seconds (e.g. 5000), within
    /// terminationGracePeriodSeconds.
    #[arg(long, env = "IMGROUPS_SHUTDOWN_DRAIN_MS", default_value_t = 0)]
    shutdown_drain_ms: u64,
}

/// The bound operations listeners, ready to announce and serve.
pub(crate) struct Ops {
    metrics: Option<(tokio::net::TcpListener, SocketAddr)>,
    drain: Duration,
}

impl OpsArgs {
    /// Installs the metrics recorder. Call before the store opens: metric handles made
    /// earlier (the store's writer makes its own) would record nothing.
    pub(crate) fn install_metrics(&self) {
        imgroups_server::metrics::install();
    }

    /// Binds the metrics listener, if one was asked for.
    pub(crate) async fn bind(&self) -> Result<Ops, Error> {
        let metrics = match self.metrics {
            None => None,
            Some(addr) => {
                let listener = crate::listen::bind(addr, "metrics").await?;
                let local = crate::listen::local_addr(&listener)?;
                Some((listener, local))
            }
        };
        Ok(Ops {
            metrics,
            drain: Duration::from_millis(self.shutdown_drain_ms),
        })
    }
}

impl Ops {
    /// The `metrics listening on HOST:PORT` line, when there is a metrics listener.
    pub(crate) fn announce(&self, out: &mut impl Write) {
        if let Some((_, local)) = &self.metrics {
            let _ = writeln!(out, "metrics listening on {local}");
        }
    }

    pub(crate) fn options(self) -> imgroups_server::OpsOptions {
        imgroups_server::OpsOptions {
            metrics: self.metrics.map(|(listener, _)| listener),
            drain: self.drain,
        }
    }
}
