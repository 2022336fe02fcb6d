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

use super::fused::{FusedTensor, Storage};
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

/// `values` quantised to int8 with one scale per `group` consecutive values of a row, after
/// dividing each column by the square root of its root-mean-square over the rows when `columns`
/// is set (those factors are stored with it).
pub fn int8(shape: &[usize], values: &[f32], group: usize, columns: bool) -> FusedTensor {
    let row = row_len(shape);
    let factors: Vec<f32> = if columns {
        let rows = (values.len() / row) as f64;
        let mut sum = vec![0f64; row];
        for r in values.chunks(row) {
            sum.iter_mut().zip(r).for_each(|(s, &v)| *s += f64::from(v).powi(2));
        }
        // the square root of each column's root-mean-square: half of a column's scale moves
        // into its factor, half stays in the rows' scales (a kernel whose input side carries a
        // folded BatchNorm has columns decades apart; moving all of it into the factors leaves
        // rows that do not follow the columns' pattern worse off than before)
        sum.iter().map(|s| (s / rows).sqrt().sqrt() as f32).collect()
    } else {
        Vec::new()
    };
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

/// `t` stored at `precision`; `tolerance` is the worst per-channel relative error `Auto`
/// accepts. Vectors and tensors holding non-finite values stay `f32`.
pub fn store(t: &FusedTensor, precision: Precision, tolerance: f64) -> FusedTensor {
    let values = t.to_f32();
    if !is_weight(t) || precision == Precision::F32 || values.iter().any(|v| !v.is_finite()) {
        return FusedTensor::f32(t.shape().to_vec(), values);
    }
    let shape = t.shape();
    let row = row_len(shape);
    match precision {
        Precision::F16 => f16(shape, &values),
        Precision::Int8 => int8(shape, &values, row, false),
        Precision::F32 => unreachable!("returned above"),
        Precision::Auto => {
            // Every candidate with its size, smallest first (f16 before an int8 whose scales and
            // column factors outweigh it, as in a small tensor); the first within tolerance wins.
            let numel = values.len();
            let groups = std::iter::once(row)
                .chain(GROUPS.into_iter().filter(|&g| g < row && row.is_multiple_of(g)))
                .filter(|_| row >= MIN_INT8_ROW);
            let mut candidates: Vec<(usize, Option<(usize, bool)>)> = groups
                .flat_map(|g| [(g, false), (g, true)])
                .map(|(g, columns)| (numel + 4 * (numel / g + if columns { row } else { 0 }), Some((g, columns))))
                .chain(std::iter::once((2 * numel, None)))
                .collect();
            candidates.sort_by_key(|&(bytes, _)| bytes);
            for (_, candidate) in candidates {
                let c = match candidate {
                    Some((g, columns)) => int8(shape, &values, g, columns),
                    None => f16(shape, &values),
                };
                if worst_channel_error(&values, &c.to_f32(), row) <= tolerance {
                    return c;
                }
            }
            FusedTensor::f32(shape.to_vec(), values)
        }
    }
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
}
