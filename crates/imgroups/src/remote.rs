//! Client subcommands: `groups …`, `chats …`, `events tail`, speaking gRPC to a running server
//! through the Rust SDK.
//!
//! Exit codes (stable; scripts rely on them):
//! - 0: success (also when stdout is closed early, e.g. `… | head`),
//! - 1: the operation failed (validation, precondition, rate limit, server error),
//! - 2: bad usage, including a malformed chat GUID or address,
//! - 3: authentication failed (missing, unknown or revoked token),
//! - 4: not found (chat, address, icon),
//! - 5: cannot reach the server (connection refused, unavailable, timeout).
//!
//! Errors are printed as one line on stderr: `error: <message> (<code>)`; with `--json`, as
//! one JSON object on stderr instead: `{"error":{"code":"chatNotFound","message":"…",
//! "retryable":false}}`, with the same exit codes.
//!
//! `--json` output: a command with one result prints one JSON object on one line (a chat as
//! the SDK's `Chat`, `{"count":N}`, `{"chatGuid":…}` for commands with no result); `events
//! tail --json` prints JSON lines, one event per line, in the official SDK's `GroupEvent`
//! shape.

use std::borrow::Cow;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use futures::StreamExt;
use imgroups_client::{
    Address, Chat, ChatGuid, Client, CreateChatOptions, Error, ErrorKind, EventFilter, GroupEvent,
    MemoryCheckpoint,
};

/// Where the server is and who I am; shared by every client subcommand.
#[derive(Args, Clone)]
pub(crate) struct RemoteArgs {
    /// Server address: HOST:PORT or http://HOST:PORT (plaintext), https://HOST:PORT (TLS).
    #[arg(long, env = "IMGROUPS_SERVER", default_value = imgroups_client::DEFAULT_ADDRESS, global = true)]
    server: String,
    /// API token (as printed by `imgroups serve` or `imgroups account add`).
    #[arg(long, env = "IMGROUPS_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Also trust the CA certificate(s) in this PEM file for https:// servers, e.g. the
    /// certificate of a server started with a self-signed --tls-cert.
    #[arg(long, env = "IMGROUPS_TLS_CA", value_name = "FILE", global = true)]
    tls_ca: Option<std::path::PathBuf>,
    /// Seconds to wait for each call.
    #[arg(long, default_value_t = 30, global = true)]
    timeout_secs: u64,
    /// Machine-readable output: one JSON object per result (JSON lines for `events tail`);
    /// errors as a JSON object on stderr.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct GroupsArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(subcommand)]
    cmd: GroupsCmd,
}

#[derive(Subcommand)]
enum GroupsCmd {
    /// Rename a group.
    Rename {
        /// The group's chat GUID.
        chat: String,
        /// The new display name.
        name: String,
    },
    /// Add people to a group.
    Add {
        /// The group's chat GUID.
        chat: String,
        /// Phone numbers (E.164) or email addresses to add.
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Remove people from a group.
    Remove {
        /// The group's chat GUID.
        chat: String,
        /// Phone numbers (E.164) or email addresses to remove.
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Leave a group.
    Leave {
        /// The group's chat GUID.
        chat: String,
    },
    /// Set, download or remove the group icon.
    #[command(subcommand)]
    Icon(IconCmd),
}

#[derive(Subcommand)]
enum IconCmd {
    /// Set the icon from an image file (PNG, JPEG, GIF, HEIC, HEIF).
    Set {
        /// The group's chat GUID.
        chat: String,
        /// The image file.
        file: PathBuf,
    },
    /// Download the icon to a file (`-o -` for stdout: the raw bytes, also with --json).
    Get {
        /// The group's chat GUID.
        chat: String,
        /// Where to write the image (`-` for stdout).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Remove the icon.
    Rm {
        /// The group's chat GUID.
        chat: String,
    },
}

#[derive(Args)]
pub(crate) struct ChatsArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(subcommand)]
    cmd: ChatsCmd,
}

#[derive(Subcommand)]
enum ChatsCmd {
    /// Create (or resolve) a chat: one address → direct chat, more → group. Prints its GUID.
    Create {
        /// Phone numbers (E.164) or email addresses of the other people.
        #[arg(required = true)]
        addresses: Vec<String>,
        /// A first message.
        #[arg(long)]
        message: Option<String>,
    },
    /// Show a chat.
    Get {
        /// The chat GUID.
        chat: String,
    },
    /// Print how many chats are visible.
    Count {
        /// Count archived chats too.
        #[arg(long)]
        include_archived: bool,
    },
}

#[derive(Args)]
pub(crate) struct EventsArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(subcommand)]
    cmd: EventsCmd,
}

