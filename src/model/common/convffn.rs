//! Convolutional FFN (`mci.py` `ConvFFN`, timm `ConvMlp`, text `repmixer.py` `ConvFFN`):
//! depthwise conv (its BatchNorm folded), 1×1 expand, GELU, 1×1 project.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;

use super::layers::{conv2d, conv2d_config, forward_conv, forward_conv_add, fused_conv2d, select_rows};
use crate::cpu;
use crate::weights::VarBuilder;

/// A convolutional FFN.
#[derive(Module, Debug)]
pub struct ConvFfn {
    conv: Conv2d,
    fc1: Conv2d,
    fc2: Conv2d,
}

/// Config of [`ConvFfn`].
#[derive(Config, Debug)]
pub struct ConvFfnConfig {
    /// Channels in and out.
    pub channels: usize,
    /// Hidden channels.
    pub hidden: usize,
    /// Depthwise kernel `[kh, kw]` ([`CONV_FFN_KERNEL`](crate::config::CONV_FFN_KERNEL) in
    /// images, `[1, 11]` in the "mct" text encoder).
    pub kernel_size: [usize; 2],
}

impl ConvFfnConfig {
    /// Loads `conv.conv`, `fc1` and `fc2`.
    pub fn load(&self, vb: &VarBuilder) -> ConvFfn {
        self.load_paired(vb, false)
    }

    /// [`Self::load`]; `paired`: the depthwise convolution runs only in the fused GPU kernel of
    /// a RepMixer's depthwise pair (see [`Self::depthwise`]), its parameters from the scope's
    /// [`VarBuilder::fused`].
    pub fn load_paired(&self, vb: &VarBuilder, paired: bool) -> ConvFfn {
        let (c, h) = (self.channels, self.hidden);
        let depthwise = vb.pp("conv").pp("conv");
        ConvFfn {
            conv: conv2d(&if paired { depthwise.fused() } else { depthwise }, &self.depthwise_config()),
            fc1: fused_conv2d(&vb.pp("fc1"), &conv2d_config([c, h], [1, 1])),
            fc2: fused_conv2d(&vb.pp("fc2"), &conv2d_config([h, c], [1, 1])),
        }
    }

    /// The depthwise convolution's config.
    pub fn depthwise_config(&self) -> Conv2dConfig {
        conv2d_config([self.channels, self.channels], self.kernel_size).with_groups(self.channels)
    }
}

impl ConvFfn {
    /// `[B, C, H, W]` → `[B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        forward_conv(&self.fc2, self.hidden(cpu::conv2d(&self.conv, x, false)), false)
    }

    /// `residual + forward(x)`, the residual added in the last convolution.
    pub fn forward_add(&self, x: Tensor<4>, residual: Tensor<4>) -> Tensor<4> {
        self.pointwise_add(cpu::conv2d(&self.conv, x, false), residual)
    }

    /// The depthwise convolution (it may run fused with what comes before it on a GPU: see
    /// [`Self::pointwise_add`]).
    pub fn depthwise(&self) -> &Conv2d {
        &self.conv
    }

    /// [`Self::forward_add`] after the depthwise convolution: `residual + fc2(gelu(fc1(y)))`,
    /// `y` the depthwise convolution's output.
    pub fn pointwise_add(&self, y: Tensor<4>, residual: Tensor<4>) -> Tensor<4> {
        forward_conv_add(&self.fc2, self.hidden(y), residual)
    }

    /// [`Self::forward_add`] with `x` as the residual, at one position per image (`at[i]`
    /// indexes image `i`'s `H·W` plane): `[B, C]`. The depthwise convolution runs on the whole
    /// map, the 1×1 convolutions on those positions only.
    pub fn forward_add_at(&self, x: Tensor<4>, at: &[usize]) -> Tensor<2> {
        let [b, c, h, w] = x.dims();
        assert_eq!(at.len(), b, "one position per image");
        let pick = |t: Tensor<4>| {
            let t = select_rows(t.reshape([b, c, h * w]).swap_dims(1, 2), at);
            t.reshape([b, c])
        };
        let y = pick(cpu::conv2d(&self.conv, x.clone(), false));
        let y = cpu::pointwise(&self.fc1, y, true, None);
        cpu::pointwise(&self.fc2, y, false, Some(pick(x)))
    }

    /// `gelu(fc1(y))`, `y` the depthwise convolution's output.
    fn hidden(&self, y: Tensor<4>) -> Tensor<4> {
        forward_conv(&self.fc1, y, true)
    }
}
