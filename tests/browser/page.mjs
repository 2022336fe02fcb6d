// In-page tests of the npm package (pkg/) in real Chromium, CPU path (a browser without WebGPU).
import { LabelPack, MobileClip, wasmMemoryBytes } from '/pkg/index.js';
import { CLIP_VOCAB, widenVocabulary } from '/tests/js/safetensors.mjs';
import { assert, assertParity, check, config, crossOrigin, finish, fx, loadImg, rejectsWith, safetensors, TOL } from './harness.mjs';

let clip;
await check('load from a URL with progress (v2-mci0)', async () => {
  const progress = [];
  clip = await MobileClip.load({ model: await config('v2-mci0'), weights: fx('v2-mci0', 'model.safetensors'), onProgress: (p) => progress.push(p) });
  const last = progress.at(-1);
  assert(progress.length > 0 && last.loaded === last.total && last.total > 0, `progress ${JSON.stringify(last)}`);
  assert(clip.backend === 'cpu' && /WebGPU/.test(clip.backendReason), `backend "${clip.backend}" because "${clip.backendReason}" does not say why not WebGPU`);
  return `backend "${clip.backend}" (${clip.backendReason}), ${progress.length} progress events`;
});

await check('the CPU module is the relaxed-SIMD build where the engine has relaxed SIMD', async () => {
  const fetched = performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname).filter((p) => /\/pkg\/cpu(-relaxed)?\/.*\.wasm$/.test(p));
  assert(fetched.length === 1, `CPU modules fetched: ${fetched.join(', ') || 'none'}`);
  // Chromium (since 114) and Firefox ESR 153 validate relaxed SIMD; WebKitGTK 2.50 does not.
  const engine = /Chrome\//.test(navigator.userAgent) ? 'Chromium' : /Firefox\//.test(navigator.userAgent) ? 'Firefox' : 'WebKit';
  const relaxed = engine !== 'WebKit';
  assert(fetched[0].includes(relaxed ? '/cpu-relaxed/' : '/cpu/'), `${engine} loaded ${fetched[0]}, expected the ${relaxed ? 'relaxed-SIMD' : 'SIMD128'} build`);
  return `${engine}: ${fetched[0]}`;
});

for (const [name, file] of [['v2-mci0', 'model.safetensors'], ['v1-mci-mct', 'model.pt'], ['v1-vit-base-causal', 'model_reparam.pt'], ['openclip-b', 'model.safetensors']]) {
  await check(`parity with the reference: ${name}/${file}`, async () => {
    const m = await MobileClip.load({ model: await config(name), weights: await (await fetch(fx(name, file))).blob() });
    try {
      return await assertParity(m, await safetensors(fx(name, 'io.safetensors')), TOL, file.includes('reparam') ? '_reparam' : '');
    } finally {
      m.dispose();
    }
  });
}

await check('every image source type gives the same embedding', async () => {
  const img = await loadImg('/tests/fixtures/preprocess/chelsea_301x217.png');
  const canvas = document.getElementById('c');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const off = new OffscreenCanvas(canvas.width, canvas.height);
  off.getContext('2d').drawImage(img, 0, 0);
  const bitmap = await createImageBitmap(img);
  const ref = await clip.encodeImage(data);
  const same = (a) => a.length === ref.length && a.every((v, i) => v === ref[i]);
  for (const [kind, src] of [['canvas', canvas], ['OffscreenCanvas', off], ['ImageBitmap', bitmap], ['<img>', img]]) {
    assert(same(await clip.encodeImage(src)), `${kind} differs from ImageData`);
  }
  const batch = await clip.encodeImages([img, data]);
  assert(same(batch[0]) && same(batch[1]), 'batch differs');
  return `ImageData, canvas, OffscreenCanvas, ImageBitmap, <img>: identical (dim ${ref.length})`;
});

