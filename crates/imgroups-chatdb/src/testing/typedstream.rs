//! `message.attributedBody` blobs as Messages writes them when `text` is empty (macOS 13 and
//! later often do): an `NSAttributedString` archived with Apple's legacy `typedstream` format.
//! The crate's reader (`crate::attributed_text`) is tested with them.
//!
//! The layout, as public chat.db readers' test data shows it (imessage-exporter's
//! `imessage-database/test_data/typedstream/` blobs, and the hand-built blobs in many readers'
//! tests): the header `04 0b "streamtyped" 81 e8 03` (version 4, system version 1000); the
//! object `84 01 "@"`, class `NSAttributedString` (v0) over `NSObject` (v0); its string, class
//! `NSString` (v1), as `84 01 "+"` then a length and the UTF-8 bytes; `86` ends the string; then
//! one attribute run `84 02 "iI"` (attribute number, run length in UTF-16 units) whose
//! attributes are an `NSDictionary` with `__kIMMessagePartAttributeName` = 0. Lengths and
//! integers are one byte below 0x80, else `81` + 2 bytes or `82` + 4 bytes, little-endian.
//! Written by hand from those facts; nothing was copied.

/// A typedstream integer.
fn int(out: &mut Vec<u8>, n: usize) {
    if n < 0x80 {
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(0x81);
        out.extend_from_slice(&(n as u16).to_le_bytes());
    } else {
        out.push(0x82);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
}

/// A class name as a new class: `84 84 84 <len> name <version>`.
fn class(out: &mut Vec<u8>, name: &str, version: u8) {
    out.extend_from_slice(&[0x84, 0x84, 0x84]);
    int(out, name.len());
    out.extend_from_slice(name.as_bytes());
    out.push(version);
}

/// The `attributedBody` Messages writes for a plain text message `text` (one part).
pub fn attributed_body(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 160);
    out.extend_from_slice(b"\x04\x0bstreamtyped\x81\xe8\x03");
    out.extend_from_slice(b"\x84\x01@");
    class(&mut out, "NSAttributedString", 0);
    // Its superclass, then the end of the class chain.
    out.extend_from_slice(b"\x84\x84\x08NSObject\x00\x85");
    // The string: an object of class NSString (v1) whose superclass is the NSObject above
    // (reference 0x94).
    out.push(0x92);
    class(&mut out, "NSString", 1);
    out.extend_from_slice(b"\x94\x84\x01+");
    int(&mut out, text.len());
    out.extend_from_slice(text.as_bytes());
    out.push(0x86);
    // One attribute run over the whole text (UTF-16 units).
    out.extend_from_slice(b"\x84\x02iI\x01");
    int(&mut out, text.encode_utf16().count());
    out.push(0x92);
    class(&mut out, "NSDictionary", 0);
    out.extend_from_slice(b"\x94\x84\x01i\x01");
    out.push(0x92);
    out.extend_from_slice(b"\x84\x96\x96");
    int(&mut out, "__kIMMessagePartAttributeName".len());
    out.extend_from_slice(b"__kIMMessagePartAttributeName\x86");
    out.push(0x92);
    class(&mut out, "NSNumber", 0);
    out.extend_from_slice(b"\x84\x84\x07NSValue\x00\x94\x84\x01*\x84\x99\x99\x00\x86\x86\x86");
    out
}

/// Texts whose blobs cover the three length encodings' first two and non-Latin text: a short
/// one, one with emoji and Hangul (byte length ≠ UTF-16 length), and one past 127 bytes.
pub fn sample_bodies() -> Vec<(String, Vec<u8>)> {
    [
        "Hello".to_owned(),
        "see you at 8 ❤️ 안녕".to_owned(),
        "x".repeat(300),
    ]
    .into_iter()
    .map(|text| {
        let blob = attributed_body(&text);
        (text, blob)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What every public reader's shortcut does: the bytes after `NSString … 84 01 2b`.
    fn naive_text(blob: &[u8]) -> Option<String> {
        let marker = b"NSString\x01\x94\x84\x01+";
        let start = blob.windows(marker.len()).position(|w| w == marker)? + marker.len();
        let (len, skip) = match blob[start] {
            0x81 => (
                u16::from_le_bytes([blob[start + 1], blob[start + 2]]) as usize,
                3,
            ),
            0x82 => (
                u32::from_le_bytes(blob[start + 1..start + 5].try_into().ok()?) as usize,
                5,
            ),
            n => (n as usize, 1),
        };
        String::from_utf8(blob[start + skip..start + skip + len].to_vec()).ok()
    }

    #[test]
    fn the_text_is_where_readers_find_it() {
        for (text, blob) in sample_bodies() {
            assert!(blob.starts_with(b"\x04\x0bstreamtyped\x81\xe8\x03\x84\x01@"));
            assert_eq!(naive_text(&blob).as_deref(), Some(text.as_str()));
        }
    }
}
