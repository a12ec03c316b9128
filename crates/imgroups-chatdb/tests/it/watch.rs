//! The watcher with a writer on another connection and thread: every row exactly once, through
//! WAL truncation, a writer restart, late join rows and backfilled ROWIDs; a WAL deleted and
//! recreated with a new inode; and
//! with no notifications at all, through the periodic re-scan alone.

use std::collections::BTreeMap;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use imgroups_chatdb::{ChatDb, Cursor, Wake, Watcher};
use rusqlite::Connection;

use crate::fixture::{register_messages_functions, Fixture, Msg, Version};

/// Applies the writer's script on its own connection, as Messages would from its process.
fn writer(home: &Path, rows: usize) {
    let path = ChatDb::default_path(home);
    let open = || {
        let conn = Connection::open(&path).unwrap();
        register_messages_functions(&conn);
        conn
    };
    let mut conn = open();
    let pause = || thread::sleep(Duration::from_millis(3));
    for i in 0..rows {
        // Backfilled rows carry old dates; every fifth row's join comes in a later commit.
        let minute = if i % 7 == 3 {
            -1000 - i as i64
        } else {
            i as i64
        };
        let date = (crate::fixture::BASE_SECS + minute * 60) * 1_000_000_000;
        conn.execute(
            "INSERT INTO message (guid, date, is_from_me, item_type, group_title, service) \
             VALUES (?1, ?2, 1, 2, 'n', 'iMessage')",
            rusqlite::params![format!("W{i}"), date],
        )
        .unwrap();
        let id = conn.last_insert_rowid();
        if i % 5 == 4 {
            pause();
        }
        conn.execute(
            "INSERT INTO chat_message_join (chat_id, message_id, message_date) VALUES (1, ?1, ?2)",
            rusqlite::params![id, date],
        )
        .unwrap();
        match i {
            // Checkpoint and truncate the WAL to zero bytes.
            10 => {
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .unwrap();
            }
            // Messages restarting: a new connection (the WAL survives while we read; see
            // `wal_recreated_while_no_reader_is_connected` for the new-inode case).
            20 => {
                drop(conn);
                conn = open();
            }
            _ => {}
        }
        pause();
    }
}

/// Scans on every wake until `rows` changes were seen; returns guid → times seen.
fn collect(db: &ChatDb, watcher: &mut Watcher, rows: usize) -> BTreeMap<String, usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut cursor = Cursor::start();
    let mut seen = BTreeMap::new();
    while seen.len() < rows {
        assert!(
            Instant::now() < deadline,
            "only {} of {rows}: {seen:?}",
            seen.len()
        );
        if watcher.wait_timeout(Duration::from_millis(200)).is_none() {
            continue;
        }
        let scan = db.scan(&cursor).unwrap();
        for change in scan.changes {
            *seen.entry(change.guid).or_insert(0) += 1;
        }
        cursor = scan.cursor;
    }
    // Nothing more comes later.
    thread::sleep(Duration::from_millis(50));
    assert!(db.scan(&cursor).unwrap().changes.is_empty());
    seen
}

fn fixture() -> Fixture {
    let f = Fixture::new(Version::Tahoe);
    assert_eq!(f.group("any;+;w", None, None), 1);
    // A first message so that the reader's snapshot has a WAL to read.
    f.post(
        1,
        Msg {
            guid: "W-FIRST",
            item_type: 3,
            action: 2,
            from_me: true,
            ..Msg::default()
        },
    );
    f
}

#[test]
fn notifications_alone_deliver_every_row_once() {
    const ROWS: usize = 40;
    let (home, _dir) = fixture().close();
    let db = ChatDb::open(&home).unwrap();
    // No periodic re-scan within the test: only notifications (and their settle wake) wake us.
    let mut watcher =
        Watcher::new(&ChatDb::default_path(&home), Duration::from_secs(3600)).unwrap();
    let w = thread::spawn(move || writer(&home, ROWS));
    let seen = collect(&db, &mut watcher, ROWS + 1);
    w.join().unwrap();
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
}

#[test]
fn the_rescan_alone_catches_up() {
    const ROWS: usize = 12;
    let (home, _dir) = fixture().close();
    let db = ChatDb::open(&home).unwrap();
    // Watching an unrelated directory: every notification is "lost".
    let elsewhere = tempfile::tempdir().unwrap();
    let mut watcher =
        Watcher::new(&elsewhere.path().join("chat.db"), Duration::from_millis(40)).unwrap();
    let w = thread::spawn(move || writer(&home, ROWS));
    let seen = collect(&db, &mut watcher, ROWS + 1);
    w.join().unwrap();
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    assert_eq!(watcher.wait(), Wake::Rescan);
}

