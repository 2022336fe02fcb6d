//! Calibration for `auto` storage: the inputs a conversion runs each tower on to measure what
//! its storage choice does to the embeddings ([`quantize::fit`]), and the accuracy each tower
//! is held to.
//!
//! The inputs are built into the crate, made at convert time, the same on every machine and in
//! the browser (nothing is downloaded):
//! - images: "dead leaves" pictures (occluding discs of power-law sizes, each shaded and some
//!   striped, over a graded background, with sensor-like noise), the standard synthetic model
//!   of natural images: like photos, their power spectrum falls as 1/f², they are made of flat
//!   and shaded regions split by sharp occlusion edges at every scale, and their gradients are
//!   heavy-tailed. A tower's activations on them spread over its channels as on photos (uniform
//!   noise, by contrast, drives the first stages with nothing but the highest frequencies, and
//!   flat images leave most channels idle). Eight looks cover what photos differ in most
//!   globally, to which channels with folded outlier BatchNorms react: a coloured scene, grey,
//!   dark with bright spots (night sky, microscopy), a light page with dark strokes, washed
//!   out, vivid, texture, smooth. Drawn at 1.5× the tower's size, they go through the model's
//!   own preprocessing (resize, crop, normalisation), as a photo does.
//!
//! What a fit measures on them is what it uses to move bytes between tensors; it never stores a
//! tensor coarser than the per-tensor error heuristic would ([`quantize::fit`]), since eight
//! images cannot see everything a photo collection does.
//! - texts: short captions of everyday scenes and zero-shot prompts.

use super::quantize::{self, Fit, Tolerance};
use super::{Architecture, FusedWeights, Towers};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::preprocess::{RgbImage, preprocess};

/// The worst image cosine to `f32` that `auto` aims for on its calibration images: the issue's
/// bar (0.999 over held-out photos) with half its error as margin for inputs unlike them.
pub const IMAGE_TARGET: f64 = 1.0 - 0.5 * (1.0 - 0.999);
/// The worst text cosine `auto` aims for on its calibration texts (the bar 0.998, halved error).
pub const TEXT_TARGET: f64 = 1.0 - 0.5 * (1.0 - 0.998);
/// Calibration images a conversion runs the image tower on.
pub const IMAGES: usize = 8;

/// The calibration texts.
pub const TEXTS: [&str; 12] = [
    "a photo of a dog.",
    "a photo of a cat sleeping on a sofa.",
    "a red car parked on a wet street at night",
    "two people riding bicycles along the beach at sunset",
    "a bowl of fresh fruit on a wooden kitchen table",
    "an aerial view of a city with tall buildings and a river",
    "a close-up photo of a yellow flower with a bee",
    "a black and white portrait of an old man smiling",
    "a plate of spaghetti with tomato sauce and basil.",
    "snow-covered mountains under a clear blue sky",
    "a screenshot of a spreadsheet with numbers and charts",
    "itap of a guitar.",
];

/// A small deterministic random source (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform()
    }
}

/// The look of a calibration image: photos differ most in their global statistics (brightness,
/// contrast, colour, how much of them is texture), and a tower with outlier channels reacts to
/// those first; one image of each.
#[derive(Clone, Copy, PartialEq)]
enum Look {
    /// Coloured dead leaves.
    Scene,
    /// The same in grey.
    Grey,
    /// Dark, with sparse small bright spots (night sky, fluorescence microscopy).
    Dark,
    /// Light, with thin dark strokes (a page of text, a drawing).
    Page,
    /// Washed out: low contrast, bright.
    Pale,
    /// Saturated colours.
    Vivid,
    /// Many small striped discs (foliage, gravel, fabric).
    Texture,
    /// A few large smooth regions (sky, walls), softened.
    Smooth,
}

const LOOKS: [Look; 8] =
    [Look::Scene, Look::Grey, Look::Dark, Look::Page, Look::Pale, Look::Vivid, Look::Texture, Look::Smooth];

