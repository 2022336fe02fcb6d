//! Checkpoint containers: PyTorch zip files (`.pt`, `.pth`, `.bin`) and safetensors, read as a
//! stream by [`super::stream::WeightsReader`] (the same code for files natively and for
//! `ArrayBuffer`s and downloads in the browser): each tensor's bytes are converted as they
//! arrive, and a tensor's values are released when a reader takes them.

use std::collections::BTreeMap;

use super::pickle::{DType, TensorRef, Value};
use crate::error::{Error, Result};

/// One tensor of a checkpoint: a view into one of its parts.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) dtype: DType,
    pub(super) shape: Vec<usize>,
    /// Index of the part (a storage, or a safetensors tensor's bytes) holding the values.
    pub(super) part: usize,
    /// Offset of the first element inside the part, in elements.
    pub(super) offset: usize,
    pub(super) stride: Vec<usize>,
    /// CRC-32 of the stored bytes, for a safetensors tensor of a file that lists checksums.
    pub(super) crc: Option<u32>,
}

/// The values of a storage as they arrived: floats converted to `f32` on the way, other types
/// as their bytes; `Gone` once every tensor viewing it was taken.
#[derive(Debug)]
pub(super) enum Part {
    F32(Vec<f32>),
    Raw(Vec<u8>),
    Gone,
}

/// The container a checkpoint was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `torch.save` zip archive (PyTorch ≥ 1.6): `.pt`, `.pth`, `.bin`.
    PytorchZip,
    /// Hugging Face safetensors.
    Safetensors,
}

/// A read checkpoint: tensor names, shapes and their values (converted to `f32` as they were
/// read, for float tensors); [`Checkpoint::take_f32`] hands a tensor's values over and releases
/// them, so that a model built from a checkpoint never holds the checkpoint and the model whole.
pub struct Checkpoint {
    pub(super) parts: Vec<Part>,
    /// How many entries still view each part.
    pub(super) users: Vec<usize>,
    pub(super) entries: BTreeMap<String, Entry>,
    pub(super) format: Format,
    /// A safetensors file's `__metadata__` (string to string).
    pub(super) metadata: BTreeMap<String, String>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint").field("format", &self.format).field("tensors", &self.entries.len()).finish()
    }
}

impl Checkpoint {
    /// Reads a checkpoint from its bytes, detecting its container (the streaming reader, fed
    /// the bytes at once).
    pub fn from_bytes(bytes: impl AsRef<[u8]>) -> Result<Self> {
        let mut reader = super::WeightsReader::with_size(Some(bytes.as_ref().len() as u64));
        reader.push(bytes.as_ref())?;
        Ok(reader.finish()?.0)
    }

