//! Shared by the store's integration tests (each test file is its own crate, and not every one
//! uses everything here).
#![allow(dead_code)]

use std::path::Path;

use imgroups_store::{Config, Durability, Store};

/// The store over `path`, without fsyncs (these tests are not about power loss).
pub(crate) fn open_store(path: &Path) -> Store {
    let mut config = Config::new(path);
    config.durability = Durability::Normal;
    Store::open(config).unwrap()
}

/// A runtime to drive the store's async API from a plain test.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
