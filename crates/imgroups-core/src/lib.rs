//! imgroups domain: what a group chat is, the rules for changing one, and the engine that
//! applies them. Nothing here knows about gRPC, HTTP or SQL.
//!
//! Layout:
//! - [`ids`]: validated identifiers ([`ChatGuid`], [`Address`]); invalid values cannot exist.
//! - [`error`]: the one error type, by meaning ([`ErrorKind`]); transports map it to wire codes.
//! - [`image`]: icon type detection from bytes.
//! - [`model`]: chats, messages, events and write outcomes.
//! - [`port`]: the storage interface ([`port::Reader`], [`port::Tx`]) and its invariants.
//! - [`engine`]: validated [`Command`]s applied through a transaction, plus read queries.

pub mod engine;
pub mod error;
pub mod ids;
pub mod image;
pub mod model;
pub mod port;

pub use engine::{Command, Limits};
pub use error::{Error, ErrorKind, Result};
pub use ids::{Address, ChatGuid, ChatKind};
pub use model::{AccountId, Change, Chat, Event, InitialMessage, Message, Outcome, Timestamp};
