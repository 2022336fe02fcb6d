//! Zero-shot classification as in CLIP: per-label text embeddings averaged over prompt
//! templates ([`prompts`], [`ensemble`]), then softmax over logit scale × cosine similarity
//! ([`rank`]). [`crate::MobileClip::label_pack`] and the browser adapter both compute label
//! embeddings with these functions, and both rank with [`rank`]: there is no other copy.

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
/// (`label0·template0, label0·template1, …`). Labels are trimmed.
pub fn prompts<S: AsRef<str>, T: AsRef<str>>(labels: &[S], templates: &[T]) -> Result<Vec<String>> {
    check_labels(labels, templates)?;
    Ok(labels.iter().flat_map(|l| templates.iter().map(move |t| t.as_ref().replace("{}", l.as_ref().trim()))).collect())
}

/// Checks that there are labels, none of them blank, and templates, each with a `{}`; none
/// longer than [`crate::MAX_TEXT_CHARS`].
pub fn check_labels<S: AsRef<str>, T: AsRef<str>>(labels: &[S], templates: &[T]) -> Result<()> {
    if labels.is_empty() {
        return Err(Error::InvalidArgument("the label list is empty".into()));
    }
    if let Some(i) = labels.iter().position(|l| l.as_ref().trim().is_empty()) {
        return Err(Error::InvalidArgument(format!("label {i} is empty")));
    }
    for (i, l) in labels.iter().enumerate() {
        crate::check_text_length(l.as_ref(), || format!("label {i}")).map_err(as_argument)?;
    }
    for (i, t) in templates.iter().enumerate() {
        crate::check_text_length(t.as_ref(), || format!("template {i}")).map_err(as_argument)?;
    }
    if templates.is_empty() {
        return Err(Error::InvalidArgument("the template list is empty".into()));
    }
    if let Some(t) = templates.iter().find(|t| !t.as_ref().contains("{}")) {
        return Err(Error::InvalidArgument(format!(
            "template `{}` has no `{{}}` placeholder for the label",
            t.as_ref()
        )));
    }
    Ok(())
}

/// A text error about a label or template is an invalid argument of the label list.
fn as_argument(e: Error) -> Error {
    match e {
        Error::Text(m) => Error::InvalidArgument(m),
        other => other,
    }
}

/// L2-normalises a vector in place (as `F.normalize`, eps 1e-12).
pub fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// Averages each label's template embeddings (rows grouped `per_label` at a time, label-major
/// as [`prompts`] makes them) and re-normalises, as CLIP's prompt ensembling does.
pub fn ensemble(embeddings: &[Vec<f32>], per_label: usize) -> Vec<Vec<f32>> {
    embeddings
        .chunks(per_label.max(1))
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

/// Checks that `values` (named `what` in the error) are all finite.
pub fn check_finite(values: &[f32], what: &str) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::InvalidArgument(format!("{what} has a non-finite value ({}) at index {i}", values[i]))),
        None => Ok(()),
    }
}

/// Ranks labels for an image embedding: softmax over `logit_scale · cos(image, label)`, sorted by
/// score, best first, cut to `top_k` (all when `None`). `embeddings` holds one row of
/// `image.len()` values per label.
///
/// Errors (`INVALID_ARGUMENT`) for an image embedding with NaN or infinite values or of another
/// length than the label embeddings, a `top_k` of 0, or as many labels as rows not matching.
pub fn rank<S: AsRef<str>>(
    image: &[f32],
    labels: &[S],
    embeddings: &[f32],
    logit_scale: f32,
    top_k: Option<usize>,
) -> Result<Vec<LabelScore>> {
    let dim = image.len();
    if dim == 0 || embeddings.len() != labels.len() * dim {
        return Err(Error::InvalidArgument(format!(
            "the image embedding has {dim} values, but the {} label embeddings have {} values in all",
            labels.len(),
            embeddings.len()
        )));
    }
    check_finite(image, "the image embedding")?;
    if top_k == Some(0) {
        return Err(Error::InvalidArgument("top_k must be at least 1".into()));
    }
    let logits: Vec<f32> = embeddings.chunks(dim).map(|l| logit_scale * cosine(image, l)).collect();
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    let mut out: Vec<LabelScore> = labels
        .iter()
        .zip(exp)
        .map(|(l, e)| LabelScore { label: l.as_ref().trim().to_string(), score: e / sum })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out.truncate(top_k.unwrap_or(out.len()));
    Ok(out)
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
        let none: [&str; 0] = [];
        assert!(prompts(&none, &["{}"]).unwrap_err().to_string().contains("label list is empty"));
        assert!(prompts(&["a", " "], &["{}"]).unwrap_err().to_string().contains("label 1 is empty"));
        assert!(prompts(&["a"], &["no slot"]).unwrap_err().to_string().contains("placeholder"));
        assert!(prompts(&["a"], &none).unwrap_err().to_string().contains("template list is empty"));
    }

    #[test]
    fn rank_is_softmax_sorted() {
        let img = [1.0, 0.0];
        let labels = [0.0, 1.0, 1.0, 0.0];
        let r = rank(&img, &["x", "y"], &labels, 10.0, None).unwrap();
        assert_eq!(r[0].label, "y");
        let expect = 1.0 / (1.0 + (-10.0f32).exp());
        assert!((r[0].score - expect).abs() < 1e-6);
        assert!((r.iter().map(|s| s.score).sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(rank(&img, &["x", "y"], &labels, 10.0, Some(1)).unwrap().len(), 1);
        assert_eq!(rank(&img, &["x", "y"], &labels, 10.0, Some(50)).unwrap().len(), 2);
    }

    #[test]
    fn rank_refuses_bad_input() {
        let labels = [0.0, 1.0, 1.0, 0.0];
        let err = |img: &[f32], top_k| rank(img, &["x", "y"], &labels, 10.0, top_k).unwrap_err();
        assert!(err(&[f32::NAN, 0.0], None).to_string().contains("non-finite value (NaN) at index 0"));
        assert!(err(&[0.0, f32::INFINITY], None).to_string().contains("(inf) at index 1"));
        assert!(err(&[1.0, 0.0], Some(0)).to_string().contains("top_k must be at least 1"));
        assert!(err(&[1.0, 0.0, 0.0], None).to_string().contains("3 values"));
        assert!(err(&[], None).to_string().contains("0 values"));
        assert_eq!(err(&[1.0, f32::NAN], None).code(), "INVALID_ARGUMENT");
    }

    #[test]
    fn ensemble_averages_then_normalises() {
        let e = ensemble(&[vec![1.0, 0.0], vec![0.0, 1.0]], 2);
        let s = 0.5f32.sqrt();
        assert!((e[0][0] - s).abs() < 1e-6 && (e[0][1] - s).abs() < 1e-6);
    }
}
