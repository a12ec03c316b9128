//! Applying a seed: its accounts made if missing, then its steps in file order, each done by
//! [`crate::perform()`] as fast as the store takes them. `imgroups sim seed` prints what it
//! makes as it goes; the console's `POST /console/api/sim:seed` collects it into its answer.
//!
//! The file is checked before this is called (a bad file writes nothing). A refused step
//! stops the seed there; the steps before it stay done, each its own write, as if typed one
//! by one.

use imgroups_core::{admin, Address, Engine};

use crate::file::{Scenario, What};
use crate::perform::{perform, Cursors, Done, Failed, Known};

/// Something the seed made that its caller needs, reported the moment it exists (a token
/// reported is a token a test can use even if a later step is refused).
#[derive(Debug, Clone, Copy)]
pub enum Made<'a> {
    /// An account made now, and its first token (an account that existed keeps its tokens
    /// and is not reported).
    Token {
        address: &'a Address,
        token: &'a str,
    },
    /// The group a `create` with an `id` made.
    Chat { id: &'a str, guid: &'a str },
    /// The message a message step with an `id` sent or acted on.
    Message { id: &'a str, guid: &'a str },
}

/// How much a seed did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seeded {
    /// Accounts made now.
    pub accounts: usize,
    /// Groups created.
    pub chats: usize,
    /// Steps done.
    pub steps: usize,
}

/// Makes the seed's accounts, then does its steps with `engine`, calling `made` for each
/// token, chat and message as it is known.
pub async fn apply(
    engine: &Engine,
    seed: &Scenario,
    mut made: impl FnMut(Made<'_>),
) -> Result<Seeded, Failed> {
    let store = &**engine.store();
    let mut seeded = Seeded::default();
    for (line, address) in &seed.accounts {
        let (_, token) = admin::ensure_account(store, address)
            .await
            .map_err(|err| Failed::Step { line: *line, err })?;
        if let Some(token) = token {
            made(Made::Token {
                address,
                token: &token,
            });
            seeded.accounts += 1;
        }
    }
    let mut known = Known::of(seed);
    // Seeds have no waits (refused when read), so no account's log position is ever needed.
    let mut cursors = Cursors::new();
    for step in &seed.steps {
        let done = perform(engine, step, &mut known, &mut cursors).await?;
        seeded.steps += 1;
        if let What::Create { .. } = step.what {
            seeded.chats += 1;
        }
        // What the step named: the GUID a test needs to find it again.
        match (&step.id, &done) {
            (Some(id), Done::Chat(guid)) => made(Made::Chat { id, guid }),
            (Some(id), Done::Message(guid)) => made(Made::Message { id, guid }),
            (_, Done::Nothing | Done::Matched(_) | Done::Chat(_) | Done::Message(_)) => {}
        }
    }
    Ok(seeded)
}
