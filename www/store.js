// Prompt embeddings kept in IndexedDB per model and weights, so that a label set (ImageNet's
// thousand classes, say) is encoded once, not on every visit.

const DB = 'mobileclip-demo';
const STORE = 'prompts';
let db = null;

function open() {
  db ??= new Promise((ok, fail) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => ok(req.result);
    req.onerror = () => fail(req.error);
  }).catch(() => null); // private modes without IndexedDB: nothing is kept
  return db;
}

const key = (model, prompt) => `${model}\u0000${prompt}`;

function done(tx) {
  return new Promise((ok, fail) => { tx.oncomplete = ok; tx.onerror = tx.onabort = () => fail(tx.error); });
}

/** The stored embeddings of `prompts` for `model`: a Map of those found. */
export async function loadPrompts(model, prompts) {
  const found = new Map();
  const d = await open();
  if (!d || prompts.length === 0) return found;
  const tx = d.transaction(STORE, 'readonly');
  const store = tx.objectStore(STORE);
  for (const p of prompts) {
    const req = store.get(key(model, p));
    req.onsuccess = () => { if (req.result instanceof Float32Array) found.set(p, req.result); };
  }
  await done(tx).catch(() => {});
  return found;
}

/** Stores `[prompt, embedding]` pairs for `model` (best effort). */
export async function savePrompts(model, entries) {
  const d = await open();
  if (!d) return;
  const tx = d.transaction(STORE, 'readwrite');
  for (const [p, e] of entries) tx.objectStore(STORE).put(e, key(model, p));
  await done(tx).catch(() => {});
}

/** Deletes every stored embedding. */
export async function forgetPrompts() {
  const d = await open();
  if (!d) return;
  const tx = d.transaction(STORE, 'readwrite');
  tx.objectStore(STORE).clear();
  await done(tx).catch(() => {});
}
