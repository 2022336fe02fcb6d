// In-page tests of the `threads` load option on a full-size random-weight MobileCLIP-S0 (big
// enough for flex's kernels to split their work). tests/browser/run.mjs opens this suite on a
// cross-origin-isolated page (COOP + COEP), on the same page with the global SharedArrayBuffer
// deleted (as WebKit leaves it) and on a plain page, then compares the pages' embeddings.
//   ?s0=<folder with config.json, model.pt, io.safetensors>&threads=<N the isolated page runs>
//   &one=<text>: this engine cannot run threads even when isolated; the backend reason of a
//   threaded load must say so with this text (WebKitGTK: no shared memory for workers)
// GET /__worker-cpu (a route of run.mjs's server) reads the CPU time of the browser's worker threads.
import { MobileClip } from '/pkg/index.js';
import { assert, assertParity, check, finish, maxDiff, params, rejectsWith, safetensors, TOL } from './harness.mjs';

const dir = params.get('s0');
const threads = Number(params.get('threads') ?? 2);
const isolated = globalThis.crossOriginIsolated === true;
const one = params.get('one'); // why this engine runs one thread even when isolated
const threaded = isolated && !one; // where the threaded module must run
const model = await (await fetch(`${dir}/config.json`)).json();
const weights = await (await fetch(`${dir}/model.pt`)).blob();
const io = await safetensors(`${dir}/io.safetensors`);
const tokens = Uint32Array.from(io.tokens.data);
const embeddings = {}; // run.mjs compares them across the pages

/** Image and text embeddings of the reference inputs, flattened. */
async function embed(m) {
  const image = await m.encodePixels(io.image.data, io.image.shape[0]);
  const text = await m.encodeTokens(tokens, io.tokens.shape[0]);
  return { image: image.flatMap((r) => [...r]), text: text.flatMap((r) => [...r]) };
}

const diff = (a, b) => Math.max(maxDiff([a.image], b.image), maxDiff([a.text], b.text));

await check('the threads option is checked', async () => {
  for (const bad of [0, -1, 1.5, 65, 'many', null, Number.NaN]) {
    await rejectsWith(MobileClip.load({ model, weights, threads: bad }), 'INVALID_ARGUMENT');
  }
  return 'INVALID_ARGUMENT for 0, -1, 1.5, 65, "many", null, NaN';
});

let single;
await check('threads: 1 runs the single-threaded module', async () => {
  const m = await MobileClip.load({ model, weights, threads: 1 });
  assert(m.threads === 1 && /; 1 thread$/.test(m.backendReason), `${m.threads} threads, backend "${m.backend}" (${m.backendReason})`);
  single = await embed(m);
  const detail = `backend "${m.backend}" (${m.backendReason}); ${await assertParity(m, io, TOL)}`;
  m.dispose();
  return detail;
});
embeddings.single = single;

