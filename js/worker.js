// mobileclip-wasm/worker: the MobileClip API with the model in a dedicated module Worker, so the
// calling thread stays responsive while weights are parsed and images/texts are encoded.
// Images become transferable pixels here (an ImageBitmap, or a copy of the RGBA buffer) and are
// moved, not copied, to the worker, a few at a time; embeddings come back the same way. If the
// worker's wasm instance ever traps (or the worker dies), the failing call rejects with INTERNAL
// and a fresh worker loads the model again from the kept weights for the calls that follow.

import {
  abortable, aborted, checkConvert, checkEmbedding, checkOptions, checkPrecision, describe, disposed, imageSource, imageSources, isA, labelList,
  MobileClipError, OPTIONS, readResponse, report, textList, throwIfAborted, toError, toRgba, TRAP_FOR_TESTS, yieldTurn,
} from './common.js';
import { LabelPack, similarity } from './index.js';
import { packParts } from './label-pack.js';

export { LabelPack, MobileClipError };

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
  if (isA(weights, 'Response') || isA(weights, 'ReadableStream')) { // read here (a stream cannot move to the worker everywhere)
    const bytes = await readResponse(isA(weights, 'Response') ? weights : new Response(weights), onProgress, signal);
    return [bytes, [bytes.buffer]];
  }
  if (weights === undefined) return [undefined, []]; // the worker's MobileClip.load says what is missing
  throw new MobileClipError('INVALID_ARGUMENT', `weights must be a URL, Response, Blob, ReadableStream, ArrayBuffer or Uint8Array, got ${describe(weights)}`);
}

/** A fresh module Worker running worker-entry.js. */
const newWorker = () => new Worker(new URL('./worker-entry.js', import.meta.url), { type: 'module', name: 'mobileclip' });

/**
 * Sends a fresh worker its first message (`load` or `convert`) and resolves to its answer,
 * forwarding progress; rejects when the worker fails to start or `signal` aborts.
 */
function firstAnswer(worker, message, transfer, { onProgress, signal }) {
  return new Promise((resolve, reject) => {
    const stop = (e) => { signal?.removeEventListener('abort', onAbort); reject(e); };
    const onAbort = () => stop(aborted());
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.onerror = (e) => { e.preventDefault?.(); stop(new MobileClipError('INTERNAL', `the worker failed to start: ${e.message || 'could not load worker-entry.js'}`)); };
    worker.onmessage = ({ data }) => {
      if (data.progress) { onProgress?.(data.progress); return; }
      signal?.removeEventListener('abort', onAbort);
      if (data.error) reject(toError(data.error));
      else resolve(data.result);
    };
    worker.postMessage({ id: 0, ...message }, transfer);
  });
}

/**
 * Starts a worker and loads the model in it: `{ worker, info }`. Aborting, or a failure,
 * terminates the worker.
 */
async function startWorker({ model, weights, transfer = [], integrity, backend, threads, precision, onProgress, signal }) {
  const worker = newWorker();
  try {
    const info = await firstAnswer(worker, { op: 'load', model, weights, integrity, backend, threads, precision }, transfer, { onProgress, signal });
    return { worker, info };
  } catch (e) {
    worker.terminate();
    throw e;
  }
}

/**
 * A MobileCLIP model running in a dedicated module Worker. Create it with
 * `MobileClipWorker.load(...)`; it has the methods and getters of `MobileClip`.
 */
export class MobileClipWorker {
  #worker; // null while a replacement starts, and after dispose()
  #starting = null; // promise of the replacement worker, after a trap
  #disposed = false;
  #source; // { model, weights (URL or Blob), integrity, backend, threads, precision }: what a replacement worker loads
  #info;
  #calls = new Map(); // id → { resolve, reject, onProgress, post() }
  #nextId = 1;

  constructor(worker, info, source) {
    this.#worker = worker;
    this.#info = info;
    this.#source = source;
    this.#listen();
  }

