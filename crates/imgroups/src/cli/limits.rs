//! `serve`'s network limits (docs/operating.md, "Limits"): request sizes, timeouts, caps and rates.

use std::time::Duration;

use imgroups_server::{ConnLimits, NetLimits};

/// Limits of the network surface; every one has a default that the tests and benchmarks
/// never reach.
#[derive(clap::Args)]
pub(crate) struct LimitArgs {
    /// Largest request message (gRPC) or body (HTTP) of every method but the icon upload, in
    /// bytes. Larger: RESOURCE_EXHAUSTED / HTTP 413. (SetIcon takes --max-icon-bytes plus
    /// 64 KiB over gRPC, --http-body-limit over HTTP.)
    #[arg(long, default_value_t = NetLimits::default().max_message_bytes as u64,
          value_parser = clap::value_parser!(u64).range(1024..))]
    max_message_bytes: u64,
    /// Seconds a request body may take to arrive after its headers; a stalled body is cut
    /// (DEADLINE_EXCEEDED / HTTP 408, error-code `timeout`).
    #[arg(long, default_value_t = NetLimits::default().body_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout_secs: u64,
    /// Most open event streams (live subscriptions, catch-ups, SSE) per account; more:
    /// RESOURCE_EXHAUSTED / HTTP 429 with `reason=tooManyStreams`. 0: no cap.
    #[arg(long, default_value_t = NetLimits::default().max_event_streams)]
    max_event_streams: usize,
    /// Most open event streams per token (one device of an account), within
    /// --max-event-streams; more: the same RESOURCE_EXHAUSTED / HTTP 429 with
    /// `reason=tooManyStreams`. 0: no cap of its own.
    #[arg(long, default_value_t = NetLimits::default().max_event_streams_per_token)]
    max_event_streams_per_token: usize,
    /// Requests per second per account (token bucket); more: RESOURCE_EXHAUSTED / HTTP 429
    /// with `burstRateExceeded` and a retry hint. 0 (the default): no rate limit; set it on
    /// an open network.
    #[arg(long, default_value_t = NetLimits::default().rate_per_sec)]
    rate_limit_per_sec: u32,
    /// How many requests an account may send at once before --rate-limit-per-sec applies.
    #[arg(long, default_value_t = NetLimits::default().rate_burst,
          value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit_burst: u32,
    /// Bytes of request bodies the server reads at once, in all (declared sizes; a body of
    /// unknown length counts as its method's limit). More: RESOURCE_EXHAUSTED / HTTP 413
    /// with `reason=bodiesInFlight`, retryable. 0: no budget.
    #[arg(long, default_value_t = NetLimits::default().max_body_bytes_in_flight as u64)]
    max_body_bytes_in_flight: u64,
    /// The same per account, within --max-body-bytes-in-flight. 0: no budget of its own.
    #[arg(long, default_value_t = NetLimits::default().max_body_bytes_in_flight_per_account as u64)]
    max_body_bytes_in_flight_per_account: u64,
    /// HTTP/2, both listeners (gRPC and HTTP): bytes of response data buffered per stream
    /// beyond what the socket takes (a client that stops reading holds at most this per
    /// stream).
    #[arg(long, default_value_t = ConnLimits::default().stream_send_buffer as u64,
          value_parser = clap::value_parser!(u64).range(1024..=u64::from(u32::MAX)))]
    stream_send_buffer: u64,
    /// Most connections open at once on each listener (gRPC, HTTP); more are closed at
    /// accept, before anything is read.
    #[arg(long, default_value_t = ConnLimits::default().max_connections as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// HTTP/1: seconds the request head may take to arrive (slowloris); then the connection
    /// is closed.
    #[arg(long, default_value_t = ConnLimits::default().header_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout_secs: u64,
    /// Seconds a connection may read and write nothing before it is closed (longer than
    /// --heartbeat-secs and the 60 s HTTP/2 keepalive, so open streams never count as idle).
    #[arg(long, default_value_t = ConnLimits::default().idle_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout_secs: u64,
    /// HTTP/2: most concurrent calls (streams) per connection, on both listeners.
    #[arg(long, default_value_t = ConnLimits::default().max_streams_per_connection,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_streams_per_connection: u32,
    /// On shutdown, seconds in-flight calls and open connections get before they are
    /// dropped (a client ignoring GOAWAY cannot hold the server longer).
    #[arg(long, default_value_t = ConnLimits::default().shutdown_grace.as_secs())]
    shutdown_grace_secs: u64,
}

impl LimitArgs {
    pub(crate) fn limits(&self) -> NetLimits {
        NetLimits {
            max_message_bytes: usize::try_from(self.max_message_bytes).unwrap_or(usize::MAX),
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            max_event_streams: self.max_event_streams,
            max_event_streams_per_token: self.max_event_streams_per_token,
            rate_per_sec: self.rate_limit_per_sec,
            rate_burst: self.rate_limit_burst,
            max_body_bytes_in_flight: usize::try_from(self.max_body_bytes_in_flight)
                .unwrap_or(usize::MAX),
            max_body_bytes_in_flight_per_account: usize::try_from(
                self.max_body_bytes_in_flight_per_account,
            )
            .unwrap_or(usize::MAX),
        }
    }

    pub(crate) fn conn(&self) -> ConnLimits {
        ConnLimits {
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_streams_per_connection: self.max_streams_per_connection,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            stream_send_buffer: usize::try_from(self.stream_send_buffer).unwrap_or(usize::MAX),
            ..ConnLimits::default()
        }
    }
}
