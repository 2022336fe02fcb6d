//! Compact model files: a model's fused inference tensors ([`FusedWeights`]) written to
//! safetensors, each matrix and kernel stored as `f32`, `f16` or `int8` with its scales, with the
//! model's config inside so that loading needs no model name.
//!
//! # Format (version 1)
//!
//! A safetensors file whose `__metadata__` holds (all values strings, as safetensors requires):
//!
//! | key | value |
//! |---|---|
//! | `format` | `mobileclip-wasm/compact` |
//! | `version` | `1` |
//! | `config` | the full model config as canonical JSON ([`ModelConfig::canonical_json`]: the same bytes however the config was given) |
//! | `towers` | `image`, `text` or `both`: which towers' tensors the file holds (`logit_scale` always) |
//! | `dtype` | what it was converted with: `f32`, `f16`, `int8` or `auto` (informative) |
//! | `source_sha256` | hex sha256 of the published checkpoint it was converted from |
//! | `storage` | JSON object: each fused tensor's name → `f32`, `f16`, `int8:<group>` or `int8:<group>:columns` |
//! | `crc32` | JSON object: every stored tensor's name → CRC-32 (8 hex digits) of its bytes |
//!
//! Tensors are stored under their canonical fused names (see [`super::names`]) with the dtype
//! their storage names (`F32`, `F16`, `I8`). An `int8:<group>` tensor `N` has its scales in the
//! `F32` tensor `N.scales` (one per `group` consecutive values of a row; the first dimension is
//! the output channel, and a group equal to the row length is one scale per channel); value `i`
//! is `N[i] · N.scales[i / group]`; an `int8:<group>:columns` tensor multiplies that by
//! `N.columns[j]` (`F32`, one per column: `j` is `i` modulo the row length). Nothing else may be
//! stored.
//!
//! A file whose version this build does not read, whose metadata or storage do not add up, or
//! whose bytes do not have their CRC-32s is refused with `INVALID_WEIGHTS`; one whose tensors do
//! not fit the model its config describes with `WEIGHTS_MISMATCH`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::pickle::DType;
use super::quantize::{self, Precision, Tolerance};
use super::{Checkpoint, FusedTensor, FusedWeights, Storage, WeightsReader};
use crate::config::ModelConfig;
use crate::error::{Error, Result};

/// The `format` metadata value of a compact file.
pub const FORMAT: &str = "mobileclip-wasm/compact";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Suffix of the tensor holding an `int8` tensor's scales.
const SCALES: &str = ".scales";
/// Suffix of the tensor holding an `int8` tensor's column factors.
const COLUMNS: &str = ".columns";

/// Which towers a model (or a compact file) has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Towers {
    /// The image tower only: encodes images; text calls fail with `NO_TEXT_TOWER`.
    Image,
    /// The text tower only: encodes texts; image calls fail with `NO_IMAGE_TOWER`.
    Text,
    /// Both.
    #[default]
    Both,
}

impl Towers {
    /// Whether the image tower is there.
    pub fn has_image(self) -> bool {
        self != Towers::Text
    }

    /// Whether the text tower is there.
    pub fn has_text(self) -> bool {
        self != Towers::Image
    }

    /// Whether `tower` (one tower) is kept here.
    pub fn keeps_tower(self, tower: Towers) -> bool {
        self == Towers::Both || self == tower
    }

    /// Whether the tensor `name` belongs to a tower kept here (`logit_scale` belongs to both).
    pub fn keeps(self, name: &str) -> bool {
        if name.starts_with("visual.") {
            self.has_image()
        } else if name.starts_with("text.") {
            self.has_text()
        } else {
            true
        }
    }
}

impl FromStr for Towers {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "image" => Ok(Towers::Image),
            "text" => Ok(Towers::Text),
            "both" => Ok(Towers::Both),
            other => Err(Error::InvalidArgument(format!("towers must be image, text or both, got {other:?}"))),
        }
    }
}

impl fmt::Display for Towers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Towers::Image => "image",
            Towers::Text => "text",
            Towers::Both => "both",
        })
    }
}

/// What to write: the storage of the matrices and kernels, and which towers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ConvertOptions {
    /// `f32` (bit-identical embeddings), `f16`, `int8` or `auto`.
    pub precision: Precision,
    /// Which towers to keep.
    pub towers: Towers,
    /// What `auto` accepts per tensor.
    pub tolerance: Tolerance,
}

/// What a compact file says about itself.
#[derive(Clone, Debug, PartialEq)]
pub struct CompactInfo {
    /// The model's config.
    pub config: ModelConfig,
    /// The towers the file holds.
    pub towers: Towers,
    /// What it was converted with.
    pub dtype: String,
    /// Hex sha256 of the published checkpoint it came from.
    pub source_sha256: String,
}

