//! The `imgroups` command: run the server, manage accounts and tokens, drive the simulator,
//! and act on a running server as a client.
//!
//! Scripting contract (tests and users rely on it; keep it stable):
//! - `imgroups serve` prints, one per line on stdout: `account <ADDRESS>`, then on the first
//!   start of that account only `token <TOKEN>`, then `grpc listening on <HOST:PORT>`, then
//!   `http listening on <HOST:PORT>`, then `console <URL>` (the web console:
//!   `http://HOST:PORT/console/` on the HTTP listener, `https://…` with TLS), then (with
//!   `--metrics`) `metrics listening on <HOST:PORT>`, then (with `--backend chatdb
//!   --helper`) `helper listening on <HOST:PORT>`, then `ready`. Logs go to stderr, as text or, with `--log-format json`
//!   (`IMGROUPS_LOG_FORMAT`), one JSON object per line. The listeners are bound before the
//!   account is created, so a start that fails on a taken port creates no account. A second
//!   `serve` on a data directory already served is refused, naming the first one's pid.
//! - The first token of `serve`'s account is also written to a token file (mode 0600) in the
//!   data directory, one per store so that a server on another store never overwrites it:
//!   `DIR/token` for the SQLite store in DIR, `DIR/token-postgres-<HASH>` for a PostgreSQL
//!   database (HASH: 12 hex digits naming the database; see `store::token_file`).
//! - `imgroups serve --config FILE` (`IMGROUPS_CONFIG`) reads a TOML file whose keys are the
//!   long flag names; precedence flag > env > file > default; an unknown key or a bad value
//!   exits 2 naming the file and the key (see `config`). Every other command reads the same
//!   file for the keys it shares with `serve` (`data`, `database-url`, `log-format`), so a
//!   command finds the store the server uses; an unknown key fails it too. `imgroups config
//!   print [--config FILE] [SERVE FLAGS]` prints the effective configuration as TOML, each key with its
//!   origin (`# flag`, `# env NAME`, `# file`, `# default`), secrets redacted.
//! - `imgroups account add ADDRESS` prints the new account's token as its only stdout line.
//! - `imgroups token create ADDRESS` prints a new token; `token list` lists tokens (never the
//!   secret) as `ID<TAB>ACCOUNT<TAB>CREATED<TAB>active|revoked`, CREATED in RFC 3339 UTC;
//!   `token revoke ID|TOKEN` revokes one.
//! - `imgroups admin token` prints a new admin token (the console's credential, `imgadm_…`)
//!   as its only stdout line (`--json`: `{"token"}`).
//! - `imgroups sim unreachable ADDRESS` marks an address as not on iMessage
//!   (`--reachable` undoes it); `sim unreachable --list` prints the marked addresses, one a
//!   line, sorted.
//! - `imgroups sim reset [--all]` clears the simulated world (accounts and tokens stay unless
//!   `--all`) and prints `reset <N>`, N counting the store's resets.
//! - `imgroups sim fault add ADDRESS --method NAME|* [--code CODE [--retryable]]
//!   [--latency-ms N] [--count N] [--for-secs T]` makes calls of NAME (an RPC name, or `*`
//!   for all) by the account ADDRESS fail with the wire error CODE and/or be delayed; it
//!   prints `fault <ID>: <DESCRIPTION>`. `sim fault list` prints the armed faults as
//!   `ID<TAB>ACCOUNT<TAB>METHOD<TAB>CODE|-<TAB>RETRYABLE<TAB>LATENCY_MS<TAB>LEFT|-<TAB>UNTIL|-`
//!   (UNTIL in RFC 3339 UTC); `sim fault clear ID|--account ADDRESS|--all` prints
//!   `cleared <N>`.
//! - `imgroups sim clock show [--json]` prints the store's time (RFC 3339 UTC) then `seed N`
//!   (a controllable clock, `serve --seed N`) or `system`; `sim clock advance DURATION` moves
//!   a controllable clock forward (`10m`, `90s`, `1h30m`) and prints the same line; refused
//!   (exit 1) without one (`preconditionFailed`, `reason=clockNotControllable`) or for a
//!   negative duration (`invalidArgument`).
//! - `imgroups sim act ADDRESS rename|add|remove|leave|icon-set|icon-rm CHAT [ARGS]` makes a
//!   person in the simulated network (a puppet, usually not an account) change a group; every
//!   account in the group sees it, live, with that person as the actor.
//! - `imgroups sim expect ACCOUNT [--kind K] [--in CHAT] [--matching RE] [--since N|now]
//!   [--timeout D] [--json]` waits for the account's own action and prints it (`#SEQ TIME CHAT
//!   KIND "TEXT" by me`, or one JSON object); exit 0 matched, 1 not within the timeout (stderr
//!   lists what the log showed), 2 usage or an unusable store.
//! - `imgroups sim play SCENARIO [--dry-run]` plays a TOML scenario, one line per step done
//!   (`[  0.512s] line 12  WHAT -> RESULT`); exit 0 done, 1 a step refused or a wait not met
//!   (`error: FILE:LINE: …`), 2 a bad file (`error: FILE:LINE:COLUMN: … (invalidArgument)`).
//! - `imgroups webhook add URL --account ADDRESS` prints `id <ID>` then `secret <SECRET>`;
//!   `webhook list` prints one tab-separated line per endpoint; `webhook rm ID` and
//!   `webhook resume ID` report on stderr.
//! - `--json` (on `account add`, `token create|list`, `admin token`, `webhook add|list`,
//!   `sim fault add|list` and every client command): a single result is one JSON object on
//!   one line (`{"account","token"}`, `{"id","account","url","secret"}`); a list is JSON
//!   lines, one object per item (`token list`: `id`, `account`, `created` RFC 3339,
//!   `createdUnix`, `status`; `webhook list`: `id`, `account`, `url`, `status`, `cursor`,
//!   `failures`, `lastError`; a fault: `id`, `account`, `method`, `code`, `retryable`,
//!   `latencyMs`, `left`, `until` RFC 3339, `untilUnix`, `created`). Errors are
//!   then one JSON object on stderr, `{"error":{"code","message","retryable"}}`, with the
//!   same exit codes.
//! - `imgroups mac messages --helper-dylib PATH` (on a Mac) restarts Messages with the helper
//!   loaded and prints `messages started (pid PID); helper connected` once it connected.
//! - `imgroups completions bash|zsh|fish|…` prints a completion script; `imgroups man` a roff
//!   man page.
//!
//! Every store command takes `--data DIR` (or `IMGROUPS_DATA`) and `--database-url URL` (or
//! `IMGROUPS_DATABASE_URL`); an error saying that something was not found names the store
//! it looked in (`… in the SQLite store at DIR/imgroups.db`, `… in the PostgreSQL database
//! URL`). Exit codes: 0 success, 1 a failed operation (one line on stderr ending with the
//! camelCase wire error code, e.g. `(chatNotFound)`; a failure of the machine, like a taken
//! port or an unwritable data directory, is `(internalError)` with the path or address and
//! the OS's reason), 2 bad usage (including a bad configuration file).
//!
//! Client commands (`groups …`, `chats …`, `events tail`) talk to a running server
//! (`--server`/`IMGROUPS_SERVER` as `HOST:PORT` or `http://HOST:PORT` for plaintext,
//! `https://HOST:PORT` for TLS; `--token`/`IMGROUPS_TOKEN`; both before or after the
//! subcommand's name); `remote` documents their extra exit codes (3 auth, 4 not found, 5
//! connection). `groups` offers the same actions as `sim act`, from one description
//! (`imgroups_core::action`): `groups ACTION CHAT …`, a hyphenated action as two words
//! (`groups icon set CHAT FILE`), plus `groups icon get CHAT -o FILE`.
//!
//! Layout: this file reads the command line (`cli`, with the configuration file applied by
//! `config`) and hands each command to its module in `cmd`. Commands on a store open it
//! through `store`, the one place (with `cmd::serve`, which also picks the backend) where
//! the binary chooses concrete implementations of the ports; client commands connect
//! through `remote`; `output` owns stdout and stderr; `listen` binds `serve`'s listeners.
//! The files `sim play` and `sim seed` read are `imgroups_scenario`'s (the console's seed
//! route reads them too).