#[derive(Subcommand)]
enum EventsCmd {
    /// Print group events as they happen, one per line (with --json: JSON lines in the
    /// official SDK's `GroupEvent` shape).
    Tail {
        /// Only this group.
        #[arg(long)]
        chat: Option<String>,
        /// Replay the events after sequence N first, then follow live, resuming across
        /// disconnects. Without it: live events only.
        #[arg(long, value_name = "N")]
        from: Option<u64>,
    },
}

/// A failure and its exit code.
struct Failure {
    exit: u8,
    /// The camelCase error code (the server's `error-code`, or one of the same vocabulary).
    code: String,
    message: String,
    retryable: bool,
}

impl Failure {
    fn new(exit: u8, code: &str, message: impl Into<String>) -> Self {
        Failure {
            exit,
            code: code.to_owned(),
            message: message.into(),
            retryable: false,
        }
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let exit = match err.kind() {
            ErrorKind::Authentication => 3,
            ErrorKind::NotFound => 4,
            ErrorKind::Connection => 5,
            ErrorKind::Validation | ErrorKind::RateLimit | ErrorKind::Other => 1,
            // `ErrorKind` is non-exhaustive: a class added later is an operation failure.
            _ => 1,
        };
        Failure {
            exit,
            code: err.code().to_owned(),
            message: err.message().to_owned(),
            retryable: err.is_retryable(),
        }
    }
}

/// Bad input on the command line: exit 2.
fn usage(err: imgroups_core::Error) -> Failure {
    Failure::new(2, "invalidArgument", err.message)
}

/// A local file could not be read or written: the operation failed (exit 1).
fn io_failure(what: &str, err: io::Error) -> Failure {
    Failure::new(1, "invalidArgument", format!("{what}: {err}"))
}

/// The URL for `--server`. The Node SDK and most gRPC tooling write a plaintext address as a
/// bare `HOST:PORT`; the Rust transport would take that for a TLS address and fail with an
/// obscure handshake error, so a bare address means plaintext here.
fn server_url(input: &str) -> Result<String, Failure> {
    let input = input.trim();
    let bad = || {
        Failure::new(
            2,
            "invalidArgument",
            format!(
                "invalid --server {input:?}: expected HOST:PORT or http://HOST:PORT \
                 (plaintext), or https://HOST:PORT (TLS)"
            ),
        )
    };
    match input.split_once("://") {
        Some((scheme, rest)) => {
            let known = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
            if known && !rest.is_empty() {
                Ok(input.to_owned())
            } else {
                Err(bad())
            }
        }
        None => match input.rsplit_once(':') {
            Some((host, port))
                if !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok() =>
            {
                Ok(format!("http://{input}"))
            }
            _ => Err(bad()),
        },
    }
}

type Outcome = Result<(), Failure>;

pub(crate) fn groups(args: GroupsArgs) -> ExitCode {
    let json = args.remote.json;
    run(&args.remote, |client| async move {
        groups_cmd(&client, args.cmd, json).await
    })
}

pub(crate) fn chats(args: ChatsArgs) -> ExitCode {
    let json = args.remote.json;
    run(&args.remote, |client| async move {
        chats_cmd(&client, args.cmd, json).await
    })
}

