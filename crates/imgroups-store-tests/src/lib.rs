//! The store conformance suite: what every implementation of the store port
//! ([`imgroups_core::port::Store`]) must do, checked through the port only, so the SQLite and
//! PostgreSQL stores run the very same tests. A store's test crate declares them all with
//! [`conformance_suite!`], given how to make a [`Fixture`] that opens it.
//!
//! - [`model`]: random interleavings of writes by several accounts and by simulated people
//!   (puppets), messages said by both in groups, idempotent retries and restarts, against a
//!   plain in-memory model of the group rules (`imgroups_core::engine::rules`). After every
//!   run: each account's log is 1, 2, 3, … with exactly the events the model expects
//!   (invariants 1 and 2), replays returned the original outcome and appended nothing (3),
//!   catch-up windows return exactly `after < seq <= head` (5), and the stored state equals
//!   the model's state, which is the replay of the accepted commands (6).
//! - [`ingest`]: a change observed elsewhere produces exactly the events our own write of it
//!   would have, and only what is not yet reflected.
//! - [`admin_tokens`], [`listings`], [`faults`], [`fault_count_is_atomic`]: the console's
//!   credential, account and directory listings, injected faults (simulator controls).
//! - [`reset`]: a simulator reset clears the world and keeps sequences, accounts and tokens.
//! - [`snapshot`]: an exported world imported elsewhere, or over a later one, is the same world.
//! - [`clock`]: the controllable clock and seeded identifiers of deterministic runs.
//! - [`observer_cursors`], [`observed_ids`]: what a backend observing an external source
//!   (chat.db) keeps in the store: its cursor and the ids it recorded, both committing (or
//!   rolling back) with the transaction and surviving a restart.
//! - [`messages_are_delivered`], [`messages_change`], [`messages_are_read`],
//!   [`messages_are_listed`]: messages in groups and direct chats, in every member's log and
//!   copy; tapbacks, edits, unsends and reads; listings and their pages (`messages`).

mod clock;
mod messages;
pub mod pg;
mod reset;
mod snapshot;
mod suite;

pub use clock::clock;
pub use reset::reset;
pub use snapshot::snapshot;

pub use messages::{
    messages_are_delivered, messages_are_listed, messages_are_read, messages_change,
    messages_keep_as_delivered,
};

use std::collections::HashMap;
use std::sync::Arc;

use imgroups_core::port::{SimStore, Store, TokenRef};
use imgroups_core::{
    AccountId, Address, Change, ChatGuid, Command, Engine, EngineConfig, ErrorKind, Event, Message,
    Mutation, NewMessage, Observed, ObservedBatch, Outcome, Timestamp,
};
use imgroups_sim::Simulator;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// One database for one test case.
pub trait Fixture {
    /// Opens the store on this fixture's database; again after [`Store::close`], it is a
    /// restart on the same data.
    fn open(&self) -> Arc<dyn SimStore>;
}

const ACCOUNTS: [&str; 3] = ["a@x.com", "b@x.com", "c@x.com"];
/// People who are not accounts: they can be added, and act as puppets.
const OTHERS: [&str; 4] = ["p@x.com", "q@x.com", "r@x.com", "s@x.com"];
const NAMES: [&str; 3] = ["Alpha", "Beta", "Gamma"];
const SAYINGS: [&str; 3] = ["hi", "see you\nat 8", "ok 👍"];

fn everyone() -> Vec<&'static str> {
    ACCOUNTS.iter().chain(OTHERS.iter()).copied().collect()
}

/// A complete PNG, different for each variant (its width), with valid chunk CRCs: icons are
/// checked down to their structure.
fn png(variant: u8) -> Vec<u8> {
    imgroups_core::testing::png_of(1 + u32::from(variant), 1, &[])
}

