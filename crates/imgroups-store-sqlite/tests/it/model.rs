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

#[test]
fn admin_tokens_are_their_own_credential() {
    imgroups_store_tests::admin_tokens(crate::common::TempFixture::new());
}

#[test]
fn accounts_and_unreachable_addresses_are_listed() {
    imgroups_store_tests::listings(crate::common::TempFixture::new());
}

#[test]
fn faults_are_armed_spent_expired_and_cleared() {
    imgroups_store_tests::faults(crate::common::TempFixture::new());
}

#[test]
fn concurrent_takes_never_overspend_a_fault() {
    imgroups_store_tests::fault_count_is_atomic(crate::common::TempFixture::new());
}

#[test]
fn observer_cursors_commit_with_the_transaction_and_survive_a_restart() {
    imgroups_store_tests::observer_cursors(crate::common::TempFixture::new());
}

#[test]
fn observed_ids_are_marked_once_and_survive_a_restart() {
    imgroups_store_tests::observed_ids(crate::common::TempFixture::new());
}

#[test]
fn messages_reach_every_member_once() {
    imgroups_store_tests::messages_are_delivered(crate::common::TempFixture::new());
}

#[test]
fn tapbacks_edits_and_unsends_reach_every_copy() {
    imgroups_store_tests::messages_change(crate::common::TempFixture::new());
}

#[test]
fn marking_read_and_read_receipts() {
    imgroups_store_tests::messages_are_read(crate::common::TempFixture::new());
}

#[test]
fn messages_list_newest_first_in_stable_pages() {
    imgroups_store_tests::messages_are_listed(crate::common::TempFixture::new());
}

#[test]
fn reset_clears_the_world_and_keeps_sequences() {
    imgroups_store_tests::reset(crate::common::TempFixture::new());
}

#[test]
fn a_controllable_clock_gives_seeded_ids_and_its_own_time() {
    imgroups_store_tests::clock(crate::common::TempFixture::new());
}

#[test]
fn messages_keep_as_delivered() {
    imgroups_store_tests::messages_keep_as_delivered(crate::common::TempFixture::new());
}

#[test]
fn a_snapshot_imported_elsewhere_or_later_is_the_same_world() {
    imgroups_store_tests::snapshot(
        crate::common::TempFixture::new(),
        crate::common::TempFixture::new(),
    );
}
