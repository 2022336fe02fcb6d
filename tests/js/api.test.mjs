// The package's batch API in Node (CPU backend, small fixture with CLIP's vocabulary): batches of
// any length equal one-at-a-time calls bit for bit, in bounded wasm memory; progress, abort,
// other calls in between; label packs (bytes, reuse, refusals, the CLI's files); hostile options
// and embeddings; recovery from a trap of the wasm instance.
// Run: tools/build-wasm.sh && cargo build --release && node --test tests/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLIP_VOCAB, widenVocabulary } from './safetensors.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const { LabelPack, MobileClip, MobileClipError, similarity, wasmMemoryBytes } = await import(`${root}pkg/index.js`);
const TRAP = Symbol.for('mobileclip-wasm.trapForTests');

const dir = `${root}tests/fixtures/models/v2-mci0`;
const small = JSON.parse(await readFile(`${dir}/config.json`, 'utf8'));
const bytes = widenVocabulary(new Uint8Array(await readFile(`${dir}/model.safetensors`)));
const config = { ...small, name: 'v2-mci0-clip-vocab', text_cfg: { ...small.text_cfg, vocab_size: CLIP_VOCAB } };
const clip = await MobileClip.load({ model: config, weights: bytes, backend: 'cpu' });

const image = (k, w = 23 + k, h = 17 + 2 * k) => ({ width: w, height: h, data: Uint8ClampedArray.from({ length: w * h * 4 }, (_, i) => (i * (k + 3) + k) % 251) });
const labels = (n, prefix = 'thing') => Array.from({ length: n }, (_, i) => `${prefix} number ${i}`);

async function code(p, c, msg) {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof MobileClipError, `not a MobileClipError: ${e}`);
    assert.equal(e.code, c, e.message);
    if (msg) assert.match(e.message, msg);
    return true;
  });
}

test('batches of any length equal one-at-a-time calls, bit for bit', async () => {
  const imgs = Array.from({ length: 11 }, (_, k) => image(k));
  const single = [];
  for (const im of imgs) single.push(await clip.encodeImage(im));
  assert.deepEqual(await clip.encodeImages(imgs), single);
  const texts = labels(37);
  const one = [];
  for (const t of texts) one.push(await clip.encodeText(t));
  assert.deepEqual(await clip.encodeText(texts), one);
  // labels: the pack of 37 labels × 3 templates equals label-at-a-time packs
  const templates = ['a photo of a {}.', 'a drawing of a {}.', '{}'];
  const pack = await clip.labelEmbeddings(texts, { templates });
  for (let i = 0; i < texts.length; i += 9) assert.deepEqual((await clip.labelEmbeddings([texts[i]], { templates })).embeddings, pack.embedding(i));
});

test('4,000 labels (40× the other tests) in bounded wasm memory, with progress', async () => {
  const before = wasmMemoryBytes();
  const progress = [];
  const t0 = performance.now();
  const pack = await clip.labelEmbeddings(labels(4000, 'label'), { onProgress: (p) => progress.push(p) });
  const ms = performance.now() - t0;
  const grown = wasmMemoryBytes() - before;
  console.log(`4,000 labels: ${(ms / 1000).toFixed(1)} s, ${progress.length} progress events, wasm memory ${(before / 2 ** 20).toFixed(1)} → ${(wasmMemoryBytes() / 2 ** 20).toFixed(1)} MiB`);
  assert.equal(pack.size, 4000);
  assert.deepEqual(progress.at(-1), { done: 4000, total: 4000 });
  assert.ok(progress.length >= 4000 / 16 && progress.every((p, i) => i === 0 || p.done > progress[i - 1].done), `progress: ${progress.length} events`);
  // One unbatched pass over 4,000 prompts needs hundreds of MB of activations even for this
  // small model; in parts, the growth is the results (4,000 × 32 floats) and little else.
  assert.ok(grown <= 16 * 2 ** 20, `wasm memory grew by ${(grown / 2 ** 20).toFixed(1)} MiB`);
});

