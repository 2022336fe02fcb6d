// Runs the in-page tests (tests/browser/page.mjs) in Debian's headless Chromium through
// playwright-core, prints one line per test and "N passed, N failed", saves a screenshot.
// Needs: tools/build-wasm.sh (pkg/), chromium at /usr/bin/chromium (or $CHROMIUM).
import { chromium } from 'playwright-core';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from './server.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const main = await serve(root);
const other = await serve(root); // a second origin, without CORS headers
const profile = await mkdtemp(join(tmpdir(), 'mobileclip-chromium-'));
const shots = join(root, 'target', 'browser-screenshots');
await mkdir(shots, { recursive: true });

const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1000, height: 700 },
});
let failed = 1;
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${main.url}/tests/browser/index.html?cross=${encodeURIComponent(other.url)}`);
  await page.waitForFunction(() => window.__results, null, { timeout: 300_000 });
  const results = await page.evaluate(() => window.__results);
  await page.screenshot({ path: join(shots, 'tests.png'), fullPage: true });
  for (const r of results) console.log(`${r.ok ? 'ok    ' : 'FAILED'} ${r.name}${r.detail ? ` — ${r.detail}` : ''}`);
  for (const e of errors) console.log(`page error: ${e}`);
  failed = results.filter((r) => !r.ok).length + errors.length;
  console.log(`browser: ${results.length - failed} passed, ${failed} failed`);
} finally {
  await browser.close();
  main.server.close();
  other.server.close();
  await rm(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
