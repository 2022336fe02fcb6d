//! The architecture registry: the hyper-parameters of every image and text encoder, as the
//! reference's model registries define them (`mci0`, `fastvit_mci3`, `vit_base_mci_224`, ...),
//! the constants that recur across them, and the one mechanism by which a config's `arch`
//! object overrides a registry entry ([`apply_overrides`]).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// LayerNorm epsilon of the text towers, the MCi attention blocks' LayerNorm2d and the ViTs
/// `vit_b16` and `vit_large_patch14_clip_224` (PyTorch's default).
pub const LN_EPS: f64 = 1e-5;
/// LayerNorm epsilon of timm's `vit_base_mci_224` (MobileCLIP2-B's image tower).
pub const VIT_MCI_LN_EPS: f64 = 1e-6;
/// BatchNorm epsilon of every MobileCLIP model (PyTorch's default).
pub const BN_EPS: f32 = 1e-5;
/// Depthwise kernel of the ConvFFN in MCi's RepMixer and attention blocks (7×7).
pub const CONV_FFN_KERNEL: [usize; 2] = [7, 7];
/// Kernel of MCi's RepCPE positional encoding (7×7).
pub const REPCPE_KERNEL: [usize; 2] = [7, 7];
/// Length along the sequence of the "mct" text encoder's RepMixer and ConvFFN kernels (`[1, 11]`).
pub const TEXT_REPMIXER_KERNEL: usize = 11;

/// Hyper-parameters of both towers.
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    /// Joint embedding dimension.
    pub embed_dim: usize,
    /// Image tower.
    pub image: ImageArch,
    /// Text tower.
    pub text: TextArch,
}

/// The image tower.
#[derive(Clone, Debug, PartialEq)]
pub enum ImageArch {
    /// MCi / FastViT (mci0..mci4).
    FastVit(FastVitArch),
    /// A ViT image tower.
    Vit(VitArch),
}

/// Token mixer of a FastViT stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenMixer {
    /// RepMixer (depthwise conv) blocks.
    Repmixer,
    /// Multi-head self-attention blocks.
    Attention,
}

/// Normalisation in FastViT attention blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// BatchNorm2d (mci0..mci2).
    BatchNorm,
    /// LayerNorm over channels (mci3, mci4).
    #[serde(rename = "layer_norm_2d")]
    LayerNorm2d,
}

/// FastViT hyper-parameters, named as timm's `FastVit` constructor names them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FastVitArch {
    /// Blocks per stage.
    pub layers: Vec<usize>,
    /// Channels per stage.
    pub embed_dims: Vec<usize>,
    /// MLP expansion per stage.
    pub mlp_ratios: Vec<f64>,
    /// Whether stage i starts with a downsampling PatchEmbed (timm semantics; a change of width
    /// also implies one).
    pub downsamples: Vec<bool>,
    /// Whether stage i's PatchEmbed has squeeze-excite.
    pub se_downsamples: Vec<bool>,
    /// Whether stage i starts with a RepCPE positional encoding.
    pub pos_embs: Vec<bool>,
    /// Token mixer per stage.
    pub token_mixers: Vec<TokenMixer>,
    /// Norm of attention blocks.
    pub norm: NormKind,
    /// Whether the stem's MobileOne blocks have a 1×1 scale branch (a train-time branch: the
    /// inference model is the same either way, the fused stem convolutions carry it).
    pub stem_use_scale_branch: bool,
    /// Width multiplier of the final conv.
    pub cls_ratio: f64,
    /// RepMixer kernel size.
    pub repmixer_kernel_size: usize,
    /// PatchEmbed large kernel size.
    pub down_patch_size: usize,
    /// Per-head dimension of attention.
    pub head_dim: usize,
}

impl FastVitArch {
    /// The registry entry of a named MCi model (`mci0`..`mci4`, `fastvit_mci0`..`fastvit_mci4`).
    pub fn named(name: &str) -> Option<Self> {
        use TokenMixer::{Attention as A, Repmixer as R};
        let base = |layers: &[usize], dims: &[usize], mlp: f64| Self {
            layers: layers.to_vec(),
            embed_dims: dims.to_vec(),
            mlp_ratios: vec![mlp; layers.len()],
            downsamples: vec![false, true, true, true],
            se_downsamples: vec![false, false, true, true],
            pos_embs: vec![false, false, false, true],
            token_mixers: vec![R, R, R, A],
            norm: NormKind::BatchNorm,
            stem_use_scale_branch: true,
            cls_ratio: 2.0,
            repmixer_kernel_size: 3,
            down_patch_size: 7,
            head_dim: 32,
        };
        let large = |layers: &[usize], dims: &[usize]| Self {
            downsamples: vec![false, true, true, true, true],
            se_downsamples: vec![false; 5],
            pos_embs: vec![false, false, false, true, true],
            token_mixers: vec![R, R, R, A, A],
            norm: NormKind::LayerNorm2d,
            stem_use_scale_branch: false,
            ..base(layers, dims, 4.0)
        };
        Some(match name.strip_prefix("fastvit_").unwrap_or(name) {
            "mci0" => base(&[2, 6, 10, 2], &[64, 128, 256, 512], 3.0),
            "mci1" => base(&[4, 12, 20, 4], &[64, 128, 256, 512], 3.0),
            "mci2" => base(&[4, 12, 24, 4], &[80, 160, 320, 640], 3.0),
            "mci3" => large(&[2, 12, 24, 4, 2], &[96, 192, 384, 768, 1536]),
            "mci4" => large(&[2, 12, 24, 4, 4], &[128, 256, 512, 1024, 2048]),
            _ => return None,
        })
    }

