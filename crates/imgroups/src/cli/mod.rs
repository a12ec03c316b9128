//! The command line: every subcommand, flag and help text (clap), and [`parse`], which applies
//! the configuration file. Nothing here opens a store or connects anywhere: the commands in
//! `cmd` do the work with what is parsed here.
//!
//! - this file: the root ([`Cli`]), the subcommands ([`Cmd`]) of the local commands, and the
//!   store location every store command takes ([`DataArg`]);
//! - [`serve`]: `serve`'s flags, with [`backend`], [`limits`], [`ops`] and [`tls`] for its
//!   groups of flags;
//! - [`remote`]: the client commands (`groups`, `chats`, `events`) and where the server is;
//! - [`action`]: the group actions of `imgroups_core::action`, as subcommands of `sim act`
//!   and `groups`.

pub(crate) mod action;
pub(crate) mod backend;
pub(crate) mod expect;
pub(crate) mod limits;
pub(crate) mod ops;
pub(crate) mod remote;
pub(crate) mod serve;
pub(crate) mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use imgroups_core::Error;

use crate::config;

/// Name of the database file inside the data directory.
const DB_FILE: &str = "imgroups.db";

#[derive(Parser)]
#[command(
    name = "imgroups",
    version,
    about = "iMessage group chats: the server (simulator, PostgreSQL or a Mac's Messages), its \
             tools, and a client",
    after_help = "Every command reads --config FILE (IMGROUPS_CONFIG) for what it shares with \
                  `serve`. The client commands (groups, chats, events) take --server and --token \
                  before or after their name."
)]
pub(crate) struct Cli {
    /// Log format on stderr: `text` for people, `json` (one object per line) for collectors.
    #[arg(
        long,
        env = "IMGROUPS_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub(crate) log_format: LogFormat,
    /// Read settings from this TOML file: keys are `serve`'s long flag names (`grpc = "…"`,
    /// `heartbeat-secs = 30`); flags and environment variables win over it. Every other
    /// command takes from it what it shares with `serve`: `data`, `database-url`,
    /// `log-format`.
    #[arg(long, env = "IMGROUPS_CONFIG", value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) remote: remote::GlobalRemote,
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// Where the store is: SQLite in a data directory, or a PostgreSQL database.
#[derive(clap::Args, Clone)]
pub(crate) struct DataArg {
    /// Data directory [default: the user's data directory, e.g. ~/.local/share/imgroups]
    #[arg(long = "data", env = "IMGROUPS_DATA", global = true)]
    pub(crate) dir: Option<PathBuf>,
    /// Keep everything in this PostgreSQL database (>= 15) instead of SQLite in the data
    /// directory, e.g. postgres://user@host:5432/imgroups. Several servers may share one.
    #[arg(long = "database-url", env = "IMGROUPS_DATABASE_URL", global = true)]
    pub(crate) database_url: Option<String>,
}

impl DataArg {
    /// The data directory: `--data`, else the user's data directory.
    pub(crate) fn dir(&self) -> Result<PathBuf, Error> {
        match &self.dir {
            Some(dir) => Ok(dir.clone()),
            None => dirs::data_dir()
                .map(|d| d.join("imgroups"))
                .ok_or_else(|| Error::invalid("no user data directory here; pass --data DIR")),
        }
    }

