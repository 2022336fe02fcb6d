//! Direct NCHW convolution for few input channels per group: depthwise (RepMixer 3×3, ConvFFN
//! and RepCPE 7×7, the text tower's 1×11), channel-multiplier grouped convolutions
//! (ReparamLargeKernelConv 7×7 stride 2 of the patch embeddings, the final 3×3 conv) and the
//! 3-channel stem. No im2col: each output row is accumulated in registers, 16 columns at a
//! time, over every kernel tap; the input planes of a group are copied, zero-padded (and split
//! into `stride` column phases, so that strided taps are contiguous loads), into a scratch of
//! the thread that computes the group's outputs, just before it does: one pass over the thread
//! pool per convolution, the padding spread over the threads with the outputs and read back
//! from cache (a separate padding pass ran on one thread, under its work threshold: 8 % of the
//! calling thread's time in Chromium at two threads, S0 image). The padded planes and the
//! output are written once each, into uninitialised memory: zeroing them first
//! (calloc's memset) took 5.5 % of the instructions of a MobileCLIP-S0 image natively; without it
//! the image takes 4.8 % fewer (callgrind, one thread), and the same CPU time in Chromium.

use core::mem::MaybeUninit;

use super::math::gelu;
use super::par;
use super::simd::{F32x4, Isa, Vector};

/// Geometry of a 2-d convolution (symmetric padding).
#[derive(Clone, Copy, Debug)]
pub struct ConvGeometry {
    /// Batch.
    pub batch: usize,
    /// Input channels.
    pub cin: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Padding of the top and bottom.
    pub pad_h: usize,
    /// Padding of the left and right.
    pub pad_w: usize,
    /// Groups.
    pub groups: usize,
}

impl ConvGeometry {
    /// Output height.
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad_h - self.kh) / self.stride + 1
    }

    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad_w - self.kw) / self.stride + 1
    }
}

/// Output columns accumulated together (4 vectors).
const CHUNK: usize = 16;

/// `y = act(conv(x, weight) + bias)`; `x` `[batch, cin, h, w]`, `weight`
/// `[cout, cin / groups, kh, kw]`, result `[batch, cout, out_h, out_w]`.
pub fn conv2d_direct(x: &[f32], weight: &[f32], bias: Option<&[f32]>, g: &ConvGeometry, gelu: bool) -> Vec<f32> {
    conv2d_direct_on(Isa::best(), x, weight, bias, g, gelu)
}

/// [`conv2d_direct`] on the vectors of `isa`.
fn conv2d_direct_on(
    isa: Isa,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeometry,
    gelu: bool,
) -> Vec<f32> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let cpg = g.cin / g.groups;
    let opg = g.cout / g.groups;
    let s = g.stride;
    assert!(s >= 1 && g.cin.is_multiple_of(g.groups) && g.cout.is_multiple_of(g.groups));
    assert_eq!(x.len(), g.batch * g.cin * g.h * g.w);
    assert_eq!(weight.len(), g.cout * cpg * g.kh * g.kw);
    // Padded rows; each row split into `s` phases of `pw` columns: phase q, column c holds
    // padded column s·c + q. `pw` covers every load of a chunk (full vectors past `ow`).
    let hp = g.h + 2 * g.pad_h;
    let pw = ow.next_multiple_of(CHUNK) + (g.kw - 1) / s + 1;
    let plane = s * hp * pw;
    // Offset of each tap (dy, dx) from the top-left of its output's window, in a plane.
    let taps: Vec<usize> =
        (0..g.kh).flat_map(|dy| (0..g.kw).map(move |dx| ((dx % s) * hp + dy) * pw + dx / s)).collect();
    let geometry = Planes { g: *g, hp, pw, plane, taps, isa };

    // Every output plane; each thread pads the input planes of the group it is at into its own
    // scratch (once per group, and once more where a group's outputs straddle two threads).
    let count = g.batch * g.cout;
    let in_plane = g.h * g.w;
    let work = count * oh * ow * cpg * g.kh * g.kw + g.batch * g.cin * plane;
    // SAFETY: `output` writes every value of its output plane.
    unsafe {
        filled(count, oh * ow, work, Scratch::take, |scratch, i, d| {
            let (b, oc) = (i / g.cout, i % g.cout);
            let first_in = b * g.cin + oc / opg * cpg;
            if scratch.group != Some(first_in) {
                let padded = &mut scratch.planes;
                padded.clear();
                padded.reserve(cpg * plane);
                let planes = &mut padded.spare_capacity_mut()[..cpg * plane];
                for (j, dst) in planes.chunks_exact_mut(plane).enumerate() {
                    geometry.pad(&x[(first_in + j) * in_plane..][..in_plane], dst);
                }
                // SAFETY: `pad` wrote every value of the `cpg` planes (border and copied rows).
                padded.set_len(cpg * plane);
                scratch.group = Some(first_in);
            }
            let wk = &weight[oc * cpg * g.kh * g.kw..(oc + 1) * cpg * g.kh * g.kw];
            geometry.output(&scratch.planes, wk, bias.map_or(0.0, |v| v[oc]), gelu, d);
        })
    }
}

