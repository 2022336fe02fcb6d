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

#![warn(missing_docs)]

pub mod config;
pub mod error;
#[cfg(all(feature = "wgpu", not(target_arch = "wasm32")))]
pub mod gpu;
pub mod model;
pub mod preprocess;
pub mod tokenizer;
#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod web;
pub mod weights;
pub mod zero_shot;

use burn::prelude::*;

pub use config::ModelConfig;
pub use error::{Error, Result};

use config::Architecture;
use model::clip::{Clip, l2_normalize};
use preprocess::{ImageView, preprocess};
use tokenizer::ClipTokenizer;
use weights::{Checkpoint, FusedWeights};
use zero_shot::LabelScore;

/// A loaded MobileCLIP model: both encoders, ready to embed.
#[derive(Debug)]
pub struct MobileClip {
    config: ModelConfig,
    arch: Architecture,
    model: Clip,
    tokenizer: ClipTokenizer,
    device: Device,
}

impl MobileClip {
    /// Loads a model from checkpoint bytes (PyTorch zip or safetensors, train-time or
    /// re-parameterised) onto `device`.
    pub fn from_bytes(config: ModelConfig, weights: Vec<u8>, device: Device) -> Result<Self> {
        let ckpt = Checkpoint::from_bytes(weights)?;
        Self::from_checkpoint(config, ckpt, device)
    }

