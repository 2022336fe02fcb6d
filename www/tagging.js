// Zero-shot tagging and search on cached embeddings: prompts are encoded once per model and
// reused when labels change; image embeddings are kept per photo. The arithmetic is the
// package's (src/zero_shot.rs): template embeddings averaged and re-normalised per label, softmax
// over logit_scale × cosine.

/** Labels from a text box: one per line, trimmed, without blanks and repeats. */
export function parseLines(text) {
  return [...new Set(text.split('\n').map((l) => l.trim()).filter(Boolean))];
}

/** The prompts for labels × templates, label-major, as the package expands them. */
export function prompts(labels, templates) {
  return labels.flatMap((l) => templates.map((t) => t.replaceAll('{}', l)));
}

export function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return dot / Math.max(Math.sqrt(na * nb), 1e-12);
}

/** Per-label embeddings: each label's template embeddings averaged, then L2-normalised. */
export function labelEmbeddings(labels, templates, promptEmbedding) {
  return labels.map((l) => {
    const rows = templates.map((t) => promptEmbedding(t.replaceAll('{}', l)));
    const mean = new Float32Array(rows[0].length);
    for (const r of rows) for (let i = 0; i < r.length; i++) mean[i] += r[i];
    let n = 0;
    for (const v of mean) n += v * v;
    n = Math.max(Math.sqrt(n), 1e-12);
    return mean.map((v) => v / n);
  });
}

/** `[{label, score}]`, best first: softmax over `logitScale · cos(image, label)`, cut to `topK`. */
export function rank(image, labelEmbs, labels, logitScale, topK) {
  const logits = labelEmbs.map((l) => logitScale * cosine(image, l));
  const max = Math.max(...logits);
  const exp = logits.map((l) => Math.exp(l - max));
  const sum = exp.reduce((a, b) => a + b, 0);
  return labels.map((label, i) => ({ label, score: exp[i] / sum }))
    .sort((a, b) => b.score - a.score)
    .slice(0, Math.max(1, topK));
}

/**
 * Runs calls to the model one at a time, most urgent first (lower `priority`), so that a search
 * or a new photo does not wait behind a thousand label prompts. `clear()` drops what is queued.
 */
export class Scheduler {
  #jobs = [];
  #busy = false;
  #seq = 0;

  run(priority, work) {
    return new Promise((resolve, reject) => {
      this.#jobs.push({ priority, seq: this.#seq++, work, resolve, reject });
      this.#jobs.sort((a, b) => a.priority - b.priority || a.seq - b.seq);
      this.#next();
    });
  }

  clear(reason) {
    for (const j of this.#jobs.splice(0)) j.reject(reason);
  }

  async #next() {
    if (this.#busy || this.#jobs.length === 0) return;
    this.#busy = true;
    const job = this.#jobs.shift();
    try {
      job.resolve(await job.work());
    } catch (e) {
      job.reject(e);
    } finally {
      this.#busy = false;
      this.#next();
    }
  }
}

export const PRIORITY = { search: 0, image: 1, prompts: 2 };
