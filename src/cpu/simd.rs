//! A 4-lane `f32` vector over the target's SIMD: wasm SIMD128 (the build enables `simd128`),
//! SSE on x86-64 and NEON on aarch64 (both part of the baseline), plain arrays elsewhere.
//!
//! Only what the kernels use, all `#[inline(always)]` so that the kernels compile to straight
//! vector code. [`F32x4`] has no fused multiply-add (wasm SIMD128 has none; relaxed SIMD is not
//! in every engine). Natively on x86-64, [`F32x8`] (AVX2 + FMA, runtime-detected) serves the
//! kernels written over [`Vector`].

#[cfg(target_arch = "aarch64")]
use core::arch::aarch64 as arch;
#[cfg(target_arch = "wasm32")]
use core::arch::wasm32 as arch;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64 as arch;

/// Lanes in [`F32x4`].
pub const LANES: usize = 4;

/// Whether this build's hot loops use wasm relaxed SIMD (the `relaxed-simd` feature, on wasm32
/// only): the kernels' inner loops (gemm `product`, conv `chunk`) and [`F32x4::mul_add`]. Such a module fails validation on engines without relaxed
/// SIMD, so the package ships it beside the SIMD128 one and the loader picks.
pub const RELAXED: bool = cfg!(all(target_arch = "wasm32", feature = "relaxed-simd"));

#[cfg(target_arch = "wasm32")]
type Repr = arch::v128;
#[cfg(target_arch = "x86_64")]
type Repr = arch::__m128;
#[cfg(target_arch = "aarch64")]
type Repr = arch::float32x4_t;
#[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64", target_arch = "aarch64")))]
type Repr = [f32; 4];

/// Four `f32` lanes.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct F32x4(Repr);

// Every function is a single intrinsic (or a short fixed sequence) on the three SIMD targets; the
// safety of the `unsafe fn`s is the caller's: pointers must be valid for 4 (or 1) reads/writes.
impl F32x4 {
    /// All lanes `v`.
    #[inline(always)]
    pub fn splat(v: f32) -> Self {
        #[cfg(target_arch = "wasm32")]
        return Self(arch::f32x4_splat(v));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE is part of the x86-64 baseline.
        return Self(unsafe { arch::_mm_set1_ps(v) });
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is part of the aarch64 baseline.
        return Self(unsafe { arch::vdupq_n_f32(v) });
        #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64", target_arch = "aarch64")))]
        return Self([v; 4]);
    }

    /// Loads 4 values from `p` (any alignment).
    ///
    /// # Safety
    /// `p` must be valid for reading 4 `f32`.
    #[inline(always)]
    pub unsafe fn load(p: *const f32) -> Self {
        unsafe {
            #[cfg(target_arch = "wasm32")]
            return Self(arch::v128_load(p as *const arch::v128));
            #[cfg(target_arch = "x86_64")]
            return Self(arch::_mm_loadu_ps(p));
            #[cfg(target_arch = "aarch64")]
            return Self(arch::vld1q_f32(p));
            #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64", target_arch = "aarch64")))]
            return Self(core::ptr::read_unaligned(p as *const [f32; 4]));
        }
    }

    /// Loads `*p` into all lanes.
    ///
    /// # Safety
    /// `p` must be valid for reading one `f32`.
    #[inline(always)]
    pub unsafe fn load_splat(p: *const f32) -> Self {
        unsafe {
            #[cfg(target_arch = "wasm32")]
            return Self(arch::v128_load32_splat(p as *const u32));
            #[cfg(not(target_arch = "wasm32"))]
            return Self::splat(*p);
        }
    }

    /// Stores the 4 lanes at `p` (any alignment).
    ///
    /// # Safety
    /// `p` must be valid for writing 4 `f32`.
    #[inline(always)]
    pub unsafe fn store(self, p: *mut f32) {
        unsafe {
            #[cfg(target_arch = "wasm32")]
            arch::v128_store(p as *mut arch::v128, self.0);
            #[cfg(target_arch = "x86_64")]
            arch::_mm_storeu_ps(p, self.0);
            #[cfg(target_arch = "aarch64")]
            arch::vst1q_f32(p, self.0);
            #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64", target_arch = "aarch64")))]
            core::ptr::write_unaligned(p as *mut [f32; 4], self.0);
        }
    }

    /// The lanes as an array.
    #[inline(always)]
    pub fn to_array(self) -> [f32; 4] {
        let mut out = [0.0; 4];
        // SAFETY: `out` holds 4 values.
        unsafe { self.store(out.as_mut_ptr()) };
        out
    }

