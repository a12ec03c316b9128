//! The input policy for text that people choose and every member sees — today a group's display
//! name, later a message's subject: what may be given to the server, and how the same kind of
//! text observed elsewhere (a Mac's chat.db) is made safe before it enters the log. One place,
//! so that the API, puppets, the console and ingest cannot drift apart.
//!
//! Every member's client shows a name, terminals print it, bots feed it to other programs: a
//! member must not be able to change how the rest of a screen reads, hide text in it, or make
//! a group look unnamed while it is not. Given text ([`TextField::check`]) is refused with
//! `invalidArgument`, the field, a precise `reason` and, for a character, the `character`
//! (`U+XXXX`) and its 1-based `position` in the text as sent. Observed text
//! ([`TextField::sanitise`]) is never refused — the change happened — but what is stored and
//! served is made to pass the same check:
//!
//! | text | given: `reason` | observed: stored as |
//! |---|---|---|
//! | empty after trimming white space | (none; `field` only) | no name |
//! | longer than the limit (256 characters for a name) | `tooLong`, `limit` | cut at a character boundary, ending in `…` |
//! | a control character: C0 (NUL, ESC, BEL, …), DEL, C1 | `controlCharacter` | U+FFFD |
//! | a tab, a line break (LF, CR, VT, FF, NEL, U+2028, U+2029) | `controlCharacter` | a space |
//! | a bidirectional embedding, override or isolate (U+202A–U+202E, U+2066–U+2069) | `controlCharacter` | removed |
//! | the byte order mark U+FEFF, the deprecated format characters U+206A–U+206F, the interlinear annotations U+FFF9–U+FFFB, a reserved invisible code point | `formatCharacter` | removed |
//! | a tag character (U+E0000–U+E007F) outside the flags of England, Scotland and Wales | `tagCharacter` | removed |
//! | more than 16 combining marks or format characters on one character | `tooManyMarks`, `limit` | the 17th and later removed |
//! | nothing visible: only white space, zero-width and other default-ignorable characters (U+200B, U+2060, U+FE0F, …), fillers (U+3164, U+115F, U+1160, U+FFA0), U+2800 BRAILLE PATTERN BLANK, combining marks | `invisibleName` | no name |
//!
//! Allowed: the direction marks U+200E, U+200F and U+061C (they reorder nothing beyond the name
//! and right-to-left names need them), the joiners U+200C/U+200D and variation selectors
//! (emoji sequences and many scripts need them), other zero-width characters inside a visible
//! name.
//!
//! **Tag characters.** They render as nothing, and any run of them can spell hidden ASCII
//! ("ASCII smuggling": text no member sees but a program reading the name does). Their one
//! use in a name is the three flags that are emoji tag sequences — England, Scotland, Wales:
//! U+1F3F4 WAVING BLACK FLAG, the tags of `gbeng`, `gbsct` or `gbwls`, U+E007F CANCEL TAG —
//! which emoji keyboards type. Exactly those three sequences are allowed: any other tag
//! sequence shows only a black flag on every platform, so it carries nothing but the hidden
//! text.
//!
//! **Addresses** are not free text: [`Address::parse`](crate::Address::parse) accepts at most
//! 512 bytes, and only an e-mail address of ASCII letters, digits and `!#$%&'*+-/=?^_`{|}~.`
//! (lower-cased, with a domain of ASCII letters, digits and hyphens) or a `+` and 8–15 ASCII
//! digits (spaces, dashes, dots and parentheses stripped), so none of the cases above can
//! occur in one. Handles that chat.db keeps but the API cannot name (short codes, business
//! ids) are kept only when [`is_inert_identifier`] holds.

use std::borrow::Cow;

use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory, GeneralCategoryGroup};
use icu_properties::{CodePointMapData, CodePointSetData};

use crate::error::{Error, Reason, Result};

/// Most combining marks (and format characters such as joiners and variation selectors) one
/// character may carry. Real text needs a few (Vietnamese two, Hebrew with cantillation five,
/// an emoji tag flag six); "Zalgo" text stacks hundreds, drawn over the lines around it.
pub const MAX_MARKS_PER_CHARACTER: usize = 16;

