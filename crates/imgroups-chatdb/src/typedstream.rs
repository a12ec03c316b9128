//! The text of a `message.attributedBody`: an `NSAttributedString` archived by `NSArchiver` in
//! Apple's legacy *typedstream* format, which Messages writes (macOS 13 and later often with
//! `message.text` empty). Our own reader, written from the format's public descriptions; the
//! Rust decoders that exist are GPL-3.0 and this crate is MIT.
//!
//! Sources for the format facts used here (read, not copied):
//! - dgelessus' `python-typedstream` (`typedstream/stream.py`), the most complete description:
//!   the header (streamer version 4, the signature `streamtyped` for little-endian, the system
//!   version 1000 on Mac OS X), the *head* byte read as a signed integer where -127 means a
//!   2-byte integer follows, -126 a 4-byte one, -125 a float, -124 (`0x84`) something new,
//!   -123 (`0x85`) nil, -122 (`0x86`) the end of an object, and values from -110 (`0x92`) on
//!   are reference numbers (index = value + 110) into the table of shared strings or of
//!   objects; a class is written as its name (a shared string), its version and its
//!   superclass, ending with nil.
//! - The Darwin sources it cites (`typedstream.h`/`.m` of the NeXT-era Foundation), for the
//!   same constants.
//! - imessage-exporter's `docs/` on `attributedBody` and the blobs of its test data
//!   (`imessage-database/test_data/typedstream/`), for the shape Messages writes:
//!   `NSAttributedString` whose first value is an `NSString` (or `NSMutableString`) holding
//!   its text as one `+` value (a length and UTF-8 bytes).
//!
//! What is decoded: the header, then the stream's first object, which must be an attributed
//! string, then that object's first value, its string. The attribute runs after it are not
//! needed for the text and are not read, so an attribute of a kind this reader does not know
//! cannot make the text unreadable.

use std::fmt;

/// `0x81`: a 2-byte little-endian integer follows.
const TAG_INTEGER_2: i8 = -127;
/// `0x82`: a 4-byte little-endian integer follows.
const TAG_INTEGER_4: i8 = -126;
/// `0x83`: a float or double follows.
const TAG_FLOATING_POINT: i8 = -125;
/// `0x84`: a literal string, class or object follows (not a back-reference).
const TAG_NEW: i8 = -124;
/// `0x85`: nil.
const TAG_NIL: i8 = -123;
/// `0x86`: the end of an object's values.
const TAG_END_OF_OBJECT: i8 = -122;
/// Heads from -128 to -111 are tags; -110 (`0x92`) is reference number 0.
const FIRST_REFERENCE: i64 = -110;
const LAST_TAG: i8 = -111;

/// The only streamer version Mac OS X writes.
const STREAMER_VERSION: u8 = 4;
/// The signature of a little-endian typedstream (`typedstream` is big-endian, which no Mac
/// writes).
const SIGNATURE_LE: &[u8] = b"streamtyped";

/// Why a blob is not an attributed string this reader can take the text from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedStreamError {
    /// Byte offset where reading stopped.
    pub at: usize,
    pub reason: &'static str,
}

impl fmt::Display for TypedStreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attributedBody: {} at byte {}", self.reason, self.at)
    }
}

impl std::error::Error for TypedStreamError {}

type Result<T> = std::result::Result<T, TypedStreamError>;

