// The demo page: load a model into a worker, tag photos with editable labels, search them by text.
import { MobileClipError, modelNames } from 'mobileclip-wasm';
import { MobileClipWorker } from 'mobileclip-wasm/worker';
import { setupCamera } from './camera.js';
import { makeItem, renderCard, reorder } from './gallery.js';
import { explain, showError } from './messages.js';
import { LABEL_PRESETS, labelPreset, templatePreset } from './presets.js';
import { forgetPacks, loadPack, packsKept, savePack } from './store.js';
import {
  anyCached, cached, cachedTower, dropCheckpoint, fetchWeights, forgetWeights, guessModel, hasCache, isCheckpoint, keepTower, keptFor, megabytes,
} from './weights.js';

/* global __DEMO_MODELS__ */
const MODELS = __DEMO_MODELS__; // [{ name, url, unsupported? }] from configs/*.json (www/models.mjs)
const SAMPLES = [
  new URL('./samples/chelsea.jpg', import.meta.url),
  new URL('./samples/coffee.jpg', import.meta.url),
  new URL('./samples/rocket.jpg', import.meta.url),
  new URL('./samples/astronaut.jpg', import.meta.url),
];
const STALE = Symbol('stale'); // queued work of a model that was replaced

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const state = {
  clip: null, // MobileClipWorker: both towers, or (from the kept compact file) the image tower only
  text: null, // promise of a model with the text tower, loaded when `clip` has none and labels or a search need it
  url: null, // the published checkpoint's URL (null for a file): the key of what is kept
  keeping: '', // what the conversion for the next visit is doing ('' when idle)
  modelKey: '', // the model and its weights: the key of stored label packs
  preparing: false, // the preparation bar follows the labels until the first pack is ready
  session: 0, // bumped on every load; work of older sessions is dropped
  loading: null, // AbortController of the load in progress
  labelling: null, // AbortController of the label encoding in progress
  packs: [], // label packs of the current model (the package reuses their rows)
  labels: [],
  templates: [],
  pack: null, // the label pack of the current labels × templates
  topK: 3,
  items: [],
  photos: Promise.resolve(), // photos are embedded one after the other
  searchEmb: null,
  batch: { total: 0, done: 0 },
  stats: { images: 0, labels: 0 },
  msPerLabel: new Map(), // templates count → ms per label, for the time estimate
};

/** Lines of a text box, trimmed, without blanks and repeats. */
function parseLines(text) {
  return [...new Set(text.split('\n').map((l) => l.trim()).filter(Boolean))];
}

// ---------------------------------------------------------------- model

function weightsUrl() {
  const name = $('model').value;
  const override = params.get('weights');
  if (override && name === (params.get('model') ?? 'MobileCLIP-S0')) return new URL(override, location.href).href;
  const info = MODELS.find((m) => m.name === name);
  return info?.files.find((f) => f.url === $('published-file').value)?.url ?? info?.url ?? null;
}

/** The chosen model's published files in the file menu (v1 models: Apple's checkpoint and open_clip's file). */
function listPublishedFiles() {
  const files = MODELS.find((m) => m.name === $('model').value)?.files ?? [];
  $('published-file').replaceChildren(...files.map((f) => new Option(f.label, f.url)));
  $('published-choice').hidden = files.length < 2;
}

/** "huggingface.co/apple/MobileCLIP-S0/…/mobileclip_s0.pt" */
function shortUrl(url) {
  const { host, pathname } = new URL(url);
  const parts = pathname.split('/').filter(Boolean);
  return parts.length > 3 ? `${host}/${parts.slice(0, 2).join('/')}/…/${parts.at(-1)}` : `${host}${pathname}`;
}

async function showModelChoice() {
  const name = $('model').value;
  const info = MODELS.find((m) => m.name === name);
  const off = MODELS.filter((m) => m.unsupported);
  $('model-note').textContent = info?.unsupported ? `Not available: ${info.unsupported}.`
    : off.map((m) => `${m.name} is listed but not available: ${m.unsupported}.`).join(' ');
  const url = weightsUrl();
  $('weights-url').textContent = url ? shortUrl(url) : 'no published URL: use a file';
  $('weights-url').href = url ?? '#';
  $('weights-url').title = url ?? '';
  const hit = url && (await cachedTower(url, 'image') ?? await cached(url));
  $('cache-note').textContent = hit ? '(downloaded before: loads offline)' : '';
  return hit;
}

