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
use mobileclip_wasm::weights::{Checkpoint, ConvertOptions, Precision, Tolerance, Towers, compact};
use mobileclip_wasm::{MobileClip, ModelConfig};

mod common;
use common::write_section;

/// 100 labels for the texts and the zero-shot check (shared with `tests/compact.rs`).
fn labels() -> Vec<&'static str> {
    include_str!("../tests/fixtures/labels.txt").lines().collect()
}

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
    let pack = model.label_pack(&labels(), &TEMPLATES[..1]).unwrap();
    let labels = pack.embeddings().chunks(pack.dim()).map(<[f32]>::to_vec).collect();
    Embeddings { images, texts: out, labels }
}

/// Per image-tower tensor (to see where `auto`'s bytes and the error go): its shape, what
/// `auto` stores it as, the worst per-channel relative error of int8 with one scale per channel,
/// and the image cosine (min over the photos) when that tensor alone is stored so
/// (`MOBILECLIP_ACCURACY_TENSORS=list`: not that).
fn tensor_report(
    config: &ModelConfig,
    bytes: &[u8],
    photos: &[(Vec<u8>, usize, usize)],
    want: &[Vec<f32>],
    tolerance: Tolerance,
) {
    use mobileclip_wasm::weights::{fuse_published, quantize};
    let (config, _, fused) = fuse_published(Checkpoint::from_bytes(bytes).unwrap(), config).unwrap();
    let options = ConvertOptions { precision: Precision::F32, towers: Towers::Image, tolerance };
    let image_cosine = |fused: &mobileclip_wasm::weights::FusedWeights| {
        let file = compact::write(&config, fused, &options, &"0".repeat(64));
        let model = MobileClip::load(None, file, Device::flex()).unwrap();
        let views: Vec<ImageView> =
            photos.iter().map(|(rgb, w, h)| ImageView::new(rgb, *w, *h, PixelFormat::Rgb8).unwrap()).collect();
        let got = model.encode_images(&views).unwrap();
        min_median(want, &got).0
    };
    let base: mobileclip_wasm::weights::FusedWeights = compact::store(fused.clone(), &options);
    let list_only = std::env::var("MOBILECLIP_ACCURACY_TENSORS").is_ok_and(|v| v == "list");
    // `MOBILECLIP_ACCURACY_TENSORS=<bits>`: the tensor alone stored at that many bits, one scale
    // per 32 values with column factors (where 32 divides its rows), instead of int8 per channel
    let only_bits: Option<u32> = std::env::var("MOBILECLIP_ACCURACY_TENSORS").ok().and_then(|v| v.parse().ok());
    eprintln!(
        "| tensor | shape | tolerance | auto | auto bytes | worst err int8/int7/int6/int5/int4 per channel | same, per 32 + columns | image cos min, only it int8/channel |"
    );
    for (name, t) in fused.iter().filter(|(n, _)| n.starts_with("visual.")) {
        let q = quantize::store(t.clone(), Precision::Int8, 0.0);
        if q.storage().kind() == "f32" {
            continue;
        }
        let tol = tolerance.for_tensor(name, t.numel());
        let auto = quantize::store(t.clone(), Precision::Auto, tol);
        let row = t.numel() / t.shape()[0];
        let values = t.to_f32();
        let errs = |group: usize, columns: bool| {
            if group > row || row % group != 0 {
                return "-".to_string();
            }
            (4..=8u32)
                .rev()
                .map(|bits| {
                    let q = quantize::quantise(t.shape(), &values, bits, group, columns, 0);
                    format!("{:.4}", quantize::worst_channel_error(&values, &q.to_f32(), row))
                })
                .collect::<Vec<_>>()
                .join("/")
        };
        let mut one = base.clone();
        match only_bits {
            Some(bits) if row % 32 == 0 => one.insert(name, quantize::quantise(t.shape(), &values, bits, 32, true, 0)),
            Some(_) => continue,
            None => one.insert(name, q),
        };
        eprintln!(
            "| {name} | {:?} | {tol:.4} | {} | {} | {} | {} | {:.6} |",
            t.shape(),
            auto.storage().kind(),
            auto.storage().bytes(),
            errs(row, false),
            errs(32, true),
            if list_only { f64::NAN } else { image_cosine(&one) }
        );
    }
}

