//! RepCPE, conditional positional encoding (`mci.py` `RepCPE`, timm `RepConditionalPosEnc`):
//! `x + pe(x)` with a depthwise 7×7 conv, as one convolution `reparam_conv` (the residual is in
//! the kernel).

use burn::nn::conv::Conv2d;
use burn::prelude::*;

use crate::config::REPCPE_KERNEL;
use crate::model::common::layers::{conv2d, conv2d_config};
use crate::weights::VarBuilder;

/// Re-parameterised conditional positional encoding.
#[derive(Module, Debug)]
pub struct RepCpe {
    conv: Conv2d,
}

/// Config of [`RepCpe`].
#[derive(Config, Debug)]
pub struct RepCpeConfig {
    /// Channels.
    pub dim: usize,
    /// Kernel size.
    #[config(default = "REPCPE_KERNEL")]
    pub spatial_shape: [usize; 2],
}

impl RepCpeConfig {
    /// Loads `reparam_conv`.
    pub fn load(&self, vb: &VarBuilder) -> RepCpe {
        let d = self.dim;
        RepCpe { conv: conv2d(&vb.pp("reparam_conv"), &conv2d_config([d, d], self.spatial_shape).with_groups(d)) }
    }
}

impl RepCpe {
    /// Adds the positional encoding.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.conv.forward(x)
    }
}
