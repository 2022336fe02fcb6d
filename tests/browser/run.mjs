// Runs the in-page test suites in the three browser engines (engines.mjs), prints one line per
// test naming the engine and "<suite>/<engine>: N passed, N failed", saves a screenshot of each
// suite's page per engine in target/browser-screenshots/<suite>-<engine>.png:
//   page.mjs    the CPU path: parity, image sources, errors, a Web Worker — Chromium and Firefox
//               without WebGPU (as most browsers still are), WebKit with its WebGPU flag on (its
//               navigator.gpu is null then: the package must still say why it is on the CPU)
//   webgpu.mjs  the WebGPU path on a software adapter: Chromium's SwiftShader, Firefox's wgpu on
//               Mesa's lavapipe (WebKitGTK offers no adapter)
//   soak.mjs    10,000 mixed calls on the CPU path, Chromium: results bit-identical, error codes,
//               steady wasm memory and JS heap (after GC)
//   degrade.mjs where an engine lacks something the package uses: WebKit without OffscreenCanvas
//               in workers (as Safari before 16.4; tests/worker/run.mjs runs the worker helper's
//               suite there too), without WebAssembly SIMD, without WebAssembly
//   full.mjs    full-size parity (CPU) on the shipped models found in $MOBILECLIP_FULL_FIXTURES
//               (a folder written by tools/gen_fixtures.py --full; MobileCLIP-S0 and
//               MobileCLIP2-S0 are used when present; MobileCLIP2-L-14 too with
//               MOBILECLIP_BROWSER_LARGE=1, in a page of its own: its safetensors within a peak
//               wasm memory of its parameters + 15 %, and an f16 compact file of it (needs
//               target/release/mobileclip; about 6 minutes, so not in tools/test.sh)); only when
//               asked: `run.mjs full`.
//               tools/test.sh runs it in Chromium only: the numbers are the same in the three to
//               the last digit (S0 2.44e-7 / 1.64e-7, S2-S0 2.46e-7 / 1.71e-7), the small fixtures
//               check the others
//   threads.mjs the `threads` option on a full-size MobileCLIP-S0 ($MOBILECLIP_S0, default
//               target/bench-fixtures/MobileCLIP-S0), in each engine: a cross-origin-isolated
//               page (COOP/COEP), a plain page, and in Chromium the isolated page without a global
//               SharedArrayBuffer (as WebKit leaves it); each page's embeddings must be
//               bit-identical to the engine's single-threaded module's. Only when asked:
//               `run.mjs threads`
//   node tests/browser/run.mjs [page|webgpu|soak|degrade|full|threads]     MOBILECLIP_ENGINES=chromium,firefox,webkit
// Needs: tools/build-wasm.sh (pkg/), the browsers (tools/setup.sh browsers).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inEngine, report, runPage, selectedEngines } from './engines.mjs';
import { serve } from './server.mjs';
import { ISOLATION_HEADERS } from '../../tools/serve.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const shots = join(root, 'target', 'browser-screenshots');
await mkdir(shots, { recursive: true });

// Each suite's runs: the engine, a name for the output and the screenshot, the browser options
// (engines.mjs launch) and a query for the page; `headers` for the page's server (e.g. COOP/COEP
// for cross-origin isolation).
const SUITES = {
  page: {
    runs: [
      ['chromium', 'chromium', {}],
      ['firefox', 'firefox', {}],
      ['webkit', 'webkit', { webgpu: true }], // its WebGPU flag on: navigator.gpu is null then
    ],
  },
  webgpu: { runs: [['chromium', 'chromium', { webgpu: true }], ['firefox', 'firefox', { webgpu: true }]] },
  soak: { runs: [['chromium', 'chromium', { chromiumArgs: ['--js-flags=--expose-gc', '--enable-precise-memory-info'] }]] },
  degrade: {
    runs: [
      ['webkit', 'webkit-no-worker-canvas', { workerCanvas: false }, '&lacks=worker-canvas'],
      ['webkit', 'webkit-no-simd', { wasm: 'no-simd' }, '&lacks=simd'],
      ['webkit', 'webkit-no-wasm', { wasm: 'off' }, '&lacks=wasm'],
    ],
  },
  full: { runs: [['chromium', 'chromium', {}], ['firefox', 'firefox', {}], ['webkit', 'webkit', {}]] },
};

/** Why an engine runs one thread even on an isolated page: what its backend reason must say. */
const ONE_THREAD = { webkit: 'this browser cannot send shared WebAssembly memory to a Web Worker (DataCloneError; its SharedArrayBuffer is off)' };

/**
 * The threads suite in each engine on a cross-origin-isolated page and a plain page (Chromium
 * also on an isolated page without a global SharedArrayBuffer, as WebKit leaves it); then each
 * page's threaded embeddings are compared with that engine's single-threaded module's. The page
 * reads its browser's worker threads' CPU time from the server's /__worker-cpu route.
 */
