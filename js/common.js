// Internals shared by the main-thread API (index.js), the worker helper (worker.js) and the worker
// itself (worker-entry.js): the error class and the one function that turns anything thrown into
// it, option checks, cancellation, reading a weights download with progress, checking an image
// source and reading its pixels.

/** Error thrown by every method: `code` is stable, `message` says what was wrong. */
export class MobileClipError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = 'MobileClipError';
    this.code = code;
  }
}

/** Whether `e` (or its cause) is the wasm instance trapping: a bug or running out of memory. */
export function isTrap(e) {
  const trap = (x) => typeof WebAssembly !== 'undefined' && x instanceof WebAssembly.RuntimeError;
  return trap(e) || trap(e?.cause);
}

/**
 * Anything thrown (a MobileClipError, the wasm module's coded errors, a `{code, message}` sent by
 * the worker, an AbortError, a trap, any other exception) as a MobileClipError. Unknown failures
 * become INTERNAL, with the original as `cause`.
 */
export function toError(e) {
  if (e instanceof MobileClipError) return e;
  if (e?.name === 'AbortError') return new MobileClipError('ABORTED', 'the call was aborted', { cause: e });
  if (e && typeof e === 'object' && typeof e.code === 'string') return new MobileClipError(e.code, e.message);
  if (isTrap(e)) return new MobileClipError('INTERNAL', `the WebAssembly instance failed (${e.message}) and was replaced by a fresh one; the next call reloads the model`, { cause: e });
  if (e?.name === 'DataCloneError') return new MobileClipError('INVALID_ARGUMENT', `an argument cannot be sent to the worker: ${e.message}`, { cause: e });
  return new MobileClipError('INTERNAL', e instanceof Error ? e.message : String(e), { cause: e });
}

/** The error sent back by the worker for a failure: `{code, message, trap}` (structured-cloneable). */
export function errorMessage(e) {
  const err = toError(e);
  return { code: err.code, message: err.message, trap: isTrap(e) };
}

/** Key of the method that traps the wasm instance on purpose: only the package's tests of its recovery use it. */
export const TRAP_FOR_TESTS = Symbol.for('mobileclip-wasm.trapForTests');

export const aborted = () => new MobileClipError('ABORTED', 'the call was aborted');
export const disposed = () => new MobileClipError('DISPOSED', 'the model was disposed; load it again');
const invalid = (message) => new MobileClipError('INVALID_ARGUMENT', message);

/** A value's type for error messages: "null", "number", "HTMLBodyElement", ... */
export function describe(v) {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  return v.constructor?.name ?? 'object';
}

/** The options of each method (unknown ones are refused: a typo must not pass silently). */
export const OPTIONS = {
  load: ['model', 'weights', 'integrity', 'backend', 'threads', 'precision', 'onProgress', 'signal'],
  encode: ['onProgress', 'signal'],
  labelEmbeddings: ['templates', 'reuse', 'onProgress', 'signal'],
  zeroShot: ['templates', 'topK', 'onProgress', 'signal'],
  convert: ['model', 'weights', 'dtype', 'towers', 'onProgress', 'signal'],
};

/** What `convert` can store matrices and kernels as, and which towers it can keep. */
export const DTYPES = ['f32', 'f16', 'int8', 'auto'];
export const TOWERS = ['image', 'text', 'both'];

/** What `load` can compute in (on WebGPU; the CPU computes in f32). */
export const PRECISIONS = ['auto', 'f32', 'f16'];

/** Checks `load`'s `precision` option (INVALID_ARGUMENT). */
export function checkPrecision(precision) {
  if (!PRECISIONS.includes(precision)) throw invalid(`precision must be ${PRECISIONS.map((p) => `'${p}'`).join(', ')}, got ${typeof precision === 'string' ? JSON.stringify(precision) : describe(precision)}`);
}

/**
 * Checks `convert`'s options (the main-thread API and the worker helper, before any work):
 * `{ model, weights, dtype, towers, onProgress, signal }` with the defaults filled in.
 */
