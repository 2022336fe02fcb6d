//! Small constructors shared by the building blocks: burn layers made from loaded tensors.

use burn::nn::conv::Conv2d;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use crate::config::LN_EPS;
use crate::weights::{HostTensor, Weights};

/// A convolution with "same"-style symmetric padding `k / 2`, from a `[O, I/groups, kh, kw]`
/// kernel and a bias.
pub fn conv2d(kernel: HostTensor, bias: Option<Vec<f32>>, stride: usize, groups: usize, device: &Device) -> Conv2d {
    let [out, _, kh, kw] = kernel.shape[..] else { panic!("conv2d expects a 4-d kernel") };
    Conv2d {
        weight: kernel.into_param(device),
        bias: bias.map(|b| HostTensor { shape: vec![out], data: b }.into_param(device)),
        stride: [stride, stride],
        kernel_size: [kh, kw],
        dilation: [1, 1],
        groups,
        padding: PaddingConfig2d::Explicit(kh / 2, kw / 2, kh / 2, kw / 2),
    }
}

/// A linear layer from PyTorch's `[out, in]` weight layout.
pub fn linear(weight: &HostTensor, bias: Option<Vec<f32>>, device: &Device) -> Linear {
    let [out, inp] = weight.shape[..] else { panic!("linear expects a 2-d weight") };
    linear_in_out(transpose(weight), bias, device, inp, out)
}

/// A linear layer from an `[in, out]` matrix (projection-style parameters).
pub fn linear_in_out(
    weight_in_out: HostTensor,
    bias: Option<Vec<f32>>,
    device: &Device,
    inp: usize,
    out: usize,
) -> Linear {
    assert_eq!(weight_in_out.shape, vec![inp, out]);
    Linear {
        weight: weight_in_out.into_param(device),
        bias: bias.map(|b| HostTensor { shape: vec![out], data: b }.into_param(device)),
    }
}

/// Transposes a 2-d host tensor.
pub fn transpose(t: &HostTensor) -> HostTensor {
    let [r, c] = t.shape[..] else { panic!("transpose expects a 2-d tensor") };
    let mut data = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            data[j * r + i] = t.data[i * c + j];
        }
    }
    HostTensor { shape: vec![c, r], data }
}

/// Loads `prefix.weight` / `prefix.bias` of a PyTorch `Linear`.
pub fn load_linear(w: &mut Weights, prefix: &str, inp: usize, out: usize, bias: bool) -> Linear {
    let weight = w.take(&format!("{prefix}.weight"), &[out, inp]);
    let b = bias.then(|| w.take_vec(&format!("{prefix}.bias"), out));
    linear(&weight, b, w.device())
}

/// Loads `prefix.weight` / `prefix.bias` of a LayerNorm.
pub fn load_layer_norm(w: &mut Weights, prefix: &str, dim: usize) -> LayerNorm {
    load_layer_norm_eps(w, prefix, dim, LN_EPS)
}

/// Loads a LayerNorm with a given epsilon.
pub fn load_layer_norm_eps(w: &mut Weights, prefix: &str, dim: usize, eps: f64) -> LayerNorm {
    let mut ln = LayerNormConfig::new(dim).with_epsilon(eps).init(w.device());
    ln.gamma = w.take(&format!("{prefix}.weight"), &[dim]).into_param(w.device());
    ln.beta = Some(w.take(&format!("{prefix}.bias"), &[dim]).into_param(w.device()));
    ln
}

/// Loads a layer scale `prefix.gamma` (`[C, 1, 1]` or `[C]`) as a vector.
pub fn load_layer_scale(w: &mut Weights, prefix: &str, dim: usize) -> Vec<f32> {
    w.take_vec(&format!("{prefix}.gamma"), dim)
}

/// Exact (erf) GELU, as `torch.nn.GELU()`.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    burn::tensor::activation::gelu(x)
}
