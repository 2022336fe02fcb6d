//! Compact model files: a model's fused inference tensors ([`FusedWeights`]) written to
//! safetensors, each matrix and kernel stored as `f32`, `f16` or 2- to 8-bit integers with their
//! scales, with the model's config inside so that loading needs no model name.
//!
//! # Format (version 3)
//!
//! A safetensors file whose `__metadata__` holds (all values strings, as safetensors requires):
//!
//! | key | value |
//! |---|---|
//! | `format` | `mobileclip-wasm/compact` |
//! | `version` | `3` |
//! | `config` | the full model config as canonical JSON ([`ModelConfig::canonical_json`]: the same bytes however the config was given) |
//! | `towers` | `image`, `text` or `both`: which towers' tensors the file holds (`logit_scale` always) |
//! | `dtype` | what it was converted with: `f32`, `f16`, `int8` or `auto` (informative) |
//! | `source_sha256` | hex sha256 of the published checkpoint it was converted from |
//! | `storage` | JSON object: each fused tensor's name → `f32`, `f16`, `f16:<group>`, or `int<k>:<group>` (`k` in 2 … 8 bits) followed by `:columns`, `:exact` or both in that order |
//! | `shapes` | JSON object: each bit-packed tensor's name (`int<k>`, `k` < 8) → its shape |
//! | `crc32` | JSON object: every stored tensor's name → CRC-32 (8 hex digits) of its bytes |
//!
//! Tensors are stored under their canonical fused names (see [`super::names`]) with the dtype
//! their storage names (`F32`, `F16`; `I8` for `int8`). An `int<k>:<group>` tensor `N` holds
//! integers `q` in `-(2^(k-1) - 1) ..= 2^(k-1) - 1`, its scales in the tensor `N.scales` (`F16`,
//! or `F32` when one of them is not a half; one per `group` consecutive values of a row; the
//! first dimension is the output channel, and a group equal to the row length is one scale per
//! channel); value `i` is `q[i] · N.scales[i / group]`; an `int<k>:<group>:columns` tensor
//! multiplies that by `N.columns[j]` (`F16` or `F32`, one per column: `j` is `i` modulo the row
//! length). `int8` values are stored as `I8` of the tensor's shape; narrower ones are bit-packed
//! into a `U8` vector of ⌈numel · k / 8⌉ bytes (their shape in `shapes`): value `i` is the `k`
//! bits from bit `i · k` of the stream (bit `b` is bit `b mod 8` of byte `b / 8`, least
//! significant first), read as an unsigned number `u`, and `q = u − (2^(k-1) − 1)` (so all
//! zero bits is the most negative value); the unused bits of the last byte are zero. An
//! `…:exact` integer tensor keeps some values apart from its integers: `N.exact` (`F16`, or `F32`
//! when one of them is not a half) holds them and `N.exact_at` (`I32`, as long, strictly
//! increasing) their flat indices; value `i` at such an index is that value (its integer is 0).
//! An `f16:<group>` tensor (scaled halves) holds `F16` values `h` of the tensor's shape and
//! `N.scales` (`F16` or `F32`, one per `group` consecutive values of a row): value `i` is
//! `h[i] · N.scales[i / group]`. Nothing else may be stored.
//!
//! Version 2 is version 3 without `f16:<group>` or `:exact`; version 1 (written before sub-8-bit
//! storage) is version 2 without `shapes`, `int<k>` for `k` < 8, or `F16` scales and factors:
//! this build reads all three.
//!
//! A file whose version this build does not read, whose metadata or storage do not add up, or
//! whose bytes do not have their CRC-32s is refused with `INVALID_WEIGHTS`; one whose tensors do
//! not fit the model its config describes with `WEIGHTS_MISMATCH`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use super::fused::half_exact;
use super::pickle::DType;
use super::quantize::{self, Precision, Tolerance};
use super::{Checkpoint, FusedTensor, FusedWeights, Storage};
use crate::config::ModelConfig;
use crate::error::{Error, Result};

