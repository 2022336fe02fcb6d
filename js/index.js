// mobileclip-wasm: MobileCLIP image/text embeddings in the browser and in Node.
// The public, promise-based API. Image sources become RGBA pixels here; everything else
// (checkpoint parsing, preprocessing, tokenization, the model) runs in the wasm module.

import initCpu, { WasmModel as CpuModel } from './cpu/mobileclip_wasm.js';
import { describe, MobileClipError, readResponse, toRgba } from './common.js';
import { AUTO_MAX_THREADS, startPool, threadsUnsupported } from './threads.js';

export { MobileClipError };

function asError(e) {
  if (e instanceof MobileClipError) return e;
  if (e && typeof e === 'object' && typeof e.code === 'string') return new MobileClipError(e.code, e.message);
  if (e && e.name === 'AbortError') return new MobileClipError('ABORTED', 'loading was aborted');
  return new MobileClipError('INTERNAL', e instanceof Error ? e.message : String(e));
}

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

/** Instantiates a wasm-bindgen module from its `.wasm` file next to this script. */
async function instantiate(init, url) {
  if (isNode && url.protocol === 'file:') {
    const { readFile } = await import(/* webpackIgnore: true */ 'node:fs/promises');
    return init({ module_or_path: await readFile(url) });
  }
  return init({ module_or_path: url });
}

let cpuReady = null;
let cpuExports = null;

// The smallest module that uses a SIMD128 instruction: `(func (result v128) i32.const 0 i8x16.splat)`.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 8, 1, 6, 0, 65, 0, 253, 15, 11]);

/** Why this JavaScript engine cannot run the wasm modules, or null when it can. */
function wasmUnsupported() {
  if (typeof WebAssembly === 'undefined') return 'this browser runs no WebAssembly (turned off, as in Safari\'s Lockdown Mode, or not supported)';
  if (!WebAssembly.validate(SIMD_PROBE)) return 'this browser has no WebAssembly SIMD (wasm-simd128), which the model needs: Chrome/Edge 91+, Firefox 89+, Safari 16.4+';
  return null;
}

/** The CPU module (burn flex, wasm SIMD128): small, always available where wasm SIMD is. */
function initWasm() {
  cpuReady ??= (async () => {
    const why = wasmUnsupported();
    if (why) throw new MobileClipError('UNSUPPORTED_BROWSER', why);
    cpuExports = await instantiate(initCpu, new URL('./cpu/mobileclip_wasm_bg.wasm', import.meta.url));
  })();
  return cpuReady;
}

// The threaded CPU module (the same adapter built with shared memory, and its pool of workers) is
// fetched only when a load asks for more than one thread and the context can run it (threads.js).
let mtReady = null;
let mtMemory = null;

/** Resolves to `{ WasmModel, threads }`; the pool's size is fixed by the first call. */
function initThreaded(threads) {
  mtReady ??= (async () => {
    const glue = await import('./cpu-mt/mobileclip_wasm.js');
    await instantiate(glue.default, new URL('./cpu-mt/mobileclip_wasm_bg.wasm', import.meta.url));
    mtMemory = glue.threadContext()[1];
    return { WasmModel: glue.WasmModel, threads: await startPool(glue, threads) };
  })();
  mtReady.catch(() => { mtReady = null; });
  return mtReady;
}

/**
 * The CPU module for a `threads` option: `{ WasmModel, why }`, `why` saying how many threads
 * and, for one, why (the single-threaded module is used then).
 */
async function chooseCpu(threads) {
  const cores = typeof navigator !== 'undefined' ? navigator.hardwareConcurrency || 1 : 1;
  const want = threads === 'auto' ? Math.min(cores, AUTO_MAX_THREADS) : threads;
  const single = async (why) => { await initWasm(); return { WasmModel: CpuModel, why: `1 thread${why ? ` (${why})` : ''}` }; };
  if (want === 1) return single(threads === 'auto' ? 'one core' : '');
  const unsupported = threadsUnsupported();
  if (unsupported) return single(unsupported);
  try {
    const mt = await initThreaded(want);
    return { WasmModel: mt.WasmModel, why: mt.threads === want ? `${want} threads` : `${mt.threads} threads (the pool was started with ${mt.threads})` };
  } catch (e) {
    return single(asError(e).message);
  }
}

