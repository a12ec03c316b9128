//! Validated identifiers: a [`ChatGuid`] or an [`Address`] that exists as a value is well formed.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{excerpt, Error, Reason, MAX_ECHO_CHARS};

/// Longest chat GUID accepted, in bytes, before anything else is looked at. The longest valid
/// one is a direct chat with the longest email, `iMessage;-;` + 64 + 1 + 253 = 329 bytes;
/// group identifiers are `chat` and about 20 digits. The rest is headroom for padding and
/// forms not seen yet. Without a cap, a 100 KB GUID was echoed into the error trailers.
pub const MAX_CHAT_GUID_BYTES: usize = 512;

/// Longest address input accepted, in bytes, before it is parsed: the longest valid email is
/// 64 + 1 + 253 = 318 bytes, a formatted phone number a few dozen. Parsing is linear, but
/// there is no reason to walk (or echo) megabytes to refuse an address.
pub const MAX_ADDRESS_BYTES: usize = 512;

/// Whether a chat GUID names a group (`+`) or a direct chat (`-`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChatKind {
    Group,
    Direct,
}

/// A chat GUID normalised to the `any;<+|->;<id>` form.
///
/// Input accepts the `any`, `iMessage`, `SMS` and `RCS` prefixes (older clients and older macOS
/// releases still send `iMessage;+;…`); output is always `any;…`, the only form the official
/// TypeScript SDK accepts back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatGuid {
    kind: ChatKind,
    id: String,
}

impl ChatGuid {
    pub fn parse(input: &str) -> Result<Self, Error> {
        if input.len() > MAX_CHAT_GUID_BYTES {
            return Err(Error::invalid(format!(
                "chat guid is longer than {MAX_CHAT_GUID_BYTES} bytes"
            ))
            .with("field", "chatGuid")
            .because(Reason::TooLong)
            .with("limit", MAX_CHAT_GUID_BYTES)
            .with("chatguid", excerpt(input, MAX_ECHO_CHARS)));
        }
        // The normal form, as every stored GUID is: what the general case below would make
        // of it, without splitting it (a catch-up parses one per event).
        for (prefix, kind) in [("any;+;", ChatKind::Group), ("any;-;", ChatKind::Direct)] {
            if let Some(id) = input.strip_prefix(prefix).map(str::trim_end) {
                if !id.is_empty() {
                    return Ok(ChatGuid {
                        kind,
                        id: id.to_owned(),
                    });
                }
            }
        }
        let invalid = || {
            Error::invalid(format!("invalid chat guid {input:?}"))
                .with("field", "chatGuid")
                .with("chatguid", input)
        };
        let trimmed = input.trim();
        let mut parts = trimmed.splitn(3, ';');
        let (Some(prefix), Some(marker), Some(id)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        if !matches!(prefix, "any" | "iMessage" | "SMS" | "RCS") || id.is_empty() {
            return Err(invalid());
        }
        let kind = match marker {
            "+" => ChatKind::Group,
            "-" => ChatKind::Direct,
            // What `any;+;…` becomes when sent raw in a URL query string.
            " " => {
                return Err(Error::invalid(format!(
                    "invalid chat guid {input:?}: a '+' in a URL query string arrives as a \
                     space; send it URL-encoded, as %2B (any%3B%2B%3B…)"
                ))
                .with("field", "chatGuid")
                .with("chatguid", input))
            }
            _ => return Err(invalid()),
        };
        Ok(ChatGuid {
            kind,
            id: id.to_owned(),
        })
    }

    pub fn group(identifier: &str) -> Self {
        ChatGuid {
            kind: ChatKind::Group,
            id: identifier.to_owned(),
        }
    }

    pub fn direct(address: &Address) -> Self {
        ChatGuid {
            kind: ChatKind::Direct,
            id: address.as_str().to_owned(),
        }
    }

    pub fn kind(&self) -> ChatKind {
        self.kind
    }

    /// The part after the second `;`: a group's `chat_identifier` or a direct chat's address.
    #[inline]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Fails with `operationNotSupported` unless this names a group chat.
    pub fn require_group(&self) -> Result<&str, Error> {
        match self.kind {
            ChatKind::Group => Ok(&self.id),
            ChatKind::Direct => Err(Error::not_supported(format!(
                "{self} is a direct chat; group operations need a group chat"
            ))
            .with("chatguid", self.to_string())),
        }
    }
}

impl ChatGuid {
    /// The wire form's part before [`ChatGuid::id`] (`any;+;` or `any;-;`): with it, an
    /// encoder can write the wire form without building it.
    #[inline]
    pub fn prefix(&self) -> &'static str {
        match self.kind {
            ChatKind::Group => "any;+;",
            ChatKind::Direct => "any;-;",
        }
    }
}

