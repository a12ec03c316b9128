//! Three `serve` processes on one PostgreSQL database, as behind a load balancer: writes spread
//! over all three, subscribers on each, one node killed with `kill -9` mid-load and restarted.
//! Afterwards every acknowledged write is in the log exactly once, every surviving
//! subscriber's sequence is contiguous, every node's catch-up agrees, an idempotency key sent
//! to two nodes at once had one effect, and a webhook endpoint kept its order while the node
//! delivering it was killed. Skipped (saying so) without PostgreSQL; see
//! `imgroups_store_tests::pg`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use imgroups_proto::pb;
use imgroups_proto::pb::subscribe_group_events_response::Payload;
use imgroups_store_tests::pg::TestDatabase;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{cli, clients, renamed_to, Server};

const BOB: &str = "bob@example.com";
const NODES: usize = 3;

/// A webhook receiver: answers 200 to every POST and records the `sequence` of each body.
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<u64>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<u64>>> = Arc::default();
    let seen = got.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    // One request per connection is enough for a test: wait for the whole body.
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() < length {
                        continue;
                    }
                    let json: serde_json::Value = serde_json::from_str(body).unwrap();
                    let sequence = json["sequence"]
                        .as_str()
                        .map(|s| s.parse::<u64>().unwrap())
                        .or_else(|| json["sequence"].as_u64())
                        .expect("the body carries its sequence");
                    seen.lock().unwrap().push(sequence);
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (url, got)
}

/// Keeps reading a live stream; records each event's sequence until the stream ends.
fn subscriber(
    mut stream: tonic::Streaming<pb::SubscribeGroupEventsResponse>,
) -> Arc<Mutex<Vec<u64>>> {
    let got: Arc<Mutex<Vec<u64>>> = Arc::default();
    let seen = got.clone();
    tokio::spawn(async move {
        while let Ok(Some(frame)) = stream.message().await {
            if let Some(Payload::GroupChanged(_)) = frame.payload {
                seen.lock().unwrap().push(frame.sequence.expect("sequence"));
            }
        }
    });
    got
}

