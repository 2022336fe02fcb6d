// Conversion (`MobileClip.convert`) in headless Chromium next to the CLI's, in one run: for each
// model and each dtype x towers asked, the CLI's `mobileclip convert` (wall time), the conversion
// in a worker (`MobileClipWorker.convert`, wall time in the page) and on the page's thread (its
// peak wasm memory: the memory only grows, so its size after the conversion is the peak), each
// in a fresh page, the checkpoint fetched by URL and streamed into wasm. The three outputs must
// be the same bytes. Writes the "## Conversion" section of BENCHMARKS.md.
//   node benches/convert.mjs [fixtures dir]   (default $MOBILECLIP_FULL_FIXTURES, else target/bench-fixtures;
//                                             needs pkg/ and target/release/mobileclip)
//   MOBILECLIP_CONVERT_MODELS  comma-separated models (default MobileCLIP-S0)
//   MOBILECLIP_CONVERT_RUNS    comma-separated dtype:towers (default f16:image,f16:both,auto:image,auto:both)
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { launch } from '../tests/browser/chromium.mjs';
import { serve } from '../tests/browser/server.mjs';
import { writeSection } from './section.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const fixtures = process.argv[2] ?? process.env.MOBILECLIP_FULL_FIXTURES ?? join(root, 'target/bench-fixtures');
const models = (process.env.MOBILECLIP_CONVERT_MODELS ?? 'MobileCLIP-S0').split(',').filter(Boolean);
const runs = (process.env.MOBILECLIP_CONVERT_RUNS ?? 'f16:image,f16:both,auto:image,auto:both').split(',').map((r) => r.split(':'));
const cli = join(root, 'target/release/mobileclip');
const mb = (b) => (b / 1e6).toFixed(1);
const sha = (b) => createHash('sha256').update(b).digest('hex');

const server = await serve(root);
const files = await serve(fixtures, { 'access-control-allow-origin': '*' });
const profile = await mkdtemp(join(tmpdir(), 'mobileclip-convert-'));
const browser = await launch(profile);
const rows = [];
let differ = 0;
try {
  for (const model of models) {
    const dir = join(fixtures, model);
    if (!existsSync(join(dir, 'config.json'))) { console.warn(`no fixture for ${model} in ${fixtures}`); continue; }
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    const published = existsSync(join(dir, 'model.pt')) && config.family !== 'open_clip' ? 'model.pt' : 'model.safetensors';
    const size = statSync(join(dir, published)).size;
    const url = `${files.url}/${model}/${published}`;
    for (const [dtype, towers] of runs) {
      const out = join(profile, 'cli.safetensors');
      let t0 = performance.now();
      execFileSync(cli, ['convert', '--model', model, '--weights', join(dir, published), '--dtype', dtype, '--towers', towers, '-o', out]);
      const cliSeconds = (performance.now() - t0) / 1000;
      const cliSha = sha(await readFile(out));
      const inPage = async (step) => {
        const page = await browser.newPage();
        try {
          await page.goto(`${server.url}/benches/memory.html`);
          await page.waitForFunction(() => window.__ready);
          return await page.evaluate(async ([s, u, m, d, t]) => {
            const r = await window.bench[s](u, m, d, t);
            return r;
          }, [step, url, model, dtype, towers]);
        } finally {
          await page.close();
        }
      };
      const worker = await inPage('convertWorker');
      const main = await inPage('convert');
      // The page hands back only sizes; the bytes are compared through the CLI's file size and, for
      // identity, the conversion tests (tests/browser, tests/js) assert byte equality.
      if (worker.size !== statSync(out).size || main.size !== statSync(out).size) differ++;
      const row = { model, dtype, towers, size, out: statSync(out).size, cli: cliSeconds, worker: worker.seconds, main: main.seconds, memory: main.memory };
      rows.push(row);
      console.log(JSON.stringify({ ...row, cliSha }));
      await rm(out, { force: true });
    }
  }
} finally {
  await browser.close();
  server.server.close();
  files.server.close();
  await rm(profile, { recursive: true, force: true });
}

const table = rows.map((r) => `| ${r.model} | ${r.dtype} | ${r.towers} | ${mb(r.size)} | ${mb(r.out)} | ${r.cli.toFixed(1)} | ${r.worker.toFixed(1)} | ${r.main.toFixed(1)} | ${mb(r.memory)} | ${(r.memory / r.size).toFixed(2)} |`).join('\n');
const section = '## Conversion (MobileClip.convert in the browser, mobileclip convert)\n\n'
  + 'One run of `node benches/convert.mjs` (tools/bench.sh): for each dtype x towers, the CLI\'s `mobileclip convert` of the checkpoint file, then in headless Chromium (CPU module) '
  + '`MobileClipWorker.convert` (a worker of its own) and `MobileClip.convert` on the page\'s thread, each in a fresh page, the checkpoint fetched by URL and streamed into wasm tensor by tensor. '
  + 'Times are wall-clock seconds (the machine is shared: compare within a row). Peak = the page\'s wasm memory after its conversion (it only grows; module and allocator slack included). '
  + 'Random-weight full-size fixtures (tools/gen_fixtures.py --full).\n\n'
  + '| model | dtype | towers | checkpoint MB | file MB | CLI s | worker s | page s | page peak wasm MB | peak / checkpoint |\n|---|---|---|---|---|---|---|---|---|---|\n'
  + `${table}\n`;
await writeSection(join(root, 'BENCHMARKS.md'), section);
console.log(section);
if (differ) { console.error(`${differ} conversion(s) in the browser differ in size from the CLI's`); process.exitCode = 1; }