    /// A safetensors file's `__metadata__` (empty for PyTorch checkpoints and files without it).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
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

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.entries.get(name).ok_or_else(|| Error::WeightsMismatch(format!("missing tensor `{name}`")))
    }

    /// Converts a tensor to row-major `f32`, leaving it in the checkpoint.
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>> {
        let e = self.entry(name)?;
        if !e.dtype.is_float() {
            return Err(Error::WeightsMismatch(format!(
                "tensor `{name}` has dtype {:?}, expected a float type",
                e.dtype
            )));
        }
        let past_end = || Error::WeightsFormat(format!("tensor `{name}` reaches past the end of its storage"));
        match &self.parts[e.part] {
            Part::F32(values) => match contiguous(e) {
                Some(range) => Ok(values.get(range).ok_or_else(past_end)?.to_vec()),
                None => Self::read_strided(e, |i| values.get(i).copied().ok_or_else(past_end)),
            },
            Part::Raw(bytes) => {
                let size = e.dtype.size();
                match contiguous(e) {
                    Some(range) => {
                        let end = range.end.checked_mul(size);
                        let stored = end.and_then(|end| bytes.get(range.start * size..end)).ok_or_else(past_end)?;
                        let mut out = Vec::with_capacity(range.len());
                        e.dtype.decode_f32_into(stored, &mut out);
                        Ok(out)
                    }
                    None => Self::read_strided(e, |i| {
                        let b = bytes.get(i * size..(i + 1) * size).ok_or_else(past_end)?;
                        Ok(e.dtype.decode_f32(b))
                    }),
                }
            }
            Part::Gone => Err(taken(name)),
        }
    }

    /// Reads an `int8` tensor (row-major), leaving it in the checkpoint.
    pub fn read_i8(&self, name: &str) -> Result<Vec<i8>> {
        self.read_elements(name, DType::I8, |[b]| b as i8)
    }

    /// Reads a `uint8` tensor (row-major: a compact file's bit-packed values), leaving it in the
    /// checkpoint.
    pub fn read_u8(&self, name: &str) -> Result<Vec<u8>> {
        self.read_elements(name, DType::U8, |[b]| b)
    }

    /// Reads an `int32` tensor (row-major: a compact file's indices), leaving it in the
    /// checkpoint.
    pub fn read_i32(&self, name: &str) -> Result<Vec<i32>> {
        self.read_elements(name, DType::I32, i32::from_le_bytes)
    }

    /// Reads a tensor of dtype `want` (refusing any other), of `N`-byte little-endian elements,
    /// each through `from`.
    fn read_elements<T, const N: usize>(&self, name: &str, want: DType, from: impl Fn([u8; N]) -> T) -> Result<Vec<T>> {
        let e = self.entry(name)?;
        if e.dtype != want {
            return Err(Error::WeightsMismatch(format!("tensor `{name}` has dtype {:?}, expected {want:?}", e.dtype)));
        }
        let past_end = || Error::WeightsFormat(format!("tensor `{name}` reaches past the end of its storage"));
        let element = |bytes: &[u8], i: usize| -> Option<T> {
            Some(from(bytes.get(i.checked_mul(N)?..(i + 1).checked_mul(N)?)?.try_into().ok()?))
        };
        match &self.parts[e.part] {
            Part::Raw(bytes) => match contiguous(e) {
                Some(range) => {
                    let stored = range.end.checked_mul(N).and_then(|end| bytes.get(range.start * N..end));
                    let stored = stored.ok_or_else(past_end)?;
                    Ok(stored.chunks_exact(N).map(|b| from(b.try_into().expect("N bytes"))).collect())
                }
                None => Self::read_strided(e, |i| element(bytes, i).ok_or_else(past_end)),
            },
            Part::F32(_) => unreachable!("only float storages are converted"),
            Part::Gone => Err(taken(name)),
        }
    }

    /// [`Checkpoint::read_f32`], handing the values over: the tensor's storage is released once
    /// no other tensor views it (moved out without a copy when the tensor is all of it).
    pub fn take_f32(&mut self, name: &str) -> Result<Vec<f32>> {
        let e = self.entry(name)?;
        let numel: usize = e.shape.iter().product();
        let (part, whole) = (e.part, contiguous(e) == Some(0..numel));
        if e.dtype.is_float()
            && self.users[part] == 1
            && whole
            && matches!(&self.parts[part], Part::F32(v) if v.len() == numel)
        {
            let Part::F32(values) = std::mem::replace(&mut self.parts[part], Part::Gone) else { unreachable!() };
            self.users[part] = 0;
            return Ok(values);
        }
        let out = self.read_f32(name);
        if out.is_ok() {
            self.release(part);
        }
        out
    }

    /// [`Checkpoint::read_i8`], releasing the storage once no other tensor views it.
    pub fn take_i8(&mut self, name: &str) -> Result<Vec<i8>> {
        let out = self.read_i8(name);
        self.release_after(name, out)
    }

    /// [`Checkpoint::read_u8`], releasing the storage once no other tensor views it.
    pub fn take_u8(&mut self, name: &str) -> Result<Vec<u8>> {
        let out = self.read_u8(name);
        self.release_after(name, out)
    }

    /// [`Checkpoint::read_i32`], releasing the storage once no other tensor views it.
    pub fn take_i32(&mut self, name: &str) -> Result<Vec<i32>> {
        let out = self.read_i32(name);
        self.release_after(name, out)
    }

    /// `out` (read from tensor `name`), its storage released when the read succeeded.
    fn release_after<T>(&mut self, name: &str, out: Result<T>) -> Result<T> {
        if out.is_ok() {
            let part = self.entries[name].part;
            self.release(part);
        }
        out
    }

    /// One viewer of `part` fewer; its values are dropped when none is left.
    fn release(&mut self, part: usize) {
        self.users[part] = self.users[part].saturating_sub(1);
        if self.users[part] == 0 {
            self.parts[part] = Part::Gone;
        }
    }

    /// The CRC-32 of a safetensors tensor's stored bytes, for a file that lists checksums
    /// (a compact file), computed as the bytes streamed by.
    pub(crate) fn crc32(&self, name: &str) -> Option<u32> {
        self.entries.get(name).and_then(|e| e.crc)
    }

    /// The dtype of a tensor.
    pub(crate) fn dtype(&self, name: &str) -> Option<DType> {
        self.entries.get(name).map(|e| e.dtype)
    }

    /// Reads the elements of a strided (not [`contiguous`]) `e` in row-major order with
    /// `read(element index in storage)`, one element at a time.
    fn read_strided<T>(e: &Entry, read: impl Fn(usize) -> Result<T>) -> Result<Vec<T>> {
        let numel: usize = e.shape.iter().product();
        let mut out = Vec::with_capacity(numel);
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
        Ok(out)
    }
}

