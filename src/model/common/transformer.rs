//! Pre-norm transformer layer of both towers: the text encoders' (Apple's `TransformerEncoder`,
//! open_clip's `ResidualAttentionBlock`) and the ViT image towers' (timm's `Block`):
//! `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.

use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

use super::layers::{layer_norm, linear, linear_named, select_rows};
use super::multi_head_attention::{attention_rows, multi_head_attention};
use crate::config::LN_EPS;
use crate::cpu;
use crate::weights::VarBuilder;

/// One pre-norm transformer layer.
#[derive(Module, Debug)]
pub struct TransformerLayer {
    ln_1: LayerNorm,
    in_proj: Linear,
    out_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    c_proj: Linear,
    heads: usize,
}

/// Config of [`TransformerLayer`].
#[derive(Config, Debug)]
pub struct TransformerLayerConfig {
    /// Token width.
    pub dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP hidden width.
    pub ffn_dim: usize,
    /// LayerNorm epsilon.
    #[config(default = "LN_EPS")]
    pub ln_eps: f64,
}

impl TransformerLayerConfig {
    /// Loads `ln_1`, `attn.in_proj_{weight,bias}`, `attn.out_proj`, `ln_2`, `mlp.c_fc`,
    /// `mlp.c_proj` (open_clip's names).
    pub fn load(&self, vb: &VarBuilder) -> TransformerLayer {
        let (d, ffn) = (self.dim, self.ffn_dim);
        let ln = LayerNormConfig::new(d).with_epsilon(self.ln_eps);
        let attn = vb.pp("attn");
        // PyTorch's MultiheadAttention names its packed projection `in_proj_weight` / `in_proj_bias`.
        let in_proj = linear_named(&attn, ["in_proj_weight", "in_proj_bias"], &LinearConfig::new(d, 3 * d));
        TransformerLayer {
            ln_1: layer_norm(&vb.pp("ln_1"), &ln),
            in_proj,
            out_proj: linear(&attn.pp("out_proj"), &LinearConfig::new(d, d)),
            ln_2: layer_norm(&vb.pp("ln_2"), &ln),
            c_fc: linear(&vb.pp("mlp").pp("c_fc"), &LinearConfig::new(d, ffn)),
            c_proj: linear(&vb.pp("mlp").pp("c_proj"), &LinearConfig::new(ffn, d)),
            heads: self.heads,
        }
    }
}

impl TransformerLayer {
    /// `[B, L, D]` → `[B, L, D]`; `causal`: causal attention.
    pub fn forward(&self, x: Tensor<3>, causal: bool) -> Tensor<3> {
        let y =
            multi_head_attention(cpu::linear(&self.in_proj, self.ln_1.forward(x.clone()), false), self.heads, causal);
        let x = cpu::linear_add(&self.out_proj, y, x);
        self.mlp(x)
    }

    /// The rows of [`Self::forward`] at `positions` (`R` per sequence, `[B, R]` row-major):
    /// `[B, R, D]`. Keys and values come from every position, the queries, the attention output,
    /// its projection and the MLP only from those rows (a text tower's last layer, whose output
    /// is pooled at the end-of-text token).
    pub fn forward_rows(&self, x: Tensor<3>, positions: &[usize], causal: bool) -> Tensor<3> {
        let d = x.dims()[2];
        let h = self.ln_1.forward(x.clone());
        let kv = cpu::linear_columns(&self.in_proj, d..3 * d, h.clone());
        let q = cpu::linear_columns(&self.in_proj, 0..d, select_rows(h, positions));
        let y = attention_rows(q, kv, self.heads, causal.then_some(positions));
        let x = cpu::linear_add(&self.out_proj, y, select_rows(x, positions));
        self.mlp(x)
    }

    /// `x + mlp(ln_2(x))`.
    fn mlp(&self, x: Tensor<3>) -> Tensor<3> {
        let y = cpu::linear(&self.c_fc, self.ln_2.forward(x.clone()), true);
        cpu::linear_add(&self.c_proj, y, x)
    }
}
