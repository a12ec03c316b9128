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
];

pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    // Up to date (every connection but the first on a new version): done, without taking the
    // write lock, which the server's writer may hold for as long as it is busy.
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version as usize >= MIGRATIONS.len() {
        return Ok(());
    }
    // The version is read again inside the write lock, so a CLI command and a server starting
    // on the same new data directory cannot both apply a migration.
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let Some(sql) = MIGRATIONS.get(version as usize) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
}
