//! A small pickle interpreter for the `data.pkl` inside PyTorch's zip checkpoints.
//!
//! `torch.save` writes the object graph as a pickle whose tensors point, through persistent ids,
//! at storages kept as separate zip entries. Only the opcodes and globals that `torch.save` emits
//! for state dicts (and dicts of state dicts) are understood; anything else becomes an opaque
//! [`Value::Object`] so that unrelated entries (optimizer state, training args) do not stop a load.
//!
//! Burn's own `pytorch-reader` reads from a file path only, and no maintained crate reads torch
//! pickles from memory, which the browser build needs: hence this module.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// Element type of a torch storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// 64-bit signed integer.
    I64,
    /// 32-bit signed integer.
    I32,
    /// 8-bit signed integer (the quantised tensors of compact model files).
    I8,
    /// 8-bit unsigned integer (the bit-packed values of compact model files).
    U8,
    /// Other integer or boolean types, kept so that the names can be reported.
    Other,
}

impl DType {
    /// Bytes per element (0 for [`DType::Other`], which is never read).
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::I8 | DType::U8 => 1,
            DType::Other => 0,
        }
    }

    /// Whether the type is a floating-point one (what [`DType::decode_f32`] reads).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
    }

    /// One little-endian element of a float type as `f32` (`bytes` holds [`DType::size`] bytes).
    pub fn decode_f32(self, b: &[u8]) -> f32 {
        match self {
            DType::F32 => f32::from_le_bytes(b.try_into().expect("4 bytes")),
            DType::F64 => f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32,
            DType::F16 => f16_to_f32(u16::from_le_bytes(b.try_into().expect("2 bytes"))),
            DType::BF16 => half::bf16::from_le_bytes(b.try_into().expect("2 bytes")).to_f32(),
            _ => panic!("decode_f32 of a non-float dtype"),
        }
    }

    /// Appends little-endian elements of a float type to `out` as `f32` ([`DType::decode_f32`]
    /// of each [`DType::size`] bytes, the type matched once rather than per element; a partial
    /// element at the end is ignored).
    pub fn decode_f32_into(self, bytes: &[u8], out: &mut Vec<f32>) {
        fn each<const N: usize>(bytes: &[u8], out: &mut Vec<f32>, f: impl Fn([u8; N]) -> f32) {
            out.extend(bytes.chunks_exact(N).map(|b| f(b.try_into().expect("N bytes"))));
        }
        match self {
            DType::F32 => each(bytes, out, f32::from_le_bytes),
            DType::F64 => each(bytes, out, |b| f64::from_le_bytes(b) as f32),
            DType::F16 => each(bytes, out, |b| f16_to_f32(u16::from_le_bytes(b))),
            DType::BF16 => each(bytes, out, |b| half::bf16::from_le_bytes(b).to_f32()),
            _ => panic!("decode_f32 of a non-float dtype"),
        }
    }

    fn from_storage_name(name: &str) -> DType {
        match name {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "CharStorage" => DType::I8,
            _ => DType::Other,
        }
    }
}

/// An IEEE half (its bits) as `f32`: exactly `half::f16::from_bits(bits).to_f32()`, bit for bit
/// (NaNs quietened as `half` does), but without branches, so that a loop over a slice of them
/// vectorises (SIMD128 in wasm; `half`'s software conversion, what wasm gets, tests each value).
///
/// The half's exponent and mantissa shifted into an `f32`'s place make an `f32` 2¹¹² times too
/// small (the exponents' biases differ by 112), and multiplying by 2¹¹² is exact: normal halves
/// and subnormal ones (an `f32` subnormal times 2¹¹² is normal) alike. Infinities and NaNs take
/// the all-ones exponent instead.
#[inline]
pub fn f16_to_f32(bits: u16) -> f32 {
    const POW2_112: u32 = (112 + 127) << 23;
    let sign = u32::from(bits & 0x8000) << 16;
    let abs = u32::from(bits & 0x7fff);
    let shifted = abs << 13;
    let finite = (f32::from_bits(shifted) * f32::from_bits(POW2_112)).to_bits();
    let quiet = if abs > 0x7c00 { 0x0040_0000 } else { 0 };
    let special = 0x7f80_0000 | shifted | quiet;
    f32::from_bits(sign | if abs >= 0x7c00 { special } else { finite })
}

