//! [`FusedWeights`]: a model's inference tensors (train-time branches folded away) under their
//! canonical names, what every module is built from. The compact model file is this map
//! written to disk.

use std::collections::{BTreeMap, BTreeSet};

/// A tensor in host memory, row-major `f32`: what folding computes on and what modules are
/// built from.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self { shape: shape.to_vec(), data: vec![0.0; shape.iter().product()] }
    }

    /// Transposes a 2-d tensor.
    pub fn transpose(&self) -> HostTensor {
        let [r, c] = self.shape[..] else { panic!("transpose expects a 2-d tensor") };
        let mut data = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                data[j * r + i] = self.data[i * c + j];
            }
        }
        HostTensor { shape: vec![c, r], data }
    }
}

/// How a [`FusedTensor`]'s values are stored: as computed (`f32`), or at the lower precision a
/// compact model file keeps them in (see [`super::compact`]). Compute is always `f32`:
/// [`FusedTensor::into_host`] turns any storage back into `f32` when a module is built.
#[derive(Clone, Debug, PartialEq)]
pub enum Storage {
    /// Row-major `f32` values.
    F32(Vec<f32>),
    /// Row-major IEEE half values.
    F16(Vec<half::f16>),
    /// Row-major IEEE half values, each times its group's scale: value `i` is
    /// `values[i] * scales[i / group]` (`group` divides the row length). A kernel whose
    /// channels are decades apart (a near-dead channel after a BatchNorm was folded into it)
    /// keeps its smallest channels, which plain halves flush to zero or to a few subnormal bits.
    ScaledF16 {
        /// The values divided by their group's scale, as halves.
        values: Vec<half::f16>,
        /// One scale per group, in group order.
        scales: Vec<f32>,
        /// Values per scale.
        group: usize,
    },
    /// Symmetric `bits`-bit integers (2 … 8) with one scale per group: the tensor's rows (its
    /// first dimension: a convolution's or linear layer's output channels, an embedding's
    /// tokens) are cut into groups of `group` consecutive values (`group` divides the row
    /// length; a whole row is per-output-channel quantisation); value `i` at column `j` (`i`
    /// modulo the row length) is `values[i] * scales[i / group] * columns[j]`, `columns` being
    /// empty (all 1) or one factor per column: the scale of each input channel / kernel tap that
    /// a BatchNorm folded into the kernel's input side gave it. In memory each value takes a
    /// byte whatever `bits` is; a compact file packs them ([`super::compact`]).
    Int {
        /// Bits per value: the values are in `-(2^(bits-1) - 1) ..= 2^(bits-1) - 1`.
        bits: u32,
        /// The quantised values, row-major.
        values: Vec<i8>,
        /// One scale per group, in group order.
        scales: Vec<f32>,
        /// Values per scale.
        group: usize,
        /// Empty, or one factor per column (the row length).
        columns: Vec<f32>,
        /// Values kept apart from the integers, as `(flat index, value)` in increasing index
        /// order: the value at each index is this one (its integer is 0 and takes no part in its
        /// group's scale). A channel dominated by one tap (a re-parameterised identity, a 1×1
        /// convolution's diagonal) gives its other taps the whole integer range this way.
        exact: Vec<(u32, f32)>,
    },
}

/// Whether every value of `v` is an IEEE half exactly, so that a compact file stores it in two
/// bytes (quantisation rounds scales and column factors to halves where they are in half's
/// normal range).
pub fn half_exact(v: &[f32]) -> bool {
    v.iter().all(|&x| half::f16::from_f32(x).to_f32() == x)
}

/// Bytes a compact file takes for `v` (scales or column factors): two per value when all are
/// halves ([`half_exact`]), four otherwise.
fn factor_bytes(v: &[f32]) -> usize {
    v.len() * if half_exact(v) { 2 } else { 4 }
}

impl Storage {
    /// Bytes the values take on disk (scales included).
    pub fn bytes(&self) -> usize {
        match self {
            Storage::F32(v) => 4 * v.len(),
            Storage::F16(v) => 2 * v.len(),
            Storage::ScaledF16 { values, scales, .. } => 2 * values.len() + factor_bytes(scales),
            Storage::Int { bits, values, scales, columns, exact, .. } => {
                let exact_values: Vec<f32> = exact.iter().map(|e| e.1).collect();
                (values.len() * *bits as usize).div_ceil(8)
                    + factor_bytes(scales)
                    + factor_bytes(columns)
                    + 4 * exact.len()
                    + factor_bytes(&exact_values)
            }
        }
    }

