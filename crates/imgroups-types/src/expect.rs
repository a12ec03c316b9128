//! Assertions on what an account did, as data: an [`Expectation`] says which of the account's
//! *own* actions count (their [`Kind`], the chat, a regular expression over what they said),
//! and [`Expectation::matches`] decides on an [`Observed`] action. Every surface that checks
//! one — `imgroups sim expect` and `sim play`'s waits, the console API's `sim:expect`, the
//! Rust SDK's `events().expect(…)` — matches with it, so they agree on what counts. The wait
//! on an account's log is the engine's (`imgroups_core::expect::wait`).
//!
//! ```
//! use imgroups_types::expect::{Expectation, Kind, Observed};
//!
//! let welcome = Expectation::new(Kind::Message, None, Some("(?i)welcome"))?;
//! let said = Observed { kind: Kind::Message, chat: "any;+;chat1", is_from_me: true, text: Some("Welcome, zoe!") };
//! assert!(welcome.matches(&said));
//! // Someone else saying it does not count.
//! assert!(!welcome.matches(&Observed { is_from_me: false, ..said }));
//! # Ok::<(), imgroups_types::Error>(())
//! ```

use regex::Regex;

use crate::error::{Error, Result};
use crate::ids::ChatGuid;

/// What an action was; as a filter, [`Kind::Any`] and [`Kind::Group`] cover several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Anything the account did.
    Any,
    /// A message sent (a reply too). Its text is what a pattern matches.
    Message,
    /// A tapback put on a message (the tapback's name or emoji is its text).
    Reaction,
    /// A tapback taken off a message.
    Unreaction,
    /// A message edited (the new text).
    Edit,
    /// A message unsent.
    Unsend,
    /// A chat marked read.
    Read,
    /// A group renamed (the new name).
    Rename,
    /// People added to a group (the address added).
    Add,
    /// People removed from a group (the address removed).
    Remove,
    /// A group left.
    Leave,
    /// A group's icon set or removed.
    Icon,
    /// A chat's background set or removed.
    Background,
    /// Any change to a group: rename, add, remove, leave, icon.
    Group,
}

