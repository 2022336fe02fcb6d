//! Model configs: the file schema of `configs/*.json` (one per model, in the reference's own
//! vocabulary) and its reading into an [`Architecture`] from the registry in [`arch`].
//!
//! MobileCLIP (v1) configs carry Apple's `image_cfg` / `text_cfg` verbatim (`family:
//! "mobileclip"`); MobileCLIP2 configs carry open_clip's `vision_cfg` / `text_cfg` verbatim
//! (`family: "open_clip"`). Both add `name`, `preprocess` and `weights`. [`ModelConfig::resolve`]
//! turns either into an [`Architecture`]: the named encoders' registry entries, with an
//! optional `arch` object in the image config overriding constructor arguments (used by the
//! reduced test fixtures; see [`arch::apply_overrides`]).

pub mod arch;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use arch::*;

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

/// A v1 model as open_clip describes it (its `MobileCLIP-S1`, `-S2`, `-B` configs): open_clip's
/// `vision_cfg` / `text_cfg` (a timm trunk and open_clip's text tower) and where the weights in
/// that layout are. The preprocessing is the model's own (open_clip's `datacompdr` one equals
/// Apple's v1 one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenClipLayout {
    /// open_clip's image config.
    pub vision_cfg: Value,
    /// open_clip's text config.
    pub text_cfg: Value,
    /// Where to get the weights in this layout.
    #[serde(default)]
    pub weights: WeightsInfo,
    /// Every other key (`custom_text`), kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
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
    /// The same model as open_clip describes it, for a v1 model also published in open_clip's
    /// layout (`apple/MobileCLIP-S1-OpenCLIP`, ...): see [`ModelConfig::in_layout`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_clip: Option<OpenClipLayout>,
    /// Every other key of the file, kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// Writes every number of `v` that has an integral value (within the exactly representable
/// range) as an integer; object keys are sorted already (serde_json's maps are).
fn integral_numbers_as_integers(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64())
                && f.fract() == 0.0
                && f.abs() < 2f64.powi(53)
            {
                *n = serde_json::Number::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
}

