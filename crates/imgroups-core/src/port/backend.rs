//! The backend port: the iMessage network. The engine decides — it checks the rules and says
//! which events a change produces — and the network answers what only it knows. There are two
//! kinds of network, and they differ in who makes a change happen, so each is its own trait
//! and the engine is given one of them as a [`Network`]:
//!
//! - a **recorded** network ([`RecordedNetwork`]: the simulator, `imgroups-sim`) lives in the
//!   store: recording a change is making it happen. The engine checks an account's write and
//!   records it, with its events, in the write's own transaction. The network answers whether
//!   an address can be reached and names new groups.
//! - an **observed** network ([`ObservedNetwork`]: a real Mac, `imgroups-macos`) changes
//!   elsewhere. The engine checks an account's write without changing anything and hands the
//!   change to the network, which carries it out and returns once it has seen it happen and
//!   recorded it ([`crate::Engine::record_observed`]); the write is answered from the state
//!   after that, so the answer and the event agree. Only the network knows whether an address
//!   can be reached: it refuses an unreachable one when it carries the change out.
//!
//! What is the same on both lives once, in the engine: the **audience** of a group (the local
//! accounts among its members, which keep a view and a log of it: the store knows which
//! addresses are accounts), and the recording of a change with its events, whoever made it.
//!
//! Changes made by someone else come in through one door each: a simulated person's through
//! [`crate::Engine::act_as`] (under the rules), someone's on a real Mac through
//! [`crate::Engine::record_observed`] (it has happened). Both are recorded by the same code as
//! our own writes, so events, audiences and sequences are produced in one place.

use std::sync::Arc;

use async_trait::async_trait;

use crate::command::{MessageOp, Mutation};
use crate::error::Result;
use crate::ids::{Address, ChatGuid};
use crate::port::tx::Tx;

/// The network the engine works on, matched once per write: a recorded network's writes run
/// in one store transaction, an observed network's are carried out by it and read back.
#[derive(Clone)]
pub enum Network {
    /// The engine records changes, and that makes them happen (the simulator).
    Recorded(Arc<dyn RecordedNetwork>),
    /// Changes are carried out elsewhere and recorded when seen (a Mac's Messages).
    Observed(Arc<dyn ObservedNetwork>),
}

impl Network {
    /// A recorded network (the simulator: `Network::recorded(Simulator)`).
    pub fn recorded(network: impl RecordedNetwork) -> Network {
        Network::Recorded(Arc::new(network))
    }
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Network::Recorded(_) => "Network::Recorded",
            Network::Observed(_) => "Network::Observed",
        })
    }
}

/// A new group's names: `chat` + 18 digits, and an upper-case UUID shared by its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupIdentity {
    pub identifier: String,
    pub group_id: String,
}

/// A network whose state is the store's state (see the module doc): the engine records a
/// change and nothing is left to carry out.
///
/// Both methods run inside a write transaction (`tx` is that transaction: the network's state
/// is kept by the store). Neither may wait on anything outside it: the whole batch of the
/// store's group commit waits with it.
pub trait RecordedNetwork: Send + Sync + 'static {
    /// Whether `address` can be reached over iMessage: `addressNotFound` (see
    /// [`crate::engine::address_not_found`]) if not.
    fn reachable(&self, tx: &mut dyn Tx, address: &Address) -> Result<()>;

    /// Names for a new group (the store refuses an identifier already taken; the engine then
    /// asks again). Identifiers come from [`Tx::fresh_id`], so a seeded run names its groups
    /// the same way every time.
    fn new_group(&self, tx: &mut dyn Tx) -> Result<GroupIdentity>;
}

/// A network that changes elsewhere (see the module doc): it carries a change out and waits
/// to observe it, so a write is answered only once its change was seen and recorded.
///
/// Creating chats is not something such a network does through the engine (the chat is
/// created on the device): the engine refuses it before asking.
#[async_trait]
pub trait ObservedNetwork: Send + Sync + 'static {
    /// Carries out `mutation` by `actor` (the calling account) on `chat`, which passed every
    /// rule and changes something, and returns once it was observed and recorded in the
    /// store. `unavailable` (retryable) when the network did not confirm it in time; then the
    /// change may still happen, and is recorded when it is seen.
    async fn carry_out(&self, chat: &ChatGuid, actor: &Address, mutation: &Mutation) -> Result<()>;

    /// Carries out a message action by `actor` on `chat` (as `actor` names it), which passed
    /// every rule, and returns once it was observed and recorded, with the GUID of the message
    /// a send made (`None` for the other actions). An action the network cannot carry out
    /// answers `operationNotSupported`.
    async fn carry_out_message(
        &self,
        chat: &ChatGuid,
        actor: &Address,
        op: &MessageOp,
    ) -> Result<Option<String>>;

    /// Shows (`typing`) or hides `actor`'s typing indicator in `chat` (as `actor` names it; the
    /// caller checked that `actor` sees it). Transient: nothing is recorded, and it returns
    /// once the network took it. The default does nothing: a network without indicators.
    async fn set_typing(&self, chat: &ChatGuid, actor: &Address, typing: bool) -> Result<()> {
        let _ = (chat, actor, typing);
        Ok(())
    }
}