export function checkConvert(options) {
  const { model, weights, dtype = 'auto', towers = 'both', onProgress, signal } = checkOptions(options, 'convert', OPTIONS.convert);
  if (typeof model !== 'string' && (typeof model !== 'object' || model === null || Array.isArray(model))) {
    throw invalid(`convert needs options.model: the checkpoint's model, a shipped model name or a config object (a published checkpoint does not say which model it holds), got ${describe(model)}`);
  }
  if (weights === undefined) throw invalid('convert needs options.weights: the published checkpoint (a URL or its bytes)');
  if (!DTYPES.includes(dtype)) throw invalid(`dtype must be ${DTYPES.map((d) => `'${d}'`).join(', ')}, got ${typeof dtype === 'string' ? JSON.stringify(dtype) : describe(dtype)}`);
  if (!TOWERS.includes(towers)) throw invalid(`towers must be ${TOWERS.map((t) => `'${t}'`).join(', ')}, got ${typeof towers === 'string' ? JSON.stringify(towers) : describe(towers)}`);
  return { model, weights, dtype, towers, onProgress, signal };
}

/**
 * Checks an options object of `method`: a plain object (or undefined) whose keys are all in
 * `allowed`, with `onProgress` a function, `signal` an AbortSignal and `topK` a whole number ≥ 1
 * when given. Returns it (or `{}`).
 */
export function checkOptions(options, method, allowed) {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) throw invalid(`the options of ${method} must be an object, got ${describe(options)}`);
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) throw invalid(`unknown option \`${key}\` of ${method} (it takes ${allowed.join(', ')})`);
  }
  const { onProgress, signal, topK } = options;
  if (onProgress !== undefined && typeof onProgress !== 'function') throw invalid(`onProgress must be a function, got ${describe(onProgress)}`);
  if (signal !== undefined && !(typeof signal?.aborted === 'boolean' && typeof signal.addEventListener === 'function')) throw invalid(`signal must be an AbortSignal, got ${describe(signal)}`);
  if (topK !== undefined && topK !== null && !(Number.isSafeInteger(topK) && topK >= 1)) {
    throw invalid(`topK must be a whole number of at least 1 (or left out for every label), got ${typeof topK === 'number' ? topK : describe(topK)}`);
  }
  return options;
}

/** Calls the caller's progress callback; an exception in it rejects the call with INVALID_ARGUMENT. */
export function report(onProgress, done, total) {
  if (!onProgress) return;
  try {
    onProgress({ done, total });
  } catch (e) {
    throw new MobileClipError('INVALID_ARGUMENT', `onProgress threw: ${e?.message ?? e}`, { cause: e });
  }
}

export function throwIfAborted(signal) {
  if (signal?.aborted) throw aborted();
}

/** `promise`, or ABORTED as soon as `signal` aborts (the work itself stops at its next check). */
export function abortable(promise, signal) {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(aborted());
  let onAbort;
  const stop = new Promise((_, reject) => { onAbort = () => reject(aborted()); signal.addEventListener('abort', onAbort, { once: true }); });
  return Promise.race([promise, stop]).finally(() => signal.removeEventListener('abort', onAbort));
}

/**
 * One turn of the event loop for the page (its timers, input, rendering, messages): a message to a
 * fresh MessageChannel, whose handler then sets a zero timeout. Measured (benches/yield-gap.mjs: a 5 ms
 * interval beside 800 ms of work that yields every 30 ms): a bare `setTimeout(0)` from a chain of
 * timeouts is clamped to 4 ms per turn, and Chromium skipped the page's due interval at some such
 * turns (longest gap ~70 ms, Firefox/WebKit ~45); the timeout set from a message task is not clamped and
 * lets Chromium's due timers run first (~42 ms, ~1 ms a turn). A bare MessageChannel turn or
 * `scheduler.postTask` ran the interval at only every other turn in Chromium, and `scheduler.yield()` (a
 * continuation ahead of the page's tasks) let the interval run not once. Without MessageChannel: the
 * timeout alone.
 */
export function yieldTurn() {
  if (typeof MessageChannel !== 'function') return new Promise((r) => setTimeout(r, 0));
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close(); // an open port would keep Node's event loop alive
      setTimeout(resolve, 0);
    };
    port2.postMessage(null);
  });
}

let lastBreath = 0;
/**
 * Lets the event loop run (input, rendering, an abort, other calls) when this thread has computed
 * for more than 30 ms since it last did: called before each part of a long batch.
 */
export async function breathe() {
  const now = globalThis.performance?.now() ?? Date.now();
  if (now - lastBreath < 30) return;
  await yieldTurn();
  lastBreath = globalThis.performance?.now() ?? Date.now();
}

