// The npm package's JavaScript API in Node (CPU backend): parity with the PyTorch reference on
// the committed fixtures, bad inputs rejected with codes, the instance usable after errors.
// Run: tools/build-wasm.sh && node --test tests/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseSafetensors } from './safetensors.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const { MobileClip, MobileClipError, similarity, modelNames, wasmMemoryBytes } = await import(`${root}pkg/index.js`);
const fixtures = `${root}tests/fixtures/models`;

async function safetensors(path) {
  const buf = await readFile(path);
  return parseSafetensors(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

async function fixture(name, file) {
  const dir = `${fixtures}/${name}`;
  const config = JSON.parse(await readFile(`${dir}/config.json`, 'utf8'));
  const weights = new Uint8Array(await readFile(`${dir}/${file}`));
  return { config, weights, io: await safetensors(`${dir}/io.safetensors`) };
}

function maxDiff(rows, flat) {
  let m = 0;
  const all = rows.flatMap((r) => Array.from(r));
  assert.equal(all.length, flat.length);
  all.forEach((v, i) => { m = Math.max(m, Math.abs(v - flat[i])); });
  return m;
}

const TOL = 1e-4;

for (const [name, file] of [['v1-mci-mct', 'model.pt'], ['v2-mci3', 'model.safetensors'], ['v2-vit-b', 'model_reparam.safetensors']]) {
  test(`parity with the reference: ${name}/${file}`, async () => {
    const { config, weights, io } = await fixture(name, file);
    const clip = await MobileClip.load({ model: config, weights, backend: 'cpu' });
    const suffix = file.includes('reparam') ? '_reparam' : '';
    const n = io.image.shape[0];
    const img = await clip.encodePixels(io.image.data, n);
    const di = maxDiff(img, io[`image_embeddings${suffix}`].data);
    const tok = io.tokens;
    const txt = await clip.encodeTokens(Uint32Array.from(tok.data), tok.shape[0]);
    const dt = maxDiff(txt, io[`text_embeddings${suffix}`].data);
    console.log(`${name}/${file}: image max|d| ${di.toExponential(2)}, text max|d| ${dt.toExponential(2)}`);
    assert.ok(di <= TOL && dt <= TOL, `image ${di}, text ${dt}`);
    assert.ok(Math.abs(clip.logitScale - io.logit_scale_exp.data[0]) <= 1e-4 * io.logit_scale_exp.data[0]);
    clip.dispose();
  });
}

test('image sources: ImageData-like pixels, batches equal single calls', async () => {
  const { config, weights } = await fixture('v2-mci0', 'model.safetensors');
  const clip = await MobileClip.load({ model: config, weights });
  assert.equal(clip.backend, 'cpu');
  assert.match(clip.backendReason, /^WebGPU is not available in Node/);
  const make = (w, h, seed) => ({ width: w, height: h, data: Uint8ClampedArray.from({ length: w * h * 4 }, (_, i) => (i * seed) % 251) });
  const a = make(97, 61, 7), b = make(40, 120, 13);
  const [ea, eb] = await clip.encodeImages([a, b]);
  assert.ok(ea instanceof Float32Array && ea.length === clip.embedDim);
  assert.deepEqual(await clip.encodeImage(a), ea);
  assert.deepEqual(await clip.encodeImage(b), eb);
  assert.ok(Math.abs(similarity(ea, ea) - 1) < 1e-5);
  // alpha is dropped, as PIL's convert('RGB') does
  const opaque = { ...a, data: a.data.map((v, i) => (i % 4 === 3 ? 255 : v)) };
  assert.deepEqual(await clip.encodeImage(opaque), ea);
});

test('concurrent calls give the sequential results', async () => {
  const { config, weights } = await fixture('v2-mci0', 'model.safetensors');
  const clip = await MobileClip.load({ model: config, weights });
  const imgs = Array.from({ length: 6 }, (_, k) => ({ width: 33, height: 29, data: Uint8ClampedArray.from({ length: 33 * 29 * 4 }, (_, i) => (i * (k + 3)) % 256) }));
  const sequential = [];
  for (const im of imgs) sequential.push(await clip.encodeImage(im));
  const concurrent = await Promise.all(imgs.map((im) => clip.encodeImage(im)));
  assert.deepEqual(concurrent, sequential);
});

test('bad inputs reject with codes, and the model keeps working', async () => {
  const { config, weights } = await fixture('v2-mci0', 'model.safetensors');
  const code = async (p, c, msg) => {
    await assert.rejects(p, (e) => {
      assert.ok(e instanceof MobileClipError, `not a MobileClipError: ${e}`);
      assert.equal(e.code, c, e.message);
      if (msg) assert.match(e.message, msg);
      return true;
    });
  };
  await code(MobileClip.load({ model: 'MobileCLIP-XXL', weights }), 'UNKNOWN_MODEL', /MobileCLIP-XXL/);
  await code(MobileClip.load({ model: config, weights: weights.slice(0, weights.length - 50) }), 'INVALID_WEIGHTS', /truncated/);
  await code(MobileClip.load({ model: config, weights: new Uint8Array([1, 2, 3]) }), 'INVALID_WEIGHTS');
  await code(MobileClip.load({ model: config }), 'INVALID_ARGUMENT', /weights/);
  await code(MobileClip.load({ model: config, weights: 42 }), 'INVALID_ARGUMENT', /number/);
  await code(MobileClip.load({ model: config, weights, backend: 'gpu' }), 'INVALID_ARGUMENT');
  await code(MobileClip.load({ model: config, weights, backend: 'webgpu' }), 'NO_WEBGPU', /Node/);
  const other = await fixture('v2-mci3', 'model.safetensors');
  await code(MobileClip.load({ model: config, weights: other.weights }), 'WEIGHTS_MISMATCH', /another model/);

  const clip = await MobileClip.load({ model: config, weights });
  const good = { width: 8, height: 8, data: new Uint8ClampedArray(256).fill(90) };
  const before = await clip.encodeImage(good);
  await code(clip.encodeImage({ width: 0, height: 0, data: new Uint8ClampedArray(0) }), 'INVALID_IMAGE', /empty/);
  await code(clip.encodeImage({ width: 8, height: 8, data: new Uint8ClampedArray(10) }), 'INVALID_IMAGE', /buffer/);
  await code(clip.encodeImage('cat.png'), 'INVALID_IMAGE', /unsupported image source/);
  await code(clip.encodeImage(null), 'INVALID_IMAGE');
  await code(clip.encodeImages([]), 'INVALID_IMAGE');
  await code(clip.encodeText(42), 'INVALID_TEXT', /not a string/);
  await code(clip.encodeText([]), 'INVALID_TEXT');
  await code(clip.zeroShot(before, []), 'INVALID_ARGUMENT', /label list is empty/);
  await code(clip.zeroShot(before, ['a', ''], {}), 'INVALID_ARGUMENT', /label 1 is empty/);
  await code(clip.zeroShot(before, ['a'], { templates: ['no slot'] }), 'INVALID_ARGUMENT', /placeholder/);
  // the fixture's vocabulary is small: real token ids are out of range, which is an error too
  await code(clip.encodeText('a cat'), 'INVALID_TEXT', /outside the vocabulary/);
  assert.throws(() => similarity(before, new Float32Array(3)), MobileClipError);
  assert.deepEqual(await clip.encodeImage(good), before, 'the model works after errors');
  clip.dispose();
  await code(clip.encodeImage(good), 'DISPOSED');
});

test('shipped model names', async () => {
  const names = await modelNames();
  assert.ok(names.includes('MobileCLIP-S0') && names.includes('MobileCLIP2-L-14'), names.join());
});

test('stress: 1,000 encodes keep wasm memory bounded; 50 concurrent calls', async () => {
  const { config, weights } = await fixture('v2-mci0', 'model.safetensors');
  const clip = await MobileClip.load({ model: config, weights });
  const img = { width: 64, height: 48, data: Uint8ClampedArray.from({ length: 64 * 48 * 4 }, (_, i) => (i * 11) % 256) };
  const first = await clip.encodeImage(img);
  for (let i = 0; i < 10; i++) await clip.encodeImage(img);
  const warm = wasmMemoryBytes();
  assert.ok(warm > 0);
  for (let i = 0; i < 1000; i++) {
    const e = await clip.encodeImage(img);
    if (i % 250 === 0) assert.deepEqual(e, first);
  }
  const grown = wasmMemoryBytes() - warm;
  // Bound: no growth beyond 8 MiB over the warmed-up heap after 1,000 encodes (a leak of even
  // one embedding per call would be 1000 × the tensors of a forward pass).
  console.log(`wasm memory after warm-up ${(warm / 2 ** 20).toFixed(1)} MiB, growth over 1,000 encodes ${(grown / 2 ** 20).toFixed(2)} MiB`);
  assert.ok(grown <= 8 * 2 ** 20, `wasm memory grew by ${grown} bytes`);
  const many = await Promise.all(Array.from({ length: 50 }, (_, k) => (k % 2 ? clip.encodeImage(img) : clip.encodeText(['x'.repeat(k)]).catch((e) => e.code))));
  many.forEach((r, k) => (k % 2 ? assert.deepEqual(r, first) : assert.equal(r, 'INVALID_TEXT')));
});

test('MobileClip.convert in Node: the committed compact files byte for byte, loadable without a model; bad options coded', async () => {
  const dir = `${fixtures}/v2-mci0`;
  const config = await readFile(`${dir}/config.json`, 'utf8'); // the text, as the CLI reads it
  const weights = new Uint8Array(await readFile(`${dir}/model.safetensors`));
  for (const [file, dtype, towers] of [['v2-mci0-f32.safetensors', 'f32', undefined], ['v2-mci0-auto-image.safetensors', 'auto', 'image']]) {
    const bytes = await MobileClip.convert({ model: config, weights, dtype, towers });
    assert.deepEqual(Buffer.from(bytes), await readFile(`${root}tests/fixtures/compact/${file}`), `${file} differs from the CLI's`);
    const clip = await MobileClip.load({ weights: bytes, backend: 'cpu' });
    assert.equal(clip.towers, towers ?? 'both');
    clip.dispose();
  }
  // A config object (JSON.stringify writes its 0.0s as 0) gives the same bytes: the file holds the
  // config as canonical JSON. So does a stream of the checkpoint.
  const object = await MobileClip.convert({ model: JSON.parse(config), weights: new Blob([weights]).stream(), dtype: 'f32' });
  assert.deepEqual(Buffer.from(object), await readFile(`${root}tests/fixtures/compact/v2-mci0-f32.safetensors`), 'a config object changes the file');
  for (const [options, code] of [[{ model: config, weights, dtype: 'fp8' }, 'INVALID_ARGUMENT'], [{ model: config, weights, towers: 'all' }, 'INVALID_ARGUMENT'],
    [{ model: 42, weights }, 'INVALID_ARGUMENT'], [{ model: 'MobileCLIP-S0', weights }, 'WEIGHTS_MISMATCH'], [{ model: config, weights: weights.subarray(0, 999) }, 'INVALID_WEIGHTS']]) {
    await assert.rejects(MobileClip.convert(options), (e) => e instanceof MobileClipError && e.code === code, JSON.stringify(Object.keys(options)));
  }
});
