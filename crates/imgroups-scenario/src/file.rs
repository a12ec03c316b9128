//! Scenario and seed files: who does what, when, and what to wait for. This module reads
//! and checks a file into a [`Scenario`] (every mistake is reported with its line and
//! column); [`crate::perform()`] does its steps. The actions are those of
//! [`imgroups_core::action`], their parameters named as there, so a new action is playable
//! without a line here; `create` (a group, made by an account) is the one step of a
//! scenario's own.
//!
//! ```toml
//! [chats]
//! lobby = "any;+;chat123"                     # an existing chat, by name
//!
//! [[step]]                                    # at the start
//! as = "me@imgroups.local"                    # an account
//! do = "create"
//! id = "party"                                # names the group for later steps
//! addresses = ["zoe@example.net", "alice@example.com", "erin@example.com"]
//! name = "Zoe's party"
//!
//! [[step]]
//! after = "500ms"                             # after the previous step
//! as = "zoe@example.net"                      # a puppet
//! do = "say"
//! chat = "party"
//! text = "hi bot"
//!
//! [[step]]
//! id = "welcome"                              # names the message matched
//! wait = { for = "message", from = "me@imgroups.local", chat = "party", matching = "(?i)welcome", timeout = "5s" }
//!
//! [[step]]
//! at = "2s"                                   # 2 s after the start
//! as = "alice@example.com"
//! do = "react"
//! chat = "party"
//! message = "welcome"
//! reaction = "like"
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use imgroups_core::action::{self, Action, Family, Kind as ParamKind};
use imgroups_core::expect::{Expectation, Kind};
use imgroups_core::{Address, ChatGuid};
use serde::Deserialize;
use toml::{Spanned, Value};

/// A checked scenario.
#[derive(Debug)]
pub struct Scenario {
    pub steps: Vec<Step>,
    /// The chats of `[chats]`: name → GUID.
    pub chats: BTreeMap<String, String>,
    /// The accounts of `accounts = [...]` (a seed's only), in file order, each with its line:
    /// made if missing.
    pub accounts: Vec<(usize, Address)>,
}

/// How a file is read: a scenario (`sim play`) has times and waits; a seed (`sim seed`) is
/// applied at once, so it has neither, and may list accounts to make. One format, so a seed
/// is a scenario with the clock taken out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Scenario,
    Seed,
}

/// Where a step's image files (`file = "party.png"`) come from.
#[derive(Debug, Clone, Copy)]
pub enum Files<'a> {
    /// From this machine's disk, named relative to this directory (the file's own).
    In(&'a Path),
    /// Nowhere: the file came from elsewhere (say over HTTP), so a step that names a file on
    /// this machine is a mistake, for this reason. The disk is not looked at, so the answer
    /// says nothing of what is on it.
    Refused(&'a str),
}

#[derive(Debug)]
pub struct Step {
    /// Where the step starts in the file (1-based).
    pub line: usize,
    pub timing: Timing,
    /// What the step makes or matches is known by this name to later steps: the group a
    /// `create` made, the message a message action sent or acted on, the message a wait
    /// matched.
    pub id: Option<String>,
    pub what: What,
}

/// When a step starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// This long after the scenario started (or at once, if that time has passed).
    At(Duration),
    /// This long after the previous step ended.
    After(Duration),
}

#[derive(Debug)]
pub enum What {
    /// A person does one of the actions of [`imgroups_core::action`].
    Act {
        who: Address,
        action: &'static Action,
        chat: Ref,
        /// One per parameter of the action, in order.
        args: Vec<Arg>,
    },
    /// An account creates a group with these people.
    Create {
        who: Address,
        addresses: Vec<String>,
        name: Option<String>,
    },
    /// Waits until the account `from` did something expected.
    Wait {
        from: Address,
        kind: Kind,
        chat: Option<Ref>,
        matching: Option<String>,
        timeout: Duration,
    },
}

/// A chat or a message: by a name the file defines, or by its GUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    Named(String),
    Guid(String),
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ref::Named(name) | Ref::Guid(name) => f.write_str(name),
        }
    }
}

/// A value given for an action's parameter.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    /// The `message` parameter: a message by name or GUID.
    Message(Ref),
    Addresses(Vec<String>),
    /// An image file, relative to the scenario's directory.
    File(PathBuf),
}