/** Refuses a weights download whose response is an HTTP error (`WEIGHTS_DOWNLOAD`). */
export function checkDownload(response) {
  if (!response.ok) throw new MobileClipError('WEIGHTS_DOWNLOAD', `downloading the weights failed: HTTP ${response.status} ${response.statusText}`);
}

/**
 * The next chunk of a weights stream (`reader.read()`, abortable): a stream that fails (a
 * network error mid-download, a stream erroring) rejects with `WEIGHTS_DOWNLOAD`, a chunk that is
 * not bytes with `INVALID_ARGUMENT`.
 */
export async function readChunk(reader, signal) {
  let chunk;
  try {
    chunk = await abortable(reader.read(), signal);
  } catch (e) {
    if (e instanceof MobileClipError) throw e;
    throw new MobileClipError('WEIGHTS_DOWNLOAD', `reading the weights failed: ${e?.message ?? String(e)}`);
  }
  // (by tag, not instanceof: a stream made in another realm, an iframe's, gives its own Uint8Arrays)
  if (!chunk.done && Object.prototype.toString.call(chunk.value) !== '[object Uint8Array]') {
    throw new MobileClipError('INVALID_ARGUMENT', `a weights stream must give Uint8Array chunks, got ${describe(chunk.value)}`);
  }
  return chunk;
}

/** The body of a weights download as bytes, reporting `{loaded, total}` per chunk; abortable. */
export async function readResponse(response, onProgress, signal) {
  checkDownload(response);
  const total = Number(response.headers.get('content-length')) || 0;
  if (!response.body) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    if (signal?.aborted) throw new MobileClipError('ABORTED', 'loading was aborted');
    const { done, value } = await readChunk(reader);
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onProgress?.({ loaded, total });
  }
  const out = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}

/** `v instanceof globalThis[name]`, false where that class does not exist (Node, workers). */
export const isA = (v, name) => typeof globalThis[name] !== 'undefined' && v instanceof globalThis[name];

/**
 * Checks an image source and says what it is: `{ kind: 'pixels', data, width, height }` for
 * ImageData or a `{data, width, height}` RGBA buffer, `{ kind: 'canvas', width, height }` for a
 * canvas or OffscreenCanvas, `{ kind: 'drawable', width, height }` for an ImageBitmap, `<img>`,
 * `<video>` or VideoFrame. Throws INVALID_IMAGE naming what is wrong (type, empty, not loaded).
 */
export function imageSource(src) {
  const bad = (msg) => new MobileClipError('INVALID_IMAGE', msg);
  if (src && typeof src === 'object' && 'data' in src && 'width' in src && 'height' in src && !('getContext' in src)) {
    const { data, width, height } = src;
    if (!(data instanceof Uint8ClampedArray || data instanceof Uint8Array)) throw bad(`image data must be a Uint8ClampedArray or Uint8Array, got ${describe(data)}`);
    if (!(Number.isSafeInteger(width) && Number.isSafeInteger(height) && width > 0 && height > 0)) throw bad(`the image is empty or its size is not whole numbers (${width}x${height})`);
    if (data.length !== width * height * 4) throw bad(`the pixel buffer has ${data.length} bytes but a ${width}x${height} RGBA image needs ${width * height * 4}`);
    return { kind: 'pixels', data, width, height };
  }
  if (src && typeof src.getContext === 'function') {
    if (!src.width || !src.height) throw bad(`the canvas is empty (${src.width}x${src.height})`);
    return { kind: 'canvas', width: src.width, height: src.height };
  }
  if (!['ImageBitmap', 'HTMLImageElement', 'HTMLVideoElement', 'VideoFrame'].some((t) => isA(src, t))) {
    throw bad(`unsupported image source: ${describe(src)} (use ImageData, a canvas, OffscreenCanvas, ImageBitmap, <img> or <video>)`);
  }
  const width = src.naturalWidth ?? src.videoWidth ?? src.displayWidth ?? src.width;
  const height = src.naturalHeight ?? src.videoHeight ?? src.displayHeight ?? src.height;
  if (!width || !height) throw bad(`the image has no pixels (${width ?? 0}x${height ?? 0}); is it loaded?`);
  return { kind: 'drawable', width, height };
}

