//! What the model does differently on a GPU (burn's cubecl backends: WebGPU in the browser,
//! wgpu natively), kept apart from the CPU path, which never takes these branches.
//!
//! burn-cubecl's convolutions work channels-last (NHWC): given an NCHW-contiguous input or
//! weight they first copy it to NHWC, a dispatch each, every call. So on a GPU the convolution
//! weights are stored channels-last (an NCHW view of NHWC memory) and activations stay
//! channels-last from one convolution to the next: the copies disappear.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{DType, Device, Tensor, TensorCreationOptions, TensorData};

use crate::weights::{HostTensor, VarBuilder};

/// Whether `device` is a GPU (a cubecl device), where the layouts of this module apply.
pub fn is_gpu(device: &Device) -> bool {
    #[cfg(any(feature = "webgpu", feature = "wgpu"))]
    {
        matches!(device.as_dispatch(), burn::backend::DispatchDevice::Cube(_))
    }
    #[cfg(not(any(feature = "webgpu", feature = "wgpu")))]
    {
        let _ = device;
        false
    }
}

/// A `[O, I, kh, kw]` convolution kernel as a parameter stored channels-last (`[O, kh, kw, I]`
/// in memory), viewed as `[O, I, kh, kw]`, uploaded by `vb` (its device and element type).
pub fn channels_last_kernel(kernel: HostTensor, vb: &VarBuilder) -> Param<Tensor<4>> {
    let [o, i, kh, kw] = kernel.shape[..] else { panic!("a convolution kernel is 4-d") };
    let mut data = vec![0.0; kernel.data.len()];
    for oo in 0..o {
        for ii in 0..i {
            for y in 0..kh {
                for x in 0..kw {
                    data[((oo * kh + y) * kw + x) * i + ii] = kernel.data[((oo * i + ii) * kh + y) * kw + x];
                }
            }
        }
    }
    let t: Tensor<4> = vb.upload(HostTensor { shape: vec![o, kh, kw, i], data });
    Param::from_tensor(t.permute([0, 3, 1, 2]))
}

/// Preprocessed pixels (`batch` CHW images) as a `[B, 3, S, S]` tensor on a device (`on`: the
/// device, and the element type of the tower they go into, converted on the host): on a GPU an
/// NCHW view of channels-last memory (rearranged on the host, so the first convolution needs no
/// copy), elsewhere NCHW.
pub fn pixels(pixels: &[f32], batch: usize, size: usize, on: impl Into<TensorCreationOptions>) -> Tensor<4> {
    let on = on.into();
    if !is_gpu(&on.device) {
        return Tensor::from_data(TensorData::new(pixels.to_vec(), [batch, 3, size, size]), on);
    }
    let plane = size * size;
    let mut hwc = vec![0.0; pixels.len()];
    for (b, image) in pixels.chunks(3 * plane).enumerate() {
        for c in 0..3 {
            for p in 0..plane {
                hwc[(b * plane + p) * 3 + c] = image[c * plane + p];
            }
        }
    }
    Tensor::<4>::from_data(TensorData::new(hwc, [batch, size, size, 3]), on).permute([0, 3, 1, 2])
}

#[cfg(any(feature = "webgpu", feature = "wgpu"))]
mod fused;

/// The most keys the fused attention kernel takes (their scores live in the workgroup's shared
/// memory, of which WebGPU guarantees 16 KiB); longer sequences run on burn's ops.
pub const MAX_ATTENTION_KEYS: usize = 2048;

/// Whether `t` runs on this crate's fused GPU kernels (`fused.rs`): an `f32` or `f16` tensor on
/// a GPU (the kernels read and write the tensors' type and compute in `f32`; the parameters
/// they read are `f32` or `f16` of their own, `f16` beside `f32` activations in a tower with
/// [`crate::TowerPrecision::F16Weights`]).
pub fn fused_kernels<const D: usize>(t: &Tensor<D>) -> bool {
    is_gpu(&t.device()) && fused_dtype(t.dtype())
}

/// The element types the fused kernels take (one list for the routing and the kernels' check).
fn fused_dtype(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F16)
}

/// LayerNorm of `x` over its last axis in one kernel (callers check [`fused_kernels`]).
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: &Param<Tensor<1>>,
    beta: &Param<Tensor<1>>,
    epsilon: f64,
) -> Tensor<D> {
    #[cfg(any(feature = "webgpu", feature = "wgpu"))]
    {
        use burn::backend::Dispatch;
        let out = <Dispatch as fused::FusedOps>::layer_norm(
            x.into_dispatch(),
            gamma.val().into_dispatch(),
            beta.val().into_dispatch(),
            epsilon as f32,
        );
        Tensor::from_dispatch(out)
    }
    #[cfg(not(any(feature = "webgpu", feature = "wgpu")))]
    {
        let _ = (gamma, beta, epsilon);
        unreachable!("no GPU in this build: {:?}", x.device())
    }
}

