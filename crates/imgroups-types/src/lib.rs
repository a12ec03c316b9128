//! What the imgroups engine and its Rust SDK (`imgroups-client`) share, and nothing else: the
//! SDK names chats and addresses, reports errors and checks expectations exactly as the
//! server does, without depending on the engine.
//!
//! - [`ids`]: validated identifiers ([`ChatGuid`], [`Address`]); invalid values cannot exist.
//! - [`error`]: the one error type, by meaning ([`ErrorKind`]); transports map it to wire codes.
//! - [`expect`]: which of an account's own actions an assertion expects
//!   ([`expect::Expectation`]).
//!
//! `imgroups-core` re-exports all three at the same paths (`imgroups_core::ChatGuid`, …).

pub mod error;
pub mod expect;
pub mod ids;

pub use error::{Error, ErrorKind, Hint, Reason, Result};
pub use ids::{Address, ChatGuid, ChatKind};
