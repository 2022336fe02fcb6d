//! ViT image encoders: Apple's v1 `vit_b16` (`vit.py`, a convolutional stem), timm's
//! `vit_base_mci_224` (MobileCLIP2-B, the same stem without padding) and
//! `vit_large_patch14_clip_224` (MobileCLIP2-L/14, a patch conv with pre-norm).
//!
//! stem → patch tokens + positional embedding, class token → pre-norm transformer → final
//! norm → class token → projection.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNormConfig, Linear, PaddingConfig2d};
use burn::prelude::*;

use crate::config::{VitArch, VitStem};
use crate::model::common::layers::{Norm, conv2d, image_head, layer_norm};
use crate::model::common::transformer::{TransformerLayer, TransformerLayerConfig};
use crate::weights::{HostTensor, VarBuilder};

/// One convolution of the stem (BatchNorm folded), optionally followed by GELU.
#[derive(Module, Debug)]
pub struct StemConv {
    conv: Conv2d,
    act: bool,
}

/// A ViT image encoder with its projection.
#[derive(Module, Debug)]
pub struct VisionTransformer {
    stem: Vec<StemConv>,
    cls_token: Param<Tensor<3>>,
    pos_embed: Param<Tensor<3>>,
    pos_includes_cls: bool,
    norm_pre: Option<Norm>,
    blocks: Vec<TransformerLayer>,
    norm: Norm,
    head: Linear,
}

/// Resamples a `[1, L, D]` table to `[1, n, D]` along `L`, as PyTorch's bilinear
/// `F.interpolate(size=(n, D), align_corners=False)` does (Apple's `LearnablePositionalEmbedding`).
fn resample_rows(t: HostTensor, n: usize) -> HostTensor {
    let (len, d) = (t.shape[1], t.shape[2]);
    if len == n {
        return t;
    }
    let scale = len as f32 / n as f32;
    let mut out = HostTensor::zeros(&[1, n, d]);
    for i in 0..n {
        let src = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
        let i0 = src as usize;
        let i1 = if i0 + 1 < len { i0 + 1 } else { i0 };
        let l1 = src - i0 as f32;
        let l0 = 1.0 - l1;
        for j in 0..d {
            out.data[i * d + j] = l0 * t.data[i0 * d + j] + l1 * t.data[i1 * d + j];
        }
    }
    out
}

impl VisionTransformer {
    /// Loads the encoder from the scope of the image tower (`visual`): `patch_embed`,
    /// `cls_token`, `pos_embed`, `norm_pre`, `blocks`, `norm`, `head`.
    pub fn load(arch: &VitArch, embed_dim: usize, vb: &VarBuilder) -> Self {
        let d = arch.embed_dim;
        let mut stem = Vec::new();
        let mut side = arch.img_size;
        match &arch.stem {
            VitStem::Conv { kernels, strides, paddings, min_width } => {
                let channels = VitStem::conv_channels(*min_width, d);
                let mut cin = 3;
                for (i, (((&c, &k), &s), &p)) in channels.iter().zip(kernels).zip(strides).zip(paddings).enumerate() {
                    let conv = Conv2dConfig::new([cin, c], [k, k])
                        .with_stride([s, s])
                        .with_padding(PaddingConfig2d::Explicit(p, p, p, p));
                    let conv = conv2d(&vb.pp("patch_embed").pp("backbone").pp(i).pp("conv"), &conv);
                    stem.push(StemConv { conv, act: i + 1 < channels.len() });
                    side = (side + 2 * p - k) / s + 1;
                    cin = c;
                }
            }
            VitStem::Patch { patch_size, bias } => {
                let p = *patch_size;
                let config = Conv2dConfig::new([3, d], [p, p])
                    .with_stride([p, p])
                    .with_padding(PaddingConfig2d::Explicit(0, 0, 0, 0))
                    .with_bias(*bias);
                stem.push(StemConv { conv: conv2d(&vb.pp("patch_embed").pp("proj"), &config), act: false });
                side /= p;
            }
        }
        let patches = side * side;
        let n_pos = patches + usize::from(arch.pos_includes_cls);
        let cls_token = vb.param("cls_token", [1, 1, d]);
        let pos_embed = Param::from_tensor(vb.upload(match arch.pos_table_len {
            Some(len) => resample_rows(vb.host("pos_embed", &[1, len, d]), patches),
            None => vb.host("pos_embed", &[1, n_pos, d]),
        }));
        let ln = LayerNormConfig::new(d).with_epsilon(arch.ln_eps);
        let norm_pre = arch.pre_norm.then(|| layer_norm(&vb.pp("norm_pre"), &ln));
        let layer = TransformerLayerConfig::new(d, arch.num_heads, (d as f64 * arch.mlp_ratio) as usize)
            .with_ln_eps(arch.ln_eps);
        let blocks = (0..arch.depth).map(|i| layer.load(&vb.pp("blocks").pp(i))).collect();
        let norm = layer_norm(&vb.pp("norm"), &ln);
        let head = image_head(&vb.pp("head"), &vb.pp("head"), d, embed_dim);
        Self { stem, cls_token, pos_embed, pos_includes_cls: arch.pos_includes_cls, norm_pre, blocks, norm, head }
    }

    /// Unnormalised image features `[B, embed_dim]` from pixels `[B, 3, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = x;
        for s in &self.stem {
            x = crate::cpu::conv2d(&s.conv, x, s.act);
        }
        let [b, d, h, w] = x.dims();
        let patches = x.reshape([b, d, h * w]).swap_dims(1, 2);
        let cls = self.cls_token.val().expand([b, 1, d]);
        let pos = self.pos_embed.val();
        let mut x = if self.pos_includes_cls {
            Tensor::cat(vec![cls, patches], 1) + pos
        } else {
            Tensor::cat(vec![cls, patches + pos], 1)
        };
        if let Some(n) = &self.norm_pre {
            x = n.forward(x);
        }
        for block in &self.blocks {
            x = block.forward(x, false);
        }
        let x = self.norm.forward(x);
        let cls = x.narrow(1, 0, 1).reshape([b, d]);
        self.head.forward(cls)
    }
}
