//! Fast CPU kernels for burn's flex device, behind the few operations the models use: a
//! convolution or linear layer with its activation (and residual) fused, GELU, and multi-head
//! attention on a packed `qkv`. Each takes and returns burn tensors: on flex (f32) it runs this
//! module's kernels on the tensors' memory; on any other device (WebGPU) it runs burn's ops, so
//! the model code has one forward pass for both.
//!
//! Why: in the browser (wasm SIMD128, one thread) burn flex spent its time on GELU through
//! libm's scalar `erff`, depthwise and grouped convolutions through im2col + per-group gemm or
//! a scalar strided loop, separate bias/residual passes, copies making permuted tensors
//! contiguous, and a gemm microkernel whose 12×4 tiles spill V8's registers. See
//! `BENCHMARKS.md` for the figures.

pub mod attention;
pub mod conv;
pub mod gemm;
pub mod math;
pub mod par;
pub mod simd;

use burn::backend::flex::FlexTensor;
use burn::backend::{BackendTensor, DispatchDevice, DispatchTensor, DispatchTensorKind};
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::DType;
use core::ops::Range;

use conv::ConvGeometry;
use gemm::{Bias, Epilogue, Mat, PANEL, Packed, Rhs};

/// The largest `|got − want|` over two equally long slices, a NaN counting as infinite
/// (`f32::max` would skip it: a value read before it was written, or never written, must fail
/// the kernels' tests).
#[cfg(test)]
pub(crate) fn max_error(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "lengths");
    got.iter().zip(want).map(|(x, y)| (x - y).abs()).fold(0.0, |e, d| if d.is_nan() { f32::INFINITY } else { e.max(d) })
}

/// Whether `device` is flex's (where these kernels run).
pub fn is_flex(device: &burn::tensor::Device) -> bool {
    matches!(device.as_dispatch(), DispatchDevice::Flex(_))
}

/// Whether `t` is an f32 tensor on the flex device (where these kernels run).
pub fn on_flex<const D: usize>(t: &Tensor<D>) -> bool {
    is_flex(&t.device()) && t.dtype() == DType::F32
}

/// The flex primitive of an f32 tensor on flex, contiguous from offset 0 (zero-copy when it
/// already is).
fn primitive<const D: usize>(t: Tensor<D>) -> FlexTensor {
    #[allow(unreachable_patterns)] // the only variant in the CPU module
    let f = match t.into_dispatch().kind {
        DispatchTensorKind::Flex(BackendTensor::Float(f)) => f,
        _ => unreachable!("checked by on_flex"),
    };
    if f.is_contiguous() && f.layout().start_offset() == 0 { f } else { f.to_contiguous() }
}

/// The values of a primitive from [`primitive`].
fn values(f: &FlexTensor) -> &[f32] {
    f.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// A flex tensor of `shape` owning `data`.
fn tensor<const D: usize>(data: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
    let f = FlexTensor::from_data(TensorData::new(data, shape));
    Tensor::from_dispatch(DispatchTensor {
        kind: DispatchTensorKind::Flex(BackendTensor::Float(f)),
        autodiff: Default::default(),
    })
}

/// The values of a parameter tensor (no copy).
fn param<const D: usize>(p: &burn::module::Param<Tensor<D>>) -> FlexTensor {
    primitive(p.val())
}

/// A flex tensor from its primitive.
fn from_flex<const D: usize>(f: FlexTensor) -> Tensor<D> {
    Tensor::from_dispatch(DispatchTensor {
        kind: DispatchTensorKind::Flex(BackendTensor::Float(f)),
        autodiff: Default::default(),
    })
}

/// Applies `f` to the values of `x` (a primitive from [`primitive`]): in place where `x` holds
/// its memory alone, else on a copy.
fn map_values<const D: usize>(mut x: FlexTensor, shape: [usize; D], f: impl FnOnce(&mut [f32])) -> Tensor<D> {
    let n = shape.iter().product::<usize>();
    match x.try_storage_mut::<f32>() {
        Some(data) => {
            f(&mut data[..n]);
            from_flex(x)
        }
        None => {
            let mut data = values(&x)[..n].to_vec();
            f(&mut data);
            tensor(data, shape)
        }
    }
}

/// Exact GELU (in place where `x` holds its memory alone).
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !on_flex(&x) {
        return burn::tensor::activation::gelu(x);
    }
    let shape: [usize; D] = x.dims();
    map_values(primitive(x), shape, math::gelu_in_place)
}

