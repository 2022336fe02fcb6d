// Full-size parity in the browser (CPU path): shipped models with random weights written by the
// PyTorch reference (tools/gen_fixtures.py --full), loaded by name from the published checkpoint
// format, served by the runner from $MOBILECLIP_FULL_FIXTURES (?fixtures=<that server's URL>).
// `compacts` (JSON: model → URL) adds a load of that model's f16 compact file; `memory` names the
// model whose first load (in this fresh page) must peak within its parameters + 15 %.
import { MobileClip, wasmMemoryBytes } from '/pkg/index.js';
import { assert, assertParity, check, finish, params, safetensors, TOL } from './harness.mjs';

const base = params.get('fixtures');
const compacts = JSON.parse(params.get('compacts') ?? '{}');
for (const name of params.get('models').split(',')) {
  const io = () => safetensors(`${base}/${name}/io.safetensors`);
  await check(`full-size parity with the reference: ${name}`, async () => {
    const config = await (await fetch(`${base}/${name}/config.json`)).json();
    const file = config.family === 'open_clip' ? 'model.safetensors' : 'model.pt';
    const t0 = performance.now();
    const m = await MobileClip.load({ model: name, weights: `${base}/${name}/${file}`, backend: 'cpu' });
    const load = performance.now() - t0;
    const peak = wasmMemoryBytes();
    try {
      const memory = `peak wasm memory ${(peak / 1e6).toFixed(0)} MB for ${(m.parameterBytes / 1e6).toFixed(0)} MB of parameters`;
      if (params.get('memory') === name) assert(peak <= 1.15 * m.parameterBytes, memory);
      const inputs = await io();
      return `${file}: ${await assertParity(m, inputs, TOL)} (${inputs.image.shape[0]} images, ${inputs.tokens.shape[0]} texts; load ${(load / 1000).toFixed(1)} s; ${memory})`;
    } finally {
      m.dispose();
    }
  });
  if (compacts[name]) {
    await check(`full-size parity from an f16 compact file: ${name}`, async () => {
      const t0 = performance.now();
      const m = await MobileClip.load({ weights: compacts[name], backend: 'cpu' });
      const load = performance.now() - t0;
      try {
        assert(m.name === name, `the compact file loaded as ${m.name}`);
        return `${await assertParity(m, await io(), TOL)} (load ${(load / 1000).toFixed(1)} s)`;
      } finally {
        m.dispose();
      }
    });
  }
}
finish();