/// `actor` indexes [`everyone`]: an account, or (from `ACCOUNTS.len()` on) a puppet.
#[derive(Debug, Clone)]
enum Op {
    Create {
        actor: usize,
        members: Vec<usize>,
    },
    Rename {
        actor: usize,
        group: usize,
        name: usize,
    },
    Add {
        actor: usize,
        group: usize,
        who: usize,
    },
    Remove {
        actor: usize,
        group: usize,
        who: usize,
    },
    Leave {
        actor: usize,
        group: usize,
    },
    SetIcon {
        actor: usize,
        group: usize,
        variant: u8,
    },
    RemoveIcon {
        actor: usize,
        group: usize,
    },
    /// A text message ([`SAYINGS`]) in the group.
    Say {
        actor: usize,
        group: usize,
        text: usize,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let account = 0..ACCOUNTS.len();
    // Mostly accounts; now and then a puppet.
    let actor = prop_oneof![3 => 0..ACCOUNTS.len(), 1 => ACCOUNTS.len()..everyone().len()];
    let group = 0..8usize;
    let who = 0..everyone().len();
    prop_oneof![
        2 => (account, proptest::collection::vec(who.clone(), 1..6))
            .prop_map(|(actor, members)| Op::Create { actor, members }),
        3 => (actor.clone(), group.clone(), 0..NAMES.len())
            .prop_map(|(actor, group, name)| Op::Rename { actor, group, name }),
        3 => (actor.clone(), group.clone(), who.clone())
            .prop_map(|(actor, group, who)| Op::Add { actor, group, who }),
        3 => (actor.clone(), group.clone(), who)
            .prop_map(|(actor, group, who)| Op::Remove { actor, group, who }),
        1 => (actor.clone(), group.clone()).prop_map(|(actor, group)| Op::Leave { actor, group }),
        2 => (actor.clone(), group.clone(), 0..2u8)
            .prop_map(|(actor, group, variant)| Op::SetIcon { actor, group, variant }),
        1 => (actor.clone(), group.clone())
            .prop_map(|(actor, group)| Op::RemoveIcon { actor, group }),
        3 => (actor, group, 0..SAYINGS.len())
            .prop_map(|(actor, group, text)| Op::Say { actor, group, text }),
        1 => Just(Op::Restart),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct ModelEvent {
    chat: String,
    is_from_me: bool,
    actor: String,
    change: Change,
}

#[derive(Debug, Clone)]
struct Group {
    guid: String,
    members: Vec<String>,
    name: Option<String>,
    icon: Option<u8>,
}

#[derive(Default)]
struct Model {
    groups: Vec<Group>,
    logs: HashMap<String, Vec<ModelEvent>>,
}

type Expect = Result<(), ErrorKind>;

/// A message as the model expects `chat`'s member to receive it, without what the store
/// chooses (its GUID and time: see [`without_identity`]).
fn said(chat: &str, text: &str, is_from_me: bool, sender: &str) -> Message {
    Message {
        text: text.to_owned(),
        is_from_me,
        is_sent: true,
        chat_guid: ChatGuid::parse(chat).ok(),
        sender: (!is_from_me).then(|| Address::from_trusted(sender.to_owned())),
        ..Message::default()
    }
}

/// `change` with a received message's GUID and time blanked, as [`said`] writes them.
fn without_identity(change: &Change) -> Change {
    match change {
        Change::MessageReceived { message } => Change::MessageReceived {
            message: Box::new(Message {
                guid: String::new(),
                date_created: Timestamp(0),
                ..(**message).clone()
            }),
        },
        other => other.clone(),
    }
}

/// The first request under an idempotency key and what it was answered.
type Remembered = (Command, Result<Outcome, ErrorKind>);

impl Model {
    fn record(&mut self, group: usize, actor: &str, audience: &[String], changes: &[Change]) {
        let chat = self.groups[group].guid.clone();
        for member in audience {
            if !ACCOUNTS.contains(&member.as_str()) {
                continue;
            }
            let log = self.logs.entry(member.clone()).or_default();
            for change in changes {
                log.push(ModelEvent {
                    chat: chat.clone(),
                    is_from_me: member == actor,
                    actor: actor.to_owned(),
                    change: change.clone(),
                });
            }
        }
    }

    fn visible(&self, group: usize, actor: &str) -> Expect {
        if self.groups[group].members.iter().any(|m| m == actor) {
            Ok(())
        } else {
            Err(ErrorKind::ChatNotFound)
        }
    }

    /// Applies `op` by the rules; returns what the store must answer.
    fn apply(&mut self, op: &Op) -> Expect {
        match op {
            Op::Restart | Op::Create { .. } => unreachable!("handled by the driver"),
            Op::Rename { actor, group, name } => {
                let actor = everyone()[*actor];
                self.visible(*group, actor)?;
                let name = NAMES[*name].to_owned();
                if self.groups[*group].name.as_ref() != Some(&name) {
                    self.groups[*group].name = Some(name.clone());
                    let audience = self.groups[*group].members.clone();
                    let change = Change::DisplayNameChanged { display_name: name };
                    self.record(*group, actor, &audience, &[change]);
                }
                Ok(())
            }
            Op::Add { actor, group, who } => {
                let actor = everyone()[*actor];
                self.visible(*group, actor)?;
                let who = everyone()[*who].to_owned();
                if self.groups[*group].members.contains(&who) {
                    return Err(ErrorKind::PreconditionFailed);
                }
                self.groups[*group].members.push(who.clone());
                let audience = self.groups[*group].members.clone();
                let change = Change::ParticipantAdded {
                    participant: Address::from_trusted(who),
                };
                self.record(*group, actor, &audience, &[change]);
                Ok(())
            }
            Op::Remove { actor, group, who } => {
                let actor = everyone()[*actor];
                self.visible(*group, actor)?;
                let who = everyone()[*who].to_owned();
                let members = self.groups[*group].members.clone();
                if who == actor || !members.contains(&who) {
                    return Err(ErrorKind::PreconditionFailed);
                }
                let others = members.len() - 1;
                if others < 3 || others - 1 < 2 {
                    return Err(ErrorKind::PreconditionFailed);
                }
                let change = Change::ParticipantRemoved {
                    participant: Address::from_trusted(who.clone()),
                };
                self.record(*group, actor, &members, &[change]);
                self.groups[*group].members.retain(|m| *m != who);
                Ok(())
            }
            Op::Leave { actor, group } => {
                let actor = everyone()[*actor];
                self.visible(*group, actor)?;
                let members = self.groups[*group].members.clone();
                if members.len() - 1 < 3 {
                    return Err(ErrorKind::PreconditionFailed);
                }
                let change = Change::ParticipantLeft {
                    participant: Address::from_trusted(actor.to_owned()),
                };
                self.record(*group, actor, &members, &[change]);
                self.groups[*group].members.retain(|m| m != actor);
                Ok(())
            }
            Op::SetIcon {
                actor,
                group,
                variant,
            } => {
                let actor = everyone()[*actor];
                self.visible(*group, actor)?;
                if self.groups[*group].icon != Some(*variant) {
                    self.groups[*group].icon = Some(*variant);
                    let audience = self.groups[*group].members.clone();
                    self.record(*group, actor, &audience, &[Change::IconChanged]);
                }
                Ok(())
            }
            Op::Say { actor, group, text } => {
                let actor = everyone()[*actor];
                self.visible(*group, actor)?;
                let chat = self.groups[*group].guid.clone();
                for member in self.groups[*group].members.clone() {
                    if !ACCOUNTS.contains(&member.as_str()) {
                        continue;
                    }
                    let is_from_me = member == actor;
                    let message = said(&chat, SAYINGS[*text], is_from_me, actor);
                    self.logs.entry(member).or_default().push(ModelEvent {
                        chat: chat.clone(),
                        is_from_me,
                        actor: actor.to_owned(),
                        change: Change::MessageReceived {
                            message: Box::new(message),
                        },
                    });
                }
                Ok(())
            }
            Op::RemoveIcon { actor, group } => {
                let actor = everyone()[*actor];
                self.visible(*group, actor)?;
                if self.groups[*group].icon.take().is_some() {
                    let audience = self.groups[*group].members.clone();
                    self.record(*group, actor, &audience, &[Change::IconRemoved]);
                }
                Ok(())
            }
        }
    }
}

fn command(model: &Model, op: &Op) -> Option<Command> {
    let guid = |g: usize| model.groups[g].guid.clone();
    Some(match op {
        Op::Rename { group, name, .. } => {
            Command::set_display_name(&guid(*group), NAMES[*name]).ok()?
        }
        Op::Add { group, who, .. } => {
            Command::add_participants(&guid(*group), &[everyone()[*who].to_owned()]).ok()?
        }
        Op::Remove { group, who, .. } => {
            Command::remove_participants(&guid(*group), &[everyone()[*who].to_owned()]).ok()?
        }
        Op::Leave { group, .. } => Command::leave(&guid(*group)).ok()?,
        Op::SetIcon { group, variant, .. } => {
            Command::set_icon(&guid(*group), png(*variant), &Default::default()).ok()?
        }
        Op::RemoveIcon { group, .. } => Command::remove_icon(&guid(*group)).ok()?,
        Op::Say { group, text, .. } => {
            let message = NewMessage::new(SAYINGS[*text], None, None, None, Vec::new()).ok()?;
            Command::send_text(&guid(*group), message).ok()?
        }
        Op::Create { .. } | Op::Restart => return None,
    })
}

fn actor_of(op: &Op) -> usize {
    match op {
        Op::Create { actor, .. }
        | Op::Rename { actor, .. }
        | Op::Add { actor, .. }
        | Op::Remove { actor, .. }
        | Op::Leave { actor, .. }
        | Op::SetIcon { actor, .. }
        | Op::RemoveIcon { actor, .. }
        | Op::Say { actor, .. } => *actor,
        Op::Restart => 0,
    }
}

/// `op` with its group index brought into range.
fn in_range(op: Op, groups: usize) -> Op {
    match op {
        Op::Rename { actor, group, name } => Op::Rename {
            actor,
            group: group % groups,
            name,
        },
        Op::Add { actor, group, who } => Op::Add {
            actor,
            group: group % groups,
            who,
        },
        Op::Remove { actor, group, who } => Op::Remove {
            actor,
            group: group % groups,
            who,
        },
        Op::Leave { actor, group } => Op::Leave {
            actor,
            group: group % groups,
        },
        Op::SetIcon {
            actor,
            group,
            variant,
        } => Op::SetIcon {
            actor,
            group: group % groups,
            variant,
        },
        Op::RemoveIcon { actor, group } => Op::RemoveIcon {
            actor,
            group: group % groups,
        },
        Op::Say { actor, group, text } => Op::Say {
            actor,
            group: group % groups,
            text,
        },
        other => other,
    }
}

fn engine(store: Arc<dyn Store>) -> Engine {
    Engine::new(store, Simulator::network(), EngineConfig::default())
}

fn run(fixture: &dyn Fixture, ops: Vec<(Op, Option<u8>)>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TestCaseError::fail(format!("runtime: {e}")))?;
    let mut store = fixture.open();
    let mut ids = HashMap::new();
    for a in ACCOUNTS {
        let address = Address::parse(a).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (id, _) = rt
            .block_on(store.ensure_account(&address))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        ids.insert(a, id);
    }
    let mut groups = engine(store.clone());
    let mut model = Model::default();
    // (account, method, key) -> (command, outcome) as first answered.
    let mut remembered: HashMap<(AccountId, &str, String), Remembered> = HashMap::new();

    for (op, key) in ops {
        if let Op::Restart = op {
            rt.block_on(store.close());
            store = fixture.open();
            groups = engine(store.clone());
            continue;
        }
        let actor = everyone()[actor_of(&op)];
        if let Op::Create { members, .. } = &op {
            let account = ids[actor];
            let mut wanted: Vec<String> = Vec::new();
            for m in members {
                let a = everyone()[*m].to_owned();
                if !wanted.contains(&a) {
                    wanted.push(a);
                }
            }
            if wanted.len() < 2 {
                continue;
            }
            let cmd = Command::create_chat(&wanted, None)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got = rt.block_on(groups.execute(account, None, cmd));
            if wanted.iter().any(|w| w == actor) {
                prop_assert_eq!(
                    got.map(|_| ()).map_err(|e| e.kind),
                    Err(ErrorKind::PreconditionFailed)
                );
                continue;
            }
            let Ok(Outcome::Created { chat, .. }) = got else {
                return Err(TestCaseError::fail(format!("create failed: {got:?}")));
            };
            let mut sorted = wanted.clone();
            sorted.sort();
            let existing = model.groups.iter().position(|g| {
                let mut others: Vec<String> =
                    g.members.iter().filter(|m| *m != actor).cloned().collect();
                others.sort();
                g.members.iter().any(|m| m == actor) && others == sorted
            });
            match existing {
                Some(i) => prop_assert_eq!(&model.groups[i].guid, &chat.guid.to_string()),
                None => {
                    prop_assert!(model.groups.iter().all(|g| g.guid != chat.guid.to_string()));
                    let mut members = vec![actor.to_owned()];
                    members.extend(wanted.iter().cloned());
                    model.groups.push(Group {
                        guid: chat.guid.to_string(),
                        members,
                        name: None,
                        icon: None,
                    });
                    for w in &wanted {
                        if ACCOUNTS.contains(&w.as_str()) {
                            model.logs.entry(w.clone()).or_default().push(ModelEvent {
                                chat: chat.guid.to_string(),
                                is_from_me: false,
                                actor: actor.to_owned(),
                                change: Change::ParticipantAdded {
                                    participant: Address::from_trusted(w.clone()),
                                },
                            });
                        }
                    }
                }
            }
            continue;
        }
        if model.groups.is_empty() {
            continue;
        }
        let op = in_range(op, model.groups.len());
        let Some(cmd) = command(&model, &op) else {
            continue;
        };

        let Some(&account) = ids.get(actor) else {
            // A puppet: a person in the simulated network, not an account. No keys.
            let puppet = Address::from_trusted(actor.to_owned());
            let got = rt
                .block_on(imgroups_sim::act(&groups, &puppet, cmd))
                .map(drop)
                .map_err(|e| e.kind);
            let expected = model.apply(&op);
            prop_assert_eq!(got, expected, "puppet {:?}", op);
            continue;
        };
        let key = key.map(|k| format!("key-{k}"));
        let method = cmd.method();
        let got = rt
            .block_on(groups.execute(account, key.clone(), cmd.clone()))
            .map_err(|e| e.kind);
        let first = key
            .as_ref()
            .and_then(|k| remembered.get(&(account, method, k.clone())).cloned());
        match first {
            Some((first_cmd, first_outcome)) if first_cmd == cmd => {
                prop_assert_eq!(
                    &got,
                    &first_outcome,
                    "a replay returns the original outcome"
                );
            }
            Some(_) => {
                prop_assert_eq!(got.map(|_| ()), Err(ErrorKind::DuplicateMessage));
            }
            None => {
                let expected = model.apply(&op);
                prop_assert_eq!(got.clone().map(|_| ()), expected, "{:?}", op);
                if let Some(k) = key {
                    remembered.insert((account, method, k), (cmd, got));
                }
            }
        }
    }

    // Invariants 1, 2, 5: every log is exactly what the model expects, numbered 1..=n, and
    // any catch-up window returns exactly its slice.
    let mut logs = HashMap::new();
    for a in ACCOUNTS {
        let account = ids[a];
        let head = rt
            .block_on(store.log_bounds(account))
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .head;
        let events = rt
            .block_on(store.read_events(account, 0, head, usize::MAX >> 1))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expected = model.logs.get(a).cloned().unwrap_or_default();
        prop_assert_eq!(head as usize, expected.len(), "{} head", a);
        for (i, (event, want)) in events.iter().zip(&expected).enumerate() {
            prop_assert_eq!(event.sequence, i as u64 + 1);
            let got = ModelEvent {
                chat: event.chat_guid.to_string(),
                is_from_me: event.is_from_me,
                actor: event
                    .actor
                    .as_ref()
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                change: without_identity(&event.change),
            };
            prop_assert_eq!(&got, want, "{} event {}", a, i + 1);
        }
        prop_assert!(events
            .windows(2)
            .all(|w| w[0].occurred_at <= w[1].occurred_at));
        let mid = head / 2;
        let window = rt
            .block_on(store.read_events(account, mid, head, usize::MAX >> 1))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(window.as_slice(), &events[mid as usize..]);
        // Event by event, the same window, and its first and last sequences.
        let handed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let into = handed.clone();
        let span = rt
            .block_on(store.read_events_each(
                account,
                mid,
                head,
                usize::MAX >> 1,
                Box::new(move |event| into.lock().expect("not poisoned").push(event.clone())),
            ))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let handed = std::mem::take(&mut *handed.lock().expect("not poisoned"));
        prop_assert_eq!(handed.as_slice(), window.as_slice());
        prop_assert_eq!(
            span,
            window
                .first()
                .zip(window.last())
                .map(|(f, l)| (f.sequence, l.sequence))
        );
        logs.insert(a, events);
    }

    // Invariant 6: the state is the replay of the accepted commands.
    for group in &model.groups {
        for a in ACCOUNTS {
            let got = rt.block_on(groups.get_chat(ids[a], group.guid.clone()));
            if group.members.iter().any(|m| m == a) {
                let chat = got.map_err(|e| TestCaseError::fail(e.to_string()))?;
                // The chat's messages, oldest first, are those its log delivered.
                let listing = imgroups_core::engine::messages::query::Listing {
                    page_size: Some(1000),
                    ..Default::default()
                };
                let (page, _) = rt
                    .block_on(groups.list_messages(ids[a], Some(group.guid.clone()), listing))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let listed: Vec<&str> = page.iter().rev().map(|m| m.guid.as_str()).collect();
                let delivered: Vec<&str> = logs[a]
                    .iter()
                    .filter(|e| e.chat_guid.to_string() == group.guid)
                    .filter_map(|e| match &e.change {
                        Change::MessageReceived { message } => Some(message.guid.as_str()),
                        _ => None,
                    })
                    .collect();
                prop_assert_eq!(listed, delivered, "{} lists {}", a, &group.guid);
                let want: Vec<String> = group.members.iter().filter(|m| *m != a).cloned().collect();
                let have: Vec<String> = chat.participants.iter().map(|p| p.to_string()).collect();
                prop_assert_eq!(
                    have,
                    want,
                    "{} sees {} members in join order",
                    a,
                    &group.guid
                );
                prop_assert_eq!(&chat.display_name, &group.name);
                let icon = rt.block_on(groups.get_icon(ids[a], group.guid.clone()));
                match group.icon {
                    Some(v) => prop_assert_eq!(icon.map(|i| i.0).map_err(|e| e.kind), Ok(png(v))),
                    None => prop_assert_eq!(
                        icon.map(drop).map_err(|e| e.kind),
                        Err(ErrorKind::GroupIconNotFound)
                    ),
                }
            } else {
                prop_assert_eq!(
                    got.map(drop).map_err(|e| e.kind),
                    Err(ErrorKind::ChatNotFound)
                );
            }
        }
    }
    rt.block_on(store.close());
    Ok(())
}

/// The model property: `cases` random runs, each on a fresh fixture from `fixture`.
/// Panics with the shrunk failing case.
pub fn model<F: Fixture>(fixture: impl Fn() -> F, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let ops = proptest::collection::vec((op(), proptest::option::weighted(0.3, 0..3u8)), 1..60);
    let result = runner.run(&ops, |ops| run(&fixture(), ops));
    if let Err(failure) = result {
        panic!("the store does not behave like the model: {failure}");
    }
}

/// What an event says, without where it sits (sequence) or which group it is in.
fn gist(event: &Event) -> (bool, Option<String>, Change) {
    (
        event.is_from_me,
        event.actor.as_ref().map(|a| a.to_string()),
        event.change.clone(),
    )
}

/// `account`'s events after `after`.
async fn events_after(store: &dyn Store, account: AccountId, after: u64) -> Vec<Event> {
    let head = store.log_bounds(account).await.expect("log bounds").head;
    store
        .read_events(account, after, head, usize::MAX >> 1)
        .await
        .expect("read events")
}

/// One change observed on a network's record, brought in through the door every such change
/// takes ([`Engine::record_observed`]); how many were recorded (0: skipped as refused).
async fn observe(engine: &Engine, id: &str, observed: Observed) -> imgroups_core::Result<usize> {
    engine
        .record_observed(ObservedBatch {
            source: "store-tests".to_owned(),
            cursor: id.to_owned(),
            changes: vec![(id.to_owned(), observed)],
            ..ObservedBatch::default()
        })
        .await
}

/// Observed changes ([`Engine::record_observed`]) are recorded by the same code as our own
/// writes: for each kind of change, the same change made by an account through the API in one
/// group and observed (as made by that account) in a twin group appends the same events to
/// every account's log. What is already reflected appends nothing; a change to an unknown
/// group is skipped; a puppet ([`Engine::act_as`]) acting in an unknown group, or in one it is
/// not in, is `chatNotFound`.
pub fn ingest<F: Fixture>(fixture: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = fixture.open();
        let engine = engine(store.clone());
        let mut accounts = Vec::new();
        for a in ["a@x.com", "b@x.com"] {
            let address = Address::parse(a).expect("address");
            accounts.push((
                store.ensure_account(&address).await.expect("account").0,
                address,
            ));
        }
        let (me, alice) = (accounts[0].0, accounts[1].1.clone());
        let alice_id = accounts[1].0;
        let create = |people: [&str; 4]| {
            let people: Vec<String> = people.iter().map(|p| p.to_string()).collect();
            let engine = &engine;
            async move {
                let cmd = Command::create_chat(&people, None).expect("command");
                match engine.execute(me, None, cmd).await.expect("create") {
                    Outcome::Created { chat, .. } => chat.guid,
                    other => panic!("expected a created chat, got {other:?}"),
                }
            }
        };
        let written = create(["b@x.com", "p@x.com", "q@x.com", "r@x.com"]).await;
        let observed = create(["b@x.com", "p@x.com", "q@x.com", "s@x.com"]).await;
        let at = Timestamp(1_700_000_000_123_456_789);

        let t = "t@x.com".to_owned();
        let changes = [
            Mutation::SetDisplayName("Renamed".into()),
            Mutation::AddParticipants(vec![Address::from_trusted(t.clone())]),
            Mutation::RemoveParticipants(vec![Address::from_trusted(t.clone())]),
            Mutation::set_icon(png(7)).expect("icon"),
            Mutation::RemoveIcon,
            Mutation::Leave,
        ];
        for (n, mutation) in changes.into_iter().enumerate() {
            let heads: Vec<u64> = {
                let mut heads = Vec::new();
                for (account, _) in &accounts {
                    heads.push(store.log_bounds(*account).await.expect("bounds").head);
                }
                heads
            };
            let command = Command::Group {
                chat: written.clone(),
                mutation: mutation.clone(),
            };
            engine
                .execute(alice_id, None, command)
                .await
                .expect("the write");
            let mid: Vec<u64> = {
                let mut mid = Vec::new();
                for (account, _) in &accounts {
                    mid.push(store.log_bounds(*account).await.expect("bounds").head);
                }
                mid
            };
            let change = Observed {
                chat: observed.clone(),
                actor: alice.clone(),
                occurred_at: Some(at),
                mutation: mutation.clone(),
            };
            let recorded = observe(&engine, &format!("change {n}"), change)
                .await
                .expect("the observed change");
            assert_eq!(recorded, 1, "the observed {mutation:?} is recorded");
            for (i, (account, address)) in accounts.iter().enumerate() {
                let all = events_after(&*store, *account, heads[i]).await;
                let (ours, theirs) = all.split_at((mid[i] - heads[i]) as usize);
                assert!(!ours.is_empty(), "{address} saw the write of {mutation:?}");
                assert_eq!(
                    ours.iter().map(gist).collect::<Vec<_>>(),
                    theirs.iter().map(gist).collect::<Vec<_>>(),
                    "{address}: the observed {mutation:?} appends what the write did"
                );
                assert!(ours.iter().all(|e| e.chat_guid == written));
                assert!(theirs.iter().all(|e| e.chat_guid == observed));
                assert!(
                    theirs.iter().all(|e| e.occurred_at == at),
                    "observed changes keep the time they happened"
                );
            }
        }

        // Already reflected: nothing appended. (Alice has left; p, q and s are members.)
        let before = store.log_bounds(me).await.expect("bounds").head;
        let reflected = [
            ("p@x.com", Mutation::SetDisplayName("Renamed".into())),
            (
                "p@x.com",
                Mutation::AddParticipants(vec![Address::from_trusted("q@x.com".into())]),
            ),
            (
                "p@x.com",
                Mutation::RemoveParticipants(vec![Address::from_trusted("z@x.com".into())]),
            ),
            ("p@x.com", Mutation::RemoveIcon),
            ("b@x.com", Mutation::Leave),
        ];
        for (n, (actor, mutation)) in reflected.into_iter().enumerate() {
            let observed = Observed {
                chat: observed.clone(),
                actor: Address::from_trusted(actor.into()),
                occurred_at: None,
                mutation,
            };
            let recorded = observe(&engine, &format!("reflected {n}"), observed)
                .await
                .expect("a change already reflected");
            assert_eq!(recorded, 1, "a change already reflected is not refused");
        }
        assert_eq!(
            store.log_bounds(me).await.expect("bounds").head,
            before,
            "nothing appended for changes already reflected"
        );

        // A group nobody here knows, and a puppet who is not a member.
        let unknown = ChatGuid::parse("any;+;chat000000000000000042").expect("guid");
        let skipped = Observed {
            chat: unknown.clone(),
            actor: Address::from_trusted("p@x.com".into()),
            occurred_at: None,
            mutation: Mutation::RemoveIcon,
        };
        let recorded = observe(&engine, "unknown", skipped)
            .await
            .expect("one odd change does not stop the record");
        assert_eq!(recorded, 0, "a change to an unknown group is skipped");
        let err = engine
            .act_as(
                &Address::from_trusted("p@x.com".into()),
                Command::Group {
                    chat: unknown,
                    mutation: Mutation::RemoveIcon,
                },
            )
            .await
            .expect_err("an unknown group");
        assert_eq!(err.kind, ErrorKind::ChatNotFound);
        let err = engine
            .act_as(
                &Address::from_trusted("stranger@x.com".into()),
                Command::Group {
                    chat: observed.clone(),
                    mutation: Mutation::SetDisplayName("Nope".into()),
                },
            )
            .await
            .expect_err("a non-member acting under the rules");
        assert_eq!(err.kind, ErrorKind::ChatNotFound);
        assert_eq!(store.log_bounds(me).await.expect("bounds").head, before);
        store.close().await;
    });
}

