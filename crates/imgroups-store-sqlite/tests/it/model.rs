//! The store conformance suite (`imgroups-store-tests`), on SQLite.

#[test]
fn the_store_behaves_like_the_model() {
    imgroups_store_tests::model(crate::common::TempFixture::new, 48);
}

#[test]
fn observed_changes_produce_the_events_our_own_writes_do() {
    imgroups_store_tests::ingest(crate::common::TempFixture::new());
}

#[test]
fn an_open_store_is_ready_and_a_closed_one_is_not() {
    imgroups_store_tests::ready(crate::common::TempFixture::new());
}
