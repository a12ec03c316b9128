//! The backend port: the iMessage side. The engine decides — it checks the rules and says
//! which events a change produces — and the backend answers what only the network knows and
//! carries changes out:
//!
//! - whether an address can be reached (and, through the audience, whether it is one of the
//!   local accounts);
//! - the **audience** of a group: which local accounts keep a view and a log of it;
//! - identifiers for new groups;
//! - performing a decided change on the network.
//!
//! Changes made by someone else (a simulated person, someone on a real Mac) come the other
//! way, through [`crate::Engine::ingest`], and are recorded by the same code as our own
//! writes, so events, audiences and sequences are produced in one place.
//!
//! Implementations: `imgroups-sim` (the simulated network, the default) and
//! `imgroups-macos` (a real Mac: it observes Messages' database and carries writes out through
//! the Messages helper).
//!
//! Every method runs inside a write transaction (`tx` is that transaction, for backends that
//! keep their state in the store). None may wait on a network: the whole batch waits with it.

use std::sync::Arc;

use async_trait::async_trait;

use crate::command::Mutation;
use crate::error::Result;
use crate::ids::{Address, ChatGuid};
use crate::model::AccountId;
use crate::port::tx::Tx;

/// A new group's names: `chat` + 18 digits, and an upper-case UUID shared by its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupIdentity {
    pub identifier: String,
    pub group_id: String,
}

/// A change the engine decided and the backend carries out.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// A new group: `members[0]` created it with the others.
    CreateGroup {
        chat: &'a ChatGuid,
        members: &'a [Address],
    },
    /// `actor` changes an existing group.
    Change {
        chat: &'a ChatGuid,
        actor: &'a Address,
        mutation: &'a Mutation,
    },
}

pub trait Backend: Send + Sync + 'static {
    /// Whether `address` can be reached over iMessage: `addressNotFound` (see
    /// [`crate::engine::address_not_found`]) if not.
    fn reachable(&self, tx: &mut dyn Tx, address: &Address) -> Result<()>;

    /// The local accounts among `members`, with their addresses, in the order given: the
    /// accounts that keep a view and a log of a group with these members. (Asked of one
    /// address, it says which local account that address is, if any.)
    fn audience(&self, tx: &mut dyn Tx, members: &[Address]) -> Result<Vec<(AccountId, Address)>>;

    /// Names for a new group (the store refuses an identifier already taken; the engine then
    /// asks again). Identifiers come from [`Tx::fresh_id`], so a seeded run names its groups
    /// the same way every time.
    fn new_group(&self, tx: &mut dyn Tx) -> Result<GroupIdentity>;

    /// Carries out `action`, which passed every rule, before it is recorded. An error rejects
    /// the write (nothing is recorded).
    fn perform(&self, tx: &mut dyn Tx, action: &Action<'_>) -> Result<()>;

    /// For a backend on a real network, which carries a change out itself and records it when
    /// it sees it happen (a Mac's chat.db): what the engine hands accepted changes to, instead
    /// of recording them itself. `None` (the default): changes are recorded by the engine,
    /// after [`Backend::perform`], in the write's transaction.
    fn observer(&self) -> Option<Arc<dyn Observer>> {
        None
    }
}

/// Carries changes out on a real network and waits to observe them (see
/// [`Backend::observer`]): a write is answered only once its change was seen on the network
/// and recorded, so the answer and the event agree.
#[async_trait]
pub trait Observer: Send + Sync + 'static {
    /// Carries out `mutation` by `actor` (the calling account) on `chat`, which passed every
    /// rule and changes something, and returns once it was observed and recorded in the
    /// store. `unavailable` (retryable) when the network did not confirm it in time; then the
    /// change may still happen, and is recorded when it is seen.
    async fn carry_out(&self, chat: &ChatGuid, actor: &Address, mutation: &Mutation) -> Result<()>;

    /// Carries out a message action by `actor` on `chat` (as `actor` names it), which passed
    /// every rule, and returns once it was observed and recorded, with the GUID of the message
    /// a send made (`None` for the other actions). By default: not supported.
    async fn carry_out_message(
        &self,
        _chat: &ChatGuid,
        _actor: &Address,
        _op: &crate::command::MessageOp,
    ) -> Result<Option<String>> {
        Err(crate::Error::not_supported(
            "this backend does not carry out message actions",
        ))
    }
}
