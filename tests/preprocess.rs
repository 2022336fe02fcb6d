//! Image preprocessing against the PyTorch reference.
//!
//! The fixtures in tests/fixtures/preprocess/ come from tools/gen_preprocess_fixtures.py, which
//! runs the real MobileCLIP v1 (ml-mobileclip) and MobileCLIP2 (open_clip) pipelines on PIL
//! images. For each input it stores the uint8 image after Resize + CenterCrop, and for each
//! pipeline a lookup table of what its ToTensor (+ Normalize) gives every uint8 value; it
//! asserts that the real pipeline output equals LUT[channel][pixel] bit for bit, so the
//! expected tensors below are exactly the reference tensors.

use mobileclip_wasm::error::Error;
use mobileclip_wasm::preprocess::{ImageView, Interpolation, PixelFormat, PreprocessConfig, preprocess};

#[test]
fn zero_sized_images_are_rejected() {
    for (w, h) in [(0, 0), (0, 7), (7, 0)] {
        for format in [PixelFormat::Rgb8, PixelFormat::Rgba8] {
            let err = ImageView::new(&[], w, h, format).unwrap_err();
            let Error::Image(msg) = &err else {
                panic!("expected Error::Image for {w}x{h}, got {err:?}");
            };
            assert!(msg.contains("zero size"), "{msg}");
            assert!(msg.contains(&format!("({w}x{h})")), "{msg}");
            assert_eq!(err.code(), "INVALID_IMAGE");
            assert!(err.to_string().starts_with("invalid image: "), "{err}");
        }
    }
}

#[test]
fn wrong_buffer_lengths_are_rejected() {
    let (w, h) = (13usize, 7usize);
    for (format, bpp, name) in [(PixelFormat::Rgb8, 3, "Rgb8"), (PixelFormat::Rgba8, 4, "Rgba8")] {
        let needed = w * h * bpp;
        // The right length works; the other format's length, off-by-one and empty do not.
        assert!(ImageView::new(&vec![0; needed], w, h, format).is_ok());
        let other = w * h * (7 - bpp);
        for len in [0, needed - 1, needed + 1, other] {
            let data = vec![0u8; len];
            let err = ImageView::new(&data, w, h, format).unwrap_err();
            let Error::Image(msg) = &err else {
                panic!("expected Error::Image for {len} bytes, got {err:?}");
            };
            let expected =
                format!("pixel buffer has {len} bytes but a {w}x{h} {name} image needs {needed} ({w} * {h} * {bpp})");
            assert_eq!(msg, &expected);
        }
    }
}

#[test]
fn overflowing_image_sizes_are_rejected() {
    let err = ImageView::new(&[], usize::MAX, 3, PixelFormat::Rgba8).unwrap_err();
    let Error::Image(msg) = &err else {
        panic!("expected Error::Image, got {err:?}");
    };
    assert!(msg.contains(&format!("{}x3", usize::MAX)) && msg.contains("too large"), "{msg}");
}

#[test]
fn preprocess_rechecks_hand_built_views() {
    let data = [0u8; 10];
    let cfg = PreprocessConfig::unnormalized(4, Interpolation::Bilinear);
    for (w, h) in [(2, 2), (0, 3)] {
        let view = ImageView { data: &data, width: w, height: h, format: PixelFormat::Rgb8 };
        let err = preprocess(&view, &cfg).unwrap_err();
        let Error::Image(msg) = &err else {
            panic!("expected Error::Image for {w}x{h}, got {err:?}");
        };
        assert!(msg.contains(&format!("{w}x{h}")), "{msg}");
    }
}

#[test]
fn invalid_configs_are_rejected() {
    let data = [7u8; 5 * 4 * 3];
    let image = ImageView::new(&data, 5, 4, PixelFormat::Rgb8).unwrap();
    let good = PreprocessConfig::openai(8, Interpolation::Bicubic);
    assert_eq!(preprocess(&image, &good).unwrap().len(), 3 * 8 * 8);
    let cases = [
        (PreprocessConfig { image_size: 0, ..good.clone() }, "image_size must be positive"),
        (PreprocessConfig { std: [0.2, 0.0, 0.2], ..good.clone() }, "std must be finite and non-zero"),
        (PreprocessConfig { std: [0.2, f32::NAN, 0.2], ..good.clone() }, "std must be finite"),
        (PreprocessConfig { mean: [f32::INFINITY, 0.0, 0.0], ..good.clone() }, "mean must be finite"),
    ];
    for (cfg, needle) in cases {
        let err = preprocess(&image, &cfg).unwrap_err();
        let Error::Config(msg) = &err else {
            panic!("expected Error::Config for {cfg:?}, got {err:?}");
        };
        assert!(msg.contains(needle), "{msg}");
    }
}

