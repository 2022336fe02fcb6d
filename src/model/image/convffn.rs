//! Convolutional FFN (`mci.py` `ConvFFN`, timm `ConvMlp`, text `repmixer.py` `ConvFFN`):
//! depthwise conv + BN, 1×1 expand, GELU, 1×1 project.

use burn::nn::conv::Conv2d;
use burn::prelude::*;

use crate::cpu;
use crate::model::layers::conv2d;
use crate::weights::Weights;
use crate::weights::fold::{BatchNorm, fuse_conv_bn, scale_rows};

/// A convolutional FFN with its BatchNorm folded.
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
    /// Depthwise kernel `[kh, kw]` (`[7, 7]` in images, `[1, 11]` in the "mct" text encoder).
    pub kernel_size: [usize; 2],
}

impl ConvFfnConfig {
    /// Loads `prefix.{conv.conv, conv.bn, fc1, fc2}`; `out_scale` (a following layer scale) is
    /// folded into `fc2`.
    pub fn load(&self, w: &mut Weights, prefix: &str, out_scale: Option<&[f32]>) -> ConvFfn {
        let (c, h, [kh, kw]) = (self.channels, self.hidden, self.kernel_size);
        let k = w.take(&format!("{prefix}.conv.conv.weight"), &[c, 1, kh, kw]);
        let (k, b) = fuse_conv_bn(k, &BatchNorm::load(w, &format!("{prefix}.conv.bn"), c));
        let k1 = w.take(&format!("{prefix}.fc1.weight"), &[h, c, 1, 1]);
        let b1 = w.take_vec(&format!("{prefix}.fc1.bias"), h);
        let mut k2 = w.take(&format!("{prefix}.fc2.weight"), &[c, h, 1, 1]);
        let mut b2 = w.take_vec(&format!("{prefix}.fc2.bias"), c);
        if let Some(s) = out_scale {
            scale_rows(&mut k2.data, s);
            scale_rows(&mut b2, s);
        }
        let device = w.device();
        ConvFfn {
            conv: conv2d(k, Some(b), 1, c, device),
            fc1: conv2d(k1, Some(b1), 1, 1, device),
            fc2: conv2d(k2, Some(b2), 1, 1, device),
        }
    }
}

impl ConvFfn {
    /// `[B, C, H, W]` → `[B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        cpu::conv2d(&self.fc2, self.hidden(x), false)
    }

    /// `residual + forward(x)`, the residual added in the last convolution.
    pub fn forward_add(&self, x: Tensor<4>, residual: Tensor<4>) -> Tensor<4> {
        cpu::conv2d_add(&self.fc2, self.hidden(x), residual)
    }

    /// `gelu(fc1(conv(x)))`.
    fn hidden(&self, x: Tensor<4>) -> Tensor<4> {
        cpu::conv2d(&self.fc1, cpu::conv2d(&self.conv, x, false), true)
    }
}
