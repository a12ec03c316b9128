//! The PostgreSQL store's tests: the conformance suite, and what is particular to several
//! processes on one database. Each test runs on a database of its own
//! (`imgroups_store_tests::pg`); without PostgreSQL they are skipped, saying so.

mod conformance;
mod legacy;
mod nodes;

use std::sync::Arc;

use imgroups_core::port::SimStore;
use imgroups_store_postgres::{Config, PgStore, Role};
use imgroups_store_tests::pg::TestDatabase;

/// Opens stores on one test database; again after close, it is a restart on the same data.
pub(crate) struct PgFixture {
    pub(crate) db: TestDatabase,
}

impl PgFixture {
    pub(crate) fn new(test: &str) -> Option<Self> {
        TestDatabase::create(test).map(|db| PgFixture { db })
    }

    pub(crate) fn store(&self, role: Role) -> PgStore {
        let mut config = Config::new(&self.db.url);
        config.role = role;
        config.pool_size = 4;
        PgStore::open(config).expect("open the PostgreSQL store")
    }
}

impl imgroups_store_tests::Fixture for PgFixture {
    fn open(&self) -> Arc<dyn SimStore> {
        Arc::new(self.store(Role::Serve))
    }
}