  /**
   * Same options as `MobileClip.load`. URL weights are fetched inside the worker (progress is
   * forwarded); ArrayBuffer/Uint8Array weights are transferred (the caller's buffer is detached),
   * Blobs are passed by reference, a Response is read here and its bytes transferred.
   */
  static async load(options) {
    try {
      const { model, weights, integrity, backend = 'auto', threads = 'auto', precision = 'auto', onProgress, signal } = checkOptions(options, 'load', OPTIONS.load);
      checkPrecision(precision);
      throwIfAborted(signal);
      const [w, transfer] = await weightsPart(weights, onProgress, signal);
      throwIfAborted(signal);
      const cfg = model === undefined || typeof model === 'string' ? model : JSON.parse(JSON.stringify(model));
      const { worker, info } = await startWorker({ model: cfg, weights: w, transfer, integrity, backend, threads, precision, onProgress, signal });
      // The worker gives back a Blob of byte weights; URLs and Blobs are kept as given.
      const kept = info.weights ?? w;
      delete info.weights;
      return new MobileClipWorker(worker, info, { model: cfg, weights: kept, integrity, backend, threads, precision });
    } catch (e) {
      throw toError(e);
    }
  }

  /**
   * `MobileClip.convert` in a worker of its own, terminated when it is done (its wasm memory, some
   * times the checkpoint's size, goes with it): resolves to the compact file's bytes. Same options;
   * weights travel as for `load`. Aborting terminates the worker at once, mid-conversion too.
   */
  static async convert(options) {
    try {
      const { model, weights, dtype, towers, onProgress, signal } = checkConvert(options);
      throwIfAborted(signal);
      const [w, transfer] = await weightsPart(weights, onProgress, signal);
      throwIfAborted(signal);
      const cfg = typeof model === 'string' ? model : JSON.parse(JSON.stringify(model));
      const worker = newWorker();
      try {
        return await firstAnswer(worker, { op: 'convert', model: cfg, weights: w, dtype, towers }, transfer, { onProgress, signal });
      } finally {
        worker.terminate();
      }
    } catch (e) {
      throw toError(e);
    }
  }

