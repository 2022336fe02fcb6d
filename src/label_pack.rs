//! Label packs: the label embeddings of one model and one set of weights, computed once
//! ([`crate::MobileClip::label_pack`], `mobileclip labels`, `clip.labelEmbeddings` in JavaScript)
//! and reused for zero-shot ranking without the text tower.
//!
//! On disk a pack is a safetensors file (readable by any safetensors reader) with one tensor,
//! `embeddings` (`F32`, `[labels, dim]`, L2-normalised rows), and these metadata strings:
//!
//! | key | value |
//! |---|---|
//! | `format` | `mobileclip-label-pack` |
//! | `version` | `1` |
//! | `model` | the model's name (`MobileCLIP-S0`, or a custom config's `name`) |
//! | `weights_id` | the weights' id: `sha256-<base64>` of the checkpoint file (an SRI hash) |
//! | `labels` | the labels, a JSON array of strings |
//! | `templates` | the prompt templates averaged per label, a JSON array of strings |
//!
//! The JavaScript package reads and writes the same layout (`js/label-pack.js`); the tests
//! check that each reads what the other writes.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::error::{Error, Result};

/// The `format` metadata value of a label pack.
pub const FORMAT: &str = "mobileclip-label-pack";
/// The version this crate writes and reads.
pub const VERSION: u32 = 1;
/// How far from 1 a row's L2 norm may be in a pack read from bytes.
const NORM_TOLERANCE: f32 = 1e-3;

/// Label embeddings of one model and weights: one L2-normalised row per label.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelPack {
    model: String,
    weights_id: String,
    labels: Vec<String>,
    templates: Vec<String>,
    dim: usize,
    embeddings: Vec<f32>,
}

