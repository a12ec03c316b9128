//! Shared by the store's integration tests (each test file is its own crate, and not every one
//! uses everything here).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use imgroups_core::port::{Accounts, SimStore};
use imgroups_core::{AccountId, Address, Engine, EngineConfig};
use imgroups_sim::Simulator;
use imgroups_store_sqlite::{Config, Durability, SqliteStore};

/// The store over `path`, without fsyncs (these tests are not about power loss).
pub(crate) fn open_store(path: &Path) -> SqliteStore {
    let mut config = Config::new(path);
    config.durability = Durability::Normal;
    SqliteStore::open(config).unwrap()
}

/// The engine over a store, with the simulator.
pub(crate) fn engine(store: &SqliteStore) -> Engine {
    Engine::new(
        Arc::new(store.clone()),
        Simulator::network(),
        EngineConfig::default(),
    )
}

pub(crate) fn account(
    rt: &tokio::runtime::Runtime,
    store: &SqliteStore,
    address: &str,
) -> AccountId {
    let address = Address::parse(address).unwrap();
    rt.block_on(store.ensure_account(&address)).unwrap().0
}

/// A runtime to drive the store's async API from a plain test.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A store on a new database in a temporary directory, and a runtime to drive it.
pub(crate) struct Fresh {
    _dir: tempfile::TempDir,
    pub(crate) path: PathBuf,
    pub(crate) store: SqliteStore,
    pub(crate) rt: tokio::runtime::Runtime,
}

impl Fresh {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imgroups.db");
        let store = open_store(&path);
        Fresh {
            _dir: dir,
            path,
            store,
            rt: runtime(),
        }
    }

    /// A new account's key.
    pub(crate) fn account(&self, address: &str) -> AccountId {
        account(&self.rt, &self.store, address)
    }

    /// A new account; its first token.
    pub(crate) fn add_account(&self, address: &str) -> String {
        let address = Address::parse(address).unwrap();
        self.rt
            .block_on(imgroups_core::admin::add_account(&self.store, &address))
            .unwrap()
    }
}

/// A database in a temporary directory, for the conformance suite.
pub(crate) struct TempFixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl TempFixture {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imgroups.db");
        TempFixture { _dir: dir, path }
    }
}

impl imgroups_store_tests::Fixture for TempFixture {
    fn open(&self) -> Arc<dyn SimStore> {
        Arc::new(open_store(&self.path))
    }
}