    pub(crate) fn validate(self) -> Result<Self> {
        let n = self.layers.len();
        let lens = [
            self.embed_dims.len(),
            self.mlp_ratios.len(),
            self.downsamples.len(),
            self.se_downsamples.len(),
            self.pos_embs.len(),
            self.token_mixers.len(),
        ];
        if n == 0 || lens.iter().any(|&l| l != n) {
            return Err(Error::Config(format!("FastViT arch: every per-stage list needs {n} entries")));
        }
        for (i, (&d, m)) in self.embed_dims.iter().zip(&self.token_mixers).enumerate() {
            if *m == TokenMixer::Attention && !d.is_multiple_of(self.head_dim) {
                return Err(Error::Config(format!(
                    "FastViT arch: stage {i} width {d} is not a multiple of head_dim {}",
                    self.head_dim
                )));
            }
        }
        Ok(self)
    }

    /// Width of the final conv (the head's input).
    pub fn final_features(&self) -> usize {
        (*self.embed_dims.last().expect("validated") as f64 * self.cls_ratio) as usize
    }

    /// Whether stage `i` starts with a downsampling PatchEmbed: when asked to, or when the width
    /// changes (as timm's `FastVit` builds it).
    pub fn has_downsample(&self, i: usize) -> bool {
        let prev = if i == 0 { self.embed_dims[0] } else { self.embed_dims[i - 1] };
        self.downsamples[i] || prev != self.embed_dims[i]
    }
}

/// The patch stem of a ViT.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum VitStem {
    /// Three convolutions (BatchNorm + GELU after the first two) to widths
    /// `max(min_width, D / 4)`, `max(min_width, D / 4)`, `D`: MobileCLIP-B, MobileCLIP2-B.
    Conv {
        /// Kernel sizes.
        kernels: Vec<usize>,
        /// Strides.
        strides: Vec<usize>,
        /// Paddings.
        paddings: Vec<usize>,
        /// Lower bound of the first two widths (Apple's 32; timm's 0).
        min_width: usize,
    },
    /// One patch convolution (CLIP-style ViT).
    Patch {
        /// Patch size (kernel = stride).
        patch_size: usize,
        /// Whether the conv has a bias.
        bias: bool,
    },
}

impl VitStem {
    /// Output channels of each convolution of a [`VitStem::Conv`] stem for token width `dim`.
    pub fn conv_channels(min_width: usize, dim: usize) -> [usize; 3] {
        [(dim / 4).max(min_width), (dim / 4).max(min_width), dim]
    }
}

/// ViT hyper-parameters, named as timm's `VisionTransformer` constructor names them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitArch {
    /// Token width.
    pub embed_dim: usize,
    /// Number of blocks.
    pub depth: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// MLP expansion.
    pub mlp_ratio: f64,
    /// Input resolution the positional embedding is built for.
    pub img_size: usize,
    /// The patch stem.
    pub stem: VitStem,
    /// Whether the positional embedding covers the class token too (timm's `no_embed_class = false`).
    pub pos_includes_cls: bool,
    /// LayerNorm before the blocks (`norm_pre`).
    pub pre_norm: bool,
    /// LayerNorm epsilon.
    pub ln_eps: f64,
    /// Length of a positional table that is bilinearly resampled to the number of patches
    /// (Apple's v1 ViT: 196); `None`: the table must match the patch count (timm).
    pub pos_table_len: Option<usize>,
}

impl VitArch {
    /// The registry entry of a named ViT (`vit_b16`, `vit_base_mci_224`, `vit_large_patch14_clip_224`).
    pub fn named(name: &str) -> Option<Self> {
        let conv_stem = |paddings: Vec<usize>, min_width: usize| VitStem::Conv {
            kernels: vec![4, 2, 2],
            strides: vec![4, 2, 2],
            paddings,
            min_width,
        };
        let base = |stem, ln_eps| Self {
            embed_dim: 768,
            depth: 12,
            num_heads: 12,
            mlp_ratio: 4.0,
            img_size: 224,
            stem,
            pos_includes_cls: false,
            pre_norm: false,
            ln_eps,
            pos_table_len: None,
        };
        Some(match name {
            // Apple's ConvNormAct pads int((k - 1) / 2): 1 for the 4×4 conv.
            "vit_b16" => {
                Self { pos_table_len: Some((224 / 16) * (224 / 16)), ..base(conv_stem(vec![1, 0, 0], 32), LN_EPS) }
            }
            "vit_base_mci_224" => base(conv_stem(vec![0, 0, 0], 0), VIT_MCI_LN_EPS),
            "vit_large_patch14_clip_224" => Self {
                embed_dim: 1024,
                depth: 24,
                num_heads: 16,
                pos_includes_cls: true,
                pre_norm: true,
                ..base(VitStem::Patch { patch_size: 14, bias: false }, LN_EPS)
            },
            _ => return None,
        })
    }