test('progress and abort: a long call stops at the next part, others run in between, the model stays usable', async () => {
  const texts = labels(200);
  const ac = new AbortController();
  const seen = [];
  const long = clip.encodeText(texts, { signal: ac.signal, onProgress: (p) => { seen.push(p.done); if (p.done >= 32) ac.abort(); } });
  const img = image(1);
  const meanwhile = clip.encodeImage(img); // queued after the first part, not after all 200 texts
  await code(long, 'ABORTED', /aborted/);
  assert.ok(seen.at(-1) < 200, `ran to the end: ${seen}`);
  assert.deepEqual(await meanwhile, await clip.encodeImage(img));
  // already aborted: rejects before any work
  await code(clip.encodeText('a cat', { signal: AbortSignal.abort() }), 'ABORTED');
  await code(clip.labelEmbeddings(['cat'], { signal: AbortSignal.abort() }), 'ABORTED');
  await code(clip.zeroShot(img, ['cat'], { signal: AbortSignal.abort() }), 'ABORTED');
  // abort while waiting in the queue behind another call
  const first = clip.encodeText(labels(48));
  const ac2 = new AbortController();
  const queued = clip.encodeImage(img, { signal: ac2.signal });
  ac2.abort();
  await code(queued, 'ABORTED');
  await first;
  // interleaving: a short call finishes long before a long one
  const order = [];
  const a = clip.encodeText(labels(96)).then(() => order.push('long'));
  const b = clip.encodeText('a dog').then(() => order.push('short'));
  await Promise.all([a, b]);
  assert.deepEqual(order, ['short', 'long']);
  assert.deepEqual(await clip.encodeText('a cat'), (await clip.encodeText(['a cat']))[0]);
});

test('label packs: zeroShot on a pack equals zeroShot on the labels; bytes round-trip; reuse encodes only new labels', async () => {
  const img = await clip.encodeImage(image(2));
  const names = ['cat', 'dog', ' car ', 'cat', 'rocket'];
  const templates = ['a photo of a {}.', 'a blurry photo of a {}.'];
  const pack = await clip.labelEmbeddings(names, { templates });
  assert.deepEqual([pack.model, pack.weightsId, pack.dim, pack.size], [clip.name, clip.weightsId, clip.embedDim, 5]);
  assert.deepEqual(pack.labels, ['cat', 'dog', 'car', 'cat', 'rocket']);
  assert.deepEqual(await clip.zeroShot(img, pack, { topK: 3 }), await clip.zeroShot(img, names, { templates, topK: 3 }));
  const back = LabelPack.fromBytes(pack.toBytes());
  assert.deepEqual(back, pack);
  assert.deepEqual(await clip.zeroShot(img, back), await clip.zeroShot(img, pack));
  // reuse: only "boat" is encoded, the rest copied; the pack equals a fresh one
  const progress = [];
  const more = await clip.labelEmbeddings(['boat', 'cat', 'rocket'], { templates, reuse: pack, onProgress: (p) => progress.push(p) });
  assert.deepEqual(progress, [{ done: 1, total: 1 }]);
  assert.deepEqual(more, await clip.labelEmbeddings(['boat', 'cat', 'rocket'], { templates }));
  // another template list is not reused
  progress.length = 0;
  await clip.labelEmbeddings(['cat'], { reuse: pack, onProgress: (p) => progress.push(p) });
  assert.deepEqual(progress, [{ done: 1, total: 1 }]);
  // the scores are the softmax of logit scale × cosine, best first
  const ranked = await clip.zeroShot(img, pack);
  const logits = pack.labels.map((_, i) => clip.logitScale * similarity(img, pack.embedding(i)));
  const z = logits.reduce((s, l) => s + Math.exp(l - Math.max(...logits)), 0);
  assert.ok(Math.abs(ranked[0].score - 1 / z) < 1e-5, `${ranked[0].score} vs ${1 / z}`);
});