fn mb(bytes: usize) -> String {
    format!("{:.2}", bytes as f64 / 1e6)
}

/// Sizes of the compact files of every model folder of `dir` (`MOBILECLIP_SIZE_FIXTURES`, e.g.
/// `/work/fixtures/full`; `MOBILECLIP_SIZE_MODELS` picks some) at every storage, both towers and
/// each alone, into the "Compact file sizes" section. No embedding is computed: the checkpoint
/// is folded once and stored at each dtype, as `convert` does.
fn sizes(dir: &Path, tolerance: Tolerance) {
    use mobileclip_wasm::weights::fuse_published;
    let only: Option<Vec<String>> =
        std::env::var("MOBILECLIP_SIZE_MODELS").ok().map(|v| v.split(',').map(String::from).collect());
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    let mut table = String::from(
        "| model | checkpoint | dtype | both towers | image tower | text tower |\n|---|---|---|---|---|---|\n",
    );
    for dir in dirs.iter().filter(|d| d.join("config.json").exists()) {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if only.as_ref().is_some_and(|o| !o.contains(&name)) {
            continue;
        }
        eprintln!("sizes: {name}");
        let config = ModelConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        let path = checkpoint(dir);
        let bytes = std::fs::read(&path).unwrap();
        let checkpoint_mb = mb(bytes.len());
        let (config, _, fused) = fuse_published(Checkpoint::from_bytes(bytes).unwrap(), &config).unwrap();
        for precision in [Precision::F32, Precision::F16, Precision::Int8, Precision::Auto] {
            let options = ConvertOptions { precision, towers: Towers::Both, tolerance };
            let stored = compact::store(fused.clone(), &options);
            let size = |towers: Towers| {
                let mut part = stored.clone();
                part.retain(|n, _| towers.keeps(n));
                compact::write(&config, &part, &ConvertOptions { towers, ..options }, &"0".repeat(64)).len()
            };
            writeln!(
                table,
                "| {name} | {checkpoint_mb} | {precision} | {} | {} | {} |",
                mb(size(Towers::Both)),
                mb(size(Towers::Image)),
                mb(size(Towers::Text))
            )
            .unwrap();
        }
    }
    let section = format!(
        "## Compact file sizes\n\nMeasured by `tools/compact-accuracy.sh --sizes`: every model's full-size random-weight fixture \
(`tools/gen_fixtures.py --full`) folded once and stored at each dtype as `mobileclip convert` does, in MB (10^6 bytes). f32, f16 and \
int8 sizes depend only on the tensors' shapes, so they are the published checkpoints' too; `auto`'s depend on the weights (what \
each tensor's error allows): these fixtures' BatchNorm statistics are close to their activations', not trained-looking, so \
`auto` here is not what it gives on trained weights (the \"Compact files\" section measures that on trained-looking statistics). \
`auto` tolerances: image {}, text {}.\n\n{table}",
        tolerance.image, tolerance.text
    );
    write_section(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md").as_path(),
        "## Compact file sizes",
        &section,
    );
    println!("{section}");
}

