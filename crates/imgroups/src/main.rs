//! The `imgroups` command: run the server, manage accounts and tokens, drive the simulator.
//!
//! Scripting contract (tests and users rely on it; keep it stable):
//! - `imgroups serve` prints, one per line on stdout: `account <ADDRESS>`, then on the first
//!   start of that account only `token <TOKEN>`, then `grpc listening on <HOST:PORT>`, then
//!   `http listening on <HOST:PORT>`, then (with `--metrics`) `metrics listening on
//!   <HOST:PORT>`, then (with `--backend chatdb --helper`) `helper listening on <HOST:PORT>`,
//!   then `ready`. Logs go to stderr, as text or, with `--log-format json`
//!   (`IMGROUPS_LOG_FORMAT`), one JSON object per line. The listeners are bound before the
//!   account is created, so a start that fails on a taken port creates no account. A second
//!   `serve` on a data directory already served is refused, naming the first one's pid.
//! - `imgroups serve --config FILE` (`IMGROUPS_CONFIG`) reads a TOML file whose keys are the
//!   long flag names; precedence flag > env > file > default; an unknown key or a bad value
//!   exits 2 naming the file and the key (see `config`). `imgroups config print [--config
//!   FILE] [SERVE FLAGS]` prints the effective configuration as TOML, each key with its
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
//! - `imgroups sim fault add ADDRESS --method NAME|* [--code CODE [--retryable]]
//!   [--latency-ms N] [--count N] [--for-secs T]` makes calls of NAME (an RPC name, or `*`
//!   for all) by the account ADDRESS fail with the wire error CODE and/or be delayed; it
//!   prints `fault <ID>: <DESCRIPTION>`. `sim fault list` prints the armed faults as
//!   `ID<TAB>ACCOUNT<TAB>METHOD<TAB>CODE|-<TAB>RETRYABLE<TAB>LATENCY_MS<TAB>LEFT|-<TAB>UNTIL|-`
//!   (UNTIL in RFC 3339 UTC); `sim fault clear ID|--account ADDRESS|--all` prints
//!   `cleared <N>`.
//! - `imgroups sim act ADDRESS rename|add|remove|leave|icon-set|icon-rm CHAT [ARGS]` makes a
//!   person in the simulated network (a puppet, usually not an account) change a group; every
//!   account in the group sees it, live, with that person as the actor.
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
//! - `imgroups completions bash|zsh|fish|…` prints a completion script; `imgroups man` a roff
//!   man page.
//!
//! Every store command takes `--data DIR` (or `IMGROUPS_DATA`). Exit codes: 0 success, 1 a
//! failed operation (one line on stderr ending with the camelCase wire error code, e.g.
//! `(chatNotFound)`; a failure of the machine, like a taken port or an unwritable data
//! directory, is `(internalError)` with the path or address and the OS's reason), 2 bad usage
//! (including a bad configuration file).
//!
//! This is where the concrete parts meet: the SQLite store and the simulator, wired into the
//! engine the server runs (see `open_store` and `serve`).
//!
//! Client commands (`groups …`, `chats …`, `events tail`) talk to a running server
//! (`--server`/`IMGROUPS_SERVER` as `HOST:PORT` or `http://HOST:PORT` for plaintext,
//! `https://HOST:PORT` for TLS; `--token`/`IMGROUPS_TOKEN`); they live in `remote`, which
//! documents their extra exit codes (3 auth, 4 not found, 5 connection).

mod backend_args;
mod config;
mod limit_args;
mod ops_args;
mod remote;
mod tls_args;

/// jemalloc instead of glibc's allocator: the transport allocates and frees per message, and
/// glibc malloc/free were ~15% of the server's CPU in catch-up; with jemalloc catch-up is ~12%
/// faster and the resident set is smaller too (BENCHMARKS.md, session 3).
///
/// Built with jemalloc's background threads on (the `background_threads` feature): without
/// them freed pages go back to the system only when later allocations tick jemalloc's decay
/// clock, so a server that falls idle after a load spike keeps its peak; with them a sleeping
/// thread purges pages unused for 10 s (`dirty_decay_ms`). Measured: 2000 SSE streams and 32
/// 12 MiB bodies, then 30 s idle, leave 150 MiB resident without, 40 MiB with (SECURITY.md,
/// "Memory"). `_RJEM_MALLOC_CONF=background_thread:false` turns them off at run time.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use imgroups_core::port::{Fault, Store};
use imgroups_core::{
    admin, Address, Command, Engine, EngineConfig, Error, ErrorKind, FaultId, Limits, Timestamp,
    WebhookId,
};
use imgroups_sim::Simulator;
use imgroups_store_postgres::PgStore;
use imgroups_store_sqlite::{Config, Durability, SqliteStore};

