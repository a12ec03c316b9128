//! Integration tests: the SDK against the real server, booted in-process on port 0 with a
//! temporary data directory (and restarted on the same directory and port where a test needs
//! a server restart).

mod errors;
mod events;
mod gaps;
mod harness;
mod messages;
mod ops;
mod resumable;
mod retry;
