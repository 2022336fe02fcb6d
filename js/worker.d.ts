import type { ImageSource, LabelScore, LoadOptions, ZeroShotOptions } from './index.js';
export { MobileClipError } from './index.js';

/**
 * A MobileCLIP model running in a dedicated module Worker (`mobileclip-wasm/worker`): the methods
 * and getters of `MobileClip` (except `raw`), with the calling thread left free.
 *
 * Images are turned into an ImageBitmap (or a copy of their RGBA buffer) on the calling side and
 * transferred; the caller's own objects are never detached. URL weights are fetched inside the
 * worker with progress forwarded; ArrayBuffer/Uint8Array weights are transferred (the caller's
 * buffer becomes empty); Blobs are passed by reference; a Response is read on the calling side.
 */
export class MobileClipWorker {
  /** Starts the worker and loads the model in it; rejects with a `MobileClipError`. Aborting terminates the worker. */
  static load(options: LoadOptions): Promise<MobileClipWorker>;
  /** The backend in use and why, e.g. "cpu: requested"; "disposed" after `dispose()`. */
  readonly backend: string;
  readonly name: string;
  readonly embedDim: number;
  readonly imageSize: number;
  readonly logitScale: number;
  encodeImage(image: ImageSource): Promise<Float32Array>;
  encodeImages(images: ImageSource[]): Promise<Float32Array[]>;
  encodeText(text: string): Promise<Float32Array>;
  encodeText(texts: string[]): Promise<Float32Array[]>;
  /** Labels ranked for an image (or an image embedding), best first. */
  zeroShot(image: ImageSource | Float32Array, labels: string[], options?: ZeroShotOptions): Promise<LabelScore[]>;
  similarity(a: Float32Array, b: Float32Array): number;
  /** Terminates the worker; pending and later calls reject with code DISPOSED. */
  dispose(): void;
}