/// Name of the database file inside the data directory.
const DB_FILE: &str = "imgroups.db";
/// `serve`'s account when none is given (with --backend chatdb: read from chat.db instead).
const DEFAULT_ACCOUNT: &str = "me@imgroups.local";
/// The default account's first token is also written here (mode 0600).
const TOKEN_FILE: &str = "token";

#[derive(Parser)]
#[command(
    name = "imgroups",
    version,
    about = "iMessage group chats: server, simulator and tools"
)]
struct Cli {
    /// Log format on stderr: `text` for people, `json` (one object per line) for collectors.
    #[arg(
        long,
        env = "IMGROUPS_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args, Clone)]
struct DataArg {
    /// Data directory [default: the user's data directory, e.g. ~/.local/share/imgroups]
    #[arg(long = "data", env = "IMGROUPS_DATA", global = true)]
    dir: Option<PathBuf>,
    /// Keep everything in this PostgreSQL database (>= 15) instead of SQLite in the data
    /// directory, e.g. postgres://user@host:5432/imgroups. Several servers may share one.
    #[arg(long = "database-url", env = "IMGROUPS_DATABASE_URL", global = true)]
    database_url: Option<String>,
}

impl DataArg {
    fn dir(&self) -> Result<PathBuf, Error> {
        match &self.dir {
            Some(dir) => Ok(dir.clone()),
            None => dirs::data_dir()
                .map(|d| d.join("imgroups"))
                .ok_or_else(|| Error::invalid("no user data directory here; pass --data DIR")),
        }
    }

    fn db(&self) -> Result<PathBuf, Error> {
        Ok(self.dir()?.join(DB_FILE))
    }
}

/// Whether a store is opened by the server or by a tool beside it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Serve,
    Tool,
}

/// How the server tunes its store.
struct StoreOptions {
    role: Role,
    durability: Durability,
    retain_events: Option<u64>,
}

impl StoreOptions {
    fn tool() -> Self {
        StoreOptions {
            role: Role::Tool,
            durability: Durability::Full,
            retain_events: None,
        }
    }
}

/// Opens the store `data` names: PostgreSQL with `--database-url`, else SQLite in the data
/// directory. The one place (with [`engine`]) where the binary picks concrete implementations
/// of the ports.
fn open_store(data: &DataArg, options: StoreOptions) -> Result<Arc<dyn Store>, Error> {
    if let Some(url) = &data.database_url {
        let mut config = imgroups_store_postgres::Config::new(url);
        config.retain_events = options.retain_events;
        config.role = match options.role {
            Role::Serve => imgroups_store_postgres::Role::Serve,
            Role::Tool => imgroups_store_postgres::Role::Tool,
        };
        return Ok(Arc::new(PgStore::open(config)?));
    }
    let db = data.db()?;
    let mut config = Config::new(db);
    config.durability = options.durability;
    config.retain_events = options.retain_events;
    config.role = match options.role {
        Role::Serve => imgroups_store_sqlite::Role::Serve,
        Role::Tool => imgroups_store_sqlite::Role::Tool,
    };
    Ok(Arc::new(SqliteStore::open(config)?))
}

