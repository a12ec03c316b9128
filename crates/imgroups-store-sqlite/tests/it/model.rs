//! The store conformance suite's model property (`imgroups-store-tests`), on SQLite.

#[test]
fn the_store_behaves_like_the_model() {
    imgroups_store_tests::model(crate::common::TempFixture::new, 48);
}
