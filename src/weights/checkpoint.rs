//! Checkpoint containers: PyTorch zip files (`.pt`, `.pth`, `.bin`) and safetensors, read from
//! memory so that the same code serves files natively and `ArrayBuffer`s in the browser.

use std::collections::BTreeMap;
use std::io::Cursor;

use super::pickle::{self, DType, TensorRef, Value};
use crate::error::{Error, Result};

/// One tensor of a checkpoint, not yet converted.
#[derive(Clone, Debug)]
struct Entry {
    dtype: DType,
    shape: Vec<usize>,
    /// Byte range of the tensor's storage inside the file.
    storage: std::ops::Range<usize>,
    /// Offset of the first element inside the storage, in elements.
    offset: usize,
    stride: Vec<usize>,
}

/// The container a checkpoint was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `torch.save` zip archive (PyTorch ≥ 1.6): `.pt`, `.pth`, `.bin`.
    PytorchZip,
    /// Hugging Face safetensors.
    Safetensors,
}

/// A parsed checkpoint: tensor names, shapes and where their bytes are; conversion to `f32`
/// happens tensor by tensor in [`Checkpoint::read_f32`].
pub struct Checkpoint {
    bytes: Vec<u8>,
    entries: BTreeMap<String, Entry>,
    format: Format,
    /// A safetensors file's `__metadata__` (string to string).
    metadata: BTreeMap<String, String>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint").field("format", &self.format).field("tensors", &self.entries.len()).finish()
    }
}