/// A tensor as the pickle describes it: a view into a storage entry of the archive.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    /// The storage's key (the zip entry `data/<key>`).
    pub storage: String,
    /// The storage's length in elements, as its persistent id says (what lets a streamed archive
    /// know where the storage's entry ends before reading its data descriptor).
    pub storage_len: Option<usize>,
    /// Element type of the storage.
    pub dtype: DType,
    /// Offset of the first element, in elements.
    pub offset: usize,
    /// Shape of the view.
    pub shape: Vec<usize>,
    /// Strides of the view, in elements.
    pub stride: Vec<usize>,
}

/// A decoded pickle value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Python `None`.
    None,
    /// Python `bool`.
    Bool(bool),
    /// Python `int` (values beyond i64 are not needed for checkpoints).
    Int(i64),
    /// Python `float`.
    Float(f64),
    /// Python `str`.
    Str(String),
    /// Python `bytes`.
    Bytes(Vec<u8>),
    /// Python `tuple`.
    Tuple(Vec<Value>),
    /// Python `list`.
    List(Vec<Value>),
    /// Python `dict` / `OrderedDict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A reference to a global (`module.name`).
    Global(String, String),
    /// A storage from a persistent id: its key, element type and length in elements (when the
    /// id says it).
    Storage(String, DType, Option<usize>),
    /// A rebuilt tensor.
    Tensor(TensorRef),
    /// Anything else, kept opaque.
    Object,
}

/// The deepest nesting of containers accepted. `torch.save` state dicts nest a few levels (a dict
/// of dicts of tensors); the limit keeps a hostile pickle (a list nested a million levels deep)
/// from overflowing the stack when the value is dropped or cloned.
pub const MAX_DEPTH: usize = 100;

/// The most memory, in bytes (approximately), that decoding may allocate in all: every value
/// created or copied out of the memo is charged, so a pickle bomb (memo references doubling a
/// value at each step) stops here instead of exhausting memory (at most about twice this is
/// allocated at once, with vector growth). The largest shipped `.pt`, MobileCLIP-S2's, spends
/// 10 MB.
pub const MAX_BYTES: usize = 64 << 20;

/// What one value costs besides its payload (strings and bytes are charged by length).
const NODE: usize = std::mem::size_of::<Item>();

/// Decodes a pickle stream within [`MAX_DEPTH`] and [`MAX_BYTES`].
pub fn parse(data: &[u8]) -> Result<Value> {
    Machine { data, pos: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), spent: 0 }.run()
}

/// A value on the stack or in the memo, with its container depth (0 for scalars, 1 for a
/// container of scalars) and what a copy of it costs.
#[derive(Clone)]
struct Item {
    value: Value,
    depth: usize,
    cost: usize,
}

impl Item {
    fn leaf(value: Value, payload: usize) -> Self {
        Item { value, depth: 0, cost: NODE + payload }
    }
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Item>,
    marks: Vec<usize>,
    memo: HashMap<u32, Item>,
    /// Bytes charged so far (see [`MAX_BYTES`]).
    spent: usize,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::WeightsFormat(format!("PyTorch pickle: {}", msg.into()))
}

/// The depth and cost of a container holding `items`, or an error past [`MAX_DEPTH`].
fn measure<'i>(items: impl IntoIterator<Item = &'i Item>, depth: usize, cost: usize) -> Result<(usize, usize)> {
    let (depth, cost) = items.into_iter().fold((depth, cost), |(d, c), i| (d.max(i.depth + 1), c + i.cost));
    if depth > MAX_DEPTH {
        return Err(bad(format!("containers nested deeper than {MAX_DEPTH} levels")));
    }
    Ok((depth, cost))
}

fn values(items: Vec<Item>) -> Vec<Value> {
    items.into_iter().map(|i| i.value).collect()
}

