//! [`WeightsReader`]: reads a weights file (a PyTorch zip checkpoint, safetensors, or a compact
//! file) from a stream of byte chunks into a [`Checkpoint`], never holding the file: each
//! tensor's bytes are converted (floats to `f32`) into their own buffer as they arrive, and only
//! headers are buffered. Files natively, `ArrayBuffer`s, `Blob`s and downloads in the browser
//! all go through it.
//!
//! - safetensors: the header, then the tensors in the order of their bytes.
//! - PyTorch zip (`torch.save`): entries in file order through their local headers, each
//!   checked against its CRC-32. `torch.save` writes sizes in data descriptors after each
//!   entry; `data.pkl` (first in the archive) gives every storage's length, so a storage is
//!   converted as it streams and its descriptor checked after it. Entries whose length nothing
//!   gives in advance (`data.pkl` itself, the small bookkeeping entries, a storage that comes
//!   before `data.pkl`) are buffered until their data descriptor is found (its signature, size
//!   and CRC-32 all matching); a storage buffered that way is kept as bytes and converted when
//!   read. Compressed entries are refused (`torch.save` stores). The central directory at the
//!   end is checked against the entries read.

use std::collections::BTreeMap;

use super::checkpoint::{self, Checkpoint, Entry, Format, Part};
use super::pickle::{self, DType};
use crate::error::{Error, Result};

/// Bytes an entry of unknown length (or the central directory) takes into the buffer per step.
const SCAN_STEP: usize = 64 << 10;

const LOCAL: &[u8; 4] = b"PK\x03\x04";
const CENTRAL: &[u8; 4] = b"PK\x01\x02";
const DESCRIPTOR: &[u8; 4] = b"PK\x07\x08";
/// The most bytes kept for the central directory and end records.
const MAX_TAIL: usize = 64 << 20;

/// Reads weights from chunks: [`WeightsReader::push`] each chunk in order, then
/// [`WeightsReader::finish`]. Any error is final (the reader is then spent).
pub struct WeightsReader {
    sha: sha2::Sha256,
    /// Bytes received.
    seen: u64,
    /// Bytes taken by the parser (into the buffer or a fill).
    consumed: u64,
    /// Where in the file the buffer's first byte is.
    buf_at: u64,
    /// Bytes of a header (or of an entry of unknown length) not yet parsed.
    buf: Vec<u8>,
    state: State,
    /// The tensor or storage whose bytes are arriving.
    fill: Option<Fill>,
    parts: Vec<Part>,
    /// Length in bytes of each part as stored.
    part_bytes: Vec<usize>,
    entries: BTreeMap<String, Entry>,
    metadata: BTreeMap<String, String>,
    zip: ZipBook,
    /// The most bytes reserved ahead for one tensor: the file's size when known (a header
    /// cannot make the reader reserve more than the file could fill), else [`RESERVE`].
    reserve: usize,
    /// The most bytes the buffer held (its test: one large push is not buffered whole).
    #[cfg(test)]
    peak_buf: usize,
}

/// The most bytes reserved ahead for one tensor when the file's size is unknown (beyond it, a
/// tensor's buffer grows as its bytes arrive).
const RESERVE: usize = 256 << 20;

enum State {
    /// Before the first 10 bytes.
    Detect,
    StHeader,
    /// Tensors by offset: (name, dtype, shape, bytes); the next is `next`.
    StData {
        order: Vec<(String, DType, Vec<usize>, usize)>,
        next: usize,
        crc: bool,
    },
    ZipHeader,
    /// An entry of unknown length: buffered until its data descriptor; `scanned` bytes of the
    /// buffer were searched.
    ZipScan {
        name: String,
        scanned: usize,
    },
    /// After an entry of known length whose sizes are in a data descriptor.
    ZipDescriptor {
        name: String,
        len: usize,
        crc: u32,
    },
    /// The central directory and end records, buffered.
    ZipTail,
}

