//! Squeeze-and-excite: v1's `SEBlock` (`reduce`/`expand`) and timm's `SqueezeExcite`
//! (`fc1`/`fc2`) compute the same thing: `x * sigmoid(fc2(relu(fc1(mean_hw(x)))))`.

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};

use crate::cpu;
use crate::model::layers::conv2d;
use crate::weights::Weights;

/// Squeeze-and-excite gate over channels.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    fc1: Conv2d,
    fc2: Conv2d,
}

/// Config of [`SqueezeExcite`]. The reduced width is read from the checkpoint, since v1 and
/// timm round it differently (`int(c / 16)` vs `round(c / 16)`, `make_divisible(c / 4, 8)`).
#[derive(Config, Debug)]
pub struct SqueezeExciteConfig {
    /// Channels gated.
    pub channels: usize,
}

impl SqueezeExciteConfig {
    /// Loads `prefix.fc1` / `prefix.fc2`.
    pub fn load(&self, w: &mut Weights, prefix: &str) -> SqueezeExcite {
        let c = self.channels;
        let rd = w.shape(&format!("{prefix}.fc1.weight")).map_or(c / 16, |s| s[0]).max(1);
        let k1 = w.take(&format!("{prefix}.fc1.weight"), &[rd, c, 1, 1]);
        let b1 = w.take_vec(&format!("{prefix}.fc1.bias"), rd);
        let k2 = w.take(&format!("{prefix}.fc2.weight"), &[c, rd, 1, 1]);
        let b2 = w.take_vec(&format!("{prefix}.fc2.bias"), c);
        let device = w.device();
        SqueezeExcite { fc1: conv2d(k1, Some(b1), 1, 1, device), fc2: conv2d(k2, Some(b2), 1, 1, device) }
    }
}

impl SqueezeExcite {
    /// Gates `x` `[B, C, H, W]` channel-wise.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let s = x.clone().mean_dims(&[2, 3]);
        let s = sigmoid(cpu::conv2d(&self.fc2, relu(cpu::conv2d(&self.fc1, s, false)), false));
        x * s
    }
}
