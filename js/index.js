// mobileclip-wasm: MobileCLIP image/text embeddings in the browser and in Node.
// The public, promise-based API. Image sources become RGBA pixels here and long batches are cut
// into parts (progress, cancellation, other calls in between); everything else (checkpoint
// parsing, preprocessing, tokenization, the model, prompt ensembling, ranking) runs in the wasm
// module.

import initCpu, * as cpu from './cpu/mobileclip_wasm.js';
import {
  abortable, aborted, breathe, checkConvert, checkDownload, checkEmbedding, checkOptions, checkPrecision, DEFAULT_TEMPLATES, describe, disposed, imageSources,
  isA, isTrap, labelList, MobileClipError, OPTIONS, readChunk, report, textList, throwIfAborted, toError, toRgba, TRAP_FOR_TESTS,
} from './common.js';
import { LabelPack } from './label-pack.js';
import { AUTO_MAX_THREADS, startPool, threadsUnsupported } from './threads.js';

export { LabelPack, MobileClipError };

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
let cpuLoaded = false;

// The smallest module that uses a SIMD128 instruction: `(func (result v128) i32.const 0 i8x16.splat)`.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 8, 1, 6, 0, 65, 0, 253, 15, 11]);

/** Why this JavaScript engine cannot run the wasm modules, or null when it can. */
function wasmUnsupported() {
  if (typeof WebAssembly === 'undefined') return 'this browser runs no WebAssembly (turned off, as in Safari\'s Lockdown Mode, or not supported)';
  if (!WebAssembly.validate(SIMD_PROBE)) return 'this browser has no WebAssembly SIMD (wasm-simd128), which the model needs: Chrome/Edge 91+, Firefox 89+, Safari 16.4+';
  return null;
}

// `(func (result v128) (f32x4.relaxed_madd (v128.const 0) (v128.const 0) (v128.const 0)))`.
const RELAXED_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 61, 1, 59, 0,
  ...[0, 1, 2].flatMap(() => [253, 12, ...new Array(16).fill(0)]), 253, 133, 2, 11]);

/**
 * The `.wasm` of the CPU module in `folder` (cpu or cpu-mt): its build whose matrix and
 * convolution kernels use relaxed SIMD's fused multiply-add where the engine validates relaxed
 * SIMD (Chromium 114+), the SIMD128 build otherwise. Both have the same exports, so they share one
 * JavaScript glue.
 */
function cpuWasmUrl(folder) {
  relaxedSimd ??= WebAssembly.validate(RELAXED_PROBE);
  return new URL(`./${folder}${relaxedSimd ? '-relaxed' : ''}/mobileclip_wasm_bg.wasm`, import.meta.url);
}
let relaxedSimd = null;

/** The CPU module (burn flex, wasm SIMD128): small, always available where wasm SIMD is. */
function initWasm() {
  cpuReady ??= (async () => {
    const why = wasmUnsupported();
    if (why) throw new MobileClipError('UNSUPPORTED_BROWSER', why);
    await instantiate(initCpu, cpuWasmUrl('cpu'));
    cpuLoaded = true;
  })();
  return cpuReady;
}

// The threaded CPU module (the same adapter built with shared memory, and its pool of workers) is
// fetched only when a load asks for more than one thread and the context can run it (threads.js).
let mtReady = null;
let mtMemory = null;
let mtFailed = null; // why the threaded module may no longer be used (it trapped), once it did

/** Resolves to `{ glue, threads }`; the pool's size is fixed by the first call. */
function initThreaded(threads) {
  mtReady ??= (async () => {
    const glue = await import('./cpu-mt/mobileclip_wasm.js');
    await instantiate(glue.default, cpuWasmUrl('cpu-mt'));
    mtMemory = glue.threadContext()[1];
    return { glue, threads: await startPool(glue, threads) };
  })();
  mtReady.catch(() => { mtReady = null; });
  return mtReady;
}

/**
 * The CPU module for a `threads` option: `{ glue, threaded, threads, why }` (`glue`: the module's
 * wasm-bindgen exports), `why` saying how many threads and, for one, why (the single-threaded
 * module is used then).
 */