impl fmt::Display for ChatGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())?;
        f.write_str(&self.id)
    }
}

/// [`ChatGuid::parse`], so that `"…".parse::<ChatGuid>()` works:
///
/// ```
/// use imgroups_types::ChatGuid;
///
/// let guid: ChatGuid = "iMessage;+;chat123".parse()?;
/// assert_eq!(guid.to_string(), "any;+;chat123");
/// assert!("not a guid".parse::<ChatGuid>().is_err());
/// # Ok::<(), imgroups_types::Error>(())
/// ```
impl std::str::FromStr for ChatGuid {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        ChatGuid::parse(input)
    }
}

/// The wire form, allocated once at its exact size (`to_string` grows as it formats; this is
/// on the path of every event sent).
impl From<&ChatGuid> for String {
    fn from(guid: &ChatGuid) -> String {
        let prefix = guid.prefix();
        let mut out = String::with_capacity(prefix.len() + guid.id.len());
        out.push_str(prefix);
        out.push_str(&guid.id);
        out
    }
}

/// An iMessage address: a lower-cased email or an E.164 phone number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Address(String);

impl Address {
    /// Parses and normalises one address. Phone numbers may contain spaces, dashes, dots and
    /// parentheses, which are stripped; a number without `+` is rejected because no country is
    /// guessed.
    pub fn parse(input: &str) -> Result<Self, Error> {
        if input.len() > MAX_ADDRESS_BYTES {
            return Err(Error::invalid(format!(
                "address is longer than {MAX_ADDRESS_BYTES} bytes"
            ))
            .with("field", "addresses")
            .because(Reason::TooLong)
            .with("limit", MAX_ADDRESS_BYTES)
            .with("address", excerpt(input, MAX_ECHO_CHARS)));
        }
        let trimmed = input.trim();
        let normalised = if trimmed.contains('@') {
            parse_email(trimmed)
        } else {
            parse_phone(trimmed)
        };
        normalised.map(Address).ok_or_else(|| {
            Error::invalid(format!(
                "{input:?} is not an email address or an e.164 phone number"
            ))
            .with("field", "addresses")
            .with("address", input)
        })
    }

    /// Parses a list of addresses from a request: non-empty, each valid, no duplicates after
    /// normalisation. Order is kept. Linear in the list's length; callers cap the length
    /// first (see `Command`), so a huge list is refused before any entry is parsed.
    pub fn parse_list(inputs: &[String]) -> Result<Vec<Self>, Error> {
        if inputs.is_empty() {
            return Err(Error::invalid("addresses must not be empty").with("field", "addresses"));
        }
        let mut out: Vec<Address> = Vec::with_capacity(inputs.len());
        // Each normalised address is short (capped above): a copy in the set is cheap.
        let mut seen: HashSet<Address> = HashSet::with_capacity(inputs.len());
        for input in inputs {
            let address = Address::parse(input)?;
            if !seen.insert(address.clone()) {
                return Err(
                    Error::invalid(format!("address {address} is listed more than once"))
                        .with("field", "addresses")
                        .with("address", input)
                        .because(Reason::Duplicate),
                );
            }
            out.push(address);
        }
        Ok(out)
    }

    /// Wraps a value that was validated before it was stored.
    #[inline]
    pub fn from_trusted(value: String) -> Self {
        Address(value)
    }

    pub fn into_string(self) -> String {
        self.0
    }

    #[inline]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_phone(&self) -> bool {
        self.0.starts_with('+')
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// [`Address::parse`], so that `"…".parse::<Address>()` works:
///
/// ```
/// use imgroups_types::Address;
///
/// let phone: Address = "+1 (555) 123-4567".parse()?;
/// assert_eq!(phone.as_str(), "+15551234567");
/// let email: Address = "Bob@Example.com".parse()?;
/// assert_eq!(email.as_str(), "bob@example.com");
/// assert!("bob".parse::<Address>().is_err());
/// # Ok::<(), imgroups_types::Error>(())
/// ```
impl std::str::FromStr for Address {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        Address::parse(input)
    }
}

