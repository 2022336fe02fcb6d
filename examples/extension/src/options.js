// The options page: choose the weights once (download from Hugging Face or a local file); they
// are converted (in a worker) into one compact file per tower, which the extension's IndexedDB
// keeps instead of the checkpoint: tagging loads the image tower alone, the text tower is loaded
// only to encode labels the stored label pack lacks. Edit the labels.
import { MobileClip } from './mobileclip/index.js';
import { MobileClipWorker } from './mobileclip/worker.js';
import { BACKEND, DEFAULT_SETTINGS, MODELS, loadSettings } from './settings.js';
import { deleteItem, getWeights, setWeights } from './store.js';

const $ = (id) => document.getElementById(id);
const CUSTOM = 'custom';

function status(id, text, kind = '') {
  $(id).textContent = text;
  $(id).className = `status ${kind}`;
}

const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;

async function showCurrent() {
  const rec = await getWeights();
  const when = rec && new Date(rec.savedAt).toLocaleString();
  $('current').textContent = !rec ? 'No weights yet: download them or choose a file below.'
    : rec.image ? `In use: ${rec.modelName}, kept as an image tower of ${mb(rec.image.size)} (loaded to tag) and a text tower of ${mb(rec.text.size)} (loaded only when labels change), converted from the ${mb(rec.bytes)} checkpoint from ${rec.source}, which is not kept (${when}).`
      : `In use: ${rec.modelName}, ${mb(rec.bytes)} from ${rec.source} (${when}).`;
  $('remove').disabled = !rec;
}

// Model choice: the shipped configs worth running on a CPU, or a config file.
for (const m of MODELS) $('model').append(new Option(m.name, m.name));
$('model').append(new Option('Custom config (JSON file)…', CUSTOM));
function onModelChange() {
  const custom = $('model').value === CUSTOM;
  $('config-row').hidden = !custom;
  const m = MODELS.find((x) => x.name === $('model').value);
  if (m) $('url').value = m.url;
}
$('model').addEventListener('change', onModelChange);
onModelChange();

/** The model as MobileClip.load takes it: a shipped name or the parsed config object. */
async function chosenModel() {
  if ($('model').value !== CUSTOM) return { model: $('model').value, modelName: $('model').value };
  const file = $('config').files[0];
  if (!file) throw new Error('Choose the config file first.');
  let config;
  try {
    config = JSON.parse(await file.text());
  } catch (e) {
    throw new Error(`${file.name} is not JSON: ${e.message}`);
  }
  return { model: config, modelName: config.name ?? file.name };
}

/**
 * Has the model worker encode the labels now (it keeps the embeddings), so that the first click
 * on an image does not wait for the text encoder. Progress and result go to the status line `id`.
 */
async function prepareLabels(id, prefix) {
  if (!(await getWeights())) return status(id, prefix, 'ok');
  const req = crypto.randomUUID();
  const onProgress = (msg) => { if (msg?.type === 'progress' && msg.id === req) status(id, `${prefix} ${msg.text}`); };
  chrome.runtime.onMessage.addListener(onProgress);
  status(id, `${prefix} Preparing the labels…`);
  try {
    const res = await chrome.runtime.sendMessage({ target: 'background', type: 'prepare', id: req });
    if (res?.ok) status(id, `${prefix} ${res.count} labels ready (${Math.round(res.ms)} ms).`, 'ok');
    else status(id, `${prefix} Preparing the labels failed: ${res?.message}`, 'error');
  } finally {
    chrome.runtime.onMessage.removeListener(onProgress);
  }
}

/**
 * Converts the checkpoint (in a worker; this also checks that it fits the model) into a compact
 * file per tower, checks the image tower loads, and stores both instead of the checkpoint.
 */