impl Checkpoint {
    /// Parses a checkpoint, detecting its container from the bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        if bytes.is_empty() {
            return Err(Error::WeightsFormat("the weights file is empty".into()));
        }
        if bytes.starts_with(b"PK\x03\x04") {
            Self::from_pytorch_zip(bytes)
        } else if looks_like_safetensors(&bytes) {
            Self::from_safetensors(bytes)
        } else {
            Err(Error::WeightsFormat(format!(
                "unrecognised file ({} bytes): expected a PyTorch zip checkpoint (.pt/.pth/.bin) or safetensors",
                bytes.len()
            )))
        }
    }

    /// A safetensors file's `__metadata__` (empty for PyTorch checkpoints and files without it).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the checkpoint holds no tensors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Shape of a tensor.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// Renames every tensor with `f` (names mapped to `None` are dropped).
    pub fn rename(&mut self, mut f: impl FnMut(&str) -> Option<String>) {
        let entries = std::mem::take(&mut self.entries);
        self.entries = entries.into_iter().filter_map(|(k, v)| f(&k).map(|k| (k, v))).collect();
    }

    /// Converts a tensor to row-major `f32`.
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>> {
        let e = self.entries.get(name).ok_or_else(|| Error::WeightsMismatch(format!("missing tensor `{name}`")))?;
        let size = e.dtype.size();
        if size == 0 || matches!(e.dtype, DType::I64 | DType::I32 | DType::I8) {
            return Err(Error::WeightsMismatch(format!(
                "tensor `{name}` has dtype {:?}, expected a float type",
                e.dtype
            )));
        }
        let storage = &self.bytes[e.storage.clone()];
        let read = |i: usize| -> Result<f32> {
            let b = storage
                .get(i * size..(i + 1) * size)
                .ok_or_else(|| Error::WeightsFormat(format!("tensor `{name}` reaches past the end of its storage")))?;
            Ok(match e.dtype {
                DType::F32 => f32::from_le_bytes(b.try_into().expect("4 bytes")),
                DType::F64 => f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32,
                DType::F16 => half::f16::from_le_bytes(b.try_into().expect("2 bytes")).to_f32(),
                DType::BF16 => half::bf16::from_le_bytes(b.try_into().expect("2 bytes")).to_f32(),
                _ => unreachable!("integer dtypes rejected above"),
            })
        };
        Self::read_with(e, read)
    }

    /// Reads an `int8` tensor (row-major).
    pub fn read_i8(&self, name: &str) -> Result<Vec<i8>> {
        let e = self.entries.get(name).ok_or_else(|| Error::WeightsMismatch(format!("missing tensor `{name}`")))?;
        if e.dtype != DType::I8 {
            return Err(Error::WeightsMismatch(format!("tensor `{name}` has dtype {:?}, expected I8", e.dtype)));
        }
        let storage = &self.bytes[e.storage.clone()];
        let read = |i: usize| -> Result<i8> {
            let b = storage
                .get(i)
                .ok_or_else(|| Error::WeightsFormat(format!("tensor `{name}` reaches past the end of its storage")))?;
            Ok(*b as i8)
        };
        Self::read_with(e, read)
    }

    /// Where a tensor's bytes are in [`Checkpoint::bytes`].
    pub(crate) fn byte_range(&self, name: &str) -> Option<std::ops::Range<usize>> {
        self.entries.get(name).map(|e| e.storage.clone())
    }

    /// The dtype of a tensor.
    pub(crate) fn dtype(&self, name: &str) -> Option<DType> {
        self.entries.get(name).map(|e| e.dtype)
    }

    /// Reads the elements of `e` in row-major order with `read(element index in storage)`.
    fn read_with<T>(e: &Entry, read: impl Fn(usize) -> Result<T>) -> Result<Vec<T>> {
        let numel: usize = e.shape.iter().product();
        let mut out = Vec::with_capacity(numel);
        if numel == 0 {
            return Ok(out);
        }
        let contiguous = contiguous_strides(&e.shape);
        if e.stride == contiguous || e.shape.len() <= 1 && e.stride.iter().all(|&s| s == 1) {
            for i in 0..numel {
                out.push(read(e.offset + i)?);
            }
        } else {
            let mut idx = vec![0usize; e.shape.len()];
            for _ in 0..numel {
                let at = e.offset + idx.iter().zip(&e.stride).map(|(i, s)| i * s).sum::<usize>();
                out.push(read(at)?);
                for d in (0..idx.len()).rev() {
                    idx[d] += 1;
                    if idx[d] < e.shape[d] {
                        break;
                    }
                    idx[d] = 0;
                }
            }
        }
        Ok(out)
    }

    fn from_pytorch_zip(bytes: Vec<u8>) -> Result<Self> {
        let zerr = |e: zip::result::ZipError| {
            Error::WeightsFormat(format!("PyTorch zip checkpoint: {e} (is the file truncated?)"))
        };
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes.as_slice())).map_err(zerr)?;
        // Entries sharing bytes would have them checked (and read) again and again: thousands of
        // directory records pointing at one large entry would take hours.
        if archive.has_overlapping_entries().map_err(zerr)? {
            return Err(Error::WeightsFormat("PyTorch zip checkpoint: its entries overlap (a zip bomb?)".into()));
        }
        let mut pkl = None;
        let mut storages = BTreeMap::new();
        for i in 0..archive.len() {
            let file = archive.by_index_raw(i).map_err(zerr)?;
            let name = file.name().map_err(zerr)?.into_owned();
            let start = file
                .data_start()
                .ok_or_else(|| Error::WeightsFormat(format!("zip entry `{name}` has no data offset")))?
                as usize;
            let len = file.compressed_size() as usize;
            if start.checked_add(len).is_none_or(|end| end > bytes.len()) {
                return Err(Error::WeightsFormat(format!("zip entry `{name}` is truncated")));
            }
            if file.compression() != zip::CompressionMethod::Stored {
                return Err(Error::WeightsFormat(format!(
                    "zip entry `{name}` is compressed; torch.save writes stored entries"
                )));
            }
            // Every entry is read in full anyway, so each is checked against its CRC-32 once.
            let crc = super::crc32::crc32(&bytes[start..start + len]);
            if crc != file.crc32() {
                return Err(Error::WeightsFormat(format!(
                    "zip entry `{name}` is corrupted (its CRC-32 is {crc:08x}, the archive says {:08x}): \
                     download the file again",
                    file.crc32()
                )));
            }
            if name.ends_with("/data.pkl") || name == "data.pkl" {
                pkl = Some((name, start..start + len));
            } else if let Some((_, key)) = name.rsplit_once("/data/") {
                storages.insert(key.to_string(), start..start + len);
            }
        }
        drop(archive);
        let pkl =
            pkl.ok_or_else(|| Error::WeightsFormat("zip archive has no data.pkl: not a torch.save checkpoint".into()))?;
        let (pkl_name, pkl) = pkl;
        let root = pickle::parse(&bytes[pkl]).map_err(|e| match e {
            Error::WeightsFormat(msg) => Error::WeightsFormat(format!("zip entry `{pkl_name}`: {msg}")),
            other => other,
        })?;
        let dict = state_dict(root)?;
        let mut entries = BTreeMap::new();
        for (name, t) in dict {
            let TensorRef { storage, dtype, offset, shape, stride } = t;
            let range = storages.get(&storage).cloned().ok_or_else(|| {
                Error::WeightsFormat(format!(
                    "tensor `{name}` points at missing storage `{storage}` (truncated archive?)"
                ))
            })?;
            if shape.len() != stride.len() {
                return Err(Error::WeightsFormat(format!(
                    "tensor `{name}` has shape {shape:?} but strides {stride:?}"
                )));
            }
            check_extent(&name, &shape, &stride, offset, dtype, range.len())?;
            entries.insert(name, Entry { dtype, shape, storage: range, offset, stride });
        }
        Ok(Self { bytes, entries, format: Format::PytorchZip, metadata: BTreeMap::new() })
    }

    fn from_safetensors(bytes: Vec<u8>) -> Result<Self> {
        let declared = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        if declared > MAX_SAFETENSORS_HEADER {
            return Err(Error::WeightsFormat(format!(
                "safetensors header of {declared} bytes is larger than the {} MiB allowed",
                MAX_SAFETENSORS_HEADER >> 20
            )));
        }
        let (header_len, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
            use safetensors::SafeTensorError as E;
            let hint = match &e {
                E::InvalidHeaderLength | E::MetadataIncompleteBuffer => " (is the file truncated?)".to_string(),
                E::TensorInvalidInfo => (bytes.get(8..8 + declared as usize))
                    .and_then(inconsistent_tensor)
                    .map(|name| format!(": `{name}`'s byte range does not fit its shape and dtype"))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            Error::WeightsFormat(format!("safetensors: {e}{hint}"))
        })?;
        let base = 8 + header_len;
        let mut entries = BTreeMap::new();
        for (name, info) in meta.tensors() {
            let dtype = match info.dtype {
                safetensors::Dtype::F32 => DType::F32,
                safetensors::Dtype::F64 => DType::F64,
                safetensors::Dtype::F16 => DType::F16,
                safetensors::Dtype::BF16 => DType::BF16,
                safetensors::Dtype::I64 => DType::I64,
                safetensors::Dtype::I32 => DType::I32,
                safetensors::Dtype::I8 => DType::I8,
                _ => DType::Other,
            };
            let (start, end) = info.data_offsets;
            let storage = base + start..base + end;
            if storage.end > bytes.len() {
                return Err(Error::WeightsFormat(format!("safetensors: tensor `{name}` is truncated")));
            }
            let stride = contiguous_strides(&info.shape);
            entries.insert(name, Entry { dtype, shape: info.shape.clone(), storage, offset: 0, stride });
        }
        let metadata = meta.metadata().as_ref().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        Ok(Self { bytes, entries, format: Format::Safetensors, metadata: metadata.unwrap_or_default() })
    }
}

