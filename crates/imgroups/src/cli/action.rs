//! The actions of [`imgroups_core::action::ACTIONS`] as subcommands, built from that
//! description when the command line is parsed, so `sim act` and `groups` offer every action
//! with the same arguments: `CHAT`, then one positional per parameter (text as one word, a
//! list of addresses as one or more, an image file as its path).
//!
//! `sim act` lists them by name ([`ActionCmd`]: `sim act ADDRESS icon-set CHAT FILE`);
//! `groups` files a hyphenated name under its first word ([`nested`]: `groups icon set CHAT
//! FILE`).

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Command, Subcommand};
use imgroups_core::action::{self, Action, Family, Kind, Value, ACTIONS};
use imgroups_core::{Error, Limits};

/// The argument id of every action's group.
pub(crate) const CHAT: &str = "chat";

/// An action as typed: which, on which group, with what.
#[derive(Clone, Debug)]
pub(crate) struct Invocation {
    pub(crate) action: &'static Action,
    pub(crate) chat: String,
    /// One per parameter of the action, in order.
    entered: Vec<Entered>,
}

/// A parameter's value as typed.
#[derive(Clone, Debug)]
enum Entered {
    Text(String),
    Addresses(Vec<String>),
    File(PathBuf),
}

impl Invocation {
    /// Every address typed, for checks before anything is sent.
    pub(crate) fn addresses(&self) -> impl Iterator<Item = &String> {
        self.entered.iter().flat_map(|entered| match entered {
            Entered::Addresses(addresses) => addresses.as_slice(),
            Entered::Text(_) | Entered::File(_) => &[],
        })
    }

    /// The command, validated like the same request from an account; image files are read
    /// first (an unreadable one is `invalidArgument`, naming the file).
    pub(crate) fn command(&self, limits: &Limits) -> Result<imgroups_core::Command, Error> {
        let values = self
            .action
            .params
            .iter()
            .zip(&self.entered)
            .map(|(param, entered)| match entered {
                Entered::Text(text) => Ok(Value::Text(text.clone())),
                Entered::Addresses(addresses) => Ok(Value::Addresses(addresses.clone())),
                Entered::File(path) => std::fs::read(path).map(Value::Image).map_err(|err| {
                    Error::invalid(format!("cannot read {}: {err}", path.display()))
                        .with("field", param.name)
                }),
            })
            .collect::<Result<Vec<_>, Error>>()?;
        self.action.command(&self.chat, values, limits)
    }
}

/// The `CHAT` argument every action takes first.
pub(crate) fn chat_arg() -> Arg {
    Arg::new(CHAT)
        .required(true)
        .value_name("CHAT")
        .help("The group's chat GUID")
}

/// The subcommand `name` that performs `action`.
fn subcommand(action: &'static Action, name: &'static str) -> Command {
    let mut command = Command::new(name).about(action.summary).arg(chat_arg());
    for param in action.params {
        let arg = Arg::new(param.name)
            .required(true)
            .value_name(param.name.to_uppercase())
            // Clap's own help texts end without a period.
            .help(param.help.trim_end_matches('.'));
        command = command.arg(match param.kind {
            Kind::Text => arg,
            Kind::NewAddresses | Kind::Members => arg.num_args(1..).action(ArgAction::Append),
            Kind::ImageFile => arg
                .value_parser(clap::value_parser!(PathBuf))
                .value_hint(clap::ValueHint::FilePath),
        });
    }
    command
}

