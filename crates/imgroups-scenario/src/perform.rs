//! Doing one step of a scenario or a seed against an [`Engine`]: a puppet through the
//! simulated network's door ([`Engine::act_as`]), an account as its own write, a wait as
//! `sim expect`'s ([`imgroups_core::expect::wait`]). `sim play`, `sim seed` and the console's
//! seed route all do their steps here, so they cannot disagree on what a step means.

use std::collections::HashMap;
use std::time::Duration;

use imgroups_core::action::Value;
use imgroups_core::expect::{self, Expectation, Verdict};
use imgroups_core::port::Store;
use imgroups_core::{
    AccountId, Address, Change, Command, Engine, Error, ErrorKind, Event, Limits, Outcome,
};

use crate::file::{Arg, Ref, Scenario, Step, What};

/// How often a wait re-reads the account's log (as `sim expect` does).
pub const RECHECK: Duration = Duration::from_millis(20);

/// Why a play (or a seed) stopped.
#[derive(Debug)]
pub enum Failed {
    /// The step at `line` was refused.
    Step { line: usize, err: Error },
    /// The wait at `line` was not met: what was expected, and what the account's log showed
    /// instead.
    NotMet {
        line: usize,
        headline: String,
        seen: Vec<Event>,
    },
}

/// What a step made or matched.
#[derive(Debug)]
pub enum Done {
    /// Nothing worth naming (a group change).
    Nothing,
    /// The group a `create` made: its GUID.
    Chat(String),
    /// The message a message action sent or acted on: its GUID.
    Message(String),
    /// The event a wait matched.
    Matched(Box<Event>),
}

/// What the scenario has named so far: chats and messages, by name.
#[derive(Debug, Default)]
pub struct Known {
    pub chats: HashMap<String, String>,
    pub messages: HashMap<String, String>,
}

impl Known {
    /// What a scenario names before its first step: the chats of its `[chats]`.
    pub fn of(scenario: &Scenario) -> Self {
        Known {
            chats: scenario.chats.clone().into_iter().collect(),
            messages: HashMap::new(),
        }
    }

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

/// Each account waited for: where its next wait starts in its log.
pub type Cursors = HashMap<Address, (AccountId, u64)>;

/// Does one step with `engine` (and its store); what it made or matched.
pub async fn perform(
    engine: &Engine,
    step: &Step,
    known: &mut Known,
    cursors: &mut Cursors,
) -> Result<Done, Failed> {
    let store = &**engine.store();
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
            Ok(Done::Chat(guid))
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
                None => engine.act_as(who, command).await,
            }
            .map_err(fail)?;
            match outcome {
                Outcome::Message(message) => {
                    if let Some(id) = &step.id {
                        known.messages.insert(id.clone(), message.guid.clone());
                    }
                    Ok(Done::Message(message.guid))
                }
                Outcome::Chat(_) | Outcome::Empty | Outcome::Created { .. } => Ok(Done::Nothing),
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
                    Ok(Done::Matched(Box::new(event)))
                }
                Verdict::TimedOut { seen, .. } => Err(Failed::NotMet {
                    line: step.line,
                    headline: format!(
                        "{from} did not do {} after #{after} within {}",
                        expectation.describe(),
                        humantime::format_duration(*timeout)
                    ),
                    seen,
                }),
            }
        }
    }
}

/// The account with this address, or why it must be one.
pub async fn account(store: &dyn Store, who: &Address) -> Result<AccountId, Error> {
    store.find_account(who).await?.ok_or_else(|| {
        Error::new(
            ErrorKind::AddressNotFound,
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
