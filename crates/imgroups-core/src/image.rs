//! Group icon type detection from the bytes themselves; a caller's claim is never trusted.

use crate::error::{Error, Reason};

/// An icon type the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Png,
    Jpeg,
    Gif,
    Heic,
    Heif,
}

impl ImageType {
    pub fn mime(self) -> &'static str {
        match self {
            ImageType::Png => "image/png",
            ImageType::Jpeg => "image/jpeg",
            ImageType::Gif => "image/gif",
            ImageType::Heic => "image/heic",
            ImageType::Heif => "image/heif",
        }
    }
}

/// What an icon's header says: its type and, when the header declares them, its dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Image {
    pub kind: ImageType,
    /// The declared size, when the file declares one (see [`inspect`]).
    pub size: Option<Size>,
}

/// Declared dimensions. A file may declare several (GIF frames, HEIF items, JPEG frames):
/// these are the largest width, the largest height and the largest `width × height` of any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub width: u32,
    pub height: u32,
    pub pixels: u64,
}

impl Size {
    fn new(width: u32, height: u32) -> Self {
        Size {
            width,
            height,
            pixels: u64::from(width) * u64::from(height),
        }
    }

    fn max(self, other: Size) -> Size {
        Size {
            width: self.width.max(other.width),
            height: self.height.max(other.height),
            pixels: self.pixels.max(other.pixels),
        }
    }
}

fn grow(size: &mut Option<Size>, more: Size) {
    *size = Some(size.map_or(more, |s| s.max(more)));
}

/// Detects the type of an icon, checking enough of the header that truncated or corrupt files
/// are rejected rather than stored. See [`inspect`] for what else is refused.
pub fn sniff(data: &[u8]) -> Result<ImageType, Error> {
    inspect(data).map(|image| image.kind)
}

/// Detects the type of an icon and reads the dimensions its header declares, without decoding
/// any pixels: a few header fields and a walk over the file's structure, linear in its length.
///
/// - PNG: `IHDR`. JPEG: every SOFn marker segment. GIF: the logical screen and every image
///   descriptor. HEIC/HEIF: every `ispe` property in `meta/iprp/ipco`; a file without one
///   (or whose boxes do not parse) has no declared size and is accepted on its `ftyp` alone,
///   as before: HEIF requires `ispe` on every image item, so real files always have one.
/// - Bytes after the end the format defines — after PNG's `IEND` chunk, JPEG's EOI marker,
///   GIF's trailer (or anything there that is not a GIF block) — are refused
///   (`reason=trailingData`): that is how cheap polyglots (an image with an archive or a
///   script appended) are built, and no image needs them.
/// - A file that simply ends early (no `IEND`, no EOI) is accepted once its header is
///   complete, as it always was: a truncated header is what is refused.
pub fn inspect(data: &[u8]) -> Result<Image, Error> {
    if data.is_empty() {
        return Err(Error::invalid("icon data must not be empty").with("field", "data"));
    }
    let (kind, size) = if let Some(kind) = sniff_png(data) {
        (kind, Some(png_size(data)?))
    } else if let Some(kind) = sniff_jpeg(data) {
        (kind, jpeg_size(data)?)
    } else if let Some(kind) = sniff_gif(data) {
        (kind, Some(gif_size(data)?))
    } else if let Some(kind) = sniff_isobmff(data) {
        (kind, heif_size(data))
    } else {
        return Err(
            Error::invalid("icon must be a png, jpeg, gif, heic or heif image")
                .with("field", "data")
                .because(Reason::UnsupportedImageType),
        );
    };
    Ok(Image { kind, size })
}

fn trailing(format: &str, end: &str, at: usize) -> Error {
    Error::invalid(format!(
        "icon has bytes after the end of the {format} image ({end}, at byte {at})"
    ))
    .with("field", "data")
    .because(Reason::TrailingData)
}