/** Checks a list of image sources up front: a non-empty array, each a valid source (INVALID_IMAGE naming the index). */
export function imageSources(srcs, method) {
  if (!Array.isArray(srcs) || srcs.length === 0) throw new MobileClipError('INVALID_IMAGE', `${method} needs a non-empty array of images`);
  return srcs.map((src, i) => {
    try {
      return imageSource(src);
    } catch (e) {
      throw srcs.length > 1 ? new MobileClipError(e.code, `image ${i}: ${e.message}`) : e;
    }
  });
}

/** Checks a text or list of texts: strings only, at least one (INVALID_TEXT naming the index). */
export function textList(text, method) {
  const list = Array.isArray(text) ? text : [text];
  const i = list.findIndex((t) => typeof t !== 'string');
  if (i >= 0) throw new MobileClipError('INVALID_TEXT', `text ${i} is a ${describe(list[i])}, not a string`);
  if (list.length === 0) throw new MobileClipError('INVALID_TEXT', `${method} needs at least one text`);
  return list;
}

/** Checks labels (a non-empty array of strings) and templates (an array of strings) for their types; the wasm module checks their content. */
export function labelList(labels, templates) {
  if (!Array.isArray(labels) || labels.length === 0) throw invalid(Array.isArray(labels) ? 'the label list is empty' : `labels must be an array of strings, got ${describe(labels)}`);
  const bad = labels.findIndex((l) => typeof l !== 'string');
  if (bad >= 0) throw invalid(`label ${bad} is a ${describe(labels[bad])}, not a string`);
  if (!Array.isArray(templates)) throw invalid(`templates must be an array of strings, got ${describe(templates)}`);
  const t = templates.findIndex((x) => typeof x !== 'string');
  if (t >= 0) throw invalid(`template ${t} is a ${describe(templates[t])}, not a string`);
}

/** The default prompt template. */
export const DEFAULT_TEMPLATES = Object.freeze(['a photo of a {}.']);

/** Checks an embedding given by the caller: a Float32Array of `dim` finite values. */
export function checkEmbedding(e, dim, what = 'the image embedding') {
  if (!(e instanceof Float32Array)) throw invalid(`${what} must be a Float32Array, got ${describe(e)}`);
  if (dim !== undefined && e.length !== dim) throw invalid(`${what} has ${e.length} values, the model's have ${dim}`);
  const i = e.findIndex((v) => !Number.isFinite(v));
  if (i >= 0) throw invalid(`${what} has a non-finite value (${e[i]}) at index ${i}`);
  return e;
}

function check2d(ctx) {
  if (!ctx) throw new MobileClipError('INVALID_IMAGE', 'could not get a 2d context to read the image');
  return ctx;
}

/**
 * Pixels of an image source: `{ data: Uint8Array (RGBA), width, height }`. ImageData-like sources
 * are viewed, not copied; a canvas is read with getImageData; an ImageBitmap, `<img>`, `<video>`
 * or VideoFrame is drawn on a canvas first. A cross-origin image without CORS: TAINTED_IMAGE.
 */
export function toRgba(src) {
  const img = imageSource(src);
  const { width: w, height: h } = img;
  if (img.kind === 'pixels') return { data: new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.byteLength), width: w, height: h };
  let ctx;
  if (img.kind === 'canvas') { // HTMLCanvasElement, OffscreenCanvas
    ctx = check2d(src.getContext('2d', { willReadFrequently: true }));
  } else {
    if (typeof OffscreenCanvas === 'undefined' && typeof document === 'undefined') {
      throw new MobileClipError('INVALID_IMAGE', `cannot read the pixels of this ${describe(src)} here: this worker has no OffscreenCanvas (Safari before 16.4); pass ImageData or {data, width, height}, or use mobileclip-wasm/worker, which reads them on the page`);
    }
    const canvas = typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(w, h) : Object.assign(document.createElement('canvas'), { width: w, height: h });
    ctx = check2d(canvas.getContext('2d', { willReadFrequently: true }));
    ctx.drawImage(src, 0, 0, w, h);
  }
  try {
    const d = ctx.getImageData(0, 0, w, h);
    return { data: new Uint8Array(d.data.buffer, d.data.byteOffset, d.data.byteLength), width: w, height: h };
  } catch (e) {
    if (e && e.name === 'SecurityError') throw new MobileClipError('TAINTED_IMAGE', 'the image is cross-origin without CORS (a tainted canvas cannot be read)');
    throw e;
  }
}
