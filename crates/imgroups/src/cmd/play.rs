//! `imgroups sim play SCENARIO`: plays a scenario file (read by `imgroups_scenario`) against
//! the store beside any running server, as `sim act` acts: a puppet through the simulator's
//! door, an account as its own write; waits are `sim expect`'s (each step is done by
//! `imgroups_scenario::perform`). This module keeps the time between steps and prints each
//! step as it is done: `[  0.512s] line 12  zoe@… say "hi" in party -> MESSAGE-GUID`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use imgroups_core::port::Store;
use imgroups_core::{Engine, EngineConfig, Error};
use imgroups_scenario::{
    self as scenario, Cursors, Done, Failed, Files, Known, Scenario, Timing, What,
};
use imgroups_sim::Simulator;
use tokio::time::Instant;

use crate::cli::expect::PlayArgs;
use crate::cmd::expect::{not_met, NOT_MET, USAGE};
use crate::output::{print_lines, terminal_safe};
use crate::store::{closing, open, simulated_world, StoreOptions};

/// Reads and checks a scenario or seed file with `parse`; a file that cannot be read or is
/// refused is reported as `error: FILE:LINE:COL: …` and answers the usage exit code.
pub(crate) fn read_file(
    path: &std::path::Path,
    parse: fn(&str, Files<'_>) -> Result<Scenario, scenario::ScenarioError>,
) -> Result<Scenario, ExitCode> {
    let file = path.display();
    let source = std::fs::read_to_string(path).map_err(|err| {
        eprintln!("error: cannot read {file}: {err} (invalidArgument)");
        ExitCode::from(USAGE)
    })?;
    let dir = path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    parse(&source, Files::In(&dir)).map_err(|err| {
        eprintln!(
            "error: {file}:{}:{}: {} (invalidArgument)",
            err.line, err.column, err.message
        );
        ExitCode::from(USAGE)
    })
}

pub(crate) fn run(args: PlayArgs) -> ExitCode {
    let file = args.scenario.display().to_string();
    let scenario = match read_file(&args.scenario, scenario::parse) {
        Ok(scenario) => scenario,
        Err(code) => return code,
    };
    if args.dry_run {
        print_lines(scenario::timeline(&scenario));
        return ExitCode::SUCCESS;
    }
    let data = args.data.clone();
    let at = data.clone();
    let played = crate::runtime(tokio::runtime::Builder::new_current_thread()).and_then(|rt| {
        rt.block_on(async {
            let store = open(&args.data, StoreOptions::tool())?;
            closing(store, |store| async move {
                simulated_world(&*store, &at, "a scenario's play").await?;
                Ok(play(store, &scenario).await)
            })
            .await
        })
    });
    exit_code(&file, &data, played)
}

/// The exit code of a play or a seed, with its error on stderr: 0 done; 1 a step refused or
/// a wait not met (`error: FILE:LINE: …`); 2 the store could not be used.
pub(crate) fn exit_code(
    file: &str,
    data: &crate::cli::DataArg,
    outcome: Result<Result<(), Failed>, Error>,
) -> ExitCode {
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(Failed::Step { line, err })) => {
            let err = crate::store::in_store(err, data);
            eprintln!(
                "error: {file}:{line}: {} ({})",
                imgroups_server::error_message(&err),
                imgroups_server::error_code(err.kind)
            );
            ExitCode::from(NOT_MET)
        }
        Ok(Err(Failed::NotMet {
            line,
            headline,
            seen,
        })) => {
            eprint!("error: {file}:{line}: {}", not_met(&headline, &seen, false));
            ExitCode::from(NOT_MET)
        }
        Err(err) => {
            let _ = crate::output::exit(Err(crate::store::in_store(err, data)), false);
            ExitCode::from(USAGE)
        }
    }
}

async fn play(store: Arc<dyn Store>, scenario: &Scenario) -> Result<(), Failed> {
    let engine = Engine::new(store.clone(), Simulator::network(), EngineConfig::default());
    let mut known = Known::of(scenario);
    // Each account waited for: where its next wait starts in its log. A wait sees what the
    // account did since the play started, or since the action its previous wait matched.
    let mut cursors = Cursors::new();
    for step in &scenario.steps {
        if let What::Wait { from, .. } = &step.what {
            if cursors.contains_key(from) {
                continue;
            }
            let fail = |err: Error| Failed::Step {
                line: step.line,
                err,
            };
            let account = scenario::account(&*store, from).await.map_err(fail)?;
            let head = store.log_bounds(account).await.map_err(fail)?.head;
            cursors.insert(from.clone(), (account, head));
        }
    }
    // With a controllable clock (`serve --seed`), a scenario's times move that clock instead
    // of passing: steps are stamped `at`/`after` apart, the same on every run, and nothing
    // sleeps. Waits still wait in real time, for what a bot does.
    let first_line = scenario.steps.first().map_or(1, |step| step.line);
    let controllable = store
        .clock()
        .await
        .map_err(|err| Failed::Step {
            line: first_line,
            err,
        })?
        .is_some();
    let start = Instant::now();
    let mut previous_end = start;
    // Where the scenario's timeline is on the controllable clock, from the play's start.
    let mut played = Duration::ZERO;
    for step in &scenario.steps {
        if controllable {
            let target = match step.timing {
                Timing::At(at) => at,
                Timing::After(after) => played + after,
            };
            if target > played {
                let nanos = i64::try_from((target - played).as_nanos()).unwrap_or(i64::MAX);
                store
                    .advance_clock(nanos)
                    .await
                    .map_err(|err| Failed::Step {
                        line: step.line,
                        err,
                    })?;
                played = target;
            }
        } else {
            let when = match step.timing {
                Timing::At(at) => start + at,
                Timing::After(after) => previous_end + after,
            };
            tokio::time::sleep_until(when).await;
        }
        let done = match scenario::perform(&engine, step, &mut known, &mut cursors).await? {
            Done::Nothing => String::new(),
            Done::Chat(guid) | Done::Message(guid) => format!(" -> {guid}"),
            Done::Matched(event) => format!(" -> {}", crate::cmd::expect::line(&event)),
        };
        let elapsed = scenario::seconds(if controllable {
            played
        } else {
            start.elapsed()
        });
        let line = format!(
            "[{elapsed:>9}] line {:<4} {}{done}",
            step.line,
            step.describe()
        );
        print_lines([terminal_safe(&line, false).into_owned()]);
        previous_end = Instant::now();
    }
    Ok(())
}