function setBar(bar, text, value, max, label) {
  bar.max = Math.max(max, 1);
  if (value === null) bar.removeAttribute('value'); // indeterminate
  else bar.value = Math.min(value, bar.max);
  text.textContent = label;
}

const BACKEND_NAMES = { cpu: 'CPU (WebAssembly SIMD)', webgpu: 'WebGPU' };

function showReady(clip, { ms, origin }) {
  const [name, why] = [BACKEND_NAMES[clip.backend], clip.backendReason];
  const dl = document.createElement('dl');
  for (const [k, v] of [['Model', `${clip.name} (${clip.embedDim}-d embeddings, ${clip.imageSize}px input)`], ['Backend', name], ['Why', why || '—'], ['Weights', origin], ['Loaded in', `${(ms / 1000).toFixed(1)} s`]]) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    dd.dataset.key = k.toLowerCase().replace(/ .*/, '');
    dl.append(dt, dd);
  }
  const p = document.createElement('p');
  p.className = 'ready';
  p.textContent = '✓ Ready';
  $('model-status').replaceChildren(p, dl);
}

/** "Kept in this browser": the compact towers, the label packs and the checkpoint, with their sizes. */
async function showKept() {
  const url = state.clip ? state.url : weightsUrl(); // before a load: what the chosen model has kept
  const key = state.clip ? state.modelKey : `${$('model').value} ${url}`;
  const kept = url ? await keptFor(url) : { checkpoint: null, image: null, text: null, converted: null };
  const packs = url ? await packsKept(key) : { labels: 0, bytes: 0 };
  const imageOnly = state.clip?.towers === 'image';
  const textState = state.text ? 'loaded now' : 'not loaded yet';
  const rows = [];
  if (kept.image !== null) rows.push(['image', 'Image tower', megabytes(kept.image), `compact (auto), loaded on every visit${imageOnly ? ' · in use' : ''}`]);
  if (kept.text !== null) rows.push(['text', 'Text tower', megabytes(kept.text), `compact (auto), loaded only to encode new labels or search${imageOnly ? ` · ${textState}` : ''}`]);
  if (packs.labels) rows.push(['packs', 'Label packs', megabytes(packs.bytes), `${packs.labels} label embeddings: known labels need no text tower`]);
  if (kept.checkpoint !== null) rows.push(['checkpoint', 'Checkpoint', megabytes(kept.checkpoint), state.keeping ? `published file, ${state.keeping}`
    : kept.checkpoint > CONVERT_MAX_BYTES ? 'published file, kept: too large to convert in a browser tab (`mobileclip convert` does it)' : 'published file, kept until it is converted']);
  else if (kept.converted) rows.push(['checkpoint', 'Checkpoint', '—', `dropped: the ${megabytes(kept.converted)} download was converted to the towers above`]);
  const total = (kept.checkpoint ?? 0) + (kept.image ?? 0) + (kept.text ?? 0) + packs.bytes;
  const box = $('kept');
  box.hidden = rows.length === 0;
  $('kept-total').textContent = rows.length ? `${megabytes(total)} in all` : '';
  const table = $('kept-table');
  table.replaceChildren(...rows.map(([key, what, size, note]) => {
    const tr = document.createElement('tr');
    tr.dataset.key = key;
    for (const [tag, text] of [['th', what], ['td', size], ['td', note]]) tr.append(Object.assign(document.createElement(tag), { textContent: text }));
    return tr;
  }));
  $('forget').hidden = !(await anyCached());
}

/**
 * The largest checkpoint converted in the page. A conversion streams the checkpoint into the
 * worker's 32-bit wasm memory (at most 4 GiB) and holds at most about 1.8 times its size there
 * (BENCHMARKS.md, "Conversion": MobileCLIP2-L-14 both towers f16, 3.05 GB for 1.71 GB; one tower,
 * as here, 1.5 times): 2.2 GB checkpoints stay under 4 GB, so every shipped model (L-14 included)
 * is converted and only larger custom checkpoints stay cached as they are.
 */
