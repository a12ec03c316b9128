//! Integration tests against the real `imgroups` binary: durability across restarts and
//! `kill -9`, live streams under load, slow consumers, shutdown, operability (health,
//! reflection, metrics, request logs).

#![allow(unreachable_pub)] // test helpers are shared between modules of one binary

mod bot;
mod bounded;
mod chatdb;
mod cli;
mod client_commands;
mod clock;
mod crash;
mod crash_messages;
mod datadir;
mod egress;
mod faults;
mod http_serve;
mod input_limits;
mod limits;
mod multinode;
mod notices;
mod ops;
mod reset;
mod revocation;
mod seed;
mod send_limits;
mod snapshot;
mod streams;
mod subscribers;
mod support;
mod tls;
