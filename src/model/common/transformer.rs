//! Pre-norm transformer layer of both towers: the text encoders' (Apple's `TransformerEncoder`,
//! open_clip's `ResidualAttentionBlock`) and the ViT image towers' (timm's `Block`):
//! `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.

use burn::nn::{LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

use super::layers::{Norm, forward_linear, forward_linear_add, layer_norm, packed_linear, select_rows};
use super::multi_head_attention::{attention_rows, multi_head_attention};
use crate::config::LN_EPS;
use crate::cpu::{self, gemm};
use crate::weights::VarBuilder;

/// One pre-norm transformer layer.
#[derive(Module, Debug)]
pub struct TransformerLayer {
    ln_1: Norm,
    in_proj: Linear,
    out_proj: Linear,
    ln_2: Norm,
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
        self.load_packing(vb, gemm::PACKS_WEIGHTS)
    }

    /// [`Self::load`], the linear layers' weights packed for the CPU kernel when `pack` (see
    /// [`packed_linear`]).
    fn load_packing(&self, vb: &VarBuilder, pack: bool) -> TransformerLayer {
        let (d, ffn) = (self.dim, self.ffn_dim);
        let ln = LayerNormConfig::new(d).with_epsilon(self.ln_eps);
        let attn = vb.pp("attn");
        // PyTorch's MultiheadAttention names its packed projection `in_proj_weight` / `in_proj_bias`.
        let in_proj = packed_linear(&attn, ["in_proj_weight", "in_proj_bias"], &LinearConfig::new(d, 3 * d), pack);
        let linear = |vb: &VarBuilder, config| packed_linear(vb, ["weight", "bias"], &config, pack);
        TransformerLayer {
            ln_1: layer_norm(&vb.pp("ln_1"), &ln),
            in_proj,
            out_proj: linear(&attn.pp("out_proj"), LinearConfig::new(d, d)),
            ln_2: layer_norm(&vb.pp("ln_2"), &ln),
            c_fc: linear(&vb.pp("mlp").pp("c_fc"), LinearConfig::new(d, ffn)),
            c_proj: linear(&vb.pp("mlp").pp("c_proj"), LinearConfig::new(ffn, d)),
            heads: self.heads,
        }
    }
}

impl TransformerLayer {
    /// `[B, L, D]` → `[B, L, D]`; `causal`: causal attention.
    pub fn forward(&self, x: Tensor<3>, causal: bool) -> Tensor<3> {
        let y = multi_head_attention(
            forward_linear(&self.in_proj, self.ln_1.forward(x.clone()), false),
            self.heads,
            causal,
        );
        let x = forward_linear_add(&self.out_proj, y, x);
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
        let x = forward_linear_add(&self.out_proj, y, select_rows(x, positions));
        self.mlp(x)
    }

    /// `x + mlp(ln_2(x))`.
    fn mlp(&self, x: Tensor<3>) -> Tensor<3> {
        let y = forward_linear(&self.c_fc, self.ln_2.forward(x.clone()), true);
        forward_linear_add(&self.c_proj, y, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::{FusedTensor, FusedWeights};

    fn values(n: usize, seed: u32) -> Vec<f32> {
        gemm::tests::values(n, seed).into_iter().map(|v| v / 4.0).collect()
    }

    /// A layer built with its linear weights packed (the wasm build's) computes what the
    /// row-major one computes: whole layer, causal or not, and the pooled rows (which read the
    /// packed projection's query and key/value columns apart). Widths 40 and 72: 5 and 9 panels.
    #[test]
    fn packed_weights_give_the_same_layer() {
        let (d, ffn, heads) = (40, 72, 5);
        let mut w = FusedWeights::new();
        for (i, (name, shape)) in [
            ("ln_1.weight", vec![d]),
            ("ln_1.bias", vec![d]),
            ("attn.in_proj_weight", vec![3 * d, d]),
            ("attn.in_proj_bias", vec![3 * d]),
            ("attn.out_proj.weight", vec![d, d]),
            ("attn.out_proj.bias", vec![d]),
            ("ln_2.weight", vec![d]),
            ("ln_2.bias", vec![d]),
            ("mlp.c_fc.weight", vec![ffn, d]),
            ("mlp.c_fc.bias", vec![ffn]),
            ("mlp.c_proj.weight", vec![d, ffn]),
            ("mlp.c_proj.bias", vec![d]),
        ]
        .into_iter()
        .enumerate()
        {
            let n = shape.iter().product();
            w.insert(name, FusedTensor::f32(shape, values(n, i as u32 + 1)));
        }
        let device = Device::flex();
        let config = TransformerLayerConfig::new(d, heads, ffn);
        let plain = config.load_packing(&VarBuilder::new(w.clone(), device.clone()), false);
        let packed = config.load_packing(&VarBuilder::new(w, device.clone()), true);
        assert_eq!(packed.c_fc.weight.dims(), [ffn / 8 * d, 8], "stored packed");
        assert_eq!(plain.c_fc.weight.dims(), [d, ffn]);
        let x = Tensor::<3>::from_data(TensorData::new(values(2 * 9 * d, 99), [2, 9, d]), &device);
        let close = |a: Tensor<3>, b: Tensor<3>, what: &str| {
            let (a, b) = (a.into_data().try_to_vec::<f32>().unwrap(), b.into_data().try_to_vec::<f32>().unwrap());
            let err = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
            assert!(err < 1e-5, "{what}: max |Δ| {err}");
        };
        for causal in [false, true] {
            close(plain.forward(x.clone(), causal), packed.forward(x.clone(), causal), "forward");
            let rows = [3, 8];
            close(plain.forward_rows(x.clone(), &rows, causal), packed.forward_rows(x.clone(), &rows, causal), "rows");
        }
    }
}