/// The `format` metadata value of a compact file.
pub const FORMAT: &str = "mobileclip-wasm/compact";
/// The format version this build writes (it also reads the versions before it, from 1).
pub const VERSION: u32 = 3;
/// Suffix of the tensor holding an integer or scaled-half tensor's scales.
const SCALES: &str = ".scales";
/// Suffix of the tensor holding an integer tensor's column factors.
const COLUMNS: &str = ".columns";
/// Suffix of the tensor holding the values an integer tensor keeps apart.
const EXACT: &str = ".exact";
/// Suffix of the tensor holding the flat indices of those values.
const EXACT_AT: &str = ".exact_at";

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
#[cfg(feature = "flex")]
pub fn convert(config: &ModelConfig, checkpoint: Vec<u8>, options: &ConvertOptions) -> Result<Vec<u8>> {
    let mut reader = super::WeightsReader::with_size(Some(checkpoint.len() as u64));
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
/// stored tensors and that tower's `f32` parameters), never the checkpoint twice. Needs the flex
/// CPU backend (cargo feature `flex`), on which each tower is built to check it.
#[cfg(feature = "flex")]
pub fn convert_stream(config: &ModelConfig, reader: super::WeightsReader, options: &ConvertOptions) -> Result<Vec<u8>> {
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
            let tolerance = options.tolerance.for_tensor(&name, t.numel());
            let s = quantize::store(t, options.precision, tolerance);
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
    let mut shapes = BTreeMap::new();
    for (tensor, t) in fused.iter() {
        storage.insert(tensor.to_string(), t.storage().kind());
        let entry = |name: String, part, dtype, shape, len| Entry { name, tensor, part, dtype, shape, len };
        let shape = t.shape().to_vec();
        match t.storage() {
            Storage::F32(v) => entries.push(entry(tensor.into(), Part::Values, "F32", shape, 4 * v.len())),
            Storage::F16(v) | Storage::ScaledF16 { values: v, .. } => {
                entries.push(entry(tensor.into(), Part::Values, "F16", shape, 2 * v.len()))
            }
            Storage::Int { bits: 8, values, .. } => {
                entries.push(entry(tensor.into(), Part::Values, "I8", shape, values.len()))
            }
            Storage::Int { bits, values, .. } => {
                let n = (values.len() * *bits as usize).div_ceil(8);
                entries.push(entry(tensor.into(), Part::Values, "U8", vec![n], n));
                shapes.insert(tensor.to_string(), shape);
            }
        }
        let factors = |v: &[f32]| if half_exact(v) { ("F16", 2 * v.len()) } else { ("F32", 4 * v.len()) };
        if let Storage::Int { scales, .. } | Storage::ScaledF16 { scales, .. } = t.storage() {
            let (dtype, len) = factors(scales);
            entries.push(entry(format!("{tensor}{SCALES}"), Part::Scales, dtype, vec![scales.len()], len));
        }
        if let Storage::Int { columns, exact, .. } = t.storage() {
            if !columns.is_empty() {
                let (dtype, len) = factors(columns);
                entries.push(entry(format!("{tensor}{COLUMNS}"), Part::Columns, dtype, vec![columns.len()], len));
            }
            if !exact.is_empty() {
                let (dtype, len) = factors(&exact_values(exact));
                entries.push(entry(format!("{tensor}{EXACT}"), Part::Exact, dtype, vec![exact.len()], len));
                let n = exact.len();
                entries.push(entry(format!("{tensor}{EXACT_AT}"), Part::ExactAt, "I32", vec![n], 4 * n));
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
        ("shapes", json(&shapes)),
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
    /// Its values (`F32`, `F16`, `I8`, or bit-packed `U8`).
    Values,
    /// An integer tensor's scales.
    Scales,
    /// An integer tensor's column factors.
    Columns,
    /// The values an integer tensor keeps apart.
    Exact,
    /// Their flat indices.
    ExactAt,
}

/// The little-endian bytes of one part of a stored tensor.
fn part_bytes(storage: &Storage, part: Part) -> Vec<u8> {
    match (storage, part) {
        (Storage::F32(v), _) => le_bytes(v),
        (Storage::F16(v), _) | (Storage::ScaledF16 { values: v, .. }, Part::Values) => {
            v.iter().flat_map(|x| x.to_le_bytes()).collect()
        }
        (Storage::Int { bits: 8, values, .. }, Part::Values) => values.iter().map(|&q| q as u8).collect(),
        (Storage::Int { bits, values, .. }, Part::Values) => pack(values, *bits),
        (Storage::Int { scales, .. } | Storage::ScaledF16 { scales, .. }, Part::Scales) => factor_bytes(scales),
        (Storage::Int { columns, .. }, Part::Columns) => factor_bytes(columns),
        (Storage::Int { exact, .. }, Part::Exact) => factor_bytes(&exact_values(exact)),
        (Storage::Int { exact, .. }, Part::ExactAt) => {
            exact.iter().flat_map(|&(i, _)| (i as i32).to_le_bytes()).collect()
        }
        (Storage::ScaledF16 { .. }, _) => unreachable!("scaled halves have values and scales only"),
    }
}

/// The values of an integer storage's `exact` list.
fn exact_values(exact: &[(u32, f32)]) -> Vec<f32> {
    exact.iter().map(|&(_, v)| v).collect()
}

/// Scales or column factors as a file stores them: halves when they all are, else `f32`.
fn factor_bytes(v: &[f32]) -> Vec<u8> {
    if half_exact(v) { v.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect() } else { le_bytes(v) }
}

/// `bits`-bit integers (`|q| < 2^(bits-1)`) packed as the format says: each as the unsigned
/// `q + 2^(bits-1) − 1`, `bits` bits from bit `i · bits` of the stream, least significant first.
pub fn pack(values: &[i8], bits: u32) -> Vec<u8> {
    let offset = (1i32 << (bits - 1)) - 1;
    let mut out = vec![0u8; (values.len() * bits as usize).div_ceil(8)];
    let (mut acc, mut filled, mut at) = (0u32, 0u32, 0);
    for &q in values {
        acc |= ((i32::from(q) + offset) as u32) << filled;
        filled += bits;
        while filled >= 8 {
            out[at] = acc as u8;
            (acc, filled, at) = (acc >> 8, filled - 8, at + 1);
        }
    }
    if filled > 0 {
        out[at] = acc as u8;
    }
    out
}

/// The `n` `bits`-bit integers of [`pack`]'s `bytes` (which hold exactly ⌈n · bits / 8⌉
/// bytes), or `None` when a value is out of range (all ones: `2^(bits-1)`) or the last byte's
/// unused bits are not zero.
pub fn unpack(bytes: &[u8], bits: u32, n: usize) -> Option<Vec<i8>> {
    if bytes.len() != (n * bits as usize).div_ceil(8) {
        return None;
    }
    let (offset, mask) = ((1i32 << (bits - 1)) - 1, (1u32 << bits) - 1);
    let mut out = Vec::with_capacity(n);
    let (mut acc, mut filled, mut at) = (0u32, 0u32, 0);
    for _ in 0..n {
        while filled < bits {
            acc |= u32::from(bytes[at]) << filled;
            (filled, at) = (filled + 8, at + 1);
        }
        let u = (acc & mask) as i32;
        if u > 2 * offset {
            return None;
        }
        out.push((u - offset) as i8);
        (acc, filled) = (acc >> bits, filled - bits);
    }
    (acc == 0).then_some(out)
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

/// The vector `{name}{suffix}` of a compact file of `version` (scales, column factors, values
/// kept apart): `F32`, or `F16` from version 2.
fn float_vector(ckpt: &mut Parsed, name: &str, suffix: &str, version: u32) -> Result<Vec<f32>> {
    let n = format!("{name}{suffix}");
    let float = match ckpt.ckpt.dtype(&n) {
        Some(DType::F32) => true,
        Some(DType::F16) => version >= 2,
        _ => false,
    };
    if !float || ckpt.ckpt.shape(&n).map(<[usize]>::len) != Some(1) {
        return Err(invalid(format!("`{n}` is missing or not a vector of F32 or F16")));
    }
    ckpt.take(&n, Checkpoint::take_f32)
}

/// A compact file's tensors as [`read`] parses them, each one taken noted: what is left
/// afterwards belongs to no tensor the storage table lists (the parser, not a second reading of
/// the storage kinds, says what a listed tensor is made of).
struct Parsed {
    ckpt: Checkpoint,
    taken: BTreeSet<String>,
}

impl Parsed {
    /// The tensor `name` taken out by `take` (one of [`Checkpoint`]'s `take_*`), noted as taken.
    fn take<T>(&mut self, name: &str, take: impl FnOnce(&mut Checkpoint, &str) -> Result<T>) -> Result<T> {
        let out = take(&mut self.ckpt, name)?;
        self.taken.insert(name.to_string());
        Ok(out)
    }
}

/// Reads a compact file (see [`is_compact`]): what it says about itself, and its fused tensors
/// (`int8` ones kept as stored, turned into `f32` when a module takes them; `f16` ones were
/// turned into `f32` as they were read, exactly).
pub fn read(ckpt: Checkpoint) -> Result<(CompactInfo, FusedWeights)> {
    let meta = ckpt.metadata();
    let get = |key: &str| meta.get(key).ok_or_else(|| invalid(format!("its metadata has no `{key}`")));
    let format = get("format")?;
    if format != FORMAT {
        return Err(invalid(format!("format `{format}` is not one this build reads ({FORMAT})")));
    }
    let version_text = get("version")?;
    let Some(version) = version_text.parse::<u32>().ok().filter(|v| (1..=VERSION).contains(v)) else {
        return Err(invalid(format!(
            "format version {version_text:?}; this build of mobileclip-wasm reads versions 1 to {VERSION} (convert the checkpoint again with this build, or update)"
        )));
    };
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
    let shapes: BTreeMap<String, Vec<usize>> = match meta.get("shapes") {
        Some(s) if version >= 2 => serde_json::from_str(s).map_err(|e| invalid(format!("its shapes table: {e}")))?,
        Some(_) => return Err(invalid(format!("version {version} has no `shapes`"))),
        None if version >= 2 => return Err(invalid("its metadata has no `shapes`")),
        None => BTreeMap::new(),
    };

    // Every stored tensor has its checksum (and the checksums are of stored tensors); that each
    // is a listed tensor or one of its parts is known once they are parsed (below).
    let names: Vec<String> = ckpt.names().map(String::from).collect();
    if crc.len() != names.len() {
        return Err(invalid(format!("it stores {} tensors but lists {} checksums", names.len(), crc.len())));
    }
    for name in &names {
        let want = crc.get(name).ok_or_else(|| invalid(format!("tensor `{name}` has no checksum")))?;
        let got = format!("{:08x}", ckpt.crc32(name).expect("a compact file's checksums are computed as it is read"));
        if &got != want {
            return Err(invalid(format!(
                "tensor `{name}` is corrupted (its CRC-32 is {got}, the file says {want}): download or convert it again"
            )));
        }
    }
    let mut ckpt = Parsed { ckpt, taken: BTreeSet::new() };
    let mut fused = FusedWeights::new();
    for (name, kind) in &storage {
        let stored_shape =
            ckpt.ckpt.shape(name).ok_or_else(|| invalid(format!("tensor `{name}` is listed but not stored")))?.to_vec();
        let dtype_is = |want: DType| {
            let got = ckpt.ckpt.dtype(name).expect("stored");
            if got == want {
                Ok(())
            } else {
                Err(invalid(format!("tensor `{name}` is {got:?}, its storage says {kind}")))
            }
        };
        let mut shape = stored_shape.clone();
        let stored = match kind.as_str() {
            "f32" => {
                dtype_is(DType::F32)?;
                Storage::F32(ckpt.take(name, Checkpoint::take_f32)?)
            }
            "f16" => {
                dtype_is(DType::F16)?;
                Storage::F32(ckpt.take(name, Checkpoint::take_f32)?)
            }
            scaled if scaled.starts_with("f16:") => {
                let unknown = || invalid(format!("tensor `{name}` has an unknown storage {kind:?}"));
                let group = scaled[4..].parse::<usize>().ok().filter(|_| version >= 3).ok_or_else(unknown)?;
                dtype_is(DType::F16)?;
                // the halves came from F16 bytes: back to halves exactly
                let values = ckpt.take(name, Checkpoint::take_f32)?.into_iter().map(half::f16::from_f32).collect();
                Storage::ScaledF16 { values, scales: float_vector(&mut ckpt, name, SCALES, version)?, group }
            }
            int => {
                let unknown = || invalid(format!("tensor `{name}` has an unknown storage {kind:?}"));
                let (bits, spec) = int.strip_prefix("int").and_then(|s| s.split_once(':')).ok_or_else(unknown)?;
                let bits = bits.parse::<u32>().ok().filter(|b| (2..=8).contains(b)).ok_or_else(unknown)?;
                if bits < 8 && version < 2 {
                    return Err(unknown());
                }
                // `<group>`, then `:columns` and `:exact` (version 3), each at most once, in that order
                let (spec, exact) = match spec.strip_suffix(":exact") {
                    Some(g) if version >= 3 => (g, true),
                    Some(_) => return Err(unknown()),
                    None => (spec, false),
                };
                let (group, columns) = match spec.strip_suffix(":columns") {
                    Some(g) => (g, true),
                    None => (spec, false),
                };
                let group = group.parse::<usize>().map_err(|_| unknown())?;
                let values = if bits == 8 {
                    dtype_is(DType::I8)?;
                    ckpt.take(name, Checkpoint::take_i8)?
                } else {
                    dtype_is(DType::U8)?;
                    shape =
                        shapes.get(name).ok_or_else(|| invalid(format!("`{name}` has no shape in `shapes`")))?.clone();
                    let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
                    let bytes = ckpt.take(name, Checkpoint::take_u8)?;
                    numel
                        .filter(|_| stored_shape.len() == 1)
                        .and_then(|n| unpack(&bytes, bits, n))
                        .ok_or_else(|| invalid(format!("tensor `{name}`: its bytes are not {shape:?} packed {kind}")))?
                };
                let columns = if columns { float_vector(&mut ckpt, name, COLUMNS, version)? } else { Vec::new() };
                let scales = float_vector(&mut ckpt, name, SCALES, version)?;
                let exact = if exact {
                    let kept = float_vector(&mut ckpt, name, EXACT, version)?;
                    let at = format!("{name}{EXACT_AT}");
                    if ckpt.ckpt.dtype(&at) != Some(DType::I32) || ckpt.ckpt.shape(&at) != Some(&[kept.len()][..]) {
                        return Err(invalid(format!(
                            "`{at}` is missing or not an I32 vector as long as `{name}{EXACT}`"
                        )));
                    }
                    let at = ckpt.take(&at, Checkpoint::take_i32)?;
                    // a negative index becomes one no tensor has: FusedTensor::new refuses it
                    at.into_iter().map(|i| u32::try_from(i).unwrap_or(u32::MAX)).zip(kept).collect()
                } else {
                    Vec::new()
                };
                Storage::Int { bits, values, scales, group, columns, exact }
            }
        };
        let t = FusedTensor::new(shape.clone(), stored).ok_or_else(|| {
            invalid(format!("tensor `{name}` {shape:?}: its values or scales do not fit its storage {kind}"))
        })?;
        fused.insert(name.clone(), t);
    }
    // every stored tensor was taken as a listed tensor or one of its parts: anything else is stray
    if let Some(stray) = names.iter().find(|n| !ckpt.taken.contains(*n)) {
        return Err(invalid(format!(
            "tensor `{stray}` is stored but is not in its storage table, nor a part (scales, column factors, values kept apart) of a tensor it lists as such"
        )));
    }
    // what `shapes` lists was read as bit-packed (integers of fewer than 8 bits), nothing else
    let packed =
        |n: &String| fused.get(n).is_some_and(|t| matches!(t.storage(), Storage::Int { bits, .. } if *bits < 8));
    if let Some(name) = shapes.keys().find(|n| !packed(n)) {
        return Err(invalid(format!("`shapes` lists `{name}`, which is not a bit-packed tensor")));
    }
    Ok((CompactInfo { config, towers, dtype, source_sha256 }, fused))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` values of `bits` bits covering the whole range, both ends included.
    fn codes(n: usize, bits: u32) -> Vec<i8> {
        let top = (1i32 << (bits - 1)) - 1;
        (0..n).map(|i| ((i as i32 * 7919) % (2 * top + 1) - top) as i8).collect()
    }

    #[test]
    fn packing_round_trips_every_width_and_length() {
        for bits in 2..=8 {
            for n in (0..=19).chain([63, 64, 65, 1001]) {
                let q = codes(n, bits);
                let packed = pack(&q, bits);
                assert_eq!(packed.len(), (n * bits as usize).div_ceil(8), "{bits} bits, {n} values");
                assert_eq!(unpack(&packed, bits, n).as_deref(), Some(&q[..]), "{bits} bits, {n} values");
            }
        }
        // 4 bits: value i in the low nibble of byte i / 2 first; -7 is all zero bits, 7 is 14
        assert_eq!(pack(&[-7, 7, 0], 4), [0xe0, 0x07]);
    }

    #[test]
    fn unpacking_refuses_what_packing_cannot_write() {
        // all ones is 2^(bits-1): out of the symmetric range
        assert_eq!(unpack(&[0x0f], 4, 1), None);
        assert_eq!(unpack(&[0x0e], 4, 1), Some(vec![7]));
        // unused bits of the last byte set
        assert_eq!(unpack(&[0x1e], 4, 1), None);
        // too few or too many bytes
        assert_eq!(unpack(&[0x00], 4, 3), None);
        assert_eq!(unpack(&[0x00, 0x00], 4, 1), None);
    }

    /// Every integer width, odd row lengths, one scale per row and groups, column factors, and
    /// scales that are halves or not: written to a file and read back, each tensor's storage is
    /// the same, and its `f32` values too.
    #[test]
    fn integer_storage_round_trips_through_a_file() {
        let config = ModelConfig::builtin("MobileCLIP-S0").unwrap();
        let mut fused = FusedWeights::new();
        let mut want = Vec::new();
        for bits in 2..=8u32 {
            for (i, (shape, group, columns)) in [
                (vec![3, 45], 45, false),
                (vec![5, 9, 3, 1], 9, true),
                (vec![7, 15], 5, false),
                (vec![2, 33], 11, true),
            ]
            .into_iter()
            .enumerate()
            {
                let numel: usize = shape.iter().product();
                let row = numel / shape[0];
                let values: Vec<f32> =
                    (0..numel).map(|j| ((j * 31 + i) as f32 * 0.37).sin() * (1 + j % 5) as f32).collect();
                // values kept apart: none, or one or two per row (the last shapes)
                let mut t = quantize::quantise(&shape, &values, bits, group, columns, i / 2);
                if i == 3 {
                    // a scale that is not a half: the file keeps them all in f32
                    let Storage::Int { values, mut scales, columns, exact, .. } = t.storage().clone() else { panic!() };
                    scales[0] = 1.0 / 3.0;
                    t = FusedTensor::new(shape.clone(), Storage::Int { bits, values, scales, group, columns, exact })
                        .unwrap();
                }
                let exact = if i >= 2 { ":exact" } else { "" };
                assert_eq!(
                    t.storage().kind(),
                    format!("int{bits}:{group}{}{exact}", if columns { ":columns" } else { "" })
                );
                assert!(row.is_multiple_of(group));
                let name = format!("visual.t{bits}_{i}.weight");
                want.push((name.clone(), t.clone()));
                fused.insert(&name, t);
            }
        }
        // scaled halves: channels decades apart, one under half's normal range
        let values: Vec<f32> = (0..4 * 9).map(|j| (j as f32 * 0.61).cos() * 10f32.powi(-3 * (j / 9))).collect();
        let t = quantize::scaled_f16(&[4, 9], &values);
        assert_eq!(t.storage().kind(), "f16:9");
        want.push(("visual.scaled.weight".into(), t.clone()));
        fused.insert("visual.scaled.weight", t);
        let options = ConvertOptions { precision: Precision::Auto, towers: Towers::Image, ..Default::default() };
        let file = write(&config, &fused, &options, &"0".repeat(64));
        // a version-2 file has neither scaled halves nor values kept apart
        let as_version_2 = |fused: &FusedWeights| {
            let mut file = write(&config, fused, &options, &"0".repeat(64));
            let key = br#""version":"3""#;
            let at = file.windows(key.len()).position(|w| w == key).expect("the version in the header");
            file[at + key.len() - 2] = b'2';
            read(Checkpoint::from_bytes(&file).unwrap()).map(|_| ()).unwrap_err().to_string()
        };
        let e = as_version_2(&fused);
        assert!(e.contains("`visual.scaled.weight` has an unknown storage"), "{e}");
        let mut without_scaled = fused.clone();
        without_scaled.remove("visual.scaled.weight");
        let e = as_version_2(&without_scaled);
        assert!(e.contains("`visual.t2_2.weight` has an unknown storage \"int2:5:exact\""), "{e}");
        let (info, back) = read(Checkpoint::from_bytes(&file).unwrap()).unwrap();
        assert_eq!(info.towers, Towers::Image);
        for (name, t) in want {
            let got = back.get(&name).unwrap();
            assert_eq!(got, &t, "{name}");
            assert_eq!(got.to_f32(), t.to_f32(), "{name}");
        }
        // the file's bytes are what the storage says they are
        let tensors: usize = back.iter().map(|(_, t)| t.storage().bytes()).sum();
        let header = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
        assert_eq!(file.len() - 8 - header, tensors);
    }
}
