//! Matrix product with a fused epilogue: `C = act(A·B + bias) + residual`.
//!
//! On wasm the product runs on this module's SIMD128 kernel: 4×8 register tiles (8 accumulators,
//! which V8 keeps in registers; the `gemm` crate's 12×4 tiles spill), blocked for the caches
//! (`KC` rows of B by `NC` columns of B packed into contiguous panels). The epilogue runs on the tile while
//! it is in registers. Natively the `gemm` crate (AVX2/FMA/AVX-512 by runtime detection) computes
//! the product and the epilogue is a second pass.
//!
//! B is either any strided matrix ([`Mat`]: activations, packed into panels at every call) or
//! weights packed once when the model is built ([`Packed`], by [`pack`]: the panels the kernel
//! reads, so a call packs nothing, and threads share them). Products big enough for the thread
//! pool are split along their larger side: by columns each thread reads (and packs) only its
//! share of B.

use core::mem::MaybeUninit;

use super::math::{gelu1, gelu4};
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

/// Columns of one panel of [`Packed`] weights (the kernel's tile width).
pub const PANEL: usize = 8;

/// Whether the models store their linear layers' weights [`Packed`]: on wasm, where the
/// product runs on this module's kernel (natively the `gemm` crate reads row-major weights).
pub const PACKS_WEIGHTS: bool = cfg!(target_arch = "wasm32");

/// A `k × n` matrix packed by [`pack`]: panels of [`PANEL`] columns, each `k` rows of
/// [`PANEL`] values (`[panel][row][column]`), the last panel zero-padded. Element `(p, j)` is
/// `data[(j / PANEL * k + p) * PANEL + j % PANEL]`.
#[derive(Clone, Copy)]
pub struct Packed<'a> {
    /// The panels.
    pub data: &'a [f32],
    /// Rows (the depth of a product).
    pub k: usize,
    /// Columns.
    pub n: usize,
}

impl<'a> Packed<'a> {
    /// The packed `k × n` matrix in `data` (checked to hold its panels).
    pub fn new(data: &'a [f32], k: usize, n: usize) -> Self {
        assert!(data.len() >= packed_len(k, n), "{} values for a packed {k} × {n} matrix", data.len());
        Self { data, k, n }
    }

    /// Its columns `cols`, which must start at a panel boundary.
    pub fn columns(&self, cols: core::ops::Range<usize>) -> Self {
        assert!(
            cols.start.is_multiple_of(PANEL) && cols.start <= cols.end && cols.end <= self.n,
            "columns {cols:?} of a packed {}-column matrix (from a panel boundary)",
            self.n
        );
        let n = cols.len();
        Self { data: &self.data[(cols.start * self.k).min(self.data.len())..], k: self.k, n }
    }

    /// Element `(p, j)`.
    #[cfg(test)]
    fn at(&self, p: usize, j: usize) -> f32 {
        self.data[(j / PANEL * self.k + p) * PANEL + j % PANEL]
    }
}

/// Values a packed `k × n` matrix takes: `k · n` rounded up to whole panels.
pub fn packed_len(k: usize, n: usize) -> usize {
    k * n.div_ceil(PANEL) * PANEL
}

/// Packs the `k × n` matrix `w` for [`Packed`] (a layer's weights, once, when the model is built).
pub fn pack(w: Mat, k: usize, n: usize) -> Vec<f32> {
    w.check(k, n);
    let mut out = vec![0.0f32; packed_len(k, n)];
    for (q, panel) in out.chunks_exact_mut(k * PANEL).enumerate() {
        for (p, row) in panel.chunks_exact_mut(PANEL).enumerate() {
            for (l, v) in row.iter_mut().enumerate() {
                let j = q * PANEL + l;
                if j < n {
                    *v = w.data[p * w.rs + j * w.cs];
                }
            }
        }
    }
    out
}

/// The right operand of a product.
#[derive(Clone, Copy)]
pub enum Rhs<'a> {
    /// A strided matrix.
    Mat(Mat<'a>),
    /// Packed weights.
    Packed(Packed<'a>),
}

impl<'a> From<Mat<'a>> for Rhs<'a> {
    fn from(m: Mat<'a>) -> Self {
        Rhs::Mat(m)
    }
}

