//! Native CPU benchmark (burn's flex backend): model load (parse + fold + upload), image and
//! text embedding latency, preprocessing and tokenization. Writes the "Native CPU" section of
//! `BENCHMARKS.md`.
//!
//! Run through `tools/bench.sh`, which generates random-weight full-size checkpoints with the
//! reference code (timings do not depend on the weights' values) and sets
//! `MOBILECLIP_BENCH_FIXTURES`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::tensor::Device;
use mobileclip_wasm::preprocess::{ImageView, PixelFormat, preprocess};
use mobileclip_wasm::tokenizer::ClipTokenizer;
use mobileclip_wasm::{MobileClip, ModelConfig};

mod common;
use common::write_section;

/// Median of `n` timed runs after one warm-up.
fn median(n: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut t: Vec<Duration> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[n / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn checkpoint(dir: &Path) -> PathBuf {
    ["model.pt", "model.safetensors"].iter().map(|f| dir.join(f)).find(|p| p.exists()).expect("a checkpoint")
}

fn main() {
    let root = PathBuf::from(
        std::env::var("MOBILECLIP_BENCH_FIXTURES").expect("MOBILECLIP_BENCH_FIXTURES (see tools/bench.sh)"),
    );
    let iters: usize = std::env::var("MOBILECLIP_BENCH_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("config.json").exists())
        .collect();
    dirs.sort();

    let mut table = String::from(
        "| model | load (ms) | image, batch 1 (ms) | image, batch 8 (ms/image) | text, batch 1 (ms) | text, batch 8 (ms/text) |\n|---|---|---|---|---|---|\n",
    );
    for dir in &dirs {
        let config = ModelConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        let name = config.name.clone();
        let bytes = std::fs::read(checkpoint(dir)).unwrap();
        let start = Instant::now();
        let model = MobileClip::from_bytes(config, bytes, Device::flex()).unwrap();
        let load = start.elapsed();
        let s = model.config().preprocess.image_size;
        let pixels: Vec<f32> = (0..8 * 3 * s * s).map(|i| (i % 255) as f32 / 255.0).collect();
        let one = &pixels[..3 * s * s];
        let img1 = median(iters, || drop(model.encode_pixels(one, 1).unwrap()));
        let img8 = median(iters.div_ceil(2), || drop(model.encode_pixels(&pixels, 8).unwrap()));
        let texts: Vec<String> =
            (0..8).map(|i| format!("a photo of a {} on the table, number {i}", ["cat", "dog"][i % 2])).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let txt1 = median(iters, || drop(model.encode_texts(&refs[..1]).unwrap()));
        let txt8 = median(iters.div_ceil(2), || drop(model.encode_texts(&refs).unwrap()));
        eprintln!("{name}: load {} ms, image {} ms, text {} ms", ms(load), ms(img1), ms(txt1));
        writeln!(
            table,
            "| {name} | {} | {} | {} | {} | {} |",
            ms(load),
            ms(img1),
            ms(img8 / 8),
            ms(txt1),
            ms(txt8 / 8)
        )
        .unwrap();
    }

    // Preprocessing a 12 MP photo and tokenizing.
    let (w, h) = (4032, 3024);
    let rgba: Vec<u8> = (0..w * h * 4).map(|i| (i * 31 % 251) as u8).collect();
    let view = ImageView::new(&rgba, w, h, PixelFormat::Rgba8).unwrap();
    let mut pre = String::new();
    for name in ["MobileCLIP-S0", "MobileCLIP2-L-14"] {
        let cfg = ModelConfig::builtin(name).unwrap().preprocess;
        let t = median(iters, || drop(preprocess(&view, &cfg).unwrap()));
        writeln!(
            pre,
            "| preprocess 4032×3024 RGBA → {0}×{0} {1:?} ({name}) | {2} ms |",
            cfg.image_size,
            cfg.interpolation,
            ms(t)
        )
        .unwrap();
    }
    let tok = ClipTokenizer::new().unwrap();
    let t = median(iters, || drop(tok.encode("a photo of a cat sitting on a red sofa next to a window").unwrap()));
    writeln!(pre, "| tokenize one caption | {:.3} ms |", t.as_secs_f64() * 1e3).unwrap();
    let t = median(iters, || drop(ClipTokenizer::new().unwrap()));
    writeln!(pre, "| build the tokenizer | {} ms |", ms(t)).unwrap();

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let section = format!(
        "## Native CPU (burn flex backend)\n\nMeasured by `tools/bench.sh` ({} iterations, median after one warm-up) on {cpu}, {cores} threads. \
Random-weight full-size checkpoints written by the reference code; load = parse + fold + upload of the train-time checkpoint.\n\n{table}\n| step | time |\n|---|---|\n{pre}",
        iters
    );
    write_section(Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md").as_path(), "## Native CPU", &section);
    println!("{section}");
}