/// The invocation of `action` in its subcommand's `matches`.
fn read(action: &'static Action, matches: &ArgMatches) -> Option<Invocation> {
    let chat = matches.get_one::<String>(CHAT)?.clone();
    let entered = action
        .params
        .iter()
        .map(|param| match param.kind {
            Kind::Text => matches
                .get_one::<String>(param.name)
                .map(|text| Entered::Text(text.clone())),
            Kind::NewAddresses | Kind::Members => matches
                .get_many::<String>(param.name)
                .map(|many| Entered::Addresses(many.cloned().collect())),
            Kind::ImageFile => matches
                .get_one::<PathBuf>(param.name)
                .map(|path| Entered::File(path.clone())),
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Invocation {
        action,
        chat,
        entered,
    })
}

/// `sim act ADDRESS <ACTION> CHAT …`: one subcommand per action, by its name.
#[derive(Clone, Debug)]
pub(crate) struct ActionCmd(pub(crate) Invocation);

/// `sim act … say CHAT TEXT --reply-to GUID`: a `say` with a message to answer is the
/// `reply` action (`reply CHAT MESSAGE TEXT`), offered as a flag too because that is how
/// `messages send` spells it.
const REPLY_TO: &str = "reply-to";

fn say_reply(sub: &ArgMatches) -> Option<Invocation> {
    let guid = sub.get_one::<String>(REPLY_TO)?;
    let text = sub.get_one::<String>(TEXT_PARAM)?;
    Some(Invocation {
        action: action::find("reply")?,
        chat: sub.get_one::<String>(CHAT)?.clone(),
        entered: vec![Entered::Text(guid.clone()), Entered::Text(text.clone())],
    })
}

/// The name of `say`'s text parameter.
const TEXT_PARAM: &str = "text";

impl clap::FromArgMatches for ActionCmd {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        matches
            .subcommand()
            .and_then(|(name, sub)| match name {
                "say" if sub.get_one::<String>(REPLY_TO).is_some() => say_reply(sub),
                _ => read(action::find(name)?, sub),
            })
            .map(ActionCmd)
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::MissingSubcommand))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Subcommand for ActionCmd {
    fn augment_subcommands(cmd: Command) -> Command {
        cmd.subcommands(ACTIONS.iter().map(|action| {
            let sub = subcommand(action, action.name);
            if action.name != "say" {
                return sub;
            }
            sub.arg(
                Arg::new(REPLY_TO)
                    .long(REPLY_TO)
                    .value_name("GUID")
                    .help("Answer this message of the chat (the `reply` action)"),
            )
        }))
    }

    fn augment_subcommands_for_update(cmd: Command) -> Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        action::find(name).is_some()
    }
}

/// The actions `groups` offers: the group changes (messages have `imgroups messages`).
fn group_actions() -> impl Iterator<Item = &'static Action> {
    ACTIONS.iter().filter(|a| a.family == Family::Group)
}

/// `cmd` with the group actions as subcommands, a hyphenated name filed under its first word
/// (`icon-set` as `icon set`); `about` describes such a word.
pub(crate) fn nested(mut cmd: Command, about: fn(&str) -> String) -> Command {
    for action in group_actions() {
        cmd = match action.name.split_once('-') {
            None => cmd.subcommand(subcommand(action, action.name)),
            Some((topic, verb)) => {
                if cmd.find_subcommand(topic).is_none() {
                    cmd = cmd.subcommand(
                        Command::new(topic)
                            .about(about(topic))
                            .subcommand_required(true)
                            .arg_required_else_help(true),
                    );
                }
                cmd.mut_subcommand(topic, |nest| nest.subcommand(subcommand(action, verb)))
            }
        };
    }
    cmd
}

/// Whether [`nested`] makes a subcommand `name`.
pub(crate) fn has_nested(name: &str) -> bool {
    group_actions().any(|a| a.name.split_once('-').map_or(a.name, |(topic, _)| topic) == name)
}

/// The invocation in `matches`, those of the command given to [`nested`], if an action was
/// chosen.
pub(crate) fn nested_invocation(matches: &ArgMatches) -> Option<Invocation> {
    let (name, sub) = matches.subcommand()?;
    let group = |a: &&'static Action| a.family == Family::Group;
    if let Some(action) = action::find(name)
        .filter(|a| !a.name.contains('-'))
        .filter(group)
    {
        return read(action, sub);
    }
    let (verb, leaf) = sub.subcommand()?;
    read(action::find(&format!("{name}-{verb}")).filter(group)?, leaf)
}
