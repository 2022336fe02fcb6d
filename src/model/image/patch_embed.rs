//! Convolutional patch embedding between stages (`mci.py` / timm `PatchEmbed`): a stride-2
//! ReparamLargeKernelConv then a 1×1 MobileOne block.

use burn::prelude::*;

use super::mobileone::{MobileOneBlock, MobileOneBlockConfig};
use super::replknet::{ReparamLargeKernelConv, ReparamLargeKernelConvConfig};
use crate::weights::Weights;

/// Downsampling patch embedding.
#[derive(Module, Debug)]
pub struct PatchEmbed {
    large: ReparamLargeKernelConv,
    pointwise: MobileOneBlock,
}

/// Config of [`PatchEmbed`].
#[derive(Config, Debug)]
pub struct PatchEmbedConfig {
    /// Input channels.
    pub in_chs: usize,
    /// Output channels.
    pub embed_dim: usize,
    /// Large kernel size.
    #[config(default = 7)]
    pub patch_size: usize,
    /// Stride.
    #[config(default = 2)]
    pub stride: usize,
    /// SE in the large-kernel conv.
    #[config(default = false)]
    pub use_se: bool,
}

impl PatchEmbedConfig {
    /// Loads `prefix.proj.0` and `prefix.proj.1`.
    pub fn load(&self, w: &mut Weights, prefix: &str) -> PatchEmbed {
        let large =
            ReparamLargeKernelConvConfig::new(self.in_chs, self.embed_dim, self.patch_size, self.stride, self.in_chs)
                .with_use_se(self.use_se)
                .load(w, &format!("{prefix}.proj.0"));
        let pointwise =
            MobileOneBlockConfig::new(self.embed_dim, self.embed_dim, [1, 1]).load(w, &format!("{prefix}.proj.1"));
        PatchEmbed { large, pointwise }
    }
}

impl PatchEmbed {
    /// `[B, C, H, W]` → `[B, D, H / 2, W / 2]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.pointwise.forward(self.large.forward(x))
    }
}
