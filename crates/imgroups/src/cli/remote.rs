//! The client commands' flags: `groups …`, `chats …`, `messages …`, `addresses …`, `events
//! tail`, and where the server is ([`RemoteArgs`]). The work is in `cmd::{groups, chats,
//! messages, addresses, events}`, the connection in `remote`.

use std::path::PathBuf;

use clap::{Arg, ArgMatches, Args, Command, Subcommand};

use super::action::{self, Invocation};

/// Where the server is and who I am; shared by every client subcommand. The ids are shared
/// with [`GlobalRemote`], so a value given before the subcommand reaches these.
#[derive(Args, Clone)]
pub(crate) struct RemoteArgs {
    /// Server address: HOST:PORT or http://HOST:PORT (plaintext), https://HOST:PORT (TLS).
    #[arg(id = "server", long = "server", value_name = "SERVER", env = "IMGROUPS_SERVER",
          default_value = imgroups_client::DEFAULT_ADDRESS, global = true)]
    server: String,
    /// API token (as printed by `imgroups serve` or `imgroups account add`).
    #[arg(
        id = "api_token",
        long = "token",
        value_name = "TOKEN",
        env = "IMGROUPS_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    /// Also trust the CA certificate(s) in this PEM file for https:// servers, e.g. the
    /// certificate of a server started with a self-signed --tls-cert.
    #[arg(
        id = "tls_ca",
        long = "tls-ca",
        env = "IMGROUPS_TLS_CA",
        value_name = "FILE",
        global = true
    )]
    tls_ca: Option<PathBuf>,
    /// Seconds to wait for each call.
    #[arg(long, default_value_t = 30, global = true)]
    timeout_secs: u64,
    /// Machine-readable output: one JSON object per result (JSON lines for `events tail`);
    /// errors as a JSON object on stderr.
    #[arg(long, global = true)]
    json: bool,
}

impl RemoteArgs {
    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub(crate) fn tls_ca(&self) -> Option<&std::path::Path> {
        self.tls_ca.as_deref()
    }

    pub(crate) fn timeout_secs(&self) -> u64 {
        self.timeout_secs
    }

    pub(crate) fn json(&self) -> bool {
        self.json
    }
}

/// [`RemoteArgs`]' `--server`, `--token` and `--tls-ca` on the root, hidden there, so that
/// `imgroups --server … chats count` works as well as `imgroups chats count --server …`.
/// Clap hands a value given here down to the client subcommand's argument of the same id
/// (unless that one was given too: the later, closer one wins).
#[derive(Args, Clone)]
pub(crate) struct GlobalRemote {
    /// Server address of the client commands (see `imgroups chats --help`).
    #[arg(id = "server", long = "server", global = true, hide = true)]
    server: Option<String>,
    /// API token of the client commands.
    #[arg(id = "api_token", long = "token", global = true, hide = true)]
    token: Option<String>,
    /// CA certificate file of the client commands.
    #[arg(id = "tls_ca", long = "tls-ca", global = true, hide = true)]
    tls_ca: Option<PathBuf>,
}

impl GlobalRemote {
    /// Whether any of them was given.
    pub(crate) fn given(&self) -> bool {
        self.server.is_some() || self.token.is_some() || self.tls_ca.is_some()
    }
}

#[derive(Args)]
pub(crate) struct GroupsArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    #[command(subcommand)]
    pub(crate) cmd: GroupsCmd,
}

/// `groups …`: every action of `imgroups_core::action` (a hyphenated one nested:
/// `icon-set` is `groups icon set`), and `groups icon get`, which reads.
pub(crate) enum GroupsCmd {
    Act(Invocation),
    /// Download the icon.
    IconGet {
        chat: String,
        output: PathBuf,
    },
}

/// What `groups <WORD>` files the nested actions under says about itself.
fn topic_about(topic: &str) -> String {
    match topic {
        "icon" => "Set, download or remove the group icon".to_owned(),
        other => format!("Group {other} actions"),
    }
}

fn icon_get() -> Command {
    Command::new("get")
        .about("Download the icon to a file (`-o -` for stdout: the raw bytes, also with --json)")
        .arg(action::chat_arg())
        .arg(
            Arg::new("output")
                .short('o')
                .long("output")
                .required(true)
                .value_name("OUTPUT")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Where to write the image (`-` for stdout)"),
        )
}