/// What the zip archive told so far.
#[derive(Default)]
struct ZipBook {
    /// The tensors of `data.pkl` once it was read.
    dict: Option<Vec<(String, pickle::TensorRef)>>,
    /// Storage key → (dtype, length in elements), from `data.pkl`.
    lengths: BTreeMap<String, (DType, usize)>,
    /// Storage key → (part, length in bytes).
    storages: BTreeMap<String, (usize, usize)>,
    /// Entries read: name → (CRC-32, length, offset of the local header).
    read: BTreeMap<String, (u32, usize, u64)>,
    /// Offset of the local header of the entry being read.
    at: u64,
}

/// The bytes of one tensor or storage arriving into part `part`.
struct Fill {
    /// `tensor `x`` or `zip entry `y``, for messages.
    what: String,
    part: usize,
    /// Converted to `f32` when a float type; kept as bytes otherwise.
    dtype: DType,
    len: usize,
    done: usize,
    /// The bytes of an element split between two chunks.
    carry: Vec<u8>,
    crc: Option<crc32fast::Hasher>,
    then: AfterFill,
}

enum AfterFill {
    /// The next safetensors tensor; its CRC-32 is the entry's.
    StNext(String),
    /// A zip entry: check its CRC-32 against the header's, or read its data descriptor.
    Zip { name: String, header_crc: Option<u32> },
}

impl Default for WeightsReader {
    fn default() -> Self {
        Self::new()
    }
}

impl WeightsReader {
    /// A reader waiting for the first bytes.
    pub fn new() -> Self {
        Self::with_size(None)
    }

