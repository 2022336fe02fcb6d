//! Mutation fuzzing of the checkpoint readers (zip, pickle, safetensors, compact model files)
//! over the real fixture checkpoints and compact files made from them: no input may panic, and
//! none may make a reader allocate beyond a bound.
//!
//! A seeded mutator (deterministic: a failure names the iteration that reproduces it) mixes
//! byte-level damage (bit flips, interesting integers, cut/duplicated/spliced stretches,
//! truncation) with structure-aware mutations that get past the outer checks: pickles are
//! mutated opcode-wise and re-zipped with valid CRC-32s, safetensors headers are rewritten as
//! JSON with hostile shapes, offsets and dtypes. Every parsed checkpoint then has every tensor
//! read. A counting allocator measures each input's peak allocation.
//!
//! This is an ordinary test of the native release build rather than cargo-fuzz: cargo-fuzz
//! needs a nightly toolchain and a sanitizer-instrumented build of the whole crate (burn
//! included), minutes of CI's two cores before the first input runs; the readers have no
//! `unsafe`, so the sanitizers would add little beyond what a panic check and an allocation
//! bound see. Coverage guidance is replaced by the structure-aware mutators.
//!
//! `MOBILECLIP_FUZZ_ITERS` (default 40000) sets the number of inputs, `MOBILECLIP_FUZZ_SEED`
//! the seed (default fixed), `MOBILECLIP_FUZZ_FROM` the first iteration (to reproduce one).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use common::{fixtures_root, hostile};
use mobileclip_wasm::weights::{Checkpoint, ConvertOptions, Precision, Towers, compact};
use mobileclip_wasm::{MobileClip, ModelConfig};

// ---------------------------------------------------------------------------------------------
// Allocation counting, per thread (the test harness runs other threads).

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grew(by: usize) {
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + by);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