// The WebGPU module is fetched only when the browser offers a hardware adapter (or when asked for
// explicitly): it is several times larger than the CPU one.
let gpuReady = null;
let gpuExports = null;
let gpuLost = null; // why the page's WebGPU device is gone, once it is
const gpuModels = new Set(); // loaded WebGPU models, told when the device is lost

function deviceLost(message) {
  gpuLost = message;
  for (const m of gpuModels) m._deviceLost(message);
}

/** Resolves to `{ module, adapter }` or rejects with NO_WEBGPU naming why not. */
function initGpu() {
  gpuReady ??= (async () => {
    const gpu = typeof navigator !== 'undefined' ? navigator.gpu : undefined;
    if (!gpu) throw new MobileClipError('NO_WEBGPU', isNode ? 'WebGPU is not available in Node' : 'this browser has no WebGPU (navigator.gpu is missing)');
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) throw new MobileClipError('NO_WEBGPU', 'the browser offers no WebGPU adapter');
    const info = adapter.info ?? {};
    const module = await import('./gpu/mobileclip_wasm.js');
    gpuExports = await instantiate(module.default, new URL('./gpu/mobileclip_wasm_bg.wasm', import.meta.url));
    const described = await module.initWebGpu(deviceLost);
    const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || described;
    return { module, adapter: name, fallback: !!(info.isFallbackAdapter ?? adapter.isFallbackAdapter) };
  })();
  return gpuReady;
}

/** Bytes of linear memory the wasm modules hold (they only grow; 0 before the first load). */
export function wasmMemoryBytes() {
  return (cpuExports?.memory?.buffer.byteLength ?? 0) + (mtMemory?.buffer.byteLength ?? 0) + (gpuExports?.memory?.buffer.byteLength ?? 0);
}

/**
 * Picks the backend: `{ gpu: module | null, why }`. 'auto' takes WebGPU on a hardware adapter and
 * the CPU otherwise (a software fallback adapter such as SwiftShader is far slower than the CPU
 * path); 'webgpu' insists, rejecting with NO_WEBGPU.
 */
async function chooseBackend(backend) {
  if (backend === 'cpu') return { gpu: null, why: 'cpu: requested' };
  if (gpuLost) {
    if (backend === 'webgpu') throw new MobileClipError('NO_WEBGPU', gpuLost);
    return { gpu: null, why: `cpu: ${gpuLost}` };
  }
  try {
    const { module, adapter, fallback } = await initGpu();
    if (fallback && backend === 'auto') return { gpu: null, why: `cpu: the only WebGPU adapter (${adapter}) is a software fallback, slower than the CPU path` };
    return { gpu: module, why: `webgpu: ${adapter}` };
  } catch (e) {
    const err = asError(e);
    if (backend === 'webgpu') throw err.code === 'NO_WEBGPU' ? err : new MobileClipError('NO_WEBGPU', `WebGPU could not be started: ${err.message}`);
    return { gpu: null, why: `cpu: ${err.message}` };
  }
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
  if (typeof Response !== 'undefined' && weights instanceof Response) return readResponse(weights, onProgress, signal);
  if (typeof weights === 'string' || weights instanceof URL) {
    return readResponse(await fetch(weights, { signal }), onProgress, signal);
  }
  throw new MobileClipError('INVALID_ARGUMENT', `weights must be a URL, Response, Blob, ArrayBuffer or Uint8Array, got ${describe(weights)}`);
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
  const mt = await mtReady?.catch(() => null); // the threaded module, when it is the one loaded
  if (mt) return mt.WasmModel.modelNames();
  await initWasm();
  return CpuModel.modelNames();
}