    /// A reader for a file of `size` bytes when known (a download's `Content-Length`, a
    /// `Blob`'s size): no tensor's buffer is reserved larger than the file.
    pub fn with_size(size: Option<u64>) -> Self {
        Self {
            reserve: size.map_or(RESERVE, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            #[cfg(test)]
            peak_buf: 0,
            sha: sha2::Digest::new(),
            seen: 0,
            consumed: 0,
            buf_at: 0,
            buf: Vec::new(),
            state: State::Detect,
            fill: None,
            parts: Vec::new(),
            part_bytes: Vec::new(),
            entries: BTreeMap::new(),
            metadata: BTreeMap::new(),
            zip: ZipBook::default(),
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.seen
    }

    /// Reads the next chunk of the file.
    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        sha2::Digest::update(&mut self.sha, chunk);
        self.seen += chunk.len() as u64;
        let mut data = chunk;
        while !data.is_empty() {
            // A tensor's bytes go straight into its buffer; headers and entries of unknown
            // length go through the parser's buffer, which takes at most what the next header
            // needs or SCAN_STEP (see `parse`), however large the chunk (a whole file pushed at
            // once).
            let n = if self.fill.is_some() { self.fill_from(data)? } else { self.parse(data)?.0 };
            self.consumed += n as u64;
            data = &data[n..];
        }
        // Headers completed by this chunk, with nothing more to read.
        while self.fill.is_none() && self.parse(&[])?.1 {}
        Ok(())
    }

    /// Ends the stream: the checkpoint read, and the sha256 of all its bytes. A stream that
    /// ends early is `INVALID_WEIGHTS` naming the tensor or entry it ended in.
    pub fn finish(mut self) -> Result<(Checkpoint, [u8; 32])> {
        let truncated = |what: &str| Error::WeightsFormat(format!("the file ends inside {what}: is it truncated?"));
        if let Some(f) = &self.fill {
            return Err(Error::WeightsFormat(format!(
                "the file ends inside {} ({} of its {} bytes): is it truncated?",
                f.what, f.done, f.len
            )));
        }
        let format = match &self.state {
            State::Detect if self.seen == 0 => return Err(Error::WeightsFormat("the weights file is empty".into())),
            State::Detect => return Err(unrecognised(self.seen)),
            State::StHeader => {
                return Err(Error::WeightsFormat(
                    "safetensors: invalid header length: the file ends inside its header (is the file truncated?)"
                        .into(),
                ));
            }
            State::StData { order, next, .. } if *next < order.len() => {
                return Err(truncated(&format!("tensor `{}`", order[*next].0)));
            }
            State::StData { .. } => Format::Safetensors,
            State::ZipHeader if self.buf.is_empty() && self.zip.read.is_empty() => {
                return Err(truncated("the first zip entry"));
            }
            State::ZipHeader => {
                return Err(Error::WeightsFormat(
                    "PyTorch zip checkpoint: the file ends before its central directory (is the file truncated?)"
                        .into(),
                ));
            }
            State::ZipScan { name, .. } | State::ZipDescriptor { name, .. } => {
                return Err(truncated(&format!("zip entry `{name}`")));
            }
            State::ZipTail => {
                self.check_central_directory()?;
                Format::PytorchZip
            }
        };
        if format == Format::PytorchZip {
            let dict = self.zip.dict.take().ok_or_else(|| {
                Error::WeightsFormat("zip archive has no data.pkl: not a torch.save checkpoint".into())
            })?;
            self.entries = checkpoint::zip_entries(dict, &self.zip.storages)?;
        }
        let mut users = vec![0; self.parts.len()];
        for e in self.entries.values() {
            users[e.part] += 1;
        }
        // Storages no tensor views are not kept.
        for (part, n) in self.parts.iter_mut().zip(&users) {
            if *n == 0 {
                *part = Part::Gone;
            }
        }
        let ckpt = Checkpoint { parts: self.parts, users, entries: self.entries, format, metadata: self.metadata };
        Ok((ckpt, sha2::Digest::finalize(self.sha).into()))
    }

    /// Feeds `data` to the fill in progress; returns the bytes used.
    fn fill_from(&mut self, data: &[u8]) -> Result<usize> {
        let f = self.fill.as_mut().expect("a fill");
        let n = data.len().min(f.len - f.done);
        let piece = &data[..n];
        if let Some(h) = &mut f.crc {
            let c = crc32fast::Hasher::new_with_initial_len(super::crc32::crc32(piece), n as u64);
            h.combine(&c);
        }
        match &mut self.parts[f.part] {
            Part::F32(values) => {
                let size = f.dtype.size();
                let mut piece = piece;
                if !f.carry.is_empty() {
                    let k = (size - f.carry.len()).min(piece.len());
                    f.carry.extend_from_slice(&piece[..k]);
                    piece = &piece[k..];
                    if f.carry.len() == size {
                        values.push(f.dtype.decode_f32(&f.carry));
                        f.carry.clear();
                    }
                }
                let whole = piece.len() / size * size;
                f.dtype.decode_f32_into(&piece[..whole], values);
                f.carry.extend_from_slice(&piece[whole..]);
            }
            Part::Raw(bytes) => bytes.extend_from_slice(piece),
            Part::Gone => unreachable!("a part being filled"),
        }
        f.done += n;
        if f.done == f.len {
            let f = self.fill.take().expect("a fill");
            let crc = f.crc.map(crc32fast::Hasher::finalize);
            match f.then {
                AfterFill::StNext(name) => {
                    if let Some(e) = self.entries.get_mut(&name) {
                        e.crc = crc;
                    }
                }
                AfterFill::Zip { name, header_crc } => {
                    let crc = crc.expect("zip entries are checked");
                    match header_crc {
                        Some(want) => {
                            self.zip_entry_done(&name, f.len, crc, want)?;
                            if is_pkl(&name) {
                                let Part::Raw(bytes) = std::mem::replace(&mut self.parts[f.part], Part::Gone) else {
                                    unreachable!("data.pkl is kept as bytes")
                                };
                                self.read_pkl(&name, &bytes)?;
                            }
                        }
                        None => self.state = State::ZipDescriptor { name, len: f.len, crc },
                    }
                }
            }
        }
        Ok(n)
    }

    /// Starts reading `len` bytes of `dtype` into a new part (its index), with their CRC-32 when
    /// `crc`; `then` says what follows.
    fn open_fill(&mut self, what: String, dtype: DType, len: usize, crc: bool, then: AfterFill) -> usize {
        let part = self.new_part(dtype, len);
        let crc = crc.then(crc32fast::Hasher::new);
        self.fill = Some(Fill { what, part, dtype, len, done: 0, carry: Vec::new(), crc, then });
        part
    }

    /// Adds a part for `len` bytes of `dtype` (converted to `f32` when a float type).
    fn new_part(&mut self, dtype: DType, len: usize) -> usize {
        let size = dtype.size();
        let part = if dtype.is_float() && len.is_multiple_of(size) {
            Part::F32(Vec::with_capacity(len.min(self.reserve) / size))
        } else {
            Part::Raw(Vec::with_capacity(len.min(self.reserve)))
        };
        self.parts.push(part);
        self.part_bytes.push(len);
        self.parts.len() - 1
    }

    /// Parses headers from the buffer and `data`: the bytes of `data` taken into the buffer
    /// (what the next step needs, or all for a step that buffers), and whether a step was made.
    fn parse(&mut self, data: &[u8]) -> Result<(usize, bool)> {
        let mut taken = 0;
        // What a step needs can grow as the buffer fills (a zip header's name and extra field).
        loop {
            let need = self.need();
            let take = match need {
                Some(need) => need.saturating_sub(self.buf.len()).min(data.len() - taken),
                // What the buffer holds is scanned before more is taken, and then at most
                // SCAN_STEP: the rest of a large chunk is not copied into the buffer (and out
                // again at each following entry: quadratic in the chunk).
                None if matches!(self.state, State::ZipScan { scanned, .. } if scanned + 24 <= self.buf.len()) => 0,
                None => (data.len() - taken).min(SCAN_STEP),
            };
            self.buf.extend_from_slice(&data[taken..taken + take]);
            taken += take;
            #[cfg(test)]
            {
                self.peak_buf = self.peak_buf.max(self.buf.len());
            }
            match need {
                Some(need) if self.buf.len() < need => return Ok((taken, false)),
                Some(_) if self.need() != need => continue,
                _ => {
                    self.buf_at = self.consumed + taken as u64 - self.buf.len() as u64;
                    return Ok((taken, self.step()?));
                }
            }
        }
    }

    /// Bytes the buffer must hold for the next step (`None`: whatever arrives).
    fn need(&self) -> Option<usize> {
        let u16_at = |at: usize| u16::from_le_bytes([self.buf[at], self.buf[at + 1]]) as usize;
        match &self.state {
            State::Detect => Some(10),
            State::StHeader => {
                if self.buf.len() < 8 {
                    Some(8)
                } else {
                    let n = u64::from_le_bytes(self.buf[..8].try_into().expect("8"));
                    // a header over the limit is refused as soon as its length is read
                    Some(if n > checkpoint::MAX_SAFETENSORS_HEADER { 8 } else { 8 + n as usize })
                }
            }
            State::StData { order, next, .. } => (*next < order.len()).then_some(0),
            State::ZipHeader if self.buf.len() < 4 => Some(4),
            State::ZipHeader if self.buf[..4] != LOCAL[..] => None,
            State::ZipHeader if self.buf.len() < 30 => Some(30),
            State::ZipHeader => Some(30 + u16_at(26) + u16_at(28)),
            // Read ahead: bytes past the descriptor stay in the buffer for the next header.
            State::ZipDescriptor { .. } if self.buf.len() < 16 => Some(16),
            State::ZipDescriptor { .. } if self.buf[..4] != DESCRIPTOR[..] || self.descriptor_sizes(8, 4) => Some(16),
            State::ZipDescriptor { .. } => Some(24),
            State::ZipScan { .. } | State::ZipTail => None,
        }
    }

    /// Whether the buffer's descriptor at `at` has both sizes equal to the entry's length,
    /// `width` bytes each.
    fn descriptor_sizes(&self, at: usize, width: usize) -> bool {
        let State::ZipDescriptor { len, .. } = &self.state else { return false };
        let read = |at: usize| -> Option<u64> {
            let b = self.buf.get(at..at + width)?;
            Some(if width == 4 {
                u32::from_le_bytes(b.try_into().ok()?) as u64
            } else {
                u64::from_le_bytes(b.try_into().ok()?)
            })
        };
        read(at) == Some(*len as u64) && read(at + width) == Some(*len as u64)
    }

    /// Handles what the buffer holds; returns whether the state moved on.
    fn step(&mut self) -> Result<bool> {
        match std::mem::replace(&mut self.state, State::Detect) {
            State::Detect => {
                if self.buf.starts_with(LOCAL) {
                    self.state = State::ZipHeader;
                } else if checkpoint::looks_like_safetensors(&self.buf) {
                    self.state = State::StHeader;
                } else {
                    return Err(unrecognised(self.seen));
                }
                Ok(true)
            }
            State::StHeader => {
                let declared = u64::from_le_bytes(self.buf[..8].try_into().expect("8"));
                if declared > checkpoint::MAX_SAFETENSORS_HEADER {
                    return Err(Error::WeightsFormat(format!(
                        "safetensors header of {declared} bytes is larger than the {} MiB allowed",
                        checkpoint::MAX_SAFETENSORS_HEADER >> 20
                    )));
                }
                let header = std::mem::take(&mut self.buf);
                self.state = self.safetensors_header(&header[8..])?;
                Ok(true)
            }
            State::StData { order, next, crc } => {
                if next == order.len() {
                    // Nothing may follow the last tensor.
                    let extra = self.buf.len();
                    self.state = State::StData { order, next, crc };
                    if extra > 0 {
                        return Err(Error::WeightsFormat(format!(
                            "safetensors: {extra} bytes follow the last tensor (not a safetensors file, or two joined)"
                        )));
                    }
                    return Ok(false);
                }
                let (name, dtype, _, len) = order[next].clone();
                let part = self.open_fill(format!("tensor `{name}`"), dtype, len, crc, AfterFill::StNext(name.clone()));
                if let Some(e) = self.entries.get_mut(&name) {
                    e.part = part;
                }
                self.state = State::StData { order, next: next + 1, crc };
                // The header's leftover bytes belong to the data.
                let rest = std::mem::take(&mut self.buf);
                self.feed_rest(&rest)?;
                Ok(true)
            }
            State::ZipHeader => self.zip_header(),
            State::ZipScan { name, scanned } => self.zip_scan(name, scanned),
            State::ZipDescriptor { name, len, crc } => {
                self.state = State::ZipDescriptor { name: name.clone(), len, crc };
                let (at, width, used) = if self.buf[..4] != DESCRIPTOR[..] {
                    (4, 4, 12) // the signature is optional
                } else if self.descriptor_sizes(8, 4) {
                    (8, 4, 16)
                } else {
                    (8, 8, 24)
                };
                let stored_crc = u32::from_le_bytes(self.buf[at - 4..at].try_into().expect("4"));
                if !self.descriptor_sizes(at, width) {
                    return Err(Error::WeightsFormat(format!(
                        "zip entry `{name}`: its data descriptor does not give its length ({len} bytes)"
                    )));
                }
                self.buf.drain(..used);
                self.state = State::ZipHeader;
                self.zip_entry_done(&name, len, crc, stored_crc)?;
                Ok(true)
            }
            State::ZipTail => {
                self.state = State::ZipTail;
                if self.buf.len() > MAX_TAIL {
                    return Err(Error::WeightsFormat(
                        "PyTorch zip checkpoint: its central directory is too large".into(),
                    ));
                }
                Ok(false)
            }
        }
    }

    /// Bytes read past a header that belong to the fill opened after it.
    fn feed_rest(&mut self, rest: &[u8]) -> Result<()> {
        let mut data = rest;
        while !data.is_empty() {
            if self.fill.is_some() {
                let n = self.fill_from(data)?;
                data = &data[n..];
            } else {
                self.buf.extend_from_slice(data);
                break;
            }
        }
        Ok(())
    }

    /// Parses a safetensors header (the JSON after its length).
    fn safetensors_header(&mut self, json: &[u8]) -> Result<State> {
        let bad = |msg: String| Error::WeightsFormat(format!("safetensors: {msg}"));
        let json = std::str::from_utf8(json).map_err(|e| bad(format!("invalid UTF-8 in header ({e})")))?;
        let invalid = |e: serde_json::Error| bad(format!("invalid JSON in header: {e}"));
        let header: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).map_err(invalid)?;
        let mut order = Vec::new();
        for (name, info) in header {
            if name == "__metadata__" {
                let meta: BTreeMap<String, String> = serde_json::from_value(info)
                    .map_err(|e| bad(format!("its __metadata__ is not a map of strings ({e})")))?;
                self.metadata = meta;
                continue;
            }
            let field = |key: &str| info.get(key).cloned().ok_or_else(|| bad(format!("tensor `{name}` has no {key}")));
            let st: safetensors::Dtype = serde_json::from_value(field("dtype")?).map_err(invalid)?;
            let shape: Vec<usize> = serde_json::from_value(field("shape")?).map_err(invalid)?;
            let [start, end]: [usize; 2] = serde_json::from_value(field("data_offsets")?).map_err(invalid)?;
            let bits = shape.iter().try_fold(st.bitsize(), |n, &d| n.checked_mul(d));
            if bits.is_none() {
                return Err(bad(format!("tensor `{name}`'s shape {shape:?} overflows")));
            }
            if end < start || bits != (end - start).checked_mul(8) {
                return Err(bad(format!("`{name}`'s byte range does not fit its shape and dtype")));
            }
            let dtype = match st {
                safetensors::Dtype::F32 => DType::F32,
                safetensors::Dtype::F64 => DType::F64,
                safetensors::Dtype::F16 => DType::F16,
                safetensors::Dtype::BF16 => DType::BF16,
                safetensors::Dtype::I64 => DType::I64,
                safetensors::Dtype::I32 => DType::I32,
                safetensors::Dtype::I8 => DType::I8,
                safetensors::Dtype::U8 => DType::U8,
                _ => DType::Other,
            };
            order.push((start, end, name, dtype, shape));
        }
        order.sort_by_key(|a| (a.0, a.1));
        let mut at = 0;
        for (start, end, name, ..) in &order {
            if *start != at {
                return Err(bad(format!("invalid offset: tensor `{name}`'s bytes overlap another's or leave a gap")));
            }
            at = *end;
        }
        let crc = self.metadata.get("format").is_some_and(|f| f.starts_with("mobileclip-wasm/"));
        let order: Vec<_> = order
            .into_iter()
            .map(|(start, end, name, dtype, shape)| {
                let stride = checkpoint::contiguous_strides(&shape);
                let entry = Entry { dtype, shape: shape.clone(), part: 0, offset: 0, stride, crc: None };
                self.entries.insert(name.clone(), entry);
                (name, dtype, shape, end - start)
            })
            .collect();
        Ok(State::StData { order, next: 0, crc })
    }