impl CompactInfo {
    /// The weights id ([`crate::weights_id`]) of the checkpoint the file came from: its
    /// `source_sha256`, as `sha256-<base64>`.
    pub fn source_weights_id(&self) -> Result<String> {
        let hex = self.source_sha256.as_bytes();
        let mut digest = [0u8; 32];
        for (i, byte) in digest.iter_mut().enumerate() {
            let pair = std::str::from_utf8(hex.get(2 * i..2 * i + 2).unwrap_or_default()).unwrap_or_default();
            *byte = u8::from_str_radix(pair, 16)
                .map_err(|_| invalid(format!("source_sha256 {:?} is not a hex sha256", self.source_sha256)))?;
        }
        Ok(crate::sha256_id(&digest))
    }
}

/// Hex sha256 of `bytes` (a compact file's `source_sha256`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&crate::sha256(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a weights id ([`crate::weights_id`] of the bytes loaded) against a
/// Subresource-Integrity string `sha256-<base64 digest>`: a malformed string is
/// `INVALID_ARGUMENT`, another digest `INTEGRITY_MISMATCH`.
pub fn check_integrity(weights_id: &str, integrity: &str) -> Result<()> {
    use base64::Engine;
    let digest: [u8; 32] = integrity
        .trim()
        .strip_prefix("sha256-")
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
        .and_then(|d| d.try_into().ok())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "integrity must be \"sha256-\" and the base64 sha256 of the file (as `openssl dgst -sha256 -binary F | base64` prints it), got {integrity:?}"
            ))
        })?;
    if crate::sha256_id(&digest) != weights_id {
        return Err(Error::Integrity(format!(
            "the weights' sha256 is {weights_id}, not the {} expected: the file is not the one asked for (truncated, corrupted or another file)",
            integrity.trim()
        )));
    }
    Ok(())
}

/// Whether a parsed checkpoint is a compact file (by its metadata's `format`).
pub fn is_compact(ckpt: &Checkpoint) -> bool {
    ckpt.metadata().get("format").is_some_and(|f| f.starts_with("mobileclip-wasm/"))
}

/// Converts a published checkpoint of `config`'s model into a compact file's bytes (see
/// [`convert_stream`]; the bytes are read as one chunk).
pub fn convert(config: &ModelConfig, checkpoint: Vec<u8>, options: &ConvertOptions) -> Result<Vec<u8>> {
    let mut reader = WeightsReader::with_size(Some(checkpoint.len() as u64));
    reader.push(&checkpoint)?;
    drop(checkpoint);
    convert_stream(config, reader, options)
}

/// Converts a published checkpoint of `config`'s model, streamed into `reader` (which was
/// given the whole file), into a compact file's bytes. The checkpoint is folded (each tensor
/// released as it is taken), each fused tensor stored as `options` say (released as it is),
/// each tower written checked to build the model exactly (every tensor present, of its shape,
/// nothing left over: [`Clip::check`](crate::model::clip::Clip::check)), then written. What it
/// holds at most is about the fused tensors and the file (or, while a tower is checked, the
/// stored tensors and that tower's `f32` parameters), never the checkpoint twice.
pub fn convert_stream(config: &ModelConfig, reader: WeightsReader, options: &ConvertOptions) -> Result<Vec<u8>> {
    let (ckpt, digest) = reader.finish()?;
    let source_sha256 = hex(&digest);
    if is_compact(&ckpt) {
        return Err(Error::InvalidArgument(
            "this is already a compact file: convert the published checkpoint it came from".into(),
        ));
    }
    // stored with the description the model is built from (open_clip's, for such a v1 checkpoint)
    let (config, arch, fused) = super::fuse_published(ckpt, config)?;
    let mut stored = store(fused, options);
    for tower in [Towers::Image, Towers::Text].into_iter().filter(|t| options.towers.keeps_tower(*t)) {
        let (checked, back) = crate::model::clip::Clip::check(&arch, stored, tower);
        checked?;
        stored = back;
    }
    Ok(write(&config, &stored, options, &source_sha256))
}

/// The fused tensors of `options.towers`, stored at `options.precision`, with the folding's
/// problems and folded names kept (they are reported with the modules' own when the result is
/// built).
pub fn store(mut fused: FusedWeights, options: &ConvertOptions) -> FusedWeights {
    let (problems, folded) = (std::mem::take(&mut fused.problems), std::mem::take(&mut fused.folded));
    let mut stored: FusedWeights = fused
        .into_iter()
        .filter(|(name, _)| options.towers.keeps(name))
        .map(|(name, t)| {
            let s = quantize::store(&t, options.precision, options.tolerance.for_tensor(&name, t.numel()));
            (name, s)
        })
        .collect();
    (stored.problems, stored.folded) = (problems, folded);
    stored
}

