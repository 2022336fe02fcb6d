//! The kernels' side of [`super`]'s operations on flex (f32) tensors: their memory taken as
//! slices, the kernels run on them, the results wrapped as flex tensors again. Only in builds
//! with burn's flex backend (cargo feature `flex`); [`super`] checks `on_flex` before calling.

use burn::backend::flex::FlexTensor;
use burn::backend::{BackendTensor, DispatchTensor, DispatchTensorKind};
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::prelude::*;
use core::ops::Range;

use super::conv::ConvGeometry;
use super::gemm::{self, Bias, Epilogue, Mat, Packed, Rhs};
use super::{attention as attn, conv as direct, math, par, unfused};

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
    from_flex(FlexTensor::from_data(TensorData::new(data, shape)))
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

/// [`super::gelu`].
pub(super) fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let shape: [usize; D] = x.dims();
    map_values(primitive(x), shape, math::gelu_in_place)
}

/// [`super::scale_channels`] (`x` and `s` on flex).
pub(super) fn scale_channels(x: Tensor<4>, s: Tensor<4>, gelu: bool) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
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

/// [`super::conv2d`] and [`super::conv2d_add`] (`x` on flex): this module's kernels for the
/// geometries they take, burn's convolution otherwise.
pub(super) fn conv2d(conv: &Conv2d, x: Tensor<4>, gelu: bool, residual: Option<Tensor<4>>) -> Tensor<4> {
    let [b, cin, h, w] = x.dims();
    let [cout, cpg, kh, kw] = conv.weight.dims();
    let pads = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => Some((top, left)),
        PaddingConfig2d::Valid => Some((0, 0)),
        _ => None,
    };
    let supported = conv.dilation == [1, 1] && conv.stride[0] == conv.stride[1];
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
        let out = direct::conv2d_direct(values(&xs), values(&weight), bias, &g, gelu);
        // (the GELU is applied: only the residual is left)
        return super::unfused(tensor(out, [b, cout, oh, ow]), false, residual);
    }
    let y = conv.forward(x);
    super::unfused(if gelu { self::gelu(y) } else { y }, false, residual)
}

/// [`super::linear`]'s columns `cols` (`x` on flex, `[.., inp]`; the layer `width` wide, its
/// weight `packed` or not).
pub(super) fn linear<const D: usize>(
    l: &Linear,
    cols: Range<usize>,
    x: Tensor<D>,
    [inp, width]: [usize; 2],
    packed: bool,
    gelu: bool,
    residual: Option<Tensor<D>>,
) -> Tensor<D> {
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

/// [`super::pointwise`] (`x` on flex; the convolution `[cout, cin]`).
pub(super) fn pointwise(
    conv: &Conv2d,
    x: Tensor<2>,
    [cout, cin]: [usize; 2],
    gelu: bool,
    residual: Option<Tensor<2>>,
) -> Tensor<2> {
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

/// [`super::attention`].
pub(super) fn attention(qkv: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
    let [b, n, c3] = qkv.dims();
    let x = primitive(qkv);
    let out = attn::attention(values(&x), b, n, c3 / 3, heads, causal);
    tensor(out, [b, n, c3 / 3])
}

/// [`super::attention_rows`].
pub(super) fn attention_rows(q: Tensor<3>, kv: Tensor<3>, heads: usize, positions: Option<&[usize]>) -> Tensor<3> {
    let [b, r, c] = q.dims();
    let n = kv.dims()[1];
    assert_eq!(kv.dims(), [b, n, 2 * c]);
    let (q, kv) = (primitive(q), primitive(kv));
    let rows = |data, ld, offset| attn::Rows { data, ld, offset };
    let (qs, kvs) = (values(&q), values(&kv));
    let out = attn::attend(rows(qs, c, 0), rows(kvs, 2 * c, 0), rows(kvs, 2 * c, c), [b, r, n], c, heads, positions);
    tensor(out, [b, r, c])
}