impl Kind {
    /// Every kind with its name, as the CLI, scenario files and the console API spell them.
    pub const ALL: [(Kind, &'static str); 14] = [
        (Kind::Any, "any"),
        (Kind::Message, "message"),
        (Kind::Reaction, "reaction"),
        (Kind::Unreaction, "unreaction"),
        (Kind::Edit, "edit"),
        (Kind::Unsend, "unsend"),
        (Kind::Read, "read"),
        (Kind::Rename, "rename"),
        (Kind::Add, "add"),
        (Kind::Remove, "remove"),
        (Kind::Leave, "leave"),
        (Kind::Icon, "icon"),
        (Kind::Background, "background"),
        (Kind::Group, "group"),
    ];

    /// The kind called `name` (`invalidArgument`, `field=kind`, naming the choices, if none).
    pub fn parse(name: &str) -> Result<Kind> {
        Kind::ALL
            .iter()
            .find(|(_, n)| *n == name.trim())
            .map(|(kind, _)| *kind)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown kind {name:?}: one of {}",
                    Kind::ALL.map(|(_, n)| n).join(", ")
                ))
                .with("field", "kind")
            })
    }

    pub fn name(self) -> &'static str {
        Kind::ALL
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or("any", |(_, name)| name)
    }

    /// The kind in a sentence: `anything`, `a group change`, `a message`, `an edit`.
    pub fn phrase(self) -> String {
        match self {
            Kind::Any => "anything".to_owned(),
            Kind::Group => "a group change".to_owned(),
            kind => {
                let name = kind.name();
                let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                format!("{article} {name}")
            }
        }
    }

    /// Whether an action of kind `did` is one this filter asks for.
    pub fn covers(self, did: Kind) -> bool {
        match self {
            Kind::Any => true,
            Kind::Group => matches!(
                did,
                Kind::Rename | Kind::Add | Kind::Remove | Kind::Leave | Kind::Icon
            ),
            Kind::Message
            | Kind::Reaction
            | Kind::Unreaction
            | Kind::Edit
            | Kind::Unsend
            | Kind::Read
            | Kind::Rename
            | Kind::Add
            | Kind::Remove
            | Kind::Leave
            | Kind::Icon
            | Kind::Background => self == did,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An action as an expectation sees it, whichever crate's event type it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed<'a> {
    pub kind: Kind,
    /// The chat's GUID as the account sees it.
    pub chat: &'a str,
    pub is_from_me: bool,
    /// What a pattern matches: see [`Kind`]. `None` where there is nothing to match.
    pub text: Option<&'a str>,
}

/// Which of an account's own actions count.
#[derive(Debug, Clone)]
pub struct Expectation {
    pub kind: Kind,
    /// Only in this chat.
    pub chat: Option<ChatGuid>,
    /// Only if what was said matches (an action without text then never matches).
    pub matching: Option<Regex>,
}

/// Longest pattern accepted, in bytes: patterns come from requests.
const MAX_PATTERN: usize = 1024;

impl Expectation {
    /// An expectation of `kind` in `chat` (a chat GUID) matching `pattern` (a regular
    /// expression, Rust `regex` syntax: `(?i)` for case-insensitive). A malformed GUID or
    /// pattern is `invalidArgument` with `field` `chatGuid` or `matching`.
    pub fn new(kind: Kind, chat: Option<&str>, pattern: Option<&str>) -> Result<Self> {
        let chat = chat
            .filter(|c| !c.trim().is_empty())
            .map(|c| ChatGuid::parse(c.trim()))
            .transpose()?;
        let matching = pattern
            .filter(|p| !p.is_empty())
            .map(|p| {
                if p.len() > MAX_PATTERN {
                    return Err(Error::invalid(format!(
                        "a pattern is at most {MAX_PATTERN} bytes"
                    ))
                    .with("field", "matching"));
                }
                regex::RegexBuilder::new(p)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|err| {
                        Error::invalid(format!("bad pattern {p:?}: {}", first_line(&err)))
                            .with("field", "matching")
                    })
            })
            .transpose()?;
        Ok(Expectation {
            kind,
            chat,
            matching,
        })
    }

    /// Whether `seen` is one of the actions expected: the account's own, of the kind, in the
    /// chat, its text matching.
    pub fn matches(&self, seen: &Observed<'_>) -> bool {
        seen.is_from_me
            && self.kind.covers(seen.kind)
            && self
                .chat
                .as_ref()
                .is_none_or(|c| c.to_string() == seen.chat)
            && self
                .matching
                .as_ref()
                .is_none_or(|re| seen.text.is_some_and(|t| re.is_match(t)))
    }

    /// The expectation in a few words: `a message in any;+;c matching /welcome/`.
    pub fn describe(&self) -> String {
        let mut line = self.kind.phrase();
        if let Some(chat) = &self.chat {
            line.push_str(&format!(" in {chat}"));
        }
        if let Some(re) = &self.matching {
            line.push_str(&format!(" matching /{}/", re.as_str()));
        }
        line
    }
}

fn first_line(err: &regex::Error) -> String {
    // The regex crate's messages span several lines with a caret diagram; the last line says
    // what is wrong.
    let text = err.to_string();
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid")
        .trim()
        .trim_start_matches("error: ")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(kind: Kind, text: Option<&str>) -> Observed<'_> {
        Observed {
            kind,
            chat: "any;+;chat1",
            is_from_me: true,
            text,
        }
    }

    #[test]
    fn kinds_round_trip_and_cover() {
        for (kind, name) in Kind::ALL {
            assert_eq!(Kind::parse(name).expect("known"), kind);
            assert_eq!(kind.name(), name);
            assert!(Kind::Any.covers(kind));
        }
        let err = Kind::parse("dance").unwrap_err();
        assert_eq!(err.context_value("field"), Some("kind"));
        assert!(err.message.contains("message, reaction"), "{}", err.message);
        assert!(Kind::Group.covers(Kind::Rename));
        assert!(!Kind::Group.covers(Kind::Message));
        assert!(!Kind::Message.covers(Kind::Edit));
    }

    #[test]
    fn only_own_actions_of_the_kind_in_the_chat_matching_count() {
        let e = Expectation::new(Kind::Message, Some("any;+;chat1"), Some("^wel")).expect("ok");
        assert!(e.matches(&seen(Kind::Message, Some("welcome"))));
        assert!(!e.matches(&seen(Kind::Message, Some("a welcome"))));
        assert!(!e.matches(&seen(Kind::Edit, Some("welcome"))));
        assert!(!e.matches(&Observed {
            chat: "any;+;chat2",
            ..seen(Kind::Message, Some("welcome"))
        }));
        assert!(!e.matches(&Observed {
            is_from_me: false,
            ..seen(Kind::Message, Some("welcome"))
        }));
        // A pattern needs text.
        let icon = Expectation::new(Kind::Any, None, Some(".")).expect("ok");
        assert!(!icon.matches(&seen(Kind::Icon, None)));
        assert!(Expectation::new(Kind::Any, None, None)
            .expect("ok")
            .matches(&seen(Kind::Icon, None)));
    }

    #[test]
    fn bad_input_names_its_field() {
        let err = Expectation::new(Kind::Any, None, Some("(")).unwrap_err();
        assert_eq!(err.context_value("field"), Some("matching"));
        assert!(!err.message.contains('\n'), "{}", err.message);
        let err = Expectation::new(Kind::Any, Some("nope"), None).unwrap_err();
        assert_eq!(err.context_value("field"), Some("chatGuid"));
    }
}
