//! MCi image encoders (FastViT): `mci.py` `FastViT` (v1 mci0–mci2) and timm's `FastVit`
//! (`fastvit_mci0`–`fastvit_mci4`, MobileCLIP2), with the CLIP projection head.
//!
//! stem (3 MobileOne blocks) → stages (PatchEmbed?, RepCPE?, RepMixer or attention blocks) →
//! final conv (MobileOne with SE) → global average pool → projection.

use burn::nn::Linear;
use burn::prelude::*;

use super::attention_block::{AttentionBlock, AttentionBlockConfig};
use super::patch_embed::{PatchEmbed, PatchEmbedConfig};
use crate::config::{CONV_FFN_KERNEL, FastVitArch, REPCPE_KERNEL, TokenMixer};
use crate::model::common::layers::image_head;
use crate::model::common::reparam_conv::{ReparamConv, ReparamConvConfig};
use crate::model::common::repmixer::{RepMixerBlock, RepMixerBlockConfig};
use crate::weights::VarBuilder;

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
    /// RepCPE.
    pos_emb: Option<ReparamConv>,
    blocks: Vec<FastVitBlock>,
}

/// The MCi image encoder with its projection to the joint embedding space.
#[derive(Module, Debug)]
pub struct FastVit {
    stem: Vec<ReparamConv>,
    stages: Vec<FastVitStage>,
    final_conv: ReparamConv,
    head: Linear,
}

impl FastVit {
    /// Loads the encoder from the scope of the image tower (`visual`): `stem`, `stages`,
    /// `final_conv`, `head`.
    pub fn load(arch: &FastVitArch, embed_dim: usize, vb: &VarBuilder) -> Self {
        let d0 = arch.embed_dims[0];
        let stem = vb.pp("stem");
        let stem = vec![
            ReparamConvConfig::new(3, d0, [3, 3]).with_stride(2).load(&stem.pp(0)),
            ReparamConvConfig::new(d0, d0, [3, 3]).with_stride(2).with_groups(d0).load(&stem.pp(1)),
            ReparamConvConfig::new(d0, d0, [1, 1]).load(&stem.pp(2)),
        ];
        let mut stages = Vec::with_capacity(arch.layers.len());
        let mut prev = d0;
        for (i, &dim) in arch.embed_dims.iter().enumerate() {
            let vb = vb.pp("stages").pp(i);
            let downsample = arch.has_downsample(i).then(|| {
                PatchEmbedConfig::new(prev, dim)
                    .with_patch_size(arch.down_patch_size)
                    .with_use_se(arch.se_downsamples[i])
                    .load(&vb.pp("downsample"))
            });
            let pos_emb = arch.pos_embs[i].then(|| {
                ReparamConvConfig::new(dim, dim, REPCPE_KERNEL)
                    .with_groups(dim)
                    .with_use_act(false)
                    .load(&vb.pp("pos_emb"))
            });
            let hidden = (dim as f64 * arch.mlp_ratios[i]) as usize;
            let k = arch.repmixer_kernel_size;
            let blocks = (0..arch.layers[i])
                .map(|j| {
                    let vb = vb.pp("blocks").pp(j);
                    match arch.token_mixers[i] {
                        TokenMixer::Repmixer => FastVitBlock::RepMixer(
                            RepMixerBlockConfig::new(dim, hidden, [k, k], CONV_FFN_KERNEL).load(&vb),
                        ),
                        TokenMixer::Attention => FastVitBlock::Attention(
                            AttentionBlockConfig::new(dim, hidden, arch.norm).with_head_dim(arch.head_dim).load(&vb),
                        ),
                    }
                })
                .collect();
            stages.push(FastVitStage { downsample, pos_emb, blocks });
            prev = dim;
        }
        let last = *arch.embed_dims.last().expect("validated arch");
        let features = arch.final_features();
        let final_conv = ReparamConvConfig::new(last, features, [3, 3])
            .with_groups(last)
            .with_use_se(true)
            .load(&vb.pp("final_conv"));
        let head = image_head(&vb.pp("head"), &vb.pp("head").pp("fc"), features, embed_dim);
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