/// [`Store::ready`] (readiness probes) answers while the store is open and fails once it is
/// closed.
pub fn ready<F: Fixture>(fixture: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = fixture.open();
        store.ready().await.expect("an open store is ready");
        store.close().await;
        store
            .ready()
            .await
            .expect_err("a closed store is not ready");
    });
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// Admin tokens (the console's credential): a stored one is accepted, an unknown one is
/// `unauthenticated`, and admin and account tokens are never accepted as each other.
pub fn admin_tokens<F: Fixture>(fixture: F) {
    block_on(async {
        let store = fixture.open();
        let unknown = store
            .authenticate_admin("imgadm_0000")
            .await
            .expect_err("no admin token yet");
        assert_eq!(unknown.kind, ErrorKind::Unauthenticated);

        let (admin, hash) = imgroups_core::tokens::new_admin_token();
        store.add_admin_token(hash).await.expect("add admin token");
        store
            .authenticate_admin(&admin)
            .await
            .expect("a stored admin token is accepted");
        let err = store
            .authenticate_admin(&format!("{admin}0"))
            .await
            .expect_err("an unknown admin token");
        assert_eq!(err.kind, ErrorKind::Unauthenticated);
        assert!(!err.message.is_empty());

        let address = Address::parse("a@x.com").expect("address");
        let (account, _) = store.ensure_account(&address).await.expect("account");
        let (token, hash) = imgroups_core::tokens::new_token();
        store.add_token(account, hash).await.expect("add token");
        assert_eq!(store.authenticate(&token).await.expect("account"), account);
        let err = store
            .authenticate_admin(&token)
            .await
            .expect_err("an account token is not an admin token");
        assert_eq!(err.kind, ErrorKind::Unauthenticated);
        let err = store
            .authenticate(&admin)
            .await
            .expect_err("an admin token is not an account token");
        assert_eq!(err.kind, ErrorKind::Unauthenticated);

        // Durable: still there after a restart.
        store.close().await;
        let store = fixture.open();
        store
            .authenticate_admin(&admin)
            .await
            .expect("the admin token survives a restart");

        // Listed by id, oldest first; never with its secret (the type has none).
        let (second, second_hash) = imgroups_core::tokens::new_admin_token();
        store
            .add_admin_token(second_hash)
            .await
            .expect("second admin token");
        let listed = store.list_admin_tokens().await.expect("list admin tokens");
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(listed[0].id.0 < listed[1].id.0, "{listed:?}");
        assert!(listed.iter().all(|t| t.created_at.0 > 0), "{listed:?}");
        let ids: Vec<_> = listed.iter().map(|t| t.id).collect();

        // Revoked by the secret: refused at once, gone from the listing.
        let by_secret = store
            .revoke_admin_token(&TokenRef::Secret(admin.clone()))
            .await
            .expect("revoke by secret");
        assert_eq!(by_secret, ids[0]);
        let err = store
            .authenticate_admin(&admin)
            .await
            .expect_err("a revoked admin token");
        assert_eq!(err.kind, ErrorKind::Unauthenticated);
        // Revoked by id.
        let by_id = store
            .revoke_admin_token(&TokenRef::Id(ids[1]))
            .await
            .expect("revoke by id");
        assert_eq!(by_id, ids[1]);
        assert!(store.authenticate_admin(&second).await.is_err());
        assert!(store.list_admin_tokens().await.expect("list").is_empty());
        // Again, or an account's token: no such admin token, naming the field; nothing changes.
        for token in [TokenRef::Id(ids[1]), TokenRef::Secret(token.clone())] {
            let err = store
                .revoke_admin_token(&token)
                .await
                .expect_err("no such admin token");
            assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err:?}");
            assert_eq!(err.context_value("field"), Some("token"), "{err:?}");
        }
        assert_eq!(store.authenticate(&token).await.expect("account"), account);
        store.close().await;
    });
}

