//! Lower-precision storage of fused tensors for compact model files: `f16`, and weight-only
//! symmetric `int8` with one scale per output channel or per group of a channel's values.
//! Compute stays `f32`: the values are turned back into `f32` when a module is built
//! ([`FusedTensor::into_host`]).
//!
//! `auto` chooses per tensor by the error it measures on the tensor itself: the smallest
//! storage whose worst channel keeps its relative error (‖w − ŵ‖ / ‖w‖ over one output channel)
//! under that tensor's share of the tower's tolerance. Trained MobileCLIP kernels, once
//! BatchNorms are folded into them, have channels dominated by a few taps: one scale for such a
//! channel leaves its small taps at zero, and the worst-channel error is what catches it (an
//! average over the tensor hides it).
//!
//! The share: a tensor of `n` values gets the tolerance × √(n / 2¹⁸), at most the tolerance
//! ([`Tolerance::for_tensor`]). Each quantised tensor adds roughly the same error to the
//! embeddings whatever its size (measured on a full-size MobileCLIP-S0 with trained-looking
//! BatchNorms, one tensor at a time in int8: a 12k-value convolution of the first stage moved
//! the image cosine as much as the 524k-value projection, or more), so the bytes are best spent
//! where they are few: minimising a file's bytes for a given sum of squared errors gives each
//! tensor an error ∝ √n (the rate–distortion allocation). Small tensors (depthwise kernels,
//! early stages) then stay f16 and the large matrices, most of the bytes, take int8 with one
//! scale per channel.

use std::fmt;
use std::str::FromStr;

use super::fused::{FusedTensor, FusedWeights, Storage};
use crate::error::{Error, Result};

/// How a compact file stores its matrices and convolution kernels. Vectors (biases,
/// normalisation parameters, the temperature) stay `f32` whatever is chosen: they are well
/// under 1% of a model's bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// As folded: loads to bit-identical embeddings.
    F32,
    /// IEEE half.
    F16,
    /// Symmetric int8, one scale per output channel (first dimension).
    Int8,
    /// Per tensor, the smallest of int8 per channel, int8 per group (256 … 32 values), each
    /// with or without per-column factors (channels of 64 values or more), f16 and f32 whose
    /// measured error is within the tensor's share of the tower's [`Tolerance`].
    #[default]
    Auto,
}

impl FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            "int8" => Ok(Precision::Int8),
            "auto" => Ok(Precision::Auto),
            other => Err(Error::InvalidArgument(format!("dtype must be f32, f16, int8 or auto, got {other:?}"))),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Int8 => "int8",
            Precision::Auto => "auto",
        })
    }
}

/// The worst per-channel relative error `auto` accepts for a large tensor (2¹⁸ values or more)
/// of each tower; smaller tensors get a share of it ([`Tolerance::for_tensor`]).
///
/// The defaults are set on a full-size MobileCLIP-S0 whose BatchNorm statistics look trained
/// (see `tools/compact-accuracy.sh`), so that `auto` keeps cosine to f32 ≥ 0.999 (images) and
/// ≥ 0.998 (texts) there; `BENCHMARKS.md` has the measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// For `visual.*` tensors.
    pub image: f64,
    /// For `text.*` tensors.
    pub text: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Self { image: 0.015, text: 0.02 }
    }
}

impl Tolerance {
    /// The tolerance for the tensor `name` of `numel` values: its tower's, times
    /// √(numel / 2¹⁸) when the tensor is smaller than 2¹⁸ values (see the module's doc), and
    /// never under [`F16_FLOOR`] (so that f16, not f32, stores the smallest tensors).
    pub fn for_tensor(&self, name: &str, numel: usize) -> f64 {
        let tower = if name.starts_with("visual.") { self.image } else { self.text };
        (tower * (numel as f64 / FULL_SHARE as f64).sqrt().min(1.0)).max(F16_FLOOR.min(tower))
    }
}

/// The smallest share of a tolerance: f16's own error per channel is under 2⁻¹¹ ≈ 4.9e-4
/// (values in f16's normal range), so f16 meets it.
pub const F16_FLOOR: f64 = 1e-3;

