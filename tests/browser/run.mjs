// Runs the in-page test suites in Debian's headless Chromium through playwright-core, prints one
// line per test and "N passed, N failed", saves a screenshot of each suite's page:
//   page.mjs    the CPU path, in a Chromium without WebGPU (as most browsers still are)
//   webgpu.mjs  the WebGPU path, in a Chromium with WebGPU enabled (SwiftShader adapter here)
//   soak.mjs    10,000 mixed calls on the CPU path: results, error codes, steady memory
//   full.mjs    full-size parity (CPU) on the shipped models found in $MOBILECLIP_FULL_FIXTURES
//               (a folder written by tools/gen_fixtures.py --full; MobileCLIP-S0 and
//               MobileCLIP2-S0 are used when present); only when asked for: `run.mjs full`
// Needs: tools/build-wasm.sh (pkg/), chromium at /usr/bin/chromium (or $CHROMIUM).
import { launch } from './chromium.mjs';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from './server.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const shots = join(root, 'target', 'browser-screenshots');
await mkdir(shots, { recursive: true });

async function runSuite(suite, extraFlags, query = '') {
  const main = await serve(root);
  const other = await serve(root); // a second origin, without CORS headers
  const profile = await mkdtemp(join(tmpdir(), 'mobileclip-chromium-'));
  const browser = await launch(profile, {
    args: extraFlags,
    viewport: { width: 1000, height: 700 },
  });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${main.url}/tests/browser/index.html?suite=${suite}&cross=${encodeURIComponent(other.url)}${query}`);
    await page.waitForFunction(() => window.__results, null, { timeout: 600_000 });
    const results = await page.evaluate(() => window.__results);
    await page.screenshot({ path: join(shots, `${suite}.png`), fullPage: true });
    console.log(`\n${suite} (${extraFlags.join(' ') || 'no extra flags'}):`);
    for (const r of results) console.log(`${r.ok ? 'ok    ' : 'FAILED'} ${r.name}${r.detail ? ` — ${r.detail}` : ''}`);
    for (const e of errors) console.log(`page error: ${e}`);
    const failed = results.filter((r) => !r.ok).length + errors.length;
    console.log(`${suite}: ${results.length + errors.length - failed} passed, ${failed} failed`);
    return failed;
  } finally {
    await browser.close();
    main.server.close();
    other.server.close();
    await rm(profile, { recursive: true, force: true });
  }
}

const only = process.argv[2]; // optional: "page", "webgpu", "soak" or "full"
let failed = 0;
if (!only || only === 'page') failed += await runSuite('page', []);
if (!only || only === 'webgpu') failed += await runSuite('webgpu', ['--enable-unsafe-webgpu']);
if (!only || only === 'soak') failed += await runSuite('soak', ['--js-flags=--expose-gc', '--enable-precise-memory-info']);
if (only === 'full') {
  const dir = process.env.MOBILECLIP_FULL_FIXTURES;
  const models = ['MobileCLIP-S0', 'MobileCLIP2-S0'].filter((m) => dir && existsSync(join(dir, m, 'io.safetensors')));
  if (models.length === 0) throw new Error('MOBILECLIP_FULL_FIXTURES holds neither MobileCLIP-S0 nor MobileCLIP2-S0');
  const fixtures = await serve(dir, { 'access-control-allow-origin': '*' });
  try {
    failed += await runSuite('full', [], `&fixtures=${encodeURIComponent(fixtures.url)}&models=${models.join(',')}`);
  } finally {
    fixtures.server.close();
  }
}
process.exit(failed ? 1 : 0);
