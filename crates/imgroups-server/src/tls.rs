//! TLS for both listeners (rustls with *ring*).
//!
//! [`Tls`] is checked once, when it is made from the PEM files: the certificate chain and the
//! key parse, and the key belongs to the certificate. A server given one serves gRPC through
//! `Tls::grpc` (ALPN `h2` only, as tonic's TLS did) and HTTP through `Tls::acceptor` (ALPN
//! `h2` and `http/1.1`), both on the capped, idle-timed connections of `net`.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// How long a client may take to complete its TLS handshake before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate chain and its private key, checked and ready to serve.
#[derive(Clone)]
pub struct Tls {
    http: Arc<rustls::ServerConfig>,
    grpc: Arc<rustls::ServerConfig>,
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
        // gRPC is HTTP/2 only: a client that offers only `http/1.1` is refused in the
        // handshake (rustls's `no_application_protocol`), as tonic's TLS did.
        let mut grpc = http.clone();
        grpc.alpn_protocols = vec![b"h2".to_vec()];
        http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            http: Arc::new(http),
            grpc: Arc::new(grpc),
        })
    }

    /// The gRPC listener's TLS acceptor (ALPN `h2`).
    pub(crate) fn grpc(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.grpc.clone())
    }

    /// The HTTP listener's TLS acceptor (ALPN `h2` and `http/1.1`).
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.http.clone())
    }
}