/// A mistake in a scenario file, where it is.
#[derive(Debug, PartialEq, Eq)]
pub struct ScenarioError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Without `timeout` in a wait.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// The keys every action step may have besides its action's parameters.
const STEP_KEYS: [&str; 7] = ["at", "after", "as", "do", "chat", "id", "wait"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    accounts: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    chats: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    step: Vec<Spanned<BTreeMap<Spanned<String>, Spanned<Value>>>>,
}

type Table = BTreeMap<Spanned<String>, Spanned<Value>>;

/// Reads and checks the scenario in `source`, its image files found as `files` says.
pub fn parse(source: &str, files: Files<'_>) -> Result<Scenario, ScenarioError> {
    read(source, files, Mode::Scenario)
}

/// Reads and checks the seed in `source`: a scenario without `at`, `after` or `wait`, with
/// an optional `accounts = [...]` list.
pub fn parse_seed(source: &str, files: Files<'_>) -> Result<Scenario, ScenarioError> {
    read(source, files, Mode::Seed)
}

fn read(source: &str, files: Files<'_>, mode: Mode) -> Result<Scenario, ScenarioError> {
    let at = |offset: usize, message: String| {
        let before = &source[..offset.min(source.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        ScenarioError {
            line,
            column,
            message,
        }
    };
    let file: File = toml::from_str(source).map_err(|err| {
        let message = err.message().trim().to_owned();
        at(err.span().map_or(0, |s| s.start), message)
    })?;
    let mut accounts = Vec::new();
    if let Some(list) = &file.accounts {
        if mode == Mode::Scenario {
            return Err(at(
                list.span().start,
                "a scenario has no accounts list: make them with `imgroups account add`, or list \
                 them in a seed (`imgroups sim seed`)"
                    .to_owned(),
            ));
        }
        for one in list.get_ref() {
            let address = Address::parse(one.get_ref())
                .map_err(|err| at(one.span().start, format!("accounts: {}", err.message)))?;
            if accounts.iter().any(|(_, a)| *a == address) {
                return Err(at(
                    one.span().start,
                    format!("accounts: {address} is listed twice"),
                ));
            }
            accounts.push((at(one.span().start, String::new()).line, address));
        }
    }
    let mut names = Names::default();
    let mut chats = BTreeMap::new();
    for (name, guid) in &file.chats {
        ChatGuid::parse(guid.get_ref()).map_err(|err| {
            at(
                guid.span().start,
                format!("chat {}: {}", name.get_ref(), err.message),
            )
        })?;
        names.define(name.get_ref(), Defined::Chat);
        chats.insert(name.get_ref().clone(), guid.get_ref().clone());
    }
    // A seed may do no more than make accounts; anything else without steps is a mistake.
    if file.step.is_empty() && (mode == Mode::Scenario || accounts.is_empty()) {
        return Err(at(
            source.len(),
            "no steps: add at least one [[step]]".to_owned(),
        ));
    }
    let mut steps = Vec::with_capacity(file.step.len());
    let mut last_at = Duration::ZERO;
    for table in &file.step {
        if mode == Mode::Seed {
            if let Some((key, _)) = table
                .get_ref()
                .iter()
                .find(|(k, _)| matches!(k.get_ref().as_str(), "at" | "after" | "wait"))
            {
                let (offset, key) = (key.span().start, key.get_ref());
                let why = if key == "wait" {
                    "a seed has no waits: it is applied at once, before anything could answer; \
                     wait in a scenario (`imgroups sim play`)"
                } else {
                    "a seed has no timings: its steps are done at once, in file order; time \
                     steps in a scenario (`imgroups sim play`)"
                };
                return Err(at(offset, format!("{key}: {why}")));
            }
        }
        let step = step(table.get_ref(), files, &mut names)
            .map_err(|(offset, message)| at(offset.unwrap_or(table.span().start), message))?;
        if let Timing::At(time) = step.timing {
            if time < last_at {
                let offset = value_offset(table.get_ref(), "at");
                return Err(at(
                    offset.unwrap_or(table.span().start),
                    format!(
                        "at = {:?} comes before an earlier step's at = {:?}: steps run in the \
                         order of the file",
                        humantime::format_duration(time).to_string(),
                        humantime::format_duration(last_at).to_string()
                    ),
                ));
            }
            last_at = time;
        }
        let line = at(table.span().start, String::new()).line;
        steps.push(Step { line, ..step });
    }
    Ok(Scenario {
        steps,
        chats,
        accounts,
    })
}

/// What a name of the file stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defined {
    Chat,
    Message,
}

#[derive(Default)]
struct Names(HashMap<String, Defined>);

impl Names {
    fn define(&mut self, name: &str, what: Defined) {
        self.0.insert(name.to_owned(), what);
    }
}

/// A mistake at an offset (`None`: the step's start).
type Mistake = (Option<usize>, String);

fn value_offset(table: &Table, key: &str) -> Option<usize> {
    table
        .iter()
        .find(|(k, _)| k.get_ref() == key)
        .map(|(_, v)| v.span().start)
}

fn get<'a>(table: &'a Table, key: &str) -> Option<&'a Spanned<Value>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref() == key)
        .map(|(_, v)| v)
}

