// Side-by-side benchmark: mobileclip-wasm against onnxruntime-web and LiteRT.js in each browser
// engine the tests use (Chromium, Firefox ESR, WebKitGTK: tests/browser/engines.mjs), one run, on
// the same random-weight models (ONNX and .tflite exported from the reference by
// benches/export.py), plus PyTorch eager natively (benches/torch_eager.py). Writes the
// "## Side by side" section of BENCHMARKS.md. Run through tools/bench.sh.
//   node benches/compare.mjs [--quick] DIR...   (fixture folders under the repo root)
//   MOBILECLIP_ENGINES=chromium,firefox,webkit  the engines (default: all three)
//   MOBILECLIP_BENCH_ROUNDS=N                   rounds (default 7, quick 1)
//   MOBILECLIP_BENCH_THREADS=N                  the N of the N-thread rows (default: cores, ≤ 8)
//
// How it measures on a shared, loaded machine: per engine, model and thread count, every row
// (runtime) gets its own page on a cross-origin-isolated origin (the runtimes fix their thread
// count when they start), and all of them stay open; after a warm-up call of each kind, rounds
// visit the rows in turn (ABC, then CBA, ...), one call of each kind per visit, so that load
// from other processes falls on all rows alike. A figure is the median over the rounds, its spread
// the rounds' interquartile range; a ratio to onnxruntime-web is taken per round (same engine,
// model, thread count) and summarised the same way. One-thread rows in Chromium are timed by the
// page's main-thread CPU time (DevTools Protocol Performance.getMetrics ThreadTime), which other
// processes disturb far less than wall time; every runtime runs its one-thread work on that
// thread (ours: the single-threaded module; onnxruntime-web: no proxy worker; LiteRT.js: its
// non-threaded wasm, no workers), and a row whose CPU time is under a fifth of its wall time is
// marked as not measured there. N-thread rows and the other engines (no such counter) use wall
// time, with wall time shown for CPU-timed rows too.
import { inEngine, selectedEngines } from '../tests/browser/engines.mjs';
import { serve } from '../tests/browser/server.mjs';
import { ISOLATION_HEADERS } from '../tools/serve.mjs';
import { writeSection } from './section.mjs';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const dirs = args.filter((a) => !a.startsWith('--')).map((d) => resolve(d));
const rounds = Number(process.env.MOBILECLIP_BENCH_ROUNDS ?? (quick ? 1 : 7));
const maxThreads = Number(process.env.MOBILECLIP_BENCH_THREADS ?? Math.min(availableParallelism(), 8));
const threadCounts = [...new Set([1, maxThreads])];
const TOL = 1e-4;
const KINDS = ['image', 'image8', 'text'];
const py = process.env.MOBILECLIP_BENCH_PYTHON;
const RUNTIMES = ['ours', 'ort', 'litert'];
const LABELS = { ours: 'mobileclip-wasm (CPU)', ort: 'onnxruntime-web 1.30 (wasm)', litert: 'LiteRT.js 2.5.3 (wasm, XNNPACK)', torch: 'PyTorch eager (native)' };

const server = await serve(root, ISOLATION_HEADERS);
const rows = []; // { engine, model, runtime, threads, info, wall: {kind: [per round]}, cpu: {...} | null, error }
const browsers = {}; // engine -> version
const load = []; // load averages seen during the run
const sampleLoad = () => load.push(loadavg()[0]);
// how long a row may take to load, and one call to answer, before it counts as hung (a hung page
// would otherwise hold the run until CI's own limit)
const LOAD_MS = quick ? 180_000 : 900_000;
const CALL_MS = quick ? 60_000 : 300_000;

