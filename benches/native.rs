//! Native CPU benchmark (burn's flex backend with this crate's kernels) beside PyTorch eager:
//! image and text embedding latency at batch 1 and 8 on 1 and 2 threads, model load,
//! preprocessing and tokenization. Writes the "Native CPU" section of `BENCHMARKS.md`.
//!
//! Run through `tools/bench.sh`, which generates random-weight full-size checkpoints with the
//! reference code (timings do not depend on the weights' values), or alone:
//!
//! ```sh
//! MOBILECLIP_BENCH_FIXTURES=/work/fixtures/full MOBILECLIP_BENCH_MODELS=MobileCLIP-S0,MobileCLIP2-S0 \
//!   MOBILECLIP_BENCH_PYTHON=.venv-ref/bin/python cargo bench --bench native
//! ```
//!
//! - `MOBILECLIP_BENCH_FIXTURES`: folders of `config.json` + checkpoint (+ `io.safetensors` for
//!   the PyTorch rows), as `tools/gen_fixtures.py --full` writes them.
//! - `MOBILECLIP_BENCH_MODELS`: which of them (comma-separated names; default all).
//! - `MOBILECLIP_BENCH_THREADS`: thread counts (default `1,2`); each runs on a rayon pool of
//!   that size (this crate's kernels and burn flex's).
//! - `MOBILECLIP_BENCH_PYTHON`: a Python with torch; when set, `benches/torch_eager.py` times the
//!   reference model at the same thread counts, interleaved with ours round by round.
//! - `MOBILECLIP_BENCH_ITERS` (default 7) timed calls per figure after one warm-up;
//!   `MOBILECLIP_BENCH_ROUNDS` (default 2) rounds of (ours, PyTorch); figures are the median
//!   over rounds.
//!
//! Every figure is a median wall time and a mean process CPU time per call. Ratios are PyTorch's
//! time over ours (above 1: we are faster), from CPU time on one thread (robust to other load on
//! a shared machine) and wall time on more.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use burn::tensor::Device;
use mobileclip_wasm::preprocess::{ImageView, PixelFormat, preprocess};
use mobileclip_wasm::tokenizer::ClipTokenizer;
use mobileclip_wasm::{MobileClip, ModelConfig};

mod common;
use common::write_section;

/// Process CPU time (all threads), in ms.
fn cpu_ms() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 * 1e-6
}

/// One figure: median wall ms and mean process CPU ms per call.
#[derive(Clone, Copy, Default)]
struct Time {
    wall: f64,
    cpu: f64,
}

impl Time {
    fn per(self, n: f64) -> Self {
        Self { wall: self.wall / n, cpu: self.cpu / n }
    }
}

/// The four figures of a row: image b1, image b8 per image, text b1, text b8 per text.
type Row = [Time; 4];

/// `n` timed calls after one warm-up.
fn timed(n: usize, mut f: impl FnMut()) -> Time {
    f();
    let cpu = cpu_ms();
    let t: Vec<f64> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let cpu = (cpu_ms() - cpu) / n as f64;
    Time { wall: median(t), cpu }
}

/// The median (the mean of the middle two for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Median of each figure over rounds.
fn median_rows(rows: &[Row]) -> Row {
    std::array::from_fn(|i| Time {
        wall: median(rows.iter().map(|r| r[i].wall).collect()),
        cpu: median(rows.iter().map(|r| r[i].cpu).collect()),
    })
}

fn checkpoint(dir: &Path) -> PathBuf {
    ["model.pt", "model.safetensors"].iter().map(|f| dir.join(f)).find(|p| p.exists()).expect("a checkpoint")
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Ours on `threads` threads.
fn ours(model: &MobileClip, threads: usize, iters: usize) -> Row {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let s = model.config().preprocess.image_size;
        let pixels: Vec<f32> = (0..8 * 3 * s * s).map(|i| (i % 255) as f32 / 255.0).collect();
        let one = &pixels[..3 * s * s];
        let texts: Vec<String> =
            (0..8).map(|i| format!("a photo of a {} on the table, number {i}", ["cat", "dog"][i % 2])).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        [
            timed(iters, || drop(model.encode_pixels(one, 1).unwrap())),
            timed(iters.div_ceil(2), || drop(model.encode_pixels(&pixels, 8).unwrap())).per(8.0),
            timed(iters, || drop(model.encode_texts(&refs[..1]).unwrap())),
            timed(iters.div_ceil(2), || drop(model.encode_texts(&refs).unwrap())).per(8.0),
        ]
    })
}