/// `list_accounts` lists every account by id; `unreachable` the addresses marked so, sorted.
pub fn listings<F: Fixture>(fixture: F) {
    block_on(async {
        let store = fixture.open();
        assert!(store.list_accounts().await.expect("accounts").is_empty());
        assert!(store.unreachable().await.expect("unreachable").is_empty());
        let before = Timestamp::now();
        let mut ids = Vec::new();
        for a in ["c@x.com", "a@x.com", "b@x.com"] {
            let address = Address::parse(a).expect("address");
            ids.push(store.ensure_account(&address).await.expect("account").0);
        }
        let accounts = store.list_accounts().await.expect("accounts");
        assert_eq!(
            accounts.iter().map(|a| a.id).collect::<Vec<_>>(),
            {
                let mut sorted = ids.clone();
                sorted.sort();
                sorted
            },
            "every account, by id"
        );
        for info in &accounts {
            let i = ids.iter().position(|id| *id == info.id).expect("known id");
            assert_eq!(info.address.as_str(), ["c@x.com", "a@x.com", "b@x.com"][i]);
            assert!(info.created_at >= before);
        }

        for a in ["z@x.com", "m@x.com", "+15551234567"] {
            let address = Address::parse(a).expect("address");
            store
                .set_unreachable(&address, true)
                .await
                .expect("unreachable");
        }
        // Marking twice is one mark.
        let m = Address::parse("m@x.com").expect("address");
        store.set_unreachable(&m, true).await.expect("again");
        let listed = store.unreachable().await.expect("unreachable");
        let listed: Vec<&str> = listed.iter().map(|a| a.as_str()).collect();
        assert_eq!(listed, ["+15551234567", "m@x.com", "z@x.com"]);
        store.set_unreachable(&m, false).await.expect("reachable");
        let listed = store.unreachable().await.expect("unreachable");
        let listed: Vec<&str> = listed.iter().map(|a| a.as_str()).collect();
        assert_eq!(listed, ["+15551234567", "z@x.com"]);
        store.close().await;
    });
}