impl LabelPack {
    /// Makes a pack from its parts: `embeddings` holds `labels.len()` rows of `dim` values.
    pub fn new(
        model: String,
        weights_id: String,
        labels: Vec<String>,
        templates: Vec<String>,
        dim: usize,
        embeddings: Vec<f32>,
    ) -> Result<Self> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if labels.is_empty() || dim == 0 || embeddings.len() != labels.len() * dim {
            return bad(format!(
                "{} labels × {dim} dimensions do not fit {} embedding values",
                labels.len(),
                embeddings.len()
            ));
        }
        crate::zero_shot::check_finite(&embeddings, "the label embeddings")?;
        Ok(Self { model, weights_id, labels, templates, dim, embeddings })
    }

    /// The name of the model that made the pack.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The id of the weights that made the pack (see [`crate::MobileClip::weights_id`]).
    pub fn weights_id(&self) -> &str {
        &self.weights_id
    }

    /// The labels, in order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The prompt templates averaged per label.
    pub fn templates(&self) -> &[String] {
        &self.templates
    }

    /// The embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the pack has no labels (never true for a pack made by [`LabelPack::new`]).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// All embeddings, row-major (`len() × dim()` values).
    pub fn embeddings(&self) -> &[f32] {
        &self.embeddings
    }

    /// The embedding of label `i`.
    pub fn embedding(&self, i: usize) -> &[f32] {
        &self.embeddings[i * self.dim..(i + 1) * self.dim]
    }

    /// The pack as a safetensors file (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let data: Vec<u8> = self.embeddings.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = TensorView::new(Dtype::F32, vec![self.labels.len(), self.dim], &data).expect("sizes checked in new");
        let json = |v: &[String]| serde_json::to_string(v).expect("strings serialise");
        let metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("version".to_string(), VERSION.to_string()),
            ("model".to_string(), self.model.clone()),
            ("weights_id".to_string(), self.weights_id.clone()),
            ("labels".to_string(), json(&self.labels)),
            ("templates".to_string(), json(&self.templates)),
        ]);
        safetensors::serialize([("embeddings", view)], Some(metadata)).expect("a valid header")
    }

    /// Reads a pack written by [`LabelPack::to_bytes`] or the JavaScript package. Anything else
    /// (garbage, a truncated file, another safetensors file, a newer version, rows that are not
    /// unit vectors) is refused with `INVALID_LABEL_PACK` naming the problem.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |m: String| Error::LabelPackFormat(m);
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            bad(format!("not a label pack ({} bytes that are not a safetensors file: {e})", bytes.len()))
        })?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |k: &str| meta.get(k).ok_or_else(|| bad(format!("the metadata has no `{k}`")));
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(bad(format!(
                "a safetensors file, but not a label pack (its format is {:?})",
                meta.get("format")
            )));
        }
        let version = get("version")?;
        if version != &VERSION.to_string() {
            return Err(bad(format!("version {version:?}; this version of mobileclip-wasm reads version {VERSION}")));
        }
        let strings = |k: &str| -> Result<Vec<String>> {
            serde_json::from_str(get(k)?).map_err(|e| bad(format!("`{k}` is not a JSON array of strings: {e}")))
        };
        let (labels, templates) = (strings("labels")?, strings("templates")?);
        let (model, weights_id) = (get("model")?.clone(), get("weights_id")?.clone());
        if model.is_empty() || weights_id.is_empty() {
            return Err(bad("the model name or the weights id is empty".into()));
        }
        let names = st.names();
        if names != ["embeddings"] {
            return Err(bad(format!("expected one tensor `embeddings`, found {names:?}")));
        }
        let t = st.tensor("embeddings").map_err(|e| bad(e.to_string()))?;
        let (n, dim) = match *t.shape() {
            [n, dim] if t.dtype() == Dtype::F32 && dim > 0 => (n, dim),
            _ => {
                return Err(bad(format!(
                    "`embeddings` is {:?} {:?}, expected F32 [labels, dim]",
                    t.dtype(),
                    t.shape()
                )));
            }
        };
        if n != labels.len() || n == 0 {
            return Err(bad(format!("{} labels but {n} embeddings", labels.len())));
        }
        let embeddings: Vec<f32> =
            t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
        for (i, row) in embeddings.chunks(dim).enumerate() {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            // Also refuses a NaN norm.
            if (norm - 1.0).abs().partial_cmp(&NORM_TOLERANCE) != Some(std::cmp::Ordering::Less) {
                return Err(bad(format!(
                    "the embedding of label {i} ({:?}) is not a unit vector (norm {norm})",
                    labels[i]
                )));
            }
        }
        Ok(Self { model, weights_id, labels, templates, dim, embeddings })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack() -> LabelPack {
        let s = 0.5f32.sqrt();
        LabelPack::new(
            "m".into(),
            "sha256-abc".into(),
            vec!["cat".into(), "dög \"x\"".into()],
            vec!["a {}.".into()],
            2,
            vec![1.0, 0.0, s, s],
        )
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let p = pack();
        assert_eq!(LabelPack::from_bytes(&p.to_bytes()).unwrap(), p);
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let err = |b: &[u8]| {
            let e = LabelPack::from_bytes(b).unwrap_err();
            assert_eq!(e.code(), "INVALID_LABEL_PACK");
            e.to_string()
        };
        assert!(err(b"").contains("not a label pack"));
        assert!(err(&[7; 100]).contains("not a label pack"));
        let good = pack().to_bytes();
        assert!(err(&good[..good.len() - 3]).contains("not a label pack"));
        // a safetensors file that is not a pack
        let other =
            safetensors::serialize([("x", TensorView::new(Dtype::F32, vec![1], &[0; 4]).unwrap())], None).unwrap();
        assert!(err(&other).contains("not a label pack"));
        // a newer version
        let mut newer = good.clone();
        let at = newer.windows(13).position(|w| w == b"\"version\":\"1\"").expect("version in the header");
        newer[at + 11] = b'9';
        assert!(err(&newer).contains("version \"9\""));
        // a row that is not a unit vector: flip the last float's exponent byte
        let mut broken = good.clone();
        let last = broken.len() - 1;
        broken[last] ^= 0x40;
        assert!(err(&broken).contains("not a unit vector"));
    }

    #[test]
    fn new_checks_sizes_and_values() {
        let l = vec!["a".to_string()];
        assert!(LabelPack::new("m".into(), "w".into(), l.clone(), vec![], 2, vec![1.0]).is_err());
        assert!(LabelPack::new("m".into(), "w".into(), l, vec![], 1, vec![f32::NAN]).is_err());
    }
}