    /// The SQLite database in the data directory.
    pub(crate) fn db(&self) -> Result<PathBuf, Error> {
        Ok(self.dir()?.join(DB_FILE))
    }
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Run the server: the gRPC API (--grpc), the HTTP/JSON API with Server-Sent Events and
    /// the web console (--http), over the simulator or this Mac's Messages (--backend), on
    /// the embedded SQLite store or on PostgreSQL (--database-url).
    Serve(serve::ServeArgs),
    /// Manage accounts: each has its own chats, event log and API tokens.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Drive the simulated iMessage network.
    #[command(subcommand)]
    Sim(SimCmd),
    /// Administer the server's console.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Manage webhook endpoints (signed deliveries of an account's group events).
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// Group operations on a running server (rename, add, remove, leave, icon).
    Groups(remote::GroupsArgs),
    /// Chat operations on a running server (create, get, count, read, typing).
    Chats(remote::ChatsArgs),
    /// Messages on a running server (send, list, get, react, edit, unsend).
    Messages(remote::MessagesArgs),
    /// Address look-ups on a running server (check).
    Addresses(remote::AddressesArgs),
    /// Follow group events on a running server.
    Events(remote::EventsArgs),
    /// Inspect the configuration `serve` would run with.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// On a Mac: start Messages with the helper (docs/mac.md).
    #[command(subcommand)]
    Mac(MacCmd),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// E.g. `imgroups completions bash > ~/.local/share/bash-completion/completions/imgroups`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    ///
    /// E.g. `imgroups man | man -l -`, or `imgroups man > imgroups.1`.
    Man,
}

impl Cmd {
    /// Whether a local command was asked for JSON (its errors are then JSON too).
    pub(crate) fn json(&self) -> bool {
        match self {
            Cmd::Account(AccountCmd::Add { json, .. })
            | Cmd::Token(TokenCmd::Create { json, .. } | TokenCmd::List { json, .. })
            | Cmd::Webhook(WebhookCmd::Add { json, .. } | WebhookCmd::List { json, .. })
            | Cmd::Admin(AdminCmd::Token {
                action: None, json, ..
            })
            | Cmd::Admin(AdminCmd::Token {
                action: Some(AdminTokenCmd::List { json, .. }),
                ..
            })
            | Cmd::Sim(SimCmd::Fault(FaultCmd::Add { json, .. } | FaultCmd::List { json, .. }))
            | Cmd::Sim(SimCmd::Clock(
                ClockCmd::Show { json, .. } | ClockCmd::Advance { json, .. },
            )) => *json,
            _ => false,
        }
    }

