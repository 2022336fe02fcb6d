//! How much each image-tower tensor's storage error moves the embeddings, measured on the folded
//! `f32` model ([`Sensitivity`]), and what `auto` would make of it. Measured, not used by
//! `convert`: weighing `auto` by it gave worse files on the photos (below).
//!
//! The weight-space error `auto` measures per tensor ([`super::quantize`]) does not say what that
//! error does to the embeddings: on full-size MobileCLIP-S0 and MobileCLIP2-S0 with
//! trained-looking BatchNorm statistics, one tensor alone at its tolerance moves the image cosine
//! two orders of magnitude more than another. [`measure`] perturbs each tensor that may take
//! integers, one at a time, by a probe storage's actual error (int8 with one scale per channel,
//! [`PROBE_BITS`]), runs the folded model on built-in calibration images
//! ([`calibration_pixels`]: synthetic, generated here, no photo), and takes the embeddings' mean
//! `1 − cosine` to the unperturbed model's, divided by the probe's squared worst-channel error
//! ([`super::quantize::worst_channel_error`], the measure `auto` bounds), as the tensor's
//! sensitivity: the embedding error per unit of that measure.
//!
//! Only the ratio of a tensor's sensitivity to the tower's median is kept ([`Sensitivity::get`],
//! rounded to a power of √2 and within [`MAX_RATIO`] either way): calibration images predict
//! the photos' absolute error poorly (an earlier closed loop on such images was 6x too high on
//! one model and 5x too low on another), and the ratios between a model's own tensors are what
//! an allocation needs. [`super::Tolerance::for_tensor`] divides a tensor's tolerance by the
//! square root of its ratio: minimising the bytes, Σ nₜ · log(1/εₜ), for a summed embedding
//! error Σ sₜ · εₜ² gives εₜ ∝ √(nₜ / sₜ), the rate–distortion allocation (errors of different
//! tensors add roughly in variance); the tower's tolerance sets the total.
//!
//! Measured (benches/compact.rs with `MOBILECLIP_ACCURACY_SENSITIVITY=1`, full-size MobileCLIP-S0
//! with trained-looking BatchNorms, 120 images): image tolerance 0.008 gave a 14.50 MB image tower
//! (the weight-space rule alone: 13.34 MB), 0.012 gave 12.59 MB at image cosine min 0.99807, where
//! the weight-space rule alone reaches ≈ 0.9993 at that size. So the ratios measured on these
//! images do not rank the photos' sensitivities well enough to loosen tensors by them, and
//! `convert` passes ratios of 1. Open: whether photos-like calibration (or 256² instead of
//! [`SIDE`]², or the probe's Frobenius error instead of its worst channel's) changes that.
//!
//! Only FastViT image towers are probed (ViT towers carry no folded BatchNorm); the calibration
//! images are [`SIDE`]² (FastViT is convolutional, its attention stage too), a quarter of the
//! positions of a 256² input: the probe takes 3.5 s of CPU for MobileCLIP-S0's image tower
//! (`mobileclip convert --dtype auto --towers image`: 3.47 s user against 0.47 s without it).

use std::collections::BTreeMap;

use burn::prelude::*;

use super::quantize;
use super::{FusedWeights, Towers};
use crate::config::{Architecture, ImageArch};
use crate::error::Result;
use crate::model::clip::Clip;
use crate::preprocess::PreprocessConfig;

/// Side of the calibration images.
pub const SIDE: usize = 128;

/// How many calibration images.
pub const IMAGES: usize = 2;

/// Bits of the probe storage (one scale per output channel, nothing kept apart).
pub const PROBE_BITS: u32 = 8;

/// The most a tensor's sensitivity ratio moves its tolerance's square: its tolerance is within
/// 1/4 … 4 times the weight-space one.
pub const MAX_RATIO: f64 = 16.0;

/// Each probed tensor's sensitivity relative to its tower's median (see the module's doc);
/// a tensor not measured counts as 1.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sensitivity(BTreeMap<String, f64>);

