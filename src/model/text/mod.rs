//! Text encoders: token + position embeddings, transformer (optionally wrapped in RepMixer
//! blocks), final LayerNorm, EOT pooling and projection.

pub mod mct;
pub mod transformer;

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm};
use burn::prelude::*;

use crate::config::{TEXT_REPMIXER_KERNEL, TextArch, TextVariant};
use crate::model::attention::causal_mask;
use crate::model::layers::load_layer_norm;
use crate::weights::Weights;
use mct::{TextRepMixerBlock, TextRepMixerBlockConfig};
use transformer::{TransformerLayer, TransformerLayerConfig};

/// A layer of the text encoder.
// Built once per model and never moved in a hot path: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum TextLayer {
    /// Pre-norm transformer layer.
    Transformer(TransformerLayer),
    /// RepMixer block ("mct").
    RepMixer(TextRepMixerBlock),
}

/// The text encoder.
#[derive(Module, Debug)]
pub struct TextEncoder {
    token_embedding: Embedding,
    positional_embedding: Param<Tensor<2>>,
    layers: Vec<TextLayer>,
    ln_final: LayerNorm,
    projection: Param<Tensor<2>>,
    causal: bool,
}

impl TextEncoder {
    /// Loads the encoder from canonical `text.*` tensors.
    pub fn load(arch: &TextArch, embed_dim: usize, w: &mut Weights) -> Self {
        let d = arch.dim;
        let device = w.device().clone();
        let token_embedding =
            Embedding { weight: w.take("text.token_embedding.weight", &[arch.vocab_size, d]).into_param(&device) };
        let positional_embedding = w.take("text.positional_embedding", &[arch.context_length, d]).into_param(&device);
        let layer = TransformerLayerConfig::new(d, arch.heads, arch.ffn_dim);
        let rep = TextRepMixerBlockConfig::new(d).with_kernel(TEXT_REPMIXER_KERNEL);
        let total = match arch.variant {
            TextVariant::Base => arch.layers,
            TextVariant::Mct => arch.layers + 2,
        };
        let layers = (0..total)
            .map(|i| {
                let p = format!("text.transformer.resblocks.{i}");
                if arch.variant == TextVariant::Mct && (i == 0 || i == total - 1) {
                    TextLayer::RepMixer(rep.load(w, &p))
                } else {
                    TextLayer::Transformer(layer.load(w, &p))
                }
            })
            .collect();
        let ln_final = load_layer_norm(w, "text.ln_final", d);
        let projection = w.take("text.text_projection", &[d, embed_dim]).into_param(&device);
        Self { token_embedding, positional_embedding, layers, ln_final, projection, causal: arch.causal }
    }

    /// Unnormalised text features `[B, embed_dim]` from token ids `[B, L]`; `eot` holds, per
    /// sequence, the position of the highest id (the end-of-text token), as the reference pools.
    pub fn forward(&self, tokens: Tensor<2, Int>, eot: &[usize]) -> Tensor<2> {
        let [b, l] = tokens.dims();
        let device = tokens.device();
        let pos = self.positional_embedding.val().narrow(0, 0, l).unsqueeze_dim::<3>(0);
        let mut x = self.token_embedding.forward(tokens) + pos;
        let mask = self.causal.then(|| causal_mask(l, &device));
        for layer in &self.layers {
            x = match layer {
                TextLayer::Transformer(t) => t.forward(x, mask.clone()),
                TextLayer::RepMixer(r) => r.forward(x),
            };
        }
        let x = self.ln_final.forward(x);
        let d = x.dims()[2];
        let flat = x.reshape([b * l, d]);
        let idx: Vec<i64> = eot.iter().enumerate().map(|(i, &p)| (i * l + p) as i64).collect();
        let pooled = flat.select(0, Tensor::<1, Int>::from_data(TensorData::new(idx, [b]), &device));
        pooled.matmul(self.projection.val())
    }
}