/// Tensors of this many values or more get their tower's whole tolerance.
const FULL_SHARE: usize = 1 << 18;

/// Group sizes `auto` tries after one scale per channel, largest first.
const GROUPS: [usize; 4] = [256, 128, 64, 32];

/// The shortest output channel `auto` stores as int8. Shorter ones (depthwise kernels, stems,
/// the 1×1 convolutions of narrow stages) are where a re-parameterised block's identity or a
/// folded BatchNorm leaves one tap dominant, and an error the channel's own norm hides shows
/// in the embeddings (measured on the reduced fixtures: one 3×3 stem kernel in int8 alone cost
/// 0.023 of image cosine); they are a small part of a model's bytes, so f16 keeps them.
const MIN_INT8_ROW: usize = 64;

/// Values in one output channel of `shape` (the product of all but the first dimension).
fn row_len(shape: &[usize]) -> usize {
    shape.iter().skip(1).product::<usize>().max(1)
}

/// Whether a tensor is a matrix or convolution kernel (quantised), rather than a vector.
fn is_weight(t: &FusedTensor) -> bool {
    t.shape().iter().filter(|&&d| d > 1).count() >= 2
}

/// The column factors of [`int8`] storage: the square root of each column's root-mean-square
/// over the rows. Half of a column's scale moves into its factor, half stays in the rows'
/// scales (a kernel whose input side carries a folded BatchNorm has columns decades apart;
/// moving all of it into the factors leaves rows that do not follow the columns' pattern worse
/// off than before).
fn column_factors(values: &[f32], row: usize) -> Vec<f32> {
    let rows = (values.len() / row) as f64;
    let mut sum = vec![0f64; row];
    for r in values.chunks(row) {
        sum.iter_mut().zip(r).for_each(|(s, &v)| *s += f64::from(v).powi(2));
    }
    sum.iter().map(|s| (s / rows).sqrt().sqrt() as f32).collect()
}

/// `values` quantised to int8 with one scale per `group` consecutive values of a row, after
/// dividing each column by the square root of its root-mean-square over the rows when `columns`
/// is set (those factors are stored with it).
pub fn int8(shape: &[usize], values: &[f32], group: usize, columns: bool) -> FusedTensor {
    let row = row_len(shape);
    let factors: Vec<f32> = if columns { column_factors(values, row) } else { Vec::new() };
    let mut q = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(values.len() / group);
    // one group divided by its columns' factors at a time (not a copy of the whole tensor)
    let mut scaled = vec![0f32; if columns { group } else { 0 }];
    for (i, chunk) in values.chunks(group).enumerate() {
        let chunk = if columns {
            let at = i * group % row;
            let divided = chunk.iter().zip(&factors[at..at + chunk.len()]);
            scaled.iter_mut().zip(divided).for_each(|(s, (&v, &c))| *s = if c > 0.0 { v / c } else { 0.0 });
            &scaled[..chunk.len()]
        } else {
            chunk
        };
        let max = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = max / 127.0;
        scales.push(scale);
        q.extend(chunk.iter().map(|&v| if scale > 0.0 { (v / scale).round().clamp(-127.0, 127.0) as i8 } else { 0 }));
    }
    FusedTensor::new(shape.to_vec(), Storage::Int8 { values: q, scales, group, columns: factors })
        .expect("groups divide the rows")
}

/// `values` as IEEE half.
pub fn f16(shape: &[usize], values: &[f32]) -> FusedTensor {
    let v = values.iter().map(|&x| half::f16::from_f32(x)).collect();
    FusedTensor::new(shape.to_vec(), Storage::F16(v)).expect("same count")
}

/// The worst relative error ‖w − ŵ‖ / ‖w‖ over the output channels (rows of `row` values).
pub fn worst_channel_error(original: &[f32], approx: &[f32], row: usize) -> f64 {
    original
        .chunks(row)
        .zip(approx.chunks(row))
        .map(|(w, a)| {
            let (mut err, mut norm) = (0f64, 0f64);
            for (&x, &y) in w.iter().zip(a) {
                err += f64::from(x - y).powi(2);
                norm += f64::from(x).powi(2);
            }
            if norm > 0.0 {
                (err / norm).sqrt()
            } else if err > 0.0 {
                f64::INFINITY
            } else {
                0.0
            }
        })
        .fold(0.0, f64::max)
}

