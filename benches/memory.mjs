// Peak wasm memory of a streamed load, in headless Chromium (CPU module, one thread): for each
// model, its published checkpoint, and with --compact its f16 and int8 compact files too
// (`mobileclip convert --dtype f16|int8`, written to target/memory-bench and deleted after), each
// loaded by URL in a fresh page. The
// wasm memory only grows, so its size after the load is the load's high-water mark; the model
// holds its parameters' bytes (`parameterBytes`, f32 whatever the file stored). The bound
// (issue 10): peak <= parameters + 15 %. Writes the "## Load memory" section of BENCHMARKS.md.
// Run through tools/bench.sh, or:
//   node benches/memory.mjs [--compact] [fixtures dir]   (default $MOBILECLIP_FULL_FIXTURES, else target/bench-fixtures;
//                                             needs pkg/, and target/release/mobileclip for --compact)
//   MOBILECLIP_MEMORY_MODELS   comma-separated models (default MobileCLIP-S0,MobileCLIP-B,MobileCLIP2-L-14;
//                              those without a fixture are skipped, and said so)
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch } from '../tests/browser/chromium.mjs';
import { serve } from '../tests/browser/server.mjs';
import { writeSection } from './section.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const args = process.argv.slice(2);
const withCompact = args.includes('--compact');
const fixtures = args.find((a) => a !== '--compact') ?? process.env.MOBILECLIP_FULL_FIXTURES ?? join(root, 'target/bench-fixtures');
const models = (process.env.MOBILECLIP_MEMORY_MODELS ?? 'MobileCLIP-S0,MobileCLIP-B,MobileCLIP2-L-14').split(',').filter(Boolean);
const cli = join(root, 'target/release/mobileclip');
const scratch = join(root, 'target/memory-bench');
const mb = (b) => (b / 1e6).toFixed(1);

const server = await serve(root);
const cors = { 'access-control-allow-origin': '*' };
const files = await serve(fixtures, cors);
const compacts = await serve(join(root, 'target'), cors);
const profile = await mkdtemp(join(tmpdir(), 'mobileclip-memory-'));
const browser = await launch(profile);
const rows = [];
const skipped = [];
let over = 0;
try {
  await mkdir(scratch, { recursive: true });
  for (const model of models) {
    const dir = join(fixtures, model);
    if (!existsSync(join(dir, 'config.json'))) { skipped.push(model); continue; }
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    const published = existsSync(join(dir, 'model.pt')) && config.family !== 'open_clip' ? 'model.pt' : 'model.safetensors';
    const compactDtypes = withCompact ? ['f16', 'int8'] : [];
    const compact = (dtype) => join(scratch, `${model}.${dtype}.safetensors`);
    const loads = [[published, `${files.url}/${model}/${published}`, model, statSync(join(dir, published)).size]];
    for (const dtype of compactDtypes) {
      execFileSync(cli, ['convert', '--model', model, '--weights', join(dir, published), '--dtype', dtype, '-o', compact(dtype)], { stdio: 'inherit' });
      loads.push([`${dtype} compact`, `${compacts.url}/memory-bench/${model}.${dtype}.safetensors`, null, statSync(compact(dtype)).size]);
    }
    try {
      for (const [what, url, name, size] of loads) {
        const page = await browser.newPage();
        try {
          await page.goto(`${server.url}/benches/memory.html`);
          await page.waitForFunction(() => window.__ready);
          const r = await page.evaluate(([u, m]) => window.bench.load(u, m), [url, name]);
          const ratio = r.memory / r.parameters;
          if (ratio > 1.15) over++;
          rows.push({ model, what, size, ...r, ratio });
          console.log(model, what, JSON.stringify({ size, ...r, ratio }));
        } finally {
          await page.close();
        }
      }
    } finally {
      for (const dtype of compactDtypes) await rm(compact(dtype), { force: true });
    }
  }
} finally {
  await browser.close();
  server.server.close();
  files.server.close();
  compacts.server.close();
  await rm(profile, { recursive: true, force: true });
  await rm(scratch, { recursive: true, force: true });
}

const table = rows.map((r) => `| ${r.model} | ${r.what} | ${mb(r.size)} | ${mb(r.parameters)} | ${mb(r.streamedPeak)} | ${mb(r.memory)} | ${(100 * (r.ratio - 1)).toFixed(1)} % | ${r.seconds.toFixed(1)} |`).join('\n');
const section = '## Load memory (streamed loads, peak wasm memory)\n\n'
  + 'Headless Chromium, CPU module, one thread; `node benches/memory.mjs` (tools/bench.sh). Each file is loaded by URL in a fresh page: '
  + 'the download streams into wasm tensor by tensor (`WeightsReader`), floats converted to f32 as they arrive, and each tensor\'s values are handed to the model (folded first, for a '
  + 'published checkpoint\'s train-time branches) without the file ever being whole in wasm memory. The wasm memory only grows, so its size after the load is the load\'s peak '
  + '(module, tokenizer and allocator slack included); "during download" is the largest size seen at a download chunk. The model holds its parameters as f32 whatever the file stored. '
  + 'Bound (issue 10): peak <= parameters + 15 %. Random-weight full-size fixtures (tools/gen_fixtures.py --full).\n\n'
  + '| model | file | file MB | parameters MB | peak during download MB | peak MB | over parameters | load s |\n|---|---|---|---|---|---|---|---|\n'
  + `${table}\n`
  + (skipped.length ? `\nNot measured here (no fixture in ${fixtures}): ${skipped.join(', ')}.\n` : '');
await writeSection(join(root, 'BENCHMARKS.md'), section);
console.log(section);
if (over) console.warn(`${over} load(s) above parameters + 15 %`);
