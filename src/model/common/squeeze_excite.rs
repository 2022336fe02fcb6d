//! Squeeze-and-excite: v1's `SEBlock` (`reduce`/`expand`) and timm's `SqueezeExcite`
//! (`fc1`/`fc2`) compute the same thing: `x * sigmoid(fc2(relu(fc1(mean_hw(x)))))`; on a GPU
//! in one kernel ([`gpu::squeeze_excite`]).

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};

use super::layers::{conv2d, conv2d_config};
use crate::cpu;
use crate::model::gpu;
use crate::weights::VarBuilder;

/// Squeeze-and-excite gate over channels.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    fc1: Conv2d,
    fc2: Conv2d,
}

/// Config of [`SqueezeExcite`]. The reduced width is read from the weights, since v1 and
/// timm round it differently (`int(c / 16)` vs `round(c / 16)`, `make_divisible(c / 4, 8)`).
#[derive(Config, Debug)]
pub struct SqueezeExciteConfig {
    /// Channels gated.
    pub channels: usize,
}

impl SqueezeExciteConfig {
    /// Loads `fc1` / `fc2` (1×1 convolutions; when they fit the fused GPU kernel, from the
    /// scope's [`VarBuilder::fused`]: only that kernel reads them then).
    pub fn load(&self, vb: &VarBuilder) -> SqueezeExcite {
        let c = self.channels;
        let rd = vb.shape("fc1.weight").map_or(c / 16, |s| s[0]).max(1);
        let vb = if gpu::squeeze_excite_fits(c, rd) { vb.fused() } else { vb.clone() };
        SqueezeExcite {
            fc1: conv2d(&vb.pp("fc1"), &conv2d_config([c, rd], [1, 1])),
            fc2: conv2d(&vb.pp("fc2"), &conv2d_config([rd, c], [1, 1])),
        }
    }
}

impl SqueezeExcite {
    /// Gates `x` `[B, C, H, W]` channel-wise, then GELU when `gelu` (in the same pass).
    pub fn forward(&self, x: Tensor<4>, gelu: bool) -> Tensor<4> {
        let [reduced, channels, _, _] = self.fc1.weight.dims();
        if gpu::fused_kernels(&x) && gpu::squeeze_excite_fits(channels, reduced) {
            return gpu::squeeze_excite(x, &self.fc1, &self.fc2, gelu);
        }
        let s = x.clone().mean_dims(&[2, 3]);
        let s = sigmoid(cpu::conv2d(&self.fc2, relu(cpu::conv2d(&self.fc1, s, false)), false));
        cpu::scale_channels(x, s, gelu)
    }
}
