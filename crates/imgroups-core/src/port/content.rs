//! A message's content in a compact binary form, for stores that keep it once per message
//! rather than once per member ([`crate::port::Tx::deliver_message`]).
//!
//! The content is a [`Message`] without what is each member's own: its GUID (a store keeps it
//! beside), chat, `is_from_me` and read time. The sender is kept as the content's (who sent
//! it); a copy that is its account's own shows none ([`copy`]).
//!
//! Stable: stores keep these bytes on disk. The first byte is the format's version; fields
//! follow in a fixed order as LEB128 varints (signed ones zig-zagged) and length-prefixed
//! UTF-8, optional ones behind a bit of one flags varint. A later version may add fields
//! after these, behind new flag bits; a reader refuses (`None`) a version it does not know.

use crate::ids::{Address, ChatGuid};
use crate::model::{AppliedReaction, Message, Reaction, TextFormat, Timestamp};

const VERSION: u8 = 1;

const SUBJECT: u64 = 1;
const IS_SENT: u64 = 1 << 1;
const SENDER: u64 = 1 << 2;
const EFFECT: u64 = 1 << 3;
const REPLY_TO: u64 = 1 << 4;
const EDITED: u64 = 1 << 5;
const RETRACTED: u64 = 1 << 6;
const KNOWN: u64 = (1 << 7) - 1;

/// The content of `message` (its GUID, chat, `is_from_me` and `date_read` are left out).
pub fn encode(message: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + message.text.len());
    out.push(VERSION);
    let flag = |on: bool, bit: u64| if on { bit } else { 0 };
    let flags = flag(message.subject.is_some(), SUBJECT)
        | flag(message.is_sent, IS_SENT)
        | flag(message.sender.is_some(), SENDER)
        | flag(message.effect_id.is_some(), EFFECT)
        | flag(message.reply_to.is_some(), REPLY_TO)
        | flag(message.date_edited.is_some(), EDITED)
        | flag(message.date_retracted.is_some(), RETRACTED);
    varint(&mut out, flags);
    signed(&mut out, message.date_created.0);
    text(&mut out, &message.text);
    for value in [
        message.subject.as_deref(),
        message.sender.as_ref().map(Address::as_str),
        message.effect_id.as_deref(),
        message.reply_to.as_deref(),
    ]
    .into_iter()
    .flatten()
    {
        text(&mut out, value);
    }
    if let Some(at) = message.date_edited {
        signed(&mut out, at.0);
    }
    varint(&mut out, u64::from(message.edits));
    if let Some(at) = message.date_retracted {
        signed(&mut out, at.0);
    }
    varint(&mut out, message.formatting.len() as u64);
    for span in &message.formatting {
        text(&mut out, &span.style);
        varint(&mut out, u64::from(span.start));
        varint(&mut out, u64::from(span.length));
        match &span.effect_name {
            Some(name) => {
                out.push(1);
                text(&mut out, name);
            }
            None => out.push(0),
        }
    }
    varint(&mut out, message.reactions.len() as u64);
    for applied in &message.reactions {
        let kind = match &applied.reaction {
            Reaction::Love => 0,
            Reaction::Like => 1,
            Reaction::Dislike => 2,
            Reaction::Laugh => 3,
            Reaction::Emphasize => 4,
            Reaction::Question => 5,
            Reaction::Emoji(_) => 6,
        };
        out.push(kind | if applied.is_from_me { 0x80 } else { 0 });
        if let Reaction::Emoji(emoji) = &applied.reaction {
            text(&mut out, emoji);
        }
        text(&mut out, applied.sender.as_str());
        signed(&mut out, applied.date_created.0);
    }
    out
}

/// The content in `bytes` as a message with an empty GUID, no chat, not its reader's own and
/// unread; `None` if the bytes are not content this version reads.
pub fn decode(bytes: &[u8]) -> Option<Message> {
    let mut message = Message::default();
    decode_into(bytes, &mut message)?;
    Some(message)
}

