//! What a person can do in a chat — to a group (rename it, add or remove people, leave, set or
//! remove its icon) and in any chat (say something, reply, react, edit, unsend, read) —
//! described once as data for every surface that offers it: the simulator's puppets
//! (`imgroups sim act`), the client commands (`imgroups groups …` for the group actions) and
//! the web console's forms. Each surface renders [`ACTIONS`] its own way (subcommands with positional
//! arguments, HTML forms) and turns what was entered into a [`Command`] with
//! [`Action::command`], so the same input is refused with the same error everywhere.
//!
//! Every action applies to one group, named by its chat GUID; [`Action::params`] lists what
//! it needs besides. Adding an action is one entry in [`ACTIONS`]: its description and its
//! `build`, the mapping from the values entered to a [`Command`].
//!
//! ```
//! use imgroups_core::action::{self, Value};
//! use imgroups_core::{Command, Limits, Mutation};
//!
//! let rename = action::find("rename").expect("a known action");
//! let command = rename.command("any;+;chat1", vec![Value::Text("Trip".into())], &Limits::default())?;
//! let Command::Group { mutation, .. } = command else { unreachable!() };
//! assert_eq!(mutation, Mutation::SetDisplayName("Trip".into()));
//! # Ok::<(), imgroups_core::Error>(())
//! ```

use serde::Serialize;

use crate::command::{Command, Limits, NewMessage};
use crate::error::{Error, Result};
use crate::model::Reaction;

/// One thing a person can do to a group. Serialized (for the console) without its mapping.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Action {
    /// Stable name, lower case with hyphens (`icon-set`).
    pub name: &'static str,
    /// What it does, in a few words without a final period ("Rename the group").
    pub summary: &'static str,
    /// A short label for whatever performs it, such as a button ("Rename", "Leave group").
    pub label: &'static str,
    /// The person cannot undo it alone (after leaving, only a member can add them back):
    /// surfaces may set it apart or ask first.
    pub destructive: bool,
    /// A change to a group, or something said or done in any chat.
    pub family: Family,
    /// What it needs besides the group, in order.
    pub params: &'static [Param],
    /// Builds the command from the group's chat GUID and values that match `params`.
    #[serde(skip)]
    build: fn(&str, &mut Values, &Limits) -> Result<Command>,
}

/// What an action acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Family {
    /// Changes a group (needs a group's chat GUID).
    Group,
    /// Says or does something in a chat, a group or a direct one.
    Message,
}

/// One value an action needs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Param {
    /// Lower camelCase (`name`, `addresses`): also the field of a JSON body that carries it.
    pub name: &'static str,
    pub kind: Kind,
    /// A short label for a form field ("New name").
    pub label: &'static str,
    /// One sentence for help texts ("The new display name.").
    pub help: &'static str,
}

/// What kind of value a parameter takes, and so how a surface asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// A line of text ([`Value::Text`]).
    Text,
    /// One or more people not in the group yet, as phone numbers (E.164) or email addresses
    /// ([`Value::Addresses`]).
    NewAddresses,
    /// One or more people in the group ([`Value::Addresses`]): a surface that knows the
    /// members may offer a choice among them.
    Members,
    /// An image file's bytes: PNG, JPEG, GIF, HEIC or HEIF ([`Value::Image`]).
    ImageFile,
}

/// A value entered for a parameter, as typed: validation is the command's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Addresses(Vec<String>),
    Image(Vec<u8>),
}

impl Value {
    fn kind_name(&self) -> &'static str {
        match self {
            Value::Text(_) => "text",
            Value::Addresses(_) => "addresses",
            Value::Image(_) => "an image",
        }
    }
}

impl Kind {
    /// Whether `value` is of this kind.
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            Kind::Text => matches!(value, Value::Text(_)),
            Kind::NewAddresses | Kind::Members => matches!(value, Value::Addresses(_)),
            Kind::ImageFile => matches!(value, Value::Image(_)),
        }
    }
}

