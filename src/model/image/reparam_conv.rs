//! The inference form shared by MobileOne blocks and ReparamLargeKernelConv once their branches
//! are folded: one convolution, then optional squeeze-excite, then optional GELU.

use burn::nn::conv::Conv2d;
use burn::prelude::*;

use super::squeeze_excite::{SqueezeExcite, SqueezeExciteConfig};
use crate::cpu;
use crate::model::layers::{conv2d, gelu};
use crate::weights::{HostTensor, Weights};

/// conv → (SE) → (GELU).
#[derive(Module, Debug)]
pub struct ReparamConv {
    conv: Conv2d,
    se: Option<SqueezeExcite>,
    act: bool,
}

impl ReparamConv {
    /// Builds the block from a folded `(kernel, bias)`, loading `prefix.se` when `use_se`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        w: &mut Weights,
        prefix: &str,
        (kernel, bias): (HostTensor, Vec<f32>),
        stride: usize,
        groups: usize,
        use_se: bool,
        use_act: bool,
    ) -> Self {
        let out = kernel.shape[0];
        let se = use_se.then(|| SqueezeExciteConfig::new(out).load(w, &format!("{prefix}.se")));
        Self { conv: conv2d(kernel, Some(bias), stride, groups, w.device()), se, act: use_act }
    }

    /// Applies conv, SE and activation.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.se {
            // The activation fused into the convolution.
            None => cpu::conv2d(&self.conv, x, self.act),
            Some(se) => {
                let x = se.forward(cpu::conv2d(&self.conv, x, false));
                if self.act { gelu(x) } else { x }
            }
        }
    }
}