fn damaged(format: &str, what: &str, at: usize) -> Error {
    Error::invalid(format!(
        "icon is a damaged {format} image ({what} at byte {at})"
    ))
    .with("field", "data")
    .because(Reason::UnsupportedImageType)
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn le16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

/// The IHDR size (already checked by [`sniff_png`]), after walking the chunks to `IEND`.
fn png_size(data: &[u8]) -> Result<Size, Error> {
    let width = be32(data, 16).unwrap_or(0);
    let height = be32(data, 20).unwrap_or(0);
    // Chunks: length (4), type (4), data (length), CRC (4).
    let mut at = 8usize;
    while let (Some(length), Some(kind)) = (be32(data, at), data.get(at + 4..at + 8)) {
        let Some(end) = (length as usize).checked_add(at + 12) else {
            break;
        };
        if kind == b"IEND" {
            if end < data.len() {
                return Err(trailing("png", "after the IEND chunk", end));
            }
            break;
        }
        at = end;
    }
    Ok(Size::new(width, height))
}

/// Where the next marker (`FF xx`, not a stuffed `FF 00`, a restart marker or a fill byte)
/// starts, at or after `from`: the end of entropy-coded data, or a resynchronisation after
/// bytes that are not a marker (as libjpeg does).
fn next_jpeg_marker(data: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        at += data.get(at..)?.iter().position(|&b| b == 0xFF)?;
        match data.get(at + 1)? {
            0x00 | 0xD0..=0xD7 | 0xFF => at += 1,
            _ => return Some(at),
        }
    }
}

/// Every SOFn frame header's size, walking the segments to EOI.
fn jpeg_size(data: &[u8]) -> Result<Option<Size>, Error> {
    let mut size = None;
    let mut at = 2usize; // after SOI
    loop {
        match data.get(at) {
            None => break,
            Some(0xFF) => {}
            Some(_) => match next_jpeg_marker(data, at) {
                Some(next) => {
                    at = next;
                    continue;
                }
                None => break,
            },
        }
        // Fill bytes may precede a marker.
        let mut m = at + 1;
        while data.get(m) == Some(&0xFF) {
            m += 1;
        }
        let Some(&marker) = data.get(m) else {
            break;
        };
        at = m + 1;
        match marker {
            0xD9 => {
                if at < data.len() {
                    return Err(trailing("jpeg", "after the EOI marker", at));
                }
                break;
            }
            // Markers without a length: SOI, TEM, restarts.
            0xD8 | 0x01 | 0xD0..=0xD7 => {}
            // `FF 00` is not a marker: resynchronise.
            0x00 => match next_jpeg_marker(data, at) {
                Some(next) => at = next,
                None => break,
            },
            _ => {
                let Some(length) = be16(data, at) else {
                    break;
                };
                if length < 2 {
                    return Err(damaged(
                        "jpeg",
                        "a segment shorter than its length field",
                        at,
                    ));
                }
                // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC): precision (1),
                // height (2), width (2).
                if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
                    if let (Some(h), Some(w)) = (be16(data, at + 3), be16(data, at + 5)) {
                        grow(&mut size, Size::new(u32::from(w), u32::from(h)));
                    }
                }
                at += usize::from(length);
                if marker == 0xDA {
                    // Start of scan: entropy-coded data runs to the next marker.
                    match next_jpeg_marker(data, at) {
                        Some(next) => at = next,
                        None => break,
                    }
                }
            }
        }
    }
    Ok(size)
}

/// Skips GIF data sub-blocks (a length byte, then that many bytes, until a zero length);
/// `None` when the data ends first.
fn skip_gif_sub_blocks(data: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let length = usize::from(*data.get(at)?);
        at += 1;
        if length == 0 {
            return Some(at);
        }
        at += length;
    }
}

