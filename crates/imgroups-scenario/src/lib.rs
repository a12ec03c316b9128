//! imgroups scenario and seed files: who does what, when, and what to wait for — read and
//! checked with the line and column of every mistake, then done step by step against an
//! [`imgroups_core::Engine`]. The binary's `sim play` and `sim seed` and the server's console
//! (`POST /console/api/sim:seed`) all use it, so a file means the same everywhere.
//!
//! It depends on `imgroups-core` only: it names no transport, no store and no CLI command
//! (the caller prints or answers what it reports). The one thing it touches besides the
//! engine is the disk, for a step's image file, and only when the caller says where files are
//! ([`Files`]).
//!
//! Layout:
//! - [`file`](mod@file): the format — [`parse`] (a scenario) and [`parse_seed`] (a seed: no times, no
//!   waits, an `accounts` list) into a [`Scenario`]; `--dry-run`'s [`timeline`].
//! - [`perform`](mod@perform): one step done ([`perform()`]), what it made ([`Done`]), why a run stopped
//!   ([`Failed`]).
//! - [`seed`]: a whole seed applied at once ([`seed::apply`]), reporting what it made.

pub mod file;
pub mod perform;
pub mod seed;

pub use file::{
    parse, parse_seed, seconds, timeline, Arg, Files, Ref, Scenario, ScenarioError, Step, Timing,
    What,
};
pub use perform::{account, perform, Cursors, Done, Failed, Known};