fn new_fault(account: AccountId, method: &str) -> imgroups_core::port::NewFault {
    imgroups_core::port::NewFault {
        account,
        method: method.to_owned(),
        error_code: Some("databaseError".to_owned()),
        retryable: true,
        latency_ms: 0,
        count: None,
        until: None,
    }
}

/// Injected faults: stored as asked, listed while armed, counted ones spent one use at a
/// time down to zero (then disarmed and no longer listed), timed ones disarmed once `until`
/// has passed, and cleared by id, by account or all at once.
pub fn faults<F: Fixture>(fixture: F) {
    use imgroups_core::port::NewFault;
    use imgroups_core::FaultId;

    block_on(async {
        let store = fixture.open();
        let a = Address::parse("a@x.com").expect("address");
        let b = Address::parse("b@x.com").expect("address");
        let alice = store.ensure_account(&a).await.expect("account").0;
        let bob = store.ensure_account(&b).await.expect("account").0;
        assert!(store.faults().await.expect("faults").is_empty());
        assert!(!store.take_fault(FaultId(12345)).await.expect("take"));

        // A counted fault, stored as asked, with `count` what is left.
        let before = Timestamp::now();
        let counted = NewFault {
            count: Some(3),
            latency_ms: 250,
            ..new_fault(alice, "SetDisplayName")
        };
        let fault = store.add_fault(&counted).await.expect("add");
        assert_eq!(fault.spec, counted);
        assert_eq!(fault.address, a);
        assert!(fault.created_at >= before);
        assert_eq!(store.faults().await.expect("faults"), vec![fault.clone()]);
        for left in [2, 1, 0] {
            assert!(store.take_fault(fault.id).await.expect("take"), "armed");
            let listed = store.faults().await.expect("faults");
            if left > 0 {
                assert_eq!(listed.len(), 1);
                assert_eq!(listed[0].spec.count, Some(left), "what is left");
            } else {
                assert!(listed.is_empty(), "a used-up fault is not listed");
            }
        }
        assert!(
            !store.take_fault(fault.id).await.expect("take"),
            "a used-up fault is disarmed"
        );

        // Uncounted: every call, until cleared; latency only; its own account's address.
        let forever = NewFault {
            error_code: None,
            retryable: false,
            latency_ms: 10,
            ..new_fault(bob, "*")
        };
        let forever = store.add_fault(&forever).await.expect("add");
        assert_eq!(forever.address, b);
        assert_eq!(forever.spec.error_code, None);
        for _ in 0..3 {
            assert!(store.take_fault(forever.id).await.expect("take"));
        }
        assert_eq!(store.faults().await.expect("faults")[0].spec.count, None);

        // Timed: in the future it is armed; in the past it is neither listed nor taken.
        let hour = 3_600_000_000_000;
        let later = store
            .add_fault(&NewFault {
                until: Some(Timestamp(Timestamp::now().0 + hour)),
                ..new_fault(alice, "CreateChat")
            })
            .await
            .expect("add");
        let expired = store
            .add_fault(&NewFault {
                until: Some(Timestamp(Timestamp::now().0 - hour)),
                count: Some(5),
                ..new_fault(alice, "CreateChat")
            })
            .await
            .expect("add");
        assert!(store.take_fault(later.id).await.expect("take"));
        assert!(!store.take_fault(expired.id).await.expect("take"));
        let listed: Vec<FaultId> = store
            .faults()
            .await
            .expect("faults")
            .iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(listed, vec![forever.id, later.id], "armed faults, by id");

        // Durable: the same after a restart.
        store.close().await;
        let store = fixture.open();
        let listed: Vec<FaultId> = store
            .faults()
            .await
            .expect("faults")
            .iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(listed, vec![forever.id, later.id]);

        // Clearing: by id (which wins over an account), by account, then all.
        let extra = store
            .add_fault(&new_fault(bob, "LeaveGroup"))
            .await
            .expect("add");
        assert_eq!(
            store
                .clear_faults(Some(alice), Some(extra.id))
                .await
                .expect("clear"),
            1
        );
        assert!(!store.take_fault(extra.id).await.expect("take"), "gone");
        assert_eq!(
            store
                .clear_faults(None, Some(extra.id))
                .await
                .expect("clear"),
            0
        );
        // Alice's: `later`, `expired` and the used-up one, armed or not.
        assert_eq!(
            store.clear_faults(Some(alice), None).await.expect("clear"),
            3
        );
        let left: Vec<FaultId> = store
            .faults()
            .await
            .expect("faults")
            .iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(left, vec![forever.id]);
        store
            .add_fault(&new_fault(alice, "LeaveGroup"))
            .await
            .expect("add");
        assert_eq!(store.clear_faults(None, None).await.expect("clear"), 2);
        assert!(store.faults().await.expect("faults").is_empty());
        assert!(!store.take_fault(forever.id).await.expect("take"));
        store.close().await;
    });
}

