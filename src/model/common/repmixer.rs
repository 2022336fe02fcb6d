//! RepMixer token mixer and block (`mci.py` / timm `RepMixer`, `RepMixerBlock`), in the MCi
//! image towers and, with a `[1, 11]` kernel over the sequence, in the "mct" text tower
//! (`text/repmixer.py`, see [`crate::model::text::mct`]).
//!
//! The train-time token mixer `x + layer_scale * (mixer(x) - norm(x))` is one depthwise
//! convolution once folded, a [`ReparamConv`] without activation.

use burn::prelude::*;

use super::convffn::{ConvFfn, ConvFfnConfig};
use super::reparam_conv::{ReparamConv, ReparamConvConfig};
use crate::model::gpu;
use crate::weights::VarBuilder;

/// Metaformer block with RepMixer: `x = mixer(x); x + layer_scale * ffn(x)` (the layer scale
/// is folded into the FFN's last conv).
#[derive(Module, Debug)]
pub struct RepMixerBlock {
    token_mixer: ReparamConv,
    mlp: ConvFfn,
    /// Whether the mixer and the FFN's depthwise convolution fit the fused GPU kernel of the
    /// pair ([`gpu::depthwise_pair_fits`]), decided at load: on a GPU only it reads them then.
    paired: bool,
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
    /// Loads `token_mixer` and `mlp` (the depthwise pair's parameters from the scope's
    /// [`VarBuilder::fused`] when it fits the fused kernel).
    pub fn load(&self, vb: &VarBuilder) -> RepMixerBlock {
        let mixer =
            ReparamConvConfig::new(self.dim, self.dim, self.kernel_size).with_groups(self.dim).with_use_act(false);
        let ffn = ConvFfnConfig::new(self.dim, self.hidden, self.ffn_kernel_size);
        let paired = gpu::depthwise_pair_fits(&mixer.conv_config(), &ffn.depthwise_config());
        let mixer_vb = vb.pp("token_mixer");
        RepMixerBlock {
            token_mixer: mixer.load(&if paired { mixer_vb.fused() } else { mixer_vb }),
            mlp: ffn.load_paired(&vb.pp("mlp"), paired),
            paired,
        }
    }
}

impl RepMixerBlock {
    /// `[B, C, H, W]` → `[B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // On a GPU the mixer and the FFN's depthwise convolution run as one kernel.
        if self.paired
            && let Some(mixer) = self.token_mixer.plain_conv()
            && gpu::fused_kernels(&x)
        {
            let (x, y) = gpu::depthwise_pair(x, mixer, self.mlp.depthwise());
            return self.mlp.pointwise_add(y, x);
        }
        let x = self.token_mixer.forward(x);
        self.mlp.forward_add(x.clone(), x)
    }

    /// [`Self::forward`] at one position per image (`at[i]` indexes image `i`'s `H·W` plane):
    /// `[B, C]`; the FFN's pointwise convolutions run on those positions only.
    pub fn forward_at(&self, x: Tensor<4>, at: &[usize]) -> Tensor<2> {
        let x = self.token_mixer.forward(x);
        self.mlp.forward_add_at(x, at)
    }
}