macro_rules! builtin_configs {
    ($($file:literal),* $(,)?) => {
        /// The configs shipped in `configs/`, as `(name, json)`.
        pub const BUILTIN_CONFIGS: &[(&str, &str)] = &[$(($file, include_str!(concat!("../../configs/", $file, ".json")))),*];
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
    ///
    /// The reference's own vocabulary is kept verbatim, except that a number with an integral
    /// value is read as an integer (`4.0` as `4`), as JavaScript gives it: one config is one
    /// value however it was written.
    pub fn from_json(json: &str) -> Result<Self> {
        let mut v: Value = serde_json::from_str(json).map_err(|e| Error::Config(e.to_string()))?;
        integral_numbers_as_integers(&mut v);
        serde_json::from_value(v).map_err(|e| Error::Config(e.to_string()))
    }

    /// The config as canonical JSON text: object keys sorted, numbers with an integral value
    /// written as integers (`4.0` as `4`), no whitespace. The same config gives the same bytes
    /// however it was given (a shipped name, a file, an object from JavaScript, where `4.0` and
    /// `4` are one number), so that a compact file does not depend on it.
    pub fn canonical_json(&self) -> String {
        let mut v = serde_json::to_value(self).expect("a config serialises");
        integral_numbers_as_integers(&mut v);
        v.to_string()
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

    /// This model's config for a checkpoint in `family`'s layout: itself in its own family's
    /// layout; a v1 model's open_clip description ([`Self::open_clip`], family `open_clip`) in
    /// open_clip's; `None` where the model is not published in that layout.
    pub fn in_layout(&self, family: Family) -> Option<ModelConfig> {
        if family == self.family {
            return Some(self.clone());
        }
        let oc = self.open_clip.as_ref().filter(|_| family == Family::OpenClip)?;
        let mut extra = self.extra.clone();
        extra.extend(oc.extra.clone());
        Some(ModelConfig {
            name: self.name.clone(),
            family,
            embed_dim: self.embed_dim,
            image_cfg: None,
            vision_cfg: Some(oc.vision_cfg.clone()),
            text_cfg: oc.text_cfg.clone(),
            preprocess: self.preprocess.clone(),
            weights: oc.weights.clone(),
            open_clip: None,
            extra,
        })
    }

    /// The official download URLs of this model's weights: its default file, then the file in
    /// open_clip's layout where the model is also published so.
    pub fn weights_urls(&self) -> impl Iterator<Item = &str> {
        let open_clip = self.open_clip.as_ref().and_then(|oc| oc.weights.url.as_deref());
        self.weights.url.as_deref().into_iter().chain(open_clip)
    }

    /// Resolves the encoders' hyper-parameters, and checks that the image tower is built for
    /// the images the preprocessing makes.
    pub fn resolve(&self) -> Result<Architecture> {
        let (family, key, image_cfg) = match self.family {
            Family::Mobileclip => ("a `mobileclip`", "image_cfg", self.image_cfg.as_ref()),
            Family::OpenClip => ("an `open_clip`", "vision_cfg", self.vision_cfg.as_ref()),
        };
        let image_cfg = image_cfg.ok_or_else(|| Error::Config(format!("{family} config needs `{key}`")))?;
        let (image, text) = match self.family {
            Family::Mobileclip => (image_from_apple(image_cfg)?, text_from_apple(&self.text_cfg)?),
            Family::OpenClip => (image_from_timm(image_cfg)?, text_from_open_clip(&self.text_cfg)?),
        };
        let size = self.preprocess.image_size;
        if size == 0 {
            return Err(Error::Config("preprocess.image_size must be positive".into()));
        }
        // The reference preprocesses to its image tower's size; a config states it twice.
        let tower_size = match &image {
            ImageArch::Vit(v) => Some(v.img_size),
            ImageArch::FastVit(_) => image_cfg.get("image_size").and_then(Value::as_u64).map(|s| s as usize),
        };
        if let Some(s) = tower_size.filter(|&s| s != size) {
            return Err(Error::Config(format!(
                "the image tower ({key}) is built for {s}×{s} images but preprocess.image_size is {size}"
            )));
        }
        Ok(Architecture { embed_dim: self.embed_dim, image, text })
    }
}

/// `image_cfg.arch` keys of Apple's v1 FastViT that mean something else in the registry.
const APPLE_FASTVIT: &[Spelling] = &[Spelling {
    key: "downsamples",
    field: "downsamples",
    // Apple's `downsamples[i]`: a PatchEmbed *after* stage i; the registry's (timm's): *before*
    // stage i (the last entry of Apple's list has no stage after it).
    convert: |v| {
        let after: Vec<bool> =
            serde_json::from_value(v.clone()).map_err(|e| Error::Config(format!("FastViT arch `downsamples`: {e}")))?;
        let before: Vec<bool> = (0..after.len()).map(|i| i > 0 && after[i - 1]).collect();
        Ok(serde_json::to_value(before).expect("a list of booleans"))
    },
}];

/// `image_cfg.arch` keys of Apple's v1 ViT (`vit.py`'s config names).
const APPLE_VIT: &[Spelling] = &[
    Spelling { key: "n_transformer_layers", field: "depth", convert: |v| Ok(v.clone()) },
    Spelling { key: "n_attn_heads", field: "num_heads", convert: |v| Ok(v.clone()) },
];

/// A ViT registry entry with the image config's `image_size` and `arch` applied.
fn vit_from(mut vit: VitArch, cfg: &Value, spellings: &[Spelling]) -> Result<ImageArch> {
    if let Some(size) = cfg.get("image_size").and_then(Value::as_u64) {
        vit.img_size = size as usize;
    }
    if let Some(o) = cfg.get("arch") {
        vit = apply_overrides(&vit, "ViT", o, spellings)?;
    }
    Ok(ImageArch::Vit(vit.validate()?))
}

/// A FastViT registry entry with the image config's `arch` applied.
fn fastvit_from(mut arch: FastVitArch, cfg: &Value, spellings: &[Spelling]) -> Result<ImageArch> {
    if let Some(o) = cfg.get("arch") {
        arch = apply_overrides(&arch, "FastViT", o, spellings)?;
    }
    Ok(ImageArch::FastVit(arch.validate()?))
}

/// Apple's `image_cfg` (`model_name`: `mci0`..`mci2`, `vit_b16`).
fn image_from_apple(cfg: &Value) -> Result<ImageArch> {
    let name = cfg
        .get("model_name")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Config("image_cfg.model_name missing".into()))?;
    if name == "vit_b16" {
        return vit_from(VitArch::named(name).expect("registered"), cfg, APPLE_VIT);
    }
    let arch = FastVitArch::named(name)
        .ok_or_else(|| Error::UnknownModel(format!("image model `{name}` is not supported")))?;
    fastvit_from(arch, cfg, APPLE_FASTVIT)
}

/// open_clip's `vision_cfg` naming a timm model (`fastvit_mci*`, `vit_base_mci_224`, `vit_large_patch14_clip_224`).
fn image_from_timm(cfg: &Value) -> Result<ImageArch> {
    let name = cfg
        .get("timm_model_name")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Config("vision_cfg.timm_model_name missing".into()))?;
    let pool = cfg.get("timm_pool").and_then(Value::as_str);
    if let Some(vit) = VitArch::named(name).filter(|_| name != "vit_b16") {
        if pool.is_some_and(|p| p != "token") {
            return Err(Error::Config(format!(
                "vision_cfg.timm_pool {pool:?} is not supported for ViTs (only `token`)"
            )));
        }
        return vit_from(vit, cfg, &[]);
    }
    let arch = FastVitArch::named(name)
        .filter(|_| name.starts_with("fastvit_"))
        .ok_or_else(|| Error::UnknownModel(format!("timm image model `{name}` is not supported")))?;
    if let Some(pool) = pool
        && pool != "avg"
    {
        return Err(Error::Config(format!("vision_cfg.timm_pool `{pool}` is not supported (only `avg`)")));
    }
    fastvit_from(arch, cfg, &[])
}

