//! Compact model files: `f32` ones load to the checkpoint's embeddings bit for bit, without a
//! model name; one-tower files refuse the other tower with a coded error; reduced storage meets
//! the accuracy bars; damaged, inconsistent or foreign files are refused with a coded error.

mod common;
use common::*;

use std::path::Path;

use burn::tensor::Device;
use mobileclip_wasm::preprocess::{ImageView, PixelFormat};
use mobileclip_wasm::weights::compact::{self, check_integrity, sha256_hex};
use mobileclip_wasm::weights::{Checkpoint, ConvertOptions, Precision, Towers};
use mobileclip_wasm::{LabelPack, MobileClip, ModelConfig, weights_id};

fn fixture(name: &str) -> (ModelConfig, Vec<u8>) {
    let dir = fixtures_root().join(name);
    let config = ModelConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let file = ["model.pt", "model.safetensors"].iter().map(|f| dir.join(f)).find(|p| p.exists()).unwrap();
    (config, std::fs::read(file).unwrap())
}

fn convert(config: &ModelConfig, bytes: &[u8], precision: Precision, towers: Towers) -> Vec<u8> {
    let options = ConvertOptions { precision, towers, ..Default::default() };
    MobileClip::convert(config, bytes.to_vec(), &options).unwrap()
}

fn embeddings(m: &MobileClip, dir: &Path) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let io = read_io(dir);
    (m.encode_pixels(&io.image, io.n_images).unwrap(), m.encode_tokens(&io.tokens).unwrap())
}

fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn f32_files_load_without_a_model_name_to_identical_embeddings() {
    for name in fixture_names() {
        let (config, bytes) = fixture(&name);
        let dir = fixtures_root().join(&name);
        let direct = MobileClip::from_bytes(config.clone(), bytes.clone(), Device::flex()).unwrap();
        let file = convert(&config, &bytes, Precision::F32, Towers::Both);
        let loaded = MobileClip::load(None, file.clone(), Device::flex()).unwrap();
        assert_eq!(loaded.config(), direct.config(), "{name}");
        assert_eq!(loaded.towers(), Towers::Both);
        assert_eq!(embeddings(&loaded, &dir), embeddings(&direct, &dir), "{name}: not bit-identical");
        assert_eq!(loaded.logit_scale(), direct.logit_scale());
        // What the file says about itself.
        let (info, _) = compact::read(Checkpoint::from_bytes(file.clone()).unwrap()).unwrap();
        assert_eq!(info.source_sha256, sha256_hex(&bytes));
        assert_eq!((info.towers, info.dtype.as_str()), (Towers::Both, "f32"));
        // Naming the model is allowed when it is the file's; another model's name is refused.
        MobileClip::from_bytes(config.clone(), file.clone(), Device::flex()).unwrap();
        let other = if name.starts_with("v1-mci-mct") { "v2-mci0" } else { "v1-mci-mct" };
        let e = MobileClip::from_bytes(fixture(other).0, file, Device::flex()).unwrap_err();
        assert_eq!(e.code(), "WEIGHTS_MISMATCH", "{name}: {e}");
    }
}

/// The files of an older version of the format (`tests/fixtures/compact/v<version>`) still
/// load: the `f32` one to the checkpoint's embeddings bit for bit, the `auto` image tower within
/// the bar. Returns the folder, the embeddings, and the images' reference input.
fn older_files_load(version: u32) -> (std::path::PathBuf, Vec<Vec<f32>>, Io) {
    let (config, bytes) = fixture("v2-mci0");
    let dir = fixtures_root().join("v2-mci0");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/compact/v{version}"));
    let direct = MobileClip::from_bytes(config, bytes, Device::flex()).unwrap();
    let want = embeddings(&direct, &dir);
    for file in ["v2-mci0-f32.safetensors", "v2-mci0-auto-image.safetensors"] {
        let bytes = std::fs::read(root.join(file)).unwrap();
        let (header, _) = split(&bytes);
        assert_eq!(header["__metadata__"]["version"], version.to_string(), "{file}");
    }
    let loaded = MobileClip::load(None, std::fs::read(root.join("v2-mci0-f32.safetensors")).unwrap(), Device::flex());
    assert_eq!(embeddings(&loaded.unwrap(), &dir), want);
    let io = read_io(&dir);
    let loaded =
        MobileClip::load(None, std::fs::read(root.join("v2-mci0-auto-image.safetensors")).unwrap(), Device::flex());
    let loaded = loaded.unwrap();
    assert_eq!(loaded.towers(), Towers::Image);
    let got = loaded.encode_pixels(&io.image, io.n_images).unwrap();
    assert!(min_cosine(&want.0, &got) >= 0.999, "v{version} auto: {}", min_cosine(&want.0, &got));
    (root, want.0, io)
}

