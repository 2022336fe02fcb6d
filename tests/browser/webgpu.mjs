// In-page tests of the WebGPU path, run in a Chromium started with WebGPU enabled (headless
// Chromium's adapter is SwiftShader: correct but slow, so only small fixtures here).
// First: counting the WebGPU work, wrapped around the API before any device exists.
import { countGpuWork } from './gpu-counter.mjs';
import { MobileClip } from '/pkg/index.js';
import { CLIP_VOCAB, widenVocabulary } from '/tests/js/safetensors.mjs';
import { assert, assertParity, check, config, finish, fx, loadImg, maxDiff, rejectsWith, safetensors } from './harness.mjs';

const GPU_TOL = 1e-3;
// The checks below compare f32 embeddings; 'auto' would compute text towers in f16 where the
// adapter offers shader-f16 (Firefox's lavapipe), checked on its own at the end.
const F32 = { precision: 'f32' };

// Keep the devices the package creates, to lose one on purpose later (as a driver reset would).
const devices = [];
const requestDevice = GPUAdapter.prototype.requestDevice;
GPUAdapter.prototype.requestDevice = async function (...args) {
  const device = await requestDevice.apply(this, args);
  devices.push(device);
  return device;
};

const adapter = await navigator.gpu?.requestAdapter();
const bytes = async (name, file) => new Uint8Array(await (await fetch(fx(name, file))).arrayBuffer());

await check('the browser offers a WebGPU adapter', async () => {
  assert(adapter, 'navigator.gpu.requestAdapter() gave no adapter');
  const { vendor, architecture, description, isFallbackAdapter } = adapter.info;
  return `vendor "${vendor}", architecture "${architecture}", description "${description}", fallback ${isFallbackAdapter}`;
});

await check("backend 'auto' skips a software adapter and says why", async () => {
  const m = await MobileClip.load({ model: await config('v2-mci0'), weights: await bytes('v2-mci0', 'model.safetensors') });
  const [backend, reason] = [m.backend, m.backendReason];
  m.dispose();
  if (adapter.info.isFallbackAdapter) assert(backend === 'cpu' && /software fallback/.test(reason), `${backend}: ${reason}`);
  else assert(backend === 'webgpu', `${backend}: ${reason}`);
  return `${backend}: ${reason}`;
});

// The most WebGPU work one batch-1 call may do after a warm-up call, per fixture: about 5 % over
// what Chromium's SwiftShader counts (image v2-mci0 39 and v1-mci-mct 40 dispatches, text v2-mci0
// 22 and v1-mci-mct 32, 3 submits each but v1-mci-mct's text 4; with this crate's fused LayerNorm,
// attention, linear / 1×1-convolution, squeeze-excite and depthwise-pair kernels,
// src/model/gpu/fused.rs). A call
// creates no buffer, pipeline or shader (pools and caches are warm) and reads back once, at the
// end; more dispatches than these mean a lost fusion or an extra kernel (benches/gpu-counts.mjs
// counts the full-size models beside onnxruntime-web's).
const WORK = {
  'v2-mci0': { image: { dispatches: 41, submits: 4 }, text: { dispatches: 23, submits: 4 } },
  'v1-mci-mct': { image: { dispatches: 42, submits: 4 }, text: { dispatches: 32, submits: 4 } },
};

/** Asserts the WebGPU work of one batch-1 image and text call after a warm-up is within `WORK`. */
async function assertWork(m, name, io) {
  const c = await config(name);
  const size = (c.image_cfg ?? c.vision_cfg).image_size;
  const calls = {
    image: () => m.encodePixels(io.image.data.slice(0, 3 * size * size), 1),
    text: () => m.encodeTokens(Uint32Array.from(io.tokens.data.slice(0, io.tokens.shape[1])), 1),
  };
  const seen = [];
  for (const [call, f] of Object.entries(calls)) {
    await f();
    const w = await countGpuWork(f);
    const max = WORK[name][call];
    const got = `${call} ${w.dispatches} dispatches, ${w.submits} submits, ${w.mapAsync} read-back(s), ${w.buffers} buffers, ${w.pipelines} pipelines, ${w.shaderModules} shaders`;
    assert(w.buffers === 0 && w.pipelines === 0 && w.shaderModules === 0, `${got}: created during a warm call`);
    assert(w.mapAsync === 1, `${got}: one read-back expected`);
    const kernels = Object.entries(w.kernels).map(([k, n]) => `${k} ${n}`).join(', ');
    assert(w.dispatches <= max.dispatches && w.submits <= max.submits, `${got}: more than ${max.dispatches} dispatches / ${max.submits} submits (by kernel: ${kernels})`);
    seen.push(got);
  }
  return seen.join('; ');
}

