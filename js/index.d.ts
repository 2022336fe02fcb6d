/** Error thrown (as a rejected promise) by every call; `code` is stable. */
export class MobileClipError extends Error {
  readonly name: 'MobileClipError';
  /** e.g. UNKNOWN_MODEL, INVALID_WEIGHTS, WEIGHTS_MISMATCH, WEIGHTS_DOWNLOAD, INTEGRITY_MISMATCH,
   * NO_TEXT_TOWER / NO_IMAGE_TOWER (a one-tower compact file), INVALID_IMAGE,
   * TAINTED_IMAGE, INVALID_TEXT, INVALID_ARGUMENT, NO_WEBGPU, UNSUPPORTED_BROWSER (no WebAssembly
   * or no wasm SIMD), ABORTED, DISPOSED, INTERNAL
   * (DEVICE_LOST is handled inside: the model moves to the CPU and the call is re-run) */
  readonly code: string;
}

/** Pixels the model accepts directly: ImageData or any `{data, width, height}` RGBA buffer. */
export interface RgbaImage {
  data: Uint8ClampedArray | Uint8Array;
  width: number;
  height: number;
}

export type ImageSource =
  | ImageData
  | RgbaImage
  | HTMLCanvasElement
  | OffscreenCanvas
  | ImageBitmap
  | HTMLImageElement
  | HTMLVideoElement;

export type WeightsSource = string | URL | Response | Blob | ArrayBuffer | ArrayBufferView;

export interface LoadOptions {
  /**
   * A shipped model name (see `modelNames()`) or a config object. Default: a compact file's own
   * config (a compact file names its model; another name is refused with WEIGHTS_MISMATCH), and
   * "MobileCLIP-S0" for a published checkpoint.
   */
  model?: string | object;
  /**
   * The published checkpoint (PyTorch .pt/.bin or .safetensors), or a compact file made by
   * `mobileclip convert` (fused, f32/f16/int8 tensors, one or both towers), as a URL or bytes.
   */
  weights: WeightsSource;
  /**
   * "sha256-<base64 digest>" (as Subresource Integrity writes it): the weights' bytes are
   * checked before they are used; another digest rejects with INTEGRITY_MISMATCH.
   */
  integrity?: string;
  /**
   * Default "auto": WebGPU on a hardware adapter (the WebGPU module is downloaded only then),
   * else the CPU. "webgpu" insists (rejects with NO_WEBGPU); "cpu" never touches the GPU.
   */
  backend?: 'auto' | 'cpu' | 'webgpu';
  /**
   * CPU threads. Default "auto": `navigator.hardwareConcurrency` (at most 8) where the page is
   * cross-origin isolated (COOP `same-origin` + COEP `require-corp`), else 1. More than one loads
   * the threaded CPU module (its pool of workers is started once per page, with the first count
   * asked for); 1 is the single-threaded module. `backend` says how many threads run, or why one.
   */
  threads?: number | 'auto';
  /** Download progress in bytes (`total` is 0 when the server sends no length). */
  onProgress?: (progress: { loaded: number; total: number }) => void;
  signal?: AbortSignal;
}

export interface LabelScore {
  label: string;
  /** Softmax probability over the labels. */
  score: number;
}

export interface ZeroShotOptions {
  /** Prompt templates with `{}` for the label; several are averaged per label. */
  templates?: string[];
  topK?: number;
}

/** What a loaded model offers: `MobileClip`, and `MobileClipWorker` (`mobileclip-wasm/worker`). */
export interface ClipModel {
  /**
   * The backend in use and why: "webgpu: <adapter>", or "cpu: <reason>; <threads>" (e.g. "cpu:
   * the browser offers no WebGPU adapter; 2 threads", "cpu: requested; 1 thread (the page is not
   * cross-origin isolated …)", "cpu: …device was lost…; moved from WebGPU; 4 threads");
   * "disposed" after `dispose()`.
   */
  readonly backend: string;
  readonly name: string;
  readonly embedDim: number;
  readonly imageSize: number;
  readonly logitScale: number;
  /** "both", or "image" / "text" for a model loaded from a one-tower compact file (the other
   * tower's calls reject with NO_TEXT_TOWER / NO_IMAGE_TOWER). */
  readonly towers: 'both' | 'image' | 'text';
  encodeImage(image: ImageSource): Promise<Float32Array>;
  encodeImages(images: ImageSource[]): Promise<Float32Array[]>;
  encodeText(text: string): Promise<Float32Array>;
  encodeText(texts: string[]): Promise<Float32Array[]>;
  /** Labels ranked for an image (or an image embedding), best first. */
  zeroShot(image: ImageSource | Float32Array, labels: string[], options?: ZeroShotOptions): Promise<LabelScore[]>;
  similarity(a: Float32Array, b: Float32Array): number;
  /** Frees the model; pending (worker) and later calls reject with code DISPOSED. */
  dispose(): void;
}

/** A loaded MobileCLIP model, running on the calling thread. */
export interface MobileClip extends ClipModel {}
export class MobileClip {
  static load(options: LoadOptions): Promise<MobileClip>;
}

/** Cosine similarity of two embeddings. */
export function similarity(a: Float32Array, b: Float32Array): number;
/** Names of the shipped model configs. */
export function modelNames(): Promise<string[]>;
/** Bytes of linear memory the wasm modules hold (they only grow; 0 before the first load). */
export function wasmMemoryBytes(): number;
