//! Writes as the engine receives them: validated against everything that does not depend on
//! state, so malformed input never reaches a store or a backend.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Reason, Result};
use crate::ids::{Address, ChatGuid};
use crate::image;
use crate::model::{InitialMessage, Reaction, TextFormat};
use crate::text;

/// An iMessage group holds at most this many members, the local account included.
pub const MAX_GROUP_MEMBERS: usize = 32;
/// The error of a group that would hold more than [`MAX_GROUP_MEMBERS`]: a request naming too
/// many addresses is refused here, one that would overflow the group's current members by the
/// rules; both answer the same.
pub(crate) fn group_full() -> Error {
    Error::precondition(
        Reason::GroupFull,
        format!("a group holds at most {MAX_GROUP_MEMBERS} members including you"),
    )
    .with("limit", MAX_GROUP_MEMBERS)
}

/// The most addresses one request can name: everyone in a group but me.
pub const MAX_OTHER_MEMBERS: usize = MAX_GROUP_MEMBERS - 1;
/// Longest display name accepted, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = text::DISPLAY_NAME.max_chars;
/// Longest message text accepted, in characters. Messages splits longer texts; 20,000 is
/// well past what a bot answer needs and keeps one message far below the request size limit.
pub const MAX_TEXT_CHARS: usize = 20_000;
/// Longest subject line accepted, in characters.
pub const MAX_SUBJECT_CHARS: usize = 1_000;
/// Longest effect identifier accepted, in bytes (`com.apple.MobileSMS.expressivesend.…`).
pub const MAX_EFFECT_ID_BYTES: usize = 200;
/// Longest message GUID accepted, in bytes (Apple's are 36; some carry a `p:0/` prefix).
pub const MAX_MESSAGE_GUID_BYTES: usize = 128;
/// Most formatting ranges on one message.
pub const MAX_FORMATTING_RANGES: usize = 256;

/// Limits that operators may configure.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_icon_bytes: usize,
    /// Most pixels (`width × height`) an icon's header may declare. Small files can declare
    /// huge images (a PNG header claiming 100000×100000 is 33 bytes), and whoever decodes the
    /// icon later — every member's device, a thumbnailer — allocates for the declared size.
    pub max_icon_pixels: u64,
    /// Longest side an icon's header may declare, in pixels.
    pub max_icon_side: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_icon_bytes: 10 * 1024 * 1024,
            max_icon_pixels: 50_000_000,
            max_icon_side: 16_384,
        }
    }
}

impl Limits {
    /// Refuses an icon whose declared dimensions are beyond these limits. An icon that
    /// declares none passes ([`image::inspect`] accepts none such).
    pub fn check_icon(&self, image: &image::Image) -> Result<()> {
        let Some(size) = image.size else {
            return Ok(());
        };
        let too_large = |message: String, limit: u64| {
            Error::invalid(message)
                .with("field", "data")
                .because(Reason::ImageTooLarge)
                .with("limit", limit)
                .with("width", size.width)
                .with("height", size.height)
        };
        let side = size.width.max(size.height);
        if side > self.max_icon_side {
            return Err(too_large(
                format!(
                    "icon is {}x{} pixels; a side may be at most {} pixels",
                    size.width, size.height, self.max_icon_side
                ),
                u64::from(self.max_icon_side),
            ));
        }
        if size.pixels > self.max_icon_pixels {
            return Err(too_large(
                format!(
                    "icon is {}x{} = {} pixels; at most {} pixels are accepted",
                    size.width, size.height, size.pixels, self.max_icon_pixels
                ),
                self.max_icon_pixels,
            ));
        }
        Ok(())
    }
}

/// A write, validated against everything that does not depend on state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A change to an existing group.
    Group { chat: ChatGuid, mutation: Mutation },
    /// `chats.create`: a direct chat with one address, or a group with two or more.
    CreateChat {
        addresses: Vec<Address>,
        message: Option<InitialMessage>,
    },
    /// Something said or done in a chat (a group, or a direct chat with one address).
    Message { chat: ChatGuid, op: MessageOp },
}

