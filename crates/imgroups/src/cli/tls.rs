//! `serve`'s TLS flags: one certificate and key for both listeners (docs/operating.md, "TLS").

use std::path::{Path, PathBuf};

use imgroups_core::Error;
use imgroups_server::tls::{Tls, TlsError};

/// TLS for the gRPC and HTTP listeners.
#[derive(clap::Args)]
pub(crate) struct TlsArgs {
    /// Serve gRPC and HTTP over TLS with this PEM certificate chain (leaf first); needs
    /// --tls-key. gRPC then speaks h2 over TLS (`tls: true` in the official SDK), HTTP h2 or
    /// http/1.1 (`https://`).
    #[arg(long, env = "IMGROUPS_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "IMGROUPS_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// Reads and checks the certificate and key, if given: an unreadable file, one with no
    /// PEM certificate or key, or a key that does not belong to the certificate fails the
    /// start, naming the file.
    pub(crate) fn load(&self) -> Result<Option<Tls>, Error> {
        // Checked here, not with clap's `requires`: `config` rebuilds the command for
        // `config print`, where the referenced argument ids do not resolve.
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert, key),
            (Some(_), None) => {
                return Err(Error::invalid("--tls-cert needs --tls-key").with("field", "tls-key"))
            }
            (None, Some(_)) => {
                return Err(Error::invalid("--tls-key needs --tls-cert").with("field", "tls-cert"))
            }
        };
        let cert_pem = read(cert, "tls-cert")?;
        let key_pem = read(key, "tls-key")?;
        let tls = Tls::from_pem(&cert_pem, &key_pem).map_err(|err| {
            let (file, field) = match &err {
                TlsError::Certificate(_) => (cert, "tls-cert"),
                TlsError::Key(_) | TlsError::Mismatch(_) => (key, "tls-key"),
            };
            Error::invalid(format!("cannot use {}: {err}", file.display())).with("field", field)
        })?;
        tracing::info!(cert = %cert.display(), key = %key.display(), "serving gRPC and HTTP over TLS");
        Ok(Some(tls))
    }
}

fn read(path: &Path, field: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|err| {
        Error::invalid(format!("cannot read {}: {err}", path.display())).with("field", field)
    })
}
