// Batch sizes in headless Chromium (CPU module) on a full-size random-weight MobileCLIP-S0: CPU time
// per item and wasm memory of one forward pass of B texts and of B 640×480 images, for each B
// (several rounds, median); then N labels (default 10,000) through labelEmbeddings and the wasm
// memory they leave. Times are the page's main-thread CPU time (DevTools' ThreadTime), which the
// other work on this shared machine barely moves, unlike wall-clock time. Writes the
// "## Batch sizes" section of BENCHMARKS.md (src/lib.rs `BatchSize`'s defaults come from it).
// Run through tools/bench.sh, or: node benches/batch.mjs [--quick] [labels]  (needs pkg/,
// target/bench-fixtures). --quick (CI, through `tools/bench.sh --quick`, so that this cannot rot):
// batches 1 and 2, one round, 100 labels, written to target/bench-quick.md, not BENCHMARKS.md.
import { launch } from '../tests/browser/chromium.mjs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '../tests/browser/server.mjs';
import { writeSection } from './section.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const [dir, file] = ['/target/bench-fixtures/MobileCLIP-S0', 'model.pt'];
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const labels = Number(args.find((a) => a !== '--quick') ?? (quick ? 100 : 10_000));
const rounds = Number(process.env.MOBILECLIP_BENCH_ITERS ?? (quick ? 1 : 3));
const list = (v, d) => (v ? v.split(',').filter(Boolean).map(Number) : d);
const TEXTS = list(process.env.MOBILECLIP_BENCH_TEXTS, quick ? [1, 2] : [1, 2, 4, 8, 16, 32, 64]);
const IMAGES = list(process.env.MOBILECLIP_BENCH_IMAGES, quick ? [1, 2] : [1, 2, 4, 8, 16]);
const server = await serve(root);
const profile = await mkdtemp(join(tmpdir(), 'mobileclip-bench-'));
const browser = await launch(profile);
const mib = (b) => b / 2 ** 20;

/** A fresh page (a fresh wasm memory) and `run(step, ...args)` → `{ value, cpuMs, wallMs }`. */
async function page() {
  const p = await browser.newPage();
  await p.goto(`${server.url}/benches/batch.html`);
  await p.waitForFunction(() => window.__ready);
  const cdp = await p.context().newCDPSession(p);
  await cdp.send('Performance.enable');
  const thread = async () => (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'ThreadTime').value * 1000;
  const run = async (step, ...args) => {
    const [c0, w0] = [await thread(), performance.now()];
    const value = await p.evaluate(([s, a]) => window.bench[s](...a), [step, args]);
    return { value, cpuMs: (await thread()) - c0, wallMs: performance.now() - w0 };
  };
  return { p, run };
}

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
let sizes, many;
try {
  const { p, run } = await page();
  const { memory: loaded, ...defaults } = (await run('sizes', dir, file)).value;
  const time = async (step, b) => {
    await run(step, b); // warm-up
    const cpu = [], wall = [];
    let memory = 0;
    for (let r = 0; r < rounds; r++) {
      const { value, cpuMs, wallMs } = await run(step, b);
      cpu.push(cpuMs / b);
      wall.push(wallMs / b);
      memory = value;
    }
    const row = { batch: b, cpu: median(cpu), wall: median(wall), memory: mib(memory - loaded) };
    console.log(step, JSON.stringify(row));
    return row;
  };
  sizes = { loaded: mib(loaded), defaults, texts: [], images: [] };
  for (const b of TEXTS) sizes.texts.push(await time('texts', b));
  for (const b of IMAGES) sizes.images.push(await time('images', b));
  await p.close();
  if (labels > 0) {
    const fresh = await page();
    const { value, cpuMs, wallMs } = await fresh.run('labels', dir, file, labels);
    many = { ...value, cpuS: cpuMs / 1000, wallS: wallMs / 1000 };
    console.log('labels', JSON.stringify(many));
  }
} finally {
  await browser.close();
  server.server.close();
  await rm(profile, { recursive: true, force: true });
}
const f = (x, d = 1) => x.toFixed(d);
const rows = (list, what) => list.map((r) => `| ${what} | ${r.batch} | ${f(r.cpu)} | ${f(r.wall)} | ${f(r.memory, 0)} |`).join('\n');
const section = `## Batch sizes (headless Chromium, CPU module)${quick ? ' (quick run)' : ''}\n\n`
  + `Measured by \`benches/batch.mjs\` (in \`tools/bench.sh\`) on the random-weight full-size MobileCLIP-S0 (\`model.pt\`): one forward pass of B items, the median of ${rounds} after a warm-up, `
  + `timed by the page's main-thread CPU time (DevTools' ThreadTime; wall-clock time is shown too, but on this shared 2-core machine it mostly measures the other work). `
  + `Memory: the growth of the wasm memory over the loaded model (${f(sizes.loaded, 0)} MiB, the checkpoint's parsing included); it only grows, so each row includes the rows above. `
  + `The package's defaults (\`BatchSize\` in src/lib.rs): ${sizes.defaults.images} images and ${sizes.defaults.texts} texts per pass.\n\n`
  + `| tower | batch | CPU ms per item | wall ms per item | wasm memory over the model (MiB) |\n|---|---|---|---|---|\n${rows(sizes.texts, 'text')}\n${rows(sizes.images, 'image (640×480 RGBA)')}\n`
  + (many ? `\n${labels.toLocaleString('en')} labels (one template) through \`labelEmbeddings\`, ${many.batch.texts} per part: ${f(many.cpuS, 0)} s of CPU time (${f(many.wallS, 0)} s wall), ${many.events} progress events; `
    + `wasm memory ${f(mib(many.loaded), 0)} MiB after loading, ${f(mib(many.after), 0)} MiB after the labels (the pack itself: ${f(mib(many.pack))} MiB as bytes).\n` : '');
await writeSection(join(root, quick ? 'target/bench-quick.md' : 'BENCHMARKS.md'), section);
console.log(section);