fn text(value: &Spanned<Value>, key: &str) -> Result<String, Mistake> {
    match value.get_ref() {
        Value::String(s) => Ok(s.clone()),
        other => Err((
            Some(value.span().start),
            format!("{key} is a string, not {}", other.type_str()),
        )),
    }
}

fn duration(value: &Spanned<Value>, key: &str) -> Result<Duration, Mistake> {
    let raw = text(value, key)?;
    humantime::parse_duration(raw.trim()).map_err(|err| {
        (
            Some(value.span().start),
            format!("{key} = {raw:?} is not a duration like \"2s\" or \"500ms\": {err}"),
        )
    })
}

fn address(value: &Spanned<Value>, key: &str) -> Result<Address, Mistake> {
    let raw = text(value, key)?;
    Address::parse(&raw)
        .map_err(|err| (Some(value.span().start), format!("{key}: {}", err.message)))
}

fn addresses(value: &Spanned<Value>, key: &str) -> Result<Vec<String>, Mistake> {
    let list = match value.get_ref() {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                (
                    Some(value.span().start),
                    format!("{key} is a list of strings"),
                )
            })?,
        other => {
            return Err((
                Some(value.span().start),
                format!(
                    "{key} is an address or a list of them, not {}",
                    other.type_str()
                ),
            ))
        }
    };
    for one in &list {
        Address::parse(one)
            .map_err(|err| (Some(value.span().start), format!("{key}: {}", err.message)))?;
    }
    Ok(list)
}

/// A reference to a chat: a name defined before this step, or a GUID.
fn chat_ref(value: &Spanned<Value>, key: &str, names: &Names) -> Result<Ref, Mistake> {
    let raw = text(value, key)?;
    let here = Some(value.span().start);
    match names.0.get(&raw) {
        Some(Defined::Chat) => Ok(Ref::Named(raw)),
        Some(Defined::Message) => Err((here, format!("{raw:?} names a message, not a chat"))),
        None if raw.contains(';') => ChatGuid::parse(&raw)
            .map(|_| Ref::Guid(raw.clone()))
            .map_err(|err| (here, format!("{key}: {}", err.message))),
        None => Err((
            here,
            format!(
                "no chat is named {raw:?} before this step: name it in [chats], create it in an \
                 earlier step (do = \"create\", id = {raw:?}), or give its GUID"
            ),
        )),
    }
}

/// A reference to a message: a name defined before this step, or a GUID.
fn message_ref(value: &Spanned<Value>, key: &str, names: &Names) -> Result<Ref, Mistake> {
    let raw = text(value, key)?;
    let here = Some(value.span().start);
    match names.0.get(&raw) {
        Some(Defined::Message) => Ok(Ref::Named(raw)),
        Some(Defined::Chat) => Err((here, format!("{raw:?} names a chat, not a message"))),
        None if looks_like_guid(&raw) => Ok(Ref::Guid(raw)),
        None => Err((
            here,
            format!(
                "no message is named {raw:?} before this step: give a step that sends or waits \
                 for it id = {raw:?}, or give its GUID"
            ),
        )),
    }
}

