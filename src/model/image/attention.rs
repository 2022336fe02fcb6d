//! Attention block of FastViT's last stages (`mci.py` `MHSA` + `AttentionBlock`, timm
//! `Attention` + `AttentionBlock`): `x + ls1 * mhsa(norm(x))`, then `x + ls2 * ffn(x)`.
//!
//! With BatchNorm (mci0–mci2) the norm is folded into the `qkv` projection; with the channel
//! LayerNorm of mci3/mci4 it runs on the token layout. Layer scales fold into `proj` and `fc2`.

use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;

use super::convffn::{ConvFfn, ConvFfnConfig};
use crate::config::{CONV_FFN_KERNEL, NormKind};
use crate::model::attention::multi_head_attention;
use crate::model::layers::{linear, load_layer_norm, load_layer_scale};
use crate::weights::Weights;
use crate::weights::fold::{BatchNorm, scale_rows};

/// FastViT attention block.
#[derive(Module, Debug)]
pub struct AttentionBlock {
    norm: Option<LayerNorm>,
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
    /// Loads `prefix.{norm, token_mixer.qkv, token_mixer.proj, layer_scale_1, mlp, layer_scale_2}`.
    pub fn load(&self, w: &mut Weights, prefix: &str) -> AttentionBlock {
        let d = self.dim;
        let mut qkv_w = w.take(&format!("{prefix}.token_mixer.qkv.weight"), &[3 * d, d]);
        let mut qkv_b = None;
        let norm = match self.norm {
            NormKind::LayerNorm2d => Some(load_layer_norm(w, &format!("{prefix}.norm"), d)),
            NormKind::BatchNorm => {
                // qkv(s ⊙ x + t) = (W · diag(s)) x + W t
                let (s, t) = BatchNorm::load(w, &format!("{prefix}.norm"), d).scale_shift();
                let bias: Vec<f32> =
                    qkv_w.data.chunks(d).map(|row| row.iter().zip(&t).map(|(a, b)| a * b).sum()).collect();
                qkv_w.data.chunks_mut(d).for_each(|row| row.iter_mut().zip(&s).for_each(|(a, b)| *a *= b));
                qkv_b = Some(bias);
                None
            }
        };
        let ls1 = load_layer_scale(w, &format!("{prefix}.layer_scale_1"), d);
        let mut proj_w = w.take(&format!("{prefix}.token_mixer.proj.weight"), &[d, d]);
        let mut proj_b = w.take_vec(&format!("{prefix}.token_mixer.proj.bias"), d);
        scale_rows(&mut proj_w.data, &ls1);
        scale_rows(&mut proj_b, &ls1);
        let ls2 = load_layer_scale(w, &format!("{prefix}.layer_scale_2"), d);
        let mlp = ConvFfnConfig::new(d, self.hidden, CONV_FFN_KERNEL).load(w, &format!("{prefix}.mlp"), Some(&ls2));
        let device = w.device();
        AttentionBlock {
            norm,
            qkv: linear(&qkv_w, qkv_b, device),
            proj: linear(&proj_w, Some(proj_b), device),
            mlp,
            heads: d / self.head_dim,
        }
    }
}

impl AttentionBlock {
    /// `[B, C, H, W]` → `[B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let mut tokens = x.clone().reshape([b, c, h * w]).swap_dims(1, 2);
        if let Some(norm) = &self.norm {
            tokens = norm.forward(tokens);
        }
        let y = multi_head_attention(self.qkv.forward(tokens), self.heads, None);
        let y = self.proj.forward(y).swap_dims(1, 2).reshape([b, c, h, w]);
        let x = x + y;
        x.clone() + self.mlp.forward(x)
    }
}