    /// A zip local header is in the buffer (or another record).
    fn zip_header(&mut self) -> Result<bool> {
        let sig: [u8; 4] = self.buf[..4].try_into().expect("4");
        if &sig != LOCAL {
            if &sig == CENTRAL || sig == *b"PK\x05\x06" || sig == *b"PK\x06\x06" {
                self.state = State::ZipTail;
                return Ok(true);
            }
            return Err(Error::WeightsFormat(format!(
                "PyTorch zip checkpoint: unexpected bytes after {} (is the file corrupted?)",
                self.zip.read.keys().last().map_or("its start".into(), |n| format!("entry `{n}`"))
            )));
        }
        self.zip.at = self.buf_at;
        let b = std::mem::take(&mut self.buf);
        let u16_at = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4"));
        let (flags, method, crc, csize) = (u16_at(6), u16_at(8), u32_at(14), u32_at(18));
        let (nlen, xlen) = (u16_at(26) as usize, u16_at(28) as usize);
        let name = String::from_utf8_lossy(&b[30..30 + nlen]).into_owned();
        let rest = b[30 + nlen + xlen..].to_vec();
        if method != 0 {
            return Err(Error::WeightsFormat(format!(
                "zip entry `{name}` is compressed; torch.save writes stored entries"
            )));
        }
        if self.zip.read.contains_key(&name) {
            return Err(Error::WeightsFormat(format!("zip entry `{name}` appears twice")));
        }
        // Its length: from the header, or (sizes in a data descriptor) a storage's from data.pkl.
        let mut len = (flags & 8 == 0).then_some(csize as usize);
        if len == Some(u32::MAX as usize) {
            len = zip64_size(&b[30 + nlen..30 + nlen + xlen]);
        }
        let header_crc = (flags & 8 == 0).then_some(crc);
        let key = storage_key(&name);
        let known = key.and_then(|k| self.zip.lengths.get(k)).copied();
        if len.is_none()
            && let Some((dtype, numel)) = known
        {
            len = numel.checked_mul(dtype.size());
        }
        match len {
            Some(len) => {
                let dtype = match (key, known) {
                    (Some(_), Some((dtype, numel))) if numel.checked_mul(dtype.size()) == Some(len) => dtype,
                    _ => DType::I8, // kept as bytes
                };
                let key = key.map(str::to_string);
                let what = format!("zip entry `{name}`");
                let part = self.open_fill(what, dtype, len, true, AfterFill::Zip { name, header_crc });
                if let Some(k) = key {
                    self.zip.storages.insert(k, (part, len));
                }
                self.state = State::ZipHeader;
                self.feed_rest(&rest)?;
            }
            None => {
                self.buf = rest;
                self.state = State::ZipScan { name, scanned: 0 };
            }
        }
        Ok(true)
    }

