//! The client, its builder, and the one place every unary call goes through (auth, deadline,
//! idempotency key, retries).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use imgroups_proto::pb;
use rand::Rng;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Code, Error, ErrorKind, Result};
use crate::{Addresses, Chats, Events, Groups, Messages};

/// Largest message sent or received, as the official SDK (icons can be large).
const MAX_MESSAGE_BYTES: usize = 100 * 1024 * 1024;

/// The default server address of `imgroups serve`.
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:50051";

type TokenFuture = Pin<Box<dyn Future<Output = Result<String>> + Send>>;
type TokenFn = dyn Fn() -> TokenFuture + Send + Sync;

#[derive(Clone)]
enum Token {
    None,
    Static(Arc<str>),
    Provider(Arc<TokenFn>),
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a token.
        f.write_str(match self {
            Token::None => "None",
            Token::Static(_) => "Static(…)",
            Token::Provider(_) => "Provider(…)",
        })
    }
}

/// Automatic retries of unary calls.
///
/// Only failures the server marks retryable (`x-retryable: true`) are retried, with exponential
/// backoff and full jitter: before attempt *n + 1* the client sleeps a uniformly random time in
/// `[0, min(max_delay, initial_delay · 2ⁿ⁻¹)]`. Writes carry one `x-idempotency-key` for all
/// their attempts, so a retried write is applied at most once. Streams are never retried (use
/// [`Resumable`](crate::Resumable) for that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; 1 disables retries.
    pub max_attempts: u32,
    /// Delay before the first retry; it doubles per attempt (full jitter).
    pub initial_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 200 ms initial delay, 5 s cap (the official SDK's defaults).
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The full-jitter delay before retry number `retry` (1-based).
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .initial_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        let cap = exp.min(self.max_delay);
        let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

/// Configures a [`Client`]. Start with [`Client::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    address: String,
    token: Token,
    tls: Option<bool>,
    /// Extra trusted roots (PEM), besides the webpki roots.
    tls_ca: Option<Arc<[u8]>>,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    retry: RetryPolicy,
    auto_idempotency: bool,
}

impl ClientBuilder {
    /// The server: `http://host:port` (plaintext), `https://host:port` (TLS), or `host:port`
    /// (TLS unless [`tls(false)`](Self::tls)). Default [`DEFAULT_ADDRESS`].
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }

    /// A static bearer token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Token::Static(Arc::from(token.into()));
        self
    }

    /// A token fetched for every call (and every retry and stream), e.g. to refresh it.
    pub fn token_provider<F, Fut>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        self.token = Token::Provider(Arc::new(move || Box::pin(provider())));
        self
    }

    /// Forces TLS on or off, whatever the address's scheme says.
    pub fn tls(mut self, tls: bool) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Also trusts the certificate authorities in `pem` (one or more PEM certificates), besides
    /// the public webpki roots: for a server with a self-signed certificate or a private CA.
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_ca = Some(pem.into().into());
        self
    }

    /// Deadline of each unary call attempt (streams have none). Default: none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long to wait for a connection. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Default [`RetryPolicy::default`]; [`RetryPolicy::none`] disables retries.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Whether writes carry an `x-idempotency-key` (default true).
    pub fn auto_idempotency(mut self, enabled: bool) -> Self {
        self.auto_idempotency = enabled;
        self
    }

    /// Builds the client; call it inside a tokio runtime. Connections are made lazily, on the first call, and re-made after
    /// a disconnect; an unreachable server shows up as an [`ErrorKind::Connection`] error from
    /// that call.
    pub fn build(self) -> Result<Client> {
        let invalid = |why: String| {
            Error::local(
                ErrorKind::Validation,
                Code::InvalidArgument,
                "invalidArgument",
                why,
            )
            .with_context("field", "address")
        };
        let address = self.address.trim();
        let (tls, uri) = match address.split_once("://") {
            Some(("http", rest)) => (self.tls.unwrap_or(false), rest),
            Some(("https", rest)) => (self.tls.unwrap_or(true), rest),
            Some((scheme, _)) => return Err(invalid(format!("unsupported scheme {scheme:?}"))),
            None => (self.tls.unwrap_or(true), address),
        };
        let uri = uri.trim_end_matches('/');
        if uri.is_empty() || uri.contains('/') {
            return Err(invalid("empty server address".to_owned()));
        }
        let scheme = if tls { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{uri}"))
            .map_err(|err| invalid(format!("invalid server address {address:?}: {err}")))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            // The official SDK pings every 30 s; do the same so half-open streams are noticed.
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        if tls {
            endpoint = with_tls(endpoint, self.tls_ca.as_deref())?;
        }
        // The connection machinery runs on tokio; without a runtime it would panic.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::local(
                ErrorKind::Other,
                Code::FailedPrecondition,
                "internalError",
                "build the client inside a tokio runtime",
            ));
        }
        // Two connections, like the official SDK: one for unary calls and one for streams, so
        // a busy stream never holds up a call.
        let unary = endpoint.connect_lazy();
        let streams = endpoint.connect_lazy();
        Ok(Client {
            inner: Arc::new(Inner {
                unary,
                streams,
                token: self.token,
                timeout: self.timeout,
                retry: self.retry,
                auto_idempotency: self.auto_idempotency,
            }),
        })
    }
}

