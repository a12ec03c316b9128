//! The store conformance suite (`imgroups-store-tests`), on PostgreSQL: the same property the
//! SQLite store passes.

use crate::PgFixture;

#[test]
fn the_store_behaves_like_the_model() {
    // Each case gets a database of its own; checking for PostgreSQL once decides the skip.
    if PgFixture::new("model_probe").is_none() {
        return;
    }
    imgroups_store_tests::model(|| PgFixture::new("model").expect("a test database"), 24);
}

#[test]
fn observed_changes_produce_the_events_our_own_writes_do() {
    let Some(fixture) = PgFixture::new("ingest") else {
        return;
    };
    imgroups_store_tests::ingest(fixture);
}

#[test]
fn an_open_store_is_ready_and_a_closed_one_is_not() {
    let Some(fixture) = PgFixture::new("ready") else {
        return;
    };
    imgroups_store_tests::ready(fixture);
}
