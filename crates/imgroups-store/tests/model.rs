//! Property test: random interleavings of writes by several accounts, idempotent retries and
//! restarts, checked against a plain in-memory model of the rules in `spec/groups.md`.
//!
//! After every run: each account's log is 1, 2, 3, … with exactly the events the model
//! expects (invariants 1 and 2), replays returned the original outcome and appended nothing
//! (3), catch-up windows return exactly `after < seq <= head` (5), and the stored state equals
//! the model's state, which is the replay of the accepted commands (6).

mod common;

use std::collections::HashMap;

use imgroups_core::{Address, Change, Command, ErrorKind, Outcome};
use imgroups_store::{admin, Durability, Store};
use proptest::prelude::*;

const ACCOUNTS: [&str; 3] = ["a@x.com", "b@x.com", "c@x.com"];
const OTHERS: [&str; 4] = ["p@x.com", "q@x.com", "r@x.com", "s@x.com"];
const NAMES: [&str; 3] = ["Alpha", "Beta", "Gamma"];

fn everyone() -> Vec<&'static str> {
    ACCOUNTS.iter().chain(OTHERS.iter()).copied().collect()
}

fn png(variant: u8) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    v.push(variant);
    v
}

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
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let actor = 0..ACCOUNTS.len();
    let group = 0..8usize;
    let who = 0..ACCOUNTS.len() + OTHERS.len();
    prop_oneof![
        2 => (actor.clone(), proptest::collection::vec(who.clone(), 1..6))
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
        1 => (actor, group).prop_map(|(actor, group)| Op::RemoveIcon { actor, group }),
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
                let actor = ACCOUNTS[*actor];
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
                let actor = ACCOUNTS[*actor];
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
                let actor = ACCOUNTS[*actor];
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
                let actor = ACCOUNTS[*actor];
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
                let actor = ACCOUNTS[*actor];
                self.visible(*group, actor)?;
                if self.groups[*group].icon != Some(*variant) {
                    self.groups[*group].icon = Some(*variant);
                    let audience = self.groups[*group].members.clone();
                    self.record(*group, actor, &audience, &[Change::IconChanged]);
                }
                Ok(())
            }
            Op::RemoveIcon { actor, group } => {
                let actor = ACCOUNTS[*actor];
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
        | Op::RemoveIcon { actor, .. } => *actor,
        Op::Restart => 0,
    }
}

fn open(path: &std::path::Path) -> Store {
    common::open_store(path)
}

fn run(ops: Vec<(Op, Option<u8>)>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgroups.db");
    let rt = common::runtime();
    let mut ids = HashMap::new();
    {
        let conn = imgroups_store::open_connection(&path, Durability::Normal).unwrap();
        for a in ACCOUNTS {
            let (id, _) = admin::ensure_account(&conn, &Address::parse(a).unwrap()).unwrap();
            ids.insert(a, id);
        }
    }
    let mut store = open(&path);
    let mut model = Model::default();
    // (account, method, key) -> (command, outcome) as first answered.
    let mut remembered: HashMap<(i64, &str, String), Remembered> = HashMap::new();

    for (op, key) in ops {
        if let Op::Restart = op {
            store.close();
            store = open(&path);
            continue;
        }
        let actor = ACCOUNTS[actor_of(&op)];
        let account = ids[actor];
        if let Op::Create { members, .. } = &op {
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
            let cmd = Command::create_chat(&wanted, None).unwrap();
            let got = rt.block_on(store.execute(account, None, cmd));
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
                    let g = model.groups.len() - 1;
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
                    let _ = g;
                }
            }
            continue;
        }
        if model.groups.is_empty() {
            continue;
        }
        let op = match op {
            Op::Rename { actor, group, name } => Op::Rename {
                actor,
                group: group % model.groups.len(),
                name,
            },
            Op::Add { actor, group, who } => Op::Add {
                actor,
                group: group % model.groups.len(),
                who,
            },
            Op::Remove { actor, group, who } => Op::Remove {
                actor,
                group: group % model.groups.len(),
                who,
            },
            Op::Leave { actor, group } => Op::Leave {
                actor,
                group: group % model.groups.len(),
            },
            Op::SetIcon {
                actor,
                group,
                variant,
            } => Op::SetIcon {
                actor,
                group: group % model.groups.len(),
                variant,
            },
            Op::RemoveIcon { actor, group } => Op::RemoveIcon {
                actor,
                group: group % model.groups.len(),
            },
            other => other,
        };
        let Some(cmd) = command(&model, &op) else {
            continue;
        };
        let key = key.map(|k| format!("key-{k}"));
        let method = cmd.method();
        let got = rt
            .block_on(store.execute(account, key.clone(), cmd.clone()))
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
    for a in ACCOUNTS {
        let account = ids[a];
        let head = rt.block_on(store.head(account)).unwrap();
        let events = rt
            .block_on(store.read_events(account, 0, head, usize::MAX >> 1))
            .unwrap();
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
                change: event.change.clone(),
            };
            prop_assert_eq!(&got, want, "{} event {}", a, i + 1);
        }
        prop_assert!(events
            .windows(2)
            .all(|w| w[0].occurred_at <= w[1].occurred_at));
        let mid = head / 2;
        let window = rt
            .block_on(store.read_events(account, mid, head, usize::MAX >> 1))
            .unwrap();
        prop_assert_eq!(window.as_slice(), &events[mid as usize..]);
    }

    // Invariant 6: the state is the replay of the accepted commands.
    for group in &model.groups {
        for a in ACCOUNTS {
            let got = rt.block_on(store.get_chat(ids[a], group.guid.clone()));
            if group.members.iter().any(|m| m == a) {
                let chat = got.unwrap();
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
                let icon = rt.block_on(store.get_icon(ids[a], group.guid.clone()));
                match group.icon {
                    Some(v) => prop_assert_eq!(icon.unwrap().0, png(v)),
                    None => prop_assert_eq!(icon.unwrap_err().kind, ErrorKind::GroupIconNotFound),
                }
            } else {
                prop_assert_eq!(got.unwrap_err().kind, ErrorKind::ChatNotFound);
            }
        }
    }
    store.close();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_store_behaves_like_the_model(
        ops in proptest::collection::vec((op(), proptest::option::weighted(0.3, 0..3u8)), 1..60)
    ) {
        run(ops)?;
    }
}
