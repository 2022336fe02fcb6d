//! JPEG decoding as the reference does it. Pillow decodes JPEG with its bundled libjpeg-turbo
//! (accurate integer IDCT, "fancy" chroma upsampling); so does this, through TurboJPEG (the
//! `turbojpeg` crate builds libjpeg-turbo from source), and the pixels are Pillow's bit for bit
//! (tests/preprocess.rs). Other decoders differ by a few levels wherever chroma is subsampled.

use turbojpeg::{Colorspace, Decompressor, Image, PixelFormat};

use crate::error::{Error, Result};

/// Progressive scans accepted: a hostile file can hold thousands, each a pass over the image
/// (cameras and encoders write about ten).
const MAX_SCANS: u32 = 1000;

/// Whether `bytes` starts like a JPEG file (start-of-image marker).
pub(super) fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// Decodes a JPEG file's bytes into RGB8 as `Image.open(path).convert("RGB")` does.
pub(super) fn decode(bytes: &[u8], path: &std::path::Path) -> Result<(Vec<u8>, usize, usize)> {
    let fail = |e: turbojpeg::Error| Error::Image(format!("cannot decode {}: {e}", path.display()));
    let mut decompressor = Decompressor::new().map_err(fail)?;
    decompressor.set_scan_limit(MAX_SCANS).map_err(fail)?;
    let header = decompressor.read_header(bytes).map_err(fail)?;
    let (width, height) = (header.width, header.height);
    super::check_pixel_count(width, height, path)?;
    // Pillow opens 4-channel JPEGs as CMYK and converts them itself; everything else libjpeg
    // converts to RGB (grayscale by repeating the value).
    let cmyk = matches!(header.colorspace, Colorspace::CMYK | Colorspace::YCCK);
    let format = if cmyk { PixelFormat::CMYK } else { PixelFormat::RGB };
    let pitch = width * format.size();
    let mut image = Image { pixels: vec![0; pitch * height], width, pitch, height, format };
    decompressor.decompress(bytes, image.as_deref_mut()).map_err(fail)?;
    let rgb = if cmyk { cmyk_to_rgb(&image.pixels) } else { image.pixels };
    Ok((rgb, width, height))
}

/// Pillow's CMYK JPEG → RGB: the stored values are inverted (Adobe's convention, which Pillow
/// assumes for every CMYK JPEG), then Pillow's `cmyk2rgb`: `(255 - k) - c·(255 - k)/255`, with
/// its rounding.
fn cmyk_to_rgb(stored: &[u8]) -> Vec<u8> {
    let mul_div_255 = |a: u32, b: u32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    let (pixels, _) = stored.as_chunks::<4>();
    pixels
        .iter()
        .flat_map(|px| {
            let [c, m, y, k] = px.map(|v| 255 - v as u32);
            let nk = 255 - k;
            [c, m, y].map(|v| (nk - mul_div_255(v, nk)) as u8)
        })
        .collect()
}
