//! Integration tests against the real `imgroups` binary: durability across restarts and
//! `kill -9`, live streams under load, slow consumers, shutdown.

#![allow(unreachable_pub)] // test helpers are shared between modules of one binary

mod cli;
mod crash;
mod http_serve;
mod input_limits;
mod multinode;
mod notices;
mod streams;
mod subscribers;
mod support;