const CONVERT_MAX_BYTES = 2.2e9;

/**
 * After a model was loaded from the published checkpoint: converts it (in a worker of its own)
 * into one compact file per tower, keeps them, and drops the checkpoint. The next visit loads the
 * image tower alone (a fraction of the download) and the text tower only when it is needed.
 */
async function keepCompact(url, name, checkpoint) {
  if (!hasCache() || checkpoint.size > CONVERT_MAX_BYTES) return;
  const session = state.session;
  try {
    for (const tower of ['image', 'text']) {
      state.keeping = `converting it to the ${tower} tower for the next visit…`;
      showKept();
      const bytes = await MobileClipWorker.convert({ model: name, weights: checkpoint, dtype: 'auto', towers: tower });
      await keepTower(url, tower, bytes, checkpoint.size);
    }
    await dropCheckpoint(url);
  } catch (e) {
    if (session === state.session) showError($('model-error'), Object.assign(new Error(`the weights could not be made smaller for the next visit (${e.message}); the checkpoint stays cached`), { code: 'STORAGE' }));
  } finally {
    state.keeping = '';
    if (session === state.session) showKept();
  }
}

/**
 * A model with the text tower: the loaded one, or (when it has the image tower only) the kept text
 * tower, loaded once (the published checkpoint again if it is not kept).
 */
function textModel() {
  const clip = state.clip;
  if (clip.towers !== 'image') return Promise.resolve(clip);
  const session = state.session;
  state.text ??= (async () => {
    const kept = await cachedTower(state.url, 'text');
    const weights = kept ?? (await fetchWeights(state.url, { onProgress: () => {} })).blob;
    const m = await MobileClipWorker.load({ model: kept ? undefined : clip.name, weights, backend: $('backend').value });
    if (session !== state.session) { m.dispose(); throw STALE; }
    showKept();
    return m;
  })();
  state.text.catch(() => { if (session === state.session) state.text = null; });
  return state.text;
}

