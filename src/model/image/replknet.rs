//! ReparamLargeKernelConv (`replknet.py`, timm `fastvit.ReparamLargeKernelConv`): a large
//! kernel conv + BN with a parallel small kernel conv + BN, folded into one large kernel.

use burn::prelude::*;

use super::reparam_conv::ReparamConv;
use crate::weights::Weights;
use crate::weights::fold::{BatchNorm, add_assign, fuse_conv_bn, pad_kernel};

/// A re-parameterised large-kernel conv: conv → (SE) → GELU.
#[derive(Module, Debug)]
pub struct ReparamLargeKernelConv {
    block: ReparamConv,
}

/// Config of [`ReparamLargeKernelConv`].
#[derive(Config, Debug)]
pub struct ReparamLargeKernelConvConfig {
    /// Input channels.
    pub in_chs: usize,
    /// Output channels.
    pub out_chs: usize,
    /// Large kernel size.
    pub kernel_size: usize,
    /// Stride.
    pub stride: usize,
    /// Groups.
    pub groups: usize,
    /// Small kernel size.
    #[config(default = 3)]
    pub small_kernel: usize,
    /// Squeeze-and-excite.
    #[config(default = false)]
    pub use_se: bool,
    /// GELU at the end (v1 always; timm with `lkc_use_act`, as every MCi model sets).
    #[config(default = true)]
    pub use_act: bool,
}

impl ReparamLargeKernelConvConfig {
    /// Loads the block under `prefix` (`large_conv` + `small_conv`, or `reparam_conv`).
    pub fn load(&self, w: &mut Weights, prefix: &str) -> ReparamLargeKernelConv {
        let (o, ig, k) = (self.out_chs, self.in_chs / self.groups, self.kernel_size);
        let (kernel, bias) = if w.contains(&format!("{prefix}.reparam_conv.weight")) {
            (
                w.take(&format!("{prefix}.reparam_conv.weight"), &[o, ig, k, k]),
                w.take_vec(&format!("{prefix}.reparam_conv.bias"), o),
            )
        } else {
            let large = w.take(&format!("{prefix}.large_conv.conv.weight"), &[o, ig, k, k]);
            let (mut kernel, mut bias) =
                fuse_conv_bn(large, &BatchNorm::load(w, &format!("{prefix}.large_conv.bn"), o));
            let s = self.small_kernel;
            let small = w.take(&format!("{prefix}.small_conv.conv.weight"), &[o, ig, s, s]);
            let (small, b) = fuse_conv_bn(small, &BatchNorm::load(w, &format!("{prefix}.small_conv.bn"), o));
            add_assign(&mut kernel.data, &pad_kernel(&small, k, k).data);
            add_assign(&mut bias, &b);
            (kernel, bias)
        };
        let block = ReparamConv::new(w, prefix, (kernel, bias), self.stride, self.groups, self.use_se, self.use_act);
        ReparamLargeKernelConv { block }
    }
}

impl ReparamLargeKernelConv {
    /// Applies conv, SE and activation.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.block.forward(x)
    }
}