/// A kind of text the policy applies to: the request field it arrives in, the words an error
/// uses for it, its longest length.
#[derive(Debug, Clone, Copy)]
pub struct TextField {
    /// The request field (`displayName`), the `field` context entry of a refusal.
    pub field: &'static str,
    /// What errors call it ("display name").
    pub noun: &'static str,
    /// Longest value, in characters (Unicode scalar values).
    pub max_chars: usize,
}

/// A group's display name.
pub const DISPLAY_NAME: TextField = TextField {
    field: "displayName",
    noun: "display name",
    max_chars: 256,
};

/// The emoji tag sequences allowed in text: the flags of England, Scotland and Wales.
const FLAGS: [&str; 3] = [
    "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
    "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
    "\u{1F3F4}\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F}",
];

/// Characters in each of [`FLAGS`].
const FLAG_CHARS: usize = 7;

/// The flag that starts `text`, if one does.
fn flag_at(text: &str) -> Option<&'static str> {
    if !text.starts_with('\u{1F3F4}') {
        return None;
    }
    FLAGS.into_iter().find(|flag| text.starts_with(flag))
}

/// What one character is to the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Refused in given text; in observed text replaced by `Some` character, or removed.
    Refused(Reason, Option<char>),
    /// A tag character: refused unless it is part of one of [`FLAGS`].
    Tag,
    /// Drawn on (or joined to) the character before it: a combining mark, a joiner, a
    /// variation selector, another format character. Counted against
    /// [`MAX_MARKS_PER_CHARACTER`]; never visible on its own.
    Mark,
    /// Starts a new character on screen: `visible` unless it renders as nothing.
    Base { visible: bool },
}

fn class(c: char) -> Class {
    // Printable ASCII (most names) is never a mark, format, default-ignorable or tag
    // character, and only the space is blank: no Unicode table needs to be read for it.
    // The test `ascii_classes_match_the_tables` checks this against the tables.
    if matches!(c, ' '..='~') {
        return Class::Base { visible: c != ' ' };
    }
    class_by_tables(c)
}

/// [`class`] for every character, from the match and the Unicode tables.
fn class_by_tables(c: char) -> Class {
    match c {
        '\t' | '\n' | '\u{B}' | '\u{C}' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' => {
            Class::Refused(Reason::ControlCharacter, Some(' '))
        }
        c if c.is_control() => Class::Refused(Reason::ControlCharacter, Some('\u{FFFD}')),
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => {
            Class::Refused(Reason::ControlCharacter, None)
        }
        '\u{FEFF}'
        | '\u{2065}'
        | '\u{206A}'..='\u{206F}'
        | '\u{FFF0}'..='\u{FFFB}'
        | '\u{E0080}'..='\u{E00FF}'
        | '\u{E01F0}'..='\u{E0FFF}' => Class::Refused(Reason::FormatCharacter, None),
        '\u{E0000}'..='\u{E007F}' => Class::Tag,
        c => {
            let category = CodePointMapData::<GeneralCategory>::new().get(c);
            if GeneralCategoryGroup::Mark.contains(category) || category == GeneralCategory::Format
            {
                Class::Mark
            } else {
                // Default-ignorable letters are the Hangul fillers (U+115F, U+1160, U+3164,
                // U+FFA0); U+2800 is a braille cell with no dots. Both render as blank space.
                let blank = c.is_whitespace()
                    || c == '\u{2800}'
                    || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c);
                Class::Base { visible: !blank }
            }
        }
    }
}

/// What a refused character is, for the error message.
fn describe(c: char, reason: Reason) -> &'static str {
    match (c, reason) {
        ('\u{FEFF}', _) => "the byte order mark",
        ('\u{206A}'..='\u{206F}', _) => "a deprecated format character",
        ('\u{FFF9}'..='\u{FFFB}', _) => "an interlinear annotation character",
        (_, Reason::FormatCharacter) => "a reserved invisible character",
        (_, Reason::TagCharacter) => "a tag character outside a flag",
        ('\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}', _) => {
            "a bidirectional override character"
        }
        ('\u{2028}' | '\u{2029}', _) => "a line or paragraph separator",
        _ => "a control character",
    }
}

