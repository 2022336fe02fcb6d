//! Pre-norm transformer layer of the text encoders (Apple's `TransformerEncoder`, open_clip's
//! `ResidualAttentionBlock`; the same block in the ViT image towers, timm's `Block`):
//! `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.

use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;

use crate::config::LN_EPS;
use crate::model::attention::multi_head_attention;
use crate::model::layers::{gelu, load_layer_norm_eps, load_linear};
use crate::weights::Weights;

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
    /// Loads `prefix.{ln_1, attn.in_proj_*, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}`.
    pub fn load(&self, w: &mut Weights, prefix: &str) -> TransformerLayer {
        let d = self.dim;
        let in_w = w.take(&format!("{prefix}.attn.in_proj_weight"), &[3 * d, d]);
        let in_b = w.take_vec(&format!("{prefix}.attn.in_proj_bias"), 3 * d);
        TransformerLayer {
            ln_1: load_layer_norm_eps(w, &format!("{prefix}.ln_1"), d, self.ln_eps),
            in_proj: crate::model::layers::linear(&in_w, Some(in_b), w.device()),
            out_proj: load_linear(w, &format!("{prefix}.attn.out_proj"), d, d, true),
            ln_2: load_layer_norm_eps(w, &format!("{prefix}.ln_2"), d, self.ln_eps),
            c_fc: load_linear(w, &format!("{prefix}.mlp.c_fc"), d, self.ffn_dim, true),
            c_proj: load_linear(w, &format!("{prefix}.mlp.c_proj"), self.ffn_dim, d, true),
            heads: self.heads,
        }
    }
}

impl TransformerLayer {
    /// `[B, L, D]` → `[B, L, D]`, with an optional additive `[L, L]` mask.
    pub fn forward(&self, x: Tensor<3>, mask: Option<Tensor<2>>) -> Tensor<3> {
        let y = multi_head_attention(self.in_proj.forward(self.ln_1.forward(x.clone())), self.heads, mask);
        let x = x + self.out_proj.forward(y);
        let y = self.c_proj.forward(gelu(self.c_fc.forward(self.ln_2.forward(x.clone()))));
        x + y
    }
}
