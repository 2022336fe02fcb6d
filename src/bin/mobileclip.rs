//! `mobileclip`: embed images and texts, zero-shot tag an image, write label packs, tokenize,
//! list models.
//!
//! Errors are one line on stderr and a non-zero exit code. Output into a pipe whose reader has
//! gone (`mobileclip models | head -1`) ends the command quietly, with status 0.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::tensor::Device;
use clap::{Parser, Subcommand};
use mobileclip_wasm::preprocess::{ImageView, PixelFormat, load_image_file};
use mobileclip_wasm::tokenizer::ClipTokenizer;
use mobileclip_wasm::weights::ConvertOptions;
use mobileclip_wasm::zero_shot::DEFAULT_TEMPLATE;
use mobileclip_wasm::{ComputePrecision, Error, LabelPack, MobileClip, ModelConfig, Result, TowerPrecision};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "mobileclip",
    version,
    about = "MobileCLIP image/text embeddings on burn (CPU, or GPU with --backend wgpu)"
)]
struct Cli {
    /// Where the model runs: `cpu` (burn flex), or `wgpu` (a GPU through Vulkan / Metal / DX12;
    /// builds with the cargo feature `wgpu` only).
    #[arg(long, global = true, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// What the model computes in: `auto` (16-bit floats for text and ViT image towers on a GPU
    /// that offers them, and for the weights of convolutional image towers, which compute in
    /// 32-bit: `f16-weights`; 32-bit elsewhere), `f32`, or `f16` (every tower, where the GPU
    /// offers 16-bit floats; 32-bit otherwise, without an error). `info` says what each tower got.
    #[arg(long, global = true, default_value = "auto")]
    precision: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    Cpu,
    Wgpu,
}