#[test]
fn wal_recreated_while_no_reader_is_connected() {
    // With no reader connected, Messages' last close checkpoints and deletes the WAL; its next
    // start creates a new one. The watch must follow the new file.
    let (home, _dir) = fixture().close();
    let path = ChatDb::default_path(&home);
    let wal = path.with_extension("db-wal");
    assert!(!wal.exists());
    let mut watcher = Watcher::new(&path, Duration::from_secs(3600)).unwrap();
    let conn = Connection::open(&path).unwrap();
    register_messages_functions(&conn);
    let write = |guid: &str| {
        conn.execute(
            "INSERT INTO message (guid, date, is_from_me, item_type) VALUES (?1, 0, 1, 2)",
            [guid],
        )
        .unwrap();
    };
    write("NEW-WAL-1");
    assert!(wal.exists());
    assert_eq!(
        watcher.wait_timeout(Duration::from_secs(5)),
        Some(Wake::Changed)
    );
    // Drain the ring and its settle wake, then a write to the new WAL must ring again.
    while watcher.wait_timeout(Duration::from_millis(100)).is_some() {}
    write("NEW-WAL-2");
    assert_eq!(
        watcher.wait_timeout(Duration::from_secs(5)),
        Some(Wake::Changed)
    );
}

#[test]
fn a_reader_sees_rows_again_once_reopened_after_its_wal_was_deleted_under_it() {
    // The WAL deleted while a reader is connected (SQLite never does that itself; a cleanup tool
    // can) and the writer starts a new one: the old connection keeps reading the deleted file.
    let mut f = fixture();
    let path = f.path();
    let wal = path.with_extension("db-wal");
    let db = ChatDb::open(f.home()).unwrap();
    let before = db.scan(&Cursor::start()).unwrap();
    assert!(!db.wal_replaced());

    assert!(f.checkpoint_truncate());
    f.reopen(|_| std::fs::remove_file(&wal).unwrap());
    let chat = 1;
    f.post(
        chat,
        Msg {
            guid: "AFTER-NEW-WAL",
            item_type: 2,
            from_me: true,
            title: Some("x"),
            minute: 9,
            ..Msg::default()
        },
    );
    assert!(wal.exists());
    assert!(db.wal_replaced(), "a new inode");
    let fresh = db.reopen().unwrap();
    assert!(!fresh.wal_replaced());
    let scan = fresh.scan(&before.cursor).unwrap();
    let guids: Vec<&str> = scan.changes.iter().map(|c| c.guid.as_str()).collect();
    assert_eq!(guids, ["AFTER-NEW-WAL"]);
}

/// Writes do not add watches (each is a descriptor with kqueue); a WAL replaced by a new file
/// adds exactly one.
#[test]
fn writes_do_not_re_arm_the_watch_a_new_wal_does() {
    let mut f = Fixture::new(Version::Tahoe);
    let chat = f.group("any;+;w1", None, None);
    f.post(
        chat,
        Msg {
            guid: "FIRST",
            item_type: 2,
            from_me: true,
            title: Some("a"),
            ..Msg::default()
        },
    );
    let mut watcher = Watcher::new(&f.path(), Duration::from_secs(60)).unwrap();
    let at_start = watcher.watches_added();
    assert_eq!(at_start, 2, "chat.db and its WAL");
    for i in 0..30 {
        let guid = format!("W{i}");
        f.post(
            chat,
            Msg {
                guid: &guid,
                item_type: 2,
                from_me: true,
                title: Some("n"),
                minute: i,
                ..Msg::default()
            },
        );
        while watcher.wait_timeout(Duration::from_millis(20)).is_some() {}
    }
    assert_eq!(watcher.watches_added(), at_start, "no watch per write");

    // Messages quits (the WAL is deleted) and starts again: a new WAL file.
    f.reopen(|db| {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let _ = std::fs::remove_file(wal);
    });
    f.post(
        chat,
        Msg {
            guid: "AFTER",
            item_type: 2,
            from_me: true,
            title: Some("b"),
            minute: 99,
            ..Msg::default()
        },
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while watcher.watches_added() == at_start && Instant::now() < deadline {
        watcher.wait_timeout(Duration::from_millis(20));
    }
    // Let the notifications of the reopen settle, then count: SQLite may create the WAL file
    // more than once while it reopens (each a new file, each watched once).
    while watcher.wait_timeout(Duration::from_millis(100)).is_some() {}
    let added = watcher.watches_added() - at_start;
    assert!(
        (1..=2).contains(&added),
        "the new WAL is watched: {added} watches added"
    );
    for i in 0..10 {
        let guid = format!("AFTER{i}");
        f.post(
            chat,
            Msg {
                guid: &guid,
                item_type: 2,
                from_me: true,
                title: Some("c"),
                minute: 100 + i,
                ..Msg::default()
            },
        );
        while watcher.wait_timeout(Duration::from_millis(20)).is_some() {}
    }
    assert_eq!(
        watcher.watches_added() - at_start,
        added,
        "still none per write"
    );
}
