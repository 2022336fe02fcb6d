//! The RepMixer block of MobileCLIP-S0's "mct" text encoder (`text/repmixer.py`): the image
//! RepMixer block run over the sequence as a `[B, D, 1, L]` map with `[1, 11]` kernels.

use burn::prelude::*;

use crate::config::TEXT_REPMIXER_KERNEL;
use crate::model::common::repmixer::{RepMixerBlock, RepMixerBlockConfig};
use crate::model::gpu;
use crate::weights::VarBuilder;

/// A RepMixer block over token sequences.
#[derive(Module, Debug)]
pub struct TextRepMixerBlock {
    block: RepMixerBlock,
    reach: usize,
}

/// Config of [`TextRepMixerBlock`].
#[derive(Config, Debug)]
pub struct TextRepMixerBlockConfig {
    /// Token width.
    pub dim: usize,
    /// Kernel length along the sequence.
    #[config(default = "TEXT_REPMIXER_KERNEL")]
    pub kernel: usize,
    /// FFN expansion (the reference's default 4).
    #[config(default = 4)]
    pub mlp_ratio: usize,
}

impl TextRepMixerBlockConfig {
    /// Loads `token_mixer` and `mlp`.
    pub fn load(&self, vb: &VarBuilder) -> TextRepMixerBlock {
        let k = [1, self.kernel];
        TextRepMixerBlock {
            block: RepMixerBlockConfig::new(self.dim, self.dim * self.mlp_ratio, k, k).load(vb),
            // Two convolutions along the sequence (token mixer, then the FFN's), `kernel / 2` each way.
            reach: 2 * (self.kernel / 2),
        }
    }
}

impl TextRepMixerBlock {
    /// How many positions on either side of a position its output depends on.
    pub fn reach(&self) -> usize {
        self.reach
    }

    /// `[B, L, D]` → `[B, L, D]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let l = x.dims()[1];
        gpu::as_tokens(self.block.forward(gpu::as_image(x, [1, l])))
    }

    /// [`Self::forward`] at one position per sequence (`at`): `[B, D]`.
    pub fn forward_at(&self, x: Tensor<3>, at: &[usize]) -> Tensor<2> {
        let l = x.dims()[1];
        self.block.forward_at(gpu::as_image(x, [1, l]), at)
    }
}
