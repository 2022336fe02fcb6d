// The model worker: loads the image tower the user's weights were converted to (IndexedDB) with
// the npm package's public API, fetches and decodes the clicked image, and ranks the labels with
// the package's zeroShot. The labels' embeddings are a label pack, computed once per (weights,
// labels, templates) and kept in IndexedDB as bytes: the options page has it computed ('prepare')
// when the weights or labels change, so a click only pays for the image. The text tower is loaded
// only to encode labels the stored pack lacks, and freed right after.
import { LabelPack, MobileClip } from './mobileclip/index.js';
import { BACKEND } from './settings.js';
import { getItem, getWeights, setItem } from './store.js';

let current = null; // { savedAt, clip }
let queue = Promise.resolve();

// Requests run one at a time: { id, type: 'tag' | 'prepare', labels, templates, topK, srcUrl }.
self.onmessage = ({ data }) => {
  queue = queue.then(() => handle(data));
};

async function handle(req) {
  const progress = (text) => postMessage({ id: req.id, type: 'progress', text });
  const t0 = performance.now();
  const timings = {};
  const lap = (name, since) => { timings[name] = performance.now() - since; return performance.now(); };
  try {
    const rec = await getWeights();
    if (!rec) throw fail('NO_WEIGHTS', 'No model weights yet: choose them once in the extension\'s options.');
    const [clip, bitmap] = await Promise.all([
      model(rec, progress).then((c) => { lap('model', t0); return c; }),
      req.type === 'tag' ? fetchImage(req.srcUrl).then((b) => { lap('image fetch+decode', t0); return b; }) : null,
    ]);
    let t = performance.now();
    const { pack, textTower } = await labelPack(clip, rec, req.labels, req.templates, progress);
    t = lap('labels', t);
    if (req.type === 'prepare') {
      timings.total = performance.now() - t0;
      postMessage({ id: req.id, type: 'result', ok: true, model: clip.name, count: pack.size, textTower, ms: timings.total, timings });
      return;
    }
    progress('Looking at the image…');
    const image = await clip.encodeImage(bitmap);
    bitmap.close();
    t = lap('image encode', t);
    const tags = await clip.zeroShot(image, pack, { topK: req.topK });
    lap('rank', t);
    timings.total = performance.now() - t0;
    const { backend, backendReason, threads, towers } = clip;
    postMessage({ id: req.id, type: 'result', ok: true, tags, model: clip.name, backend, backendReason, threads, towers, textTower, ms: timings.total, timings });
  } catch (e) {
    postMessage({ id: req.id, type: 'result', ok: false, code: e?.code ?? 'INTERNAL', message: e?.message ?? String(e) });
  }
}

function fail(code, message) {
  return Object.assign(new Error(message), { code });
}

/** The loaded model, (re)loaded when the stored weights changed. */
async function model(rec, progress) {
  if (current?.savedAt === rec.savedAt) return current.clip;
  current?.clip.dispose();
  current = null;
  progress(`Loading ${rec.modelName}…`);
  // the image tower's compact file (a record of an earlier version: the checkpoint, both towers)
  const clip = rec.image ? await MobileClip.load({ weights: rec.image, backend: BACKEND }) : await MobileClip.load({ model: rec.model, weights: rec.blob, backend: BACKEND });
  current = { savedAt: rec.savedAt, clip };
  return clip;
}

/** The clicked image as an ImageBitmap, fetched by the extension (no cookies, no referrer). */
async function fetchImage(url) {
  if (url.startsWith('blob:')) throw fail('INVALID_IMAGE', 'This image is a blob: URL of the page, which an extension cannot read.');
  let res;
  try {
    res = await fetch(url, { credentials: 'omit', referrerPolicy: 'no-referrer' });
  } catch (e) {
    throw fail('IMAGE_DOWNLOAD', `Could not download the image: ${e.message}`);
  }
  if (!res.ok) throw fail('IMAGE_DOWNLOAD', `Could not download the image: HTTP ${res.status}`);
  const blob = await res.blob();
  try {
    return await createImageBitmap(blob);
  } catch {
    throw fail('INVALID_IMAGE', `Could not decode the image (${blob.type || 'unknown type'}; SVG cannot be decoded in a worker).`);
  }
}

/**
 * The label pack of the settings' labels and templates: the stored one when it was made by these
 * weights with these labels and templates, else encoded now (reusing the labels of the stored pack
 * that are still there) and stored. `{ pack, textTower }`: whether the text tower had to be loaded
 * (only for labels not in the stored pack, when `clip` is the image tower alone).
 */
async function labelPack(clip, rec, labels, templates, progress) {
  let stored = null;
  try {
    const bytes = await getItem('labelPack');
    stored = bytes ? LabelPack.fromBytes(bytes) : null;
  } catch { /* none, or unreadable: encode again */ }
  const fits = stored?.weightsId === clip.labelPackId && stored.model === clip.name;
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  if (fits && same(stored.labels, labels.map((l) => l.trim())) && same(stored.templates, templates)) return { pack: stored, textTower: false };
  const known = new Set(fits && same(stored.templates, templates) ? stored.labels : []);
  const needText = clip.towers === 'image' && labels.some((l) => !known.has(l.trim()));
  if (needText) progress('Loading the text tower for the new labels…');
  const text = needText ? await MobileClip.load({ weights: rec.text, backend: BACKEND }) : null;
  try {
    const pack = await (text ?? clip).labelEmbeddings(labels, {
      templates,
      reuse: fits ? stored : [],
      onProgress: ({ done, total }) => progress(`Encoding the labels (once): ${done}/${total}…`),
    });
    await setItem('labelPack', pack.toBytes()).catch(() => {});
    return { pack, textTower: needText };
  } finally {
    text?.dispose(); // its memory is not needed until the labels change again
  }
}