impl<'a> From<Packed<'a>> for Rhs<'a> {
    fn from(p: Packed<'a>) -> Self {
        Rhs::Packed(p)
    }
}

impl<'a> Rhs<'a> {
    /// Checks that it holds a `k × n` matrix.
    fn check(&self, k: usize, n: usize) {
        match self {
            Rhs::Mat(b) => b.check(k, n),
            Rhs::Packed(p) => {
                assert!(p.k == k && n <= p.n, "a packed {} × {} operand for a depth of {k} and {n} columns", p.k, p.n)
            }
        }
    }

    /// Columns from `j` on (`j` at a panel boundary for packed weights).
    fn columns_from(&self, j: usize) -> Self {
        match *self {
            Rhs::Mat(b) => Rhs::Mat(Mat { data: &b.data[(j * b.cs).min(b.data.len())..], ..b }),
            Rhs::Packed(p) => Rhs::Packed(p.columns(j..p.n)),
        }
    }
}

/// The output of a product shared by the threads that write disjoint parts of it.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: each thread writes only its own rows or columns of C (see `gemm`).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// `offset` values on.
    ///
    /// # Safety
    /// Inside C.
    unsafe fn add(self, offset: usize) -> Self {
        Out(unsafe { self.0.add(offset) })
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

impl Epilogue<'_> {
    /// Bias, GELU and residual applied to one value `v` of the scaled product at `(i, j)`: the
    /// scalar form of what the kernels do on vectors (their column tails, the dot-product path).
    #[inline(always)]
    fn finish_value(&self, v: f32, i: usize, j: usize) -> f32 {
        let mut v = v + match self.bias {
            Bias::Row(b) => b[i],
            Bias::Col(b) => b[j],
            Bias::None => 0.0,
        };
        if self.gelu {
            v = gelu1(v);
        }
        if let Some((r, ld)) = self.residual {
            v += r[i * ld + j];
        }
        v
    }
}

/// `C[m × n] (row-major, rows ldc apart) = epilogue(A[m × k] · B[k × n])`; `[m, n, k]`. Large
/// products are split over the thread pool (see [`super::par`]) along their larger side.
pub fn gemm<'a>([m, n, k]: [usize; 3], a: Mat, b: impl Into<Rhs<'a>>, c: &mut [f32], ldc: usize, ep: &Epilogue) {
    // SAFETY: `c` holds `c.len()` initialised, writable values.
    unsafe { gemm_to([m, n, k], a, b.into(), c.as_mut_ptr(), c.len(), ldc, ep) }
}

/// [`gemm`] into memory not yet initialised: C is only written (never read before), every one
/// of its `m × n` values; between rows (`ldc > n`) nothing is touched. For outputs allocated
/// just for the product, which need no zeroing first (see [`product`]).
pub fn gemm_uninit<'a>(
    [m, n, k]: [usize; 3],
    a: Mat,
    b: impl Into<Rhs<'a>>,
    c: &mut [MaybeUninit<f32>],
    ldc: usize,
    ep: &Epilogue,
) {
    // SAFETY: `c` holds `c.len()` writable values; the kernels write C before they read it.
    unsafe { gemm_to([m, n, k], a, b.into(), c.as_mut_ptr().cast(), c.len(), ldc, ep) }
}

/// `epilogue(A[m × k] · B[k × n])` as a new row-major `m × n` matrix, written once (no zeroing).
pub fn product<'a>([m, n, k]: [usize; 3], a: Mat, b: impl Into<Rhs<'a>>, ep: &Epilogue) -> Vec<f32> {
    let mut c = Vec::with_capacity(m * n);
    gemm_uninit([m, n, k], a, b, &mut c.spare_capacity_mut()[..m * n], n, ep);
    // SAFETY: `gemm_uninit` wrote every value of the m × n matrix, rows n apart.
    unsafe { c.set_len(m * n) };
    c
}

