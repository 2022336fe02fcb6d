//! burn layers built from fused weights: the `Conv2d`, `Linear` and `LayerNorm` the blocks are
//! made of, each described by burn's own config and read from a [`VarBuilder`] scope.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Int, Tensor, TensorData};

use crate::cpu::gemm;
use crate::model::gpu;
use crate::weights::{HostTensor, VarBuilder};

/// A convolution `[in, out]` with a `[kh, kw]` kernel padded by `k / 2` on each side (PyTorch's
/// `padding=k // 2`): every convolution of the models but the ViT stems.
pub fn conv2d_config(channels: [usize; 2], [kh, kw]: [usize; 2]) -> Conv2dConfig {
    Conv2dConfig::new(channels, [kh, kw]).with_padding(PaddingConfig2d::Explicit(kh / 2, kw / 2, kh / 2, kw / 2))
}

/// A convolution as `config` describes it, from `weight` (`[out, in / groups, kh, kw]`) and,
/// with `config.bias`, `bias` (on a GPU the weight is stored channels-last: see [`gpu`]).
pub fn conv2d(vb: &VarBuilder, config: &Conv2dConfig) -> Conv2d {
    let ([cin, cout], [kh, kw]) = (config.channels, config.kernel_size);
    let shape = [cout, cin / config.groups, kh, kw];
    Conv2d {
        weight: if gpu::is_gpu(vb.device()) {
            gpu::channels_last_kernel(vb.host("weight", &shape), vb)
        } else {
            vb.param("weight", shape)
        },
        bias: config.bias.then(|| vb.param("bias", [cout])),
        stride: config.stride,
        kernel_size: config.kernel_size,
        dilation: config.dilation,
        groups: config.groups,
        padding: config.padding.clone(),
    }
}

/// A linear layer as `config` describes it, from PyTorch's `[out, in]` `weight` (transposed to
/// burn's `[in, out]`) and, with `config.bias`, `bias`.
pub fn linear(vb: &VarBuilder, config: &LinearConfig) -> Linear {
    linear_named(vb, ["weight", "bias"], config)
}

/// [`linear`] from tensors named `[weight, bias]` in the scope.
pub fn linear_named(vb: &VarBuilder, [weight, bias]: [&str; 2], config: &LinearConfig) -> Linear {
    let (inp, out) = (config.d_input, config.d_output);
    let w = vb.host(weight, &[out, inp]).transpose();
    Linear { weight: Param::from_tensor(vb.upload(w)), bias: config.bias.then(|| vb.param(bias, [out])) }
}

/// [`linear_named`] for a layer that runs only through [`crate::cpu::linear`] and its kin
/// (never burn's `Linear::forward`): with `pack` (the models pass [`gemm::PACKS_WEIGHTS`]: on
/// wasm, where the kernel reads packed weights) on flex, the weight is packed here, once, into
/// the panels the kernel reads ([`gemm::pack`]) and stored as a `[out / 8 · in, 8]` parameter
/// (the same values as `[in, out]`, no more memory; burn's `forward` would refuse its shape).
/// Layers whose width is not a multiple of 8 keep `[in, out]`.
pub fn packed_linear(vb: &VarBuilder, [weight, bias]: [&str; 2], config: &LinearConfig, pack: bool) -> Linear {
    let (inp, out) = (config.d_input, config.d_output);
    if !pack || !crate::cpu::is_flex(vb.device()) || !out.is_multiple_of(gemm::PANEL) {
        return linear_named(vb, [weight, bias], config);
    }
    // PyTorch's [out, in] is B's transpose.
    let w = vb.host(weight, &[out, inp]);
    let data = gemm::pack(gemm::Mat::transposed(&w.data, inp), inp, out);
    drop(w);
    let packed = HostTensor { shape: vec![out / gemm::PANEL * inp, gemm::PANEL], data };
    Linear { weight: Param::from_tensor(vb.upload(packed)), bias: config.bias.then(|| vb.param(bias, [out])) }
}

/// [`packed_linear`] for a layer that runs only through [`forward_linear`] and
/// [`forward_linear_add`]: with a bias, which those run on the fused GPU kernel alone, its
/// parameters come from the scope's [`VarBuilder::fused`].
pub fn fused_linear(vb: &VarBuilder, names: [&str; 2], config: &LinearConfig, pack: bool) -> Linear {
    packed_linear(&if config.bias { vb.fused() } else { vb.clone() }, names, config, pack)
}

/// `layer(x)`, then GELU when `gelu`: on a GPU one kernel ([`gpu::linear`]), elsewhere
/// [`crate::cpu::linear`] (this crate's CPU kernels on flex, burn's ops otherwise).
pub fn forward_linear<const D: usize>(layer: &Linear, x: Tensor<D>, gelu: bool) -> Tensor<D> {
    match &layer.bias {
        Some(bias) if gpu::fused_kernels(&x) => gpu::linear(x, &layer.weight, bias, gelu, None),
        _ => crate::cpu::linear(layer, x, gelu),
    }
}

