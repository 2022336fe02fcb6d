// mobileclip-wasm: MobileCLIP image/text embeddings in the browser and in Node.
// The public, promise-based API. Image sources become RGBA pixels here; everything else
// (checkpoint parsing, preprocessing, tokenization, the model) runs in the wasm module.

import initCpu, { WasmModel } from './cpu/mobileclip_wasm.js';

/** Error thrown by every method: `code` is stable, `message` says what was wrong. */
export class MobileClipError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'MobileClipError';
    this.code = code;
  }
}

function asError(e) {
  if (e instanceof MobileClipError) return e;
  if (e && typeof e === 'object' && typeof e.code === 'string') return new MobileClipError(e.code, e.message);
  if (e && e.name === 'AbortError') return new MobileClipError('ABORTED', 'loading was aborted');
  return new MobileClipError('INTERNAL', e instanceof Error ? e.message : String(e));
}

const isNode = typeof process !== 'undefined' && !!process.versions?.node;
let cpuReady = null;
let cpuExports = null;

function initWasm() {
  cpuReady ??= (async () => {
    const url = new URL('./cpu/mobileclip_wasm_bg.wasm', import.meta.url);
    if (isNode && url.protocol === 'file:') {
      const { readFile } = await import(/* webpackIgnore: true */ 'node:fs/promises');
      cpuExports = await initCpu({ module_or_path: await readFile(url) });
    } else {
      cpuExports = await initCpu({ module_or_path: url });
    }
  })();
  return cpuReady;
}

/** Bytes of linear memory the CPU wasm module holds (it only grows; 0 before the first load). */
export function wasmMemoryBytes() {
  return cpuExports?.memory?.buffer.byteLength ?? 0;
}

async function readStream(response, onProgress, signal) {
  if (!response.ok) throw new MobileClipError('WEIGHTS_DOWNLOAD', `downloading the weights failed: HTTP ${response.status} ${response.statusText}`);
  const total = Number(response.headers.get('content-length')) || 0;
  if (!response.body) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    if (signal?.aborted) throw new MobileClipError('ABORTED', 'loading was aborted');
    const { done, value } = await reader.read();
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

/** Weights as bytes from a URL, Response, Blob, ArrayBuffer or Uint8Array. */
async function weightsBytes(weights, onProgress, signal) {
  if (weights instanceof Uint8Array) return weights;
  if (weights instanceof ArrayBuffer) return new Uint8Array(weights);
  if (ArrayBuffer.isView(weights)) return new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength);
  if (typeof Blob !== 'undefined' && weights instanceof Blob) {
    const b = new Uint8Array(await weights.arrayBuffer());
    onProgress?.({ loaded: b.length, total: b.length });
    return b;
  }
  if (typeof Response !== 'undefined' && weights instanceof Response) return readStream(weights, onProgress, signal);
  if (typeof weights === 'string' || weights instanceof URL) {
    return readStream(await fetch(weights, { signal }), onProgress, signal);
  }
  throw new MobileClipError('INVALID_ARGUMENT', `weights must be a URL, Response, Blob, ArrayBuffer or Uint8Array, got ${describe(weights)}`);
}

function describe(v) {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  return v.constructor?.name ?? 'object';
}

function check2d(ctx) {
  if (!ctx) throw new MobileClipError('INVALID_IMAGE', 'could not get a 2d context to read the image');
  return ctx;
}

/** Pixels of an image source: `{ data: Uint8Array (RGBA), width, height }`. */
function toRgba(src) {
  const bad = (msg) => new MobileClipError('INVALID_IMAGE', msg);
  const read = (ctx, w, h) => {
    try {
      const d = ctx.getImageData(0, 0, w, h);
      return { data: new Uint8Array(d.data.buffer, d.data.byteOffset, d.data.byteLength), width: w, height: h };
    } catch (e) {
      if (e && e.name === 'SecurityError') throw new MobileClipError('TAINTED_IMAGE', 'the image is cross-origin without CORS (a tainted canvas cannot be read)');
      throw e;
    }
  };
  if (src && typeof src === 'object' && 'data' in src && 'width' in src && 'height' in src && !('getContext' in src)) {
    const { data, width, height } = src; // ImageData or an ImageData-like object
    if (!(data instanceof Uint8ClampedArray || data instanceof Uint8Array)) throw bad(`image data must be a Uint8ClampedArray or Uint8Array, got ${describe(data)}`);
    if (!width || !height) throw bad(`the image is empty (${width}x${height})`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height };
  }
  if (src && typeof src.getContext === 'function') { // HTMLCanvasElement, OffscreenCanvas
    if (!src.width || !src.height) throw bad(`the canvas is empty (${src.width}x${src.height})`);
    return read(check2d(src.getContext('2d', { willReadFrequently: true })), src.width, src.height);
  }
  const w = src?.naturalWidth ?? src?.videoWidth ?? src?.displayWidth ?? src?.width;
  const h = src?.naturalHeight ?? src?.videoHeight ?? src?.displayHeight ?? src?.height;
  const drawable = (typeof ImageBitmap !== 'undefined' && src instanceof ImageBitmap)
    || (typeof HTMLImageElement !== 'undefined' && src instanceof HTMLImageElement)
    || (typeof HTMLVideoElement !== 'undefined' && src instanceof HTMLVideoElement)
    || (typeof VideoFrame !== 'undefined' && src instanceof VideoFrame);
  if (!drawable) throw bad(`unsupported image source: ${describe(src)} (use ImageData, a canvas, OffscreenCanvas, ImageBitmap, <img> or <video>)`);
  if (!w || !h) throw bad(`the image has no pixels (${w ?? 0}x${h ?? 0}); is it loaded?`);
  const canvas = typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(w, h) : Object.assign(document.createElement('canvas'), { width: w, height: h });
  const ctx = check2d(canvas.getContext('2d', { willReadFrequently: true }));
  ctx.drawImage(src, 0, 0, w, h);
  return read(ctx, w, h);
}

