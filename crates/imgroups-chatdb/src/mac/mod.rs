//! What is specific to a real Mac: starting Messages with the helper loaded ([`launch`]) and
//! the operating system calls it and the helper listener's peer check need ([`system`]), behind
//! a trait so that both are tested on Linux.

pub mod launch;
pub mod system;
