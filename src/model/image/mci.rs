//! MCi image encoders (FastViT): `mci.py` `FastViT` (v1 mci0–mci2) and timm's `FastVit`
//! (`fastvit_mci0`–`fastvit_mci4`, MobileCLIP2), with the CLIP projection head.
//!
//! stem (3 MobileOne blocks) → stages (PatchEmbed?, RepCPE?, RepMixer or attention blocks) →
//! final conv (MobileOne with SE) → global average pool → projection.

use burn::nn::Linear;
use burn::prelude::*;

use super::attention::{AttentionBlock, AttentionBlockConfig};
use super::mobileone::{MobileOneBlock, MobileOneBlockConfig};
use super::patch_embed::{PatchEmbed, PatchEmbedConfig};
use super::repcpe::{RepCpe, RepCpeConfig};
use super::repmixer::{RepMixerBlock, RepMixerBlockConfig};
use crate::config::{CONV_FFN_KERNEL, FastVitArch, TokenMixer};
use crate::model::layers::{linear, linear_in_out};
use crate::weights::Weights;

/// A FastViT block.
// Built once per model and never moved in a hot path: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum FastVitBlock {
    /// RepMixer block.
    RepMixer(RepMixerBlock),
    /// Attention block.
    Attention(AttentionBlock),
}

/// One FastViT stage.
#[derive(Module, Debug)]
pub struct FastVitStage {
    downsample: Option<PatchEmbed>,
    pos_emb: Option<RepCpe>,
    blocks: Vec<FastVitBlock>,
}

/// The MCi image encoder with its projection to the joint embedding space.
#[derive(Module, Debug)]
pub struct FastVit {
    stem: Vec<MobileOneBlock>,
    stages: Vec<FastVitStage>,
    final_conv: MobileOneBlock,
    head: Linear,
}

impl FastVit {
    /// Loads the encoder from canonical `visual.*` tensors (see [`crate::weights::names`]).
    pub fn load(arch: &FastVitArch, embed_dim: usize, w: &mut Weights) -> Self {
        let d0 = arch.embed_dims[0];
        let scale = arch.stem_use_scale_branch;
        let stem = vec![
            MobileOneBlockConfig::new(3, d0, [3, 3])
                .with_stride(2)
                .with_use_scale_branch(scale)
                .load(w, "visual.stem.0"),
            MobileOneBlockConfig::new(d0, d0, [3, 3])
                .with_stride(2)
                .with_groups(d0)
                .with_use_scale_branch(scale)
                .load(w, "visual.stem.1"),
            MobileOneBlockConfig::new(d0, d0, [1, 1]).with_use_scale_branch(scale).load(w, "visual.stem.2"),
        ];
        let mut stages = Vec::with_capacity(arch.layers.len());
        let mut prev = d0;
        for (i, &dim) in arch.embed_dims.iter().enumerate() {
            let p = format!("visual.stages.{i}");
            let downsample = (arch.downsamples[i] || prev != dim).then(|| {
                PatchEmbedConfig::new(prev, dim)
                    .with_patch_size(arch.down_patch_size)
                    .with_use_se(arch.se_downsamples[i])
                    .load(w, &format!("{p}.downsample"))
            });
            let pos_emb = arch.pos_embs[i].then(|| RepCpeConfig::new(dim).load(w, &format!("{p}.pos_emb")));
            let hidden = (dim as f64 * arch.mlp_ratios[i]) as usize;
            let k = arch.repmixer_kernel_size;
            let blocks = (0..arch.layers[i])
                .map(|j| {
                    let bp = format!("{p}.blocks.{j}");
                    match arch.token_mixers[i] {
                        TokenMixer::Repmixer => {
                            FastVitBlock::RepMixer(RepMixerBlockConfig::new(dim, hidden, [k, k], CONV_FFN_KERNEL).load(w, &bp))
                        }
                        TokenMixer::Attention => FastVitBlock::Attention(
                            AttentionBlockConfig::new(dim, hidden, arch.norm).with_head_dim(arch.head_dim).load(w, &bp),
                        ),
                    }
                })
                .collect();
            stages.push(FastVitStage { downsample, pos_emb, blocks });
            prev = dim;
        }
        let last = *arch.embed_dims.last().expect("validated arch");
        let features = arch.final_features();
        let final_conv = MobileOneBlockConfig::new(last, features, [3, 3])
            .with_groups(last)
            .with_use_se(true)
            .load(w, "visual.final_conv");
        let head = if w.contains("visual.head.proj") {
            // v1 GlobalPool2D: `x @ proj`, proj `[in, out]`, no bias.
            let proj = w.take("visual.head.proj", &[features, embed_dim]);
            linear_in_out(proj, None, w.device(), features, embed_dim)
        } else {
            let weight = w.take("visual.head.fc.weight", &[embed_dim, features]);
            let bias = w.take_vec("visual.head.fc.bias", embed_dim);
            linear(&weight, Some(bias), w.device())
        };
        Self { stem, stages, final_conv, head }
    }

    /// Unnormalised image features `[B, embed_dim]` from pixels `[B, 3, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = x;
        for block in &self.stem {
            x = block.forward(x);
        }
        for stage in &self.stages {
            if let Some(d) = &stage.downsample {
                x = d.forward(x);
            }
            if let Some(p) = &stage.pos_emb {
                x = p.forward(x);
            }
            for block in &stage.blocks {
                x = match block {
                    FastVitBlock::RepMixer(b) => b.forward(x),
                    FastVitBlock::Attention(b) => b.forward(x),
                };
            }
        }
        let x = self.final_conv.forward(x);
        let [b, c, _, _] = x.dims();
        let pooled = x.mean_dims(&[2, 3]).reshape([b, c]);
        self.head.forward(pooled)
    }
}
