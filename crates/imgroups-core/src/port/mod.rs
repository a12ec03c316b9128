//! The ports: what the engine needs from the outside world, and nothing about how it is done.
//!
//! - [`store`]: the store the server and CLI use ([`store::Store`]), and what one commit tells
//!   listeners ([`store::Notice`]).
//! - [`sim`]: the simulator's own state a store may keep beside it (the directory, injected
//!   faults: [`sim::SimControls`]) and its lookup inside a transaction ([`sim::SimTx`]); not
//!   part of [`store::Store`].
//! - [`tx`]: the engine's view of one write transaction or read snapshot inside a store.
//! - [`content`]: a message's content in the compact form a store may keep once per message.
//! - [`backend`]: the iMessage network ([`backend::Network`]), of one of two kinds: recorded
//!   by the engine ([`backend::RecordedNetwork`]: reachability, new group names) or observed
//!   ([`backend::ObservedNetwork`]: carrying changes out and waiting to see them).
//!
//! Implementations are used as trait objects (`Arc<dyn Store>`, `Arc<dyn RecordedNetwork>`)
//! rather than type parameters: the server then has no type parameter threaded through every
//! transport, and the cost — a boxed future per store call, an indirect call per `Tx` method —
//! is noise next to a request's (the W1 write benchmark did not move, BENCHMARKS.md
//! session 5).

pub mod backend;
pub mod content;
pub mod sim;
pub mod store;
pub mod tx;

pub use backend::{GroupIdentity, Network, ObservedNetwork, RecordedNetwork};
pub use sim::{Fault, NewFault, SimControls, SimStore, SimTx};
pub use store::{
    reset_error, AccountInfo, Accounts, AdminTokenInfo, EachEvent, Hooks, Log, LogBounds, Notice,
    Notices, ReadFn, ResetScope, Store, TokenInfo, TokenRef, Webhook, WebhookUrl, Work,
};
pub use tx::{Delivery, GroupRow, KeyScope, MessageQuery, NewEvent, Reader, Recorded, Tx};
