//! Text encoders: token + position embeddings, transformer (optionally wrapped in RepMixer
//! blocks), final LayerNorm, EOT pooling and projection.

pub mod mct;

use burn::module::Param;
use burn::nn::{Embedding, LayerNormConfig};
use burn::prelude::*;

use crate::config::{LN_EPS, TextArch, TextVariant};
use crate::model::common::layers::{Norm, layer_norm, select_rows};
use crate::model::common::transformer::{TransformerLayer, TransformerLayerConfig};
use crate::model::gpu;
use crate::weights::VarBuilder;
use mct::{TextRepMixerBlock, TextRepMixerBlockConfig};

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
    ln_final: Norm,
    projection: Param<Tensor<2>>,
    causal: bool,
}

impl TextEncoder {
    /// Loads the encoder from the scope of the text tower (`text`): `token_embedding`,
    /// `positional_embedding`, `transformer.resblocks`, `ln_final`, `text_projection`.
    pub fn load(arch: &TextArch, embed_dim: usize, vb: &VarBuilder) -> Self {
        let d = arch.dim;
        let token_embedding = Embedding { weight: vb.pp("token_embedding").param("weight", [arch.vocab_size, d]) };
        let positional_embedding = vb.param("positional_embedding", [arch.context_length, d]);
        let layer = TransformerLayerConfig::new(d, arch.heads, arch.ffn_dim);
        let rep = TextRepMixerBlockConfig::new(d);
        // "mct": a RepMixer block before and after the transformer layers.
        let total = match arch.variant {
            TextVariant::Base => arch.layers,
            TextVariant::Mct => arch.layers + 2,
        };
        let layers = (0..total)
            .map(|i| {
                let vb = vb.pp("transformer").pp("resblocks").pp(i);
                if arch.variant == TextVariant::Mct && (i == 0 || i == total - 1) {
                    TextLayer::RepMixer(rep.load(&vb))
                } else {
                    TextLayer::Transformer(layer.load(&vb))
                }
            })
            .collect();
        let ln_final = layer_norm(&vb.pp("ln_final"), &LayerNormConfig::new(d).with_epsilon(LN_EPS));
        let projection = vb.param("text_projection", [d, embed_dim]);
        Self { token_embedding, positional_embedding, layers, ln_final, projection, causal: arch.causal }
    }

    /// Unnormalised text features `[B, embed_dim]` from token ids `[B, L]`; `eot` holds, per
    /// sequence, the position of the highest id (the end-of-text token), as the reference pools.
    ///
    /// With causal attention only the first [`Self::positions_needed`] positions can reach the
    /// pooled one, so the rest (padding) is dropped before the layers: a short prompt costs a
    /// fraction of a full 77-token context, with the same features (see [`Self::forward_prefix`]).
    pub fn forward(&self, tokens: Tensor<2, Int>, eot: &[usize]) -> Tensor<2> {
        let keep = self.positions_needed(tokens.dims()[1], eot);
        self.forward_prefix(tokens.narrow(1, 0, keep), eot)
    }

    /// How many leading positions of `l` decide the features pooled at `eot`: with causal
    /// attention, up to the last end-of-text token plus the reach of the non-causal RepMixer
    /// blocks ("mct"); all `l` without.
    pub fn positions_needed(&self, l: usize, eot: &[usize]) -> usize {
        if !self.causal {
            return l;
        }
        let reach: usize = self.layers.iter().map(TextLayer::reach).sum();
        eot.iter().max().map_or(l, |&e| (e + 1 + reach).min(l))
    }