/// The elements of `e` in its storage, when they lie there in row-major order one after the
/// other (the tensors of safetensors and compact files, most of PyTorch's): a range of element
/// indices, read as a slice; `None` for a strided view.
fn contiguous(e: &Entry) -> Option<std::ops::Range<usize>> {
    let numel: usize = e.shape.iter().product();
    if numel == 0 {
        return Some(0..0);
    }
    let dense = e.stride == contiguous_strides(&e.shape) || e.shape.len() <= 1 && e.stride.iter().all(|&s| s == 1);
    dense.then(|| e.offset..e.offset.saturating_add(numel))
}

fn taken(name: &str) -> Error {
    Error::WeightsMismatch(format!("tensor `{name}` is used twice (its values were already handed over)"))
}

/// The tensors of a `torch.save` pickle, checked against their storages (`storages`: key →
/// part index and length in bytes): the entries of a checkpoint read from a zip archive.
pub(super) fn zip_entries(
    dict: Vec<(String, TensorRef)>,
    storages: &BTreeMap<String, (usize, usize)>,
) -> Result<BTreeMap<String, Entry>> {
    let mut entries = BTreeMap::new();
    for (name, t) in dict {
        let TensorRef { storage, dtype, offset, shape, stride, .. } = t;
        let &(part, len) = storages.get(&storage).ok_or_else(|| {
            Error::WeightsFormat(format!("tensor `{name}` points at missing storage `{storage}` (truncated archive?)"))
        })?;
        if shape.len() != stride.len() {
            return Err(Error::WeightsFormat(format!("tensor `{name}` has shape {shape:?} but strides {stride:?}")));
        }
        check_extent(&name, &shape, &stride, offset, dtype, len)?;
        entries.insert(name, Entry { dtype, shape, part, offset, stride, crc: None });
    }
    Ok(entries)
}

/// The largest safetensors header accepted: shipped checkpoints have headers under 256 KiB (the
/// format's own limit, 100 MB, would let a hostile header cost several times that to parse).
pub(super) const MAX_SAFETENSORS_HEADER: u64 = 16 << 20;

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
pub(super) fn looks_like_safetensors(bytes: &[u8]) -> bool {
    bytes.len() >= 10 && bytes[8] == b'{' && u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) > 1
}

pub(super) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Finds the dict of tensors: the root itself, or a nested `state_dict` / `model` / `module` entry.
pub(super) fn state_dict(root: Value) -> Result<Vec<(String, TensorRef)>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each integer reader takes its own dtype and names the one it found otherwise (a compact
    /// file's `I8` values, bit-packed `U8` bytes, `I32` indices).
    #[test]
    fn integer_readers_take_only_their_dtype() {
        use safetensors::{Dtype, tensor::TensorView};
        let (i8s, u8s) = ([0xffu8, 1, 0x80], [0xffu8, 1, 0x80]);
        let i32s: Vec<u8> = [-2i32, 70000].iter().flat_map(|v| v.to_le_bytes()).collect();
        let views = [
            ("a", TensorView::new(Dtype::I8, vec![3], &i8s).unwrap()),
            ("b", TensorView::new(Dtype::U8, vec![3], &u8s).unwrap()),
            ("c", TensorView::new(Dtype::I32, vec![2], &i32s).unwrap()),
        ];
        let ckpt = Checkpoint::from_bytes(safetensors::serialize(views, None).unwrap()).unwrap();
        assert_eq!(ckpt.read_i8("a").unwrap(), [-1, 1, -128]);
        assert_eq!(ckpt.read_u8("b").unwrap(), [255, 1, 128]);
        assert_eq!(ckpt.read_i32("c").unwrap(), [-2, 70000]);
        let refused = |r: Result<Vec<u8>>| r.map(|_| ()).unwrap_err().to_string();
        assert!(refused(ckpt.read_u8("a")).contains("has dtype I8, expected U8"));
        assert!(ckpt.read_i8("b").unwrap_err().to_string().contains("has dtype U8, expected I8"));
        assert!(ckpt.read_i32("a").unwrap_err().to_string().contains("expected I32"));
    }
}
