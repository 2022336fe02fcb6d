// The module Worker behind `mobileclip-wasm/worker` (worker.js): holds one MobileClip and answers
// the calling side's messages `{ id, op, ... }` with `{ id, result }` or `{ id, error: {code,
// message, trap} }`, and `{ id, progress }` on the way (download bytes while loading, items done
// in long calls). `{ op: 'abort', id }` aborts call `id`. Results are transferred back.
import { LabelPack, MobileClip } from './index.js';
import { errorMessage, MobileClipError, TRAP_FOR_TESTS } from './common.js';
import { packParts } from './label-pack.js';

let clip = null;
const calls = new Map(); // id → AbortController of the calls in progress

/** Whether this worker can read an ImageBitmap's pixels (a 2d OffscreenCanvas; not in Safari < 16.4). */
function canDraw() {
  try {
    return !!new OffscreenCanvas(1, 1).getContext('2d');
  } catch {
    return false;
  }
}

async function handle({ id, op, ...args }, signal) {
  const progress = (p) => self.postMessage({ id, progress: p });
  const opts = args.progress ? { onProgress: progress, signal } : { signal };
  switch (op) {
    case 'load': {
      // Bytes become a Blob first: the model keeps it (no second copy) and it goes back to the
      // calling side, which restarts the worker from it if the wasm instance ever traps.
      const weights = args.weights instanceof ArrayBuffer || ArrayBuffer.isView(args.weights) ? new Blob([args.weights]) : args.weights;
      clip = await MobileClip.load({ model: args.model, weights, integrity: args.integrity, backend: args.backend, threads: args.threads, precision: args.precision, onProgress: progress, signal });
      const { backend, backendReason, threads, precision, name, towers, parameterBytes, embedDim, imageSize, logitScale, weightsId, labelPackId, batchSize } = clip;
      return {
        result: {
          backend, backendReason, threads, precision, name, towers, parameterBytes, embedDim, imageSize, logitScale, weightsId, labelPackId, batchSize,
          workerDraws: canDraw(), weights: weights instanceof Blob ? weights : null,
        },
      };
    }
    case 'convert': {
      const bytes = await MobileClip.convert({ model: args.model, weights: args.weights, dtype: args.dtype, towers: args.towers, onProgress: progress, signal });
      return { result: bytes, transfer: [bytes.buffer] };
    }
    case 'encodeImages': {
      try {
        const rows = await clip.encodeImages(args.images, opts);
        return { result: rows, transfer: rows.map((r) => r.buffer) };
      } finally {
        for (const i of args.images) i.close?.(); // ImageBitmaps: free them now, not at GC
      }
    }
    case 'encodeText': {
      const out = await clip.encodeText(args.text, opts);
      return { result: out, transfer: Array.isArray(out) ? out.map((r) => r.buffer) : [out.buffer] };
    }
    case 'encodePixels':
    case 'encodeTokens': {
      const rows = await clip[op](args.data, args.count, opts);
      return { result: rows, transfer: rows.map((r) => r.buffer) };
    }
    case 'labelEmbeddings': {
      const reuse = (args.reuse ?? []).map((p) => new LabelPack(p));
      const pack = await clip.labelEmbeddings(args.labels, { ...args.options, reuse, ...opts });
      return { result: packParts(pack), transfer: [pack.embeddings.buffer] };
    }
    case 'zeroShot': {
      try {
        const labels = args.pack ? new LabelPack(args.pack) : args.labels;
        return { result: await clip.zeroShot(args.image, labels, { ...args.options, ...opts }) };
      } finally {
        args.image.close?.();
      }
    }
    case 'trapForTests':
      return { result: await clip[TRAP_FOR_TESTS]() };
    default:
      throw new MobileClipError('INTERNAL', `unknown operation ${op}`);
  }
}

self.onmessage = async ({ data }) => {
  if (data.op === 'abort') {
    calls.get(data.id)?.abort();
    return;
  }
  const controller = new AbortController();
  calls.set(data.id, controller);
  try {
    const { result, transfer = [] } = await handle(data, controller.signal);
    self.postMessage({ id: data.id, result }, transfer);
  } catch (e) {
    self.postMessage({ id: data.id, error: errorMessage(e) });
  } finally {
    calls.delete(data.id);
  }
};