    /// The storage's name in a compact file's metadata: `f32`, `f16`, `f16:<group>` (scaled
    /// halves), or `int<bits>:<group>` followed by `:columns` when there are column factors and
    /// `:exact` when values are kept apart.
    pub fn kind(&self) -> String {
        match self {
            Storage::F32(_) => "f32".into(),
            Storage::F16(_) => "f16".into(),
            Storage::ScaledF16 { group, .. } => format!("f16:{group}"),
            Storage::Int { bits, group, columns, exact, .. } => format!(
                "int{bits}:{group}{}{}",
                if columns.is_empty() { "" } else { ":columns" },
                if exact.is_empty() { "" } else { ":exact" }
            ),
        }
    }
}

/// One fused inference tensor: its shape and stored values.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedTensor {
    shape: Vec<usize>,
    storage: Storage,
}

impl FusedTensor {
    /// An `f32` tensor; `data` holds the product of `shape` values.
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Self {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "tensor data does not fill its shape");
        Self { shape, storage: Storage::F32(data) }
    }

    /// A tensor of `shape` with stored values, or `None` when the storage does not fill the
    /// shape (a count that differs, a group that does not divide the rows, scales missing).
    pub fn new(shape: Vec<usize>, storage: Storage) -> Option<Self> {
        let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
        let row = if shape.is_empty() { 1 } else { numel / shape[0].max(1) };
        let fits = match &storage {
            Storage::F32(v) => v.len() == numel,
            Storage::F16(v) => v.len() == numel,
            Storage::ScaledF16 { values, scales, group } => {
                values.len() == numel
                    && *group > 0
                    && row.is_multiple_of(*group)
                    && scales.len() == numel / group
                    && scales.iter().all(|s| s.is_finite() && *s >= 0.0)
            }
            Storage::Int { bits, values, scales, group, columns, exact } => {
                let max = (1i32 << ((*bits).clamp(2, 8) - 1)) - 1;
                (2..=8).contains(bits)
                    && values.len() == numel
                    && *group > 0
                    && row.is_multiple_of(*group)
                    && scales.len() == numel / group
                    && (columns.is_empty() || columns.len() == row)
                    && values.iter().all(|&q| i32::from(q).abs() <= max)
                    && scales.iter().chain(columns.iter()).all(|s| s.is_finite() && *s >= 0.0)
                    && exact.windows(2).all(|w| w[0].0 < w[1].0)
                    && exact.iter().all(|&(i, v)| (i as usize) < numel && values[i as usize] == 0 && v.is_finite())
            }
        };
        fits.then_some(Self { shape, storage })
    }

    /// Dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of values.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The stored values.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The values as `f32` in host memory (moved, not copied, when stored as `f32`; converted
    /// from `f16`, dequantised from integers).
    pub fn into_host(self) -> HostTensor {
        let data = match self.storage {
            Storage::F32(data) => data,
            Storage::F16(values) => f16_values(&values),
            Storage::ScaledF16 { values, scales, group } => scaled_f16_values(&values, &scales, group),
            Storage::Int { values, scales, group, columns, exact, .. } => {
                dequantise(&values, &scales, group, &columns, &exact)
            }
        };
        HostTensor { shape: self.shape, data }
    }

    /// The values as `f32`, leaving the tensor as it is (converted from the stored values, not
    /// from a copy of them).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.storage {
            Storage::F32(data) => data.clone(),
            Storage::F16(values) => f16_values(values),
            Storage::ScaledF16 { values, scales, group } => scaled_f16_values(values, scales, *group),
            Storage::Int { values, scales, group, columns, exact, .. } => {
                dequantise(values, scales, *group, columns, exact)
            }
        }
    }
}

/// Half values as `f32` ([`super::pickle::f16_to_f32`], a loop that vectorises).
fn f16_values(values: &[half::f16]) -> Vec<f32> {
    values.iter().map(|v| super::pickle::f16_to_f32(v.to_bits())).collect()
}

/// Scaled halves as `f32`: each value times its group's scale.
fn scaled_f16_values(values: &[half::f16], scales: &[f32], group: usize) -> Vec<f32> {
    let mut data = f16_values(values);
    for (d, &s) in data.chunks_exact_mut(group).zip(scales) {
        d.iter_mut().for_each(|v| *v *= s);
    }
    data
}