/// Writes stored fused tensors as a compact file. The header comes first (each stored
/// tensor's CRC-32 computed from its bytes, made one tensor at a time), then each tensor's
/// bytes are made again straight into the file: nothing but the file itself is held beside the
/// tensors.
pub fn write(config: &ModelConfig, fused: &FusedWeights, options: &ConvertOptions, source_sha256: &str) -> Vec<u8> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut storage = BTreeMap::new();
    for (tensor, t) in fused.iter() {
        storage.insert(tensor.to_string(), t.storage().kind());
        let entry = |name: String, part, dtype, shape, len| Entry { name, tensor, part, dtype, shape, len };
        let shape = t.shape().to_vec();
        match t.storage() {
            Storage::F32(v) => entries.push(entry(tensor.into(), Part::Values, "F32", shape, 4 * v.len())),
            Storage::F16(v) => entries.push(entry(tensor.into(), Part::Values, "F16", shape, 2 * v.len())),
            Storage::Int8 { values, scales, columns, .. } => {
                entries.push(entry(tensor.into(), Part::Values, "I8", shape, values.len()));
                let n = scales.len();
                entries.push(entry(format!("{tensor}{SCALES}"), Part::Scales, "F32", vec![n], 4 * n));
                if !columns.is_empty() {
                    let n = columns.len();
                    entries.push(entry(format!("{tensor}{COLUMNS}"), Part::Columns, "F32", vec![n], 4 * n));
                }
            }
        }
    }
    // one order for the header's keys and the bytes: by stored name
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let bytes_of = |e: &Entry| part_bytes(fused.get(e.tensor).expect("listed from the map").storage(), e.part);
    let crc: BTreeMap<&str, String> =
        entries.iter().map(|e| (e.name.as_str(), format!("{:08x}", super::crc32::crc32(&bytes_of(e))))).collect();
    let metadata: BTreeMap<&str, String> = BTreeMap::from([
        ("format", FORMAT.to_string()),
        ("version", VERSION.to_string()),
        ("config", config.canonical_json()),
        ("towers", options.towers.to_string()),
        ("dtype", options.precision.to_string()),
        ("source_sha256", source_sha256.to_string()),
        ("storage", json(&storage)),
        ("crc32", json(&crc)),
    ]);
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::to_value(metadata).expect("strings"));
    let mut offset = 0;
    for e in &entries {
        let info = serde_json::json!({"dtype": e.dtype, "shape": e.shape, "data_offsets": [offset, offset + e.len]});
        header.insert(e.name.clone(), info);
        offset += e.len;
    }
    // A safetensors file with its header's keys in a fixed order (metadata first, then tensors
    // by name: serde_json's map is sorted, and `__` sorts first) and the tensors' bytes in name
    // order, so that one conversion always gives the same bytes (and the same `integrity`
    // digest); the `safetensors` crate writes its metadata map in hash order.
    let mut header = serde_json::to_vec(&header).expect("serialisable");
    // The data starts 8-byte aligned, as the safetensors crate writes it.
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend((header.len() as u64).to_le_bytes());
    out.extend(header);
    for e in &entries {
        out.extend(bytes_of(e));
    }
    out
}

/// One tensor of a compact file: which array of which stored tensor it holds, as what.
struct Entry<'a> {
    /// Its name in the file.
    name: String,
    /// The stored tensor it comes from.
    tensor: &'a str,
    part: Part,
    /// safetensors dtype.
    dtype: &'static str,
    shape: Vec<usize>,
    /// Bytes.
    len: usize,
}

/// Which of a stored tensor's arrays a file's tensor holds.
#[derive(Clone, Copy)]
enum Part {
    /// Its values (`F32`, `F16` or `I8`).
    Values,
    /// An `int8` tensor's scales.
    Scales,
    /// An `int8` tensor's column factors.
    Columns,
}

/// The little-endian bytes of one part of a stored tensor.
fn part_bytes(storage: &Storage, part: Part) -> Vec<u8> {
    match (storage, part) {
        (Storage::F32(v), _) => le_bytes(v),
        (Storage::F16(v), _) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        (Storage::Int8 { values, .. }, Part::Values) => values.iter().map(|&q| q as u8).collect(),
        (Storage::Int8 { scales, .. }, Part::Scales) => le_bytes(scales),
        (Storage::Int8 { columns, .. }, Part::Columns) => le_bytes(columns),
    }
}

/// A metadata value (config, tables) as JSON text.
fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("serialisable")
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn invalid(msg: impl fmt::Display) -> Error {
    Error::WeightsFormat(format!("compact model file: {msg}"))
}

