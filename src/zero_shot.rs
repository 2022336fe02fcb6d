//! Zero-shot classification as in CLIP: per-label text embeddings averaged over prompt
//! templates, cosine similarity × logit scale, softmax over labels.

use serde::Serialize;

use crate::error::{Error, Result};

/// The prompt template used when none is given.
pub const DEFAULT_TEMPLATE: &str = "a photo of a {}.";

/// One label's probability.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelScore {
    /// The label.
    pub label: String,
    /// Softmax probability over the labels.
    pub score: f32,
}

/// Checks labels and templates and expands them into prompts, label-major
/// (`label0·template0, label0·template1, …`).
pub fn prompts(labels: &[&str], templates: &[&str]) -> Result<Vec<String>> {
    if labels.is_empty() {
        return Err(Error::InvalidArgument("the label list is empty".into()));
    }
    if let Some(i) = labels.iter().position(|l| l.trim().is_empty()) {
        return Err(Error::InvalidArgument(format!("label {i} is empty")));
    }
    if templates.is_empty() {
        return Err(Error::InvalidArgument("the template list is empty".into()));
    }
    if let Some(t) = templates.iter().find(|t| !t.contains("{}")) {
        return Err(Error::InvalidArgument(format!("template `{t}` has no `{{}}` placeholder for the label")));
    }
    Ok(labels.iter().flat_map(|l| templates.iter().map(move |t| t.replace("{}", l.trim()))).collect())
}

/// L2-normalises a vector in place.
pub fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// Averages each label's template embeddings (rows grouped `per_label` at a time) and
/// re-normalises, as CLIP's prompt ensembling does.
pub fn ensemble(embeddings: &[Vec<f32>], per_label: usize) -> Vec<Vec<f32>> {
    embeddings
        .chunks(per_label)
        .map(|group| {
            let mut mean = vec![0.0; group[0].len()];
            for e in group {
                mean.iter_mut().zip(e).for_each(|(m, x)| *m += x);
            }
            normalize(&mut mean);
            mean
        })
        .collect()
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

/// Softmax over `logit_scale · cos(image, label)`, sorted by score, best first, cut to `top_k`.
pub fn rank(
    image: &[f32],
    label_embeddings: &[Vec<f32>],
    labels: &[&str],
    logit_scale: f32,
    top_k: Option<usize>,
) -> Vec<LabelScore> {
    let logits: Vec<f32> = label_embeddings.iter().map(|l| logit_scale * cosine(image, l)).collect();
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    let mut out: Vec<LabelScore> =
        labels.iter().zip(exp).map(|(l, e)| LabelScore { label: l.trim().to_string(), score: e / sum }).collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out.truncate(top_k.unwrap_or(out.len()).max(1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_expand_label_major() {
        let p = prompts(&["cat", " dog "], &["a {}.", "the {}"]).unwrap();
        assert_eq!(p, vec!["a cat.", "the cat", "a dog.", "the dog"]);
    }

    #[test]
    fn bad_labels_and_templates_are_named() {
        assert!(prompts(&[], &["{}"]).unwrap_err().to_string().contains("label list is empty"));
        assert!(prompts(&["a", " "], &["{}"]).unwrap_err().to_string().contains("label 1 is empty"));
        assert!(prompts(&["a"], &["no slot"]).unwrap_err().to_string().contains("placeholder"));
    }

    #[test]
    fn rank_is_softmax_sorted() {
        let img = [1.0, 0.0];
        let labels = [vec![0.0, 1.0], vec![1.0, 0.0]];
        let r = rank(&img, &labels, &["x", "y"], 10.0, None);
        assert_eq!(r[0].label, "y");
        let expect = 1.0 / (1.0 + (-10.0f32).exp());
        assert!((r[0].score - expect).abs() < 1e-6);
        assert!((r.iter().map(|s| s.score).sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(rank(&img, &labels, &["x", "y"], 10.0, Some(1)).len(), 1);
    }

    #[test]
    fn ensemble_averages_then_normalises() {
        let e = ensemble(&[vec![1.0, 0.0], vec![0.0, 1.0]], 2);
        let s = 0.5f32.sqrt();
        assert!((e[0][0] - s).abs() < 1e-6 && (e[0][1] - s).abs() < 1e-6);
    }
}
