//! How long a simulator reset takes on a large world: 10,000 groups and 100,000 messages
//! (each kept by two accounts, with the events that delivered them). The rows are written
//! with plain SQL (making them through the engine would take minutes); the reset then runs
//! through the store, as `imgroups sim reset` does. The goal is 200 ms.
//!
//! Ignored by default (it writes about 150 MB); run with
//! `cargo test -p imgroups-store-sqlite --release --test it reset_of_a_large_world -- --ignored --nocapture`
//! (and `snapshot_of_a_large_world` for an export and an import of the same world).

use std::time::Instant;

use imgroups_core::port::{Accounts, Log, ResetScope, Store};
use imgroups_core::{AccountId, Address};

use crate::common::open_store;

const GROUPS: i64 = 10_000;
const MESSAGES: i64 = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes a large database; run by hand to measure"]
async fn reset_of_a_large_world() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgroups.db");
    let (me, _) = large_world(&path).await;
    // The default durability: the reset is fsynced before it is answered.
    let store = imgroups_store_sqlite::SqliteStore::open(imgroups_store_sqlite::Config::new(&path))
        .unwrap();
    let started = Instant::now();
    store.reset(ResetScope::default()).await.unwrap();
    let took = started.elapsed();
    println!(
        "reset of {GROUPS} groups and {MESSAGES} messages (x2 accounts): {} ms",
        took.as_millis()
    );
    let bounds = store.log_bounds(me).await.unwrap();
    assert_eq!(bounds.head, MESSAGES as u64);
    assert!(store
        .read_events(me, 0, bounds.head, 10)
        .await
        .unwrap()
        .is_empty());
    store.close().await;
}

/// Writes the large world into a new store at `path`; returns its two accounts.
async fn large_world(path: &std::path::Path) -> (AccountId, AccountId) {
    let store = open_store(path);
    let me = store
        .ensure_account(&Address::parse("me@x.com").unwrap())
        .await
        .unwrap()
        .0;
    let bob = store
        .ensure_account(&Address::parse("bob@x.com").unwrap())
        .await
        .unwrap()
        .0;
    store.close().await;

    let mut conn = rusqlite::Connection::open(path).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut group = tx
            .prepare(
                "INSERT INTO groups (id, identifier, group_id, display_name, created_at)
                 VALUES (?1, ?2, ?3, ?4, 0)",
            )
            .unwrap();
        let mut member = tx
            .prepare("INSERT INTO members (group_key, address) VALUES (?1, ?2)")
            .unwrap();
        for g in 1..=GROUPS {
            group
                .execute(rusqlite::params![
                    g,
                    format!("chat{g:018}"),
                    format!("{g:08X}-0000-4000-8000-000000000000"),
                    format!("Group {g}")
                ])
                .unwrap();
            for who in ["me@x.com", "bob@x.com", "p@x.com", "q@x.com"] {
                member.execute(rusqlite::params![g, who]).unwrap();
            }
        }
        // As the store keeps a send: the content once, a thin copy and a delivery event
        // (kind 12, referring to the content) per member.
        let mut body = tx
            .prepare("INSERT INTO message_bodies (id, guid, body) VALUES (?1, ?2, ?3)")
            .unwrap();
        let mut message = tx
            .prepare(
                "INSERT INTO chat_messages
                 (account_id, place, body_id, chat_guid, created_at, is_from_me, is_read)
                 VALUES (?1, ?2, ?2, ?3, 0, ?4, 1)",
            )
            .unwrap();
        let mut event = tx
            .prepare(
                "INSERT INTO events (account_id, seq, chat_guid, occurred_at, is_from_me, actor, kind, value)
                 VALUES (?1, ?2, ?3, 0, ?4, 'me@x.com', 12, ?2)",
            )
            .unwrap();
        for m in 1..=MESSAGES {
            let chat = format!("any;+;chat{:018}", m % GROUPS + 1);
            let guid = format!("{m:08X}-0000-4000-8000-000000000000");
            let content = imgroups_core::Message {
                guid: guid.clone(),
                text: format!("message number {m} with some words in it"),
                is_sent: true,
                sender: Some(Address::parse("me@x.com").unwrap()),
                ..imgroups_core::Message::default()
            };
            body.execute(rusqlite::params![
                m,
                guid,
                imgroups_core::port::content::encode(&content)
            ])
            .unwrap();
            for (account, mine) in [(me.0, true), (bob.0, false)] {
                message
                    .execute(rusqlite::params![account, m, chat, mine])
                    .unwrap();
                event
                    .execute(rusqlite::params![account, m, chat, mine])
                    .unwrap();
            }
        }
        tx.execute(
            "UPDATE accounts SET head_seq = ?1",
            rusqlite::params![MESSAGES],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    drop(conn);
    // To look at the statements' cost with the sqlite3 shell.
    if let Some(keep) = std::env::var_os("IMGROUPS_KEEP_DB") {
        std::fs::copy(path, keep).unwrap();
    }

    (me, bob)
}

/// Export and import of the same world, as `imgroups sim snapshot export|import` do them
/// (reading and writing the file aside): the second export is the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes a large database; run by hand to measure"]
async fn snapshot_of_a_large_world() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgroups.db");
    large_world(&path).await;
    let store = imgroups_store_sqlite::SqliteStore::open(imgroups_store_sqlite::Config::new(&path))
        .unwrap();
    let started = Instant::now();
    let world = store.export().await.unwrap();
    let exported = started.elapsed();
    let started = Instant::now();
    let file = world.to_json();
    let written = started.elapsed();
    let started = Instant::now();
    let read = imgroups_core::snapshot::Snapshot::from_json(&file).unwrap();
    let parsed = started.elapsed();
    let started = Instant::now();
    store.import(read).await.unwrap();
    let imported = started.elapsed();
    assert!(
        store.export().await.unwrap().to_json() == file,
        "round trip"
    );
    println!(
        "snapshot of {GROUPS} groups and {MESSAGES} messages (x2 accounts), {} MB: export {} ms, \
         to JSON {} ms, from JSON {} ms, import {} ms",
        file.len() / 1_000_000,
        exported.as_millis(),
        written.as_millis(),
        parsed.as_millis(),
        imported.as_millis()
    );
    store.close().await;
}