/** Whether an error means the GPU module can no longer be used (device lost, or it trapped). */
function isDeviceFailure(e) {
  return e?.code === 'DEVICE_LOST' || (typeof WebAssembly !== 'undefined' && e instanceof WebAssembly.RuntimeError);
}

/** A loaded MobileCLIP model. Create it with `MobileClip.load(...)`. */
export class MobileClip {
  #raw;
  #queue = Promise.resolve();
  #config;
  #threads; // the `threads` option, for a move to the CPU
  #weights = null; // on WebGPU: the checkpoint (a Blob), to move to the CPU if the device is lost
  #lost = null; // on WebGPU: { promise, reject } settled when the device is lost

  constructor(raw, config, weights, threads) {
    this.#raw = raw;
    this.#config = config;
    this.#threads = threads;
    if (weights) {
      this.#weights = weights;
      let reject;
      const promise = new Promise((_, r) => { reject = r; });
      promise.catch(() => {});
      this.#lost = { promise, reject };
      gpuModels.add(this);
    }
  }

  /**
   * @param {object} options
   * @param {string|object} [options.model] a shipped model name or a config object (default: a
   *   compact file's own config, MobileCLIP-S0 for a published checkpoint)
   * @param {string|URL|Response|Blob|ArrayBuffer|Uint8Array} options.weights the published checkpoint,
   *   or a compact file (`mobileclip convert`)
   * @param {string} [options.integrity] "sha256-<base64>": the bytes are checked before use
   *   (INTEGRITY_MISMATCH otherwise)
   * @param {'auto'|'cpu'|'webgpu'} [options.backend]
   * @param {number|'auto'} [options.threads] CPU threads (default 'auto': the device's cores, up
   *   to 8, where the page is cross-origin isolated; 1 otherwise)
   * @param {(p: {loaded: number, total: number}) => void} [options.onProgress]
   * @param {AbortSignal} [options.signal]
   */
  static async load({ model, weights, backend = 'auto', threads = 'auto', integrity, onProgress, signal } = {}) {
    try {
      if (!['auto', 'cpu', 'webgpu'].includes(backend)) throw new MobileClipError('INVALID_ARGUMENT', `backend must be 'auto', 'cpu' or 'webgpu', got ${JSON.stringify(backend)}`);
      if (threads !== 'auto' && !(Number.isInteger(threads) && threads >= 1 && threads <= 64)) throw new MobileClipError('INVALID_ARGUMENT', `threads must be 'auto' or a whole number from 1 to 64, got ${typeof threads === 'number' ? threads : JSON.stringify(threads) ?? describe(threads)}`);
      if (weights === undefined) throw new MobileClipError('INVALID_ARGUMENT', 'options.weights is required (a URL or the checkpoint bytes)');
      if (integrity !== undefined && typeof integrity !== 'string') throw new MobileClipError('INVALID_ARGUMENT', `integrity must be a string "sha256-<base64>", got ${describe(integrity)}`);
      const config = model === undefined || typeof model === 'string' ? model : JSON.stringify(model);
      // On the CPU: the module for the `threads` option (a WebGPU model chooses it if it moves).
      const pick = async () => { const c = await chooseBackend(backend); return c.gpu ? c : { ...c, cpu: await chooseCpu(threads) }; };
      const [chosen, bytes] = await Promise.all([pick(), weightsBytes(weights, onProgress, signal)]);
      if (signal?.aborted) throw new MobileClipError('ABORTED', 'loading was aborted');
      if (chosen.gpu) {
        // Kept as a Blob (the browser may page it out) to reload on the CPU if the device is lost;
        // a Blob given by the caller is kept as it is.
        const kept = typeof Blob !== 'undefined' && weights instanceof Blob ? weights : new Blob([bytes]);
        const raw = await chosen.gpu.WasmModel.load(config, bytes, 'webgpu', integrity);
        raw.backend = chosen.why;
        return new MobileClip(raw, config, kept, threads);
      }
      const raw = await chosen.cpu.WasmModel.load(config, bytes, 'cpu', integrity);
      raw.backend = `${chosen.why}; ${chosen.cpu.why}`;
      return new MobileClip(raw, config, null, threads);
    } catch (e) {
      throw asError(e);
    }
  }

