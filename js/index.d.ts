/**
 * Every error code a call can reject with (`MobileClipError.code`):
 * - `UNKNOWN_MODEL`: the model name is not a shipped one (see `modelNames()`).
 * - `INVALID_CONFIG`: a config object that cannot be used (a missing or inconsistent field).
 * - `INVALID_WEIGHTS`: the weights file cannot be read (truncated, corrupt, not a checkpoint).
 * - `WEIGHTS_MISMATCH`: the weights are another model's (tensors missing, unexpected or mis-shaped).
 * - `WEIGHTS_DOWNLOAD`: downloading the weights failed (an HTTP error status, or the download / the weights stream failing midway).
 * - `INTEGRITY_MISMATCH`: the weights' sha256 is not the one the load's `integrity` names.
 * - `NO_TEXT_TOWER`, `NO_IMAGE_TOWER`: a call needing the tower a one-tower compact file left out.
 * - `INVALID_IMAGE`, `TAINTED_IMAGE`: an image that cannot be read (wrong type, empty, cross-origin without CORS).
 * - `INVALID_TEXT`: a text that is not a string, or an empty list of texts.
 * - `INVALID_ARGUMENT`: any other bad argument: options (unknown keys, `topK` < 1 or not whole),
 *   embeddings with NaN or infinite values or of the wrong length, labels and templates.
 * - `INVALID_LABEL_PACK`: bytes that are not a label pack (garbage, truncated, a newer version).
 * - `LABEL_PACK_MISMATCH`: a label pack made by another model or other weights.
 * - `NO_WEBGPU`: `backend: 'webgpu'` where WebGPU is not available.
 * - `UNSUPPORTED_BROWSER`: a browser without WebAssembly or without wasm SIMD.
 * - `DEVICE_LOST`: the GPU device was lost and the CPU could not take over (normally the model
 *   moves to the CPU and the call is re-run there, without an error).
 * - `ABORTED`: the call's (or the load's) `signal` aborted.
 * - `DISPOSED`: the model was disposed.
 * - `INTERNAL`: a bug, or the wasm instance ran out of memory. The instance is then replaced (the
 *   threaded CPU module by the single-threaded one) and the next call reloads the model (the
 *   worker helper starts a fresh worker): reported once.
 */
export type MobileClipErrorCode =
  | 'UNKNOWN_MODEL'
  | 'INVALID_CONFIG'
  | 'INVALID_WEIGHTS'
  | 'WEIGHTS_MISMATCH'
  | 'WEIGHTS_DOWNLOAD'
  | 'INTEGRITY_MISMATCH'
  | 'NO_TEXT_TOWER'
  | 'NO_IMAGE_TOWER'
  | 'INVALID_IMAGE'
  | 'TAINTED_IMAGE'
  | 'INVALID_TEXT'
  | 'INVALID_ARGUMENT'
  | 'INVALID_LABEL_PACK'
  | 'LABEL_PACK_MISMATCH'
  | 'NO_WEBGPU'
  | 'UNSUPPORTED_BROWSER'
  | 'DEVICE_LOST'
  | 'ABORTED'
  | 'DISPOSED'
  | 'INTERNAL';

