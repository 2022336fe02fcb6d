// Cold start from the Cache API to the first image embedding, in headless Chromium: the demo's
// return visit. The checkpoint is converted once in the page (MobileClipWorker.convert) to an
// image-only compact file, f32 and `auto`, and kept in the Cache API with the checkpoint; then each
// round opens a fresh page per file (a new wasm instance) and times, on the main thread, the
// package's import and CPU-module instantiation, reading the file from the cache, `MobileClip.load`
// (hash, copy into wasm memory, parse, dequantise, build the modules) and the first 640×480 image
// embedding. Beside wall time, the main thread's CPU time (CDP Performance.getMetrics ThreadTime),
// which the machine's load inflates less. Interleaved rounds, medians.
//   node benches/cold-start.mjs [--write] [model dir]   default target/bench-fixtures/MobileCLIP-S0
//   MOBILECLIP_BENCH_ROUNDS (default 5). --write puts the "## Cold start" section in BENCHMARKS.md.
// Needs: pkg/ (tools/build-wasm.sh), the fixture (tools/gen_fixtures.py --full), /usr/bin/chromium.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch } from '../tests/browser/chromium.mjs';
import { serve } from '../tests/browser/server.mjs';
import { writeSection } from './section.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const args = process.argv.slice(2);
const write = args.includes('--write');
const dir = resolve(args.find((a) => !a.startsWith('--')) ?? join(root, 'target/bench-fixtures/MobileCLIP-S0'));
const rounds = Number(process.env.MOBILECLIP_BENCH_ROUNDS ?? 5);
const file = ['model.pt', 'model.safetensors'].find((f) => existsSync(join(dir, f)));
if (!file || !dir.startsWith(root)) throw new Error(`${dir} holds no checkpoint under ${root} (tools/gen_fixtures.py --full)`);
const model = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')).name;
const checkpoint = `/${relative(root, join(dir, file))}`;

const server = await serve(root);
const profile = await mkdtemp(join(tmpdir(), 'mobileclip-cold-'));
const browser = await launch(profile);
const url = `${server.url}/benches/cold-start.html`;
const KEYS = ['checkpoint', 'image-f32', 'image-auto'];
const COLD = ['init', 'read', 'load', 'embed']; // the cold start; `second`: a warm image after it
const PHASES = [...COLD, 'second'];
const runs = Object.fromEntries(KEYS.map((k) => [k, []]));
let prepared, version;
const loadavg = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
try {
  const page = await browser.newPage();
  await page.goto(url);
  await page.waitForFunction(() => window.__ready);
  version = await page.evaluate(() => /Chrome\/[\d.]+/.exec(navigator.userAgent)?.[0] ?? navigator.userAgent);
  prepared = await page.evaluate(([m, c]) => window.__prepare(m, c), [model, checkpoint]);
  await page.close();
  console.log('prepared', prepared);
  for (let r = 0; r < rounds; r++) {
    for (const key of KEYS) {
      const p = await browser.newPage();
      await p.goto(url);
      await p.waitForFunction(() => window.__ready);
      const cdp = await p.context().newCDPSession(p);
      await cdp.send('Performance.enable');
      const cpu = async () => (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'ThreadTime').value * 1000;
      const res = {};
      for (const phase of PHASES) {
        const before = await cpu();
        res[`${phase}_ms`] = await p.evaluate(([ph, k, m]) => window.__phase[ph](k, m), [phase, key, model]);
        res[`${phase}_cpu`] = (await cpu()) - before;
      }
      Object.assign(res, await p.evaluate(() => window.__phase.info()));
      for (const unit of ['ms', 'cpu']) res[`total_${unit}`] = COLD.reduce((sum, ph) => sum + res[`${ph}_${unit}`], 0);
      await p.close();
      runs[key].push(res);
      console.log(key, Object.entries(res).map(([k, v]) => `${k} ${typeof v === 'number' ? v.toFixed(0) : v}`).join(', '));
    }
  }
} finally {
  await browser.close();
  server.server.close();
  await rm(profile, { recursive: true, force: true });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mb = (n) => `${(n / 1e6).toFixed(2)} MB`;
const NAMES = { checkpoint: `published checkpoint (${file}, both towers)`, 'image-f32': 'compact image tower, f32', 'image-auto': 'compact image tower, `auto`' };
const rows = KEYS.map((k) => {
  const m = (f) => median(runs[k].map((r) => r[f])).toFixed(0);
  const cell = (ph) => `${m(`${ph}_ms`)} / ${m(`${ph}_cpu`)}`;
  return `| ${NAMES[k]} | ${mb(runs[k][0].bytes)} | ${COLD.map(cell).join(' | ')} | **${m('total_ms')}** / **${m('total_cpu')}** | ${cell('second')} |`;
}).join('\n');
const share = () => {
  const cpu = (ph) => median(runs['image-auto'].map((r) => r[`${ph}_cpu`]));
  const total = COLD.reduce((sum, ph) => sum + cpu(ph), 0);
  return COLD.map((ph) => `${ph} ${((100 * cpu(ph)) / total).toFixed(0)} %`).join(', ') + ` of ${total.toFixed(0)} ms`;
};
const ratio = (a, b) => (median(runs[a].map((r) => r.total_ms)) / median(runs[b].map((r) => r.total_ms))).toFixed(2);
const section = `## Cold start (Cache API to the first image embedding)\n\n`
  + `\`node benches/cold-start.mjs --write\` (run by tools/bench.sh): ${model} (random full-size weights), headless Chromium (${version}), one page per start (a new wasm instance; the package's files come from the HTTP cache, as on a return visit), `
  + `the single-threaded CPU module on the main thread, ${rounds} interleaved rounds, medians; load average at the start ${loadavg}. `
  + `Phases: init = importing the package and instantiating its CPU module; read = the file's Blob from the Cache API; load = \`MobileClip.load\` of that Blob, as the demo does (read into memory, sha256, copy into wasm memory, parse, dequantise, build the modules); embed = the first 640×480 image (ImageData made beforehand). `
  + `Each cell: wall ms / the main thread's CPU ms (CDP Performance.getMetrics ThreadTime, read between phases), the latter less sensitive to the machine's load; the sha256 (WebCrypto) and the cache read run partly off the main thread. `
  + `The compact files were converted once in the page (\`MobileClipWorker.convert\`, image tower: f32 ${(prepared.convert_f32_ms / 1000).toFixed(1)} s, auto ${(prepared.convert_auto_ms / 1000).toFixed(1)} s).\n\n`
  + `| weights | size | init | read | load | first embedding | total | (a second image) |\n|---|---|---|---|---|---|---|---|\n${rows}\n\n`
  + `Ratio of total wall time, checkpoint / compact auto: ${ratio('checkpoint', 'image-auto')}×; compact f32 / compact auto: ${ratio('image-f32', 'image-auto')}× (the checkpoint row loads both towers, as a page using it must). `
  + `Where the compact auto start's main-thread CPU goes: ${share()}. Target: ≤ 1000 ms for the compact auto image tower; wall time is the figure a user sees, CPU time what this machine's load leaves comparable.\n`;
console.log(section);
if (write) await writeSection(join(root, 'BENCHMARKS.md'), section);