/// [`gemm`] into the `len` values at `c`.
///
/// # Safety
/// `c` points at `len` writable values (initialised or not: C is written before it is read).
unsafe fn gemm_to([m, n, k]: [usize; 3], a: Mat, b: Rhs, c: *mut f32, len: usize, ldc: usize, ep: &Epilogue) {
    if !check([m, n, k], &a, &b, len, ldc, ep) {
        return;
    }
    let parts = par::parts(m * n * k.max(1));
    let out = Out(c);
    // By columns each thread reads (and packs) only its share of B and all of A; by rows, all
    // of B: split along the larger side.
    let by_columns = n >= m;
    let pieces = if by_columns { par::ranges(n, parts, PANEL) } else { par::ranges(m, parts, 4) };
    if pieces.len() <= 1 {
        // SAFETY: the views and C were checked above.
        return unsafe { serial([m, n, k], a, b, out, ldc, ep) };
    }
    par::run(pieces, |r| {
        // SAFETY: the pieces are disjoint rows or columns of the checked C; each view below is
        // the checked one cut at the piece's first row or column.
        unsafe {
            if by_columns {
                let ep = Epilogue {
                    bias: match ep.bias {
                        Bias::Col(v) => Bias::Col(&v[r.start..]),
                        other => other,
                    },
                    residual: ep.residual.map(|(v, ld)| (&v[r.start..], ld)),
                    ..*ep
                };
                serial([m, r.len(), k], a, b.columns_from(r.start), out.add(r.start), ldc, &ep);
            } else {
                let a = Mat { data: &a.data[r.start * a.rs..], ..a };
                let ep = Epilogue {
                    bias: match ep.bias {
                        Bias::Row(v) => Bias::Row(&v[r.start..]),
                        other => other,
                    },
                    residual: ep.residual.map(|(v, ld)| (&v[r.start * ld..], ld)),
                    ..*ep
                };
                serial([r.len(), n, k], a, b, out.add(r.start * ldc), ldc, &ep);
            }
        }
    });
}

/// Checks [`gemm`]'s arguments (panics on views too small for the shapes); false for an empty
/// product.
fn check([m, n, k]: [usize; 3], a: &Mat, b: &Rhs, len: usize, ldc: usize, ep: &Epilogue) -> bool {
    if m == 0 || n == 0 {
        return false;
    }
    a.check(m, k);
    b.check(k, n);
    assert!(n <= ldc && (m - 1) * ldc + n <= len, "output out of bounds");
    match ep.bias {
        Bias::Row(v) => assert!(v.len() >= m),
        Bias::Col(v) => assert!(v.len() >= n),
        Bias::None => {}
    }
    if let Some((r, ld)) = ep.residual {
        assert!((m - 1) * ld + n <= r.len(), "residual out of bounds");
    }
    true
}

/// [`gemm`] on the calling thread.
///
/// # Safety
/// The views were checked to hold the operands, and `c` points at `m` rows of `n` writable
/// values, `ldc` apart, that no other thread touches.
unsafe fn serial([m, n, k]: [usize; 3], a: Mat, b: Rhs, c: Out, ldc: usize, ep: &Epilogue) {
    unsafe {
        #[cfg(target_arch = "wasm32")]
        own::gemm_raw([m, n, k], a, b, c.0, ldc, ep);
        #[cfg(not(target_arch = "wasm32"))]
        native([m, n, k], a, b, c.0, ldc, ep);
    }
}

/// The `gemm` crate's product, then the epilogue as a second pass.
#[cfg(not(target_arch = "wasm32"))]
unsafe fn native(mnk: [usize; 3], a: Mat, b: Rhs, c: *mut f32, ldc: usize, ep: &Epilogue) {
    unsafe { native_on(Isa::best(), mnk, a, b, c, ldc, ep) }
}

