// Soak test (headless Chromium, main thread, CPU module): 10,000 mixed calls (images, texts,
// label packs, zero-shot, bad input of every kind, aborted calls, bursts of concurrent calls) on
// the small fixture with CLIP's vocabulary. Every result equals its reference bit for bit, every
// error has its code, and neither the wasm memory nor the JS heap (after GC) grows after warm-up.
import { LabelPack, MobileClip, MobileClipError, wasmMemoryBytes } from '/pkg/index.js';
import { CLIP_VOCAB, widenVocabulary } from '/tests/js/safetensors.mjs';
import { assert, check, config, finish, fx } from './harness.mjs';

const CALLS = 10_000;
const small = await config('v2-mci0');
const model = { ...small, name: 'v2-mci0-clip-vocab', text_cfg: { ...small.text_cfg, vocab_size: CLIP_VOCAB } };
const weights = widenVocabulary(new Uint8Array(await (await fetch(fx('v2-mci0', 'model.safetensors'))).arrayBuffer()));
const clip = await MobileClip.load({ model, weights, backend: 'cpu' });

const images = Array.from({ length: 6 }, (_, k) => new ImageData(Uint8ClampedArray.from({ length: (40 + k) * (30 + 3 * k) * 4 }, (_, i) => (i * (k + 7) + k) % 256), 40 + k, 30 + 3 * k));
const texts = Array.from({ length: 12 }, (_, k) => `a photo of thing ${k} ${'and more '.repeat(k)}`);
const labels = Array.from({ length: 40 }, (_, k) => `label ${k}`);
const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
const gc = () => globalThis.gc?.();

// References, one call at a time.
const refImage = [];
for (const im of images) refImage.push(await clip.encodeImage(im));
const refText = [];
for (const t of texts) refText.push(await clip.encodeText(t));
const pack = await clip.labelEmbeddings(labels, { templates: ['a photo of a {}.', 'a {}'] });
const packBytes = pack.toBytes();
const refRank = await Promise.all(refImage.map((e) => clip.zeroShot(e, pack, { topK: 5 })));

/** Call number `i` of the mix, checked against its reference; resolves to its kind. */
async function call(i) {
  const k = i % images.length, t = i % texts.length;
  const expect = async (p, code) => {
    try { await p; } catch (e) {
      assert(e instanceof MobileClipError && e.code === code, `call ${i}: ${e?.code} ${e?.message}, expected ${code}`);
      return code;
    }
    throw new Error(`call ${i} did not reject (expected ${code})`);
  };
  switch (i % 16) {
    case 0: case 1: case 2: assert(same(await clip.encodeImage(images[k]), refImage[k]), `call ${i}: image ${k} differs`); return 'image';
    case 3: { const r = await clip.encodeImages([images[k], images[(k + 1) % 6], images[(k + 2) % 6]]); assert(r.every((e, j) => same(e, refImage[(k + j) % 6])), `call ${i}: batch differs`); return 'image batch'; }
    case 4: case 5: case 6: assert(same(await clip.encodeText(texts[t]), refText[t]), `call ${i}: text ${t} differs`); return 'text';
    case 7: { const r = await clip.encodeText([texts[t], texts[(t + 5) % 12]]); assert(same(r[0], refText[t]) && same(r[1], refText[(t + 5) % 12]), `call ${i}: text batch differs`); return 'text batch'; }
    case 8: case 9: assert(JSON.stringify(await clip.zeroShot(refImage[k], pack, { topK: 5 })) === JSON.stringify(refRank[k]), `call ${i}: ranking differs`); return 'zeroShot (pack)';
    case 10: assert(JSON.stringify(await clip.zeroShot(refImage[k], LabelPack.fromBytes(packBytes), { topK: 5 })) === JSON.stringify(refRank[k]), `call ${i}: ranking from bytes differs`); return 'zeroShot (pack from bytes)';
    case 11: { const r = await clip.zeroShot(images[k], labels.slice(0, 3), { templates: ['a photo of a {}.', 'a {}'] }); assert(r.length === 3, `call ${i}`); return 'zeroShot (labels)'; }
    case 12: return expect(clip.encodeImages([images[k], { width: 4, height: 4, data: new Uint8Array(3) }]), 'INVALID_IMAGE');
    case 13: return expect(clip.zeroShot(refImage[k], pack, { topK: [0, -1, 1.5, NaN, '2'][i % 5] }), 'INVALID_ARGUMENT');
    case 14: { const bad = refImage[k].slice(); bad[i % bad.length] = [NaN, Infinity][i % 2]; return expect(clip.zeroShot(bad, pack), 'INVALID_ARGUMENT'); }
    default: {
      if (i % 32 === 15) return expect(Promise.resolve().then(() => LabelPack.fromBytes(packBytes.subarray(0, 100 + (i % 500)))), 'INVALID_LABEL_PACK');
      const ac = new AbortController();
      const p = clip.encodeText(texts, { signal: ac.signal });
      ac.abort();
      return expect(p, 'ABORTED');
    }
  }
}

/** Runs calls [from, to): mostly one at a time, every 50th a burst of 8 concurrent ones. */
async function run(from, to, counts) {
  for (let i = from; i < to;) {
    const n = i % 50 === 0 ? Math.min(8, to - i) : 1;
    const kinds = await Promise.all(Array.from({ length: n }, (_, j) => call(i + j)));
    for (const kind of kinds) counts[kind] = (counts[kind] ?? 0) + 1;
    i += n;
  }
}

await check(`soak: ${CALLS.toLocaleString('en')} mixed calls, results bit-identical, steady memory`, async () => {
  const counts = {};
  await run(0, 800, counts); // warm-up: every kind of call, buffers at their working size
  gc();
  const [wasm0, heap0] = [wasmMemoryBytes(), performance.memory?.usedJSHeapSize ?? 0];
  const t0 = performance.now();
  const marks = [];
  for (let i = 800; i < CALLS; i += 1840) {
    await run(i, Math.min(CALLS, i + 1840), counts);
    gc();
    marks.push([(wasmMemoryBytes() / 2 ** 20).toFixed(1), ((performance.memory?.usedJSHeapSize ?? 0) / 2 ** 20).toFixed(1)]);
  }
  const s = (performance.now() - t0) / 1000;
  const [wasm1, heap1] = [wasmMemoryBytes(), performance.memory?.usedJSHeapSize ?? 0];
  assert(wasm1 - wasm0 <= 2 ** 20, `wasm memory grew ${wasm0} → ${wasm1} bytes over the run`);
  assert(heap1 - heap0 <= 4 * 2 ** 20, `the JS heap grew ${(heap0 / 2 ** 20).toFixed(1)} → ${(heap1 / 2 ** 20).toFixed(1)} MiB over the run (after GC)`);
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  assert(total === CALLS, `${total} calls`);
  return `${total} calls in ${s.toFixed(1)} s after an 800-call warm-up (${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}); `
    + `wasm memory ${(wasm0 / 2 ** 20).toFixed(1)} → ${(wasm1 / 2 ** 20).toFixed(1)} MiB, JS heap after GC ${(heap0 / 2 ** 20).toFixed(1)} → ${(heap1 / 2 ** 20).toFixed(1)} MiB; `
    + `[wasm, heap] MiB every 1,840 calls: ${marks.map((m) => m.join('/')).join(' ')}`;
});

clip.dispose();
finish();