  /** Called by the WebGPU module's device-lost handler. @internal */
  _deviceLost(message) {
    this.#lost?.reject(new MobileClipError('DEVICE_LOST', message));
  }

  /** Reloads the model on the CPU from the kept checkpoint, after the GPU device was lost. */
  async #moveToCpu(why) {
    const cpu = await chooseCpu(this.#threads);
    const raw = await cpu.WasmModel.load(this.#config, new Uint8Array(await this.#weights.arrayBuffer()), 'cpu', undefined);
    raw.backend = `cpu: ${why}; moved from WebGPU; ${cpu.why}`;
    try { this.#raw.free(); } catch { /* the GPU module may be unusable */ }
    this.#raw = raw;
    this.#weights = null;
    this.#lost = null;
    gpuModels.delete(this);
  }

  /**
   * Runs calls one after the other, so concurrent calls behave as sequential ones. On WebGPU, a
   * call that the lost device cannot finish is run again on the CPU.
   */
  #run(f) {
    const next = this.#queue.then(async () => {
      if (!this.#raw) throw new MobileClipError('DISPOSED', 'the model was disposed; load it again');
      if (this.#lost) {
        try {
          return await Promise.race([f(this.#raw), this.#lost.promise]);
        } catch (e) {
          if (!isDeviceFailure(e)) throw e;
          // The device-lost event may come just after the failed read: wait briefly for its reason.
          if (!gpuLost) await Promise.race([this.#lost.promise.catch(() => {}), new Promise((r) => setTimeout(r, 500))]);
          await this.#moveToCpu(gpuLost ?? `the WebGPU device failed (${e.message})`);
        }
      }
      return f(this.#raw);
    });
    this.#queue = next.catch(() => {});
    return next.catch((e) => { throw asError(e); });
  }

  /** The backend in use and why, e.g. "webgpu: <adapter>" or "cpu: no WebGPU adapter". */
  get backend() { return this.#raw?.backend ?? 'disposed'; }
  get name() { return this.#raw?.name; }
  /** "both", or "image" / "text" for a model loaded from a one-tower compact file. */
  get towers() { return this.#raw?.towers; }
  get embedDim() { return this.#raw?.embedDim; }
  get imageSize() { return this.#raw?.imageSize; }
  get logitScale() { return this.#raw?.logitScale; }
  /** The low-level wasm handle (pixels/token-level calls; they return promises). */
  get raw() { return this.#raw; }

  /** L2-normalised embedding of one image source. */
  async encodeImage(src) {
    return (await this.encodeImages([src]))[0];
  }

  /** L2-normalised embeddings of several image sources. */
  encodeImages(srcs) {
    if (!Array.isArray(srcs) || srcs.length === 0) return Promise.reject(new MobileClipError('INVALID_IMAGE', 'encodeImages needs a non-empty array of images'));
    let px;
    try {
      px = srcs.map(toRgba); // read the pixels now: the caller may change the canvas afterwards
    } catch (e) {
      return Promise.reject(asError(e));
    }
    return this.#run((raw) => raw.encodeRgba(px.map((p) => p.data), px.map((p) => p.width), px.map((p) => p.height)));
  }

  /** L2-normalised embedding(s): a Float32Array for a string, an array of them for an array. */
  encodeText(text) {
    const list = Array.isArray(text) ? text : [text];
    const i = list.findIndex((t) => typeof t !== 'string');
    if (i >= 0) return Promise.reject(new MobileClipError('INVALID_TEXT', `text ${i} is a ${describe(list[i])}, not a string`));
    if (list.length === 0) return Promise.reject(new MobileClipError('INVALID_TEXT', 'encodeText needs at least one text'));
    return this.#run(async (raw) => {
      const out = await raw.encodeTexts(list);
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
    try { this.#raw?.free(); } catch { /* a lost GPU module */ }
    this.#raw = null;
    this.#weights = null;
    gpuModels.delete(this);
  }
}
