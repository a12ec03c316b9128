//! Creating a group with the same participants as an existing one returns that group — the
//! oldest exact match — however many groups the creator and the participants are in.

use imgroups_core::port::Store;
use imgroups_core::{Command, Outcome};

fn guid_of(outcome: Outcome) -> String {
    match outcome {
        Outcome::Created { chat, .. } => chat.guid.to_string(),
        other => panic!("expected a created chat, got {other:?}"),
    }
}

#[test]
fn a_create_finds_the_oldest_exact_match_among_many_groups() {
    let fresh = crate::common::Fresh::new();
    let (store, rt) = (&fresh.store, &fresh.rt);
    let me = fresh.account("me@x.com");
    let other = fresh.account("b@x.com");
    let engine = crate::common::engine(store);
    let create = |account, people: &[&str]| {
        let people: Vec<String> = people.iter().map(|p| p.to_string()).collect();
        let cmd = Command::create_chat(&people, None).unwrap();
        guid_of(rt.block_on(engine.execute(account, None, cmd)).unwrap())
    };

    let first = create(me, &["p@x.com", "q@x.com"]);
    // The creator in many groups, and a participant in many groups of someone else.
    let mut seen = vec![first.clone()];
    for i in 0..40 {
        seen.push(create(
            me,
            &[&format!("x{i}@x.com"), &format!("y{i}@x.com")],
        ));
        seen.push(create(other, &["p@x.com", &format!("z{i}@x.com")]));
    }
    let superset = create(me, &["p@x.com", "q@x.com", "r@x.com"]);
    let overlap = create(me, &["q@x.com", "r@x.com"]);
    seen.extend([superset.clone(), overlap.clone()]);
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        seen.len(),
        "every create above is a new group"
    );

    // Same people in another order: the first group, not the superset or the overlap.
    assert_eq!(create(me, &["q@x.com", "p@x.com"]), first);
    assert_eq!(create(me, &["r@x.com", "q@x.com", "p@x.com"]), superset);
    assert_eq!(create(me, &["r@x.com", "q@x.com"]), overlap);
    // `b` is in 40 groups with p, none with exactly p and q.
    let new = create(other, &["p@x.com", "q@x.com"]);
    assert!(!seen.contains(&new));
    assert_eq!(create(other, &["q@x.com", "p@x.com"]), new);
    rt.block_on(store.close());
}