async function chooseCpu(threads) {
  const cores = typeof navigator !== 'undefined' ? navigator.hardwareConcurrency || 1 : 1;
  const want = threads === 'auto' ? Math.min(cores, AUTO_MAX_THREADS) : threads;
  const single = async (why) => { await initWasm(); return { glue: cpu, threaded: false, threads: 1, why: `1 thread${why ? ` (${why})` : ''}` }; };
  if (threads === 1) return single('');
  // why this context cannot run threads comes before the core count (the more basic reason)
  const unsupported = mtFailed ?? threadsUnsupported();
  if (unsupported) return single(unsupported);
  if (want === 1) return single('one core');
  try {
    const mt = await initThreaded(want);
    return { glue: mt.glue, threaded: true, threads: mt.threads, why: mt.threads === want ? `${want} threads` : `${mt.threads} threads (the pool was started with ${mt.threads})` };
  } catch (e) {
    return single(toError(e).message);
  }
}

// After a trap (a bug, or running out of memory) a module's instance cannot be trusted. The
// single-threaded CPU module's is replaced by a fresh one (new memory); the threaded module, whose
// memory its pool shares, is given up for the single-threaded one. Every model on the old
// instance reloads from its kept weights on its next call: `cpuInstance` counts the replacements.
let cpuInstance = 0;
function replaceInstance(threaded, e) {
  if (threaded) {
    // the trap itself, or the pool thread's (threads.js gives its failure a RuntimeError as cause)
    const why = (e instanceof WebAssembly.RuntimeError ? e : e?.cause ?? e)?.message ?? String(e);
    mtFailed ??= `the threaded CPU module failed: ${why}, the single-threaded one took over`;
    initWasm().catch(() => {});
  } else {
    cpu.__wbg_reset_state();
  }
  cpuInstance++;
}

// Calls of every model on this thread, one after the other (the thread computes one at a time
// anyway): no call of one model is half-way through the wasm instance when another one traps it.
let queue = Promise.resolve();

// The WebGPU module is fetched only when the browser offers a hardware adapter (or when asked for
// explicitly): it is several times larger than the CPU one.
let gpuReady = null;
let gpuModule = null;
let gpuLost = null; // why the page's WebGPU device (or module) is gone, once it is
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
    await instantiate(module.default, new URL('./gpu/mobileclip_wasm_bg.wasm', import.meta.url));
    gpuModule = module;
    const described = await module.initWebGpu(deviceLost);
    const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || described;
    return { module, adapter: name, fallback: !!(info.isFallbackAdapter ?? adapter.isFallbackAdapter) };
  })();
  return gpuReady;
}

/** Bytes of linear memory the wasm modules hold (they only grow; 0 before the first load). */
export function wasmMemoryBytes() {
  return (cpuLoaded ? cpu.memoryBytes() : 0) + (mtMemory?.buffer.byteLength ?? 0) + (gpuModule ? gpuModule.memoryBytes() : 0);
}

/**
 * Picks the backend: `{ gpu: module | null, reason }`. 'auto' takes WebGPU on a hardware adapter
 * and the CPU otherwise (a software fallback adapter such as SwiftShader is far slower than the
 * CPU path); 'webgpu' insists, rejecting with NO_WEBGPU.
 */
async function chooseBackend(backend) {
  if (backend === 'cpu') return { gpu: null, reason: 'requested' };
  if (gpuLost) {
    if (backend === 'webgpu') throw new MobileClipError('NO_WEBGPU', gpuLost);
    return { gpu: null, reason: gpuLost };
  }
  try {
    const { module, adapter, fallback } = await initGpu();
    if (fallback && backend === 'auto') return { gpu: null, reason: `the only WebGPU adapter (${adapter}) is a software fallback, slower than the CPU path` };
    return { gpu: module, reason: adapter };
  } catch (e) {
    const err = toError(e);
    if (backend === 'webgpu') throw err.code === 'NO_WEBGPU' ? err : new MobileClipError('NO_WEBGPU', `WebGPU could not be started: ${err.message}`);
    return { gpu: null, reason: err.message };
  }
}

/** Bytes handed to wasm at a time from weights given as bytes (each is copied into wasm memory). */
const PUSH_BYTES = 4 << 20;

/**
 * Where weights come from, opened (a URL fetched: its headers arrived, its body not yet read):
 * `{ bytes }` or `{ stream, total, keep }`, `keep` being what a reload reads again (the URL, the
 * Blob; undefined: kept from the chunks as they pass).
 */