    /// Searches the buffered entry for its data descriptor: the signature, then a CRC-32 and
    /// sizes that fit the bytes before it.
    fn zip_scan(&mut self, name: String, scanned: usize) -> Result<bool> {
        let buf = &self.buf;
        let mut p = scanned;
        while p + 16 <= buf.len() {
            if buf[p..p + 4] == DESCRIPTOR[..] {
                let u32_at = |at: usize| u32::from_le_bytes(buf[at..at + 4].try_into().expect("4"));
                let u64_at = |at: usize| buf.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8")));
                let short = u32_at(p + 8) as usize == p && u32_at(p + 12) as usize == p;
                let long = u64_at(p + 8) == Some(p as u64) && u64_at(p + 16) == Some(p as u64);
                // A signature followed by the bytes' own length twice is the descriptor (a
                // CRC-32 that then differs is a corrupted entry).
                if short || long {
                    let used = if short { 16 } else { 24 };
                    let want = u32_at(p + 4);
                    let crc = super::crc32::crc32(&buf[..p]);
                    let tail = self.buf.split_off(p + used);
                    let mut bytes = std::mem::replace(&mut self.buf, tail);
                    bytes.truncate(p);
                    self.state = State::ZipHeader;
                    self.zip_bytes_done(&name, bytes, crc, want)?;
                    return Ok(true);
                }
                if !short && p + 24 > buf.len() {
                    break; // a zip64 descriptor may still complete
                }
            }
            p += 1;
        }
        self.state = State::ZipScan { name, scanned: p };
        Ok(false)
    }