await check('bad image sources reject with codes', async () => {
  const msgs = [];
  msgs.push(await rejectsWith(clip.encodeImage(new Image()), 'INVALID_IMAGE'));
  const empty = document.createElement('canvas'); empty.width = 0;
  msgs.push(await rejectsWith(clip.encodeImage(empty), 'INVALID_IMAGE'));
  msgs.push(await rejectsWith(clip.encodeImage(document.body), 'INVALID_IMAGE'));
  if (crossOrigin) {
    const foreign = await loadImg(`${crossOrigin}/tests/fixtures/preprocess/chelsea_301x217.png`);
    const c = document.createElement('canvas'); c.width = 10; c.height = 10;
    c.getContext('2d').drawImage(foreign, 0, 0);
    msgs.push(await rejectsWith(clip.encodeImage(c), 'TAINTED_IMAGE'));
    msgs.push(await rejectsWith(clip.encodeImage(foreign), 'TAINTED_IMAGE'));
  }
  const ok = await clip.encodeImage(new ImageData(4, 4));
  assert(ok.length === clip.embedDim, 'model broken after errors');
  return msgs.join(' | ');
});

await check('bad weights and aborted loads reject with codes', async () => {
  const cfg = await config('v2-mci0');
  await rejectsWith(MobileClip.load({ model: cfg, weights: fx('v2-mci0', 'missing.safetensors') }), 'WEIGHTS_DOWNLOAD');
  const bytes = new Uint8Array(await (await fetch(fx('v2-mci0', 'model.safetensors'))).arrayBuffer());
  await rejectsWith(MobileClip.load({ model: cfg, weights: bytes.slice(0, 1000) }), 'INVALID_WEIGHTS');
  await rejectsWith(MobileClip.load({ model: 'NoSuchModel', weights: bytes }), 'UNKNOWN_MODEL');
  await rejectsWith(MobileClip.load({ model: cfg, weights: bytes, backend: 'webgpu' }), 'NO_WEBGPU');
  const ac = new AbortController();
  ac.abort();
  await rejectsWith(MobileClip.load({ model: cfg, weights: fx('v2-mci0', 'model.safetensors'), signal: ac.signal }), 'ABORTED');
});

await check('streamed loads: odd-sized chunks of a .pt and a compact file, a Response; truncated streams name the entry; failing and non-byte streams are coded errors; abort mid-stream', async () => {
  // A ReadableStream of `bytes` in chunks of the given sizes, in turn (headers, elements and data
  // descriptors split across chunks).
  const stream = (bytes, sizes) => {
    let at = 0;
    let i = 0;
    return new ReadableStream({
      pull(c) {
        if (at >= bytes.length) { c.close(); return; }
        const n = sizes[i++ % sizes.length];
        c.enqueue(bytes.slice(at, at + n));
        at += n;
      },
    });
  };
  const bytes = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());
  const pt = await bytes(fx('v1-mci-mct', 'model.pt'));
  const msgs = [];
  const progress = [];
  const m = await MobileClip.load({ model: await config('v1-mci-mct'), weights: stream(pt, [7, 4099, 1, 65536]), onProgress: (p) => progress.push(p.loaded) });
  try {
    assert(progress.at(-1) === pt.length && progress.length > 10, `progress ${progress.length} events, last ${progress.at(-1)} of ${pt.length}`);
    msgs.push(`.pt: ${await assertParity(m, await safetensors(fx('v1-mci-mct', 'io.safetensors')), TOL)}`);
  } finally {
    m.dispose();
  }
  const compact = await bytes('/tests/fixtures/compact/v2-mci0-f32.safetensors');
  const c = await MobileClip.load({ weights: new Response(stream(compact, [3, 1000, 17])) });
  try {
    msgs.push(`compact: ${await assertParity(c, await safetensors(fx('v2-mci0', 'io.safetensors')), TOL)}`);
  } finally {
    c.dispose();
  }
  // Cut inside a storage entry of the zip, and inside a tensor of the safetensors file.
  const cutPt = await rejectsWith(MobileClip.load({ model: await config('v1-mci-mct'), weights: stream(pt.slice(0, pt.length >> 1), [5000]) }), 'INVALID_WEIGHTS');
  assert(/ends inside zip entry `[^`]+\/data\/\d+`/.test(cutPt), cutPt);
  const cutSt = await rejectsWith(MobileClip.load({ weights: stream(compact.slice(0, compact.length - 100), [5000]) }), 'INVALID_WEIGHTS');
  assert(/ends inside tensor `[^`]+`/.test(cutSt), cutSt);
  msgs.push(cutPt, cutSt);
  // A stream that fails mid-download, and one that gives something other than bytes.
  const failing = new ReadableStream({ start(ctl) { ctl.enqueue(pt.slice(0, 1000)); ctl.error(new Error('network down')); } });
  msgs.push(await rejectsWith(MobileClip.load({ model: await config('v1-mci-mct'), weights: failing }), 'WEIGHTS_DOWNLOAD'));
  const strings = new ReadableStream({ start(ctl) { ctl.enqueue('PK'); ctl.close(); } });
  msgs.push(await rejectsWith(MobileClip.load({ model: await config('v1-mci-mct'), weights: strings }), 'INVALID_ARGUMENT'));
  // A download that stalls after its first chunk, aborted.
  const ac = new AbortController();
  const stalled = new ReadableStream({ start(ctl) { ctl.enqueue(pt.slice(0, 1000)); } });
  setTimeout(() => ac.abort(), 50);
  await rejectsWith(MobileClip.load({ model: await config('v1-mci-mct'), weights: stalled, signal: ac.signal }), 'ABORTED');
  return msgs.join(' | ');
});

