// The extension's IndexedDB: the chosen weights (a Blob plus the model name or config) and cached
// label embeddings. Shared by the options page and the model worker (same extension origin).

const DB = 'mobileclip-extension';
const STORE = 'kv';
let opened = null;

function open() {
  opened ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => { opened = null; reject(req.error); };
  });
  return opened;
}

function tx(mode, f) {
  return open().then((db) => new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode);
    const req = f(t.objectStore(STORE));
    t.oncomplete = () => resolve(req.result);
    t.onerror = t.onabort = () => reject(t.error ?? req.error);
  }));
}

export const getItem = (key) => tx('readonly', (s) => s.get(key));
export const setItem = (key, value) => tx('readwrite', (s) => s.put(value, key));
export const deleteItem = (key) => tx('readwrite', (s) => s.delete(key));

/**
 * The weights record, or undefined: `{ model, modelName, image, text, source, bytes, savedAt }`:
 * `image` and `text` are the compact files of the two towers (Blobs, `MobileClip.convert`),
 * `bytes` the size of the checkpoint they came from (not kept); `model` is a shipped model name
 * or a config object, as `MobileClip.convert` takes it. Records of earlier versions hold the
 * checkpoint itself as `blob` instead of `image` and `text`.
 */
export const getWeights = () => getItem('weights');
export const setWeights = (record) => setItem('weights', record);