/// Multi-head attention over `qkv` `[B, N, 3·C]` in one kernel (callers check
/// [`fused_kernels`]); see [`crate::model::common::multi_head_attention::multi_head_attention`].
pub fn attention(qkv: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
    #[cfg(any(feature = "webgpu", feature = "wgpu"))]
    {
        use burn::backend::Dispatch;
        Tensor::from_dispatch(<Dispatch as fused::FusedOps>::attention(qkv.into_dispatch(), heads, causal))
    }
    #[cfg(not(any(feature = "webgpu", feature = "wgpu")))]
    {
        let _ = (heads, causal);
        unreachable!("no GPU in this build: {:?}", qkv.device())
    }
}

/// Multi-head attention of queries `q` `[B, R, C]` over keys and values `kv` `[B, N, 2·C]` in
/// one kernel (callers check [`fused_kernels`]); `positions` (causal): the position of each
/// query row, which attends to keys `0..=position` only. See
/// [`crate::model::common::multi_head_attention::attention_rows`].
pub fn attention_rows(q: Tensor<3>, kv: Tensor<3>, heads: usize, positions: Option<&[usize]>) -> Tensor<3> {
    let [b, r, _] = q.dims();
    let n = kv.dims()[1];
    let limits: Vec<f32> = match positions {
        Some(p) => p.iter().map(|&p| (p + 1) as f32).collect(),
        None => vec![n as f32; b * r],
    };
    // In the queries' type (whole numbers up to MAX_ATTENTION_KEYS: exact in f16 too).
    let limits = Tensor::<1>::from_data(TensorData::new(limits, [b * r]), (&q.device(), q.dtype()));
    #[cfg(any(feature = "webgpu", feature = "wgpu"))]
    {
        use burn::backend::Dispatch;
        let out = <Dispatch as fused::FusedOps>::attention_rows(
            q.into_dispatch(),
            kv.into_dispatch(),
            limits.into_dispatch(),
            heads,
        );
        Tensor::from_dispatch(out)
    }
    #[cfg(not(any(feature = "webgpu", feature = "wgpu")))]
    {
        let _ = (kv, heads, limits);
        unreachable!("no GPU in this build: {:?}", q.device())
    }
}

/// `x·weight + bias`, then exact GELU when `gelu`, plus `residual`, in one kernel (callers check
/// [`fused_kernels`]; `weight` `[in, out]`).
pub fn linear<const D: usize>(
    x: Tensor<D>,
    weight: &Param<Tensor<2>>,
    bias: &Param<Tensor<1>>,
    gelu: bool,
    residual: Option<Tensor<D>>,
) -> Tensor<D> {
    fused_linear(x, weight.val(), bias, gelu, residual, false)
}

/// A 1×1 convolution (stride 1, no padding, one group) of `x` `[B, I, H, W]` with `weight`
/// `[O, I, 1, 1]` and `bias`, then exact GELU when `gelu`, plus `residual` `[B, O, H, W]`: one
/// kernel over the channels-last tokens (callers check [`fused_kernels`]).
pub fn pointwise_conv(
    x: Tensor<4>,
    weight: &Param<Tensor<4>>,
    bias: &Param<Tensor<1>>,
    gelu: bool,
    residual: Option<Tensor<4>>,
) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let out = fused_linear(as_tokens(x), weight.val(), bias, gelu, residual.map(as_tokens), true);
    as_image(out, [h, w])
}

/// Whether a squeeze-excite over `channels` channels reduced to `reduced` runs in one kernel
/// ([`squeeze_excite`]; the kernel keeps both in the workgroup's shared memory).
pub fn squeeze_excite_fits(channels: usize, reduced: usize) -> bool {
    #[cfg(any(feature = "webgpu", feature = "wgpu"))]
    {
        channels + reduced <= fused::MAX_SE_CHANNELS
    }
    #[cfg(not(any(feature = "webgpu", feature = "wgpu")))]
    {
        let _ = (channels, reduced);
        false
    }
}

/// Squeeze-excite of `x` `[B, C, H, W]` in one kernel: `x · sigmoid(fc2(relu(fc1(mean over
/// H, W))))` per image and channel, then exact GELU when `gelu` (callers check
/// [`fused_kernels`] and [`squeeze_excite_fits`]; `fc1`, `fc2` 1×1 convolutions with biases).
pub fn squeeze_excite(x: Tensor<4>, fc1: &Conv2d, fc2: &Conv2d, gelu: bool) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    #[cfg(any(feature = "webgpu", feature = "wgpu"))]
    {
        use burn::backend::Dispatch;
        let bias = |conv: &Conv2d| conv.bias.as_ref().expect("squeeze-excite convolutions have biases").val();
        let out = <Dispatch as fused::FusedOps>::squeeze_excite(
            as_tokens(x).into_dispatch(),
            fc1.weight.val().into_dispatch(),
            bias(fc1).into_dispatch(),
            fc2.weight.val().into_dispatch(),
            bias(fc2).into_dispatch(),
            gelu,
        );
        as_image(Tensor::from_dispatch(out), [h, w])
    }
    #[cfg(not(any(feature = "webgpu", feature = "wgpu")))]
    {
        let _ = (fc1, fc2, gelu, h, w);
        unreachable!("no GPU in this build: {:?}", x.device())
    }
}