/// What is said or done in a chat: a new message, or a change to one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageOp {
    Send(NewMessage),
    /// A tapback on `message`: set (`true`) or removed.
    React {
        message: String,
        reaction: Reaction,
        set: bool,
    },
    Edit {
        message: String,
        text: String,
    },
    Unsend {
        message: String,
    },
    /// Everything received in the chat so far is read.
    MarkRead,
    /// A new background for the chat, shared by everyone in it: build it with
    /// [`Command::set_background`].
    SetBackground {
        data: Vec<u8>,
        mime: String,
        hash: Vec<u8>,
    },
    RemoveBackground,
    /// Share my name and photo with the chat.
    ShareContactInfo,
}

/// A new text message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    pub text: String,
    pub subject: Option<String>,
    pub effect_id: Option<String>,
    /// The GUID of the message this one answers.
    pub reply_to: Option<String>,
    pub formatting: Vec<TextFormat>,
}

impl MessageOp {
    /// The RPC that makes this change; idempotency keys are scoped to it.
    pub fn method(&self) -> &'static str {
        match self {
            MessageOp::Send(_) => "SendTextMessage",
            MessageOp::React { .. } => "SetReaction",
            MessageOp::Edit { .. } => "EditMessage",
            MessageOp::Unsend { .. } => "UnsendMessage",
            MessageOp::MarkRead => "MarkChatRead",
            MessageOp::SetBackground { .. } => "SetBackground",
            MessageOp::RemoveBackground => "RemoveBackground",
            MessageOp::ShareContactInfo => "ShareContactInfo",
        }
    }
}

/// Checks a message's text: not blank, at most [`MAX_TEXT_CHARS`], no control characters but
/// line breaks and tabs. `field` names it in errors (`text`, `newText`).
pub fn message_text(input: &str, field: &str) -> Result<String> {
    if input.trim().is_empty() {
        return Err(Error::invalid(format!("{field} is empty"))
            .with("field", field)
            .because(Reason::Empty));
    }
    if input.len() > MAX_TEXT_CHARS * 4 || input.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::invalid(format!(
            "{field} is longer than {MAX_TEXT_CHARS} characters"
        ))
        .with("field", field)
        .because(Reason::TooLong)
        .with("limit", MAX_TEXT_CHARS));
    }
    if let Some(c) = input
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(Error::invalid(format!(
            "{field} contains the control character U+{:04X}",
            u32::from(c)
        ))
        .with("field", field)
        .because(Reason::ControlCharacter)
        .with("character", format!("U+{:04X}", u32::from(c))));
    }
    Ok(input.to_owned())
}

/// Checks a message GUID given by a caller (its existence is checked against state later).
pub fn message_guid(input: &str, field: &str) -> Result<String> {
    let guid = input.trim();
    if guid.is_empty() {
        return Err(Error::invalid(format!("{field} is required"))
            .with("field", field)
            .because(Reason::Empty));
    }
    if guid.len() > MAX_MESSAGE_GUID_BYTES {
        return Err(Error::invalid(format!(
            "{field} is longer than {MAX_MESSAGE_GUID_BYTES} bytes"
        ))
        .with("field", field)
        .because(Reason::TooLong)
        .with("limit", MAX_MESSAGE_GUID_BYTES));
    }
    Ok(guid.to_owned())
}

fn optional_text(input: Option<String>, field: &str, max_chars: usize) -> Result<Option<String>> {
    let Some(value) = input.filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > max_chars {
        return Err(
            Error::invalid(format!("{field} is longer than {max_chars} characters"))
                .with("field", field)
                .because(Reason::TooLong)
                .with("limit", max_chars),
        );
    }
    if value.chars().any(char::is_control) {
        return Err(
            Error::invalid(format!("{field} contains a control character"))
                .with("field", field)
                .because(Reason::ControlCharacter),
        );
    }
    Ok(Some(value))
}