    /// Lane-wise minimum (either operand when one is NaN).
    #[inline(always)]
    pub fn min(self, o: Self) -> Self {
        #[cfg(target_arch = "wasm32")]
        return Self(arch::f32x4_pmin(self.0, o.0));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE baseline.
        return Self(unsafe { arch::_mm_min_ps(self.0, o.0) });
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON baseline.
        return Self(unsafe { arch::vminq_f32(self.0, o.0) });
        #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64", target_arch = "aarch64")))]
        return Self(core::array::from_fn(|i| if o.0[i] < self.0[i] { o.0[i] } else { self.0[i] }));
    }

    /// Lane-wise maximum (either operand when one is NaN).
    #[inline(always)]
    pub fn max(self, o: Self) -> Self {
        #[cfg(target_arch = "wasm32")]
        return Self(arch::f32x4_pmax(self.0, o.0));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE baseline.
        return Self(unsafe { arch::_mm_max_ps(self.0, o.0) });
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON baseline.
        return Self(unsafe { arch::vmaxq_f32(self.0, o.0) });
        #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64", target_arch = "aarch64")))]
        return Self(core::array::from_fn(|i| if self.0[i] < o.0[i] { o.0[i] } else { self.0[i] }));
    }

    /// `2^n` for integral `n` in `[-126, 127]` given as floats (built from the exponent bits).
    #[inline(always)]
    pub fn exp2_int(n: Self) -> Self {
        #[cfg(target_arch = "wasm32")]
        return Self(arch::i32x4_shl(arch::i32x4_add(arch::i32x4_trunc_sat_f32x4(n.0), arch::i32x4_splat(127)), 23));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 baseline.
        return Self(unsafe {
            arch::_mm_castsi128_ps(arch::_mm_slli_epi32(
                arch::_mm_add_epi32(arch::_mm_cvttps_epi32(n.0), arch::_mm_set1_epi32(127)),
                23,
            ))
        });
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON baseline.
        return Self(unsafe {
            arch::vreinterpretq_f32_s32(arch::vshlq_n_s32(
                arch::vaddq_s32(arch::vcvtq_s32_f32(n.0), arch::vdupq_n_s32(127)),
                23,
            ))
        });
        #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64", target_arch = "aarch64")))]
        return Self(n.0.map(|v| f32::from_bits(((v as i32 + 127) as u32) << 23)));
    }

    /// Rounds to the nearest integer (ties away from zero is not needed: any rounding works for
    /// range reduction as long as it is consistent).
    #[inline(always)]
    pub fn round(self) -> Self {
        #[cfg(target_arch = "wasm32")]
        return Self(arch::f32x4_nearest(self.0));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 baseline (convert with the current rounding mode, nearest-even).
        return Self(unsafe { arch::_mm_cvtepi32_ps(arch::_mm_cvtps_epi32(self.0)) });
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON baseline.
        return Self(unsafe { arch::vrndnq_f32(self.0) });
        #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64", target_arch = "aarch64")))]
        return Self(self.0.map(f32::round));
    }

    /// `self · b + c`: wasm relaxed SIMD's multiply-add in the module built with the
    /// `relaxed-simd` feature (one fused instruction where the CPU has FMA, so rounding may
    /// differ between machines), a multiply and an add otherwise. Inlined only into functions
    /// that enable `relaxed-simd` too (see [`RELAXED`]).
    #[cfg(all(target_arch = "wasm32", feature = "relaxed-simd"))]
    #[inline]
    #[target_feature(enable = "relaxed-simd")]
    pub fn mul_add(self, b: Self, c: Self) -> Self {
        Self(arch::f32x4_relaxed_madd(self.0, b.0, c.0))
    }

    /// `self · b + c` (a multiply and an add: no fused multiply-add in SIMD128).
    #[cfg(not(all(target_arch = "wasm32", feature = "relaxed-simd")))]
    #[inline(always)]
    pub fn mul_add(self, b: Self, c: Self) -> Self {
        self * b + c
    }

    /// The even lanes of `self` then of `o`: `[self0, self2, o0, o2]` (every other value of 8
    /// consecutive ones).
    #[inline(always)]
    pub fn even_lanes(self, o: Self) -> Self {
        #[cfg(target_arch = "wasm32")]
        return Self(arch::i32x4_shuffle::<0, 2, 4, 6>(self.0, o.0));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE baseline.
        return Self(unsafe { arch::_mm_shuffle_ps::<0b10_00_10_00>(self.0, o.0) });
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON baseline.
        return Self(unsafe { arch::vuzp1q_f32(self.0, o.0) });
        #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64", target_arch = "aarch64")))]
        return Self([self.0[0], self.0[2], o.0[0], o.0[2]]);
    }