/// Concurrent calls never spend a counted fault more than its count: 20 concurrent takes of
/// a fault with 5 uses succeed exactly 5 times.
pub fn fault_count_is_atomic<F: Fixture>(fixture: F) {
    block_on(async {
        let store = fixture.open();
        let a = Address::parse("a@x.com").expect("address");
        let alice = store.ensure_account(&a).await.expect("account").0;
        let fault = store
            .add_fault(&imgroups_core::port::NewFault {
                count: Some(5),
                ..new_fault(alice, "*")
            })
            .await
            .expect("add");
        let takes: Vec<_> = (0..20)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.take_fault(fault.id).await })
            })
            .collect();
        let mut taken = 0;
        for take in takes {
            if take.await.expect("task").expect("take") {
                taken += 1;
            }
        }
        assert_eq!(taken, 5, "exactly the count");
        assert!(store.faults().await.expect("faults").is_empty());
        store.close().await;
    });
}

/// Runs `work` in a write transaction and returns what it returned; an `Err` from it is the
/// write's answer (the transaction then does not commit). Checks belong after it returns,
/// not in `work`: a panic there would be the store's writer thread's, not the test's.
async fn write_tx<T: Send + 'static>(
    store: &dyn Store,
    work: impl FnOnce(&mut dyn imgroups_core::port::Tx) -> imgroups_core::Result<T> + Send + 'static,
) -> imgroups_core::Result<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    store
        .write(Box::new(move |t| {
            let value = work(t)?;
            let _ = tx.send(value);
            Ok(Outcome::Empty)
        }))
        .await?;
    Ok(rx.recv().expect("the work ran"))
}

