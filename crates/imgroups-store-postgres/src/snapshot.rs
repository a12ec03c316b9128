//! Snapshots of the simulated world (`imgroups_core::snapshot`) in SQL: an export reads every
//! table of the world in one repeatable-read transaction; an import is a reset with accounts
//! followed by the snapshot's rows, under the write lock, one `INSERT … SELECT FROM unnest`
//! per table (a round trip per table, not per row).

use std::borrow::Cow;
use std::collections::HashMap;

use deadpool_postgres::Client;
use imgroups_core::port::tx::stored;
use imgroups_core::snapshot::{
    AccountState, BackgroundState, DirectChatState, EventState, FaultState, GroupState, ImageState,
    MessageState, Snapshot, TokenState, WebhookState,
};
use imgroups_core::{Error, Result, Timestamp};
use tokio_postgres::types::ToSql;
use tokio_postgres::IsolationLevel;

use crate::sql::PgResult;

/// The world in one consistent view.
pub(crate) async fn export(client: &mut Client) -> Result<Snapshot> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .db()?;
    let mut world = Snapshot::empty();
    let clock = tx
        .query_one(
            "SELECT sim_now, sim_seed, sim_ids FROM writer_state WHERE id = 1",
            &[],
        )
        .await
        .db()?;
    world.clock = clock
        .get::<_, Option<i64>>(0)
        .map(|now| imgroups_core::snapshot::ClockState {
            now: Timestamp(now),
            seed: clock.get::<_, Option<i64>>(1).unwrap_or(0) as u64,
            ids: clock.get::<_, i64>(2).max(0) as u64,
        });

    let mut index = HashMap::new();
    for r in tx
        .query(
            "SELECT id, address, created_at, head_seq, pruned_through, reset_through
             FROM accounts ORDER BY id",
            &[],
        )
        .await
        .db()?
    {
        index.insert(r.get::<_, i64>(0), world.accounts.len());
        world.accounts.push(AccountState {
            id: r.get(0),
            address: r.get(1),
            created_at: Timestamp(r.get(2)),
            head_seq: r.get::<_, i64>(3) as u64,
            pruned_through: r.get::<_, i64>(4) as u64,
            reset_through: r.get::<_, i64>(5) as u64,
            tokens: Vec::new(),
            direct_chats: Vec::new(),
            messages: Vec::new(),
            events: Vec::new(),
            webhooks: Vec::new(),
            faults: Vec::new(),
        });
    }
    // The log and messages have no foreign key to accounts: rows of an account that is not
    // there are left out rather than failing the export.
    let owner = |id: i64| index.get(&id).copied();

    for r in tx
        .query(
            "SELECT account_id, id, hash, label, created_at, revoked_at FROM tokens ORDER BY id",
            &[],
        )
        .await
        .db()?
    {
        if let Some(i) = owner(r.get(0)) {
            world.accounts[i].tokens.push(TokenState {
                id: r.get(1),
                hash: r.get(2),
                label: r.get(3),
                created_at: Timestamp(r.get(4)),
                revoked_at: r.get::<_, Option<i64>>(5).map(Timestamp),
            });
        }
    }
    for r in tx
        .query(
            "SELECT account_id, address, created_at FROM direct_chats
             ORDER BY account_id, address COLLATE \"C\"",
            &[],
        )
        .await
        .db()?
    {
        if let Some(i) = owner(r.get(0)) {
            world.accounts[i].direct_chats.push(DirectChatState {
                address: r.get(1),
                created_at: Timestamp(r.get(2)),
            });
        }
    }
    for r in tx
        .query(
            "SELECT account_id, place, guid, chat_guid, created_at, is_from_me, is_read, body
             FROM chat_messages ORDER BY account_id, place",
            &[],
        )
        .await
        .db()?
    {
        if let Some(i) = owner(r.get(0)) {
            let guid: String = r.get(2);
            let message =
                stored::decode_message(r.get(7)).ok_or_else(|| unreadable("message", &guid))?;
            world.accounts[i].messages.push(MessageState {
                place: r.get(1),
                guid,
                chat_guid: r.get(3),
                created_at: Timestamp(r.get(4)),
                is_from_me: r.get(5),
                is_read: r.get(6),
                message,
            });
        }
    }
    for r in tx
        .query(
            "SELECT account_id, seq, chat_guid, occurred_at, is_from_me, actor, kind, value
             FROM events ORDER BY account_id, seq",
            &[],
        )
        .await
        .db()?
    {
        if let Some(i) = owner(r.get(0)) {
            let seq = r.get::<_, i64>(1) as u64;
            let change = stored::decode(r.get(6), r.get::<_, Option<String>>(7).map(Cow::Owned))
                .ok_or_else(|| unreadable("event", &seq.to_string()))?;
            world.accounts[i].events.push(EventState {
                seq,
                chat_guid: r.get(2),
                occurred_at: Timestamp(r.get(3)),
                is_from_me: r.get(4),
                actor: r.get(5),
                change,
            });
        }
    }
    for r in tx
        .query(
            "SELECT account_id, id, url, secret, cursor, failures, paused, last_error, created_at
             FROM webhooks ORDER BY id",
            &[],
        )
        .await
        .db()?
    {
        if let Some(i) = owner(r.get(0)) {
            world.accounts[i].webhooks.push(WebhookState {
                id: r.get(1),
                url: r.get(2),
                secret: r.get(3),
                cursor: r.get::<_, i64>(4) as u64,
                failures: r.get::<_, i32>(5).max(0) as u32,
                paused: r.get(6),
                last_error: r.get(7),
                created_at: Timestamp(r.get(8)),
            });
        }
    }
    for r in tx
        .query(
            "SELECT account_id, id, method, error_code, retryable, latency_ms, remaining, until,
                    created_at
             FROM faults ORDER BY id",
            &[],
        )
        .await
        .db()?
    {
        if let Some(i) = owner(r.get(0)) {
            world.accounts[i].faults.push(FaultState {
                id: r.get(1),
                method: r.get(2),
                error_code: r.get(3),
                retryable: r.get(4),
                latency_ms: r.get(5),
                remaining: r.get(6),
                until: r.get::<_, Option<i64>>(7).map(Timestamp),
                created_at: Timestamp(r.get(8)),
            });
        }
    }
    // Text keys in byte order ("C"), as SQLite orders them: one world, one file, either store.
    world.unreachable = tx
        .query(
            "SELECT address FROM unreachable ORDER BY address COLLATE \"C\"",
            &[],
        )
        .await
        .db()?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut by_group: HashMap<i64, Vec<String>> = HashMap::new();
    for r in tx
        .query("SELECT group_key, address FROM members ORDER BY id", &[])
        .await
        .db()?
    {
        by_group.entry(r.get(0)).or_default().push(r.get(1));
    }
    for r in tx
        .query(
            "SELECT g.id, g.identifier, g.group_id, g.display_name, g.icon_hash, g.created_at,
                    i.mime, i.data
             FROM groups g LEFT JOIN icons i ON i.group_key = g.id ORDER BY g.id",
            &[],
        )
        .await
        .db()?
    {
        let icon = r.get::<_, Option<String>>(6).map(|mime| ImageState {
            mime,
            data: r.get(7),
        });
        world.groups.push(GroupState {
            identifier: r.get(1),
            group_id: r.get(2),
            display_name: r.get(3),
            icon_hash: r.get(4),
            created_at: Timestamp(r.get(5)),
            members: by_group.remove(&r.get::<_, i64>(0)).unwrap_or_default(),
            icon,
        });
    }
    for r in tx
        .query(
            "SELECT chat_key, hash, mime, data FROM chat_backgrounds
             ORDER BY chat_key COLLATE \"C\"",
            &[],
        )
        .await
        .db()?
    {
        world.backgrounds.push(BackgroundState {
            chat_key: r.get(0),
            hash: r.get(1),
            image: ImageState {
                mime: r.get(2),
                data: r.get(3),
            },
        });
    }
    tx.commit().await.db()?;
    Ok(world)
}