impl Sensitivity {
    /// The ratio of the tensor `name`'s sensitivity to its tower's median (1 when not measured).
    pub fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(1.0)
    }

    /// The ratios measured, by tensor name.
    pub fn ratios(&self) -> &BTreeMap<String, f64> {
        &self.0
    }

    /// From measured sensitivities (embedding error per unit of squared weight error): each over
    /// their median, rounded to a power of √2 (so that the last bits of a measurement, which
    /// differ between CPUs, almost never change a file) and clamped to [`MAX_RATIO`] either way.
    pub fn from_measured(measured: BTreeMap<String, f64>) -> Self {
        let mut sorted: Vec<f64> = measured.values().copied().filter(|s| s.is_finite() && *s > 0.0).collect();
        sorted.sort_by(f64::total_cmp);
        let Some(&median) = sorted.get(sorted.len() / 2) else { return Self::default() };
        let limit = MAX_RATIO.log2();
        let ratios = measured
            .into_iter()
            .map(|(name, s)| {
                let steps = if s > 0.0 && s.is_finite() { (2.0 * (s / median).log2()).round() / 2.0 } else { -limit };
                (name, 2f64.powf(steps.clamp(-limit, limit)))
            })
            .collect();
        Self(ratios)
    }
}

/// The image-tower sensitivities of `fused` (folded `f32` tensors of the model `arch`, whose
/// images are normalised as `preprocess` says): empty for a model without a FastViT image tower
/// or without its tensors. See the module's doc.
pub fn measure(arch: &Architecture, preprocess: &PreprocessConfig, fused: &FusedWeights) -> Result<Sensitivity> {
    if !matches!(arch.image, ImageArch::FastVit(_)) || !fused.iter().any(|(n, _)| n.starts_with("visual.")) {
        return Ok(Sensitivity::default());
    }
    // a copy of the image tower's tensors (and `logit_scale`) for each model built: the model
    // takes them over, so what is held beside `fused` is one tower at a time
    let tower = || -> FusedWeights {
        fused.iter().filter(|(n, _)| !n.starts_with("text.")).map(|(n, t)| (n.to_string(), t.clone())).collect()
    };
    let pixels = calibration_pixels(IMAGES, SIDE, preprocess);
    let base = embed(arch, tower(), &pixels)?;
    let mut measured = BTreeMap::new();
    for (name, t) in fused.iter().filter(|(n, t)| n.starts_with("visual.") && quantize::takes_integers(t)) {
        let values = t.to_f32();
        let row = t.numel() / t.shape()[0];
        let probe = quantize::quantise(t.shape(), &values, PROBE_BITS, row, false, 0);
        let error = quantize::worst_channel_error(&values, &probe.to_f32(), row);
        if error == 0.0 || !error.is_finite() {
            continue; // nothing to learn from a tensor the probe stores exactly
        }
        let mut perturbed = tower();
        perturbed.insert(name, probe);
        let got = embed(arch, perturbed, &pixels)?;
        let moved = base.iter().zip(&got).map(|(a, b)| 1.0 - cosine(a, b)).sum::<f64>() / base.len() as f64;
        measured.insert(name.to_string(), moved.max(0.0) / (error * error));
    }
    Ok(Sensitivity::from_measured(measured))
}

/// The image embeddings of `pixels` ([`SIDE`]² images, CHW) by the image tower built from
/// `weights` (its tensors and `logit_scale`), on the CPU.
fn embed(arch: &Architecture, weights: FusedWeights, pixels: &[f32]) -> Result<Vec<Vec<f32>>> {
    let device = Device::flex();
    let clip = Clip::load(arch, weights, Towers::Image, &device)?;
    let count = pixels.len() / (3 * SIDE * SIDE);
    let x = Tensor::<4>::from_data(TensorData::new(pixels.to_vec(), [count, 3, SIDE, SIDE]), &device);
    let image = clip.image.as_ref().expect("built with its image tower");
    crate::now(crate::read_rows(image.forward(x)))
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b)).max(1e-30)
}

