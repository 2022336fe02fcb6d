// Label packs kept in IndexedDB per model, weights and templates, so that a label set (ImageNet's
// thousand classes, say) is encoded once, not on every visit. A pack holds every label encoded so
// far with those templates; the package reuses its rows (`labelEmbeddings(..., { reuse })`).
import { LabelPack } from 'mobileclip-wasm';

const DB = 'mobileclip-demo';
const STORE = 'packs';
let db = null;

function open() {
  db ??= new Promise((ok, fail) => {
    const req = indexedDB.open(DB, 2);
    req.onupgradeneeded = () => {
      const d = req.result;
      if (d.objectStoreNames.contains('prompts')) d.deleteObjectStore('prompts'); // version 1: one embedding per prompt
      if (!d.objectStoreNames.contains(STORE)) d.createObjectStore(STORE);
    };
    req.onsuccess = () => ok(req.result);
    req.onerror = () => fail(req.error);
  }).catch(() => null); // private modes without IndexedDB: nothing is kept
  return db;
}

const key = (model, templates) => `${model}\u0000${JSON.stringify(templates)}`;

function done(tx) {
  return new Promise((ok, fail) => { tx.oncomplete = ok; tx.onerror = tx.onabort = () => fail(tx.error); });
}

/** The stored pack of `model` (its name and weights) and `templates`, or null (none, or unreadable). */
export async function loadPack(model, templates) {
  const d = await open();
  if (!d) return null;
  const tx = d.transaction(STORE, 'readonly');
  const req = tx.objectStore(STORE).get(key(model, templates));
  await done(tx).catch(() => {});
  try {
    return req.result ? LabelPack.fromBytes(req.result) : null;
  } catch {
    return null; // written by an older page, or damaged: encode again
  }
}

/** Stores a pack for `model` and its templates (best effort). */
export async function savePack(model, pack) {
  const d = await open();
  if (!d) return;
  const tx = d.transaction(STORE, 'readwrite');
  tx.objectStore(STORE).put(pack.toBytes(), key(model, pack.templates));
  await done(tx).catch(() => {});
}

/** Deletes every stored pack. */
export async function forgetPacks() {
  const d = await open();
  if (!d) return;
  const tx = d.transaction(STORE, 'readwrite');
  tx.objectStore(STORE).clear();
  await done(tx).catch(() => {});
}

/** `{ labels, bytes }` of the packs stored for `model` (its name and weights), every template set together. */
export async function packsKept(model) {
  const d = await open();
  if (!d) return { labels: 0, bytes: 0 };
  const tx = d.transaction(STORE, 'readonly');
  const range = IDBKeyRange.bound(`${model}\u0000`, `${model}\u0001`);
  const values = tx.objectStore(STORE).getAll(range);
  await done(tx).catch(() => {});
  let labels = 0, bytes = 0;
  (values.result ?? []).forEach((v) => {
    bytes += v.byteLength ?? 0;
    try { labels += LabelPack.fromBytes(v).size; } catch { /* unreadable: encoded again */ }
  });
  return { labels, bytes };
}