impl Machine<'_> {
    fn charge(&mut self, bytes: usize) -> Result<()> {
        self.spent = self.spent.saturating_add(bytes);
        if self.spent > MAX_BYTES {
            return Err(bad(format!("the object graph needs more than {} MiB (a pickle bomb?)", MAX_BYTES >> 20)));
        }
        Ok(())
    }

    fn push(&mut self, item: Item) -> Result<()> {
        self.charge(item.cost)?;
        self.stack.push(item);
        Ok(())
    }

    fn push_leaf(&mut self, value: Value) -> Result<()> {
        self.push(Item::leaf(value, 0))
    }

    /// Pushes a new container holding `items` (already paid for: only the container is charged).
    fn push_container(&mut self, items: Vec<Item>, make: impl FnOnce(Vec<Value>) -> Result<Value>) -> Result<()> {
        let (depth, cost) = measure(&items, 1, NODE)?;
        self.charge(NODE)?;
        let value = make(values(items))?;
        self.stack.push(Item { value, depth, cost });
        Ok(())
    }

    /// Adds `items` to the container on top of the stack with `add`.
    fn extend_top(&mut self, items: Vec<Item>, add: impl FnOnce(&mut Value, Vec<Value>) -> Result<()>) -> Result<()> {
        let top = self.stack.last_mut().ok_or_else(|| bad("stack underflow"))?;
        let (depth, cost) = measure(&items, top.depth, top.cost)?;
        add(&mut top.value, values(items))?;
        (top.depth, top.cost) = (depth, cost);
        Ok(())
    }

    fn bytes(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(|| bad("truncated data"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.bytes(2)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes(4)?.try_into().expect("4 bytes")))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or_else(|| bad("unterminated line"))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn push_string(&mut self, n: usize) -> Result<()> {
        let b = self.bytes(n)?;
        let s = String::from_utf8(b.to_vec()).map_err(|_| bad("invalid utf-8 string"))?;
        self.push(Item::leaf(Value::Str(s), n))
    }

    fn push_bytes(&mut self, n: usize) -> Result<()> {
        let b = self.bytes(n)?.to_vec();
        self.push(Item::leaf(Value::Bytes(b), n))
    }

    fn pop(&mut self) -> Result<Item> {
        self.stack.pop().ok_or_else(|| bad("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Item>> {
        let m = self.marks.pop().ok_or_else(|| bad("missing mark"))?;
        if m > self.stack.len() {
            return Err(bad("mark beyond stack"));
        }
        Ok(self.stack.split_off(m))
    }

    /// Stores a copy of the top of the stack in the memo.
    fn memo_put(&mut self, key: u32) -> Result<()> {
        let cost = self.stack.last().ok_or_else(|| bad("stack underflow"))?.cost;
        self.charge(cost + NODE)?; // before copying: the copy is what a bomb multiplies
        let item = self.stack.last().expect("checked above").clone();
        self.memo.insert(key, item);
        Ok(())
    }

    /// Pushes a copy of a memo entry.
    fn memo_get(&mut self, key: u32) -> Result<()> {
        let cost = self.memo.get(&key).ok_or_else(|| bad(format!("unknown memo key {key}")))?.cost;
        self.charge(cost)?;
        let item = self.memo[&key].clone();
        self.stack.push(item);
        Ok(())
    }

    fn run(mut self) -> Result<Value> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.bytes(8)?; // FRAME
                }
                b'.' => return Ok(self.pop()?.value), // STOP
                b'(' => {
                    self.charge(std::mem::size_of::<usize>())?;
                    self.marks.push(self.stack.len())
                }
                b'}' => self.push_container(Vec::new(), |_| Ok(Value::Dict(Vec::new())))?,
                b']' => self.push_container(Vec::new(), |_| Ok(Value::List(Vec::new())))?,
                b')' => self.push_container(Vec::new(), |_| Ok(Value::Tuple(Vec::new())))?,
                b'N' => self.push_leaf(Value::None)?,
                0x88 => self.push_leaf(Value::Bool(true))?,
                0x89 => self.push_leaf(Value::Bool(false))?,
                b'K' => {
                    let v = self.u8()?;
                    self.push_leaf(Value::Int(v as i64))?
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push_leaf(Value::Int(v as i64))?
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push_leaf(Value::Int(v as i64))?
                }
                0x8a => {
                    // LONG1
                    let n = self.u8()? as usize;
                    let b = self.bytes(n)?;
                    if n > 8 {
                        return Err(bad("integer too large"));
                    }
                    let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) { [0xff; 8] } else { [0; 8] };
                    buf[..n].copy_from_slice(b);
                    self.push_leaf(Value::Int(i64::from_le_bytes(buf)))?
                }
                b'G' => {
                    let b: [u8; 8] = self.bytes(8)?.try_into().expect("8 bytes");
                    self.push_leaf(Value::Float(f64::from_be_bytes(b)))?
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    self.push_string(n)?
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    self.push_string(n)?
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    self.push_bytes(n)?
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    self.push_bytes(n)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let payload = module.len() + name.len();
                    self.push(Item::leaf(Value::Global(module, name), payload))?
                }
                0x93 => {
                    // STACK_GLOBAL
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module.value, name.value) {
                        (Value::Str(m), Value::Str(n)) => {
                            let payload = m.len() + n.len();
                            self.push(Item::leaf(Value::Global(m, n), payload))?
                        }
                        _ => return Err(bad("STACK_GLOBAL expects two strings")),
                    }
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k = self.memo.len() as u32;
                    self.memo_put(k)?
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_container(items, |v| Ok(Value::Tuple(v)))?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(bad("stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push_container(items, |v| Ok(Value::Tuple(v)))?
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push_container(items, |v| Ok(Value::List(v)))?
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push_container(items, |v| Ok(Value::Dict(pairs(v)?)))?
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend_top(vec![v], |top, v| match top {
                        Value::List(l) => {
                            l.extend(v);
                            Ok(())
                        }
                        _ => Err(bad("APPEND to a non-list")),
                    })?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.extend_top(items, |top, v| match top {
                        Value::List(l) => {
                            l.extend(v);
                            Ok(())
                        }
                        _ => Err(bad("APPENDS to a non-list")),
                    })?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.extend_top(vec![k, v], |top, kv| match top {
                        Value::Dict(d) => {
                            d.extend(pairs(kv)?);
                            Ok(())
                        }
                        _ => Err(bad("SETITEM on a non-dict")),
                    })?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.extend_top(items, |top, kv| match top {
                        Value::Dict(d) => {
                            d.extend(pairs(kv)?);
                            Ok(())
                        }
                        _ => Err(bad("SETITEMS on a non-dict")),
                    })?
                }
                b'Q' => {
                    // BINPERSID: ('storage', storage_type, key, location, numel)
                    let pid = self.pop()?;
                    let storage = persistent_storage(pid.value)?;
                    let payload = match &storage {
                        Value::Storage(key, ..) => key.len(),
                        _ => 0,
                    };
                    self.push(Item::leaf(storage, payload))?
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    // The result holds at most the arguments: their depth and cost bound its own.
                    let value = reduce(callable.value, args.value)?;
                    self.charge(NODE)?;
                    self.stack.push(Item { value, ..args })
                }
                0x81 => {
                    // NEWOBJ
                    let _args = self.pop()?;
                    let _cls = self.pop()?;
                    self.push_leaf(Value::Object)?
                }
                b'b' => {
                    // BUILD: state of an object; state dicts' `_metadata` and the like are dropped.
                    self.pop()?;
                }
                _ => {
                    return Err(bad(format!("unsupported opcode 0x{op:02x} at byte {}", self.pos - 1)));
                }
            }
        }
    }
}

fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>> {
    if !items.len().is_multiple_of(2) {
        return Err(bad("odd number of dict items"));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn persistent_storage(pid: Value) -> Result<Value> {
    let Value::Tuple(parts) = pid else {
        return Err(bad("persistent id is not a tuple"));
    };
    match parts.as_slice() {
        [Value::Str(kind), Value::Global(_, ty), Value::Str(key), rest @ ..] if kind == "storage" => {
            let numel = match rest.get(1) {
                Some(Value::Int(n)) => usize::try_from(*n).ok(),
                _ => None,
            };
            Ok(Value::Storage(key.clone(), DType::from_storage_name(ty), numel))
        }
        _ => Err(bad("unsupported persistent id")),
    }
}

fn as_usize_list(v: &Value) -> Result<Vec<usize>> {
    match v {
        Value::Tuple(items) | Value::List(items) => items
            .iter()
            .map(|x| match x {
                Value::Int(i) if *i >= 0 => Ok(*i as usize),
                _ => Err(bad("tensor size/stride entries must be non-negative integers")),
            })
            .collect(),
        _ => Err(bad("tensor size/stride must be a tuple")),
    }
}

fn reduce(callable: Value, args: Value) -> Result<Value> {
    let Value::Global(module, name) = &callable else {
        return Ok(Value::Object);
    };
    let Value::Tuple(args) = args else {
        return Ok(Value::Object);
    };
    match (module.as_str(), name.as_str()) {
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            let (Some(Value::Storage(key, dtype, numel)), Some(Value::Int(offset)), Some(size), Some(stride)) =
                (args.first(), args.get(1), args.get(2), args.get(3))
            else {
                return Err(bad("malformed _rebuild_tensor arguments"));
            };
            Ok(Value::Tensor(TensorRef {
                storage: key.clone(),
                storage_len: *numel,
                dtype: *dtype,
                offset: usize::try_from(*offset).map_err(|_| bad("negative storage offset"))?,
                shape: as_usize_list(size)?,
                stride: as_usize_list(stride)?,
            }))
        }
        ("torch._utils", "_rebuild_parameter") | ("torch._utils", "_rebuild_parameter_with_state") => {
            Ok(args.into_iter().next().unwrap_or(Value::Object))
        }
        ("collections", "OrderedDict") => Ok(Value::Dict(Vec::new())),
        _ => Ok(Value::Object),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_to_f32_is_halfs_conversion_for_every_value() {
        for bits in 0..=u16::MAX {
            let want = half::f16::from_bits(bits).to_f32().to_bits();
            assert_eq!(f16_to_f32(bits).to_bits(), want, "f16 bits {bits:#06x}");
        }
        let bytes: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
        let mut out = Vec::new();
        DType::F16.decode_f32_into(&bytes, &mut out);
        assert!(out.iter().zip(0..=u16::MAX).all(|(v, b)| v.to_bits() == half::f16::from_bits(b).to_f32().to_bits()));
    }

    #[test]
    fn parses_small_dict_with_tensor() {
        // Hand-assembled protocol-2 pickle of {"w": _rebuild_tensor_v2(storage, 0, (2, 3), (3, 1), False, OrderedDict())}.
        let mut p = vec![0x80, 2, b'}', b'q', 0, b'(', b'X'];
        p.extend(1u32.to_le_bytes());
        p.push(b'w');
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n");
        p.push(b'(');
        p.push(b'(');
        p.push(b'X');
        p.extend(7u32.to_le_bytes());
        p.extend(b"storage");
        p.extend(b"ctorch\nFloatStorage\n");
        for s in ["0", "cpu"] {
            p.push(b'X');
            p.extend((s.len() as u32).to_le_bytes());
            p.extend(s.as_bytes());
        }
        p.extend([b'K', 6, b't', b'Q', b'K', 0, b'K', 2, b'K', 3, 0x86, b'K', 3, b'K', 1, 0x86, 0x89]);
        p.extend(b"ccollections\nOrderedDict\n)R");
        p.extend([b't', b'R', b'u', b'.']);
        let v = parse(&p).unwrap();
        let Value::Dict(items) = v else { panic!("not a dict: {v:?}") };
        assert_eq!(items.len(), 1);
        let Value::Tensor(t) = &items[0].1 else { panic!("not a tensor") };
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.stride, vec![3, 1]);
        assert_eq!(t.dtype, DType::F32);
        assert_eq!(t.storage, "0");
    }

    #[test]
    fn truncated_input_is_an_error() {
        let err = parse(&[0x80, 2, b'}', b'X', 9, 0]).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