await check('MobileClip.convert: the bytes `mobileclip convert` writes; they load without a model name', async () => {
  // The config file's text, as the CLI reads it: a config object is written as JSON.stringify
  // spells it (`2` for the file's `2.0`), which is the same model in other bytes (checked below).
  const cfg = await (await fetch(fx('v2-mci0', 'config.json'))).text();
  const bytesOf = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());
  const identical = (a, b) => a instanceof Uint8Array && a.length === b.length && a.every((v, i) => v === b[i]);
  // tests/compact.rs checks that these committed files are what the CLI writes today.
  const progress = [];
  const f32 = await MobileClip.convert({ model: cfg, weights: fx('v2-mci0', 'model.safetensors'), dtype: 'f32', onProgress: (p) => progress.push(p) });
  assert(identical(f32, await bytesOf('/tests/fixtures/compact/v2-mci0-f32.safetensors')), `f32/both: ${f32.length} bytes, not the CLI's`);
  assert(progress.at(-1)?.loaded > 0 && progress.at(-1).loaded === progress.at(-1).total, `progress ${JSON.stringify(progress.at(-1))}`);
  const checkpoint = await (await fetch(fx('v2-mci0', 'model.safetensors'))).blob();
  const image = await MobileClip.convert({ model: cfg, weights: checkpoint, dtype: 'auto', towers: 'image' });
  assert(identical(image, await bytesOf('/tests/fixtures/compact/v2-mci0-auto-image.safetensors')), `auto/image: ${image.length} bytes, not the CLI's`);
  const fromObject = await MobileClip.convert({ model: JSON.parse(cfg), weights: checkpoint, dtype: 'f32' });
  const m = await MobileClip.load({ weights: f32 });
  const o = await MobileClip.load({ weights: fromObject });
  let parity;
  try {
    assert(m.name === 'v2-mci0' && m.towers === 'both', `name ${m.name}, towers ${m.towers}`);
    const io = await safetensors(fx('v2-mci0', 'io.safetensors'));
    parity = await assertParity(m, io, TOL);
    const px = new ImageData(40, 30);
    const [a, b] = [await m.encodeImage(px), await o.encodeImage(px)];
    assert(a.every((v, i) => v === b[i]), 'a config object gives other embeddings than its file');
  } finally {
    m.dispose();
    o.dispose();
  }
  const img = await MobileClip.load({ weights: image });
  try {
    assert(img.towers === 'image' && img.labelPackId === clip.labelPackId && clip.labelPackId === clip.weightsId, `towers ${img.towers}, pack id ${img.labelPackId}`);
    const e = await img.encodeImage(new ImageData(40, 30));
    assert(e.length === img.embedDim, 'no image embedding');
  } finally {
    img.dispose();
  }
  return `f32 ${f32.length} B and auto image-only ${image.length} B identical to the CLI's; ${parity}`;
});

