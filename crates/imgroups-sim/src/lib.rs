//! The simulated iMessage network: the default backend, so bots can be built and tested
//! without a Mac.
//!
//! - Every valid address is on iMessage unless the directory marks it unreachable
//!   ([`set_unreachable`]; adding it then fails with `addressNotFound`). The directory is kept
//!   by the store beside its port ([`imgroups_core::port::sim`]), so every process on that
//!   store sees the same network; the simulator reads it inside each write's transaction.
//! - Any address can be made an account (`imgroups account add`): accounts are the local
//!   identities, each with its own view and log. The audience of a group is its members that
//!   are accounts.
//! - Everyone else in the network is a **puppet**: a simulated person who can act too
//!   ([`act`]), held to the same rules as an account. A puppet's change enters the logs through
//!   [`Engine::act_as`], recorded by the same rules code as a change observed on a real Mac.
//! - Groups are named like Messages names them: `chat` + 18 random digits, and an upper-case
//!   UUID as the group id (derived from the seed in a deterministic run, [`imgroups_core::clock`]).
//!
//! The network's state is the store's state: recording a change is making it happen, so the
//! simulator is a recorded network ([`RecordedNetwork`]) and has nothing to carry out. Build
//! an engine on it with [`Simulator::network`].

use imgroups_core::clock;
use imgroups_core::engine::address_not_found;
use imgroups_core::port::{GroupIdentity, Network, RecordedNetwork, SimControls, Tx};
use imgroups_core::{Address, Command, Engine, Outcome, Result};

/// The simulated network.
#[derive(Debug, Clone, Copy, Default)]
pub struct Simulator;

impl Simulator {
    /// The simulator as the network an engine works on.
    pub fn network() -> Network {
        Network::recorded(Simulator)
    }
}

impl RecordedNetwork for Simulator {
    fn reachable(&self, tx: &mut dyn Tx, address: &Address) -> Result<()> {
        // Read in the write's own transaction, so the check commits with the change it
        // allows. A store that keeps no directory has nobody marked unreachable.
        let unreachable = match tx.sim() {
            Some(sim) => sim.is_unreachable(address)?,
            None => false,
        };
        match unreachable {
            true => Err(address_not_found(address)),
            false => Ok(()),
        }
    }

    fn new_group(&self, tx: &mut dyn Tx) -> Result<GroupIdentity> {
        Ok(GroupIdentity {
            identifier: clock::group_identifier(tx.fresh_id()?),
            group_id: clock::guid(tx.fresh_id()?),
        })
    }
}

/// Marks `address` as not on iMessage (or, with `unreachable` false, on it again).
pub async fn set_unreachable(
    controls: &dyn SimControls,
    address: &Address,
    unreachable: bool,
) -> Result<()> {
    controls.set_unreachable(address, unreachable).await
}

/// `puppet`, a person in the simulated network, makes the group change or says or does in a
/// chat what `command` says (built with [`Command`]'s constructors, which validate it). The
/// same rules hold as for an account: a non-member gets `chatNotFound`, a too-small group
/// `preconditionFailed`, and so on. Every account in the chat sees it with `actor` = `puppet`
/// (and `isFromMe` false, unless the puppet is itself one of the accounts). Returns once it is
/// durable, with what an account's write would answer (the message sent, …).
pub async fn act(engine: &Engine, puppet: &Address, command: Command) -> Result<Outcome> {
    engine.act_as(puppet, command).await
}
