import type { ClipModel, ConvertOptions, LoadOptions } from './index.js';
export { LabelPack, MobileClipError, MobileClipErrorCode } from './index.js';

/**
 * A MobileCLIP model running in a dedicated module Worker (`mobileclip-wasm/worker`): the methods
 * and getters of `MobileClip`, with the calling thread left free.
 *
 * Images are turned into an ImageBitmap (or a copy of their RGBA buffer) on the calling side and
 * transferred, a batch at a time; the caller's own objects are never detached. URL weights are
 * fetched inside the worker with progress forwarded; ArrayBuffer/Uint8Array weights are
 * transferred (the caller's buffer becomes empty); Blobs are passed by reference; a Response is
 * read on the calling side. Progress of long calls is forwarded; aborting one rejects it at once
 * and stops it in the worker. If the worker's wasm instance traps (or the worker dies), that call
 * rejects with INTERNAL and a fresh worker loads the model again (from the URL, the Blob, or a
 * Blob of the bytes) for the calls that follow.
 */
export interface MobileClipWorker extends ClipModel {}
export class MobileClipWorker {
  /** Starts the worker and loads the model in it; rejects with a `MobileClipError`. Aborting terminates the worker. */
  static load(options: LoadOptions): Promise<MobileClipWorker>;
  /**
   * `MobileClip.convert` in a worker of its own, terminated afterwards (its memory with it);
   * aborting terminates it at once.
   */
  static convert(options: ConvertOptions): Promise<Uint8Array>;
}
