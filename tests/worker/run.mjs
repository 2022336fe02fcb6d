// Runs the in-page tests of `mobileclip-wasm/worker` (tests/worker/page.mjs) in the three browser
// engines (tests/browser/engines.mjs), and in WebKit once more with OffscreenCanvas in workers
// turned off: bit-identical results with the main-thread API, error codes, weights sources,
// abort, dispose, and timer/frame ticks during a long encode. Prints one line per test naming the
// engine; screenshots in target/browser-screenshots/worker-<engine>.png. In Chromium once more on
// a cross-origin-isolated page, where the worker runs the threaded module with its own pool.
//   node tests/worker/run.mjs      MOBILECLIP_ENGINES=chromium,firefox,webkit (default: all three)
// Needs: pkg/ (tools/build-wasm.sh), the browsers (tools/setup.sh browsers).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inEngine, report, runPage, selectedEngines } from '../browser/engines.mjs';
import { serve } from '../browser/server.mjs';
import { ISOLATION_HEADERS } from '../../tools/serve.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const shots = join(root, 'target', 'browser-screenshots');
await mkdir(shots, { recursive: true });
const main = await serve(root, {}, { probe: true });
const other = await serve(root); // a second origin, without CORS headers
const isolated = await serve(root, ISOLATION_HEADERS, { probe: true });
// its second origin: CORP lets the isolated page load its (tainted) images
const otherForIsolated = await serve(root, { 'cross-origin-resource-policy': 'cross-origin' });
let failed = 0;
try {
  // Every engine, and WebKit once more without OffscreenCanvas in workers (as Safari before 16.4):
  // the helper must then read images on the page, with the same results.
  const runs = selectedEngines().map((engine) => [engine, engine, {}]);
  if (runs.some(([engine]) => engine === 'webkit')) runs.push(['webkit', 'webkit-no-worker-canvas', { workerCanvas: false }]);
  if (runs.some(([engine]) => engine === 'chromium')) runs.push(['chromium', 'chromium-isolated', { isolated: true }]);
  for (const [engine, name, { isolated: iso, ...options }] of runs) {
    const t0 = Date.now();
    failed += await inEngine(engine, options, `worker/${name}`, async (browser) => {
      const [page, cross] = iso ? [isolated, otherForIsolated] : [main, other];
      const url = `${page.url}/tests/worker/index.html?cross=${encodeURIComponent(cross.url)}`;
      const { value, errors } = await runPage(browser, url, { shot: join(shots, `worker-${name}.png`), timeout: 300_000 });
      console.log(`\nworker in ${browser.version}${options.workerCanvas === false ? ', no OffscreenCanvas in workers' : ''}${iso ? ', cross-origin isolated' : ''} (${((Date.now() - t0) / 1000).toFixed(0)} s):`);
      return report(`worker/${name}`, name, value, errors);
    });
  }
} finally {
  for (const s of [main, other, isolated, otherForIsolated]) s.server.close();
}
process.exit(failed ? 1 : 0);
