//! The `mobileclip` command line: output formats, agreement with the library, and one-line
//! errors with a non-zero exit code.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use mobileclip_wasm::preprocess::{ImageView, PixelFormat, load_image_file};
use mobileclip_wasm::tokenizer::ClipTokenizer;
use mobileclip_wasm::{MobileClip, ModelConfig};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mobileclip")).args(args).output().expect("run mobileclip")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Asserts a failure with a single `error: …` line on stderr containing `needle`.
fn assert_error(o: &Output, needle: &str) {
    assert!(!o.status.success(), "expected a failure, got: {}", String::from_utf8_lossy(&o.stdout));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.starts_with("error: ") && err.contains(needle), "{err}");
}

fn fixture(name: &str, file: &str) -> String {
    common::fixtures_root().join(name).join(file).to_string_lossy().into_owned()
}

fn photo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess/chelsea_301x217.png")
}

#[test]
fn tokenize_prints_the_ids() {
    let out = stdout(&cli(&["tokenize", "--text", "A photo of a cat."]));
    let ids: Vec<u32> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ids, ClipTokenizer::new().unwrap().encode("A photo of a cat.").unwrap());
    assert_eq!(ids.len(), 77);
}

#[test]
fn models_lists_every_config() {
    let out = stdout(&cli(&["models"]));
    for name in ModelConfig::builtin_names() {
        assert!(out.lines().any(|l| l.starts_with(name) && l.contains("https://")), "{name} missing in:\n{out}");
    }
    // v1 models published in open_clip's layout too list that file as well.
    assert!(
        out.lines().any(|l| l
            == "MobileCLIP-S2\thttps://huggingface.co/apple/MobileCLIP-S2-OpenCLIP/resolve/main/open_clip_model.safetensors"),
        "{out}"
    );
}