fn shrank(by: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(by)));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            grew(new_size - layout.size())
        } else {
            shrank(layout.size() - new_size)
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`, returning its result and the most bytes it had allocated at once on this thread.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, PEAK.with(Cell::get) - base)
}

/// The most a reader may allocate for an input of `len` bytes: its own copy of the file, one
/// tensor converted to f32 (at most twice the file, from f16), the pickle budget (64 MiB,
/// twice for vector growth) and some slack for the zip directory and the JSON header.
fn bound(len: usize) -> usize {
    4 * len + 160 * (1 << 20)
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const INTERESTING: [u64; 14] =
    [0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fff_ffff, 0xffff_ffff, 1 << 32, 1 << 62, i64::MAX as u64, u64::MAX];

// ---------------------------------------------------------------------------------------------
// Mutators.

/// Byte-level damage anywhere in `b`.
fn mutate_bytes(rng: &mut Rng, b: &mut Vec<u8>, donor: &[u8]) {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len());
        match rng.below(9) {
            0 => {
                if !b.is_empty() {
                    b[at] ^= 1 << rng.below(8);
                }
            }
            1 => {
                if !b.is_empty() {
                    b[at] = rng.next() as u8;
                }
            }
            2 => {
                let v = rng.pick(&INTERESTING).to_le_bytes();
                let n = *rng.pick(&[1, 2, 4, 8]);
                let end = (at + n).min(b.len());
                b[at..end].copy_from_slice(&v[..end - at]);
            }
            3 => {
                let n = rng.below(4096).min(b.len() - at);
                b.drain(at..at + n);
            }
            4 => {
                let n = rng.below(4096).min(b.len() - at);
                let copy = b[at..at + n].to_vec();
                let to = rng.below(b.len());
                b.splice(to..to, copy);
            }
            5 => {
                let n = 1 + rng.below(4096);
                let fill: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                let end = (at + n).min(b.len());
                b.splice(at..end, fill);
            }
            6 => b.truncate(at),
            7 => {
                // a stretch of another fixture
                let from = rng.below(donor.len());
                let n = rng.below(8192).min(donor.len() - from);
                let end = (at + n).min(b.len());
                b.splice(at..end, donor[from..from + n].iter().copied());
            }
            _ => {
                let n = 1 + rng.below(64);
                let v = rng.next() as u8;
                b.splice(at..at, std::iter::repeat_n(v, n));
            }
        }
    }
}

/// Opcode-wise pickle mutations: integers and lengths after an opcode become interesting
/// values, opcodes are replaced, inserted, deleted or repeated.
fn mutate_pickle(rng: &mut Rng, p: &mut Vec<u8>) {
    const OPS: &[u8] = b"().}])NKMJXqrhjtlda esuQRb\x80\x85\x86\x87\x88\x89\x8a\x8c\x93\x94\x95\x81GBCc";
    for _ in 0..1 + rng.below(3) {
        if p.is_empty() {
            p.push(*rng.pick(OPS));
        }
        let at = rng.below(p.len());
        match rng.below(6) {
            0 => {
                // the argument of an opcode with a length / index / integer
                if let Some(i) = (at..p.len()).find(|&i| b"KMJXqrhjB\x8a\x8c".contains(&p[i])) {
                    let width = match p[i] {
                        b'K' | b'q' | b'h' | 0x8c | 0x8a => 1,
                        b'M' => 2,
                        _ => 4,
                    };
                    let v = rng.pick(&INTERESTING).to_le_bytes();
                    let end = (i + 1 + width).min(p.len());
                    p[i + 1..end].copy_from_slice(&v[..end - i - 1]);
                }
            }
            1 => p[at] = *rng.pick(OPS),
            2 => {
                let op = *rng.pick(OPS);
                p.insert(at, op)
            }
            3 => {
                let n = rng.below(32).min(p.len() - at);
                p.drain(at..at + n);
            }
            4 => {
                // repeat a stretch of opcodes many times
                let n = 1 + rng.below(16).min(p.len() - at - 1);
                let copy = p[at..at + n].to_vec();
                let times = 1 + rng.below(2000);
                p.splice(at..at, copy.iter().copied().cycle().take(n * times));
            }
            _ => {
                let b = p[at];
                let times = 1 + rng.below(100_000);
                p.splice(at..at, std::iter::repeat_n(b, times));
            }
        }
    }
}

/// A hostile value for a JSON number in a safetensors header.
fn json_number(rng: &mut Rng) -> serde_json::Value {
    match rng.below(4) {
        0 => serde_json::json!(*rng.pick(&INTERESTING)),
        1 => serde_json::json!(-(rng.below(10) as i64)),
        2 => serde_json::json!(rng.below(100)),
        _ => serde_json::json!(1e30),
    }
}

/// Rewrites a safetensors header as JSON: hostile shapes, offsets, dtypes, names, structure.
fn mutate_safetensors(rng: &mut Rng, b: &[u8]) -> Vec<u8> {
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&b[8..8 + n]).unwrap();
    let data = &b[8 + n..];
    let names: Vec<String> = header.keys().filter(|k| *k != "__metadata__").cloned().collect();
    for _ in 0..1 + rng.below(3) {
        let name = rng.pick(&names).clone();
        let Some(info) = header.get_mut(&name).and_then(|v| v.as_object_mut()) else { continue };
        match rng.below(7) {
            0 => {
                if let Some(shape) = info.get_mut("shape").and_then(|s| s.as_array_mut())
                    && !shape.is_empty()
                {
                    let i = rng.below(shape.len());
                    shape[i] = json_number(rng);
                }
            }
            1 => {
                let rank = rng.below(40);
                let dims: Vec<serde_json::Value> = (0..rank).map(|_| json_number(rng)).collect();
                info.insert("shape".into(), dims.into());
            }
            2 => {
                let i = rng.below(2);
                if let Some(off) = info.get_mut("data_offsets").and_then(|s| s.as_array_mut()) {
                    off[i] = json_number(rng);
                }
            }
            3 => {
                let dtype = *rng.pick(&["F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "F8_E4M3", "Q4", ""]);
                info.insert("dtype".into(), dtype.into());
            }
            4 => {
                let other = rng.pick(&names).clone();
                if let Some(o) = header.get(&other).cloned() {
                    header.insert(name, o); // two tensors, one byte range
                }
            }
            5 => {
                header.remove(&name);
            }
            _ => {
                let renamed = format!("{name}{}", rng.below(10));
                if let Some(v) = header.remove(&name) {
                    header.insert(renamed, v);
                }
            }
        }
    }
    let text = serde_json::to_vec(&header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    if rng.chance(10) {
        out = ((text.len() + rng.below(64)) as u64).to_le_bytes().to_vec();
    }
    out.extend(text);
    out.extend(data);
    out
}

/// One mutated input from a seed file.
fn mutate(rng: &mut Rng, seed: &Seed, donor: &[u8]) -> Vec<u8> {
    match (&seed.entries, rng.below(10)) {
        // a zip rebuilt with valid CRC-32s around a mutated pickle or storage
        (Some(entries), 0..=5) => {
            let mut entries = entries.clone();
            let i = if rng.chance(80) {
                entries.iter().position(|(n, _)| n.ends_with("/data.pkl")).unwrap()
            } else {
                rng.below(entries.len())
            };
            if entries[i].0.ends_with("/data.pkl") && rng.chance(75) {
                mutate_pickle(rng, &mut entries[i].1);
            } else {
                mutate_bytes(rng, &mut entries[i].1, donor);
            }
            if rng.chance(10) {
                entries.remove(rng.below(entries.len()));
            }
            hostile::zip(&entries)
        }
        (None, 0..=5) => mutate_safetensors(rng, &seed.bytes),
        _ => {
            let mut b = seed.bytes.clone();
            mutate_bytes(rng, &mut b, donor);
            b
        }
    }
}

struct Seed {
    name: String,
    bytes: Vec<u8>,
    /// The entries of a zip checkpoint.
    entries: Option<Vec<(String, Vec<u8>)>>,
}

fn seeds() -> Vec<Seed> {
    let mut seeds = Vec::new();
    for dir in std::fs::read_dir(fixtures_root()).unwrap() {
        let dir = dir.unwrap().path();
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext != "pt" && ext != "safetensors" {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let entries = (ext == "pt").then(|| hostile::unzip(&bytes));
            let name = path.strip_prefix(fixtures_root()).unwrap().display().to_string();
            seeds.push(Seed { name, bytes, entries });
        }
    }
    // Compact model files (safetensors with int8, f16 and f32 tensors, scales and checksums).
    for (name, precision, towers) in
        [("v1-mci-mct", Precision::Auto, Towers::Both), ("v2-mci0", Precision::Int8, Towers::Image)]
    {
        let dir = fixtures_root().join(name);
        let config = ModelConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        let file = ["model.pt", "model.safetensors"].iter().map(|f| dir.join(f)).find(|p| p.exists()).unwrap();
        let options = ConvertOptions { precision, towers, ..Default::default() };
        let bytes = MobileClip::convert(&config, std::fs::read(file).unwrap(), &options).unwrap();
        seeds.push(Seed { name: format!("{name}/compact-{precision}-{towers}"), bytes, entries: None });
    }
    seeds.sort_by(|a, b| a.name.cmp(&b.name));
    seeds
}

/// What the readers do with an input: parse it, then read every tensor (a compact file: read
/// it as a compact file first).
fn read_all(bytes: Vec<u8>) -> Result<usize, String> {
    let ckpt = Checkpoint::from_bytes(bytes).map_err(|e| {
        assert_eq!(e.code(), "INVALID_WEIGHTS", "{e}");
        e.to_string()
    })?;
    if compact::is_compact(&ckpt) {
        match compact::read(ckpt) {
            Ok((_, fused)) => {
                return Ok(fused.into_iter().map(|(_, t)| t.into_host().data.len()).sum());
            }
            Err(e) => {
                assert!(matches!(e.code(), "INVALID_WEIGHTS" | "WEIGHTS_MISMATCH"), "{e}");
                return Err(e.to_string());
            }
        }
    }
    let names: Vec<String> = ckpt.names().map(str::to_string).collect();
    let mut values = 0;
    for name in names {
        match ckpt.read_f32(&name) {
            Ok(v) => values += v.len(),
            Err(e) => assert!(matches!(e.code(), "INVALID_WEIGHTS" | "WEIGHTS_MISMATCH"), "{e}"),
        }
    }
    Ok(values)
}

/// An error message without names and numbers: its kind.
fn kind_of(message: &str) -> String {
    let mut kind = String::new();
    let mut quoted = false;
    for c in message.chars() {
        match c {
            '`' => {
                quoted = !quoted;
                if quoted {
                    kind.push_str("`…`");
                }
            }
            _ if quoted => {}
            '0'..='9' if kind.ends_with('#') => {}
            '0'..='9' => kind.push('#'),
            _ => kind.push(c),
        }
    }
    kind.chars().take(110).collect()
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")))
}

