//! RepCPE, conditional positional encoding (`mci.py` `RepCPE`, timm `RepConditionalPosEnc`):
//! `x + pe(x)` with a depthwise 7×7 conv, folded into one conv.

use burn::nn::conv::Conv2d;
use burn::prelude::*;

use crate::config::REPCPE_KERNEL;
use crate::model::layers::conv2d;
use crate::weights::Weights;
use crate::weights::fold::{add_assign, identity_kernel};

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
    /// Loads `prefix.reparam_conv`, or folds `prefix.pos_enc` with the identity.
    pub fn load(&self, w: &mut Weights, prefix: &str) -> RepCpe {
        let (d, [kh, kw]) = (self.dim, self.spatial_shape);
        let (kernel, bias) = if w.contains(&format!("{prefix}.reparam_conv.weight")) {
            (
                w.take(&format!("{prefix}.reparam_conv.weight"), &[d, 1, kh, kw]),
                w.take_vec(&format!("{prefix}.reparam_conv.bias"), d),
            )
        } else {
            let mut k = identity_kernel(d, 1, kh, kw);
            add_assign(&mut k.data, &w.take(&format!("{prefix}.pos_enc.weight"), &[d, 1, kh, kw]).data);
            (k, w.take_vec(&format!("{prefix}.pos_enc.bias"), d))
        };
        RepCpe { conv: conv2d(kernel, Some(bias), 1, d, w.device()) }
    }
}

impl RepCpe {
    /// Adds the positional encoding (the residual is in the kernel).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.conv.forward(x)
    }
}