    /// A buffered zip entry is complete: `data.pkl` is parsed, a storage kept as bytes.
    fn zip_bytes_done(&mut self, name: &str, bytes: Vec<u8>, crc: u32, want: u32) -> Result<()> {
        self.zip_entry_done(name, bytes.len(), crc, want)?;
        if is_pkl(name) {
            self.read_pkl(name, &bytes)?;
        } else if let Some(key) = storage_key(name) {
            let len = bytes.len();
            self.parts.push(Part::Raw(bytes));
            self.part_bytes.push(len);
            self.zip.storages.insert(key.to_string(), (self.parts.len() - 1, len));
        }
        Ok(())
    }

    /// Parses `data.pkl`: the tensors, and the length of each storage.
    fn read_pkl(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        if self.zip.dict.is_some() {
            return Err(Error::WeightsFormat("zip archive has two data.pkl entries".into()));
        }
        let root = pickle::parse(bytes).map_err(|e| match e {
            Error::WeightsFormat(msg) => Error::WeightsFormat(format!("zip entry `{name}`: {msg}")),
            other => other,
        })?;
        let dict = checkpoint::state_dict(root)?;
        for (_, t) in &dict {
            if let Some(n) = t.storage_len {
                self.zip.lengths.insert(t.storage.clone(), (t.dtype, n));
            }
        }
        self.zip.dict = Some(dict);
        Ok(())
    }

