//! The SQLite store's integration tests: one binary, one module per concern.

mod auth;
mod bodies;
mod checkpoint;
mod common;
mod conformance;
mod create;
mod locks;
mod reset;
