//! Compact model files: size and accuracy per storage (`f32`, `f16`, `int8`, `auto`), written
//! to the "Compact files" section of `BENCHMARKS.md`.
//!
//! For each model folder of `MOBILECLIP_ACCURACY_FIXTURES` (a `config.json` and a published-layout
//! checkpoint, written by `tools/gen_fixtures.py --full --trained-bn`: BatchNorm statistics that
//! look trained), the checkpoint is converted at every storage and each compact file is compared
//! with the checkpoint itself (f32) on the photos of `MOBILECLIP_ACCURACY_PHOTOS` (PNG files) and
//! 500 texts (100 labels × 5 prompt templates): cosine of each embedding to f32's, and zero-shot
//! top-1 agreement of each photo against the 100 labels. Run through `tools/compact-accuracy.sh`.
//!
//! `MOBILECLIP_AUTO_TOLERANCE=image,text` overrides `auto`'s per-tensor tolerances and
//! `MOBILECLIP_ACCURACY_DTYPES=auto,…` chooses the dtypes (to explore).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use mobileclip_wasm::preprocess::{ImageView, PixelFormat, load_image_file};
use mobileclip_wasm::weights::{Checkpoint, ConvertOptions, Precision, Storage, Tolerance, Towers, compact};
use mobileclip_wasm::{MobileClip, ModelConfig};

mod common;
use common::write_section;

/// 100 labels for the texts and the zero-shot check.
const LABELS: &[&str] = &[
    "cat",
    "dog",
    "horse",
    "cow",
    "sheep",
    "bird",
    "eagle",
    "owl",
    "fish",
    "shark",
    "whale",
    "dolphin",
    "frog",
    "snake",
    "lizard",
    "turtle",
    "butterfly",
    "bee",
    "spider",
    "ant",
    "person",
    "child",
    "astronaut",
    "soldier",
    "chef",
    "doctor",
    "car",
    "truck",
    "bus",
    "bicycle",
    "motorcycle",
    "train",
    "airplane",
    "rocket",
    "boat",
    "ship",
    "house",
    "castle",
    "bridge",
    "tower",
    "church",
    "road",
    "street",
    "city",
    "village",
    "forest",
    "mountain",
    "beach",
    "desert",
    "river",
    "lake",
    "ocean",
    "sky",
    "moon",
    "star",
    "galaxy",
    "planet",
    "cloud",
    "snow",
    "rain",
    "tree",
    "flower",
    "grass",
    "leaf",
    "rock",
    "brick wall",
    "gravel",
    "sand",
    "wood",
    "metal",
    "coffee",
    "cup",
    "plate",
    "bowl",
    "bottle",
    "apple",
    "banana",
    "pizza",
    "bread",
    "cake",
    "clock",
    "watch",
    "phone",
    "computer",
    "keyboard",
    "book",
    "page of text",
    "newspaper",
    "painting",
    "coin",
    "microscope image",
    "cell",
    "retina",
    "x-ray",
    "chair",
    "table",
    "bed",
    "lamp",
    "window",
    "door",
];

const TEMPLATES: &[&str] =
    &["a photo of a {}.", "a picture of the {}.", "a close-up photo of a {}.", "a drawing of a {}.", "{}"];

fn checkpoint(dir: &Path) -> PathBuf {
    ["model.pt", "model.safetensors"].iter().map(|f| dir.join(f)).find(|p| p.exists()).expect("a checkpoint")
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-30)
}

/// Min and median of the row-wise cosines.
fn min_median(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f64, f64) {
    let mut c: Vec<f64> = a.iter().zip(b).map(|(x, y)| cosine(x, y)).collect();
    c.sort_by(f64::total_cmp);
    (c[0], c[c.len() / 2])
}

fn argmax(scores: impl Iterator<Item = f64>) -> usize {
    scores.enumerate().max_by(|a, b| a.1.total_cmp(&b.1)).expect("labels").0
}

/// Each photo's best label.
fn top1(images: &[Vec<f32>], labels: &[Vec<f32>]) -> Vec<usize> {
    images.iter().map(|i| argmax(labels.iter().map(|l| cosine(i, l)))).collect()
}

struct Embeddings {
    images: Vec<Vec<f32>>,
    texts: Vec<Vec<f32>>,
    labels: Vec<Vec<f32>>,
}

fn embed(model: &MobileClip, photos: &[(Vec<u8>, usize, usize)], texts: &[String]) -> Embeddings {
    let mut images = Vec::new();
    for chunk in photos.chunks(4) {
        let views: Vec<ImageView> =
            chunk.iter().map(|(rgb, w, h)| ImageView::new(rgb, *w, *h, PixelFormat::Rgb8).unwrap()).collect();
        images.extend(model.encode_images(&views).unwrap());
    }
    let mut out = Vec::new();
    for chunk in texts.chunks(50) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        out.extend(model.encode_texts(&refs).unwrap());
    }
    let pack = model.label_pack(LABELS, &TEMPLATES[..1]).unwrap();
    let labels = pack.embeddings().chunks(pack.dim()).map(<[f32]>::to_vec).collect();
    Embeddings { images, texts: out, labels }
}

fn mb(bytes: usize) -> String {
    format!("{:.2}", bytes as f64 / 1e6)
}

