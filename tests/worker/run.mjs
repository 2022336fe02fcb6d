// Runs the in-page tests of `mobileclip-wasm/worker` (tests/worker/page.mjs) in Debian's headless
// Chromium: bit-identical results with the main-thread API, error codes, weights sources, abort,
// dispose, and timer/frame ticks during a long encode. Prints one line per test. Runs twice: on a
// plain page (one thread) and on a cross-origin-isolated one, where the worker runs the threaded
// module with its own pool of workers.
// Needs: pkg/ (tools/build-wasm.sh), chromium at /usr/bin/chromium (or $CHROMIUM).
import { launch } from '../browser/chromium.mjs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '../browser/server.mjs';
import { ISOLATION_HEADERS } from '../../tools/serve.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
let failed = 0;
for (const isolated of [false, true]) {
  const main = await serve(root, isolated ? ISOLATION_HEADERS : {});
  // a second origin, without CORS headers (its images load tainted; CORP lets an isolated page load them)
  const other = await serve(root, isolated ? { 'cross-origin-resource-policy': 'cross-origin' } : {});
  const profile = await mkdtemp(join(tmpdir(), 'mobileclip-chromium-'));
  const browser = await launch(profile);
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && !/Failed to load resource/.test(m.text()) && errors.push(`console: ${m.text()}`));
    await page.goto(`${main.url}/tests/worker/index.html?cross=${encodeURIComponent(other.url)}`);
    await page.waitForFunction(() => window.__results, null, { timeout: 300_000 });
    const results = await page.evaluate(() => window.__results);
    console.log(`\n${isolated ? 'cross-origin isolated page' : 'plain page'}:`);
    for (const r of results) console.log(`${r.ok ? 'ok    ' : 'FAILED'} ${r.name}${r.detail ? ` — ${r.detail}` : ''}`);
    for (const e of errors) console.log(`page error: ${e}`);
    const bad = results.filter((r) => !r.ok).length + errors.length;
    console.log(`worker${isolated ? ' (isolated)' : ''}: ${results.length + errors.length - bad} passed, ${bad} failed`);
    failed += bad;
  } catch (e) {
    console.log(`FAILED ${e.message}`);
    failed++;
  } finally {
    await browser.close();
    main.server.close();
    other.server.close();
    await rm(profile, { recursive: true, force: true });
  }
}
process.exit(failed ? 1 : 0);