#[cfg(feature = "tls")]
fn with_tls(endpoint: Endpoint, ca: Option<&[u8]>) -> Result<Endpoint> {
    let mut config = tonic::transport::ClientTlsConfig::new().with_webpki_roots();
    if let Some(ca) = ca {
        config = config.ca_certificate(tonic::transport::Certificate::from_pem(ca));
    }
    endpoint.tls_config(config).map_err(|err| {
        Error::local(
            ErrorKind::Connection,
            Code::Unavailable,
            "networkError",
            format!("cannot set up tls: {err}"),
        )
    })
}

#[cfg(not(feature = "tls"))]
fn with_tls(_endpoint: Endpoint, _ca: Option<&[u8]>) -> Result<Endpoint> {
    Err(Error::local(
        ErrorKind::Validation,
        Code::InvalidArgument,
        "invalidArgument",
        "this build has no tls support; use an http:// address or enable the `tls` feature",
    ))
}

/// A connection to an imgroups (or photon.imessage.v1) server. Cheap to clone; clones share
/// connections.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    unary: Channel,
    streams: Channel,
    token: Token,
    timeout: Option<Duration>,
    pub(crate) retry: RetryPolicy,
    auto_idempotency: bool,
}

impl Client {
    /// A builder with the defaults: [`DEFAULT_ADDRESS`], no token, retries on, no timeout.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            address: DEFAULT_ADDRESS.to_owned(),
            token: Token::None,
            tls: None,
            tls_ca: None,
            timeout: None,
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            auto_idempotency: true,
        }
    }

    /// Group operations and group event streams.
    pub fn groups(&self) -> Groups<'_> {
        Groups::new(self)
    }

    /// Chat operations.
    pub fn chats(&self) -> Chats<'_> {
        Chats::new(self)
    }

    /// Messages: send, read, page, tapbacks, edit, unsend, live message events.
    pub fn messages(&self) -> Messages<'_> {
        Messages::new(self)
    }

    /// Address look-ups: services, iMessage availability, Focus.
    pub fn addresses(&self) -> Addresses<'_> {
        Addresses::new(self)
    }

    /// The durable event log: catch-up and resumable subscriptions.
    pub fn events(&self) -> Events<'_> {
        Events::new(self)
    }
}

/// Whether a unary call is a write (gets an idempotency key) or a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Read,
    Write,
}

