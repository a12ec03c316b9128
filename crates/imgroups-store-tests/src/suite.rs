//! [`conformance_suite!`]: the whole suite as `#[test]`s for one store, so a store's test crate
//! lists none of it by hand and a check added here runs on every store at once.

/// Declares one `#[test]` per check of this crate, for the store whose fixtures `fresh` makes.
///
/// `fresh` is an expression of type `impl Fn(&str) -> Option<F>` (`F:`
/// [`Fixture`](crate::Fixture)): given a short name for the test (a database name, for stores
/// that make one per test), a fixture on an empty store, or `None` to skip the test (e.g. no
/// PostgreSQL to test against; the fixture says so). `model_cases` is how many random runs the
/// model check makes.
///
/// ```ignore
/// imgroups_store_tests::conformance_suite!(
///     fresh: |_name: &str| Some(crate::common::TempFixture::new()),
///     model_cases: 48,
/// );
/// ```
#[macro_export]
macro_rules! conformance_suite {
    (fresh: $fresh:expr, model_cases: $cases:expr $(,)?) => {
        #[test]
        fn the_store_behaves_like_the_model() {
            let fresh = $fresh;
            // Asking once decides the skip; then each case gets a store of its own.
            if fresh("model").is_none() {
                return;
            }
            $crate::model(|| fresh("model").expect("a fixture, as a moment ago"), $cases);
        }

        #[test]
        fn a_snapshot_imported_elsewhere_or_later_is_the_same_world() {
            let fresh = $fresh;
            if let (Some(fixture), Some(other)) = (fresh("snapshot"), fresh("snapshotcopy")) {
                $crate::snapshot(fixture, other);
            }
        }

        $crate::conformance_suite!(@each $fresh;
            observed_changes_produce_the_events_our_own_writes_do => ingest,
            an_open_store_is_ready_and_a_closed_one_is_not => ready,
            admin_tokens_are_their_own_credential => admin_tokens,
            accounts_and_unreachable_addresses_are_listed => listings,
            faults_are_armed_spent_expired_and_cleared => faults,
            concurrent_takes_never_overspend_a_fault => fault_count_is_atomic,
            observer_cursors_commit_with_the_transaction_and_survive_a_restart => observer_cursors,
            observed_ids_are_marked_once_and_survive_a_restart => observed_ids,
            messages_reach_every_member_once => messages_are_delivered,
            tapbacks_edits_and_unsends_reach_every_copy => messages_change,
            marking_read_and_read_receipts => messages_are_read,
            messages_list_newest_first_in_stable_pages => messages_are_listed,
            messages_keep_as_delivered => messages_keep_as_delivered,
            reset_clears_the_world_and_keeps_sequences => reset,
            a_controllable_clock_gives_seeded_ids_and_its_own_time => clock,
        );
    };
    (@each $fresh:expr; $($test:ident => $check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $test() {
                let fresh = $fresh;
                if let Some(fixture) = fresh(stringify!($check)) {
                    $crate::$check(fixture);
                }
            }
        )+
    };
}