/// [`native`] with the epilogue on the vectors of `isa` (packed weights go through the SIMD128
/// kernel: the model packs weights only on wasm, see [`PACKS_WEIGHTS`]).
///
/// # Safety
/// As [`serial`].
#[cfg(not(target_arch = "wasm32"))]
unsafe fn native_on(isa: Isa, [m, n, k]: [usize; 3], a: Mat, b: Rhs, c: *mut f32, ldc: usize, ep: &Epilogue) {
    let b = match b {
        Rhs::Mat(b) => b,
        // SAFETY: as this function's.
        Rhs::Packed(_) => return unsafe { own::gemm_raw([m, n, k], a, b, c, ldc, ep) },
    };
    // SAFETY: the views were checked to hold m × k, k × n and m × n elements (with their strides).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
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
        // SAFETY: `Isa::Avx2` is only chosen where the CPU has AVX2 and FMA; C as above.
        Isa::Avx2 => unsafe { finish_avx2([m, n], c, ldc, ep) },
        // SAFETY: C as above.
        Isa::V4 => unsafe { finish::<F32x4>([m, n], c, ldc, ep) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn finish_avx2(mn: [usize; 2], c: *mut f32, ldc: usize, ep: &Epilogue) {
    unsafe { finish::<super::simd::F32x8>(mn, c, ldc, ep) };
}

/// Applies bias, GELU and residual to the `m × n` product at `c` (the scale is already in).
///
/// # Safety
/// `c` points at `m` rows of `n` values, `ldc` apart, that only this thread touches.
#[cfg(not(target_arch = "wasm32"))]
#[inline(always)]
unsafe fn finish<V: Vector>([m, n]: [usize; 2], c: *mut f32, ldc: usize, ep: &Epilogue) {
    for i in 0..m {
        // SAFETY: row i of C, as the caller promises.
        let row = unsafe { core::slice::from_raw_parts_mut(c.add(i * ldc), n) };
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
        for (j, v) in row.iter_mut().enumerate().skip(j) {
            *v = ep.finish_value(*v, i, j);
        }
    }
}

/// The SIMD128 kernel (compiled natively too, for its tests).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) mod own {
    use super::*;

    /// Rows of a register tile.
    const MR: usize = 4;
    /// Columns of a register tile (two vectors): a panel of packed weights.
    const NR: usize = PANEL;
    /// Depth of a block of the product: 1024 rows by [`NC`] columns of B is 1 MiB, an L2 cache
    /// of today's x86 cores; in V8 one thread ran the text towers 5-9 % faster than with 256
    /// (S0, MobileCLIP2-S0: fewer passes reloading and storing C's tiles), images 2-3 %.
    const KC: usize = 1024;
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
    /// (packed per call: `kc · 8` and 8; packed weights: `k · 8` and 8; B itself, row-major: 8
    /// and B's row stride).
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

    /// `sum(a[p] · b[p])` over `k` values of each of the 4 rows of B's transpose at `b`
    /// (rows `ldb` apart), 4 lanes at a time.
    #[cfg_attr(not(all(target_arch = "wasm32", feature = "relaxed-simd")), inline(always))]
    #[cfg_attr(all(target_arch = "wasm32", feature = "relaxed-simd"), target_feature(enable = "relaxed-simd"))]
    unsafe fn dot4(k: usize, a: *const f32, b: *const f32, ldb: usize) -> [f32; 4] {
        unsafe {
            let zero = F32x4::splat(0.0);
            let mut acc = [zero; 4];
            let mut p = 0;
            while p + 4 <= k {
                let av = F32x4::load(a.add(p));
                for (t, acc) in acc.iter_mut().enumerate() {
                    *acc = av.mul_add(F32x4::load(b.add(t * ldb + p)), *acc);
                }
                p += 4;
            }
            let mut out = acc.map(F32x4::sum);
            for p in p..k {
                for (t, o) in out.iter_mut().enumerate() {
                    *o += *a.add(p) * *b.add(t * ldb + p);
                }
            }
            out
        }
    }

    /// The product of a few contiguous rows of A and a B whose columns are contiguous (a 1×1
    /// convolution's `[out, in]` weights on a text tower's pooled rows): dot products along
    /// the depth, 4 columns at a time, B read once per row and never packed.
    ///
    /// # Safety
    /// As [`super::serial`], with `a.cs == 1` and `b.rs == 1`.
    unsafe fn dots([m, n, k]: [usize; 3], a: &Mat, b: &Mat, c: *mut f32, ldc: usize, ep: &Epilogue) {
        unsafe {
            for i in 0..m {
                let ar = a.data.as_ptr().add(i * a.rs);
                let mut j = 0;
                while j < n {
                    let cols = (n - j).min(4);
                    let v = if cols == 4 {
                        dot4(k, ar, b.data.as_ptr().add(j * b.cs), b.cs)
                    } else {
                        let mut v = [0.0; 4];
                        for (t, v) in v.iter_mut().enumerate().take(cols) {
                            *v = dot4(k, ar, b.data.as_ptr().add((j + t) * b.cs), 0)[0];
                        }
                        v
                    };
                    for (t, v) in v.iter().enumerate().take(cols) {
                        *c.add(i * ldc + j + t) = ep.finish_value(*v * ep.scale, i, j + t);
                    }
                    j += cols;
                }
            }
        }
    }

    /// Copies rows `k0..k0 + kc`, columns `jb..jb + nc` of B into panels of 8 columns
    /// (`[panel][row][8]`, the last one zero-padded): contiguous for the kernel whatever B's
    /// strides (rows of weights and NCHW activations are often a multiple of 4 KiB apart, which
    /// maps every row of a panel to the same L1 set).
    /// Every value of the first `kc · 8 · ⌈nc / 8⌉` of `pack` is written (it need not be
    /// initialised before).
    fn pack_block(b: &Mat, k0: usize, kc: usize, jb: usize, nc: usize, pack: &mut [MaybeUninit<f32>]) {
        let panels = nc.div_ceil(NR);
        for q in 0..panels {
            let j = jb + q * NR;
            let cols = (jb + nc - j).min(NR);
            let dst = &mut pack[q * kc * NR..(q + 1) * kc * NR];
            if b.cs == 1 && cols == NR {
                for (p, d) in dst.chunks_exact_mut(NR).enumerate() {
                    let src = (k0 + p) * b.rs + j;
                    for (d, v) in d.iter_mut().zip(&b.data[src..src + NR]) {
                        d.write(*v);
                    }
                }
            } else {
                for (p, d) in dst.chunks_exact_mut(NR).enumerate() {
                    for (l, v) in d.iter_mut().enumerate() {
                        v.write(if l < cols { b.data[(k0 + p) * b.rs + (j + l) * b.cs] } else { 0.0 });
                    }
                }
            }
        }
    }

    /// See [`super::gemm`] (on the calling thread; arguments checked here): for the tests.
    #[cfg(test)]
    pub fn gemm<'a>([m, n, k]: [usize; 3], a: Mat, b: impl Into<Rhs<'a>>, c: &mut [f32], ldc: usize, ep: &Epilogue) {
        let b = b.into();
        if !super::check([m, n, k], &a, &b, c.len(), ldc, ep) {
            return;
        }
        // SAFETY: checked above.
        unsafe { gemm_raw([m, n, k], a, b, c.as_mut_ptr(), ldc, ep) }
    }

    /// See [`super::gemm`].
    ///
    /// # Safety
    /// As [`super::serial`].
    pub unsafe fn gemm_raw([m, n, k]: [usize; 3], a: Mat, b: Rhs, cp: *mut f32, ldc: usize, ep: &Epilogue) {
        if let Rhs::Mat(bm) = b
            && m <= MR
            && bm.rs == 1
            && a.cs == 1
        {
            // SAFETY: as this function's; contiguous rows of A and columns of B.
            return unsafe { dots([m, n, k], &a, &bm, cp, ldc, ep) };
        }
        // The depth is split evenly when it is not much deeper than one block.
        let kc_max = if k <= KC + KC / 4 { k } else { KC };
        // A few rows (a text tower's pooled rows) read each value of B once or twice: packing it
        // would cost as much as the product, so the kernel reads row-major B in place (whole
        // panels only). Packed weights are read as they are.
        let direct = match b {
            Rhs::Mat(b) => m <= 2 * MR && b.cs == 1 && n.is_multiple_of(NR),
            Rhs::Packed(_) => true,
        };
        // Each block is packed (every value the kernel reads written) before it is read: no
        // zeroing.
        let len = if direct { 0 } else { kc_max.max(1) * NC.min(n).next_multiple_of(NR) };
        let mut pack: Vec<MaybeUninit<f32>> = Vec::with_capacity(len);
        // SAFETY: MaybeUninit values need no initialisation.
        unsafe { pack.set_len(len) };
        let mut k0 = 0;
        // One pass even for k = 0 (an empty product: the epilogue of zeros).
        loop {
            let kc = kc_max.min(k - k0);
            let mut jb = 0;
            while jb < n {
                let nc = NC.min(n - jb);
                let panels = match b {
                    // Whole panels from column jb (a multiple of NR), rows k0.. of each.
                    Rhs::Packed(p) => Panels {
                        data: p.data[((jb / NR * p.k + k0) * NR).min(p.data.len())..].as_ptr(),
                        panel: p.k * NR,
                        ld: NR,
                    },
                    // k0 + kc ≤ k and jb + nc ≤ n: inside the checked view (kc = 0 reads nothing).
                    Rhs::Mat(b) if direct => {
                        Panels { data: b.data[(k0 * b.rs + jb).min(b.data.len())..].as_ptr(), panel: NR, ld: b.rs }
                    }
                    Rhs::Mat(b) => {
                        pack_block(&b, k0, kc, jb, nc, &mut pack);
                        Panels { data: pack.as_ptr().cast(), panel: kc * NR, ld: NR }
                    }
                };
                // SAFETY: every index in `block` was bounds-checked by the caller (views; packed
                // weights hold whole, zero-padded panels) or stays inside `pack`, which holds
                // the padded block.
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
pub(crate) mod tests {
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

    /// `n` pseudo-random values in [-1, 1) from `seed`.
    pub(crate) fn values(n: usize, seed: u32) -> Vec<f32> {
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
    /// transposed and packed operands and every epilogue; on a pool of 3 threads, so that big
    /// products are split (by rows where m > n, by columns elsewhere).
    #[test]
    fn matches_a_naive_product() {
        // Split over the threads (work ≥ 2^19): (130, 70, 200) by rows, (20, 300, 200) and
        // (9, 1000, 64) by columns (a last piece of 300 - 2·104 = 92 columns, not whole
        // panels). Up to 8 rows with whole panels read row-major B in place (several column and
        // depth blocks: (7, 520, 20), (9, 40, 2100)). Packed: 13 and 77 columns end in a padded
        // panel. Deeper than one block (1280): (5, 13, 1300) and (9, 40, 2100), C's edge tile
        // carried over depth blocks in the first.
        let shapes = [
            (1, 1, 1),
            (5, 13, 7),
            (4, 8, 300),
            (77, 77, 64),
            (9, 40, 700),
            (3, 257, 33),
            (130, 70, 200),
            (20, 300, 200),
            (9, 1000, 64),
            (1, 64, 300),
            (7, 520, 20),
            (2, 16, 700),
            (5, 13, 1300),
            (9, 40, 2100),
        ];
        let pool = threads(3);
        for &(m, n, k) in &shapes {
            let a_rm = values(m * k, 1);
            let b_rm = values(k * n, 2);
            let b_t = values(n * k, 3);
            let b_packed = pack(Mat::rows(&b_rm, n), k, n);
            let bias_r = values(m, 4);
            let bias_c = values(n, 5);
            let res = values(m * (n + 3), 6);
            let eps = [
                Epilogue::default(),
                Epilogue { bias: Bias::Row(&bias_r), gelu: true, residual: None, scale: 1.0 },
                Epilogue { bias: Bias::Col(&bias_c), gelu: false, residual: Some((&res, n + 3)), scale: 0.125 },
                Epilogue { bias: Bias::Col(&bias_c), gelu: true, residual: Some((&res, n + 3)), scale: 1.0 },
            ];
            let operands = [
                (Rhs::Mat(Mat::rows(&b_rm, n)), Mat::rows(&b_rm, n)),
                (Rhs::Mat(Mat::transposed(&b_t, k)), Mat::transposed(&b_t, k)),
                (Rhs::Packed(Packed::new(&b_packed, k, n)), Mat::rows(&b_rm, n)),
            ];
            for (b, bm) in operands {
                for ep in &eps {
                    let a = Mat::rows(&a_rm, k);
                    let want = naive(m, n, k, &a, &bm, ep);
                    // C rows ldc = n + 5 apart: the columns between stay as they were.
                    let ldc = n + 5;
                    let run = |f: &dyn Fn(&mut [f32])| {
                        let mut c = vec![f32::NAN; m * ldc];
                        f(&mut c);
                        assert!(
                            c.chunks(ldc).all(|row| row[n..].iter().all(|v| v.is_nan())),
                            "{m}×{n}×{k}: wrote past n"
                        );
                        c.chunks(ldc).flat_map(|row| row[..n].to_vec()).collect::<Vec<f32>>()
                    };
                    let mut all = vec![
                        (run(&|c| own::gemm([m, n, k], a, b, c, ldc, ep)), "own".to_string()),
                        (run(&|c| pool.install(|| gemm([m, n, k], a, b, c, ldc, ep))), "dispatched".to_string()),
                        // C full of NaN as "uninitialised": a kernel that read C before writing
                        // it would leave NaN
                        (
                            run(&|c| {
                                // SAFETY: f32 and MaybeUninit<f32> share their layout; only f32
                                // values are written.
                                let c = unsafe { &mut *(c as *mut [f32] as *mut [MaybeUninit<f32>]) };
                                pool.install(|| gemm_uninit([m, n, k], a, b, c, ldc, ep))
                            }),
                            "uninit".to_string(),
                        ),
                        (
                            {
                                let mut c = Vec::new();
                                pool.install(|| c = product([m, n, k], a, b, ep));
                                c
                            },
                            "product".to_string(),
                        ),
                    ];
                    // natively: the epilogue on every vector width this CPU has
                    #[cfg(not(target_arch = "wasm32"))]
                    for isa in Isa::all() {
                        // SAFETY: c holds m rows ldc apart; the views hold the operands.
                        let got = run(&|c| unsafe { native_on(isa, [m, n, k], a, b, c.as_mut_ptr(), ldc, ep) });
                        all.push((got, format!("native {isa:?}")));
                    }
                    let kind = match b {
                        Rhs::Mat(b) if b.cs == 1 => "row-major",
                        Rhs::Mat(_) => "transposed",
                        Rhs::Packed(_) => "packed",
                    };
                    for (g, name) in &all {
                        // NaN (a value of C read before it was written) counts as infinite
                        let err = crate::cpu::max_error(g, &want);
                        assert!(err < 1e-4 * (k as f32).sqrt(), "{name} {kind} {m}×{n}×{k}: error {err}");
                    }
                }
            }
        }
    }

    /// A pool of `n` threads for the split products (rayon's global pool may have one).
    fn threads(n: usize) -> Pool {
        #[cfg(feature = "rayon")]
        {
            Pool(rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap())
        }
        #[cfg(not(feature = "rayon"))]
        {
            let _ = n;
            Pool
        }
    }

    #[cfg(feature = "rayon")]
    struct Pool(rayon::ThreadPool);
    #[cfg(not(feature = "rayon"))]
    struct Pool;

    impl Pool {
        fn install(&self, f: impl FnOnce() + Send) {
            #[cfg(feature = "rayon")]
            self.0.install(f);
            #[cfg(not(feature = "rayon"))]
            f();
        }
    }

    /// The packed layout is the documented one, and a column range of it (what a packed
    /// projection's keys and values read) is the same matrix as the row-major view's.
    #[test]
    fn packed_layout_and_columns() {
        let (k, n) = (5, 21);
        let b = values(k * n, 7);
        let data = pack(Mat::rows(&b, n), k, n);
        assert_eq!(data.len(), k * 24);
        let p = Packed::new(&data, k, n);
        for i in 0..k {
            for j in 0..24 {
                assert_eq!(p.at(i, j), if j < n { b[i * n + j] } else { 0.0 }, "({i}, {j})");
            }
        }
        let cols = p.columns(8..21);
        assert_eq!(cols.n, 13);
        for i in 0..k {
            for j in 0..13 {
                assert_eq!(cols.at(i, j), b[i * n + 8 + j]);
            }
        }
        let a = values(3 * k, 8);
        let mut got = vec![0.0; 3 * 13];
        gemm([3, 13, k], Mat::rows(&a, k), cols, &mut got, 13, &Epilogue::default());
        let want = naive(3, 13, k, &Mat::rows(&a, k), &Mat::rows(&b[8..], n), &Epilogue::default());
        assert!(got.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-5));
    }

    #[test]
    #[should_panic(expected = "panel boundary")]
    fn packed_columns_start_at_a_panel() {
        let data = pack(Mat::rows(&[0.0; 32], 16), 2, 16);
        Packed::new(&data, 2, 16).columns(4..16);
    }
}
