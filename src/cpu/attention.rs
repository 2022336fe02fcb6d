//! Scaled dot-product multi-head attention read straight from the packed `qkv` projection
//! (`[B, N, 3·C]`, PyTorch's `[3, heads, head_dim]` order along the last axis): per head,
//! `softmax(Q·Kᵀ / √d + mask)·V` written into its columns of `[B, N, C]`. No permuted copies of
//! q, k and v (burn's reshape of the permuted `qkv` made each contiguous, a quarter of the text
//! tower's time in the browser). Causal attention needs no mask: row `i` of the scores is
//! normalised over its first `i + 1` entries and the rest are exact zeros, so a row's result does
//! not depend on the positions after it (what lets the text tower drop them, see
//! `TextEncoder::forward`).

use super::gemm::{Epilogue, Mat, gemm};
use super::math::{exp1, exp4};
use super::par;
use super::simd::F32x4;

/// `[B, N, C]` attention output from `qkv` `[B, N, 3C]`; `causal`: position `i` attends to
/// positions `0..=i` only.
pub fn attention(qkv: &[f32], b: usize, n: usize, c: usize, heads: usize, causal: bool) -> Vec<f32> {
    assert!(heads > 0 && c.is_multiple_of(heads));
    assert_eq!(qkv.len(), b * n * 3 * c);
    let hd = c / heads;
    let scale = (hd as f32).powf(-0.5);
    // Each (sequence, head) into its own [n, hd] block, in parallel; then into [B, N, C].
    let mut blocks = vec![0.0f32; b * heads * n * hd];
    let count = b * heads;
    let ranges = par::ranges(count, par::parts(count * n * n * hd * 2), 1);
    let cuts: Vec<usize> = ranges[1..].iter().map(|r| r.start * n * hd).collect();
    let pieces = par::split_at(&mut blocks, &cuts);
    par::run(ranges.into_iter().zip(pieces).collect(), |(r, dst)| {
        let mut scores = vec![0.0f32; n * n];
        for (i, out) in r.zip(dst.chunks_exact_mut(n * hd)) {
            let (bi, h) = (i / heads, i % heads);
            let x = &qkv[bi * n * 3 * c..(bi + 1) * n * 3 * c];
            let q = Mat::rows(&x[h * hd..], 3 * c);
            let kt = Mat::transposed(&x[c + h * hd..], 3 * c);
            gemm([n, n, hd], q, kt, &mut scores, n, &Epilogue { scale, ..Epilogue::default() });
            for (i, row) in scores.chunks_exact_mut(n).enumerate() {
                if causal {
                    let (seen, after) = row.split_at_mut(i + 1);
                    softmax_in_place(seen);
                    after.fill(0.0);
                } else {
                    softmax_in_place(row);
                }
            }
            let v = Mat::rows(&x[2 * c + h * hd..], 3 * c);
            gemm([n, hd, n], Mat::rows(&scores, n), v, out, hd, &Epilogue::default());
        }
    });
    let mut out = vec![0.0f32; b * n * c];
    for (i, block) in blocks.chunks_exact(n * hd).enumerate() {
        let (bi, h) = (i / heads, i % heads);
        for (t, row) in block.chunks_exact(hd).enumerate() {
            out[(bi * n + t) * c + h * hd..][..hd].copy_from_slice(row);
        }
    }
    out
}

/// Softmax of one row, in place.
pub fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let m = F32x4::splat(max);
    let mut sum = F32x4::splat(0.0);
    let mut chunks = row.chunks_exact_mut(4);
    for ch in &mut chunks {
        // SAFETY: 4 values.
        unsafe {
            let e = exp4(F32x4::load(ch.as_ptr()) - m);
            e.store(ch.as_mut_ptr());
            sum = sum + e;
        }
    }
    let mut total = sum.sum();
    for v in chunks.into_remainder() {
        *v = exp1(*v - max);
        total += *v;
    }
    let inv = 1.0 / total;
    row.iter_mut().for_each(|v| *v *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_naive_attention() {
        let (b, n, c, heads) = (2, 9, 16, 2);
        let hd = c / heads;
        let qkv: Vec<f32> = (0..b * n * 3 * c).map(|i| ((i * 29 % 83) as f32 - 41.0) / 30.0).collect();
        for causal in [false, true] {
            let got = attention(&qkv, b, n, c, heads, causal);
            for bi in 0..b {
                for h in 0..heads {
                    let at = |t: usize, part: usize, d: usize| qkv[(bi * n + t) * 3 * c + part * c + h * hd + d] as f64;
                    for i in 0..n {
                        let mut s: Vec<f64> = (0..n)
                            .map(|j| {
                                (0..hd).map(|d| at(i, 0, d) * at(j, 1, d)).sum::<f64>() / (hd as f64).sqrt()
                                    + if causal && j > i { f64::NEG_INFINITY } else { 0.0 }
                            })
                            .collect();
                        let mx = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        s.iter_mut().for_each(|v| *v = (*v - mx).exp());
                        let tot: f64 = s.iter().sum();
                        for d in 0..hd {
                            let want = (0..n).map(|j| s[j] / tot * at(j, 2, d)).sum::<f64>();
                            let g = got[(bi * n + i) * c + h * hd + d] as f64;
                            assert!((g - want).abs() < 1e-5, "b{bi} h{h} i{i} d{d}: {g} vs {want}");
                        }
                    }
                }
            }
        }
    }
}