for (const [name, file] of [['v2-mci0', 'model.safetensors'], ['v1-mci-mct', 'model.pt'], ['v1-vit-base-causal', 'model_reparam.pt']]) {
  const io = await safetensors(fx(name, 'io.safetensors'));
  let m;
  await check(`WebGPU parity with the reference: ${name}/${file}`, async () => {
    m = await MobileClip.load({ model: await config(name), weights: await bytes(name, file), backend: 'webgpu', ...F32 });
    assert(m.backend === 'webgpu' && m.backendReason, `${m.backend}: ${m.backendReason}`);
    return await assertParity(m, io, GPU_TOL, file.includes('reparam') ? '_reparam' : '');
  });
  if (m && WORK[name]) await check(`WebGPU work per warm call: ${name}`, () => assertWork(m, name, io));
  m?.dispose();
}

/** The smallest cosine similarity between the rows of `a` and of `b`. */
function minCosine(a, b) {
  const dot = (x, y) => x.reduce((s, v, i) => s + v * y[i], 0);
  return Math.min(...a.map((x, i) => dot(x, b[i]) / Math.sqrt(dot(x, x) * dot(b[i], b[i]))));
}

await check("precision: 'f16' and 'auto' compute in f16 (or on f16 weights) where the adapter offers shader-f16, else in f32 without an error", async () => {
  const half = adapter.features.has('shader-f16') ? 'f16' : 'f32';
  const seen = [`shader-f16 ${half === 'f16' ? 'offered' : 'absent'}`];
  // v2-mci0: a convolutional image tower ('auto' computes it in f32 on f16 weights); v1-vit-base-causal: ViT.
  const weightsOnly = half === 'f16' ? 'f16-weights' : 'f32';
  for (const [name, file, autoImage] of [['v2-mci0', 'model.safetensors', weightsOnly], ['v1-vit-base-causal', 'model_reparam.pt', half]]) {
    const io = await safetensors(fx(name, 'io.safetensors'));
    const load = async (precision) => MobileClip.load({ model: await config(name), weights: await bytes(name, file), backend: 'webgpu', precision });
    const embed = async (m) => [await m.encodePixels(io.image.data, io.image.shape[0]), await m.encodeTokens(Uint32Array.from(io.tokens.data), io.tokens.shape[0])];
    const models = { f16: await load('f16'), auto: await load(undefined), f32: await load('f32') };
    const want = { f16: { image: half, text: half }, auto: { image: autoImage, text: half }, f32: { image: 'f32', text: 'f32' } };
    const [image, text] = await embed(models.f32);
    for (const [asked, m] of Object.entries(models)) {
      assert(JSON.stringify(m.precision) === JSON.stringify(want[asked]), `${name} '${asked}': ${JSON.stringify(m.precision)}, expected ${JSON.stringify(want[asked])}`);
      const [i, t] = await embed(m);
      const [ci, ct] = [minCosine(i, image), minCosine(t, text)];
      // the towers 'auto' halves stay within the bar; the rest is reported
      assert(ct >= 0.9999 && (asked !== 'auto' || ci >= 0.9999), `${name} '${asked}': cosine to f32 image ${ci}, text ${ct}`);
      seen.push(`${name} '${asked}' ${JSON.stringify(m.precision)} cos image ${ci.toFixed(6)} text ${ct.toFixed(6)}`);
    }
    const sfx = file.includes('reparam') ? '_reparam' : '';
    const d = Math.max(maxDiff(image, io[`image_embeddings${sfx}`].data), maxDiff(text, io[`text_embeddings${sfx}`].data));
    assert(d <= GPU_TOL, `${name}: f32 after f16 models on the device differs from the reference by ${d}`);
    for (const m of Object.values(models)) m.dispose();
  }
  await rejectsWith(MobileClip.load({ model: await config('v2-mci0'), weights: await bytes('v2-mci0', 'model.safetensors'), backend: 'webgpu', precision: 'half' }), 'INVALID_ARGUMENT');
  return seen.join('; ');
});