async function openWeights(weights, signal) {
  if (weights instanceof ArrayBuffer) return { bytes: new Uint8Array(weights) };
  if (ArrayBuffer.isView(weights)) return { bytes: new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength) };
  if (isA(weights, 'Blob')) return { stream: weights.stream(), total: weights.size, keep: weights };
  if (isA(weights, 'ReadableStream')) return { stream: weights, total: 0 };
  const body = (response, keep) => {
    checkDownload(response);
    if (response.bodyUsed) throw new MobileClipError('INVALID_ARGUMENT', 'the weights Response was already read');
    const total = Number(response.headers.get('content-length')) || 0;
    return response.body ? { stream: response.body, total, keep } : { bytes: null, response, keep };
  };
  if (isA(weights, 'Response')) return body(weights);
  if (typeof weights === 'string' || weights instanceof URL) return body(await fetch(weights, { signal }), String(weights));
  throw new MobileClipError('INVALID_ARGUMENT', `weights must be a URL, Response, Blob, ReadableStream, ArrayBuffer or Uint8Array, got ${describe(weights)}`);
}

/**
 * Streams opened weights into a new `WasmWeights` of `glue`, tensor by tensor (the file is never
 * whole in wasm memory), reporting `{loaded, total}` per chunk; abortable. Resolves to
 * `{ reader, kept }`: `kept` is what the model reloads from after a trap or a lost GPU device
 * (the URL or Blob given; otherwise a Blob of the bytes, which the browser may keep on disk).
 */
async function streamWeights(glue, source, onProgress, signal) {
  const reader = new glue.WasmWeights(source.bytes?.length ?? source.total);
  try {
    if (source.bytes === null) source = { bytes: new Uint8Array(await source.response.arrayBuffer()), keep: source.keep };
    if (source.bytes) {
      const { bytes } = source;
      for (let at = 0; at < bytes.length || at === 0; at += PUSH_BYTES) {
        throwIfAborted(signal);
        reader.push(bytes.subarray(at, at + PUSH_BYTES));
        report(onProgress, Math.min(at + PUSH_BYTES, bytes.length), bytes.length);
        if (bytes.length === 0) break;
      }
      return { reader, kept: source.keep !== undefined ? source.keep : (typeof Blob !== 'undefined' ? new Blob([bytes]) : bytes) };
    }
    const parts = source.keep === undefined ? [] : null;
    const chunks = source.stream.getReader();
    let loaded = 0;
    try {
      for (;;) {
        throwIfAborted(signal);
        const { done, value } = await readChunk(chunks, signal);
        if (done) break;
        reader.push(value);
        parts?.push(value);
        loaded += value.length;
        onProgress?.({ loaded, total: source.total || loaded });
      }
    } finally {
      if (signal?.aborted) chunks.cancel().catch(() => {});
      chunks.releaseLock();
    }
    return { reader, kept: parts ? new Blob(parts) : source.keep };
  } catch (e) {
    reader.free();
    throw e;
  }
}

/** Pixels read when a call is made; beyond this many bytes, each part's pixels are read when it starts. */
const EAGER_PIXEL_BYTES = 64 << 20;

/** Cosine similarity of two embeddings. */
export function similarity(a, b) {
  checkEmbedding(a, undefined, 'the first embedding');
  checkEmbedding(b, a.length, 'the second embedding');
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return dot / Math.max(Math.sqrt(na * nb), 1e-12);
}

/** The shipped model names. */
export async function modelNames() {
  const mt = await mtReady?.catch(() => null); // the threaded module, when it is the one loaded
  if (mt && !mtFailed) return mt.glue.WasmModel.modelNames();
  await initWasm();
  return cpu.WasmModel.modelNames();
}

/**
 * Refuses texts longer than the model takes (`MAX_TEXT_CHARS` in src/lib.rs, from the module
 * `glue`), before they are copied into the wasm memory (which would keep the space).
 * `error(i, n, max)` makes the error.
 */
function checkLengths(glue, texts, error) {
  if (!glue) return; // the model's module failed and the other is not ready: the call checks again
  const max = glue.maxTextChars();
  texts.forEach((t, i) => {
    if (t.length <= max) return;
    let n = 0;
    for (const _ of t) n++; // characters as Rust counts them (code points)
    if (n > max) throw error(i, n, max);
  });
}

/** Checks labels and templates: their types and lengths here, their content (blank labels, `{}`) in the wasm module `glue`. */
function checkLabels(glue, labels, templates) {
  labelList(labels, templates);
  const tooLong = (what) => (i, n, max) => new MobileClipError('INVALID_ARGUMENT', `${what} ${i} has ${n} characters; texts are limited to ${max} (CLIP reads their first 77 tokens)`);
  checkLengths(glue, labels, tooLong('label'));
  checkLengths(glue, templates, tooLong('template'));
  glue?.checkLabels(labels, templates);
}

