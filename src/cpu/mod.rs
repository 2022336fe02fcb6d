//! Fast CPU kernels for burn's flex device, behind the few operations the models use: a
//! convolution or linear layer with its activation (and residual) fused, GELU, and multi-head
//! attention on a packed `qkv`. Each takes and returns burn tensors: on flex (f32) it runs this
//! module's kernels on the tensors' memory (`flex.rs`, cargo feature `flex`); on any
//! other device (WebGPU) it runs burn's ops, so the model code has one forward pass for both.
//! A build without flex (the WebGPU module) always takes burn's ops.
//!
//! Why: in the browser (wasm SIMD128, one thread) burn flex spent its time on GELU through
//! libm's scalar `erff`, depthwise and grouped convolutions through im2col + per-group gemm or
//! a scalar strided loop, separate bias/residual passes, copies making permuted tensors
//! contiguous, and a gemm microkernel whose 12×4 tiles spill V8's registers. See
//! `BENCHMARKS.md` for the figures.

pub mod attention;
pub mod conv;
#[cfg(feature = "flex")]
mod flex;
pub mod gemm;
pub mod math;
pub mod par;
pub mod simd;

use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use core::ops::Range;

use gemm::PANEL;

/// The largest `|got − want|` over two equally long slices, a NaN counting as infinite
/// (`f32::max` would skip it: a value read before it was written, or never written, must fail
/// the kernels' tests).
#[cfg(test)]
pub(crate) fn max_error(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "lengths");
    got.iter().zip(want).map(|(x, y)| (x - y).abs()).fold(0.0, |e, d| if d.is_nan() { f32::INFINITY } else { e.max(d) })
}

/// Whether `device` is flex's (where these kernels run; never in a build without flex).
pub fn is_flex(device: &burn::tensor::Device) -> bool {
    #[cfg(feature = "flex")]
    {
        matches!(device.as_dispatch(), burn::backend::DispatchDevice::Flex(_))
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

/// Whether `t` is an f32 tensor on the flex device (where these kernels run).
pub fn on_flex<const D: usize>(t: &Tensor<D>) -> bool {
    is_flex(&t.device()) && t.dtype() == burn::tensor::DType::F32
}

/// Exact GELU (in place where `x` holds its memory alone).
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if on_flex(&x) {
        return flex::gelu(x);
    }
    burn::tensor::activation::gelu(x)
}

/// `x · s` with one factor per image and channel (`x` `[B, C, H, W]`, `s` `[B, C, 1, 1]`: a
/// squeeze-excite's scaling), then GELU when `gelu`: one pass over `x`, in place where it holds
/// its memory alone (burn's broadcast product, then a GELU pass over a copy, took 1.5 % of a
/// MobileCLIP-S0 image on one thread in Chromium).
pub fn scale_channels(x: Tensor<4>, s: Tensor<4>, gelu: bool) -> Tensor<4> {
    let [b, c, _, _] = x.dims();
    assert_eq!(s.dims(), [b, c, 1, 1], "one factor per image and channel");
    #[cfg(feature = "flex")]
    if on_flex(&x) && on_flex(&s) {
        return flex::scale_channels(x, s, gelu);
    }
    unfused(x * s, gelu, None)
}

/// burn's ops for what the kernels would fuse: `y`, then GELU when `gelu`, plus `residual`.
fn unfused<const D: usize>(y: Tensor<D>, gelu: bool, residual: Option<Tensor<D>>) -> Tensor<D> {
    let y = if gelu { burn::tensor::activation::gelu(y) } else { y };
    match residual {
        Some(r) => y + r,
        None => y,
    }
}

/// `conv(x)`, then GELU when `gelu`.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>, gelu: bool) -> Tensor<4> {
    conv2d_impl(conv, x, gelu, None)
}

/// `conv(x) + residual` (residual shaped like the output).
pub fn conv2d_add(conv: &Conv2d, x: Tensor<4>, residual: Tensor<4>) -> Tensor<4> {
    conv2d_impl(conv, x, false, Some(residual))
}

fn conv2d_impl(conv: &Conv2d, x: Tensor<4>, gelu: bool, residual: Option<Tensor<4>>) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if on_flex(&x) {
        return flex::conv2d(conv, x, gelu, residual);
    }
    unfused(conv.forward(x), gelu, residual)
}

