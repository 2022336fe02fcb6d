// What the package does where an engine lacks something it uses: run in WebKitGTK with
// OffscreenCanvas in workers turned off (?workerCanvas=0), as Safari before 16.4 has it. The
// main-thread API used inside such a worker must reject an image it cannot draw with a coded
// error, not crash with "document is not defined". (The worker helper's whole suite also runs in
// this configuration: tests/worker/run.mjs.)
import { MobileClip } from '/pkg/index.js';
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

const weights = fx('v2-mci0', 'model.safetensors');
const main = await MobileClip.load({ model: await config('v2-mci0'), weights });

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
    assert(good.embedding && same(good.embedding, await main.encodeImage(px)), `pixels: ${good.error ?? 'differ from the main thread'}`);
    return bad.error;
  } finally {
    worker.terminate();
  }
});

main.dispose();
finish();