    /// [`Self::forward`] on the tokens as given, `[B, L']` with `L'` at least
    /// [`Self::positions_needed`]: the same features for any such `L'` (bit for bit on the CPU
    /// kernels, whose causal attention leaves exact zeros after each row's position; tested
    /// against the full context).
    ///
    /// Only the pooled (end-of-text) rows are needed from the last layer, so the last transformer
    /// layer computes its queries, attention output and MLP for a window of rows around each
    /// end-of-text token (keys and values for every position): the token alone, or, when RepMixer
    /// blocks follow ("mct"), the positions within their reach, which run on that window, the last
    /// block's FFN at the token only. ln_final and the projection act per row.
    pub fn forward_prefix(&self, tokens: Tensor<2, Int>, eot: &[usize]) -> Tensor<2> {
        let [b, l] = tokens.dims();
        assert_eq!(eot.len(), b, "one end-of-text position per sequence");
        let pos = self.positional_embedding.val().narrow(0, 0, l).unsqueeze_dim::<3>(0);
        let mut x = self.token_embedding.forward(tokens) + pos;
        if gpu::is_gpu(&x.device()) {
            // Every row on a GPU: there the row path's gathers are extra dispatches, and it was
            // not measured.
            for layer in &self.layers {
                x = self.forward_layer(layer, x);
            }
            let x = self.ln_final.forward(x);
            let d = x.dims()[2];
            return select_rows(x, eot).reshape([b, d]).matmul(self.projection.val());
        }
        let last = self.layers.iter().rposition(|layer| matches!(layer, TextLayer::Transformer(_)));
        let (head, tail) = self.layers.split_at(last.map_or(0, |i| i + 1));
        let (rows, at) = window(l, eot, tail.iter().map(TextLayer::reach).sum());
        let mut x = match head.split_last() {
            Some((TextLayer::Transformer(t), before)) => {
                for layer in before {
                    x = self.forward_layer(layer, x);
                }
                t.forward_rows(x, &rows, self.causal)
            }
            // No transformer layer: the window of the embeddings.
            None => select_rows(x, &rows),
            Some((TextLayer::RepMixer(_), _)) => unreachable!("the split is after the last transformer layer"),
        };
        let pooled = match tail.split_last() {
            None => {
                let d = x.dims()[2];
                x.reshape([b, d])
            }
            Some((TextLayer::RepMixer(r), before)) => {
                for layer in before {
                    x = self.forward_layer(layer, x);
                }
                r.forward_at(x, &at)
            }
            Some((TextLayer::Transformer(_), _)) => unreachable!("after the last transformer layer"),
        };
        self.ln_final.forward(pooled).matmul(self.projection.val())
    }

    fn forward_layer(&self, layer: &TextLayer, x: Tensor<3>) -> Tensor<3> {
        match layer {
            TextLayer::Transformer(t) => t.forward(x, self.causal),
            TextLayer::RepMixer(r) => r.forward(x),
        }
    }
}

impl TextLayer {
    /// How many positions on either side of a position its output depends on, beside those
    /// attention reaches (0 for a transformer layer).
    fn reach(&self) -> usize {
        match self {
            TextLayer::RepMixer(r) => r.reach(),
            TextLayer::Transformer(_) => 0,
        }
    }
}

/// The rows around each end-of-text token that decide its features through layers of total
/// `reach` along the sequence (length `l`): `(positions, at)`, `positions` the same number `w`
/// per sequence (`[B, w]` row-major), `at[i]` the token's place within sequence `i`'s window.
///
/// The window spans `2·reach + 1` positions (all `l` if fewer), shifted inside the sequence where
/// the token is near an end. Layers run on the window alone pad it with zeros at its ends, as the
/// model pads the sequence: where a window end is not the sequence's, the token is at least
/// `reach` positions away from it, beyond what the padding can change.
fn window(l: usize, eot: &[usize], reach: usize) -> (Vec<usize>, Vec<usize>) {
    let w = (2 * reach + 1).min(l);
    let starts: Vec<usize> = eot.iter().map(|&p| p.saturating_sub(reach).min(l - w)).collect();
    let positions = starts.iter().flat_map(|&s| s..s + w).collect();
    let at = eot.iter().zip(&starts).map(|(p, s)| p - s).collect();
    (positions, at)
}
