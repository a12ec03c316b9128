//! `serve`'s flags, and what they make: the store's, the engine's and the server's options.
//! The flag groups that grow on their own are in `backend`, `limits`, `ops` and `tls`.

use imgroups_core::limits::SendLimits;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use imgroups_core::{EngineConfig, Error, Limits};
use imgroups_store_sqlite::Durability;

use super::{backend, limits, ops, tls, DataArg};
use crate::store::{Role, StoreOptions};

/// `serve`'s account when none is given (with --backend chatdb: read from chat.db instead).
pub(crate) const DEFAULT_ACCOUNT: &str = "me@imgroups.local";

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) data: DataArg,
    /// Listen address of the gRPC API (port 0 picks a free port).
    #[arg(long, env = "IMGROUPS_GRPC", default_value = "127.0.0.1:50051")]
    pub(crate) grpc: SocketAddr,
    /// The default account, created on first start with a token printed once.
    #[arg(long, env = "IMGROUPS_ACCOUNT", default_value = DEFAULT_ACCOUNT)]
    pub(crate) account: String,
    /// Seconds of silence after which live streams (gRPC and SSE) send a heartbeat.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    heartbeat_secs: u64,
    /// Largest group icon accepted, in bytes.
    #[arg(long, default_value_t = Limits::default().max_icon_bytes)]
    max_icon_bytes: usize,
    /// Most pixels (width × height) an icon may declare in its header; a tiny file can claim
    /// a huge image that every device showing the group would then allocate for.
    #[arg(long, default_value_t = Limits::default().max_icon_pixels,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_icon_pixels: u64,
    /// Longest side, in pixels, an icon may declare in its header.
    #[arg(long, default_value_t = Limits::default().max_icon_side,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_icon_side: u32,
    /// How long idempotency keys are remembered, in seconds.
    #[arg(long, default_value_t = 24 * 60 * 60)]
    idempotency_ttl_secs: u64,
    /// SQLite only. `full`: an acknowledged write survives power loss. `normal`: survives a
    /// crash of the process only. (On PostgreSQL every commit is durable:
    /// `synchronous_commit=on`.)
    #[arg(long, value_enum, default_value = "full")]
    durability: DurabilityArg,
    /// Keep only the newest N events per account (default: keep every event forever).
    /// A catch-up from before the oldest kept event fails with `cursorTooOld`.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    retain_events: Option<u64>,
    /// Deterministic runs (simulator): give the store a controllable clock that starts at
    /// 2026-01-01T00:00:00Z and moves only with `imgroups sim clock advance`, and derive
    /// message GUIDs and group names from seed N, so the same operations give the same log
    /// byte for byte. A restart with the same N continues the run; without --seed the store
    /// goes back to the system's time and random identifiers.
    #[arg(long, value_name = "N")]
    pub(crate) seed: Option<u64>,
    /// Enforce the send limits a real iMessage line meets (simulator; off by default):
    /// `photon` for the built-in preset, or a TOML file (JSON if it ends in .json) setting
    /// messages_per_day, burst_messages + burst_window_secs, recipients_per_day,
    /// new_contacts_per_day, duplicate_messages + duplicate_window_secs,
    /// messages_per_recipient + cooling_window_secs, sends_per_receive +
    /// ratio_after_messages. Refusals carry the
    /// SDK's codes (dailyLimitExceeded, burstRateExceeded, …) and a retry hint; windows run
    /// on the store's clock.
    #[arg(long = "limits", value_name = "photon|FILE")]
    pub(crate) send_limits: Option<String>,
    #[command(flatten)]
    pub(crate) http: HttpArgs,
    #[command(flatten)]
    pub(crate) ops: ops::OpsArgs,
    #[command(flatten)]
    tls: tls::TlsArgs,
    #[command(flatten)]
    limits: limits::LimitArgs,
    #[command(flatten)]
    pub(crate) backend: backend::BackendArgs,
}

