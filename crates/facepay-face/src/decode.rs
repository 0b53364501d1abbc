//! Bytes to pixels, with the limits that keep a hostile upload harmless.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage};

/// An upload bigger than this is refused before any decoding.
pub const IMAGE_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Width × height above this is refused from the header alone, before the
/// pixels are allocated: a few kilobytes of PNG can claim gigapixels.
pub const IMAGE_PIXELS_MAX: u64 = 25_000_000;
/// Decoder allocations are bounded too, as a second line behind the pixel count.
const DECODER_ALLOC_BYTES_MAX: u64 = IMAGE_PIXELS_MAX * 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the image is empty")]
    Empty,
    #[error("the image is {bytes} bytes, over the limit of {IMAGE_BYTES_MAX}")]
    TooLarge { bytes: usize },
    #[error("the data is not a JPEG or PNG image")]
    NotAnImage,
    #[error("the image is truncated or corrupt: {0}")]
    Truncated(String),
    #[error("the image is {width}x{height}, over the limit of {IMAGE_PIXELS_MAX} pixels")]
    TooManyPixels { width: u32, height: u32 },
    #[error("the image has zero width or height")]
    ZeroSized,
}

impl DecodeError {
    /// A stable machine code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Empty => "image_empty",
            DecodeError::TooLarge { .. } => "image_too_large",
            DecodeError::NotAnImage => "not_an_image",
            DecodeError::Truncated(_) => "image_truncated",
            DecodeError::TooManyPixels { .. } => "image_too_many_pixels",
            DecodeError::ZeroSized => "image_zero_sized",
        }
    }
}

/// Decodes a JPEG or PNG into RGB, upright according to its EXIF orientation.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() > IMAGE_BYTES_MAX {
        return Err(DecodeError::TooLarge { bytes: bytes.len() });
    }
    let format = image::guess_format(bytes).map_err(|_| DecodeError::NotAnImage)?;
    if !matches!(format, ImageFormat::Jpeg | ImageFormat::Png) {
        return Err(DecodeError::NotAnImage);
    }
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(DecodeError::Truncated(
            "the JPEG has no end-of-image marker".into(),
        ));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(DECODER_ALLOC_BYTES_MAX);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(DecodeError::ZeroSized);
    }
    if u64::from(width) * u64::from(height) > IMAGE_PIXELS_MAX {
        return Err(DecodeError::TooManyPixels { width, height });
    }
    let orientation = decoder.orientation().map_err(classify)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// The JPEG decoder fills a cut-off image with grey rather than fail, and a
/// half-grey face must not pay, so we require the end-of-image marker. Some
/// writers pad after it with zero bytes or line breaks.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let end = bytes
        .iter()
        .rposition(|&b| !matches!(b, 0x00 | b'\r' | b'\n'))
        .map_or(0, |i| i + 1);
    bytes[..end].ends_with(&[0xFF, 0xD9])
}

fn classify(error: ImageError) -> DecodeError {
    match error {
        ImageError::Limits(_) => DecodeError::TooManyPixels {
            width: 0,
            height: 0,
        },
        ImageError::Unsupported(_) => DecodeError::NotAnImage,
        other => DecodeError::Truncated(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, Rgb};

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_pixel(width, height, Rgb([200, 100, 50]));
        let mut bytes = Vec::new();
        image::codecs::png::PngEncoder::new(&mut bytes)
            .write_image(
                image.as_raw(),
                width,
                height,
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        bytes
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
            .encode_image(&image)
            .unwrap();
        bytes
    }

    /// A PNG header that claims the given size, with a valid IHDR CRC and no data.
    fn png_header_claiming(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = png(1, 1);
        bytes[16..20].copy_from_slice(&width.to_be_bytes());
        bytes[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn decodes_png_and_jpeg() {
        assert_eq!(decode(&png(7, 5)).unwrap().dimensions(), (7, 5));
        assert_eq!(decode(&jpeg(64, 48)).unwrap().dimensions(), (64, 48));
    }

    #[test]
    fn empty_and_oversized_and_foreign() {
        assert_eq!(decode(&[]), Err(DecodeError::Empty));
        assert_eq!(
            decode(&vec![0u8; IMAGE_BYTES_MAX + 1]),
            Err(DecodeError::TooLarge {
                bytes: IMAGE_BYTES_MAX + 1
            })
        );
        assert_eq!(
            decode(b"hello, I am not a picture"),
            Err(DecodeError::NotAnImage)
        );
        assert_eq!(
            decode(b"GIF89a\x01\x00\x01\x00"),
            Err(DecodeError::NotAnImage)
        );
    }

    #[test]
    fn truncated_jpeg_and_png() {
        let full = jpeg(64, 48);
        let err = decode(&full[..full.len() / 2]).unwrap_err();
        assert!(matches!(err, DecodeError::Truncated(_)), "{err:?}");
        let full = png(64, 48);
        let err = decode(&full[..full.len() - 20]).unwrap_err();
        assert!(matches!(err, DecodeError::Truncated(_)), "{err:?}");
    }

    #[test]
    fn jpeg_cut_anywhere_is_truncated() {
        let full = jpeg(64, 48);
        for cut in [full.len() - 1, full.len() - 2, full.len() * 3 / 4, 700] {
            let err = decode(&full[..cut]).unwrap_err();
            assert!(
                matches!(err, DecodeError::Truncated(_)),
                "cut at {cut}: {err:?}"
            );
        }
        let mut padded = full.clone();
        padded.extend_from_slice(b"\0\0\r\n");
        assert!(decode(&padded).is_ok());
    }

    #[test]
    fn decompression_bomb_is_refused_from_the_header() {
        let err = decode(&png_header_claiming(50_000, 50_000)).unwrap_err();
        assert_eq!(
            err,
            DecodeError::TooManyPixels {
                width: 50_000,
                height: 50_000
            }
        );
    }

    #[test]
    fn zero_sized_is_refused() {
        let err = decode(&png_header_claiming(0, 10)).unwrap_err();
        assert!(
            matches!(err, DecodeError::ZeroSized | DecodeError::Truncated(_)),
            "{err:?}"
        );
    }

    #[test]
    fn exif_orientation_is_honoured() {
        // A 4x2 JPEG with an EXIF APP1 segment saying "rotate 90° clockwise"
        // (orientation 6) decodes as 2x4.
        let plain = jpeg(4, 2);
        let exif: &[u8] = &[
            0xFF, 0xE1, 0x00, 0x22, b'E', b'x', b'i', b'f', 0, 0, b'M', b'M', 0, 42, 0, 0, 0, 8, 0,
            1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0,
        ];
        let mut rotated = plain[..2].to_vec();
        rotated.extend_from_slice(exif);
        rotated.extend_from_slice(&plain[2..]);
        assert_eq!(decode(&rotated).unwrap().dimensions(), (2, 4));
    }
}