  #listen() {
    this.#worker.onmessage = ({ data }) => {
      const call = this.#calls.get(data.id);
      if (!call) return;
      if (data.progress) { call.onProgress?.(data.progress); return; }
      this.#calls.delete(data.id);
      if (data.error?.trap) this.#replace();
      if (data.error) call.reject(toError(data.error));
      else call.resolve(data.result);
    };
    // The worker itself died (out of memory, a crash): the oldest call gets the error, the others
    // go to a fresh worker.
    this.#worker.onerror = (e) => {
      e.preventDefault?.();
      const first = this.#calls.keys().next();
      if (!first.done) {
        this.#calls.get(first.value).reject(new MobileClipError('INTERNAL', `the worker failed: ${e.message ?? 'unknown error'}; a fresh one takes the next calls`));
        this.#calls.delete(first.value);
      }
      this.#replace();
    };
    this.#worker.onmessageerror = () => this.#replace();
  }

  /** Terminates the worker and starts a fresh one from the kept weights; pending calls are sent to it. */
  #replace() {
    this.#worker?.terminate();
    this.#worker = null;
    this.#starting = startWorker(this.#source).then(({ worker, info }) => {
      if (this.#disposed) { worker.terminate(); return; }
      this.#worker = worker;
      this.#info = { ...info, weights: undefined };
      this.#listen();
      for (const call of this.#calls.values()) call.post();
    }, (e) => {
      const err = new MobileClipError(e.code ?? 'INTERNAL', `the model could not be reloaded after a failure: ${e.message}`);
      for (const call of this.#calls.values()) call.reject(err);
      this.#calls.clear();
      this.#starting = null; // the next call tries again
    }).finally(() => { if (this.#worker) this.#starting = null; });
  }

  /** The worker, once a replacement (after a trap) has started. */
  async #ready() {
    if (this.#disposed) throw disposed();
    if (!this.#worker) {
      this.#starting ??= (this.#replace(), this.#starting);
      await this.#starting;
    }
    if (!this.#worker) throw disposed();
  }

  /**
   * Sends one operation; `prepare()` gives `[message, transferList]` (made on this side, again if
   * the call has to go to a fresh worker). Progress messages go to `onProgress`; aborting rejects
   * at once and tells the worker to stop.
   */
  async #call(op, prepare, { onProgress, signal } = {}, cloneErrorCode = 'INVALID_ARGUMENT') {
    throwIfAborted(signal);
    await this.#ready();
    const id = this.#nextId++;
    const done = new Promise((resolve, reject) => {
      const call = { resolve, reject, onProgress };
      call.post = async () => {
        let transfer = [];
        try {
          const [args, t] = await prepare();
          transfer = t;
          if (this.#disposed) throw disposed();
          if (!this.#calls.has(id)) throw aborted(); // aborted while being prepared
          if (!this.#worker) return; // a replacement is starting: posted again once it runs
          this.#worker.postMessage({ id, op, progress: !!onProgress, ...args }, transfer);
        } catch (e) {
          this.#calls.delete(id);
          for (const t of transfer) t.close?.();
          const tainted = e?.name === 'DataCloneError' && transfer.some((t) => isA(t, 'ImageBitmap'));
          reject(tainted
            ? new MobileClipError('TAINTED_IMAGE', 'the image is cross-origin without CORS (a tainted image cannot be read)')
            : e?.name === 'DataCloneError' ? new MobileClipError(cloneErrorCode, `the arguments cannot be sent to the worker: ${e.message}`) : toError(e));
        }
      };
      this.#calls.set(id, call);
      call.post();
    });
    if (!signal) return done;
    return abortable(done, signal).catch((e) => {
      if (e?.code === 'ABORTED' && this.#calls.delete(id)) this.#worker?.postMessage({ op: 'abort', id });
      throw e;
    });
  }

  /** 'cpu' or 'webgpu' (undefined after `dispose()`); `backendReason` says why. */
  get backend() { return this.#disposed ? undefined : this.#info.backend; }
  get backendReason() { return this.#disposed ? undefined : this.#info.backendReason; }
  get name() { return this.#disposed ? undefined : this.#info.name; }
  /** "both", or "image" / "text" for a model loaded from a one-tower compact file. */
  get towers() { return this.#disposed ? undefined : this.#info.towers; }
  get parameterBytes() { return this.#disposed ? undefined : this.#info.parameterBytes; }
  get embedDim() { return this.#disposed ? undefined : this.#info.embedDim; }
  get imageSize() { return this.#disposed ? undefined : this.#info.imageSize; }
  get logitScale() { return this.#disposed ? undefined : this.#info.logitScale; }
  get weightsId() { return this.#disposed ? undefined : this.#info.weightsId; }
  get labelPackId() { return this.#disposed ? undefined : this.#info.labelPackId; }
  get batchSize() { return this.#disposed ? undefined : this.#info.batchSize; }
  get threads() { return this.#disposed ? undefined : this.#info.threads; }
  /** What each tower computes in, as `MobileClip`'s `precision`. */
  get precision() { return this.#disposed ? undefined : this.#info.precision; }

  /** L2-normalised embedding of one image source. */
  async encodeImage(src, options) {
    return (await this.encodeImages([src], options))[0];
  }

  /**
   * L2-normalised embeddings of image sources, any number of them: sent to the worker a few at a
   * time (the model's image batch), so that only those are held as bitmaps at once.
   */
  async encodeImages(srcs, options) {
    let opts;
    try {
      opts = checkOptions(options, 'encodeImages', OPTIONS.encode);
      imageSources(srcs, 'encodeImages');
    } catch (e) {
      throw toError(e);
    }
    const out = [];
    const size = this.#info.batchSize.images;
    for (let i = 0; i < srcs.length; i += size) {
      const part = srcs.slice(i, i + size);
      const rows = await this.#call('encodeImages', async () => {
        const images = [], transfer = [];
        let copied = 0;
        try {
          for (const src of part) {
            const [image, t] = await imagePart(src, this.#info.workerDraws);
            images.push(image);
            transfer.push(...t);
            copied += image.data?.byteLength ?? 0;
            if (copied > 4 << 20) { copied = 0; await yieldTurn(); } // long batches of pixels: let the page breathe
          }
        } catch (e) {
          for (const im of images) im.close?.();
          throw e;
        }
        return [{ images }, transfer];
      }, { signal: opts.signal }, 'INVALID_IMAGE');
      out.push(...rows);
      report(opts.onProgress, Math.min(i + size, srcs.length), srcs.length);
    }
    return out;
  }

  /** L2-normalised embedding(s): a Float32Array for a string, an array of them for an array. */
  async encodeText(text, options) {
    try {
      checkOptions(options, 'encodeText', OPTIONS.encode);
      textList(text, 'encodeText');
    } catch (e) {
      throw toError(e);
    }
    return this.#call('encodeText', () => [{ text }, []], options, 'INVALID_TEXT');
  }

  /** L2-normalised embeddings of preprocessed pixels (see `MobileClip.encodePixels`). */
  async encodePixels(pixels, count, options) {
    return this.#call('encodePixels', () => [{ data: pixels, count }, []], this.#options(options, 'encodePixels', OPTIONS.encode), 'INVALID_IMAGE');
  }

  /** L2-normalised embeddings of token-id sequences (see `MobileClip.encodeTokens`). */
  async encodeTokens(ids, count, options) {
    return this.#call('encodeTokens', () => [{ data: ids, count }, []], this.#options(options, 'encodeTokens', OPTIONS.encode), 'INVALID_TEXT');
  }

  /** The label pack of `labels` (see `MobileClip.labelEmbeddings`), computed in the worker. */
  async labelEmbeddings(labels, options) {
    const { templates, reuse, ...opts } = this.#options(options, 'labelEmbeddings', OPTIONS.labelEmbeddings);
    const packs = reuse === undefined ? [] : Array.isArray(reuse) ? reuse : [reuse];
    const bad = packs.find((p) => !(p instanceof LabelPack));
    if (bad !== undefined) throw new MobileClipError('INVALID_ARGUMENT', `reuse must be label packs, got ${describe(bad)}`);
    const fields = await this.#call('labelEmbeddings', () => [{ labels, options: { templates }, reuse: packs.map(packParts) }, []], opts);
    return new LabelPack(fields);
  }

  /**
   * Zero-shot tagging: `[{label, score}]`, best first (see `MobileClip.zeroShot`).
   * @param image an image source or an image embedding (Float32Array)
   */
  zeroShot(image, labels, options) {
    let opts;
    try {
      opts = checkOptions(options, 'zeroShot', OPTIONS.zeroShot);
      if (image instanceof Float32Array) checkEmbedding(image, this.embedDim);
      if (!(labels instanceof LabelPack)) labelList(labels, opts.templates ?? []);
    } catch (e) {
      return Promise.reject(toError(e));
    }
    const { templates, topK, ...rest } = opts;
    return this.#call('zeroShot', async () => {
      const [img, transfer] = image instanceof Float32Array ? [image, []] : await imagePart(image, this.#info.workerDraws);
      const which = labels instanceof LabelPack ? { pack: packParts(labels) } : { labels };
      return [{ image: img, ...which, options: { templates, topK } }, transfer];
    }, rest);
  }

  /** Checks options here, so that a bad one fails before anything is sent. */
  #options(options, method, allowed) {
    try {
      return checkOptions(options, method, allowed);
    } catch (e) {
      throw toError(e);
    }
  }

  /** Cosine similarity of two embeddings (computed here, no round trip). */
  similarity(a, b) { return similarity(a, b); }

  /** Traps the worker's wasm instance inside a call, as a bug would: for the package's tests only. @internal */
  [TRAP_FOR_TESTS]() {
    return this.#call('trapForTests', () => [{}, []]);
  }

  /** Terminates the worker; pending and later calls reject with code DISPOSED. */
  dispose() {
    this.#disposed = true;
    this.#worker?.terminate();
    this.#worker = null;
    for (const c of this.#calls.values()) c.reject(disposed());
    this.#calls.clear();
  }
}