/// A message GUID as the simulator makes them (a UUID), possibly with a part prefix.
fn looks_like_guid(raw: &str) -> bool {
    let uuid = raw.rsplit('/').next().unwrap_or(raw);
    uuid.len() == 36 && uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

fn step(table: &Table, files: Files<'_>, names: &mut Names) -> Result<Step, Mistake> {
    let timing = match (get(table, "at"), get(table, "after")) {
        (Some(a), Some(_)) => {
            return Err((
                Some(a.span().start),
                "a step has at (from the start) or after (from the previous step), not both"
                    .to_owned(),
            ))
        }
        (Some(a), None) => Timing::At(duration(a, "at")?),
        (None, Some(a)) => Timing::After(duration(a, "after")?),
        (None, None) => Timing::After(Duration::ZERO),
    };
    let id = get(table, "id")
        .map(|v| text(v, "id").map(|t| (v, t)))
        .transpose()?;
    if let Some((v, id)) = &id {
        if names.0.contains_key(id) {
            return Err((
                Some(v.span().start),
                format!("id {id:?} is already defined"),
            ));
        }
        if id.is_empty() || id.contains(';') || looks_like_guid(id) {
            return Err((
                Some(v.span().start),
                format!("id {id:?} must be a plain name, not empty and not like a GUID"),
            ));
        }
    }
    let what = match (get(table, "do"), get(table, "wait")) {
        (Some(d), Some(_)) => {
            return Err((
                Some(d.span().start),
                "a step either acts (do = …) or waits (wait = { … }), not both".to_owned(),
            ))
        }
        (None, None) => {
            return Err((
                None,
                "a step needs do = \"ACTION\" (with as = \"WHO\") or wait = { … }".to_owned(),
            ))
        }
        (None, Some(wait)) => {
            if let Some((key, _)) = table
                .iter()
                .find(|(k, _)| !matches!(k.get_ref().as_str(), "at" | "after" | "id" | "wait"))
            {
                return Err((
                    Some(key.span().start),
                    format!(
                        "a wait step takes at, after, id and wait, not {}",
                        key.get_ref()
                    ),
                ));
            }
            wait_step(wait, names)?
        }
        (Some(d), None) => act_step(table, d, files, names)?,
    };
    if let Some((v, id)) = &id {
        let defined = match &what {
            What::Create { .. } => Defined::Chat,
            What::Act { action, .. } if action.family == Family::Message => Defined::Message,
            What::Wait { kind, .. } if names_a_message(*kind) => Defined::Message,
            What::Act { .. } | What::Wait { .. } => {
                return Err((
                    Some(v.span().start),
                    "only a create, a message action (say, reply, react, …) or a wait for a \
                     message, reaction, edit or unsend has an id"
                        .to_owned(),
                ))
            }
        };
        names.define(id, defined);
    }
    Ok(Step {
        line: 0,
        timing,
        id: id.map(|(_, id)| id),
        what,
    })
}

/// Whether an action of this kind is about one message, which an id may then name.
pub fn names_a_message(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Message | Kind::Reaction | Kind::Unreaction | Kind::Edit | Kind::Unsend
    )
}

fn wait_step(wait: &Spanned<Value>, names: &Names) -> Result<What, Mistake> {
    let Value::Table(table) = wait.get_ref() else {
        return Err((
            Some(wait.span().start),
            "wait is a table: wait = { for = \"message\", from = \"ACCOUNT\", … }".to_owned(),
        ));
    };
    let here = Some(wait.span().start);
    if let Some(key) = table
        .keys()
        .find(|k| !matches!(k.as_str(), "for" | "from" | "chat" | "matching" | "timeout"))
    {
        return Err((
            here,
            format!("wait takes for, from, chat, matching and timeout, not {key}"),
        ));
    }
    // The values of an inline table carry no spans of their own: mistakes point at it.
    let field = |key: &str| table.get(key).map(|v| Spanned::new(wait.span(), v.clone()));
    let kind = match field("for") {
        Some(v) => Kind::parse(&text(&v, "for")?).map_err(|err| (here, err.message))?,
        None => Kind::Any,
    };
    let from = match field("from") {
        Some(v) => address(&v, "from")?,
        None => {
            return Err((
                here,
                "wait needs from = \"ACCOUNT\": whose actions count".to_owned(),
            ))
        }
    };
    let chat = field("chat")
        .map(|v| chat_ref(&v, "chat", names))
        .transpose()?;
    let matching = field("matching")
        .map(|v| text(&v, "matching"))
        .transpose()?;
    // Checked now, so a bad pattern is a mistake in the file.
    Expectation::new(kind, None, matching.as_deref()).map_err(|err| (here, err.message))?;
    let timeout = match field("timeout") {
        Some(v) => duration(&v, "timeout")?,
        None => DEFAULT_WAIT,
    };
    Ok(What::Wait {
        from,
        kind,
        chat,
        matching,
        timeout,
    })
}

