//! MobileOne block (`mobileone.py` `MobileOneBlock`, timm `fastvit.MobileOneBlock`).
//!
//! Train-time: `act(se(Σ conv_kxk_i(x) + conv_scale(x) + identity(x)))`, each branch a
//! conv + BatchNorm (identity: BatchNorm only). Inference: one convolution. Loading folds the
//! branches as the reference's `reparameterize()` does, or reads `reparam_conv` directly.

use burn::prelude::*;

use super::reparam_conv::ReparamConv;
use crate::weights::fold::{BatchNorm, add_assign, fuse_conv_bn, identity_kernel, pad_kernel};
use crate::weights::{HostTensor, Weights};

/// A re-parameterised MobileOne block: conv → (SE) → (GELU).
#[derive(Module, Debug)]
pub struct MobileOneBlock {
    block: ReparamConv,
}

/// Config of [`MobileOneBlock`], with the reference's arguments.
#[derive(Config, Debug)]
pub struct MobileOneBlockConfig {
    /// Input channels.
    pub in_chs: usize,
    /// Output channels.
    pub out_chs: usize,
    /// Kernel size `[kh, kw]`.
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
    /// 1×1 scale branch (only built when the kernel's height is > 1, as in the reference).
    #[config(default = true)]
    pub use_scale_branch: bool,
    /// Number of k×k conv branches.
    #[config(default = 1)]
    pub num_conv_branches: usize,
}

impl MobileOneBlockConfig {
    /// The folded `(kernel, bias)` of the block's branches, from either checkpoint form.
    pub fn fused_kernel(&self, w: &mut Weights, prefix: &str) -> (HostTensor, Vec<f32>) {
        let [kh, kw] = self.kernel_size;
        let (o, ig) = (self.out_chs, self.in_chs / self.groups);
        if w.contains(&format!("{prefix}.reparam_conv.weight")) {
            let k = w.take(&format!("{prefix}.reparam_conv.weight"), &[o, ig, kh, kw]);
            let b = w.take_vec(&format!("{prefix}.reparam_conv.bias"), o);
            return (k, b);
        }
        let mut kernel = HostTensor::zeros(&[o, ig, kh, kw]);
        let mut bias = vec![0.0; o];
        for i in 0..self.num_conv_branches {
            let p = format!("{prefix}.conv_kxk.{i}");
            let k = w.take(&format!("{p}.conv.weight"), &[o, ig, kh, kw]);
            let (k, b) = fuse_conv_bn(k, &BatchNorm::load(w, &format!("{p}.bn"), o));
            add_assign(&mut kernel.data, &k.data);
            add_assign(&mut bias, &b);
        }
        if kh > 1 && self.use_scale_branch {
            let k = w.take(&format!("{prefix}.conv_scale.conv.weight"), &[o, ig, 1, 1]);
            let (k, b) = fuse_conv_bn(k, &BatchNorm::load(w, &format!("{prefix}.conv_scale.bn"), o));
            add_assign(&mut kernel.data, &pad_kernel(&k, kh, kw).data);
            add_assign(&mut bias, &b);
        }
        if self.in_chs == self.out_chs && self.stride == 1 {
            let id = identity_kernel(o, ig, kh, kw);
            let (k, b) = fuse_conv_bn(id, &BatchNorm::load(w, &format!("{prefix}.identity"), o));
            add_assign(&mut kernel.data, &k.data);
            add_assign(&mut bias, &b);
        }
        (kernel, bias)
    }

    /// Loads the block under `prefix`.
    pub fn load(&self, w: &mut Weights, prefix: &str) -> MobileOneBlock {
        let fused = self.fused_kernel(w, prefix);
        MobileOneBlock {
            block: ReparamConv::new(w, prefix, fused, self.stride, self.groups, self.use_se, self.use_act),
        }
    }
}

impl MobileOneBlock {
    /// `[B, C_in, H, W]` → `[B, C_out, H / stride, W / stride]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.block.forward(x)
    }
}
