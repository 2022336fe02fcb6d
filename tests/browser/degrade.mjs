// What the package does where an engine lacks something it uses. Run in WebKitGTK set up to lack
// it (run.mjs), named by ?lacks=:
//   worker-canvas  no OffscreenCanvas in workers (Safari before 16.4): the main-thread API used
//                  inside such a worker must reject an image it cannot draw with a coded error, not
//                  crash with "document is not defined" (tests/worker/run.mjs runs the worker
//                  helper's whole suite in this configuration too)
//   simd           no WebAssembly SIMD (Safari before 16.4, Chrome < 91, Firefox < 89)
//   wasm           no WebAssembly at all (Safari's Lockdown Mode)
//                  loads reject with UNSUPPORTED_BROWSER saying why, on the page and in the worker
//                  helper, instead of INTERNAL with a wasm compile error
import { MobileClip, modelNames } from '/pkg/index.js';
import { MobileClipWorker } from '/pkg/worker.js';
import { assert, check, config, finish, fx, loadImg, params, rejectsWith } from './harness.mjs';

const lacks = params.get('lacks');
const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
const weights = fx('v2-mci0', 'model.safetensors');

/** Whether a dedicated worker here has a 2d OffscreenCanvas. */
const workerCanvas = () => new Promise((resolve) => {
  const probe = "postMessage((() => { try { return !!new OffscreenCanvas(1, 1).getContext('2d'); } catch { return false; } })())";
  const w = new Worker(URL.createObjectURL(new Blob([probe], { type: 'text/javascript' })));
  w.onmessage = (e) => { resolve(e.data); w.terminate(); };
});

/** Whether this engine validates a module that uses one SIMD128 instruction. */
const simd = () => WebAssembly.validate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 8, 1, 6, 0, 65, 0, 253, 15, 11]));

if (lacks === 'worker-canvas') {
  await check('the configuration under test: workers have no 2d OffscreenCanvas', async () => {
    assert(await workerCanvas() === false, 'a worker here has an OffscreenCanvas: the browser is not set up as asked');
    return `typeof OffscreenCanvas in the page: ${typeof OffscreenCanvas}; in a worker: no 2d context`;
  });

  await check('MobileClip inside such a worker: an ImageBitmap rejects with INVALID_IMAGE, pixels still work', async () => {
    const main = await MobileClip.load({ model: await config('v2-mci0'), weights });
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
      main.dispose();
    }
  });
} else if (lacks === 'simd' || lacks === 'wasm') {
  const why = lacks === 'simd' ? /WebAssembly SIMD/ : /no WebAssembly/;
  await check(`the configuration under test: ${lacks === 'simd' ? 'WebAssembly without SIMD' : 'no WebAssembly'}`, async () => {
    if (lacks === 'simd') assert(typeof WebAssembly === 'object' && !simd(), 'this browser runs wasm SIMD: it is not set up as asked');
    else assert(typeof WebAssembly === 'undefined', 'this browser has WebAssembly: it is not set up as asked');
  });

  await check('MobileClip.load and modelNames reject with UNSUPPORTED_BROWSER saying why, every time', async () => {
    const cfg = await config('v2-mci0');
    const msg = await rejectsWith(MobileClip.load({ model: cfg, weights }), 'UNSUPPORTED_BROWSER');
    assert(why.test(msg), `message: ${msg}`);
    await rejectsWith(MobileClip.load({ model: cfg, weights, backend: 'cpu' }), 'UNSUPPORTED_BROWSER');
    await rejectsWith(modelNames(), 'UNSUPPORTED_BROWSER');
    return msg;
  });

  await check('mobileclip-wasm/worker rejects with UNSUPPORTED_BROWSER too', async () => {
    return rejectsWith(MobileClipWorker.load({ model: await config('v2-mci0'), weights }), 'UNSUPPORTED_BROWSER');
  });
} else {
  await check('?lacks= names what this browser lacks (worker-canvas, simd or wasm)', async () => {
    throw new Error(`?lacks=${lacks}`);
  });
}

finish();
