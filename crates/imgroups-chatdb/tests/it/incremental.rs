//! The incremental read: backfilled ROWIDs, late join rows, renumbered databases, cursors
//! that survive a restart.

use imgroups_chatdb::{ChatDb, Cursor, Scan, PENDING_WINDOW};

use crate::fixture::{Fixture, Msg, Version};

fn guids(scan: &Scan) -> Vec<&str> {
    scan.changes.iter().map(|c| c.guid.as_str()).collect()
}

fn rename(guid: &str, minute: i64) -> Msg<'_> {
    Msg {
        guid,
        item_type: 2,
        from_me: true,
        title: Some(guid),
        minute,
        ..Msg::default()
    }
}

#[test]
fn only_new_rows_and_backfill_comes_once_with_its_old_date() {
    for version in [Version::Monterey, Version::Tahoe] {
        let f = Fixture::new(version);
        let chat = f.group("any;+;g", None, None);
        f.post(chat, rename("R1", 100));
        f.post(
            chat,
            Msg {
                guid: "TEXT",
                text: Some("hi"),
                minute: 101,
                ..Msg::default()
            },
        );
        let db = f.open();
        let first = db.scan(&Cursor::start()).unwrap();
        assert_eq!(guids(&first), ["R1"]);
        assert_eq!(
            first.cursor.after_rowid(),
            2,
            "text rows move the cursor too"
        );
        assert!(db.scan(&first.cursor).unwrap().changes.is_empty());

        // iCloud backfill: an old message arrives with a new ROWID.
        f.post(chat, rename("BACKFILLED", 5));
        f.post(chat, rename("R2", 102));
        let second = db.scan(&first.cursor).unwrap();
        assert_eq!(guids(&second), ["BACKFILLED", "R2"], "{version:?}");
        assert_eq!(second.changes[0].rowid, 3);
        assert!(second.changes[0].occurred_at < first.changes[0].occurred_at);
        assert!(!second.restarted);
        assert!(db.scan(&second.cursor).unwrap().changes.is_empty());
    }
}

#[test]
fn late_join_row_is_picked_up_by_a_later_scan() {
    for version in [Version::Sierra, Version::Tahoe] {
        let f = Fixture::new(version);
        let chat = f.group("iMessage;+;chat1", None, None);
        let dm = f.chat("iMessage;-;+15550001", 45, None, None);
        let early = f.message(rename("EARLY", 1));
        let to_dm = f.message(rename("TO-DM", 2));
        f.post(chat, rename("JOINED", 3));
        let db = f.open();
        let first = db.scan(&Cursor::start()).unwrap();
        assert_eq!(guids(&first), ["JOINED"]);
        assert_eq!(first.cursor.pending().collect::<Vec<_>>(), [early, to_dm]);

        // The cursor is stored as text and read back by a new process.
        let stored = first.cursor.to_string();
        assert_eq!(stored, format!("v1:3:{early},{to_dm}"));
        let cursor: Cursor = stored.parse().unwrap();

        f.join(chat, early);
        f.join(dm, to_dm);
        let db = ChatDb::open(f.home()).unwrap();
        let second = db.scan(&cursor).unwrap();
        assert_eq!(guids(&second), ["EARLY"], "{version:?}");
        assert_eq!(
            second.cursor.pending().count(),
            0,
            "the DM row is not a group change"
        );
        assert!(db.scan(&second.cursor).unwrap().changes.is_empty());
    }
}

#[test]
fn a_join_to_a_chat_row_not_yet_written_stays_pending() {
    let f = Fixture::new(Version::Tahoe);
    let msg = f.message(rename("X", 1));
    // Whether Messages enforces its REFERENCES clauses is not known; the reader must not rely
    // on it, so the fixture writes the join before its chat row with enforcement off.
    f.conn.pragma_update(None, "foreign_keys", false).unwrap();
    f.join(77, msg);
    let db = f.open();
    let scan = db.scan(&Cursor::start()).unwrap();
    assert!(scan.changes.is_empty());
    assert_eq!(scan.cursor.pending().collect::<Vec<_>>(), [msg]);
    f.conn
        .execute(
            "INSERT INTO chat (ROWID, guid, style, chat_identifier) VALUES (77, 'any;+;late', 43, 'late')",
            [],
        )
        .unwrap();
    assert_eq!(guids(&db.scan(&scan.cursor).unwrap()), ["X"]);
}

#[test]
fn pending_rows_are_given_up_far_behind() {
    let f = Fixture::new(Version::Monterey);
    let chat = f.group("any;+;g", None, None);
    let orphan = f.message(rename("ORPHAN", 1));
    let db = f.open();
    let scan = db.scan(&Cursor::start()).unwrap();
    assert_eq!(scan.cursor.pending().collect::<Vec<_>>(), [orphan]);
    f.post(
        chat,
        Msg {
            rowid: Some(orphan + PENDING_WINDOW),
            ..rename("FAR", 2)
        },
    );
    let later = db.scan(&scan.cursor).unwrap();
    assert_eq!(guids(&later), ["FAR"]);
    assert_eq!(later.cursor.pending().count(), 0);
}

#[test]
fn a_renumbered_database_restarts_from_the_beginning() {
    let f = Fixture::new(Version::Tahoe);
    let chat = f.group("any;+;g", None, None);
    f.post(chat, rename("A", 1));
    let db = f.open();
    let ahead: Cursor = "v1:500".parse().unwrap();
    let scan = db.scan(&ahead).unwrap();
    assert!(scan.restarted);
    assert_eq!(guids(&scan), ["A"]);
    assert_eq!(scan.cursor.after_rowid(), 1);

    // Deleting the newest rows does not lower the high-water mark: no false restart.
    f.post(chat, rename("B", 2));
    let before = db.scan(&scan.cursor).unwrap();
    assert_eq!(guids(&before), ["B"]);
    f.conn
        .execute("DELETE FROM message WHERE guid = 'B'", [])
        .unwrap();
    let after = db.scan(&before.cursor).unwrap();
    assert!(!after.restarted);
    assert!(after.changes.is_empty());
}

#[test]
fn reads_while_messages_holds_a_write_transaction() {
    let f = Fixture::new(Version::Tahoe);
    let chat = f.group("any;+;g", None, None);
    f.post(chat, rename("COMMITTED", 1));
    let db = f.open();
    f.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    f.post(chat, rename("UNCOMMITTED", 2));
    let scan = db.scan(&Cursor::start()).unwrap();
    assert_eq!(
        guids(&scan),
        ["COMMITTED"],
        "WAL readers see the last commit only"
    );
    f.conn.execute_batch("COMMIT").unwrap();
    assert_eq!(guids(&db.scan(&scan.cursor).unwrap()), ["UNCOMMITTED"]);
}
