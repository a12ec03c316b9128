//! Several processes on one database, as stores side by side in one test: sequences stay
//! gap-free in commit order whichever node writes (group changes and messages alike), an
//! idempotency key raced on two nodes has one effect (a send retried on the other node answers
//! the same message), commits, revocations and webhook changes reach the other node, one node at a
//! time holds a webhook's delivery lease, and a newer schema is refused.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use imgroups_core::engine::messages::query::Listing;
use imgroups_core::port::{Accounts, Hooks, Log, Store, WebhookUrl};
use imgroups_core::{
    admin, AccountId, Address, Change, Command, Engine, EngineConfig, ErrorKind, Message,
    NewMessage, Outcome, Reaction,
};
use imgroups_sim::Simulator;
use imgroups_store_postgres::{Config, PgStore, Role};

use crate::PgFixture;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `test` with two stores — two nodes — on one new database, and closes both after.
fn two_nodes<F, Fut>(name: &str, test: F)
where
    F: FnOnce(PgStore, PgStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(fixture) = PgFixture::new(name) else {
        return;
    };
    runtime().block_on(async {
        let (a, b) = (fixture.store(Role::Serve), fixture.store(Role::Serve));
        test(a.clone(), b.clone()).await;
        a.close().await;
        b.close().await;
    });
}

fn engine(store: &PgStore) -> Arc<Engine> {
    Arc::new(Engine::new(
        Arc::new(store.clone()),
        Simulator::network(),
        EngineConfig::default(),
    ))
}

async fn account(store: &PgStore, address: &str) -> AccountId {
    let address = Address::parse(address).unwrap();
    store.ensure_account(&address).await.unwrap().0
}

/// A group of `me` with the other accounts and a person who is not an account; its GUID.
async fn group(engine: &Engine, me: AccountId, others: &[&str]) -> String {
    let mut people: Vec<String> = others.iter().map(|s| s.to_string()).collect();
    people.push("someone@x.com".into());
    let command = Command::create_chat(&people, None).unwrap();
    match engine.execute(me, None, command).await.unwrap() {
        Outcome::Created { chat, .. } => chat.guid.to_string(),
        other => panic!("create answered {other:?}"),
    }
}

/// Every event of `account`'s log, checked to be 1, 2, 3, ….
async fn contiguous_log(store: &PgStore, account: AccountId) -> Vec<imgroups_core::Event> {
    let head = store.log_bounds(account).await.unwrap().head;
    let events = store
        .read_events(account, 0, head, usize::MAX >> 1)
        .await
        .unwrap();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            event.sequence,
            i as u64 + 1,
            "the log has a gap or a repeat"
        );
    }
    assert_eq!(events.len() as u64, head);
    events
}