/// [`decode`] into `message`: every field of the content is set, reusing the strings and
/// vectors `message` has (a catch-up reads a million messages, one after another, into the
/// same one); its GUID, chat, `is_from_me` and `date_read` are left as they are. `None` if the
/// bytes are not content this version reads (`message` is then partly overwritten).
pub fn decode_into(bytes: &[u8], message: &mut Message) -> Option<()> {
    let mut r = Bytes(bytes);
    if r.byte()? != VERSION {
        return None;
    }
    let flags = r.varint()?;
    if flags & !KNOWN != 0 {
        return None;
    }
    let has = |bit: u64| flags & bit != 0;
    message.date_created = Timestamp(r.signed()?);
    r.text_into(&mut message.text)?;
    r.optional_text_into(has(SUBJECT), &mut message.subject)?;
    message.sender = match has(SENDER) {
        true => {
            let mut sender = message
                .sender
                .take()
                .map(Address::into_string)
                .unwrap_or_default();
            r.text_into(&mut sender)?;
            Some(Address::from_trusted(sender))
        }
        false => None,
    };
    r.optional_text_into(has(EFFECT), &mut message.effect_id)?;
    r.optional_text_into(has(REPLY_TO), &mut message.reply_to)?;
    message.date_edited = optional(has(EDITED), || r.signed().map(Timestamp))?;
    message.edits = u32::try_from(r.varint()?).ok()?;
    message.date_retracted = optional(has(RETRACTED), || r.signed().map(Timestamp))?;
    message.is_sent = has(IS_SENT);
    let spans = r.count()?;
    message.formatting.clear();
    message.formatting.reserve(spans);
    for _ in 0..spans {
        message.formatting.push(TextFormat {
            style: r.text()?,
            start: u32::try_from(r.varint()?).ok()?,
            length: u32::try_from(r.varint()?).ok()?,
            effect_name: match r.byte()? {
                0 => None,
                1 => Some(r.text()?),
                _ => return None,
            },
        });
    }
    let applied = r.count()?;
    message.reactions.clear();
    message.reactions.reserve(applied);
    for _ in 0..applied {
        let kind = r.byte()?;
        let reaction = match kind & 0x7f {
            0 => Reaction::Love,
            1 => Reaction::Like,
            2 => Reaction::Dislike,
            3 => Reaction::Laugh,
            4 => Reaction::Emphasize,
            5 => Reaction::Question,
            6 => Reaction::Emoji(r.text()?),
            _ => return None,
        };
        message.reactions.push(AppliedReaction {
            reaction,
            sender: Address::from_trusted(r.text()?),
            is_from_me: kind & 0x80 != 0,
            date_created: Timestamp(r.signed()?),
        });
    }
    r.0.is_empty().then_some(())
}

/// One member's copy from the decoded `content`: its GUID, chat (`None` only for copies
/// stored without one), whether it is the member's own (then with no sender) and when it
/// was read.
pub fn copy(
    content: Message,
    guid: String,
    chat_guid: Option<ChatGuid>,
    is_from_me: bool,
    date_read: Option<Timestamp>,
) -> Message {
    Message {
        guid,
        chat_guid,
        is_from_me,
        sender: if is_from_me { None } else { content.sender },
        date_read,
        ..content
    }
}