/// Files of the format's first version (`tests/fixtures/compact/v1`: written before sub-8-bit
/// storage and half scales, by the conversion of that day, 527107d) still load (see
/// [`older_files_load`]), and each tensor of the `int8` one to the values its bytes and `F32`
/// scales say.
#[test]
fn version_1_files_still_load() {
    let (root, want, io) = older_files_load(1);
    // int8 with one scale per channel everywhere is no dtype with a bar (0.9955 on this noise
    // image): its tensors are checked value by value below
    let file = "v2-mci0-int8-image.safetensors";
    let bytes = std::fs::read(root.join(file)).unwrap();
    let loaded = MobileClip::load(None, bytes.clone(), Device::flex()).unwrap();
    let got = loaded.encode_pixels(&io.image, io.n_images).unwrap();
    assert!(min_cosine(&want, &got) >= 0.99, "{file}: {}", min_cosine(&want, &got));
    // the int8 file's tensors are the values its int8 bytes and f32 scales say
    let (info, fused) = compact::read(Checkpoint::from_bytes(bytes.clone()).unwrap()).unwrap();
    assert_eq!(info.dtype, "int8");
    let (header, data) = split(&bytes);
    let int8: Vec<_> = fused.iter().filter(|(_, t)| t.storage().kind().starts_with("int8:")).collect();
    assert!(!int8.is_empty());
    for (name, t) in int8 {
        let range = |n: &str| {
            let o = &header[n]["data_offsets"];
            &data[o[0].as_u64().unwrap() as usize..o[1].as_u64().unwrap() as usize]
        };
        assert_eq!(header[&format!("{name}.scales")]["dtype"], "F32");
        let scales: Vec<f32> =
            range(&format!("{name}.scales")).chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        let per = t.numel() / scales.len();
        let want: Vec<f32> =
            range(name).iter().enumerate().map(|(i, &q)| f32::from(q as i8) * scales[i / per]).collect();
        if !t.storage().kind().ends_with(":columns") {
            assert_eq!(t.to_f32(), want, "{file}: {name}");
        }
    }
}

/// Files of the format's second version (`tests/fixtures/compact/v2`: bit-packed integers and
/// half scales, no scaled halves or values kept apart; written by c5e750d) still load (see
/// [`older_files_load`]).
#[test]
fn version_2_files_still_load() {
    older_files_load(2);
}

#[test]
fn a_published_checkpoint_needs_a_model_name() {
    let (_, bytes) = fixture("v1-mci-mct");
    let e = MobileClip::load(None, bytes, Device::flex()).unwrap_err();
    assert_eq!(e.code(), "INVALID_ARGUMENT");
    assert!(e.to_string().contains("model"), "{e}");
}

#[test]
fn one_tower_files_refuse_the_other_tower_and_keep_working() {
    for name in ["v1-mci-mct", "v2-vit-b"] {
        let (config, bytes) = fixture(name);
        let dir = fixtures_root().join(name);
        let io = read_io(&dir);
        let both =
            MobileClip::load(None, convert(&config, &bytes, Precision::F32, Towers::Both), Device::flex()).unwrap();
        let (want_images, want_texts) = embeddings(&both, &dir);

        let image_only = convert(&config, &bytes, Precision::F32, Towers::Image);
        let full = convert(&config, &bytes, Precision::F32, Towers::Both);
        assert!(image_only.len() < full.len(), "{name}: image-only file not smaller");
        let m = MobileClip::load(None, image_only, Device::flex()).unwrap();
        assert_eq!(m.towers(), Towers::Image);
        for _ in 0..2 {
            assert_eq!(m.encode_pixels(&io.image, io.n_images).unwrap(), want_images, "{name}");
            assert_eq!(m.encode_texts(&["a cat"]).unwrap_err().code(), "NO_TEXT_TOWER");
            assert_eq!(m.encode_tokens(&io.tokens).unwrap_err().code(), "NO_TEXT_TOWER");
            let e = m.label_pack(&["cat", "dog"], &["a photo of a {}."]).unwrap_err();
            assert_eq!(e.code(), "NO_TEXT_TOWER");
        }
        // logit_scale travels with either tower
        assert_eq!(m.logit_scale(), both.logit_scale());

        let m = MobileClip::load(None, convert(&config, &bytes, Precision::F32, Towers::Text), Device::flex()).unwrap();
        assert_eq!(m.towers(), Towers::Text);
        assert_eq!(m.encode_tokens(&io.tokens).unwrap(), want_texts, "{name}");
        assert_eq!(m.encode_pixels(&io.image, io.n_images).unwrap_err().code(), "NO_IMAGE_TOWER");
        assert_eq!(m.encode_tokens(&io.tokens).unwrap(), want_texts, "{name}");
    }
}