/** `promise`, or an error marked `hung` after `ms`. */
function deadline(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer to ${what} in ${ms / 1000} s`), { hung: true })), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** A page of `browser` running one row, with its info (window.__bench) once loaded. */
async function openRow(browser, dir, runtime, threads, backend = 'cpu') {
  const page = await browser.newPage();
  try {
    return await loadRow(browser, page, dir, runtime, threads, backend);
  } catch (e) {
    if (!sessionGone(browser, e)) await page.close().catch(() => {}); // a hung page would spin on
    throw e;
  }
}

async function loadRow(browser, page, dir, runtime, threads, backend) {
  const url = `${server.url}/benches/compare.html?runtime=${runtime}&threads=${threads}&backend=${backend}&dir=/${relative(root, dir)}&file=${existsSync(join(dir, 'model.pt')) ? 'model.pt' : 'model.safetensors'}`;
  await page.goto(url);
  const info = await deadline(page.waitFor(() => window.__bench, LOAD_MS), LOAD_MS, 'loading');
  let cdp = null;
  if (browser.engine === 'chromium' && threads === 1 && !info.error) {
    cdp = await page.native.context().newCDPSession(page.native);
    await cdp.send('Performance.enable', { timeDomain: 'threadTicks' });
  }
  return { page, info, cdp };
}

const threadTime = async (cdp) => (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'ThreadTime').value * 1e3;

/** One call of `kind` in a row's page: wall ms (in-page), and main-thread CPU ms where counted. */
async function call({ page, cdp }, kind) {
  const before = cdp ? await threadTime(cdp) : 0;
  const wall = await deadline(page.evaluate((k) => window.__op(k), kind), CALL_MS, kind);
  return { wall, cpu: cdp ? (await threadTime(cdp)) - before : undefined };
}

/** The WebGPU adapter a Chromium page is offered: `{ name, fallback }` or null. */
async function adapter(browser) {
  const page = await browser.newPage();
  try {
    await page.goto(`${server.url}/benches/compare.html?runtime=none`);
    return await page.evaluate(async () => {
      const a = await navigator.gpu?.requestAdapter();
      return a ? { name: [a.info?.vendor, a.info?.architecture].filter(Boolean).join(' '), fallback: !!(a.info?.isFallbackAdapter ?? a.isFallbackAdapter) } : null;
    });
  } finally {
    await page.close();
  }
}

/**
 * Whether `e` took the browser session with it: WebKitWebDriver ends the session when a page
 * crashes, and a page that hangs keeps its one command channel busy.
 */
const sessionGone = (browser, e) => !!browser.lost && (browser.lost(e) || !!e.hung);

/** A crashed or hung page's message, shortened for the table. */
const crashed = (browser, e) => (browser.lost?.(e) ? 'the page crashed or hung (the browser ended the session)' : `the page failed: ${e.message.split('\n')[0]}`);

/**
 * Measures a group of rows (same engine, model and thread count) in interleaved rounds. A row
 * whose page crashes or hangs is marked with the error and the others go on; where that ends
 * the whole browser session (WebKitWebDriver deletes it with every window), a new session is
 * started and the group measured again without that row.
 */
async function measureGroup(browser, dir, model, group) {
  const open = [];
  const mine = []; // this attempt's rows, in `rows`
  let lost = null; // the runtime whose page took the session with it
  try {
    for (const [runtime, threads, backend] of group) {
      const row = { engine: browser.engine, model, runtime, threads: backend === 'webgpu' ? 'webgpu' : threads, wall: {}, cpu: null };
      rows.push(row);
      mine.push(row);
      let r = null;
      try {
        r = await openRow(browser, dir, runtime, threads, backend);
        row.info = r.info;
        console.log(`${browser.engine} ${model} ${runtime}, ${row.threads} thread(s):`, JSON.stringify(r.info));
        if (r.info.error) { row.error = r.info.error; await r.page.close(); continue; }
        if (r.cdp) row.cpu = {};
        for (const k of KINDS) { row.wall[k] = []; if (row.cpu) row.cpu[k] = []; await call(r, k); } // warm-up
        open.push({ ...r, row });
      } catch (e) {
        row.error = browser.lost?.(e) || e.hung ? crashed(browser, e) : e.message.split('\n')[0];
        console.log(`${browser.engine} ${model} ${runtime}, ${row.threads} thread(s): ${row.error}`);
        if (sessionGone(browser, e)) { lost = row; break; }
        await r?.page.close().catch(() => {}); // failed in its warm-up
      }
    }
    for (let round = 0; round < rounds && !lost; round++) {
      sampleLoad();
      for (const r of round % 2 ? [...open].reverse() : [...open]) {
        try {
          await r.page.front();
          // a background page's timers are throttled: count visits that found it hidden
          if (await r.page.evaluate(() => document.visibilityState) !== 'visible') r.row.hidden = (r.row.hidden ?? 0) + 1;
          for (const k of KINDS) {
            const { wall, cpu } = await call(r, k);
            r.row.wall[k].push(wall);
            if (r.row.cpu) r.row.cpu[k].push(cpu);
          }
        } catch (e) {
          r.row.error = crashed(browser, e);
          console.log(`${browser.engine} ${model} ${r.row.runtime}, ${r.row.threads} thread(s): ${r.row.error}`);
          open.splice(open.indexOf(r), 1);
          await r.page.close().catch(() => {});
          if (sessionGone(browser, e)) { lost = r.row; break; }
        }
      }
      if (!lost) console.log(`${browser.engine} ${model} ${group[0][1]} thread(s) round ${round + 1}/${rounds}: ${open.map((r) => `${r.row.runtime} ${KINDS.map((k) => (r.row.cpu?.[k] ?? r.row.wall[k]).at(-1).toFixed(0)).join('/')}`).join(', ')} ms`);
    }
  } finally {
    if (!lost) for (const r of open) await r.page.close().catch(() => {});
  }
  if (lost) {
    // the other rows' pages went with the session: measure them again in a new one
    for (const row of mine) if (row !== lost) rows.splice(rows.indexOf(row), 1);
    console.log(`${browser.engine}: the session ended with ${lost.runtime}'s page; a new session measures the others`);
    await browser.recover();
    const rest = group.filter(([runtime]) => runtime !== lost.runtime);
    if (rest.length) await measureGroup(browser, dir, model, rest);
  }
}

