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

/// Detects the type of an icon, checking enough of the header that truncated or corrupt files
/// are rejected rather than stored.
pub fn sniff(data: &[u8]) -> Result<ImageType, Error> {
    if data.is_empty() {
        return Err(Error::invalid("icon data must not be empty").with("field", "data"));
    }
    sniff_png(data)
        .or_else(|| sniff_jpeg(data))
        .or_else(|| sniff_gif(data))
        .or_else(|| sniff_isobmff(data))
        .ok_or_else(|| {
            Error::invalid("icon must be a png, jpeg, gif, heic or heif image")
                .with("field", "data")
                .because(Reason::UnsupportedImageType)
        })
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
}
