//! Property test over the real server: random interleavings of writes by several accounts,
//! subscribers joining (filtered or not) and reading at different speeds, and restarts.
//!
//! Every subscriber must see matching events in sequence order, exactly once, with no gap
//! (invariant 4); a subscriber alive at the end must have everything committed after it
//! subscribed; every log stays 1..=head across restarts (invariant 1).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use imgroups_proto::pb;
use imgroups_proto::pb::subscribe_group_events_response::Payload;
use proptest::prelude::*;
use tokio::task::JoinHandle;

use crate::support::{clients, Server};

const PEOPLE: [&str; 3] = ["me@imgroups.local", "bob@example.com", "carol@example.com"];

#[derive(Debug, Clone)]
enum Op {
    Write {
        actor: usize,
        group: usize,
    },
    Subscribe {
        account: usize,
        filter: Option<usize>,
        lag_ms: u64,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..3usize, 0..3usize).prop_map(|(actor, group)| Op::Write { actor, group }),
        3 => (0..3usize, proptest::option::of(0..3usize), prop_oneof![Just(0u64), Just(2), Just(30)])
            .prop_map(|(account, filter, lag_ms)| Op::Subscribe { account, filter, lag_ms }),
        1 => Just(Op::Restart),
    ]
}

struct Subscriber {
    account: usize,
    filter: Option<String>,
    /// The head right after the subscription was acknowledged: everything later must arrive.
    from: u64,
    received: Arc<Mutex<Vec<(u64, String)>>>,
    task: JoinHandle<()>,
    /// Still connected to the current server process.
    alive: bool,
}

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--durability", "normal"]);
    let mut tokens = vec![server.token.clone().unwrap()];
    tokens.push(server.add_account(PEOPLE[1]));
    tokens.push(server.add_account(PEOPLE[2]));
    let mut channel = server.channel().await;
    let mut me = clients(&channel, &tokens[0]);
    let mut groups = Vec::new();
    for i in 0..3 {
        let extra = format!("x{i}@example.com");
        groups.push(me.create_group(&[PEOPLE[1], PEOPLE[2], &extra]).await);
    }

    let mut subscribers: Vec<Subscriber> = Vec::new();
    for (n, op) in ops.into_iter().enumerate() {
        match op {
            Op::Write { actor, group } => {
                let mut c = clients(&channel, &tokens[actor]);
                c.rename(&groups[group], &format!("{n} by {actor}"))
                    .await
                    .unwrap();
            }
            Op::Subscribe {
                account,
                filter,
                lag_ms,
            } => {
                let mut c = clients(&channel, &tokens[account]);
                let filter = filter.map(|g| groups[g].clone());
                let mut stream = c
                    .groups
                    .subscribe_group_events(pb::SubscribeGroupEventsRequest {
                        chat_guid: filter.clone(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let (_, from) = c.catch_up(0).await;
                let received: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
                let sink = received.clone();
                let task = tokio::spawn(async move {
                    while let Ok(Some(frame)) = stream.message().await {
                        if let Some(Payload::GroupChanged(e)) = frame.payload {
                            sink.lock()
                                .unwrap()
                                .push((frame.sequence.expect("sequence"), e.chat_guid));
                            if lag_ms > 0 {
                                tokio::time::sleep(Duration::from_millis(lag_ms)).await;
                            }
                        }
                    }
                });
                subscribers.push(Subscriber {
                    account,
                    filter,
                    from,
                    received,
                    task,
                    alive: true,
                });
            }
            Op::Restart => {
                tokio::task::spawn_blocking(move || server.stop())
                    .await
                    .unwrap();
                for s in subscribers.iter_mut().filter(|s| s.alive) {
                    s.alive = false;
                }
                server = Server::start(dir.path(), &["--durability", "normal"]);
                channel = server.channel().await;
            }
        }
    }

    // Every log is 1..=head; gather them to judge the subscribers.
    let mut logs = Vec::new();
    for token in &tokens {
        let (events, head) = clients(&channel, token).catch_up(0).await;
        let seqs: Vec<u64> = events.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=head).collect::<Vec<_>>());
        logs.push(events);
    }

    for s in &mut subscribers {
        let log = &logs[s.account];
        let matching: Vec<(u64, String)> = log
            .iter()
            .filter(|(_, e)| s.filter.as_ref().is_none_or(|f| *f == e.chat_guid))
            .map(|(seq, e)| (*seq, e.chat_guid.clone()))
            .collect();
        if s.alive {
            // Wait until it has drained everything after its start.
            let want = matching.iter().filter(|(seq, _)| *seq > s.from).count();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let have = s
                    .received
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(seq, _)| *seq > s.from)
                    .count();
                if have >= want || tokio::time::Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        s.task.abort();
        let received = s.received.lock().unwrap().clone();
        // In order, exactly once, and a contiguous run of the matching log.
        let Some(first) = received.first() else {
            assert!(
                !s.alive || matching.iter().all(|(seq, _)| *seq <= s.from),
                "a live subscriber missed everything"
            );
            continue;
        };
        let start = matching
            .iter()
            .position(|m| m == first)
            .expect("received events come from the log");
        assert_eq!(
            received.as_slice(),
            &matching[start..start + received.len()],
            "subscriber of account {} (filter {:?}) saw a gap, a duplicate or a reordering",
            s.account,
            s.filter
        );
        if s.alive {
            let after_start: Vec<&(u64, String)> =
                matching.iter().filter(|(seq, _)| *seq > s.from).collect();
            for m in after_start {
                assert!(
                    received.contains(m),
                    "a live subscriber gets everything committed after it subscribed: {m:?}"
                );
            }
        }
    }
    server.stop();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, max_shrink_iters: 16, ..ProptestConfig::default() })]

    #[test]
    fn subscribers_see_every_matching_event_in_order_exactly_once(
        ops in proptest::collection::vec(op(), 5..40)
    ) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(ops));
    }
}
