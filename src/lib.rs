//! # mobileclip-wasm
//!
//! Apple's MobileCLIP and MobileCLIP2 image/text encoders on [burn], natively and in the
//! browser, loading the checkpoints Apple and open_clip publish.
//!
//! ```no_run
//! use mobileclip_wasm::{MobileClip, ModelConfig};
//! let config = ModelConfig::builtin("MobileCLIP-S0")?;
//! let model = MobileClip::from_file(config, "mobileclip_s0.pt".as_ref(), burn::tensor::Device::flex())?;
//! let text = model.encode_texts(&["a photo of a cat", "a photo of a dog"])?;
//! assert_eq!(text[0].len(), model.embed_dim());
//! # Ok::<(), mobileclip_wasm::Error>(())
//! ```
//!
//! Every `encode_*` method takes a batch of any length: it goes through the towers
//! [`BatchSize`] items at a time, so peak memory does not grow with the batch, and each item's
//! embedding does not depend on the batch it came in.

#![warn(missing_docs)]

pub mod config;
pub mod cpu;
pub mod error;
#[cfg(all(feature = "wgpu", not(target_arch = "wasm32")))]
pub mod gpu;
pub mod label_pack;
pub mod model;
pub mod precision;
pub mod preprocess;
pub mod tokenizer;
#[cfg(all(feature = "wasm-api", target_arch = "wasm32"))]
pub mod web;
pub mod weights;
pub mod zero_shot;

use burn::prelude::*;

pub use config::ModelConfig;
pub use error::{Error, Result};
pub use label_pack::LabelPack;
pub use precision::{ComputePrecision, Placement, Precisions, TowerPrecision};

use config::Architecture;
use model::clip::{Clip, ImageEncoder, l2_normalize};
use model::text::TextEncoder;
use preprocess::{ImageView, preprocess};
use tokenizer::ClipTokenizer;
use weights::{Checkpoint, FusedWeights, Towers, WeightsReader, compact};
use zero_shot::LabelScore;

/// The file at `path` read through a [`WeightsReader`] in 8 MiB chunks.
#[cfg(not(target_arch = "wasm32"))]
fn read_file(path: &std::path::Path) -> Result<WeightsReader> {
    use std::io::Read;
    let io = |source| Error::Io { path: path.display().to_string(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut reader = WeightsReader::with_size(Some(size));
    let mut chunk = vec![0; 8 << 20];
    loop {
        let n = file.read(&mut chunk).map_err(io)?;
        if n == 0 {
            break;
        }
        reader.push(&chunk[..n])?;
    }
    Ok(reader)
}

/// How many images and how many texts go through a tower at once.
///
/// Peak memory grows with these (activations of one batch), and speed per item levels off
/// beyond them: the defaults were measured on MobileCLIP-S0 in headless Chromium (the
/// "Batch sizes" section of BENCHMARKS.md). Results do not depend on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSize {
    /// Images per forward pass of the image tower.
    pub images: usize,
    /// Texts (prompts) per forward pass of the text tower.
    pub texts: usize,
}

impl Default for BatchSize {
    fn default() -> Self {
        Self { images: 2, texts: 8 }
    }
}

/// The longest text (in characters) the text tower takes. CLIP reads only a text's first 77
/// tokens (a few hundred characters), but the tokenizer cleans and splits all of it, in time and
/// memory proportional to its length (a 10 MB text: 10 s and 470 MB of wasm memory), so longer
/// texts are refused (`INVALID_TEXT`) rather than tokenized.
pub const MAX_TEXT_CHARS: usize = 100_000;

/// Checks a text's length against [`MAX_TEXT_CHARS`]; `what` names it in the error.
pub(crate) fn check_text_length(text: &str, what: impl FnOnce() -> String) -> Result<()> {
    if text.len() > MAX_TEXT_CHARS && text.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::Text(format!(
            "{} has {} characters; texts are limited to {MAX_TEXT_CHARS} (CLIP reads their first 77 tokens)",
            what(),
            text.chars().count()
        )));
    }
    Ok(())
}

/// A loaded MobileCLIP model: both encoders (or one, from a one-tower compact file), ready to
/// embed.
#[derive(Debug)]
pub struct MobileClip {
    config: ModelConfig,
    arch: Architecture,
    model: Clip,
    tokenizer: ClipTokenizer,
    device: Device,
    precision: Precisions,
    weights_id: String,
    source_weights_id: Option<String>,
    batch: BatchSize,
}