/// What a head byte says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    New,
    Nil,
    End,
    /// A literal integer, or (where a string or object is expected) a reference number.
    Int(i64),
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
    /// Shared strings (type encodings and class names) in the order they were first written.
    strings: Vec<Vec<u8>>,
    /// How many objects and classes were numbered so far (their references are not followed:
    /// the text never is one).
    objects: usize,
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, reason: &'static str) -> Result<T> {
        Err(TypedStreamError {
            at: self.at,
            reason,
        })
    }

    fn byte(&mut self) -> Result<u8> {
        match self.data.get(self.at) {
            Some(&b) => {
                self.at += 1;
                Ok(b)
            }
            None => self.fail("ends early"),
        }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let out = &self.data[self.at..end];
                self.at = end;
                Ok(out)
            }
            None => self.fail("a length runs past the end"),
        }
    }

    fn head(&mut self) -> Result<Head> {
        let b = self.byte()? as i8;
        Ok(match b {
            TAG_INTEGER_2 => {
                let raw = self.bytes(2)?;
                Head::Int(i64::from(i16::from_le_bytes([raw[0], raw[1]])))
            }
            TAG_INTEGER_4 => {
                let raw = self.bytes(4)?;
                Head::Int(i64::from(i32::from_le_bytes([
                    raw[0], raw[1], raw[2], raw[3],
                ])))
            }
            TAG_NEW => Head::New,
            TAG_NIL => Head::Nil,
            TAG_END_OF_OBJECT => Head::End,
            TAG_FLOATING_POINT => return self.fail("a float where an integer was expected"),
            b if b <= LAST_TAG => return self.fail("an unknown tag"),
            b => Head::Int(i64::from(b)),
        })
    }

    fn int(&mut self) -> Result<i64> {
        match self.head()? {
            Head::Int(n) => Ok(n),
            _ => self.fail("a tag where an integer was expected"),
        }
    }

    /// A length: as an integer, but the 2- and 4-byte forms read unsigned (a writer may put a
    /// length of 40,000 in the 2-byte form, whose top bit is then set).
    fn length(&mut self) -> Result<usize> {
        let b = self.byte()? as i8;
        let n = match b {
            TAG_INTEGER_2 => {
                let raw = self.bytes(2)?;
                u64::from(u16::from_le_bytes([raw[0], raw[1]]))
            }
            TAG_INTEGER_4 => {
                let raw = self.bytes(4)?;
                u64::from(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
            }
            b if b >= 0 => b as u64,
            _ => return self.fail("not a length"),
        };
        usize::try_from(n).or_else(|_| self.fail("a length too large"))
    }

    /// An unshared string: a length and that many bytes.
    fn unshared(&mut self) -> Result<&'a [u8]> {
        let n = self.length()?;
        self.bytes(n)
    }

    /// A shared string: new (then kept for later references), a reference, or nil.
    fn shared(&mut self) -> Result<Option<Vec<u8>>> {
        match self.head()? {
            Head::New => {
                let s = self.unshared()?.to_vec();
                self.strings.push(s.clone());
                Ok(Some(s))
            }
            Head::Nil => Ok(None),
            Head::Int(r) => {
                let i = usize::try_from(r - FIRST_REFERENCE)
                    .or_else(|_| self.fail("a bad string reference"))?;
                match self.strings.get(i) {
                    Some(s) => Ok(Some(s.clone())),
                    None => self.fail("a reference to a string not seen yet"),
                }
            }
            Head::End => self.fail("an end of object where a string was expected"),
        }
    }

    /// The type encoding of the next values.
    fn types(&mut self) -> Result<Vec<u8>> {
        match self.shared()? {
            Some(t) if !t.is_empty() => Ok(t),
            _ => self.fail("no type encoding"),
        }
    }

    /// A class: new (its name, version and superclass chain), a reference, or nil. Returns the
    /// names of the chain's new classes, the class itself first.
    fn class(&mut self, names: &mut Vec<String>) -> Result<()> {
        match self.head()? {
            Head::New => {
                self.objects += 1;
                let name = self.shared()?.unwrap_or_default();
                names.push(String::from_utf8_lossy(&name).into_owned());
                let _version = self.int()?;
                self.class(names)
            }
            Head::Nil | Head::Int(_) => Ok(()),
            Head::End => self.fail("an end of object where a class was expected"),
        }
    }

    /// The start of a new object: its class chain, by name. `None` for nil or a reference.
    fn object_start(&mut self) -> Result<Option<Vec<String>>> {
        match self.head()? {
            Head::New => {
                self.objects += 1;
                let mut names = Vec::new();
                self.class(&mut names)?;
                Ok(Some(names))
            }
            Head::Nil | Head::Int(_) => Ok(None),
            Head::End => self.fail("an end of object where an object was expected"),
        }
    }
}

/// Whether a class chain is one of the string classes.
fn is_a(names: &[String], classes: &[&str]) -> bool {
    names.iter().any(|n| classes.contains(&n.as_str()))
}