pub(crate) fn events(args: EventsArgs) -> ExitCode {
    let json = args.remote.json;
    run(&args.remote, |client| async move {
        events_cmd(&client, args.cmd, json).await
    })
}

fn run<F, Fut>(remote: &RemoteArgs, f: F) -> ExitCode
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            let failure = Failure::new(
                1,
                "internalError",
                format!("cannot start the runtime: {err}"),
            );
            return report(failure, remote.json);
        }
    };
    let outcome = runtime.block_on(async {
        let address = server_url(&remote.server)?;
        // Checked here, not left to the server: its answer speaks of headers, while the
        // person at the terminal needs to know about the flag and the variable.
        let token = remote
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Failure::new(
                    3,
                    "unauthenticated",
                    "no API token: pass --token TOKEN or set IMGROUPS_TOKEN (`imgroups serve` \
                     prints one on first start; `imgroups account add` makes one)",
                )
            })?;
        let mut builder = Client::builder();
        if let Some(ca) = &remote.tls_ca {
            let pem = std::fs::read(ca).map_err(|err| {
                Failure::new(
                    2,
                    "invalidArgument",
                    format!("cannot read --tls-ca {}: {err}", ca.display()),
                )
            })?;
            builder = builder.tls_ca_pem(pem);
        }
        let client = builder
            .address(&address)
            .timeout(Duration::from_secs(remote.timeout_secs))
            .connect_timeout(Duration::from_secs(remote.timeout_secs.clamp(1, 10)))
            .token(token)
            .build()
            .map_err(|err| Failure {
                exit: 2,
                ..Failure::from(err)
            })?;
        f(client).await.map_err(|mut failure| {
            // The transport's reason alone ("tcp connect error") does not say where it tried.
            if failure.exit == 5 {
                failure.message = format!("cannot reach {address}: {}", failure.message);
            }
            failure
        })
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(failure, remote.json),
    }
}

fn report(failure: Failure, json: bool) -> ExitCode {
    if json {
        let body = serde_json::json!({
            "error": {
                "code": failure.code,
                "message": failure.message,
                "retryable": failure.retryable,
            }
        });
        eprintln!("{}", json_safe(&body.to_string()));
    } else {
        eprintln!(
            "error: {} ({})",
            terminal_safe(&failure.message, false),
            terminal_safe(&failure.code, false)
        );
    }
    ExitCode::from(failure.exit)
}

fn chat_guid(input: &str) -> Result<ChatGuid, Failure> {
    ChatGuid::parse(input).map_err(usage)
}

fn addresses(inputs: &[String]) -> Result<Vec<Address>, Failure> {
    inputs
        .iter()
        .map(|a| Address::parse(a).map_err(usage))
        .collect()
}

/// Writes lines to stdout; a closed pipe (`| head`) ends the command successfully.
struct Out {
    stdout: io::Stdout,
}

/// Stdout went away: stop quietly with success.
struct Closed;

impl Out {
    fn new() -> Self {
        Out {
            stdout: io::stdout(),
        }
    }

    /// One line. Server data is escaped where it is formatted ([`chat_lines`], [`json_line`],
    /// [`render`]); this is the safety net for the rest, keeping only our own tab separators.
    fn line(&mut self, text: &str) -> Result<(), Closed> {
        let text = terminal_safe(text, true);
        let mut lock = self.stdout.lock();
        match writeln!(lock, "{text}").and_then(|()| lock.flush()) {
            Ok(()) => Ok(()),
            Err(_) => Err(Closed),
        }
    }
}

/// Prints lines; a closed stdout is success, not an error.
fn print_lines(lines: impl IntoIterator<Item = String>) -> Outcome {
    let mut out = Out::new();
    for line in lines {
        if out.line(&line).is_err() {
            break;
        }
    }
    Ok(())
}