// v2-mci0 with CLIP's full vocabulary, so that labels go through the real tokenizer.
const weights = widenVocabulary(await bytes('v2-mci0', 'model.safetensors'));
const small = await config('v2-mci0');
const model = { ...small, name: 'v2-mci0-clip-vocab', text_cfg: { ...small.text_cfg, vocab_size: CLIP_VOCAB } };
const cpu = await MobileClip.load({ model, weights, backend: 'cpu' });
// As a Blob: the model keeps the caller's Blob (no copy) to reload from if the device is lost.
const gpu = await MobileClip.load({ model, weights: new Blob([weights]), backend: 'webgpu', ...F32 });
const photo = await loadImg('/tests/fixtures/preprocess/chelsea_301x217.png');
const labels = ['cat', 'dog', 'car', 'a diagram'];

await check('WebGPU: <img>, text and zero-shot match the CPU backend', async () => {
  const di = maxDiff([await gpu.encodeImage(photo)], await cpu.encodeImage(photo));
  const dt = maxDiff(await gpu.encodeText(labels), (await cpu.encodeText(labels)).flatMap((r) => [...r]));
  const [zg, zc] = [await gpu.zeroShot(photo, labels), await cpu.zeroShot(photo, labels)];
  assert(di <= GPU_TOL && dt <= GPU_TOL, `image ${di}, text ${dt}`);
  assert(zg.map((r) => r.label).join() === zc.map((r) => r.label).join(), `ranking ${JSON.stringify(zg)} vs ${JSON.stringify(zc)}`);
  const ds = Math.max(...zg.map((r, i) => Math.abs(r.score - zc[i].score)));
  assert(ds <= GPU_TOL, `scores differ by ${ds}`);
  return `image ${di.toExponential(2)}, text ${dt.toExponential(2)}, scores ${ds.toExponential(2)}`;
});

await check('WebGPU: bad input rejects with codes, the model keeps working', async () => {
  const msgs = [];
  msgs.push(await rejectsWith(gpu.encodeImage(new ImageData(1, 1).data), 'INVALID_IMAGE'));
  msgs.push(await rejectsWith(gpu.encodeText([42]), 'INVALID_TEXT'));
  msgs.push(await rejectsWith(gpu.zeroShot(new Float32Array(3), labels), 'INVALID_ARGUMENT'));
  const again = await gpu.encodeImage(photo);
  assert(maxDiff([again], await cpu.encodeImage(photo)) <= GPU_TOL, 'broken after errors');
  return msgs.join(' | ');
});

await check('device lost during a call: the call resolves on the CPU, later calls too', async () => {
  assert(devices.length > 0, 'no device was captured');
  const expected = await cpu.encodeImage(photo);
  const pending = gpu.encodeImage(photo);
  await new Promise((r) => setTimeout(r, 0));
  for (const d of devices) d.destroy();
  const got = await pending;
  assert(maxDiff([got], expected) <= GPU_TOL, 'pending call gave a wrong embedding');
  assert(gpu.backend === 'cpu' && /lost.*moved from WebGPU/.test(gpu.backendReason), `backend "${gpu.backend}": ${gpu.backendReason}`);
  const text = await gpu.encodeText('a cat');
  assert(maxDiff([text], await cpu.encodeText('a cat')) <= 1e-6, 'later call differs from the CPU');
  await rejectsWith(MobileClip.load({ model, weights, backend: 'webgpu' }), 'NO_WEBGPU');
  const auto = await MobileClip.load({ model, weights });
  assert(auto.backend === 'cpu' && /lost/.test(auto.backendReason), `new model's backend "${auto.backend}": ${auto.backendReason}`);
  auto.dispose();
  return `${gpu.backend}: ${gpu.backendReason}`;
});

cpu.dispose();
gpu.dispose();
finish();