mod cli;
mod cmd;
mod config;
mod listen;
mod output;
mod remote;
mod store;

/// jemalloc instead of glibc's allocator: the transport allocates and frees per message, and
/// glibc malloc/free were ~15% of the server's CPU in catch-up; with jemalloc catch-up is ~12%
/// faster and the resident set is smaller too (BENCHMARKS.md, stage 3).
///
/// Built with jemalloc's background threads on (the `background_threads` feature): without
/// them freed pages go back to the system only when later allocations tick jemalloc's decay
/// clock, so a server that falls idle after a load spike keeps its peak; with them a sleeping
/// thread purges pages unused for 10 s (`dirty_decay_ms`). Measured: 2000 SSE streams and 32
/// 12 MiB bodies, then 30 s idle, leave 150 MiB resident without, 40 MiB with (SECURITY.md,
/// "Memory"). `_RJEM_MALLOC_CONF=background_thread:false` turns them off at run time.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::process::ExitCode;

use imgroups_core::Error;

use crate::cli::{Cmd, Parsed, SimCmd};

fn main() -> ExitCode {
    let Parsed { cli, file, entries } = match cli::parse() {
        Ok(parsed) => parsed,
        Err(exit) => return exit,
    };
    output::init_logging(cli.log_format);
    let json = cli.command.json();
    let done = match cli.command {
        Cmd::Serve(args) => cmd::serve::run(args),
        Cmd::Account(cmd) => cmd::account::run(cmd),
        Cmd::Token(cmd) => cmd::token::run(cmd),
        Cmd::Admin(cmd) => cmd::admin::run(cmd),
        // Assertions and scenarios have exit codes of their own.
        Cmd::Sim(SimCmd::Expect(args)) => return cmd::expect::run(args),
        Cmd::Sim(SimCmd::Play(args)) => return cmd::play::run(args),
        Cmd::Sim(SimCmd::Seed(args)) => return cmd::seed::run(args),
        Cmd::Sim(cmd) => cmd::sim::run(cmd),
        Cmd::Webhook(cmd) => cmd::webhook::run(cmd),
        Cmd::Config(cmd) => cmd::config::run(cmd, file.as_deref(), entries),
        Cmd::Completions { shell } => cmd::docs::completions(shell),
        Cmd::Man => cmd::docs::man(),
        Cmd::Mac(cmd) => cmd::mac::run(cmd),
        // Client commands talk to a running server and have exit codes of their own.
        Cmd::Groups(args) => return cmd::groups::run(args),
        Cmd::Chats(args) => return cmd::chats::run(args),
        Cmd::Messages(args) => return cmd::messages::run(args),
        Cmd::Addresses(args) => return cmd::addresses::run(args),
        Cmd::Events(args) => return cmd::events::run(args),
    };
    output::exit(done, json)
}

/// A runtime from `builder`, with I/O and timers.
fn runtime(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, Error> {
    builder.enable_all().build().map_err(|err| {
        tracing::error!(error = %err, "cannot start the runtime");
        Error::internal()
    })
}
