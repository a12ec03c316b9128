//! TLS for both listeners (rustls with *ring*).
//!
//! [`Tls`] is checked once, when it is made from the PEM files: the certificate chain and the
//! key parse, and the key belongs to the certificate. A server given one serves gRPC through
//! tonic's own TLS (ALPN `h2`) and HTTP through `TlsListener` (ALPN `h2` and `http/1.1`),
//! which keeps `axum::serve`'s graceful shutdown and sets TCP_NODELAY on every connection as
//! the plaintext listener does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to complete its TLS handshake before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate chain and its private key, checked and ready to serve.
#[derive(Clone)]
pub struct Tls {
    cert_pem: Arc<[u8]>,
    key_pem: Arc<[u8]>,
    http: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.write_str("Tls { .. }")
    }
}

/// Why a certificate and key cannot be used; the caller names the files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("no PEM certificate in it: {0}")]
    Certificate(String),
    #[error("no PEM private key in it: {0}")]
    Key(String),
    #[error("the key does not belong to the certificate: {0}")]
    Mismatch(String),
}

impl Tls {
    /// A PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Tls, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| TlsError::Certificate(err.to_string()))?;
        if chain.is_empty() {
            return Err(TlsError::Certificate("no CERTIFICATE section".into()));
        }
        let key =
            PrivateKeyDer::from_pem_slice(key_pem).map_err(|err| TlsError::Key(err.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut http = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsError::Mismatch(err.to_string()))?
            .with_no_client_auth()
            // Checks that the key matches the certificate.
            .with_single_cert(chain, key)
            .map_err(|err| TlsError::Mismatch(err.to_string()))?;
        http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
            http: Arc::new(http),
        })
    }

    /// tonic's settings for the gRPC listener (ALPN `h2`).
    pub(crate) fn grpc(&self) -> tonic::transport::ServerTlsConfig {
        let identity = tonic::transport::Identity::from_pem(&self.cert_pem, &self.key_pem);
        tonic::transport::ServerTlsConfig::new()
            .identity(identity)
            .timeout(HANDSHAKE_TIMEOUT)
    }

    /// The HTTP listener, with TLS.
    pub(crate) fn listener(&self, tcp: TcpListener) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(self.http.clone()),
            handshakes: JoinSet::new(),
        }
    }
}

/// A TCP listener whose connections are TLS: handshakes run concurrently, so a slow or silent
/// client holds up no other, and each is given [`HANDSHAKE_TIMEOUT`].
pub(crate) struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    // Cancel safe, as `axum::serve` needs on shutdown: accepting is, and a finished handshake
    // stays in the set until it is taken.
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        // Small answers must not wait for the peer's delayed ACK (Nagle).
                        if let Err(err) = tcp.set_nodelay(true) {
                            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
                        }
                        let acceptor = self.acceptor.clone();
                        self.handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                                Ok(Ok(tls)) => Some((tls, peer)),
                                Ok(Err(err)) => {
                                    tracing::debug!(error = %err, %peer, "tls handshake failed");
                                    None
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "tls handshake timed out");
                                    None
                                }
                            }
                        });
                    }
                    Err(err) => {
                        // Out of file descriptors, say: wait a little rather than spin.
                        tracing::warn!(error = %err, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