impl NewMessage {
    /// A validated new message: `text` as [`message_text`], the optional parts bounded, and
    /// every formatting range inside the text (UTF-16 units, as the wire counts).
    pub fn new(
        text: &str,
        subject: Option<String>,
        effect_id: Option<String>,
        reply_to: Option<String>,
        formatting: Vec<TextFormat>,
    ) -> Result<Self> {
        let text = message_text(text, "text")?;
        let subject = optional_text(subject, "subject", MAX_SUBJECT_CHARS)?;
        let effect_id = optional_text(effect_id, "effectId", MAX_EFFECT_ID_BYTES)?;
        let reply_to = match reply_to.filter(|g| !g.trim().is_empty()) {
            Some(guid) => Some(message_guid(&guid, "replyTo")?),
            None => None,
        };
        if formatting.len() > MAX_FORMATTING_RANGES {
            return Err(Error::invalid(format!(
                "at most {MAX_FORMATTING_RANGES} formatting ranges are accepted"
            ))
            .with("field", "formatting")
            .because(Reason::TooLong)
            .with("limit", MAX_FORMATTING_RANGES));
        }
        let units = text.encode_utf16().count() as u64;
        for range in &formatting {
            let end = u64::from(range.start) + u64::from(range.length);
            if range.length == 0 || end > units {
                return Err(Error::invalid(format!(
                    "formatting range {}+{} is outside the text ({units} UTF-16 units)",
                    range.start, range.length
                ))
                .with("field", "formatting")
                .because(Reason::OutOfRange)
                .with("limit", units));
            }
            if range.style.trim().is_empty() || range.style.len() > 64 {
                return Err(Error::invalid("a formatting range needs a style name")
                    .with("field", "formatting"));
            }
        }
        Ok(NewMessage {
            text,
            subject,
            effect_id,
            reply_to,
            formatting,
        })
    }
}

/// One change to a group's state, by whoever makes it: an account through the API, a person
/// in the simulated network, or someone on a real device whose change was observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mutation {
    SetDisplayName(String),
    AddParticipants(Vec<Address>),
    RemoveParticipants(Vec<Address>),
    /// The actor leaves.
    Leave,
    /// A new icon: build it with [`Mutation::set_icon`].
    SetIcon {
        data: Vec<u8>,
        /// Detected from the bytes.
        mime: String,
        /// SHA-256 of `data`, computed once, outside the store's transaction.
        hash: Vec<u8>,
    },
    RemoveIcon,
}

impl Mutation {
    /// A new icon: the type is detected from the bytes (never trusted from a caller), and an
    /// unknown image, or one whose structure is not what its type requires, is refused
    /// ([`image::inspect`]).
    pub fn set_icon(data: Vec<u8>) -> Result<Self> {
        let mime = image::inspect(&data)?.kind.mime().to_owned();
        let hash = Sha256::digest(&data).to_vec();
        Ok(Mutation::SetIcon { data, mime, hash })
    }

    /// The RPC that makes this change; idempotency keys are scoped to it.
    pub fn method(&self) -> &'static str {
        match self {
            Mutation::SetDisplayName(_) => "SetDisplayName",
            Mutation::AddParticipants(_) => "AddParticipants",
            Mutation::RemoveParticipants(_) => "RemoveParticipants",
            Mutation::Leave => "LeaveGroup",
            Mutation::SetIcon { .. } => "SetIcon",
            Mutation::RemoveIcon => "RemoveIcon",
        }
    }
}

impl Command {
    pub fn set_display_name(chat: &str, name: &str) -> Result<Self> {
        let chat = group_guid(chat)?;
        Ok(Self::group(
            chat,
            Mutation::SetDisplayName(display_name(name)?),
        ))
    }

    pub fn add_participants(chat: &str, addresses: &[String]) -> Result<Self> {
        let chat = group_guid(chat)?;
        // A longer list cannot fit in any group (I am in it too): refused before any entry is
        // parsed, with the answer a merely too-long list gets from the group's state.
        if addresses.len() > MAX_OTHER_MEMBERS {
            return Err(group_full()
                .with("field", "addresses")
                .with("chatguid", &chat));
        }
        let addresses = Address::parse_list(addresses)?;
        Ok(Self::group(chat, Mutation::AddParticipants(addresses)))
    }

    pub fn remove_participants(chat: &str, addresses: &[String]) -> Result<Self> {
        let chat = group_guid(chat)?;
        // No group has more members than this besides me, so a longer list always names
        // someone who is not in the group; it is malformed, whatever the group's state.
        if addresses.len() > MAX_OTHER_MEMBERS {
            return Err(Error::invalid(format!(
                "at most {MAX_OTHER_MEMBERS} addresses can be removed at once: a group holds \
                 at most {MAX_GROUP_MEMBERS} members including you"
            ))
            .with("field", "addresses")
            .because(Reason::TooLong)
            .with("limit", MAX_OTHER_MEMBERS));
        }
        let addresses = Address::parse_list(addresses)?;
        Ok(Self::group(chat, Mutation::RemoveParticipants(addresses)))
    }