/// Every action a person can take on a group, in the order surfaces list them.
pub static ACTIONS: &[Action] = &[
    Action {
        name: "rename",
        summary: "Rename the group",
        label: "Rename",
        destructive: false,
        family: Family::Group,
        params: &[Param {
            name: "name",
            kind: Kind::Text,
            label: "New name",
            help: "The new display name.",
        }],
        build: |chat, values, _| Command::set_display_name(chat, &values.text()?),
    },
    Action {
        name: "add",
        summary: "Add people to the group",
        label: "Add",
        destructive: false,
        family: Family::Group,
        params: &[Param {
            name: "addresses",
            kind: Kind::NewAddresses,
            label: "Address to add",
            help: "Phone numbers (E.164) or email addresses to add.",
        }],
        build: |chat, values, _| Command::add_participants(chat, &values.addresses()?),
    },
    Action {
        name: "remove",
        summary: "Remove people from the group",
        label: "Remove",
        destructive: false,
        family: Family::Group,
        params: &[Param {
            name: "addresses",
            kind: Kind::Members,
            label: "Member to remove",
            help: "Phone numbers (E.164) or email addresses to remove.",
        }],
        build: |chat, values, _| Command::remove_participants(chat, &values.addresses()?),
    },
    Action {
        name: "leave",
        summary: "Leave the group",
        label: "Leave group",
        destructive: true,
        family: Family::Group,
        params: &[],
        build: |chat, _, _| Command::leave(chat),
    },
    Action {
        name: "icon-set",
        summary: "Set the group icon from an image file (PNG, JPEG, GIF, HEIC or HEIF)",
        label: "Set icon",
        destructive: false,
        family: Family::Group,
        params: &[Param {
            name: "file",
            kind: Kind::ImageFile,
            label: "Icon file",
            help: "The image file.",
        }],
        build: |chat, values, limits| Command::set_icon(chat, values.image()?, limits),
    },
    Action {
        name: "icon-rm",
        summary: "Remove the group icon",
        label: "Remove icon",
        destructive: false,
        family: Family::Group,
        params: &[],
        build: |chat, _, _| Command::remove_icon(chat),
    },
    Action {
        name: "say",
        summary: "Send a message to the chat",
        label: "Send",
        destructive: false,
        family: Family::Message,
        params: &[TEXT],
        build: |chat, values, _| {
            let message = NewMessage::new(&values.text()?, None, None, None, Vec::new())?;
            Command::send_text(chat, message)
        },
    },
    Action {
        name: "reply",
        summary: "Answer a message of the chat",
        label: "Reply",
        destructive: false,
        family: Family::Message,
        params: &[MESSAGE, TEXT],
        build: |chat, values, _| {
            let reply_to = values.text()?;
            let message = NewMessage::new(&values.text()?, None, None, Some(reply_to), Vec::new())?;
            Command::send_text(chat, message)
        },
    },
    Action {
        name: "react",
        summary: "Put a tapback on a message",
        label: "React",
        destructive: false,
        family: Family::Message,
        params: &[MESSAGE, TAPBACK],
        build: |chat, values, _| {
            let message = values.text()?;
            Command::react(chat, &message, tapback(&values.text()?)?, true)
        },
    },
    Action {
        name: "unreact",
        summary: "Take a tapback off a message",
        label: "Remove tapback",
        destructive: false,
        family: Family::Message,
        params: &[MESSAGE, TAPBACK],
        build: |chat, values, _| {
            let message = values.text()?;
            Command::react(chat, &message, tapback(&values.text()?)?, false)
        },
    },
    Action {
        name: "edit",
        summary: "Edit a message you sent (within 15 minutes, at most 5 times)",
        label: "Edit",
        destructive: false,
        family: Family::Message,
        params: &[MESSAGE, TEXT],
        build: |chat, values, _| {
            let message = values.text()?;
            Command::edit(chat, &message, &values.text()?)
        },
    },
    Action {
        name: "unsend",
        summary: "Unsend a message you sent (within 2 minutes)",
        label: "Unsend",
        destructive: true,
        family: Family::Message,
        params: &[MESSAGE],
        build: |chat, values, _| Command::unsend(chat, &values.text()?),
    },
    Action {
        name: "read",
        summary: "Mark everything received in the chat read",
        label: "Mark read",
        destructive: false,
        family: Family::Message,
        params: &[],
        build: |chat, _, _| Command::mark_read(chat),
    },
];

const TEXT: Param = Param {
    name: "text",
    kind: Kind::Text,
    label: "Message",
    help: "The text to send.",
};

const MESSAGE: Param = Param {
    name: "message",
    kind: Kind::Text,
    label: "Message GUID",
    help: "The GUID of a message in the chat.",
};

const TAPBACK: Param = Param {
    name: "reaction",
    kind: Kind::Text,
    label: "Tapback",
    help: "love, like, dislike, laugh, emphasize, question, or an emoji.",
};

/// A tapback by name, or an emoji.
fn tapback(name: &str) -> Result<Reaction> {
    Reaction::named(name.trim()).ok_or_else(|| {
        Error::invalid("a tapback is love, like, dislike, laugh, emphasize, question or an emoji")
            .with("field", "reaction")
    })
}

/// The action called `name`.
pub fn find(name: &str) -> Option<&'static Action> {
    ACTIONS.iter().find(|a| a.name == name)
}