fn parse_email(input: &str) -> Option<String> {
    let (local, domain) = input.split_once('@')?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    (local_ok && domain_ok).then(|| input.to_ascii_lowercase())
}

fn parse_phone(input: &str) -> Option<String> {
    let compact: String = input
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = compact.strip_prefix('+')?;
    let valid = (8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    valid.then_some(compact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_normalise_prefixes() {
        for input in [
            "any;+;chat123",
            "iMessage;+;chat123",
            "SMS;+;chat123",
            " RCS;+;chat123 ",
        ] {
            let guid = ChatGuid::parse(input).unwrap();
            assert_eq!(guid.to_string(), "any;+;chat123");
            assert_eq!(guid.kind(), ChatKind::Group);
        }
        let direct = ChatGuid::parse("any;-;+15551234567").unwrap();
        assert_eq!(direct.kind(), ChatKind::Direct);
        assert_eq!(direct.id(), "+15551234567");
    }

    /// The normal form's shortcut in `parse` reads a GUID as the general rules read the same
    /// GUID under another prefix (which takes the general path).
    #[test]
    fn the_normal_form_reads_as_any_other_prefix() {
        for id in [
            "chat1",
            "chat1 \t",
            "",
            " ",
            "a;b",
            "a b",
            "+15551234567 ",
            ";",
        ] {
            for (normal, other) in [("any;+;", "iMessage;+;"), ("any;-;", "SMS;-;")] {
                let fast = ChatGuid::parse(&format!("{normal}{id}"));
                let general = ChatGuid::parse(&format!("{other}{id}"));
                match (fast, general) {
                    (Ok(fast), Ok(general)) => assert_eq!(fast, general, "{normal}{id:?}"),
                    (Err(_), Err(_)) => {}
                    (fast, general) => panic!("{normal}{id:?}: {fast:?} but {general:?}"),
                }
            }
        }
    }

    #[test]
    fn malformed_guids_are_rejected_naming_the_field() {
        for input in [
            "",
            "any",
            "any;+;",
            "any;*;x",
            "whatsapp;+;x",
            "chat123",
            "any;+",
        ] {
            let err = ChatGuid::parse(input).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::InvalidArgument, "{input}");
            assert!(err
                .context
                .iter()
                .any(|(k, v)| k == "field" && v == "chatGuid"));
        }
    }

    #[test]
    fn a_plus_lost_in_a_query_string_is_explained() {
        let err = ChatGuid::parse("any; ;chat123").unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::InvalidArgument);
        assert!(err.message.contains("%2B"), "{}", err.message);
        assert_eq!(err.context_value("field"), Some("chatGuid"));
    }

    #[test]
    fn direct_guid_is_not_a_group() {
        let err = ChatGuid::parse("any;-;a@b.co")
            .unwrap()
            .require_group()
            .unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::OperationNotSupported);
    }

    #[test]
    fn addresses_normalise() {
        assert_eq!(
            Address::parse("Alice@Example.COM").unwrap().as_str(),
            "alice@example.com"
        );
        assert_eq!(
            Address::parse("+1 (555) 123-4567").unwrap().as_str(),
            "+15551234567"
        );
        assert_eq!(
            Address::parse("+44.20.7946.0018").unwrap().as_str(),
            "+442079460018"
        );
    }

    #[test]
    fn bad_addresses_are_rejected_naming_the_input() {
        for input in [
            "",
            "bob",
            "5551234567",
            "+0123456789",
            "+1234",
            "12345",
            "+1555123456789012",
            "a@b",
            "@example.com",
            "a@@example.com",
            "a b@example.com",
            "a@example.c",
            "a@-x.com",
        ] {
            let err = Address::parse(input).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::InvalidArgument, "{input}");
            assert!(err
                .context
                .iter()
                .any(|(k, v)| k == "address" && v == input));
        }
    }

    #[test]
    fn lists_reject_duplicates_after_normalisation() {
        let err = Address::parse_list(&["a@x.com".into(), "A@X.com".into()]).unwrap_err();
        assert!(err.message.contains("more than once"));
        let err = Address::parse_list(&[]).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::InvalidArgument);
    }

    #[test]
    fn overlong_inputs_are_refused_before_parsing_with_a_short_echo() {
        let guid = format!("any;+;chat{}", "1".repeat(100_000));
        let err = ChatGuid::parse(&guid).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::InvalidArgument);
        assert_eq!(err.context_value("field"), Some("chatGuid"));
        assert_eq!(err.context_value("reason"), Some("tooLong"));
        assert_eq!(err.context_value("limit"), Some("512"));
        assert!(err.context_value("chatguid").unwrap().chars().count() <= MAX_ECHO_CHARS + 1);
        assert!(err.message.len() < 100, "{}", err.message);
        // Exactly at the limit it is parsed as usual.
        let at_limit = format!("any;+;{}", "c".repeat(MAX_CHAT_GUID_BYTES - 6));
        assert!(ChatGuid::parse(&at_limit).is_ok());

        let address = format!("{}@example.com", "a".repeat(10_000));
        let err = Address::parse(&address).unwrap_err();
        assert_eq!(err.context_value("reason"), Some("tooLong"));
        assert_eq!(err.context_value("field"), Some("addresses"));
        assert!(err.context_value("address").unwrap().len() < 200);
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Any string is either a GUID that prints back normalised, or an invalidArgument
        /// naming the field, with a bounded echo.
        #[test]
        fn any_guid_input_parses_or_is_refused_precisely(input in ".{0,64}|(any|iMessage|SMS|RCS);[-+ ];.{0,40}") {
            match ChatGuid::parse(&input) {
                Ok(guid) => {
                    let again = ChatGuid::parse(&guid.to_string()).unwrap();
                    prop_assert_eq!(again, guid);
                }
                Err(err) => {
                    prop_assert_eq!(err.kind, crate::ErrorKind::InvalidArgument);
                    prop_assert_eq!(err.context_value("field"), Some("chatGuid"));
                }
            }
        }

        /// Valid GUIDs round-trip through every accepted prefix.
        #[test]
        fn valid_guids_round_trip(prefix in "any|iMessage|SMS|RCS", digits in "[0-9]{1,20}") {
            let guid = ChatGuid::parse(&format!("{prefix};+;chat{digits}")).unwrap();
            prop_assert_eq!(guid.to_string(), format!("any;+;chat{digits}"));
            prop_assert_eq!(guid.kind(), ChatKind::Group);
        }

        /// Any string is an address whose normal form is a fixed point, or an
        /// invalidArgument naming it.
        #[test]
        fn any_address_input_parses_or_is_refused_precisely(
            input in ".{0,40}|[a-zA-Z0-9.+_-]{1,20}@[a-zA-Z0-9.-]{1,20}|\\+[0-9 ().-]{0,20}",
        ) {
            match Address::parse(&input) {
                Ok(address) => {
                    let again = Address::parse(address.as_str()).unwrap();
                    prop_assert_eq!(again, address);
                }
                Err(err) => {
                    prop_assert_eq!(err.kind, crate::ErrorKind::InvalidArgument);
                    prop_assert_eq!(err.context_value("field"), Some("addresses"));
                    prop_assert!(err.context_value("address").is_some());
                }
            }
        }

        /// Lists: valid entries with duplicates are refused naming `duplicate`; without,
        /// the order is kept.
        #[test]
        fn address_lists_keep_order_and_refuse_duplicates(
            picks in proptest::collection::vec(0usize..40, 1..31),
        ) {
            let inputs: Vec<String> = picks.iter().map(|i| format!("p{i}@example.com")).collect();
            let distinct = picks.iter().collect::<HashSet<_>>().len() == picks.len();
            match Address::parse_list(&inputs) {
                Ok(list) => {
                    prop_assert!(distinct);
                    let back: Vec<&str> = list.iter().map(Address::as_str).collect();
                    prop_assert_eq!(back, inputs.iter().map(String::as_str).collect::<Vec<_>>());
                }
                Err(err) => {
                    prop_assert!(!distinct);
                    prop_assert_eq!(err.context_value("reason"), Some("duplicate"));
                }
            }
        }
    }
}