pub(crate) fn group_client(ch: Channel) -> pb::group_service_client::GroupServiceClient<Channel> {
    pb::group_service_client::GroupServiceClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

pub(crate) fn chat_client(ch: Channel) -> pb::chat_service_client::ChatServiceClient<Channel> {
    pb::chat_service_client::ChatServiceClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

pub(crate) fn message_client(
    ch: Channel,
) -> pb::message_service_client::MessageServiceClient<Channel> {
    pb::message_service_client::MessageServiceClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

pub(crate) fn address_client(
    ch: Channel,
) -> pb::address_service_client::AddressServiceClient<Channel> {
    pb::address_service_client::AddressServiceClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

pub(crate) fn event_client(ch: Channel) -> pb::event_service_client::EventServiceClient<Channel> {
    pb::event_service_client::EventServiceClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

impl Inner {
    /// A request with the bearer token (resolved now) and, for writes, the idempotency key.
    async fn request<T>(&self, message: T, key: Option<&str>) -> Result<tonic::Request<T>> {
        let mut req = tonic::Request::new(message);
        let token = match &self.token {
            Token::None => None,
            Token::Static(t) => Some(t.to_string()),
            Token::Provider(f) => Some(f().await?),
        };
        if let Some(token) = token {
            let value = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
                Error::local(
                    ErrorKind::Authentication,
                    Code::Unauthenticated,
                    "unauthenticated",
                    "the token contains characters not allowed in a header",
                )
            })?;
            req.metadata_mut().insert("authorization", value);
        }
        if let Some(key) = key {
            if let Ok(value) = MetadataValue::try_from(key) {
                req.metadata_mut().insert("x-idempotency-key", value);
            }
        }
        Ok(req)
    }

    /// Runs one logical unary call: attempts with the deadline, retrying what the server marks
    /// retryable, with one idempotency key for every attempt of a write.
    pub(crate) async fn unary<Req, Resp, F, Fut>(
        &self,
        kind: Kind,
        message: Req,
        call: F,
    ) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(Channel, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let key = (kind == Kind::Write && self.auto_idempotency)
            .then(|| uuid::Uuid::new_v4().to_string());
        let mut attempt = 1;
        loop {
            // The deadline is enforced here, like the official SDK's abort signal; dropping
            // the call resets the stream, so the server sees a cancellation.
            let req = self.request(message.clone(), key.as_deref()).await?;
            let fut = call(self.unary.clone(), req);
            let result = match self.timeout {
                Some(timeout) => match tokio::time::timeout(timeout, fut).await {
                    Ok(result) => result,
                    Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                        "no answer within {timeout:?}"
                    ))),
                },
                None => fut.await,
            };
            let err = match result {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(status) => Error::from_status(&status),
            };
            if !err.is_retryable() || attempt >= self.retry.max_attempts {
                return Err(err);
            }
            tokio::time::sleep(self.retry.delay(attempt)).await;
            attempt += 1;
        }
    }

    /// Opens a server stream; returns once the server has accepted it (response headers
    /// received), so a live subscription is in place when this returns.
    pub(crate) async fn open_stream<Req, Resp, F, Fut>(
        &self,
        message: Req,
        call: F,
    ) -> Result<tonic::Streaming<Resp>>
    where
        F: FnOnce(Channel, tonic::Request<Req>) -> Fut,
        Fut: Future<
            Output = std::result::Result<tonic::Response<tonic::Streaming<Resp>>, tonic::Status>,
        >,
    {
        let req = self.request(message, None).await?;
        call(self.streams.clone(), req)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| Error::from_status(&status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_under_the_exponential_cap() {
        let policy = RetryPolicy::default();
        for retry in 1..10 {
            let cap = (policy.initial_delay * 2u32.pow(retry - 1)).min(policy.max_delay);
            for _ in 0..50 {
                assert!(policy.delay(retry) <= cap);
            }
        }
    }

    #[tokio::test]
    async fn bad_addresses_are_refused() {
        let err = Client::builder().address("ftp://x:1").build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert!(Client::builder().address("http://").build().is_err());
    }
}