await check('MobileClip.convert: bad options and files reject with codes, and the module keeps working', async () => {
  const cfg = await config('v2-mci0');
  const weights = fx('v2-mci0', 'model.safetensors');
  const msgs = [];
  msgs.push(await rejectsWith(MobileClip.convert({ weights }), 'INVALID_ARGUMENT'));
  msgs.push(await rejectsWith(MobileClip.convert({ model: cfg }), 'INVALID_ARGUMENT'));
  msgs.push(await rejectsWith(MobileClip.convert({ model: cfg, weights, dtype: 'bf16' }), 'INVALID_ARGUMENT'));
  msgs.push(await rejectsWith(MobileClip.convert({ model: cfg, weights, towers: 'vision' }), 'INVALID_ARGUMENT'));
  msgs.push(await rejectsWith(MobileClip.convert({ model: cfg, weights, dtpye: 'f16' }), 'INVALID_ARGUMENT'));
  msgs.push(await rejectsWith(MobileClip.convert({ model: 'MobileCLIP-S9', weights }), 'UNKNOWN_MODEL'));
  msgs.push(await rejectsWith(MobileClip.convert({ model: cfg, weights: '/tests/fixtures/compact/v2-mci0-f32.safetensors' }), 'INVALID_ARGUMENT'));
  msgs.push(await rejectsWith(MobileClip.convert({ model: cfg, weights: new Uint8Array(1000).fill(7) }), 'INVALID_WEIGHTS'));
  msgs.push(await rejectsWith(MobileClip.convert({ model: await config('v1-mci-mct'), weights }), 'WEIGHTS_MISMATCH'));
  msgs.push(await rejectsWith(MobileClip.convert({ model: cfg, weights: '/no/such/file.pt' }), 'WEIGHTS_DOWNLOAD'));
  const ac = new AbortController();
  ac.abort();
  msgs.push(await rejectsWith(MobileClip.convert({ model: cfg, weights, signal: ac.signal }), 'ABORTED'));
  const after = await MobileClip.convert({ model: cfg, weights, dtype: 'f16', towers: 'text' });
  const m = await MobileClip.load({ weights: after });
  try {
    assert(m.towers === 'text', `towers ${m.towers}`);
    msgs.push(await rejectsWith(m.encodeImage(new ImageData(4, 4)), 'NO_IMAGE_TOWER'));
  } finally {
    m.dispose();
  }
  assert((await clip.encodeImage(new ImageData(4, 4))).length === clip.embedDim, 'the loaded model broke');
  return msgs.join(' | ');
});

