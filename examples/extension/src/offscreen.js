// The offscreen document: owns the Web Worker that holds the model, relays the service worker's
// requests to it ('tag' an image, 'prepare' the label embeddings) and its progress lines back.
// The worker (and the model's memory) is dropped after IDLE_MS without requests and started
// again on the next one.
const IDLE_MS = 10 * 60 * 1000;
let worker = null;
let idleTimer = null;
const pending = new Map(); // request id → resolve

function startWorker() {
  worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  worker.onmessage = ({ data }) => {
    if (data.type === 'progress') {
      chrome.runtime.sendMessage({ target: 'background', type: 'progress', id: data.id, text: data.text }).catch(() => {});
      return;
    }
    pending.get(data.id)?.(data);
    pending.delete(data.id);
    if (pending.size === 0) idleTimer = setTimeout(stopWorker, IDLE_MS);
  };
  worker.onerror = (e) => {
    const message = `the model worker failed: ${e.message ?? 'unknown error'}`;
    for (const resolve of pending.values()) resolve({ ok: false, code: 'INTERNAL', message });
    pending.clear();
    stopWorker();
  };
}

function stopWorker() {
  worker?.terminate();
  worker = null;
}

chrome.runtime.onMessage.addListener((msg, sender, sendResponse) => {
  if (msg?.target !== 'offscreen' || (msg.type !== 'tag' && msg.type !== 'prepare')) return false;
  clearTimeout(idleTimer);
  if (!worker) startWorker();
  pending.set(msg.id, sendResponse);
  const { id, type, srcUrl, labels, templates, topK } = msg;
  worker.postMessage({ id, type, srcUrl, labels, templates, topK });
  return true; // answers asynchronously
});
