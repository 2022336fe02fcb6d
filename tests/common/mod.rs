// Shared by the integration tests: reading a fixture folder written by tools/gen_fixtures.py, and
// hostile checkpoints (hostile.rs).
#![allow(dead_code)]

pub mod hostile;

use std::path::{Path, PathBuf};

use mobileclip_wasm::{MobileClip, ModelConfig, Placement};

/// Tolerance of the acceptance bar: max |Δ| on L2-normalised embeddings, fp32 CPU.
pub const TOL: f32 = 1e-4;

pub struct Io {
    pub image: Vec<f32>,
    pub n_images: usize,
    pub tokens: Vec<Vec<u32>>,
    pub tensors: std::collections::HashMap<String, Vec<f32>>,
}

pub fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models")
}

pub fn read_io(dir: &Path) -> Io {
    let bytes = std::fs::read(dir.join("io.safetensors")).expect("io.safetensors");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid io.safetensors");
    let mut tensors = std::collections::HashMap::new();
    let mut tokens = Vec::new();
    let mut n_images = 0;
    for (name, view) in st.tensors() {
        match view.dtype() {
            safetensors::Dtype::F32 => {
                let v: Vec<f32> = view.data().chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
                if name == "image" {
                    n_images = view.shape()[0];
                }
                tensors.insert(name.to_string(), v);
            }
            safetensors::Dtype::I32 | safetensors::Dtype::I64 => {
                let size = if view.dtype() == safetensors::Dtype::I32 { 4 } else { 8 };
                let ids: Vec<u32> = view
                    .data()
                    .chunks(size)
                    .map(|b| {
                        if size == 4 {
                            i32::from_le_bytes(b.try_into().unwrap()) as u32
                        } else {
                            i64::from_le_bytes(b.try_into().unwrap()) as u32
                        }
                    })
                    .collect();
                let l = view.shape()[1];
                tokens = ids.chunks(l).map(<[u32]>::to_vec).collect();
            }
            other => panic!("unexpected dtype {other:?} for {name}"),
        }
    }
    let image = tensors.remove("image").expect("image input");
    Io { image, n_images, tokens, tensors }
}

pub fn max_abs_diff(a: &[Vec<f32>], b: &[f32]) -> f32 {
    let flat: Vec<f32> = a.iter().flatten().copied().collect();
    assert_eq!(flat.len(), b.len(), "embedding count/width differs from the reference");
    flat.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The full-size fixture folders (one per shipped config) under `$MOBILECLIP_FULL_FIXTURES`, a
/// folder written by `tools/gen_fixtures.py --full --out DIR` (not committed: the test command
/// generates it); panics when it names none.
pub fn full_fixture_dirs() -> Vec<PathBuf> {
    let root = std::env::var("MOBILECLIP_FULL_FIXTURES")
        .expect("MOBILECLIP_FULL_FIXTURES must name the folder written by gen_fixtures.py --full");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("config.json").exists())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no full-size fixtures under {root}");
    dirs
}

/// Loads every checkpoint of the fixture and compares both towers with the reference outputs.
/// Returns a report line per checkpoint: (file, image max |Δ|, text max |Δ|).
pub fn check_fixture(dir: &Path) -> Vec<(String, f32, f32)> {
    check_fixture_on(dir, &burn::tensor::Device::flex().into())
}

/// The checkpoints of a fixture folder (`model*.pt|.safetensors|.bin`), sorted.
pub fn fixture_checkpoints(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("model") && (n.ends_with(".pt") || n.ends_with(".safetensors") || n.ends_with(".bin"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no checkpoints in {}", dir.display());
    files
}

/// The checkpoint `path` of the fixture folder `dir` loaded `on` a device (in a precision): the
/// model, and its image and text embeddings of the fixture's inputs.
pub fn embed_fixture(dir: &Path, path: &Path, on: &Placement) -> (MobileClip, Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let config = ModelConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let io = read_io(dir);
    let model = MobileClip::from_file(config, path, on.clone()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let img = model.encode_pixels(&io.image, io.n_images).unwrap();
    let txt = model.encode_tokens(&io.tokens).unwrap();
    (model, img, txt)
}

/// [`check_fixture`] on a given device, in a given precision.
pub fn check_fixture_on(dir: &Path, on: &Placement) -> Vec<(String, f32, f32)> {
    let io = read_io(dir);
    let mut report = Vec::new();
    for path in fixture_checkpoints(dir) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let suffix = if name.contains("reparam") { "_reparam" } else { "" };
        let (model, img, txt) = embed_fixture(dir, &path, on);
        let di = max_abs_diff(&img, &io.tensors[&format!("image_embeddings{suffix}")]);
        let dt = max_abs_diff(&txt, &io.tensors[&format!("text_embeddings{suffix}")]);
        if let Some(scale) = io.tensors.get("logit_scale_exp") {
            assert!(
                (model.logit_scale() - scale[0]).abs() <= 1e-4 * scale[0],
                "{name}: logit scale {} vs {}",
                model.logit_scale(),
                scale[0]
            );
        }
        eprintln!("{}/{name}: image max|Δ| {di:.2e}, text max|Δ| {dt:.2e}", dir.file_name().unwrap().to_string_lossy());
        report.push((name, di, dt));
    }
    report
}

/// CLIP's vocabulary size: a model needs it for text to go through the real tokenizer.
pub const CLIP_VOCAB: usize = 49408;

/// The small fixture `name` (open_clip safetensors) with its 256-row token embedding grown to
/// CLIP's vocabulary, so that texts go through the real tokenizer: the config (named
/// `<name>-clip-vocab`) and the checkpoint bytes. Row i = base[i % n] + base[⌊i / n⌋ % n] / 2,
/// the rule of `widenVocabulary` in tests/js/safetensors.mjs (the JavaScript tests' copy).
pub fn clip_vocab_fixture(name: &str) -> (ModelConfig, Vec<u8>) {
    use safetensors::tensor::TensorView;
    let dir = fixtures_root().join(name);
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    json["name"] = format!("{name}-clip-vocab").into();
    json["text_cfg"]["vocab_size"] = CLIP_VOCAB.into();
    let config = ModelConfig::from_json(&json.to_string()).unwrap();
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (tensor, view) in st.tensors() {
        let (mut shape, mut data) = (view.shape().to_vec(), view.data().to_vec());
        if tensor == "text.token_embedding.weight" {
            let (rows, width) = (shape[0], shape[1]);
            let base: Vec<f32> = data.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            let wide = (0..CLIP_VOCAB * width).map(|j| {
                let (i, k) = (j / width, j % width);
                base[(i % rows) * width + k] + base[(i / rows % rows) * width + k] / 2.0
            });
            data = wide.flat_map(f32::to_le_bytes).collect();
            shape = vec![CLIP_VOCAB, width];
        }
        owned.push((tensor, view.dtype(), shape, data));
    }
    let views = owned.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()));
    (config, safetensors::serialize(views, None).unwrap())
}

/// [`clip_vocab_fixture`] written into `dir` as `config.json` and `model.safetensors` (for the
/// CLI): their paths.
pub fn write_clip_vocab_fixture(name: &str, dir: &Path) -> (String, String) {
    let (config, bytes) = clip_vocab_fixture(name);
    std::fs::create_dir_all(dir).unwrap();
    let (cfg, weights) = (dir.join("config.json"), dir.join("model.safetensors"));
    std::fs::write(&cfg, serde_json::to_string(&config).unwrap()).unwrap();
    std::fs::write(&weights, bytes).unwrap();
    (cfg.to_string_lossy().into_owned(), weights.to_string_lossy().into_owned())
}