    /// Whether this is a client command, which talks to a running server.
    fn is_client(&self) -> bool {
        matches!(
            self,
            Cmd::Groups(_) | Cmd::Chats(_) | Cmd::Messages(_) | Cmd::Addresses(_) | Cmd::Events(_)
        )
    }
}

#[derive(Subcommand)]
pub(crate) enum ConfigCmd {
    /// Print the effective configuration of `serve` with the same flags, environment and
    /// --config file, as TOML: every key, where its value came from (flag, env, file,
    /// default), secrets redacted.
    Print(serve::ServeArgs),
}

#[derive(Subcommand)]
pub(crate) enum MacCmd {
    /// Quit Messages and start it again with the helper library loaded
    /// (`DYLD_INSERT_LIBRARIES`), then wait for the helper to connect on this user's helper
    /// port (45670 + uid - 501). Needs SIP and library validation off (docs/mac.md, step 3).
    /// Prints `messages started (pid PID); helper connected`.
    Messages {
        /// The helper library (`BlueBubblesHelper.dylib`).
        #[arg(long, value_name = "PATH")]
        helper_dylib: std::path::PathBuf,
        /// How long to wait for the helper's first message once Messages runs, in seconds.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
        ping_timeout_secs: u64,
    },
}

#[derive(Subcommand)]
pub(crate) enum AccountCmd {
    /// Create an account and print its first token (the only stdout line).
    Add {
        /// The account's address: a phone number (E.164) or an email address.
        address: String,
        /// Print `{"account":…,"token":…}` instead.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
pub(crate) enum TokenCmd {
    /// Print a new token for an existing account (another device of it).
    Create {
        /// The account's address.
        address: String,
        /// Print `{"account":…,"token":…}` instead.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArg,
    },
    /// List tokens: id, account, created (RFC 3339, UTC), status. Never the secret.
    List {
        /// JSON lines: one object per token, `created` (RFC 3339) and `createdUnix` (seconds).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArg,
    },
    /// Revoke a token, given its id from `token list` or the token itself.
    Revoke {
        /// The token's id (from `token list`) or the token itself.
        token: String,
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
pub(crate) enum AdminCmd {
    /// Print a new admin token (the console's credential) as the only stdout line. Shown
    /// once: only its hash is kept. Works while the server runs. `token list` and
    /// `token revoke` manage the existing ones.
    #[command(args_conflicts_with_subcommands = true)]
    Token {
        #[command(subcommand)]
        action: Option<AdminTokenCmd>,
        /// Print `{"token":…}` instead.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
pub(crate) enum AdminTokenCmd {
    /// List admin tokens: `ID<TAB>CREATED`, one per line (never the tokens themselves).
    List {
        /// One JSON object per line instead.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArg,
    },
    /// Revoke an admin token, given as its id (from `admin token list`) or the token itself.
    /// Every server on the store refuses it from its next console request, and the console
    /// pages open with it return to the sign-in form.
    Revoke {
        /// The token's id or the token.
        token: String,
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
pub(crate) enum WebhookCmd {
    /// Register URL for an account's events; prints `id <ID>` and `secret <SECRET>`.
    /// Delivery starts with the account's next event.
    Add {
        /// The endpoint: an http:// or https:// URL that accepts POSTed JSON.
        url: String,
        /// The account whose events are delivered.
        #[arg(long)]
        account: String,
        /// Print `{"id":…,"account":…,"url":…,"secret":…}` instead.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArg,
    },
    /// List endpoints: id, account, url, status (active|paused), last delivered sequence,
    /// consecutive failures, last error. Never the secret.
    List {
        /// JSON lines: one object per endpoint.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArg,
    },
    /// Delete an endpoint.
    Rm {
        /// The endpoint's id (from `webhook list`).
        id: i64,
        #[command(flatten)]
        data: DataArg,
    },
    /// Resume a paused endpoint from its last delivered sequence.
    Resume {
        /// The endpoint's id (from `webhook list`).
        id: i64,
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
pub(crate) enum SimCmd {
    /// Clear the simulated world: groups, messages, icons, backgrounds, direct chats, every
    /// account's log, idempotency records, injected faults and unreachable addresses. Accounts
    /// and their tokens stay (a test's clients keep working) and sequences never go back.
    /// Works while the server runs: its open streams end with preconditionFailed
    /// (reason=reset). Prints `reset <N>`, N counting the store's resets.
    Reset {
        /// Remove accounts, their tokens and webhooks too (admin tokens stay).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        data: DataArg,
    },
    /// Mark an address as not on iMessage (adding it then fails with addressNotFound), or
    /// with --list print the addresses marked so.
    Unreachable {
        /// The address (phone number or email) to mark.
        #[arg(required_unless_present = "list")]
        address: Option<String>,
        /// Undo: make the address reachable again.
        #[arg(long)]
        reachable: bool,
        /// Print the addresses marked unreachable, one a line, sorted (instead of marking).
        #[arg(long, conflicts_with_all = ["address", "reachable"])]
        list: bool,
        #[command(flatten)]
        data: DataArg,
    },
    /// Inject faults: make an account's calls fail with a chosen error code and/or be delayed,
    /// to test how a client copes. Works while the server runs.
    #[command(subcommand)]
    Fault(FaultCmd),
    /// The store's clock: show it, or move a controllable one (`serve --seed N`) forward.
    /// Works while the server runs: its next write sees the new time.
    #[command(subcommand)]
    Clock(ClockCmd),
    /// Make a person in the simulated network (a puppet) change a group, as if a human did it
    /// on their phone. The same rules hold as for an account (a non-member gets chatNotFound);
    /// every account in the group sees the change with ADDRESS as the actor. Works while the
    /// server runs.
    Act {
        /// Who acts: any address (usually not an account).
        address: String,
        #[command(subcommand)]
        action: action::ActionCmd,
        #[command(flatten)]
        data: DataArg,
    },
    /// Wait until an account does something — sends a message matching a pattern in a chat,
    /// reacts, renames a group, … — and print it. Only the account's own actions count (its
    /// log's events with isFromMe). Exit 0 when it did within the timeout; 1 when it did not
    /// (what its log showed instead goes to stderr); 2 on bad usage or a store that cannot be
    /// read. Works while the server runs.
    Expect(expect::ExpectArgs),
    /// Play a scenario file: people (puppets or accounts) act at given times, and waits check
    /// what an account did in between (see docs/simulator.md#scenarios). Prints each step as
    /// it happens. Exit 0 when every step was done, 1 when one was refused or a wait was not
    /// met, 2 for a bad file (FILE:LINE:COLUMN and the reason). Works while the server runs.
    /// With a controllable clock (serve --seed N) the step times move that clock instead of
    /// passing: nothing sleeps but the waits.
    Play(expect::PlayArgs),
    /// Apply a seed file at once: make the accounts it lists that do not exist yet (printing
    /// `token ADDRESS TOKEN` for each), then its steps in file order — groups, members,
    /// names, messages, reactions (see docs/simulator.md#seeds). A seed is a scenario
    /// without times or waits. Prints `chat NAME GUID` / `message NAME GUID` for what its
    /// steps name, then `seeded: N accounts, N chats, N steps`. Exit 0 done; 1 a step
    /// refused (`error: FILE:LINE: …`; the steps before it stay done); 2 a bad file
    /// (`error: FILE:LINE:COLUMN: …`, nothing written). Works while the server runs.
    Seed(expect::SeedArgs),
    /// Save the whole simulated world to a file, or replace it with one: accounts with their
    /// token hashes, groups, members, icons, messages, logs, webhooks, faults, the directory
    /// and the controllable clock (see docs/simulator.md#snapshots). Works while the server
    /// runs.
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
}

#[derive(Subcommand)]
pub(crate) enum SnapshotCmd {
    /// Write the world to FILE (`-`: standard output) as versioned JSON, from one consistent
    /// view, and print what it holds. The same world always gives the same bytes.
    Export {
        /// Where to write: a file (replaced whole, never left half-written) or `-`.
        file: PathBuf,
        #[command(flatten)]
        data: DataArg,
    },
    /// Replace the world with FILE's (`-`: standard input), in one transaction: everything
    /// the store held is gone (admin tokens stay), the file's accounts and tokens work at
    /// once, and it counts as a reset (open streams end with reason=reset; cursors from
    /// before belong to the old world). A bad file is refused with its line and column, and
    /// changes nothing.
    Import {
        /// The snapshot to load: a file or `-`.
        file: PathBuf,
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
pub(crate) enum ClockCmd {
    /// Print the store's time (RFC 3339, UTC), then `seed N` for a controllable clock or
    /// `system` for the system's clock.
    Show {
        /// One JSON object: `{controllable, now, nowNanos, seed, ids}`.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArg,
    },
    /// Move the controllable clock forward by DURATION (`10m`, `90s`, `1h30m`, `1.5s`,
    /// `2d`) and print the new time. Refused (exit 1) without a controllable clock
    /// (clockNotControllable) or for a negative duration: time never goes back.
    Advance {
        /// How far: a number and a unit (d, h, m, s, ms), e.g. 10m.
        #[arg(allow_hyphen_values = true)]
        duration: String,
        /// Print the clock as one JSON object instead.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
pub(crate) enum FaultCmd {
    /// Add a fault; prints `fault <ID>: <DESCRIPTION>`. Without --count or --for-secs it
    /// applies to every matching call until cleared.
    Add {
        /// The account whose calls are affected.
        address: String,
        /// The RPC affected, as the wire names it (`SetDisplayName`, `CreateChat`, …), or
        /// `*` for every method.
        #[arg(long, value_name = "NAME|*")]
        method: String,
        /// Fail the call with this wire error code (e.g. databaseError, timeout,
        /// burstRateExceeded).
        #[arg(long)]
        code: Option<String>,
        /// Mark the injected error retryable (`x-retryable: true`).
        #[arg(long, requires = "code")]
        retryable: bool,
        /// Delay the call by this many milliseconds before it runs (or fails).
        #[arg(long, value_name = "N")]
        latency_ms: Option<u64>,
        /// Apply to this many calls, then disarm.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        count: Option<u32>,
        /// Disarm after this many seconds.
        #[arg(long, value_name = "T", value_parser = clap::value_parser!(u64).range(1..))]
        for_secs: Option<u64>,
        /// Print the fault as one JSON object instead.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArg,
    },
    /// List the armed faults: id, account, method, code, retryable, latency (ms), uses left,
    /// until (RFC 3339, UTC).
    List {
        /// JSON lines: one object per fault.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArg,
    },
    /// Remove one fault, an account's faults, or every fault; prints `cleared <N>`.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["id", "account", "all"])))]
    Clear {
        /// The fault's id (from `sim fault list`).
        id: Option<i64>,
        /// Remove every fault of this account.
        #[arg(long)]
        account: Option<String>,
        /// Remove every fault.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        data: DataArg,
    },
}

/// How the configuration file applies (see `config`): `serve` and `config print` take every
/// `serve` key; every other command the keys it shares with `serve`, when it has the flag.
const SCHEME: config::Scheme<'static> = config::Scheme {
    full: &[&["serve"], &["config", "print"]],
    keys_of: &["serve"],
    shared: &["data", "database-url", "log-format"],
};

/// The command line and what the configuration file added to it.
pub(crate) struct Parsed {
    pub(crate) cli: Cli,
    /// The configuration file read, if any.
    pub(crate) file: Option<PathBuf>,
    /// `serve`'s effective settings, for `config print` (empty for other commands).
    pub(crate) entries: Vec<config::Entry>,
}

/// Parses the process's arguments with the configuration file applied. Bad usage (clap's,
/// the file's) is reported here and ends the process with exit 2; so does `--help`
/// (exit 0).
pub(crate) fn parse() -> Result<Parsed, ExitCode> {
    let resolved = match config::resolve::<Cli>(std::env::args_os().collect(), &SCHEME) {
        Ok(resolved) => resolved,
        Err(config::ConfigError::Clap(err)) => err.exit(),
        Err(config::ConfigError::File(message)) => {
            eprintln!("error: {message} (invalidArgument)");
            return Err(ExitCode::from(2));
        }
    };
    let cli = resolved.cli;
    // The client flags are global so that they may come before the subcommand; elsewhere
    // they would be silently ignored, so they are refused.
    if !cli.command.is_client() && cli.remote.given() {
        <Cli as clap::CommandFactory>::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--server, --token and --tls-ca are for the client commands (groups, chats, \
                 messages, addresses, events)",
            )
            .exit();
    }
    Ok(Parsed {
        cli,
        file: resolved.file,
        entries: resolved.entries,
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `--help` is the first documentation a newcomer reads: no argument goes without words.
    #[test]
    fn every_argument_has_a_description() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                if arg.get_help().is_none() && !arg.is_hide_set() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "imgroups", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    /// The client flags work before the subcommand as well as after it, and the later one
    /// wins.
    #[test]
    fn client_flags_are_global() {
        use clap::Parser;
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).expect("parses");
            let super::Cmd::Chats(chats) = cli.command else {
                panic!("chats");
            };
            chats.remote.server().to_owned()
        };
        assert_eq!(
            parse(&["imgroups", "--server", "a:1", "chats", "count"]),
            "a:1"
        );
        assert_eq!(
            parse(&["imgroups", "chats", "count", "--server", "b:2"]),
            "b:2"
        );
        assert_eq!(
            parse(&["imgroups", "--server", "a:1", "chats", "--server", "b:2", "count"]),
            "b:2"
        );
    }
}
