//! Test data every crate's tests share: the one PNG builder. Icons are checked down to their
//! chunks and CRCs ([`crate::image`]), never decoded, so a test needs a structurally complete
//! PNG of a chosen size, not a real picture.
//!
//! Here rather than in `imgroups-testkit`, which builds a whole server: the store conformance
//! suite needs PNGs too, and the stores' tests cannot depend on a crate built on a store.
//! Compiled always, not behind a `testing` feature: a feature only tests turn on would build
//! core, and every crate above it, twice (once for `cargo build`, once for `cargo test`).
//! A binary links none of it.

/// A valid 1×1 PNG (8-bit RGBA, one transparent pixel), decodable by any image library: the
/// smallest icon the server accepts.
pub fn tiny_png() -> Vec<u8> {
    // Signature, then IHDR (1×1, 8-bit RGBA), one IDAT and IEND, with their CRCs.
    const PNG: [u8; 68] = [
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f,
        0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0b, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60,
        0x00, 0x02, 0x00, 0x00, 0x05, 0x00, 0x01, 0x7a, 0x5e, 0xab, 0x3f, 0x00, 0x00, 0x00, 0x00,
        0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];
    PNG.to_vec()
}

/// A structurally complete PNG whose header declares `width` × `height` (its one `IDAT` holds
/// far fewer pixels), then `tail`: for tests of the dimension limits and of bytes after the
/// end, and, varying the width, for icons that must differ.
pub fn png_of(width: u32, height: u32, tail: &[u8]) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    png_chunk(&mut v, b"IHDR", &ihdr);
    png_chunk(&mut v, b"IDAT", &[0x78, 0x9c, 0x63, 0, 0, 0, 1, 0, 1]);
    png_chunk(&mut v, b"IEND", &[]);
    v.extend_from_slice(tail);
    v
}

/// Appends a PNG chunk with its CRC to `v`.
pub fn png_chunk(v: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(kind);
    v.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    v.extend_from_slice(&crc.finalize().to_be_bytes());
}
