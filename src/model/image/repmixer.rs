//! RepMixer token mixer and block (`mci.py` / timm `RepMixer`, `RepMixerBlock`; the text
//! encoder's `repmixer.py` is the same with a `[1, 11]` kernel over the sequence).
//!
//! Train-time `x + layer_scale * (mixer(x) - norm(x))`, with `mixer` and `norm` MobileOne
//! blocks, folds into one depthwise convolution.

use burn::nn::conv::Conv2d;
use burn::prelude::*;

use super::convffn::{ConvFfn, ConvFfnConfig};
use super::mobileone::MobileOneBlockConfig;
use crate::cpu;
use crate::model::layers::{conv2d, load_layer_scale};
use crate::weights::Weights;
use crate::weights::fold::{add_assign, identity_kernel};

/// The re-parameterised RepMixer: one depthwise convolution.
#[derive(Module, Debug)]
pub struct RepMixer {
    conv: Conv2d,
}

/// Config of [`RepMixer`].
#[derive(Config, Debug)]
pub struct RepMixerConfig {
    /// Channels.
    pub dim: usize,
    /// Kernel `[kh, kw]`.
    pub kernel_size: [usize; 2],
}

impl RepMixerConfig {
    /// Loads `prefix.reparam_conv`, or folds `prefix.{mixer, norm, layer_scale}`.
    pub fn load(&self, w: &mut Weights, prefix: &str) -> RepMixer {
        let (d, [kh, kw]) = (self.dim, self.kernel_size);
        let (kernel, bias) = if w.contains(&format!("{prefix}.reparam_conv.weight")) {
            (
                w.take(&format!("{prefix}.reparam_conv.weight"), &[d, 1, kh, kw]),
                w.take_vec(&format!("{prefix}.reparam_conv.bias"), d),
            )
        } else {
            let block = MobileOneBlockConfig::new(d, d, self.kernel_size).with_groups(d).with_use_act(false);
            let (km, bm) = block.clone().fused_kernel(w, &format!("{prefix}.mixer"));
            let (kn, bn) =
                block.with_use_scale_branch(false).with_num_conv_branches(0).fused_kernel(w, &format!("{prefix}.norm"));
            let scale = load_layer_scale(w, &format!("{prefix}.layer_scale"), d);
            // w = id + ls * (Wm - Wn), b = ls * (bm - bn)
            let mut kernel = identity_kernel(d, 1, kh, kw);
            let per = kh * kw;
            let delta: Vec<f32> =
                km.data.iter().zip(&kn.data).enumerate().map(|(i, (m, n))| scale[i / per] * (m - n)).collect();
            add_assign(&mut kernel.data, &delta);
            let bias = bm.iter().zip(&bn).zip(&scale).map(|((m, n), s)| s * (m - n)).collect();
            (kernel, bias)
        };
        RepMixer { conv: conv2d(kernel, Some(bias), 1, d, w.device()) }
    }
}

impl RepMixer {
    /// Mixes tokens spatially (the residual is inside the folded kernel).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        cpu::conv2d(&self.conv, x, false)
    }
}

/// Metaformer block with RepMixer: `x = mixer(x); x + layer_scale * ffn(x)` (the layer scale
/// folded into the FFN's last conv).
#[derive(Module, Debug)]
pub struct RepMixerBlock {
    token_mixer: RepMixer,
    mlp: ConvFfn,
}

/// Config of [`RepMixerBlock`].
#[derive(Config, Debug)]
pub struct RepMixerBlockConfig {
    /// Channels.
    pub dim: usize,
    /// FFN hidden channels.
    pub hidden: usize,
    /// RepMixer kernel.
    pub kernel_size: [usize; 2],
    /// ConvFFN depthwise kernel.
    pub ffn_kernel_size: [usize; 2],
}

impl RepMixerBlockConfig {
    /// Loads `prefix.{token_mixer, mlp, layer_scale}`.
    pub fn load(&self, w: &mut Weights, prefix: &str) -> RepMixerBlock {
        let token_mixer = RepMixerConfig::new(self.dim, self.kernel_size).load(w, &format!("{prefix}.token_mixer"));
        let scale = load_layer_scale(w, &format!("{prefix}.layer_scale"), self.dim);
        let mlp = ConvFfnConfig::new(self.dim, self.hidden, self.ffn_kernel_size).load(
            w,
            &format!("{prefix}.mlp"),
            Some(&scale),
        );
        RepMixerBlock { token_mixer, mlp }
    }
}

impl RepMixerBlock {
    /// `[B, C, H, W]` → `[B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.token_mixer.forward(x);
        self.mlp.forward_add(x.clone(), x)
    }
}