/// The PID in a lease owner's name (`<pid>-<random>`).
async fn lease_holder(url: &str) -> Option<u32> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_opt(
            "SELECT lease_owner FROM webhooks WHERE lease_until > clock_timestamp()",
            &[],
        )
        .await
        .unwrap()?;
    let owner: String = row.get(0);
    owner.split('-').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_one_database_survive_a_kill_9_of_one() {
    let Some(db) = TestDatabase::create("three_nodes") else {
        return;
    };
    let url = db.url.clone();
    let dirs: Vec<_> = (0..NODES).map(|_| tempfile::tempdir().unwrap()).collect();
    let args = [
        "--database-url",
        &url,
        "--webhook-lease-ms",
        "1500",
        "--webhook-allow-http",
        "--webhook-allow-net",
        "127.0.0.0/8",
    ];
    let mut nodes: Vec<Option<Server>> = Vec::new();
    for dir in &dirs {
        nodes.push(Some(Server::start(dir.path(), &args)));
    }
    let me_token = nodes[0]
        .as_ref()
        .unwrap()
        .token
        .clone()
        .expect("first start prints a token");
    assert!(
        nodes[1].as_ref().unwrap().token.is_none(),
        "the account exists already"
    );
    let bob_token = cli(&["account", "add", BOB, "--database-url", &url]);

    let mut channels = Vec::new();
    for node in &nodes {
        channels.push(node.as_ref().unwrap().channel().await);
    }
    let mut groups = Vec::new();
    for i in 0..4 {
        let extra = format!("p{i}@example.com");
        let mut me = clients(&channels[i % NODES], &me_token);
        groups.push(me.create_group(&[BOB, "carol@example.com", &extra]).await);
    }
    let groups = Arc::new(groups);

    // A webhook for bob's events, and live subscribers for bob on every node.
    let (hook_url, deliveries) = webhook_receiver().await;
    cli(&[
        "webhook",
        "add",
        &hook_url,
        "--account",
        BOB,
        "--database-url",
        &url,
    ]);
    let (_, start) = clients(&channels[0], &bob_token).catch_up(0).await;
    let mut subscribers: Vec<(usize, Arc<Mutex<Vec<u64>>>)> = Vec::new();
    for (n, channel) in channels.iter().enumerate() {
        for _ in 0..3 {
            let stream = clients(channel, &bob_token)
                .groups
                .subscribe_group_events(pb::SubscribeGroupEventsRequest { chat_guid: None })
                .await
                .unwrap()
                .into_inner();
            subscribers.push((n, subscriber(stream)));
        }
    }

    // The same idempotency key sent to two nodes at once: one effect, one answer.
    for k in 0..5 {
        let name = format!("keyed {k}");
        let calls = [0, 1].map(|n| {
            let mut c = clients(&channels[n], &me_token);
            let (chat, name) = (groups[0].clone(), name.clone());
            async move {
                c.groups
                    .set_display_name(pb::SetDisplayNameRequest {
                        chat_guid: chat,
                        display_name: name,
                        client_message_id: Some(format!("race-{k}")),
                    })
                    .await
                    .map(|r| r.into_inner())
            }
        });
        let [x, y] = join_all(calls).await.try_into().unwrap();
        assert_eq!(
            x.unwrap(),
            y.unwrap(),
            "both nodes answer a raced key alike"
        );
    }

    // Writers on every node rename groups with unique names and remember what was acknowledged.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spawn_writers = |channel: tonic::transport::Channel, node: usize, round: usize| {
        (0..4)
            .map(|w| {
                let mut c = clients(&channel, &me_token);
                let (groups, acked, stop) = (groups.clone(), acked.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut failures = 0;
                    for i in 0.. {
                        if stop.load(std::sync::atomic::Ordering::SeqCst) || failures > 20 {
                            return;
                        }
                        let name = format!("n{node}-r{round}-w{w}-{i}");
                        match c.rename(&groups[(w + i) % groups.len()], &name).await {
                            Ok(_) => {
                                failures = 0;
                                acked.lock().unwrap().push(name);
                            }
                            // The node died under us (then this writer gives up), or a batch
                            // could not commit (then it goes on).
                            Err(status)
                                if matches!(
                                    status.code(),
                                    tonic::Code::Unavailable | tonic::Code::Unknown
                                ) =>
                            {
                                failures += 1;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            Err(status) => panic!("rename failed: {status}"),
                        }
                    }
                })
            })
            .collect::<Vec<_>>()
    };
    let mut writers = Vec::new();
    for (n, channel) in channels.iter().enumerate() {
        writers.extend(spawn_writers(channel.clone(), n, 0));
    }
    let wait_for = |count: usize| {
        let acked = acked.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while acked.lock().unwrap().len() < count {
                assert!(Instant::now() < deadline, "writes stalled");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(300).await;

    // Kill the node delivering the webhook.
    let holder = lease_holder(&url)
        .await
        .expect("some node delivers the webhook");
    let victim = nodes
        .iter()
        .position(|n| n.as_ref().is_some_and(|s| s.pid() == holder))
        .expect("the lease holder is one of our nodes");
    nodes[victim].take().unwrap().kill9();
    let before_kill = acked.lock().unwrap().len();
    wait_for(before_kill + 200).await;

    // Restart it on the same database; its clients join the load again.
    let restarted = Server::start(dirs[victim].path(), &args);
    assert!(restarted.token.is_none());
    channels[victim] = restarted.channel().await;
    nodes[victim] = Some(restarted);
    writers.extend(spawn_writers(channels[victim].clone(), victim, 1));
    let after_restart = acked.lock().unwrap().len();
    wait_for(after_restart + 200).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    // Every node's catch-up: the same contiguous log, each acknowledged write exactly once.
    let mut logs = Vec::new();
    for channel in &channels {
        let (events, head) = clients(channel, &me_token).catch_up(0).await;
        let seqs: Vec<u64> = events.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "gap-free 1..=head");
        logs.push(events);
    }
    for log in &logs[1..] {
        assert_eq!(log, &logs[0], "every node serves the same log");
    }
    let mut renames: HashMap<&str, usize> = HashMap::new();
    for (_, event) in &logs[0] {
        if let Some(name) = renamed_to(event) {
            *renames.entry(name).or_default() += 1;
        }
    }
    for name in &acked {
        assert_eq!(
            renames.get(name.as_str()),
            Some(&1),
            "{name} is in the log exactly once"
        );
    }
    for k in 0..5 {
        assert_eq!(
            renames.get(format!("keyed {k}").as_str()),
            Some(&1),
            "raced key {k}"
        );
    }

    // Bob's subscribers on the surviving nodes saw every event after they started, in order.
    let (_, bob_head) = clients(&channels[0], &bob_token).catch_up(0).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    for (node, got) in &subscribers {
        if *node == victim {
            continue; // Its connection died with the node.
        }
        loop {
            let mut seqs = got.lock().unwrap().clone();
            seqs.dedup();
            if seqs.last() == Some(&bob_head) || Instant::now() > deadline {
                let expected: Vec<u64> = (start + 1..=bob_head).collect();
                assert_eq!(
                    seqs, expected,
                    "a subscriber on node {node} missed or reordered"
                );
                break;
            }
            drop(seqs);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // The webhook: every event of bob's after registration, first deliveries in order, through
    // the kill (a redelivery around the takeover is allowed: at least once).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = deliveries.lock().unwrap().clone();
        let mut firsts = Vec::new();
        let mut seen = HashSet::new();
        for s in &got {
            if seen.insert(*s) {
                firsts.push(*s);
            }
        }
        if firsts.last() == Some(&bob_head) || Instant::now() > deadline {
            let expected: Vec<u64> = (start + 1..=bob_head).collect();
            assert_eq!(firsts, expected, "webhook deliveries kept their order");
            // Anything not above every earlier delivery is a redelivery, never a first.
            let mut delivered = HashSet::new();
            let mut highest = 0;
            for s in &got {
                assert!(
                    *s > highest || delivered.contains(s),
                    "{s} arrived out of order"
                );
                delivered.insert(*s);
                highest = highest.max(*s);
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for node in nodes.into_iter().flatten() {
        node.stop();
    }
}
