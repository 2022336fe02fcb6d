// mobileclip-wasm/worker: the MobileClip API with the model in a dedicated module Worker, so the
// calling thread stays responsive while weights are parsed and images/texts are encoded.
// Images become transferable pixels here (an ImageBitmap, or a copy of the RGBA buffer) and are
// moved, not copied, to the worker; embeddings come back the same way.

import { describe, imageSource, isA, MobileClipError, readResponse, toRgba } from './common.js';
import { similarity } from './index.js';

export { MobileClipError };

const ABORTED = () => new MobileClipError('ABORTED', 'loading was aborted');
const DISPOSED = () => new MobileClipError('DISPOSED', 'the model was disposed; load it again');

/** Yields to the event loop (timers, input, rendering) between chunks of work on this thread. */
const pause = () => new Promise((r) => setTimeout(r, 0));

/**
 * An image source as a message part: `[value, transferList]`. Never detaches the caller's data.
 * A canvas is read here with getImageData, as the main-thread API reads it: redrawn from an
 * ImageBitmap on the worker's canvas, its semi-transparent pixels came out 1/255 off in WebKitGTK
 * (which rounds premultiplied alpha differently on a willReadFrequently canvas). Other drawables
 * go as an ImageBitmap when the worker can draw one (`workerDraws`: it has a 2d OffscreenCanvas;
 * Safari before 16.4 has none) and are read here otherwise.
 */
async function imagePart(src, workerDraws) {
  const img = imageSource(src);
  if (img.kind === 'pixels') { // ImageData or an ImageData-like object: copy its pixels
    const { data, width, height } = img;
    const copy = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    return [{ data: copy, width, height }, [copy.buffer]];
  }
  if (img.kind === 'canvas' || !workerDraws) { // getImageData gives a fresh buffer: moved, not copied again
    const { data, width, height } = toRgba(src);
    return [{ data, width, height }, [data.buffer]];
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(src);
  } catch (e) {
    throw new MobileClipError('INVALID_IMAGE', `could not read the image: ${e?.message ?? e}`);
  }
  return [bitmap, [bitmap]];
}

/** Weights as a message part; URLs are resolved against the calling document and fetched in the worker. */
async function weightsPart(weights, onProgress, signal) {
  if (typeof weights === 'string' || weights instanceof URL) {
    return [new URL(weights, globalThis.document?.baseURI ?? globalThis.location?.href).href, []];
  }
  if (isA(weights, 'Blob')) return [weights, []]; // cloned by reference, not copied
  if (weights instanceof ArrayBuffer) return [weights, [weights]];
  if (ArrayBuffer.isView(weights)) {
    const { buffer, byteOffset, byteLength } = weights;
    if (buffer instanceof ArrayBuffer && byteOffset === 0 && byteLength === buffer.byteLength) return [weights, [buffer]];
    const copy = new Uint8Array(buffer, byteOffset, byteLength).slice();
    return [copy, [copy.buffer]];
  }
  if (isA(weights, 'Response')) { // read here (its body cannot move to the worker everywhere)
    const bytes = await readResponse(weights, onProgress, signal);
    return [bytes, [bytes.buffer]];
  }
  if (weights === undefined) return [undefined, []]; // the worker's MobileClip.load says what is missing
  throw new MobileClipError('INVALID_ARGUMENT', `weights must be a URL, Response, Blob, ArrayBuffer or Uint8Array, got ${describe(weights)}`);
}

/**
 * A MobileCLIP model running in a dedicated module Worker. Create it with
 * `MobileClipWorker.load(...)`; it has the methods and getters of `MobileClip` (not `raw`).
 */
export class MobileClipWorker {
  #worker;
  #info;
  #calls = new Map();
  #nextId = 1;

  constructor(worker, info) {
    this.#worker = worker;
    this.#info = info;
    this.#listen();
  }

  /**
   * Same options as `MobileClip.load`. URL weights are fetched inside the worker (progress is
   * forwarded); ArrayBuffer/Uint8Array weights are transferred (the caller's buffer is detached),
   * Blobs are passed by reference, a Response is read here and its bytes transferred.
   */
  static async load({ model, weights, backend = 'auto', threads = 'auto', integrity, onProgress, signal } = {}) {
    if (signal?.aborted) throw ABORTED();
    let worker;
    try {
      const [w, transfer] = await weightsPart(weights, onProgress, signal);
      if (signal?.aborted) throw ABORTED();
      worker = new Worker(new URL('./worker-entry.js', import.meta.url), { type: 'module', name: 'mobileclip' });
      const info = await new Promise((resolve, reject) => {
        const stop = (e) => { signal?.removeEventListener('abort', onAbort); reject(e); };
        const onAbort = () => stop(ABORTED());
        signal?.addEventListener('abort', onAbort, { once: true });
        worker.onerror = (e) => { e.preventDefault?.(); stop(new MobileClipError('INTERNAL', `the worker failed to start: ${e.message || 'could not load worker-entry.js'}`)); };
        worker.onmessage = ({ data }) => {
          if (data.progress) { onProgress?.(data.progress); return; }
          signal?.removeEventListener('abort', onAbort);
          if (data.error) reject(new MobileClipError(data.error.code, data.error.message));
          else resolve(data.result);
        };
        const cfg = model === undefined || typeof model === 'string' ? model : JSON.parse(JSON.stringify(model));
        worker.postMessage({ id: 0, op: 'load', model: cfg, weights: w, backend, threads, integrity }, transfer);
      });
      return new MobileClipWorker(worker, info);
    } catch (e) {
      worker?.terminate();
      if (e instanceof MobileClipError) throw e;
      if (e?.name === 'AbortError') throw ABORTED();
      throw new MobileClipError(e?.name === 'DataCloneError' ? 'INVALID_ARGUMENT' : 'INTERNAL', e?.message ?? String(e));
    }
  }