/// `layer(x) + residual`: on a GPU one kernel ([`gpu::linear`]), elsewhere
/// [`crate::cpu::linear_add`].
pub fn forward_linear_add<const D: usize>(layer: &Linear, x: Tensor<D>, residual: Tensor<D>) -> Tensor<D> {
    match &layer.bias {
        Some(bias) if gpu::fused_kernels(&x) => gpu::linear(x, &layer.weight, bias, false, Some(residual)),
        _ => crate::cpu::linear_add(layer, x, residual),
    }
}

/// [`conv2d`] for a convolution that runs only through [`forward_conv`] and
/// [`forward_conv_add`]: a 1×1 one with a bias, which those run on the fused GPU kernel alone,
/// takes its parameters from the scope's [`VarBuilder::fused`].
pub fn fused_conv2d(vb: &VarBuilder, config: &Conv2dConfig) -> Conv2d {
    let c = config;
    let fused = c.bias && pointwise(c.kernel_size, c.stride, c.dilation, c.groups, &c.padding);
    conv2d(&if fused { vb.fused() } else { vb.clone() }, config)
}

/// `conv(x)`, then GELU when `gelu`: on a GPU a 1×1 convolution (stride 1, no padding, one
/// group, with a bias) is one kernel with its epilogue ([`gpu::pointwise_conv`]); otherwise
/// [`crate::cpu::conv2d`] (this crate's CPU kernels on flex, burn's ops elsewhere).
pub fn forward_conv(conv: &Conv2d, x: Tensor<4>, gelu: bool) -> Tensor<4> {
    match &conv.bias {
        Some(bias) if is_pointwise(conv) && gpu::fused_kernels(&x) => {
            gpu::pointwise_conv(x, &conv.weight, bias, gelu, None)
        }
        _ => crate::cpu::conv2d(conv, x, gelu),
    }
}

/// `conv(x) + residual`: on a GPU one kernel for a 1×1 convolution (see [`forward_conv`]);
/// otherwise [`crate::cpu::conv2d_add`].
pub fn forward_conv_add(conv: &Conv2d, x: Tensor<4>, residual: Tensor<4>) -> Tensor<4> {
    match &conv.bias {
        Some(bias) if is_pointwise(conv) && gpu::fused_kernels(&x) => {
            gpu::pointwise_conv(x, &conv.weight, bias, false, Some(residual))
        }
        _ => crate::cpu::conv2d_add(conv, x, residual),
    }
}

/// Whether `conv` is a 1×1 convolution with stride 1, no padding and one group.
fn is_pointwise(conv: &Conv2d) -> bool {
    pointwise(conv.kernel_size, conv.stride, conv.dilation, conv.groups, &conv.padding)
}

/// Whether a convolution of this geometry is a 1×1 one with stride 1, no padding and one group.
fn pointwise(
    kernel_size: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    padding: &PaddingConfig2d,
) -> bool {
    let unpadded = matches!(padding, PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0));
    kernel_size == [1, 1] && stride == [1, 1] && dilation == [1, 1] && groups == 1 && unpadded
}

/// The projection of an image tower into the joint space, in the scope `head`: Apple's v1
/// bias-free `proj` matrix `[in, out]` (its `GlobalPool2D` and ViT classifier) when the weights
/// have one, else timm's linear layer in the scope `fc`.
pub fn image_head(head: &VarBuilder, fc: &VarBuilder, inp: usize, out: usize) -> Linear {
    if head.contains("proj") {
        Linear { weight: head.param("proj", [inp, out]), bias: None }
    } else {
        linear(fc, &LinearConfig::new(inp, out))
    }
}

/// A LayerNorm over the last axis: burn's `LayerNorm`, which on a GPU runs as one kernel
/// ([`gpu::layer_norm`]; burn's ops take several).
#[derive(Module, Debug)]
pub struct Norm {
    ln: LayerNorm,
    epsilon: f64,
}

impl Norm {
    /// LayerNorm of `x` over its last axis.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match &self.ln.beta {
            Some(beta) if gpu::fused_kernels(&x) => gpu::layer_norm(x, &self.ln.gamma, beta, self.epsilon),
            _ => self.ln.forward(x),
        }
    }
}

/// A LayerNorm as `config` describes it, from `weight` and `bias` (on a GPU only the fused
/// kernel reads them: [`VarBuilder::fused`]).
pub fn layer_norm(vb: &VarBuilder, config: &LayerNormConfig) -> Norm {
    let vb = vb.fused();
    let mut ln = config.init(vb.device());
    ln.gamma = vb.param("weight", [config.d_model]);
    ln.beta = Some(vb.param("bias", [config.d_model]));
    Norm { ln, epsilon: config.epsilon }
}

/// Exact (erf) GELU, as `torch.nn.GELU()`.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    crate::cpu::gelu(x)
}

/// The rows of `x` `[B, L, D]` at `positions` (the same number `R` per sequence, `[B, R]`
/// row-major): `[B, R, D]`.
pub fn select_rows(x: Tensor<3>, positions: &[usize]) -> Tensor<3> {
    let [b, l, d] = x.dims();
    assert!(positions.len().is_multiple_of(b), "{} positions for {b} sequences", positions.len());
    let r = positions.len() / b;
    let idx: Vec<i64> = positions.iter().enumerate().map(|(i, &p)| ((i / r) * l + p) as i64).collect();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [b * r]), &x.device());
    x.reshape([b * l, d]).select(0, idx).reshape([b, r, d])
}
