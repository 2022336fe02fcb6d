// Checkpoints: downloaded once with progress and kept in the Cache API until they are converted
// to compact files (below), or read from a file on the device. The download runs on the page (under its CSP); the bytes then
// go to the worker as a Blob, by reference.
import { MobileClipError } from 'mobileclip-wasm';

const CACHE = 'mobileclip-weights-v1';
export const hasCache = () => typeof caches !== 'undefined' && window.isSecureContext;

/** The cached checkpoint for `url`, or null. */
export async function cached(url) {
  if (!hasCache()) return null;
  try {
    return (await (await caches.open(CACHE)).match(url)) ?? null;
  } catch {
    return null;
  }
}

/**
 * The checkpoint at `url` as a Blob: from the cache, else downloaded (progress as
 * `{loaded, total}`) and stored for next time. `cacheError` is set when it could not be stored.
 */
export async function fetchWeights(url, { onProgress, signal }) {
  const hit = await cached(url);
  if (hit) {
    const blob = await hit.blob();
    onProgress({ loaded: blob.size, total: blob.size });
    return { blob, fromCache: true };
  }
  const res = await fetch(url, { signal, credentials: 'omit', referrerPolicy: 'no-referrer' });
  if (!res.ok) throw new MobileClipError('WEIGHTS_DOWNLOAD', `HTTP ${res.status} ${res.statusText} for ${url}`);
  const total = Number(res.headers.get('content-length')) || 0;
  let loaded = 0;
  const counted = res.body.pipeThrough(new TransformStream({
    transform(chunk, out) {
      loaded += chunk.length;
      onProgress({ loaded, total });
      out.enqueue(chunk);
    },
  }));
  if (!hasCache()) return { blob: await new Response(counted).blob(), fromCache: false };
  // One stream to the cache, one to the model: a failed cache write does not stop the download.
  const [toCache, toModel] = counted.tee();
  const headers = { 'content-type': 'application/octet-stream', ...(total ? { 'content-length': String(total) } : {}) };
  let cacheError = null;
  const store = caches.open(CACHE).then((c) => c.put(url, new Response(toCache, { headers }))).catch((e) => { cacheError = e; });
  const blob = await new Response(toModel).blob();
  await store;
  return { blob, fromCache: false, cacheError: signal?.aborted ? null : cacheError };
}

// After the first download, the page keeps the model as two compact files (MobileClip.convert,
// dtype 'auto'), one per tower, under keys derived from the checkpoint's URL, and drops the
// checkpoint: the image tower is loaded on every visit, the text tower only when labels must be
// encoded or a search is typed (label packs cover the labels already encoded, see store.js).

/** The Cache API key of a tower's compact file converted from the checkpoint at `url`. */
function compactKey(url, tower) {
  const key = new URL(url);
  key.searchParams.set('mobileclip-compact', `${tower}-auto`);
  return key.href;
}

/** The kept compact file of `tower` ('image' or 'text') for the checkpoint at `url`, as a Blob, or null. */
export async function cachedTower(url, tower) {
  const hit = await cached(compactKey(url, tower));
  return hit ? hit.blob() : null;
}

/** Keeps a tower's compact file (bytes) for the checkpoint at `url`; throws when the cache refuses it. */
export async function keepTower(url, tower, bytes, checkpointSize) {
  const headers = { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length), 'x-checkpoint-size': String(checkpointSize) };
  await (await caches.open(CACHE)).put(compactKey(url, tower), new Response(bytes, { headers }));
}

/** Drops the cached checkpoint at `url` (its compact towers are kept). */
export async function dropCheckpoint(url) {
  if (hasCache()) await (await caches.open(CACHE)).delete(url);
}

/**
 * What is kept for the checkpoint at `url`: `{ checkpoint, image, text, converted }`, each the size
 * in bytes of what the cache holds (or null); `converted` is the size of the checkpoint the towers
 * came from.
 */
export async function keptFor(url) {
  const entry = async (key) => {
    const hit = await cached(key);
    if (!hit) return null;
    return { size: Number(hit.headers.get('content-length')) || (await hit.blob()).size, from: Number(hit.headers.get('x-checkpoint-size')) || null };
  };
  const [checkpoint, image, text] = await Promise.all([entry(url), entry(compactKey(url, 'image')), entry(compactKey(url, 'text'))]);
  return { checkpoint: checkpoint?.size ?? null, image: image?.size ?? null, text: text?.size ?? null, converted: image?.from ?? text?.from ?? null };
}

/** Bytes this site keeps in the browser's storage (mostly cached weights), or null if unknown. */
export async function storageUsed() {
  try {
    return (await navigator.storage?.estimate?.())?.usage ?? null;
  } catch {
    return null;
  }
}

/** Whether any weights are cached. */
export async function anyCached() {
  if (!hasCache()) return false;
  try {
    return (await (await caches.open(CACHE)).keys()).length > 0;
  } catch {
    return false;
  }
}

/** Deletes the cached weights. */
export async function forgetWeights() {
  if (hasCache()) await caches.delete(CACHE);
}

/** The model a checkpoint file name points to (`mobileclip_s0.pt` → MobileCLIP-S0), if any. */
export function guessModel(fileName, names) {
  const m = /^mobileclip(2?)_(s\d|b|l_14)(?:lt)?\b/i.exec(fileName);
  if (!m) return null;
  const name = `MobileCLIP${m[1]}-${m[2].toUpperCase().replace('_', '-')}`;
  return names.includes(name) ? name : null;
}

/** Whether a dropped file looks like a checkpoint rather than a photo. */
export const isCheckpoint = (file) => /\.(pt|pth|bin|safetensors)$/i.test(file.name);

/** "216 MB", "4.1 kB" */
export function megabytes(bytes) {
  if (bytes < 1e6) return `${(bytes / 1e3).toLocaleString('en', { maximumFractionDigits: 1 })} kB`;
  return `${(bytes / 1e6).toLocaleString('en', { maximumFractionDigits: bytes < 1e7 ? 1 : 0 })} MB`;
}