/// Runs `query` on a read snapshot and returns what it returned.
async fn read_tx<T: Send + 'static>(
    store: &dyn Store,
    query: impl FnOnce(&mut dyn imgroups_core::port::Reader) -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    store
        .read(Box::new(move |r| {
            let _ = tx.send(query(r));
        }))
        .await
        .expect("read");
    rx.recv().expect("the query ran")
}

async fn cursor_of(store: &dyn Store, source: &'static str) -> Option<String> {
    read_tx(store, move |r| r.observer_cursor(source))
        .await
        .expect("observer cursor")
}

/// A failure in the middle of a unit of work, after it wrote (as a backend whose source
/// became unreadable while it recorded what it observed).
fn mid_work_failure() -> imgroups_core::Error {
    imgroups_core::Error::unavailable("the observed source went away")
}

/// Observer cursors: none before the first; once set, read back by a later snapshot (and by
/// the transaction that set it); overwritten by the next; kept per source; rolled back with
/// a unit of work that fails; and still there after a restart.
pub fn observer_cursors<F: Fixture>(fixture: F) {
    block_on(async {
        let store = fixture.open();
        assert_eq!(
            cursor_of(&*store, "chatdb").await,
            None,
            "none before the first"
        );

        let seen = write_tx(&*store, |t| {
            t.set_observer_cursor("chatdb", "rowid:100")?;
            t.observer_cursor("chatdb")
        })
        .await
        .expect("set");
        assert_eq!(
            seen.as_deref(),
            Some("rowid:100"),
            "the writer reads its own cursor"
        );
        assert_eq!(
            cursor_of(&*store, "chatdb").await.as_deref(),
            Some("rowid:100")
        );
        assert_eq!(cursor_of(&*store, "other").await, None, "per source");

        write_tx(&*store, |t| t.set_observer_cursor("chatdb", "rowid:250"))
            .await
            .expect("overwrite");
        write_tx(&*store, |t| t.set_observer_cursor("other", "x"))
            .await
            .expect("another source");
        assert_eq!(
            cursor_of(&*store, "chatdb").await.as_deref(),
            Some("rowid:250"),
            "overwritten"
        );
        assert_eq!(cursor_of(&*store, "other").await.as_deref(), Some("x"));

        // A unit of work that fails after it moved the cursor (and marked an id) leaves no
        // trace of either.
        let err = write_tx(&*store, |t| {
            t.set_observer_cursor("chatdb", "rowid:999")?;
            t.set_observer_cursor("new", "y")?;
            t.mark_observed("chatdb", "rolled-back")?;
            Err::<(), _>(mid_work_failure())
        })
        .await
        .expect_err("the failed unit's answer");
        assert!(!err.is_final(), "{err:?}");
        assert_eq!(
            cursor_of(&*store, "chatdb").await.as_deref(),
            Some("rowid:250"),
            "rolled back"
        );
        assert_eq!(cursor_of(&*store, "new").await, None, "rolled back");
        let again = write_tx(&*store, |t| t.mark_observed("chatdb", "rolled-back"))
            .await
            .expect("mark");
        assert!(again, "the mark was rolled back with the cursor");

        // Durable: the same after a restart.
        store.close().await;
        let store = fixture.open();
        assert_eq!(
            cursor_of(&*store, "chatdb").await.as_deref(),
            Some("rowid:250"),
            "survives a restart"
        );
        assert_eq!(cursor_of(&*store, "other").await.as_deref(), Some("x"));
        store.close().await;
    });
}