/// `count` deterministic synthetic images of `side`² pixels (CHW, normalised as `preprocess`
/// says): a colour gradient under 48 overlapping "dead leaves" (discs and rectangles, sizes
/// from a power law, each a flat colour with a striped texture of its own frequency and
/// direction), and a little pixel noise: edges at every scale, flat areas and textures, as
/// photos have. Generated from a fixed seed, the same on every platform (integer arithmetic
/// for the random numbers, `f32` arithmetic for the pixels).
pub fn calibration_pixels(count: usize, side: usize, preprocess: &PreprocessConfig) -> Vec<f32> {
    let mut out = vec![0f32; count * 3 * side * side];
    for (i, image) in out.chunks_mut(3 * side * side).enumerate() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (i as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        // xorshift64*: a uniform number in [0, 1)
        let mut uniform = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32
        };
        let s = side as f32;
        let mut rgb = vec![[0f32; 3]; side * side];
        let (from, to): ([f32; 3], [f32; 3]) = ([uniform(), uniform(), uniform()], [uniform(), uniform(), uniform()]);
        let angle = uniform() * std::f32::consts::TAU;
        let (ca, sa) = (angle.cos(), angle.sin());
        for (p, px) in rgb.iter_mut().enumerate() {
            let (x, y) = ((p % side) as f32 / s, (p / side) as f32 / s);
            let t = ((x - 0.5) * ca + (y - 0.5) * sa + 0.5).clamp(0.0, 1.0);
            *px = std::array::from_fn(|c| from[c] + (to[c] - from[c]) * t);
        }
        for _ in 0..48 {
            let (cx, cy) = (uniform() * s, uniform() * s);
            // radii from s/64 to s/3, density ∝ r^-3 (dead leaves' scale invariance)
            let (lo, hi) = (s / 64.0, s / 3.0);
            let r = 1.0 / (1.0 / (lo * lo) - uniform() * (1.0 / (lo * lo) - 1.0 / (hi * hi))).sqrt();
            let disc = uniform() < 0.5;
            let colour = [uniform(), uniform(), uniform()];
            let (freq, dir, depth) = (0.05 + uniform() * 0.6, uniform() * std::f32::consts::PI, uniform() * 0.3);
            let (cd, sd) = (dir.cos(), dir.sin());
            let (x0, x1) = ((cx - r).max(0.0) as usize, ((cx + r).ceil() as usize).min(side));
            let (y0, y1) = ((cy - r).max(0.0) as usize, ((cy + r).ceil() as usize).min(side));
            for y in y0..y1 {
                for x in x0..x1 {
                    let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                    if disc && dx * dx + dy * dy > r * r {
                        continue;
                    }
                    let stripe = 1.0 + depth * ((dx * cd + dy * sd) * freq).sin();
                    rgb[y * side + x] = std::array::from_fn(|c| colour[c] * stripe);
                }
            }
        }
        let plane = side * side;
        for (p, px) in rgb.iter().enumerate() {
            for c in 0..3 {
                let v = (px[c] + (uniform() - 0.5) * 0.04).clamp(0.0, 1.0);
                image[c * plane + p] = (v - preprocess.mean[c]) / preprocess.std[c];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_relative_to_the_median_rounded_and_bounded() {
        let measured: BTreeMap<String, f64> = [("a", 1e-3), ("b", 2e-3), ("c", 4e-3), ("d", 1.0), ("e", 0.0)]
            .into_iter()
            .map(|(n, s)| (n.to_string(), s))
            .collect();
        let s = Sensitivity::from_measured(measured);
        // median of the positive ones: 4e-3 (the upper of the middle two)
        assert_eq!(s.get("c"), 1.0);
        assert_eq!(s.get("b"), 0.5);
        assert_eq!(s.get("a"), 0.25);
        assert_eq!(s.get("d"), MAX_RATIO, "250x the median, clamped");
        assert_eq!(s.get("e"), 1.0 / MAX_RATIO, "unmoved");
        assert_eq!(s.get("never measured"), 1.0);
        // 3x the median rounds to 2^1.5
        let s = Sensitivity::from_measured([("x", 3.0), ("y", 1.0)].into_iter().map(|(n, v)| (n.into(), v)).collect());
        assert_eq!(s.get("y"), 2f64.powf(-1.5));
    }

    #[test]
    fn calibration_images_are_deterministic_and_varied() {
        let p = PreprocessConfig::unnormalized(64, crate::preprocess::Interpolation::Bilinear);
        let a = calibration_pixels(2, 64, &p);
        assert_eq!(a, calibration_pixels(2, 64, &p));
        assert_eq!(a.len(), 2 * 3 * 64 * 64);
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
        let (first, second) = a.split_at(a.len() / 2);
        assert_ne!(first, second, "each image its own");
        // not flat: the values spread over most of [0, 1]
        let mean = first.iter().sum::<f32>() / first.len() as f32;
        let var = first.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / first.len() as f32;
        assert!(var > 0.01, "variance {var}");
    }
}
