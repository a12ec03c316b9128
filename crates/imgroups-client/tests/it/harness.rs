//! Boots the real server in-process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use imgroups_client::{Address, ChatGuid, Client, CreateChatOptions, RetryPolicy};
use imgroups_core::port::{Accounts, Store};
use imgroups_core::{admin, Engine, EngineConfig};
use imgroups_sim::Simulator;
use imgroups_store_sqlite::{Config, Durability, Role, SqliteStore};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) const ME: &str = "me@imgroups.local";

/// A running (or stopped) server over one data directory.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    /// Token of the account `ME`.
    pub(crate) token: String,
    pub(crate) dir: Arc<tempfile::TempDir>,
    pub(crate) heartbeat: Duration,
    running: Option<Running>,
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    store: SqliteStore,
}

impl Server {
    pub(crate) async fn start() -> Server {
        Server::start_with(Duration::from_secs(30)).await
    }

    pub(crate) async fn start_with(heartbeat: Duration) -> Server {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut server = Server {
            addr: "127.0.0.1:0".parse().unwrap(),
            token: String::new(),
            dir,
            heartbeat,
            running: None,
        };
        server.token = server.add_account(ME).await;
        server.boot().await;
        server
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("imgroups.db")
    }

    /// The store as the CLI opens it, beside the server.
    fn tool(&self) -> SqliteStore {
        let mut config = Config::new(self.db());
        config.role = Role::Tool;
        SqliteStore::open(config).unwrap()
    }

    /// Creates an account (or another token for an existing one) and returns a token.
    pub(crate) async fn add_account(&self, address: &str) -> String {
        let store = self.tool();
        let address = Address::parse(address).unwrap();
        store.ensure_account(&address).await.unwrap();
        let token = admin::create_token(&store, &address).await.unwrap();
        store.close().await;
        token
    }

    pub(crate) async fn revoke(&self, token: &str) {
        let store = self.tool();
        admin::revoke_token(&store, token).await.unwrap();
        store.close().await;
    }

    pub(crate) async fn mark_unreachable(&self, address: &str) {
        let store = self.tool();
        imgroups_sim::set_unreachable(&store, &Address::parse(address).unwrap(), true)
            .await
            .unwrap();
        store.close().await;
    }

    async fn boot(&mut self) {
        let mut config = Config::new(self.db());
        config.durability = Durability::Full;
        let store = SqliteStore::open(config).unwrap();
        let engine = std::sync::Arc::new(Engine::new(
            std::sync::Arc::new(store.clone()),
            Simulator::network(),
            EngineConfig::default(),
        ));
        // The same port again after a restart; the old socket may take a moment to go.
        let mut listener = None;
        for _ in 0..100 {
            match TcpListener::bind(self.addr).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let listener = listener.expect("bind the server port");
        self.addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let options = imgroups_server::Options {
            heartbeat: self.heartbeat,
            sim: Some(std::sync::Arc::new(store.clone())),
            ..Default::default()
        };
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let task = tokio::spawn(async move {
            imgroups_server::serve(
                listener,
                http,
                engine,
                options,
                imgroups_server::HttpOptions::default(),
                async move {
                    let _ = stopped.await;
                },
            )
            .await
            .unwrap();
        });
        self.running = Some(Running { stop, task, store });
    }

    /// Stops the server: open streams end, the store is closed.
    pub(crate) async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            running.task.await.unwrap();
            running.store.close().await;
        }
    }

    /// Stops and starts again on the same data directory and port.
    pub(crate) async fn restart(&mut self) {
        self.stop().await;
        self.boot().await;
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn client(&self) -> Client {
        self.client_for(&self.token)
    }

    pub(crate) fn client_for(&self, token: &str) -> Client {
        Client::builder()
            .address(self.url())
            .token(token)
            .retry(RetryPolicy::default())
            .build()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            running.task.abort();
        }
    }
}

pub(crate) fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

/// Creates a group of `ME` with `others` and returns its guid.
pub(crate) async fn group(client: &Client, others: &[&str]) -> ChatGuid {
    let people: Vec<Address> = others.iter().map(|a| addr(a)).collect();
    client
        .chats()
        .create(&people, CreateChatOptions::default())
        .await
        .unwrap()
        .chat
        .guid
}

/// A minimal valid PNG (1×1).
pub(crate) use imgroups_testkit::tiny_png as png;
