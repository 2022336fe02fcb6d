//! The library's batch methods, label packs and zero-shot ranking: batches of any length give
//! exactly the embeddings of one-at-a-time calls, packs round-trip and are refused by another
//! model or other weights, bad embeddings and options are coded errors.

mod common;

use burn::tensor::Device;
use mobileclip_wasm::preprocess::{ImageView, PixelFormat};
use mobileclip_wasm::{BatchSize, LabelPack, MobileClip, ModelConfig, weights_id, zero_shot};

fn model(name: &str) -> MobileClip {
    let dir = common::fixtures_root().join(name);
    let config = ModelConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    MobileClip::from_file(config, &dir.join("model.safetensors"), Device::flex()).unwrap()
}

fn clip_vocab_model() -> MobileClip {
    let (config, bytes) = common::clip_vocab_fixture("v2-mci0");
    MobileClip::from_bytes(config, bytes, Device::flex()).unwrap()
}

fn image(seed: usize, w: usize, h: usize) -> Vec<u8> {
    (0..w * h * 4).map(|i| ((i * (seed + 3) + seed) % 251) as u8).collect()
}

#[test]
fn batches_equal_one_at_a_time_for_any_batch_size() {
    let mut m = model("v2-mci0");
    let pics: Vec<Vec<u8>> = (0..7).map(|k| image(k, 37 + k, 29 + 2 * k)).collect();
    let views: Vec<ImageView> = pics
        .iter()
        .enumerate()
        .map(|(k, p)| ImageView::new(p, 37 + k, 29 + 2 * k, PixelFormat::Rgba8).unwrap())
        .collect();
    let single: Vec<Vec<f32>> =
        views.iter().map(|v| m.encode_images(std::slice::from_ref(v)).unwrap().remove(0)).collect();
    let tokens: Vec<Vec<u32>> = (0..37)
        .map(|k| (0..77).map(|i| if i <= k % 70 + 1 { ((i * 7 + k) % 200 + 1) as u32 } else { 0 }).collect())
        .collect();
    let single_text: Vec<Vec<f32>> =
        tokens.iter().map(|t| m.encode_tokens(std::slice::from_ref(t)).unwrap().remove(0)).collect();
    for (images, texts) in [(1, 1), (3, 5), (7, 16), (64, 64)] {
        m.set_batch_size(BatchSize { images, texts }).unwrap();
        assert_eq!(m.encode_images(&views).unwrap(), single, "images in batches of {images}");
        assert_eq!(m.encode_tokens(&tokens).unwrap(), single_text, "texts in batches of {texts}");
    }
    assert_eq!(m.set_batch_size(BatchSize { images: 0, texts: 1 }).unwrap_err().code(), "INVALID_ARGUMENT");
}

