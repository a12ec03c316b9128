//! `imgroups sim play SCENARIO`: plays a scenario file (`crate::scenario`) against the store
//! beside any running server, as `sim act` acts: a puppet through the simulator's door
//! (`imgroups_sim::act`), an account as its own write; waits are `sim expect`'s. Each step is
//! printed as it is done: `[  0.512s] line 12  zoe@… say "hi" in party -> MESSAGE-GUID`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use imgroups_core::action::Value;
use imgroups_core::expect::{self, Expectation, Verdict};
use imgroups_core::port::Store;
use imgroups_core::{
    AccountId, Address, Change, Command, Engine, EngineConfig, Error, Event, Limits, Outcome,
};
use imgroups_sim::Simulator;
use tokio::time::Instant;

use crate::cli::expect::PlayArgs;
use crate::cmd::expect::{not_met, NOT_MET, RECHECK, USAGE};
use crate::output::{print_lines, terminal_safe};
use crate::scenario::{self, Arg, Ref, Scenario, Step, Timing, What};
use crate::store::{closing, open, StoreOptions};

/// Reads and checks a scenario or seed file with `parse`; a file that cannot be read or is
/// refused is reported as `error: FILE:LINE:COL: …` and answers the usage exit code.
pub(crate) fn read_file(
    path: &std::path::Path,
    parse: fn(&str, &std::path::Path) -> Result<Scenario, scenario::ScenarioError>,
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
    parse(&source, &dir).map_err(|err| {
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
    let played = crate::runtime(tokio::runtime::Builder::new_current_thread()).and_then(|rt| {
        rt.block_on(async {
            let store = open(&args.data, StoreOptions::tool())?;
            closing(
                store,
                |store| async move { Ok(play(store, &scenario).await) },
            )
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
                err.message,
                imgroups_server::error_code(err.kind)
            );
            ExitCode::from(NOT_MET)
        }
        Ok(Err(Failed::NotMet { line, report })) => {
            eprint!("error: {file}:{line}: {report}");
            ExitCode::from(NOT_MET)
        }
        Err(err) => {
            let _ = crate::output::exit(Err(crate::store::in_store(err, data)), false);
            ExitCode::from(USAGE)
        }
    }
}

/// Why a play (or a seed) stopped.
pub(crate) enum Failed {
    /// The step at `line` was refused.
    Step { line: usize, err: Error },
    /// The wait at `line` was not met; what the account's log showed.
    NotMet { line: usize, report: String },
}

/// What the scenario has named so far: chats and messages, by name.
#[derive(Default)]
pub(crate) struct Known {
    pub(crate) chats: HashMap<String, String>,
    pub(crate) messages: HashMap<String, String>,
}

impl Known {
    fn chat(&self, chat: &Ref) -> Result<String, Error> {
        match chat {
            Ref::Guid(guid) => Ok(guid.clone()),
            Ref::Named(name) => self
                .chats
                .get(name)
                .cloned()
                .ok_or_else(|| Error::invalid(format!("chat {name:?} was not made"))),
        }
    }

    fn message(&self, message: &Ref) -> Result<String, Error> {
        match message {
            Ref::Guid(guid) => Ok(guid.clone()),
            Ref::Named(name) => self
                .messages
                .get(name)
                .cloned()
                .ok_or_else(|| Error::invalid(format!("message {name:?} was not seen"))),
        }
    }
}

async fn play(store: Arc<dyn Store>, scenario: &Scenario) -> Result<(), Failed> {
    let engine = Engine::new(store.clone(), Simulator::network(), EngineConfig::default());
    let mut known = Known {
        chats: scenario.chats.clone().into_iter().collect(),
        messages: HashMap::new(),
    };
    // Each account waited for: where its next wait starts in its log. A wait sees what the
    // account did since the play started, or since the action its previous wait matched.
    let mut cursors: HashMap<Address, (AccountId, u64)> = HashMap::new();
    for step in &scenario.steps {
        if let What::Wait { from, .. } = &step.what {
            if cursors.contains_key(from) {
                continue;
            }
            let fail = |err: Error| Failed::Step {
                line: step.line,
                err,
            };
            let account = account(&*store, from).await.map_err(fail)?;
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
        let done = perform(&engine, &*store, step, &mut known, &mut cursors).await?;
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

/// Does one step; what it made, for the progress line (` -> GUID`). `sim seed` does its
/// steps here too, so a seed and a scenario cannot disagree on what a step means.
pub(crate) async fn perform(
    engine: &Engine,
    store: &dyn Store,
    step: &Step,
    known: &mut Known,
    cursors: &mut HashMap<Address, (AccountId, u64)>,
) -> Result<String, Failed> {
    let fail = |err: Error| Failed::Step {
        line: step.line,
        err,
    };
    match &step.what {
        What::Create {
            who,
            addresses,
            name,
        } => {
            let account = account(store, who).await.map_err(fail)?;
            let command = Command::create_chat(addresses, None).map_err(fail)?;
            let chat = match engine.execute(account, None, command).await.map_err(fail)? {
                Outcome::Created { chat, .. } | Outcome::Chat(chat) => chat,
                Outcome::Empty | Outcome::Message(_) => return Err(fail(Error::internal())),
            };
            let guid = chat.guid.to_string();
            if let Some(name) = name.as_deref().filter(|n| !n.trim().is_empty()) {
                let rename = Command::set_display_name(&guid, name).map_err(fail)?;
                engine.execute(account, None, rename).await.map_err(fail)?;
            }
            if let Some(id) = &step.id {
                known.chats.insert(id.clone(), guid.clone());
            }
            Ok(format!(" -> {guid}"))
        }
        What::Act {
            who,
            action,
            chat,
            args,
        } => {
            let chat = known.chat(chat).map_err(fail)?;
            let values = args
                .iter()
                .map(|arg| {
                    Ok(match arg {
                        Arg::Text(text) => Value::Text(text.clone()),
                        Arg::Message(message) => Value::Text(known.message(message)?),
                        Arg::Addresses(list) => Value::Addresses(list.clone()),
                        Arg::File(path) => {
                            std::fs::read(path).map(Value::Image).map_err(|err| {
                                Error::invalid(format!("cannot read {}: {err}", path.display()))
                            })?
                        }
                    })
                })
                .collect::<Result<Vec<_>, Error>>()
                .map_err(fail)?;
            let command = action
                .command(&chat, values, &Limits::default())
                .map_err(fail)?;
            // An account acts as itself; anyone else is a puppet of the simulated network.
            let outcome = match store.find_account(who).await.map_err(fail)? {
                Some(account) => engine.execute(account, None, command).await,
                None => imgroups_sim::act(engine, who, command).await,
            }
            .map_err(fail)?;
            match outcome {
                Outcome::Message(message) => {
                    if let Some(id) = &step.id {
                        known.messages.insert(id.clone(), message.guid.clone());
                    }
                    Ok(format!(" -> {}", message.guid))
                }
                Outcome::Chat(_) | Outcome::Empty | Outcome::Created { .. } => Ok(String::new()),
            }
        }
        What::Wait {
            from,
            kind,
            chat,
            matching,
            timeout,
        } => {
            let chat = chat
                .as_ref()
                .map(|c| known.chat(c))
                .transpose()
                .map_err(fail)?;
            let expectation =
                Expectation::new(*kind, chat.as_deref(), matching.as_deref()).map_err(fail)?;
            let Some((account, after)) = cursors.get(from).copied() else {
                return Err(fail(Error::internal()));
            };
            let verdict = expect::wait(store, account, &expectation, after, *timeout, RECHECK)
                .await
                .map_err(fail)?;
            match verdict {
                Verdict::Matched(event) => {
                    cursors.insert(from.clone(), (account, event.sequence));
                    if let Some(id) = &step.id {
                        let guid = message_of(&event).ok_or_else(|| {
                            fail(Error::invalid(format!(
                                "the wait matched #{}, which is about no message, so id {id:?} \
                                 names nothing",
                                event.sequence
                            )))
                        })?;
                        known.messages.insert(id.clone(), guid);
                    }
                    Ok(format!(" -> {}", crate::cmd::expect::line(&event)))
                }
                Verdict::TimedOut { seen, .. } => {
                    let headline = format!(
                        "{from} did not do {} after #{after} within {}",
                        expectation.describe(),
                        humantime::format_duration(*timeout)
                    );
                    Err(Failed::NotMet {
                        line: step.line,
                        report: not_met(&headline, &seen, false),
                    })
                }
            }
        }
    }
}

/// The account with this address, or why it must be one.
pub(crate) async fn account(store: &dyn Store, who: &Address) -> Result<AccountId, Error> {
    store.find_account(who).await?.ok_or_else(|| {
        Error::new(
            imgroups_core::ErrorKind::AddressNotFound,
            format!(
                "{who} is not an account (only an account creates groups or is waited for; \
                 `imgroups account add {who}` makes one)"
            ),
        )
    })
}

/// The message an event is about, if any.
fn message_of(event: &Event) -> Option<String> {
    match &event.change {
        Change::MessageReceived { message } => Some(message.guid.clone()),
        Change::MessageEdited { message_guid, .. }
        | Change::MessageUnsent { message_guid, .. }
        | Change::ReactionAdded { message_guid, .. }
        | Change::ReactionRemoved { message_guid, .. } => Some(message_guid.clone()),
        _ => None,
    }
}