/// The output width of `l` for inputs `inp` wide, and whether its weight is stored packed: a
/// `[in, out]` weight is row-major, a `[out / PANEL · in, PANEL]` one holds the panels of
/// [`gemm::pack`] (see `model::common::layers::packed_linear`; both read the same when
/// `out = PANEL`).
fn linear_width(l: &Linear, inp: usize) -> (usize, bool) {
    match l.weight.dims() {
        [r, c] if r == inp => (c, false),
        [r, PANEL] if inp > 0 && r.is_multiple_of(inp) => (r / inp * PANEL, true),
        [r, c] => panic!("a {r} × {c} linear weight for inputs {inp} wide"),
    }
}

/// `linear(x)`, then GELU when `gelu`; `x` `[.., in]`.
pub fn linear<const D: usize>(l: &Linear, x: Tensor<D>, gelu: bool) -> Tensor<D> {
    let out = linear_width(l, x.dims()[D - 1]).0;
    linear_impl(l, 0..out, x, gelu, None)
}

/// `linear(x) + residual`.
pub fn linear_add<const D: usize>(l: &Linear, x: Tensor<D>, residual: Tensor<D>) -> Tensor<D> {
    let out = linear_width(l, x.dims()[D - 1]).0;
    linear_impl(l, 0..out, x, false, Some(residual))
}

/// The output columns `cols` of `linear(x)` (of a packed projection: its keys and values, say),
/// computing only those.
pub fn linear_columns<const D: usize>(l: &Linear, cols: Range<usize>, x: Tensor<D>) -> Tensor<D> {
    linear_impl(l, cols, x, false, None)
}

fn linear_impl<const D: usize>(
    l: &Linear,
    cols: Range<usize>,
    x: Tensor<D>,
    gelu: bool,
    residual: Option<Tensor<D>>,
) -> Tensor<D> {
    let inp = x.dims()[D - 1];
    let (width, packed) = linear_width(l, inp);
    assert!(cols.end <= width, "columns {cols:?} of a {width}-wide linear layer");
    #[cfg(feature = "flex")]
    if on_flex(&x) {
        return flex::linear(l, cols, x, [inp, width], packed, gelu, residual);
    }
    assert!(!packed, "packed weights off flex");
    let y = if cols.len() == width {
        l.forward(x)
    } else {
        let w = l.weight.val().narrow(1, cols.start, cols.len()).unsqueeze::<D>();
        let y = x.matmul(w);
        match &l.bias {
            Some(b) => y + b.val().narrow(0, cols.start, cols.len()).unsqueeze::<D>(),
            None => y,
        }
    };
    unfused(y, gelu, residual)
}

/// A 1×1 convolution applied to rows of channels, `[R, in]` → `[R, out]`: GELU after it when
/// `gelu`, plus `residual` (`[R, out]`).
pub fn pointwise(conv: &Conv2d, x: Tensor<2>, gelu: bool, residual: Option<Tensor<2>>) -> Tensor<2> {
    let [cout, cin, kh, kw] = conv.weight.dims();
    assert!(kh * kw == 1 && conv.groups == 1, "a 1×1 convolution without groups");
    #[cfg(feature = "flex")]
    if on_flex(&x) {
        return flex::pointwise(conv, x, [cout, cin], gelu, residual);
    }
    let y = x.matmul(conv.weight.val().reshape([cout, cin]).transpose());
    let y = match &conv.bias {
        Some(b) => y + b.val().unsqueeze::<2>(),
        None => y,
    };
    unfused(y, gelu, residual)
}

/// Multi-head attention over `qkv` `[B, N, 3·C]` (`[3, heads, head_dim]` along the last axis),
/// causal or not; `[B, N, C]`. Only for tensors on flex (see [`on_flex`]).
pub fn attention(qkv: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
    #[cfg(feature = "flex")]
    {
        flex::attention(qkv, heads, causal)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (heads, causal);
        unreachable!("no flex in this build: {:?}", qkv.device())
    }
}

