//! An imgroups server in-process, for the SDK's runnable documentation examples and for
//! tests: the simulator over SQLite in a temporary directory, gRPC and HTTP on free loopback
//! ports, one account (`me@imgroups.local`) with a token.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = imgroups_testkit::Server::start().await;
//! assert!(server.url().starts_with("http://127.0.0.1:"));
//! assert!(!server.token().is_empty());
//! # }
//! ```
//!
//! The server runs as a task of the caller's runtime and stops when the [`Server`] is
//! dropped; the directory goes with it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use imgroups_core::port::Store;
use imgroups_core::{admin, Address, Engine, EngineConfig};
use imgroups_sim::Simulator;
use imgroups_store_sqlite::{Config, Role, SqliteStore};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The account [`Server::start`] creates.
pub const ME: &str = "me@imgroups.local";

/// A running server. Dropping it stops the server and deletes its data.
pub struct Server {
    grpc: SocketAddr,
    http: SocketAddr,
    token: String,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Server {
    /// Starts a server with the account [`ME`]. Panics if it cannot (this is test support:
    /// a failure here is a broken test environment, not a condition to handle).
    pub async fn start() -> Server {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let store = SqliteStore::open(Config::new(dir.path().join("imgroups.db")))
            .expect("open the SQLite store");
        let me = Address::parse(ME).expect("a valid address");
        let (_, token) = admin::ensure_account(&store, &me)
            .await
            .expect("create the account");
        let token = token.expect("a new account comes with a token");
        let store = Arc::new(store);
        let engine = Arc::new(Engine::new(
            store.clone(),
            Simulator::network(),
            EngineConfig::default(),
        ));
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind gRPC");
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind HTTP");
        let (grpc_addr, http_addr) = (
            grpc.local_addr().expect("gRPC address"),
            http.local_addr().expect("HTTP address"),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(imgroups_server::serve(
            grpc,
            http,
            engine,
            imgroups_server::Options {
                // The simulator's directory and faults, as `imgroups serve` has them.
                sim: Some(store),
                ..imgroups_server::Options::default()
            },
            imgroups_server::HttpOptions::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            grpc: grpc_addr,
            http: http_addr,
            token,
            dir,
            stop: Some(stop),
        }
    }

    /// The gRPC address as a URL, e.g. `http://127.0.0.1:41234`: what an SDK connects to.
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// The HTTP/JSON address as a URL.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// The token of the account [`ME`].
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The server's data directory (temporary); a convenient place for files an example
    /// writes, such as a checkpoint.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates another account and returns its first token.
    pub async fn add_account(&self, address: &str) -> String {
        let mut config = Config::new(self.dir.path().join("imgroups.db"));
        config.role = Role::Tool;
        let store = SqliteStore::open(config).expect("open the store beside the server");
        let address = Address::parse(address).expect("a valid address");
        let token = admin::add_account(&store, &address)
            .await
            .expect("create the account");
        store.close().await;
        token
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The one PNG builder (`imgroups_core::testing`): a valid 1×1 PNG, the smallest icon the
/// server accepts, and a structurally complete PNG of any declared size.
pub use imgroups_core::testing::{png_of, tiny_png};