    pub fn leave(chat: &str) -> Result<Self> {
        Ok(Self::group(group_guid(chat)?, Mutation::Leave))
    }

    pub fn set_icon(chat: &str, data: Vec<u8>, limits: &Limits) -> Result<Self> {
        let chat = group_guid(chat)?;
        let (data, mime, hash) = checked_image(data, limits, "icon")?;
        Ok(Self::group(chat, Mutation::SetIcon { data, mime, hash }))
    }

    pub fn remove_icon(chat: &str) -> Result<Self> {
        Ok(Self::group(group_guid(chat)?, Mutation::RemoveIcon))
    }

    pub fn create_chat(addresses: &[String], message: Option<InitialMessage>) -> Result<Self> {
        // Checked before any entry is parsed, so that a huge list costs nothing.
        if addresses.len() > MAX_OTHER_MEMBERS {
            return Err(group_full().with("field", "addresses"));
        }
        let addresses = Address::parse_list(addresses)?;
        Ok(Command::CreateChat { addresses, message })
    }

    /// `messages.sendText`.
    pub fn send_text(chat: &str, message: NewMessage) -> Result<Self> {
        Self::message(chat, MessageOp::Send(message))
    }

    /// `messages.setReaction`.
    pub fn react(chat: &str, message: &str, reaction: Reaction, set: bool) -> Result<Self> {
        if let Reaction::Emoji(emoji) = &reaction {
            if emoji.trim().is_empty()
                || emoji.chars().count() > 16
                || emoji.chars().any(char::is_control)
            {
                return Err(Error::invalid("an emoji tapback needs one emoji")
                    .with("field", "reaction.emoji"));
            }
        }
        let message = message_guid(message, "messageGuid")?;
        Self::message(
            chat,
            MessageOp::React {
                message,
                reaction,
                set,
            },
        )
    }

    /// `messages.edit`.
    pub fn edit(chat: &str, message: &str, text: &str) -> Result<Self> {
        let message = message_guid(message, "messageGuid")?;
        let text = message_text(text, "newText")?;
        Self::message(chat, MessageOp::Edit { message, text })
    }

    /// `messages.unsend`.
    pub fn unsend(chat: &str, message: &str) -> Result<Self> {
        let message = message_guid(message, "messageGuid")?;
        Self::message(chat, MessageOp::Unsend { message })
    }

    /// `chats.markRead`.
    pub fn mark_read(chat: &str) -> Result<Self> {
        Self::message(chat, MessageOp::MarkRead)
    }

    /// `chats.setBackground`: an image checked like a group icon (type from the bytes,
    /// structure, size and dimensions within `limits`).
    pub fn set_background(chat: &str, data: Vec<u8>, limits: &Limits) -> Result<Self> {
        let chat = ChatGuid::parse(chat)?;
        let (data, mime, hash) = checked_image(data, limits, "background")?;
        Ok(Command::Message {
            chat,
            op: MessageOp::SetBackground { data, mime, hash },
        })
    }

    /// `chats.removeBackground`.
    pub fn remove_background(chat: &str) -> Result<Self> {
        Self::message(chat, MessageOp::RemoveBackground)
    }

    /// `chats.shareContactInfo`.
    pub fn share_contact_info(chat: &str) -> Result<Self> {
        Self::message(chat, MessageOp::ShareContactInfo)
    }

    fn message(chat: &str, op: MessageOp) -> Result<Self> {
        Ok(Command::Message {
            chat: ChatGuid::parse(chat)?,
            op,
        })
    }

    fn group(chat: ChatGuid, mutation: Mutation) -> Self {
        Command::Group { chat, mutation }
    }

