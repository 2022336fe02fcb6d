//! The inference form of every re-parameterisable block, once [`crate::weights::fold`] has
//! folded its branches: one convolution `reparam_conv`, then optional squeeze-excite `se`, then
//! optional GELU. That is
//! - a MobileOne block (Apple's `common/mobileone.py`, timm `MobileOneBlock`): GELU, SE in
//!   FastViT's final conv;
//! - a ReparamLargeKernelConv (`replknet.py`, timm): GELU, SE in some PatchEmbeds;
//! - a RepMixer (`mci.py`, `text/repmixer.py`, timm): depthwise, no activation, the residual in
//!   the kernel;
//! - a RepCPE (`mci.py` `RepCPE`, timm `RepConditionalPosEnc`): the same, 7×7.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;

use super::layers::{conv2d, conv2d_config, forward_conv, fused_conv2d};
use super::squeeze_excite::{SqueezeExcite, SqueezeExciteConfig};
use crate::cpu;
use crate::weights::VarBuilder;

/// conv → (SE) → (GELU).
#[derive(Module, Debug)]
pub struct ReparamConv {
    conv: Conv2d,
    se: Option<SqueezeExcite>,
    act: bool,
}

/// Config of [`ReparamConv`], with the reference's argument names.
#[derive(Config, Debug)]
pub struct ReparamConvConfig {
    /// Input channels.
    pub in_chs: usize,
    /// Output channels.
    pub out_chs: usize,
    /// Kernel size `[kh, kw]` (padded by half of it on each side).
    pub kernel_size: [usize; 2],
    /// Stride.
    #[config(default = 1)]
    pub stride: usize,
    /// Convolution groups.
    #[config(default = 1)]
    pub groups: usize,
    /// Squeeze-and-excite after the conv.
    #[config(default = false)]
    pub use_se: bool,
    /// GELU at the end.
    #[config(default = true)]
    pub use_act: bool,
}

impl ReparamConvConfig {
    /// The convolution's config.
    pub fn conv_config(&self) -> Conv2dConfig {
        conv2d_config([self.in_chs, self.out_chs], self.kernel_size)
            .with_stride([self.stride, self.stride])
            .with_groups(self.groups)
    }

    /// Loads `reparam_conv` (and `se`) of the scope `vb`.
    pub fn load(&self, vb: &VarBuilder) -> ReparamConv {
        let (conv, vb_conv) = (self.conv_config(), vb.pp("reparam_conv"));
        let se = self.use_se.then(|| SqueezeExciteConfig::new(self.out_chs).load(&vb.pp("se")));
        // Without squeeze-excite the convolution runs through `forward_conv` alone.
        let conv = if se.is_some() { conv2d(&vb_conv, &conv) } else { fused_conv2d(&vb_conv, &conv) };
        ReparamConv { conv, se, act: self.use_act }
    }
}

impl ReparamConv {
    /// The convolution alone, when the block is nothing more (no squeeze-excite, no activation).
    pub fn plain_conv(&self) -> Option<&Conv2d> {
        (self.se.is_none() && !self.act).then_some(&self.conv)
    }

    /// Applies conv, SE and activation.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.se {
            // The activation fused into the convolution.
            None => forward_conv(&self.conv, x, self.act),
            Some(se) => se.forward(cpu::conv2d(&self.conv, x, false), self.act),
        }
    }
}
