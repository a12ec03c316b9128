//! The engine's transaction port on PostgreSQL: [`PgTx`], the engine's view of the open batch
//! (`writer`) — reads through the batch's connection, writes queued and sent pipelined with the
//! next read or the commit, events gathered for the commit's one `INSERT`, and the writer's cache
//! kept exact as it goes. The SQLite store's `tx` is its twin.

use imgroups_core::port::tx::stored;
use imgroups_core::port::{
    GroupRow, KeyScope, MessageQuery, NewEvent, Reader, Recorded, SimTx, Tx,
};
use imgroups_core::{AccountId, Address, Error, GroupKey, Message, Result, Timestamp};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::sql::{self, Params, Query};
use crate::writer::{Appended, Batch, Cache, Conn, Pending, MAX_CACHED_ADDRESSES};

/// The engine's view of the open batch transaction.
pub(crate) struct PgTx<'a> {
    pub(crate) conn: &'a mut Conn,
    pub(crate) cache: &'a mut Cache,
    pub(crate) batch: &'a mut Batch,
    pub(crate) now: Timestamp,
    /// This unit changed something (a later error then fails the whole batch).
    pub(crate) wrote: bool,
    /// A statement failed: PostgreSQL has aborted the transaction, so the batch cannot commit.
    pub(crate) broken: bool,
}

impl PgTx<'_> {
    fn write(&mut self, sql: &'static str, params: Vec<Box<dyn ToSql + Sync + Send>>) {
        self.wrote = true;
        self.batch.pending.push(Pending { sql, params });
    }

    fn check<T>(&mut self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.broken = true;
        }
        result
    }
}

impl Query for PgTx<'_> {
    fn rows(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>> {
        let result = self.conn.run(self.batch.outgoing(), Some((sql, params)));
        self.check(result)
    }
}

impl Reader for PgTx<'_> {
    fn account_address(&mut self, account: AccountId) -> Result<Address> {
        if let Some(known) = self.cache.addresses.get(&account) {
            return Ok(known.clone());
        }
        let address = sql::account_address(self, account)?;
        self.cache.addresses.insert(account, address.clone());
        Ok(address)
    }

    fn group(&mut self, identifier: &str) -> Result<Option<GroupRow>> {
        if let Some(row) = self
            .cache
            .group_keys
            .get(identifier)
            .and_then(|key| self.cache.groups.get(key))
        {
            return Ok(Some(row.clone()));
        }
        let row = sql::group(self, identifier)?;
        if let Some(row) = &row {
            self.cache.remember_group(row);
        }
        Ok(row)
    }

    fn members(&mut self, group: GroupKey) -> Result<Vec<Address>> {
        if let Some(known) = self.cache.members.get(&group) {
            return Ok(known.clone());
        }
        let members = sql::members(self, group)?;
        if self.cache.groups.contains_key(&group) {
            self.cache.members.insert(group, members.clone());
        }
        Ok(members)
    }

    fn icon(&mut self, group: GroupKey) -> Result<Option<(Vec<u8>, String)>> {
        sql::icon(self, group)
    }

    fn groups_of(&mut self, address: &Address) -> Result<Vec<GroupRow>> {
        sql::groups_of(self, address)
    }

    fn groups_with_all(&mut self, addresses: &[Address]) -> Result<Vec<GroupRow>> {
        sql::groups_with_all(self, addresses)
    }

    fn has_direct_chat(&mut self, account: AccountId, address: &Address) -> Result<bool> {
        sql::has_direct_chat(self, account, address)
    }

    fn count_direct_chats(&mut self, account: AccountId) -> Result<u64> {
        sql::count_direct_chats(self, account)
    }

    fn observer_cursor(&mut self, source: &str) -> Result<Option<String>> {
        // Goes out after the pending writes, so it sees a cursor this batch set.
        sql::observer_cursor(self, source)
    }

    fn message(&mut self, account: AccountId, guid: &str) -> Result<Option<(u64, Message)>> {
        sql::message(self, account, guid)
    }

    fn list_messages(
        &mut self,
        account: AccountId,
        query: &MessageQuery,
    ) -> Result<Vec<(u64, Message)>> {
        sql::list_messages(self, account, query)
    }

    fn background_hash(&mut self, chat: &str) -> Result<Option<Vec<u8>>> {
        sql::background_hash(self, chat)
    }

    fn message_times(
        &mut self,
        account: AccountId,
        since: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, bool)>> {
        sql::message_times(self, account, since, limit)
    }
}