/// Weights ids: a compact file's model is named by the file's own hash (what `integrity`
/// checks), and its label packs by the checkpoint's (`source_sha256`): packs of the checkpoint or
/// of any compact file of it rank on an image-only file, exactly as on the checkpoint; packs of
/// other weights are refused.
#[test]
fn label_packs_of_the_checkpoint_rank_on_its_image_only_file() {
    let (config, bytes) = clip_vocab_fixture("v2-mci0");
    let checkpoint = MobileClip::from_bytes(config.clone(), bytes.clone(), Device::flex()).unwrap();
    let both_file = convert(&config, &bytes, Precision::Auto, Towers::Both);
    let image_file = convert(&config, &bytes, Precision::F32, Towers::Image);
    let both = MobileClip::load(None, both_file.clone(), Device::flex()).unwrap();
    let image = MobileClip::load(None, image_file.clone(), Device::flex()).unwrap();
    assert_eq!((both.weights_id(), image.weights_id()), (&*weights_id(&both_file), &*weights_id(&image_file)));
    assert_eq!(image.source_weights_id(), Some(checkpoint.weights_id()));
    assert_eq!(checkpoint.source_weights_id(), None);

    let io = read_io(&fixtures_root().join("v2-mci0"));
    let img = checkpoint.encode_pixels(&io.image, io.n_images).unwrap();
    assert_eq!(image.encode_pixels(&io.image, io.n_images).unwrap(), img);
    let templates = ["a photo of a {}.", "itap of a {}."];
    for maker in [&checkpoint, &both] {
        let pack = maker.label_pack(&["cat", "dog", "car"], &templates).unwrap();
        assert_eq!(pack.weights_id(), checkpoint.weights_id());
        assert_eq!(image.zero_shot(&img[0], &pack, None).unwrap(), checkpoint.zero_shot(&img[0], &pack, None).unwrap());
        both.zero_shot(&img[0], &pack, None).unwrap();
        let foreign = LabelPack::new(
            pack.model().into(),
            weights_id(b"other weights"),
            pack.labels().to_vec(),
            pack.templates().to_vec(),
            pack.dim(),
            pack.embeddings().to_vec(),
        )
        .unwrap();
        assert_eq!(image.zero_shot(&img[0], &foreign, None).unwrap_err().code(), "LABEL_PACK_MISMATCH");
    }
    assert_eq!(image.label_pack(&["cat"], &templates).unwrap_err().code(), "NO_TEXT_TOWER");
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let n = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

fn min_cosine(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    a.iter().zip(b).map(|(x, y)| cosine(x, y)).fold(1.0, f64::min)
}

/// The photos of the zero-shot check: the preprocessing fixtures' source images (not their
/// crops or resizes), 21 of them.
fn photos() -> Vec<(Vec<u8>, usize, usize)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".png") && !["crop_", "resize_", "center_crop_"].iter().any(|s| name.starts_with(s))
        })
        .collect();
    paths.sort();
    paths.iter().map(|p| mobileclip_wasm::preprocess::load_image_file(p).unwrap()).collect()
}

/// Each image's best label (cosine).
fn top1(images: &[Vec<f32>], labels: &[Vec<f32>]) -> Vec<usize> {
    let best =
        |i: &Vec<f32>| (0..labels.len()).max_by(|&a, &b| cosine(i, &labels[a]).total_cmp(&cosine(i, &labels[b])));
    images.iter().map(|i| best(i).unwrap()).collect()
}