async function load() {
  const name = $('model').value;
  const info = MODELS.find((m) => m.name === name);
  if (info?.unsupported) return;
  const fromFile = document.querySelector('input[name=source]:checked').value === 'file';
  const file = fromFile ? $('weights-file').files[0] : null;
  if (fromFile && !file) { $('weights-file').focus(); $('weights-file').click(); return; }
  const url = fromFile ? null : weightsUrl();
  if (!fromFile && !url) return;

  state.loading?.abort();
  state.labelling?.abort();
  state.clip?.dispose();
  state.clip = null;
  state.text?.then((m) => m.dispose(), () => {});
  state.text = null;
  state.url = url;
  const session = ++state.session;
  state.preparing = false;
  state.packs = [];
  state.pack = null;
  state.searchEmb = null;
  for (const it of state.items) Object.assign(it, { embedding: null, tags: null, match: null, timings: null, state: it.state === 'error' && it.error?.code === 'INVALID_IMAGE' ? 'error' : 'queued' });
  state.batch = { total: 0, done: 0 };
  showBatch();
  renderAll();
  const ac = new AbortController();
  state.loading = ac;
  $('model-error').hidden = true;
  $('load').disabled = true;
  $('cancel').hidden = false;
  $('load-progress').hidden = false;
  $('model-status').replaceChildren(Object.assign(document.createElement('p'), { textContent: `Loading ${name}…` }));
  setBar($('download-bar'), $('download-text'), 0, 1, '');
  setBar($('prepare-bar'), $('prepare-text'), 0, 1, 'waiting for the weights');
  const t0 = performance.now();
  let ticker = null;
  try {
    let weights, origin, compact = false, downloaded = null;
    const image = url ? await cachedTower(url, 'image') : null;
    if (image) {
      weights = image;
      compact = true;
      origin = `image tower from this browser’s cache (${megabytes(image.size)}; the text tower only when needed)`;
      setBar($('download-bar'), $('download-text'), 1, 1, `100% · ${megabytes(image.size)} image tower from the cache, no download`);
    } else if (file) {
      weights = file;
      origin = `file ${file.name} (${megabytes(file.size)})`;
      setBar($('download-bar'), $('download-text'), 1, 1, `${megabytes(file.size)} from this device`);
    } else {
      const r = await fetchWeights(url, {
        signal: ac.signal,
        onProgress: ({ loaded, total }) => setBar($('download-bar'), $('download-text'), total ? loaded : null, total, total
          ? `${Math.floor((100 * loaded) / total)}% · ${megabytes(loaded)} of ${megabytes(total)}` : megabytes(loaded)),
      });
      weights = r.blob;
      downloaded = r.blob;
      origin = r.fromCache ? `from this browser’s cache (${megabytes(r.blob.size)})` : `downloaded (${megabytes(r.blob.size)})`;
      if (r.fromCache) setBar($('download-bar'), $('download-text'), 1, 1, `100% · ${megabytes(r.blob.size)} from the cache`);
      if (r.cacheError) showError($('model-error'), Object.assign(r.cacheError, { code: 'STORAGE' }));
    }
    if (session !== state.session) return;
    const t1 = performance.now();
    const tick = () => setBar($('prepare-bar'), $('prepare-text'), null, 1, `building the model… ${((performance.now() - t1) / 1000).toFixed(1)} s`);
    tick();
    ticker = setInterval(tick, 100); // also shows that the page stays responsive meanwhile
    const clip = await MobileClipWorker.load({ model: compact ? undefined : name, weights, backend: $('backend').value, signal: ac.signal });
    clearInterval(ticker);
    if (session !== state.session) { clip.dispose(); return; }
    state.clip = clip;
    state.modelKey = `${name} ${file ? `file:${file.name}:${file.size}:${file.lastModified}` : url}`;
    showReady(clip, { ms: performance.now() - t0, origin });
    showKept();
    if (downloaded) keepCompact(url, name, downloaded); // not awaited: the model is ready
    showModelChoice();
    queueImages(state.items.filter((it) => it.state === 'queued'));
    state.preparing = true;
    updateLabels(); // not awaited: loading is over, the labels have their own progress
  } catch (e) {
    if (session !== state.session || e === STALE) return;
    showError($('model-error'), e, { model: name });
    $('load-progress').hidden = true;
    $('model-status').replaceChildren(Object.assign(document.createElement('p'), { textContent: 'No model loaded.' }));
  } finally {
    clearInterval(ticker);
    if (session === state.session) {
      state.loading = null;
      $('load').disabled = false;
      $('cancel').hidden = true;
    }
  }
}

// ---------------------------------------------------------------- labels

/** The labels of `packs` made with `templates`: those the package will not encode again. */
function knownLabels(packs, templates) {
  const same = (p) => p.templates.length === templates.length && p.templates.every((t, i) => t === templates[i]);
  return new Set(packs.filter(same).flatMap((p) => p.labels));
}