    /// Checks a zip entry's CRC-32 and books it.
    fn zip_entry_done(&mut self, name: &str, len: usize, crc: u32, want: u32) -> Result<()> {
        if crc != want {
            return Err(Error::WeightsFormat(format!(
                "zip entry `{name}` is corrupted (its CRC-32 is {crc:08x}, the archive says {want:08x}): \
                 download the file again"
            )));
        }
        self.zip.read.insert(name.to_string(), (crc, len, self.zip.at));
        Ok(())
    }

    /// The central directory must list the entries read, where they were read, with their
    /// CRC-32s; the end record must close the file.
    fn check_central_directory(&self) -> Result<()> {
        let b = &self.buf;
        let bad = |msg: String| Error::WeightsFormat(format!("PyTorch zip checkpoint: {msg}"));
        let truncated = || bad("its central directory is truncated (is the file truncated?)".into());
        let mut at = 0;
        let mut listed = 0;
        while b.get(at..at + 4) == Some(&CENTRAL[..]) {
            let rec = b.get(at..at + 46).ok_or_else(truncated)?;
            let u16_at = |i: usize| u16::from_le_bytes([rec[i], rec[i + 1]]) as usize;
            let u32_at = |i: usize| u32::from_le_bytes(rec[i..i + 4].try_into().expect("4"));
            let (crc, offset) = (u32_at(16), u32_at(42));
            let (nlen, xlen, clen) = (u16_at(28), u16_at(30), u16_at(32));
            let name = String::from_utf8_lossy(b.get(at + 46..at + 46 + nlen).ok_or_else(truncated)?);
            match self.zip.read.get(name.as_ref()) {
                // (a zip64 offset, 0xffffffff here, is in the extra field: not compared)
                Some(&(got, _, read_at)) if got == crc && (offset == u32::MAX || u64::from(offset) == read_at) => {}
                // at another entry read, or inside one
                _ if self
                    .zip
                    .read
                    .values()
                    .any(|&(_, len, start)| (start..start + len as u64 + 30).contains(&u64::from(offset))) =>
                {
                    return Err(bad(format!("its entries overlap (`{name}` points at another entry: a zip bomb?)")));
                }
                _ => return Err(bad(format!("its central directory lists `{name}` unlike the entry read"))),
            }
            listed += 1;
            at += 46 + nlen + xlen + clen;
        }
        if listed != self.zip.read.len() {
            return Err(bad(format!(
                "its central directory lists {listed} entries, {} were read (is the file truncated?)",
                self.zip.read.len()
            )));
        }
        // The end record (22 bytes and its comment) ends the file.
        let ends = (at..b.len().saturating_sub(21)).rev().any(|q| {
            b[q..q + 4] == b"PK\x05\x06"[..] && q + 22 + u16::from_le_bytes([b[q + 20], b[q + 21]]) as usize == b.len()
        });
        if !ends {
            return Err(bad("no end of central directory record (is the file truncated?)".into()));
        }
        Ok(())
    }
}