fn code(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

impl TextField {
    /// Checks text given to the server (API, puppets, console) and returns it trimmed of
    /// surrounding white space. Linear in the limit, not in the input: a 100 MB name is
    /// refused after [`TextField::max_chars`] characters.
    pub fn check<'a>(&self, input: &'a str) -> Result<&'a str> {
        let text = input.trim();
        if text.is_empty() {
            return Err(Error::invalid(format!("{} must not be empty", self.noun))
                .with("field", self.field));
        }
        // `nth` stops after the limit: a 100 MB name is not counted to the end.
        if text.chars().nth(self.max_chars).is_some() {
            return Err(Error::invalid(format!(
                "{} is longer than {} characters",
                self.noun, self.max_chars
            ))
            .with("field", self.field)
            .because(Reason::TooLong)
            .with("limit", self.max_chars));
        }
        // Printable ASCII after trimming (most names): every character is a visible base
        // character or a space, and the first is visible: the loop below would accept it.
        if text.bytes().all(|b| matches!(b, b' '..=b'~')) {
            return Ok(text);
        }
        // Positions are counted in the text as sent, trimmed white space included.
        let leading = input[..input.len() - input.trim_start().len()]
            .chars()
            .count();
        let mut visible = false;
        let mut marks = 0usize;
        let mut skip = 0usize;
        for (at, (byte, c)) in text.char_indices().enumerate() {
            if skip > 0 {
                skip -= 1;
                marks += 1; // a flag's tags are drawn on its black flag
                continue;
            }
            let position = leading + at + 1;
            let refuse = |reason: Reason| {
                Error::invalid(format!(
                    "{} must not contain {} ({} at character {position})",
                    self.noun,
                    describe(c, reason),
                    code(c)
                ))
                .with("field", self.field)
                .because(reason)
                .with("character", code(c))
                .with("position", position)
            };
            match class(c) {
                Class::Refused(reason, _) => return Err(refuse(reason)),
                Class::Tag => return Err(refuse(Reason::TagCharacter)),
                Class::Mark => {
                    marks += 1;
                    if marks > MAX_MARKS_PER_CHARACTER {
                        return Err(Error::invalid(format!(
                            "{} stacks more than {MAX_MARKS_PER_CHARACTER} combining marks on \
                             one character ({} at character {position})",
                            self.noun,
                            code(c)
                        ))
                        .with("field", self.field)
                        .because(Reason::TooManyMarks)
                        .with("limit", MAX_MARKS_PER_CHARACTER)
                        .with("character", code(c))
                        .with("position", position));
                    }
                }
                Class::Base { visible: v } => {
                    visible |= v;
                    marks = 0;
                    if flag_at(&text[byte..]).is_some() {
                        skip = FLAG_CHARS - 1;
                    }
                }
            }
        }
        if !visible {
            return Err(Error::invalid(format!(
                "{} must show something: it has only invisible or blank characters",
                self.noun
            ))
            .with("field", self.field)
            .because(Reason::InvisibleName));
        }
        Ok(text)
    }

    /// Makes text observed elsewhere (chat.db) safe to store and serve, as the module's table
    /// says: the result is empty (no value) or passes [`TextField::check`] unchanged, and text
    /// that passes the check comes back as it was (trimmed). Linear in the input.
    pub fn sanitise<'a>(&self, raw: &'a str) -> Cow<'a, str> {
        let raw = raw.trim();
        if self.check(raw).is_ok() {
            return Cow::Borrowed(raw);
        }
        let mut out = String::with_capacity(raw.len().min(4 * self.max_chars + 4));
        // Where `out` is cut if the text is too long: before the last base character that
        // starts within the limit, so never inside a flag or between a character and its
        // marks.
        let mut cut = 0usize;
        let mut count = 0usize;
        let mut marks = 0usize;
        let mut skip = 0usize;
        let mut cut_short = false;
        for (byte, c) in raw.char_indices() {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let (c, flag) = match class(c) {
                Class::Refused(_, Some(replacement)) => (replacement, None),
                Class::Refused(_, None) | Class::Tag => continue,
                _ => (c, flag_at(&raw[byte..])),
            };
            if class(c) == Class::Mark {
                marks += 1;
                if marks > MAX_MARKS_PER_CHARACTER {
                    continue;
                }
            } else {
                marks = 0;
                if count < self.max_chars {
                    cut = out.len();
                }
            }
            let added = match flag {
                Some(flag) => {
                    skip = FLAG_CHARS - 1;
                    marks = FLAG_CHARS - 1;
                    out.push_str(flag);
                    FLAG_CHARS
                }
                None => {
                    out.push(c);
                    1
                }
            };
            count += added;
            if count > self.max_chars {
                cut_short = true;
                break;
            }
        }
        if cut_short {
            // `cut` leaves at most `max_chars - 1` characters: room for the ellipsis.
            out.truncate(cut);
            let kept = out.trim_end().len();
            out.truncate(kept);
            out.push('…');
        }
        let text = out.trim();
        if self.check(text).is_err() {
            // Nothing visible (or, defensively, anything the check still refuses): no value.
            return Cow::Borrowed("");
        }
        Cow::Owned(text.to_owned())
    }
}