/// The logical screen's size and every frame's, walking the blocks to the trailer.
fn gif_size(data: &[u8]) -> Result<Size, Error> {
    // Signature (6), then the logical screen descriptor: width, height (LE), flags, …
    let screen = Size::new(
        u32::from(le16(data, 6).unwrap_or(0)),
        u32::from(le16(data, 8).unwrap_or(0)),
    );
    let mut size = screen;
    let color_table = |flags: u8| {
        if flags & 0x80 != 0 {
            3usize << ((flags & 7) + 1)
        } else {
            0
        }
    };
    let mut at = 13 + color_table(data.get(10).copied().unwrap_or(0));
    while let Some(&block) = data.get(at) {
        match block {
            0x3B => {
                if at + 1 < data.len() {
                    return Err(trailing("gif", "after the trailer", at + 1));
                }
                break;
            }
            0x2C => {
                // Image descriptor: left, top, width, height (LE), flags; then a local color
                // table, the LZW minimum code size and the image data sub-blocks.
                let (Some(w), Some(h), Some(&flags)) =
                    (le16(data, at + 5), le16(data, at + 7), data.get(at + 9))
                else {
                    break;
                };
                size = size.max(Size::new(u32::from(w), u32::from(h)));
                at += 10 + color_table(flags) + 1;
            }
            // Extension: introducer, label, then sub-blocks.
            0x21 => at += 2,
            _ => {
                return Err(trailing("gif", "not a gif block", at));
            }
        }
        match skip_gif_sub_blocks(data, at) {
            Some(next) => at = next,
            None => break,
        }
    }
    Ok(size)
}

/// ISO-BMFF boxes in `data`: (type, body). A box that runs past the data is cut to it; the
/// walk stops at the first malformed header.
fn boxes(data: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let size = be32(data, at)?;
        let kind = data.get(at + 4..at + 8)?;
        let (header, size) = match size {
            0 => (8, data.len() - at),
            1 => {
                let large =
                    (u64::from(be32(data, at + 8)?) << 32) | u64::from(be32(data, at + 12)?);
                (16, usize::try_from(large).ok()?)
            }
            n => (8, n as usize),
        };
        if size < header {
            return None;
        }
        let end = at.checked_add(size)?.min(data.len());
        let body = data.get(at + header..end)?;
        at = end;
        Some((kind, body))
    })
}

fn child<'a>(data: &'a [u8], kind: &[u8]) -> Option<&'a [u8]> {
    boxes(data).find(|(k, _)| *k == kind).map(|(_, body)| body)
}

/// Every `ispe` (image spatial extents: version/flags, width, height) in `meta/iprp/ipco`.
fn heif_size(data: &[u8]) -> Option<Size> {
    // `meta` is a full box: version and flags come before its children.
    let meta = child(data, b"meta")?.get(4..)?;
    let ipco = child(child(meta, b"iprp")?, b"ipco")?;
    let mut size = None;
    for (kind, body) in boxes(ipco) {
        if kind == b"ispe" {
            if let (Some(w), Some(h)) = (be32(body, 4), be32(body, 8)) {
                grow(&mut size, Size::new(w, h));
            }
        }
    }
    size
}

fn sniff_png(data: &[u8]) -> Option<ImageType> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    // The first chunk must be a complete 13-byte IHDR with a non-zero size.
    let rest = data.strip_prefix(SIGNATURE)?;
    let header = rest.get(..8 + 13)?;
    let length = u32::from_be_bytes(header[0..4].try_into().ok()?);
    let width = u32::from_be_bytes(header[8..12].try_into().ok()?);
    let height = u32::from_be_bytes(header[12..16].try_into().ok()?);
    (length == 13 && &header[4..8] == b"IHDR" && width > 0 && height > 0).then_some(ImageType::Png)
}

fn sniff_jpeg(data: &[u8]) -> Option<ImageType> {
    // SOI followed by the start of another marker segment.
    (data.len() >= 4 && data[0..3] == [0xFF, 0xD8, 0xFF] && data[3] >= 0xC0)
        .then_some(ImageType::Jpeg)
}