/// A model's weights ids: of the bytes it was loaded from, and, for a compact file, of the
/// published checkpoint that file was converted from.
struct WeightsIds {
    own: String,
    source: Option<String>,
}

/// The id of a weights file (a checkpoint or a compact file): `sha256-<base64>` of its bytes
/// (the form of a Subresource Integrity hash). Label packs carry it, so a pack is only used with
/// the weights that made it.
pub fn weights_id(bytes: &[u8]) -> String {
    sha256_id(&sha256(bytes))
}

/// The sha256 of `bytes`: the crate's one hash (weights ids, compact files' `source_sha256`,
/// `integrity` checks).
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// A sha256 digest written as a weights id: `sha256-<base64>`.
pub(crate) fn sha256_id(digest: &[u8; 32]) -> String {
    use base64::Engine;
    format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(digest))
}

impl MobileClip {
    /// Loads a model from checkpoint bytes (PyTorch zip or safetensors, train-time or
    /// re-parameterised, or a compact file of this model) onto `device`: a [`Device`]
    /// (precision [`ComputePrecision::Auto`]) or a [`Placement`] (`(device, precision)`), as for
    /// every loading function; [`MobileClip::precision`] says what each tower computes in.
    pub fn from_bytes(config: ModelConfig, weights: Vec<u8>, device: impl Into<Placement>) -> Result<Self> {
        Self::load(Some(config), weights, device)
    }

    /// Loads a model from weights bytes: a compact file (see [`weights::compact`]; the model's
    /// config is inside it, so `config` may be `None`, and when given must describe the same
    /// model) or a published checkpoint (which needs `config`). Its weights id is
    /// [`weights_id`] of these bytes.
    pub fn load(config: Option<ModelConfig>, weights: Vec<u8>, device: impl Into<Placement>) -> Result<Self> {
        let id = weights_id(&weights);
        Self::load_with_id(config, weights, id, device)
    }