/// Calibration image `index`, `size` × `size` pixels (see the module's doc).
pub fn image(index: usize, size: usize) -> RgbImage {
    let look = LOOKS[index % LOOKS.len()];
    let mut rng = Rng(0x6d6f_6269_6c65_636c ^ (index as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let s = size as f32;
    let mut px = vec![[0f32; 3]; size * size];
    // a graded background: two colours, top to bottom
    let (top, bottom): ([f32; 3], [f32; 3]) = match look {
        Look::Dark => ([0.02; 3], [0.06; 3]),
        Look::Page => ([0.95, 0.94, 0.9], [0.9, 0.9, 0.88]),
        _ => (
            [rng.range(0.3, 0.9), rng.range(0.3, 0.9), rng.range(0.3, 0.9)],
            [rng.range(0.0, 0.6), rng.range(0.0, 0.6), rng.range(0.0, 0.6)],
        ),
    };
    for (y, row) in px.chunks_mut(size).enumerate() {
        let t = y as f32 / s;
        row.iter_mut().for_each(|p| *p = std::array::from_fn(|c| top[c] * (1.0 - t) + bottom[c] * t));
    }
    // discs of radius r with density ∝ r⁻³ (scale invariance)
    let (rmin, rmax, discs) = match look {
        Look::Dark => (0.003 * s, 0.02 * s, 150),
        Look::Page => (0.004 * s, 0.012 * s, 900),
        Look::Texture => (0.01 * s, 0.08 * s, 400),
        Look::Smooth => (0.15 * s, 0.6 * s, 8),
        _ => (0.01 * s, 0.4 * s, 120),
    };
    for _ in 0..discs {
        let u = rng.uniform();
        let r = (rmin.powi(-2) - u * (rmin.powi(-2) - rmax.powi(-2))).powf(-0.5);
        let (cx, cy) = (rng.range(-0.1, 1.1) * s, rng.range(-0.1, 1.1) * s);
        let luma = rng.range(0.05, 0.95);
        let chroma = match look {
            Look::Grey | Look::Dark | Look::Page => 0.0,
            Look::Vivid => 0.6,
            _ => 0.25,
        };
        let mut colour: [f32; 3] = std::array::from_fn(|_| (luma + rng.range(-chroma, chroma)).clamp(0.0, 1.0));
        match look {
            Look::Dark => colour = [rng.range(0.5, 1.0); 3],
            Look::Page => colour = [rng.range(0.0, 0.2); 3],
            Look::Pale => colour = colour.map(|c| 0.65 + 0.3 * c),
            _ => {}
        }
        // shading across the disc, and stripes on a third of them (all, for textures)
        let (gx, gy) = (rng.range(-0.4, 0.4) / r, rng.range(-0.4, 0.4) / r);
        let striped = look == Look::Texture || rng.uniform() < 0.33;
        let stripes = (striped && !matches!(look, Look::Dark | Look::Page | Look::Smooth)).then(|| {
            let angle = rng.range(0.0, std::f32::consts::PI);
            let freq = rng.range(0.05, 0.6);
            (angle.cos() * freq, angle.sin() * freq, rng.range(0.1, 0.4))
        });
        // strokes on a page: thin bars, not discs
        let (ax, ay) = if look == Look::Page { (r * 4.0, r * 0.5) } else { (r, r) };
        let (x0, x1) = (((cx - ax).floor().max(0.0)) as usize, ((cx + ax).ceil().min(s)) as usize);
        let (y0, y1) = (((cy - ay).floor().max(0.0)) as usize, ((cy + ay).ceil().min(s)) as usize);
        for y in y0..y1 {
            for x in x0..x1 {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                if (dx / ax).powi(2) + (dy / ay).powi(2) > 1.0 {
                    continue;
                }
                let mut shade = 1.0 + gx * dx + gy * dy;
                if let Some((fx, fy, depth)) = stripes {
                    shade *= 1.0 - depth * (0.5 + 0.5 * (fx * x as f32 + fy * y as f32).sin());
                }
                px[y * size + x] = std::array::from_fn(|c| colour[c] * shade);
            }
        }
    }
    if look == Look::Smooth {
        // soften: a 5×5 box blur, twice
        for _ in 0..2 {
            let src = px.clone();
            for y in 0..size {
                for x in 0..size {
                    let mut sum = [0f32; 3];
                    let mut n = 0.0;
                    for yy in y.saturating_sub(2)..(y + 3).min(size) {
                        for xx in x.saturating_sub(2)..(x + 3).min(size) {
                            (0..3).for_each(|c| sum[c] += src[yy * size + xx][c]);
                            n += 1.0;
                        }
                    }
                    px[y * size + x] = sum.map(|v| v / n);
                }
            }
        }
    }
    let data = px
        .iter()
        .flat_map(|p| *p)
        .map(|v| (v * 255.0 + (rng.uniform() - 0.5) * 6.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    RgbImage { data, width: size, height: size }
}

/// The closed-loop `auto` storage of `fused` (`f32`, as folded) for `towers`: each tower kept
/// is fitted on its own ([`quantize::fit`]) against its `f32` embeddings of the calibration
/// inputs, to [`IMAGE_TARGET`] / [`TEXT_TARGET`]; other tensors (`logit_scale`) stay `f32`.
/// Returns the stored tensors and, per tower, what the fit measured.
pub fn store_auto(
    config: &ModelConfig,
    arch: &Architecture,
    fused: FusedWeights,
    towers: Towers,
    tolerance: &Tolerance,
) -> Result<(FusedWeights, Vec<(Towers, Fit)>)> {
    let mut out = FusedWeights::new();
    let mut fits = Vec::new();
    let mut tower_tensors = [FusedWeights::new(), FusedWeights::new()];
    for (name, t) in fused {
        if name.starts_with("visual.") {
            tower_tensors[0].insert(name, t);
        } else if name.starts_with("text.") {
            tower_tensors[1].insert(name, t);
        } else {
            out.insert(name, t);
        }
    }
    let logit_scale = out.get("logit_scale").cloned();
    for (tower, tensors) in [Towers::Image, Towers::Text].into_iter().zip(tower_tensors) {
        if !towers.keeps(if tower == Towers::Image { "visual." } else { "text." }) || tensors.is_empty() {
            continue;
        }
        let with_scale = |mut w: FusedWeights| {
            if let Some(l) = &logit_scale {
                w.insert("logit_scale", l.clone());
            }
            w
        };
        let mut pixels = Vec::new();
        if tower == Towers::Image {
            let size = config.preprocess.image_size;
            for i in 0..IMAGES {
                pixels.extend(preprocess(&image(i, size * 3 / 2).view(), &config.preprocess)?);
            }
        }
        let tokens = if tower == Towers::Text { tokens(&arch.text)? } else { Vec::new() };
        let embed = |w: FusedWeights| -> Result<Vec<Vec<f32>>> {
            let model = crate::MobileClip::tower(config.clone(), arch.clone(), with_scale(w), tower)?;
            if tower == Towers::Image { model.encode_pixels(&pixels, IMAGES) } else { model.encode_tokens(&tokens) }
        };
        let want = embed(tensors.clone())?;
        let target = 1.0 - if tower == Towers::Image { IMAGE_TARGET } else { TEXT_TARGET };
        let fit = quantize::fit(&tensors, tolerance, target, |w| {
            let got = embed(w)?;
            Ok(want.iter().zip(&got).map(|(a, b)| 1.0 - cosine(a, b)).fold(0.0, f64::max))
        })?;
        for (name, t) in fit.weights.iter() {
            out.insert(name, t.clone());
        }
        fits.push((tower, fit));
    }
    Ok((out, fits))
}

/// The calibration texts' token ids for a text tower. A tower whose vocabulary is smaller than
/// the tokenizer's (the reduced test models) gets each id folded into it, the end-of-text id
/// kept its largest (where the tower pools).
fn tokens(text: &crate::config::TextArch) -> Result<Vec<Vec<u32>>> {
    let tokenizer = crate::tokenizer::ClipTokenizer::new()?;
    let vocab = text.vocab_size as u32;
    TEXTS
        .iter()
        .map(|t| {
            let ids = tokenizer.encode_with_length(t, text.context_length)?;
            let eot = *ids.iter().max().expect("non-empty");
            Ok(if eot < vocab {
                ids
            } else {
                ids.iter().map(|&i| if i == eot { vocab - 1 } else { i % (vocab - 1) }).collect()
            })
        })
        .collect()
}

/// Cosine of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let n = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}
