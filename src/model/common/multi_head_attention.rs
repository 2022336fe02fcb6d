//! Scaled dot-product multi-head attention on a packed `qkv` projection (Apple's
//! `MultiHeadAttention`, timm's `Attention`, PyTorch's `MultiheadAttention`), used by the
//! transformer layer and by FastViT's attention blocks.

use burn::prelude::*;
use burn::tensor::activation::softmax;

/// Multi-head attention over `qkv` `[B, N, 3·C]` laid out as `[3, heads, head_dim]` along the
/// last axis (PyTorch's `in_proj`/`qkv` order); `causal`: each position attends to itself and
/// the positions before it only.
pub fn multi_head_attention(qkv: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
    if crate::cpu::on_flex(&qkv) {
        return crate::cpu::attention(qkv, heads, causal);
    }
    let [b, n, c3] = qkv.dims();
    let qkv_device = qkv.device();
    let c = c3 / 3;
    let hd = c / heads;
    let qkv = qkv.reshape([b, n, 3, heads, hd]).permute([2, 0, 3, 1, 4]);
    let take = |i: usize| qkv.clone().narrow(0, i, 1).reshape([b, heads, n, hd]);
    let (q, k, v) = (take(0), take(1), take(2));
    let q = q * (hd as f64).powf(-0.5);
    let mut attn = q.matmul(k.swap_dims(2, 3));
    if causal {
        attn = attn + causal_mask(n, &qkv_device).reshape([1, 1, n, n]);
    }
    let attn = softmax(attn, 3);
    attn.matmul(v).swap_dims(1, 2).reshape([b, n, c])
}

/// The additive causal mask `[n, n]`: 0 on and below the diagonal, −∞ above (burn's ops; the CPU
/// kernel needs none).
fn causal_mask(n: usize, device: &Device) -> Tensor<2> {
    let data: Vec<f32> = (0..n * n).map(|i| if i % n > i / n { f32::NEG_INFINITY } else { 0.0 }).collect();
    Tensor::from_data(TensorData::new(data, [n, n]), device)
}