/// Whether [`depthwise_pair`] takes convolutions `first` then `second` (their configs; decided
/// at load): depthwise convolutions (one channel per group, as many out as in), odd kernels,
/// stride 1, zero padding of half the kernel, biases, small enough kernels for the workgroup's
/// shared memory. Never in a build without a GPU.
pub fn depthwise_pair_fits(first: &Conv2dConfig, second: &Conv2dConfig) -> bool {
    #[cfg(any(feature = "webgpu", feature = "wgpu"))]
    {
        let plain = |c: &Conv2dConfig| {
            let ([i, o], [kh, kw]) = (c.channels, c.kernel_size);
            let half = burn::nn::PaddingConfig2d::Explicit(kh / 2, kw / 2, kh / 2, kw / 2);
            i == o
                && c.groups == o
                && kh % 2 == 1
                && kw % 2 == 1
                && c.stride == [1, 1]
                && c.dilation == [1, 1]
                && c.padding == half
                && c.bias
        };
        plain(first)
            && plain(second)
            && first.channels == second.channels
            && fused::pair_shared_values(first.kernel_size, second.kernel_size) <= fused::MAX_PAIR_SHARED
    }
    #[cfg(not(any(feature = "webgpu", feature = "wgpu")))]
    {
        let _ = (first, second);
        false
    }
}

/// Two depthwise convolutions in a row over `x` `[B, C, H, W]` in one kernel (callers check
/// [`fused_kernels`], and [`depthwise_pair_fits`] at load): `(first(x), second(first(x)))`.
pub fn depthwise_pair(x: Tensor<4>, first: &Conv2d, second: &Conv2d) -> (Tensor<4>, Tensor<4>) {
    let [b, _, _, _] = x.dims();
    #[cfg(any(feature = "webgpu", feature = "wgpu"))]
    {
        use burn::backend::Dispatch;
        let bias = |conv: &Conv2d| conv.bias.as_ref().expect("checked by depthwise_pair_fits").val();
        let out = <Dispatch as fused::FusedOps>::depthwise_pair(
            x.permute([0, 2, 3, 1]).into_dispatch(),
            first.weight.val().into_dispatch(),
            bias(first).into_dispatch(),
            second.weight.val().into_dispatch(),
            bias(second).into_dispatch(),
        );
        let out = Tensor::<4>::from_dispatch(out);
        let half = |at: usize| out.clone().narrow(0, at, b).permute([0, 3, 1, 2]);
        (half(0), half(b))
    }
    #[cfg(not(any(feature = "webgpu", feature = "wgpu")))]
    {
        let _ = (first, second, b);
        unreachable!("no GPU in this build: {:?}", x.device())
    }
}

/// [`linear`] (`transposed`: `weight` is a 1×1 convolution's `[out, in, 1, 1]`).
fn fused_linear<const D: usize, const W: usize>(
    x: Tensor<D>,
    weight: Tensor<W>,
    bias: &Param<Tensor<1>>,
    gelu: bool,
    residual: Option<Tensor<D>>,
    transposed: bool,
) -> Tensor<D> {
    #[cfg(any(feature = "webgpu", feature = "wgpu"))]
    {
        use burn::backend::Dispatch;
        use fused::FusedOps;
        let (x, w, b) = (x.into_dispatch(), weight.into_dispatch(), bias.val().into_dispatch());
        Tensor::from_dispatch(match residual {
            Some(r) => <Dispatch as FusedOps>::linear_add(x, w, b, r.into_dispatch(), transposed),
            None => <Dispatch as FusedOps>::linear(x, w, b, gelu, transposed),
        })
    }
    #[cfg(not(any(feature = "webgpu", feature = "wgpu")))]
    {
        let _ = (weight, bias, gelu, residual, transposed);
        unreachable!("no GPU in this build: {:?}", x.device())
    }
}

/// An image `[B, C, H, W]` as tokens `[B, H·W, C]`: on a GPU a view (the channels-last memory
/// convolutions leave there already is `[B, H·W, C]`), elsewhere a transposed view of NCHW.
pub fn as_tokens(x: Tensor<4>) -> Tensor<3> {
    let [b, c, h, w] = x.dims();
    if is_gpu(&x.device()) {
        x.permute([0, 2, 3, 1]).reshape([b, h * w, c])
    } else {
        x.reshape([b, c, h * w]).swap_dims(1, 2)
    }
}

/// The inverse of [`as_tokens`]: tokens `[B, H·W, C]` as an image `[B, C, H, W]` (on a GPU a
/// channels-last view, as convolutions take it without a copy).
pub fn as_image(t: Tensor<3>, [h, w]: [usize; 2]) -> Tensor<4> {
    let [b, _, c] = t.dims();
    if is_gpu(&t.device()) {
        t.reshape([b, h, w, c]).permute([0, 3, 1, 2])
    } else {
        t.swap_dims(1, 2).reshape([b, c, h, w])
    }
}