/// `x · s` with one factor per image and channel (`x` `[B, C, H, W]`, `s` `[B, C, 1, 1]`: a
/// squeeze-excite's scaling), then GELU when `gelu`: one pass over `x`, in place where it holds
/// its memory alone (burn's broadcast product, then a GELU pass over a copy, took 1.5 % of a
/// MobileCLIP-S0 image on one thread in Chromium).
pub fn scale_channels(x: Tensor<4>, s: Tensor<4>, gelu: bool) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    assert_eq!(s.dims(), [b, c, 1, 1], "one factor per image and channel");
    if !on_flex(&x) || !on_flex(&s) {
        return unfused(x * s, gelu, None);
    }
    let s = primitive(s);
    let factors = values(&s);
    let plane = h * w;
    map_values(primitive(x), [b, c, h, w], |data| {
        let ranges = par::ranges(b * c, par::parts(data.len()), 1);
        let cuts: Vec<usize> = ranges.iter().skip(1).map(|r| r.start * plane).collect();
        let pieces = par::split_at(data, &cuts);
        par::run(ranges.into_iter().map(|r| r.start).zip(pieces).collect(), |(first, piece)| {
            for (x, &f) in piece.chunks_exact_mut(plane.max(1)).zip(&factors[first..]) {
                math::scale_in_place(x, f, gelu);
            }
        });
    })
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
    let [b, cin, h, w] = x.dims();
    let [cout, cpg, kh, kw] = conv.weight.dims();
    let pads = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => Some((top, left)),
        PaddingConfig2d::Valid => Some((0, 0)),
        _ => None,
    };
    let supported = on_flex(&x)
        && conv.dilation == [1, 1]
        && conv.stride[0] == conv.stride[1]
        && pads.is_some()
        && (residual.is_none() || kh * kw == 1);
    let Some((pad_h, pad_w)) = pads.filter(|_| supported) else {
        return unfused(conv.forward(x), gelu, residual);
    };
    let g =
        ConvGeometry { batch: b, cin, h, w, cout, kh, kw, stride: conv.stride[0], pad_h, pad_w, groups: conv.groups };
    let weight = param(&conv.weight);
    let bias = conv.bias.as_ref().map(param);
    let bias = bias.as_ref().map(values);
    let (oh, ow) = (g.out_h(), g.out_w());
    if kh * kw == 1 && g.stride == 1 && pad_h == 0 && pad_w == 0 && g.groups == 1 {
        // 1×1: per image, out[cout, hw] = W[cout, cin] · x[cin, hw].
        let xs = primitive(x);
        let res = residual.map(primitive);
        let hw = h * w;
        // Written once by the products (nothing zeroed first).
        let mut out = Vec::with_capacity(b * cout * hw);
        let dst = &mut out.spare_capacity_mut()[..b * cout * hw];
        for i in 0..b {
            let ep = Epilogue {
                bias: bias.map_or(Bias::None, Bias::Row),
                gelu,
                residual: res.as_ref().map(|r| (&values(r)[i * cout * hw..(i + 1) * cout * hw], hw)),
                scale: 1.0,
            };
            gemm::gemm_uninit(
                [cout, hw, cin],
                Mat::rows(values(&weight), cin),
                Mat::rows(&values(&xs)[i * cin * hw..(i + 1) * cin * hw], hw),
                &mut dst[i * cout * hw..(i + 1) * cout * hw],
                hw,
                &ep,
            );
        }
        // SAFETY: the products wrote every value of each image's cout × hw block (rows hw apart).
        unsafe { out.set_len(b * cout * hw) };
        return tensor(out, [b, cout, oh, ow]);
    }
    if cpg <= 4 {
        let xs = primitive(x);
        let out = conv::conv2d_direct(values(&xs), values(&weight), bias, &g, gelu);
        return tensor(out, [b, cout, oh, ow]);
    }
    let y = conv.forward(x);
    if gelu { self::gelu(y) } else { y }
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
    if !on_flex(&x) {
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
        return unfused(y, gelu, residual);
    }
    let mut shape: [usize; D] = x.dims();
    let out_dim = cols.len();
    let rows = shape[..D - 1].iter().product::<usize>();
    let weight = param(&l.weight);
    let bias = l.bias.as_ref().map(param);
    let w: Rhs = if packed {
        Packed::new(values(&weight), inp, width).columns(cols.clone()).into()
    } else {
        Mat::rows(&values(&weight)[cols.start..], width).into()
    };
    let out = row_product(
        primitive(x),
        [rows, out_dim, inp],
        w,
        bias.as_ref().map(|b| &values(b)[cols.start..]),
        gelu,
        residual.map(primitive),
    );
    shape[D - 1] = out_dim;
    tensor(out, shape)
}

