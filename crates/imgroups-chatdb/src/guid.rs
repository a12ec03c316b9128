//! Group chat GUIDs and their one normal form.
//!
//! Messages writes a group chat's `chat.guid` as `<service>;+;<identifier>`: `iMessage;+;chat…`
//! (and `SMS;+;chat…`, `RCS;+;…` for non-iMessage groups) on older systems, `any;+;<hex>` on
//! macOS 15/26. The SDK sees one form only: **`any;+;<identifier>`**, where `<identifier>` is
//! everything after the second `;` of `chat.guid` (which equals `chat.chat_identifier` in every
//! database we know of). When `chat.guid` does not have three `;`-separated parts, the
//! identifier is taken from `chat.chat_identifier` instead. Several rows can normalise to the
//! same GUID (the same group over iMessage and SMS); [`crate::ChatDb::groups`] merges them.

use std::fmt;

/// The prefix of every normalised group GUID.
pub const GROUP_PREFIX: &str = "any;+;";

/// A group chat GUID in the normal `any;+;<identifier>` form; no other form can be a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChatGuid(String);

impl ChatGuid {
    /// Normalises any group GUID form (`iMessage;+;chat1`, `SMS;+;chat1`, `any;+;chat1`) to
    /// `any;+;chat1`. `None` for a DM GUID (`;-;`), a GUID without three parts or an empty
    /// identifier.
    pub fn parse(raw: &str) -> Option<ChatGuid> {
        let mut parts = raw.splitn(3, ';');
        let (service, style, identifier) = (parts.next()?, parts.next()?, parts.next()?);
        if service.is_empty() || style != "+" {
            return None;
        }
        ChatGuid::from_identifier(identifier)
    }

    /// `any;+;<identifier>`, for a non-empty identifier without spaces or `;`.
    pub fn from_identifier(identifier: &str) -> Option<ChatGuid> {
        let valid = !identifier.is_empty()
            && !identifier.contains(';')
            && !identifier.chars().any(char::is_whitespace);
        valid.then(|| ChatGuid(format!("{GROUP_PREFIX}{identifier}")))
    }

    /// The GUID of a `chat` row of style 43: `chat.guid` normalised, else the row's
    /// `chat_identifier` (see the module doc).
    pub(crate) fn from_row(guid: &str, chat_identifier: Option<&str>) -> Option<ChatGuid> {
        let mut parts = guid.splitn(3, ';');
        if let (Some(_), Some(_), Some(identifier)) = (parts.next(), parts.next(), parts.next()) {
            if let Some(normal) = ChatGuid::from_identifier(identifier) {
                return Some(normal);
            }
        }
        chat_identifier.and_then(ChatGuid::from_identifier)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What follows `any;+;`.
    pub fn identifier(&self) -> &str {
        &self.0[GROUP_PREFIX.len()..]
    }
}

impl fmt::Display for ChatGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How much a raw `chat.guid` prefix is preferred when several rows share one normal GUID:
/// the newest form first, then iMessage, then the rest.
pub(crate) fn service_rank(raw: &str) -> u8 {
    match raw.split(';').next() {
        Some("any") => 0,
        Some("iMessage") => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_normalise_to_any() {
        for raw in [
            "iMessage;+;chat123",
            "SMS;+;chat123",
            "any;+;chat123",
            "RCS;+;chat123",
        ] {
            assert_eq!(
                ChatGuid::parse(raw).unwrap().as_str(),
                "any;+;chat123",
                "{raw}"
            );
        }
        assert_eq!(
            ChatGuid::parse("any;+;8f1c0a").unwrap().identifier(),
            "8f1c0a"
        );
    }

    #[test]
    fn non_group_forms_are_rejected() {
        for raw in [
            "any;-;+15551234567",
            "iMessage;-;a@b.c",
            "chat123",
            ";+;x",
            "any;+;",
            "a;+;b c",
        ] {
            assert_eq!(ChatGuid::parse(raw), None, "{raw}");
        }
    }

    #[test]
    fn row_falls_back_to_chat_identifier() {
        assert_eq!(
            ChatGuid::from_row("garbage", Some("chat9"))
                .unwrap()
                .as_str(),
            "any;+;chat9"
        );
        assert_eq!(ChatGuid::from_row("garbage", None), None);
    }
}
