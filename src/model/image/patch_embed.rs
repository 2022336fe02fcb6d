//! Convolutional patch embedding between stages (`mci.py` / timm `PatchEmbed`): a stride-2
//! large-kernel depthwise conv (ReparamLargeKernelConv) then a 1×1 conv (MobileOne block), each
//! a [`ReparamConv`] once re-parameterised.

use burn::prelude::*;

use crate::model::common::reparam_conv::{ReparamConv, ReparamConvConfig};
use crate::weights::VarBuilder;

/// Downsampling patch embedding.
#[derive(Module, Debug)]
pub struct PatchEmbed {
    large: ReparamConv,
    pointwise: ReparamConv,
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
    /// Loads `proj.0` (large kernel) and `proj.1` (1×1).
    pub fn load(&self, vb: &VarBuilder) -> PatchEmbed {
        let (cin, d, k) = (self.in_chs, self.embed_dim, self.patch_size);
        PatchEmbed {
            large: ReparamConvConfig::new(cin, d, [k, k])
                .with_stride(self.stride)
                .with_groups(cin)
                .with_use_se(self.use_se)
                .load(&vb.pp("proj").pp(0)),
            pointwise: ReparamConvConfig::new(d, d, [1, 1]).load(&vb.pp("proj").pp(1)),
        }
    }
}

impl PatchEmbed {
    /// `[B, C, H, W]` → `[B, D, H / 2, W / 2]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.pointwise.forward(self.large.forward(x))
    }
}