/// A storage a tensor can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Symmetric int8, one scale per `group` values of a row, with or without column factors.
    Int8 {
        /// Values per scale.
        group: usize,
        /// Whether the columns have their own factors.
        columns: bool,
    },
    /// IEEE half.
    F16,
    /// As folded.
    F32,
}

/// One storage of a tensor with what it costs: its bytes on disk and its worst per-channel
/// relative error ([`worst_channel_error`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rung {
    /// The storage.
    pub form: Form,
    /// Bytes it takes (scales and column factors included).
    pub bytes: usize,
    /// Worst per-channel relative error (0 for `f32`).
    pub error: f64,
}

/// The storages `auto` may choose for `t`, smallest first, each with a smaller error than every
/// smaller one (the others are never worth their bytes): int8 per channel, per group (256 … 32
/// values), each with or without column factors (channels of 64 values or more), f16, and f32
/// last. A vector, or a tensor holding non-finite values, has only f32.
pub fn ladder(t: &FusedTensor) -> Vec<Rung> {
    let values = t.to_f32();
    let numel = values.len();
    let f32_rung = Rung { form: Form::F32, bytes: 4 * numel, error: 0.0 };
    if !is_weight(t) || values.iter().any(|v| !v.is_finite()) {
        return vec![f32_rung];
    }
    let shape = t.shape();
    let row = row_len(shape);
    let groups = std::iter::once(row)
        .chain(GROUPS.into_iter().filter(|&g| g < row && row.is_multiple_of(g)))
        .filter(|_| row >= MIN_INT8_ROW);
    let mut forms: Vec<(usize, Form)> = groups
        .flat_map(|g| [(g, false), (g, true)])
        .map(|(group, columns)| {
            (numel + 4 * (numel / group + if columns { row } else { 0 }), Form::Int8 { group, columns })
        })
        .chain([(2 * numel, Form::F16)])
        .collect();
    forms.sort_by_key(|&(bytes, _)| bytes);
    let factors = column_factors(&values, row);
    let mut rungs: Vec<Rung> = Vec::new();
    for (bytes, form) in forms {
        let error = match form {
            Form::Int8 { group, columns } => int8_error(&values, row, group, columns.then_some(&factors[..])),
            _ => worst_channel_error(&values, &apply(shape, &values, form).to_f32(), row),
        };
        if rungs.last().is_none_or(|r| error < r.error) {
            rungs.push(Rung { form, bytes, error });
        }
    }
    rungs.push(f32_rung);
    rungs
}

/// The worst per-channel relative error of [`int8`] storage with one scale per `group` values
/// (and the column factors `factors`, if given), computed as the values are quantised, without
/// storing them: the same numbers as quantising then comparing, at a fraction of the cost.
fn int8_error(values: &[f32], row: usize, group: usize, factors: Option<&[f32]>) -> f64 {
    let mut scaled = vec![0f32; group];
    let mut worst = 0f64;
    for r in values.chunks(row) {
        let (mut err, mut norm) = (0f64, 0f64);
        for (g, chunk) in r.chunks(group).enumerate() {
            for (j, (s, &v)) in scaled.iter_mut().zip(chunk).enumerate() {
                *s = match factors {
                    Some(f) => {
                        let c = f[g * group + j];
                        if c > 0.0 { v / c } else { 0.0 }
                    }
                    None => v,
                };
            }
            let scale = scaled.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            for (j, (&s, &v)) in scaled.iter().zip(chunk).enumerate() {
                let q = if scale > 0.0 { (s / scale).round().clamp(-127.0, 127.0) } else { 0.0 };
                let back = match factors {
                    Some(f) => q * scale * f[g * group + j],
                    None => q * scale,
                };
                err += f64::from(v - back).powi(2);
                norm += f64::from(v).powi(2);
            }
        }
        let e = if norm > 0.0 {
            (err / norm).sqrt()
        } else if err > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        worst = worst.max(e);
    }
    worst
}

