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
    assert_eq!(qkv.len(), b * n * 3 * c);
    let part = |i: usize| Rows { data: qkv, ld: 3 * c, offset: i * c };
    let positions: Option<Vec<usize>> = causal.then(|| (0..b).flat_map(|_| 0..n).collect());
    attend(part(0), part(1), part(2), [b, n, n], c, heads, positions.as_deref())
}

/// Where the rows of one projection (queries, keys or values, `C` values a row) lie in a
/// buffer: row `t` of sequence `s` (`rows` per sequence) starts at `(s · rows + t) · ld + offset`.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    /// The buffer.
    pub data: &'a [f32],
    /// Distance between rows.
    pub ld: usize,
    /// Start of row 0's values.
    pub offset: usize,
}

/// `[B, R, C]` attention output of `r` query rows per sequence over `n` key and value rows per
/// sequence (`[b, r, n]`), `heads` heads of `C / heads` values; `positions` (causal attention):
/// the position in its sequence of each query row (`b · r` of them), which attends to positions
/// `0..=position` only.
pub fn attend(
    q: Rows,
    k: Rows,
    v: Rows,
    [b, r, n]: [usize; 3],
    c: usize,
    heads: usize,
    positions: Option<&[usize]>,
) -> Vec<f32> {
    assert!(heads > 0 && c.is_multiple_of(heads));
    if let Some(p) = positions {
        assert!(p.len() == b * r && p.iter().all(|&p| p < n), "query positions out of range");
    }
    let hd = c / heads;
    let scale = (hd as f32).powf(-0.5);
    fn at<'a>(x: Rows<'a>, rows: usize, s: usize, col: usize) -> &'a [f32] {
        &x.data[s * rows * x.ld + x.offset + col..]
    }
    // Each (sequence, head) into its own [r, hd] block, in parallel; then into [B, R, C].
    let mut blocks = vec![0.0f32; b * heads * r * hd];
    let count = b * heads;
    let ranges = par::ranges(count, par::parts(count * r * n * hd * 2), 1);
    let cuts: Vec<usize> = ranges[1..].iter().map(|g| g.start * r * hd).collect();
    let pieces = par::split_at(&mut blocks, &cuts);
    par::run(ranges.into_iter().zip(pieces).collect(), |(g, dst)| {
        let mut scores = vec![0.0f32; r * n];
        for (i, out) in g.zip(dst.chunks_exact_mut(r * hd)) {
            let (s, h) = (i / heads, i % heads);
            let qm = Mat::rows(at(q, r, s, h * hd), q.ld);
            let kt = Mat::transposed(at(k, n, s, h * hd), k.ld);
            gemm([r, n, hd], qm, kt, &mut scores, n, &Epilogue { scale, ..Epilogue::default() });
            for (t, row) in scores.chunks_exact_mut(n).enumerate() {
                match positions {
                    Some(p) => {
                        let (seen, after) = row.split_at_mut(p[s * r + t] + 1);
                        softmax_in_place(seen);
                        after.fill(0.0);
                    }
                    None => softmax_in_place(row),
                }
            }
            let vm = Mat::rows(at(v, n, s, h * hd), v.ld);
            gemm([r, hd, n], Mat::rows(&scores, n), vm, out, hd, &Epilogue::default());
        }
    });
    let mut out = vec![0.0f32; b * r * c];
    for (i, block) in blocks.chunks_exact(r * hd).enumerate() {
        let (s, h) = (i / heads, i % heads);
        for (t, row) in block.chunks_exact(hd).enumerate() {
            out[(s * r + t) * c + h * hd..][..hd].copy_from_slice(row);
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

    /// Queries of some rows only (`attend` with separate q and kv buffers, as a text tower's last
    /// layer calls it) give those rows of the full attention, causal or not.
    #[test]
    fn query_rows_match_the_full_attention() {
        let (b, n, c, heads) = (2, 11, 16, 2);
        let qkv: Vec<f32> = (0..b * n * 3 * c).map(|i| ((i * 37 % 89) as f32 - 44.0) / 35.0).collect();
        let positions = [0, 4, 10, 3, 7, 9]; // 3 rows per sequence
        let r = positions.len() / b;
        let mut q = Vec::new();
        let mut kv = Vec::new();
        for row in qkv.chunks_exact(3 * c) {
            kv.extend_from_slice(&row[c..]);
        }
        for (i, &p) in positions.iter().enumerate() {
            let s = i / r;
            q.extend_from_slice(&qkv[(s * n + p) * 3 * c..][..c]);
        }
        for causal in [false, true] {
            let full = attention(&qkv, b, n, c, heads, causal);
            let rows = |data, ld, offset| Rows { data, ld, offset };
            let got = attend(
                rows(&q, c, 0),
                rows(&kv, 2 * c, 0),
                rows(&kv, 2 * c, c),
                [b, r, n],
                c,
                heads,
                causal.then_some(&positions[..]),
            );
            for (i, &p) in positions.iter().enumerate() {
                let s = i / r;
                let (g, f) = (&got[i * c..][..c], &full[(s * n + p) * c..][..c]);
                // Natively the `gemm` crate's summation order may depend on the row count.
                let err = crate::cpu::max_error(g, f);
                assert!(err <= 1e-6, "row {i} (causal {causal}): {err:e}");
            }
        }
    }
}