fn act_step(
    table: &Table,
    d: &Spanned<Value>,
    files: Files<'_>,
    names: &Names,
) -> Result<What, Mistake> {
    let name = text(d, "do")?;
    let who = match get(table, "as") {
        Some(v) => address(v, "as")?,
        None => {
            return Err((
                Some(d.span().start),
                format!("do = {name:?} needs as = \"WHO\": an account or a puppet's address"),
            ))
        }
    };
    if name == "create" {
        let allowed = ["at", "after", "as", "do", "id", "addresses", "name"];
        if let Some((key, _)) = table
            .iter()
            .find(|(k, _)| !allowed.contains(&k.get_ref().as_str()))
        {
            return Err((
                Some(key.span().start),
                format!("create takes {}, not {}", allowed.join(", "), key.get_ref()),
            ));
        }
        let addresses = match get(table, "addresses") {
            Some(v) => addresses(v, "addresses")?,
            None => {
                return Err((
                    Some(d.span().start),
                    "create needs addresses = [\"…\", …]: the people in the group".to_owned(),
                ))
            }
        };
        let name = get(table, "name").map(|v| text(v, "name")).transpose()?;
        return Ok(What::Create {
            who,
            addresses,
            name,
        });
    }
    let action = action::find(&name).ok_or_else(|| {
        let known: Vec<&str> = action::ACTIONS.iter().map(|a| a.name).collect();
        (
            Some(d.span().start),
            format!(
                "unknown action {name:?}: one of create, {}",
                known.join(", ")
            ),
        )
    })?;
    if let Some((key, _)) = table.iter().find(|(k, _)| {
        let key = k.get_ref().as_str();
        !STEP_KEYS.contains(&key) && !action.params.iter().any(|p| p.name == key)
    }) {
        let params: Vec<&str> = action.params.iter().map(|p| p.name).collect();
        return Err((
            Some(key.span().start),
            format!(
                "{} takes {}, not {}",
                action.name,
                if params.is_empty() {
                    "no values".to_owned()
                } else {
                    params.join(", ")
                },
                key.get_ref()
            ),
        ));
    }
    let chat = match get(table, "chat") {
        Some(v) => chat_ref(v, "chat", names)?,
        None => {
            return Err((
                Some(d.span().start),
                format!("{} needs chat = \"NAME\" or a chat GUID", action.name),
            ))
        }
    };
    let args = action
        .params
        .iter()
        .map(|param| {
            let value = get(table, param.name).ok_or_else(|| {
                (
                    Some(d.span().start),
                    format!("{} needs {} = …: {}", action.name, param.name, param.help),
                )
            })?;
            Ok(match param.kind {
                ParamKind::Text if param.name == "message" => {
                    Arg::Message(message_ref(value, param.name, names)?)
                }
                ParamKind::Text => Arg::Text(text(value, param.name)?),
                ParamKind::NewAddresses | ParamKind::Members => {
                    Arg::Addresses(addresses(value, param.name)?)
                }
                ParamKind::ImageFile => {
                    let name = text(value, param.name)?;
                    let dir = match files {
                        Files::In(dir) => dir,
                        Files::Refused(why) => {
                            return Err((
                                Some(value.span().start),
                                format!("{} = {name:?}: {why}", param.name),
                            ))
                        }
                    };
                    let path = dir.join(name);
                    if !path.is_file() {
                        return Err((
                            Some(value.span().start),
                            format!("{} is not a file", path.display()),
                        ));
                    }
                    Arg::File(path)
                }
            })
        })
        .collect::<Result<Vec<_>, Mistake>>()?;
    Ok(What::Act {
        who,
        action,
        chat,
        args,
    })
}

