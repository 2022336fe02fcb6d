// Side-by-side benchmark: mobileclip-wasm against onnxruntime-web and LiteRT.js in one headless
// Chromium run, on the same random-weight models (ONNX and .tflite exported from the reference by
// benches/export.py), plus PyTorch eager natively (benches/torch_eager.py). Writes the
// "## Side by side" section of BENCHMARKS.md. Run through tools/bench.sh.
//   node benches/compare.mjs [--quick] DIR...   (fixture folders under the repo root)
// Every row is a fresh page on a cross-origin-isolated origin (onnxruntime-web fixes its thread
// count when its first session starts). The rows of a model are measured in rounds, each round
// visiting every row once, so that the ratios compare figures taken minutes apart at most; a
// figure is the median of the rounds, its range the rounds' min–max.
import { launch, executablePath } from '../tests/browser/chromium.mjs';
import { serve } from '../tests/browser/server.mjs';
import { ISOLATION_HEADERS } from '../tools/serve.mjs';
import { writeSection } from './section.mjs';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const dirs = args.filter((a) => !a.startsWith('--')).map((d) => resolve(d));
const iters = Number(process.env.MOBILECLIP_BENCH_ITERS ?? (quick ? 2 : 5));
const rounds = Number(process.env.MOBILECLIP_BENCH_ROUNDS ?? (quick ? 1 : 3));
const maxThreads = Number(process.env.MOBILECLIP_BENCH_THREADS ?? Math.min(availableParallelism(), 8));
const threadCounts = [...new Set([1, maxThreads])];
const TOL = 1e-4;
const py = process.env.MOBILECLIP_BENCH_PYTHON;

const server = await serve(root, ISOLATION_HEADERS);
const profile = await mkdtemp(join(tmpdir(), 'mobileclip-compare-'));
const browser = await launch(profile, { args: ['--enable-unsafe-webgpu'] });

/** One row's figures in a fresh page. */
async function measure(dir, runtime, threads, backend = 'cpu') {
  const page = await browser.newPage();
  try {
    const url = `${server.url}/benches/compare.html?runtime=${runtime}&threads=${threads}&backend=${backend}&iters=${iters}&dir=/${relative(root, dir)}&file=${existsSync(join(dir, 'model.pt')) ? 'model.pt' : 'model.safetensors'}`;
    await page.goto(url);
    await page.waitForFunction(() => window.__bench, null, { timeout: 900_000 });
    return await page.evaluate(() => window.__bench);
  } finally {
    await page.close();
  }
}

