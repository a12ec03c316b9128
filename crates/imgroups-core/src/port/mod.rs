//! The ports: what the engine needs from the outside world, and nothing about how it is done.
//!
//! - [`store`]: the store the server and CLI use ([`store::Store`]), and what one commit tells
//!   listeners ([`store::Notice`]).
//! - [`tx`]: the engine's view of one write transaction or read snapshot inside a store.
//! - [`backend`]: the iMessage side ([`backend::Backend`]): reachability, audiences, new group
//!   names, carrying changes out.

pub mod backend;
pub mod store;
pub mod tx;

pub use backend::{Action, Backend, GroupIdentity};
pub use store::{
    Accounts, Hooks, Log, LogBounds, Notice, Notices, ReadFn, Store, TokenInfo, TokenRef, Webhook,
    WebhookUrl, Work,
};
pub use tx::{GroupRow, KeyScope, NewEvent, Reader, Recorded, Tx};