async function updateLabels() {
  state.labelling?.abort();
  const ac = new AbortController();
  state.labelling = ac;
  const session = state.session;
  state.labels = parseLines($('labels').value);
  state.templates = parseLines($('templates').value);
  state.topK = Math.max(1, Math.min(20, Number($('topk').value) || 3));
  state.pack = null;
  $('labels-error').hidden = true;
  const bad = state.templates.find((t) => !t.includes('{}'));
  const problem = state.labels.length === 0 ? 'the label list is empty'
    : state.templates.length === 0 ? 'the template list is empty'
      : bad ? `template “${bad}” has no {} for the label` : null;
  if (problem) {
    showError($('labels-error'), new MobileClipError('INVALID_ARGUMENT', problem));
    if (state.preparing) setBar($('prepare-bar'), $('prepare-text'), 1, 2, 'model built · the labels need fixing');
    renderAll();
    return;
  }
  const { labels, templates } = state;
  const counts = `${labels.length} labels × ${templates.length} template${templates.length > 1 ? 's' : ''}`;
  if (!state.clip) {
    $('labels-status').textContent = `${counts}. They are encoded once a model is loaded.`;
    renderAll();
    return;
  }
  const clip = state.clip;
  const stale = () => ac.signal.aborted || session !== state.session;
  // The pack kept from an earlier visit for this model and these templates, and this visit's.
  const found = await loadPack(state.modelKey, templates);
  if (stale()) return;
  const stored = found?.weightsId === clip.labelPackId ? found : null; // not if the file behind the URL changed
  const reuse = stored ? [stored, ...state.packs] : state.packs;
  const known = knownLabels(reuse, templates);
  const total = labels.filter((l) => !known.has(l)).length;
  const thisVisit = knownLabels(state.packs, templates);
  const remembered = labels.filter((l) => known.has(l) && !thisVisit.has(l)).length;
  const already = labels.length - total - remembered;
  const kept = [remembered && `${remembered} remembered from an earlier visit`, already && `${already} already encoded`].filter(Boolean).join(', ');
  const status = (done) => {
    const left = state.msPerLabel.get(templates.length);
    setBar($('labels-bar'), $('labels-text'), done, total, `${done} of ${total}${left ? ` · about ${formatDuration((total - done) * left)} left` : ''}`);
    if (state.preparing) setBar($('prepare-bar'), $('prepare-text'), 1 + done, 1 + total, `model built · labels ${done} of ${total}`);
  };
  $('labels-status').textContent = `${counts} = ${labels.length * templates.length} prompts${total ? `, ${total} labels to encode` : ''}${kept && ` (${kept})`}.`;
  $('labels-progress').hidden = total === 0;
  status(0);
  renderAll();
  let pack;
  let encoded = 0;
  let first = null;
  const t0 = performance.now();
  try {
    // Labels not in a pack need the text tower: an image-only model loads it first.
    if (total && clip.towers === 'image') $('labels-status').textContent = `${counts}: loading the text tower for ${total} new label${total > 1 ? 's' : ''}…`;
    const encoder = total ? await textModel() : clip;
    if (stale()) return;
    // The package encodes only the labels not in `reuse`, a few at a time, between the photos.
    pack = await encoder.labelEmbeddings(labels, {
      templates, reuse, signal: ac.signal,
      onProgress: ({ done }) => {
        // The rate since the first part (the first one may have waited behind photos).
        first ??= { done, at: performance.now() };
        const rate = done > first.done ? (performance.now() - first.at) / (done - first.done) : (performance.now() - t0) / done;
        state.msPerLabel.set(templates.length, rate);
        state.stats.labels += done - encoded;
        encoded = done;
        status(done);
        showStats();
      },
    });
  } catch (e) {
    if (stale() || e === STALE || e?.code === 'ABORTED' || e?.code === 'DISPOSED') return;
    showError($('labels-error'), e);
    return;
  }
  if (stale()) return;
  state.pack = pack;
  state.packs = [pack, ...state.packs.filter((p) => p !== pack)].slice(0, 8);
  if (state.preparing) setBar($('prepare-bar'), $('prepare-text'), 1, 1, '100% · ready');
  state.preparing = false;
  $('labels-progress').hidden = true;
  $('labels-status').textContent = `${counts}: ready${kept && ` (${kept})`}.`;
  retag();
  // Keep every label encoded with these templates for the next visit: the stored pack grown by
  // this one (the package copies the rows: nothing is encoded).
  if (total) {
    const union = [...new Set([...(stored?.labels ?? []), ...labels])];
    clip.labelEmbeddings(union, { templates, reuse: [pack, ...(stored ? [stored] : [])] })
      .then((all) => savePack(state.modelKey, all)).then(showKept).catch(() => {});
  }
}