/// Whether a character printed as is could change what a terminal shows beyond itself:
/// control characters (escape sequences, carriage returns, line breaks), the line and
/// paragraph separators, and bidirectional embeddings, overrides and isolates. The server
/// refuses them in the names it is sent, but names also come from elsewhere (a real Mac,
/// older data), so nothing from the server is printed raw.
fn unsafe_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every [`unsafe_on_terminal`] character written as a Rust escape (`\u{1b}`);
/// tabs are kept when `keep_tabs` (our own column separators).
fn terminal_safe(text: &str, keep_tabs: bool) -> Cow<'_, str> {
    let escape = |c: char| unsafe_on_terminal(c) && !(keep_tabs && c == '\t');
    if !text.chars().any(escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escape(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A JSON document with the same characters written as JSON escapes (`\u001b`), so it
/// stays valid JSON with the same value. serde_json escapes C0 controls itself, but not DEL,
/// C1 or the bidirectional controls; these can only occur inside JSON strings.
fn json_safe(json: &str) -> Cow<'_, str> {
    if !json.chars().any(unsafe_on_terminal) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if unsafe_on_terminal(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn chat_lines(chat: &Chat) -> Vec<String> {
    let people: Vec<&str> = chat
        .participants
        .iter()
        .map(|p| p.address.as_str())
        .collect();
    let safe = |text: &str| terminal_safe(text, false).into_owned();
    vec![
        format!("guid\t{}", safe(&chat.guid.to_string())),
        format!("name\t{}", safe(&chat.display_name)),
        format!("group\t{}", chat.is_group),
        format!("participants\t{}", safe(&people.join(", "))),
    ]
}

/// One JSON document on one line. Serializing plain data with string keys cannot fail.
fn json_line(value: &impl serde::Serialize) -> String {
    json_safe(&serde_json::to_string(value).unwrap_or_default()).into_owned()
}

/// A chat: tab-separated lines, or the SDK's `Chat` as JSON.
fn print_chat(chat: &Chat, json: bool) -> Outcome {
    if json {
        print_lines([json_line(chat)])
    } else {
        print_lines(chat_lines(chat))
    }
}

/// What a command with no result prints with `--json`, so every command's stdout parses.
fn print_done(chat: &ChatGuid, json: bool) -> Outcome {
    if json {
        print_lines([json_line(
            &serde_json::json!({ "chatGuid": chat.to_string() }),
        )])
    } else {
        Ok(())
    }
}

async fn groups_cmd(client: &Client, cmd: GroupsCmd, json: bool) -> Outcome {
    let groups = client.groups();
    match cmd {
        GroupsCmd::Rename { chat, name } => {
            let chat = groups.set_display_name(&chat_guid(&chat)?, &name).await?;
            print_chat(&chat, json)
        }
        GroupsCmd::Add { chat, addresses: a } => {
            let chat = groups
                .add_participants(&chat_guid(&chat)?, &addresses(&a)?)
                .await?;
            print_chat(&chat, json)
        }
        GroupsCmd::Remove { chat, addresses: a } => {
            let chat = groups
                .remove_participants(&chat_guid(&chat)?, &addresses(&a)?)
                .await?;
            print_chat(&chat, json)
        }
        GroupsCmd::Leave { chat } => {
            let chat = chat_guid(&chat)?;
            groups.leave(&chat).await?;
            print_done(&chat, json)
        }
        GroupsCmd::Icon(IconCmd::Set { chat, file }) => {
            let chat = chat_guid(&chat)?;
            let data = std::fs::read(&file)
                .map_err(|err| io_failure(&format!("cannot read {}", file.display()), err))?;
            groups.set_icon(&chat, data).await?;
            print_done(&chat, json)
        }
        GroupsCmd::Icon(IconCmd::Get { chat, output }) => {
            let chat = chat_guid(&chat)?;
            let icon = groups.get_icon(&chat).await?;
            if output.as_os_str() == "-" {
                let mut stdout = io::stdout().lock();
                // A closed pipe is not an error.
                let _ = stdout.write_all(&icon.data).and_then(|()| stdout.flush());
            } else {
                std::fs::write(&output, &icon.data).map_err(|err| {
                    io_failure(&format!("cannot write {}", output.display()), err)
                })?;
                if json {
                    return print_lines([json_line(&serde_json::json!({
                        "chatGuid": chat.to_string(),
                        "path": output.display().to_string(),
                        "bytes": icon.data.len(),
                        "mimeType": icon.mime_type,
                    }))]);
                }
                eprintln!(
                    "wrote {} bytes ({}) to {}",
                    icon.data.len(),
                    terminal_safe(&icon.mime_type, false),
                    output.display()
                );
            }
            Ok(())
        }
        GroupsCmd::Icon(IconCmd::Rm { chat }) => {
            let chat = chat_guid(&chat)?;
            groups.remove_icon(&chat).await?;
            print_done(&chat, json)
        }
    }
}

async fn chats_cmd(client: &Client, cmd: ChatsCmd, json: bool) -> Outcome {
    match cmd {
        ChatsCmd::Create {
            addresses: a,
            message,
        } => {
            let options = CreateChatOptions {
                message,
                ..Default::default()
            };
            let created = client.chats().create(&addresses(&a)?, options).await?;
            if json {
                print_lines([json_line(&created)])
            } else {
                print_lines([created.chat.guid.to_string()])
            }
        }
        ChatsCmd::Get { chat } => {
            let chat = client.chats().get(&chat_guid(&chat)?).await?;
            print_chat(&chat, json)
        }
        ChatsCmd::Count { include_archived } => {
            let count = client.chats().count(include_archived).await?;
            if json {
                print_lines([json_line(&serde_json::json!({ "count": count }))])
            } else {
                print_lines([count.to_string()])
            }
        }
    }
}

fn render(event: &GroupEvent, json: bool) -> String {
    if json {
        json_safe(&event.to_json()).into_owned()
    } else {
        terminal_safe(&event.to_line(), false).into_owned()
    }
}

async fn events_cmd(client: &Client, cmd: EventsCmd, json: bool) -> Outcome {
    let EventsCmd::Tail { chat, from } = cmd;
    let filter = match chat {
        Some(chat) => EventFilter::chat(chat_guid(&chat)?),
        None => EventFilter::all(),
    };
    let mut out = Out::new();
    match from {
        None => {
            let mut live = client.groups().subscribe_events(filter).await?;
            while let Some(event) = live.next().await {
                if out.line(&render(&event?, json)).is_err() {
                    return Ok(());
                }
            }
            Err(Failure::new(
                5,
                "serviceUnavailable",
                "the server closed the event stream",
            ))
        }
        Some(after) => {
            let mut events = client
                .events()
                .resumable(filter, MemoryCheckpoint::new(after))
                .on_reconnect(|err, attempt| {
                    let err = err.to_string();
                    eprintln!(
                        "reconnecting (attempt {attempt}): {}",
                        terminal_safe(&err, false)
                    );
                });
            while let Some(delivery) = events.next().await {
                let delivery = delivery?;
                if out.line(&render(&delivery, json)).is_err() {
                    return Ok(());
                }
                delivery.ack().await?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_never_reaches_the_terminal_raw() {
        let evil = "a\u{1b}[2Jb\u{9b}c\u{7f}\u{202e}d\ne\tf\u{200f}";
        let safe = terminal_safe(evil, false);
        assert_eq!(
            safe,
            "a\\u{1b}[2Jb\\u{9b}c\\u{7f}\\u{202e}d\\u{a}e\\u{9}f\u{200f}"
        );
        assert!(!safe.chars().any(unsafe_on_terminal));
        assert_eq!(terminal_safe("x\ty", true), "x\ty");
        assert!(matches!(terminal_safe("plain", false), Cow::Borrowed(_)));
    }

    #[test]
    fn json_output_stays_valid_json_with_the_same_value() {
        let name = "a\u{1b}b\u{9b}c\u{202e}d\u{7f}";
        let line = json_line(&serde_json::json!({ "name": name }));
        assert!(!line.chars().any(unsafe_on_terminal), "{line}");
        let back: serde_json::Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(back["name"], name);
    }
}
