//! Vectorised transcendental functions of the kernels: exact-GELU (`erf`) and `exp`.
//!
//! `erf` is a rational minimax fit `z·P(z²)/Q(z²)` on `[0, 4]` (degrees 6 and 4 in `z²`, fitted
//! for this crate by linear programming on 3000 points; `erf(4)` rounds to 1 in `f32`): max
//! |error| 4.0e-7 evaluated in `f32`, so GELU differs from PyTorch's by at most 7.6e-7 (at
//! |x| ≈ 3.7). libm's scalar `erff` cost 14 % of the image tower's instructions.
//! `exp` uses the usual range reduction `x = n·ln2 + r`, `|r| ≤ ln2/2`, and a degree-7 Taylor
//! polynomial (relative error < 2e-7 before rounding).

use super::simd::{F32x4, Vector};

/// Numerator of the `erf` fit, in powers of `z²`.
const ERF_P: [f32; 7] =
    [1.128_378_9, 0.212_155_91, 0.052_191_053, 0.004_208_664_4, 0.000_152_891_39, -1.968_236_6e-6, 1.905_769_8e-8];
/// Denominator of the `erf` fit, in powers of `z²`.
const ERF_Q: [f32; 5] = [1.0, 0.521_347_05, 0.120_053_53, 0.015_390_576, 0.001_075_408_2];

/// `erf` of each lane (separate multiplies and adds, so every vector type gives the same
/// result lane by lane).
#[inline(always)]
pub fn erf<V: Vector>(z: V) -> V {
    let z = z.max(V::splat(-4.0)).min(V::splat(4.0));
    let u = z * z;
    let mut p = V::splat(ERF_P[6]);
    for &c in ERF_P[..6].iter().rev() {
        p = p * u + V::splat(c);
    }
    let mut q = V::splat(ERF_Q[4]);
    for &c in ERF_Q[..4].iter().rev() {
        q = q * u + V::splat(c);
    }
    (z * p / q).max(V::splat(-1.0)).min(V::splat(1.0))
}

/// Exact (erf) GELU of each lane: `x/2 · (1 + erf(x/√2))`.
#[inline(always)]
pub fn gelu<V: Vector>(x: V) -> V {
    let half = V::splat(0.5);
    half * x * (V::splat(1.0) + erf(x * V::splat(core::f32::consts::FRAC_1_SQRT_2)))
}

/// [`gelu`] of 4 lanes.
#[inline(always)]
pub fn gelu4(x: F32x4) -> F32x4 {
    gelu(x)
}

/// GELU of one value, computed as one lane of [`gelu4`] (same result as the vector path).
#[inline(always)]
pub fn gelu1(x: f32) -> f32 {
    gelu4(F32x4::splat(x)).to_array()[0]
}

/// `exp` of 4 lanes; inputs below −87 give ~1e-38 instead of 0 (softmax after subtracting the
/// row maximum only meets them for masked positions, whose weights stay negligible).
#[inline(always)]
pub fn exp4(x: F32x4) -> F32x4 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.max(F32x4::splat(-87.0)).min(F32x4::splat(88.0));
    let n = (x * F32x4::splat(core::f32::consts::LOG2_E)).round();
    let r = x - n * F32x4::splat(LN2_HI) - n * F32x4::splat(LN2_LO);
    // e^r = Σ r^k / k!, k ≤ 7, by Horner.
    let mut p = F32x4::splat(1.0 / 5040.0);
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p * r + F32x4::splat(c);
    }
    p * F32x4::exp2_int(n)
}

/// `exp` of one value, as one lane of [`exp4`].
#[inline(always)]
pub fn exp1(x: f32) -> f32 {
    exp4(F32x4::splat(x)).to_array()[0]
}

/// GELU over a slice, in place (8 lanes at a time natively where the CPU has AVX2).
pub fn gelu_in_place(x: &mut [f32]) {
    scale_in_place(x, 1.0, true);
}

/// `x · factor`, then GELU when `gelu`, over a slice, in place (8 lanes at a time natively where
/// the CPU has AVX2). With `factor` 1 and `gelu`, the values of [`gelu_in_place`].
pub fn scale_in_place(x: &mut [f32], factor: f32, gelu: bool) {
    match super::simd::Isa::best() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 and FMA checked.
        super::simd::Isa::Avx2 => unsafe { scale_in_place_avx2(x, factor, gelu) },
        super::simd::Isa::V4 => scale_slice::<F32x4>(x, factor, gelu),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scale_in_place_avx2(x: &mut [f32], factor: f32, gelu: bool) {
    scale_slice::<super::simd::F32x8>(x, factor, gelu);
}

#[inline(always)]
fn scale_slice<V: Vector>(x: &mut [f32], factor: f32, act: bool) {
    let f = V::splat(factor);
    let mut chunks = x.chunks_exact_mut(V::LANES);
    for c in &mut chunks {
        // SAFETY: `c` holds LANES values.
        unsafe {
            let v = V::load(c.as_ptr()) * f;
            if act { gelu(v) } else { v }.store(c.as_mut_ptr());
        }
    }
    for v in chunks.into_remainder() {
        let y = *v * factor;
        *v = if act { gelu1(y) } else { y };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Taylor series (for |x| ≤ 2) or continued fraction of erfc, in f64.
    fn erf_ref(x: f64) -> f64 {
        if x.abs() > 2.5 {
            // erfc(x) = exp(-x²)/(x√π) · 1/(1 + 1/(2x²)/(1 + 2/(2x²)/(1 + ...))) (Lentz, enough terms)
            let a = x.abs();
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = (k as f64 / 2.0) / (a + f);
            }
            let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f);
            return (1.0 - erfc).copysign(x);
        }
        let mut sum = 0.0;
        let mut term = x;
        for n in 0..80 {
            sum += term / (2 * n + 1) as f64;
            term *= -x * x / (n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn gelu_matches_the_exact_definition() {
        let mut worst: f64 = 0.0;
        let mut x = -9.0f32;
        while x < 9.0 {
            let r = 0.5 * x as f64 * (1.0 + erf_ref(x as f64 / std::f64::consts::SQRT_2));
            worst = worst.max((gelu1(x) as f64 - r).abs());
            x += 0.000_37;
        }
        assert!(worst < 1e-6, "GELU max error {worst:e}");
        assert_eq!(gelu1(0.0), 0.0);
        assert_eq!(gelu1(-20.0), 0.0);
        assert_eq!(gelu1(20.0), 20.0);
    }

    #[test]
    fn exp_is_accurate() {
        let mut worst: f64 = 0.0;
        let mut x = -80.0f32;
        while x < 80.0 {
            let r = (x as f64).exp();
            worst = worst.max(((exp1(x) as f64 - r) / r).abs());
            x += 0.0013;
        }
        assert!(worst < 5e-7, "exp max relative error {worst:e}");
        assert!(exp1(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn slices_use_the_same_function_for_tails() {
        // 8-lane chunks (AVX2 natively), 4-lane chunks and the scalar tail: one function.
        let mut v: Vec<f32> = (0..19).map(|i| i as f32 * 0.7 - 6.0).collect();
        let expected: Vec<f32> = v.iter().map(|&x| gelu1(x)).collect();
        gelu_in_place(&mut v);
        assert_eq!(v, expected);
        let mut w: Vec<f32> = (0..19).map(|i| i as f32 * 0.7 - 6.0).collect();
        scale_slice::<F32x4>(&mut w, 1.0, true);
        assert_eq!(w, expected);
    }
}