impl Backend {
    fn device(self) -> Result<Device> {
        match self {
            Backend::Cpu => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => {
                let gpu = mobileclip_wasm::gpu::init()?;
                if gpu.software {
                    let _ = writeln!(
                        io::stderr(),
                        "note: {} is a software adapter, slower than --backend cpu",
                        gpu.adapter
                    );
                }
                Ok(gpu.device)
            }
            #[cfg(not(feature = "wgpu"))]
            Backend::Wgpu => Err(Error::InvalidArgument(
                "this mobileclip was built without GPU support: build it with `cargo build --release --features wgpu`"
                    .into(),
            )),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Print L2-normalised embeddings of images and/or texts as JSON.
    Embed {
        /// Model name (see `mobileclip models`) or path to a config JSON; not needed for a
        /// compact file (made by `convert`).
        #[arg(long)]
        model: Option<String>,
        /// Checkpoint file (.pt / .bin / .safetensors) as published, or a compact file.
        #[arg(long)]
        weights: PathBuf,
        /// Image files to embed.
        #[arg(long = "image")]
        images: Vec<PathBuf>,
        /// Texts to embed.
        #[arg(long = "text")]
        texts: Vec<String>,
    },
    /// Rank labels for an image (softmax over cosine similarity × logit scale).
    ZeroShot {
        /// Model name or config JSON path (not needed for a compact file).
        #[arg(long)]
        model: Option<String>,
        /// Checkpoint file, or a compact file.
        #[arg(long)]
        weights: PathBuf,
        /// The image.
        #[arg(long)]
        image: PathBuf,
        /// Comma-separated labels.
        #[arg(long, required_unless_present = "pack", conflicts_with = "pack")]
        labels: Option<String>,
        /// A label pack (`mobileclip labels`) to rank instead of `--labels`.
        #[arg(long)]
        pack: Option<PathBuf>,
        /// Prompt template(s) with `{}` for the label; several are averaged.
        #[arg(long = "template", conflicts_with = "pack")]
        templates: Vec<String>,
        /// Print only the best K labels.
        #[arg(long)]
        top_k: Option<usize>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Convert a published checkpoint into a compact model file: its fused inference tensors
    /// (f32, f16, or 4- to 8-bit integers with scales), with the model's config inside (loads
    /// need no model name).
    Convert {
        /// Model name or config JSON path.
        #[arg(long)]
        model: String,
        /// The published checkpoint.
        #[arg(long)]
        weights: PathBuf,
        /// Storage of matrices and kernels: f32 (bit-identical embeddings), f16, int8 (one
        /// scale per output channel), or auto (per tensor, the smallest of f16, halves with a
        /// scale per channel, and 4- to 8-bit integers per channel or per group (in a folded
        /// identity, with each row's largest values kept apart) that keeps its error within bounds).
        #[arg(long, default_value = "auto")]
        dtype: String,
        /// Which towers to keep: image, text or both.
        #[arg(long, default_value = "both")]
        towers: String,
        /// The compact file to write.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Write a label pack: the label embeddings, to rank images against without the text tower
    /// (in this CLI with `zero-shot --pack`, in JavaScript with `LabelPack.fromBytes`).
    Labels {
        /// Model name or config JSON path (not needed for a compact file).
        #[arg(long)]
        model: Option<String>,
        /// Checkpoint file, or a compact file.
        #[arg(long)]
        weights: PathBuf,
        /// A text file with one label per line (blank lines are skipped).
        #[arg(long)]
        labels: PathBuf,
        /// Prompt template(s) with `{}` for the label; several are averaged.
        #[arg(long = "template")]
        templates: Vec<String>,
        /// The pack file to write.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Print the 77 CLIP token ids of a text.
    Tokenize {
        /// The text.
        #[arg(long)]
        text: String,
    },
    /// List the shipped model configs and where their published weights are (one line per file).
    Models,
    /// Load a model and print what it is as JSON: its name, towers, embedding dimension, backend,
    /// and what each tower computes in (`precision`: `f32`, `f16`, `f16-weights`, or null for a
    /// tower the file does not hold).
    Info {
        /// Model name or config JSON path (not needed for a compact file).
        #[arg(long)]
        model: Option<String>,
        /// Checkpoint file, or a compact file.
        #[arg(long)]
        weights: PathBuf,
    },
    /// Print the GPU adapter `--backend wgpu` runs on, as JSON: its name, graphics API and kind,
    /// whether it is a software one (Mesa's lavapipe, SwiftShader, WARP) and whether it offers
    /// 16-bit floats (`shader-f16`). Choose another with the environment variable
    /// `CUBECL_WGPU_DEFAULT_DEVICE` (e.g. `DiscreteGpu(1)`, `IntegratedGpu(0)`, `Cpu`).
    Adapter,
    /// Time image and text embeddings on the chosen backend: per batch size, the median of
    /// `--iters` calls after a warm-up call, on synthetic inputs (the time does not depend on the
    /// pixels or words); with `--backend wgpu` also the GPU kernels one call launches. One JSON
    /// line per call and batch size.
    Bench {
        /// Model name or config JSON path (not needed for a compact file).
        #[arg(long)]
        model: Option<String>,
        /// Checkpoint file, or a compact file.
        #[arg(long)]
        weights: PathBuf,
        /// Comma-separated batch sizes (1 to 256).
        #[arg(long, value_delimiter = ',', default_value = "1,16")]
        batch: Vec<usize>,
        /// Timed calls per figure (1 to 1000).
        #[arg(long, default_value_t = 5)]
        iters: usize,
        /// Also list the GPU kernels of each call by name, with their launch counts (on stderr).
        #[arg(long)]
        kernels: bool,
    },
}

/// One line of `bench`'s output.
#[derive(Serialize)]
struct BenchLine<'a> {
    model: &'a str,
    backend: &'a str,
    call: &'static str,
    batch: usize,
    /// Median time of one call.
    ms_per_call: f64,
    /// `ms_per_call / batch`.
    ms_per_item: f64,
    /// GPU kernel launches (compute dispatches) of one call; absent on the CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    launches: Option<usize>,
    /// What the tower of the call computes in (`f32`, `f16` or `f16-weights`).
    #[serde(skip_serializing_if = "Option::is_none")]
    precision: Option<String>,
}

/// GPU kernel launches by kernel name, in first-launch order.
type Kernels = Vec<(&'static str, usize)>;

/// The median time of `iters` calls of `f` after a warm-up call, and the GPU kernels one call
/// launches (counted on the warm-up's successor: caches and autotuning settled).
fn time_calls(iters: usize, backend: Backend, f: impl Fn() -> Result<()>) -> Result<(f64, Option<Kernels>)> {
    f()?;
    let launches = match backend {
        Backend::Cpu => None,
        #[cfg(feature = "wgpu")]
        Backend::Wgpu => {
            let (r, launches) = mobileclip_wasm::gpu::count_launches(&f);
            r?;
            Some(launches.by_kernel)
        }
        #[cfg(not(feature = "wgpu"))]
        Backend::Wgpu => None,
    };
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = std::time::Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[iters / 2], launches))
}

fn bench(
    m: &MobileClip,
    backend: Backend,
    batches: &[usize],
    iters: usize,
    kernels: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let backend_name = if backend == Backend::Cpu { "cpu" } else { "wgpu" };
    let s = m.config().preprocess.image_size;
    for &batch in batches {
        let pixels: Vec<f32> = (0..batch * 3 * s * s).map(|i| ((i * 31) % 251) as f32 / 125.0 - 1.0).collect();
        let texts: Vec<String> = (0..batch).map(|i| format!("a photo of item number {i} on a wooden table")).collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let image = time_calls(iters, backend, || m.encode_pixels(&pixels, batch).map(drop))?;
        let text = time_calls(iters, backend, || m.encode_texts(&texts).map(drop))?;
        let precision = m.precision();
        for (call, (ms, by_kernel), tower) in [("image", image, precision.image), ("text", text, precision.text)] {
            if kernels && let Some(k) = &by_kernel {
                let mut err = io::stderr().lock();
                let _ = writeln!(err, "{} {call}, batch {batch}: kernels launched per call", m.config().name);
                for (name, n) in k {
                    let _ = writeln!(err, "{n:6}  {name}");
                }
            }
            let launches = by_kernel.map(|k| k.iter().map(|(_, n)| n).sum());
            let line = BenchLine {
                model: &m.config().name,
                backend: backend_name,
                call,
                batch,
                ms_per_call: ms,
                ms_per_item: ms / batch as f64,
                launches,
                precision: tower.map(|p| p.to_string()),
            };
            writeln!(out, "{}", serde_json::to_string(&line).expect("serialisable"))?;
            out.flush()?;
        }
    }
    Ok(())
}

/// What `embed` prints, in this key order.
#[derive(Serialize)]
struct EmbedOutput<'a> {
    model: &'a str,
    image_embeddings: Vec<Vec<f32>>,
    text_embeddings: Vec<Vec<f32>>,
}

fn load_config(model: &str) -> Result<ModelConfig> {
    let path = Path::new(model);
    if model.ends_with(".json") || path.is_file() {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: model.to_string(), source })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Config(format!("{model} is not a config JSON file (not UTF-8 text)")))?;
        ModelConfig::from_json(&text)
    } else {
        ModelConfig::from_name_or_json(model)
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })
}

