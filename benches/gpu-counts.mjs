// WebGPU work per call, this package vs onnxruntime-web's WebGPU EP, in headless Chromium
// (SwiftShader on machines without a GPU): compute passes, dispatches, submits, buffers created,
// read-backs, pipelines compiled, for one image and one text embedding after a warm-up call
// (benches/gpu-counts.html counts them by wrapping the WebGPU API). Writes the "## WebGPU work
// per call" section of BENCHMARKS.md. Run by tools/bench.sh on the folders it exported
// (benches/export.py: image.onnx and text.onnx next to the checkpoint):
//   node benches/gpu-counts.mjs [--write] DIR...   (fixture folders under the repo root; --write:
//                                                   into BENCHMARKS.md, else printed only)
//   MOBILECLIP_COUNT_ENGINES  comma-separated, of ours,ort (default both)
//   MOBILECLIP_COUNT_PKG      our package's folder under the repo root (default pkg), e.g. an
//                             older build to compare with
// The counts do not depend on the adapter's speed, but can on its features (subgroups,
// shader-f16): the section names the adapter.
import { executablePath, launch } from '../tests/browser/chromium.mjs';
import { serve } from '../tests/browser/server.mjs';
import { writeSection } from './section.mjs';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const args = process.argv.slice(2);
const dirs = args.filter((a) => !a.startsWith('--')).map((d) => resolve(d));
if (dirs.length === 0) throw new Error('usage: node benches/gpu-counts.mjs [--write] DIR...');

const engines = (process.env.MOBILECLIP_COUNT_ENGINES ?? 'ours,ort').split(',');
const pkg = process.env.MOBILECLIP_COUNT_PKG ?? 'pkg';

const server = await serve(root);
const profile = await mkdtemp(join(tmpdir(), 'mobileclip-counts-'));
const browser = await launch(profile, { args: ['--enable-unsafe-webgpu'] });
const results = [];
let adapter = '';
try {
  for (const dir of dirs) {
    const model = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')).name;
    for (const engine of engines) {
      if (engine === 'ort' && !existsSync(join(dir, 'image.onnx'))) throw new Error(`${dir}: no image.onnx (benches/export.py)`);
      const file = existsSync(join(dir, 'model.pt')) ? 'model.pt' : 'model.safetensors';
      const page = await browser.newPage();
      try {
        await page.goto(`${server.url}/benches/gpu-counts.html?engine=${engine}&dir=/${relative(root, dir)}&file=${file}&pkg=/${pkg}`);
        await page.waitForFunction(() => window.__counts, null, { timeout: 1_800_000 });
        const r = await page.evaluate(() => window.__counts);
        adapter ||= await page.evaluate(async () => {
          const a = await navigator.gpu.requestAdapter();
          return `${a.info.vendor} ${a.info.architecture}${a.info.isFallbackAdapter ? ', a software fallback adapter' : ''}`;
        });
        if (r.error) throw new Error(`${engine} ${model}: ${r.error}`);
        console.log(model, engine, JSON.stringify(r));
        results.push({ model, ...r });
      } finally {
        await page.close();
      }
    }
  }
} finally {
  await browser.close();
  server.server.close();
  await rm(profile, { recursive: true, force: true });
}

const KEYS = ['computePasses', 'dispatches', 'submits', 'buffers', 'mapAsync', 'pipelines', 'writeBuffers', 'bindGroups'];
const NAMES = { ours: 'mobileclip-wasm', ort: 'onnxruntime-web 1.30 (WebGPU EP)' };
let rows = '';
for (const r of results) {
  for (const call of ['image', 'text']) {
    const w = r[call];
    const ort = results.find((o) => o.model === r.model && o.engine === 'ort')?.[call];
    const stable = KEYS.every((k) => w[k] === r[`${call}_again`][k]);
    const vs = r.engine === 'ours' && ort ? ` (${(w.dispatches / ort.dispatches).toFixed(2)}×)` : '';
    rows += `| ${r.model} | ${call} | ${NAMES[r.engine]} | ${KEYS.map((k) => (k === 'dispatches' ? `${w[k]}${vs}` : w[k])).join(' | ')} | ${r[`${call}_max_diff`].toExponential(1)}${stable ? '' : ' (counts differ between two calls)'} |\n`;
  }
}
// Dispatches per kernel family: the pipeline's label (cubecl: the kernel's entry point, named after
// the kernel plus its type parameters and a hash of its variant; onnxruntime-web: its program's
// name) without the type parameters and the hash.
const family = (name) => name.replace(/_[0-9a-f]{8}$/, '').replace(/_(e|t|c|f|lhs|in)_f(16|32)(_.*)?$/, '');
let kinds = '';
for (const r of results) {
  for (const call of ['image', 'text']) {
    const by = {};
    for (const [k, n] of Object.entries(r[call].kernels)) by[family(k)] = (by[family(k)] ?? 0) + n;
    const list = Object.entries(by).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
    kinds += `| ${r.model} | ${call} | ${NAMES[r.engine]} | ${list} |\n`;
  }
}
const version = execFileSync(executablePath, ['--version']).toString().trim().replace(/^Chromium\s*/, '');
const section = '## WebGPU work per call\n\n'
  + `Counted by \`benches/gpu-counts.mjs\` (run by \`tools/bench.sh\`) in Debian's headless Chromium ${version}, adapter "${adapter}", `
  + 'by wrapping the WebGPU API\'s prototypes (tests/browser/gpu-counter.mjs): one call after a warm-up call, batch 1, both runtimes given the same '
  + 'preprocessed image and 77 token ids (the fixture\'s first reference inputs); our module loads the train-time checkpoint, onnxruntime-web runs '
  + 'the re-parameterised reference exported to ONNX by `benches/export.py`. In brackets: our dispatches over onnxruntime-web\'s. '
  + 'A browser pays roughly 25–70 µs per dispatch on a real GPU, so dispatches bound what a call can cost there; a mid-call read-back '
  + '(mapAsync) or per-call buffer creation costs more. The counts do not depend on the adapter\'s speed, but can on its features '
  + '(subgroups, shader-f16). max |Δ|: of the L2-normalised embeddings from the reference\'s. `tests/browser/webgpu.mjs` guards our counts '
  + 'on the small fixtures.\n\n'
  + '| model | call | runtime | compute passes | dispatches | submits | buffers created | read-backs (mapAsync) | pipelines compiled | writeBuffer | bind groups | max \\|Δ\\| |\n'
  + `|---|---|---|---|---|---|---|---|---|---|---|---|\n${rows}`
  + '\nThe same dispatches by kernel (the label of the pipeline each was recorded with, without its type parameters and variant hash; '
  + 'ours: cubecl\'s kernels, elemwise_fuse being burn\'s fused element-wise chains, kernel_binop a lone unfused binary operation, layer_norm_kernel, attention_kernel, linear_kernel and linear_add_kernel this crate\'s own (src/model/gpu/fused.rs)):\n\n'
  + `| model | call | runtime | dispatches by kernel |\n|---|---|---|---|\n${kinds}`;
if (args.includes('--write')) await writeSection(join(root, 'BENCHMARKS.md'), section);
console.log(section);