/// The engine over `store`, with the simulated network as its backend.
fn engine(store: Arc<dyn Store>, config: EngineConfig) -> Engine {
    Engine::new(store, Arc::new(Simulator), config)
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server: the gRPC API (--grpc) and the HTTP/JSON API with Server-Sent Events
    /// (--http), with the simulator, on the embedded SQLite store or on PostgreSQL
    /// (--database-url).
    Serve(ServeArgs),
    /// Manage simulated accounts.
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
    /// Chat operations on a running server (create, get, count).
    Chats(remote::ChatsArgs),
    /// Follow group events on a running server.
    Events(remote::EventsArgs),
    /// Inspect the configuration `serve` would run with.
    #[command(subcommand)]
    Config(ConfigCmd),
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

#[derive(Subcommand)]
enum ConfigCmd {
    /// Print the effective configuration of `serve` with the same flags, environment and
    /// --config file, as TOML: every key, where its value came from (flag, env, file,
    /// default), secrets redacted.
    Print(ServeArgs),
}

#[derive(Subcommand)]
enum WebhookCmd {
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

#[derive(clap::Args)]
struct ServeArgs {
    /// Read settings from this TOML file: keys are the long flag names (`grpc = "…"`,
    /// `heartbeat-secs = 30`); flags and environment variables win over it.
    #[arg(long, env = "IMGROUPS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    data: DataArg,
    /// Listen address of the gRPC API (port 0 picks a free port).
    #[arg(long, env = "IMGROUPS_GRPC", default_value = "127.0.0.1:50051")]
    grpc: SocketAddr,
    /// The default account, created on first start with a token printed once.
    #[arg(long, env = "IMGROUPS_ACCOUNT", default_value = DEFAULT_ACCOUNT)]
    account: String,
    /// Seconds of silence after which live streams (gRPC and SSE) send a heartbeat.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    heartbeat_secs: u64,
    /// Largest group icon accepted, in bytes.
    #[arg(long, default_value_t = Limits::default().max_icon_bytes)]
    max_icon_bytes: usize,
    /// Most pixels (width × height) an icon may declare in its header; a tiny file can claim
    /// a huge image that every device showing the group would then allocate for.
    #[arg(long, default_value_t = Limits::default().max_icon_pixels,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_icon_pixels: u64,
    /// Longest side, in pixels, an icon may declare in its header.
    #[arg(long, default_value_t = Limits::default().max_icon_side,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_icon_side: u32,
    /// How long idempotency keys are remembered, in seconds.
    #[arg(long, default_value_t = 24 * 60 * 60)]
    idempotency_ttl_secs: u64,
    /// SQLite only. `full`: an acknowledged write survives power loss. `normal`: survives a
    /// crash of the process only. (On PostgreSQL every commit is durable:
    /// `synchronous_commit=on`.)
    #[arg(long, value_enum, default_value = "full")]
    durability: DurabilityArg,
    /// Keep only the newest N events per account (default: keep every event forever).
    /// A catch-up from before the oldest kept event fails with `cursorTooOld`.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    retain_events: Option<u64>,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    ops: ops_args::OpsArgs,
    #[command(flatten)]
    tls: tls_args::TlsArgs,
    #[command(flatten)]
    limits: limit_args::LimitArgs,
    #[command(flatten)]
    backend: backend_args::BackendArgs,
}

/// The HTTP/JSON surface: REST routes, the SSE event stream, webhook delivery.
#[derive(clap::Args)]
struct HttpArgs {
    /// Listen address of the HTTP/JSON API: REST routes, Server-Sent Events (port 0 picks a
    /// free port).
    #[arg(long = "http", env = "IMGROUPS_HTTP", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Largest `POST /v1/groups:setIcon` body accepted, in bytes (the default fits a 10 MiB
    /// icon in base64); every other route takes --max-message-bytes.
    #[arg(long, default_value_t = imgroups_server::DEFAULT_HTTP_BODY_LIMIT)]
    http_body_limit: usize,
    /// Consecutive failed deliveries after which a webhook endpoint is paused.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    webhook_max_failures: u32,
    /// Time allowed for one webhook delivery attempt, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    webhook_timeout_ms: u64,
    /// First webhook retry delay in milliseconds; doubles per failure, with jitter.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    webhook_backoff_ms: u64,
    /// Longest webhook retry delay, in milliseconds.
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    webhook_max_backoff_ms: u64,
    /// With several servers on one PostgreSQL database, each webhook endpoint is delivered
    /// by one of them at a time, under a lease of this many milliseconds (renewed while it
    /// delivers); if that server dies, another takes over once the lease runs out.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    webhook_lease_ms: u64,
    /// Accept plain http:// webhook URLs (local development; default: https:// only).
    #[arg(long)]
    webhook_allow_http: bool,
    /// Let webhooks reach this network although it is loopback, private, link-local or
    /// otherwise special-purpose (refused by default, against request forgery); repeatable,
    /// e.g. --webhook-allow-net 127.0.0.1/32 for a receiver on this machine.
    #[arg(long, value_name = "CIDR")]
    webhook_allow_net: Vec<imgroups_server::egress::IpNet>,
    /// Most webhook endpoints one account may register through the API.
    #[arg(long, default_value_t = imgroups_server::webhooks::DEFAULT_MAX_PER_ACCOUNT,
          value_parser = clap::value_parser!(u32).range(1..))]
    webhook_max_per_account: u32,
}

