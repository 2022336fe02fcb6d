// Runs the in-page test suites in Debian's headless Chromium through playwright-core, prints one
// line per test and "N passed, N failed", saves a screenshot of each suite's page:
//   page.mjs    the CPU path, in a Chromium without WebGPU (as most browsers still are)
//   webgpu.mjs  the WebGPU path, in a Chromium with WebGPU enabled (SwiftShader adapter here)
//   full.mjs    full-size parity (CPU) on the shipped models found in $MOBILECLIP_FULL_FIXTURES
//               (a folder written by tools/gen_fixtures.py --full; MobileCLIP-S0 and
//               MobileCLIP2-S0 are used when present); only when asked for: `run.mjs full`
//   threads.mjs the `threads` option on a full-size MobileCLIP-S0 ($MOBILECLIP_S0, default
//               target/bench-fixtures/MobileCLIP-S0): a cross-origin-isolated page (COOP/COEP
//               headers), the same without a global SharedArrayBuffer (as in WebKit), a plain
//               page; their embeddings must be identical. Only when asked for: `run.mjs threads`
// Needs: tools/build-wasm.sh (pkg/), chromium at /usr/bin/chromium (or $CHROMIUM).
import { launch } from './chromium.mjs';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from './server.mjs';
import { ISOLATION_HEADERS } from '../../tools/serve.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const shots = join(root, 'target', 'browser-screenshots');
await mkdir(shots, { recursive: true });

/**
 * CPU time (ns, from /proc/<pid>/task/<tid>/schedstat) of every worker thread of the Chromium
 * whose profile folder is `profile`, by thread id: the renderer names a Web Worker's thread
 * "DedicatedWorker thread" (/proc shows its first 15 characters).
 */
function workerCpu(profile) {
  const procs = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  const read = (f) => { try { return readFileSync(f, 'utf8'); } catch { return ''; } };
  const parent = new Map(procs.map((p) => [p, read(`/proc/${p}/stat`).replace(/^.*\) /, '').split(' ')[1]]));
  const ours = new Set(procs.filter((p) => read(`/proc/${p}/cmdline`).includes(profile)));
  for (let grew = true; grew;) { // and their descendants (zygote, renderers)
    grew = false;
    for (const [p, pp] of parent) if (!ours.has(p) && ours.has(pp)) { ours.add(p); grew = true; }
  }
  const cpu = {};
  for (const p of ours) {
    let tasks = [];
    try { tasks = readdirSync(`/proc/${p}/task`); } catch { continue; }
    for (const t of tasks) {
      if (read(`/proc/${p}/task/${t}/comm`).startsWith('DedicatedWorker')) cpu[t] = Number(read(`/proc/${p}/task/${t}/schedstat`).split(' ')[0]);
    }
  }
  return cpu;
}

async function runSuite(suite, extraFlags, query = '', { headers = {}, name = suite } = {}) {
  const main = await serve(root, headers);
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
    await page.exposeFunction('__workerCpu', () => workerCpu(profile));
    await page.goto(`${main.url}/tests/browser/index.html?suite=${suite}&cross=${encodeURIComponent(other.url)}${query}`);
    await page.waitForFunction(() => window.__results, null, { timeout: 600_000 });
    const results = await page.evaluate(() => window.__results);
    await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
    console.log(`\n${name} (${[...extraFlags, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join(', ') || 'no extra flags'}):`);
    for (const r of results) console.log(`${r.ok ? 'ok    ' : 'FAILED'} ${r.name}${r.detail ? ` — ${r.detail}` : ''}`);
    for (const e of errors) console.log(`page error: ${e}`);
    const failed = results.filter((r) => !r.ok).length + errors.length;
    console.log(`${name}: ${results.length + errors.length - failed} passed, ${failed} failed`);
    return { failed, embeddings: await page.evaluate(() => window.__embeddings) };
  } finally {
    await browser.close();
    main.server.close();
    other.server.close();
    await rm(profile, { recursive: true, force: true });
  }
}

const only = process.argv[2]; // optional: "page", "webgpu" or "full"
let failed = 0;
if (!only || only === 'page') failed += (await runSuite('page', [])).failed;
if (!only || only === 'webgpu') failed += (await runSuite('webgpu', ['--enable-unsafe-webgpu'])).failed;
if (only === 'full') {
  const dir = process.env.MOBILECLIP_FULL_FIXTURES;
  const models = ['MobileCLIP-S0', 'MobileCLIP2-S0'].filter((m) => dir && existsSync(join(dir, m, 'io.safetensors')));
  if (models.length === 0) throw new Error('MOBILECLIP_FULL_FIXTURES holds neither MobileCLIP-S0 nor MobileCLIP2-S0');
  const fixtures = await serve(dir, { 'access-control-allow-origin': '*' });
  try {
    failed += (await runSuite('full', [], `&fixtures=${encodeURIComponent(fixtures.url)}&models=${models.join(',')}`)).failed;
  } finally {
    fixtures.server.close();
  }
}
if (only === 'threads') {
  const s0 = process.env.MOBILECLIP_S0 ?? join(root, 'target/bench-fixtures/MobileCLIP-S0');
  if (!existsSync(join(s0, 'io.safetensors'))) throw new Error(`${s0} holds no full-size MobileCLIP-S0 fixture (tools/gen_fixtures.py --full)`);
  const fixtures = await serve(s0, { 'access-control-allow-origin': '*' });
  const q = `&s0=${encodeURIComponent(fixtures.url)}&threads=2`;
  try {
    const pages = {
      isolated: await runSuite('threads', [], q, { headers: ISOLATION_HEADERS, name: 'threads-isolated' }),
      'isolated, no global SharedArrayBuffer': await runSuite('threads', [], `${q}&nosab=1`, { headers: ISOLATION_HEADERS, name: 'threads-isolated-nosab' }),
      'not isolated': await runSuite('threads', [], q, { name: 'threads-plain' }),
    };
    const ref = pages.isolated.embeddings?.single;
    for (const [name, p] of Object.entries(pages)) {
      failed += p.failed;
      const e = p.embeddings?.threaded;
      const same = !!ref && !!e && ['image', 'text'].every((k) => e[k].length === ref[k].length && e[k].every((v, i) => v === ref[k][i]));
      console.log(`${same ? 'ok    ' : 'FAILED'} ${name}: embeddings ${same ? 'bit-identical to' : 'differ from'} the single-threaded module's`);
      if (!same) failed++;
    }
  } finally {
    fixtures.server.close();
  }
}
process.exit(failed ? 1 : 0);
