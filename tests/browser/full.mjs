// Full-size parity in the browser (CPU path): shipped models with random weights written by the
// PyTorch reference (tools/gen_fixtures.py --full), loaded by name from the published checkpoint
// format, served by the runner from $MOBILECLIP_FULL_FIXTURES (?fixtures=<that server's URL>).
import { MobileClip } from '/pkg/index.js';
import { assertParity, check, finish, params, safetensors, TOL } from './harness.mjs';

const base = params.get('fixtures');
for (const name of params.get('models').split(',')) {
  await check(`full-size parity with the reference: ${name}`, async () => {
    const config = await (await fetch(`${base}/${name}/config.json`)).json();
    const file = config.family === 'open_clip' ? 'model.safetensors' : 'model.pt';
    const t0 = performance.now();
    const m = await MobileClip.load({ model: name, weights: `${base}/${name}/${file}`, backend: 'cpu' });
    const load = performance.now() - t0;
    const io = await safetensors(`${base}/${name}/io.safetensors`);
    try {
      return `${file}: ${await assertParity(m, io, TOL)} (${io.image.shape[0]} images, ${io.tokens.shape[0]} texts; load ${(load / 1000).toFixed(1)} s)`;
    } finally {
      m.dispose();
    }
  });
}
finish();