#[test]
fn writes_from_two_nodes_keep_every_log_gap_free_in_commit_order() {
    two_nodes("two_nodes", |a, b| async move {
        let me = account(&a, "me@x.com").await;
        let ann = account(&a, "ann@x.com").await;
        let bob = account(&b, "bob@x.com").await;
        let (ea, eb) = (engine(&a), engine(&b));
        let chat = group(&ea, me, &["ann@x.com", "bob@x.com"]).await;
        let mut tasks = Vec::new();
        for i in 0..120 {
            let (engine, actor) = match i % 3 {
                0 => (ea.clone(), me),
                1 => (eb.clone(), ann),
                _ => (eb.clone(), bob),
            };
            let chat = chat.clone();
            tasks.push(tokio::spawn(async move {
                let command = Command::set_display_name(&chat, &format!("name {i}")).unwrap();
                engine.execute(actor, None, command).await.unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // Every member's log holds all 120 renames, in the same order for everyone.
        let mut orders = Vec::new();
        for who in [me, ann, bob] {
            let names: Vec<String> = contiguous_log(&a, who)
                .await
                .into_iter()
                .filter_map(|e| match e.change {
                    Change::DisplayNameChanged { display_name } => Some(display_name),
                    _ => None,
                })
                .collect();
            assert_eq!(names.len(), 120);
            orders.push(names);
        }
        assert_eq!(orders[0], orders[1]);
        assert_eq!(orders[1], orders[2]);
    });
}

#[test]
fn an_idempotency_key_raced_on_two_nodes_has_one_effect() {
    two_nodes("idem_race", |a, b| async move {
        let me = account(&a, "me@x.com").await;
        let (ea, eb) = (engine(&a), engine(&b));
        let chat = group(&ea, me, &["ann@x.com", "bob@x.com"]).await;
        for i in 0..20 {
            let key = format!("key-{i}");
            let run = |engine: Arc<Engine>| {
                let (key, chat) = (key.clone(), chat.clone());
                tokio::spawn(async move {
                    let command = Command::set_display_name(&chat, &format!("n{i}")).unwrap();
                    engine.execute(me, Some(key), command).await.unwrap()
                })
            };
            let (x, y) = (run(ea.clone()), run(eb.clone()));
            assert_eq!(
                x.await.unwrap(),
                y.await.unwrap(),
                "both nodes answer alike"
            );
        }
        let renames = contiguous_log(&b, me)
            .await
            .into_iter()
            .filter(|e| matches!(e.change, Change::DisplayNameChanged { .. }))
            .count();
        assert_eq!(renames, 20, "one effect per key");
    });
}

fn say(chat: &str, text: &str) -> Command {
    let message = NewMessage::new(text, None, None, None, Vec::new()).unwrap();
    Command::send_text(chat, message).unwrap()
}

fn sent(outcome: Outcome) -> Message {
    match outcome {
        Outcome::Message(message) => *message,
        other => panic!("a send answered {other:?}"),
    }
}

/// The GUIDs of the messages `events` delivered, in log order.
fn delivered(events: &[imgroups_core::Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.change {
            Change::MessageReceived { message } => Some(message.guid.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn messages_sent_through_two_nodes_reach_every_log_once_in_one_order() {
    two_nodes("msg_nodes", |a, b| async move {
        let me = account(&a, "me@x.com").await;
        let ann = account(&a, "ann@x.com").await;
        let bob = account(&b, "bob@x.com").await;
        let (ea, eb) = (engine(&a), engine(&b));
        let chat = group(&ea, me, &["ann@x.com", "bob@x.com"]).await;
        let mut tasks = Vec::new();
        for i in 0..90 {
            let (engine, actor) = match i % 3 {
                0 => (ea.clone(), me),
                1 => (eb.clone(), ann),
                _ => (eb.clone(), bob),
            };
            let chat = chat.clone();
            tasks.push(tokio::spawn(async move {
                let got = engine
                    .execute(actor, None, say(&chat, &format!("m{i}")))
                    .await;
                sent(got.unwrap()).guid
            }));
        }
        let mut acknowledged = Vec::new();
        for task in tasks {
            acknowledged.push(task.await.unwrap());
        }
        acknowledged.sort();

        // Every member's log has each message exactly once, all in the same order, and the
        // listing (on either node) is that order, newest first.
        let mut orders = Vec::new();
        for who in [me, ann, bob] {
            let order = delivered(&contiguous_log(&a, who).await);
            let mut once = order.clone();
            once.sort();
            assert_eq!(once, acknowledged, "each acknowledged message once");
            for engine in [&ea, &eb] {
                let listing = Listing {
                    page_size: Some(1000),
                    ..Listing::default()
                };
                let (page, next) = engine
                    .list_messages(who, Some(chat.clone()), listing)
                    .await
                    .unwrap();
                assert!(next.is_none());
                let listed: Vec<String> = page.into_iter().rev().map(|m| m.guid).collect();
                assert_eq!(listed, order, "the listing is the log's order");
            }
            orders.push(order);
        }
        assert_eq!(orders[0], orders[1]);
        assert_eq!(orders[1], orders[2]);
    });
}

#[test]
fn a_send_retried_on_the_other_node_answers_the_same_message() {
    two_nodes("msg_idem", |a, b| async move {
        let me = account(&a, "me@x.com").await;
        let ann = account(&b, "ann@x.com").await;
        let (ea, eb) = (engine(&a), engine(&b));
        let chat = group(&ea, me, &["ann@x.com", "bob@x.com"]).await;
        let before = a.log_bounds(ann).await.unwrap().head;
        for i in 0..20 {
            let key = Some(format!("send-{i}"));
            let text = format!("once {i}");
            let (first, second) = if i % 2 == 0 {
                // One after the other: a client that timed out and retried elsewhere.
                let first = ea.execute(me, key.clone(), say(&chat, &text)).await;
                (first, eb.execute(me, key, say(&chat, &text)).await)
            } else {
                // Both at once: a retry racing the original.
                let run = |engine: Arc<Engine>| {
                    let (key, command) = (key.clone(), say(&chat, &text));
                    tokio::spawn(async move { engine.execute(me, key, command).await })
                };
                let (x, y) = (run(ea.clone()), run(eb.clone()));
                (x.await.unwrap(), y.await.unwrap())
            };
            assert_eq!(sent(first.unwrap()), sent(second.unwrap()), "send {i}");
        }
        let events = contiguous_log(&b, ann).await;
        let received = delivered(&events[before as usize..]);
        assert_eq!(received.len(), 20, "one message per key");
        let mut unique = received.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 20);
    });
}

#[test]
fn tapbacks_raced_on_two_nodes_all_land() {
    two_nodes("msg_tapbacks", |a, b| async move {
        let me = account(&a, "me@x.com").await;
        account(&a, "ann@x.com").await;
        account(&b, "bob@x.com").await;
        let (ea, eb) = (engine(&a), engine(&b));
        let puppets = ["p1@x.com", "p2@x.com", "p3@x.com", "p4@x.com", "p5@x.com"];
        let mut others = vec!["ann@x.com", "bob@x.com"];
        others.extend(puppets);
        let chat = group(&ea, me, &others).await;
        let message = sent(ea.execute(me, None, say(&chat, "react!")).await.unwrap());
        let before = a.log_bounds(me).await.unwrap().head;
        // Everyone in the group but me reacts at once, half through each node; then again
        // with another tapback, which replaces the first.
        let mut reactors = vec!["ann@x.com", "bob@x.com"];
        reactors.extend(puppets);
        for kind in [Reaction::Love, Reaction::Laugh] {
            let mut tasks = Vec::new();
            for (i, who) in reactors.iter().enumerate() {
                let engine = if i % 2 == 0 { ea.clone() } else { eb.clone() };
                let command = Command::react(&chat, &message.guid, kind.clone(), true).unwrap();
                let who = Address::parse(who).unwrap();
                tasks.push(tokio::spawn(async move {
                    imgroups_sim::act(&engine, &who, command).await.unwrap();
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        }
        let copy = eb.get_message(me, message.guid.clone()).await.unwrap();
        let mut got: Vec<(String, String)> = copy
            .reactions
            .iter()
            .map(|r| (r.sender.to_string(), r.reaction.to_string()))
            .collect();
        got.sort();
        let mut want: Vec<(String, String)> = reactors
            .iter()
            .map(|w| (w.to_string(), "laugh".to_owned()))
            .collect();
        want.sort();
        assert_eq!(got, want, "no tapback lost to a concurrent one");
        // Added, then removed and added again: three events per person.
        let events = contiguous_log(&a, me).await;
        assert_eq!(events.len() as u64 - before, 3 * reactors.len() as u64);
    });
}

#[test]
fn commits_revocations_and_webhook_changes_reach_the_other_node() {
    two_nodes("hints", |a, b| async move {
        let me = account(&a, "me@x.com").await;
        let ann = account(&a, "ann@x.com").await;
        let address = Address::parse("me@x.com").unwrap();
        let token = admin::create_token(&a, &address).await.unwrap();
        // Give B's listener a moment to connect, and B a checked (cached) token.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(b.authenticate(&token).await.unwrap(), me);

        let mut notices = b.notices();
        let mut changes = b.webhook_changes();
        let ea = engine(&a);
        group(&ea, me, &["ann@x.com", "bob@x.com"]).await;
        let head = a.log_bounds(ann).await.unwrap().head;
        let seen = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let batch = notices.recv().await.unwrap();
                if batch.iter().any(|n| n.account == ann && n.head >= head) {
                    break;
                }
            }
        })
        .await;
        assert!(seen.is_ok(), "node B never heard of node A's commit");

        let url = WebhookUrl::parse("http://127.0.0.1:9/hook").unwrap();
        a.add_webhook(me, &url, "whsec_x").await.unwrap();
        let changed = tokio::time::timeout(Duration::from_secs(5), changes.changed()).await;
        assert!(changed.is_ok(), "node B never heard of the new webhook");

        admin::revoke_token(&a, &token).await.unwrap();
        let started = Instant::now();
        loop {
            match b.authenticate(&token).await {
                Err(err) if err.kind == ErrorKind::TokenBlocked => break,
                Ok(_) if started.elapsed() < Duration::from_secs(2) => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                other => panic!("a revoked token still works on node B: {other:?}"),
            }
        }
    });
}

#[test]
fn one_node_at_a_time_holds_a_webhook_lease() {
    two_nodes("lease", |a, b| async move {
        let me = account(&a, "me@x.com").await;
        let url = WebhookUrl::parse("http://127.0.0.1:9/hook").unwrap();
        let hook = a.add_webhook(me, &url, "whsec_x").await.unwrap();
        let lease = Duration::from_millis(600);
        assert_eq!(a.claim_webhook(hook.id, lease).await.unwrap(), Some(0));
        assert_eq!(b.claim_webhook(hook.id, lease).await.unwrap(), None);
        // A renews and keeps it…
        assert_eq!(a.claim_webhook(hook.id, lease).await.unwrap(), Some(0));
        a.webhook_delivered(hook.id, 3).await.unwrap();
        // …until it stops renewing: then B takes over, from A's cursor.
        tokio::time::sleep(lease + Duration::from_millis(200)).await;
        assert_eq!(b.claim_webhook(hook.id, lease).await.unwrap(), Some(3));
        assert_eq!(a.claim_webhook(hook.id, lease).await.unwrap(), None);
        // A clean stop gives the lease back at once.
        b.close().await;
        assert_eq!(a.claim_webhook(hook.id, lease).await.unwrap(), Some(3));
    });
}

#[test]
fn a_database_with_a_newer_schema_is_refused() {
    let Some(fixture) = PgFixture::new("schema") else {
        return;
    };
    let store = fixture.store(Role::Tool);
    drop(store);
    let url = fixture.db.url.clone();
    std::thread::spawn(move || {
        let rt = runtime();
        rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .batch_execute("UPDATE schema_version SET version = 99")
                .await
                .unwrap();
        });
    })
    .join()
    .unwrap();
    let err = PgStore::open(Config::new(&fixture.db.url))
        .err()
        .expect("a newer schema must be refused");
    assert_eq!(err.kind, ErrorKind::PreconditionFailed);
    assert!(err.message.contains("version 99"), "{}", err.message);
}

#[test]
fn a_bad_url_or_an_unreachable_server_is_a_clear_error() {
    let err = PgStore::open(Config::new("postgres://u@h:notaport/db"))
        .err()
        .expect("bad url");
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert!(
        err.message.contains("invalid database url"),
        "{}",
        err.message
    );
    let err = PgStore::open(Config::new("postgres://postgres@127.0.0.1:1/none"))
        .err()
        .expect("nobody listens on port 1");
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.message.contains("cannot connect"), "{}", err.message);
}