#[test]
fn label_packs_are_chunked_exactly_and_rank_as_by_hand() {
    let mut m = clip_vocab_model();
    let labels: Vec<String> = (0..23).map(|i| format!("thing number {i}")).collect();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let templates = ["a photo of a {}.", "a drawing of a {}.", "{}"];
    m.set_batch_size(BatchSize { images: 1, texts: 1 }).unwrap();
    let mut progress = Vec::new();
    let one = m.label_pack_with_progress(&labels, &templates, |d, t| progress.push((d, t))).unwrap();
    assert_eq!(progress.first(), Some(&(1, 23)));
    assert_eq!(progress.last(), Some(&(23, 23)));
    for texts in [4, 7, 1000] {
        m.set_batch_size(BatchSize { images: 1, texts }).unwrap();
        assert_eq!(m.label_pack(&labels, &templates).unwrap(), one, "texts in batches of {texts}");
    }
    // The pack by hand: each label's prompts embedded, averaged, normalised.
    for (i, label) in labels.iter().enumerate() {
        let prompts: Vec<String> = templates.iter().map(|t| t.replace("{}", label)).collect();
        let rows = m.encode_texts(&prompts.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        assert_eq!(zero_shot::ensemble(&rows, 3)[0], one.embedding(i), "label {i}");
    }
    assert_eq!((one.model(), one.weights_id(), one.dim(), one.len()), ("v2-mci0-clip-vocab", m.weights_id(), 32, 23));

    let img =
        m.encode_images(&[ImageView::new(&image(1, 20, 30), 20, 30, PixelFormat::Rgba8).unwrap()]).unwrap().remove(0);
    let ranked = m.zero_shot(&img, &one, Some(5)).unwrap();
    assert_eq!(ranked.len(), 5);
    let logits: Vec<f32> = (0..23).map(|i| m.logit_scale() * zero_shot::cosine(&img, one.embedding(i))).collect();
    let z: f32 = logits.iter().map(|l| (l - logits.iter().copied().fold(f32::MIN, f32::max)).exp()).sum();
    let best = (0..23).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap();
    assert_eq!(ranked[0].label, labels[best]);
    assert!((ranked[0].score - 1.0 / z).abs() < 1e-6, "{} vs {}", ranked[0].score, 1.0 / z);

    // Through bytes and back: the same pack, the same ranking.
    let back = LabelPack::from_bytes(&one.to_bytes()).unwrap();
    assert_eq!(m.zero_shot(&img, &back, Some(5)).unwrap(), ranked);
}

#[test]
fn packs_of_other_models_or_weights_are_refused() {
    let m = clip_vocab_model();
    let pack = m.label_pack(&["cat", "dog"], &["a photo of a {}."]).unwrap();
    let img = vec![0.1; 32];
    let other = model("v2-mci0"); // same architecture, other name and weights
    let e = other.zero_shot(&img, &pack, None).unwrap_err();
    assert_eq!(e.code(), "LABEL_PACK_MISMATCH");
    assert!(e.to_string().contains("made by v2-mci0-clip-vocab, this model is v2-mci0"), "{e}");
    // Same name, other bytes: refused by the weights id.
    let (config, mut bytes) = common::clip_vocab_fixture("v2-mci0");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let changed = MobileClip::from_bytes(config, bytes, Device::flex()).unwrap();
    let e = changed.zero_shot(&img, &pack, None).unwrap_err();
    assert_eq!(e.code(), "LABEL_PACK_MISMATCH");
    assert!(e.to_string().contains("other weights"), "{e}");
}

#[test]
fn bad_embeddings_and_options_are_coded_errors() {
    let m = clip_vocab_model();
    let pack = m.label_pack(&["cat", "dog"], &["a photo of a {}."]).unwrap();
    let check = |img: &[f32], top_k, needle: &str| {
        let e = m.zero_shot(img, &pack, top_k).unwrap_err();
        assert_eq!(e.code(), "INVALID_ARGUMENT", "{e}");
        assert!(e.to_string().contains(needle), "{e}");
    };
    let mut nan = vec![0.1; 32];
    nan[5] = f32::NAN;
    check(&nan, None, "non-finite value (NaN) at index 5");
    nan[5] = f32::NEG_INFINITY;
    check(&nan, None, "(-inf) at index 5");
    check(&[0.1; 31], None, "31 values, the model's have 32");
    check(&[0.1; 32], Some(0), "top_k must be at least 1");
    assert_eq!(m.zero_shot(&[0.1; 32], &pack, Some(1_000_000)).unwrap().len(), 2);
    let e = m.label_pack(&["cat", " "], &["{}"]).unwrap_err();
    assert!(e.to_string().contains("label 1 is empty"), "{e}");
    // Texts beyond MAX_TEXT_CHARS are refused before any work (the tokenizer would take time and
    // memory in proportion); right at the limit they are encoded.
    let long = "é".repeat(mobileclip_wasm::MAX_TEXT_CHARS + 1);
    let e = m.encode_texts(&["cat", &long]).unwrap_err();
    assert_eq!(e.code(), "INVALID_TEXT");
    assert!(e.to_string().contains("text 1 has 100001 characters; texts are limited to 100000"), "{e}");
    let e = m.label_pack(&["cat", &long], &["{}"]).unwrap_err();
    assert_eq!(e.code(), "INVALID_ARGUMENT");
    assert!(e.to_string().contains("label 1 has 100001 characters"), "{e}");
    assert_eq!(m.encode_texts(&[&long[2..]]).unwrap().len(), 1);
}

#[test]
fn the_weights_id_is_the_sri_sha256_of_the_file() {
    // FIPS 180-2's test vector: SHA-256("abc").
    assert_eq!(weights_id(b"abc"), "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    let m = model("v2-mci0");
    let bytes = std::fs::read(common::fixtures_root().join("v2-mci0/model.safetensors")).unwrap();
    assert_eq!(m.weights_id(), weights_id(&bytes));
}

/// On the CPU backend every precision asked for computes in `f32`, without an error (the issue:
/// f16 absent means f32, no crash), and says so.
#[test]
fn the_cpu_computes_in_f32_whatever_the_precision_asked() {
    use mobileclip_wasm::{ComputePrecision, Precisions, TowerPrecision};
    let dir = common::fixtures_root().join("v2-vit-b");
    let config = ModelConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let f32_towers = Precisions { image: Some(TowerPrecision::F32), text: Some(TowerPrecision::F32) };
    let pixels = vec![0.25; 3 * config.preprocess.image_size.pow(2)];
    let mut first = None;
    for precision in [ComputePrecision::F32, ComputePrecision::Auto, ComputePrecision::F16] {
        let m = MobileClip::from_file(config.clone(), &dir.join("model.safetensors"), (Device::flex(), precision))
            .unwrap_or_else(|e| panic!("{precision}: {e}"));
        assert_eq!(m.precision(), f32_towers, "{precision}");
        let e = m.encode_pixels(&pixels, 1).unwrap();
        assert_eq!(first.get_or_insert_with(|| e.clone()), &e, "{precision}: other embeddings than f32's");
    }
}