let clip;
await check(`threads: ${threads} on this page (${isolated ? 'cross-origin isolated' : 'not isolated'}${typeof SharedArrayBuffer === 'undefined' ? ', no global SharedArrayBuffer' : ''})`, async () => {
  clip = await MobileClip.load({ model, weights, threads });
  if (threaded) {
    assert(clip.threads === threads && clip.backendReason.endsWith(`; ${threads} threads`), `${clip.threads} threads, backend reason "${clip.backendReason}"`);
  } else if (isolated) {
    assert(clip.threads === 1 && clip.backendReason.includes(`; 1 thread (${one}`), `${clip.threads} threads, backend reason "${clip.backendReason}" does not say "1 thread (${one}…"`);
    // found before the threaded module is fetched
    const fetched = performance.getEntriesByType('resource').filter((e) => e.name.includes('/cpu-mt')).map((e) => e.name);
    assert(fetched.length === 0, `fetched ${fetched.join(', ')} although one thread was known beforehand`);
  } else {
    assert(clip.threads === 1 && /; 1 thread \(the page is not cross-origin isolated/.test(clip.backendReason), `backend reason "${clip.backendReason}" does not say why one thread`);
  }
  return `backend "${clip.backend}" (${clip.backendReason})`;
});

await check('same embeddings as the single-threaded module, and parity with the reference', async () => {
  const mine = await embed(clip);
  embeddings.threaded = mine;
  const d = diff(mine, single);
  assert(d === 0, `max |Δ| ${d} from the single-threaded module`);
  return `bit-identical to the single-threaded module; ${await assertParity(clip, io, TOL)}`;
});

const workerCpu = async () => (await fetch('/__worker-cpu')).json();

if (threaded) {
  const { threadPoolInfo } = await import('/pkg/cpu-mt/mobileclip_wasm.js');
  await check(`the pool runs ${threads} threads, and the work is spread over them`, async () => {
    const [size, started] = threadPoolInfo();
    assert(size === threads && started === threads, `pool of ${size}, ${started} started`);
    const before = await workerCpu();
    const img = new ImageData(Uint8ClampedArray.from({ length: 640 * 480 * 4 }, (_, i) => (i * 31) % 251), 640, 480);
    for (let i = 0; i < 3; i++) {
      await clip.encodeImages([img, img]);
      await clip.encodeText(['a photo of a cat', 'a diagram of a pool of threads']);
    }
    const after = await workerCpu();
    const used = Object.entries(after).map(([tid, ns]) => ns - (before[tid] ?? 0)).filter((ns) => ns > 0).sort((a, b) => b - a);
    const total = used.reduce((a, b) => a + b, 0);
    // Each pool thread must have done a real share of the work (not a speed: a split).
    const busy = used.filter((ns) => ns >= 0.1 * total / threads);
    assert(busy.length >= threads, `worker CPU times ${used.map((ns) => (ns / 1e6).toFixed(0)).join(', ')} ms: fewer than ${threads} threads did a share`);
    return `pool ${size}/${started} threads; CPU time of the busiest worker threads: ${used.slice(0, threads).map((ns) => `${(100 * ns / total).toFixed(0)} %`).join(', ')} of ${(total / 1e6).toFixed(0)} ms`;
  });

  await check("'auto' uses the started pool, its backend says how many threads", async () => {
    const m = await MobileClip.load({ model, weights, threads: 'auto' });
    const auto = Math.min(navigator.hardwareConcurrency, 8);
    const expected = auto === 1 ? '; 1 thread (one core)' : auto === threads ? `; ${threads} threads` : `; ${threads} threads (the pool was started with ${threads})`;
    const { backendReason: why, threads: n } = m;
    m.dispose();
    assert(n === (auto === 1 ? 1 : threads) && why.endsWith(expected), `${n} threads, backend reason "${why}", expected "…${expected}"`);
    return `${n} threads, backend reason "${why}" (hardwareConcurrency ${navigator.hardwareConcurrency})`;
  });
}

await check('concurrent calls give the same results as sequential ones', async () => {
  const [a, b, c] = await Promise.all([embed(clip), clip.encodeText('a dog'), embed(clip)]);
  assert(diff(a, single) === 0 && diff(c, single) === 0, 'concurrent embeddings differ');
  assert(b.length === clip.embedDim, 'text embedding');
  const labels = await clip.zeroShot(new ImageData(8, 8), ['cat', 'dog', 'car']);
  assert(labels.length === 3 && Math.abs(labels.reduce((s, l) => s + l.score, 0) - 1) < 1e-5, 'zero-shot scores');
  return 'three calls at once, then zero-shot';
});

await check('errors, abort and dispose behave as on one thread', async () => {
  await rejectsWith(clip.encodeImage(new Image()), 'INVALID_IMAGE');
  // found by the model code, that is in a pool job on the threaded module
  const short = await rejectsWith(clip.encodeImage({ data: new Uint8Array(10), width: 4, height: 4 }), 'INVALID_IMAGE');
  await rejectsWith(clip.encodeText([42]), 'INVALID_TEXT');
  await rejectsWith(clip.zeroShot(new Float32Array(3), ['cat']), 'INVALID_ARGUMENT');
  await rejectsWith(MobileClip.load({ model, weights: new Uint8Array([1, 2, 3]), threads }), 'INVALID_WEIGHTS');
  const ac = new AbortController();
  const loading = MobileClip.load({ model, weights: `${dir}/model.pt`, threads, signal: ac.signal });
  ac.abort();
  await rejectsWith(loading, 'ABORTED');
  assert(diff(await embed(clip), single) === 0, 'the model changed after errors');
  const pending = clip.encodeText('queued');
  clip.dispose();
  await rejectsWith(pending, 'DISPOSED');
  await rejectsWith(clip.encodeText('later'), 'DISPOSED');
  assert(clip.backend === undefined && clip.threads === undefined, `${clip.backend}, ${clip.threads} threads after dispose`);
  return `INVALID_IMAGE ("${short}"), INVALID_TEXT, INVALID_ARGUMENT, INVALID_WEIGHTS, ABORTED, DISPOSED; the model unchanged after errors`;
});

if (threaded) {
  // Last: after it the page's threaded module is given up.
  await check('a trap in a pool thread: INTERNAL once, the threaded module is given up, every model reloads on one thread', async () => {
    const m = await MobileClip.load({ model, weights, threads });
    const other = await MobileClip.load({ model, weights, threads });
    assert(m.threads === threads && other.threads === threads, `${m.threads}, ${other.threads} threads`);
    const trap = m[Symbol.for('mobileclip-wasm.trapForTests')](); // traps in a pool job
    const queued = embed(m); // queued behind the trap: runs after the reload
    const msg = await rejectsWith(trap, 'INTERNAL');
    assert(/threaded CPU module failed/.test(msg), msg);
    assert(diff(await queued, single) === 0, 'the queued call differs from the single-threaded module');
    const why = /; 1 thread \(the threaded CPU module failed: [^;]+, the single-threaded one took over\)$/;
    assert(m.threads === 1 && why.test(m.backendReason), `${m.threads} threads, backend reason "${m.backendReason}"`);
    assert(diff(await embed(other), single) === 0 && other.threads === 1, 'the other model did not reload on one thread');
    const later = await MobileClip.load({ model, weights, threads });
    assert(later.threads === 1 && why.test(later.backendReason), `a later load: ${later.threads} threads, "${later.backendReason}"`);
    const detail = `"${msg.slice(0, 90)}…"; then "${m.backendReason}"`;
    for (const x of [m, other, later]) x.dispose();
    return detail;
  });
}

window.__embeddings = embeddings;
finish();