/// Quantised values times their group's scale (and their column's factor, when there are any), in
/// one pass into a preallocated output: a group at a time, so that the inner loops are plain
/// slice maps the compiler vectorises (SIMD128 in wasm). Each value is `(q · scale) · column`,
/// the order [`Storage::Int`] documents, so the result is the same bit for bit whatever the
/// chunking. The storage was checked by [`FusedTensor::new`]: `group` divides the rows, one
/// scale per group, `columns` empty or a row long.
fn dequantise(values: &[i8], scales: &[f32], group: usize, columns: &[f32], exact: &[(u32, f32)]) -> Vec<f32> {
    let mut data = Vec::with_capacity(values.len());
    if columns.is_empty() {
        for (q, &s) in values.chunks_exact(group).zip(scales) {
            data.extend(q.iter().map(|&v| f32::from(v) * s));
        }
    } else {
        let per_row = columns.len() / group;
        for (q_row, s_row) in values.chunks_exact(columns.len()).zip(scales.chunks_exact(per_row)) {
            for ((q, c), &s) in q_row.chunks_exact(group).zip(columns.chunks_exact(group)).zip(s_row) {
                data.extend(q.iter().zip(c).map(|(&v, &c)| f32::from(v) * s * c));
            }
        }
    }
    debug_assert_eq!(data.len(), values.len(), "an integer storage checked by FusedTensor::new");
    for &(i, v) in exact {
        data[i as usize] = v;
    }
    data
}

impl From<HostTensor> for FusedTensor {
    fn from(t: HostTensor) -> Self {
        Self::f32(t.shape, t.data)
    }
}

/// The inference tensors of a model by canonical name (see [`super::names`]), sorted by name:
/// `visual.*` (image tower), `text.*` (text tower), `logit_scale`.
///
/// Made by [`super::fold`] from a published checkpoint (train-time branches, BatchNorms and
/// layer scales folded as each block's re-parameterisation does; the fused tensors of a block
/// are named as the reference names them after `reparameterize()`, e.g. `….reparam_conv.weight`),
/// or filled tensor by tensor with [`FusedWeights::insert`] (a file that already holds fused
/// tensors). Modules are built from it through a [`super::VarBuilder`].
///
/// Problems met while folding (a branch tensor missing or mis-shaped) travel with the map and
/// are reported with the module builder's own when loading ends, as do the names folding
/// consumed (to explain a module's request for one of them).
#[derive(Clone, Debug, Default)]
pub struct FusedWeights {
    tensors: BTreeMap<String, FusedTensor>,
    pub(crate) problems: super::Problems,
    pub(crate) folded: BTreeSet<String>,
}

impl FusedWeights {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tensor, returning the one it replaces.
    pub fn insert(&mut self, name: impl Into<String>, tensor: FusedTensor) -> Option<FusedTensor> {
        self.tensors.insert(name.into(), tensor)
    }

    /// The tensor `name`.
    pub fn get(&self, name: &str) -> Option<&FusedTensor> {
        self.tensors.get(name)
    }

    /// Takes the tensor `name` out of the map.
    pub fn remove(&mut self, name: &str) -> Option<FusedTensor> {
        self.tensors.remove(name)
    }

    /// Whether a tensor of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the map holds no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Tensors in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FusedTensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Tensors in name order, to change in place (e.g. to store them at lower precision).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut FusedTensor)> {
        self.tensors.iter_mut().map(|(k, v)| (k.as_str(), v))
    }

    /// Keeps only the tensors for which `keep(name, tensor)` holds (e.g. one tower's).
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &FusedTensor) -> bool) {
        self.tensors.retain(|k, v| keep(k, v));
    }

    /// Whether folding found problems (missing or mis-shaped branch tensors); they are
    /// reported in full when a model is built from the map.
    pub fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }
}

impl IntoIterator for FusedWeights {
    type Item = (String, FusedTensor);
    type IntoIter = std::collections::btree_map::IntoIter<String, FusedTensor>;

    fn into_iter(self) -> Self::IntoIter {
        self.tensors.into_iter()
    }
}

impl FromIterator<(String, FusedTensor)> for FusedWeights {
    fn from_iter<I: IntoIterator<Item = (String, FusedTensor)>>(iter: I) -> Self {
        Self { tensors: iter.into_iter().collect(), ..Default::default() }
    }
}