/// An optional field: read if `present`; `None` if it is present and unreadable.
fn optional<T>(present: bool, read: impl FnOnce() -> Option<T>) -> Option<Option<T>> {
    match present {
        true => read().map(Some),
        false => Some(None),
    }
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn signed(out: &mut Vec<u8>, n: i64) {
    varint(out, ((n << 1) ^ (n >> 63)) as u64);
}

fn text(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A reader over encoded content; every read is `None` past the end.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn signed(&mut self) -> Option<i64> {
        let n = self.varint()?;
        Some((n >> 1) as i64 ^ -((n & 1) as i64))
    }

    /// A count of items that each take at least one byte: never more than what is left.
    fn count(&mut self) -> Option<usize> {
        usize::try_from(self.varint()?)
            .ok()
            .filter(|n| *n <= self.0.len())
    }

    fn text(&mut self) -> Option<String> {
        let mut text = String::new();
        self.text_into(&mut text)?;
        Some(text)
    }

    /// A text into `out`, in place of what it held (its allocation reused).
    fn text_into(&mut self, out: &mut String) -> Option<()> {
        let len = self.count()?;
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        out.clear();
        out.push_str(std::str::from_utf8(s).ok()?);
        Some(())
    }

    /// An optional text into `slot` if `present` (reusing the string there), else `None`.
    fn optional_text_into(&mut self, present: bool, slot: &mut Option<String>) -> Option<()> {
        match present {
            true => self.text_into(slot.get_or_insert_with(String::new)),
            false => {
                *slot = None;
                Some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            guid: String::new(),
            text: "héllo 🎉".into(),
            subject: Some("s".into()),
            date_created: Timestamp(1_765_000_000_123_456_789),
            is_from_me: false,
            is_sent: true,
            chat_guid: None,
            sender: Some(Address::from_trusted("a@example.com".into())),
            effect_id: Some("com.apple.MobileSMS.expressivesend.impact".into()),
            reply_to: Some("B".into()),
            formatting: vec![TextFormat {
                style: "bold".into(),
                start: 0,
                length: 5,
                effect_name: Some("big".into()),
            }],
            date_read: None,
            date_edited: Some(Timestamp(-7)),
            edits: 2,
            date_retracted: Some(Timestamp(9)),
            reactions: vec![
                AppliedReaction {
                    reaction: Reaction::Emoji("👍".into()),
                    sender: Address::from_trusted("b@example.com".into()),
                    is_from_me: true,
                    date_created: Timestamp(3),
                },
                AppliedReaction {
                    reaction: Reaction::Question,
                    sender: Address::from_trusted("c@example.com".into()),
                    is_from_me: false,
                    date_created: Timestamp(4),
                },
            ],
        }
    }

    #[test]
    fn content_round_trips() {
        let full = message();
        assert_eq!(decode(&encode(&full)).as_ref(), Some(&full));
        let plain = Message {
            subject: None,
            sender: None,
            effect_id: None,
            reply_to: None,
            formatting: vec![],
            date_edited: None,
            edits: 0,
            date_retracted: None,
            reactions: vec![],
            is_sent: false,
            ..message()
        };
        assert_eq!(decode(&encode(&plain)).as_ref(), Some(&plain));
    }

    /// Decoded into a message that held other content, every field of the content is
    /// replaced, and the member's own ones are kept.
    #[test]
    fn content_decoded_into_another_message_replaces_it() {
        let full = message();
        let plain = Message {
            subject: None,
            sender: None,
            effect_id: None,
            reply_to: None,
            formatting: vec![],
            date_edited: None,
            edits: 0,
            date_retracted: None,
            reactions: vec![],
            is_sent: false,
            text: "x".into(),
            ..message()
        };
        for (before, after) in [(&full, &plain), (&plain, &full), (&full, &full)] {
            let mut into = Message {
                guid: "G".into(),
                is_from_me: true,
                date_read: Some(Timestamp(5)),
                ..before.clone()
            };
            decode_into(&encode(after), &mut into).unwrap();
            let want = Message {
                guid: "G".into(),
                is_from_me: true,
                date_read: Some(Timestamp(5)),
                ..after.clone()
            };
            assert_eq!(into, want);
        }
    }

    #[test]
    fn damaged_content_is_refused() {
        let bytes = encode(&message());
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
        let mut newer = bytes;
        newer[0] = VERSION + 1;
        assert_eq!(decode(&newer), None);
    }
}