fn unreadable(what: &str, id: &str) -> Error {
    Error::internal().with(
        "detail",
        format!("{what} {id} is stored in a form this imgroups does not read (a newer version?)"),
    )
}

/// Replaces the world with `world` in one transaction under the write lock (see
/// `Store::import`); identity sequences continue after the imported ids.
pub(crate) async fn import(client: &mut Client, world: &Snapshot, node: &str) -> Result<()> {
    let tx = crate::admin::locked(client).await?;
    crate::admin::clear(&tx, true, node).await?;
    crate::admin::put_clock(&tx, world.clock.map(Into::into)).await?;
    // Commit times restart from the imported clock (or the system's): a fixture imported
    // again gives the same times. Writers see the epoch move and re-read this.
    tx.execute("UPDATE writer_state SET clock = 0 WHERE id = 1", &[])
        .await
        .db()?;

    let accounts = &world.accounts;
    let a = |f: fn(&AccountState) -> i64| accounts.iter().map(f).collect::<Vec<i64>>();
    insert(
        &tx,
        "INSERT INTO accounts (id, address, created_at, head_seq, pruned_through, reset_through)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                              $6::bigint[])",
        &[
            &a(|a| a.id),
            &accounts
                .iter()
                .map(|a| a.address.as_str())
                .collect::<Vec<_>>(),
            &a(|a| a.created_at.0),
            &a(|a| a.head_seq as i64),
            &a(|a| a.pruned_through as i64),
            &a(|a| a.reset_through as i64),
        ],
    )
    .await?;

    let tokens: Vec<(i64, &TokenState)> = accounts
        .iter()
        .flat_map(|a| a.tokens.iter().map(move |t| (a.id, t)))
        .collect();
    insert(
        &tx,
        "INSERT INTO tokens (id, account_id, hash, label, created_at, revoked_at)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::text[], $5::bigint[],
                              $6::bigint[])",
        &[
            &tokens.iter().map(|(_, t)| t.id).collect::<Vec<_>>(),
            &tokens.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            &tokens
                .iter()
                .map(|(_, t)| t.hash.as_slice())
                .collect::<Vec<_>>(),
            &tokens
                .iter()
                .map(|(_, t)| t.label.as_deref())
                .collect::<Vec<_>>(),
            &tokens
                .iter()
                .map(|(_, t)| t.created_at.0)
                .collect::<Vec<_>>(),
            &tokens
                .iter()
                .map(|(_, t)| t.revoked_at.map(|at| at.0))
                .collect::<Vec<_>>(),
        ],
    )
    .await?;

    let chats: Vec<(i64, &DirectChatState)> = accounts
        .iter()
        .flat_map(|a| a.direct_chats.iter().map(move |c| (a.id, c)))
        .collect();
    insert(
        &tx,
        "INSERT INTO direct_chats (account_id, address, created_at)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[])",
        &[
            &chats.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            &chats
                .iter()
                .map(|(_, c)| c.address.as_str())
                .collect::<Vec<_>>(),
            &chats
                .iter()
                .map(|(_, c)| c.created_at.0)
                .collect::<Vec<_>>(),
        ],
    )
    .await?;

    let messages: Vec<(i64, &MessageState)> = accounts
        .iter()
        .flat_map(|a| a.messages.iter().map(move |m| (a.id, m)))
        .collect();
    insert(
        &tx,
        "INSERT INTO chat_messages
             (account_id, place, guid, chat_guid, created_at, is_from_me, is_read, body)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[],
                              $6::boolean[], $7::boolean[], $8::text[])",
        &[
            &messages.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            &messages.iter().map(|(_, m)| m.place).collect::<Vec<_>>(),
            &messages
                .iter()
                .map(|(_, m)| m.guid.as_str())
                .collect::<Vec<_>>(),
            &messages
                .iter()
                .map(|(_, m)| m.chat_guid.as_str())
                .collect::<Vec<_>>(),
            &messages
                .iter()
                .map(|(_, m)| m.created_at.0)
                .collect::<Vec<_>>(),
            &messages
                .iter()
                .map(|(_, m)| m.is_from_me)
                .collect::<Vec<_>>(),
            &messages.iter().map(|(_, m)| m.is_read).collect::<Vec<_>>(),
            &messages
                .iter()
                .map(|(_, m)| stored::encode_message(&m.message))
                .collect::<Vec<_>>(),
        ],
    )
    .await?;

    // (account, event, its stored kind and value)
    let events: Vec<(i64, &EventState, Stored)> = accounts
        .iter()
        .flat_map(|a| {
            a.events.iter().map(move |e| {
                let (kind, value) = stored::encode(&e.change);
                (a.id, e, (kind, value.map(|v| v.into_owned())))
            })
        })
        .collect();
    insert(
        &tx,
        "INSERT INTO events (account_id, seq, chat_guid, occurred_at, is_from_me, actor, kind, value)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::boolean[],
                              $6::text[], $7::bigint[], $8::text[])",
        &[
            &events.iter().map(|(a, _, _)| *a).collect::<Vec<_>>(),
            &events.iter().map(|(_, e, _)| e.seq as i64).collect::<Vec<_>>(),
            &events.iter().map(|(_, e, _)| e.chat_guid.as_str()).collect::<Vec<_>>(),
            &events.iter().map(|(_, e, _)| e.occurred_at.0).collect::<Vec<_>>(),
            &events.iter().map(|(_, e, _)| e.is_from_me).collect::<Vec<_>>(),
            &events.iter().map(|(_, e, _)| e.actor.as_deref()).collect::<Vec<_>>(),
            &events.iter().map(|(_, _, (k, _))| *k).collect::<Vec<_>>(),
            &events
                .iter()
                .map(|(_, _, (_, v))| v.as_deref())
                .collect::<Vec<_>>(),
        ],
    )
    .await?;

    let hooks: Vec<(i64, &WebhookState)> = accounts
        .iter()
        .flat_map(|a| a.webhooks.iter().map(move |w| (a.id, w)))
        .collect();
    insert(
        &tx,
        "INSERT INTO webhooks
             (id, account_id, url, secret, cursor, failures, paused, last_error, created_at)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[],
                              $6::integer[], $7::boolean[], $8::text[], $9::bigint[])",
        &[
            &hooks.iter().map(|(_, w)| w.id).collect::<Vec<_>>(),
            &hooks.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            &hooks
                .iter()
                .map(|(_, w)| w.url.as_str())
                .collect::<Vec<_>>(),
            &hooks
                .iter()
                .map(|(_, w)| w.secret.as_str())
                .collect::<Vec<_>>(),
            &hooks
                .iter()
                .map(|(_, w)| w.cursor as i64)
                .collect::<Vec<_>>(),
            &hooks
                .iter()
                .map(|(_, w)| w.failures.min(i32::MAX as u32) as i32)
                .collect::<Vec<_>>(),
            &hooks.iter().map(|(_, w)| w.paused).collect::<Vec<_>>(),
            &hooks
                .iter()
                .map(|(_, w)| w.last_error.as_deref())
                .collect::<Vec<_>>(),
            &hooks
                .iter()
                .map(|(_, w)| w.created_at.0)
                .collect::<Vec<_>>(),
        ],
    )
    .await?;

    let faults: Vec<(i64, &FaultState)> = accounts
        .iter()
        .flat_map(|a| a.faults.iter().map(move |f| (a.id, f)))
        .collect();
    insert(
        &tx,
        "INSERT INTO faults (id, account_id, method, error_code, retryable, latency_ms,
                             remaining, until, created_at)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::boolean[],
                              $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])",
        &[
            &faults.iter().map(|(_, f)| f.id).collect::<Vec<_>>(),
            &faults.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            &faults
                .iter()
                .map(|(_, f)| f.method.as_str())
                .collect::<Vec<_>>(),
            &faults
                .iter()
                .map(|(_, f)| f.error_code.as_deref())
                .collect::<Vec<_>>(),
            &faults.iter().map(|(_, f)| f.retryable).collect::<Vec<_>>(),
            &faults.iter().map(|(_, f)| f.latency_ms).collect::<Vec<_>>(),
            &faults.iter().map(|(_, f)| f.remaining).collect::<Vec<_>>(),
            &faults
                .iter()
                .map(|(_, f)| f.until.map(|at| at.0))
                .collect::<Vec<_>>(),
            &faults
                .iter()
                .map(|(_, f)| f.created_at.0)
                .collect::<Vec<_>>(),
        ],
    )
    .await?;

    insert(
        &tx,
        "INSERT INTO unreachable (address) SELECT * FROM unnest($1::text[])",
        &[&world.unreachable],
    )
    .await?;

    // Groups get their keys here, in the file's order (which is their creation order);
    // members go in in the file's order too, which is the order they joined.
    let keys: Vec<i64> = tx
        .query(
            "INSERT INTO groups (identifier, group_id, display_name, icon_hash, created_at)
             SELECT identifier, group_id, display_name, icon_hash, created_at
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bigint[])
                 WITH ORDINALITY AS g(identifier, group_id, display_name, icon_hash, created_at, n)
             ORDER BY n
             RETURNING id",
            &[
                &world
                    .groups
                    .iter()
                    .map(|g| g.identifier.as_str())
                    .collect::<Vec<_>>(),
                &world
                    .groups
                    .iter()
                    .map(|g| g.group_id.as_str())
                    .collect::<Vec<_>>(),
                &world
                    .groups
                    .iter()
                    .map(|g| g.display_name.as_deref())
                    .collect::<Vec<_>>(),
                &world
                    .groups
                    .iter()
                    .map(|g| g.icon_hash.as_deref())
                    .collect::<Vec<_>>(),
                &world
                    .groups
                    .iter()
                    .map(|g| g.created_at.0)
                    .collect::<Vec<_>>(),
            ],
        )
        .await
        .db()?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut keys = keys;
    // RETURNING does not promise an order; identities are handed out in insertion order.
    keys.sort_unstable();
    let members: Vec<(i64, &str)> = world
        .groups
        .iter()
        .zip(&keys)
        .flat_map(|(g, key)| g.members.iter().map(move |m| (*key, m.as_str())))
        .collect();
    insert(
        &tx,
        "INSERT INTO members (group_key, address)
         SELECT g, a FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS m(g, a, n) ORDER BY n",
        &[
            &members.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            &members.iter().map(|(_, m)| *m).collect::<Vec<_>>(),
        ],
    )
    .await?;
    let icons: Vec<(i64, &ImageState)> = world
        .groups
        .iter()
        .zip(&keys)
        .filter_map(|(g, key)| g.icon.as_ref().map(|i| (*key, i)))
        .collect();
    insert(
        &tx,
        "INSERT INTO icons (group_key, data, mime)
         SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::text[])",
        &[
            &icons.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            &icons
                .iter()
                .map(|(_, i)| i.data.as_slice())
                .collect::<Vec<_>>(),
            &icons
                .iter()
                .map(|(_, i)| i.mime.as_str())
                .collect::<Vec<_>>(),
        ],
    )
    .await?;
    let backgrounds = &world.backgrounds;
    insert(
        &tx,
        "INSERT INTO chat_backgrounds (chat_key, data, mime, hash)
         SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::bytea[])",
        &[
            &backgrounds
                .iter()
                .map(|b| b.chat_key.as_str())
                .collect::<Vec<_>>(),
            &backgrounds
                .iter()
                .map(|b| b.image.data.as_slice())
                .collect::<Vec<_>>(),
            &backgrounds
                .iter()
                .map(|b| b.image.mime.as_str())
                .collect::<Vec<_>>(),
            &backgrounds
                .iter()
                .map(|b| b.hash.as_slice())
                .collect::<Vec<_>>(),
        ],
    )
    .await?;

    // Rows went in with their ids: identities continue after the largest.
    tx.batch_execute(
        "SELECT setval(pg_get_serial_sequence('accounts', 'id'),
                       greatest((SELECT max(id) FROM accounts), 1),
                       (SELECT max(id) FROM accounts) IS NOT NULL);
         SELECT setval(pg_get_serial_sequence('tokens', 'id'),
                       greatest((SELECT max(id) FROM tokens), 1),
                       (SELECT max(id) FROM tokens) IS NOT NULL);
         SELECT setval(pg_get_serial_sequence('webhooks', 'id'),
                       greatest((SELECT max(id) FROM webhooks), 1),
                       (SELECT max(id) FROM webhooks) IS NOT NULL);
         SELECT setval(pg_get_serial_sequence('faults', 'id'),
                       greatest((SELECT max(id) FROM faults), 1),
                       (SELECT max(id) FROM faults) IS NOT NULL);",
    )
    .await
    .db()?;
    tx.commit().await.db()
}

/// An event's change as stored: kind code and value.
type Stored = (i64, Option<String>);

async fn insert(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<()> {
    tx.execute(sql, params).await.db().map(drop)
}