/// The text of an `attributedBody` blob. Text that is not valid UTF-8 is read with U+FFFD in
/// place of the bad bytes (as chat.db's other text columns are).
pub fn attributed_text(blob: &[u8]) -> std::result::Result<String, TypedStreamError> {
    let mut r = Reader {
        data: blob,
        at: 0,
        strings: Vec::new(),
        objects: 0,
    };
    if r.byte()? != STREAMER_VERSION {
        return r.fail("not a typedstream of streamer version 4");
    }
    if r.unshared()? != SIGNATURE_LE {
        return r.fail("not a little-endian typedstream (signature)");
    }
    let _system_version = r.int()?;
    // The root: one value of type `@`, an attributed string.
    if r.types()? != b"@" {
        return r.fail("the root is not an object");
    }
    let Some(root) = r.object_start()? else {
        return r.fail("the root object is nil");
    };
    if !is_a(&root, &["NSAttributedString", "NSMutableAttributedString"]) {
        return r.fail("the root is not an attributed string");
    }
    // Its first value: the string, as an object of type `@`.
    if r.types()? != b"@" {
        return r.fail("the attributed string does not start with its string");
    }
    let Some(string) = r.object_start()? else {
        return r.fail("the attributed string's string is nil or a reference");
    };
    if !is_a(&string, &["NSString", "NSMutableString"]) {
        return r.fail("the attributed string's string is not an NSString");
    }
    // The string's one value: `+`, its UTF-8 bytes with their length.
    if r.types()? != b"+" {
        return r.fail("the string's value is not of type +");
    }
    let text = r.unshared()?;
    Ok(String::from_utf8_lossy(text).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Head-encoded integer (python-typedstream's rule: literal when outside the tag range).
    fn int(out: &mut Vec<u8>, n: i64) {
        if (-110..=127).contains(&n) {
            out.push(n as i8 as u8);
        } else if i16::try_from(n).is_ok() {
            out.push(0x81);
            out.extend_from_slice(&(n as i16).to_le_bytes());
        } else {
            out.push(0x82);
            out.extend_from_slice(&(n as i32).to_le_bytes());
        }
    }

    fn new_string(out: &mut Vec<u8>, s: &[u8]) {
        out.push(0x84);
        int(out, s.len() as i64);
        out.extend_from_slice(s);
    }

    /// A blob built from the format's rules alone, with choices Messages' own blobs do not
    /// make: `NSMutableAttributedString` over `NSAttributedString`, an `NSMutableString`, the
    /// string's length in the 2-byte form though it is short, and a version in the 2-byte
    /// form.
    fn unusual(text: &str) -> Vec<u8> {
        let mut b = vec![4];
        int(&mut b, 11);
        b.extend_from_slice(b"streamtyped");
        int(&mut b, 1000);
        new_string(&mut b, b"@"); // string 0
        b.push(0x84); // new object
        b.push(0x84); // new class
        new_string(&mut b, b"NSMutableAttributedString"); // string 1
        b.extend_from_slice(&[0x81, 0, 0]); // version 0, 2-byte form
        b.push(0x84);
        new_string(&mut b, b"NSAttributedString"); // string 2
        b.push(0);
        b.push(0x84);
        new_string(&mut b, b"NSObject"); // string 3
        b.push(0);
        b.push(0x85); // end of chain
        b.push(0x92); // type "@" by reference
        b.push(0x84);
        b.push(0x84);
        new_string(&mut b, b"NSMutableString");
        b.push(1);
        b.push(0x84);
        new_string(&mut b, b"NSString");
        b.push(1);
        b.push(0x95); // superclass NSObject: object reference 3
        new_string(&mut b, b"+");
        b.push(0x81);
        b.extend_from_slice(&(text.len() as u16).to_le_bytes());
        b.extend_from_slice(text.as_bytes());
        b.push(0x86);
        // Attribute runs of a kind this reader need not know.
        new_string(&mut b, b"{?=qq}");
        b.extend_from_slice(&[1, 2, 0x86]);
        b
    }

    #[test]
    fn messages_blobs_give_their_text() {
        for (text, blob) in crate::testing::sample_bodies() {
            assert_eq!(attributed_text(&blob).unwrap(), text);
        }
    }

    #[test]
    fn long_texts_use_the_wider_length_forms() {
        for n in [127, 128, 200, 40_000, 70_000] {
            let text = "é".repeat(n);
            let blob = crate::testing::attributed_body(&text);
            assert_eq!(attributed_text(&blob).unwrap(), text, "{n}");
        }
    }

    #[test]
    fn other_valid_encodings_read_too() {
        let text = "mutable 🙂";
        assert_eq!(attributed_text(&unusual(text)).unwrap(), text);
    }

    #[test]
    fn broken_blobs_are_errors_not_panics() {
        let good = crate::testing::attributed_body("Hello there");
        // The reader stops after the text: every cut before its last byte is an error.
        let text_end = good.windows(11).position(|w| w == b"Hello there").unwrap() + 11;
        for cut in 0..text_end {
            assert!(attributed_text(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(attributed_text(b"bplist00").is_err());
        assert!(attributed_text(&[]).is_err());
        let mut big_endian = good.clone();
        big_endian[2..13].copy_from_slice(b"typedstream");
        assert!(attributed_text(&big_endian).is_err());
        // Every single-byte corruption either reads or fails; none panics.
        for i in 0..good.len() {
            for b in [0x00, 0x7f, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x92, 0xff] {
                let mut bad = good.clone();
                bad[i] = b;
                let _ = attributed_text(&bad);
            }
        }
    }

    #[test]
    fn invalid_utf8_reads_with_replacement_characters() {
        let mut blob = crate::testing::attributed_body("abc");
        let at = blob.windows(3).position(|w| w == b"abc").unwrap();
        blob[at + 1] = 0xff;
        assert_eq!(attributed_text(&blob).unwrap(), "a\u{fffd}c");
    }
}
