// How the page gets its turns during a long call on its thread, in each engine (engines.mjs): a 5 ms
// interval beside 800 ms of work that yields every 30 ms, per way of yielding (benches/yield-gap.html),
// interleaved rounds; prints the median longest gap between ticks, the ticks per yield and the
// wait per yield. It chose the package's turn (js/common.js yieldTurn).
//   node benches/yield-gap.mjs      MOBILECLIP_ENGINES=chromium,firefox,webkit   MOBILECLIP_BENCH_ROUNDS (5)
// Needs: the browsers (tools/setup.sh browsers); no wasm.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { launch, runPage, selectedEngines } from '../tests/browser/engines.mjs';
import { serve } from '../tests/browser/server.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const rounds = Number(process.env.MOBILECLIP_BENCH_ROUNDS ?? 5);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const { server, url } = await serve(root);
console.log(`load average ${(await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')}; ${rounds} rounds, medians`);
console.log('| engine | way of yielding | longest gap between 5 ms ticks | ticks per yield | wait per yield |');
console.log('|---|---|---:|---:|---:|');
try {
  for (const engine of selectedEngines()) {
    const browser = await launch(engine);
    try {
      const { value, errors } = await runPage(browser, `${url}/benches/yield-gap.html?rounds=${rounds}`, { timeout: 120_000 });
      if (!value) throw new Error(`${engine}: ${errors.join('; ')}`);
      for (const [way, runs] of Object.entries(value)) {
        const gap = median(runs.map((r) => r.gap)), tpy = median(runs.map((r) => r.ticks / r.yields)), wait = median(runs.map((r) => r.waited / r.yields));
        console.log(`| ${browser.version} | ${way} | ${gap.toFixed(0)} ms | ${tpy.toFixed(2)} | ${wait.toFixed(1)} ms |`);
      }
    } finally {
      await browser.close();
    }
  }
} finally {
  server.close();
}