std::thread_local! {
    /// Each thread's buffer for padded planes, kept between convolutions (allocating it for each
    /// piece cost more than the padding in the threaded wasm module, where the allocator has one
    /// lock for all threads).
    static SCRATCH: core::cell::Cell<Vec<f32>> = const { core::cell::Cell::new(Vec::new()) };
}

/// The padded input planes of one group (`group`: the index of its first input plane), in this
/// thread's buffer until dropped.
struct Scratch {
    planes: Vec<f32>,
    group: Option<usize>,
}

impl Scratch {
    fn take() -> Self {
        Self { planes: SCRATCH.take(), group: None }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        SCRATCH.set(core::mem::take(&mut self.planes));
    }
}

/// `count` pieces of `len` values, piece `i` written by `fill(state, i, piece)`; spread over the
/// thread pool by `work` (see [`par::parts`]), each thread's consecutive pieces sharing one
/// `state()`. Nothing is zeroed first.
///
/// # Safety
/// `fill` must write every value of the piece it is given: the result is read as initialised.
unsafe fn filled<S>(
    count: usize,
    len: usize,
    work: usize,
    state: impl Fn() -> S + Sync + Send,
    fill: impl Fn(&mut S, usize, &mut [MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    let total = count * len;
    let mut out: Vec<f32> = Vec::with_capacity(total);
    let ranges = par::ranges(count, par::parts(work), 1);
    let cuts: Vec<usize> = ranges[1..].iter().map(|r| r.start * len).collect();
    let pieces = par::split_at(&mut out.spare_capacity_mut()[..total], &cuts);
    par::run(ranges.into_iter().zip(pieces).collect(), |(r, dst)| {
        let mut s = state();
        for (i, d) in r.zip(dst.chunks_exact_mut(len.max(1))) {
            fill(&mut s, i, d);
        }
    });
    // SAFETY: the pieces cover the first `total` values, and `fill` wrote every value of each.
    unsafe { out.set_len(total) };
    out
}

/// The padded, phase-split layout of input planes.
struct Planes {
    g: ConvGeometry,
    /// Padded height.
    hp: usize,
    /// Columns of a phase row.
    pw: usize,
    /// Values per plane (all phases).
    plane: usize,
    /// Offset of each tap from its output's window origin.
    taps: Vec<usize>,
    /// The vectors the outputs are computed with.
    isa: Isa,
}

impl Planes {
    /// Writes one `[h, w]` input plane in its padded, phase-split form: every value of `dst`
    /// (`plane` of them), the padding and the columns past it zeros.
    fn pad(&self, src: &[f32], dst: &mut [MaybeUninit<f32>]) {
        let (g, s) = (&self.g, self.g.stride);
        let zero = MaybeUninit::new(0.0);
        for (q, phase) in dst.chunks_exact_mut(self.hp * self.pw).enumerate() {
            for (pr, out) in phase.chunks_exact_mut(self.pw).enumerate() {
                let Some(r) = pr.checked_sub(g.pad_h).filter(|&r| r < g.h) else {
                    out.fill(zero);
                    continue;
                };
                let row = &src[r * g.w..(r + 1) * g.w];
                // Column c of phase q is padded column s·c + q: input column s·c + q − pad_w.
                // Columns [lead, lead + n) hold input columns first, first + s, ...
                let first = (q + s - g.pad_w % s) % s;
                let lead = (first + g.pad_w) / s;
                let n = row.len().saturating_sub(first).div_ceil(s).min(out.len() - lead);
                out[..lead].fill(zero);
                if s == 1 {
                    // SAFETY: `n ≤ row.len()` values into `out[lead..lead + n]` (both in bounds).
                    unsafe { core::ptr::copy_nonoverlapping(row.as_ptr(), out[lead..lead + n].as_mut_ptr().cast(), n) };
                } else if s == 2 {
                    every_other(&row[first..], &mut out[lead..lead + n]);
                } else {
                    for (d, &v) in out[lead..lead + n].iter_mut().zip(row.iter().skip(first).step_by(s)) {
                        *d = MaybeUninit::new(v);
                    }
                }
                out[lead + n..].fill(zero);
            }
        }
    }

    /// One output plane (every value of `dst`) from the `cpg` padded input planes of its group
    /// (`src`) and its kernel, on the vectors of `isa` (8-lane AVX2/FMA natively where the CPU
    /// has them).
    fn output(&self, src: &[f32], wk: &[f32], bias: f32, gelu: bool, dst: &mut [MaybeUninit<f32>]) {
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2` is only chosen where the CPU has AVX2 and FMA.
            Isa::Avx2 => unsafe { self.output_avx2(src, wk, bias, gelu, dst) },
            Isa::V4 => self.output_with::<F32x4, 4, 2>(src, wk, bias, gelu, dst),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn output_avx2(&self, src: &[f32], wk: &[f32], bias: f32, gelu: bool, dst: &mut [MaybeUninit<f32>]) {
        self.output_with::<super::simd::F32x8, 2, 1>(src, wk, bias, gelu, dst);
    }

    /// [`Planes::output`] on vectors `V`: `WIDE` of them make a chunk of 16 columns, `NARROW`
    /// its first 8 (the last stage's 8×8 maps).
    #[inline(always)]
    fn output_with<V: Vector, const WIDE: usize, const NARROW: usize>(
        &self,
        src: &[f32],
        wk: &[f32],
        bias: f32,
        gelu: bool,
        dst: &mut [MaybeUninit<f32>],
    ) {
        debug_assert!(WIDE * V::LANES == CHUNK && 2 * NARROW == WIDE);
        let (oh, ow, s) = (self.g.out_h(), self.g.out_w(), self.g.stride);
        assert_eq!(dst.len(), oh * ow);
        let cpg = src.len() / self.plane;
        let max_tap = self.taps.iter().copied().max().unwrap_or(0);
        // Stride 1: two output rows at a time (see `chunk2`), the last one alone when `oh` is odd.
        let pair = s == 1 && self.g.kh * self.g.kw > 1;
        debug_assert!(
            !pair || self.taps.iter().enumerate().all(|(t, &o)| o == t / self.g.kw * self.pw + t % self.g.kw)
        );
        let mut row_tmp = [[0.0f32; CHUNK]; 2];
        let mut r = 0;
        while r < oh {
            let rows = if pair && r + 1 < oh { 2 } else { 1 };
            let mut c0 = 0;
            while c0 < ow {
                let n = (ow - c0).min(CHUNK);
                let first = s * r * self.pw + c0;
                assert!(first + (rows - 1) * self.pw + max_tap + CHUNK <= self.plane);
                // Full chunks go straight to the output rows, partial ones through `row_tmp`.
                let to: [*mut f32; 2] = core::array::from_fn(|i| {
                    if n == CHUNK && i < rows {
                        dst[(r + i) * ow + c0..][..CHUNK].as_mut_ptr().cast()
                    } else {
                        row_tmp[i].as_mut_ptr()
                    }
                });
                // SAFETY: every load is at `first + (row pair's second row: pw) + taps[t] +
                // LANES·v` (LANES·v < 16) in one of the `cpg` planes of `src`, below
                // `first + (rows − 1)·pw + max_tap + 16 ≤ plane` (asserted); stores go to
                // `to[i]`: 16 values of output row r + i (c0 + 16 ≤ ow) or of `row_tmp[i]`.
                unsafe {
                    let p = src.as_ptr().add(first);
                    let (kh, kw, pw) = (self.g.kh, self.g.kw, self.pw);
                    match (rows, n <= CHUNK / 2) {
                        (1, true) => store(&chunk::<V, NARROW>(p, self.plane, cpg, &self.taps, wk, bias, gelu), to[0]),
                        (1, false) => store(&chunk::<V, WIDE>(p, self.plane, cpg, &self.taps, wk, bias, gelu), to[0]),
                        (_, true) => {
                            let [a, b] = chunk2::<V, NARROW>(p, self.plane, cpg, [kh, kw, pw], wk, bias, gelu);
                            store(&a, to[0]);
                            store(&b, to[1]);
                        }
                        (_, false) => {
                            let [a, b] = chunk2::<V, WIDE>(p, self.plane, cpg, [kh, kw, pw], wk, bias, gelu);
                            store(&a, to[0]);
                            store(&b, to[1]);
                        }
                    }
                }
                if n < CHUNK {
                    for (i, tmp) in row_tmp.iter().enumerate().take(rows) {
                        for (d, &v) in dst[(r + i) * ow + c0..][..n].iter_mut().zip(tmp) {
                            *d = MaybeUninit::new(v);
                        }
                    }
                }
                c0 += n;
            }
            r += rows;
        }
    }
}

/// Stores `N` vectors at `to`.
///
/// # Safety
/// `to` must be valid for writing `N·LANES` values.
#[inline(always)]
unsafe fn store<V: Vector, const N: usize>(acc: &[V; N], to: *mut f32) {
    for (v, a) in acc.iter().enumerate() {
        unsafe { a.store(to.add(V::LANES * v)) };
    }
}

/// `dst[k] = src[2k]` for every `k` (`src` holds at least `2·dst.len() − 1` values): the
/// column phases of stride-2 convolutions, 4 values per pair of vector loads (the stem's 3×3
/// and depthwise convolutions pad ~1.6 M values this way per 256×256 image).
fn every_other(src: &[f32], dst: &mut [MaybeUninit<f32>]) {
    let n = dst.len();
    assert!(n == 0 || 2 * n - 1 <= src.len());
    let mut k = 0;
    while k + 4 <= n && 2 * k + 8 <= src.len() {
        // SAFETY: reads `src[2k..2k + 8]` and writes `dst[k..k + 4]`, both in bounds (checked).
        unsafe {
            let p = src.as_ptr().add(2 * k);
            F32x4::load(p).even_lanes(F32x4::load(p.add(4))).store(dst.as_mut_ptr().add(k).cast());
        }
        k += 4;
    }
    for (d, &v) in dst[k..].iter_mut().zip(src[2 * k..].iter().step_by(2)) {
        *d = MaybeUninit::new(v);
    }
}

/// `N` vectors of outputs: the bias, then for every input plane (`plane` apart from `src`) and
/// kernel tap `t` (offset `taps[t]` in the plane, weight `wk[ci · taps.len() + t]`), then GELU.
///
/// # Safety
/// `src + ci · plane + taps[t] + N·LANES` must stay inside one allocation for every `ci < cpg`,
/// `t`.
#[cfg_attr(not(all(target_arch = "wasm32", feature = "relaxed-simd")), inline(always))]
#[cfg_attr(all(target_arch = "wasm32", feature = "relaxed-simd"), target_feature(enable = "relaxed-simd"))]
unsafe fn chunk<V: Vector, const N: usize>(
    src: *const f32,
    plane: usize,
    cpg: usize,
    taps: &[usize],
    wk: &[f32],
    bias: f32,
    gelu: bool,
) -> [V; N] {
    let mut acc = [V::splat(bias); N];
    for ci in 0..cpg {
        let base = unsafe { src.add(ci * plane) };
        let w = &wk[ci * taps.len()..(ci + 1) * taps.len()];
        for (&off, &t) in taps.iter().zip(w) {
            let t = V::splat(t);
            let p = unsafe { base.add(off) };
            for (v, a) in acc.iter_mut().enumerate() {
                *a = t.mul_add(unsafe { V::load(p.add(V::LANES * v)) }, *a);
            }
        }
    }
    if gelu {
        for a in &mut acc {
            *a = self::gelu(*a);
        }
    }
    acc
}

/// [`chunk`] for two output rows at once, stride 1, kernel `kh × kw`, padded rows `pw` apart:
/// the second row's tap `(dy, dx)` reads the input row of the first's `(dy + 1, dx)`, so each
/// vector loaded serves both rows' accumulators, and their `2·N` independent sums hide the
/// multiply-add's latency (4 chains of one row at a time left half of it exposed). Each output
/// adds its taps in [`chunk`]'s order: the same values.
///
/// # Safety
/// As [`chunk`]'s for taps `dy·pw + dx` with `dy ≤ kh` (one row further).
#[cfg_attr(not(all(target_arch = "wasm32", feature = "relaxed-simd")), inline(always))]
#[cfg_attr(all(target_arch = "wasm32", feature = "relaxed-simd"), target_feature(enable = "relaxed-simd"))]
unsafe fn chunk2<V: Vector, const N: usize>(
    src: *const f32,
    plane: usize,
    cpg: usize,
    [kh, kw, pw]: [usize; 3],
    wk: &[f32],
    bias: f32,
    gelu: bool,
) -> [[V; N]; 2] {
    let mut top = [V::splat(bias); N];
    let mut bottom = [V::splat(bias); N];
    for ci in 0..cpg {
        let base = unsafe { src.add(ci * plane) };
        let w = &wk[ci * kh * kw..(ci + 1) * kh * kw];
        // Input row i: tap (i, dx) of the first output row (i < kh), (i − 1, dx) of the second (i ≥ 1).
        for (dx, &t) in w[..kw].iter().enumerate() {
            let t = V::splat(t);
            let p = unsafe { base.add(dx) };
            for (v, a) in top.iter_mut().enumerate() {
                *a = t.mul_add(unsafe { V::load(p.add(V::LANES * v)) }, *a);
            }
        }
        for i in 1..kh {
            for dx in 0..kw {
                let (t0, t1) = (V::splat(w[i * kw + dx]), V::splat(w[(i - 1) * kw + dx]));
                let p = unsafe { base.add(i * pw + dx) };
                for v in 0..N {
                    let x = unsafe { V::load(p.add(V::LANES * v)) };
                    top[v] = t0.mul_add(x, top[v]);
                    bottom[v] = t1.mul_add(x, bottom[v]);
                }
            }
        }
        for dx in 0..kw {
            let t = V::splat(w[(kh - 1) * kw + dx]);
            let p = unsafe { base.add(kh * pw + dx) };
            for (v, a) in bottom.iter_mut().enumerate() {
                *a = t.mul_add(unsafe { V::load(p.add(V::LANES * v)) }, *a);
            }
        }
    }
    if gelu {
        for a in top.iter_mut().chain(&mut bottom) {
            *a = self::gelu(*a);
        }
    }
    [top, bottom]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeometry) -> Vec<f32> {
        let (oh, ow) = (g.out_h(), g.out_w());
        let (cpg, opg) = (g.cin / g.groups, g.cout / g.groups);
        let mut out = vec![0.0f32; g.batch * g.cout * oh * ow];
        for b in 0..g.batch {
            for oc in 0..g.cout {
                for r in 0..oh {
                    for c in 0..ow {
                        let mut s = bias.map_or(0.0, |v| v[oc]) as f64;
                        for ci in 0..cpg {
                            let ic = (oc / opg) * cpg + ci;
                            for dy in 0..g.kh {
                                for dx in 0..g.kw {
                                    let (y, xx) = (
                                        (r * g.stride + dy) as isize - g.pad_h as isize,
                                        (c * g.stride + dx) as isize - g.pad_w as isize,
                                    );
                                    if y < 0 || xx < 0 || y >= g.h as isize || xx >= g.w as isize {
                                        continue;
                                    }
                                    s += x[((b * g.cin + ic) * g.h + y as usize) * g.w + xx as usize] as f64
                                        * w[((oc * cpg + ci) * g.kh + dy) * g.kw + dx] as f64;
                                }
                            }
                        }
                        out[((b * g.cout + oc) * oh + r) * ow + c] = s as f32;
                    }
                }
            }
        }
        out
    }

    /// The geometry of `(batch, cin, h, w, cout, kh, kw, stride, pad_h, pad_w, groups)`, with
    /// an input, weights and biases for it.
    #[allow(clippy::type_complexity)]
    fn case(
        (batch, cin, h, w, cout, kh, kw, stride, pad_h, pad_w, groups): (
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
        ),
    ) -> (ConvGeometry, Vec<f32>, Vec<f32>, Vec<f32>) {
        let g = ConvGeometry { batch, cin, h, w, cout, kh, kw, stride, pad_h, pad_w, groups };
        let x: Vec<f32> = (0..batch * cin * h * w).map(|v| ((v * 37 % 101) as f32 - 50.0) / 25.0).collect();
        let wt: Vec<f32> = (0..cout * cin / groups * kh * kw).map(|v| ((v * 53 % 97) as f32 - 48.0) / 40.0).collect();
        let bias: Vec<f32> = (0..cout).map(|v| v as f32 * 0.1 - 0.2).collect();
        (g, x, wt, bias)
    }

    #[test]
    fn matches_a_naive_convolution() {
        let shapes = [
            // (batch, cin, h, w, cout, kh, kw, stride, pad_h, pad_w, groups)
            (2, 8, 9, 13, 8, 3, 3, 1, 1, 1, 8),     // depthwise 3×3
            (1, 4, 8, 8, 4, 7, 7, 1, 3, 3, 4),      // depthwise 7×7 on 8×8 (last stage)
            (1, 6, 11, 17, 12, 7, 7, 2, 3, 3, 6),   // multiplier 2, stride 2
            (1, 3, 10, 21, 5, 3, 3, 2, 1, 1, 1),    // dense stem
            (2, 5, 1, 77, 5, 1, 11, 1, 0, 5, 5),    // text 1×11
            (1, 4, 12, 12, 8, 3, 3, 1, 1, 1, 4),    // final conv: multiplier 2
            (2, 16, 32, 32, 16, 7, 7, 1, 3, 3, 16), // split over threads with `rayon`
            (1, 6, 7, 19, 6, 3, 5, 1, 1, 2, 2),     // 3 planes per group, 3×5, odd rows, 16 + 3 columns
            (1, 2, 6, 8, 2, 2, 3, 1, 0, 1, 2),      // even kernel height, no row padding
        ];
        for (i, &shape) in shapes.iter().enumerate() {
            let (g, x, wt, bias) = case(shape);
            let want = naive(&x, &wt, Some(&bias), &g);
            let want_gelu: Vec<f32> = want.iter().map(|&v| crate::cpu::math::gelu1(v)).collect();
            // every vector width this CPU has (natively on x86-64 with AVX2: 4 and 8 lanes)
            for isa in Isa::all() {
                let got = conv2d_direct_on(isa, &x, &wt, Some(&bias), &g, false);
                let err = crate::cpu::max_error(&got, &want);
                assert!(err < 1e-4, "shape {i} on {isa:?}: error {err}");
                let act = conv2d_direct_on(isa, &x, &wt, Some(&bias), &g, true);
                let err = crate::cpu::max_error(&act, &want_gelu);
                assert!(err < 1e-4, "shape {i} with GELU on {isa:?}: error {err}");
            }
        }
    }

    /// The stride-2 column phases: every other value, vector and scalar tail, from either phase
    /// of rows of every length up to 21.
    #[test]
    fn every_other_takes_the_even_values() {
        let src: Vec<f32> = (0..21).map(|v| v as f32 * 1.5 - 7.0).collect();
        for len in 0..=src.len() {
            for first in 0..2.min(len + 1) {
                let row = &src[first..len];
                let n = row.len().div_ceil(2);
                let mut dst = vec![MaybeUninit::new(f32::NAN); n];
                every_other(row, &mut dst);
                let got: Vec<f32> = dst.iter().map(|v| unsafe { v.assume_init() }).collect();
                let want: Vec<f32> = row.iter().copied().step_by(2).collect();
                assert_eq!(crate::cpu::max_error(&got, &want), 0.0, "length {len} from {first}");
            }
        }
    }

    /// Split over 1 to 4 threads, a convolution gives the same values as on one: the pieces
    /// cut groups of several outputs (each thread pads the group again), hold one output each,
    /// or are fewer than the threads.
    #[cfg(feature = "rayon")]
    #[test]
    fn splits_over_threads_give_the_same_values() {
        let shapes = [
            // (batch, cin, h, w, cout, kh, kw, stride, pad_h, pad_w, groups): work ≥ 2 MIN_WORK
            (1, 9, 80, 80, 18, 7, 7, 2, 3, 3, 9), // multiplier 2: pieces of 5 cut its groups
            (1, 3, 64, 64, 24, 5, 5, 2, 2, 2, 1), // stem-like: one group for every output
            (3, 2, 64, 64, 2, 7, 7, 1, 3, 3, 2),  // depthwise, 6 outputs, ragged over 4 threads
            (1, 1, 160, 160, 1, 7, 7, 1, 3, 3, 1), // one output: more threads than pieces
        ];
        for (i, &shape) in shapes.iter().enumerate() {
            let (g, x, wt, bias) = case(shape);
            let want = naive(&x, &wt, Some(&bias), &g);
            let one = conv2d_direct_on(Isa::V4, &x, &wt, Some(&bias), &g, false);
            let err = crate::cpu::max_error(&one, &want);
            assert!(err < 1e-4, "shape {i}: error {err}");
            for threads in 1..=4 {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let got = pool.install(|| conv2d_direct_on(Isa::V4, &x, &wt, Some(&bias), &g, false));
                assert!(got == one, "shape {i} on {threads} threads differs from one thread");
            }
        }
    }
}