impl HttpArgs {
    fn options(&self) -> imgroups_server::HttpOptions {
        imgroups_server::HttpOptions {
            body_limit: self.http_body_limit,
            webhooks: imgroups_server::WebhookOptions {
                max_failures: self.webhook_max_failures,
                timeout: Duration::from_millis(self.webhook_timeout_ms),
                initial_backoff: Duration::from_millis(self.webhook_backoff_ms),
                max_backoff: Duration::from_millis(self.webhook_max_backoff_ms),
                lease: Duration::from_millis(self.webhook_lease_ms),
                egress: Arc::new(imgroups_server::egress::Policy {
                    allow_http: self.webhook_allow_http,
                    allow: self.webhook_allow_net.clone(),
                }),
                max_per_account: self.webhook_max_per_account,
                ..imgroups_server::WebhookOptions::default()
            },
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum DurabilityArg {
    Full,
    Normal,
}

#[derive(Subcommand)]
enum AccountCmd {
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
enum TokenCmd {
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
enum AdminCmd {
    /// Print a new admin token (the console's credential) as the only stdout line. Shown
    /// once: only its hash is kept. Works while the server runs.
    Token {
        /// Print `{"token":…}` instead.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
enum SimCmd {
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
    /// Make a person in the simulated network (a puppet) change a group, as if a human did it
    /// on their phone. The same rules hold as for an account (a non-member gets chatNotFound);
    /// every account in the group sees the change with ADDRESS as the actor. Works while the
    /// server runs.
    Act {
        /// Who acts: any address (usually not an account).
        address: String,
        #[command(subcommand)]
        action: ActCmd,
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
enum FaultCmd {
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

#[derive(Subcommand)]
enum ActCmd {
    /// Rename the group.
    Rename {
        /// The group's chat GUID.
        chat: String,
        /// The new display name.
        name: String,
    },
    /// Add people to the group.
    Add {
        /// The group's chat GUID.
        chat: String,
        /// Phone numbers (E.164) or email addresses to add.
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Remove people from the group.
    Remove {
        /// The group's chat GUID.
        chat: String,
        /// Phone numbers (E.164) or email addresses to remove.
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Leave the group.
    Leave {
        /// The group's chat GUID.
        chat: String,
    },
    /// Set the group icon from an image file (PNG, JPEG, GIF, HEIC or HEIF).
    #[command(name = "icon-set")]
    IconSet {
        /// The group's chat GUID.
        chat: String,
        /// The image file.
        file: PathBuf,
    },
    /// Remove the group icon.
    #[command(name = "icon-rm")]
    IconRm {
        /// The group's chat GUID.
        chat: String,
    },
}

impl ActCmd {
    /// The change, validated like the same request from an account.
    fn command(self) -> Result<Command, Error> {
        match self {
            ActCmd::Rename { chat, name } => Command::set_display_name(&chat, &name),
            ActCmd::Add { chat, addresses } => Command::add_participants(&chat, &addresses),
            ActCmd::Remove { chat, addresses } => Command::remove_participants(&chat, &addresses),
            ActCmd::Leave { chat } => Command::leave(&chat),
            ActCmd::IconSet { chat, file } => {
                let data = std::fs::read(&file).map_err(|err| {
                    Error::invalid(format!("cannot read {}: {err}", file.display()))
                        .with("field", "file")
                })?;
                Command::set_icon(&chat, data, &Limits::default())
            }
            ActCmd::IconRm { chat } => Command::remove_icon(&chat),
        }
    }
}

/// The subcommands that take every `serve` flag and so read `--config FILE`.
const SERVE_LIKE: &[&[&str]] = &[&["serve"], &["config", "print"]];

fn main() -> ExitCode {
    let resolved = match config::resolve::<Cli>(std::env::args_os().collect(), SERVE_LIKE) {
        Ok(resolved) => resolved,
        Err(config::ConfigError::Clap(err)) => err.exit(),
        Err(config::ConfigError::File(message)) => {
            eprintln!("error: {message} (invalidArgument)");
            return ExitCode::from(2);
        }
    };
    let cli = resolved.cli;
    init_logging(cli.log_format);
    let json = cli.command.json();
    let result = match cli.command {
        // Client commands have their own exit codes (see `remote`).
        Cmd::Groups(args) => return remote::groups(args),
        Cmd::Chats(args) => return remote::chats(args),
        Cmd::Events(args) => return remote::events(args),
        Cmd::Serve(args) => serve(args),
        Cmd::Account(AccountCmd::Add {
            address,
            json,
            data,
        }) => with_store(&data, |store| async move {
            let address = Address::parse(&address)?;
            let token = admin::add_account(&*store, &address).await?;
            print_token(&address, &token, json);
            Ok(())
        }),
        Cmd::Token(TokenCmd::Create {
            address,
            json,
            data,
        }) => with_store(&data, |store| async move {
            let address = Address::parse(&address)?;
            let token = admin::create_token(&*store, &address).await?;
            print_token(&address, &token, json);
            Ok(())
        }),
        Cmd::Token(TokenCmd::List { json, data }) => with_store(&data, |store| async move {
            let mut out = std::io::stdout().lock();
            for t in store.list_tokens().await? {
                let status = if t.revoked { "revoked" } else { "active" };
                let created = rfc3339(t.created_at.seconds());
                let line = if json {
                    serde_json::json!({
                        "id": t.id,
                        "account": t.address.to_string(),
                        "created": created,
                        "createdUnix": t.created_at.seconds(),
                        "status": status,
                    })
                    .to_string()
                } else {
                    format!("{}\t{}\t{created}\t{status}", t.id, t.address)
                };
                if writeln!(out, "{line}").is_err() {
                    break; // Closed pipe (`| head`): not an error.
                }
            }
            Ok(())
        }),
        Cmd::Token(TokenCmd::Revoke { token, data }) => with_store(&data, |store| async move {
            let id = admin::revoke_token(&*store, &token).await?;
            eprintln!("revoked token {id}");
            Ok(())
        }),
        Cmd::Sim(SimCmd::Unreachable {
            address,
            reachable,
            list,
            data,
        }) => with_store(&data, |store| async move {
            match address {
                Some(address) if !list => {
                    let address = Address::parse(&address)?;
                    imgroups_sim::set_unreachable(&*store, &address, !reachable).await
                }
                // Clap requires an address unless --list, and forbids both.
                _ => {
                    let mut out = std::io::stdout().lock();
                    for address in store.unreachable().await? {
                        if writeln!(out, "{address}").is_err() {
                            break; // Closed pipe (`| head`): not an error.
                        }
                    }
                    Ok(())
                }
            }
        }),
        Cmd::Sim(SimCmd::Fault(cmd)) => fault(cmd),
        Cmd::Admin(AdminCmd::Token { json, data }) => with_store(&data, |store| async move {
            let token = admin::create_admin_token(&*store).await?;
            let line = if json {
                serde_json::json!({ "token": token }).to_string()
            } else {
                token
            };
            print_text(&format!("{line}\n"));
            Ok(())
        }),
        Cmd::Sim(SimCmd::Act {
            address,
            action,
            data,
        }) => with_store(&data, |store| async move {
            let puppet = Address::parse(&address)?;
            let command = action.command()?;
            let engine = engine(store, EngineConfig::default());
            imgroups_sim::act(&engine, &puppet, command).await
        }),
        Cmd::Webhook(cmd) => webhook(cmd),
        Cmd::Config(ConfigCmd::Print(_)) => {
            let text = config::render("serve", resolved.file.as_deref(), &resolved.entries);
            print_text(&text);
            Ok(())
        }
        Cmd::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "imgroups", &mut out);
            print_text(&String::from_utf8_lossy(&out));
            Ok(())
        }
        Cmd::Man => {
            let mut out = Vec::new();
            match clap_mangen::Man::new(Cli::command()).render(&mut out) {
                Ok(()) => {
                    print_text(&String::from_utf8_lossy(&out));
                    Ok(())
                }
                Err(err) => Err(Error::new(
                    ErrorKind::Internal,
                    format!("cannot render the man page: {err}"),
                )),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = imgroups_server::error_code(err.kind);
            if json {
                let body = serde_json::json!({
                    "error": {
                        "code": code,
                        "message": err.message,
                        "retryable": imgroups_server::is_retryable(err.kind),
                    }
                });
                eprintln!("{body}");
            } else {
                eprintln!("error: {} ({code})", err.message);
            }
            ExitCode::FAILURE
        }
    }
}

impl Cmd {
    /// Whether a local command was asked for JSON (its errors are then JSON too).
    fn json(&self) -> bool {
        match self {
            Cmd::Account(AccountCmd::Add { json, .. })
            | Cmd::Token(TokenCmd::Create { json, .. } | TokenCmd::List { json, .. })
            | Cmd::Webhook(WebhookCmd::Add { json, .. } | WebhookCmd::List { json, .. })
            | Cmd::Admin(AdminCmd::Token { json, .. })
            | Cmd::Sim(SimCmd::Fault(FaultCmd::Add { json, .. } | FaultCmd::List { json, .. })) => {
                *json
            }
            _ => false,
        }
    }
}

/// A new token: the bare token (the contract), or `{"account":…,"token":…}`.
fn print_token(address: &Address, token: &str, json: bool) {
    let line = if json {
        serde_json::json!({ "account": address.to_string(), "token": token }).to_string()
    } else {
        token.to_owned()
    };
    print_text(&format!("{line}\n"));
}

/// Unix seconds as RFC 3339 in UTC, e.g. `2026-11-30T02:00:00Z`.
fn rfc3339(seconds: i64) -> String {
    let Ok(seconds) = u64::try_from(seconds) else {
        return seconds.to_string(); // Before 1970: not a time this program writes.
    };
    let time = std::time::UNIX_EPOCH + Duration::from_secs(seconds);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Logs go to stderr in either format, so stdout stays the scripting contract.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
fn print_text(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn webhook(cmd: WebhookCmd) -> Result<(), Error> {
    match cmd {
        WebhookCmd::Add {
            url,
            account,
            json,
            data,
        } => with_store(&data, |store| async move {
            let address = Address::parse(&account)?;
            let hook = admin::add_webhook_for(&*store, &address, &url).await?;
            if json {
                let line = serde_json::json!({
                    "id": hook.id,
                    "account": address.to_string(),
                    "url": url,
                    "secret": hook.secret,
                });
                print_text(&format!("{line}\n"));
            } else {
                print_text(&format!("id {}\nsecret {}\n", hook.id, hook.secret));
            }
            Ok(())
        }),
        WebhookCmd::List { json, data } => with_store(&data, |store| async move {
            let mut out = std::io::stdout().lock();
            for h in store.webhooks(None).await? {
                let status = if h.paused { "paused" } else { "active" };
                let line = if json {
                    serde_json::json!({
                        "id": h.id,
                        "account": h.address.to_string(),
                        "url": h.url,
                        "status": status,
                        "cursor": h.cursor,
                        "failures": h.failures,
                        "lastError": h.last_error,
                    })
                    .to_string()
                } else {
                    format!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        h.id,
                        h.address,
                        h.url,
                        status,
                        h.cursor,
                        h.failures,
                        h.last_error.as_deref().unwrap_or("-")
                    )
                };
                if writeln!(out, "{line}").is_err() {
                    break; // Closed pipe (`| head`): not an error.
                }
            }
            Ok(())
        }),
        WebhookCmd::Rm { id, data } => with_store(&data, |store| async move {
            store.remove_webhook(None, WebhookId(id)).await?;
            eprintln!("removed webhook {id}");
            Ok(())
        }),
        WebhookCmd::Resume { id, data } => with_store(&data, |store| async move {
            store.resume_webhook(None, WebhookId(id)).await?;
            eprintln!("resumed webhook {id}");
            Ok(())
        }),
    }
}

fn fault(cmd: FaultCmd) -> Result<(), Error> {
    match cmd {
        FaultCmd::Add {
            address,
            method,
            code,
            retryable,
            latency_ms,
            count,
            for_secs,
            json,
            data,
        } => {
            let request = imgroups_server::FaultRequest {
                method: &method,
                code: code.as_deref(),
                retryable,
                latency_ms: latency_ms.unwrap_or(0),
                count,
                for_secs,
            };
            // Checked before the store is opened: a typo needs no data directory.
            request.check()?;
            let address = Address::parse(&address)?;
            with_store(&data, |store| async move {
                let account = admin::account(&*store, &address).await?;
                let fault = store.add_fault(&request.fault(account)?).await?;
                let line = if json {
                    fault_json(&fault).to_string()
                } else {
                    format!("fault {}: {}", fault.id, describe_fault(&fault))
                };
                print_text(&format!("{line}\n"));
                Ok(())
            })
        }
        FaultCmd::List { json, data } => with_store(&data, |store| async move {
            let mut out = std::io::stdout().lock();
            for f in store.faults().await? {
                let line = if json {
                    fault_json(&f).to_string()
                } else {
                    let dash = || "-".to_owned();
                    format!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        f.id,
                        f.address,
                        f.spec.method,
                        f.spec.error_code.clone().unwrap_or_else(dash),
                        f.spec.retryable,
                        f.spec.latency_ms,
                        f.spec.count.map_or_else(dash, |n| n.to_string()),
                        f.spec.until.map_or_else(dash, |t| rfc3339(t.seconds())),
                    )
                };
                if writeln!(out, "{line}").is_err() {
                    break; // Closed pipe (`| head`): not an error.
                }
            }
            Ok(())
        }),
        FaultCmd::Clear {
            id,
            account,
            all,
            data,
        } => with_store(&data, |store| async move {
            let cleared = match (id, account) {
                (Some(id), _) => store.clear_faults(None, Some(FaultId(id))).await?,
                (None, Some(address)) => {
                    let address = Address::parse(&address)?;
                    let account = admin::account(&*store, &address).await?;
                    store.clear_faults(Some(account), None).await?
                }
                // Clap requires exactly one of ID, --account and --all.
                (None, None) => {
                    debug_assert!(all);
                    store.clear_faults(None, None).await?
                }
            };
            print_text(&format!("cleared {cleared}\n"));
            Ok(())
        }),
    }
}

/// A fault in one line, e.g. `SetDisplayName calls by a@x.com fail with databaseError
/// (retryable) after 200 ms; 3 left`.
fn describe_fault(f: &Fault) -> String {
    let spec = &f.spec;
    let which = match spec.method.as_str() {
        "*" => format!("all calls by {}", f.address),
        method => format!("{method} calls by {}", f.address),
    };
    let retryable = if spec.retryable { " (retryable)" } else { "" };
    let what = match (&spec.error_code, spec.latency_ms) {
        (Some(code), 0) => format!("fail with {code}{retryable}"),
        (Some(code), ms) => format!("fail with {code}{retryable} after {ms} ms"),
        (None, ms) => format!("are delayed {ms} ms"),
    };
    let limit = match (spec.count, spec.until) {
        (Some(n), Some(t)) => format!("{n} left, until {}", rfc3339(t.seconds())),
        (Some(n), None) => format!("{n} left"),
        (None, Some(t)) => format!("until {}", rfc3339(t.seconds())),
        (None, None) => "until cleared".to_owned(),
    };
    format!("{which} {what}; {limit}")
}

fn fault_json(f: &Fault) -> serde_json::Value {
    serde_json::json!({
        "id": f.id,
        "account": f.address.to_string(),
        "method": f.spec.method,
        "code": f.spec.error_code,
        "retryable": f.spec.retryable,
        "latencyMs": f.spec.latency_ms,
        "left": f.spec.count,
        "until": f.spec.until.map(|t| rfc3339(t.seconds())),
        "untilUnix": f.spec.until.map(Timestamp::seconds),
        "created": rfc3339(f.created_at.seconds()),
    })
}

/// Runs `f` on the store `data` names, as a tool beside any server running on it: the server
/// hears of its commits at once.
fn with_store<F, Fut>(data: &DataArg, f: F) -> Result<(), Error>
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    runtime(tokio::runtime::Builder::new_current_thread())?.block_on(async move {
        let store = open_store(data, StoreOptions::tool())?;
        let result = f(store.clone()).await;
        store.close().await;
        result
    })
}

/// A runtime from `builder`, with I/O and timers.
fn runtime(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, Error> {
    builder.enable_all().build().map_err(|err| {
        tracing::error!(error = %err, "cannot start the runtime");
        Error::internal()
    })
}

fn serve(args: ServeArgs) -> Result<(), Error> {
    args.ops.install_metrics();
    let dir = args.data.dir()?;
    let chatdb = args.backend.backend == backend_args::BackendKind::Chatdb;
    let address = if chatdb {
        // The Mac's own address: as given, or read from chat.db.
        let given = (args.account != DEFAULT_ACCOUNT).then_some(args.account.as_str());
        args.backend.account(given)?
    } else {
        Address::parse(&args.account)?
    };
    let store_options = StoreOptions {
        role: Role::Serve,
        durability: match args.durability {
            DurabilityArg::Full => Durability::Full,
            DurabilityArg::Normal => Durability::Normal,
        },
        retain_events: args.retain_events,
    };
    let engine_config = EngineConfig {
        idempotency_ttl: Duration::from_secs(args.idempotency_ttl_secs),
    };
    let options = imgroups_server::Options {
        heartbeat: Duration::from_secs(args.heartbeat_secs),
        limits: Limits {
            max_icon_bytes: args.max_icon_bytes,
            max_icon_pixels: args.max_icon_pixels,
            max_icon_side: args.max_icon_side,
        },
        tls: args.tls.load()?,
        net: args.limits.limits(),
        conn: args.limits.conn(),
        ..imgroups_server::Options::default()
    };

    let tls_on = options.tls.is_some();
    runtime(tokio::runtime::Builder::new_multi_thread())?.block_on(async move {
        // The store first: on SQLite it locks the data directory, so a second server on it
        // is told so (with the holder's pid) rather than that its ports are taken.
        let store = open_store(&args.data, store_options)?;
        // Both listeners before the account: a taken port must fail the start before a fresh
        // data directory's first token is made, or it would never be shown.
        let bound = async {
            let listener = bind(args.grpc, "gRPC").await?;
            let http_listener = bind(args.http.addr, "HTTP").await?;
            let ops = args.ops.bind().await?;
            Ok::<_, Error>((listener, http_listener, ops))
        };
        let (listener, http_listener, ops) = match bound.await {
            Ok(bound) => bound,
            Err(err) => {
                store.close().await;
                return Err(err);
            }
        };
        let local = local_addr(&listener)?;
        let http_local = local_addr(&http_listener)?;
        let http_options = args.http.options();
        let first_token = match admin::ensure_account(&*store, &address).await {
            Ok((_, token)) => token,
            Err(err) => {
                store.close().await;
                return Err(err);
            }
        };
        if let Some(token) = &first_token {
            write_token_file(&dir, token);
        }
        let (engine, mac) = if chatdb {
            let (mac, helper) = match args.backend.mac(address.clone(), &dir).await {
                Ok(mac) => mac,
                Err(err) => {
                    store.close().await;
                    return Err(err);
                }
            };
            let engine = Arc::new(Engine::new(store.clone(), mac.backend(), engine_config));
            // Everything chat.db holds up to now is in the log before `ready`.
            tracing::info!("reading chat.db");
            let started = {
                let engine = engine.clone();
                let handle = tokio::runtime::Handle::current();
                tokio::task::spawn_blocking(move || mac.start(engine, handle)).await
            };
            match started {
                Ok(Ok((imported, running))) => {
                    tracing::info!(
                        changes = imported.changes,
                        recorded = imported.recorded,
                        new_groups = imported.groups,
                        ms = imported.elapsed.as_millis() as u64,
                        "chat.db read; watching it for changes"
                    );
                    (engine, Some((running, helper)))
                }
                Ok(Err(message)) => {
                    store.close().await;
                    return Err(Error::new(ErrorKind::Internal, message));
                }
                Err(_) => {
                    store.close().await;
                    return Err(Error::internal());
                }
            }
        } else {
            (Arc::new(engine(store.clone(), engine_config)), None)
        };
        let shutdown = shutdown_signal();

        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "account {address}");
        if let Some(token) = &first_token {
            let _ = writeln!(out, "token {token}");
        }
        let _ = writeln!(out, "grpc listening on {local}");
        let _ = writeln!(out, "http listening on {http_local}");
        ops.announce(&mut out);
        if let Some((_, Some(helper))) = &mac {
            let _ = writeln!(out, "helper listening on {helper}");
        }
        let _ = writeln!(out, "ready");
        let _ = out.flush();
        drop(out);
        tracing::info!(data = %dir.display(), grpc = %local, http = %http_local, "serving");
        let scheme = if tls_on { "https" } else { "http" };
        tracing::info!(
            "web console at {scheme}://{http_local}/console/ (sign in with `imgroups admin token`)"
        );

        let served = imgroups_server::serve_with(
            listener,
            http_listener,
            engine,
            options,
            http_options,
            ops.options(),
            shutdown,
        )
        .await;
        if let Some((running, _)) = mac {
            let _ = tokio::task::spawn_blocking(move || running.stop()).await;
        }
        store.close().await;
        served.map_err(|err| {
            tracing::error!(error = %err, "server failed");
            Error::internal()
        })?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// A listener on `addr` for the `what` surface. Failing to listen is the machine's state (port
/// taken, address not local, no permission), not bad input, so it is not `invalidArgument`:
/// the message names the address, the surface and the OS's reason.
async fn bind(addr: SocketAddr, what: &str) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(addr).await.map_err(|err| {
        Error::new(
            ErrorKind::Internal,
            format!("cannot listen on {addr} for {what}: {err}"),
        )
    })
}

fn local_addr(listener: &tokio::net::TcpListener) -> Result<SocketAddr, Error> {
    listener
        .local_addr()
        .map_err(|err| Error::new(ErrorKind::Internal, format!("no local address: {err}")))
}

/// Writes the default account's first token for scripts that start the server unattended.
fn write_token_file(dir: &Path, token: &str) {
    let path = dir.join(TOKEN_FILE);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&path).and_then(|mut f| writeln!(f, "{token}"));
    if let Err(err) = written {
        tracing::warn!(error = %err, path = %path.display(), "cannot write the token file");
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed by this call, not on the first
/// poll: called before `ready` is printed, a signal sent right after `ready` is never lost to
/// the default action (death by signal instead of a clean exit). Needs the runtime.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (term, int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            async fn recv(s: Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = recv(term) => {}
                _ = recv(int) => {}
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down");
    }
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
}