/// The templates given, or the default one.
fn template_list(templates: &[String]) -> Vec<&str> {
    if templates.is_empty() { vec![DEFAULT_TEMPLATE] } else { templates.iter().map(String::as_str).collect() }
}

/// Loads a model for a command: `precision` is the `--precision` option.
fn load_model(model: Option<&str>, weights: &Path, backend: Backend, precision: &str) -> Result<MobileClip> {
    let precision: ComputePrecision = precision.parse()?;
    let config = model.map(load_config).transpose()?;
    MobileClip::load_file(config, weights, (backend.device()?, precision))
}

fn embed_files(model: &MobileClip, paths: &[PathBuf]) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        let (rgb, w, h) = load_image_file(p)?;
        let view = ImageView::new(&rgb, w, h, PixelFormat::Rgb8)?;
        out.extend(model.encode_images(&[view])?);
    }
    Ok(out)
}

/// Why a command failed: the model side, or writing its output.
enum Failure {
    Model(Error),
    Output(io::Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Model(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

fn run(cli: Cli, out: &mut impl Write) -> Result<(), Failure> {
    match cli.command {
        Command::Embed { model, weights, images, texts } => {
            if images.is_empty() && texts.is_empty() {
                return Err(Error::InvalidArgument("give at least one --image or --text".into()).into());
            }
            let m = load_model(model.as_deref(), &weights, cli.backend, &cli.precision)?;
            let image_embeddings = embed_files(&m, &images)?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let text_embeddings = if refs.is_empty() { Vec::new() } else { m.encode_texts(&refs)? };
            let output = EmbedOutput { model: &m.config().name, image_embeddings, text_embeddings };
            writeln!(out, "{}", serde_json::to_string(&output).expect("serialisable"))?;
        }
        Command::ZeroShot { model, weights, image, labels, pack, templates, top_k, json } => {
            let m = load_model(model.as_deref(), &weights, cli.backend, &cli.precision)?;
            let pack = match (pack, labels) {
                (Some(path), _) => LabelPack::from_bytes(&read(&path)?)?,
                (None, Some(labels)) => {
                    let labels: Vec<&str> = labels.split(',').collect();
                    m.label_pack(&labels, &template_list(&templates))?
                }
                (None, None) => unreachable!("clap requires --labels or --pack"),
            };
            let emb = embed_files(&m, &[image])?;
            let ranked = m.zero_shot(&emb[0], &pack, top_k)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&ranked).expect("serialisable"))?;
            } else {
                for s in ranked {
                    writeln!(out, "{:>7.4}  {}", s.score, s.label)?;
                }
            }
        }
        Command::Convert { model, weights, dtype, towers, output } => {
            let options = ConvertOptions { precision: dtype.parse()?, towers: towers.parse()?, ..Default::default() };
            let config = load_config(&model)?;
            let bytes = MobileClip::convert_file(&config, &weights, &options)?;
            std::fs::write(&output, &bytes)
                .map_err(|source| Error::Io { path: output.display().to_string(), source })?;
            writeln!(
                out,
                "{}: {}, towers: {}, dtype: {}, {} bytes",
                output.display(),
                config.name,
                options.towers,
                options.precision,
                bytes.len()
            )?;
        }
        Command::Labels { model, weights, labels, templates, output } => {
            let text = String::from_utf8(read(&labels)?)
                .map_err(|_| Error::InvalidArgument(format!("{} is not UTF-8 text", labels.display())))?;
            let labels: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            let m = load_model(model.as_deref(), &weights, cli.backend, &cli.precision)?;
            // Progress on a terminal only: piped stderr keeps the one-line error contract.
            let tty = io::stderr().is_terminal();
            let progress = |done: usize, total: usize| {
                if tty {
                    let end = if done == total { "\n" } else { "" };
                    let _ = write!(io::stderr(), "\rencoding labels: {done} of {total}{end}");
                }
            };
            let pack = m.label_pack_with_progress(&labels, &template_list(&templates), progress)?;
            std::fs::write(&output, pack.to_bytes())
                .map_err(|source| Error::Io { path: output.display().to_string(), source })?;
        }
        Command::Tokenize { text } => {
            let ids = ClipTokenizer::new()?.encode(&text)?;
            writeln!(out, "{}", serde_json::to_string(&ids).expect("serialisable"))?;
        }
        Command::Bench { model, weights, batch: batches, iters, kernels } => {
            if batches.is_empty() || batches.iter().any(|&b| b == 0 || b > 256) {
                return Err(
                    Error::InvalidArgument(format!("--batch takes sizes from 1 to 256, got {batches:?}")).into()
                );
            }
            if iters == 0 || iters > 1000 {
                return Err(Error::InvalidArgument(format!("--iters takes 1 to 1000, got {iters}")).into());
            }
            let m = load_model(model.as_deref(), &weights, cli.backend, &cli.precision)?;
            bench(&m, cli.backend, &batches, iters, kernels, out)?;
        }
        Command::Adapter => {
            #[cfg(feature = "wgpu")]
            {
                let gpu = mobileclip_wasm::gpu::init()?;
                let info = serde_json::json!({ "adapter": gpu.adapter, "software": gpu.software, "shader_f16": gpu.shader_f16 });
                writeln!(out, "{info}")?;
            }
            #[cfg(not(feature = "wgpu"))]
            {
                Backend::Wgpu.device()?;
            }
        }
        Command::Info { model, weights } => {
            let m = load_model(model.as_deref(), &weights, cli.backend, &cli.precision)?;
            let tower = |p: Option<TowerPrecision>| p.map(|p| p.to_string());
            let precision = m.precision();
            let info = serde_json::json!({
                "model": m.config().name,
                "towers": m.towers().to_string(),
                "embed_dim": m.embed_dim(),
                "backend": if cli.backend == Backend::Cpu { "cpu" } else { "wgpu" },
                "precision": { "image": tower(precision.image), "text": tower(precision.text) },
            });
            writeln!(out, "{info}")?;
        }
        Command::Models => {
            for name in ModelConfig::builtin_names() {
                let cfg = ModelConfig::builtin(name)?;
                let urls: Vec<&str> = cfg.weights_urls().collect();
                for url in if urls.is_empty() { vec!["-"] } else { urls } {
                    writeln!(out, "{name}\t{url}")?;
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = BufWriter::new(io::stdout().lock());
    let result = run(cli, &mut out).and_then(|()| Ok(out.flush()?));
    // stderr may be gone too: nothing more to do then than to exit.
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Output(e)) => {
            let _ = writeln!(io::stderr(), "error: cannot write the output: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Model(e)) => {
            let _ = writeln!(io::stderr(), "error: {e}");
            ExitCode::FAILURE
        }
    }
}