fn sniff_gif(data: &[u8]) -> Option<ImageType> {
    // Signature plus the logical screen descriptor (7 bytes).
    let is_gif = data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a");
    (is_gif && data.len() >= 13).then_some(ImageType::Gif)
}

/// HEIC/HEIF: an ISO-BMFF `ftyp` box whose major or compatible brands name an image brand.
fn sniff_isobmff(data: &[u8]) -> Option<ImageType> {
    let size = u32::from_be_bytes(data.get(0..4)?.try_into().ok()?) as usize;
    if data.get(4..8)? != b"ftyp" || size < 16 || size > data.len() || !size.is_multiple_of(4) {
        return None;
    }
    let major = &data[8..12];
    let compatible = data[16..size].chunks_exact(4);
    let brands = std::iter::once(major).chain(compatible);
    let mut found = None;
    for brand in brands {
        match brand {
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" => {
                return Some(ImageType::Heic)
            }
            b"mif1" | b"msf1" | b"heif" | b"avif" => found = found.or(Some(ImageType::Heif)),
            _ => {}
        }
    }
    found
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn png() -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
        v.extend_from_slice(&13u32.to_be_bytes());
        v.extend_from_slice(b"IHDR");
        v.extend_from_slice(&1u32.to_be_bytes());
        v.extend_from_slice(&1u32.to_be_bytes());
        v.extend_from_slice(&[8, 6, 0, 0, 0]);
        v.extend_from_slice(&[0, 0, 0, 0]);
        v
    }

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let size = 16 + 4 * compatible.len() as u32;
        let mut v = size.to_be_bytes().to_vec();
        v.extend_from_slice(b"ftyp");
        v.extend_from_slice(major);
        v.extend_from_slice(&0u32.to_be_bytes());
        for brand in compatible {
            v.extend_from_slice(*brand);
        }
        v
    }

    #[test]
    fn detects_each_accepted_type() {
        assert_eq!(sniff(&png()).unwrap(), ImageType::Png);
        assert_eq!(
            sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 16]).unwrap(),
            ImageType::Jpeg
        );
        assert_eq!(
            sniff(b"GIF89a\x01\x00\x01\x00\x00\x00\x00").unwrap(),
            ImageType::Gif
        );
        assert_eq!(sniff(&ftyp(b"heic", &[b"mif1"])).unwrap(), ImageType::Heic);
        assert_eq!(sniff(&ftyp(b"mif1", &[b"heic"])).unwrap(), ImageType::Heic);
        assert_eq!(sniff(&ftyp(b"mif1", &[])).unwrap(), ImageType::Heif);
    }

    #[test]
    fn rejects_everything_else() {
        let truncated_png = &png()[..12];
        let mp4 = ftyp(b"isom", &[b"mp41"]);
        for data in [
            truncated_png,
            b"hello world".as_slice(),
            b"GIF89a".as_slice(),
            &[0xFF, 0xD8],
            mp4.as_slice(),
            b"<svg></svg>".as_slice(),
        ] {
            let err = sniff(data).unwrap_err();
            assert_eq!(err.context_value("reason"), Some("unsupportedImageType"));
        }
        assert_eq!(sniff(&[]).unwrap_err().context_value("field"), Some("data"));
    }

    /// A PNG with the given IHDR size, a tiny IDAT and IEND, then `tail`.
    pub(crate) fn png_of(width: u32, height: u32, tail: &[u8]) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8], data: &[u8]| {
            v.extend_from_slice(&(data.len() as u32).to_be_bytes());
            v.extend_from_slice(kind);
            v.extend_from_slice(data);
            v.extend_from_slice(&[0, 0, 0, 0]); // CRCs are not checked
        };
        let mut ihdr = width.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        chunk(b"IHDR", &ihdr);
        chunk(b"IDAT", &[0x78, 0x9c, 0x63, 0, 0, 0, 1, 0, 1]);
        chunk(b"IEND", &[]);
        v.extend_from_slice(tail);
        v
    }

    /// A GIF89a with the given screen size, one frame of `frame` size, the trailer, `tail`.
    fn gif_of(screen: (u16, u16), frame: (u16, u16), tail: &[u8]) -> Vec<u8> {
        let mut v = b"GIF89a".to_vec();
        v.extend_from_slice(&screen.0.to_le_bytes());
        v.extend_from_slice(&screen.1.to_le_bytes());
        v.extend_from_slice(&[0x80, 0, 0]); // global color table of 2 entries
        v.extend_from_slice(&[0, 0, 0, 0xFF, 0xFF, 0xFF]);
        v.extend_from_slice(&[0x21, 0xF9, 4, 1, 0, 0, 0, 0]); // graphic control extension
        v.push(0x2C);
        v.extend_from_slice(&[0, 0, 0, 0]);
        v.extend_from_slice(&frame.0.to_le_bytes());
        v.extend_from_slice(&frame.1.to_le_bytes());
        v.push(0);
        v.extend_from_slice(&[2, 2, 0x44, 0x01, 0]); // LZW code size, one sub-block, end
        v.push(0x3B);
        v.extend_from_slice(tail);
        v
    }

    /// A baseline JPEG skeleton: SOI, APP0, SOF0 of the given size, SOS with a little
    /// entropy-coded data (with a stuffed FF 00 and a restart marker), EOI, then `tail`.
    fn jpeg_of(width: u16, height: u16, tail: &[u8]) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8];
        v.extend_from_slice(&[0xFF, 0xE0, 0, 6, b'J', b'F', b'I', b'F']);
        v.extend_from_slice(&[0xFF, 0xC0, 0, 11, 8]);
        v.extend_from_slice(&height.to_be_bytes());
        v.extend_from_slice(&width.to_be_bytes());
        v.extend_from_slice(&[1, 1, 0x11, 0]);
        v.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 0x3F, 0]);
        v.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]);
        v.extend_from_slice(&[0xFF, 0xD9]);
        v.extend_from_slice(tail);
        v
    }

    fn full_box(kind: &[u8], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 12) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(&[0, 0, 0, 0]);
        v.extend_from_slice(body);
        v
    }

    fn plain_box(kind: &[u8], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    /// A HEIC skeleton: `ftyp`, then `meta/iprp/ipco` with one `ispe` per size.
    fn heic_of(sizes: &[(u32, u32)]) -> Vec<u8> {
        let ispe: Vec<u8> = sizes
            .iter()
            .flat_map(|(w, h)| {
                let mut body = w.to_be_bytes().to_vec();
                body.extend_from_slice(&h.to_be_bytes());
                full_box(b"ispe", &body)
            })
            .collect();
        let mut meta_body = full_box(b"hdlr", &[0; 20]);
        meta_body.extend(plain_box(b"iprp", &plain_box(b"ipco", &ispe)));
        let mut v = ftyp(b"heic", &[b"mif1"]);
        v.extend(full_box(b"meta", &meta_body));
        v.extend(plain_box(b"mdat", &[1, 2, 3]));
        v
    }

    fn size_of(data: &[u8]) -> Option<(u32, u32)> {
        inspect(data).unwrap().size.map(|s| (s.width, s.height))
    }

    fn reason(data: &[u8]) -> Option<String> {
        inspect(data)
            .err()
            .and_then(|e| e.context_value("reason").map(str::to_owned))
    }

    #[test]
    fn dimensions_are_read_from_each_header() {
        assert_eq!(size_of(&png()), Some((1, 1)));
        assert_eq!(size_of(&png_of(640, 480, &[])), Some((640, 480)));
        assert_eq!(size_of(&gif_of((10, 20), (10, 20), &[])), Some((10, 20)));
        // The largest of the screen and the frames.
        assert_eq!(size_of(&gif_of((10, 20), (30, 5), &[])), Some((30, 20)));
        assert_eq!(size_of(&jpeg_of(800, 600, &[])), Some((800, 600)));
        assert_eq!(
            size_of(&heic_of(&[(4032, 3024), (512, 384)])),
            Some((4032, 3024))
        );
        // Best effort: no SOF (the conformance suite's JPEG), no ispe (an ftyp alone).
        assert_eq!(size_of(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 16]), None);
        assert_eq!(size_of(&ftyp(b"heic", &[b"mif1"])), None);
    }

    #[test]
    fn bytes_after_the_end_are_refused() {
        let zip = b"PK\x03\x04 an appended archive";
        for data in [
            png_of(1, 1, zip),
            png_of(1, 1, &[0]),
            gif_of((1, 1), (1, 1), zip),
            jpeg_of(1, 1, zip),
            jpeg_of(1, 1, &jpeg_of(1, 1, &[])), // a second image appended
        ] {
            assert_eq!(reason(&data).as_deref(), Some("trailingData"));
        }
        // Anything that is not a GIF block where a block must start ends the image too.
        let mut gif = gif_of((1, 1), (1, 1), &[]);
        gif.pop();
        gif.extend_from_slice(b"<script>");
        assert_eq!(reason(&gif).as_deref(), Some("trailingData"));
        // Complete files, and files that merely stop early, are fine.
        for data in [
            png_of(1, 1, &[]),
            gif_of((1, 1), (1, 1), &[]),
            jpeg_of(1, 1, &[]),
            png_of(1, 1, &[])[..40].to_vec(),
        ] {
            assert!(inspect(&data).is_ok());
        }
    }

    #[test]
    fn a_damaged_jpeg_segment_is_refused() {
        let data = [0xFF, 0xD8, 0xFF, 0xE0, 0, 1, 0xFF, 0xD9];
        assert_eq!(reason(&data).as_deref(), Some("unsupportedImageType"));
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The parser the network reaches first: no input makes it panic or loop.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = inspect(&data);
        }

        /// The same, past each signature, where the structure walks start.
        #[test]
        fn arbitrary_bodies_after_a_signature_never_panic(
            prefix in 0usize..5,
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut data = match prefix {
                0 => png_of(1, 1, &[])[..33].to_vec(),
                1 => vec![0xFF, 0xD8, 0xFF, 0xC0],
                2 => b"GIF89a\x01\x00\x01\x00\x80\x00\x00".to_vec(),
                3 => ftyp(b"heic", &[b"mif1"]),
                _ => heic_of(&[(1, 1)]),
            };
            data.extend_from_slice(&body);
            let _ = inspect(&data);
        }

        /// A generated header's dimensions come back exactly.
        #[test]
        fn png_dimensions_round_trip(width in 1u32..=u32::MAX, height in 1u32..=u32::MAX) {
            let image = inspect(&png_of(width, height, &[])).unwrap();
            prop_assert_eq!(image.kind, ImageType::Png);
            prop_assert_eq!(image.size, Some(Size::new(width, height)));
        }

        #[test]
        fn gif_dimensions_round_trip(width in any::<u16>(), height in any::<u16>()) {
            let image = inspect(&gif_of((width, height), (width, height), &[])).unwrap();
            prop_assert_eq!(image.kind, ImageType::Gif);
            prop_assert_eq!(image.size, Some(Size::new(width.into(), height.into())));
        }

        #[test]
        fn jpeg_and_heic_dimensions_round_trip(width in any::<u16>(), height in any::<u16>()) {
            let jpeg = inspect(&jpeg_of(width, height, &[])).unwrap();
            prop_assert_eq!(jpeg.size, Some(Size::new(width.into(), height.into())));
            let heic = inspect(&heic_of(&[(width.into(), height.into())])).unwrap();
            prop_assert_eq!(heic.size, Some(Size::new(width.into(), height.into())));
        }
    }
}