try {
  for (const engine of selectedEngines()) {
    await inEngine(engine, engine === 'chromium' ? { chromiumArgs: ['--enable-unsafe-webgpu'] } : {}, `compare/${engine}`, async (browser) => {
      browsers[engine] = browser.version;
      const gpu = engine === 'chromium' ? await adapter(browser) : null;
      if (gpu) browsers.gpu = gpu;
      for (const dir of dirs) {
        const model = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')).name;
        for (const threads of threadCounts) await measureGroup(browser, dir, model, RUNTIMES.map((r) => [r, threads]));
        if (gpu && !gpu.fallback) await measureGroup(browser, dir, model, [['ours', 1, 'webgpu']]);
      }
      return 0;
    });
    if (!browsers[engine]) rows.push({ engine, model: '–', runtime: 'ours', threads: '–', error: `${engine} did not start` });
  }
  if (py) { // PyTorch eager, natively, after the browsers (same run)
    for (const dir of dirs) {
      const model = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')).name;
      sampleLoad();
      const run = spawnSync(py, [join(root, 'benches/torch_eager.py'), dir, '--threads', threadCounts.join(','), '--iters', String(rounds)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      if (run.status !== 0) throw new Error(`benches/torch_eager.py failed (${run.status})`);
      for (const line of run.stdout.trim().split('\n')) {
        const r = JSON.parse(line);
        console.log(`${model}: PyTorch, ${r.threads} thread(s):`, line);
        rows.push({ engine: 'native', model, runtime: 'torch', threads: r.threads, info: r, wall: { image: [r.image_ms], image8: [r.image8_ms], text: [r.text_ms] }, cpu: null });
      }
    }
  }
} finally {
  server.server.close();
}

// ---- the section ----
const quantile = (xs, q) => { const s = [...xs].sort((a, b) => a - b); const i = (s.length - 1) * q; return s[Math.floor(i)] + (s[Math.ceil(i)] - s[Math.floor(i)]) * (i - Math.floor(i)); };
/** median (interquartile range) of the finite `xs`, each formatted by `f` */
const spread = (xs, f) => {
  const v = (xs ?? []).filter(Number.isFinite);
  if (!v.length) return '–';
  const lo = quantile(v, 0.25), hi = quantile(v, 0.75);
  return v.length > 2 && f(lo) !== f(hi) ? `${f(quantile(v, 0.5))} (${f(lo)}–${f(hi)})` : f(quantile(v, 0.5));
};
const ms = (x) => x.toFixed(0);
const perSec = (x) => x.toFixed(1);
const times = (x) => `${x.toFixed(2)}×`;
const md = (s) => String(s).replaceAll('|', '/').replaceAll('\n', ' ');
let table = '| engine | model | runtime | threads | timed by | image, batch 1 (ms) | vs onnxruntime-web | images/s, batch 8 | vs onnxruntime-web | text, batch 1 (ms) | vs onnxruntime-web | wall time, image / batch 8 / text (ms) | wasm | parity (max \\|Δ\\| image / text) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n';
let invalid = 0;
const order = (r) => [Object.keys(browsers).indexOf(r.engine) < 0 ? 9 : Object.keys(browsers).indexOf(r.engine), r.model, String(r.threads), RUNTIMES.indexOf(r.runtime)];
const cmp = (a, b) => { const x = order(a), y = order(b); for (let i = 0; i < x.length; i++) { if (x[i] < y[i]) return -1; if (x[i] > y[i]) return 1; } return 0; };
for (const row of [...rows].sort(cmp)) {
  const engine = row.engine === 'native' ? 'native' : row.engine;
  const name = row.threads === 'webgpu' ? `mobileclip-wasm (WebGPU, ${browsers.gpu?.name})` : LABELS[row.runtime];
  if (row.error) {
    table += `| ${engine} | ${row.model} | ${name} | ${row.threads} | | not run: ${md(row.error)} | | | | | | | | – |\n`;
    continue;
  }
  // the threads it really ran, where fewer than asked (an engine without shared memory for workers)
  const ran = row.info.ran_threads;
  let threads = row.threads === 'webgpu' ? '–' : String(row.threads);
  if (Number.isFinite(ran) && ran < row.threads) threads = `${row.threads} asked, ${ran} ran (${md(row.info.why ?? 'no reason given')})`;
  const byCpu = !!row.cpu;
  const fig = byCpu ? row.cpu : row.wall;
  // CPU time far below wall time: the work ran on another thread than the page's main thread
  const offMain = byCpu && quantile(row.cpu.image, 0.5) < 0.2 * quantile(row.wall.image, 0.5);
  const ort = rows.find((r) => r.engine === row.engine && r.model === row.model && r.threads === row.threads && r.runtime === 'ort' && !r.error);
  const oFig = ort && (byCpu ? ort.cpu : ort.wall);
  // per round: onnxruntime-web's figure over this row's (above 1× is faster)
  const ratio = (k) => (oFig && row.engine !== 'native' ? fig[k].map((v, i) => oFig[k][i] / v) : []);
  const dmax = Math.max(row.info.image_max_diff, row.info.text_max_diff);
  const ok = dmax <= TOL;
  if (!ok) invalid++;
  const parity = `${ok ? '' : '**invalid**: '}${row.info.image_max_diff.toExponential(1)} / ${row.info.text_max_diff.toExponential(1)}`;
  const hidden = row.hidden ? `; **${row.hidden} of ${rounds} rounds in a hidden page**` : '';
  const timedBy = row.engine === 'native' ? `wall, median of ${row.info.iters ?? rounds}` : byCpu ? (offMain ? '**main-thread CPU, but the work ran elsewhere**' : 'main-thread CPU') : 'wall';
  const timedByCell = timedBy + hidden;
  const wallCol = byCpu ? KINDS.map((k) => ms(quantile(row.wall[k], 0.5))).join(' / ') : '';
  const r = (k) => (row.runtime === 'ort' ? '1.00×' : spread(ratio(k), times));
  table += `| ${engine} | ${row.model} | ${name} | ${threads} | ${timedByCell} | ${spread(fig.image, ms)} | ${row.engine === 'native' ? '' : r('image')} | ${spread(fig.image8.map((v) => 8000 / v), perSec)} | ${row.engine === 'native' ? '' : r('image8')} | ${spread(fig.text, ms)} | ${row.engine === 'native' ? '' : r('text')} | ${wallCol} | ${(row.info.wasm ?? []).join(', ')} | ${parity} |\n`;
}

const cpuName = (await readFile('/proc/cpuinfo', 'utf8').catch(() => '')).match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown CPU';
const gpu = browsers.gpu;
const gpuNote = !('chromium' in browsers) ? '' : !gpu ? 'Chromium offers no WebGPU adapter here: no WebGPU row.'
  : gpu.fallback ? `Chromium's only WebGPU adapter here is a software fallback (${gpu.name}, a CPU emulation of a GPU): no WebGPU row (the "## Browser" section times it, as a correctness path).`
    : `WebGPU row on ${gpu.name}.`;
const engines = Object.entries(browsers).filter(([e]) => e !== 'gpu').map(([, v]) => v.replace(/ built on .*$/, '')).join(', ');
const la = load.length ? `${Math.min(...load).toFixed(1)}–${Math.max(...load).toFixed(1)}` : '–';
const section = `## Side by side${quick ? ' (quick run: figures not comparable with a full run)' : ''}\n\n`
  + `Measured by \`tools/bench.sh${quick ? ' --quick' : ''}\` (benches/compare.mjs) in one run on ${cpuName} (${availableParallelism()} cores; 1-minute load average ${la} during the run, from other work on this shared machine), `
  + `in ${engines}: cross-origin-isolated pages, one page (WebKit: window) per row, each made the visible one before its visit, all rows of an engine, model and thread count open together and visited in turn for ${rounds} rounds (ABC, CBA, …; one call of each kind per visit, after a warm-up call). `
  + 'A figure is the median over the rounds, in brackets the interquartile range of the rounds. "vs onnxruntime-web": its figure over this row\'s in the same round, engine, model and thread count (above 1× is faster), summarised the same way. '
  + '**Timed by**: one-thread rows in Chromium by the page\'s main-thread CPU time (DevTools ThreadTime; every runtime runs its one-thread work on that thread, checked: a row whose CPU time were under a fifth of its wall time would say so), their wall time in the column beside; '
  + 'N-thread rows and Firefox/WebKit rows by wall time, which other processes on this machine inflate (compare ratios, not absolute figures). '
  + `Same random-weight ${quick ? 'small committed fixtures (tests/fixtures/models)' : 'full-size models'} for all: ` + 'our module loads the train-time checkpoint; onnxruntime-web runs ONNX (opset 17) and LiteRT.js .tflite (litert-torch 0.10; int32 token ids, end-of-text found by an argmax over the ids as float32), both exported from the reference\'s re-parameterised model by `benches/export.py`; LiteRT\'s models have a static batch (a batch-8 image model is exported for the gallery column). '
  + `Parity: max |Δ| of the L2-normalised embeddings of the fixture's reference inputs (3 images, 4 texts) against the reference; above ${TOL} the row is marked invalid. `
  + 'The wasm column names the WebAssembly files each runtime chose in that engine (ours: cpu-relaxed/ is the relaxed-SIMD build, fused multiply-adds in the kernels; cpu-mt* the threaded one). '
  + 'Where a runtime ran fewer threads than asked, its threads column says so and why: WebKitGTK cannot post shared WebAssembly memory to a worker (its SharedArrayBuffer is off), so our module and onnxruntime-web run one thread there, and LiteRT.js\'s threads need relaxed SIMD, which WebKitGTK lacks. '
  + `PyTorch runs natively (not in the browser), for scale. ${gpuNote}\n\n${table}`;

// a quick run (CI) writes its own file: its figures are not BENCHMARKS.md's
await writeSection(join(root, quick ? 'target/bench-quick.md' : 'BENCHMARKS.md'), section);
console.log(section);
if (invalid) console.log(`${invalid} row(s) failed parity`);
process.exit(0);
