// What the package does where an engine lacks something it uses: run in WebKitGTK with
// OffscreenCanvas in workers turned off (?workerCanvas=0), as Safari before 16.4 has it. The
// worker helper must read images on the page instead (same numbers as the main thread), and the
// main-thread API used inside such a worker must reject an image it cannot draw with a coded
// error, not crash with "document is not defined".
import { MobileClip } from '/pkg/index.js';
import { MobileClipWorker } from '/pkg/worker.js';
import { CLIP_VOCAB, widenVocabulary } from '/tests/js/safetensors.mjs';
import { assert, check, config, finish, fx, loadImg, params } from './harness.mjs';

const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

/** Whether a dedicated worker here has a 2d OffscreenCanvas. */
const workerCanvas = await new Promise((resolve) => {
  const probe = "postMessage((() => { try { return !!new OffscreenCanvas(1, 1).getContext('2d'); } catch { return false; } })())";
  const w = new Worker(URL.createObjectURL(new Blob([probe], { type: 'text/javascript' })));
  w.onmessage = (e) => { resolve(e.data); w.terminate(); };
});

await check('the configuration under test: workers have no 2d OffscreenCanvas', async () => {
  assert(params.get('workerCanvas') === '0', 'run this suite with ?workerCanvas=0 in a browser set up so');
  assert(workerCanvas === false, 'a worker here has an OffscreenCanvas: the browser is not set up as asked');
  return `typeof OffscreenCanvas in the page: ${typeof OffscreenCanvas}; in a worker: no 2d context`;
});

// v2-mci0 with CLIP's full vocabulary, so that zero-shot labels go through the real tokenizer.
const small = await config('v2-mci0');
const weights = fx('v2-mci0', 'model.safetensors');
const wide = widenVocabulary(new Uint8Array(await (await fetch(weights)).arrayBuffer()));
const model = { ...small, text_cfg: { ...small.text_cfg, vocab_size: CLIP_VOCAB } };
const main = await MobileClip.load({ model, weights: wide });
const inWorker = await MobileClipWorker.load({ model, weights: wide.slice() });

await check('mobileclip-wasm/worker reads images on the page: same embeddings as the main thread', async () => {
  const kinds = [];
  for (const file of ['chelsea_301x217.png', 'astronaut_rgba_123x187.png']) {
    const img = await loadImg(`/tests/fixtures/preprocess/${file}`);
    const canvas = Object.assign(document.createElement('canvas'), { width: img.naturalWidth, height: img.naturalHeight });
    canvas.getContext('2d').drawImage(img, 0, 0);
    const off = new OffscreenCanvas(canvas.width, canvas.height);
    off.getContext('2d').drawImage(img, 0, 0);
    const bitmap = await createImageBitmap(img);
    for (const [kind, src] of [['<img>', img], ['ImageBitmap', bitmap], ['<canvas>', canvas], ['OffscreenCanvas', off]]) {
      assert(same(await main.encodeImage(src), await inWorker.encodeImage(src)), `${file} ${kind}: worker differs from the main thread`);
      kinds.push(kind);
    }
    assert(bitmap.width === img.naturalWidth, "the caller's ImageBitmap was closed");
    const zm = await main.zeroShot(img, ['cat', 'dog']);
    const zw = await inWorker.zeroShot(img, ['cat', 'dog']);
    assert(JSON.stringify(zm) === JSON.stringify(zw), `${file}: zero-shot differs`);
  }
  return `${[...new Set(kinds)].join(', ')}, zeroShot(<img>); opaque and RGBA photos`;
});

await check('MobileClip inside such a worker: an ImageBitmap rejects with INVALID_IMAGE, pixels still work', async () => {
  const worker = new Worker('./worker.mjs', { type: 'module' });
  const ask = (image) => new Promise((resolve, reject) => {
    worker.onmessage = (e) => resolve(e.data);
    worker.onerror = (e) => reject(new Error(e.message));
    worker.postMessage({ config: fx('v2-mci0', 'config.json'), weights, image });
  });
  try {
    const bitmap = await createImageBitmap(await loadImg('/tests/fixtures/preprocess/chelsea_301x217.png'));
    const bad = await ask(bitmap);
    assert(bad.error?.startsWith('INVALID_IMAGE: ') && /OffscreenCanvas/.test(bad.error), `got ${JSON.stringify(bad.error ?? 'an embedding')}`);
    const px = { width: 5, height: 4, data: Uint8ClampedArray.from({ length: 80 }, (_, i) => (i * 13) % 256) };
    const good = await ask(px);
    // (the widened vocabulary leaves the image tower as it is)
    assert(good.embedding && same(good.embedding, await main.encodeImage(px)), `pixels: ${good.error ?? 'differ from the main thread'}`);
    return bad.error;
  } finally {
    worker.terminate();
  }
});

inWorker.dispose();
main.dispose();
finish();