    /// Loads a model from a checkpoint file.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_file(config: ModelConfig, path: &std::path::Path, device: impl Into<Placement>) -> Result<Self> {
        Self::load_file(Some(config), path, device)
    }

    /// Loads a model from a weights file: a compact file (`config` may be `None`) or a
    /// published checkpoint (`config` needed), as [`MobileClip::load`]. The file is streamed
    /// through a [`WeightsReader`] in 8 MiB chunks, never held whole.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_file(
        config: Option<ModelConfig>,
        path: &std::path::Path,
        device: impl Into<Placement>,
    ) -> Result<Self> {
        Self::load_stream(config, read_file(path)?, None, device)
    }

    /// Loads a model from a [`WeightsReader`] that was given the whole file: as
    /// [`MobileClip::load`], the weights id being the sha256 of the bytes it read; with
    /// `integrity` (`"sha256-<base64>"`), the bytes are checked against it before the model is
    /// built (`INTEGRITY_MISMATCH`).
    pub fn load_stream(
        config: Option<ModelConfig>,
        reader: WeightsReader,
        integrity: Option<&str>,
        device: impl Into<Placement>,
    ) -> Result<Self> {
        let (ckpt, digest) = reader.finish()?;
        let id = sha256_id(&digest);
        if let Some(integrity) = integrity {
            compact::check_integrity(&id, integrity)?;
        }
        Self::load_checkpoint(config, ckpt, id, device)
    }

    /// [`MobileClip::load`] with the weights id computed by the caller (the browser hashes the
    /// download with WebCrypto, off the wasm thread). A checkpoint is read in the layout its
    /// tensor names are in: a v1 model's file in open_clip's layout too
    /// ([`ModelConfig::in_layout`]; the loaded model's [`config`](Self::config) is then the
    /// open_clip one).
    pub(crate) fn load_with_id(
        config: Option<ModelConfig>,
        weights: Vec<u8>,
        weights_id: String,
        device: impl Into<Placement>,
    ) -> Result<Self> {
        Self::load_checkpoint(config, Checkpoint::from_bytes(weights)?, weights_id, device)
    }

    /// Loads a model from a parsed checkpoint or compact file, as [`MobileClip::load`];
    /// `weights_id` is [`weights_id`] of the bytes it was parsed from.
    pub fn load_checkpoint(
        config: Option<ModelConfig>,
        ckpt: Checkpoint,
        weights_id: String,
        device: impl Into<Placement>,
    ) -> Result<Self> {
        let device = device.into();
        if compact::is_compact(&ckpt) {
            let (info, fused) = compact::read(ckpt)?;
            let arch = info.config.resolve()?;
            // a v1 model named for a file converted from its open_clip-layout checkpoint
            let given = config.map(|c| c.in_layout(info.config.family).unwrap_or(c));
            if let Some(given) = given
                && (given.resolve()? != arch || given.preprocess != info.config.preprocess)
            {
                return Err(Error::WeightsMismatch(format!(
                    "this compact file holds {}, not {}: load it without a model name, or convert {}'s checkpoint",
                    info.config.name, given.name, given.name
                )));
            }
            let ids = WeightsIds { own: weights_id, source: Some(info.source_weights_id()?) };
            return Self::build(info.config, arch, fused, info.towers, ids, device);
        }
        let config = config.ok_or_else(|| {
            Error::InvalidArgument(
                "a published checkpoint does not say which model it holds: give the model's name \
                 (only compact files made by `mobileclip convert` carry their config)"
                    .into(),
            )
        })?;
        let (config, arch, fused) = weights::fuse_published(ckpt, &config)?;
        Self::build(config, arch, fused, Towers::Both, WeightsIds { own: weights_id, source: None }, device)
    }

    /// Builds a model from fused inference tensors (what [`weights::fuse_checkpoint`] makes of a
    /// checkpoint, or a file that holds them). `weights_id` names the weights for label packs:
    /// [`weights_id`] of the file the tensors came from.
    pub fn from_fused(
        config: ModelConfig,
        weights: FusedWeights,
        weights_id: String,
        device: impl Into<Placement>,
    ) -> Result<Self> {
        let arch = config.resolve()?;
        Self::build(config, arch, weights, Towers::Both, WeightsIds { own: weights_id, source: None }, device.into())
    }

    /// Converts a published checkpoint of `config`'s model into a compact model file's bytes:
    /// its fused inference tensors, stored as `options` say (`f32` gives bit-identical
    /// embeddings), with the config inside, so that [`MobileClip::load`] needs no model name.
    /// See [`weights::compact`] for the format. Needs the flex CPU backend (cargo feature
    /// `flex`), on which each tower is built to check it.
    #[cfg(feature = "flex")]
    pub fn convert(config: &ModelConfig, checkpoint: Vec<u8>, options: &weights::ConvertOptions) -> Result<Vec<u8>> {
        compact::convert(config, checkpoint, options)
    }

    /// [`MobileClip::convert`] of the checkpoint file at `path`, streamed from the file as
    /// [`MobileClip::load_file`] does (never held whole).
    #[cfg(all(feature = "flex", not(target_arch = "wasm32")))]
    pub fn convert_file(
        config: &ModelConfig,
        path: &std::path::Path,
        options: &weights::ConvertOptions,
    ) -> Result<Vec<u8>> {
        compact::convert_stream(config, read_file(path)?, options)
    }

    fn build(
        config: ModelConfig,
        arch: Architecture,
        weights: FusedWeights,
        towers: Towers,
        ids: WeightsIds,
        Placement { device, precision }: Placement,
    ) -> Result<Self> {
        let f16 = precision::offers_f16(&device);
        let precision = Precisions {
            image: towers.has_image().then(|| precision.resolve(precision::TowerKind::image(&arch.image), f16)),
            text: towers.has_text().then(|| precision.resolve(precision::TowerKind::Text, f16)),
        };
        let model = Clip::load(&arch, weights, towers, &device, precision)?;
        Ok(Self {
            config,
            arch,
            model,
            tokenizer: ClipTokenizer::new()?,
            device,
            precision,
            weights_id: ids.own,
            source_weights_id: ids.source,
            batch: BatchSize::default(),
        })
    }

    /// Bytes the model's parameters hold (4 per value in `f32`, 2 in `f16`, as each is stored:
    /// see [`TowerPrecision`]; both towers or the one loaded): what a load needs at least, the
    /// measure of its peak memory.
    pub fn parameter_bytes(&self) -> usize {
        self.tower_parameter_bytes(Towers::Both)
    }

    /// [`Self::parameter_bytes`] of `towers` only (0 for a tower the model does not have).
    pub fn tower_parameter_bytes(&self, towers: Towers) -> usize {
        /// Sums the bytes of the parameters it visits, each in its element type.
        struct Bytes(usize);
        impl burn::module::ModuleVisitor for Bytes {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                let t = param.val();
                self.0 += t.shape().num_elements() * t.dtype().size();
            }
        }
        let mut bytes = Bytes(0);
        if towers.has_image()
            && let Some(image) = &self.model.image
        {
            image.visit(&mut bytes);
        }
        if towers.has_text()
            && let Some(text) = &self.model.text
        {
            text.visit(&mut bytes);
        }
        bytes.0
    }

    /// What each tower computes in (see [`ComputePrecision`]): `f16` (or `f16-weights`) only on
    /// a GPU that offers it, where it was asked for (explicitly, or by `auto`: `f16` for text and
    /// ViT towers, `f16-weights` for convolutional image towers).
    pub fn precision(&self) -> Precisions {
        self.precision
    }

    /// Which towers the model has (one only when loaded from a one-tower compact file).
    pub fn towers(&self) -> Towers {
        match (&self.model.image, &self.model.text) {
            (Some(_), None) => Towers::Image,
            (None, Some(_)) => Towers::Text,
            _ => Towers::Both,
        }
    }

    fn image_tower(&self) -> Result<&ImageEncoder> {
        self.model.image.as_ref().ok_or_else(|| {
            Error::NoImageTower(format!(
                "{} was loaded from a compact file holding its text tower only",
                self.config.name
            ))
        })
    }

    fn text_tower(&self) -> Result<&TextEncoder> {
        self.model.text.as_ref().ok_or_else(|| {
            Error::NoTextTower(format!(
                "{} was loaded from a compact file holding its image tower only: load a file with the text tower to encode texts",
                self.config.name
            ))
        })
    }

    /// The model's config.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Dimension of the embeddings.
    pub fn embed_dim(&self) -> usize {
        self.arch.embed_dim
    }

    /// `exp(logit_scale)`, clamped to 100: the temperature of zero-shot logits.
    pub fn logit_scale(&self) -> f32 {
        self.model.logit_scale
    }

    /// The id of the weights the model was loaded from (see [`weights_id`]): for a compact file,
    /// the id of the compact file's bytes.
    pub fn weights_id(&self) -> &str {
        &self.weights_id
    }

    /// For a model loaded from a compact file, the id of the published checkpoint it was
    /// converted from (its `source_sha256`); `None` for a checkpoint.
    pub fn source_weights_id(&self) -> Option<&str> {
        self.source_weights_id.as_deref()
    }

    /// The weights id the model's label packs carry: that of the published checkpoint (its
    /// [`MobileClip::source_weights_id`] for a compact file), so that the checkpoint and every
    /// compact file converted from it (any storage, any towers) share their packs.
    pub fn label_pack_id(&self) -> &str {
        self.source_weights_id().unwrap_or(&self.weights_id)
    }

    /// How many images and texts go through a tower at once.
    pub fn batch_size(&self) -> BatchSize {
        self.batch
    }

    /// Sets how many images and texts go through a tower at once (at least 1 each).
    pub fn set_batch_size(&mut self, batch: BatchSize) -> Result<()> {
        if batch.images == 0 || batch.texts == 0 {
            return Err(Error::InvalidArgument(format!("batch sizes must be at least 1, got {batch:?}")));
        }
        self.batch = batch;
        Ok(())
    }

    /// L2-normalised embeddings of images, one vector per image.
    pub fn encode_images(&self, images: &[ImageView]) -> Result<Vec<Vec<f32>>> {
        now(self.encode_images_async(images))
    }

    /// L2-normalised embeddings of preprocessed pixels (`count` images of 3 × size × size
    /// `f32`, CHW, as the reference's transforms make them), one vector per image.
    pub fn encode_pixels(&self, pixels: &[f32], count: usize) -> Result<Vec<Vec<f32>>> {
        now(self.encode_pixels_async(pixels, count))
    }

    /// L2-normalised embeddings of texts, one vector per text.
    pub fn encode_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        now(self.encode_texts_async(texts))
    }

    /// L2-normalised embeddings of token-id sequences (each `context_length` long, as the
    /// tokenizer makes them), one vector per sequence.
    pub fn encode_tokens(&self, tokens: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        now(self.encode_tokens_async(tokens))
    }

    /// The label pack of `labels`: each label's prompts (`templates` with `{}` replaced by the
    /// label) embedded, averaged and re-normalised, as CLIP's prompt ensembling does.
    pub fn label_pack(&self, labels: &[&str], templates: &[&str]) -> Result<LabelPack> {
        self.label_pack_with_progress(labels, templates, |_, _| {})
    }

    /// [`MobileClip::label_pack`], calling `on_progress(labels done, labels)` as it goes.
    pub fn label_pack_with_progress(
        &self,
        labels: &[&str],
        templates: &[&str],
        mut on_progress: impl FnMut(usize, usize),
    ) -> Result<LabelPack> {
        self.text_tower()?;
        zero_shot::check_labels(labels, templates)?;
        let mut embeddings = Vec::with_capacity(labels.len() * self.embed_dim());
        let mut done = 0;
        for group in labels.chunks(self.labels_per_batch(templates.len())) {
            embeddings.extend(now(self.label_embeddings_async(group, templates))?.into_iter().flatten());
            done += group.len();
            on_progress(done, labels.len());
        }
        LabelPack::new(
            self.config.name.clone(),
            self.label_pack_id().to_string(),
            labels.iter().map(|l| l.trim().to_string()).collect(),
            templates.iter().map(|t| t.to_string()).collect(),
            self.embed_dim(),
            embeddings,
        )
    }

    /// Checks that a label pack was made by this model and these weights
    /// (`LABEL_PACK_MISMATCH` otherwise): its weights id is the model's
    /// [`MobileClip::label_pack_id`] (or [`MobileClip::weights_id`]), so an image-only compact
    /// file ranks with the packs of the checkpoint it came from.
    pub fn check_label_pack(&self, pack: &LabelPack) -> Result<()> {
        let mismatch = |m: String| Err(Error::LabelPackMismatch(m));
        if pack.model() != self.config.name {
            return mismatch(format!("the pack was made by {}, this model is {}", pack.model(), self.config.name));
        }
        if pack.weights_id() != self.label_pack_id() && pack.weights_id() != self.weights_id {
            return mismatch(format!(
                "the pack was made with other weights of {} ({}; these are {})",
                pack.model(),
                pack.weights_id(),
                self.label_pack_id()
            ));
        }
        if pack.dim() != self.embed_dim() {
            return mismatch(format!(
                "the pack's embeddings have {} values, the model's {}",
                pack.dim(),
                self.embed_dim()
            ));
        }
        Ok(())
    }

    /// Ranks a label pack's labels for an image embedding: softmax of cosine similarity ×
    /// logit scale, best first, cut to `top_k`.
    pub fn zero_shot(
        &self,
        image_embedding: &[f32],
        pack: &LabelPack,
        top_k: Option<usize>,
    ) -> Result<Vec<LabelScore>> {
        self.check_label_pack(pack)?;
        self.check_image_embedding(image_embedding)?;
        zero_shot::rank(image_embedding, pack.labels(), pack.embeddings(), self.logit_scale(), top_k)
    }

    // ---- the implementation: async, so that the browser adapter can read WebGPU results; the
    // synchronous methods above run it with `now`.

    /// How many labels' prompts fit one text batch (at least one label).
    pub(crate) fn labels_per_batch(&self, templates: usize) -> usize {
        (self.batch.texts / templates.max(1)).max(1)
    }

    pub(crate) async fn encode_images_async(&self, images: &[ImageView<'_>]) -> Result<Vec<Vec<f32>>> {
        self.image_tower()?;
        if images.is_empty() {
            return Err(Error::Image("no images to encode".into()));
        }
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.batch.images) {
            let mut pixels = Vec::new();
            for img in chunk {
                pixels.extend(preprocess(img, &self.config.preprocess)?);
            }
            out.extend(read_rows(self.image_forward(&pixels, chunk.len())?).await?);
        }
        Ok(out)
    }

    pub(crate) async fn encode_pixels_async(&self, pixels: &[f32], count: usize) -> Result<Vec<Vec<f32>>> {
        self.image_tower()?;
        let s = self.config.preprocess.image_size;
        let per_image = 3 * s * s;
        if count == 0 || count.checked_mul(per_image) != Some(pixels.len()) {
            return Err(Error::Image(format!(
                "expected {count} preprocessed image(s) of 3x{s}x{s} ({} values), got {} values",
                count.saturating_mul(per_image),
                pixels.len()
            )));
        }
        let mut out = Vec::with_capacity(count);
        for chunk in pixels.chunks(per_image * self.batch.images) {
            out.extend(read_rows(self.image_forward(chunk, chunk.len() / per_image)?).await?);
        }
        Ok(out)
    }

    pub(crate) async fn encode_texts_async<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        self.text_tower()?;
        if texts.is_empty() {
            return Err(Error::Text("no texts to encode".into()));
        }
        for (i, t) in texts.iter().enumerate() {
            check_text_length(t.as_ref(), || format!("text {i}"))?;
        }
        let l = self.arch.text.context_length;
        let tokens =
            texts.iter().map(|t| self.tokenizer.encode_with_length(t.as_ref(), l)).collect::<Result<Vec<_>>>()?;
        self.encode_tokens_async(&tokens).await
    }

    pub(crate) async fn encode_tokens_async(&self, tokens: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        self.text_tower()?;
        let eot = self.check_tokens(tokens)?;
        let mut out = Vec::with_capacity(tokens.len());
        for (chunk, eot) in tokens.chunks(self.batch.texts).zip(eot.chunks(self.batch.texts)) {
            out.extend(read_rows(self.text_forward(chunk, eot)?).await?);
        }
        Ok(out)
    }

    /// Per-label embeddings (template embeddings averaged, re-normalised) of `labels`, their
    /// prompts going through the text tower a batch at a time.
    pub(crate) async fn label_embeddings_async<S: AsRef<str>, T: AsRef<str>>(
        &self,
        labels: &[S],
        templates: &[T],
    ) -> Result<Vec<Vec<f32>>> {
        let rows = self.encode_texts_async(&zero_shot::prompts(labels, templates)?).await?;
        Ok(zero_shot::ensemble(&rows, templates.len()))
    }

    /// Checks that an image embedding has this model's dimension and finite values.
    pub(crate) fn check_image_embedding(&self, image_embedding: &[f32]) -> Result<()> {
        if image_embedding.len() != self.embed_dim() {
            return Err(Error::InvalidArgument(format!(
                "the image embedding has {} values, the model's have {}",
                image_embedding.len(),
                self.embed_dim()
            )));
        }
        zero_shot::check_finite(image_embedding, "the image embedding")
    }

    /// Checks token sequences (length, vocabulary) and finds each one's end-of-text position.
    pub(crate) fn check_tokens(&self, tokens: &[Vec<u32>]) -> Result<Vec<usize>> {
        let (l, vocab) = (self.arch.text.context_length, self.arch.text.vocab_size);
        if tokens.is_empty() {
            return Err(Error::Text("no texts to encode".into()));
        }
        let mut eot = Vec::with_capacity(tokens.len());
        for (i, seq) in tokens.iter().enumerate() {
            if seq.len() != l {
                return Err(Error::Text(format!("token sequence {i} has {} ids, expected {l}", seq.len())));
            }
            if let Some(bad) = seq.iter().find(|&&t| t as usize >= vocab) {
                return Err(Error::Text(format!("token id {bad} in sequence {i} is outside the vocabulary ({vocab})")));
            }
            // The reference pools at `argmax` of the ids: the first maximal one.
            let max = *seq.iter().max().expect("non-empty");
            eot.push(seq.iter().position(|&t| t == max).expect("max exists"));
        }
        Ok(eot)
    }

    /// L2-normalised image embeddings `[B, E]` of `batch` preprocessed images, on the device
    /// (`NO_IMAGE_TOWER` for a text-only model).
    fn image_forward(&self, pixels: &[f32], batch: usize) -> Result<Tensor<2>> {
        let tower = self.image_tower()?;
        let s = self.config.preprocess.image_size;
        let dtype = self.precision.image.map_or(burn::tensor::DType::F32, TowerPrecision::dtype);
        let x = model::gpu::pixels(pixels, batch, s, (&self.device, dtype));
        Ok(l2_normalize(tower.forward(x)))
    }

    /// L2-normalised text embeddings `[B, E]` of checked token sequences, on the device
    /// (`NO_TEXT_TOWER` for an image-only model).
    fn text_forward(&self, tokens: &[Vec<u32>], eot: &[usize]) -> Result<Tensor<2>> {
        let tower = self.text_tower()?;
        let flat: Vec<i64> = tokens.iter().flatten().map(|&t| t as i64).collect();
        let t = Tensor::from_data(TensorData::new(flat, [tokens.len(), self.arch.text.context_length]), &self.device);
        Ok(l2_normalize(tower.forward(t, eot)))
    }
}