function formatDuration(ms) {
  if (ms < 60_000) return `${Math.ceil(ms / 1000)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

/** Ranks a photo's labels (the package's zeroShot on the current pack). */
async function tag(it) {
  const pack = state.pack;
  if (!it.embedding || !pack) return;
  const tags = await state.clip.zeroShot(it.embedding, pack, { topK: state.topK });
  if (pack === state.pack) it.tags = tags;
}

async function retag() {
  const session = state.session;
  await Promise.all(state.items.map((it) => tag(it).catch(() => {})));
  if (session === state.session) renderAll();
}

let labelTimer = null;
function labelsEdited() {
  $('preset').value = 'custom';
  clearTimeout(labelTimer);
  labelTimer = setTimeout(updateLabels, 600);
}

// ---------------------------------------------------------------- photos

function addFiles(files) {
  const weights = files.filter(isCheckpoint);
  if (weights.length) useWeightsFile(weights[0]);
  const added = files.filter((f) => !isCheckpoint(f)).map(makeItem);
  if (!added.length) return;
  state.items.push(...added);
  for (const it of added) renderCard($('gallery'), it, { onRemove: removeItem });
  if (state.clip) queueImages(added);
  showStats();
}

function useWeightsFile(file) {
  const dt = new DataTransfer();
  dt.items.add(file);
  $('weights-file').files = dt.files;
  weightsFileChosen();
}

async function weightsFileChosen() {
  const file = $('weights-file').files[0];
  if (!file) return;
  document.querySelector('input[name=source][value=file]').checked = true;
  const guess = guessModel(file.name, [...$('model').options].map((o) => o.value));
  if (guess) $('model').value = guess;
  await showModelChoice();
  load();
}

function removeItem(item) {
  state.items = state.items.filter((it) => it !== item);
  URL.revokeObjectURL(item.url);
  $('gallery').querySelector(`[data-id="${item.id}"]`)?.remove();
  showStats();
}

function queueImages(items) {
  if (state.batch.done >= state.batch.total) state.batch = { total: 0, done: 0 };
  state.batch.total += items.length;
  showBatch();
  const session = state.session;
  for (const it of items) {
    it.state = 'queued';
    state.photos = state.photos.then(async () => {
      if (session !== state.session) throw STALE;
      if (!state.items.includes(it)) return;
      it.state = 'working';
      renderCard($('gallery'), it, { onRemove: removeItem });
      const t0 = performance.now();
      let bitmap;
      try {
        bitmap = await createImageBitmap(it.file);
      } catch (e) {
        throw new MobileClipError('INVALID_IMAGE', `${it.name} could not be decoded: ${e.message}`);
      }
      const t1 = performance.now();
      try {
        it.embedding = await state.clip.encodeImage(bitmap);
      } finally {
        bitmap.close();
      }
      it.timings = { decodeMs: t1 - t0, encodeMs: performance.now() - t1 };
      state.stats.images++;
      it.state = 'done';
      await tag(it);
      if (state.searchEmb) { it.match = state.clip.similarity(state.searchEmb, it.embedding); sortBySearch(); }
    }).catch((e) => {
      if (e === STALE || session !== state.session) return;
      it.state = 'error';
      it.error = e;
    }).finally(() => {
      if (session !== state.session) return;
      state.batch.done++;
      showBatch();
      renderCard($('gallery'), it, { onRemove: removeItem });
      showStats();
    });
  }
}

function showBatch() {
  const { total, done } = state.batch;
  $('batch').hidden = total === 0;
  setBar($('batch-bar'), $('batch-text'), done, total, `${done} of ${total} photos tagged`);
}

function renderAll() {
  for (const it of state.items) renderCard($('gallery'), it, { onRemove: removeItem });
  showStats();
}

function showStats() {
  const n = state.items.length;
  $('empty').hidden = n > 0;
  const labels = new Set(state.packs.flatMap((p) => p.labels)).size;
  $('stats').textContent = n === 0 ? '' : `${n} photo${n > 1 ? 's' : ''} · ${state.stats.images} image embeddings computed · ${labels} label embeddings kept (${state.stats.labels} computed)`;
}

// ---------------------------------------------------------------- search

function sortBySearch() {
  const order = [...state.items].sort((a, b) => (b.match ?? -Infinity) - (a.match ?? -Infinity));
  reorder($('gallery'), order);
}

async function search(query) {
  if (!query) return clearSearch();
  if (!state.clip) { $('search-status').textContent = 'Load a model first.'; return; }
  const session = state.session;
  $('search-status').textContent = `Searching for “${query}”…`;
  try {
    if (state.clip.towers === 'image' && !state.text) $('search-status').textContent = `Loading the text tower to search for “${query}”…`;
    const emb = await (await textModel()).encodeText(query);
    if (session !== state.session) return;
    state.searchEmb = emb;
    for (const it of state.items) it.match = it.embedding ? state.clip.similarity(emb, it.embedding) : null;
    sortBySearch();
    renderAll();
    $('clear-search').hidden = false;
    $('search-status').textContent = `Photos sorted by how well they match “${query}”, best first.`;
  } catch (e) {
    if (e === STALE || session !== state.session) return;
    $('search-status').textContent = explain(e).title;
  }
}

function clearSearch() {
  state.searchEmb = null;
  for (const it of state.items) it.match = null;
  reorder($('gallery'), state.items);
  renderAll();
  $('search').value = '';
  $('clear-search').hidden = true;
  $('search-status').textContent = '';
}

// ---------------------------------------------------------------- wiring

async function applyPreset(key) {
  if (key === 'custom') return;
  const p = await labelPreset(key);
  $('labels').value = p.labels.join('\n');
  if (p.templates) $('templates').value = p.templates.join('\n');
  updateLabels();
}

async function init() {
  const names = await modelNames();
  for (const name of names) {
    const info = MODELS.find((m) => m.name === name);
    const opt = new Option(info?.unsupported ? `${name} (not in browsers yet)` : name, name);
    opt.disabled = !!info?.unsupported;
    $('model').append(opt);
  }
  const wanted = params.get('model') ?? 'MobileCLIP-S0';
  $('model').value = names.includes(wanted) ? wanted : 'MobileCLIP-S0';
  listPublishedFiles();
  for (const [key, p] of Object.entries(LABEL_PRESETS)) $('preset').append(new Option(p.title, key));
  $('preset').append(new Option('Custom', 'custom'));
  $('preset').value = 'everyday';
  $('labels').value = LABEL_PRESETS.everyday.labels.join('\n');
  $('templates').value = (await templatePreset('single')).join('\n');

  $('model-form').addEventListener('submit', (e) => { e.preventDefault(); load(); });
  $('load').disabled = false; // disabled in the HTML until this handler exists: a click before it would submit the form
  $('cancel').addEventListener('click', () => state.loading?.abort());
  $('published-file').addEventListener('change', async () => {
    if (await showModelChoice() && document.querySelector('input[name=source]:checked').value === 'url') load();
  });
  $('model').addEventListener('change', async () => {
    listPublishedFiles();
    if (await showModelChoice() && document.querySelector('input[name=source]:checked').value === 'url') load();
  });
  $('weights-file').addEventListener('change', weightsFileChosen);
  $('forget').addEventListener('click', async () => { await Promise.all([forgetWeights(), forgetPacks()]); showKept(); showModelChoice(); });
  $('preset').addEventListener('change', () => applyPreset($('preset').value));
  $('labels').addEventListener('input', labelsEdited);
  $('templates').addEventListener('input', () => { clearTimeout(labelTimer); labelTimer = setTimeout(updateLabels, 600); });
  $('topk').addEventListener('change', () => { state.topK = Math.max(1, Math.min(20, Number($('topk').value) || 3)); retag(); });
  for (const b of document.querySelectorAll('[data-templates]')) {
    b.addEventListener('click', async () => { $('templates').value = (await templatePreset(b.dataset.templates)).join('\n'); updateLabels(); });
  }
  $('image-files').addEventListener('change', () => { addFiles([...$('image-files').files]); $('image-files').value = ''; });
  $('samples').addEventListener('click', async () => {
    const files = await Promise.all(SAMPLES.map(async (u) => new File([await (await fetch(u)).blob()], u.pathname.split('/').pop().replace(/\.[0-9a-f]{8}\./, '.'), { type: 'image/jpeg' })));
    addFiles(files);
  });
  $('search-form').addEventListener('submit', (e) => { e.preventDefault(); search($('search').value.trim()); });
  $('clear-search').addEventListener('click', clearSearch);

  // Drop anywhere on the page; paste anywhere except into a text field.
  const zone = $('dropzone');
  document.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  document.addEventListener('dragleave', (e) => { if (!e.relatedTarget) zone.classList.remove('over'); });
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    addFiles([...(e.dataTransfer?.files ?? [])]);
  });
  document.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.files ?? [])];
    if (files.length) { e.preventDefault(); addFiles(files); }
  });
  setupCamera({ button: $('camera'), dialog: $('camera-dialog'), video: $('camera-video'), snap: $('snap'), close: $('camera-close'), error: $('camera-error') },
    (file) => addFiles([file]));

  updateLabels();
  showKept();
  if (await showModelChoice()) load(); // downloaded before: load it straight away, offline
}

init().catch((e) => showError($('model-error'), e));
