//! What each command does, one module per command; `main` picks the module, `cli` parsed its
//! arguments. Local commands work on the store (`crate::store`) and return an error for
//! `output::exit`; client commands talk to a running server (`crate::remote`) and return
//! their own exit code.

pub(crate) mod account;
pub(crate) mod addresses;
pub(crate) mod admin;
pub(crate) mod chats;
pub(crate) mod config;
pub(crate) mod docs;
pub(crate) mod events;
pub(crate) mod expect;
pub(crate) mod groups;
pub(crate) mod mac;
pub(crate) mod messages;
pub(crate) mod play;
pub(crate) mod seed;
pub(crate) mod serve;
pub(crate) mod sim;
pub(crate) mod snapshot;
pub(crate) mod token;
pub(crate) mod webhook;