/** Error thrown (as a rejected promise) by every call; `code` is stable. */
export class MobileClipError extends Error {
  readonly name: 'MobileClipError';
  readonly code: MobileClipErrorCode;
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

/** What a tower computes in: 32-bit, 16-bit, or 32-bit arithmetic on 16-bit weights. */
export type TowerPrecision = 'f32' | 'f16' | 'f16-weights';

export type WeightsSource = string | URL | Response | Blob | ReadableStream<Uint8Array> | ArrayBuffer | ArrayBufferView;

export interface LoadOptions {
  /**
   * A shipped model name (see `modelNames()`) or a config object. Default: a compact file's own
   * config (a compact file names its model; another name is refused with WEIGHTS_MISMATCH), and
   * "MobileCLIP-S0" for a published checkpoint.
   */
  model?: string | object;
  /**
   * The published checkpoint (PyTorch .pt/.bin or .safetensors), or a compact file made by
   * `mobileclip convert` (fused, f32/f16/int8 tensors, one or both towers), as a URL, bytes or a
   * stream. It is read into the model tensor by tensor as it arrives (a download, a Blob's or a
   * ReadableStream's chunks), never held whole in wasm memory; a stream that ends early rejects
   * with INVALID_WEIGHTS naming the tensor or zip entry it ended in.
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
   * asked for); 1 is the single-threaded module. `threads` says how many run, `backendReason` why one.
   */
  threads?: number | 'auto';
  /**
   * What the model computes in on WebGPU. Default "auto": 16-bit floats for text towers and ViT
   * image towers where the adapter offers `shader-f16` (their embeddings measured within cosine
   * 0.9999 of 32-bit), and for convolutional image towers 32-bit arithmetic with most of their
   * weights held in 16-bit ("f16-weights": about half the memory, embeddings within rounding of
   * the weights); "f16": every tower in 16-bit where the adapter offers it; "f32": 32-bit
   * everywhere. Without `shader-f16`, and on the CPU, every tower
   * computes in 32-bit, without an error: `precision` says what each tower got. Embeddings are
   * `Float32Array`s either way. Another value rejects with INVALID_ARGUMENT.
   */
  precision?: 'auto' | 'f32' | 'f16';
  /** Download progress in bytes (`total` is 0 when the server sends no length). */
  onProgress?: (progress: { loaded: number; total: number }) => void;
  signal?: AbortSignal;
}

export interface ConvertOptions {
  /**
   * The checkpoint's model: a shipped model name (see `modelNames()`), a config object or its JSON
   * text. Required. The file stores the config as canonical JSON, so a name, the text or an object
   * give the CLI's bytes exactly.
   */
  model: string | object;
  /** The published checkpoint (PyTorch .pt/.bin or .safetensors, either layout), as a URL, a stream or bytes: it streams into wasm memory. */
  weights: WeightsSource;
  /**
   * Storage of the matrices and kernels (default "auto"): "f32" (embeddings bit-identical to the
   * checkpoint's), "f16", "int8" (weight-only, per-channel scales), or "auto" (per tensor, the
   * smallest of f16, halves with a scale per channel, and 4- to 8-bit integers per channel or per
   * group (in a folded identity, with each row's largest values kept apart) that keeps its error
   * within bounds). Computation stays f32.
   */
  dtype?: 'f32' | 'f16' | 'int8' | 'auto';
  /** Which towers to keep (default "both"): "image" for tagging with label packs, "text", "both". */
  towers?: 'image' | 'text' | 'both';
  /** Download progress of URL weights in bytes. */
  onProgress?: (progress: { loaded: number; total: number }) => void;
  /**
   * Rejects with ABORTED. `MobileClipWorker.convert` stops at once (its worker is terminated);
   * `MobileClip.convert` checks it before and after the download, the conversion itself then runs to its end.
   */
  signal?: AbortSignal;
}

/**
 * Options of the calls that take a batch (`encodeImages`, `encodeText`, `encodePixels`,
 * `encodeTokens`, `labelEmbeddings`, `zeroShot`). A batch of any length goes through the model
 * `batchSize` items at a time; between parts the thread gets a turn (and other calls on the
 * same model run), `onProgress` is told, and `signal` is checked.
 */
export interface BatchOptions {
  /** Items done (images, texts, labels to encode) of the call's total, after each part. */
  onProgress?: (progress: { done: number; total: number }) => void;
  /** Aborting rejects the call with ABORTED at once; the work stops at its next part, and the model stays usable. */
  signal?: AbortSignal;
}

export interface LabelScore {
  label: string;
  /** Softmax probability over the labels. */
  score: number;
}

export interface LabelEmbeddingsOptions extends BatchOptions {
  /** Prompt templates with `{}` for the label, averaged per label (default ["a photo of a {}."]). */
  templates?: string[];
  /**
   * Packs of this model whose labels are copied instead of encoded again (only those made with
   * the same templates). A pack of another model or other weights rejects with LABEL_PACK_MISMATCH.
   */
  reuse?: LabelPack | LabelPack[];
}

export interface ZeroShotOptions extends BatchOptions {
  /** Prompt templates with `{}` for the label; several are averaged per label. Only with a label list (a pack has its own). */
  templates?: string[];
  /** How many labels to return, best first: a whole number ≥ 1 (default: all). */
  topK?: number;
}

/**
 * The label embeddings of one model and one set of weights (`clip.labelEmbeddings(...)`, or the
 * CLI's `mobileclip labels`), to rank images against without encoding the labels again, across
 * calls and visits (`toBytes()` / `LabelPack.fromBytes()`).
 */
export class LabelPack {
  /** Checks and wraps a pack's parts (rows must be L2-normalised); throws INVALID_LABEL_PACK. */
  constructor(parts: { model: string; weightsId: string; labels: string[]; templates: string[]; embeddings: Float32Array });
  /** The name of the model that made it. */
  readonly model: string;
  /** The `weightsId` of the model that made it. */
  readonly weightsId: string;
  /** The labels (trimmed), in order; repeats are kept. */
  readonly labels: readonly string[];
  /** The prompt templates averaged per label. */
  readonly templates: readonly string[];
  /** Embedding dimension. */
  readonly dim: number;
  /** `size × dim` values: one L2-normalised row per label. */
  readonly embeddings: Float32Array;
  /** Number of labels. */
  readonly size: number;
  /** The embedding of label `i` (a view, not a copy). */
  embedding(i: number): Float32Array;
  /** A safetensors file (tensor `embeddings`, metadata: format, version, model, weights_id, labels, templates). */
  toBytes(): Uint8Array;
  /** Reads `toBytes()`'s or the CLI's bytes; throws INVALID_LABEL_PACK naming what is wrong. */
  static fromBytes(bytes: Uint8Array | ArrayBuffer): LabelPack;
}

/** What a loaded model offers: `MobileClip`, and `MobileClipWorker` (`mobileclip-wasm/worker`). */
export interface ClipModel {
  /** Where the model runs: "webgpu" or "cpu"; undefined after `dispose()` (as every getter). */
  readonly backend: 'cpu' | 'webgpu';
  /**
   * Why: the adapter's name on WebGPU; on the CPU why not WebGPU and how many threads compute
   * ("requested; 1 thread (the page is not cross-origin isolated …)", "the browser offers no WebGPU
   * adapter; 4 threads", "… software fallback …; 2 threads", "the WebGPU device was lost …; moved
   * from WebGPU; 1 thread").
   */
  readonly backendReason: string;
  readonly name: string;
  readonly embedDim: number;
  readonly imageSize: number;
  readonly logitScale: number;
  /** "both", or "image" / "text" for a model loaded from a one-tower compact file (the other
   * tower's calls reject with NO_TEXT_TOWER / NO_IMAGE_TOWER). */
  readonly towers: 'both' | 'image' | 'text';
  /** Bytes the model's parameters hold (f32 on the CPU, whatever the file stored; 2 per value held
   * in f16 on WebGPU: see `precision`): what loading it needs at least (a streamed load peaks within
   * 15 % above it, BENCHMARKS.md). */
  readonly parameterBytes: number;
  /** What each tower computes in ("f16", and "f16-weights": 32-bit arithmetic on 16-bit weights, only
   * on WebGPU with `shader-f16`, see `LoadOptions.precision`); null for the tower a one-tower compact
   * file does not hold. */
  readonly precision: { image: TowerPrecision | null; text: TowerPrecision | null };
  /** `sha256-<base64>` of the weights file loaded (a Subresource Integrity hash; for a compact file, of that file).
   * Label packs carry the checkpoint's id (for a compact file, its source checkpoint's), so packs of a checkpoint
   * work on every compact file converted from it. */
  readonly weightsId: string;
  /** The weights id its label packs carry (and packs given to it must carry): the checkpoint's, for a compact file
   * its source checkpoint's. Compare a stored pack's `weightsId` with it before reusing the pack. */
  readonly labelPackId: string;
  /** How many images and texts go through the model at once (the parts of a long call). */
  readonly batchSize: { images: number; texts: number };
  /** CPU threads computing: 1, or the threaded module's pool size; 0 on WebGPU. */
  readonly threads: number;
  encodeImage(image: ImageSource, options?: BatchOptions): Promise<Float32Array>;
  /** Any number of images; the pixels of the first 64 MB of them are read at once, the rest as their part starts. */
  encodeImages(images: ImageSource[], options?: BatchOptions): Promise<Float32Array[]>;
  encodeText(text: string, options?: BatchOptions): Promise<Float32Array>;
  encodeText(texts: string[], options?: BatchOptions): Promise<Float32Array[]>;
  /** Preprocessed pixels: `count` images of 3 × imageSize × imageSize values (CHW, as the reference's transforms make them). */
  encodePixels(pixels: Float32Array, count: number, options?: BatchOptions): Promise<Float32Array[]>;
  /** Token ids: `count` rows of the model's context length (77), flattened (as open_clip's tokenizer makes them). */
  encodeTokens(ids: Uint32Array | Int32Array, count: number, options?: BatchOptions): Promise<Float32Array[]>;
  /** The label pack of `labels` (each label's prompts embedded, averaged and re-normalised). */
  labelEmbeddings(labels: string[], options?: LabelEmbeddingsOptions): Promise<LabelPack>;
  /** Labels (a pack, or a list encoded first) ranked for an image (or an image embedding), best first. */
  zeroShot(image: ImageSource | Float32Array, labels: LabelPack | string[], options?: ZeroShotOptions): Promise<LabelScore[]>;
  /** Cosine similarity (INVALID_ARGUMENT for other lengths or non-finite values). */
  similarity(a: Float32Array, b: Float32Array): number;
  /** Frees the model; pending (worker) and later calls reject with code DISPOSED. */
  dispose(): void;
}

/** A loaded MobileCLIP model, running on the calling thread. */
export interface MobileClip extends ClipModel {}
export class MobileClip {
  static load(options: LoadOptions): Promise<MobileClip>;
  /**
   * Converts a published checkpoint into a compact file's bytes, as `mobileclip convert` writes it
   * (the same bytes): load it later with `load({ weights })`, no model name needed. Runs on the
   * calling thread (`MobileClipWorker.convert` runs it in a worker of its own). Bad options reject
   * with INVALID_ARGUMENT, an unknown model with UNKNOWN_MODEL, a file that is not this model's
   * checkpoint with INVALID_WEIGHTS / WEIGHTS_MISMATCH (a compact file: INVALID_ARGUMENT).
   */
  static convert(options: ConvertOptions): Promise<Uint8Array>;
}

/** Cosine similarity of two embeddings. */
export function similarity(a: Float32Array, b: Float32Array): number;
/** Names of the shipped model configs. */
export function modelNames(): Promise<string[]>;
/** Bytes of linear memory the wasm modules hold (they only grow; 0 before the first load). */
export function wasmMemoryBytes(): number;
