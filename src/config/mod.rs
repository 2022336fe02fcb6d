//! Model configs: one JSON file per model under `configs/`, in the reference's own vocabulary.
//!
//! MobileCLIP (v1) configs carry Apple's `image_cfg` / `text_cfg` verbatim (`family:
//! "mobileclip"`); MobileCLIP2 configs carry open_clip's `vision_cfg` / `text_cfg` verbatim
//! (`family: "open_clip"`). Both add `name`, `preprocess` and `weights`. [`ModelConfig::resolve`]
//! turns either into an [`Architecture`]: the named encoders' hyper-parameters, as in the
//! reference's model registry (`mci0`, `fastvit_mci3`, ...), with an optional `arch` object in
//! the image config overriding constructor arguments (used by the reduced test fixtures).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::preprocess::PreprocessConfig;

/// The checkpoint layout family of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Apple's MobileCLIP v1 code (`image_encoder.*`, `text_encoder.*`).
    Mobileclip,
    /// open_clip (`visual.trunk.*`, `text.*`), as MobileCLIP2 is published.
    OpenClip,
}

/// Where the published weights of a model are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WeightsInfo {
    /// The official download URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Container format of that file (`pytorch` or `safetensors`).
    #[serde(default)]
    pub format: Option<String>,
    /// Other official files holding the same model.
    #[serde(default)]
    pub alternatives: Vec<String>,
    /// Free-form notes.
    #[serde(default)]
    pub notes: Option<String>,
}

/// A model config as stored in `configs/*.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Display name, e.g. `MobileCLIP-S0`.
    pub name: String,
    /// Checkpoint layout family.
    pub family: Family,
    /// Dimension of the joint embedding space.
    pub embed_dim: usize,
    /// v1 image config (Apple's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_cfg: Option<Value>,
    /// v2 image config (open_clip's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vision_cfg: Option<Value>,
    /// Text config, in the family's vocabulary.
    pub text_cfg: Value,
    /// Image preprocessing.
    pub preprocess: PreprocessConfig,
    /// Where to get the published weights.
    #[serde(default)]
    pub weights: WeightsInfo,
    /// Every other key of the file, kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

macro_rules! builtin_configs {
    ($($file:literal),* $(,)?) => {
        /// The configs shipped in `configs/`, as `(name, json)`.
        pub const BUILTIN_CONFIGS: &[(&str, &str)] = &[$(($file, include_str!(concat!("../configs/", $file, ".json")))),*];
    };
}
builtin_configs!(
    "MobileCLIP-S0",
    "MobileCLIP-S1",
    "MobileCLIP-S2",
    "MobileCLIP-B",
    "MobileCLIP2-S0",
    "MobileCLIP2-S2",
    "MobileCLIP2-B",
    "MobileCLIP2-S3",
    "MobileCLIP2-S4",
    "MobileCLIP2-L-14",
);