fn main() {
    if let Some(dir) = std::env::var_os("MOBILECLIP_SIZE_FIXTURES") {
        return sizes(Path::new(&dir), Tolerance::default());
    }
    let fixtures = PathBuf::from(std::env::var("MOBILECLIP_ACCURACY_FIXTURES").expect("MOBILECLIP_ACCURACY_FIXTURES"));
    let photos_dir = PathBuf::from(std::env::var("MOBILECLIP_ACCURACY_PHOTOS").expect("MOBILECLIP_ACCURACY_PHOTOS"));
    let tolerances: Vec<Tolerance> = std::env::var("MOBILECLIP_AUTO_TOLERANCE").ok().map_or_else(
        || vec![Tolerance::default()],
        |v| {
            v.split(';')
                .map(|v| {
                    let (i, t) = v.split_once(',').expect("image,text");
                    Tolerance { image: i.parse().unwrap(), text: t.parse().unwrap() }
                })
                .collect()
        },
    );
    let tolerance = tolerances[0];
    let dtypes: Vec<Precision> = std::env::var("MOBILECLIP_ACCURACY_DTYPES")
        .unwrap_or_else(|_| "f32,f16,int8,auto".into())
        .split(',')
        .map(|d| d.parse().unwrap())
        .collect();
    // the photos (PNG files of the folder), then their crops (its `crops/` folder, when there is one)
    let pngs = |dir: &Path| -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "png")).collect())
            .unwrap_or_default();
        paths.sort();
        paths
    };
    let originals = pngs(&photos_dir);
    let photo_paths: Vec<PathBuf> = originals.iter().cloned().chain(pngs(&photos_dir.join("crops"))).collect();
    let photos: Vec<(Vec<u8>, usize, usize)> = photo_paths.iter().map(|p| load_image_file(p).unwrap()).collect();
    let texts: Vec<String> =
        TEMPLATES.iter().flat_map(|t| labels().into_iter().map(move |l| t.replace("{}", l))).collect();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&fixtures).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();

    let mut table = String::from(
        "| model | dtype | both towers (MB) | image tower (MB) | image cosine min / median | text cosine min / median | zero-shot top-1 agreement (image tower alone / text tower alone) | storage (tensors) |\n|---|---|---|---|---|---|---|---|\n",
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
        if std::env::var_os("MOBILECLIP_ACCURACY_TENSORS").is_some() {
            tensor_report(&config, &bytes, &photos, &want.images, tolerance);
        }
        writeln!(
            table,
            "| {} | checkpoint ({}) | {} | | | | | |",
            config.name,
            ckpt_path.file_name().unwrap().to_string_lossy(),
            mb(bytes.len())
        )
        .unwrap();
        let runs = dtypes.iter().flat_map(|&p| {
            let tolerances = if p == Precision::Auto { &tolerances[..] } else { &tolerances[..1] };
            tolerances.iter().map(move |&t| (p, t))
        });
        for (precision, tolerance) in runs {
            eprintln!("{}: {precision} {tolerance:?}", config.name);
            let options = ConvertOptions { precision, towers: Towers::Both, tolerance };
            let convert = |towers: Towers| {
                MobileClip::convert(&config, bytes.clone(), &ConvertOptions { towers, ..options }).unwrap()
            };
            let (file, image_only) = (convert(Towers::Both), convert(Towers::Image));
            // the storage the file says it holds (a read turns f16 into f32 at once), with each
            // tensor's bytes (values, scales, column factors) from the header's offsets
            let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
            let header: serde_json::Value = serde_json::from_slice(&file[8..8 + n]).unwrap();
            let storage: std::collections::BTreeMap<String, String> =
                serde_json::from_str(header["__metadata__"]["storage"].as_str().unwrap()).unwrap();
            let entry_bytes = |key: &str| {
                header.get(key).map_or(0, |e| {
                    (e["data_offsets"][1].as_u64().unwrap() - e["data_offsets"][0].as_u64().unwrap()) as usize
                })
            };
            let shapes: std::collections::BTreeMap<String, Vec<usize>> =
                serde_json::from_str(header["__metadata__"]["shapes"].as_str().unwrap()).unwrap();
            let mut kinds = std::collections::BTreeMap::<String, (usize, usize)>::new();
            for (name, stored) in &storage {
                // a bit-packed tensor's shape is in `shapes` (its stored one is its bytes')
                let shape: Vec<usize> = shapes.get(name).cloned().unwrap_or_else(|| {
                    header[name]["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()
                });
                let row = shape.iter().skip(1).product::<usize>().max(1);
                let parts: Vec<&str> = stored.split(':').collect();
                let kind = match parts.as_slice() {
                    ["f32"] => "f32".to_string(),
                    ["f16"] => "f16".to_string(),
                    [int, group, rest @ ..] => {
                        let per = if group.parse::<usize>().unwrap() == row { "per channel" } else { "per group" };
                        format!("{int} {per}{}", rest.iter().map(|r| format!(" + {r}")).collect::<String>())
                    }
                    _ => panic!("unknown storage {stored}"),
                };
                let e = kinds.entry(kind).or_default();
                e.0 += 1;
                e.1 += [String::new(), ".scales".into(), ".columns".into(), ".exact".into(), ".exact_at".into()]
                    .iter()
                    .map(|s| entry_bytes(&format!("{name}{s}")))
                    .sum::<usize>();
            }
            let kinds: Vec<String> = kinds.iter().map(|(k, (n, b))| format!("{k}: {n}, {} MB", mb(*b))).collect();
            let model = MobileClip::load(None, file.clone(), Device::flex()).unwrap();
            let got = embed(&model, &photos, &texts);
            let (imin, imed) = min_median(&want.images, &got.images);
            let (tmin, tmed) = min_median(&want.texts, &got.texts);
            let got_top1 = top1(&got.images, &got.labels);
            let agreeing = |top: &[usize]| want_top1.iter().zip(top).filter(|(a, b)| a == b).count();
            let agree = agreeing(&got_top1);
            // which tower's error flips the disagreements: this storage's image tower with f32's
            // labels, and f32's images with this storage's labels
            let (image_alone, text_alone) =
                (agreeing(&top1(&got.images, &want.labels)), agreeing(&top1(&want.images, &got.labels)));
            writeln!(
                table,
                "| {} | {precision}{} | {} | {} | {imin:.6} / {imed:.6} | {tmin:.6} / {tmed:.6} | {agree}/{} ({image_alone} / {text_alone}) | {} |",
                config.name,
                if tolerances.len() > 1 && precision == Precision::Auto {
                    format!(" ({}, {})", tolerance.image, tolerance.text)
                } else {
                    String::new()
                },
                mb(file.len()),
                mb(image_only.len()),
                photos.len(),
                kinds.join(", ")
            )
            .unwrap();
            eprint!("{table}");
        }
    }
    // the photos, without their crops
    let names: Vec<String> = originals.iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    let section = format!(
        "## Compact files\n\nMeasured by `tools/compact-accuracy.sh`: each model's checkpoint (random weights whose BatchNorm statistics look trained: \
`tools/gen_fixtures.py --full --trained-bn`, running_var log-normal over four decades, 2% near-dead channels) converted by `MobileClip::convert` \
at each dtype; cosine of each embedding to the checkpoint's own (f32) over {} images ({} of scikit-image's bundled photos: {}; and 5 crops of each, its 4 corners and its centre at 60 % of each side) and {} texts \
({} labels × {} prompt templates); zero-shot top-1 = each photo's best of the {} labels (\"a photo of a {{}}.\") agrees with f32's; in brackets, the same with only the image tower at this dtype \
(its images against f32's labels) and with only the text tower (f32's images against its labels): which tower's error flips the disagreements. \
`auto` tolerances (worst per-channel relative error, the larger of ‖w − ŵ‖ / ‖w‖ and the same over the channel's values besides its largest, \
of a tensor of 2^18 values or more; a tensor of n values gets √(n / 2^18) of it): image {}, text {}. Sizes in MB (10^6 bytes). Vectors (biases, norms) stay f32 in every file.\n\n\
What these fixtures cannot show: their weights are random (Gaussian, fan-in scaled), only their BatchNorm statistics look trained, so the \
kernels have trained-looking channel and column scales after folding but not trained weights' own outliers and structure; the photos are \
scikit-image's, and top-1 agreement over 100 labels on random weights measures how often near-ties survive, not a trained model's \
zero-shot accuracy (a photo whose best label leads the next by less than a storage moves its image–text cosines is a tie that storage may flip; `full_size_accuracy_bars` prints the smallest and the median lead, and both margins of a disagreement). `auto`'s tolerances are set on these two fixtures. The crops share their photo's content: they add near-ties to flip, not independent scenes. \
Integer storage: `int<k>` = k-bit symmetric integers (k = 4 … 8; below 8 bit-packed), one scale per channel or per group of 256 … 32 values of a channel, \
optionally per-column factors and with each row's one or two largest values kept apart (`exact`: stored as halves with their indices); scales and factors stored as halves. \
`f16 per channel`: halves times a power-of-two scale per channel (for kernels whose near-dead channels plain halves flush). The int8 rows (one scale per channel for every weight) are the floor of weight-only \
int8; `auto` takes fewer bits only where a tensor's measured error allows it, which on these trained-looking statistics is rare in the image towers \
(their tolerance is tight: 4–7 bits measure 2–18x int8's error per channel).\n\n{table}",
        photos.len(),
        names.len(),
        names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", "),
        texts.len(),
        labels().len(),
        TEMPLATES.len(),
        labels().len(),
        tolerance.image,
        tolerance.text,
    );
    write_section(Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md").as_path(), "## Compact files", &section);
    println!("{section}");
}