/// `values` (of `shape`) stored as `form`.
pub fn apply(shape: &[usize], values: &[f32], form: Form) -> FusedTensor {
    match form {
        Form::Int8 { group, columns } => int8(shape, values, group, columns),
        Form::F16 => f16(shape, values),
        Form::F32 => FusedTensor::f32(shape.to_vec(), values.to_vec()),
    }
}

/// `t` stored at `precision`; `tolerance` is the worst per-channel relative error `Auto`
/// accepts (the smallest rung of its [`ladder`] within it: the starting point of
/// [`fit`], which `convert` runs on top). Vectors and tensors holding non-finite values stay
/// `f32`.
pub fn store(t: &FusedTensor, precision: Precision, tolerance: f64) -> FusedTensor {
    let values = t.to_f32();
    if !is_weight(t) || precision == Precision::F32 || values.iter().any(|v| !v.is_finite()) {
        return FusedTensor::f32(t.shape().to_vec(), values);
    }
    let shape = t.shape();
    match precision {
        Precision::F16 => f16(shape, &values),
        Precision::Int8 => int8(shape, &values, row_len(shape), false),
        Precision::F32 => unreachable!("returned above"),
        Precision::Auto => apply(shape, &values, within(&ladder(t), tolerance).form),
    }
}

/// The smallest rung whose error is within `tolerance` (f32, the last, always is).
fn within(ladder: &[Rung], tolerance: f64) -> Rung {
    *ladder.iter().find(|r| r.error <= tolerance).unwrap_or(ladder.last().expect("f32 ends every ladder"))
}

/// The most groups [`fit`] measures one at a time.
const MAX_GROUPS: usize = 16;
/// The most allocations [`fit`] measures after the groups.
const MAX_ROUNDS: usize = 5;

/// The block a tensor belongs to, for [`fit`]'s sensitivity groups: its name up to its second
/// index (`visual.stages.2.blocks.3`), or its first one (`text.transformer.resblocks.7`), or its
/// first two parts (`visual.head`).
fn block_key(name: &str) -> Vec<String> {
    let parts: Vec<&str> = name.split('.').collect();
    let numeric: Vec<usize> =
        parts.iter().enumerate().filter(|(_, p)| p.parse::<u64>().is_ok()).map(|(i, _)| i).collect();
    let end = match numeric.as_slice() {
        [] => 2.min(parts.len()),
        [one] => one + 1,
        [_, two, ..] => two + 1,
    };
    parts[..end].iter().map(|p| p.to_string()).collect()
}

/// Orders block keys as the network runs them (`blocks.2` before `blocks.10`).
fn natural(a: &[String], b: &[String]) -> std::cmp::Ordering {
    let key = |p: &String| p.parse::<u64>().map_or((1, 0, p.clone()), |n| (0, n, String::new()));
    a.iter().map(key).cmp(b.iter().map(key))
}

/// What [`fit`] did: how many times it ran the tower, and the error it measured on its choice.
#[derive(Clone, Debug)]
pub struct Fit {
    /// The chosen storage of every tensor.
    pub weights: FusedWeights,
    /// Runs of the tower on the calibration inputs (the reference's not counted).
    pub evaluations: usize,
    /// The measured error of the choice (`1 − cosine`, worst over the calibration inputs), or
    /// `None` when no allocation met the target and every tensor fell back to f16 or finer.
    pub error: Option<f64>,
}