/// The largest safetensors header accepted: shipped checkpoints have headers under 256 KiB (the
/// format's own limit, 100 MB, would let a hostile header cost several times that to parse).
const MAX_SAFETENSORS_HEADER: u64 = 16 << 20;

/// Checks that a strided view of `shape` from element `offset` stays inside a storage of
/// `storage_len` bytes, in arithmetic that cannot overflow.
fn check_extent(
    name: &str,
    shape: &[usize],
    stride: &[usize],
    offset: usize,
    dtype: DType,
    storage_len: usize,
) -> Result<()> {
    let too_large = || Error::WeightsFormat(format!("tensor `{name}` has an impossible shape {shape:?}"));
    let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(too_large)?;
    if numel == 0 || dtype.size() == 0 {
        return Ok(());
    }
    // The furthest element: offset + Σ (n - 1) · stride, then its end in bytes.
    let end = shape
        .iter()
        .zip(stride)
        .try_fold(offset, |at, (&n, &s)| at.checked_add((n - 1).checked_mul(s)?))
        .and_then(|last| last.checked_add(1)?.checked_mul(dtype.size()));
    match end {
        Some(end) if end <= storage_len => Ok(()),
        _ => Err(Error::WeightsFormat(format!("tensor `{name}` reaches past the end of its storage"))),
    }
}

/// A safetensors file starts with the header's length (u64) and the header's JSON object.
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    bytes.len() >= 10 && bytes[8] == b'{' && u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) > 1
}

/// The first tensor of a safetensors header whose byte range is not shape × dtype (the
/// `safetensors` crate's error does not say which).
fn inconsistent_tensor(header: &[u8]) -> Option<String> {
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    header.into_iter().find_map(|(name, info)| {
        let dtype: safetensors::Dtype = serde_json::from_value(info.get("dtype")?.clone()).ok()?;
        let shape: Vec<usize> = serde_json::from_value(info.get("shape")?.clone()).ok()?;
        let [start, end]: [usize; 2] = serde_json::from_value(info.get("data_offsets")?.clone()).ok()?;
        let bits = shape.iter().try_fold(dtype.bitsize(), |n, &d| n.checked_mul(d));
        (bits != end.checked_sub(start).and_then(|len| len.checked_mul(8))).then_some(name)
    })
}

fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Finds the dict of tensors: the root itself, or a nested `state_dict` / `model` / `module` entry.
fn state_dict(root: Value) -> Result<Vec<(String, TensorRef)>> {
    fn tensors_of(items: &[(Value, Value)]) -> Vec<(String, TensorRef)> {
        items
            .iter()
            .filter_map(|(k, v)| match (k, v) {
                (Value::Str(k), Value::Tensor(t)) => {
                    Some((k.strip_prefix("module.").unwrap_or(k).to_string(), t.clone()))
                }
                _ => None,
            })
            .collect()
    }
    let Value::Dict(items) = root else {
        return Err(Error::WeightsFormat("the checkpoint's root object is not a dict of tensors".into()));
    };
    let direct = tensors_of(&items);
    if !direct.is_empty() {
        return Ok(direct);
    }
    for key in ["state_dict", "model", "module", "model_state_dict"] {
        for (k, v) in &items {
            if let (Value::Str(k), Value::Dict(inner)) = (k, v)
                && k == key
            {
                let nested = tensors_of(inner);
                if !nested.is_empty() {
                    return Ok(nested);
                }
            }
        }
    }
    Err(Error::WeightsFormat("the checkpoint holds no tensors (expected a state dict)".into()))
}