test('packs of another model or other weights are refused; garbage bytes are INVALID_LABEL_PACK', async () => {
  const pack = await clip.labelEmbeddings(['cat', 'dog']);
  const img = await clip.encodeImage(image(3));
  const plain = await MobileClip.load({ model: small, weights: new Uint8Array(await readFile(`${dir}/model.safetensors`)) });
  await code(plain.zeroShot(await plain.encodeImage(image(3)), pack), 'LABEL_PACK_MISMATCH', /made by v2-mci0-clip-vocab, this model is v2-mci0/);
  const changed = bytes.slice();
  changed[changed.length - 1] ^= 1;
  const other = await MobileClip.load({ model: config, weights: changed });
  await code(other.zeroShot(img, pack), 'LABEL_PACK_MISMATCH', /other weights/);
  await code(other.labelEmbeddings(['cat'], { reuse: pack }), 'LABEL_PACK_MISMATCH');
  plain.dispose();
  other.dispose();

  const good = pack.toBytes();
  const cases = {
    empty: new Uint8Array(0),
    'random bytes': Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256),
    truncated: good.slice(0, good.length - 5),
    'huge header length': Uint8Array.from([255, 255, 255, 255, 255, 255, 255, 127, ...good.slice(8)]),
    'not JSON': new Uint8Array([8, 0, 0, 0, 0, 0, 0, 0, ...new TextEncoder().encode('{"a":1,,'), 0, 0]),
    'another safetensors file': await readFile(`${dir}/io.safetensors`),
    'a newer version': new TextEncoder().encode(new TextDecoder('latin1').decode(good).replace('"version":"1"', '"version":"2"')),
    'a row that is not a unit vector': (() => { const b = good.slice(); b[b.length - 1] ^= 0x40; return b; })(),
    'labels that are not strings': new TextEncoder().encode(new TextDecoder('latin1').decode(good).replace('"labels":"[\\"cat\\",\\"dog\\"]"', '"labels":"[1,\\"dog\\"]    "')),
  };
  for (const [what, b] of Object.entries(cases)) {
    assert.throws(() => LabelPack.fromBytes(b), (e) => e instanceof MobileClipError && e.code === 'INVALID_LABEL_PACK', what);
  }
  assert.throws(() => LabelPack.fromBytes('cat'), /Uint8Array/);
  assert.throws(() => LabelPack.fromBytes(cases['a newer version']), /version "2"/);
  await code(clip.zeroShot(img, { labels: ['x'], embeddings: new Float32Array(32) }), 'INVALID_ARGUMENT', /Array|labels/);
});

