//! Snapshots of the simulated world (`imgroups_core::snapshot`) in SQL: an export reads every
//! table of the world in one read transaction; an import is a reset with accounts followed by
//! the snapshot's rows, in the writer's transaction (`SqliteStore::import`).

use std::collections::HashMap;

use imgroups_core::port::content;
use imgroups_core::port::tx::stored;
use imgroups_core::snapshot::{
    AccountState, BackgroundState, DirectChatState, EventState, FaultState, GroupState, ImageState,
    MessageState, Snapshot, TokenState, WebhookState,
};
use imgroups_core::{Change, ChatGuid, Error, Message, Result, Timestamp};
use rusqlite::{params, Connection, OptionalExtension};

use crate::tx::SqlResult;

/// The world as `conn` sees it in one transaction.
pub(crate) fn export(conn: &Connection) -> Result<Snapshot> {
    // A deferred transaction: every SELECT below reads the same snapshot of the database.
    conn.execute_batch("BEGIN").db()?;
    let snapshot = read_world(conn);
    conn.execute_batch("COMMIT").db()?;
    snapshot
}

fn read_world(conn: &Connection) -> Result<Snapshot> {
    let mut world = Snapshot::empty();
    world.clock = crate::clock::get(conn)?.map(Into::into);

    let mut index = HashMap::new();
    let mut accounts = conn
        .prepare(
            "SELECT id, address, created_at, head_seq, pruned_through, reset_through
             FROM accounts ORDER BY id",
        )
        .db()?;
    let rows = accounts
        .query_map([], |r| {
            Ok(AccountState {
                id: r.get(0)?,
                address: r.get(1)?,
                created_at: Timestamp(r.get(2)?),
                head_seq: r.get::<_, i64>(3)? as u64,
                pruned_through: r.get::<_, i64>(4)? as u64,
                reset_through: r.get::<_, i64>(5)? as u64,
                tokens: Vec::new(),
                direct_chats: Vec::new(),
                messages: Vec::new(),
                events: Vec::new(),
                webhooks: Vec::new(),
                faults: Vec::new(),
            })
        })
        .db()?;
    for account in rows {
        let account = account.db()?;
        index.insert(account.id, world.accounts.len());
        world.accounts.push(account);
    }
    // Rows of an account the snapshot does not have cannot exist (foreign keys), but the
    // log and messages have none: such rows are left out rather than failing the export.
    let owner = |id: i64| index.get(&id).copied();

    let mut tokens = conn
        .prepare(
            "SELECT account_id, id, hash, label, created_at, revoked_at FROM tokens ORDER BY id",
        )
        .db()?;
    let mut rows = tokens.query([]).db()?;
    while let Some(r) = rows.next().db()? {
        if let Some(i) = owner(r.get(0).db()?) {
            world.accounts[i].tokens.push(TokenState {
                id: r.get(1).db()?,
                hash: r.get(2).db()?,
                label: r.get(3).db()?,
                created_at: Timestamp(r.get(4).db()?),
                revoked_at: r.get::<_, Option<i64>>(5).db()?.map(Timestamp),
            });
        }
    }

    let mut chats = conn
        .prepare(
            "SELECT account_id, address, created_at FROM direct_chats
             ORDER BY account_id, address",
        )
        .db()?;
    let mut rows = chats.query([]).db()?;
    while let Some(r) = rows.next().db()? {
        if let Some(i) = owner(r.get(0).db()?) {
            world.accounts[i].direct_chats.push(DirectChatState {
                address: r.get(1).db()?,
                created_at: Timestamp(r.get(2).db()?),
            });
        }
    }

    let mut messages = conn
        .prepare(
            "SELECT c.account_id, c.place, b.guid, c.chat_guid, c.created_at, c.is_from_me,
                    c.is_read, c.date_read, c.state, b.body
             FROM chat_messages c JOIN message_bodies b ON b.id = c.body_id
             ORDER BY c.account_id, c.place",
        )
        .db()?;
    let mut rows = messages.query([]).db()?;
    while let Some(r) = rows.next().db()? {
        if let Some(i) = owner(r.get(0).db()?) {
            let guid: String = r.get(2).db()?;
            let chat_guid: String = r.get(3).db()?;
            let is_from_me = r.get(5).db()?;
            let message = crate::tx::compose(
                guid.clone(),
                r.get_ref(9).and_then(|v| Ok(v.as_blob()?)).db()?,
                &chat_guid,
                is_from_me,
                r.get(7).db()?,
                r.get_ref(8).db()?,
            )
            .map_err(|_| unreadable("message", &guid))?;
            world.accounts[i].messages.push(MessageState {
                place: r.get(1).db()?,
                guid,
                chat_guid,
                created_at: Timestamp(r.get(4).db()?),
                is_from_me,
                is_read: r.get(6).db()?,
                message,
            });
        }
    }

    let mut events = conn
        .prepare(
            "SELECT account_id, seq, chat_guid, occurred_at, is_from_me, actor, kind, value
             FROM events ORDER BY account_id, seq",
        )
        .db()?;
    let mut rows = events.query([]).db()?;
    while let Some(r) = rows.next().db()? {
        if let Some(i) = owner(r.get(0).db()?) {
            let seq = r.get::<_, i64>(1).db()? as u64;
            let chat_guid: String = r.get(2).db()?;
            let is_from_me = r.get(4).db()?;
            let change = ChatGuid::parse(&chat_guid)
                .ok()
                .and_then(|chat| {
                    crate::tx::decode_change(
                        conn,
                        r.get(6).ok()?,
                        r.get(7).ok()?,
                        &chat,
                        is_from_me,
                    )
                    .ok()
                })
                .ok_or_else(|| unreadable("event", &seq.to_string()))?;
            world.accounts[i].events.push(EventState {
                seq,
                chat_guid,
                occurred_at: Timestamp(r.get(3).db()?),
                is_from_me,
                actor: r.get(5).db()?,
                change,
            });
        }
    }

    let mut hooks = conn
        .prepare(
            "SELECT account_id, id, url, secret, cursor, failures, paused, last_error, created_at
             FROM webhooks ORDER BY id",
        )
        .db()?;
    let mut rows = hooks.query([]).db()?;
    while let Some(r) = rows.next().db()? {
        if let Some(i) = owner(r.get(0).db()?) {
            world.accounts[i].webhooks.push(WebhookState {
                id: r.get(1).db()?,
                url: r.get(2).db()?,
                secret: r.get(3).db()?,
                cursor: r.get::<_, i64>(4).db()? as u64,
                failures: r.get::<_, i64>(5).db()? as u32,
                paused: r.get(6).db()?,
                last_error: r.get(7).db()?,
                created_at: Timestamp(r.get(8).db()?),
            });
        }
    }

    let mut faults = conn
        .prepare(
            "SELECT account_id, id, method, error_code, retryable, latency_ms, remaining, until,
                    created_at
             FROM faults ORDER BY id",
        )
        .db()?;
    let mut rows = faults.query([]).db()?;
    while let Some(r) = rows.next().db()? {
        if let Some(i) = owner(r.get(0).db()?) {
            world.accounts[i].faults.push(FaultState {
                id: r.get(1).db()?,
                method: r.get(2).db()?,
                error_code: r.get(3).db()?,
                retryable: r.get(4).db()?,
                latency_ms: r.get(5).db()?,
                remaining: r.get(6).db()?,
                until: r.get::<_, Option<i64>>(7).db()?.map(Timestamp),
                created_at: Timestamp(r.get(8).db()?),
            });
        }
    }

    let mut unreachable = conn
        .prepare("SELECT address FROM unreachable ORDER BY address")
        .db()?;
    world.unreachable = unreachable
        .query_map([], |r| r.get(0))
        .and_then(Iterator::collect)
        .db()?;

    let mut members = conn
        .prepare("SELECT group_key, address FROM members ORDER BY id")
        .db()?;
    let mut by_group: HashMap<i64, Vec<String>> = HashMap::new();
    let mut rows = members.query([]).db()?;
    while let Some(r) = rows.next().db()? {
        by_group
            .entry(r.get(0).db()?)
            .or_default()
            .push(r.get(1).db()?);
    }
    let mut groups = conn
        .prepare(
            "SELECT g.id, g.identifier, g.group_id, g.display_name, g.icon_hash, g.created_at,
                    i.mime, i.data
             FROM groups g LEFT JOIN icons i ON i.group_key = g.id ORDER BY g.id",
        )
        .db()?;
    let mut rows = groups.query([]).db()?;
    while let Some(r) = rows.next().db()? {
        let key: i64 = r.get(0).db()?;
        let icon = match r.get::<_, Option<String>>(6).db()? {
            Some(mime) => Some(ImageState {
                mime,
                data: r.get(7).db()?,
            }),
            None => None,
        };
        world.groups.push(GroupState {
            identifier: r.get(1).db()?,
            group_id: r.get(2).db()?,
            display_name: r.get(3).db()?,
            icon_hash: r.get(4).db()?,
            created_at: Timestamp(r.get(5).db()?),
            members: by_group.remove(&key).unwrap_or_default(),
            icon,
        });
    }

    let mut backgrounds = conn
        .prepare("SELECT chat_key, hash, mime, data FROM chat_backgrounds ORDER BY chat_key")
        .db()?;
    let mut rows = backgrounds.query([]).db()?;
    while let Some(r) = rows.next().db()? {
        world.backgrounds.push(BackgroundState {
            chat_key: r.get(0).db()?,
            hash: r.get(1).db()?,
            image: ImageState {
                mime: r.get(2).db()?,
                data: r.get(3).db()?,
            },
        });
    }
    Ok(world)
}