/// Whether an identifier observed elsewhere (a chat.db handle the API cannot parse as an
/// address) can be stored and shown as it is: not empty, at most 512 bytes, and only
/// characters that are visible and inert — no white space, no control, format,
/// default-ignorable, tag or combining character. An identifier is compared, not read: one
/// that needs any of those is left out rather than altered.
pub fn is_inert_identifier(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= crate::ids::MAX_ADDRESS_BYTES
        && id
            .chars()
            .all(|c| matches!(class(c), Class::Base { visible: true }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(input: &str) -> Option<(String, Option<String>, Option<String>)> {
        let err = DISPLAY_NAME.check(input).err()?;
        assert_eq!(err.kind, crate::ErrorKind::InvalidArgument);
        assert_eq!(err.context_value("field"), Some("displayName"));
        Some((
            err.context_value("reason").unwrap_or("").to_owned(),
            err.context_value("character").map(str::to_owned),
            err.context_value("position").map(str::to_owned),
        ))
    }

    fn refused(input: &str, why: &str, character: Option<&str>, position: Option<usize>) {
        let got = reason(input).unwrap_or_else(|| panic!("{input:?} accepted"));
        assert_eq!(
            got,
            (
                why.to_owned(),
                character.map(str::to_owned),
                position.map(|p| p.to_string())
            ),
            "{input:?}"
        );
    }

    const ENGLAND: &str = FLAGS[0];

    /// The printable-ASCII shortcut of `class` says what the Unicode tables say.
    #[test]
    fn ascii_classes_match_the_tables() {
        for c in (0u8..=0x7f).map(char::from) {
            assert_eq!(class(c), class_by_tables(c), "{c:?}");
        }
        for name in [
            "a",
            "Weekend plans",
            "  x  ",
            "tag.12.345",
            "~!@#$%^&*()_+{}|:<>?",
        ] {
            assert_eq!(DISPLAY_NAME.check(name).ok(), Some(name.trim()));
        }
        assert!(DISPLAY_NAME.check(&"x".repeat(257)).is_err());
        assert!(DISPLAY_NAME.check(&"x".repeat(256)).is_ok());
    }

    #[test]
    fn each_case_of_the_table_is_refused_precisely() {
        refused("ab\u{1b}[2J", "controlCharacter", Some("U+001B"), Some(3));
        // Positions count the white space that trimming removes.
        refused("  a\u{7}", "controlCharacter", Some("U+0007"), Some(4));
        refused("a\u{202e}b", "controlCharacter", Some("U+202E"), Some(2));
        refused(
            "\u{feff}Weekend",
            "formatCharacter",
            Some("U+FEFF"),
            Some(1),
        );
        refused(
            "Week\u{feff}end",
            "formatCharacter",
            Some("U+FEFF"),
            Some(5),
        );
        refused("a\u{206a}b", "formatCharacter", Some("U+206A"), Some(2));
        refused(
            "a\u{fff9}hidden\u{fffb}",
            "formatCharacter",
            Some("U+FFF9"),
            Some(2),
        );
        // ASCII smuggled in tags, after a letter or after a black flag that is no flag.
        refused(
            "hi\u{e0069}\u{e0067}",
            "tagCharacter",
            Some("U+E0069"),
            Some(3),
        );
        refused(
            "\u{1f3f4}\u{e0075}\u{e0073}\u{e0074}\u{e0078}\u{e007f}",
            "tagCharacter",
            Some("U+E0075"),
            Some(2),
        );
        refused("\u{e0001}en", "tagCharacter", Some("U+E0001"), Some(1));
        let zalgo = format!("Z{}", "\u{0301}".repeat(17));
        refused(&zalgo, "tooManyMarks", Some("U+0301"), Some(18));
        // Joiners between the marks do not reset the count: it is all one character on screen.
        let joined = format!("Z{}", "\u{0301}\u{200d}".repeat(9));
        refused(&joined, "tooManyMarks", Some("U+0301"), Some(18));
        for invisible in [
            "\u{200b}",
            "\u{200b}\u{200c}\u{200d}\u{2060}",
            "\u{3164}",
            "\u{3164}\u{3164} \u{3164}",
            "\u{2800}\u{2800}",
            "\u{115f}\u{1160}",
            "\u{ffa0}",
            "\u{fe0f}",
            "\u{fe00}\u{e0100}",
            "\u{034f}",
            "\u{0301}\u{0302}",
            "\u{00ad}",
            "\u{180e}",
            "\u{200b} \u{00a0} \u{2800}",
        ] {
            refused(invisible, "invisibleName", None, None);
        }
        let err = DISPLAY_NAME.check(&"x".repeat(257)).unwrap_err();
        assert_eq!(err.context_value("reason"), Some("tooLong"));
        assert_eq!(err.context_value("limit"), Some("256"));
    }

    #[test]
    fn real_names_pass_unchanged() {
        for name in [
            "Weekend",
            "\u{200f}שלום 2024",
            "family \u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}",
            "keycap 1\u{fe0f}\u{20e3}",
            "Tiếng Việt",
            "e\u{0301}te\u{0301}",
            "हिन्दी समूह",
            "ﷺ",
            "فارسی\u{200c}ها",
            "\u{05e9}\u{05c1}\u{05b8}\u{0591}\u{05bc}\u{05b0}",
            "\u{1f44d}\u{1f3fd} thumbs",
            "a\u{200b}b",
            "Z\u{0301}\u{0302}\u{0303}\u{0304}\u{0305}\u{0306}\u{0307}\u{0308}\u{0309}\u{030a}\u{030b}\u{030c}\u{030d}\u{030e}\u{030f}\u{0310}",
            "\u{2800}a",
            "\u{3164}a",
        ] {
            assert_eq!(DISPLAY_NAME.check(name).map_err(|e| e.message), Ok(name));
            assert_eq!(DISPLAY_NAME.sanitise(name), name);
        }
        for flag in FLAGS {
            let name = format!("rugby {flag}{flag}");
            assert_eq!(DISPLAY_NAME.check(&name).ok(), Some(name.as_str()));
        }
        assert_eq!(DISPLAY_NAME.check(" \t Weekend\n").ok(), Some("Weekend"));
        // Exactly at the limit, the flag counted as its seven characters.
        let at_limit = format!("{}{ENGLAND}", "a".repeat(249));
        assert!(DISPLAY_NAME.check(&at_limit).is_ok());
        assert!(DISPLAY_NAME.check(&format!("a{at_limit}")).is_err());
    }

    #[test]
    fn observed_names_are_sanitised_as_the_table_says() {
        let s = |raw: &str| DISPLAY_NAME.sanitise(raw).into_owned();
        assert_eq!(s("ab\u{1b}[2J\u{7}"), "ab\u{fffd}[2J\u{fffd}");
        assert_eq!(s("nul\0x\u{7f}\u{9b}"), "nul\u{fffd}x\u{fffd}\u{fffd}");
        assert_eq!(s("two\nlines\tand\u{2028}more\r\n"), "two lines and more");
        assert_eq!(s("\u{202e}gpj.exe\u{202c}"), "gpj.exe");
        assert_eq!(s("\u{2067}x\u{2069}"), "x");
        assert_eq!(s("\u{feff}Book\u{feff} club"), "Book club");
        assert_eq!(s("hi\u{e0069}\u{e0067}\u{e006e}"), "hi");
        assert_eq!(s(&format!("go {ENGLAND}!")), format!("go {ENGLAND}!"));
        assert_eq!(
            s(&format!("Z{}z", "\u{0301}".repeat(300))),
            format!("Z{}z", "\u{0301}".repeat(16))
        );
        for invisible in [
            "\u{200b}\u{200b}",
            "\u{3164}",
            "\u{2800}",
            "\u{feff}",
            "\u{202e}",
            " \n ",
        ] {
            assert_eq!(s(invisible), "", "{invisible:?}");
        }
        // Too long: cut to 255 characters and an ellipsis.
        let long = s(&"abc ".repeat(2000));
        assert_eq!(long.chars().count(), 256);
        assert!(
            long.ends_with("abc…") || long.ends_with("a…") || long.ends_with("ab…"),
            "{long}"
        );
        // Never between a character and its marks, nor inside a flag.
        let marks = s(&"e\u{0301}".repeat(200));
        assert!(marks.ends_with("e\u{0301}…"), "{marks:?}");
        let flags = s(&ENGLAND.repeat(100));
        assert_eq!(flags, format!("{}…", ENGLAND.repeat(36)));
        assert!(DISPLAY_NAME.check(&flags).is_ok());
    }

    #[test]
    fn the_issue_s_hostile_title_is_stored_sanitised() {
        let raw = format!(
            "\u{1b}]0;owned\u{7}\u{202e}evil\0\n{}",
            "x".repeat(5_035 - 17)
        );
        assert_eq!(raw.chars().count(), 5_035);
        let name = DISPLAY_NAME.sanitise(&raw);
        assert!(
            name.starts_with("\u{fffd}]0;owned\u{fffd}evil\u{fffd} xxx"),
            "{name:?}"
        );
        assert_eq!(name.chars().count(), 256);
        assert!(name.ends_with('…'));
        assert_eq!(DISPLAY_NAME.check(&name).ok(), Some(&*name));
    }

    #[test]
    fn inert_identifiers() {
        for id in [
            "12345",
            "5551234567",
            "urn:biz:1234-abcd",
            "ünï@example.com",
        ] {
            assert!(is_inert_identifier(id), "{id}");
        }
        for id in [
            "",
            "a b",
            "a\u{200b}b",
            "a\u{202e}b",
            "x\u{e0061}",
            "\u{3164}",
            "a\u{0301}",
            "a\u{feff}",
            &"1".repeat(513),
        ] {
            assert!(!is_inert_identifier(id), "{id:?}");
        }
    }

    use proptest::prelude::*;

    /// Characters from every class, weighted towards the tricky ones.
    fn tricky_char() -> impl Strategy<Value = char> {
        prop_oneof![
            any::<char>(),
            prop::sample::select(vec![
                'a',
                ' ',
                '\n',
                '\u{1b}',
                '\u{202e}',
                '\u{2066}',
                '\u{200b}',
                '\u{200d}',
                '\u{200f}',
                '\u{feff}',
                '\u{3164}',
                '\u{2800}',
                '\u{0301}',
                '\u{fe0f}',
                '\u{1f3f4}',
                '\u{e0067}',
                '\u{e0062}',
                '\u{e0065}',
                '\u{e006e}',
                '\u{e007f}',
                '\u{e0001}',
                '\u{fff9}',
                '\u{206a}',
                'é',
                'ש',
            ]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// What ingest stores is always what the API would accept (or no name), and what the
        /// API accepts is stored unchanged, so a rename made through the API and read back
        /// from chat.db is the same name.
        #[test]
        fn sanitised_text_passes_the_check_and_accepted_text_is_kept(
            chars in prop::collection::vec(tricky_char(), 0..300),
            flags in prop::collection::vec((0usize..300, 0usize..3), 0..4),
        ) {
            let mut text: String = chars.into_iter().collect();
            for (at, flag) in flags {
                let at = text.char_indices().nth(at).map_or(text.len(), |(b, _)| b);
                text.insert_str(at, FLAGS[flag]);
            }
            let sanitised = DISPLAY_NAME.sanitise(&text);
            if !sanitised.is_empty() {
                prop_assert_eq!(DISPLAY_NAME.check(&sanitised).ok(), Some(&*sanitised));
            }
            if let Ok(accepted) = DISPLAY_NAME.check(&text) {
                prop_assert_eq!(&*DISPLAY_NAME.sanitise(&text), accepted);
            }
        }
    }
}