/// Runs one input, failing with what reproduces it on a panic or an allocation past the bound;
/// returns the outcome and the peak allocation.
fn check(input: Vec<u8>, what: &str) -> (Result<usize, String>, usize) {
    let len = input.len();
    let (outcome, peak) = peak_of(|| catch_unwind(AssertUnwindSafe(|| read_all(input))));
    let result = outcome.unwrap_or_else(|e| {
        let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
        panic!("{what}: the reader panicked: {}", msg.unwrap_or_default())
    });
    assert!(peak <= bound(len), "{what}: {peak} bytes allocated for a {len}-byte input (bound {})", bound(len));
    (result, peak)
}

#[test]
fn hostile_cases_stay_within_the_allocation_bound() {
    let pt = std::fs::read(fixtures_root().join("v1-mci-mct/model.pt")).unwrap();
    for case in hostile::cases(&pt) {
        let len = case.bytes.len();
        let (result, peak) = check(case.bytes, case.name);
        assert!(result.is_err(), "{} was accepted", case.name);
        println!("{:40} {:>9} bytes in, {:>10} bytes at most allocated", case.name, len, peak);
    }
}

#[test]
fn mutated_fixtures_never_panic_nor_allocate_past_the_bound() {
    let seeds = seeds();
    assert!(seeds.len() >= 15, "{} fixture checkpoints", seeds.len());
    let iterations = env("MOBILECLIP_FUZZ_ITERS", 40_000);
    let seed = env("MOBILECLIP_FUZZ_SEED", 0x5eed);
    let from = env("MOBILECLIP_FUZZ_FROM", 0);
    let started = std::time::Instant::now();
    let (mut parsed, mut max_peak, mut errors) = (0usize, 0usize, std::collections::BTreeMap::<String, usize>::new());
    for i in from..from + iterations {
        let mut rng = Rng::new(seed ^ i.wrapping_mul(0x100_0000_01B3));
        let s = rng.pick(&seeds);
        let donor = &rng.pick(&seeds).bytes;
        let input = mutate(&mut rng, s, donor);
        let what = format!("iteration {i} (MOBILECLIP_FUZZ_SEED={seed} MOBILECLIP_FUZZ_FROM={i}), from {}", s.name);
        let (result, peak) = check(input, &what);
        max_peak = max_peak.max(peak);
        match result {
            Ok(_) => parsed += 1,
            Err(e) => *errors.entry(kind_of(&e)).or_default() += 1,
        }
    }
    println!(
        "{iterations} inputs in {:.1} s: {parsed} parsed, {} rejected; at most {:.1} MiB allocated for one input",
        started.elapsed().as_secs_f64(),
        iterations as usize - parsed,
        max_peak as f64 / (1 << 20) as f64
    );
    let mut kinds: Vec<_> = errors.iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(a.1));
    for (e, n) in kinds.iter().take(25) {
        println!("{n:>6}  {e}");
    }
    // The structure-aware mutators must reach past the outer checks often.
    assert!(parsed * 20 > iterations as usize, "only {parsed} of {iterations} inputs parsed");
    let needles = [
        "PyTorch pickle: ",
        "safetensors: invalid offset",
        "is corrupted",
        "reaches past the end",
        "compact model file: ",
    ];
    for needle in needles {
        assert!(errors.keys().any(|e| e.contains(needle)), "no `{needle}` error among {errors:#?}");
    }
}