    /// Sum of the lanes.
    #[inline(always)]
    pub fn sum(self) -> f32 {
        let a = self.to_array();
        (a[0] + a[2]) + (a[1] + a[3])
    }

    /// Maximum of the lanes.
    #[inline(always)]
    pub fn max_lane(self) -> f32 {
        let a = self.to_array();
        a[0].max(a[1]).max(a[2].max(a[3]))
    }
}

macro_rules! binary {
    ($trait:ident, $method:ident, $wasm:ident, $sse:ident, $neon:ident, $op:tt) => {
        impl core::ops::$trait for F32x4 {
            type Output = Self;
            #[inline(always)]
            fn $method(self, o: Self) -> Self {
                #[cfg(target_arch = "wasm32")]
                return Self(arch::$wasm(self.0, o.0));
                #[cfg(target_arch = "x86_64")]
                // SAFETY: SSE baseline.
                return Self(unsafe { arch::$sse(self.0, o.0) });
                #[cfg(target_arch = "aarch64")]
                // SAFETY: NEON baseline.
                return Self(unsafe { arch::$neon(self.0, o.0) });
                #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64", target_arch = "aarch64")))]
                return Self(core::array::from_fn(|i| self.0[i] $op o.0[i]));
            }
        }
    };
}

binary!(Add, add, f32x4_add, _mm_add_ps, vaddq_f32, +);
binary!(Sub, sub, f32x4_sub, _mm_sub_ps, vsubq_f32, -);
binary!(Mul, mul, f32x4_mul, _mm_mul_ps, vmulq_f32, *);
binary!(Div, div, f32x4_div, _mm_div_ps, vdivq_f32, /);

/// What the generic kernels (the direct convolution, the native gemm epilogue, GELU) need of
/// an `f32` vector: [`F32x4`] on every target, and natively on x86-64 [`F32x8`] (AVX2 + FMA),
/// which they run on where the CPU has it ([`Isa`]).
pub trait Vector:
    Copy
    + core::ops::Add<Output = Self>
    + core::ops::Sub<Output = Self>
    + core::ops::Mul<Output = Self>
    + core::ops::Div<Output = Self>
{
    /// Lanes.
    const LANES: usize;
    /// All lanes `v`.
    fn splat(v: f32) -> Self;
    /// Loads `LANES` values from `p` (any alignment).
    ///
    /// # Safety
    /// `p` must be valid for reading `LANES` `f32`.
    unsafe fn load(p: *const f32) -> Self;
    /// Stores the lanes at `p` (any alignment).
    ///
    /// # Safety
    /// `p` must be valid for writing `LANES` `f32`.
    unsafe fn store(self, p: *mut f32);
    /// Lane-wise minimum.
    fn min(self, o: Self) -> Self;
    /// Lane-wise maximum.
    fn max(self, o: Self) -> Self;
    /// `2^n` for integral `n` in `[-126, 127]` given as floats.
    fn exp2_int(n: Self) -> Self;
    /// Rounds to an integer (nearest).
    fn round(self) -> Self;
    /// `self · b + c`: fused where the vector type has FMA (see [`F32x4::mul_add`]).
    fn mul_add(self, b: Self, c: Self) -> Self;
}

impl Vector for F32x4 {
    const LANES: usize = LANES;
    #[inline(always)]
    fn splat(v: f32) -> Self {
        F32x4::splat(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { F32x4::load(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { F32x4::store(self, p) }
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        F32x4::min(self, o)
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        F32x4::max(self, o)
    }
    #[inline(always)]
    fn exp2_int(n: Self) -> Self {
        F32x4::exp2_int(n)
    }
    #[inline(always)]
    fn round(self) -> Self {
        F32x4::round(self)
    }
    /// (With relaxed SIMD: inlined into the kernels, which enable it, and from there its
    /// fused instruction.)
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        F32x4::mul_add(self, b, c)
    }
}

/// The vectors the generic kernels run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// [`F32x4`] (wasm SIMD128, SSE, NEON).
    V4,
    /// [`F32x8`]: AVX2 + FMA (x86-64 CPUs that have them).
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Isa {
    /// The widest this CPU runs, checked once; natively `MOBILECLIP_MAX_ISA=v4` keeps the
    /// kernels on 4 lanes (for A/B measurements).
    #[inline]
    pub fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
            *BEST.get_or_init(|| {
                let capped = std::env::var("MOBILECLIP_MAX_ISA").is_ok_and(|v| v.eq_ignore_ascii_case("v4"));
                if !capped && std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    Self::Avx2
                } else {
                    Self::V4
                }
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        Self::V4
    }

    /// Every one this CPU runs (the kernels' tests check each).
    pub fn all() -> Vec<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return vec![Self::V4, Self::Avx2];
        }
        vec![Self::V4]
    }
}