impl Action {
    /// The command this action makes on the group `chat` with `values`, one per parameter in
    /// order, validated like the same request from an account (`limits` bound an icon).
    /// Values that do not match the parameters are refused with `invalidArgument`.
    pub fn command(&self, chat: &str, values: Vec<Value>, limits: &Limits) -> Result<Command> {
        if values.len() != self.params.len() {
            return Err(Error::invalid(format!(
                "{} takes {} value(s) besides the group, got {}",
                self.name,
                self.params.len(),
                values.len()
            )));
        }
        if let Some((param, value)) = self
            .params
            .iter()
            .zip(&values)
            .find(|(param, value)| !param.kind.accepts(value))
        {
            return Err(Error::invalid(format!(
                "{} of {} takes {:?}, not {}",
                param.name,
                self.name,
                param.kind,
                value.kind_name()
            ))
            .with("field", param.name));
        }
        (self.build)(chat, &mut Values(values.into_iter()), limits)
    }
}

/// The values given to an action's `build`, taken in parameter order. Their kinds were
/// checked against the parameters before `build` runs.
struct Values(std::vec::IntoIter<Value>);

impl Values {
    fn next(&mut self) -> Result<Value> {
        self.0
            .next()
            .ok_or_else(|| Error::invalid("a value is missing"))
    }

    fn text(&mut self) -> Result<String> {
        match self.next()? {
            Value::Text(text) => Ok(text),
            other => Err(mismatch(&other)),
        }
    }

    fn addresses(&mut self) -> Result<Vec<String>> {
        match self.next()? {
            Value::Addresses(addresses) => Ok(addresses),
            other => Err(mismatch(&other)),
        }
    }

    fn image(&mut self) -> Result<Vec<u8>> {
        match self.next()? {
            Value::Image(data) => Ok(data),
            other => Err(mismatch(&other)),
        }
    }
}

fn mismatch(value: &Value) -> Error {
    Error::invalid(format!("unexpected {}", value.kind_name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Mutation;
    use crate::testing::png_of;

    fn sample(kind: Kind) -> Value {
        match kind {
            Kind::Text => Value::Text("Weekend".into()),
            Kind::NewAddresses | Kind::Members => Value::Addresses(vec!["a@example.com".into()]),
            Kind::ImageFile => Value::Image(png_of(8, 8, &[])),
        }
    }

    #[test]
    fn every_action_builds_its_command_from_values_of_its_kinds() {
        let mut seen = Vec::new();
        for action in ACTIONS {
            let values = action.params.iter().map(|p| sample(p.kind)).collect();
            let command = action
                .command("any;+;chat1", values, &Limits::default())
                .unwrap_or_else(|err| panic!("{}: {err}", action.name));
            assert_eq!(
                matches!(command, Command::Group { .. }),
                action.family == Family::Group,
                "{}",
                action.name
            );
            seen.push(command.method());
        }
        assert_eq!(
            seen,
            [
                "SetDisplayName",
                "AddParticipants",
                "RemoveParticipants",
                "LeaveGroup",
                "SetIcon",
                "RemoveIcon",
                "SendTextMessage",
                "SendTextMessage",
                "SetReaction",
                "SetReaction",
                "EditMessage",
                "UnsendMessage",
                "MarkChatRead"
            ]
        );
    }

    #[test]
    fn names_are_unique_and_found() {
        for action in ACTIONS {
            assert!(std::ptr::eq(find(action.name).expect("found"), action));
            assert!(!action.summary.ends_with('.'), "{}", action.name);
        }
        assert!(find("dance").is_none());
    }

    #[test]
    fn values_must_match_the_parameters() {
        let rename = find("rename").expect("rename");
        let limits = Limits::default();
        let err = rename.command("any;+;chat1", vec![], &limits).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::InvalidArgument);
        let err = rename
            .command("any;+;chat1", vec![Value::Image(vec![1])], &limits)
            .unwrap_err();
        assert_eq!(err.context_value("field"), Some("name"));
        // The command's own validation applies: a name of blanks is no name.
        let err = rename
            .command("any;+;chat1", vec![Value::Text("  ".into())], &limits)
            .unwrap_err();
        assert_eq!(err.context_value("field"), Some("displayName"));
        let leave = find("leave").expect("leave");
        let Command::Group { mutation, .. } = leave
            .command("iMessage;+;x", vec![], &limits)
            .expect("leave")
        else {
            panic!("a group command");
        };
        assert_eq!(mutation, Mutation::Leave);
    }

    #[test]
    fn the_description_serializes_without_its_mapping() {
        let json = serde_json::to_value(find("remove").expect("remove")).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "name": "remove",
                "summary": "Remove people from the group",
                "label": "Remove",
                "destructive": false,
                "family": "group",
                "params": [{
                    "name": "addresses",
                    "kind": "members",
                    "label": "Member to remove",
                    "help": "Phone numbers (E.164) or email addresses to remove.",
                }],
            })
        );
    }
}