await check('compact files: no model name, integrity, image-only (NO_TEXT_TOWER)', async () => {
  const url = '/tests/fixtures/compact/v2-mci0-f32.safetensors';
  const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  const integrity = `sha256-${btoa(String.fromCharCode(...digest))}`;
  const m = await MobileClip.load({ weights: url, integrity });
  let parity;
  try {
    assert(m.name === 'v2-mci0' && m.towers === 'both', `name ${m.name}, towers ${m.towers}`);
    parity = await assertParity(m, await safetensors(fx('v2-mci0', 'io.safetensors')), TOL);
  } finally {
    m.dispose();
  }
  const wrong = integrity.slice(0, 8) + (integrity[8] === 'A' ? 'B' : 'A') + integrity.slice(9);
  const msgs = [await rejectsWith(MobileClip.load({ weights: bytes, integrity: wrong }), 'INTEGRITY_MISMATCH')];
  msgs.push(await rejectsWith(MobileClip.load({ weights: bytes, integrity: 'md5-abc' }), 'INVALID_ARGUMENT'));
  msgs.push(await rejectsWith(MobileClip.load({ model: 'MobileCLIP-S0', weights: bytes }), 'WEIGHTS_MISMATCH'));
  const truncated = bytes.slice(0, bytes.length - 10);
  msgs.push(await rejectsWith(MobileClip.load({ weights: truncated }), 'INVALID_WEIGHTS'));
  const imageUrl = '/tests/fixtures/compact/v2-mci0-auto-image.safetensors';
  const imageDigest = new Uint8Array(await crypto.subtle.digest('SHA-256', await (await fetch(imageUrl)).arrayBuffer()));
  const img = await MobileClip.load({ weights: imageUrl, integrity: `sha256-${btoa(String.fromCharCode(...imageDigest))}` });
  try {
    assert(img.towers === 'image', `towers ${img.towers}`);
    const px = new ImageData(40, 30);
    const e1 = await img.encodeImage(px);
    msgs.push(await rejectsWith(img.encodeText('a cat'), 'NO_TEXT_TOWER'));
    msgs.push(await rejectsWith(img.zeroShot(e1, ['cat', 'dog']), 'NO_TEXT_TOWER'));
    const e2 = await img.encodeImage(px);
    assert(e1.length === img.embedDim && e1.every((v, i) => v === e2[i]), 'image tower broken after NO_TEXT_TOWER');
    // A label pack of the checkpoint the file was converted from ranks on the image-only file.
    // (This fixture's vocabulary is 256 tokens: the pack's rows are image embeddings of the checkpoint.)
    const rows = await clip.encodeImages([px, new ImageData(Uint8ClampedArray.from({ length: 8 * 8 * 4 }, (_, i) => (i * 29) % 256), 8, 8)]);
    const embeddings = new Float32Array(2 * clip.embedDim);
    rows.forEach((r, i) => embeddings.set(r, i * clip.embedDim));
    const pack = new LabelPack({ model: clip.name, weightsId: clip.weightsId, labels: ['grey', 'pattern'], templates: ['{}'], embeddings });
    assert(img.weightsId !== clip.weightsId, `ids ${img.weightsId} ${clip.weightsId}`);
    const foreign = new LabelPack({ model: clip.name, weightsId: img.weightsId.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')), labels: ['grey', 'pattern'], templates: ['{}'], embeddings });
    msgs.push(await rejectsWith(img.zeroShot(e1, foreign), 'LABEL_PACK_MISMATCH'));
    const ranked = await img.zeroShot(e1, pack);
    assert(JSON.stringify(ranked) === JSON.stringify(await clip.zeroShot(e1, pack)), `ranked ${JSON.stringify(ranked)}`);
    // A trap: the compact file (given with its integrity) reloads from the kept bytes.
    msgs.push(await rejectsWith(img[Symbol.for('mobileclip-wasm.trapForTests')](), 'INTERNAL'));
    const e3 = await img.encodeImage(px);
    assert(img.towers === 'image' && e3.every((v, i) => v === e1[i]), 'the image-only file did not reload after a trap');
    msgs.push(await rejectsWith(img.encodeText('a cat'), 'NO_TEXT_TOWER'));
  } finally {
    img.dispose();
  }
  return `${parity}; ${msgs.join(' | ')}`;
});

await check('works in a Web Worker, same numbers as the main thread', async () => {
  const px = { width: 31, height: 23, data: Uint8ClampedArray.from({ length: 31 * 23 * 4 }, (_, i) => (i * 7) % 256) };
  const main = await clip.encodeImage(px);
  const worker = new Worker('./worker.mjs', { type: 'module' });
  const fromWorker = await new Promise((resolve, reject) => {
    worker.onmessage = (e) => (e.data.error ? reject(new Error(e.data.error)) : resolve(e.data.embedding));
    worker.onerror = (e) => reject(new Error(e.message));
    worker.postMessage({ config: fx('v2-mci0', 'config.json'), weights: fx('v2-mci0', 'model.safetensors'), image: px });
  });
  worker.terminate();
  assert(fromWorker.length === main.length && fromWorker.every((v, i) => v === main[i]), 'worker result differs');
  return 'identical';
});

await check('concurrent calls equal sequential ones', async () => {
  const imgs = Array.from({ length: 8 }, (_, k) => new ImageData(Uint8ClampedArray.from({ length: 16 * 16 * 4 }, (_, i) => (i * (k + 2)) % 256), 16, 16));
  const seq = [];
  for (const im of imgs) seq.push(await clip.encodeImage(im));
  const conc = await Promise.all(imgs.map((im) => clip.encodeImage(im)));
  assert(conc.every((e, k) => e.every((v, i) => v === seq[k][i])), 'differs');
});

// The small fixture with CLIP's vocabulary, so that labels go through the real tokenizer.
const small = await config('v2-mci0');
const vocab = { ...small, name: 'v2-mci0-clip-vocab', text_cfg: { ...small.text_cfg, vocab_size: CLIP_VOCAB } };
const wide = await MobileClip.load({ model: vocab, weights: widenVocabulary(new Uint8Array(await (await fetch(fx('v2-mci0', 'model.safetensors'))).arrayBuffer())) });
const labels = (n) => Array.from({ length: n }, (_, i) => `a thing called number ${i}`);

await check('a long call on the main thread: progress, other calls in between, abort from a timer, results as one at a time', async () => {
  // long enough (hundreds of ms on a quiet machine) that a timer firing every 5 ms must get
  // several turns while it runs: 600 texts took only ~150 ms once the text towers' last layer ran
  // on the pooled rows alone, shorter than the gaps this checks for
  const texts = labels(2400);
  const single = [];
  for (const t of texts.slice(0, 20)) single.push(await wide.encodeText(t));
  const progress = [];
  let ticks = 0, gap = 0, last = performance.now();
  const timer = setInterval(() => { const t = performance.now(); gap = Math.max(gap, t - last); last = t; ticks++; }, 5);
  const start = performance.now();
  const all = await wide.encodeText(texts, { onProgress: (p) => progress.push(p.done) });
  const took = performance.now() - start;
  clearInterval(timer);
  assert(single.every((e, i) => e.every((v, k) => v === all[i][k])), 'batched texts differ from one-at-a-time ones');
  assert(progress.at(-1) === texts.length && progress.length >= texts.length / 16, `progress ${progress}`);
  assert(gap < took / 3 && ticks >= 3, `${ticks} timer ticks, the longest gap ${gap.toFixed(0)} ms in ${took.toFixed(0)} ms: the page got no turns`);
  // abort from a timer while the call runs: it can only fire if the call yields between parts
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 30);
  const done = [];
  const t0 = performance.now();
  const msg = await rejectsWith(wide.encodeText(labels(2000), { signal: ac.signal, onProgress: (p) => done.push(p.done) }), 'ABORTED');
  const ms = performance.now() - t0;
  assert(done.length < 2000 / 16, `ran ${done.at(-1)} of 2000 before the abort`);
  assert((await wide.encodeText(texts[3])).every((v, k) => v === single[3][k]), 'the model changed after the abort');
  return `${texts.length} texts in ${progress.length} parts in ${took.toFixed(0)} ms, ${ticks} timer ticks meanwhile (longest gap ${gap.toFixed(0)} ms); aborted after ${done.at(-1) ?? 0} of 2000 in ${ms.toFixed(0)} ms: ${msg}`;
});

await check('label packs: zeroShot on a pack equals zeroShot on the labels, through bytes; garbage and other weights refused', async () => {
  const img = await loadImg('/tests/fixtures/preprocess/chelsea_301x217.png');
  const names = ['cat', 'dog', 'car', 'rocket', 'cup of coffee'];
  const pack = await wide.labelEmbeddings(names, { templates: ['a photo of a {}.', 'itap of a {}.'] });
  const back = LabelPack.fromBytes(pack.toBytes());
  const [a, b] = [await wide.zeroShot(img, back, { topK: 3 }), await wide.zeroShot(img, names, { templates: ['a photo of a {}.', 'itap of a {}.'], topK: 3 })];
  assert(JSON.stringify(a) === JSON.stringify(b), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  const garbage = await rejectsWith(Promise.resolve().then(() => LabelPack.fromBytes(new Uint8Array(100).fill(200))), 'INVALID_LABEL_PACK');
  const mismatch = await rejectsWith(clip.zeroShot(new Float32Array(clip.embedDim).fill(0.1), pack), 'LABEL_PACK_MISMATCH');
  return `${JSON.stringify(a)} | ${garbage} | ${mismatch}`;
});

await check('a trap of the wasm instance: INTERNAL once, a fresh instance (its memory released), the models reload', async () => {
  const probe = new ImageData(Uint8ClampedArray.from({ length: 12 * 12 * 4 }, (_, i) => (i * 13) % 256), 12, 12);
  const [before, wideBefore] = [await clip.encodeImage(probe), await wide.encodeImage(probe)];
  const memory = wasmMemoryBytes();
  const msg = await rejectsWith(clip[Symbol.for('mobileclip-wasm.trapForTests')](), 'INTERNAL');
  const after = await clip.encodeImage(probe);
  assert(after.every((v, i) => v === before[i]), 'a different embedding after the reload');
  assert((await wide.encodeImage(probe)).every((v, i) => v === wideBefore[i]), 'the other model did not reload');
  assert(wasmMemoryBytes() < memory + (32 << 20), `memory ${memory} → ${wasmMemoryBytes()}: the trapped instance is still in use`);
  return `${msg}; memory ${(memory / 2 ** 20).toFixed(0)} → ${(wasmMemoryBytes() / 2 ** 20).toFixed(0)} MiB after the reload`;
});

wide.dispose();
finish();
