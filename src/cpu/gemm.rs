//! Matrix product with a fused epilogue: `C = act(A·B + bias) + residual`.
//!
//! On wasm the product runs on this module's SIMD128 kernel: 4×8 register tiles (8 accumulators,
//! which V8 keeps in registers; the `gemm` crate's 12×4 tiles spill), blocked for the caches
//! (`KC` rows of B by `NC` columns of B packed into contiguous panels). The epilogue runs on the tile while
//! it is in registers. Natively the `gemm` crate (AVX2/FMA/AVX-512 by runtime detection) computes
//! the product and the epilogue is a second pass.

use super::math::gelu4;
use super::par;
use super::simd::F32x4;
#[cfg(not(target_arch = "wasm32"))]
use super::{
    math::gelu,
    simd::{Isa, Vector},
};

/// A strided view of a matrix: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix with rows `ld` apart.
    pub fn rows(data: &'a [f32], ld: usize) -> Self {
        Self { data, rs: ld, cs: 1 }
    }

    /// The transpose of a row-major matrix with rows `ld` apart.
    pub fn transposed(data: &'a [f32], ld: usize) -> Self {
        Self { data, rs: 1, cs: ld }
    }

    /// Checks that an `r × c` matrix fits in `data`.
    fn check(&self, r: usize, c: usize) {
        if r > 0 && c > 0 {
            assert!((r - 1) * self.rs + (c - 1) * self.cs < self.data.len(), "matrix view out of bounds");
        }
    }
}

/// A bias added before the activation.
#[derive(Clone, Copy)]
pub enum Bias<'a> {
    /// None.
    None,
    /// One value per row of C (NCHW convolutions: per output channel).
    Row(&'a [f32]),
    /// One value per column of C (linear layers on tokens).
    Col(&'a [f32]),
}

/// What is applied to each value of `A·B` before it is stored.
#[derive(Clone, Copy)]
pub struct Epilogue<'a> {
    /// Bias.
    pub bias: Bias<'a>,
    /// Exact GELU after the bias.
    pub gelu: bool,
    /// Added last: a matrix laid out like C (`ld` apart rows).
    pub residual: Option<(&'a [f32], usize)>,
    /// Scale of the product (before the bias).
    pub scale: f32,
}

impl Default for Epilogue<'_> {
    fn default() -> Self {
        Self { bias: Bias::None, gelu: false, residual: None, scale: 1.0 }
    }
}

/// `C[m × n] (row-major, rows ldc apart) = epilogue(A[m × k] · B[k × n])`; `[m, n, k]`. Large
/// products are split by rows over the thread pool (see [`super::par`]).
pub fn gemm([m, n, k]: [usize; 3], a: Mat, b: Mat, c: &mut [f32], ldc: usize, ep: &Epilogue) {
    if m == 0 || n == 0 {
        return;
    }
    a.check(m, k);
    b.check(k, n);
    assert!(n <= ldc && (m - 1) * ldc + n <= c.len(), "output out of bounds");
    match ep.bias {
        Bias::Row(v) => assert!(v.len() >= m),
        Bias::Col(v) => assert!(v.len() >= n),
        Bias::None => {}
    }
    if let Some((r, ld)) = ep.residual {
        assert!((m - 1) * ld + n <= r.len(), "residual out of bounds");
    }
    let rows = par::ranges(m, par::parts(m * n * k.max(1)), 4);
    if rows.len() <= 1 {
        return serial([m, n, k], a, b, c, ldc, ep);
    }
    let cuts: Vec<usize> = rows[1..].iter().map(|r| r.start * ldc).collect();
    let pieces = par::split_at(c, &cuts);
    par::run(rows.into_iter().zip(pieces).collect(), |(r, piece)| {
        let a = Mat { data: &a.data[r.start * a.rs..], ..a };
        let ep = Epilogue {
            bias: match ep.bias {
                Bias::Row(v) => Bias::Row(&v[r.start..]),
                other => other,
            },
            residual: ep.residual.map(|(v, ld)| (&v[r.start * ld..], ld)),
            ..*ep
        };
        serial([r.len(), n, k], a, b, piece, ldc, &ep);
    });
}

