//! `sim expect`, `sim play` and `sim seed`: assertions on what an account did, scenarios
//! that make people act and wait for such assertions, and seeds that make a world at once. Their exit codes are their own: 0 met, 1 not met
//! (or a step refused), 2 usage (a bad flag or file) or a store that cannot be used.

use std::path::PathBuf;
use std::time::Duration;

use imgroups_core::expect::Kind;

use super::DataArg;

/// Where an expectation starts in the account's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Since {
    /// After this sequence (0: the whole log since the last reset).
    Sequence(u64),
    /// After the log's head when the command starts.
    Now,
}

fn since(value: &str) -> Result<Since, String> {
    match value.trim() {
        "now" => Ok(Since::Now),
        n => n
            .parse()
            .map(Since::Sequence)
            .map_err(|_| format!("{value:?} is neither a sequence number nor `now`")),
    }
}

fn kind(value: &str) -> Result<Kind, String> {
    Kind::parse(value).map_err(|err| err.message)
}

fn duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value.trim())
        .map_err(|err| format!("{value:?} is not a duration like 5s, 500ms or 1m: {err}"))
}

#[derive(clap::Args)]
pub(crate) struct ExpectArgs {
    /// The account whose own actions are checked (its address).
    pub(crate) account: String,
    /// What it did: message, reaction, unreaction, edit, unsend, read, rename, add, remove,
    /// leave, icon, background, group (any group change) or any.
    #[arg(long, value_name = "KIND", default_value = "any", value_parser = kind)]
    pub(crate) kind: Kind,
    /// Only in this chat (its GUID).
    #[arg(long = "in", value_name = "CHAT")]
    pub(crate) chat: Option<String>,
    /// Only if what it did says something matching this regular expression: a message's or
    /// an edit's text, a group's new name, the address added or removed, the tapback's name
    /// (`(?i)` makes it case-insensitive).
    #[arg(long, value_name = "REGEX")]
    pub(crate) matching: Option<String>,
    /// Only after this sequence of the account's log, or after its head when the command
    /// starts (`now`); 0 is the whole log since the last reset.
    #[arg(long, value_name = "N|now", default_value = "0", value_parser = since)]
    pub(crate) since: Since,
    /// How long to wait for it, e.g. 5s, 500ms, 1m.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    pub(crate) timeout: Duration,
    /// Print the matching event as one JSON object (and, when nothing matched, what was seen
    /// as JSON lines on stderr).
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) data: DataArg,
}

#[derive(clap::Args)]
pub(crate) struct PlayArgs {
    /// The scenario file (TOML; see docs/simulator.md#scenarios).
    pub(crate) scenario: PathBuf,
    /// Print the timeline without touching the store: each step with its time and line.
    #[arg(long)]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) data: DataArg,
}

#[derive(clap::Args)]
pub(crate) struct SeedArgs {
    /// The seed file (TOML, a scenario's format without times or waits, plus an `accounts` list;
    /// see docs/simulator.md#seeds).
    pub(crate) file: PathBuf,
    /// First clear the world as `sim reset` does (accounts and tokens stay).
    #[arg(long)]
    pub(crate) reset: bool,
    #[command(flatten)]
    pub(crate) data: DataArg,
}