    /// The RPC this command came from; idempotency keys are scoped to it.
    pub fn method(&self) -> &'static str {
        match self {
            Command::Group { mutation, .. } => mutation.method(),
            Command::CreateChat { .. } => "CreateChat",
            Command::Message { op, .. } => op.method(),
        }
    }

    /// A digest of the normalised request, so that a reused idempotency key can be told apart
    /// from a genuine retry. Stored with each key: changing what goes in (or its order) would
    /// turn retries of requests made before an upgrade into `duplicateMessage`.
    pub fn fingerprint(&self) -> Vec<u8> {
        let mut hash = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
        field(self.method().as_bytes());
        match self {
            Command::Group { chat, mutation } => {
                field(chat.to_string().as_bytes());
                match mutation {
                    Mutation::SetDisplayName(name) => field(name.as_bytes()),
                    Mutation::AddParticipants(addresses)
                    | Mutation::RemoveParticipants(addresses) => {
                        addresses.iter().for_each(|a| field(a.as_str().as_bytes()))
                    }
                    Mutation::Leave | Mutation::RemoveIcon => {}
                    Mutation::SetIcon { hash, .. } => field(hash),
                }
            }
            Command::CreateChat { addresses, message } => {
                addresses.iter().for_each(|a| field(a.as_str().as_bytes()));
                if let Some(m) = message {
                    field(m.text.as_bytes());
                    field(m.subject.as_deref().unwrap_or("\0none").as_bytes());
                    field(m.effect_id.as_deref().unwrap_or("\0none").as_bytes());
                }
            }
            Command::Message { chat, op } => {
                field(chat.to_string().as_bytes());
                let none = "\0none";
                match op {
                    MessageOp::Send(m) => {
                        field(m.text.as_bytes());
                        field(m.subject.as_deref().unwrap_or(none).as_bytes());
                        field(m.effect_id.as_deref().unwrap_or(none).as_bytes());
                        field(m.reply_to.as_deref().unwrap_or(none).as_bytes());
                        for f in &m.formatting {
                            field(f.style.as_bytes());
                            field(&f.start.to_le_bytes());
                            field(&f.length.to_le_bytes());
                        }
                    }
                    MessageOp::React {
                        message,
                        reaction,
                        set,
                    } => {
                        field(message.as_bytes());
                        field(reaction.to_string().as_bytes());
                        field(&[u8::from(*set)]);
                    }
                    MessageOp::Edit { message, text } => {
                        field(message.as_bytes());
                        field(text.as_bytes());
                    }
                    MessageOp::Unsend { message } => field(message.as_bytes()),
                    MessageOp::SetBackground { hash, .. } => field(hash),
                    MessageOp::MarkRead
                    | MessageOp::RemoveBackground
                    | MessageOp::ShareContactInfo => {}
                }
            }
        }
        hash.finalize().to_vec()
    }
}

/// An image given for a chat (a group's icon, a chat's background), checked: at most
/// `limits.max_icon_bytes`, a known type by its bytes with the structure that type requires,
/// dimensions within the limits. Returns the bytes, the MIME type and the SHA-256. `what`
/// names it in errors.
fn checked_image(data: Vec<u8>, limits: &Limits, what: &str) -> Result<(Vec<u8>, String, Vec<u8>)> {
    if data.len() > limits.max_icon_bytes {
        return Err(Error::invalid(format!(
            "{what} is larger than {} bytes",
            limits.max_icon_bytes
        ))
        .with("field", "data")
        .because(Reason::TooLarge)
        .with("limit", limits.max_icon_bytes));
    }
    let image = image::inspect(&data)?;
    limits.check_icon(&image)?;
    let hash = Sha256::digest(&data).to_vec();
    let mime = image.kind.mime().to_owned();
    Ok((data, mime, hash))
}

/// A display name as stored: the input policy's rules for given text ([`text`]).
fn display_name(name: &str) -> Result<String> {
    text::DISPLAY_NAME.check(name).map(str::to_owned)
}

