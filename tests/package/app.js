// A user's app: imports the installed package by its name, loads a model, embeds; the same in a
// worker through the `mobileclip-wasm/worker` export.
import { MobileClip } from 'mobileclip-wasm';
import { MobileClipWorker } from 'mobileclip-wasm/worker';
import { parseSafetensors as parse } from './safetensors.mjs';

async function main() {
  const io = parse(await (await fetch('./fixtures/v2-mci0/io.safetensors')).arrayBuffer());
  const model = await (await fetch('./fixtures/v2-mci0/config.json')).json();
  const clip = await MobileClip.load({ model, weights: './fixtures/v2-mci0/model.safetensors' });
  const rows = await clip.encodePixels(io.image.data, io.image.shape[0]);
  let diff = 0, i = 0;
  for (const r of rows) for (const v of r) diff = Math.max(diff, Math.abs(v - io.image_embeddings.data[i++]));
  const e = await clip.encodeImage(new ImageData(new Uint8ClampedArray(32 * 24 * 4).fill(120), 32, 24));
  const inWorker = await MobileClipWorker.load({ model, weights: './fixtures/v2-mci0/model.safetensors' });
  const w = await inWorker.encodeImage(new ImageData(new Uint8ClampedArray(32 * 24 * 4).fill(120), 32, 24));
  inWorker.dispose();
  const sameInWorker = w.length === e.length && w.every((v, k) => v === e[k]);
  const ok = diff <= 1e-4 && e.length === clip.embedDim && sameInWorker;
  return { ok, detail: `backend "${clip.backend}" (${clip.backendReason}), image max|Δ| ${diff.toExponential(2)}, dim ${e.length}, worker ${sameInWorker ? 'identical' : 'DIFFERS'}` };
}

main()
  .catch((e) => ({ ok: false, detail: `${e.code ?? ''} ${e.message}` }))
  .then((r) => {
    document.body.textContent = `${r.ok ? 'OK' : 'FAILED'}: ${r.detail}`;
    window.__result = r;
  });