/// Multi-head attention of queries `q` `[B, R, C]` over keys and values `kv` `[B, N, 2·C]`
/// (`[2, heads, head_dim]` along the last axis); `positions` (causal attention): each query
/// row's position in its sequence. `[B, R, C]`. Only for tensors on flex (see [`on_flex`]).
pub fn attention_rows(q: Tensor<3>, kv: Tensor<3>, heads: usize, positions: Option<&[usize]>) -> Tensor<3> {
    #[cfg(feature = "flex")]
    {
        flex::attention_rows(q, kv, heads, positions)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (kv, heads, positions);
        unreachable!("no flex in this build: {:?}", q.device())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flex_tensor<const D: usize>(data: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(data, shape), &burn::tensor::Device::flex())
    }

    /// The squeeze-excite scaling with GELU gives each value's `gelu1(x · s)` exactly (the
    /// planes' odd lengths reach the scalar tail), in place or on a copy when `x` is shared
    /// (the shared tensor keeps its values), and the same values on 1 to 4 threads.
    #[test]
    fn scale_channels_gives_each_values_product_and_gelu() {
        for (b, c, h, w) in [(2, 3, 5, 7), (1, 9, 256, 256)] {
            let n = b * c * h * w;
            let xs: Vec<f32> = (0..n).map(|v| ((v * 37 % 101) as f32 - 50.0) / 17.0).collect();
            let ss: Vec<f32> = (0..b * c).map(|v| 0.3 + v as f32 * 0.11).collect();
            let want = |gelu: bool| -> Vec<f32> {
                let y = xs.iter().enumerate().map(|(i, &x)| x * ss[i / (h * w)]);
                y.map(|y| if gelu { math::gelu1(y) } else { y }).collect()
            };
            let got = |x: Tensor<4>, gelu: bool| -> Vec<f32> {
                let y = scale_channels(x, flex_tensor(ss.clone(), [b, c, 1, 1]), gelu);
                y.into_data().try_to_vec::<f32>().unwrap()
            };
            for gelu in [false, true] {
                let x = flex_tensor(xs.clone(), [b, c, h, w]);
                let err = max_error(&got(x, gelu), &want(gelu));
                assert!(err == 0.0, "{b}×{c}×{h}×{w}, GELU {gelu}: error {err}");
            }
            let shared = flex_tensor(xs.clone(), [b, c, h, w]);
            assert_eq!(got(shared.clone(), true), want(true));
            assert_eq!(shared.into_data().try_to_vec::<f32>().unwrap(), xs, "a shared input keeps its values");
            #[cfg(feature = "rayon")]
            for threads in 1..=4 {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let y = pool.install(|| got(flex_tensor(xs.clone(), [b, c, h, w]), true));
                assert!(y == want(true), "{threads} threads");
            }
        }
    }

    /// `conv2d_add` adds the residual on every path flex takes (the 1×1 product's epilogue, the
    /// direct kernel of small groups, burn's convolution), and `conv2d` with GELU likewise,
    /// against burn's ops (a strided or grouped 1×1 once lost its residual).
    #[test]
    fn conv2d_add_adds_the_residual_on_every_path() {
        use burn::nn::PaddingConfig2d;
        use burn::nn::conv::Conv2dConfig;
        let device = burn::tensor::Device::flex();
        // (channels in, out, kernel, stride, padding, groups): the 1×1 product, a strided 1×1,
        // a grouped 1×1, a depthwise 3×3 (direct kernel), a dense 3×3 (burn's)
        for (cin, cout, k, stride, pad, groups) in
            [(8, 12, 1, 1, 0, 1), (8, 12, 1, 2, 0, 1), (8, 8, 1, 1, 0, 4), (8, 8, 3, 1, 1, 8), (8, 6, 3, 1, 1, 1)]
        {
            let conv = Conv2dConfig::new([cin, cout], [k, k])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_groups(groups)
                .init(&device);
            let (h, w) = (7, 6);
            let xs: Vec<f32> = (0..2 * cin * h * w).map(|v| ((v * 29 % 83) as f32 - 41.0) / 13.0).collect();
            let x = flex_tensor(xs, [2, cin, h, w]);
            let want = conv.forward(x.clone());
            let rs: Vec<f32> = (0..want.shape().num_elements()).map(|v| (v % 7) as f32 - 3.0).collect();
            let r = flex_tensor(rs, want.dims());
            let close = |got: Tensor<4>, want: Tensor<4>, what: &str| {
                let (got, want) =
                    (got.into_data().try_to_vec::<f32>().unwrap(), want.into_data().try_to_vec::<f32>().unwrap());
                let err = max_error(&got, &want);
                assert!(err < 1e-4, "{what}, {cin}→{cout} {k}×{k} stride {stride} groups {groups}: error {err}");
            };
            close(conv2d_add(&conv, x.clone(), r.clone()), want.clone() + r, "with the residual");
            close(conv2d(&conv, x, true), burn::tensor::activation::gelu(want), "with GELU");
        }
    }
}