/** Whether an error means the GPU module can no longer be used (device lost, or it trapped). */
function isDeviceFailure(e) {
  return e?.code === 'DEVICE_LOST' || isTrap(e);
}

/** A loaded MobileCLIP model. Create it with `MobileClip.load(...)`. */
export class MobileClip {
  #raw;
  #config;
  #info; // name, towers, embedDim, imageSize, logitScale, weightsId, packId, imageBatch, textBatch
  #backend; // 'cpu' | 'webgpu'
  #reason; // why this backend (on the CPU, why not WebGPU); backendReason adds the threads
  #threads; // the `threads` option, for a reload on the CPU
  #precision; // the `precision` option, for a reload
  #cpu = null; // on the CPU: { threaded, threads } of the module #raw lives in
  #glue; // the wasm-bindgen exports of that module
  #weights; // the checkpoint (a Blob), to reload from after a trap or a lost GPU device
  #instance = cpuInstance; // the CPU instance #raw lives in
  #lost = null; // on WebGPU: { promise, reject } settled when the device is lost

  constructor(raw, { config, weights, weightsId, backend, reason, threads, precision, cpu: cpuModule, glue }) {
    this.#raw = raw;
    this.#config = config;
    this.#weights = weights;
    this.#backend = backend;
    this.#reason = reason;
    this.#threads = threads;
    this.#precision = precision;
    this.#cpu = cpuModule ?? null;
    this.#glue = glue;
    this.#info = { name: raw.name, towers: raw.towers, parameterBytes: raw.parameterBytes, packId: raw.labelPackId, embedDim: raw.embedDim, imageSize: raw.imageSize, logitScale: raw.logitScale, weightsId, imageBatch: raw.imageBatch, textBatch: raw.textBatch };
    if (backend === 'webgpu') {
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
   * @param {string|URL|Response|Blob|ReadableStream|ArrayBuffer|Uint8Array} options.weights the published checkpoint,
   *   or a compact file (`mobileclip convert`)
   * @param {string} [options.integrity] "sha256-<base64>": the bytes are checked before use
   *   (INTEGRITY_MISMATCH otherwise)
   * @param {'auto'|'cpu'|'webgpu'} [options.backend]
   * @param {number|'auto'} [options.threads] CPU threads (default 'auto': the device's cores, up
   *   to 8, where the page is cross-origin isolated; 1 otherwise)
   * @param {'auto'|'f32'|'f16'} [options.precision] what WebGPU computes in (default 'auto':
   *   16-bit floats for text and ViT image towers where the adapter offers `shader-f16`, and for
   *   the weights of convolutional image towers, which compute in 32-bit ('f16-weights'); 32-bit
   *   otherwise; 'f16' every tower where it is offered; the CPU computes in f32). `precision` says
   *   what each tower got.
   * @param {(p: {loaded: number, total: number}) => void} [options.onProgress]
   * @param {AbortSignal} [options.signal]
   */
  static async load(options) {
    try {
      const { model, weights, integrity, backend = 'auto', threads = 'auto', precision = 'auto', onProgress, signal } = checkOptions(options, 'load', OPTIONS.load);
      checkPrecision(precision);
      if (!['auto', 'cpu', 'webgpu'].includes(backend)) throw new MobileClipError('INVALID_ARGUMENT', `backend must be 'auto', 'cpu' or 'webgpu', got ${JSON.stringify(backend)}`);
      if (threads !== 'auto' && !(Number.isInteger(threads) && threads >= 1 && threads <= 64)) throw new MobileClipError('INVALID_ARGUMENT', `threads must be 'auto' or a whole number from 1 to 64, got ${typeof threads === 'number' ? threads : JSON.stringify(threads) ?? describe(threads)}`);
      if (weights === undefined) throw new MobileClipError('INVALID_ARGUMENT', 'options.weights is required (a URL or the checkpoint bytes)');
      throwIfAborted(signal);
      if (integrity !== undefined && typeof integrity !== 'string') throw new MobileClipError('INVALID_ARGUMENT', `integrity must be a string "sha256-<base64>", got ${describe(integrity)}`);
      const config = model === undefined || typeof model === 'string' ? model : JSON.stringify(model);
      // On the CPU: the module for the `threads` option (a WebGPU model chooses it if it moves).
      const pick = async () => { const c = await chooseBackend(backend); return c.gpu ? c : { ...c, cpu: await chooseCpu(threads) }; };
      // The module starts while the download's headers arrive; the body streams into it.
      const [chosen, source] = await Promise.all([pick(), openWeights(weights, signal)]);
      const on = chosen.gpu ? 'webgpu' : 'cpu';
      const glue = chosen.gpu ?? chosen.cpu.glue;
      let raw;
      try {
        const { reader, kept } = await streamWeights(glue, source, onProgress, signal);
        throwIfAborted(signal);
        raw = await glue.WasmModel.loadStream(config, reader, on, integrity, precision);
        return new MobileClip(raw, { config, weights: kept, weightsId: raw.weightsId, backend: on, reason: chosen.reason, threads, precision, cpu: chosen.cpu, glue });
      } catch (e) {
        if (isTrap(e) && !chosen.gpu) replaceInstance(chosen.cpu.threaded, e);
        throw e;
      }
    } catch (e) {
      throw toError(e);
    }
  }

  /**
   * Converts a published checkpoint into a compact file (as `mobileclip convert` does, byte for
   * byte): its fused inference tensors at `dtype`, one or both towers, with the model's config
   * inside, so that `load({ weights })` needs no model name. Convert once, keep (or host) the
   * small file, load that afterwards. Runs on this thread in the single-threaded CPU module (a
   * few seconds; the checkpoint streams into wasm memory, which holds about its fused tensors and the file at most): the
   * worker helper's `MobileClipWorker.convert` does it in a worker of its own, freed afterwards.
   * @param {object} options
   * @param {string|object} options.model the checkpoint's model: a shipped model name or a config object
   * @param {string|URL|Response|Blob|ArrayBuffer|Uint8Array} options.weights the published checkpoint
   * @param {'f32'|'f16'|'int8'|'auto'} [options.dtype] default 'auto'
   * @param {'image'|'text'|'both'} [options.towers] default 'both'
   * @param {(p: {loaded: number, total: number}) => void} [options.onProgress] download progress
   * @param {AbortSignal} [options.signal]
   * @returns {Promise<Uint8Array>} the compact file's bytes
   */
  static async convert(options) {
    try {
      const { model, weights, dtype, towers, onProgress, signal } = checkConvert(options);
      throwIfAborted(signal);
      const [source] = await Promise.all([openWeights(weights, signal), initWasm()]);
      throwIfAborted(signal);
      const config = typeof model === 'string' ? model : JSON.stringify(model);
      // Nothing kept for a reload: the checkpoint streams into wasm and is converted there.
      const { reader } = await streamWeights(cpu, { ...source, keep: null }, onProgress, signal);
      const run = queue.then(async () => {
        await breathe();
        try {
          return cpu.convertStream(config, reader, dtype, towers);
        } catch (e) {
          if (isTrap(e)) replaceInstance(false, e);
          throw e;
        }
      });
      queue = run.catch(() => {});
      return await run;
    } catch (e) {
      throw toError(e);
    }
  }

  /** Called by the WebGPU module's device-lost handler. @internal */
  _deviceLost(message) {
    this.#lost?.reject(new MobileClipError('DEVICE_LOST', message));
  }

  /** A new CPU model from the kept checkpoint, on the module the `threads` option gets now. */
  async #loadOnCpu() {
    const chosen = await chooseCpu(this.#threads);
    const { reader } = await streamWeights(chosen.glue, await openWeights(this.#weights));
    const raw = await chosen.glue.WasmModel.loadStream(this.#config, reader, 'cpu', this.#info.weightsId, this.#precision);
    this.#instance = cpuInstance;
    this.#cpu = chosen;
    this.#glue = chosen.glue;
    return raw;
  }

  /** Reloads the model on the CPU from the kept checkpoint, after the GPU device was lost. */
  async #moveToCpu(why) {
    const raw = await this.#loadOnCpu();
    try { this.#raw.free(); } catch { /* the GPU module may be unusable */ }
    this.#raw = raw;
    this.#backend = 'cpu';
    this.#reason = `${why}; moved from WebGPU`;
    this.#lost = null;
    gpuModels.delete(this);
  }

  /**
   * Runs one call (or one part of a long one) after the previous ones (of every model), so
   * concurrent calls behave as sequential ones. A model whose CPU instance was replaced after a
   * trap reloads first; a trap now replaces the instance and rejects with INTERNAL. On WebGPU, a
   * call that the lost device cannot finish is run again on the CPU.
   */
  #run(f) {
    const next = queue.then(async () => {
      await breathe();
      if (!this.#raw) throw disposed();
      try {
        if (this.#backend === 'cpu' && this.#instance !== cpuInstance) {
          this.#raw = await this.#loadOnCpu();
        }
        if (this.#lost) {
          try {
            return await Promise.race([f(this.#raw), this.#lost.promise]);
          } catch (e) {
            if (!isDeviceFailure(e)) throw e;
            // The device-lost event may come just after the failed read: wait briefly for its reason.
            if (!gpuLost) await Promise.race([this.#lost.promise.catch(() => {}), new Promise((r) => setTimeout(r, 500))]);
            if (isTrap(e)) gpuLost ??= `the WebGPU module failed (${e.message})`;
            await this.#moveToCpu(gpuLost ?? `the WebGPU device failed (${e.message})`);
          }
        }
        return await f(this.#raw);
      } catch (e) {
        if (isTrap(e) && this.#backend === 'cpu' && this.#instance === cpuInstance) replaceInstance(this.#cpu.threaded, e);
        throw e;
      }
    });
    queue = next.catch(() => {});
    return next.catch((e) => { throw toError(e); });
  }

  /**
   * Runs `work(raw, items)` on `items` in parts of `size`, each part its own turn of the queue
   * (other calls run in between), reporting `{done, total}` after each and stopping when
   * `signal` aborts. Resolves to the parts' results, concatenated.
   */
  async #inParts(list, size, { onProgress, signal }, work) {
    const out = [];
    for (let i = 0; i < list.length; i += size) {
      throwIfAborted(signal);
      const part = list.slice(i, i + size);
      const rows = await abortable(this.#run((raw) => work(raw, part, i)), signal);
      for (const r of rows) out.push(r);
      report(onProgress, Math.min(i + size, list.length), list.length);
    }
    return out;
  }

  /**
   * The module that runs the model's checks on the calling thread: its own, unless that is the
   * threaded one and it failed (then the single-threaded one, once it is there).
   */
  get #checks() {
    return this.#cpu?.threaded && mtFailed ? (cpuLoaded ? cpu : null) : this.#glue;
  }

  /** Rejects with the normalised error of a synchronous check. */
  static #check(f) {
    try {
      return f();
    } catch (e) {
      throw toError(e);
    }
  }

  /** 'cpu' or 'webgpu' (undefined after `dispose()`); `backendReason` says why. */
  get backend() { return this.#raw ? this.#backend : undefined; }
  /** Why this backend: the adapter's name on WebGPU; on the CPU, why not WebGPU, then how many threads (for one, why). */
  get backendReason() {
    if (!this.#raw) return undefined;
    return this.#backend === 'cpu' ? `${this.#reason}; ${this.#cpu.why}` : this.#reason;
  }
  get name() { return this.#raw ? this.#info.name : undefined; }
  /** "both", or "image" / "text" for a model loaded from a one-tower compact file. */
  get towers() { return this.#raw ? this.#info.towers : undefined; }
  /** Bytes the model's parameters hold in wasm memory (f32): what loading it needs at least. */
  get parameterBytes() { return this.#raw ? this.#info.parameterBytes : undefined; }
  get embedDim() { return this.#raw ? this.#info.embedDim : undefined; }
  get imageSize() { return this.#raw ? this.#info.imageSize : undefined; }
  get logitScale() { return this.#raw ? this.#info.logitScale : undefined; }
  /**
   * `sha256-<base64>` of the weights the model was loaded from (for a compact file, of that file).
   * Label packs carry the checkpoint's: for a compact file, that of the checkpoint it came from.
   */
  get weightsId() { return this.#raw ? this.#info.weightsId : undefined; }
  /** The weights id the label packs this model makes carry, and that its packs must carry: the checkpoint's (for a compact file, its source checkpoint's). */
  get labelPackId() { return this.#raw ? this.#info.packId : undefined; }
  /** How many images and texts go through the model at once: the parts of a long call. */
  get batchSize() { return this.#raw ? { images: this.#info.imageBatch, texts: this.#info.textBatch } : undefined; }
  /**
   * What each tower computes in: `{ image, text }`, 'f32', 'f16' or 'f16-weights' (32-bit
   * arithmetic on 16-bit weights; both only on WebGPU with `shader-f16`), null for a tower a
   * one-tower compact file does not hold.
   */
  get precision() { return this.#raw ? this.#raw.precision : undefined; }
  /** CPU threads computing: 1, or the threaded module's pool size; 0 on WebGPU. */
  get threads() { return this.#raw ? (this.#backend === 'cpu' ? this.#cpu.threads : 0) : undefined; }

  /** L2-normalised embedding of one image source. */
  async encodeImage(src, options) {
    return (await this.encodeImages([src], options))[0];
  }

  /** L2-normalised embeddings of image sources, any number of them, a few at a time. */
  async encodeImages(srcs, options) {
    const opts = MobileClip.#check(() => checkOptions(options, 'encodeImages', OPTIONS.encode));
    MobileClip.#check(() => imageSources(srcs, 'encodeImages'));
    // Read the pixels now (the caller may change a canvas afterwards), up to EAGER_PIXEL_BYTES;
    // the rest when their part starts, so that a long batch never holds all its pixels.
    const pixels = [];
    let bytes = 0;
    for (let i = 0; i < srcs.length && bytes < EAGER_PIXEL_BYTES; i++) {
      pixels[i] = MobileClip.#check(() => toRgba(srcs[i]));
      bytes += pixels[i].data.length;
    }
    const indices = srcs.map((_, i) => i);
    return this.#inParts(indices, this.#info.imageBatch, opts, (raw, part) => {
      const px = part.map((i) => pixels[i] ?? toRgba(srcs[i]));
      for (const i of part) pixels[i] = undefined;
      return raw.encodeRgba(px.map((p) => p.data), px.map((p) => p.width), px.map((p) => p.height));
    });
  }

  /** L2-normalised embedding(s): a Float32Array for a string, an array of them for an array. */
  async encodeText(text, options) {
    const opts = MobileClip.#check(() => checkOptions(options, 'encodeText', OPTIONS.encode));
    const list = MobileClip.#check(() => {
      const texts = textList(text, 'encodeText');
      checkLengths(this.#checks, texts, (i, n, max) => new MobileClipError('INVALID_TEXT', `text ${i} has ${n} characters; texts are limited to ${max} (CLIP reads their first 77 tokens)`));
      return texts;
    });
    const out = await this.#inParts(list, this.#info.textBatch, opts, (raw, part) => raw.encodeTexts(part));
    return Array.isArray(text) ? out : out[0];
  }

  /**
   * L2-normalised embeddings of preprocessed pixels: `count` images of 3 × imageSize × imageSize
   * values (CHW, normalised as the model's preprocessing does), as the reference's transforms
   * make them.
   */
  async encodePixels(pixels, count, options) {
    const opts = MobileClip.#check(() => checkOptions(options, 'encodePixels', OPTIONS.encode));
    const per = 3 * this.#info.imageSize ** 2;
    if (!(pixels instanceof Float32Array) || !Number.isSafeInteger(count) || count < 1 || pixels.length !== count * per) {
      throw new MobileClipError('INVALID_IMAGE', `encodePixels needs a Float32Array of count × 3 × ${this.#info.imageSize} × ${this.#info.imageSize} values, got ${describe(pixels)} of ${pixels?.length} for count ${count}`);
    }
    const indices = Array.from({ length: count }, (_, i) => i);
    return this.#inParts(indices, this.#info.imageBatch, opts, (raw, part) => raw.encodePixels(pixels.subarray(part[0] * per, (part.at(-1) + 1) * per), part.length));
  }

  /** L2-normalised embeddings of token-id sequences: `count` rows of 77 ids (as open_clip's tokenizer makes them), flattened. */
  async encodeTokens(ids, count, options) {
    const opts = MobileClip.#check(() => checkOptions(options, 'encodeTokens', OPTIONS.encode));
    if (!(ids instanceof Uint32Array || ids instanceof Int32Array) || !Number.isSafeInteger(count) || count < 1 || ids.length % count !== 0) {
      throw new MobileClipError('INVALID_TEXT', `encodeTokens needs a Uint32Array or Int32Array of count × context length ids, got ${describe(ids)} of ${ids?.length} for count ${count}`);
    }
    const per = ids.length / count;
    await this.#run((raw) => raw.checkTokens(ids, count)); // every sequence, before any work
    const indices = Array.from({ length: count }, (_, i) => i);
    return this.#inParts(indices, this.#info.textBatch, opts, (raw, part) => raw.encodeTokens(new Uint32Array(ids.buffer, ids.byteOffset + part[0] * per * 4, part.length * per), part.length));
  }

  /**
   * The label pack of `labels`: each label's prompts (`templates`, default "a photo of a {}.")
   * embedded, averaged and re-normalised, a few labels at a time. Labels found in `reuse` (packs
   * of this model with the same templates) are copied, not encoded; `onProgress` counts the
   * labels to encode.
   */
  async labelEmbeddings(labels, options) {
    const { templates = DEFAULT_TEMPLATES, reuse = [], ...opts } = MobileClip.#check(() => checkOptions(options, 'labelEmbeddings', OPTIONS.labelEmbeddings));
    const known = MobileClip.#check(() => {
      checkLabels(this.#checks, labels, templates);
      return this.#reusable(reuse, templates);
    });
    const trimmed = labels.map((l) => l.trim());
    const dim = this.#info.embedDim;
    const todo = [...new Set(trimmed.filter((l) => !known.has(l)))];
    const perPart = todo.length ? await this.#run((raw) => raw.labelsPerBatch(templates.length)) : 1;
    const rows = await this.#inParts(todo, perPart, opts, async (raw, part) => {
      const flat = await raw.labelEmbeddings(part, templates);
      return part.map((_, k) => flat.subarray(k * dim, (k + 1) * dim));
    });
    todo.forEach((l, k) => known.set(l, rows[k]));
    const embeddings = new Float32Array(trimmed.length * dim);
    trimmed.forEach((l, i) => embeddings.set(known.get(l), i * dim));
    return new LabelPack({ model: this.#info.name, weightsId: this.#info.packId, labels: trimmed, templates: [...templates], embeddings });
  }

  /** Checks a pack against this model: LABEL_PACK_MISMATCH when another model or weights made it. */
  #checkPack(pack) {
    if (!(pack instanceof LabelPack)) throw new MobileClipError('INVALID_ARGUMENT', `expected a LabelPack, got ${describe(pack)}`);
    const mismatch = (m) => new MobileClipError('LABEL_PACK_MISMATCH', m);
    if (pack.model !== this.#info.name) throw mismatch(`the pack was made by ${pack.model}, this model is ${this.#info.name}`);
    if (pack.weightsId !== this.#info.packId && pack.weightsId !== this.#info.weightsId) throw mismatch(`the pack was made with other weights of ${pack.model} (${pack.weightsId}; these are ${this.#info.packId})`);
  }

  /** label → embedding of the packs in `reuse` made by this model with `templates`. */
  #reusable(reuse, templates) {
    const known = new Map();
    for (const pack of Array.isArray(reuse) ? reuse : [reuse]) {
      this.#checkPack(pack);
      if (pack.templates.length !== templates.length || pack.templates.some((t, i) => t !== templates[i])) continue;
      pack.labels.forEach((l, i) => known.set(l, pack.embedding(i)));
    }
    return known;
  }

  /**
   * Zero-shot tagging: `[{label, score}]`, best first (softmax over cosine × logit scale). `labels`
   * is a label pack (`labelEmbeddings`) or an array of labels, encoded first with `templates`
   * (several are averaged per label, as in CLIP).
   * @param image an image source or an image embedding (Float32Array)
   */
  async zeroShot(image, labels, options) {
    const opts = MobileClip.#check(() => checkOptions(options, 'zeroShot', OPTIONS.zeroShot));
    const { templates, topK, signal } = opts;
    MobileClip.#check(() => {
      if (labels instanceof LabelPack) {
        if (templates !== undefined) throw new MobileClipError('INVALID_ARGUMENT', 'templates are given with the labels, not with a label pack (it has its own)');
        this.#checkPack(labels);
      } else {
        checkLabels(this.#checks, labels, templates ?? DEFAULT_TEMPLATES);
      }
      if (image instanceof Float32Array) checkEmbedding(image, this.#info.embedDim);
    });
    const emb = image instanceof Float32Array ? image : await this.encodeImage(image, { signal });
    const pack = labels instanceof LabelPack ? labels : await this.labelEmbeddings(labels, { templates, onProgress: opts.onProgress, signal });
    throwIfAborted(signal);
    return this.#run((raw) => raw.rank(emb, pack.labels, pack.embeddings, Math.min(topK ?? pack.size, pack.size)));
  }

  /** Cosine similarity of two embeddings. */
  similarity(a, b) { return similarity(a, b); }

  /** Traps the wasm instance inside a call, as a bug would: for the package's tests only. @internal */
  [TRAP_FOR_TESTS]() {
    return this.#run(() => this.#glue.__trapForTests());
  }

  /** Frees the model; later calls reject with code DISPOSED. */
  dispose() {
    try { if (this.#instance === cpuInstance || this.#backend === 'webgpu') this.#raw?.free(); } catch { /* a lost GPU module, a failed pool */ }
    this.#raw = null;
    this.#weights = null;
    gpuModels.delete(this);
  }
}
