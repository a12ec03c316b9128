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
//! Errors are printed as one line on stderr: `error: <message> (<code>)`.

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
    /// Server address: http://HOST:PORT (plaintext) or https://HOST:PORT (TLS).
    #[arg(long, env = "IMGROUPS_SERVER", default_value = imgroups_client::DEFAULT_ADDRESS, global = true)]
    server: String,
    /// API token (as printed by `imgroups serve` or `imgroups account add`).
    #[arg(long, env = "IMGROUPS_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Seconds to wait for each call.
    #[arg(long, default_value_t = 30, global = true)]
    timeout_secs: u64,
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
    Rename { chat: String, name: String },
    /// Add people to a group.
    Add {
        chat: String,
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Remove people from a group.
    Remove {
        chat: String,
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Leave a group.
    Leave { chat: String },
    /// Set, download or remove the group icon.
    #[command(subcommand)]
    Icon(IconCmd),
}

#[derive(Subcommand)]
enum IconCmd {
    /// Set the icon from an image file (PNG, JPEG, GIF, HEIC, HEIF).
    Set { chat: String, file: PathBuf },
    /// Download the icon to a file (`-o -` for stdout).
    Get {
        chat: String,
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Remove the icon.
    Rm { chat: String },
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
        #[arg(required = true)]
        addresses: Vec<String>,
        /// A first message.
        #[arg(long)]
        message: Option<String>,
    },
    /// Show a chat.
    Get {
        chat: String,
        /// Print the chat as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print how many chats are visible.
    Count {
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
    /// Print group events as they happen, one per line.
    Tail {
        /// Only this group.
        #[arg(long)]
        chat: Option<String>,
        /// Replay the events after sequence N first, then follow live, resuming across
        /// disconnects. Without it: live events only.
        #[arg(long, value_name = "N")]
        from: Option<u64>,
        /// JSON lines in the official SDK's event shape.
        #[arg(long)]
        json: bool,
    },
}

/// A failure and its exit code.
struct Failure {
    exit: u8,
    message: String,
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
            message: err.to_string(),
        }
    }
}

/// Bad input on the command line: exit 2.
fn usage(err: imgroups_core::Error) -> Failure {
    Failure {
        exit: 2,
        message: format!("{} (invalidArgument)", err.message),
    }
}

fn io_failure(what: &str, err: io::Error) -> Failure {
    Failure {
        exit: 1,
        message: format!("{what}: {err}"),
    }
}

type Outcome = Result<(), Failure>;

pub(crate) fn groups(args: GroupsArgs) -> ExitCode {
    run(&args.remote, |client| async move {
        groups_cmd(&client, args.cmd).await
    })
}

pub(crate) fn chats(args: ChatsArgs) -> ExitCode {
    run(&args.remote, |client| async move {
        chats_cmd(&client, args.cmd).await
    })
}

pub(crate) fn events(args: EventsArgs) -> ExitCode {
    run(&args.remote, |client| async move {
        events_cmd(&client, args.cmd).await
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
        Err(err) => return report(io_failure("cannot start the runtime", err)),
    };
    let outcome = runtime.block_on(async {
        let mut builder = Client::builder()
            .address(&remote.server)
            .timeout(Duration::from_secs(remote.timeout_secs))
            .connect_timeout(Duration::from_secs(remote.timeout_secs.clamp(1, 10)));
        if let Some(token) = &remote.token {
            builder = builder.token(token.trim());
        }
        let client = builder.build().map_err(|err| Failure {
            exit: 2,
            message: err.to_string(),
        })?;
        f(client).await
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(failure),
    }
}

fn report(failure: Failure) -> ExitCode {
    eprintln!("error: {}", failure.message);
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

    fn line(&mut self, text: &str) -> Result<(), Closed> {
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

fn chat_lines(chat: &Chat) -> Vec<String> {
    let people: Vec<&str> = chat
        .participants
        .iter()
        .map(|p| p.address.as_str())
        .collect();
    vec![
        format!("guid\t{}", chat.guid),
        format!("name\t{}", chat.display_name),
        format!("group\t{}", chat.is_group),
        format!("participants\t{}", people.join(", ")),
    ]
}

async fn groups_cmd(client: &Client, cmd: GroupsCmd) -> Outcome {
    let groups = client.groups();
    match cmd {
        GroupsCmd::Rename { chat, name } => {
            let chat = groups.set_display_name(&chat_guid(&chat)?, &name).await?;
            print_lines(chat_lines(&chat))
        }
        GroupsCmd::Add { chat, addresses: a } => {
            let chat = groups
                .add_participants(&chat_guid(&chat)?, &addresses(&a)?)
                .await?;
            print_lines(chat_lines(&chat))
        }
        GroupsCmd::Remove { chat, addresses: a } => {
            let chat = groups
                .remove_participants(&chat_guid(&chat)?, &addresses(&a)?)
                .await?;
            print_lines(chat_lines(&chat))
        }
        GroupsCmd::Leave { chat } => Ok(groups.leave(&chat_guid(&chat)?).await?),
        GroupsCmd::Icon(IconCmd::Set { chat, file }) => {
            let chat = chat_guid(&chat)?;
            let data = std::fs::read(&file)
                .map_err(|err| io_failure(&format!("cannot read {}", file.display()), err))?;
            Ok(groups.set_icon(&chat, data).await?)
        }
        GroupsCmd::Icon(IconCmd::Get { chat, output }) => {
            let icon = groups.get_icon(&chat_guid(&chat)?).await?;
            if output.as_os_str() == "-" {
                let mut stdout = io::stdout().lock();
                // A closed pipe is not an error.
                let _ = stdout.write_all(&icon.data).and_then(|()| stdout.flush());
            } else {
                std::fs::write(&output, &icon.data).map_err(|err| {
                    io_failure(&format!("cannot write {}", output.display()), err)
                })?;
                eprintln!(
                    "wrote {} bytes ({}) to {}",
                    icon.data.len(),
                    icon.mime_type,
                    output.display()
                );
            }
            Ok(())
        }
        GroupsCmd::Icon(IconCmd::Rm { chat }) => Ok(groups.remove_icon(&chat_guid(&chat)?).await?),
    }
}

async fn chats_cmd(client: &Client, cmd: ChatsCmd) -> Outcome {
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
            print_lines([created.chat.guid.to_string()])
        }
        ChatsCmd::Get { chat, json } => {
            let chat = client.chats().get(&chat_guid(&chat)?).await?;
            if json {
                let text = serde_json::to_string(&chat).unwrap_or_default();
                print_lines([text])
            } else {
                print_lines(chat_lines(&chat))
            }
        }
        ChatsCmd::Count { include_archived } => {
            let count = client.chats().count(include_archived).await?;
            print_lines([count.to_string()])
        }
    }
}

fn render(event: &GroupEvent, json: bool) -> String {
    if json {
        event.to_json()
    } else {
        event.to_line()
    }
}

async fn events_cmd(client: &Client, cmd: EventsCmd) -> Outcome {
    let EventsCmd::Tail { chat, from, json } = cmd;
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
            Err(Failure {
                exit: 5,
                message: "the server closed the event stream (serviceUnavailable)".to_owned(),
            })
        }
        Some(after) => {
            let mut events = client
                .events()
                .resumable(filter, MemoryCheckpoint::new(after))
                .on_reconnect(|err, attempt| {
                    eprintln!("reconnecting (attempt {attempt}): {err}");
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