/// The value of `event` stored as a delivery that refers to its message's body
/// ([`stored::MESSAGE_DELIVERED`]), if it is a `message.received` whose message reads back
/// exactly from the body kept (the account's own copy was imported before); `None`: the
/// event keeps its message whole.
fn delivered(conn: &Connection, event: &EventState) -> Result<Option<String>> {
    let Change::MessageReceived { message } = &event.change else {
        return Ok(None);
    };
    let Ok(chat) = ChatGuid::parse(&event.chat_guid) else {
        return Ok(None);
    };
    let found: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT id, body FROM message_bodies WHERE guid = ?1")
        .and_then(|mut s| {
            s.query_row([&message.guid], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .db()?;
    let Some((body_id, body)) = found else {
        return Ok(None);
    };
    let as_delivered = content::decode(&body).map(|c| {
        content::copy(
            c,
            message.guid.clone(),
            Some(chat),
            event.is_from_me,
            message.date_read,
        )
    });
    Ok((as_delivered.as_ref() == Some(message.as_ref()))
        .then(|| crate::tx::delivery_value(body_id, message.date_read)))
}

fn unreadable(what: &str, id: &str) -> Error {
    Error::internal().with(
        "detail",
        format!("{what} {id} is stored in a form this imgroups does not read (a newer version?)"),
    )
}

/// Replaces the world with `world`, on the writer's connection inside its transaction (with
/// foreign-key checks off, as for a reset: rows go in parents first anyway).
pub(crate) fn import(conn: &Connection, world: &Snapshot) -> Result<()> {
    crate::admin::reset(conn, true)?;
    crate::clock::put(conn, world.clock.map(Into::into))?;
    let mut account = conn
        .prepare(
            "INSERT INTO accounts (id, address, created_at, head_seq, pruned_through, reset_through)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .db()?;
    let mut token = conn
        .prepare(
            "INSERT INTO tokens (id, account_id, hash, label, created_at, revoked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .db()?;
    let mut direct = conn
        .prepare("INSERT INTO direct_chats (account_id, address, created_at) VALUES (?1, ?2, ?3)")
        .db()?;
    let mut event = conn
        .prepare(
            "INSERT INTO events
                 (account_id, seq, chat_guid, occurred_at, is_from_me, actor, kind, value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .db()?;
    let mut hook = conn
        .prepare(
            "INSERT INTO webhooks
                 (id, account_id, url, secret, cursor, failures, paused, last_error, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .db()?;
    let mut fault = conn
        .prepare(
            "INSERT INTO faults (id, account_id, method, error_code, retryable, latency_ms,
                                 remaining, until, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .db()?;
    for a in &world.accounts {
        account
            .execute(params![
                a.id,
                a.address,
                a.created_at.0,
                a.head_seq as i64,
                a.pruned_through as i64,
                a.reset_through as i64
            ])
            .db()?;
        for t in &a.tokens {
            token
                .execute(params![
                    t.id,
                    a.id,
                    t.hash,
                    t.label,
                    t.created_at.0,
                    t.revoked_at.map(|at| at.0)
                ])
                .db()?;
        }
        for c in &a.direct_chats {
            direct
                .execute(params![a.id, c.address, c.created_at.0])
                .db()?;
        }
        for m in &a.messages {
            // The row's GUID is the one kept, as the message's was beside it before.
            let message = Message {
                guid: m.guid.clone(),
                ..m.message.clone()
            };
            crate::tx::put_copy(
                conn,
                None,
                a.id,
                m.place,
                &m.chat_guid,
                m.created_at.0,
                m.is_from_me,
                m.is_read,
                &message,
            )
            .db()?;
        }
        for e in &a.events {
            let (kind, value) = match delivered(conn, e)? {
                Some(value) => (stored::MESSAGE_DELIVERED, Some(value.into())),
                None => stored::encode(&e.change),
            };
            event
                .execute(params![
                    a.id,
                    e.seq as i64,
                    e.chat_guid,
                    e.occurred_at.0,
                    e.is_from_me,
                    e.actor,
                    kind,
                    value.as_deref()
                ])
                .db()?;
        }
        for w in &a.webhooks {
            hook.execute(params![
                w.id,
                a.id,
                w.url,
                w.secret,
                w.cursor as i64,
                i64::from(w.failures),
                w.paused,
                w.last_error,
                w.created_at.0
            ])
            .db()?;
        }
        for f in &a.faults {
            fault
                .execute(params![
                    f.id,
                    a.id,
                    f.method,
                    f.error_code,
                    f.retryable,
                    f.latency_ms,
                    f.remaining,
                    f.until.map(|at| at.0),
                    f.created_at.0
                ])
                .db()?;
        }
    }
    let mut unreachable = conn
        .prepare("INSERT INTO unreachable (address) VALUES (?1)")
        .db()?;
    for address in &world.unreachable {
        unreachable.execute([address]).db()?;
    }
    let mut group = conn
        .prepare(
            "INSERT INTO groups (identifier, group_id, display_name, icon_hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .db()?;
    let mut member = conn
        .prepare("INSERT INTO members (group_key, address) VALUES (?1, ?2)")
        .db()?;
    let mut icon = conn
        .prepare("INSERT INTO icons (group_key, data, mime) VALUES (?1, ?2, ?3)")
        .db()?;
    for g in &world.groups {
        group
            .execute(params![
                g.identifier,
                g.group_id,
                g.display_name,
                g.icon_hash,
                g.created_at.0
            ])
            .db()?;
        let key = conn.last_insert_rowid();
        for address in &g.members {
            member.execute(params![key, address]).db()?;
        }
        if let Some(image) = &g.icon {
            icon.execute(params![key, image.data, image.mime]).db()?;
        }
    }
    let mut background = conn
        .prepare(
            "INSERT INTO chat_backgrounds (chat_key, data, mime, hash) VALUES (?1, ?2, ?3, ?4)",
        )
        .db()?;
    for b in &world.backgrounds {
        background
            .execute(params![b.chat_key, b.image.data, b.image.mime, b.hash])
            .db()?;
    }
    Ok(())
}