/** Cosine similarity of two embeddings. */
export function similarity(a, b) {
  if (!(a?.length > 0) || a.length !== b?.length) throw new MobileClipError('INVALID_ARGUMENT', 'similarity needs two embeddings of the same length');
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return dot / Math.max(Math.sqrt(na * nb), 1e-12);
}

/** The shipped model names. */
export async function modelNames() {
  await initWasm();
  return WasmModel.modelNames();
}

/** A loaded MobileCLIP model. Create it with `MobileClip.load(...)`. */
export class MobileClip {
  #raw;
  #queue = Promise.resolve();

  constructor(raw) { this.#raw = raw; }

  /**
   * @param {object} options
   * @param {string|object} [options.model] a shipped model name (default MobileCLIP-S0) or a config object
   * @param {string|URL|Response|Blob|ArrayBuffer|Uint8Array} options.weights the published checkpoint
   * @param {'auto'|'cpu'|'webgpu'} [options.backend]
   * @param {(p: {loaded: number, total: number}) => void} [options.onProgress]
   * @param {AbortSignal} [options.signal]
   */
  static async load({ model = 'MobileCLIP-S0', weights, backend = 'auto', onProgress, signal } = {}) {
    try {
      if (!['auto', 'cpu', 'webgpu'].includes(backend)) throw new MobileClipError('INVALID_ARGUMENT', `backend must be 'auto', 'cpu' or 'webgpu', got ${JSON.stringify(backend)}`);
      if (backend === 'webgpu') throw new MobileClipError('NO_WEBGPU', 'this build of mobileclip-wasm has no WebGPU backend yet; use backend "cpu" or "auto"');
      if (weights === undefined) throw new MobileClipError('INVALID_ARGUMENT', 'options.weights is required (a URL or the checkpoint bytes)');
      const config = typeof model === 'string' ? model : JSON.stringify(model);
      const [, bytes] = await Promise.all([initWasm(), weightsBytes(weights, onProgress, signal)]);
      if (signal?.aborted) throw new MobileClipError('ABORTED', 'loading was aborted');
      const raw = WasmModel.load(config, bytes);
      raw.backend = backend === 'cpu' ? 'cpu: requested' : 'cpu: WebGPU backend not built into this package';
      return new MobileClip(raw);
    } catch (e) {
      throw asError(e);
    }
  }

  /** Runs calls one after the other, so concurrent calls behave as sequential ones. */
  #run(f) {
    const next = this.#queue.then(() => {
      if (!this.#raw) throw new MobileClipError('DISPOSED', 'the model was disposed; load it again');
      return f(this.#raw);
    });
    this.#queue = next.catch(() => {});
    return next.catch((e) => { throw asError(e); });
  }

  /** The backend in use and why, e.g. "cpu: WebGPU backend not built into this package". */
  get backend() { return this.#raw?.backend ?? 'disposed'; }
  get name() { return this.#raw?.name; }
  get embedDim() { return this.#raw?.embedDim; }
  get imageSize() { return this.#raw?.imageSize; }
  get logitScale() { return this.#raw?.logitScale; }
  /** The low-level wasm handle (pixels/token-level calls). */
  get raw() { return this.#raw; }

  /** L2-normalised embedding of one image source. */
  async encodeImage(src) {
    return (await this.encodeImages([src]))[0];
  }

  /** L2-normalised embeddings of several image sources. */
  encodeImages(srcs) {
    return this.#run((raw) => {
      if (!Array.isArray(srcs) || srcs.length === 0) throw new MobileClipError('INVALID_IMAGE', 'encodeImages needs a non-empty array of images');
      const px = srcs.map(toRgba);
      return raw.encodeRgba(px.map((p) => p.data), px.map((p) => p.width), px.map((p) => p.height));
    });
  }

  /** L2-normalised embedding(s): a Float32Array for a string, an array of them for an array. */
  encodeText(text) {
    return this.#run((raw) => {
      const list = Array.isArray(text) ? text : [text];
      const i = list.findIndex((t) => typeof t !== 'string');
      if (i >= 0) throw new MobileClipError('INVALID_TEXT', `text ${i} is a ${describe(list[i])}, not a string`);
      if (list.length === 0) throw new MobileClipError('INVALID_TEXT', 'encodeText needs at least one text');
      const out = raw.encodeTexts(list);
      return Array.isArray(text) ? out : out[0];
    });
  }

  /**
   * Zero-shot tagging: `[{label, score}]`, best first (softmax over cosine × logit scale,
   * prompt templates averaged per label as in CLIP).
   * @param image an image source or an image embedding (Float32Array)
   */
  async zeroShot(image, labels, { templates = ['a photo of a {}.'], topK } = {}) {
    if (!Array.isArray(labels) || labels.length === 0) throw new MobileClipError('INVALID_ARGUMENT', 'the label list is empty');
    const bad = labels.findIndex((l) => typeof l !== 'string');
    if (bad >= 0) throw new MobileClipError('INVALID_ARGUMENT', `label ${bad} is a ${describe(labels[bad])}, not a string`);
    const emb = image instanceof Float32Array ? image : await this.encodeImage(image);
    return this.#run((raw) => raw.zeroShot(emb, labels, templates, topK ?? undefined));
  }

  /** Cosine similarity of two embeddings. */
  similarity(a, b) { return similarity(a, b); }

  /** Frees the model; later calls reject with code DISPOSED. */
  dispose() {
    this.#raw?.free();
    this.#raw = null;
  }
}
