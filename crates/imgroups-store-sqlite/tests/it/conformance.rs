//! The store conformance suite (`imgroups-store-tests`), on SQLite: each test on a database
//! file of its own.

imgroups_store_tests::conformance_suite!(
    fresh: |_name: &str| Some(crate::common::TempFixture::new()),
    model_cases: 48,
);
