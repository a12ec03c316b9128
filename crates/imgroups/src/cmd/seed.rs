//! `imgroups sim seed FILE`: makes a known world at once — accounts, then a seed file's steps
//! in file order — beside any running server. The file is read and applied by
//! `imgroups_scenario` (its seed mode: no times, no waits; `seed::apply`, whose steps are
//! `sim play`'s), the same code as the console's `POST /console/api/sim:seed`; this module
//! opens the store and prints what the seed made as it goes.
//!
//! Everything is checked before the store is opened: a bad file writes nothing. A refused
//! step stops the seed there; the steps before it stay done (each is its own write, as if
//! typed one by one), which is why `--reset` exists.

use std::process::ExitCode;
use std::sync::Arc;

use imgroups_core::port::{ResetScope, Store};
use imgroups_core::{Engine, EngineConfig};
use imgroups_scenario::seed::Made;
use imgroups_scenario::{self as scenario, Failed, Scenario};
use imgroups_sim::Simulator;

use crate::cli::expect::SeedArgs;
use crate::cmd::play::{exit_code, read_file};
use crate::output::{print_lines, terminal_safe};
use crate::store::{closing, open, simulated_world, StoreOptions};

pub(crate) fn run(args: SeedArgs) -> ExitCode {
    let file = args.file.display().to_string();
    let seed = match read_file(&args.file, scenario::parse_seed) {
        Ok(seed) => seed,
        Err(code) => return code,
    };
    let data = args.data.clone();
    let at = data.clone();
    let reset = args.reset;
    let seeded = crate::runtime(tokio::runtime::Builder::new_current_thread()).and_then(|rt| {
        rt.block_on(async {
            let store = open(&args.data, StoreOptions::tool())?;
            closing(store, |store| async move {
                simulated_world(&*store, &at, "a seed").await?;
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

/// Applies the seed, printing each line as it is known (a token printed is a token a test
/// can use even if a later step is refused), then the counts.
async fn apply(store: Arc<dyn Store>, seed: &Scenario) -> Result<(), Failed> {
    let engine = Engine::new(store, Simulator::network(), EngineConfig::default());
    let seeded = scenario::seed::apply(&engine, seed, |made| {
        let line = match made {
            Made::Token { address, token } => format!("token {address} {token}"),
            Made::Chat { id, guid } => format!("chat {id} {guid}"),
            Made::Message { id, guid } => format!("message {id} {guid}"),
        };
        print_lines([terminal_safe(&line, false).into_owned()]);
    })
    .await?;
    print_lines([format!(
        "seeded: {} accounts, {} chats, {} steps",
        seeded.accounts, seeded.chats, seeded.steps
    )]);
    Ok(())
}
