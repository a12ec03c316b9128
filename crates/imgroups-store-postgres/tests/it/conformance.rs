//! The store conformance suite (`imgroups-store-tests`), on PostgreSQL: the same checks the
//! SQLite store passes, each on a database of its own (skipped, saying so, without PostgreSQL).

imgroups_store_tests::conformance_suite!(
    fresh: crate::PgFixture::new,
    model_cases: 24,
);