/// Parses a GUID for a group method: a direct chat is refused before anything is read.
pub(crate) fn group_guid(input: &str) -> Result<ChatGuid> {
    let guid = ChatGuid::parse(input)?;
    guid.require_group()?;
    Ok(guid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprint is stored with idempotency keys, so it must not drift: these digests
    /// were computed by the code that wrote the records a running server may still hold.
    #[test]
    fn fingerprints_are_stable() {
        let rename = Command::set_display_name("any;+;chat1", " Weekend ").unwrap();
        let leave = Command::leave("iMessage;+;chat1").unwrap();
        assert_eq!(
            hex(&rename.fingerprint()),
            "5355af3d044bc5acb8878980615449af2e55b4f9882a259c52487c51af22868e"
        );
        assert_ne!(rename.fingerprint(), leave.fingerprint());
        assert_eq!(
            leave.fingerprint(),
            Command::leave("any;+;chat1").unwrap().fingerprint()
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn reason(err: &Error) -> (crate::ErrorKind, Option<&str>, Option<&str>) {
        (
            err.kind,
            err.context_value("reason"),
            err.context_value("limit"),
        )
    }

    #[test]
    fn address_lists_longer_than_any_group_are_refused_before_parsing() {
        use crate::ErrorKind::{InvalidArgument, PreconditionFailed};
        // Not even valid addresses: the length alone decides, without parsing 100,000 entries.
        let huge: Vec<String> = (0..100_000)
            .map(|i| format!("not an address {i}"))
            .collect();
        let err = Command::add_participants("any;+;chat1", &huge).unwrap_err();
        assert_eq!(
            reason(&err),
            (PreconditionFailed, Some("groupFull"), Some("32"))
        );
        let err = Command::create_chat(&huge, None).unwrap_err();
        assert_eq!(
            reason(&err),
            (PreconditionFailed, Some("groupFull"), Some("32"))
        );
        let err = Command::remove_participants("any;+;chat1", &huge).unwrap_err();
        assert_eq!(reason(&err), (InvalidArgument, Some("tooLong"), Some("31")));
        assert_eq!(err.context_value("field"), Some("addresses"));

        // At the bound, entries are parsed (and the group's state decides later).
        let others: Vec<String> = (0..MAX_OTHER_MEMBERS)
            .map(|i| format!("p{i}@example.com"))
            .collect();
        assert!(Command::add_participants("any;+;chat1", &others).is_ok());
        assert!(Command::remove_participants("any;+;chat1", &others).is_ok());
        assert!(Command::create_chat(&others, None).is_ok());
        let mut one_more = others.clone();
        one_more.push("late@example.com".into());
        let err = Command::create_chat(&one_more, None).unwrap_err();
        assert_eq!(
            reason(&err),
            (PreconditionFailed, Some("groupFull"), Some("32"))
        );
    }

    #[test]
    fn names_with_control_or_override_characters_are_refused() {
        for name in [
            "evil\u{1b}[2J",
            "nul\0name",
            "del\u{7f}",
            "two\nlines",
            "tab\there",
            "c1\u{9b}31m",
            "line\u{2028}separator",
            "\u{202e}txt.exe",
            "isolate\u{2066}x\u{2069}",
        ] {
            let err = Command::set_display_name("any;+;chat1", name).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::InvalidArgument, "{name:?}");
            assert_eq!(err.context_value("field"), Some("displayName"));
            assert_eq!(err.context_value("reason"), Some("controlCharacter"));
            assert!(err.context_value("character").unwrap().starts_with("U+"));
        }
        // Direction marks, joiners, and whitespace that trimming removes are fine.
        for name in [
            "\u{200f}שלום 2024",
            "family \u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}",
            "\n Weekend \t",
        ] {
            assert!(
                Command::set_display_name("any;+;chat1", name).is_ok(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn icons_declaring_absurd_dimensions_are_refused() {
        use crate::testing::png_of;
        let limits = Limits::default();
        let err =
            Command::set_icon("any;+;chat1", png_of(100_000, 100_000, &[]), &limits).unwrap_err();
        assert_eq!(err.context_value("reason"), Some("imageTooLarge"));
        assert_eq!(err.context_value("limit"), Some("16384"));
        assert_eq!(err.context_value("width"), Some("100000"));
        // Each side allowed, the product not.
        let err =
            Command::set_icon("any;+;chat1", png_of(10_000, 10_000, &[]), &limits).unwrap_err();
        assert_eq!(err.context_value("reason"), Some("imageTooLarge"));
        assert_eq!(err.context_value("limit"), Some("50000000"));
        assert!(Command::set_icon("any;+;chat1", png_of(16_384, 3_000, &[]), &limits).is_ok());
        let Command::Group {
            mutation: Mutation::SetIcon { mime, .. },
            ..
        } = Command::set_icon("any;+;chat1", png_of(512, 512, &[]), &limits).unwrap()
        else {
            panic!("a set-icon command");
        };
        assert_eq!(mime, "image/png");
    }
}