impl clap::FromArgMatches for GroupsCmd {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        if let Some(("icon", icon)) = matches.subcommand() {
            if let Some(("get", get)) = icon.subcommand() {
                let chat = get.get_one::<String>(action::CHAT).cloned();
                let output = get.get_one::<PathBuf>("output").cloned();
                if let (Some(chat), Some(output)) = (chat, output) {
                    return Ok(GroupsCmd::IconGet { chat, output });
                }
            }
        }
        action::nested_invocation(matches)
            .map(GroupsCmd::Act)
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::MissingSubcommand))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Subcommand for GroupsCmd {
    fn augment_subcommands(cmd: Command) -> Command {
        action::nested(cmd, topic_about).mut_subcommand("icon", |icon| icon.subcommand(icon_get()))
    }

    fn augment_subcommands_for_update(cmd: Command) -> Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        action::has_nested(name)
    }
}

#[derive(Args)]
pub(crate) struct ChatsArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    #[command(subcommand)]
    pub(crate) cmd: ChatsCmd,
}

#[derive(Subcommand)]
pub(crate) enum ChatsCmd {
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
    /// Mark everything received in a chat read.
    Read {
        /// The chat GUID.
        chat: String,
    },
    /// Show or hide the typing indicator in a chat.
    Typing {
        /// The chat GUID.
        chat: String,
        /// `on` to show it, `off` to hide it.
        state: OnOff,
    },
}

/// A switch on the command line.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OnOff {
    On,
    Off,
}

#[derive(Args)]
pub(crate) struct MessagesArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    #[command(subcommand)]
    pub(crate) cmd: MessagesCmd,
}

/// Paging of `messages list` and `messages recent`.
#[derive(Args, Clone)]
pub(crate) struct PageArgs {
    /// Messages per page (1 to 1000; the server's default is 50).
    #[arg(long, value_name = "N")]
    pub(crate) page_size: Option<u32>,
    /// Start at this page (as printed after a page with more after it).
    #[arg(long, value_name = "TOKEN")]
    pub(crate) page_token: Option<String>,
    /// Every page, not only the first (with --json: one message per line).
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Subcommand)]
pub(crate) enum MessagesCmd {
    /// Send a text message to a chat (`any;-;ADDRESS` for a direct one). Prints its GUID.
    Send {
        /// The chat GUID.
        chat: String,
        /// The text.
        text: String,
        /// Answer this message of the chat.
        #[arg(long, value_name = "GUID")]
        reply_to: Option<String>,
        /// A subject line.
        #[arg(long)]
        subject: Option<String>,
    },
    /// List a chat's messages, newest first: GUID, time, sender (`me`), text.
    List {
        /// The chat GUID.
        chat: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// List the account's recent messages in every chat, newest first.
    Recent {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one message.
    Get {
        /// The message GUID.
        guid: String,
    },
    /// Put a tapback on a message (replacing your earlier one).
    React {
        /// The chat GUID.
        chat: String,
        /// The message GUID.
        guid: String,
        /// love, like, dislike, laugh, emphasize, question, or an emoji.
        kind: String,
    },
    /// Take your tapback off a message.
    Unreact {
        /// The chat GUID.
        chat: String,
        /// The message GUID.
        guid: String,
        /// love, like, dislike, laugh, emphasize, question, or an emoji.
        kind: String,
    },
    /// Edit a message you sent (within 15 minutes, at most 5 times).
    Edit {
        /// The chat GUID.
        chat: String,
        /// The message GUID.
        guid: String,
        /// The new text.
        text: String,
    },
    /// Unsend a message you sent (within 2 minutes).
    Unsend {
        /// The chat GUID.
        chat: String,
        /// The message GUID.
        guid: String,
    },
}

#[derive(Args)]
pub(crate) struct AddressesArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    #[command(subcommand)]
    pub(crate) cmd: AddressesCmd,
}

#[derive(Subcommand)]
pub(crate) enum AddressesCmd {
    /// Whether an address is on iMessage, its services, and whether Focus silences it.
    Check {
        /// A phone number (E.164) or an email address.
        address: String,
    },
}

#[derive(Args)]
pub(crate) struct EventsArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    #[command(subcommand)]
    pub(crate) cmd: EventsCmd,
}

#[derive(Subcommand)]
pub(crate) enum EventsCmd {
    /// Print events as they happen, one per line (with --json: JSON lines; group events in
    /// the official SDK's `GroupEvent` shape). Without --from: group events only; with
    /// --from: every kind (group, message, chat).
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
