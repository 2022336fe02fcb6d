// Zero-shot ranking from precomputed label embeddings, the same arithmetic as the package's
// `zeroShot` (src/zero_shot.rs): per-label mean of the template embeddings, re-normalised;
// softmax of logit scale × cosine; best first. The package's `zeroShot` encodes every label's
// text on each call; splitting it lets the extension encode the labels once.
import { MobileClipError, similarity } from './mobileclip/index.js';

const BATCH = 8;

function check(labels, templates) {
  if (!Array.isArray(labels) || labels.length === 0) throw new MobileClipError('INVALID_ARGUMENT', 'the label list is empty');
  const empty = labels.findIndex((l) => typeof l !== 'string' || l.trim() === '');
  if (empty >= 0) throw new MobileClipError('INVALID_ARGUMENT', `label ${empty} is empty`);
  if (!Array.isArray(templates) || templates.length === 0) throw new MobileClipError('INVALID_ARGUMENT', 'the template list is empty');
  const t = templates.find((x) => !x.includes('{}'));
  if (t !== undefined) throw new MobileClipError('INVALID_ARGUMENT', `template \`${t}\` has no \`{}\` placeholder for the label`);
}

/** One L2-normalised embedding per label (Float32Array), templates averaged. */
export async function labelEmbeddings(clip, labels, templates, onProgress) {
  check(labels, templates);
  const prompts = labels.flatMap((l) => templates.map((t) => t.replaceAll('{}', l.trim())));
  const rows = [];
  for (let i = 0; i < prompts.length; i += BATCH) {
    rows.push(...(await clip.encodeText(prompts.slice(i, i + BATCH))));
    onProgress?.(Math.min(i + BATCH, prompts.length) / templates.length | 0, labels.length);
  }
  return labels.map((_, li) => {
    const mean = new Float32Array(rows[0].length);
    for (let t = 0; t < templates.length; t++) {
      const row = rows[li * templates.length + t];
      for (let k = 0; k < mean.length; k++) mean[k] += row[k];
    }
    let n = 0;
    for (const x of mean) n += x * x;
    n = Math.max(Math.sqrt(n), 1e-12);
    for (let k = 0; k < mean.length; k++) mean[k] /= n;
    return mean;
  });
}

/** `[{label, score}]`, best first: softmax over logit scale × cosine, cut to topK. */
export function rank(image, labelEmb, labels, logitScale, topK) {
  const logits = labelEmb.map((l) => logitScale * similarity(image, l));
  const max = Math.max(...logits);
  const exp = logits.map((l) => Math.exp(l - max));
  const sum = exp.reduce((a, b) => a + b, 0);
  const out = labels.map((label, i) => ({ label: label.trim(), score: exp[i] / sum }));
  out.sort((a, b) => b.score - a.score);
  return out.slice(0, Math.max(1, topK ?? out.length));
}