impl Step {
    /// The step in a few words, names as the file spells them.
    pub fn describe(&self) -> String {
        let named = |line: String| match &self.id {
            Some(id) => format!("{line} (id {id})"),
            None => line,
        };
        match &self.what {
            What::Act {
                who,
                action,
                chat,
                args,
            } => {
                let mut line = format!("{who} {}", action.name);
                for arg in args {
                    match arg {
                        Arg::Text(text) => line.push_str(&format!(" {text:?}")),
                        Arg::Message(message) => line.push_str(&format!(" message {message}")),
                        Arg::Addresses(list) => line.push_str(&format!(" {}", list.join(", "))),
                        Arg::File(path) => line.push_str(&format!(" {}", path.display())),
                    }
                }
                named(format!("{line} in {chat}"))
            }
            What::Create {
                who,
                addresses,
                name,
            } => {
                let mut line = format!("{who} creates a group with {}", addresses.join(", "));
                if let Some(name) = name {
                    line.push_str(&format!(" named {name:?}"));
                }
                named(line)
            }
            What::Wait {
                from,
                kind,
                chat,
                matching,
                timeout,
            } => {
                let mut line = format!(
                    "wait up to {} for {from} to do {}",
                    humantime::format_duration(*timeout),
                    kind.phrase()
                );
                if let Some(chat) = chat {
                    line.push_str(&format!(" in {chat}"));
                }
                if let Some(matching) = matching {
                    line.push_str(&format!(" matching /{matching}/"));
                }
                named(line)
            }
        }
    }
}

/// The timeline `--dry-run` prints: one line per step, `LINE  TIME  WHAT`, the times as
/// planned if every wait is met at once.
pub fn timeline(scenario: &Scenario) -> Vec<String> {
    let mut now = Duration::ZERO;
    scenario
        .steps
        .iter()
        .map(|step| {
            now = match step.timing {
                Timing::At(at) => at.max(now),
                Timing::After(after) => now + after,
            };
            format!(
                "line {:<4} {:>9}  {}",
                step.line,
                seconds(now),
                step.describe()
            )
        })
        .collect()
}