/// The cosine bars of the issue on every reduced fixture, over 21 photos and the fixture's token
/// rows: f16 ≥ 0.9999 on both towers; `auto` ≥ 0.999 (images) and ≥ 0.998 (texts); and `auto`
/// is no larger than f16 (it is f16 where no int8
/// meets a tensor's share of the tolerance, as in most of these small towers).
///
/// The image bars are on photos, as the issue sets them, not on the fixtures' own first input
/// (uniform noise): on that noise image openclip-s1's f16 image cosine is 0.99971 (its other
/// input, a photo, 0.99998; over the 22 photos ≥ 0.99999). Not a storage fault: stored f16 one
/// tensor at a time, no tensor moves that embedding by more than 6e-5 (the stem's, the largest),
/// every tensor's f16 error is the expected ≈ 4e-4 per channel; it is the sum over the tower on
/// an input of nothing but the highest frequencies, to which this random draw's tower is
/// unusually sensitive (15× more than to the photo), as a random draw may be.
///
/// Zero-shot top-1 agreement is not asserted here: a random reduced tower scores many photos'
/// labels within 1e-4 of each other (v2-vit-b's f16 swaps such a pair; on openclip-s1 no photo's
/// best label leads by more than f16's own error could move it), so agreement there measures
/// ties. [`full_size_accuracy_bars`] asserts it where the issue sets it.
///
/// What these fixtures cannot show: they are random weights with BatchNorm statistics close to
/// the activations' own (so folding leaves no dominant channel), narrow (rows of 16–128 values,
/// where int8's error per channel differs from full-width rows) and shallow (errors have few
/// layers to grow over); their tensors are small, so `auto` keeps most of their image towers in
/// f16 (a tensor's share of the tolerance shrinks with its size). The full-size fixture with
/// trained-looking statistics (`tools/compact-accuracy.sh`, BENCHMARKS.md) is where `auto`'s
/// tolerances are set and measured; naive per-channel int8 falls to ≈0.92 on its image tower,
/// which this test cannot reproduce.
#[test]
fn reduced_storage_meets_the_accuracy_bars() {
    let photos = photos();
    let views: Vec<ImageView> =
        photos.iter().map(|(rgb, w, h)| ImageView::new(rgb, *w, *h, PixelFormat::Rgb8).unwrap()).collect();
    for name in fixture_names() {
        let (config, bytes) = fixture(&name);
        let io = read_io(&fixtures_root().join(&name));
        let embed = |m: &MobileClip| (m.encode_images(&views).unwrap(), m.encode_tokens(&io.tokens).unwrap());
        let want = embed(&MobileClip::from_bytes(config.clone(), bytes.clone(), Device::flex()).unwrap());
        let mut sizes = Vec::new();
        for (precision, image_bar, text_bar) in [(Precision::F16, 0.9999, 0.9999), (Precision::Auto, 0.999, 0.998)] {
            let file = convert(&config, &bytes, precision, Towers::Both);
            // the tensors' bytes (the headers differ by the dtype's name, and its padding)
            sizes.push(file.len() - 8 - u64::from_le_bytes(file[..8].try_into().unwrap()) as usize);
            let got = embed(&MobileClip::load(None, file, Device::flex()).unwrap());
            let (ci, ct) = (min_cosine(&want.0, &got.0), min_cosine(&want.1, &got.1));
            println!("{name} {precision}: image {ci:.6}, text {ct:.6}");
            if std::env::var("SHOWALL").is_err() {
                assert!(ci >= image_bar, "{name} {precision}: image cosine {ci}");
                assert!(ct >= text_bar, "{name} {precision}: text cosine {ct}");
            }
            assert!(ci < 1.0 || ct < 1.0, "{name} {precision}: nothing was reduced");
        }
        assert!(sizes[1] <= sizes[0], "{name}: auto ({}) larger than f16 ({})", sizes[1], sizes[0]);
    }
}