fn unrecognised(len: u64) -> Error {
    Error::WeightsFormat(format!(
        "unrecognised file ({len} bytes): expected a PyTorch zip checkpoint (.pt/.pth/.bin) or safetensors"
    ))
}

fn is_pkl(name: &str) -> bool {
    name.ends_with("/data.pkl") || name == "data.pkl"
}

/// The storage key of a zip entry `…/data/<key>`.
fn storage_key(name: &str) -> Option<&str> {
    name.rsplit_once("/data/").map(|(_, key)| key)
}

/// The compressed size in a local header's zip64 extra field.
fn zip64_size(extra: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at + 4 <= extra.len() {
        let id = u16::from_le_bytes([extra[at], extra[at + 1]]);
        let len = u16::from_le_bytes([extra[at + 2], extra[at + 3]]) as usize;
        if id == 1 && len >= 16 {
            let b = extra.get(at + 12..at + 20)?;
            return usize::try_from(u64::from_le_bytes(b.try_into().ok()?)).ok();
        }
        at += 4 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole checkpoint in one push (`MobileClip::from_bytes`): its entries of unknown length
    /// are buffered step by step, not the rest of the file at once (copied again at every
    /// following entry, that made loading a 215 MB checkpoint take minutes).
    #[test]
    fn one_large_push_is_not_buffered_whole() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/v1-mci-mct/model.pt");
        let bytes = std::fs::read(path).unwrap();
        assert!(bytes.len() > 4 * SCAN_STEP);
        let mut reader = WeightsReader::with_size(Some(bytes.len() as u64));
        reader.push(&bytes).unwrap();
        let peak = reader.peak_buf;
        let (ckpt, _) = reader.finish().unwrap();
        assert!(ckpt.len() > 100);
        assert!(peak <= 2 * SCAN_STEP, "buffered {peak} of the file's {} bytes at once", bytes.len());
    }
}
