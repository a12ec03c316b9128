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

#[test]
fn admin_tokens_are_their_own_credential() {
    let Some(fixture) = PgFixture::new("admintokens") else {
        return;
    };
    imgroups_store_tests::admin_tokens(fixture);
}

#[test]
fn accounts_and_unreachable_addresses_are_listed() {
    let Some(fixture) = PgFixture::new("listings") else {
        return;
    };
    imgroups_store_tests::listings(fixture);
}

#[test]
fn faults_are_armed_spent_expired_and_cleared() {
    let Some(fixture) = PgFixture::new("faults") else {
        return;
    };
    imgroups_store_tests::faults(fixture);
}

#[test]
fn concurrent_takes_never_overspend_a_fault() {
    let Some(fixture) = PgFixture::new("faultcount") else {
        return;
    };
    imgroups_store_tests::fault_count_is_atomic(fixture);
}

#[test]
fn observer_cursors_commit_with_the_transaction_and_survive_a_restart() {
    let Some(fixture) = PgFixture::new("observercursors") else {
        return;
    };
    imgroups_store_tests::observer_cursors(fixture);
}

#[test]
fn observed_ids_are_marked_once_and_survive_a_restart() {
    let Some(fixture) = PgFixture::new("observedids") else {
        return;
    };
    imgroups_store_tests::observed_ids(fixture);
}

#[test]
fn messages_reach_every_member_once() {
    let Some(fixture) = PgFixture::new("msgsend") else {
        return;
    };
    imgroups_store_tests::messages_are_delivered(fixture);
}

#[test]
fn tapbacks_edits_and_unsends_reach_every_copy() {
    let Some(fixture) = PgFixture::new("msgchange") else {
        return;
    };
    imgroups_store_tests::messages_change(fixture);
}

#[test]
fn marking_read_and_read_receipts() {
    let Some(fixture) = PgFixture::new("msgread") else {
        return;
    };
    imgroups_store_tests::messages_are_read(fixture);
}

#[test]
fn messages_list_newest_first_in_stable_pages() {
    let Some(fixture) = PgFixture::new("msglist") else {
        return;
    };
    imgroups_store_tests::messages_are_listed(fixture);
}

#[test]
fn messages_keep_as_delivered() {
    let Some(fixture) = PgFixture::new("msgkept") else {
        return;
    };
    imgroups_store_tests::messages_keep_as_delivered(fixture);
}

#[test]
fn reset_clears_the_world_and_keeps_sequences() {
    let Some(fixture) = PgFixture::new("reset") else {
        return;
    };
    imgroups_store_tests::reset(fixture);
}

#[test]
fn a_controllable_clock_gives_seeded_ids_and_its_own_time() {
    let Some(fixture) = PgFixture::new("clock") else {
        return;
    };
    imgroups_store_tests::clock(fixture);
}

#[test]
fn a_snapshot_imported_elsewhere_or_later_is_the_same_world() {
    let (Some(fixture), Some(other)) = (PgFixture::new("snap"), PgFixture::new("snapcopy")) else {
        return;
    };
    imgroups_store_tests::snapshot(fixture, other);
}