#[test]
fn embed_matches_the_library() {
    let (cfg, weights) = (fixture("v2-mci0", "config.json"), fixture("v2-mci0", "model.safetensors"));
    let out = stdout(&cli(&["embed", "--model", &cfg, "--weights", &weights, "--image", photo().to_str().unwrap()]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["model"], "v2-mci0");
    assert_eq!(v["text_embeddings"].as_array().unwrap().len(), 0);
    let got: Vec<f32> = serde_json::from_value(v["image_embeddings"][0].clone()).unwrap();

    let config = ModelConfig::from_json(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    let model = MobileClip::from_file(config, weights.as_ref(), burn::tensor::Device::flex()).unwrap();
    let (rgb, w, h) = load_image_file(&photo()).unwrap();
    let want = model.encode_images(&[ImageView::new(&rgb, w, h, PixelFormat::Rgb8).unwrap()]).unwrap();
    assert_eq!(got, want[0]);
    let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
}

#[test]
fn errors_are_one_line() {
    let (cfg, weights) = (fixture("v2-mci0", "config.json"), fixture("v2-mci0", "model.safetensors"));
    assert_error(
        &cli(&["embed", "--model", "MobileCLIP-XL", "--weights", &weights, "--text", "x"]),
        "`MobileCLIP-XL` is not a known model",
    );
    assert_error(
        &cli(&["embed", "--model", &cfg, "--weights", "/nonexistent/w.pt", "--text", "x"]),
        "/nonexistent/w.pt",
    );
    assert_error(&cli(&["embed", "--model", &cfg, "--weights", &weights]), "at least one --image or --text");
    assert_error(
        &cli(&["embed", "--model", &cfg, "--weights", &weights, "--image", "/nonexistent.png"]),
        "/nonexistent.png",
    );
    assert_error(&cli(&["embed", "--model", &cfg, "--weights", &cfg, "--image", "x.png"]), "invalid weights file");
    assert_error(
        &cli(&["embed", "--model", &weights, "--weights", &weights, "--text", "x"]),
        "model.safetensors is not a config JSON file",
    );
    let other = fixture("v1-mci-mct", "model.pt");
    assert_error(
        &cli(&["embed", "--model", &cfg, "--weights", &other, "--text", "x"]),
        "weights file of another model",
    );
    let photo = photo();
    let p = photo.to_str().unwrap();
    assert_error(
        &cli(&["zero-shot", "--model", &cfg, "--weights", &weights, "--image", p, "--labels", "cat,,dog"]),
        "label 1 is empty",
    );
    assert_error(
        &cli(&[
            "zero-shot",
            "--model",
            &cfg,
            "--weights",
            &weights,
            "--image",
            p,
            "--labels",
            "cat",
            "--template",
            "no slot",
        ]),
        "placeholder",
    );
}

/// `bench` times real prompts through CLIP's tokenizer, so it needs a model with CLIP's
/// vocabulary (the small fixtures have 256 tokens): v2-mci0 with its token embedding grown.
#[test]
fn bench_prints_a_line_per_call_and_batch() {
    let dir = tempdir().join("bench");
    let (cfg, weights) = common::write_clip_vocab_fixture("v2-mci0", &dir);
    let out = stdout(&cli(&["bench", "--model", &cfg, "--weights", &weights, "--batch", "1,3", "--iters", "1"]));
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let got: Vec<(String, u64)> =
        lines.iter().map(|l| (l["call"].as_str().unwrap().to_string(), l["batch"].as_u64().unwrap())).collect();
    assert_eq!(got, [("image".into(), 1), ("text".into(), 1), ("image".into(), 3), ("text".into(), 3)]);
    for l in &lines {
        assert_eq!(l["backend"], "cpu");
        assert!(l["ms_per_call"].as_f64().unwrap() > 0.0, "{l}");
        assert!(l.get("launches").is_none(), "the CPU launches no GPU kernels: {l}");
    }
    assert_error(
        &cli(&["bench", "--model", &cfg, "--weights", &weights, "--batch", "1,0"]),
        "--batch takes sizes from 1 to 256",
    );
    assert_error(&cli(&["bench", "--model", &cfg, "--weights", &weights, "--batch", "100000"]), "--batch");
    assert_error(&cli(&["bench", "--model", &cfg, "--weights", &weights, "--iters", "0"]), "--iters takes 1 to 1000");
    // On the CPU build (no `wgpu` feature) `--backend wgpu` is a coded one-line error, not a panic.
    #[cfg(not(feature = "wgpu"))]
    assert_error(
        &cli(&["--backend", "wgpu", "bench", "--model", &cfg, "--weights", &weights]),
        "built without GPU support",
    );
    // A model whose vocabulary is not CLIP's cannot take the bench's prompts: a coded error.
    let (small_cfg, small) = (fixture("v2-mci0", "config.json"), fixture("v2-mci0", "model.safetensors"));
    assert_error(&cli(&["bench", "--model", &small_cfg, "--weights", &small, "--iters", "1"]), "vocab");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs the CLI with its stdout a pipe whose reader is already closed (as after `| head -1`).
fn cli_into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_mobileclip")).args(args).stdout(writer).output().expect("run mobileclip")
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let (cfg, weights) = (fixture("v2-mci0", "config.json"), fixture("v2-mci0", "model.safetensors"));
    let dir = tempdir().join("closed-pipe");
    let (clip_cfg, clip_weights) = common::write_clip_vocab_fixture("v2-mci0", &dir);
    let photo = photo();
    let p = photo.to_str().unwrap();
    let commands: [&[&str]; 8] = [
        &["models"],
        &["zero-shot", "--model", &clip_cfg, "--weights", &clip_weights, "--image", p, "--labels", "cat,dog"],
        &["bench", "--model", &clip_cfg, "--weights", &clip_weights, "--batch", "1", "--iters", "1"],
        &["tokenize", "--text", "a photo of a cat"],
        &["embed", "--model", &cfg, "--weights", &weights, "--image", p, "--image", p],
        &["--help"],
        &["--version"],
        &["models", "--help"],
    ];
    for args in commands {
        let o = cli_into_closed_pipe(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{}: {:?}, stderr: {err}", args[0], o.status);
        assert!(err.is_empty(), "{} wrote to stderr: {err}", args[0]);
    }
    // An error still says so, with the output closed.
    let o = cli_into_closed_pipe(&["embed", "--model", &cfg, "--weights", "/nonexistent/w.pt", "--text", "x"]);
    assert_error(&o, "/nonexistent/w.pt");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Zero-shot end to end on a full-size model (tokenizer, both towers, prompt ensembling).
#[test]
#[ignore = "needs MOBILECLIP_FULL_FIXTURES with MobileCLIP-S0 (generated by tools/gen_fixtures.py --full)"]
fn zero_shot_full_size() {
    let root = PathBuf::from(std::env::var("MOBILECLIP_FULL_FIXTURES").expect("MOBILECLIP_FULL_FIXTURES"));
    let dir = root.join("MobileCLIP-S0");
    let (cfg, weights) = (dir.join("config.json"), dir.join("model.pt"));
    let (cfg, weights) = (cfg.to_str().unwrap(), weights.to_str().unwrap());
    let photo = photo();
    let args = [
        "zero-shot",
        "--model",
        cfg,
        "--weights",
        weights,
        "--image",
        photo.to_str().unwrap(),
        "--labels",
        "cat, dog,car",
    ];
    let mut json_args = args.to_vec();
    json_args.extend(["--template", "a photo of a {}.", "--template", "a blurry photo of a {}.", "--json"]);
    let ranked: Vec<serde_json::Value> = serde_json::from_str(&stdout(&cli(&json_args))).unwrap();
    assert_eq!(ranked.len(), 3);
    let scores: Vec<f64> = ranked.iter().map(|r| r["score"].as_f64().unwrap()).collect();
    assert!((scores.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{scores:?}");
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "not sorted: {scores:?}");

    // Same numbers as the library computes them by hand.
    let config = ModelConfig::from_json(&std::fs::read_to_string(cfg).unwrap()).unwrap();
    let model = MobileClip::from_file(config, weights.as_ref(), burn::tensor::Device::flex()).unwrap();
    let (rgb, w, h) = load_image_file(&photo).unwrap();
    let img = model.encode_images(&[ImageView::new(&rgb, w, h, PixelFormat::Rgb8).unwrap()]).unwrap();
    let texts = model.encode_texts(&["a photo of a cat.", "a blurry photo of a cat."]).unwrap();
    let mut cat: Vec<f32> = texts[0].iter().zip(&texts[1]).map(|(a, b)| a + b).collect();
    mobileclip_wasm::zero_shot::normalize(&mut cat);
    let pack = model.label_pack(&["cat", "dog", "car"], &["a photo of a {}.", "a blurry photo of a {}."]).unwrap();
    let by_label = model.zero_shot(&img[0], &pack, None).unwrap();
    let cat_score = by_label.iter().find(|s| s.label == "cat").unwrap().score;
    let cli_cat = ranked.iter().find(|r| r["label"] == "cat").unwrap()["score"].as_f64().unwrap();
    assert!((cat_score as f64 - cli_cat).abs() < 1e-6);
    let logits: Vec<f32> = ["cat", "dog", "car"]
        .iter()
        .map(|l| {
            let t = model.encode_texts(&[&format!("a photo of a {l}."), &format!("a blurry photo of a {l}.")]).unwrap();
            let mut e: Vec<f32> = t[0].iter().zip(&t[1]).map(|(a, b)| a + b).collect();
            mobileclip_wasm::zero_shot::normalize(&mut e);
            model.logit_scale() * e.iter().zip(&img[0]).map(|(a, b)| a * b).sum::<f32>()
        })
        .collect();
    let z: f32 = logits.iter().map(|l| l.exp()).sum();
    assert!((logits[0].exp() / z - cat_score).abs() < 1e-5);
    assert_eq!(cat.len(), model.embed_dim());

    // Plain-text table output.
    let table = stdout(&cli(&args));
    assert_eq!(table.lines().count(), 3);

    // A label pack written by `labels`, ranked by `zero-shot --pack`: the same scores.
    let dir = tempdir();
    let (labels, pack) = (dir.join("labels.txt"), dir.join("labels.pack"));
    std::fs::write(&labels, "cat\n dog\n\ncar\n").unwrap();
    let labels_args = ["labels", "--model", cfg, "--weights", weights, "--labels", labels.to_str().unwrap()];
    let mut labels_args = labels_args.to_vec();
    labels_args.extend(["--template", "a photo of a {}.", "--template", "a blurry photo of a {}."]);
    labels_args.extend(["-o", pack.to_str().unwrap()]);
    stdout(&cli(&labels_args));
    let written = mobileclip_wasm::LabelPack::from_bytes(&std::fs::read(&pack).unwrap()).unwrap();
    assert_eq!(
        written,
        model.label_pack(&["cat", "dog", "car"], &["a photo of a {}.", "a blurry photo of a {}."]).unwrap()
    );
    let by_pack = [&args[..7], &["--pack", pack.to_str().unwrap(), "--json"]].concat();
    assert_eq!(serde_json::from_str::<Vec<serde_json::Value>>(&stdout(&cli(&by_pack))).unwrap(), ranked);
}

/// A fresh temporary folder for one test.
fn tempdir() -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("mobileclip-cli-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn convert_then_embed_without_a_model_name() {
    let dir = std::env::temp_dir().join(format!("mobileclip-cli-convert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (compact, image_only) = (dir.join("s.safetensors"), dir.join("image.safetensors"));
    let (c, i) = (compact.to_string_lossy().into_owned(), image_only.to_string_lossy().into_owned());
    let weights = fixture("v1-mci-mct", "model.pt");
    let out = stdout(&cli(&[
        "convert",
        "--model",
        &fixture("v1-mci-mct", "config.json"),
        "--weights",
        &weights,
        "--dtype",
        "f32",
        "-o",
        &c,
    ]));
    assert!(out.contains("bytes"), "{out}");
    let args = |w: &str| {
        vec!["embed".to_string(), "--weights".into(), w.into(), "--image".into(), photo().to_string_lossy().into()]
    };
    let from_compact = stdout(&cli(&args(&c).iter().map(String::as_str).collect::<Vec<_>>()));
    let mut with_model = args(&weights);
    with_model.extend(["--model".to_string(), fixture("v1-mci-mct", "config.json")]);
    let from_checkpoint = stdout(&cli(&with_model.iter().map(String::as_str).collect::<Vec<_>>()));
    assert_eq!(from_compact, from_checkpoint);

    let cfg = fixture("v1-mci-mct", "config.json");
    stdout(&cli(&["convert", "--model", &cfg, "--weights", &weights, "--towers", "image", "-o", &i]));
    assert!(stdout(&cli(&args(&i).iter().map(String::as_str).collect::<Vec<_>>())).contains("image_embeddings"));
    assert_error(&cli(&["embed", "--weights", &i, "--text", "a"]), "no text tower");
    assert_error(
        &cli(&["convert", "--model", &cfg, "--weights", &weights, "--dtype", "int4", "-o", &i]),
        "dtype must be",
    );
    assert_error(
        &cli(&["convert", "--model", &cfg, "--weights", &weights, "--towers", "all", "-o", &i]),
        "towers must be",
    );
    assert_error(&cli(&["embed", "--weights", &weights, "--text", "a"]), "give the model's name");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoints_label_pack_ranks_on_its_image_only_compact_file() {
    let dir = tempdir().join("image-only-pack");
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let (cfg, weights) = common::write_clip_vocab_fixture("v2-mci0", &dir);
    std::fs::write(path("labels.txt"), "cat\ndog\ncar\n").unwrap();
    let (image_only, pack) = (path("image.safetensors"), path("pack.safetensors"));
    let convert = ["convert", "--model", &cfg, "--weights", &weights, "--dtype", "f32", "--towers", "image"];
    stdout(&cli(&[&convert[..], &["-o", &image_only]].concat()));
    stdout(&cli(&["labels", "--model", &cfg, "--weights", &weights, "--labels", &path("labels.txt"), "-o", &pack]));
    let photo = photo().to_string_lossy().into_owned();
    let rank = ["zero-shot", "--image", &photo, "--pack", &pack, "--json", "--weights"];
    let from_compact = stdout(&cli(&[&rank[..], &[&image_only]].concat()));
    let from_checkpoint = stdout(&cli(&[&rank[..], &[&weights, "--model", &cfg]].concat()));
    assert_eq!(from_compact, from_checkpoint);
    assert!(from_compact.contains("\"cat\""), "{from_compact}");
    // The image-only file cannot make packs itself.
    let labels = ["labels", "--weights", &image_only, "--labels", &path("labels.txt"), "-o", &path("p2")];
    assert_error(&cli(&labels), "no text tower");
    std::fs::remove_dir_all(&dir).unwrap();
}
