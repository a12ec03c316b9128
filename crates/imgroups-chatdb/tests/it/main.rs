//! One test binary for the crate: fixture databases with the real schemas of several macOS
//! versions, built in temp dirs by `fixture`, read through the public API.

mod actuator;
mod changes;
mod conversations;
mod fixture;
mod groups;
mod incremental;
mod launch;
mod open;
mod watch;