    pub(crate) fn validate(self) -> Result<Self> {
        if self.num_heads == 0 || !self.embed_dim.is_multiple_of(self.num_heads) {
            return Err(Error::Config(format!(
                "ViT width {} is not divisible by {} heads",
                self.embed_dim, self.num_heads
            )));
        }
        if let VitStem::Conv { kernels, strides, paddings, .. } = &self.stem
            && (kernels.len() != 3 || strides.len() != 3 || paddings.len() != 3)
        {
            return Err(Error::Config("ViT arch: a convolutional stem has 3 kernels, strides and paddings".into()));
        }
        Ok(self)
    }
}

/// Variant of the text tower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextVariant {
    /// A plain pre-norm transformer.
    Base,
    /// MobileCLIP-S0's "mct": RepMixer blocks around the transformer layers.
    Mct,
}

/// Text tower hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct TextArch {
    /// Plain transformer or RepMixer-wrapped.
    pub variant: TextVariant,
    /// Token width.
    pub dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// Transformer layers.
    pub layers: usize,
    /// MLP hidden width.
    pub ffn_dim: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Sequence length.
    pub context_length: usize,
    /// Causal attention mask.
    pub causal: bool,
}

impl TextArch {
    pub(crate) fn validate(self) -> Result<Self> {
        if self.heads == 0 || !self.dim.is_multiple_of(self.heads) {
            return Err(Error::Config(format!("text width {} is not divisible by {} heads", self.dim, self.heads)));
        }
        Ok(self)
    }
}

/// How a family's config spells a registry field, when it spells it differently: Apple's v1
/// `image_cfg` uses its own constructors' argument names and meanings.
pub(crate) struct Spelling {
    /// The key in the config's `arch` object.
    pub key: &'static str,
    /// The registry field it sets.
    pub field: &'static str,
    /// Converts the value to the field's meaning.
    pub convert: fn(&Value) -> Result<Value>,
}

/// Overrides fields of a registry entry with a config's `arch` object: every key names a field
/// of `entry` (after `spellings` has mapped the family's own names onto the registry's); the
/// result is checked by deserialising it, so a value of the wrong type is an `INVALID_CONFIG`.
pub(crate) fn apply_overrides<T: Serialize + DeserializeOwned>(
    entry: &T,
    kind: &str,
    overrides: &Value,
    spellings: &[Spelling],
) -> Result<T> {
    let Value::Object(map) = overrides else {
        return Err(Error::Config(format!("{kind} `arch` must be an object")));
    };
    let mut merged = serde_json::to_value(entry).expect("registry entries serialise");
    for (key, value) in map {
        let (field, value) = match spellings.iter().find(|s| s.key == key) {
            Some(s) => (s.field, (s.convert)(value)?),
            None => (key.as_str(), value.clone()),
        };
        let slot = merged.get_mut(field).ok_or_else(|| Error::Config(format!("unknown {kind} arch key `{key}`")))?;
        *slot = value;
    }
    serde_json::from_value(merged).map_err(|e| Error::Config(format!("{kind} arch: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_fields_and_name_unknown_keys() {
        let a = FastVitArch::named("mci0").unwrap();
        let b = apply_overrides(&a, "FastViT", &serde_json::json!({"layers": [1, 1, 1, 1]}), &[]).unwrap();
        assert_eq!(b.layers, vec![1, 1, 1, 1]);
        assert_eq!(b.embed_dims, a.embed_dims);
        let e = apply_overrides(&a, "FastViT", &serde_json::json!({"layerz": [1]}), &[]).unwrap_err();
        assert_eq!(e.code(), "INVALID_CONFIG");
        assert!(e.to_string().contains("unknown FastViT arch key `layerz`"), "{e}");
        let e = apply_overrides(&a, "FastViT", &serde_json::json!({"layers": "four"}), &[]).unwrap_err();
        assert_eq!(e.code(), "INVALID_CONFIG");
        let e = apply_overrides(&a, "FastViT", &serde_json::json!([1]), &[]).unwrap_err();
        assert_eq!(e.code(), "INVALID_CONFIG");
    }

    #[test]
    fn conv_stem_widths_follow_the_token_width() {
        assert_eq!(VitStem::conv_channels(32, 768), [192, 192, 768]);
        assert_eq!(VitStem::conv_channels(32, 32), [32, 32, 32]);
        assert_eq!(VitStem::conv_channels(0, 32), [8, 8, 32]);
    }
}
