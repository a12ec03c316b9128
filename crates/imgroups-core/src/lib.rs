//! imgroups domain: what a group chat is, the rules for changing one, the engine that applies
//! them, and the two ports the engine works through. Nothing here knows about gRPC, HTTP, SQL
//! or a real Mac.
//!
//! Layout:
//! - [`ids`]: validated identifiers ([`ChatGuid`], [`Address`]); invalid values cannot exist.
//! - [`error`]: the one error type, by meaning ([`ErrorKind`]); transports map it to wire codes.
//!   Both live in `imgroups-types` (shared with the Rust SDK) and are re-exported here.
//! - [`text`]: the input policy for names: what given text may contain, how observed text is
//!   made safe to store and serve.
//! - [`image`]: icon type detection from bytes, and a check of the structure the type
//!   requires (headers, not pixels).
//! - [`model`]: chats, messages, events, write outcomes, and the store's keys as newtypes.
//! - [`command`]: validated writes ([`Command`], [`Mutation`]).
//! - [`action`]: what a person can do to a group, described once as data for every surface
//!   (CLI, console), with its mapping to a [`Command`].
//! - [`expect`]: assertions on what an account did ([`expect::Expectation`], from
//!   `imgroups-types`), an event of the log seen as an action, and the wait for one on its log.
//! - [`port`]: the store port ([`port::Store`]: log, accounts, webhooks, commit notices; and
//!   [`port::Tx`], the engine's view of one transaction) and the backend port
//!   ([`port::Network`]: the iMessage side, recorded by the engine or observed).
//! - [`engine`]: [`Engine`], which every transport calls, and its rules.
//! - [`idempotency`]: what an idempotency key means, for every store.
//! - [`limits`]: the send limits of a real line, as a model (`serve --limits`).
//! - [`clock`]: the controllable clock and seeded identifiers of deterministic runs.
//! - [`snapshot`]: the simulated world as one versioned file (export, import).
//! - [`tokens`]: API tokens and webhook secrets. [`admin`]: accounts, tokens, webhooks.
//! - [`testing`]: test data for every crate's tests (the one PNG builder).

pub mod action;
pub use imgroups_types::{error, ids};
pub mod admin;
pub mod clock;
pub mod command;
pub mod engine;
pub mod expect;
pub mod idempotency;
pub mod image;
pub mod limits;
pub mod model;
pub mod port;
pub mod snapshot;
pub mod testing;
pub mod text;
pub mod tokens;

pub use command::{Command, Limits, MessageOp, Mutation, NewMessage};
pub use engine::{
    BulkImport, Checks, Engine, EngineConfig, MessageEvent, Observed, ObservedBatch, ObservedGroup,
    ObservedMessage, ObservedMessages, ObservedPart,
};
pub use error::{Error, ErrorKind, Hint, Reason, Result};
pub use ids::{Address, ChatGuid, ChatKind};
pub use model::{
    AccountId, AppliedReaction, Change, Chat, Domain, Event, FaultId, GroupKey, InitialMessage,
    Message, Outcome, Reaction, TextFormat, Timestamp, TokenId, WebhookId,
};
