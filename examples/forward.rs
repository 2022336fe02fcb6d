//! Runs one tower's forward pass a few times on the CPU (burn flex), for profilers
//! (`valgrind --tool=callgrind`, `perf`): the model is loaded before the first timed pass and
//! each pass's wall time is printed.
//!
//! ```text
//! cargo build --release --example forward
//! tools/callgrind.sh out.cg target/release/examples/forward /work/fixtures/full/MobileCLIP-S0 image 1 1
//! ```
//!
//! Arguments: a fixture folder (config.json + model.pt or model.safetensors), `image` or `text`,
//! the batch size, and the number of passes.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use mobileclip_wasm::{MobileClip, ModelConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, tower, rest @ ..] = &args[..] else {
        panic!("usage: forward <fixture dir> image|text [batch] [passes]");
    };
    let batch: usize = rest.first().map_or(1, |v| v.parse().expect("batch"));
    let passes: usize = rest.get(1).map_or(3, |v| v.parse().expect("passes"));
    let dir = PathBuf::from(dir);
    let config = ModelConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let ckpt = ["model_reparam.pt", "model.pt", "model.safetensors"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .expect("a checkpoint");
    let model = MobileClip::from_file(config, &ckpt, Device::flex()).unwrap();
    let s = model.config().preprocess.image_size;
    let pixels: Vec<f32> = (0..batch * 3 * s * s).map(|i| (i % 255) as f32 / 255.0).collect();
    let texts: Vec<String> = (0..batch).map(|i| format!("a photo of a cat on the table, number {i}")).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    if let Some(secs) = std::env::var("FORWARD_PAUSE").ok().and_then(|v| v.parse().ok()) {
        // Time for `callgrind_control -i on` (valgrind --instr-atstart=no): see tools/callgrind.sh.
        eprintln!("loaded");
        std::thread::sleep(std::time::Duration::from_secs_f64(secs));
    }
    for _ in 0..passes {
        let start = Instant::now();
        let out = match tower.as_str() {
            "image" => model.encode_pixels(&pixels, batch).unwrap(),
            "text" => model.encode_texts(&texts).unwrap(),
            other => panic!("unknown tower {other}"),
        };
        eprintln!("{tower} ×{batch}: {:.1} ms (first value {:.6})", start.elapsed().as_secs_f64() * 1e3, out[0][0]);
    }
}