test('label packs move between the CLI and the package', async () => {
  // the CLI tools/test.sh builds (MOBILECLIP_CLI), else a release build's
  const exe = process.env.MOBILECLIP_CLI ?? join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), 'release', 'mobileclip');
  assert.ok(existsSync(exe), `${exe} is missing: ${process.env.MOBILECLIP_CLI ? 'tools/test.sh builds it' : 'cargo build --release'}`);
  const tmp = await mkdtemp(join(tmpdir(), 'mobileclip-pack-'));
  try {
    await writeFile(join(tmp, 'config.json'), JSON.stringify(config));
    await writeFile(join(tmp, 'model.safetensors'), bytes);
    await writeFile(join(tmp, 'labels.txt'), 'cat\n dog\n\ncar\n');
    await writeFile(join(tmp, 'photo.png'), await readFile(`${root}tests/fixtures/preprocess/chelsea_301x217.png`));
    const cli = (...args) => execFileSync(exe, args, { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    const templates = ['a photo of a {}.', 'a drawing of a {}.'];
    cli('labels', '--model', 'config.json', '--weights', 'model.safetensors', '--labels', 'labels.txt', ...templates.flatMap((t) => ['--template', t]), '-o', 'cli.pack');
    const fromCli = LabelPack.fromBytes(await readFile(join(tmp, 'cli.pack')));
    const ours = await clip.labelEmbeddings(['cat', 'dog', 'car'], { templates });
    assert.deepEqual([fromCli.model, fromCli.weightsId, fromCli.labels, fromCli.templates], [ours.model, ours.weightsId, ours.labels, ours.templates]);
    const d = Math.max(...fromCli.embeddings.map((v, i) => Math.abs(v - ours.embeddings[i])));
    assert.ok(d <= 1e-6, `native and wasm label embeddings differ by ${d}`);
    // the package's pack, ranked by the CLI: the package's scores
    await writeFile(join(tmp, 'js.pack'), ours.toBytes());
    const ranked = JSON.parse(cli('zero-shot', '--model', 'config.json', '--weights', 'model.safetensors', '--image', 'photo.png', '--pack', 'js.pack', '--json'));
    assert.equal(ranked.length, 3);
    assert.deepEqual(ranked.map((r) => r.label).sort(), ['car', 'cat', 'dog']);
    const fromPng = JSON.parse(cli('embed', '--model', 'config.json', '--weights', 'model.safetensors', '--image', 'photo.png')).image_embeddings[0];
    const want = await clip.zeroShot(Float32Array.from(fromPng), ours);
    ranked.forEach((r, i) => { assert.equal(r.label, want[i].label); assert.ok(Math.abs(r.score - want[i].score) <= 1e-6); });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

test('hostile options and embeddings are INVALID_ARGUMENT naming the problem', async () => {
  const img = await clip.encodeImage(image(4));
  const pack = await clip.labelEmbeddings(['cat', 'dog']);
  for (const [topK, msg] of [[0, /got 0/], [-1, /got -1/], [1.5, /got 1.5/], [NaN, /got NaN/], [Infinity, /got Infinity/], ['3', /got string/], [2 ** 60, /got 1152921504606847000/]]) {
    await code(clip.zeroShot(img, pack, { topK }), 'INVALID_ARGUMENT', msg);
  }
  assert.equal((await clip.zeroShot(img, pack, { topK: 1e9 })).length, 2);
  assert.equal((await clip.zeroShot(img, pack, { topK: null })).length, 2);
  await code(clip.zeroShot(img, pack, { topk: 1 }), 'INVALID_ARGUMENT', /unknown option `topk` of zeroShot/);
  await code(clip.zeroShot(img, pack, 5), 'INVALID_ARGUMENT', /options of zeroShot must be an object/);
  await code(clip.zeroShot(img, pack, { templates: ['{}'] }), 'INVALID_ARGUMENT', /not with a label pack/);
  await code(clip.zeroShot(img, ['cat'], { templates: 'a {}' }), 'INVALID_ARGUMENT', /templates must be an array/);
  await code(clip.zeroShot(img, ['cat'], { templates: [] }), 'INVALID_ARGUMENT', /template list is empty/);
  await code(clip.zeroShot(img, 'cat'), 'INVALID_ARGUMENT', /labels must be an array/);
  await code(clip.labelEmbeddings([...labels(500), '  ', 'x']), 'INVALID_ARGUMENT', /label 500 is empty/);
  await code(clip.encodeText(labels(3), { onProgress: 'yes' }), 'INVALID_ARGUMENT', /onProgress must be a function/);
  await code(clip.encodeText(labels(3), { signal: {} }), 'INVALID_ARGUMENT', /signal must be an AbortSignal/);
  await code(clip.encodeText(labels(40), { onProgress: () => { throw new Error('boom'); } }), 'INVALID_ARGUMENT', /onProgress threw: boom/);
  for (const [bad, msg] of [[NaN, /\(NaN\) at index 7/], [Infinity, /\(Infinity\) at index 7/], [-Infinity, /\(-Infinity\) at index 7/]]) {
    const e = img.slice();
    e[7] = bad;
    await code(clip.zeroShot(e, pack), 'INVALID_ARGUMENT', msg);
    assert.throws(() => similarity(e, img), msg);
  }
  await code(clip.zeroShot(img.subarray(1), pack), 'INVALID_ARGUMENT', /31 values, the model's have 32/);
  await code(clip.zeroShot(Float64Array.from(img), pack), 'INVALID_IMAGE', /unsupported image source: Float64Array/);
  await code(clip.encodeImages([image(1), image(2), { width: 3, height: 3, data: new Uint8Array(5) }]), 'INVALID_IMAGE', /image 2: the pixel buffer has 5 bytes/);
  await code(clip.encodeImage({ width: 2.5, height: 3, data: new Uint8Array(30) }), 'INVALID_IMAGE', /whole numbers/);
  await code(clip.encodePixels(new Float32Array(10), 1), 'INVALID_IMAGE', /count × 3 × 80 × 80/);
  await code(clip.encodeTokens(new Uint32Array(77 * 3).fill(1), 3.5), 'INVALID_TEXT');
  const ids = new Uint32Array(77 * 40).fill(1);
  ids[77 * 33 + 5] = 10 ** 9;
  await code(clip.encodeTokens(ids, 40), 'INVALID_TEXT', /token id 1000000000 in sequence 33/);
  await code(MobileClip.load({ model: config, weights: bytes, backnd: 'cpu' }), 'INVALID_ARGUMENT', /unknown option `backnd` of load/);
  // a text longer than the model takes: refused before it reaches (and grows) the wasm memory
  const memory = wasmMemoryBytes();
  const long = '😀'.repeat(100_001); // 200,002 UTF-16 units, 100,001 characters
  await code(clip.encodeText([...labels(30), long]), 'INVALID_TEXT', /text 30 has 100001 characters; texts are limited to 100000/);
  await code(clip.labelEmbeddings(['cat', long]), 'INVALID_ARGUMENT', /label 1 has 100001 characters/);
  await code(clip.zeroShot(img, ['cat'], { templates: [`${long}{}`] }), 'INVALID_ARGUMENT', /template 0 has 100003 characters/);
  assert.equal(wasmMemoryBytes(), memory);
  assert.equal((await clip.encodeText('😀'.repeat(50_000))).length, 32);
  assert.deepEqual(await clip.encodeImage(image(4)), img, 'the model works after all this');
});

test('the weights id is the SRI sha256 of the checkpoint', () => {
  assert.equal(clip.weightsId, `sha256-${createHash('sha256').update(bytes).digest('base64')}`);
  assert.equal(clip.backend, 'cpu');
  assert.equal(clip.backendReason, 'requested; 1 thread (Node has no Web Workers)');
  assert.equal(clip.threads, 1);
});

test("precision: the CPU computes in f32 whatever is asked (no error); a bad value is INVALID_ARGUMENT", async () => {
  assert.deepEqual(clip.precision, { image: 'f32', text: 'f32' });
  const half = await MobileClip.load({ model: config, weights: bytes, backend: 'cpu', precision: 'f16' });
  assert.deepEqual(half.precision, { image: 'f32', text: 'f32' });
  const img = image(3);
  assert.deepEqual(await half.encodeImage(img), await clip.encodeImage(img));
  half.dispose();
  for (const bad of ['F16', 'bf16', 16, null]) {
    await code(MobileClip.load({ model: config, weights: bytes, precision: bad }), 'INVALID_ARGUMENT', /precision must be 'auto', 'f32', 'f16', got/);
  }
  assert.equal(clip.precision.text, 'f32', 'the model works after the refusals');
});

test('a trap of the wasm instance: INTERNAL once, then every model reloads transparently', async () => {
  const other = await MobileClip.load({ model: small, weights: new Uint8Array(await readFile(`${dir}/model.safetensors`)) });
  const img = image(5);
  const [before, otherBefore] = [await clip.encodeImage(img), await other.encodeImage(img)];
  const pack = await clip.labelEmbeddings(['cat', 'dog']);
  const pending = clip.encodeText(labels(3)); // queued before the trap: unaffected
  const memory = wasmMemoryBytes();
  await code(clip[TRAP](), 'INTERNAL', /instance failed \(unreachable\)/); // it grabs 64 MiB, then traps
  const queuedAfter = clip.encodeImage(img); // queued behind the trap: runs on the fresh instance
  assert.equal((await pending).length, 3);
  assert.deepEqual(await queuedAfter, before);
  assert.deepEqual(await other.encodeImage(img), otherBefore, 'another model on the same instance reloads too');
  // a fresh instance: the 64 MiB the failed call grabbed are gone
  assert.ok(wasmMemoryBytes() < memory + 32 * 2 ** 20, `wasm memory ${memory} → ${wasmMemoryBytes()} bytes: the trapped instance is still in use`);
  assert.deepEqual(await clip.zeroShot(before, pack), await clip.zeroShot(before, ['cat', 'dog']));
  await code(other[TRAP](), 'INTERNAL');
  await code(other[TRAP](), 'INTERNAL'); // the test hook traps every time; ordinary calls do not
  assert.deepEqual(await clip.encodeImage(img), before);
  other.dispose();
  await code(other.encodeImage(img), 'DISPOSED');
  assert.deepEqual(await clip.encodeImage(img), before);
});
