// A user's app: imports the installed package by its name, loads a model, embeds; the same in a
// worker through the `mobileclip-wasm/worker` export. On a cross-origin-isolated page both run on
// two threads (the threaded module and its pool of workers, bundled or not), elsewhere on one;
// the embeddings equal those of the single-threaded module either way.
import { MobileClip } from 'mobileclip-wasm';
import { MobileClipWorker } from 'mobileclip-wasm/worker';
import { parseSafetensors as parse } from './safetensors.mjs';

async function main() {
  const io = parse(await (await fetch('./fixtures/v2-mci0/io.safetensors')).arrayBuffer());
  const model = await (await fetch('./fixtures/v2-mci0/config.json')).json();
  const weights = './fixtures/v2-mci0/model.safetensors';
  const img = new ImageData(new Uint8ClampedArray(32 * 24 * 4).fill(120), 32, 24);
  const single = await MobileClip.load({ model, weights, threads: 1 });
  const ref = await single.encodeImage(img);
  const clip = await MobileClip.load({ model, weights, threads: 2 });
  const rows = await clip.encodePixels(io.image.data, io.image.shape[0]);
  let diff = 0, i = 0;
  for (const r of rows) for (const v of r) diff = Math.max(diff, Math.abs(v - io.image_embeddings.data[i++]));
  const e = await clip.encodeImage(img);
  const inWorker = await MobileClipWorker.load({ model, weights, threads: 2 });
  const w = await inWorker.encodeImage(img);
  const [workerBackend, workerReason, workerThreads] = [inWorker.backend, inWorker.backendReason, inWorker.threads];
  inWorker.dispose();
  const same = (a) => a.length === ref.length && a.every((v, k) => v === ref[k]);
  const threads = crossOriginIsolated ? 2 : 1;
  const why = crossOriginIsolated ? /; 2 threads$/ : /; 1 thread \(the page is not cross-origin isolated/;
  const ok = diff <= 1e-4 && e.length === clip.embedDim && same(e) && same(w) && clip.threads === threads && workerThreads === threads && why.test(clip.backendReason) && why.test(workerReason);
  return { ok, detail: `backend "${clip.backend}" (${clip.backendReason}), in the worker "${workerBackend}" (${workerReason}), image max|Δ| ${diff.toExponential(2)}, dim ${e.length}, page ${same(e) ? 'and' : 'DIFFERS,'} worker ${same(w) ? 'identical to one thread' : 'DIFFERS'}` };
}

main()
  .catch((e) => ({ ok: false, detail: `${e.code ?? ''} ${e.message}` }))
  .then((r) => {
    document.body.textContent = `${r.ok ? 'OK' : 'FAILED'}: ${r.detail}`;
    window.__result = r;
  });
