// The module Worker behind `mobileclip-wasm/worker` (worker.js): holds one MobileClip and answers
// the calling side's messages `{ id, op, ... }` with `{ id, result }`, `{ id, error: {code, message} }`
// or, while loading, `{ id, progress: {loaded, total} }`. Results are transferred back.
import { MobileClip } from './index.js';

let clip = null;

/** Whether this worker can read an ImageBitmap's pixels (a 2d OffscreenCanvas; not in Safari < 16.4). */
function canDraw() {
  try {
    return !!new OffscreenCanvas(1, 1).getContext('2d');
  } catch {
    return false;
  }
}

function errorOf(e) {
  return { code: typeof e?.code === 'string' ? e.code : 'INTERNAL', message: e?.message ?? String(e) };
}

async function handle({ id, op, ...args }) {
  switch (op) {
    case 'load': {
      clip = await MobileClip.load({
        model: args.model,
        weights: args.weights,
        backend: args.backend,
        threads: args.threads,
        integrity: args.integrity,
        onProgress: (progress) => self.postMessage({ id, progress }),
      });
      const { backend, name, embedDim, imageSize, logitScale, towers } = clip;
      return { result: { backend, name, embedDim, imageSize, logitScale, towers, workerDraws: canDraw() } };
    }
    case 'encodeImages': {
      const rows = await clip.encodeImages(args.images);
      for (const i of args.images) i.close?.(); // ImageBitmaps: free them now, not at GC
      return { result: rows, transfer: rows.map((r) => r.buffer) };
    }
    case 'encodeText': {
      const out = await clip.encodeText(args.text);
      return { result: out, transfer: Array.isArray(out) ? out.map((r) => r.buffer) : [out.buffer] };
    }
    case 'zeroShot': {
      const result = await clip.zeroShot(args.image, args.labels, args.options);
      args.image.close?.();
      return { result };
    }
    default:
      throw Object.assign(new Error(`unknown operation ${op}`), { code: 'INTERNAL' });
  }
}

self.onmessage = async ({ data }) => {
  try {
    const { result, transfer = [] } = await handle(data);
    self.postMessage({ id: data.id, result }, transfer);
  } catch (e) {
    self.postMessage({ id: data.id, error: errorOf(e) });
  }
};