    /// Loads a model from a checkpoint file.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_file(config: ModelConfig, path: &std::path::Path, device: Device) -> Result<Self> {
        Self::from_checkpoint(config, Checkpoint::from_file(path)?, device)
    }

    /// Loads a model from a parsed checkpoint.
    pub fn from_checkpoint(config: ModelConfig, ckpt: Checkpoint, device: Device) -> Result<Self> {
        let arch = config.resolve()?;
        let fused = weights::fuse_checkpoint(ckpt, &config, &arch)?;
        Self::build(config, arch, fused, device)
    }

    /// Builds a model from fused inference tensors (what [`weights::fuse_checkpoint`] makes of a
    /// checkpoint, or a file that holds them).
    pub fn from_fused(config: ModelConfig, weights: FusedWeights, device: Device) -> Result<Self> {
        let arch = config.resolve()?;
        Self::build(config, arch, weights, device)
    }

    fn build(config: ModelConfig, arch: Architecture, weights: FusedWeights, device: Device) -> Result<Self> {
        let model = Clip::load(&arch, weights, &device)?;
        Ok(Self { config, arch, model, tokenizer: ClipTokenizer::new()?, device })
    }

    /// The model's config.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The resolved hyper-parameters.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Dimension of the embeddings.
    pub fn embed_dim(&self) -> usize {
        self.arch.embed_dim
    }

    /// `exp(logit_scale)`, clamped to 100: the temperature of zero-shot logits.
    pub fn logit_scale(&self) -> f32 {
        self.model.logit_scale
    }

    /// Moves the model to another device.
    pub fn to_device(self, device: Device) -> Self {
        Self { model: self.model.to_device(&device), device, ..self }
    }

    /// Checks preprocessed pixels (`batch` images, CHW, `f32`) and makes the input tensor.
    pub fn pixels_tensor(&self, pixels: &[f32], batch: usize) -> Result<Tensor<4>> {
        let s = self.config.preprocess.image_size;
        if batch == 0 || pixels.len() != batch * 3 * s * s {
            return Err(Error::Image(format!(
                "expected {batch} preprocessed image(s) of 3x{s}x{s} ({} values), got {} values",
                batch * 3 * s * s,
                pixels.len()
            )));
        }
        Ok(model::gpu::pixels(pixels, batch, s, &self.device))
    }

    /// Checks token ids and makes the input tensor plus each sequence's end-of-text position.
    pub fn tokens_tensor(&self, tokens: &[Vec<u32>]) -> Result<(Tensor<2, Int>, Vec<usize>)> {
        let (l, vocab) = (self.arch.text.context_length, self.arch.text.vocab_size);
        if tokens.is_empty() {
            return Err(Error::Text("no texts to encode".into()));
        }
        let mut flat = Vec::with_capacity(tokens.len() * l);
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
            flat.extend(seq.iter().map(|&t| t as i64));
        }
        Ok((Tensor::from_data(TensorData::new(flat, [tokens.len(), l]), &self.device), eot))
    }

    /// L2-normalised image embeddings `[B, E]` of preprocessed pixels, as a tensor on the device.
    pub fn image_embeddings(&self, pixels: Tensor<4>) -> Tensor<2> {
        l2_normalize(self.model.image.forward(pixels))
    }

    /// L2-normalised text embeddings `[B, E]` of token ids, as a tensor on the device.
    pub fn text_embeddings(&self, tokens: Tensor<2, Int>, eot: &[usize]) -> Tensor<2> {
        l2_normalize(self.model.text.forward(tokens, eot))
    }

    /// Image embeddings of preprocessed pixels (`batch` images, CHW), one vector per image.
    pub fn encode_pixels(&self, pixels: &[f32], batch: usize) -> Result<Vec<Vec<f32>>> {
        let x = self.pixels_tensor(pixels, batch)?;
        rows(self.image_embeddings(x))
    }

    /// Text embeddings of token-id sequences (each `context_length` long), one vector per text.
    pub fn encode_tokens(&self, tokens: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let (t, eot) = self.tokens_tensor(tokens)?;
        rows(self.text_embeddings(t, &eot))
    }

    /// The CLIP tokenizer.
    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.tokenizer
    }

    /// Preprocesses images (resize shortest side, centre crop, normalise) into one CHW buffer.
    pub fn preprocess_images(&self, images: &[ImageView]) -> Result<Vec<f32>> {
        if images.is_empty() {
            return Err(Error::Image("no images to encode".into()));
        }
        let mut out = Vec::new();
        for img in images {
            out.extend(preprocess(img, &self.config.preprocess)?);
        }
        Ok(out)
    }

    /// Tokenizes texts to `context_length` ids each.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        if texts.is_empty() {
            return Err(Error::Text("no texts to encode".into()));
        }
        let l = self.arch.text.context_length;
        texts.iter().map(|t| self.tokenizer.encode_with_length(t, l)).collect()
    }

    /// L2-normalised embeddings `[B, E]` of images, as a tensor on the device (read it with
    /// [`rows`] or, on WebGPU, [`rows_async`]).
    pub fn embed_images(&self, images: &[ImageView]) -> Result<Tensor<2>> {
        let pixels = self.preprocess_images(images)?;
        Ok(self.image_embeddings(self.pixels_tensor(&pixels, images.len())?))
    }

    /// L2-normalised embeddings `[B, E]` of texts, as a tensor on the device.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Tensor<2>> {
        let (t, eot) = self.tokens_tensor(&self.tokenize(texts)?)?;
        Ok(self.text_embeddings(t, &eot))
    }

    /// L2-normalised embeddings of images, one vector per image.
    pub fn encode_images(&self, images: &[ImageView]) -> Result<Vec<Vec<f32>>> {
        rows(self.embed_images(images)?)
    }

    /// L2-normalised embeddings of texts, one vector per text.
    pub fn encode_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        rows(self.embed_texts(texts)?)
    }

    /// Label embeddings for zero-shot classification: each label's prompts (`templates` with
    /// `{}` replaced by the label) embedded, averaged and re-normalised.
    pub fn label_embeddings(&self, labels: &[&str], templates: &[&str]) -> Result<Vec<Vec<f32>>> {
        let prompts = zero_shot::prompts(labels, templates)?;
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        Ok(zero_shot::ensemble(&self.encode_texts(&refs)?, templates.len()))
    }

    /// Checks that an image embedding has this model's dimension.
    pub fn check_image_embedding(&self, image_embedding: &[f32]) -> Result<()> {
        if image_embedding.len() != self.embed_dim() {
            return Err(Error::InvalidArgument(format!(
                "image embedding has {} values, the model's have {}",
                image_embedding.len(),
                self.embed_dim()
            )));
        }
        Ok(())
    }

    /// Ranks `labels` for an image embedding: softmax of cosine similarity × logit scale.
    pub fn zero_shot(
        &self,
        image_embedding: &[f32],
        labels: &[&str],
        templates: &[&str],
        top_k: Option<usize>,
    ) -> Result<Vec<LabelScore>> {
        self.check_image_embedding(image_embedding)?;
        let labels_emb = self.label_embeddings(labels, templates)?;
        Ok(zero_shot::rank(image_embedding, &labels_emb, labels, self.logit_scale(), top_k))
    }
}

/// Reads a `[B, E]` tensor back as rows (synchronously: native and CPU backends).
pub fn rows(t: Tensor<2>) -> Result<Vec<Vec<f32>>> {
    let [_, e] = t.dims();
    split_rows(t.try_into_data(), e)
}

/// Reads a `[B, E]` tensor back as rows, asynchronously: the only way to read a WebGPU tensor
/// in a browser (a synchronous read cannot wait for the GPU there).
pub async fn rows_async(t: Tensor<2>) -> Result<Vec<Vec<f32>>> {
    let [_, e] = t.dims();
    split_rows(t.into_data_async().await, e)
}

fn split_rows<E: std::fmt::Display>(data: std::result::Result<TensorData, E>, e: usize) -> Result<Vec<Vec<f32>>> {
    let data = data
        .map_err(|err| Error::Device(format!("reading the results from the device failed: {err}")))?
        .try_into_vec::<f32>()
        .map_err(|err| Error::Device(format!("reading the results: {err:?}")))?;
    Ok(data.chunks(e).map(<[f32]>::to_vec).collect())
}