/// Reads a compact file (see [`is_compact`]): what it says about itself, and its fused tensors
/// (`int8` ones kept as stored, turned into `f32` when a module takes them; `f16` ones were
/// turned into `f32` as they were read, exactly).
pub fn read(mut ckpt: Checkpoint) -> Result<(CompactInfo, FusedWeights)> {
    let meta = ckpt.metadata();
    let get = |key: &str| meta.get(key).ok_or_else(|| invalid(format!("its metadata has no `{key}`")));
    let format = get("format")?;
    if format != FORMAT {
        return Err(invalid(format!("format `{format}` is not one this build reads ({FORMAT})")));
    }
    let version = get("version")?;
    if version.parse::<u32>().ok() != Some(VERSION) {
        return Err(invalid(format!(
            "format version {version:?}; this build of mobileclip-wasm reads version {VERSION} (convert the checkpoint again with this build, or update)"
        )));
    }
    let config = ModelConfig::from_json(get("config")?).map_err(|e| invalid(format!("its config: {e}")))?;
    config.resolve().map_err(|e| invalid(format!("its config: {e}")))?;
    let towers: Towers = get("towers")?.parse().map_err(|e: Error| invalid(e.to_string()))?;
    let dtype = get("dtype")?.clone();
    let source_sha256 = get("source_sha256")?.clone();
    if source_sha256.len() != 64 || !source_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(format!("source_sha256 {source_sha256:?} is not a hex sha256")));
    }
    let storage: BTreeMap<String, String> =
        serde_json::from_str(get("storage")?).map_err(|e| invalid(format!("its storage table: {e}")))?;
    let crc: BTreeMap<String, String> =
        serde_json::from_str(get("crc32")?).map_err(|e| invalid(format!("its crc32 table: {e}")))?;

    // Every stored tensor is listed, has its checksum, and is a tensor or an int8 tensor's scales.
    let names: Vec<String> = ckpt.names().map(String::from).collect();
    if crc.len() != names.len() {
        return Err(invalid(format!("it stores {} tensors but lists {} checksums", names.len(), crc.len())));
    }
    for name in &names {
        let listed = storage.contains_key(name)
            || name.strip_suffix(SCALES).and_then(|n| storage.get(n)).is_some_and(|s| s.starts_with("int8:"))
            || name.strip_suffix(COLUMNS).and_then(|n| storage.get(n)).is_some_and(|s| s.ends_with(":columns"));
        if !listed {
            return Err(invalid(format!("tensor `{name}` is not in its storage table")));
        }
        let want = crc.get(name).ok_or_else(|| invalid(format!("tensor `{name}` has no checksum")))?;
        let got = format!("{:08x}", ckpt.crc32(name).expect("a compact file's checksums are computed as it is read"));
        if &got != want {
            return Err(invalid(format!(
                "tensor `{name}` is corrupted (its CRC-32 is {got}, the file says {want}): download or convert it again"
            )));
        }
    }
    let mut fused = FusedWeights::new();
    for (name, kind) in &storage {
        let shape =
            ckpt.shape(name).ok_or_else(|| invalid(format!("tensor `{name}` is listed but not stored")))?.to_vec();
        let dtype_is = |want: DType| {
            let got = ckpt.dtype(name).expect("stored");
            if got == want {
                Ok(())
            } else {
                Err(invalid(format!("tensor `{name}` is {got:?}, its storage says {kind}")))
            }
        };
        let stored = match kind.as_str() {
            "f32" => {
                dtype_is(DType::F32)?;
                Storage::F32(ckpt.take_f32(name)?)
            }
            "f16" => {
                dtype_is(DType::F16)?;
                Storage::F32(ckpt.take_f32(name)?)
            }
            int8 => {
                let unknown = || invalid(format!("tensor `{name}` has an unknown storage {kind:?}"));
                let spec = int8.strip_prefix("int8:").ok_or_else(unknown)?;
                let (group, columns) = match spec.strip_suffix(":columns") {
                    Some(g) => (g, true),
                    None => (spec, false),
                };
                let group = group.parse::<usize>().map_err(|_| unknown())?;
                dtype_is(DType::I8)?;
                let mut vector = |suffix: &str| {
                    let n = format!("{name}{suffix}");
                    if ckpt.dtype(&n) != Some(DType::F32) || ckpt.shape(&n).map(<[usize]>::len) != Some(1) {
                        return Err(invalid(format!("`{n}` is missing or not a vector of F32")));
                    }
                    ckpt.take_f32(&n)
                };
                let columns = if columns { vector(COLUMNS)? } else { Vec::new() };
                let scales = vector(SCALES)?;
                Storage::Int8 { values: ckpt.take_i8(name)?, scales, group, columns }
            }
        };
        let t = FusedTensor::new(shape.clone(), stored).ok_or_else(|| {
            invalid(format!("tensor `{name}` {shape:?}: its values or scales do not fit its storage {kind}"))
        })?;
        fused.insert(name.clone(), t);
    }
    Ok((CompactInfo { config, towers, dtype, source_sha256 }, fused))
}