/// [`gemm`] on the calling thread (arguments checked).
fn serial([m, n, k]: [usize; 3], a: Mat, b: Mat, c: &mut [f32], ldc: usize, ep: &Epilogue) {
    #[cfg(target_arch = "wasm32")]
    own::gemm([m, n, k], a, b, c, ldc, ep);
    #[cfg(not(target_arch = "wasm32"))]
    native([m, n, k], a, b, c, ldc, ep);
}

/// The `gemm` crate's product, then the epilogue as a second pass.
#[cfg(not(target_arch = "wasm32"))]
fn native(mnk: [usize; 3], a: Mat, b: Mat, c: &mut [f32], ldc: usize, ep: &Epilogue) {
    native_on(Isa::best(), mnk, a, b, c, ldc, ep);
}

/// [`native`] with the epilogue on the vectors of `isa`.
#[cfg(not(target_arch = "wasm32"))]
fn native_on(isa: Isa, [m, n, k]: [usize; 3], a: Mat, b: Mat, c: &mut [f32], ldc: usize, ep: &Epilogue) {
    // SAFETY: the views were checked to hold m × k, k × n and m × n elements (with their strides).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            false,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            0.0,
            ep.scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    if matches!(ep.bias, Bias::None) && !ep.gelu && ep.residual.is_none() {
        return;
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` is only chosen where the CPU has AVX2 and FMA.
        Isa::Avx2 => unsafe { finish_avx2([m, n], c, ldc, ep) },
        Isa::V4 => finish::<F32x4>([m, n], c, ldc, ep),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn finish_avx2(mn: [usize; 2], c: &mut [f32], ldc: usize, ep: &Epilogue) {
    finish::<super::simd::F32x8>(mn, c, ldc, ep);
}

/// Applies bias, GELU and residual to the `m × n` product in `c` (the scale is already in).
#[cfg(not(target_arch = "wasm32"))]
#[inline(always)]
fn finish<V: Vector>([m, n]: [usize; 2], c: &mut [f32], ldc: usize, ep: &Epilogue) {
    for i in 0..m {
        let row = &mut c[i * ldc..i * ldc + n];
        let residual = ep.residual.map(|(r, ld)| &r[i * ld..i * ld + n]);
        let mut j = 0;
        while j + V::LANES <= n {
            // SAFETY: j + LANES ≤ n for the row, the bias (≥ n columns) and the residual row.
            unsafe {
                let mut v = V::load(row.as_ptr().add(j));
                v = match ep.bias {
                    Bias::Row(b) => v + V::splat(b[i]),
                    Bias::Col(b) => v + V::load(b.as_ptr().add(j)),
                    Bias::None => v,
                };
                if ep.gelu {
                    v = gelu(v);
                }
                if let Some(r) = residual {
                    v = v + V::load(r.as_ptr().add(j));
                }
                v.store(row.as_mut_ptr().add(j));
            }
            j += V::LANES;
        }
        for j in j..n {
            let mut v = row[j]
                + match ep.bias {
                    Bias::Row(b) => b[i],
                    Bias::Col(b) => b[j],
                    Bias::None => 0.0,
                };
            if ep.gelu {
                v = super::math::gelu1(v);
            }
            if let Some(r) = residual {
                v += r[j];
            }
            row[j] = v;
        }
    }
}

/// The SIMD128 kernel (compiled natively too, for its tests).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) mod own {
    use super::*;

    /// Rows of a register tile.
    const MR: usize = 4;
    /// Columns of a register tile (two vectors).
    const NR: usize = 8;
    /// Depth of a block of the product.
    const KC: usize = 256;
    /// Columns of a block of B.
    const NC: usize = 256;

    type Acc<const R: usize> = [[F32x4; 2]; R];

    /// `A[R × kc] · B[kc × 8]` added to `acc`; `a` strided `(rsa, csa)`, `b` rows `ldb` apart.
    #[cfg_attr(not(all(target_arch = "wasm32", feature = "relaxed-simd")), inline(always))]
    #[cfg_attr(all(target_arch = "wasm32", feature = "relaxed-simd"), target_feature(enable = "relaxed-simd"))]
    unsafe fn product<const R: usize>(
        acc: &mut Acc<R>,
        kc: usize,
        a: *const f32,
        rsa: usize,
        csa: usize,
        b: *const f32,
        ldb: usize,
    ) {
        unsafe {
            let mut pa = a;
            let mut pb = b;
            for _ in 0..kc {
                let b0 = F32x4::load(pb);
                let b1 = F32x4::load(pb.add(4));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let av = F32x4::load_splat(pa.add(r * rsa));
                    acc[0] = av.mul_add(b0, acc[0]);
                    acc[1] = av.mul_add(b1, acc[1]);
                }
                pa = pa.add(csa);
                pb = pb.add(ldb);
            }
        }
    }

    /// One `R × 8` tile of C at `(i, j)` for the depth block `k0..k0 + kc` (`b` points at the
    /// block's row 0, column j; rows `ldb` apart). `out` gets the tile, rows `ldo` apart: C
    /// itself, or a scratch tile for the last, partial panel (`cols` < 8 valid columns).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize>(
        i: usize,
        j: usize,
        k0: usize,
        kc: usize,
        k: usize,
        a: &Mat,
        b: *const f32,
        ldb: usize,
        out: *mut f32,
        ldo: usize,
        cols: usize,
        ep: &Epilogue,
    ) {
        unsafe {
            let zero = F32x4::splat(0.0);
            let mut acc: Acc<R> = [[zero; 2]; R];
            if k0 > 0 {
                for (r, acc) in acc.iter_mut().enumerate() {
                    acc[0] = F32x4::load(out.add(r * ldo));
                    acc[1] = F32x4::load(out.add(r * ldo + 4));
                }
            }
            product::<R>(&mut acc, kc, a.data.as_ptr().add(i * a.rs + k0 * a.cs), a.rs, a.cs, b, ldb);
            if k0 + kc == k {
                let scale = F32x4::splat(ep.scale);
                for (r, acc) in acc.iter_mut().enumerate() {
                    for (h, v) in acc.iter_mut().enumerate() {
                        let mut x = *v * scale;
                        match ep.bias {
                            Bias::Row(bias) => x = x + F32x4::splat(bias[i + r]),
                            Bias::Col(bias) => {
                                if cols == NR {
                                    x = x + F32x4::load(bias.as_ptr().add(j + 4 * h));
                                } else {
                                    let mut lanes = [0.0; 4];
                                    for (l, lane) in lanes.iter_mut().enumerate() {
                                        if 4 * h + l < cols {
                                            *lane = bias[j + 4 * h + l];
                                        }
                                    }
                                    x = x + F32x4::load(lanes.as_ptr());
                                }
                            }
                            Bias::None => {}
                        }
                        if ep.gelu {
                            x = gelu4(x);
                        }
                        *v = x;
                    }
                }
                if let Some((res, ld)) = ep.residual {
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let row = res.as_ptr().add((i + r) * ld + j);
                        if cols == NR {
                            acc[0] = acc[0] + F32x4::load(row);
                            acc[1] = acc[1] + F32x4::load(row.add(4));
                        } else {
                            let mut lanes = [0.0; NR];
                            core::ptr::copy_nonoverlapping(row, lanes.as_mut_ptr(), cols);
                            acc[0] = acc[0] + F32x4::load(lanes.as_ptr());
                            acc[1] = acc[1] + F32x4::load(lanes.as_ptr().add(4));
                        }
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                acc[0].store(out.add(r * ldo));
                acc[1].store(out.add(r * ldo + 4));
            }
        }
    }

    /// Where a block of B is read from: its panels of 8 columns, `panel` apart, rows `ld` apart
    /// (packed: `kc · 8` and 8; B itself, row-major: 8 and B's row stride).
    #[derive(Clone, Copy)]
    struct Panels {
        data: *const f32,
        panel: usize,
        ld: usize,
    }

    /// One block of C: columns `jb..jb + nc` (B's block in `panels`) for the depth block
    /// `k0..k0 + kc`, row tile by row tile (the tile of A stays in L1 across the panels), panel
    /// by panel; the right edge (< 8 columns, packed panels only) through a zero-padded scratch
    /// tile.
    #[allow(clippy::too_many_arguments)]
    unsafe fn block(
        m: usize,
        jb: usize,
        nc: usize,
        k0: usize,
        kc: usize,
        k: usize,
        a: &Mat,
        panels: Panels,
        c: *mut f32,
        ldc: usize,
        ep: &Epilogue,
    ) {
        unsafe {
            let mut scratch = [0.0f32; MR * NR];
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(MR);
                let mut j = jb;
                while j < jb + nc {
                    let cols = (jb + nc - j).min(NR);
                    let b = panels.data.add((j - jb) / NR * panels.panel);
                    let ldb = panels.ld;
                    let edge = cols < NR;
                    let (out, ldo) = if edge { (scratch.as_mut_ptr(), NR) } else { (c.add(i * ldc + j), ldc) };
                    if edge && k0 > 0 {
                        for r in 0..rows {
                            core::ptr::copy_nonoverlapping(c.add((i + r) * ldc + j), out.add(r * NR), cols);
                        }
                    }
                    match rows {
                        4 => tile::<4>(i, j, k0, kc, k, a, b, ldb, out, ldo, cols, ep),
                        3 => tile::<3>(i, j, k0, kc, k, a, b, ldb, out, ldo, cols, ep),
                        2 => tile::<2>(i, j, k0, kc, k, a, b, ldb, out, ldo, cols, ep),
                        _ => tile::<1>(i, j, k0, kc, k, a, b, ldb, out, ldo, cols, ep),
                    }
                    if edge {
                        for r in 0..rows {
                            core::ptr::copy_nonoverlapping(out.add(r * NR), c.add((i + r) * ldc + j), cols);
                        }
                    }
                    j += cols;
                }
                i += rows;
            }
        }
    }

    /// Copies rows `k0..k0 + kc`, columns `jb..jb + nc` of B into panels of 8 columns
    /// (`[panel][row][8]`, the last one zero-padded): contiguous for the kernel whatever B's
    /// strides (rows of weights and NCHW activations are often a multiple of 4 KiB apart, which
    /// maps every row of a panel to the same L1 set).
    fn pack_block(b: &Mat, k0: usize, kc: usize, jb: usize, nc: usize, pack: &mut [f32]) {
        let panels = nc.div_ceil(NR);
        for q in 0..panels {
            let j = jb + q * NR;
            let cols = (jb + nc - j).min(NR);
            let dst = &mut pack[q * kc * NR..(q + 1) * kc * NR];
            if b.cs == 1 && cols == NR {
                for (p, d) in dst.chunks_exact_mut(NR).enumerate() {
                    let src = (k0 + p) * b.rs + j;
                    d.copy_from_slice(&b.data[src..src + NR]);
                }
            } else {
                for (p, d) in dst.chunks_exact_mut(NR).enumerate() {
                    for (l, v) in d.iter_mut().enumerate() {
                        *v = if l < cols { b.data[(k0 + p) * b.rs + (j + l) * b.cs] } else { 0.0 };
                    }
                }
            }
        }
    }

    /// See [`super::gemm`]; the views were checked by the caller.
    pub fn gemm([m, n, k]: [usize; 3], a: Mat, b: Mat, c: &mut [f32], ldc: usize, ep: &Epilogue) {
        // The depth is split evenly when it is not much deeper than one block.
        let kc_max = if k <= KC + KC / 4 { k } else { KC };
        // A few rows (a text tower's pooled rows) read each value of B once or twice: packing it
        // would cost as much as the product, so the kernel reads row-major B in place (whole
        // panels only).
        let direct = m <= 2 * MR && b.cs == 1 && n.is_multiple_of(NR);
        let mut pack = if direct { Vec::new() } else { vec![0.0f32; kc_max.max(1) * NC.min(n).next_multiple_of(NR)] };
        let cp = c.as_mut_ptr();
        let mut k0 = 0;
        // One pass even for k = 0 (an empty product: the epilogue of zeros).
        loop {
            let kc = kc_max.min(k - k0);
            let mut jb = 0;
            while jb < n {
                let nc = NC.min(n - jb);
                let panels = if direct {
                    // k0 + kc ≤ k and jb + nc ≤ n: inside the checked view (kc = 0 reads nothing).
                    Panels { data: b.data[(k0 * b.rs + jb).min(b.data.len())..].as_ptr(), panel: NR, ld: b.rs }
                } else {
                    pack_block(&b, k0, kc, jb, nc, &mut pack);
                    Panels { data: pack.as_ptr(), panel: kc * NR, ld: NR }
                };
                // SAFETY: every index in `block` was bounds-checked by `super::gemm` (views) or
                // stays inside `pack`, which holds the padded block.
                unsafe { block(m, jb, nc, k0, kc, k, &a, panels, cp, ldc, ep) };
                jb += nc;
            }
            k0 += kc;
            if k0 >= k {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &Mat, b: &Mat, ep: &Epilogue) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    s += a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64;
                }
                let mut v = s as f32 * ep.scale;
                v += match ep.bias {
                    Bias::Row(b) => b[i],
                    Bias::Col(b) => b[j],
                    Bias::None => 0.0,
                };
                if ep.gelu {
                    v = crate::cpu::math::gelu1(v);
                }
                if let Some((r, ld)) = ep.residual {
                    v += r[i * ld + j];
                }
                c[i * n + j] = v;
            }
        }
        c
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// Both implementations (the SIMD128 kernel and the native one) against a naive product,
    /// over edge shapes (rows/columns not multiples of the tile, depth over one block),
    /// transposed operands and every epilogue.
    #[test]
    fn matches_a_naive_product() {
        // (130, 70, 200) is split over the threads with the `rayon` feature; up to 8 rows with
        // whole panels read row-major B in place (several column and depth blocks: (7, 520, 20),
        // (2, 16, 700)).
        for &(m, n, k) in &[
            (1, 1, 1),
            (5, 13, 7),
            (4, 8, 300),
            (77, 77, 64),
            (9, 40, 700),
            (3, 257, 33),
            (130, 70, 200),
            (1, 64, 300),
            (7, 520, 20),
        ] {
            let a_rm = values(m * k, 1);
            let b_rm = values(k * n, 2);
            let b_t = values(n * k, 3);
            let bias_r = values(m, 4);
            let bias_c = values(n, 5);
            let res = values(m * (n + 3), 6);
            let eps = [
                Epilogue::default(),
                Epilogue { bias: Bias::Row(&bias_r), gelu: true, residual: None, scale: 1.0 },
                Epilogue { bias: Bias::Col(&bias_c), gelu: false, residual: Some((&res, n + 3)), scale: 0.125 },
                Epilogue { bias: Bias::Col(&bias_c), gelu: true, residual: Some((&res, n + 3)), scale: 1.0 },
            ];
            for bm in [Mat::rows(&b_rm, n), Mat::transposed(&b_t, k)] {
                for ep in &eps {
                    let a = Mat::rows(&a_rm, k);
                    let want = naive(m, n, k, &a, &bm, ep);
                    let mut got = vec![f32::NAN; m * n];
                    own::gemm([m, n, k], a, bm, &mut got, n, ep);
                    let mut got2 = vec![f32::NAN; m * n];
                    gemm([m, n, k], a, bm, &mut got2, n, ep);
                    let mut all = vec![(got, "own".to_string()), (got2, "dispatched".to_string())];
                    // natively: the epilogue on every vector width this CPU has
                    #[cfg(not(target_arch = "wasm32"))]
                    for isa in Isa::all() {
                        let mut got = vec![f32::NAN; m * n];
                        native_on(isa, [m, n, k], a, bm, &mut got, n, ep);
                        all.push((got, format!("native {isa:?}")));
                    }
                    for (g, name) in &all {
                        let err = g.iter().zip(&want).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
                        assert!(err < 1e-4 * (k as f32).sqrt(), "{name} {m}×{n}×{k}: error {err}");
                    }
                }
            }
        }
    }
}
