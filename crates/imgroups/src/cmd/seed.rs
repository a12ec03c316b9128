//! `imgroups sim seed FILE`: makes a known world at once — accounts, then a seed file's steps
//! in file order — beside any running server. A seed is read by `crate::scenario` (in its
//! seed mode: no times, no waits) and its steps are done by `sim play`'s own
//! [`perform`], so the two cannot drift apart.
//!
//! Everything is checked before the store is opened: a bad file writes nothing. A refused
//! step stops the seed there; the steps before it stay done (each is its own write, as if
//! typed one by one), which is why `--reset` exists.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use imgroups_core::port::{ResetScope, Store};
use imgroups_core::{admin, Engine, EngineConfig};
use imgroups_sim::Simulator;

use crate::cli::expect::SeedArgs;
use crate::cmd::play::{exit_code, perform, read_file, Failed, Known};
use crate::output::{print_lines, terminal_safe};
use crate::scenario::{self, Scenario, What};
use crate::store::{closing, open, StoreOptions};

pub(crate) fn run(args: SeedArgs) -> ExitCode {
    let file = args.file.display().to_string();
    let seed = match read_file(&args.file, scenario::parse_seed) {
        Ok(seed) => seed,
        Err(code) => return code,
    };
    let data = args.data.clone();
    let reset = args.reset;
    let seeded = crate::runtime(tokio::runtime::Builder::new_current_thread()).and_then(|rt| {
        rt.block_on(async {
            let store = open(&args.data, StoreOptions::tool())?;
            closing(store, |store| async move {
                if reset {
                    store.reset(ResetScope { accounts: false }).await?;
                }
                Ok(apply(store, &seed).await)
            })
            .await
        })
    });
    // A seed has no waits (refused when read): it stops only on a refused step.
    exit_code(&file, &data, seeded)
}

/// Makes the seed's accounts, then does its steps, printing each line as it is known (a
/// token printed is a token a test can use even if a later step is refused).
async fn apply(store: Arc<dyn Store>, seed: &Scenario) -> Result<(), Failed> {
    let mut accounts = 0;
    for (line, address) in &seed.accounts {
        let (_, token) = admin::ensure_account(&*store, address)
            .await
            .map_err(|err| Failed::Step { line: *line, err })?;
        if let Some(token) = token {
            print_lines([format!("token {address} {token}")]);
            accounts += 1;
        }
    }
    let engine = Engine::new(store.clone(), Simulator::network(), EngineConfig::default());
    let mut known = Known {
        chats: seed.chats.clone().into_iter().collect(),
        messages: HashMap::new(),
    };
    // Seeds have no waits, so no account's log position is ever needed.
    let mut cursors = HashMap::new();
    let mut chats = 0;
    for step in &seed.steps {
        perform(&engine, &*store, step, &mut known, &mut cursors).await?;
        let (kind, made) = match &step.what {
            What::Create { .. } => {
                chats += 1;
                ("chat", &known.chats)
            }
            What::Act { .. } | What::Wait { .. } => ("message", &known.messages),
        };
        // What the step named: the GUID a test needs to find it again.
        if let Some((id, guid)) = step.id.as_ref().and_then(|id| Some((id, made.get(id)?))) {
            let line = format!("{kind} {id} {guid}");
            print_lines([terminal_safe(&line, false).into_owned()]);
        }
    }
    print_lines([format!(
        "seeded: {accounts} accounts, {chats} chats, {} steps",
        seed.steps.len()
    )]);
    Ok(())
}