/// Runs one of the async methods to completion on the calling thread: natively by blocking,
/// on wasm only where the device answers at once (the CPU backend; WebGPU needs the async path).
pub(crate) fn now<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    burn::tensor::try_read_sync(f).unwrap_or_else(|| {
        Err(Error::Device("this device can only be read asynchronously (WebGPU in a browser)".into()))
    })
}

/// Reads a `[B, E]` tensor back as rows.
async fn read_rows(t: Tensor<2>) -> Result<Vec<Vec<f32>>> {
    let [_, e] = t.dims();
    let data = t
        .into_data_async()
        .await
        .map_err(|err| Error::Device(format!("reading the results from the device failed: {err}")))?
        .try_into_vec::<f32>()
        .map_err(|err| Error::Device(format!("reading the results: {err:?}")))?;
    Ok(data.chunks(e).map(<[f32]>::to_vec).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TEXT_REPMIXER_KERNEL;

    /// A causal text tower drops the positions after the last end-of-text token (and the
    /// RepMixer blocks' reach): its features equal those of the full context, for a short and a
    /// longer prompt in one batch. "v1-mci-mct" is made causal here (no published model
    /// is) to cover the RepMixer blocks' reach.
    #[test]
    fn causal_text_towers_drop_only_positions_that_cannot_matter() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models");
        for name in ["v1-vit-base-causal", "v2-vit-b", "v1-mci-mct"] {
            let dir = root.join(name);
            let json = std::fs::read_to_string(dir.join("config.json")).unwrap();
            let json = json.replace("\"causal_masking\": false", "\"causal_masking\": true");
            let config = ModelConfig::from_json(&json).unwrap();
            let weights = ["model_reparam.pt", "model.safetensors", "model.pt"]
                .iter()
                .map(|f| dir.join(f))
                .find(|p| p.exists())
                .unwrap();
            let model = MobileClip::from_file(config, &weights, Device::flex()).unwrap();
            let tower = model.text_tower().unwrap();
            let (l, vocab) = (model.arch.text.context_length, model.arch.text.vocab_size as u32);
            // End-of-text (the highest id) at positions 3 and 9, ids 1.. before it, padding after.
            let seq = |eot: usize| -> Vec<u32> {
                (0..l)
                    .map(|i| {
                        if i < eot {
                            1 + (i as u32 * 7) % (vocab - 2)
                        } else if i == eot {
                            vocab - 1
                        } else {
                            0
                        }
                    })
                    .collect()
            };
            let tokens = [seq(3), seq(9)];
            let eot = model.check_tokens(&tokens).unwrap();
            assert_eq!(eot, [3, 9]);
            let keep = tower.positions_needed(l, &eot);
            let reach = if name == "v1-mci-mct" { 2 * 2 * (TEXT_REPMIXER_KERNEL / 2) } else { 0 };
            assert_eq!(keep, (10 + reach).min(l), "{name}");
            let flat: Vec<i64> = tokens.iter().flatten().map(|&t| t as i64).collect();
            let t = Tensor::<2, Int>::from_data(TensorData::new(flat, [2, l]), &model.device);
            let read = |x: Tensor<2>| l2_normalize(x).into_data().try_into_vec::<f32>().unwrap();
            let cut = read(tower.forward(t.clone(), &eot));
            let full = read(tower.forward_prefix(t, &eot));
            let worst = cut.iter().zip(&full).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            // Natively the `gemm` crate's summation order depends on the row count, so the cut
            // rounds differently (measured ≤ 1e-7 on normalised features); bit for bit on wasm.
            assert!(worst <= 1e-6, "{name}: truncated context differs from the full one by {worst:e}");
            eprintln!("{name}: {keep} of {l} positions, max |Δ| {worst:e}");
        }
    }
}
