//! Scaled dot-product multi-head attention on a packed `qkv` projection (Apple's
//! `MultiHeadAttention`, timm's `Attention`, PyTorch's `MultiheadAttention`), used by the
//! transformer layer and by FastViT's attention blocks; and of some query rows only over all
//! keys and values ([`attention_rows`], a text tower's last layer).

use burn::prelude::*;
use burn::tensor::activation::softmax;

/// Multi-head attention over `qkv` `[B, N, 3·C]` laid out as `[3, heads, head_dim]` along the
/// last axis (PyTorch's `in_proj`/`qkv` order); `causal`: each position attends to itself and
/// the positions before it only.
pub fn multi_head_attention(qkv: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
    if crate::cpu::on_flex(&qkv) {
        return crate::cpu::attention(qkv, heads, causal);
    }
    if crate::model::gpu::fused_kernels(&qkv) && qkv.dims()[1] <= crate::model::gpu::MAX_ATTENTION_KEYS {
        return crate::model::gpu::attention(qkv, heads, causal);
    }
    let [b, n, c3] = qkv.dims();
    let device = qkv.device();
    let hd = c3 / 3 / heads;
    let qkv = qkv.reshape([b, n, 3, heads, hd]).permute([2, 0, 3, 1, 4]);
    let take = |i: usize| qkv.clone().narrow(0, i, 1).reshape([b, heads, n, hd]);
    let positions: Vec<usize> = (0..n).collect();
    let mask = causal.then(|| causal_mask(&positions, n, (&device, qkv.dtype())).reshape([1, 1, n, n]));
    attend(take(0), take(1), take(2), mask)
}

/// Multi-head attention of queries `q` `[B, R, C]` over keys and values `kv` `[B, N, 2·C]`
/// (`[2, heads, head_dim]` along the last axis): `[B, R, C]`. `positions` (causal attention):
/// the position in its sequence of each query row (`B·R`, row-major), which attends to
/// positions `0..=position` only.
pub fn attention_rows(q: Tensor<3>, kv: Tensor<3>, heads: usize, positions: Option<&[usize]>) -> Tensor<3> {
    if crate::cpu::on_flex(&q) {
        return crate::cpu::attention_rows(q, kv, heads, positions);
    }
    if crate::model::gpu::fused_kernels(&q) && kv.dims()[1] <= crate::model::gpu::MAX_ATTENTION_KEYS {
        return crate::model::gpu::attention_rows(q, kv, heads, positions);
    }
    let [b, r, c] = q.dims();
    let n = kv.dims()[1];
    let device = q.device();
    let hd = c / heads;
    let kv = kv.reshape([b, n, 2, heads, hd]).permute([2, 0, 3, 1, 4]);
    let take = |i: usize| kv.clone().narrow(0, i, 1).reshape([b, heads, n, hd]);
    let mask = positions.map(|p| causal_mask(p, n, (&device, q.dtype())).reshape([b, 1, r, n]));
    attend(q.reshape([b, r, heads, hd]).swap_dims(1, 2), take(0), take(1), mask)
}

/// `softmax(q·kᵀ / √d + mask)·v` with burn's ops, per head (`[B, heads, rows, head_dim]`),
/// merged into `[B, R, C]`.
fn attend(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<Tensor<4>>) -> Tensor<3> {
    let [b, heads, r, hd] = q.dims();
    let q = q * (hd as f64).powf(-0.5);
    let mut attn = q.matmul(k.swap_dims(2, 3));
    if let Some(mask) = mask {
        attn = attn + mask;
    }
    let attn = softmax(attn, 3);
    attn.matmul(v).swap_dims(1, 2).reshape([b, r, heads * hd])
}

/// The additive causal mask `[positions.len(), n]`: row `i` 0 up to column `positions[i]`, −∞
/// after (burn's ops; the CPU kernel needs none), on `on`'s device in the scores' type.
fn causal_mask(positions: &[usize], n: usize, on: impl Into<burn::tensor::TensorCreationOptions>) -> Tensor<2> {
    let data: Vec<f32> =
        positions.iter().flat_map(|&p| (0..n).map(move |j| if j > p { f32::NEG_INFINITY } else { 0.0 })).collect();
    Tensor::from_data(TensorData::new(data, [positions.len(), n]), on)
}