/// The issue's bars at full size, where they are set: every model folder of
/// `MOBILECLIP_ACCURACY_FIXTURES` (checkpoints with trained-looking BatchNorm statistics, as
/// `tools/compact-accuracy.sh` writes them to `target/accuracy-fixtures`) against the photos of
/// `MOBILECLIP_ACCURACY_PHOTOS` (`target/accuracy-photos`) and the 100 labels of
/// `tests/fixtures/labels.txt` ("a photo of a {}."): f16 cosine ≥ 0.9999, `auto` ≥ 0.999
/// (images) and ≥ 0.998 (texts), zero-shot top-1 agreement with f32 ≥ 99 % for both.
/// `tools/compact-accuracy.sh` writes scikit-image's 20 photos and 5 crops of each in `crops/` (120 images:
/// with 20, one near-tie between two random labels decides the 99 %). On these random-weight
/// towers a photo's best label leads the next by 1.5e-4 at least and 1.9e-2 at the median
/// (MobileCLIP-S0), so a storage that moves the image embedding by 1 − cos ≈ 3e-4 flips a few:
/// the test prints each flip with its margins.
/// `cargo test --release --test compact -- --ignored full_size` (minutes per model).
#[test]
#[ignore = "full-size fixtures: set MOBILECLIP_ACCURACY_FIXTURES and MOBILECLIP_ACCURACY_PHOTOS"]
fn full_size_accuracy_bars() {
    let dir = |var: &str| std::path::PathBuf::from(std::env::var(var).unwrap_or_else(|_| panic!("set {var}")));
    // the photos (PNG files of the folder), then their crops (its `crops/` folder)
    let pngs = |dir: std::path::PathBuf| {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "png")).collect())
            .unwrap_or_default();
        paths.sort();
        paths
    };
    let mut photo_paths = pngs(dir("MOBILECLIP_ACCURACY_PHOTOS"));
    assert!(photo_paths.len() >= 20, "20 photos or more");
    photo_paths.extend(pngs(dir("MOBILECLIP_ACCURACY_PHOTOS").join("crops")));
    let photos: Vec<_> = photo_paths.iter().map(|p| mobileclip_wasm::preprocess::load_image_file(p).unwrap()).collect();
    let views: Vec<ImageView> =
        photos.iter().map(|(rgb, w, h)| ImageView::new(rgb, *w, *h, PixelFormat::Rgb8).unwrap()).collect();
    let labels: Vec<String> =
        include_str!("fixtures/labels.txt").lines().map(|l| format!("a photo of a {l}.")).collect();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let mut models: Vec<_> =
        std::fs::read_dir(dir("MOBILECLIP_ACCURACY_FIXTURES")).unwrap().map(|e| e.unwrap().path()).collect();
    models.sort();
    for model_dir in models.iter().filter(|d| d.join("config.json").exists()) {
        let config = ModelConfig::from_json(&std::fs::read_to_string(model_dir.join("config.json")).unwrap()).unwrap();
        let ckpt = ["model.pt", "model.safetensors"].iter().map(|f| model_dir.join(f)).find(|p| p.exists()).unwrap();
        let bytes = std::fs::read(ckpt).unwrap();
        let embed = |m: &MobileClip| {
            let images: Vec<Vec<f32>> = views.chunks(4).flat_map(|c| m.encode_images(c).unwrap()).collect();
            let texts: Vec<Vec<f32>> = labels.chunks(25).flat_map(|c| m.encode_texts(c).unwrap()).collect();
            (images, texts)
        };
        let want = embed(&MobileClip::from_bytes(config.clone(), bytes.clone(), Device::flex()).unwrap());
        let want_top1 = top1(&want.0, &want.1);
        // how far each photo's best label leads the next (f32): what a reduced storage must not flip
        let mut leads: Vec<f64> = want
            .0
            .iter()
            .map(|i| {
                let mut s: Vec<f64> = want.1.iter().map(|l| cosine(i, l)).collect();
                s.sort_by(|a, b| b.total_cmp(a));
                s[0] - s[1]
            })
            .collect();
        leads.sort_by(f64::total_cmp);
        println!(
            "{}: f32 top-1 lead over the next label min {:.2e}, median {:.2e}",
            config.name,
            leads[0],
            leads[leads.len() / 2]
        );
        for (precision, image_bar, text_bar) in [(Precision::F16, 0.9999, 0.9999), (Precision::Auto, 0.999, 0.998)] {
            let file = convert(&config, &bytes, precision, Towers::Both);
            let got = embed(&MobileClip::load(None, file, Device::flex()).unwrap());
            let (ci, ct) = (min_cosine(&want.0, &got.0), min_cosine(&want.1, &got.1));
            let got_top1 = top1(&got.0, &got.1);
            let agree = want_top1.iter().zip(&got_top1).filter(|(a, b)| a == b).count() as f64 / photos.len() as f64;
            println!("{} {precision}: image {ci:.6}, text {ct:.6}, top-1 agreement {agree:.3}", config.name);
            // a disagreement with its margins: f32's lead of its label over the other one, and
            // the reduced model's lead the other way
            for (i, (&a, &b)) in want_top1.iter().zip(&got_top1).enumerate().filter(|(_, (a, b))| a != b) {
                let lead = |e: &(Vec<Vec<f32>>, Vec<Vec<f32>>), x: usize, y: usize| {
                    cosine(&e.0[i], &e.1[x]) - cosine(&e.0[i], &e.1[y])
                };
                println!(
                    "  {}: f32 {:?} ahead of {:?} by {:.2e} (image-text cosine), {precision} the other way by {:.2e}",
                    photo_paths[i].file_name().unwrap().to_string_lossy(),
                    labels[a],
                    labels[b],
                    lead(&want, a, b),
                    lead(&got, b, a)
                );
            }
            assert!(ci >= image_bar, "{} {precision}: image cosine {ci}", config.name);
            assert!(ct >= text_bar, "{} {precision}: text cosine {ct}", config.name);
            assert!(agree >= 0.99, "{} {precision}: zero-shot top-1 agreement {agree}", config.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile files.

/// The header of a safetensors file as JSON, and its data section.
fn split(file: &[u8]) -> (serde_json::Map<String, serde_json::Value>, Vec<u8>) {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    (serde_json::from_slice(&file[8..8 + n]).unwrap(), file[8 + n..].to_vec())
}

fn join(header: &serde_json::Map<String, serde_json::Value>, data: &[u8]) -> Vec<u8> {
    let h = serde_json::to_vec(header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    out
}

/// `file` with its metadata entry `key` changed by `f`.
fn with_metadata(file: &[u8], key: &str, f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let (mut header, data) = split(file);
    let meta = header.get_mut("__metadata__").unwrap().as_object_mut().unwrap();
    let entry = meta.entry(key.to_string()).or_insert(serde_json::Value::Null);
    f(entry);
    if entry.is_null() {
        meta.remove(key);
    }
    join(&header, &data)
}

/// A metadata value that is JSON text, changed as JSON.
fn with_json_metadata(file: &[u8], key: &str, f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    with_metadata(file, key, |v| {
        let mut inner: serde_json::Value = serde_json::from_str(v.as_str().unwrap()).unwrap();
        f(&mut inner);
        *v = serde_json::Value::String(inner.to_string());
    })
}

fn refused(bytes: Vec<u8>, code: &str, needle: &str) {
    let e = MobileClip::load(None, bytes, Device::flex()).unwrap_err();
    assert_eq!(e.code(), code, "{e}");
    assert!(e.to_string().contains(needle), "`{needle}` not in: {e}");
}

#[test]
fn damaged_or_inconsistent_files_are_refused_with_a_code() {
    let (config, bytes) = fixture("v1-mci-mct");
    let file = convert(&config, &bytes, Precision::Int8, Towers::Both);
    let (header, data) = split(&file);
    let int8 = header
        .iter()
        .find(|(k, v)| {
            v.get("dtype").and_then(|d| d.as_str()) == Some("I8") && !header.contains_key(&format!("{k}.columns"))
        })
        .map(|(k, _)| k.clone())
        .expect("an int8 tensor without column factors");

    // Versions and formats this build does not read.
    refused(with_metadata(&file, "version", |v| *v = "4".into()), "INVALID_WEIGHTS", "version \"4\"");
    refused(with_metadata(&file, "version", |v| *v = "0".into()), "INVALID_WEIGHTS", "version \"0\"");
    refused(with_metadata(&file, "version", |v| *v = "two".into()), "INVALID_WEIGHTS", "version \"two\"");
    // a version 1 file has no `shapes` (and a version 2 file must have it)
    refused(with_metadata(&file, "version", |v| *v = "1".into()), "INVALID_WEIGHTS", "no `shapes`");
    refused(with_metadata(&file, "shapes", |v| *v = serde_json::Value::Null), "INVALID_WEIGHTS", "no `shapes`");
    refused(with_metadata(&file, "version", |v| *v = serde_json::Value::Null), "INVALID_WEIGHTS", "no `version`");
    refused(with_metadata(&file, "format", |v| *v = "mobileclip-wasm/other".into()), "INVALID_WEIGHTS", "format");
    // Truncated anywhere.
    for cut in [file.len() - 1, file.len() / 2, 100] {
        let e = MobileClip::load(None, file[..cut].to_vec(), Device::flex()).unwrap_err();
        assert_eq!(e.code(), "INVALID_WEIGHTS", "cut at {cut}: {e}");
    }
    // A flipped bit in any tensor's bytes is caught by its checksum.
    for at in [0, data.len() / 3, data.len() - 1] {
        let mut d = data.clone();
        d[at] ^= 0x10;
        refused(join(&header, &d), "INVALID_WEIGHTS", "is corrupted");
    }
    // Metadata that does not add up.
    refused(with_metadata(&file, "config", |v| *v = "{\"name\": 1}".into()), "INVALID_WEIGHTS", "its config");
    refused(with_metadata(&file, "towers", |v| *v = "all".into()), "INVALID_WEIGHTS", "towers");
    refused(with_metadata(&file, "source_sha256", |v| *v = "abc".into()), "INVALID_WEIGHTS", "sha256");
    refused(
        with_json_metadata(&file, "storage", |s| s[&int8] = "int8:7".into()),
        "INVALID_WEIGHTS",
        "do not fit its storage",
    );
    // an int8 tensor's bytes said to be packed narrower
    refused(with_json_metadata(&file, "storage", |s| s[&int8] = "int4:8".into()), "INVALID_WEIGHTS", "storage");
    refused(with_json_metadata(&file, "storage", |s| s[&int8] = "int9:8".into()), "INVALID_WEIGHTS", "unknown storage");
    refused(with_json_metadata(&file, "storage", |s| s[&int8] = "int1:8".into()), "INVALID_WEIGHTS", "unknown storage");
    refused(with_json_metadata(&file, "shapes", |s| s[&int8] = serde_json::json!([1])), "INVALID_WEIGHTS", "shapes");
    refused(with_json_metadata(&file, "storage", |s| s[&int8] = "f32".into()), "INVALID_WEIGHTS", "storage");
    refused(
        with_json_metadata(&file, "storage", |s| {
            s.as_object_mut().unwrap().remove(&int8);
        }),
        "INVALID_WEIGHTS",
        "not in its storage table",
    );
    refused(with_json_metadata(&file, "crc32", |s| s[&int8] = "00000000".into()), "INVALID_WEIGHTS", "is corrupted");
    // Another model's config: the tensors do not fit it.
    let other = fixture("v2-mci0").0;
    refused(
        with_metadata(&file, "config", |v| *v = serde_json::to_string(&other).unwrap().into()),
        "WEIGHTS_MISMATCH",
        "",
    );
    // A file that says `image` but holds both towers: the text tensors are unexpected.
    refused(with_metadata(&file, "towers", |v| *v = "image".into()), "WEIGHTS_MISMATCH", "unexpected");
    // Converting a compact file again is refused (its source would be lost).
    let e = MobileClip::convert(&config, file, &ConvertOptions::default()).unwrap_err();
    assert_eq!(e.code(), "INVALID_ARGUMENT");
}

/// `file` with one more tensor `name` (`dtype`, `shape`, its little-endian `bytes` appended to
/// the data) and its checksum listed: a well-formed addition, stray unless the storage table
/// says what it is part of.
fn with_tensor(file: &[u8], name: &str, dtype: &str, shape: &[usize], bytes: &[u8]) -> Vec<u8> {
    let file = with_json_metadata(file, "crc32", |c| c[name] = format!("{:08x}", crc32fast::hash(bytes)).into());
    let (mut header, mut data) = split(&file);
    let offsets = [data.len(), data.len() + bytes.len()];
    header.insert(name.into(), serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": offsets}));
    data.extend(bytes);
    join(&header, &data)
}

/// A stored tensor that is neither listed in the storage table nor a part the parser took for a
/// listed tensor (whatever its name says) is refused, by its name.
#[test]
fn a_stray_tensor_is_refused_by_name() {
    let (config, bytes) = fixture("v1-mci-mct");
    let file = convert(&config, &bytes, Precision::Int8, Towers::Both);
    let (header, _) = split(&file);
    let storage: serde_json::Value = serde_json::from_str(header["__metadata__"]["storage"].as_str().unwrap()).unwrap();
    let kind = |name: &str| storage[name].as_str().unwrap().to_string();
    let int8 = storage.as_object().unwrap().keys().find(|k| kind(k.as_str()).starts_with("int8:")).unwrap().clone();
    let vector = storage.as_object().unwrap().keys().find(|k| kind(k.as_str()) == "f32").unwrap().clone();
    let shape: Vec<usize> = serde_json::from_value(header[&int8]["shape"].clone()).unwrap();
    let row: usize = shape[1..].iter().product();
    let ones: Vec<u8> = (0..row).flat_map(|_| 1f32.to_le_bytes()).collect();
    // The addition itself is well formed: listed as the int8 tensor's column factors (all 1), it loads.
    let columns = with_tensor(&file, &format!("{int8}.columns"), "F32", &[row], &ones);
    let listed =
        with_json_metadata(&columns, "storage", |s| s[&int8] = format!("{}:columns", kind(int8.as_str())).into());
    MobileClip::load(None, listed, Device::flex()).unwrap();
    // Not listed so: column factors of a tensor without them, scales of an f32 vector, values
    // kept apart of a tensor that keeps none, a name of no tensor.
    let strays = [
        (format!("{int8}.columns"), columns),
        (format!("{vector}.scales"), with_tensor(&file, &format!("{vector}.scales"), "F32", &[1], &ones[..4])),
        (format!("{int8}.exact"), with_tensor(&file, &format!("{int8}.exact"), "F32", &[1], &ones[..4])),
        ("visual.extra".to_string(), with_tensor(&file, "visual.extra", "F32", &[1], &ones[..4])),
    ];
    for (name, stray) in strays {
        refused(stray, "INVALID_WEIGHTS", &format!("tensor `{name}` is stored but is not in its storage table"));
    }
}

#[test]
fn integrity_names_the_digest() {
    // FIPS 180-2's test vector: sha256("abc"), in base64.
    let good = "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=";
    assert_eq!(weights_id(b"abc"), good);
    check_integrity(&weights_id(b"abc"), good).unwrap();
    assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    let e = check_integrity(&weights_id(b"abd"), good).unwrap_err();
    assert_eq!(e.code(), "INTEGRITY_MISMATCH");
    assert!(e.to_string().contains(good), "{e}");
    for bad in ["", "sha256-", "sha256-notbase64!", "sha384-AAAA", "md5-xyz", "sha256-AAAA"] {
        assert_eq!(check_integrity(&weights_id(b"abc"), bad).unwrap_err().code(), "INVALID_ARGUMENT", "{bad}");
    }
}

/// Each tower a conversion writes is checked to build the model exactly; a tower it does not
/// write is not (a text-only file of a checkpoint whose image tower is damaged is fine).
#[test]
fn each_tower_written_is_checked_against_the_model() {
    let (config, bytes) = fixture("v2-mci0");
    let (mut header, data) = split(&bytes);
    // a tensor a module takes as it is (not one folding consumes: the folding's problems are
    // the checkpoint's, reported whatever is written)
    let info = header.remove("visual.trunk.head.fc.weight").unwrap();
    header.insert("visual.renamed.weight".into(), info);
    let damaged = join(&header, &data);
    let options = |towers| ConvertOptions { precision: Precision::F16, towers, ..Default::default() };
    for towers in [Towers::Image, Towers::Both] {
        let e = MobileClip::convert(&config, damaged.clone(), &options(towers)).unwrap_err();
        assert_eq!(e.code(), "WEIGHTS_MISMATCH", "{towers}: {e}");
        assert!(e.to_string().contains("renamed"), "{towers}: {e}");
    }
    let text = MobileClip::convert(&config, damaged, &options(Towers::Text)).unwrap();
    let m = MobileClip::load(None, text, Device::flex()).unwrap();
    assert_eq!(m.towers(), Towers::Text);
    m.encode_tokens(&read_io(&fixtures_root().join("v2-mci0")).tokens).unwrap();
}

/// A config object from JavaScript (`JSON.stringify` writes `0.0` as `0`, in its own key
/// order and spacing) is stored in the same bytes as the same config read from its file or
/// taken by a shipped model's name: the file does not depend on how the config was given.
#[test]
fn the_config_is_stored_the_same_however_it_was_given() {
    let as_javascript_writes_it = |text: &str| {
        assert!(text.contains(".0,") || text.contains(".0\n"), "the config has integral floats to write as integers");
        let v: serde_json::Value = serde_json::from_str(&text.replace(".0,", ",").replace(".0\n", "\n")).unwrap();
        ModelConfig::from_json(&v.to_string()).unwrap()
    };
    let (config, bytes) = fixture("v2-mci0");
    let text = std::fs::read_to_string(fixtures_root().join("v2-mci0/config.json")).unwrap();
    let from_js = as_javascript_writes_it(&text);
    assert_eq!(
        convert(&from_js, &bytes, Precision::Int8, Towers::Image),
        convert(&config, &bytes, Precision::Int8, Towers::Image)
    );
    let shipped = ModelConfig::builtin("MobileCLIP-S0").unwrap();
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/MobileCLIP-S0.json")).unwrap();
    assert_eq!(as_javascript_writes_it(&text).canonical_json(), shipped.canonical_json());
    assert!(shipped.canonical_json().contains(r#""ffn_multiplier_per_layer":4,"#));
}

/// The compact files the browser suites load (`tests/fixtures/compact`) are what `convert`
/// writes today, byte for byte (a conversion is deterministic): a change of the format or of
/// `auto`'s choices must regenerate them (`mobileclip convert --model
/// tests/fixtures/models/v2-mci0/config.json --weights …/model.safetensors --dtype f32|auto
/// [--towers image] -o …`).
#[test]
fn committed_compact_fixtures_are_current() {
    let (config, bytes) = fixture("v2-mci0");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compact");
    for (file, precision, towers) in [
        ("v2-mci0-f32.safetensors", Precision::F32, Towers::Both),
        ("v2-mci0-auto-image.safetensors", Precision::Auto, Towers::Image),
    ] {
        let committed = std::fs::read(root.join(file)).unwrap();
        assert!(convert(&config, &bytes, precision, towers) == committed, "{file} is stale: regenerate it");
    }
}