/** The WebGPU adapter headless Chromium offers: `{ name, fallback }` or null. */
async function adapter() {
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

const gpu = await adapter();
const RUNTIMES = [['ours', 'mobileclip-wasm'], ['ort', 'onnxruntime-web 1.30 (wasm)'], ['litert', 'LiteRT.js 2.5 (wasm, XNNPACK)']];
const results = {}; // model -> row key -> [per-round figures]
const add = (model, key, r) => { ((results[model] ??= {})[key] ??= []).push(r); };

try {
  for (const dir of dirs) {
    const model = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')).name;
    for (let round = 0; round < rounds; round++) {
      for (const threads of threadCounts) {
        for (const [runtime, label] of RUNTIMES) {
          const r = await measure(dir, runtime, threads);
          console.log(`${model} round ${round + 1}: ${label}, ${threads} thread(s):`, JSON.stringify(r));
          add(model, `${runtime}/${threads}`, r);
        }
      }
      if (gpu && !gpu.fallback) add(model, 'ours/webgpu', await measure(dir, 'ours', 1, 'webgpu'));
      if (py) { // PyTorch eager, natively, in the same round
        const run = spawnSync(py, [join(root, 'benches/torch_eager.py'), dir, '--threads', threadCounts.join(','), '--iters', String(iters)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
        if (run.status !== 0) throw new Error(`benches/torch_eager.py failed (${run.status})`);
        for (const line of run.stdout.trim().split('\n')) {
          const r = JSON.parse(line);
          console.log(`${model} round ${round + 1}: PyTorch, ${r.threads} thread(s):`, line);
          add(model, `torch/${r.threads}`, r);
        }
      }
    }
  }
} finally {
  await browser.close();
  server.server.close();
  await rm(profile, { recursive: true, force: true });
}

// ---- the section ----
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const span = (xs, f) => {
  const v = xs.filter(Number.isFinite);
  if (!v.length) return '–';
  const lo = Math.min(...v), hi = Math.max(...v);
  return v.length > 1 && f(lo) !== f(hi) ? `${f(med(v))} (${f(lo)}–${f(hi)})` : f(med(v));
};
const ms = (x) => x.toFixed(0);
const perSec = (x) => x.toFixed(1);
const times = (x) => `${x.toFixed(2)}×`;
let table = '| model | runtime | threads | image, batch 1 (ms) | vs onnxruntime-web | images/s, batch 8 | vs onnxruntime-web | text, batch 1 (ms) | vs onnxruntime-web | parity (max \\|Δ\\| image / text) |\n|---|---|---|---|---|---|---|---|---|---|\n';
const labels = { ours: 'mobileclip-wasm (CPU)', ort: 'onnxruntime-web 1.30 (wasm)', litert: 'LiteRT.js 2.5.3 (wasm, XNNPACK)', torch: 'PyTorch eager (native)' };
let invalid = 0;
for (const [model, rows] of Object.entries(results)) {
  for (const key of Object.keys(rows).sort((a, b) => a.split('/')[1].localeCompare(b.split('/')[1]) || Object.keys(labels).indexOf(a.split('/')[0]) - Object.keys(labels).indexOf(b.split('/')[0]))) {
    const [runtime, threads] = key.split('/');
    const rs = rows[key];
    const err = rs.find((r) => r.error)?.error;
    const name = threads === 'webgpu' ? `mobileclip-wasm (WebGPU, ${gpu.name})` : labels[runtime];
    if (err) { table += `| ${model} | ${name} | ${threads} | error: ${err.replaceAll('|', '/')} | | | | | | invalid |\n`; invalid++; continue; }
    const ort = rows[`ort/${threads}`] ?? [];
    // per round: our time / theirs (ORT of the same round and thread count); > 1 means faster than ORT
    const ratio = (k, inverse) => rs.map((r, i) => ort[i] && !ort[i].error ? (inverse ? r[k] / ort[i][k] : ort[i][k] / r[k]) : NaN);
    const dmax = Math.max(...rs.map((r) => Math.max(r.image_max_diff, r.text_max_diff)));
    const ok = dmax <= TOL;
    if (!ok) invalid++;
    const parity = `${ok ? '' : '**invalid**: '}${Math.max(...rs.map((r) => r.image_max_diff)).toExponential(1)} / ${Math.max(...rs.map((r) => r.text_max_diff)).toExponential(1)}`;
    table += `| ${model} | ${name} | ${threads === 'webgpu' ? '–' : threads} | ${span(rs.map((r) => r.image_ms), ms)} | ${span(ratio('image_ms'), times)} | ${span(rs.map((r) => 8000 / r.image8_ms), perSec)} | ${span(ratio('image8_ms'), times)} | ${span(rs.map((r) => r.text_ms), ms)} | ${span(ratio('text_ms'), times)} | ${parity} |\n`;
  }
}

const version = execFileSync(executablePath, ['--version']).toString().trim().replace(/^Chromium\s*/, '');
const cpu = (await readFile('/proc/cpuinfo', 'utf8').catch(() => '')).match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown CPU';
const gpuNote = !gpu ? 'No WebGPU adapter here: no WebGPU row.'
  : gpu.fallback ? `The only WebGPU adapter here is a software fallback (${gpu.name}, a CPU emulation of a GPU): no WebGPU row (the "## Browser" section times it, as a correctness path).`
    : `WebGPU row on ${gpu.name}.`;
const section = `## Side by side${quick ? ' (quick run: figures not comparable with a full run)' : ''}\n\n`
  + `Measured by \`tools/bench.sh${quick ? ' --quick' : ''}\` in one run: Debian's headless Chromium ${version} on ${cpu} (${availableParallelism()} cores), `
  + `cross-origin-isolated pages, one fresh page per row; ${rounds} round(s) visiting every row, ${iters} iterations per figure (median after one warm-up); `
  + 'a figure is the median of the rounds (their range in brackets). "vs onnxruntime-web": its time over this row\'s, same model, thread count and round (above 1× is faster). '
  + `Same random-weight ${quick ? 'small committed fixtures (tests/fixtures/models)' : 'full-size models'} for all: ` + 'our module loads the train-time checkpoint; onnxruntime-web runs ONNX (opset 17) and LiteRT.js .tflite (litert-torch 0.10; int32 token ids, end-of-text found by an argmax over the ids as float32), both exported from the reference\'s re-parameterised model by `benches/export.py`; LiteRT\'s models have a static batch (a batch-8 image model is exported for the gallery column). '
  + `Parity: max |Δ| of the L2-normalised embeddings of the fixture's reference inputs (3 images, 4 texts) against the reference; above ${TOL} the row is marked invalid. `
  + `LiteRT.js and mobileclip-wasm run relaxed SIMD (our relaxed-SIMD build: fused multiply-adds in the kernels), onnxruntime-web plain SIMD128. PyTorch runs natively (not in the browser), for scale. ${gpuNote}\n\n${table}`;

// a quick run (CI) writes its own file: its figures are not BENCHMARKS.md's
await writeSection(join(root, quick ? 'target/bench-quick.md' : 'BENCHMARKS.md'), section);
console.log(section);
if (invalid) console.log(`${invalid} row(s) failed parity or did not run`);
process.exit(0);