async function runThreads() {
  const s0 = process.env.MOBILECLIP_S0 ?? join(root, 'target/bench-fixtures/MobileCLIP-S0');
  if (!existsSync(join(s0, 'io.safetensors'))) throw new Error(`${s0} holds no full-size MobileCLIP-S0 fixture (tools/gen_fixtures.py --full)`);
  let current = null; // the browser whose page is running
  const routes = { '/__worker-cpu': () => current?.workerCpu() ?? {} };
  const fixtures = await serve(s0, { 'access-control-allow-origin': '*' });
  const isolated = await serve(root, ISOLATION_HEADERS, { probe: true, routes });
  const plain = await serve(root, {}, { probe: true, routes });
  const pages = [['isolated', isolated, ''], ['isolated, no global SharedArrayBuffer', isolated, '&nosab=1'], ['not isolated', plain, '']];
  let failed = 0;
  try {
    for (const engine of selectedEngines()) {
      const embeddings = {};
      // the global SharedArrayBuffer is deleted by hand only where the engine has one
      for (const [name, server, q] of pages.filter(([, , q]) => !q || engine === 'chromium')) {
        const label = `threads/${engine}/${name.replace(/[ ,]+/g, '-')}`;
        failed += await inEngine(engine, {}, label, async (browser) => {
          current = browser;
          const url = `${server.url}/tests/browser/index.html?suite=threads&s0=${encodeURIComponent(fixtures.url)}&threads=2${q}${ONE_THREAD[engine] ? `&one=${encodeURIComponent(ONE_THREAD[engine])}` : ''}`;
          const done = () => window.__results && { results: window.__results, embeddings: window.__embeddings };
          const { value, errors } = await runPage(browser, url, { shot: join(shots, `${label.replaceAll('/', '-')}.png`), done });
          embeddings[name] = value?.embeddings;
          console.log(`\nthreads in ${browser.version}, ${name}:`);
          return report(label, engine, value?.results, errors);
        });
      }
      const ref = embeddings.isolated?.single;
      for (const [name, e] of Object.entries(embeddings)) {
        const mine = e?.threaded;
        const same = !!ref && !!mine && ['image', 'text'].every((k) => mine[k].length === ref[k].length && mine[k].every((v, i) => v === ref[k][i]));
        console.log(`${same ? 'ok    ' : 'FAILED'} [${engine}] ${name}: embeddings ${same ? 'bit-identical to' : 'differ from'} the single-threaded module's`);
        if (!same) failed++;
      }
    }
  } finally {
    for (const s of [fixtures, isolated, plain]) s.server.close();
  }
  return failed;
}

async function runSuite(suite, query = '') {
  const main = await serve(root, SUITES[suite].headers ?? {}, { probe: true });
  const other = await serve(root); // a second origin, without CORS headers
  let failed = 0;
  try {
    const engines = selectedEngines();
    for (const [engine, name, options, runQuery = ''] of SUITES[suite].runs.filter(([e]) => engines.includes(e))) {
      const t0 = Date.now();
      failed += await inEngine(engine, options, `${suite}/${name}`, async (browser) => {
        const url = `${main.url}/tests/browser/index.html?suite=${suite}&cross=${encodeURIComponent(other.url)}${runQuery}${query}`;
        const { value, errors } = await runPage(browser, url, { shot: join(shots, `${suite}-${name}.png`) });
        console.log(`\n${suite} in ${browser.version}${name === engine ? '' : ` (${name})`} (${((Date.now() - t0) / 1000).toFixed(0)} s):`);
        return report(`${suite}/${name}`, name, value, errors);
      });
    }
  } finally {
    main.server.close();
    other.server.close();
  }
  return failed;
}

/** The largest shipped model: checked in the browser when its full-size fixture is there. */
const LARGE = 'MobileCLIP2-L-14';

/**
 * MobileCLIP2-L-14 in Chromium, in a page of its own (a fresh wasm memory): its published
 * safetensors (peak wasm memory within its parameters + 15 %) and an f16 compact file of it
 * (`mobileclip convert --dtype f16`, written to target/ and deleted after), each against the
 * reference's outputs.
 */
async function runLarge(dir, fixturesUrl) {
  const compact = join(root, 'target', `${LARGE}.f16.safetensors`);
  execFileSync(join(root, 'target/release/mobileclip'), ['convert', '--model', LARGE, '--weights', join(dir, LARGE, 'model.safetensors'), '--dtype', 'f16', '-o', compact], { stdio: 'inherit' });
  try {
    const compacts = JSON.stringify({ [LARGE]: `/target/${LARGE}.f16.safetensors` });
    return await runSuite('full', `&fixtures=${encodeURIComponent(fixturesUrl)}&models=${LARGE}&memory=${LARGE}&compacts=${encodeURIComponent(compacts)}`);
  } finally {
    rmSync(compact, { force: true });
  }
}

const only = process.argv[2]; // optional: "page", "webgpu", "soak", "degrade", "full" or "threads"
let failed = 0;
for (const suite of ['page', 'webgpu', 'soak', 'degrade']) if (!only || only === suite) failed += await runSuite(suite);
if (only === 'full') {
  const dir = process.env.MOBILECLIP_FULL_FIXTURES;
  const has = (m) => dir && existsSync(join(dir, m, 'io.safetensors'));
  const models = ['MobileCLIP-S0', 'MobileCLIP2-S0'].filter(has);
  // L-14 takes about 6 minutes on 2 busy cores (conversion 2, each load and parity 2): only when asked.
  const large = has(LARGE) && process.env.MOBILECLIP_BROWSER_LARGE === '1';
  if (models.length === 0 && !large) throw new Error(`MOBILECLIP_FULL_FIXTURES holds neither MobileCLIP-S0 nor MobileCLIP2-S0 (nor ${LARGE} with MOBILECLIP_BROWSER_LARGE=1)`);
  if (has(LARGE) && !large) console.log(`${LARGE}: skipped (MOBILECLIP_BROWSER_LARGE=1 runs it)`);
  const fixtures = await serve(dir, { 'access-control-allow-origin': '*' });
  try {
    if (models.length) failed += await runSuite('full', `&fixtures=${encodeURIComponent(fixtures.url)}&models=${models.join(',')}`);
    if (large) failed += await runLarge(dir, fixtures.url);
  } finally {
    fixtures.server.close();
  }
}
if (only === 'threads') failed += await runThreads();
process.exit(failed ? 1 : 0);