fn get_usize(cfg: &Value, key: &str) -> Result<usize> {
    cfg.get(key)
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .ok_or_else(|| Error::Config(format!("text_cfg.{key} missing or not a positive integer")))
}

/// Apple's `text_cfg` (`model_name`: `base` or `mct`).
fn text_from_apple(cfg: &Value) -> Result<TextArch> {
    let dim = get_usize(cfg, "dim")?;
    let ffn = cfg.get("ffn_multiplier_per_layer").and_then(Value::as_f64).unwrap_or(4.0);
    let variant = match cfg.get("model_name").and_then(Value::as_str) {
        Some("base") => TextVariant::Base,
        Some("mct") => TextVariant::Mct,
        other => {
            return Err(Error::UnknownModel(format!("text model {other:?} is not supported (base, mct)")));
        }
    };
    TextArch {
        variant,
        dim,
        heads: get_usize(cfg, "n_heads_per_layer")?,
        layers: get_usize(cfg, "n_transformer_layers")?,
        // As Apple's TextTransformer: rounded up to a multiple of 16.
        ffn_dim: ((dim as f64 * ffn / 16.0).ceil() * 16.0) as usize,
        vocab_size: get_usize(cfg, "vocab_size")?,
        context_length: get_usize(cfg, "context_length")?,
        causal: cfg.get("causal_masking").and_then(Value::as_bool).unwrap_or(false),
    }
    .validate()
}

/// open_clip's `text_cfg`.
fn text_from_open_clip(cfg: &Value) -> Result<TextArch> {
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
    TextArch {
        variant: TextVariant::Base,
        dim,
        heads: get_usize(cfg, "heads")?,
        layers: get_usize(cfg, "layers")?,
        ffn_dim: (dim as f64 * mlp) as usize,
        vocab_size: get_usize(cfg, "vocab_size")?,
        context_length: get_usize(cfg, "context_length")?,
        causal: !cfg.get("no_causal_mask").and_then(Value::as_bool).unwrap_or(false),
    }
    .validate()
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
            if let Some(oc) = cfg.in_layout(Family::OpenClip).filter(|_| cfg.family == Family::Mobileclip) {
                let oc_arch = oc.resolve().unwrap_or_else(|e| panic!("{name} (open_clip): {e}"));
                assert_eq!((oc_arch.embed_dim, &oc_arch.text), (arch.embed_dim, &arch.text), "{name}");
            }
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
        let cfg = serde_json::json!({"model_name": "mci0", "arch": {"downsamples": [true, false, true, true]}});
        let ImageArch::FastVit(a) = image_from_apple(&cfg).unwrap() else { panic!() };
        assert_eq!(a.downsamples, vec![false, true, false, true]);
        // timm's vocabulary means it as written
        let cfg =
            serde_json::json!({"timm_model_name": "fastvit_mci0", "arch": {"downsamples": [true, false, true, true]}});
        let ImageArch::FastVit(a) = image_from_timm(&cfg).unwrap() else { panic!() };
        assert_eq!(a.downsamples, vec![true, false, true, true]);
    }

    #[test]
    fn v1_vit_names_and_stem_widths() {
        let cfg = serde_json::json!({"model_name": "vit_b16", "image_size": 64,
                                     "arch": {"embed_dim": 32, "n_transformer_layers": 2, "n_attn_heads": 2}});
        let ImageArch::Vit(v) = image_from_apple(&cfg).unwrap() else { panic!() };
        assert_eq!((v.embed_dim, v.depth, v.num_heads, v.img_size), (32, 2, 2, 64));
        let cfg = serde_json::json!({"model_name": "vit_b16", "arch": {"n_attn_heads": 5}});
        assert_eq!(image_from_apple(&cfg).unwrap_err().code(), "INVALID_CONFIG");
    }

    #[test]
    fn image_size_must_match_the_preprocessing() {
        for name in ["MobileCLIP-S0", "MobileCLIP2-B", "MobileCLIP-B"] {
            let mut cfg = ModelConfig::builtin(name).unwrap();
            cfg.preprocess.image_size += 32;
            let e = cfg.resolve().unwrap_err();
            assert_eq!(e.code(), "INVALID_CONFIG", "{name}");
            assert!(e.to_string().contains("preprocess.image_size"), "{name}: {e}");
        }
        // A ViT's own img_size override counts too.
        let mut cfg = ModelConfig::builtin("MobileCLIP2-B").unwrap();
        cfg.vision_cfg.as_mut().unwrap()["arch"] = serde_json::json!({"img_size": 256});
        assert!(cfg.resolve().unwrap_err().to_string().contains("built for 256×256 images"));
    }
}