/// `auto`, closed-loop: the smallest storage of one tower's tensors (`tensors`, all `f32`) whose
/// measured embedding error stays within `target`. `measure` runs the tower built from the
/// tensors it is given on calibration inputs and returns the worst `1 − cosine` to the `f32`
/// tower's embeddings.
///
/// 1. Every weight gets its [`ladder`], and a starting rung: the smallest within its share of
///    `tolerance` ([`Tolerance::for_tensor`]).
/// 2. Sensitivity: the tower's blocks are merged, in name order, into at most 16 groups of
///    similar size; each group alone is stored at its starting rungs (the rest `f32`) and
///    measured. A group's measured error over the sum of its tensors' squared weight errors is
///    the embedding error per unit of weight error of each of its tensors (`k`): a tensor
///    whose inputs are large (activation-aware) or whose output the rest of the tower amplifies
///    costs more than its weight error says.
/// 3. Allocation: each tensor takes the rung, at or finer than its starting one (the
///    calibration inputs do not see everything held-out photos do: measured on the reduced
///    openclip-s2, a choice coarser than the start met the target on them and missed the bar
///    on photos), minimising `bytes + λ·k·error²` (the bytes saved
///    per unit of predicted embedding error are the same at every tensor's choice), with `λ` the
///    smallest whose predicted error (the sum of `k·error²`) is within the budget.
/// 4. The choice is measured, and the budget moved towards 90 % of `target` (by the secant of
///    the measured against the predicted error, in log–log: errors compound through a tower,
///    so the measured grows faster than the predicted), up to 5 rounds or until a choice
///    measures within 75–100 % of `target`; the smallest choice measured within `target` is
///    kept. If none was, every tensor is stored at f16 or finer (its starting rung if finer).
pub fn fit(
    tensors: &FusedWeights,
    tolerance: &Tolerance,
    target: f64,
    mut measure: impl FnMut(FusedWeights) -> Result<f64>,
) -> Result<Fit> {
    struct Entry<'a> {
        name: &'a str,
        shape: &'a [usize],
        values: Vec<f32>,
        ladder: Vec<Rung>,
        start: usize,
        k: f64,
    }
    let mut entries: Vec<Entry> = tensors
        .iter()
        .map(|(name, t)| {
            let ladder = ladder(t);
            let start =
                ladder.iter().position(|r| *r == within(&ladder, tolerance.for_tensor(name, t.numel()))).unwrap();
            Entry { name, shape: t.shape(), values: t.to_f32(), ladder, start, k: 0.0 }
        })
        .collect();
    let build = |entries: &[Entry], rung: &dyn Fn(usize) -> usize| -> FusedWeights {
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.to_string(), apply(e.shape, &e.values, e.ladder[rung(i)].form)))
            .collect()
    };
    let f32_rung = |e: &Entry| e.ladder.len() - 1;

    // Groups of blocks, in network order, of similar f32 bytes.
    let mut order: Vec<usize> = (0..entries.len()).filter(|&i| entries[i].ladder.len() > 1).collect();
    order.sort_by(|&a, &b| natural(&block_key(entries[a].name), &block_key(entries[b].name)));
    let total: usize = order.iter().map(|&i| entries[i].values.len()).sum();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut size = 0;
    for (n, &i) in order.iter().enumerate() {
        let same_block = n > 0 && block_key(entries[order[n - 1]].name) == block_key(entries[i].name);
        if groups.is_empty() || (!same_block && size * MAX_GROUPS >= total) {
            groups.push(Vec::new());
            size = 0;
        }
        groups.last_mut().unwrap().push(i);
        size += entries[i].values.len();
    }

    let mut evaluations = 0;
    for group in &groups {
        let inside: std::collections::HashSet<usize> = group.iter().copied().collect();
        let probe = build(&entries, &|i| if inside.contains(&i) { entries[i].start } else { f32_rung(&entries[i]) });
        let measured = measure(probe)?;
        evaluations += 1;
        let weight_error: f64 = group.iter().map(|&i| entries[i].ladder[entries[i].start].error.powi(2)).sum();
        // A group stored exactly (all f32) tells nothing: its tensors stay so.
        let k = if weight_error > 0.0 { measured.max(0.0) / weight_error } else { f64::INFINITY };
        for &i in group {
            entries[i].k = k;
        }
    }

    // The rung of each tensor for a given λ, and the error it predicts.
    let choose = |lambda: f64| -> (Vec<usize>, f64) {
        let mut predicted = 0.0;
        let rungs = entries
            .iter()
            .map(|e| {
                if e.ladder.len() == 1 {
                    return 0;
                }
                if !e.k.is_finite() {
                    return e.start;
                }
                let cost = |r: &Rung| r.bytes as f64 + lambda * e.k * r.error.powi(2);
                let best = (e.start..e.ladder.len())
                    .min_by(|&a, &b| cost(&e.ladder[a]).total_cmp(&cost(&e.ladder[b])))
                    .unwrap();
                predicted += e.k * e.ladder[best].error.powi(2);
                best
            })
            .collect();
        (rungs, predicted)
    };
    let allocate = |budget: f64| -> Vec<usize> {
        // the predicted error falls as λ grows: bisect log λ for the smallest λ within budget
        let (mut lo, mut hi) = (-10f64, 40f64);
        if choose(10f64.powf(lo)).1 <= budget {
            return choose(10f64.powf(lo)).0;
        }
        for _ in 0..60 {
            let mid = (lo + hi) / 2.0;
            if choose(10f64.powf(mid)).1 <= budget {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        choose(10f64.powf(hi)).0
    };

    let bytes = |rungs: &[usize]| -> usize { entries.iter().zip(rungs).map(|(e, &r)| e.ladder[r].bytes).sum() };
    // The measured error grows faster than the predicted one (errors compound through the
    // tower): the next budget is the secant, in log–log, of the last two measurements, aimed
    // at 90 % of the target.
    let aim = 0.9 * target;
    let mut budget = aim;
    let mut best: Option<(usize, Vec<usize>, f64)> = None;
    let mut history: Vec<(f64, f64)> = Vec::new();
    let mut tried: Vec<Vec<usize>> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let rungs = allocate(budget);
        if tried.contains(&rungs) {
            break;
        }
        let measured = measure(build(&entries, &|i| rungs[i]))?;
        evaluations += 1;
        let size = bytes(&rungs);
        if measured <= target && best.as_ref().is_none_or(|b| size < b.0) {
            best = Some((size, rungs.clone(), measured));
        }
        tried.push(rungs);
        history.push((budget, measured.max(target * 1e-3)));
        if (0.75 * target..=target).contains(&measured) {
            break;
        }
        let slope = match history.as_slice() {
            [.., (b1, m1), (b2, m2)] if (b2 / b1).ln().abs() > 1e-3 => {
                ((m2 / m1).ln() / (b2 / b1).ln()).clamp(0.5, 3.0)
            }
            _ => 1.5,
        };
        let (b, m) = *history.last().unwrap();
        budget = b * (aim / m).powf(1.0 / slope);
    }
    Ok(match best {
        Some((_, rungs, measured)) => {
            Fit { weights: build(&entries, &|i| rungs[i]), evaluations, error: Some(measured) }
        }
        None => {
            let f16_or_finer = |e: &Entry| {
                let f16 = e.ladder.iter().position(|r| r.form == Form::F16).unwrap_or(f32_rung(e));
                f16.max(e.start)
            };
            Fit { weights: build(&entries, &|i| f16_or_finer(&entries[i])), evaluations, error: None }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_round_trips_within_half_a_step() {
        let values: Vec<f32> = (0..64).map(|i| ((i * 37 % 64) as f32 - 31.5) * 0.013).collect();
        let t = int8(&[4, 16], &values, 8, false);
        let back = t.to_f32();
        let Storage::Int8 { scales, group, .. } = t.storage() else { panic!() };
        assert_eq!((*group, scales.len()), (8, 8));
        for (i, (a, b)) in values.iter().zip(&back).enumerate() {
            assert!((a - b).abs() <= scales[i / 8] / 2.0 + 1e-7, "{i}: {a} vs {b}");
        }
    }

    #[test]
    fn a_dominant_tap_pushes_auto_past_one_scale_per_channel() {
        // 4 channels of 512: one large value among small ones in every channel, at a different
        // place in each (groups or column factors isolate it).
        let mut values = vec![0f32; 4 * 512];
        for (i, v) in values.iter_mut().enumerate() {
            *v = ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 1e-2 * if i % 512 == 3 { 2.0 } else { 1.0 };
        }
        for c in 0..4 {
            values[c * 512 + c * 97] = 5.0;
        }
        let t = FusedTensor::f32(vec![4, 512], values.clone());
        let per_channel = store(&t, Precision::Int8, 0.0);
        assert_eq!(per_channel.storage().kind(), "int8:512");
        assert!(worst_channel_error(&values, &per_channel.to_f32(), 512) > 0.01);
        let auto = store(&t, Precision::Auto, 0.01);
        assert_ne!(auto.storage().kind(), "int8:512");
        assert!(worst_channel_error(&values, &auto.to_f32(), 512) <= 0.01);
        // No int8 grouping meets a tolerance this tight: f16 does.
        assert_eq!(store(&t, Precision::Auto, 1e-3).storage().kind(), "f16");
        // Column factors: a kernel whose columns differ in scale by decades (a BatchNorm folded
        // on its input side) keeps its small columns.
        let cols: Vec<f32> = (0..4 * 64).map(|i| ((i * 31 % 17) as f32 - 8.0) * 10f32.powi(i % 64 % 4 - 2)).collect();
        let with = worst_channel_error(&cols, &int8(&[4, 64], &cols, 64, true).to_f32(), 64);
        let without = worst_channel_error(&cols, &int8(&[4, 64], &cols, 64, false).to_f32(), 64);
        assert!(with < without * 0.6, "with column factors {with}, without {without}");
    }

    #[test]
    fn the_ladders_errors_are_those_of_the_stored_tensors() {
        let values: Vec<f32> =
            (0..8 * 128).map(|i| (i as f32 * 0.37).sin() * if i % 128 == 9 { 4.0 } else { 1.0 }).collect();
        let factors = column_factors(&values, 128);
        for group in [128, 64, 32] {
            for columns in [false, true] {
                let stored = worst_channel_error(&values, &int8(&[8, 128], &values, group, columns).to_f32(), 128);
                assert_eq!(int8_error(&values, 128, group, columns.then_some(&factors[..])), stored);
            }
        }
        let rungs = ladder(&FusedTensor::f32(vec![8, 128], values));
        assert!(rungs.windows(2).all(|w| w[0].bytes < w[1].bytes && w[0].error > w[1].error), "{rungs:?}");
        assert_eq!(rungs.last().unwrap().form, Form::F32);
    }

    #[test]
    fn smaller_tensors_get_a_smaller_share_of_the_tolerance() {
        let t = Tolerance { image: 0.016, text: 0.04 };
        assert_eq!(t.for_tensor("visual.a", 1 << 20), 0.016);
        assert_eq!(t.for_tensor("visual.a", 1 << 18), 0.016);
        assert_eq!(t.for_tensor("visual.a", 1 << 16), 0.008);
        assert_eq!(t.for_tensor("text.a", 1 << 16), 0.02);
        // never under what f16 meets
        assert_eq!(t.for_tensor("visual.a", 16), F16_FLOOR);
        assert_eq!(Tolerance { image: 1e-4, text: 1e-4 }.for_tensor("visual.a", 16), 1e-4);
    }

    #[test]
    fn auto_takes_the_smallest_storage_within_tolerance() {
        // 2 channels of 64: int8 with one scale per 32 values and column factors takes
        // 128 + 4 · (4 + 64) = 400 bytes, more than f16's 256; per channel (136 bytes) misses a
        // tight tolerance, so f16 wins over the larger int8 that would also meet it.
        let values: Vec<f32> =
            (0..128).map(|i| (i as f32 * 1.618).sin() * if i % 64 == 5 { 3.0 } else { 1.0 }).collect();
        let t = FusedTensor::f32(vec![2, 64], values.clone());
        let per_channel = worst_channel_error(&values, &int8(&[2, 64], &values, 64, false).to_f32(), 64);
        let grouped = worst_channel_error(&values, &int8(&[2, 64], &values, 32, true).to_f32(), 64);
        let tight = (per_channel + grouped.max(1e-3)) / 2.0;
        assert!(grouped < tight && tight < per_channel, "{grouped} {tight} {per_channel}");
        assert_eq!(store(&t, Precision::Auto, tight).storage().kind(), "f16");
        assert_eq!(store(&t, Precision::Auto, per_channel).storage().kind(), "int8:64");
    }

    #[test]
    fn vectors_stay_f32() {
        let t = FusedTensor::f32(vec![8], vec![1.5; 8]);
        assert_eq!(store(&t, Precision::Int8, 1.0).storage().kind(), "f32");
        let t = FusedTensor::f32(vec![1, 8, 1], vec![1.5; 8]);
        assert_eq!(store(&t, Precision::F16, 1.0).storage().kind(), "f32");
    }

    /// A tower of `n` tensors of 16 × 256 values whose embedding error is `sensitivity[i]` ×
    /// its weight error squared, summed: what `fit` assumes, with one tensor far more sensitive
    /// than its weight error says (as an activation outlier makes a kernel).
    fn toy(n: usize) -> FusedWeights {
        (0..n)
            .map(|t| {
                let values: Vec<f32> =
                    (0..16 * 256).map(|i| ((i * 7919 + t * 104_729) % 1000) as f32 / 1000.0 - 0.5).collect();
                (format!("visual.blocks.{t}.fc.weight"), FusedTensor::f32(vec![16, 256], values))
            })
            .collect()
    }

    fn toy_error(original: &FusedWeights, w: &FusedWeights, sensitivity: &[f64]) -> f64 {
        (0..sensitivity.len())
            .map(|t| {
                let name = format!("visual.blocks.{t}.fc.weight");
                let a = original.get(&name).unwrap().to_f32();
                sensitivity[t] * worst_channel_error(&a, &w.get(&name).unwrap().to_f32(), 256).powi(2)
            })
            .sum()
    }

    #[test]
    fn fit_meets_the_measured_target_and_spends_bytes_where_the_error_is() {
        let tensors = toy(6);
        let mut sensitivity = vec![0.5; 6];
        sensitivity[4] = 500.0;
        let target = 2e-4;
        // the heuristic alone (each tensor's share of a loose tolerance: int8) misses it
        let tolerance = Tolerance { image: 0.2, text: 0.2 };
        let heuristic: FusedWeights = tensors
            .iter()
            .map(|(n, t)| (n.to_string(), store(t, Precision::Auto, tolerance.for_tensor(n, t.numel()))))
            .collect();
        assert!(heuristic.iter().all(|(_, t)| t.storage().kind().starts_with("int8")));
        assert!(toy_error(&tensors, &heuristic, &sensitivity) > target);

        let fit = fit(&tensors, &tolerance, target, |w| Ok(toy_error(&tensors, &w, &sensitivity))).unwrap();
        let measured = toy_error(&tensors, &fit.weights, &sensitivity);
        assert!(measured <= target, "{measured}");
        assert_eq!(fit.error, Some(measured));
        // 6 groups measured alone, then at most 5 rounds
        assert!(fit.evaluations <= 11, "{}", fit.evaluations);
        // the sensitive tensor is stored finer than the others, which stay int8
        let kind = |t: usize| fit.weights.get(&format!("visual.blocks.{t}.fc.weight")).unwrap().storage().kind();
        let bytes = |t: usize| fit.weights.get(&format!("visual.blocks.{t}.fc.weight")).unwrap().storage().bytes();
        assert!((0..6).filter(|&t| t != 4).all(|t| bytes(t) < bytes(4)), "{:?}", (0..6).map(kind).collect::<Vec<_>>());
        assert!((0..6).filter(|&t| t != 4).all(|t| kind(t).starts_with("int8")));
        // and the whole is smaller than f16
        let total: usize = fit.weights.iter().map(|(_, t)| t.storage().bytes()).sum();
        assert!(total < 6 * 16 * 256 * 2, "{total}");
    }

    #[test]
    fn fit_falls_back_to_f16_when_no_measured_choice_meets_the_target() {
        let tensors = toy(3);
        // a target only f32 meets: f32, measured exact
        let exact = fit(&tensors, &Tolerance::default(), 1e-30, |w| Ok(toy_error(&tensors, &w, &[1.0; 3]))).unwrap();
        assert_eq!(exact.error, Some(0.0));
        assert!(exact.weights.iter().all(|(_, t)| t.storage().kind() == "f32"));
        // a tower whose measured error never falls (as no storage could mend): f16, said so
        let fit = fit(&tensors, &Tolerance::default(), 1e-3, |_| Ok(0.5)).unwrap();
        assert_eq!(fit.error, None);
        assert!(fit.weights.iter().all(|(_, t)| t.storage().kind() == "f16"));
        // a measurement that fails is the conversion's error
        let e = super::fit(&tensors, &Tolerance::default(), 1e-3, |_| Err(Error::Device("lost".into()))).unwrap_err();
        assert_eq!(e.code(), "DEVICE_LOST");
    }
}
