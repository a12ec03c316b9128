//! Opening: read-only, the real triggers, column probing, detecting "me".

use imgroups_chatdb::{ChangeKind, ChatDb, Error, Party};
use rusqlite::Connection;

use crate::fixture::{Fixture, Msg, Version, ALL};

#[test]
fn the_real_triggers_need_messages_functions() {
    // Without the stand-ins, Tahoe's chat insert trigger fails: the schema is the real one.
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("chat.db")).unwrap();
    conn.execute_batch(Version::Tahoe.schema()).unwrap();
    let err = conn
        .execute("INSERT INTO chat (guid, style) VALUES ('any;+;x', 43)", [])
        .unwrap_err();
    assert!(err.to_string().contains("verify_chat"), "{err}");

    // With them, every trigger fires, including the attachment delete triggers.
    for version in ALL {
        let f = Fixture::new(version);
        let a = f.attachment("at_1", Some("~/x.jpeg"), None);
        f.conn
            .execute("DELETE FROM attachment WHERE ROWID = ?1", [a])
            .unwrap();
    }
}

#[test]
fn reading_changes_no_file() {
    let f = Fixture::new(Version::Tahoe);
    let chat = f.group("any;+;g", None, None);
    f.post(
        chat,
        Msg {
            guid: "A",
            item_type: 2,
            from_me: true,
            ..Msg::default()
        },
    );
    let wal = f.path().with_extension("db-wal");
    let files = || {
        (
            std::fs::read(f.path()).unwrap(),
            std::fs::read(&wal).unwrap(),
        )
    };
    let before = files();
    let db = f.open();
    assert_eq!(db.all_changes().unwrap().len(), 1);
    assert_eq!(db.groups().unwrap().len(), 1);
    drop(db);
    // Neither the database nor the WAL changed: no write, no checkpoint on close.
    assert_eq!(files(), before);
}

#[test]
fn reads_a_database_whose_writer_has_closed() {
    // Messages not running: its last close checkpointed and removed the WAL.
    let f = Fixture::new(Version::Monterey);
    let chat = f.group("any;+;g", None, None);
    f.post(
        chat,
        Msg {
            guid: "A",
            item_type: 2,
            from_me: true,
            ..Msg::default()
        },
    );
    let (home, _dir) = f.close();
    let db = ChatDb::open(&home).unwrap();
    assert_eq!(db.all_changes().unwrap().len(), 1);
}

#[test]
fn open_errors() {
    let dir = tempfile::tempdir().unwrap();
    match ChatDb::open(dir.path()) {
        Err(Error::Open { path, .. }) => assert!(path.ends_with("Library/Messages/chat.db")),
        other => panic!("{:?}", other.map(|_| ())),
    }
    let path = dir.path().join("other.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t(x)")
        .unwrap();
    match ChatDb::open_file(&path, dir.path()) {
        Err(Error::MissingColumn {
            table: "chat",
            column: "guid",
        }) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn probes_report_version_differences() {
    let sierra = Fixture::new(Version::Sierra).open();
    let tahoe = Fixture::new(Version::Tahoe).open();
    assert!(!sierra.schema().has("message", "destination_caller_id"));
    assert!(tahoe.schema().has("message", "destination_caller_id"));
    assert!(!sierra.schema().has("chat_message_join", "message_date"));
    assert!(tahoe.schema().has("CHAT", "PROPERTIES") || tahoe.schema().has("chat", "properties"));
}

#[test]
fn missing_group_columns_read_as_defaults() {
    // A layout without the group columns (as some tools guard against): still readable.
    let dir = tempfile::tempdir().unwrap();
    let path = ChatDb::default_path(dir.path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE chat(ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, style INTEGER);
             CREATE TABLE handle(ROWID INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, id TEXT NOT NULL);
             CREATE TABLE chat_handle_join(chat_id INTEGER, handle_id INTEGER);
             CREATE TABLE chat_message_join(chat_id INTEGER, message_id INTEGER);
             CREATE TABLE message(ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL,
               handle_id INTEGER DEFAULT 0, date INTEGER, is_from_me INTEGER DEFAULT 0,
               item_type INTEGER DEFAULT 0);
             INSERT INTO chat VALUES (1, 'iMessage;+;chat1', 43);
             INSERT INTO message (guid, date, is_from_me, item_type) VALUES ('M1', 1, 1, 2), ('M2', 2, 1, 3);
             INSERT INTO chat_message_join VALUES (1, 1), (1, 2);",
        )
        .unwrap();
    let db = ChatDb::open(dir.path()).unwrap();
    let kinds = db
        .all_changes()
        .unwrap()
        .into_iter()
        .map(|c| (c.actor, c.kind))
        .collect::<Vec<_>>();
    assert_eq!(
        kinds,
        [
            (Party::Me, ChangeKind::Renamed { name: None }),
            (Party::Me, ChangeKind::Left),
        ]
    );
    let groups = db.groups().unwrap();
    assert_eq!(groups[0].guid.as_str(), "any;+;chat1");
    assert_eq!(groups[0].display_name, None);
    assert_eq!(db.detect_account().unwrap(), None);
}

#[test]
fn detects_the_account_address() {
    // Monterey and later: the address I sent from.
    let f = Fixture::new(Version::Tahoe);
    let chat = f.group("any;+;g", None, None);
    for (i, caller) in ["me@icloud.com", "me@icloud.com", "+15559999"]
        .into_iter()
        .enumerate()
    {
        let guid = format!("T{i}");
        f.post(
            chat,
            Msg {
                guid: &guid,
                text: Some("hi"),
                from_me: true,
                caller_id: Some(caller),
                account: Some("e:other@icloud.com"),
                ..Msg::default()
            },
        );
    }
    assert_eq!(
        f.open().detect_account().unwrap().as_deref(),
        Some("me@icloud.com")
    );

    // Sierra has no destination_caller_id: the group's last addressed handle, else the account.
    let f = Fixture::new(Version::Sierra);
    let chat = f.group("iMessage;+;chat1", None, None);
    f.post(
        chat,
        Msg {
            guid: "T",
            text: Some("hi"),
            from_me: true,
            account: Some("e:me@mac.com"),
            ..Msg::default()
        },
    );
    assert_eq!(
        f.open().detect_account().unwrap().as_deref(),
        Some("me@mac.com")
    );
    f.conn
        .execute("UPDATE chat SET last_addressed_handle = '+15551234'", [])
        .unwrap();
    assert_eq!(
        f.open().detect_account().unwrap().as_deref(),
        Some("+15551234")
    );
}
