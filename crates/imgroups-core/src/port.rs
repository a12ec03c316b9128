//! The storage port: what the engine needs from a store. Implementations live in
//! `imgroups-store` (SQLite today, PostgreSQL later) and run one shared conformance suite.
//!
//! A [`Tx`] is one open write transaction. Everything the engine does through it commits or
//! rolls back together, and the store runs transactions one at a time in commit order, so:
//! **per account, `append_event` hands out sequence numbers that increase by exactly one in
//! commit order, with no gaps and no reuse.**
//!
//! The engine checks every rule before its first write through the [`Tx`], so a command it
//! rejects has written nothing: stores need no per-command savepoint, and a store may treat a
//! rejection after a write as a bug (the SQLite store then fails the whole batch).

use crate::error::Result;
use crate::ids::Address;
use crate::model::{AccountId, Change, Message, Timestamp};

/// A group as stored (one row shared by every member's view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    pub key: i64,
    pub identifier: String,
    pub group_id: String,
    pub display_name: Option<String>,
    pub icon_hash: Option<Vec<u8>>,
}

/// An event about to be appended; the store assigns its sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent<'a> {
    pub chat_guid: &'a str,
    pub occurred_at: Timestamp,
    pub is_from_me: bool,
    pub actor: Option<&'a Address>,
    pub change: &'a Change,
}

/// Reads, inside or outside a write transaction.
pub trait Reader {
    /// The address of an account; an unknown account is an internal error.
    fn account_address(&mut self, account: AccountId) -> Result<Address>;
    fn group(&mut self, identifier: &str) -> Result<Option<GroupRow>>;
    /// Current members including the local account, in the order they joined.
    fn members(&mut self, group: i64) -> Result<Vec<Address>>;
    /// The icon's bytes and MIME type.
    fn icon(&mut self, group: i64) -> Result<Option<(Vec<u8>, String)>>;
    /// Groups the address is currently a member of, oldest first.
    fn groups_of(&mut self, address: &Address) -> Result<Vec<GroupRow>>;
    /// Groups whose current members include every one of `addresses`, oldest first. Its cost
    /// must follow the address in the fewest groups, not the one in the most: a create looks
    /// for the group it would duplicate with it, and the creator (or a participant) may be in
    /// a great many groups.
    fn groups_with_all(&mut self, addresses: &[Address]) -> Result<Vec<GroupRow>>;
    fn has_direct_chat(&mut self, account: AccountId, address: &Address) -> Result<bool>;
    fn count_direct_chats(&mut self, account: AccountId) -> Result<u64>;
}

/// One write transaction.
pub trait Tx: Reader {
    /// Accounts among these addresses, in the order given.
    fn accounts_for(&mut self, addresses: &[Address]) -> Result<Vec<(AccountId, Address)>>;
    fn is_unreachable(&mut self, address: &Address) -> Result<bool>;
    /// Inserts a group; `None` if the identifier is taken.
    fn create_group(
        &mut self,
        identifier: &str,
        group_id: &str,
        now: Timestamp,
    ) -> Result<Option<i64>>;
    fn set_display_name(&mut self, group: i64, name: &str) -> Result<()>;
    fn add_member(&mut self, group: i64, address: &Address) -> Result<()>;
    fn remove_member(&mut self, group: i64, address: &Address) -> Result<()>;
    fn set_icon(&mut self, group: i64, data: &[u8], mime: &str, hash: &[u8]) -> Result<()>;
    fn clear_icon(&mut self, group: i64) -> Result<()>;
    fn ensure_direct_chat(
        &mut self,
        account: AccountId,
        address: &Address,
        now: Timestamp,
    ) -> Result<()>;
    fn insert_message(
        &mut self,
        account: AccountId,
        chat_guid: &str,
        message: &Message,
    ) -> Result<()>;
    /// Appends to the account's log and returns the new sequence (previous head + 1).
    fn append_event(&mut self, account: AccountId, event: NewEvent<'_>) -> Result<u64>;
}
