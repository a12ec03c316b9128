//! The SQLite schema. Each migration runs once, in order, recorded in `user_version`.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE accounts (
    id         INTEGER PRIMARY KEY,
    address    TEXT NOT NULL UNIQUE,
    head_seq   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    hash       BLOB NOT NULL UNIQUE,
    label      TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE unreachable (
    address TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE groups (
    id           INTEGER PRIMARY KEY,
    identifier   TEXT NOT NULL UNIQUE,
    group_id     TEXT NOT NULL,
    display_name TEXT,
    icon_hash    BLOB,
    created_at   INTEGER NOT NULL
);
CREATE TABLE icons (
    group_key INTEGER PRIMARY KEY REFERENCES groups(id),
    data      BLOB NOT NULL,
    mime      TEXT NOT NULL
);
-- The rowid orders members by when they (last) joined.
CREATE TABLE members (
    id        INTEGER PRIMARY KEY,
    group_key INTEGER NOT NULL REFERENCES groups(id),
    address   TEXT NOT NULL,
    UNIQUE (group_key, address)
);
CREATE INDEX members_by_address ON members(address, group_key);
CREATE TABLE direct_chats (
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    address    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, address)
) WITHOUT ROWID;
CREATE TABLE messages (
    guid       TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    chat_guid  TEXT NOT NULL,
    text       TEXT NOT NULL,
    subject    TEXT,
    created_at INTEGER NOT NULL
);
-- The event log: per account, seq is 1, 2, 3, … in commit order.
CREATE TABLE events (
    account_id  INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    chat_guid   TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    is_from_me  INTEGER NOT NULL,
    actor       TEXT,
    kind        INTEGER NOT NULL,
    value       TEXT,
    PRIMARY KEY (account_id, seq)
) WITHOUT ROWID;
CREATE TABLE idempotency (
    account_id  INTEGER NOT NULL,
    method      TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    outcome     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, method, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_by_age ON idempotency(created_at);
"#,
    // Retention: events with seq <= pruned_through were deleted on purpose.
    r#"
ALTER TABLE accounts ADD COLUMN pruned_through INTEGER NOT NULL DEFAULT 0;
"#,
    // Webhooks: one row per endpoint; `cursor` is the last sequence the endpoint acknowledged
    // with a 2xx, advanced only after that answer.
    r#"
CREATE TABLE webhooks (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    cursor     INTEGER NOT NULL,
    failures   INTEGER NOT NULL DEFAULT 0,
    paused     INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX webhooks_by_account ON webhooks(account_id);
"#,
    // Admin tokens (the console's credential), kept apart from accounts' tokens so neither
    // is ever accepted as the other; and injected faults (simulator controls). A fault with
    // `remaining` NULL applies to every call until `until` (NULL: until cleared); a counted
    // one stays, disarmed, once `remaining` reaches 0.
    r#"
CREATE TABLE admin_tokens (
    id         INTEGER PRIMARY KEY,
    hash       BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE faults (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    method     TEXT NOT NULL,
    error_code TEXT,
    retryable  INTEGER NOT NULL,
    latency_ms INTEGER NOT NULL,
    remaining  INTEGER,
    until      INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX faults_by_account ON faults(account_id);
"#,
    // What a backend that observes an external source (macOS chat.db) has recorded from it:
    // its position in each source, and the ids of the changes it recorded, so that neither a
    // restart nor a re-read of the source records one twice. Both commit with the events.
    r#"
CREATE TABLE observer_cursors (
    source TEXT PRIMARY KEY,
    cursor TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE observed (
    source TEXT NOT NULL,
    id     TEXT NOT NULL,
    PRIMARY KEY (source, id)
) WITHOUT ROWID;
"#,
    // Messages: every account keeps its own copy of each message it received or sent, at a
    // place in its order (the sequence of the event that delivered it). `body` is the
    // engine's JSON of the message; the other columns are what listings filter on. The first
    // table of messages held only the first messages of `chats.create`, with no place: they
    // move over below their account's other messages.
    r#"
CREATE TABLE chat_messages (
    account_id INTEGER NOT NULL,
    place      INTEGER NOT NULL,
    guid       TEXT    NOT NULL,
    chat_guid  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    is_from_me INTEGER NOT NULL,
    is_read    INTEGER NOT NULL,
    body       TEXT    NOT NULL,
    PRIMARY KEY (account_id, place)
) WITHOUT ROWID;
CREATE UNIQUE INDEX chat_messages_by_guid ON chat_messages(account_id, guid);
CREATE INDEX chat_messages_by_chat ON chat_messages(account_id, chat_guid, place);
INSERT INTO chat_messages (account_id, place, guid, chat_guid, created_at, is_from_me, is_read, body)
    SELECT account_id, -rowid, guid, chat_guid, created_at, 1, 1,
           json_object('guid', guid, 'text', text, 'subject', subject,
                       'date_created', created_at, 'is_from_me', json('true'),
                       'is_sent', json('true'))
    FROM messages;
DROP TABLE messages;
"#,
    // Chat backgrounds, shared by everyone in a chat: keyed by the group's identifier or the
    // direct chat's two addresses (`imgroups_core::engine::messages::chat_key`).
    r#"
CREATE TABLE chat_backgrounds (
    chat_key TEXT PRIMARY KEY,
    data     BLOB NOT NULL,
    mime     TEXT NOT NULL,
    hash     BLOB NOT NULL
) WITHOUT ROWID;
"#,
    // Unread messages, by chat and by account: what a mark-read and an unread listing look
    // for, without walking every message read long ago.
    r#"
CREATE INDEX chat_messages_unread_by_chat ON chat_messages(account_id, chat_guid, place)
    WHERE is_read = 0;
CREATE INDEX chat_messages_unread ON chat_messages(account_id, place) WHERE is_read = 0;
"#,
    // Simulator resets: a reset clears every log up to its head and records that here, so a
    // cursor from before it continues after it; `sim_state.resets` counts resets for servers
    // that must end their streams.
    r#"
ALTER TABLE accounts ADD COLUMN reset_through INTEGER NOT NULL DEFAULT 0;
CREATE TABLE sim_state (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    resets INTEGER NOT NULL
);
INSERT INTO sim_state (id, resets) VALUES (1, 0);
"#,
    // The controllable clock of deterministic runs (`serve --seed`): its time (NULL: none,
    // the system's time is used), its seed and how many identifiers it has drawn.
    r#"
ALTER TABLE sim_state ADD COLUMN clock_now INTEGER;
ALTER TABLE sim_state ADD COLUMN clock_seed INTEGER;
ALTER TABLE sim_state ADD COLUMN clock_ids INTEGER NOT NULL DEFAULT 0;
"#,
    // A message's content once, not once per member (BENCHMARKS.md, "Messages, stored
    // once"): `message_bodies` holds each message's GUID and its content as delivered, in
    // the compact encoding of `imgroups_core::port::content`; each member's copy is a thin
    // row referring to it, with what is its own (chat, `is_from_me`, read state) and, once
    // the copy was changed (edited, unsent, a tapback), its current content in `state`
    // (NULL: as delivered). The `message.received` events that deliver such a message
    // (kind 12) refer to the body instead of holding the message's JSON.
    //
    // Copies written before keep their JSON as a TEXT `state` (the whole message), under a
    // body with no content (an empty blob), and their kind-10 events keep theirs: both are
    // still read. The table is rebuilt (SQLite cannot drop the old `guid` and `body` columns
    // in place) under its old name, with its old index names.
    r#"
CREATE TABLE message_bodies (
    id   INTEGER PRIMARY KEY,
    guid TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL
);
INSERT INTO message_bodies (guid, body)
    SELECT guid, X'' FROM chat_messages GROUP BY guid ORDER BY min(place);
CREATE TABLE message_copies (
    account_id INTEGER NOT NULL,
    place      INTEGER NOT NULL,
    body_id    INTEGER NOT NULL,
    chat_guid  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    is_from_me INTEGER NOT NULL,
    is_read    INTEGER NOT NULL,
    date_read  INTEGER,
    state      BLOB,
    PRIMARY KEY (account_id, place)
) WITHOUT ROWID;
INSERT INTO message_copies
        (account_id, place, body_id, chat_guid, created_at, is_from_me, is_read, date_read, state)
    SELECT c.account_id, c.place, b.id, c.chat_guid, c.created_at, c.is_from_me, c.is_read,
           json_extract(c.body, '$.date_read'), c.body
    FROM chat_messages c JOIN message_bodies b ON b.guid = c.guid;
DROP TABLE chat_messages;
ALTER TABLE message_copies RENAME TO chat_messages;
CREATE UNIQUE INDEX chat_messages_by_body ON chat_messages(account_id, body_id);
CREATE INDEX chat_messages_by_chat ON chat_messages(account_id, chat_guid, place);
CREATE INDEX chat_messages_unread_by_chat ON chat_messages(account_id, chat_guid, place)
    WHERE is_read = 0;
CREATE INDEX chat_messages_unread ON chat_messages(account_id, place) WHERE is_read = 0;
"#,
    // A message GUID's uniqueness as an index of its own (`message_bodies_by_guid`, see
    // `GUID_INDEX`) rather than the column's `UNIQUE` (whose index SQLite never drops): a
    // first start's import drops it while it records a history and builds it once at the
    // end (BENCHMARKS.md, "The Mac's first start on random GUIDs, the GUID index built once").
    // The table is rebuilt keeping every id (copies and delivery events refer to them).
    r#"
CREATE TABLE message_bodies_keyed (
    id   INTEGER PRIMARY KEY,
    guid TEXT NOT NULL,
    body BLOB NOT NULL
);
INSERT INTO message_bodies_keyed (id, guid, body) SELECT id, guid, body FROM message_bodies;
DROP TABLE message_bodies;
ALTER TABLE message_bodies_keyed RENAME TO message_bodies;
CREATE UNIQUE INDEX message_bodies_by_guid ON message_bodies(guid);
"#,
];

/// The unique index of message GUIDs: one body per message. A first start's import drops it
/// in its first transaction, the writer then finding bodies by GUID in memory
/// (`tx::ImportBodies`), and builds it in its last; the writer builds it at every open too,
/// for an import that never ended (a crash midway), and whenever an import's bodies in memory
/// stop being the truth (`WriterCache::end_import_bodies`). Building it cannot fail unless a
/// GUID was stored twice, which would be a bug. As in the migrations.
pub(crate) const GUID_INDEX: &str =
    "CREATE UNIQUE INDEX IF NOT EXISTS message_bodies_by_guid ON message_bodies(guid)";

/// Drops [`GUID_INDEX`].
pub(crate) const DROP_GUID_INDEX: &str = "DROP INDEX IF EXISTS message_bodies_by_guid";

/// The indexes of `chat_messages` that only listings read (by chat, unread): a first start's
/// import drops them in its first transaction and builds them in its last
/// ([`imgroups_core::port::Tx::begin_bulk_import`]); maintained one row at a time they cost a
/// million-message import about a third of its CPU (BENCHMARKS.md). Built at every open of
/// the writer too, for an import that never ended (a crash midway). As in the migrations.
pub(crate) const LISTING_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS chat_messages_by_chat ON chat_messages(account_id, chat_guid, place);
CREATE INDEX IF NOT EXISTS chat_messages_unread_by_chat ON chat_messages(account_id, chat_guid, place)
    WHERE is_read = 0;
CREATE INDEX IF NOT EXISTS chat_messages_unread ON chat_messages(account_id, place) WHERE is_read = 0;
";

/// Drops [`LISTING_INDEXES`].
pub(crate) const DROP_LISTING_INDEXES: &str = "
DROP INDEX IF EXISTS chat_messages_by_chat;
DROP INDEX IF EXISTS chat_messages_unread_by_chat;
DROP INDEX IF EXISTS chat_messages_unread;
";

/// The schema version a database written before message bodies were kept once has (its
/// copies hold JSON): what the legacy tests build.
#[cfg(test)]
pub(crate) const BEFORE_BODIES: usize = MIGRATIONS.len() - 2;

pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    migrate_to(conn, MIGRATIONS.len())
}

/// Applies the migrations up to schema version `target`.
pub(crate) fn migrate_to(conn: &mut Connection, target: usize) -> rusqlite::Result<()> {
    // Up to date (every connection but the first on a new version): done, without taking the
    // write lock, which the server's writer may hold for as long as it is busy.
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version as usize >= target {
        return Ok(());
    }
    // The version is read again inside the write lock, so a CLI command and a server starting
    // on the same new data directory cannot both apply a migration.
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let Some(sql) = MIGRATIONS[..target].get(version as usize) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use imgroups_core::engine::messages::query::Listing;
    use imgroups_core::port::tx::stored;
    use imgroups_core::port::{Accounts, Log, Store};
    use imgroups_core::{
        Address, Change, ChatGuid, Command, Engine, EngineConfig, Message, NewMessage, Timestamp,
    };
    use rusqlite::params;

    use super::*;

    /// The listing indexes and the GUID index a bulk import drops and builds again are the
    /// migrations' own, word for word: a later migration that changed one and forgot
    /// `LISTING_INDEXES` or `GUID_INDEX` would have a first start bring the old one back (and
    /// `INDEXED BY` queries depend on their names).
    #[test]
    fn listing_indexes_rebuilt_are_the_migrations_own() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let indexes = |conn: &Connection| -> Vec<(String, String)> {
            let mut statement = conn
                .prepare(
                    "SELECT name, sql FROM sqlite_master
                     WHERE type = 'index' AND tbl_name IN ('chat_messages', 'message_bodies')
                         AND sql IS NOT NULL
                     ORDER BY name",
                )
                .unwrap();
            let rows = statement
                .query_map([], |r| Ok((r.get(0)?, r.get::<_, String>(1)?)))
                .unwrap();
            // Compared as statements: `IF NOT EXISTS` and the layout are not part of the index.
            rows.map(|row| {
                let (name, sql) = row.unwrap();
                let sql = sql.replace("IF NOT EXISTS ", "");
                (name, sql.split_whitespace().collect::<Vec<_>>().join(" "))
            })
            .collect()
        };
        let migrated = indexes(&conn);
        conn.execute_batch(DROP_LISTING_INDEXES).unwrap();
        conn.execute_batch(DROP_GUID_INDEX).unwrap();
        let dropped = indexes(&conn);
        assert_eq!(
            migrated.len(),
            dropped.len() + 4,
            "three listing indexes and the GUID index dropped: {dropped:?}"
        );
        conn.execute_batch(LISTING_INDEXES).unwrap();
        conn.execute_batch(GUID_INDEX).unwrap();
        assert_eq!(indexes(&conn), migrated);
    }

    /// A database the version before shared bodies wrote — each copy's JSON in its row and in
    /// the `message.received` that delivered it — opens, reads back the same (copies, listings,
    /// the log, a snapshot), and keeps working: a read, an edit and a new message on top.
    #[test]
    fn messages_written_before_shared_bodies_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imgroups.db");
        let chat = ChatGuid::parse("any;+;chat000000000000000001").unwrap();
        let (me, bob) = (
            Address::parse("me@x.com").unwrap(),
            Address::parse("bob@x.com").unwrap(),
        );
        let mine = Message {
            guid: "0A0A0A0A-0000-4000-8000-000000000001".into(),
            text: "written long ago".into(),
            date_created: Timestamp::now(),
            is_from_me: true,
            is_sent: true,
            chat_guid: Some(chat.clone()),
            ..Message::default()
        };
        let bobs = Message {
            is_from_me: false,
            sender: Some(me.clone()),
            ..mine.clone()
        };
        {
            let mut conn = Connection::open(&path).unwrap();
            migrate_to(&mut conn, BEFORE_BODIES).unwrap();
            conn.execute_batch(
                "INSERT INTO accounts (id, address, head_seq, created_at) VALUES
                     (1, 'me@x.com', 1, 0), (2, 'bob@x.com', 1, 0);
                 INSERT INTO groups (id, identifier, group_id, created_at) VALUES
                     (1, 'chat000000000000000001', '0B0B0B0B-0000-4000-8000-000000000000', 0);
                 INSERT INTO members (group_key, address) VALUES
                     (1, 'me@x.com'), (1, 'bob@x.com'), (1, 'p@x.com');",
            )
            .unwrap();
            for (account, copy) in [(1, &mine), (2, &bobs)] {
                conn.execute(
                    "INSERT INTO chat_messages
                         (account_id, place, guid, chat_guid, created_at, is_from_me, is_read, body)
                     VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        account,
                        copy.guid,
                        chat.to_string(),
                        copy.date_created.0,
                        copy.is_from_me,
                        copy.is_read(),
                        stored::encode_message(copy)
                    ],
                )
                .unwrap();
                let change = Change::MessageReceived {
                    message: Box::new(copy.clone()),
                };
                let (kind, value) = stored::encode(&change);
                conn.execute(
                    "INSERT INTO events (account_id, seq, chat_guid, occurred_at, is_from_me,
                                         actor, kind, value)
                     VALUES (?1, 1, ?2, ?3, ?4, 'me@x.com', ?5, ?6)",
                    params![
                        account,
                        chat.to_string(),
                        copy.date_created.0,
                        copy.is_from_me,
                        kind,
                        value.as_deref()
                    ],
                )
                .unwrap();
            }
        }

        let store = crate::SqliteStore::open(crate::Config::new(&path)).unwrap();
        let engine = Engine::new(
            Arc::new(store.clone()),
            imgroups_sim::Simulator::network(),
            EngineConfig::default(),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let me = store.find_account(&me).await.unwrap().unwrap();
            let bob = store.find_account(&bob).await.unwrap().unwrap();
            let get = |who, guid: &str| engine.get_message(who, guid.to_owned());
            let group = Some(chat.to_string());
            assert_eq!(get(me, &mine.guid).await.unwrap(), mine);
            assert_eq!(get(bob, &mine.guid).await.unwrap(), bobs);
            let (page, _) = engine
                .list_messages(bob, group.clone(), Listing::default())
                .await
                .unwrap();
            assert_eq!(page, std::slice::from_ref(&bobs));
            let delivered = store.read_events(bob, 0, 1, 10).await.unwrap();
            assert_eq!(
                delivered[0].change,
                Change::MessageReceived {
                    message: Box::new(bobs.clone())
                }
            );
            let world = store.export().await.unwrap();
            assert_eq!(world.accounts[1].messages[0].message, bobs);

            // It keeps working: bob reads it, I edit it, and say something new.
            engine
                .execute(bob, None, Command::mark_read(&chat.to_string()).unwrap())
                .await
                .unwrap();
            engine
                .execute(
                    me,
                    None,
                    Command::edit(&chat.to_string(), &mine.guid, "edited").unwrap(),
                )
                .await
                .unwrap();
            let now = get(bob, &mine.guid).await.unwrap();
            assert!(now.date_read.is_some());
            assert_eq!((now.text.as_str(), now.edits), ("edited", 1));
            assert_eq!(get(me, &mine.guid).await.unwrap().text, "edited");
            let new = NewMessage::new("new", None, None, None, Vec::new()).unwrap();
            engine
                .execute(
                    me,
                    None,
                    Command::send_text(&chat.to_string(), new).unwrap(),
                )
                .await
                .unwrap();
            let (page, _) = engine
                .list_messages(bob, group, Listing::default())
                .await
                .unwrap();
            let texts: Vec<&str> = page.iter().map(|m| m.text.as_str()).collect();
            assert_eq!(texts, ["new", "edited"]);
            // The log still shows the old message as it was delivered.
            let log = store.read_events(bob, 0, 10, 10).await.unwrap();
            assert_eq!(log[0].change, delivered[0].change);
            store.close().await;
        });
    }
}