fn main() {
    let fixtures = PathBuf::from(std::env::var("MOBILECLIP_ACCURACY_FIXTURES").expect("MOBILECLIP_ACCURACY_FIXTURES"));
    let photos_dir = PathBuf::from(std::env::var("MOBILECLIP_ACCURACY_PHOTOS").expect("MOBILECLIP_ACCURACY_PHOTOS"));
    let tolerance = std::env::var("MOBILECLIP_AUTO_TOLERANCE").ok().map_or_else(Tolerance::default, |v| {
        let (i, t) = v.split_once(',').expect("image,text");
        Tolerance { image: i.parse().unwrap(), text: t.parse().unwrap() }
    });
    let dtypes: Vec<Precision> = std::env::var("MOBILECLIP_ACCURACY_DTYPES")
        .unwrap_or_else(|_| "f32,f16,int8,auto".into())
        .split(',')
        .map(|d| d.parse().unwrap())
        .collect();
    let mut photo_paths: Vec<PathBuf> = std::fs::read_dir(&photos_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    photo_paths.sort();
    let photos: Vec<(Vec<u8>, usize, usize)> = photo_paths.iter().map(|p| load_image_file(p).unwrap()).collect();
    let texts: Vec<String> = TEMPLATES.iter().flat_map(|t| LABELS.iter().map(move |l| t.replace("{}", l))).collect();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&fixtures).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();

    let mut table = String::from(
        "| model | dtype | both towers (MB) | image tower (MB) | image cosine min / median | text cosine min / median | zero-shot top-1 agreement | storage (tensors) |\n|---|---|---|---|---|---|---|---|\n",
    );
    for dir in dirs.iter().filter(|d| d.join("config.json").exists()) {
        let config = ModelConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        let ckpt_path = checkpoint(dir);
        let bytes = std::fs::read(&ckpt_path).unwrap();
        eprintln!("{}: reference (the checkpoint, f32)", config.name);
        let reference = MobileClip::from_bytes(config.clone(), bytes.clone(), Device::flex()).unwrap();
        let want = embed(&reference, &photos, &texts);
        drop(reference);
        let want_top1 = top1(&want.images, &want.labels);
        writeln!(
            table,
            "| {} | checkpoint ({}) | {} | | | | | |",
            config.name,
            ckpt_path.file_name().unwrap().to_string_lossy(),
            mb(bytes.len())
        )
        .unwrap();
        for precision in &dtypes {
            let precision = *precision;
            eprintln!("{}: {precision}", config.name);
            let options = ConvertOptions { precision, towers: Towers::Both, tolerance };
            let file = MobileClip::convert(&config, bytes.clone(), &options).unwrap();
            let image_only =
                MobileClip::convert(&config, bytes.clone(), &ConvertOptions { towers: Towers::Image, ..options })
                    .unwrap();
            let (_, fused) = compact::read(Checkpoint::from_bytes(file.clone()).unwrap()).unwrap();
            let mut kinds = std::collections::BTreeMap::<&str, (usize, usize)>::new();
            for (_, t) in fused.iter() {
                let row = t.numel() / t.shape().first().copied().unwrap_or(1).max(1);
                let kind = match t.storage() {
                    Storage::F32(_) => "f32",
                    Storage::F16(_) => "f16",
                    Storage::Int8 { group, columns, .. } => match (*group == row, columns.is_empty()) {
                        (true, true) => "int8 per channel",
                        (true, false) => "int8 per channel + columns",
                        (false, true) => "int8 per group",
                        (false, false) => "int8 per group + columns",
                    },
                };
                let e = kinds.entry(kind).or_default();
                e.0 += 1;
                e.1 += t.storage().bytes();
            }
            let kinds: Vec<String> = kinds.iter().map(|(k, (n, b))| format!("{k}: {n}, {} MB", mb(*b))).collect();
            let model = MobileClip::load(None, file.clone(), Device::flex()).unwrap();
            let got = embed(&model, &photos, &texts);
            let (imin, imed) = min_median(&want.images, &got.images);
            let (tmin, tmed) = min_median(&want.texts, &got.texts);
            let got_top1 = top1(&got.images, &got.labels);
            let agree = want_top1.iter().zip(&got_top1).filter(|(a, b)| a == b).count();
            writeln!(
                table,
                "| {} | {precision} | {} | {} | {imin:.6} / {imed:.6} | {tmin:.6} / {tmed:.6} | {agree}/{} | {} |",
                config.name,
                mb(file.len()),
                mb(image_only.len()),
                photos.len(),
                kinds.join(", ")
            )
            .unwrap();
            eprint!("{table}");
        }
    }
    let names: Vec<String> =
        photo_paths.iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    let section = format!(
        "## Compact files\n\nMeasured by `tools/compact-accuracy.sh`: each model's checkpoint (random weights whose BatchNorm statistics look trained: \
`tools/gen_fixtures.py --full --trained-bn`, running_var log-normal over four decades, 2% near-dead channels) converted by `MobileClip::convert` \
at each dtype; cosine of each embedding to the checkpoint's own (f32) over {} photos (scikit-image's bundled data: {}) and {} texts \
({} labels × {} prompt templates); zero-shot top-1 = each photo's best of the {} labels (\"a photo of a {{}}.\") agrees with f32's. \
`auto` tolerances (worst per-channel relative error of a tensor): image {}, text {}. Sizes in MB (10^6 bytes). Vectors (biases, norms) stay f32 in every file.\n\n{table}",
        photos.len(),
        names.join(", "),
        texts.len(),
        LABELS.len(),
        TEMPLATES.len(),
        LABELS.len(),
        tolerance.image,
        tolerance.text,
    );
    write_section(Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md").as_path(), "## Compact files", &section);
    println!("{section}");
}