/// Observed ids: `mark_observed` is `true` the first time an id of a source is marked and
/// `false` ever after (in the same transaction, a later one, or after a restart); ids are per
/// source; a mark in a unit of work that fails is rolled back; a thousand marks fit in one
/// transaction.
pub fn observed_ids<F: Fixture>(fixture: F) {
    block_on(async {
        let store = fixture.open();
        let marks = write_tx(&*store, |t| {
            Ok([
                t.mark_observed("chatdb", "guid-1")?,
                t.mark_observed("chatdb", "guid-1")?,
                t.mark_observed("chatdb", "guid-2")?,
                t.mark_observed("other", "guid-1")?,
            ])
        })
        .await
        .expect("marks");
        assert_eq!(
            marks,
            [true, false, true, true],
            "first time only, per source"
        );
        let later = write_tx(&*store, |t| t.mark_observed("chatdb", "guid-1"))
            .await
            .expect("mark");
        assert!(!later, "already marked by an earlier transaction");

        // Rolled back with a unit of work that fails after marking.
        write_tx(&*store, |t| {
            t.mark_observed("chatdb", "guid-3")?;
            Err::<(), _>(mid_work_failure())
        })
        .await
        .expect_err("the failed unit's answer");
        let after = write_tx(&*store, |t| t.mark_observed("chatdb", "guid-3"))
            .await
            .expect("mark");
        assert!(after, "the failed unit's mark left no trace");

        // A thousand in one transaction, with the cursor that covers them.
        let firsts = write_tx(&*store, |t| {
            let mut firsts = 0;
            for i in 0..1_000 {
                firsts += usize::from(t.mark_observed("chatdb", &format!("bulk-{i}"))?);
            }
            t.set_observer_cursor("chatdb", "rowid:1000")?;
            Ok(firsts)
        })
        .await
        .expect("a thousand marks");
        assert_eq!(firsts, 1_000);

        // Durable: every mark is still there after a restart.
        store.close().await;
        let store = fixture.open();
        let firsts = write_tx(&*store, |t| {
            let mut firsts = 0;
            for id in ["guid-1", "guid-2", "guid-3"] {
                firsts += usize::from(t.mark_observed("chatdb", id)?);
            }
            for i in 0..1_000 {
                firsts += usize::from(t.mark_observed("chatdb", &format!("bulk-{i}"))?);
            }
            firsts += usize::from(t.mark_observed("other", "guid-1")?);
            Ok(firsts)
        })
        .await
        .expect("marks after a restart");
        assert_eq!(firsts, 0, "every mark survives a restart");
        assert_eq!(
            cursor_of(&*store, "chatdb").await.as_deref(),
            Some("rowid:1000")
        );
        store.close().await;
    });
}