impl ModelConfig {
    /// Parses a config from JSON text.
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| Error::Config(e.to_string()))
    }

    /// A config given either as JSON text (starting with `{`) or as a shipped model's name.
    pub fn from_name_or_json(model: &str) -> Result<Self> {
        if model.trim_start().starts_with('{') { Self::from_json(model) } else { Self::builtin(model) }
    }

    /// One of the shipped configs by name (case-insensitive; `mobileclip_s0` style accepted).
    pub fn builtin(name: &str) -> Result<Self> {
        let norm = |s: &str| s.to_ascii_lowercase().replace('_', "-");
        let want = norm(name);
        BUILTIN_CONFIGS.iter().find(|(n, _)| norm(n) == want).map(|(_, json)| Self::from_json(json)).unwrap_or_else(
            || {
                let names: Vec<&str> = BUILTIN_CONFIGS.iter().map(|(n, _)| *n).collect();
                Err(Error::UnknownModel(format!("`{name}` is not a known model; known models: {}", names.join(", "))))
            },
        )
    }

    /// Names of the shipped configs.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN_CONFIGS.iter().map(|(n, _)| *n)
    }

    /// Resolves the encoders' hyper-parameters.
    pub fn resolve(&self) -> Result<Architecture> {
        let image = match self.family {
            Family::Mobileclip => {
                let cfg = self
                    .image_cfg
                    .as_ref()
                    .ok_or_else(|| Error::Config("a `mobileclip` config needs `image_cfg`".into()))?;
                ImageArch::from_v1(cfg)?
            }
            Family::OpenClip => {
                let cfg = self
                    .vision_cfg
                    .as_ref()
                    .ok_or_else(|| Error::Config("an `open_clip` config needs `vision_cfg`".into()))?;
                ImageArch::from_timm(cfg)?
            }
        };
        let text = match self.family {
            Family::Mobileclip => TextArch::from_v1(&self.text_cfg)?,
            Family::OpenClip => TextArch::from_open_clip(&self.text_cfg)?,
        };
        if self.preprocess.image_size == 0 {
            return Err(Error::Config("preprocess.image_size must be positive".into()));
        }
        Ok(Architecture { embed_dim: self.embed_dim, image, text })
    }
}

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
    /// Whether the stem's MobileOne blocks have a 1×1 scale branch.
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

    /// Applies an `arch` override object. `v1_semantics`: `downsamples` as Apple's v1 FastViT
    /// means it (a PatchEmbed *after* stage i), converted to timm's (*before* stage i + 1).
    fn apply_overrides(&mut self, arch: &Value, v1_semantics: bool) -> Result<()> {
        let Value::Object(map) = arch else {
            return Err(Error::Config("`arch` must be an object".into()));
        };
        let mut merged = serde_json::to_value(&*self).expect("FastVitArch serialises");
        for (k, v) in map {
            let slot =
                merged.get_mut(k.as_str()).ok_or_else(|| Error::Config(format!("unknown FastViT arch key `{k}`")))?;
            *slot = v.clone();
        }
        *self = serde_json::from_value(merged).map_err(|e| Error::Config(format!("FastViT arch: {e}")))?;
        if v1_semantics && map.contains_key("downsamples") {
            let after = self.downsamples.clone();
            self.downsamples = std::iter::once(false).chain(after.into_iter().take(self.layers.len() - 1)).collect();
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
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
        Ok(())
    }

    /// Width of the final conv (the head's input).
    pub fn final_features(&self) -> usize {
        (*self.embed_dims.last().expect("validated") as f64 * self.cls_ratio) as usize
    }
}

/// The patch stem of a ViT.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VitStem {
    /// Convolutions (BatchNorm + GELU after all but the last): MobileCLIP-B, MobileCLIP2-B.
    Conv {
        /// Output channels per conv.
        channels: Vec<usize>,
        /// Kernel sizes.
        kernels: Vec<usize>,
        /// Strides.
        strides: Vec<usize>,
        /// Paddings.
        paddings: Vec<usize>,
        /// Lower bound of the first two widths (`max(min_width, D / 4)`: Apple's 32; timm's 0).
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

/// ViT hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
        let conv_stem = |d: usize, paddings: Vec<usize>, min_width: usize| VitStem::Conv {
            channels: vec![(d / 4).max(min_width), (d / 4).max(min_width), d],
            min_width,
            kernels: vec![4, 2, 2],
            strides: vec![4, 2, 2],
            paddings,
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
                Self { pos_table_len: Some((224 / 16) * (224 / 16)), ..base(conv_stem(768, vec![1, 0, 0], 32), 1e-5) }
            }
            "vit_base_mci_224" => base(conv_stem(768, vec![0, 0, 0], 0), 1e-6),
            "vit_large_patch14_clip_224" => Self {
                embed_dim: 1024,
                depth: 24,
                num_heads: 16,
                stem: VitStem::Patch { patch_size: 14, bias: false },
                pos_includes_cls: true,
                pre_norm: true,
                ..base(VitStem::Patch { patch_size: 14, bias: false }, 1e-5)
            },
            _ => return None,
        })
    }

    /// Applies an `arch` override object (keys: `embed_dim`, `depth`, `num_heads`, `mlp_ratio`, `img_size`;
    /// a convolutional stem's widths follow `embed_dim` as in the reference).
    fn apply_overrides(&mut self, arch: &Value) -> Result<()> {
        let Value::Object(map) = arch else {
            return Err(Error::Config("`arch` must be an object".into()));
        };
        for (k, v) in map {
            let n = v.as_f64().ok_or_else(|| Error::Config(format!("ViT arch `{k}` must be a number")))?;
            match k.as_str() {
                "embed_dim" => {
                    self.embed_dim = n as usize;
                    if let VitStem::Conv { channels, min_width, .. } = &mut self.stem {
                        let (d, m) = (self.embed_dim, *min_width);
                        *channels = vec![(d / 4).max(m), (d / 4).max(m), d];
                    }
                }
                // Apple's v1 ViT config names them n_transformer_layers / n_attn_heads.
                "depth" | "n_transformer_layers" => self.depth = n as usize,
                "num_heads" | "n_attn_heads" => self.num_heads = n as usize,
                "mlp_ratio" => self.mlp_ratio = n,
                "img_size" => self.img_size = n as usize,
                _ => return Err(Error::Config(format!("unknown ViT arch key `{k}`"))),
            }
        }
        if self.num_heads == 0 || !self.embed_dim.is_multiple_of(self.num_heads) {
            return Err(Error::Config(format!(
                "ViT width {} is not divisible by {} heads",
                self.embed_dim, self.num_heads
            )));
        }
        Ok(())
    }
}