/// The HTTP/JSON surface: REST routes, the SSE event stream, webhook delivery.
#[derive(clap::Args)]
pub(crate) struct HttpArgs {
    /// Listen address of the HTTP/JSON API: REST routes, Server-Sent Events, and the web
    /// console at /console/ (port 0 picks a free port).
    #[arg(long = "http", env = "IMGROUPS_HTTP", default_value = "127.0.0.1:8080")]
    pub(crate) addr: SocketAddr,
    /// Largest `POST /v1/groups:setIcon` body accepted, in bytes (the default fits a 10 MiB
    /// icon in base64); every other route takes --max-message-bytes.
    #[arg(long, default_value_t = imgroups_server::DEFAULT_HTTP_BODY_LIMIT)]
    http_body_limit: usize,
    /// Consecutive failed deliveries after which a webhook endpoint is paused.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    webhook_max_failures: u32,
    /// Time allowed for one webhook delivery attempt, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    webhook_timeout_ms: u64,
    /// First webhook retry delay in milliseconds; doubles per failure, with jitter.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    webhook_backoff_ms: u64,
    /// Longest webhook retry delay, in milliseconds.
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    webhook_max_backoff_ms: u64,
    /// With several servers on one PostgreSQL database, each webhook endpoint is delivered
    /// by one of them at a time, under a lease of this many milliseconds (renewed while it
    /// delivers); if that server dies, another takes over once the lease runs out.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    webhook_lease_ms: u64,
    /// Accept plain http:// webhook URLs (local development; default: https:// only).
    #[arg(long)]
    webhook_allow_http: bool,
    /// Let webhooks reach this network although it is loopback, private, link-local or
    /// otherwise special-purpose (refused by default, against request forgery); repeatable,
    /// e.g. --webhook-allow-net 127.0.0.1/32 for a receiver on this machine.
    #[arg(long, value_name = "CIDR")]
    webhook_allow_net: Vec<imgroups_server::egress::IpNet>,
    /// Most webhook endpoints one account may register through the API.
    #[arg(long, default_value_t = imgroups_server::webhooks::DEFAULT_MAX_PER_ACCOUNT,
          value_parser = clap::value_parser!(u32).range(1..))]
    webhook_max_per_account: u32,
}

impl HttpArgs {
    pub(crate) fn options(&self) -> imgroups_server::HttpOptions {
        imgroups_server::HttpOptions {
            body_limit: self.http_body_limit,
            webhooks: imgroups_server::WebhookOptions {
                max_failures: self.webhook_max_failures,
                timeout: Duration::from_millis(self.webhook_timeout_ms),
                initial_backoff: Duration::from_millis(self.webhook_backoff_ms),
                max_backoff: Duration::from_millis(self.webhook_max_backoff_ms),
                lease: Duration::from_millis(self.webhook_lease_ms),
                egress: Arc::new(imgroups_server::egress::Policy {
                    allow_http: self.webhook_allow_http,
                    allow: self.webhook_allow_net.clone(),
                }),
                max_per_account: self.webhook_max_per_account,
                ..imgroups_server::WebhookOptions::default()
            },
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum DurabilityArg {
    Full,
    Normal,
}

impl ServeArgs {
    /// How the server opens its store.
    pub(crate) fn store_options(&self) -> StoreOptions {
        StoreOptions {
            role: Role::Serve,
            durability: match self.durability {
                DurabilityArg::Full => Durability::Full,
                DurabilityArg::Normal => Durability::Normal,
            },
            retain_events: self.retain_events,
        }
    }

    /// The engine's settings; reads the send limits file, if given.
    pub(crate) fn engine_config(&self) -> Result<EngineConfig, Error> {
        Ok(EngineConfig {
            idempotency_ttl: Duration::from_secs(self.idempotency_ttl_secs),
            send_limits: self.send_limits.as_deref().map(send_limits).transpose()?,
        })
    }

    /// The server's options; reads the TLS certificate and key, if given.
    pub(crate) fn server_options(&self) -> Result<imgroups_server::Options, Error> {
        Ok(imgroups_server::Options {
            heartbeat: Duration::from_secs(self.heartbeat_secs),
            limits: Limits {
                max_icon_bytes: self.max_icon_bytes,
                max_icon_pixels: self.max_icon_pixels,
                max_icon_side: self.max_icon_side,
            },
            tls: self.tls.load()?,
            net: self.limits.limits(),
            conn: self.limits.conn(),
            ..imgroups_server::Options::default()
        })
    }
}

/// The send limits `--limits` names: the `photon` preset, or a file's.
fn send_limits(given: &str) -> Result<SendLimits, Error> {
    if given == "photon" {
        return Ok(SendLimits::photon());
    }
    let text = std::fs::read_to_string(given).map_err(|err| {
        Error::invalid(format!(
            "cannot read the limits file {given}: {err} (--limits takes `photon` or a file)"
        ))
        .with("field", "limits")
    })?;
    let parsed = if given.ends_with(".json") {
        serde_json::from_str::<SendLimits>(&text).map_err(|err| err.to_string())
    } else {
        toml::from_str::<SendLimits>(&text).map_err(|err| err.to_string())
    };
    let limits = parsed.map_err(|err| {
        Error::invalid(format!(
            "the limits file {given} is not valid: {}",
            err.trim()
        ))
        .with("field", "limits")
    })?;
    limits.check().map_err(|err| {
        Error::invalid(format!("the limits file {given}: {}", err.message)).with("field", "limits")
    })?;
    Ok(limits)
}