/// `act(x · w + bias) + residual` for `x` `[rows, in]` (flex values), `w` an `in × out` view,
/// one bias value per output column: `[rows, out]` values.
fn row_product(
    x: FlexTensor,
    [rows, out, inp]: [usize; 3],
    w: Rhs,
    bias: Option<&[f32]>,
    gelu: bool,
    residual: Option<FlexTensor>,
) -> Vec<f32> {
    let ep = Epilogue {
        bias: bias.map_or(Bias::None, Bias::Col),
        gelu,
        residual: residual.as_ref().map(|r| (values(r), out)),
        scale: 1.0,
    };
    gemm::product([rows, out, inp], Mat::rows(values(&x), inp), w, &ep)
}

/// A 1×1 convolution applied to rows of channels, `[R, in]` → `[R, out]`: GELU after it when
/// `gelu`, plus `residual` (`[R, out]`).
pub fn pointwise(conv: &Conv2d, x: Tensor<2>, gelu: bool, residual: Option<Tensor<2>>) -> Tensor<2> {
    let [cout, cin, kh, kw] = conv.weight.dims();
    assert!(kh * kw == 1 && conv.groups == 1, "a 1×1 convolution without groups");
    if !on_flex(&x) {
        let y = x.matmul(conv.weight.val().reshape([cout, cin]).transpose());
        let y = match &conv.bias {
            Some(b) => y + b.val().unsqueeze::<2>(),
            None => y,
        };
        return unfused(y, gelu, residual);
    }
    let rows = x.dims()[0];
    let weight = param(&conv.weight);
    let bias = conv.bias.as_ref().map(param);
    let out = row_product(
        primitive(x),
        [rows, cout, cin],
        Mat::transposed(values(&weight), cin).into(),
        bias.as_ref().map(values),
        gelu,
        residual.map(primitive),
    );
    tensor(out, [rows, cout])
}

/// Multi-head attention over `qkv` `[B, N, 3·C]` (`[3, heads, head_dim]` along the last axis),
/// causal or not; `[B, N, C]`. Only for tensors on flex (see [`on_flex`]).
pub fn attention(qkv: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
    let [b, n, c3] = qkv.dims();
    let x = primitive(qkv);
    let out = attention::attention(values(&x), b, n, c3 / 3, heads, causal);
    tensor(out, [b, n, c3 / 3])
}

/// Multi-head attention of queries `q` `[B, R, C]` over keys and values `kv` `[B, N, 2·C]`
/// (`[2, heads, head_dim]` along the last axis); `positions` (causal attention): each query
/// row's position in its sequence. `[B, R, C]`. Only for tensors on flex (see [`on_flex`]).
pub fn attention_rows(q: Tensor<3>, kv: Tensor<3>, heads: usize, positions: Option<&[usize]>) -> Tensor<3> {
    let [b, r, c] = q.dims();
    let n = kv.dims()[1];
    assert_eq!(kv.dims(), [b, n, 2 * c]);
    let (q, kv) = (primitive(q), primitive(kv));
    let rows = |data, ld, offset| attention::Rows { data, ld, offset };
    let (qs, kvs) = (values(&q), values(&kv));
    let out =
        attention::attend(rows(qs, c, 0), rows(kvs, 2 * c, 0), rows(kvs, 2 * c, c), [b, r, n], c, heads, positions);
    tensor(out, [b, r, c])
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
}
