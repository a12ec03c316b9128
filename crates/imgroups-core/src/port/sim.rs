//! The simulator's own state, kept by a store but not part of the store port: the simulated
//! network's **directory** (which addresses are not on iMessage) and **injected faults**
//! (calls that fail or are delayed on purpose). Only the simulated network has them: a Mac's
//! Messages knows who is reachable itself, and a store that serves only a Mac need not keep
//! either. So [`crate::port::Store`] does not require them; a store that can serve the
//! simulator implements two more traits:
//!
//! - [`SimControls`], the operator's side: mark addresses unreachable, arm and clear faults,
//!   and use a counted fault up. Whoever needs them is handed an `Arc<dyn SimControls>`
//!   explicitly — the server (its fault layer, the console, `GetAddressInfo`) only when it
//!   runs the simulator, the CLI's `imgroups sim` beside it — rather than reaching through the
//!   store.
//! - [`SimTx`], the simulator's side inside a write transaction: the directory lookup of
//!   [`crate::port::RecordedNetwork::reachable`]. It has to be read in the write's own
//!   transaction: checked outside it, an address marked unreachable between the check and the
//!   commit would still be added. A store offers it through
//!   [`Tx::sim`](crate::port::tx::Tx::sim); the default offers nothing (a store without a
//!   directory, where every address is reachable).
//!
//! Both SQLite and PostgreSQL keep this state in the database, so every process serving the
//! store, and the CLI, see the same directory and faults, and a counted fault is used up
//! atomically across processes. A reset ([`crate::port::Store::reset`]) and a snapshot
//! ([`crate::port::Store::export`]) include it.

use async_trait::async_trait;

use crate::error::Result;
use crate::ids::Address;
use crate::model::{AccountId, FaultId, Timestamp};
use crate::port::store::Store;

/// A fault to inject (simulator): calls of `method` by `account` fail with `error_code`
/// (a wire error code) and/or are delayed by `latency_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFault {
    pub account: AccountId,
    /// An RPC name as the wire spells it (`SetDisplayName`, `CreateChat`, …) or `*` for
    /// every method.
    pub method: String,
    /// The wire `error-code` to fail with; `None` delays the call and lets it run.
    pub error_code: Option<String>,
    /// The `x-retryable` flag of that error.
    pub retryable: bool,
    /// Added before the call runs (or fails), in milliseconds.
    pub latency_ms: u64,
    /// Applies to this many calls, then disarms; `None`: every call until `until`.
    pub count: Option<u32>,
    /// Disarms at this time; `None`: no time limit.
    pub until: Option<Timestamp>,
}

/// An injected fault as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub id: FaultId,
    /// The account's address, for listings.
    pub address: Address,
    /// What was asked, with `count` replaced by what is left of it.
    pub spec: NewFault,
    pub created_at: Timestamp,
}

/// The simulator's controls over the state a store keeps for it (see the module doc): the
/// directory and injected faults. Implemented by the stores; handed explicitly to whoever may
/// change or apply them.
#[async_trait]
pub trait SimControls: Send + Sync + 'static {
    /// Marks `address` as not on iMessage in the simulated directory (or undoes that).
    async fn set_unreachable(&self, address: &Address, unreachable: bool) -> Result<()>;

    /// The addresses marked unreachable, sorted.
    async fn unreachable(&self) -> Result<Vec<Address>>;

    /// Stores a fault; it is armed at once.
    async fn add_fault(&self, fault: &NewFault) -> Result<Fault>;

    /// The armed faults (a count left, or none; `until` not passed), by id.
    async fn faults(&self) -> Result<Vec<Fault>>;

    /// Removes the fault `id` (whatever `account` says), or else every fault of `account`, or
    /// else every fault; returns how many.
    async fn clear_faults(&self, account: Option<AccountId>, id: Option<FaultId>) -> Result<u64>;

    /// Takes one use of a fault for a call about to fail or be delayed: `true` if it was still
    /// armed (a counted fault now has one fewer left, atomically, across processes), `false`
    /// if it is used up, expired or gone.
    async fn take_fault(&self, id: FaultId) -> Result<bool>;
}

/// The simulator's view of its directory inside one write transaction
/// ([`Tx::sim`](crate::port::tx::Tx::sim)).
pub trait SimTx {
    /// Whether `address` was marked as not on iMessage ([`SimControls::set_unreachable`]),
    /// as of this transaction: the reachability check commits with the write it allowed.
    fn is_unreachable(&mut self, address: &Address) -> Result<bool>;
}

/// A store that also keeps the simulator's state: what the CLI and the tests open, so one
/// handle serves as both an `Arc<dyn Store>` and an `Arc<dyn SimControls>` (trait upcasting).
pub trait SimStore: Store + SimControls {}

impl<T: Store + SimControls + ?Sized> SimStore for T {}