  #listen() {
    this.#worker.onmessage = ({ data }) => {
      const call = this.#calls.get(data.id);
      if (!call) return;
      this.#calls.delete(data.id);
      if (data.error) call.reject(new MobileClipError(data.error.code, data.error.message));
      else call.resolve(data.result);
    };
    const fail = (message) => {
      const err = new MobileClipError('INTERNAL', message);
      for (const c of this.#calls.values()) c.reject(err);
      this.#calls.clear();
    };
    this.#worker.onerror = (e) => { e.preventDefault?.(); fail(`the worker failed: ${e.message}`); };
    this.#worker.onmessageerror = () => fail('a message from the worker could not be read');
  }

  /** Sends one operation; `parts()` gives `[message, transferList]` (prepared on this side). */
  async #call(op, parts, cloneErrorCode) {
    if (!this.#worker) throw DISPOSED();
    const [args, transfer] = await parts();
    if (!this.#worker) { for (const t of transfer) t.close?.(); throw DISPOSED(); }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#calls.set(id, { resolve, reject });
      try {
        this.#worker.postMessage({ id, op, ...args }, transfer);
      } catch (e) {
        this.#calls.delete(id);
        for (const t of transfer) t.close?.();
        const tainted = e?.name === 'DataCloneError' && transfer.some((t) => isA(t, 'ImageBitmap'));
        reject(tainted
          ? new MobileClipError('TAINTED_IMAGE', 'the image is cross-origin without CORS (a tainted image cannot be read)')
          : new MobileClipError(cloneErrorCode, `the arguments cannot be sent to the worker: ${e?.message ?? e}`));
      }
    });
  }

  /** The backend in use and why, e.g. "cpu: WebGPU backend not built into this package". */
  get backend() { return this.#worker ? this.#info.backend : 'disposed'; }
  get name() { return this.#worker ? this.#info.name : undefined; }
  get embedDim() { return this.#worker ? this.#info.embedDim : undefined; }
  get imageSize() { return this.#worker ? this.#info.imageSize : undefined; }
  get logitScale() { return this.#worker ? this.#info.logitScale : undefined; }
  get towers() { return this.#worker ? this.#info.towers : undefined; }

  /** L2-normalised embedding of one image source. */
  async encodeImage(src) {
    return (await this.encodeImages([src]))[0];
  }

  /** L2-normalised embeddings of several image sources. */
  encodeImages(srcs) {
    return this.#call('encodeImages', async () => {
      if (!Array.isArray(srcs) || srcs.length === 0) throw new MobileClipError('INVALID_IMAGE', 'encodeImages needs a non-empty array of images');
      const images = [], transfer = [];
      let copied = 0;
      try {
        for (const src of srcs) {
          const [image, t] = await imagePart(src, this.#info.workerDraws);
          images.push(image);
          transfer.push(...t);
          copied += image.data?.byteLength ?? 0;
          if (copied > 4 << 20) { copied = 0; await pause(); } // long batches of pixels: let the page breathe
        }
      } catch (e) {
        for (const i of images) i.close?.();
        throw e;
      }
      return [{ images }, transfer];
    }, 'INVALID_IMAGE');
  }

  /** L2-normalised embedding(s): a Float32Array for a string, an array of them for an array. */
  encodeText(text) {
    return this.#call('encodeText', () => [{ text }, []], 'INVALID_TEXT');
  }

  /**
   * Zero-shot tagging: `[{label, score}]`, best first.
   * @param image an image source or an image embedding (Float32Array)
   */
  zeroShot(image, labels, { templates, topK } = {}) {
    return this.#call('zeroShot', async () => {
      const [img, transfer] = image instanceof Float32Array ? [image, []] : await imagePart(image, this.#info.workerDraws);
      return [{ image: img, labels, options: { templates, topK } }, transfer];
    }, 'INVALID_ARGUMENT');
  }

  /** Cosine similarity of two embeddings (computed here, no round trip). */
  similarity(a, b) { return similarity(a, b); }

  /** Terminates the worker; pending and later calls reject with code DISPOSED. */
  dispose() {
    this.#worker?.terminate();
    this.#worker = null;
    for (const c of this.#calls.values()) c.reject(DISPOSED());
    this.#calls.clear();
  }
}