impl ImageArch {
    fn from_v1(cfg: &Value) -> Result<Self> {
        let name = cfg
            .get("model_name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Config("image_cfg.model_name missing".into()))?;
        if name == "vit_b16" {
            let mut vit = VitArch::named(name).expect("registered");
            if let Some(size) = cfg.get("image_size").and_then(Value::as_u64) {
                vit.img_size = size as usize;
            }
            if let Some(o) = cfg.get("arch") {
                vit.apply_overrides(o)?;
            }
            return Ok(ImageArch::Vit(vit));
        }
        let mut arch = FastVitArch::named(name)
            .ok_or_else(|| Error::UnknownModel(format!("image model `{name}` is not supported")))?;
        if let Some(o) = cfg.get("arch") {
            arch.apply_overrides(o, true)?;
        }
        arch.validate()?;
        Ok(ImageArch::FastVit(arch))
    }

    fn from_timm(cfg: &Value) -> Result<Self> {
        let name = cfg
            .get("timm_model_name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Config("vision_cfg.timm_model_name missing".into()))?;
        let pool = cfg.get("timm_pool").and_then(Value::as_str);
        if let Some(mut vit) = VitArch::named(name).filter(|_| name != "vit_b16") {
            if pool.is_some_and(|p| p != "token") {
                return Err(Error::Config(format!(
                    "vision_cfg.timm_pool {pool:?} is not supported for ViTs (only `token`)"
                )));
            }
            vit.img_size = cfg.get("image_size").and_then(Value::as_u64).map_or(vit.img_size, |v| v as usize);
            if let Some(o) = cfg.get("arch") {
                vit.apply_overrides(o)?;
            }
            return Ok(ImageArch::Vit(vit));
        }
        let mut arch = FastVitArch::named(name)
            .filter(|_| name.starts_with("fastvit_"))
            .ok_or_else(|| Error::UnknownModel(format!("timm image model `{name}` is not supported")))?;
        if let Some(pool) = cfg.get("timm_pool").and_then(Value::as_str)
            && pool != "avg"
        {
            return Err(Error::Config(format!("vision_cfg.timm_pool `{pool}` is not supported (only `avg`)")));
        }
        if let Some(o) = cfg.get("arch") {
            arch.apply_overrides(o, false)?;
        }
        arch.validate()?;
        Ok(ImageArch::FastVit(arch))
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
    /// RepMixer kernel length of the "mct" variant.
    pub repmixer_kernel: usize,
}

fn get_usize(cfg: &Value, key: &str) -> Result<usize> {
    cfg.get(key)
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .ok_or_else(|| Error::Config(format!("text_cfg.{key} missing or not a positive integer")))
}

impl TextArch {
    fn from_v1(cfg: &Value) -> Result<Self> {
        let dim = get_usize(cfg, "dim")?;
        let ffn = cfg.get("ffn_multiplier_per_layer").and_then(Value::as_f64).unwrap_or(4.0);
        let variant = match cfg.get("model_name").and_then(Value::as_str) {
            Some("base") => TextVariant::Base,
            Some("mct") => TextVariant::Mct,
            other => {
                return Err(Error::UnknownModel(format!("text model {other:?} is not supported (base, mct)")));
            }
        };
        let arch = Self {
            variant,
            dim,
            heads: get_usize(cfg, "n_heads_per_layer")?,
            layers: get_usize(cfg, "n_transformer_layers")?,
            // As Apple's TextTransformer: rounded up to a multiple of 16.
            ffn_dim: ((dim as f64 * ffn / 16.0).ceil() * 16.0) as usize,
            vocab_size: get_usize(cfg, "vocab_size")?,
            context_length: get_usize(cfg, "context_length")?,
            causal: cfg.get("causal_masking").and_then(Value::as_bool).unwrap_or(false),
            repmixer_kernel: 11,
        };
        arch.validate()
    }

    fn from_open_clip(cfg: &Value) -> Result<Self> {
        let dim = get_usize(cfg, "width")?;
        let mlp = cfg.get("mlp_ratio").and_then(Value::as_f64).unwrap_or(4.0);
        for unsupported in ["embed_cls", "use_pad_mask", "proj_bias", "qk_norm", "ls_init_value"] {
            if cfg.get(unsupported).is_some_and(|v| !v.is_null() && v != &Value::Bool(false)) {
                return Err(Error::Config(format!("text_cfg.{unsupported} is not supported")));
            }
        }
        if let Some(p) = cfg.get("pool_type").and_then(Value::as_str)
            && p != "argmax"
        {
            return Err(Error::Config(format!("text_cfg.pool_type `{p}` is not supported (argmax)")));
        }
        let arch = Self {
            variant: TextVariant::Base,
            dim,
            heads: get_usize(cfg, "heads")?,
            layers: get_usize(cfg, "layers")?,
            ffn_dim: (dim as f64 * mlp) as usize,
            vocab_size: get_usize(cfg, "vocab_size")?,
            context_length: get_usize(cfg, "context_length")?,
            causal: !cfg.get("no_causal_mask").and_then(Value::as_bool).unwrap_or(false),
            repmixer_kernel: 11,
        };
        arch.validate()
    }

    fn validate(self) -> Result<Self> {
        if self.heads == 0 || !self.dim.is_multiple_of(self.heads) {
            return Err(Error::Config(format!("text width {} is not divisible by {} heads", self.dim, self.heads)));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_config_parses() {
        for name in ModelConfig::builtin_names() {
            let cfg = ModelConfig::builtin(name).unwrap();
            assert_eq!(cfg.name, name);
            let arch = cfg.resolve().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(arch.text.context_length, 77);
        }
    }

    #[test]
    fn s0_has_mct_text_and_mci0() {
        let arch = ModelConfig::builtin("mobileclip_s0").unwrap().resolve().unwrap();
        assert_eq!(arch.text.variant, TextVariant::Mct);
        assert_eq!(arch.text.ffn_dim, 2048);
        let ImageArch::FastVit(f) = arch.image else { panic!() };
        assert_eq!(f.layers, vec![2, 6, 10, 2]);
        assert_eq!(f.final_features(), 1024);
    }

    #[test]
    fn config_by_name_or_json() {
        let by_name = ModelConfig::from_name_or_json("MobileCLIP2-S0").unwrap();
        let json = serde_json::to_string(&by_name).unwrap();
        assert_eq!(ModelConfig::from_name_or_json(&format!("  {json}")).unwrap(), by_name);
        assert_eq!(ModelConfig::from_name_or_json("{ not json").unwrap_err().code(), "INVALID_CONFIG");
    }

    #[test]
    fn unknown_model_is_named() {
        let err = ModelConfig::builtin("MobileCLIP-XXL").unwrap_err();
        assert_eq!(err.code(), "UNKNOWN_MODEL");
        assert!(err.to_string().contains("MobileCLIP-XXL"));
    }

    #[test]
    fn v1_downsamples_shift_to_timm_semantics() {
        let mut a = FastVitArch::named("mci0").unwrap();
        a.apply_overrides(&serde_json::json!({"downsamples": [true, false, true, true]}), true).unwrap();
        assert_eq!(a.downsamples, vec![false, true, false, true]);
    }
}
