//! Attention block of FastViT's last stages (`mci.py` `MHSA` + `AttentionBlock`, timm
//! `Attention` + `AttentionBlock`): `x + ls1 * mhsa(norm(x))`, then `x + ls2 * ffn(x)`.
//!
//! With BatchNorm (mci0–mci2) the norm is folded into the `qkv` projection (which gains a
//! bias); with the channel LayerNorm of mci3/mci4 it runs on the token layout. The layer scales
//! are folded into `proj` and the FFN's `fc2`.

use burn::nn::{LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

use crate::config::{CONV_FFN_KERNEL, LN_EPS, NormKind};
use crate::cpu::gemm;
use crate::model::common::convffn::{ConvFfn, ConvFfnConfig};
use crate::model::common::layers::{Norm, forward_linear, forward_linear_add, fused_linear, layer_norm};
use crate::model::common::multi_head_attention::multi_head_attention;
use crate::model::gpu;
use crate::weights::VarBuilder;

/// FastViT attention block.
#[derive(Module, Debug)]
pub struct AttentionBlock {
    norm: Option<Norm>,
    qkv: Linear,
    proj: Linear,
    mlp: ConvFfn,
    heads: usize,
}

/// Config of [`AttentionBlock`].
#[derive(Config, Debug)]
pub struct AttentionBlockConfig {
    /// Channels.
    pub dim: usize,
    /// FFN hidden channels.
    pub hidden: usize,
    /// Per-head width.
    #[config(default = 32)]
    pub head_dim: usize,
    /// The block's norm.
    pub norm: NormKind,
}

impl AttentionBlockConfig {
    /// Loads `norm` (LayerNorm2d), `token_mixer.qkv`, `token_mixer.proj` and `mlp`.
    pub fn load(&self, vb: &VarBuilder) -> AttentionBlock {
        let d = self.dim;
        let (norm, qkv_bias) = match self.norm {
            NormKind::LayerNorm2d => {
                (Some(layer_norm(&vb.pp("norm"), &LayerNormConfig::new(d).with_epsilon(LN_EPS))), false)
            }
            NormKind::BatchNorm => (None, true),
        };
        let mixer = vb.pp("token_mixer");
        // Both run only through `forward_linear*`: their weights packed once for the CPU kernel.
        let linear = |vb: &VarBuilder, config| fused_linear(vb, ["weight", "bias"], &config, gemm::PACKS_WEIGHTS);
        AttentionBlock {
            norm,
            qkv: linear(&mixer.pp("qkv"), LinearConfig::new(d, 3 * d).with_bias(qkv_bias)),
            proj: linear(&mixer.pp("proj"), LinearConfig::new(d, d)),
            mlp: ConvFfnConfig::new(d, self.hidden, CONV_FFN_KERNEL).load(&vb.pp("mlp")),
            heads: d / self.head_dim,
        }
    }
}

impl AttentionBlock {
    /// `[B, C, H, W]` → `[B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let tokens = gpu::as_tokens(x);
        let normed = match &self.norm {
            Some(norm) => norm.forward(tokens.clone()),
            None => tokens.clone(),
        };
        let y = multi_head_attention(forward_linear(&self.qkv, normed, false), self.heads, false);
        // x + proj(y), in the token layout, back to [B, C, H, W].
        let x = gpu::as_image(forward_linear_add(&self.proj, y, tokens), [h, w]);
        self.mlp.forward_add(x.clone(), x)
    }
}