/// `1.500s`.
pub fn seconds(d: Duration) -> String {
    format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(source: &str) -> ScenarioError {
        parse(source, Files::In(Path::new("."))).expect_err("a mistake")
    }

    const GOOD: &str = r#"
[chats]
lobby = "any;+;chat1"

[[step]]
as = "me@imgroups.local"
do = "create"
id = "party"
addresses = ["zoe@example.net", "alice@example.com", "erin@example.com"]
name = "Zoe's party"

[[step]]
after = "500ms"
as = "zoe@example.net"
do = "say"
chat = "party"
text = "hi bot"

[[step]]
id = "welcome"
wait = { for = "message", from = "me@imgroups.local", chat = "party", matching = "(?i)welcome", timeout = "5s" }

[[step]]
at = "2s"
as = "alice@example.com"
do = "react"
chat = "party"
message = "welcome"
reaction = "like"

[[step]]
as = "zoe@example.net"
do = "rename"
chat = "lobby"
name = "Lobby"
"#;

    #[test]
    fn a_good_file_reads_into_steps_and_a_timeline() {
        let scenario = parse(GOOD, Files::In(Path::new("."))).expect("good");
        assert_eq!(scenario.steps.len(), 5);
        assert_eq!(scenario.steps[0].line, 5);
        assert_eq!(
            scenario.steps[1].timing,
            Timing::After(Duration::from_millis(500))
        );
        let lines = timeline(&scenario);
        assert!(
            lines[1].contains("0.500s") && lines[1].contains("say \"hi bot\" in party"),
            "{lines:?}"
        );
        assert!(lines[2].contains("wait up to 5s for me@imgroups.local to do a message in party matching /(?i)welcome/ (id welcome)"), "{lines:?}");
        assert!(
            lines[3].contains("2.000s") && lines[3].contains("message welcome"),
            "{lines:?}"
        );
    }

    #[test]
    fn mistakes_say_where() {
        let e = err("[[step]]\nas = \"zoe@example.net\"\ndo = \"dance\"\n");
        assert_eq!((e.line, e.column), (3, 6));
        assert!(
            e.message
                .starts_with("unknown action \"dance\": one of create, rename"),
            "{}",
            e.message
        );

        let e = err(
            "[[step]]\nas = \"zoe@example.net\"\ndo = \"say\"\nchat = \"party\"\ntext = \"hi\"\n",
        );
        assert_eq!(e.line, 4);
        assert!(
            e.message.contains("no chat is named \"party\""),
            "{}",
            e.message
        );

        let e = err("[[step]]\nas = \"zoe@example.net\"\ndo = \"say\"\nchat = \"any;+;c\"\ntext = \"hi\"\nsubject = \"x\"\n");
        assert_eq!(e.line, 6);
        assert_eq!(e.message, "say takes text, not subject");

        let e = err("[[step]]\nwait = { from = \"bot@x.com\", matching = \"(\" }\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("bad pattern"), "{}", e.message);

        let e = err("[[step]]\nat = \"2s\"\nwait = { from = \"bot@x.com\" }\n[[step]]\nat = \"1s\"\nwait = { from = \"bot@x.com\" }\n");
        assert_eq!(e.line, 5);

        let e = err("[[step]]\nafter = \"soon\"\nwait = { from = \"bot@x.com\" }\n");
        assert_eq!((e.line, e.column), (2, 9));

        // The TOML parser's own errors keep their position.
        let e = err("[[step]]\nas = \n");
        assert_eq!(e.line, 2);

        let e = err("[chats]\n");
        assert!(e.message.starts_with("no steps"), "{}", e.message);
    }

    #[test]
    fn a_seed_is_a_scenario_without_times_or_waits() {
        let seed = |source: &str| parse_seed(source, Files::In(Path::new(".")));
        let ok = seed("accounts = [\"bot@example.com\"]\n[[step]]\nas = \"bot@example.com\"\ndo = \"create\"\nid = \"g\"\naddresses = [\"zoe@example.net\"]\n")
            .expect("a good seed");
        assert_eq!(ok.accounts.len(), 1);
        assert_eq!(ok.accounts[0].0, 1);
        assert_eq!(ok.steps.len(), 1);
        // Accounts alone are a seed.
        assert!(seed("accounts = [\"bot@example.com\"]\n").is_ok());

        let e = seed("[[step]]\nas = \"zoe@example.net\"\ndo = \"say\"\nchat = \"any;+;c\"\ntext = \"hi\"\n at = \"1s\"\n")
            .expect_err("a timing");
        assert_eq!((e.line, e.column), (6, 2));
        assert!(
            e.message.starts_with("at: a seed has no timings"),
            "{}",
            e.message
        );
        let e = seed("[[step]]\nwait = { from = \"bot@example.com\" }\n").expect_err("a wait");
        assert_eq!((e.line, e.column), (2, 1));
        assert!(
            e.message.starts_with("wait: a seed has no waits"),
            "{}",
            e.message
        );
        let e = seed("accounts = [\"a@example.com\", \"a@example.com\"]\n").expect_err("twice");
        assert_eq!((e.line, e.column), (1, 30));
        assert_eq!(e.message, "accounts: a@example.com is listed twice");
        let e = seed("").expect_err("empty");
        assert!(e.message.starts_with("no steps"), "{}", e.message);

        // A seed from elsewhere names no file on this machine; the disk is not looked at.
        let icon = "[[step]]\nas = \"zoe@example.net\"\ndo = \"icon-set\"\nchat = \"any;+;c\"\nfile = \"/etc/hostname\"\n";
        assert!(seed(icon).is_ok());
        let e = parse_seed(icon, Files::Refused("no files here")).expect_err("a file");
        assert_eq!((e.line, e.column), (5, 8));
        assert_eq!(e.message, "file = \"/etc/hostname\": no files here");

        // And a scenario has no accounts list.
        let e =
            err("accounts = [\"a@example.com\"]\n[[step]]\nwait = { from = \"a@example.com\" }\n");
        assert_eq!((e.line, e.column), (1, 12));
    }
}