/// PyTorch eager's rows, by (model, threads), and its description.
fn torch(py: &str, dirs: &[PathBuf], threads: &str, iters: usize) -> (BTreeMap<(String, usize), Row>, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/torch_eager.py");
    let out = Command::new(py)
        .arg(&script)
        .args(dirs)
        .args(["--threads", threads, "--iters", &iters.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run benches/torch_eager.py");
    assert!(out.status.success(), "benches/torch_eager.py failed ({})", out.status);
    let mut rows = BTreeMap::new();
    let mut describe = String::new();
    for line in String::from_utf8(out.stdout).unwrap().lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        for k in ["image_max_diff", "text_max_diff"] {
            assert!(f(k) <= 1e-4, "PyTorch eager {k} {} on {}", f(k), v["model"]);
        }
        let t = |k: &str, n: f64| Time { wall: f(&format!("{k}_ms")) / n, cpu: f(&format!("{k}_cpu_ms")) / n };
        rows.insert(
            (v["model"].as_str().unwrap().to_string(), v["threads"].as_u64().unwrap() as usize),
            [t("image", 1.0), t("image8", 8.0), t("text", 1.0), t("text8", 8.0)],
        );
        describe = v["describe"].as_str().unwrap_or("PyTorch eager").to_string();
    }
    (rows, describe)
}

fn main() {
    let root = PathBuf::from(
        std::env::var("MOBILECLIP_BENCH_FIXTURES").expect("MOBILECLIP_BENCH_FIXTURES (see tools/bench.sh)"),
    );
    let iters: usize = env_or("MOBILECLIP_BENCH_ITERS", 7);
    let rounds: usize = env_or("MOBILECLIP_BENCH_ROUNDS", 2).max(1);
    let threads_arg = std::env::var("MOBILECLIP_BENCH_THREADS").unwrap_or_else(|_| "1,2".into());
    let threads: Vec<usize> =
        threads_arg.split(',').map(|t| t.trim().parse().expect("MOBILECLIP_BENCH_THREADS")).collect();
    let wanted: Option<Vec<String>> =
        std::env::var("MOBILECLIP_BENCH_MODELS").ok().map(|m| m.split(',').map(|s| s.trim().to_string()).collect());
    let python = std::env::var("MOBILECLIP_BENCH_PYTHON").ok().filter(|p| !p.is_empty());
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("config.json").exists())
        .filter(|p| wanted.as_ref().is_none_or(|w| w.iter().any(|m| p.file_name().is_some_and(|f| f == m.as_str()))))
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no models in {}", root.display());

    let mut loads = String::new();
    let mut models = Vec::new();
    for dir in &dirs {
        let config = ModelConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        let name = config.name.clone();
        let bytes = std::fs::read(checkpoint(dir)).unwrap();
        let start = Instant::now();
        let model = MobileClip::from_bytes(config, bytes, Device::flex()).unwrap();
        writeln!(loads, "| {name} | {:.1} |", start.elapsed().as_secs_f64() * 1e3).unwrap();
        models.push((name, model));
    }

    // Rounds of (ours at every thread count, PyTorch at every thread count).
    let mut ours_rounds: BTreeMap<(String, usize), Vec<Row>> = BTreeMap::new();
    let mut torch_rounds: BTreeMap<(String, usize), Vec<Row>> = BTreeMap::new();
    let mut torch_name = String::new();
    for round in 0..rounds {
        for (name, model) in &models {
            for &t in &threads {
                let row = ours(model, t, iters);
                eprintln!(
                    "round {round}: {name}, {t} thread(s): image {:.1} ms (CPU {:.1}), text {:.1} ms (CPU {:.1})",
                    row[0].wall, row[0].cpu, row[2].wall, row[2].cpu
                );
                ours_rounds.entry((name.clone(), t)).or_default().push(row);
            }
        }
        if let Some(py) = &python {
            let (rows, describe) = torch(py, &dirs, &threads_arg, iters);
            for (k, row) in rows {
                eprintln!(
                    "round {round}: PyTorch {}, {} thread(s): image {:.1} ms (CPU {:.1}), text {:.1} ms (CPU {:.1})",
                    k.0, k.1, row[0].wall, row[0].cpu, row[2].wall, row[2].cpu
                );
                torch_rounds.entry(k).or_default().push(row);
            }
            torch_name = describe;
        }
    }

    let mut table = String::from(
        "| model | threads | runtime | image, batch 1 (ms) | image, batch 8 (ms/image) | text, batch 1 (ms) | text, batch 8 (ms/text) |\n|---|---|---|---|---|---|---|\n",
    );
    let cell = |t: Time| format!("{:.1} (CPU {:.1})", t.wall, t.cpu);
    for (name, _) in &models {
        for &t in &threads {
            let key = (name.clone(), t);
            let ours = median_rows(&ours_rounds[&key]);
            let theirs = torch_rounds.get(&key).map(|r| median_rows(r));
            let cells: Vec<String> = (0..4)
                .map(|i| match theirs {
                    Some(p) => {
                        let ratio = if t == 1 { p[i].cpu / ours[i].cpu } else { p[i].wall / ours[i].wall };
                        format!("{} **{ratio:.2}×**", cell(ours[i]))
                    }
                    None => cell(ours[i]),
                })
                .collect();
            writeln!(table, "| {name} | {t} | mobileclip-wasm (flex) | {} |", cells.join(" | ")).unwrap();
            if let Some(p) = theirs {
                let cells: Vec<String> = p.iter().map(|&x| cell(x)).collect();
                writeln!(table, "| {name} | {t} | {torch_name} | {} |", cells.join(" | ")).unwrap();
            }
        }
    }

    // Preprocessing a 12 MP photo and tokenizing.
    let (w, h) = (4032, 3024);
    let rgba: Vec<u8> = (0..w * h * 4).map(|i| (i * 31 % 251) as u8).collect();
    let view = ImageView::new(&rgba, w, h, PixelFormat::Rgba8).unwrap();
    let mut pre = String::new();
    let ms = |t: Time| format!("{:.1}", t.wall);
    for name in ["MobileCLIP-S0", "MobileCLIP2-L-14"] {
        let cfg = ModelConfig::builtin(name).unwrap().preprocess;
        let t = timed(iters, || drop(preprocess(&view, &cfg).unwrap()));
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
    let t = timed(iters, || drop(tok.encode("a photo of a cat sitting on a red sofa next to a window").unwrap()));
    writeln!(pre, "| tokenize one caption | {:.3} ms |", t.wall).unwrap();
    let t = timed(iters, || drop(ClipTokenizer::new().unwrap()));
    writeln!(pre, "| build the tokenizer | {} ms |", ms(t)).unwrap();

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    let section = format!(
        "## Native CPU (burn flex backend and this crate's kernels, beside PyTorch eager)\n\n\
Measured by `cargo bench --bench native` (run by `tools/bench.sh`; see benches/native.rs to run it alone) on {cpu}, \
{rounds} round(s) of ours then PyTorch eager (`benches/torch_eager.py`, the reference model re-parameterised, same \
random-weight full-size checkpoints), {iters} timed calls per figure after one warm-up, median over rounds; load average \
at the end {load}. Each cell: median wall ms (mean process CPU ms per call, all threads). **Ratio** (on our rows): \
PyTorch's time over ours, above 1 = we are faster; from CPU time on 1 thread (robust to the other load on this \
shared machine), from wall time on 2 threads. Two-thread wall times mean something only on a quiet machine \
(load average well under 1 on 2 cores): on a loaded one both runtimes wait for cores, PyTorch's spinning OpenMP threads \
most.\n\n{table}\n| model | load (ms): parse + fold + upload of the train-time checkpoint |\n|---|---|\n{loads}\n\
| step | time |\n|---|---|\n{pre}"
    );
    write_section(Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md").as_path(), "## Native CPU", &section);
    println!("{section}");
}