#[test]
fn config_serde_uses_lowercase_interpolation() {
    let cfg = PreprocessConfig::unnormalized(256, Interpolation::Bilinear);
    let json = serde_json::to_value(&cfg).unwrap();
    assert_eq!(json["interpolation"], "bilinear");
    let back: PreprocessConfig = serde_json::from_value(json).unwrap();
    assert_eq!(back, cfg);
    let bicubic: Interpolation = serde_json::from_str("\"bicubic\"").unwrap();
    assert_eq!(bicubic, Interpolation::Bicubic);
}

/// Tests against the generated fixtures; decoding the PNGs needs the `cli` feature (`image`).
#[cfg(feature = "cli")]
mod fixtures {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use mobileclip_wasm::error::Error;
    use mobileclip_wasm::preprocess::{
        ImageView, Interpolation, PixelFormat, PreprocessConfig, RgbImage, center_crop, center_crop_offset,
        load_image_file, preprocess, resize, resize_and_center_crop, resize_shortest_side, resized_size,
        to_normalized_chw,
    };
    use serde_json::Value;

    fn dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess")
    }

    fn manifest() -> Value {
        let text = std::fs::read_to_string(dir().join("manifest.json"))
            .expect("tests/fixtures/preprocess/manifest.json (run tools/gen_preprocess_fixtures.py)");
        serde_json::from_str(&text).unwrap()
    }

    fn list<'a>(m: &'a Value, key: &str) -> &'a Vec<Value> {
        m[key].as_array().unwrap_or_else(|| panic!("manifest has no {key}"))
    }

    fn usize_of(v: &Value) -> usize {
        v.as_u64().unwrap() as usize
    }

    fn interpolation(v: &Value) -> Interpolation {
        serde_json::from_value(v.clone()).unwrap()
    }

    /// An input image as the browser would hand it over: RGBA stays RGBA (straight alpha).
    struct Input {
        data: Vec<u8>,
        width: usize,
        height: usize,
        format: PixelFormat,
    }

    impl Input {
        fn view(&self) -> ImageView<'_> {
            ImageView::new(&self.data, self.width, self.height, self.format).unwrap()
        }
    }

    fn load_input(m: &Value, name: &str) -> Input {
        let entry = list(m, "images").iter().find(|e| e["name"] == name).unwrap();
        let path = dir().join(entry["file"].as_str().unwrap());
        let (width, height) = (usize_of(&entry["width"]), usize_of(&entry["height"]));
        let input = if entry["mode"] == "RGBA" {
            let img = image::open(&path).unwrap().into_rgba8();
            Input { data: img.into_raw(), width, height, format: PixelFormat::Rgba8 }
        } else {
            let (data, w, h) = load_image_file(&path).unwrap();
            assert_eq!((w, h), (width, height));
            Input { data, width, height, format: PixelFormat::Rgb8 }
        };
        assert_eq!(input.data.len(), width * height * input.format.bytes_per_pixel());
        input
    }

    /// The same pixels as straight RGBA with an arbitrary alpha channel, which must be ignored.
    fn with_alpha(input: &Input) -> Option<Input> {
        (input.format == PixelFormat::Rgb8).then(|| Input {
            data: input
                .data
                .chunks_exact(3)
                .enumerate()
                .flat_map(|(i, p)| [p[0], p[1], p[2], (i * 37 % 256) as u8])
                .collect(),
            width: input.width,
            height: input.height,
            format: PixelFormat::Rgba8,
        })
    }

    fn load_rgb(file: &str) -> RgbImage {
        let (data, width, height) = load_image_file(&dir().join(file)).unwrap();
        RgbImage { data, width, height }
    }

    fn load_lut(file: &str) -> Vec<f32> {
        let bytes = std::fs::read(dir().join(file)).unwrap();
        assert_eq!(bytes.len(), 3 * 256 * 4, "{file}");
        bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
    }

    /// The reference tensor: LUT[channel][pixel] over the reference crop, CHW.
    fn expected_tensor(lut: &[f32], crop: &RgbImage) -> Vec<f32> {
        let plane = crop.width * crop.height;
        let mut out = vec![0.0; 3 * plane];
        for (i, px) in crop.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + i] = lut[c * 256 + px[c] as usize];
            }
        }
        out
    }

    fn assert_same_image(got: &RgbImage, expected: &RgbImage, what: &str) {
        assert_eq!((got.width, got.height), (expected.width, expected.height), "{what}: size");
        let diffs = got.data.iter().zip(&expected.data).filter(|(a, b)| a != b).count();
        let max = got.data.iter().zip(&expected.data).map(|(&a, &b)| a.abs_diff(b)).max().unwrap_or(0);
        assert_eq!(diffs, 0, "{what}: {diffs} bytes differ from the reference, max |diff| {max}");
    }

    /// Crop entries of the manifest that a pipeline with this size and filter produced.
    fn crops_for(m: &Value, size: usize, interp: Interpolation) -> Vec<&Value> {
        list(m, "crops")
            .iter()
            .filter(|c| usize_of(&c["image_size"]) == size && interpolation(&c["interpolation"]) == interp)
            .collect()
    }

    #[test]
    fn every_pipeline_matches_the_reference_tensor_bit_exactly() {
        let m = manifest();
        let pipelines = list(&m, "pipelines");
        assert_eq!(pipelines.len(), 8, "v1 (256, 224) and six MobileCLIP2 pipelines");
        let mut report = BTreeMap::new();
        for p in pipelines {
            let name = p["name"].as_str().unwrap();
            let cfg: PreprocessConfig = serde_json::from_value(p.clone()).unwrap();
            let lut = load_lut(p["lut"].as_str().unwrap());
            let crops = crops_for(&m, cfg.image_size, cfg.interpolation);
            assert!(crops.len() >= 5, "{name}: only {} fixtures", crops.len());
            for c in crops {
                let image = c["image"].as_str().unwrap();
                let input = load_input(&m, image);
                let got = preprocess(&input.view(), &cfg).unwrap();
                let expected = expected_tensor(&lut, &load_rgb(c["file"].as_str().unwrap()));
                assert_eq!(got.len(), 3 * cfg.image_size * cfg.image_size);
                let plane = cfg.image_size * cfg.image_size;
                let mut mismatches = 0usize;
                let mut max_u8 = 0.0f32;
                for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                    if g.to_bits() != e.to_bits() {
                        mismatches += 1;
                    }
                    // |diff| in uint8 steps once the normalisation is undone.
                    max_u8 = max_u8.max((g - e).abs() * cfg.std[i / plane] * 255.0);
                }
                report.insert(format!("{name:18} {image:24}"), (max_u8, mismatches));
                if let Some(rgba) = with_alpha(&input) {
                    assert!(preprocess(&rgba.view(), &cfg).unwrap() == got, "{name} on {image} as RGBA");
                }
                assert!(max_u8 <= 1.0, "{name} on {image}: max |diff| {max_u8} > 1/255");
                assert_eq!(mismatches, 0, "{name} on {image}: {mismatches} values not bit-identical");
            }
        }
        for (k, (max, n)) in &report {
            println!("{k} max|diff|*255 = {max} ({n} values not bit-identical)");
        }
    }

    #[test]
    fn model_configs_and_normalisation_match_torch() {
        let m = manifest();
        for p in list(&m, "pipelines") {
            let cfg: PreprocessConfig = serde_json::from_value(p.clone()).unwrap();
            let constructor = if cfg.mean == [0.0; 3] && cfg.std == [1.0; 3] {
                PreprocessConfig::unnormalized(cfg.image_size, cfg.interpolation)
            } else {
                PreprocessConfig::openai(cfg.image_size, cfg.interpolation)
            };
            assert_eq!(constructor, cfg, "{}", p["name"]);
            // ToTensor + Normalize of every uint8 value, against torch's own output.
            let lut = load_lut(p["lut"].as_str().unwrap());
            let ramp = RgbImage { data: (0..=255u8).flat_map(|v| [v, v, v]).collect(), width: 256, height: 1 };
            let got = to_normalized_chw(&ramp, cfg.mean, cfg.std);
            let same = got.iter().zip(&lut).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{}: normalisation differs from torch", p["name"]);
        }
    }

    #[test]
    fn resize_and_center_crop_equal_pillow_and_torchvision_u8() {
        let m = manifest();
        let crops = list(&m, "crops");
        assert!(crops.len() >= 20);
        for c in crops {
            let image = c["image"].as_str().unwrap();
            let size = usize_of(&c["image_size"]);
            let interp = interpolation(&c["interpolation"]);
            let what = format!("{image} -> {size} {interp:?}");
            let input = load_input(&m, image);
            let expected = load_rgb(c["file"].as_str().unwrap());
            // Fused path (only the cropped pixels are resampled) ...
            let fused = resize_and_center_crop(&input.view(), size, interp);
            assert_same_image(&fused, &expected, &what);
            // ... and the plain one: full Pillow resize, then torchvision's crop.
            let resized = resize_shortest_side(&input.view(), size, interp);
            let (rw, rh) = (usize_of(&c["resized"][0]), usize_of(&c["resized"][1]));
            assert_eq!((resized.width, resized.height), (rw, rh), "{what}");
            assert_same_image(&center_crop(&resized.view(), size), &expected, &what);
        }
    }

    #[test]
    fn images_smaller_than_the_crop_are_upscaled_like_torchvision() {
        let m = manifest();
        let mut checked = 0;
        for p in list(&m, "pipelines") {
            let cfg: PreprocessConfig = serde_json::from_value(p.clone()).unwrap();
            let lut = load_lut(p["lut"].as_str().unwrap());
            for c in crops_for(&m, cfg.image_size, cfg.interpolation) {
                let input = load_input(&m, c["image"].as_str().unwrap());
                if input.width >= cfg.image_size && input.height >= cfg.image_size {
                    continue;
                }
                let got = preprocess(&input.view(), &cfg).unwrap();
                let expected = expected_tensor(&lut, &load_rgb(c["file"].as_str().unwrap()));
                assert!(
                    got.iter().zip(&expected).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{} on {}x{}",
                    p["name"],
                    input.width,
                    input.height
                );
                checked += 1;
            }
        }
        // 1x40, 45x1, 5x3, 97x255, 123x187, 173x139 and 301x217 (at 256) are smaller than the crop.
        assert!(checked >= 30, "only {checked} small-image cases");
    }

    #[test]
    fn rgba_input_drops_alpha_without_premultiplying() {
        let m = manifest();
        let input = load_input(&m, "astronaut_rgba_123x187");
        assert_eq!(input.format, PixelFormat::Rgba8);
        let alphas: Vec<u8> = input.data.chunks_exact(4).map(|p| p[3]).collect();
        assert_eq!(alphas.iter().min(), Some(&0));
        assert_eq!(alphas.iter().max(), Some(&255));
        let rgb: Vec<u8> = input.data.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        let rgb_view = ImageView::new(&rgb, input.width, input.height, PixelFormat::Rgb8).unwrap();
        // Premultiplied pixels would differ wherever alpha < 255 (and the colour is not black).
        let premultiplied: Vec<u8> = input
            .data
            .chunks_exact(4)
            .flat_map(|p| {
                let a = p[3] as u32;
                [0, 1, 2].map(|c| ((p[c] as u32 * a + 127) / 255) as u8)
            })
            .collect();
        let premul_view = ImageView::new(&premultiplied, input.width, input.height, PixelFormat::Rgb8).unwrap();
        for cfg in [
            PreprocessConfig::unnormalized(256, Interpolation::Bilinear),
            PreprocessConfig::openai(224, Interpolation::Bicubic),
        ] {
            let from_rgba = preprocess(&input.view(), &cfg).unwrap();
            assert_eq!(from_rgba, preprocess(&rgb_view, &cfg).unwrap());
            assert_ne!(from_rgba, preprocess(&premul_view, &cfg).unwrap());
        }
    }

    /// JPEG files decode to exactly Pillow's pixels (`Image.open(f).convert("RGB")`, libjpeg-turbo):
    /// baseline and progressive, 4:2:0 / 4:2:2 / 4:4:4, odd sizes, grayscale, CMYK, and an EXIF
    /// orientation, which Pillow's `Image.open` (and so the reference) does not apply.
    #[test]
    fn jpeg_files_decode_exactly_like_pillow() {
        let m = manifest();
        let jpegs: Vec<&Value> = list(&m, "images").iter().filter(|e| e.get("decoded").is_some()).collect();
        assert!(jpegs.len() >= 8, "{} JPEG fixtures", jpegs.len());
        for mode in ["RGB", "L", "CMYK"] {
            assert!(jpegs.iter().any(|e| e["mode"] == mode), "no {mode} JPEG");
        }
        let mut failures = Vec::new();
        for e in jpegs {
            let file = e["file"].as_str().unwrap();
            let (data, width, height) = load_image_file(&dir().join(file)).unwrap();
            let expected = load_rgb(e["decoded"].as_str().unwrap());
            assert_eq!((width, height), (expected.width, expected.height), "{file}");
            let max = data.iter().zip(&expected.data).map(|(&a, &b)| a.abs_diff(b)).max().unwrap_or(0);
            let differing = data.iter().zip(&expected.data).filter(|(a, b)| a != b).count();
            println!("{file:45} max |diff| {max}/255, {differing} of {} values differ", data.len());
            if differing > 0 {
                failures.push(format!("{file}: {differing} values differ, max {max}"));
            }
        }
        assert!(failures.is_empty(), "not Pillow's pixels: {failures:#?}");
    }

    #[test]
    fn grayscale_files_are_expanded_to_rgb() {
        let m = manifest();
        let entry = list(&m, "images").iter().find(|e| e["mode"] == "L").unwrap();
        let (data, w, h) = load_image_file(&dir().join(entry["file"].as_str().unwrap())).unwrap();
        assert_eq!(data.len(), w * h * 3);
        assert!(data.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]));
        assert!(data.chunks_exact(3).any(|p| p[0] != data[0]), "not a constant image");
    }

    #[test]
    fn resize_equals_pillow_at_arbitrary_sizes() {
        let m = manifest();
        let resizes = list(&m, "resizes");
        assert!(resizes.len() >= 5);
        for r in resizes {
            let input = load_input(&m, r["image"].as_str().unwrap());
            let (w, h) = (usize_of(&r["width"]), usize_of(&r["height"]));
            let interp = interpolation(&r["interpolation"]);
            let got = resize(&input.view(), w, h, interp);
            let expected = load_rgb(r["file"].as_str().unwrap());
            assert_same_image(&got, &expected, r["file"].as_str().unwrap());
            if let Some(rgba) = with_alpha(&input) {
                let got = resize(&rgba.view(), w, h, interp);
                assert_same_image(&got, &expected, &format!("{} as RGBA", r["file"]));
            }
        }
    }

    #[test]
    fn center_crop_pads_like_torchvision() {
        let m = manifest();
        let cases = list(&m, "center_crops");
        assert!(cases.len() >= 3);
        for c in cases {
            let input = load_input(&m, c["image"].as_str().unwrap());
            let size = usize_of(&c["size"]);
            assert!(input.width < size || input.height < size, "not a padding case");
            let expected = load_rgb(c["file"].as_str().unwrap());
            let file = c["file"].as_str().unwrap();
            assert_same_image(&center_crop(&input.view(), size), &expected, file);
            let rgba = with_alpha(&input).unwrap();
            let what = format!("{file} as RGBA");
            assert_same_image(&center_crop(&rgba.view(), size), &expected, &what);
        }
    }

    #[test]
    fn resize_and_crop_geometry_matches_torchvision() {
        let m = manifest();
        let rows = list(&m, "geometry");
        assert!(rows.len() > 300);
        for g in rows {
            if let Some(offset) = g.get("offset_only") {
                let (len, crop) = (usize_of(&g["length"]), usize_of(&g["crop"]));
                assert_eq!(center_crop_offset(len, crop), offset.as_i64().unwrap() as isize, "{g}");
                continue;
            }
            let (w, h, size) = (usize_of(&g["width"]), usize_of(&g["height"]), usize_of(&g["size"]));
            let (rw, rh) = resized_size(w, h, size);
            assert_eq!([rw, rh], [usize_of(&g["resized"][0]), usize_of(&g["resized"][1])], "{g}");
            let ox = center_crop_offset(rw, size);
            let oy = center_crop_offset(rh, size);
            assert_eq!(
                [ox as i64, oy as i64],
                [g["offset"][0].as_i64().unwrap(), g["offset"][1].as_i64().unwrap()],
                "{g}"
            );
        }
    }

    #[test]
    fn unreadable_and_undecodable_files_name_the_path() {
        let missing = dir().join("does_not_exist.png");
        match load_image_file(&missing) {
            Err(Error::Io { path, source }) => {
                assert_eq!(path, missing.display().to_string());
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected Error::Io, got {other:?}"),
        }

        let tmp = std::env::temp_dir().join(format!("mobileclip-preprocess-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let garbage = tmp.join("garbage.png");
        std::fs::write(&garbage, b"this is not an image at all").unwrap();
        let png = std::fs::read(dir().join("chelsea_5x3.png")).unwrap();
        let jpeg = std::fs::read(dir().join("jpeg_coffee_444_151x97.jpg")).unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = tmp.join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let mut jpeg_garbage = jpeg[..3].to_vec();
        jpeg_garbage.extend(b"not the rest of a JPEG file");
        let mut jpeg_no_scan = jpeg.clone();
        let sos = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        jpeg_no_scan.truncate(sos);
        let undecodable = [
            write("garbage.png", b"this is not an image at all"),
            write("truncated.png", &png[..png.len() / 2]),
            write("truncated.jpg", &jpeg[..jpeg.len() / 2]),
            write("no_scan.jpg", &jpeg_no_scan),
            write("garbage.jpg", &jpeg_garbage),
            write("soi_only.jpg", &[0xFF, 0xD8, 0xFF]),
        ];
        for path in &undecodable {
            match load_image_file(path) {
                Err(Error::Image(msg)) => {
                    assert!(msg.contains(&path.display().to_string()), "{msg}");
                    assert!(msg.starts_with("cannot decode"), "{msg}");
                }
                other => panic!("expected Error::Image for {}, got {other:?}", path.display()),
            }
        }

        // Decompression bombs: headers claiming 65500x65500 pixels are refused before decoding.
        let mut jpeg_bomb = jpeg.clone();
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        jpeg_bomb[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xDC, 0xFF, 0xDC]); // height, width
        let mut png_bomb = png.clone();
        png_bomb[16..24].copy_from_slice(&[0, 0, 0xFF, 0xDC, 0, 0, 0xFF, 0xDC]); // IHDR width, height
        let crc = crc32fast::hash(&png_bomb[12..29]);
        png_bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        for path in [write("bomb.jpg", &jpeg_bomb), write("bomb.png", &png_bomb)] {
            match load_image_file(&path) {
                Err(Error::Image(msg)) => {
                    assert!(msg.contains("is 65500x65500, more than the 178956970 pixels accepted"), "{msg}")
                }
                other => panic!("expected Error::Image for {}, got {other:?}", path.display()),
            }
        }
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    /// `cargo test --release --test preprocess -- --ignored --nocapture`
    #[test]
    #[ignore = "timing; run in release mode"]
    fn large_photo_timing() {
        let m = manifest();
        let photo = load_input(&m, "chelsea_301x217");
        let big = resize(&photo.view(), 4032, 3024, Interpolation::Bicubic);
        let rgba: Vec<u8> = big.data.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
        for (format, data) in [(PixelFormat::Rgba8, &rgba), (PixelFormat::Rgb8, &big.data)] {
            let view = ImageView::new(data, 4032, 3024, format).unwrap();
            for cfg in [
                PreprocessConfig::unnormalized(256, Interpolation::Bilinear),
                PreprocessConfig::openai(224, Interpolation::Bicubic),
            ] {
                let mut times: Vec<f64> = (0..7)
                    .map(|_| {
                        let t = std::time::Instant::now();
                        std::hint::black_box(preprocess(&view, &cfg).unwrap());
                        t.elapsed().as_secs_f64() * 1e3
                    })
                    .collect();
                times.sort_by(f64::total_cmp);
                println!(
                    "4032x3024 {format:?} -> {} {:?}: median {:.1} ms (min {:.1})",
                    cfg.image_size, cfg.interpolation, times[3], times[0]
                );
            }
        }
    }
}