async function checkAndStore(blob, source) {
  const { model, modelName } = await chosenModel();
  const towers = {};
  for (const tower of ['image', 'text']) {
    status('weights-status', `Converting ${mb(blob.size)} of weights of ${modelName} to a small ${tower} tower (once)…`);
    towers[tower] = new Blob([await MobileClipWorker.convert({ model, weights: blob, dtype: 'auto', towers: tower })]);
  }
  const t0 = performance.now();
  const clip = await MobileClip.load({ weights: towers.image, backend: BACKEND });
  const info = `${clip.name}, ${clip.embedDim}-d embeddings, image tower loaded in ${Math.round(performance.now() - t0)} ms`;
  clip.dispose();
  await setWeights({ model, modelName, image: towers.image, text: towers.text, source, bytes: blob.size, savedAt: Date.now() });
  status('weights-status', `Saved. ${info}.`);
  await showCurrent();
  await prepareLabels('weights-status', `Saved. ${info}.`);
}

function busy(on) {
  for (const id of ['download', 'file', 'model', 'config', 'remove']) $(id).disabled = on;
}

let abort = null;
$('download').addEventListener('click', async () => {
  busy(true);
  abort = new AbortController();
  $('cancel').hidden = false;
  const bar = $('progress');
  bar.hidden = false;
  bar.removeAttribute('value');
  try {
    await chosenModel(); // fail before downloading hundreds of MB
    const url = new URL($('url').value);
    status('weights-status', `Downloading ${url.href}…`);
    const res = await fetch(url, { signal: abort.signal, credentials: 'omit', referrerPolicy: 'no-referrer' });
    if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`);
    const total = Number(res.headers.get('content-length')) || 0;
    const chunks = [];
    let loaded = 0;
    for (const reader = res.body.getReader(); ;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      loaded += value.length;
      if (total) bar.value = loaded / total;
      status('weights-status', `Downloading: ${mb(loaded)}${total ? ` of ${mb(total)}` : ''}…`);
    }
    await checkAndStore(new Blob(chunks), url.href);
  } catch (e) {
    status('weights-status', e.name === 'AbortError' ? 'Download cancelled.' : `Failed: ${e.message}`, 'error');
  } finally {
    busy(false);
    $('cancel').hidden = true;
    bar.hidden = true;
  }
});
$('cancel').addEventListener('click', () => abort?.abort());

$('file').addEventListener('change', async () => {
  const file = $('file').files[0];
  if (!file) return;
  busy(true);
  try {
    await checkAndStore(file, `the file ${file.name}`);
  } catch (e) {
    status('weights-status', `Failed: ${e.message}`, 'error');
  } finally {
    busy(false);
    $('file').value = '';
  }
});

$('remove').addEventListener('click', async () => {
  await deleteItem('weights');
  await deleteItem('labelPack');
  status('weights-status', 'Removed.');
  await showCurrent();
});

// Labels, templates, number of tags: chrome.storage.local.
function showSettings(s) {
  $('labels').value = s.labels.join('\n');
  $('templates').value = s.templates.join('\n');
  $('topk').value = s.topK;
}
const lines = (id) => $(id).value.split('\n').map((l) => l.trim()).filter(Boolean);

$('save').addEventListener('click', async () => {
  const labels = [...new Set(lines('labels'))];
  const templates = lines('templates');
  const topK = Math.max(1, Math.min(50, Number($('topk').value) || DEFAULT_SETTINGS.topK));
  if (labels.length === 0) return status('labels-status', 'Give at least one label.', 'error');
  const bad = templates.find((t) => !t.includes('{}'));
  if (templates.length === 0 || bad !== undefined) return status('labels-status', `Every template needs {} for the label${bad ? ` (“${bad}” has none)` : ''}.`, 'error');
  await chrome.storage.local.set({ labels, templates, topK });
  showSettings({ labels, templates, topK });
  status('labels-status', `Saved ${labels.length} labels.`);
  await prepareLabels('labels-status', `Saved ${labels.length} labels.`);
});

$('reset').addEventListener('click', async () => {
  await chrome.storage.local.remove(Object.keys(DEFAULT_SETTINGS));
  showSettings(DEFAULT_SETTINGS);
  status('labels-status', 'Back to the defaults.');
  await prepareLabels('labels-status', 'Back to the defaults.');
});

showSettings(await loadSettings());
await showCurrent();
document.body.dataset.ready = 'true';
