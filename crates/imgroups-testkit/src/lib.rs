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
//! dropped; the directory goes with it. A test can also stop it and start it again on the
//! same directory and ports ([`Server::restart`]), and change the simulated world beside it
//! as the CLI does (accounts, tokens, unreachable addresses).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use imgroups_core::port::{Accounts, Store};
use imgroups_core::{admin, Address, Engine, EngineConfig};
use imgroups_sim::Simulator;
use imgroups_store_sqlite::{Config, Role, SqliteStore};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The account [`Server::start`] creates.
pub const ME: &str = "me@imgroups.local";

/// A running (or stopped) server over one temporary data directory. Dropping it stops the
/// server and deletes its data.
pub struct Server {
    grpc: SocketAddr,
    http: SocketAddr,
    token: String,
    heartbeat: Duration,
    running: Option<Running>,
    // Last: dropped after the server has been told to stop.
    dir: tempfile::TempDir,
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    store: SqliteStore,
}

// Test support: a failure in here is a broken test environment, not a condition to handle,
// so it panics with what it was doing.
impl Server {
    /// Starts a server with the account [`ME`] and the default heartbeat of live streams.
    pub async fn start() -> Server {
        Server::start_with_heartbeat(imgroups_server::Options::default().heartbeat).await
    }

    /// Starts a server whose live streams send a heartbeat every `heartbeat` when idle.
    pub async fn start_with_heartbeat(heartbeat: Duration) -> Server {
        let unbound: SocketAddr = ([127, 0, 0, 1], 0).into();
        let mut server = Server {
            grpc: unbound,
            http: unbound,
            token: String::new(),
            heartbeat,
            running: None,
            dir: tempfile::tempdir().expect("create a temporary directory"),
        };
        server.token = server.add_account(ME).await;
        server.boot().await;
        server
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

    fn db(&self) -> PathBuf {
        self.dir.path().join("imgroups.db")
    }

    /// The store as the CLI opens it, beside the server.
    fn tool(&self) -> SqliteStore {
        let mut config = Config::new(self.db());
        config.role = Role::Tool;
        SqliteStore::open(config).expect("open the store beside the server")
    }

    /// Creates an account, or another token for an existing one, and returns the token.
    pub async fn add_account(&self, address: &str) -> String {
        let store = self.tool();
        let address = Address::parse(address).expect("a valid address");
        store
            .ensure_account(&address)
            .await
            .expect("create the account");
        let token = admin::create_token(&store, &address)
            .await
            .expect("create a token");
        store.close().await;
        token
    }

    /// Revokes a token, as `imgroups token revoke` does.
    pub async fn revoke(&self, token: &str) {
        let store = self.tool();
        admin::revoke_token(&store, token)
            .await
            .expect("revoke the token");
        store.close().await;
    }

    /// Makes `address` unreachable in the simulator's directory, as `imgroups sim
    /// unreachable` does.
    pub async fn mark_unreachable(&self, address: &str) {
        let store = self.tool();
        let address = Address::parse(address).expect("a valid address");
        imgroups_sim::set_unreachable(&store, &address, true)
            .await
            .expect("mark the address unreachable");
        store.close().await;
    }

    async fn boot(&mut self) {
        let store = SqliteStore::open(Config::new(self.db())).expect("open the SQLite store");
        let engine = Arc::new(Engine::new(
            Arc::new(store.clone()),
            Simulator::network(),
            EngineConfig::default(),
        ));
        let grpc = bind(self.grpc).await;
        let http = bind(self.http).await;
        (self.grpc, self.http) = (
            grpc.local_addr().expect("gRPC address"),
            http.local_addr().expect("HTTP address"),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let options = imgroups_server::Options {
            heartbeat: self.heartbeat,
            // The simulator's directory and faults, as `imgroups serve` has them.
            sim: Some(Arc::new(store.clone())),
            ..imgroups_server::Options::default()
        };
        let task = tokio::spawn(async move {
            imgroups_server::serve(
                grpc,
                http,
                engine,
                options,
                imgroups_server::HttpOptions::default(),
                async move {
                    let _ = stopped.await;
                },
            )
            .await
            .expect("the server runs until told to stop");
        });
        self.running = Some(Running { stop, task, store });
    }

    /// Stops the server: open streams end, the store is closed. The data stays.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            running.task.await.expect("the server stops cleanly");
            running.store.close().await;
        }
    }

    /// Stops and starts again on the same data directory and ports.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.boot().await;
    }
}

/// A listener on `addr`; after a restart the old socket may take a moment to go.
async fn bind(addr: SocketAddr) -> TcpListener {
    for _ in 0..100 {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("bind {addr}: still in use after 2 s");
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            running.task.abort();
        }
    }
}

/// The one PNG builder (`imgroups_core::testing`): a valid 1×1 PNG, the smallest icon the
/// server accepts, and a structurally complete PNG of any declared size.
pub use imgroups_core::testing::{png_of, tiny_png};