#[cfg(target_arch = "x86_64")]
pub use avx::F32x8;

/// Eight `f32` lanes in an AVX register, with fused multiply-add.
#[cfg(target_arch = "x86_64")]
mod avx {
    use core::arch::x86_64::*;

    /// Eight `f32` lanes (AVX2 + FMA). Its operations are plain inlined intrinsics: only code
    /// compiled with `#[target_feature(enable = "avx2,fma")]` and reached after
    /// [`super::Isa::best`] returned [`super::Isa::Avx2`] may use it (the kernels' `*_avx2` entry points, whose
    /// callers check).
    #[derive(Clone, Copy)]
    #[repr(transparent)]
    pub struct F32x8(__m256);

    // SAFETY (every `unsafe` block below): AVX2 and FMA are present, by the type's contract.
    impl super::Vector for F32x8 {
        const LANES: usize = 8;
        #[inline(always)]
        fn splat(v: f32) -> Self {
            Self(unsafe { _mm256_set1_ps(v) })
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Self(unsafe { _mm256_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm256_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        fn min(self, o: Self) -> Self {
            Self(unsafe { _mm256_min_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn max(self, o: Self) -> Self {
            Self(unsafe { _mm256_max_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn exp2_int(n: Self) -> Self {
            Self(unsafe {
                _mm256_castsi256_ps(_mm256_slli_epi32(
                    _mm256_add_epi32(_mm256_cvttps_epi32(n.0), _mm256_set1_epi32(127)),
                    23,
                ))
            })
        }
        #[inline(always)]
        fn round(self) -> Self {
            Self(unsafe { _mm256_cvtepi32_ps(_mm256_cvtps_epi32(self.0)) })
        }
        #[inline(always)]
        fn mul_add(self, b: Self, c: Self) -> Self {
            Self(unsafe { _mm256_fmadd_ps(self.0, b.0, c.0) })
        }
    }

    macro_rules! binary {
        ($trait:ident, $method:ident, $avx:ident) => {
            impl core::ops::$trait for F32x8 {
                type Output = Self;
                #[inline(always)]
                fn $method(self, o: Self) -> Self {
                    // SAFETY: AVX is present, by the type's contract.
                    Self(unsafe { $avx(self.0, o.0) })
                }
            }
        };
    }

    binary!(Add, add, _mm256_add_ps);
    binary!(Sub, sub, _mm256_sub_ps);
    binary!(Mul, mul, _mm256_mul_ps);
    binary!(Div, div, _mm256_div_ps);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_behave_like_scalars() {
        let a = [1.5f32, -2.0, 3.25, 0.0];
        let b = [0.5f32, 4.0, -1.0, 2.0];
        // SAFETY: 4-element arrays.
        let (va, vb) = unsafe { (F32x4::load(a.as_ptr()), F32x4::load(b.as_ptr())) };
        assert_eq!((va + vb).to_array(), [2.0, 2.0, 2.25, 2.0]);
        assert_eq!((va - vb).to_array(), [1.0, -6.0, 4.25, -2.0]);
        assert_eq!((va * vb).to_array(), [0.75, -8.0, -3.25, 0.0]);
        assert_eq!((va / vb).to_array(), [3.0, -0.5, -3.25, 0.0]);
        assert_eq!(va.min(vb).to_array(), [0.5, -2.0, -1.0, 0.0]);
        assert_eq!(va.max(vb).to_array(), [1.5, 4.0, 3.25, 2.0]);
        assert_eq!(va.sum(), 2.75);
        assert_eq!(va.max_lane(), 3.25);
        assert_eq!(F32x4::splat(-3.0).to_array(), [-3.0; 4]);
        // SAFETY: one element.
        assert_eq!(unsafe { F32x4::load_splat(&b[1]) }.to_array(), [4.0; 4]);
        let n = [-3.0f32, 0.0, 5.0, 20.0];
        // SAFETY: 4 elements.
        let p = F32x4::exp2_int(unsafe { F32x4::load(n.as_ptr()) }).to_array();
        assert_eq!(p, [0.125, 1.0, 32.0, 1048576.0]);
        let r = [0.4f32, -1.6, 2.5, 7.0];
        // SAFETY: 4 elements.
        let r = unsafe { F32x4::load(r.as_ptr()) }.round().to_array();
        assert_eq!([r[0], r[1], r[3]], [0.0, -2.0, 7.0]);
        assert!(r[2] == 2.0 || r[2] == 3.0);
    }
}
