//! The CLIP pair of towers (`clip.py` `CLIP`, open_clip `CustomTextCLIP`) and its loading.

use burn::prelude::*;
use burn::tensor::DType;

use super::image::mci::FastVit;
use super::image::vit::VisionTransformer;
use super::text::TextEncoder;
use crate::config::{Architecture, ImageArch};
use crate::error::Result;
use crate::precision::{Precisions, TowerPrecision};
use crate::weights::{FusedWeights, Towers, VarBuilder};

/// The image tower.
// Built once per model and never moved in a hot path: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ImageEncoder {
    /// MCi / FastViT.
    FastVit(FastVit),
    /// ViT.
    Vit(VisionTransformer),
}

impl ImageEncoder {
    /// Unnormalised features `[B, E]`.
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<2> {
        match self {
            ImageEncoder::FastVit(m) => m.forward(pixels),
            ImageEncoder::Vit(m) => m.forward(pixels),
        }
    }
}

/// Both towers (or one of them, loaded from a compact file holding one) and the learned
/// temperature.
#[derive(Module, Debug)]
pub struct Clip {
    /// Image tower.
    pub image: Option<ImageEncoder>,
    /// Text tower.
    pub text: Option<TextEncoder>,
    /// `exp(logit_scale)` clamped to 100, as the reference returns it.
    pub logit_scale: f32,
}

impl Clip {
    /// Builds `towers` from fused weights (`visual.*`, `text.*`, `logit_scale`), each tower's
    /// parameters in its `precision`; every missing, mis-shaped or unexpected tensor (a tower
    /// not asked for included) is reported in one error.
    pub fn load(
        arch: &Architecture,
        weights: FusedWeights,
        towers: Towers,
        device: &Device,
        precision: Precisions,
    ) -> Result<Self> {
        let vb = VarBuilder::new(weights, device.clone());
        let clip = Self::build(arch, &vb, towers, precision);
        vb.finish()?;
        Ok(clip)
    }

    /// Checks that `weights` build `tower` (one tower, or both) exactly, as [`Clip::load`] of a
    /// file holding them would, and gives them back: the tower is built (on the CPU) from copies
    /// of its tensors taken one at a time, so this holds the weights and that tower's `f32`
    /// parameters, never a second copy of the weights. Another tower's tensors are left alone.
    #[cfg(feature = "flex")]
    pub fn check(arch: &Architecture, weights: FusedWeights, tower: Towers) -> (Result<()>, FusedWeights) {
        let vb = VarBuilder::checking(weights, tower, Device::flex());
        drop(Self::build(arch, &vb, tower, Precisions { image: None, text: None }));
        vb.finish_checking()
    }

    /// `precision`: each tower's (`None`: `f32`).
    fn build(arch: &Architecture, vb: &VarBuilder, towers: Towers, precision: Precisions) -> Self {
        let scope =
            |name: &str, p: Option<TowerPrecision>| vb.pp(name).with_precision(p.unwrap_or(TowerPrecision::F32));
        let image = towers.has_image().then(|| {
            let vb = scope("visual", precision.image);
            match &arch.image {
                ImageArch::FastVit(a) => ImageEncoder::FastVit(FastVit::load(a, arch.embed_dim, &vb)),
                ImageArch::Vit(a) => ImageEncoder::Vit(VisionTransformer::load(a, arch.embed_dim, &vb)),
            }
        });
        let text =
            towers.has_text().then(|| TextEncoder::load(&arch.text, arch.embed_dim, &scope("text", precision.text)));
        let raw = vb.host("logit_scale", &[1]).data[0];
        Self { image, text, logit_scale: raw.exp().clamp(0.0, 100.0) }
    }
}

/// L2-normalises rows of `[B, E]`, as `F.normalize(x, dim=-1)` (eps 1e-12), in `f32` (the
/// features of an `f16` tower are widened first: embeddings are always `f32`).
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let x = x.cast(DType::F32);
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}