impl Tx for PgTx<'_> {
    fn sim(&mut self) -> Option<&mut dyn SimTx> {
        Some(self)
    }

    fn now(&self) -> Timestamp {
        self.now
    }

    fn fresh_id(&mut self) -> Result<[u8; 16]> {
        match self.cache.sim.as_mut() {
            Some(clock) => {
                self.cache.sim_drawn = true;
                Ok(clock.draw())
            }
            None => Ok(imgroups_core::clock::random_id()),
        }
    }

    fn accounts_for(&mut self, addresses: &[Address]) -> Result<Vec<(AccountId, Address)>> {
        let unknown: Vec<&str> = addresses
            .iter()
            .filter(|a| !self.cache.accounts.contains_key(*a))
            .map(Address::as_str)
            .collect();
        if !unknown.is_empty() {
            let rows = self.rows(
                "SELECT a.address, acc.id FROM unnest($1::text[]) AS a(address)
                 LEFT JOIN accounts acc ON acc.address = a.address",
                &[&unknown],
            )?;
            if self.cache.accounts.len() >= MAX_CACHED_ADDRESSES {
                self.cache.accounts.clear();
            }
            for row in rows {
                let address = Address::from_trusted(row.get::<_, String>(0));
                let id: Option<i64> = row.get(1);
                self.cache.accounts.insert(address, id.map(AccountId));
            }
        }
        Ok(addresses
            .iter()
            .filter_map(|a| {
                let id = self.cache.accounts.get(a).copied().flatten()?;
                Some((id, a.clone()))
            })
            .collect())
    }

    fn create_group(
        &mut self,
        identifier: &str,
        group_id: &str,
        now: Timestamp,
    ) -> Result<Option<GroupKey>> {
        self.wrote = true;
        let row = self.row(
            "INSERT INTO groups (identifier, group_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (identifier) DO NOTHING RETURNING id",
            &[&identifier, &group_id, &now.0],
        )?;
        Ok(row.map(|r| GroupKey(r.get(0))))
    }

    fn set_display_name(&mut self, group: GroupKey, name: &str) -> Result<()> {
        self.wrote = true;
        self.batch.names.insert(group, name.to_owned());
        if let Some(row) = self.cache.groups.get_mut(&group) {
            row.display_name = Some(name.to_owned());
        }
        Ok(())
    }

    fn add_member(&mut self, group: GroupKey, address: &Address) -> Result<()> {
        self.write(
            "INSERT INTO members (group_key, address) VALUES ($1, $2)",
            vec![Box::new(group.0), Box::new(address.as_str().to_owned())],
        );
        if let Some(members) = self.cache.members.get_mut(&group) {
            members.push(address.clone());
        }
        Ok(())
    }

    fn remove_member(&mut self, group: GroupKey, address: &Address) -> Result<()> {
        self.write(
            "DELETE FROM members WHERE group_key = $1 AND address = $2",
            vec![Box::new(group.0), Box::new(address.as_str().to_owned())],
        );
        if let Some(members) = self.cache.members.get_mut(&group) {
            members.retain(|m| m != address);
        }
        Ok(())
    }

    fn set_icon(&mut self, group: GroupKey, data: &[u8], mime: &str, hash: &[u8]) -> Result<()> {
        self.write(
            "INSERT INTO icons (group_key, data, mime) VALUES ($1, $2, $3)
             ON CONFLICT (group_key) DO UPDATE SET data = excluded.data, mime = excluded.mime",
            vec![
                Box::new(group.0),
                Box::new(data.to_vec()),
                Box::new(mime.to_owned()),
            ],
        );
        self.write(
            "UPDATE groups SET icon_hash = $2 WHERE id = $1",
            vec![Box::new(group.0), Box::new(hash.to_vec())],
        );
        if let Some(row) = self.cache.groups.get_mut(&group) {
            row.icon_hash = Some(hash.to_vec());
        }
        Ok(())
    }

    fn clear_icon(&mut self, group: GroupKey) -> Result<()> {
        self.write(
            "DELETE FROM icons WHERE group_key = $1",
            vec![Box::new(group.0)],
        );
        self.write(
            "UPDATE groups SET icon_hash = NULL WHERE id = $1",
            vec![Box::new(group.0)],
        );
        if let Some(row) = self.cache.groups.get_mut(&group) {
            row.icon_hash = None;
        }
        Ok(())
    }

    fn ensure_direct_chat(
        &mut self,
        account: AccountId,
        address: &Address,
        now: Timestamp,
    ) -> Result<()> {
        self.write(
            "INSERT INTO direct_chats (account_id, address, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            vec![
                Box::new(account.0),
                Box::new(address.as_str().to_owned()),
                Box::new(now.0),
            ],
        );
        Ok(())
    }

    fn put_message(&mut self, account: AccountId, place: u64, message: &Message) -> Result<()> {
        let chat = message
            .chat_guid
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        self.write(
            "INSERT INTO chat_messages
                 (account_id, place, guid, chat_guid, created_at, is_from_me, is_read, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (account_id, guid) DO UPDATE SET
                 is_read = excluded.is_read, body = excluded.body",
            vec![
                Box::new(account.0),
                Box::new(place as i64),
                Box::new(message.guid.clone()),
                Box::new(chat),
                Box::new(message.date_created.0),
                Box::new(message.is_from_me),
                Box::new(message.is_read()),
                Box::new(stored::encode_message(message)),
            ],
        );
        Ok(())
    }

    fn set_background(
        &mut self,
        chat: &str,
        background: Option<(&[u8], &str, &[u8])>,
    ) -> Result<()> {
        match background {
            Some((data, mime, hash)) => self.write(
                "INSERT INTO chat_backgrounds (chat_key, data, mime, hash) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (chat_key) DO UPDATE SET
                     data = excluded.data, mime = excluded.mime, hash = excluded.hash",
                vec![
                    Box::new(chat.to_owned()),
                    Box::new(data.to_vec()),
                    Box::new(mime.to_owned()),
                    Box::new(hash.to_vec()),
                ],
            ),
            None => self.write(
                "DELETE FROM chat_backgrounds WHERE chat_key = $1",
                vec![Box::new(chat.to_owned())],
            ),
        }
        Ok(())
    }

    fn set_observer_cursor(&mut self, source: &str, cursor: &str) -> Result<()> {
        self.write(
            "INSERT INTO observer_cursors (source, cursor) VALUES ($1, $2)
             ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor",
            vec![Box::new(source.to_owned()), Box::new(cursor.to_owned())],
        );
        Ok(())
    }

    fn mark_observed(&mut self, source: &str, id: &str) -> Result<bool> {
        // A round trip: whether the id is new decides what the caller records next.
        self.wrote = true;
        let row = self.row(
            "INSERT INTO observed (source, id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING RETURNING 1",
            &[&source, &id],
        )?;
        Ok(row.is_some())
    }

    fn append_event(&mut self, account: AccountId, event: NewEvent<'_>) -> Result<u64> {
        self.wrote = true;
        let head = match self.cache.heads.get(&account) {
            Some(head) => *head,
            None => self
                .row("SELECT head_seq FROM accounts WHERE id = $1", &[&account.0])?
                .map(|row| row.get::<_, i64>(0))
                .ok_or_else(|| {
                    tracing::error!(%account, "an event for an account that does not exist");
                    Error::internal()
                })?,
        };
        let seq = head + 1;
        self.cache.heads.insert(account, seq);
        self.batch.moved.insert(account);
        let (kind, value) = stored::encode(event.change);
        self.batch.events.push(Appended {
            account,
            seq,
            chat_guid: event.chat_guid.to_string(),
            occurred_at: event.occurred_at.0,
            is_from_me: event.is_from_me,
            actor: event.actor.map(|a| a.as_str().to_owned()),
            kind,
            value: value.map(std::borrow::Cow::into_owned),
        });
        Ok(seq as u64)
    }

    fn idempotency_get(
        &mut self,
        scope: KeyScope<'_>,
        not_before: Timestamp,
    ) -> Result<Option<Recorded>> {
        Ok(self
            .row(
                "SELECT fingerprint, outcome FROM idempotency
                 WHERE account_id = $1 AND method = $2 AND key = $3 AND created_at >= $4",
                &[&scope.account.0, &scope.method, &scope.key, &not_before.0],
            )?
            .map(|row| Recorded {
                fingerprint: row.get(0),
                outcome: row.get(1),
            }))
    }

    fn idempotency_put(
        &mut self,
        scope: KeyScope<'_>,
        record: &Recorded,
        at: Timestamp,
    ) -> Result<()> {
        // Bookkeeping, not a change: `wrote` stays as it is (the answer may be a rejection).
        self.batch.pending.push(Pending {
            sql:
                "INSERT INTO idempotency (account_id, method, key, fingerprint, outcome, created_at)
                  VALUES ($1, $2, $3, $4, $5, $6)
                  ON CONFLICT (account_id, method, key) DO UPDATE
                  SET fingerprint = excluded.fingerprint, outcome = excluded.outcome,
                      created_at = excluded.created_at",
            params: vec![
                Box::new(scope.account.0),
                Box::new(scope.method.to_owned()),
                Box::new(scope.key.to_owned()),
                Box::new(record.fingerprint.clone()),
                Box::new(record.outcome.clone()),
                Box::new(at.0),
            ],
        });
        Ok(())
    }
}

/// The simulated directory, read in the write's transaction ([`SimTx`]).
impl SimTx for PgTx<'_> {
    fn is_unreachable(&mut self, address: &Address) -> Result<bool> {
        if let Some(known) = self.cache.unreachable.get(address) {
            return Ok(*known);
        }
        let found = self
            .row(
                "SELECT 1 FROM unreachable WHERE address = $1",
                &[&address.as_str()],
            )?
            .is_some();
        if self.cache.unreachable.len() >= MAX_CACHED_ADDRESSES {
            self.cache.unreachable.clear();
        }
        self.cache.unreachable.insert(address.clone(), found);
        Ok(found)
    }
}
