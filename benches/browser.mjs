// Browser benchmark: the npm package's CPU module in headless Chromium. Sizes of the wasm module
// (raw and gzip -9), cold load to first embedding (wasm init + weights over loopback + parse/fold
// + first image), image and text latency. Writes the "## Browser" section of BENCHMARKS.md.
// Run through tools/bench.sh (needs pkg/ and target/bench-fixtures).
import { chromium } from 'playwright-core';
import { readFile, writeFile, mkdtemp, rm, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '../tests/browser/server.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const iters = Number(process.env.MOBILECLIP_BENCH_ITERS ?? 5);
const wasm = await readFile(join(root, 'pkg/cpu/mobileclip_wasm_bg.wasm'));
const glue = await readFile(join(root, 'pkg/cpu/mobileclip_wasm.js'));
const mb = (n) => (n / 1e6).toFixed(2);
const ndWasm = join(root, 'target/pkg-ndarray/cpu/mobileclip_wasm_bg.wasm');
const nd = existsSync(ndWasm) ? await readFile(ndWasm) : null;
const sizes = `| CPU module, flex (\`pkg/cpu/mobileclip_wasm_bg.wasm\`) | ${mb(wasm.length)} MB | ${mb(gzipSync(wasm, { level: 9 }).length)} MB |\n`
  + (nd ? `| CPU module, ndarray variant (not shipped) | ${mb(nd.length)} MB | ${mb(gzipSync(nd, { level: 9 }).length)} MB |\n` : '')
  + `| JS glue + API (\`cpu/mobileclip_wasm.js\`, \`index.js\`) | ${mb(glue.length + (await readFile(join(root, 'pkg/index.js'))).length)} MB | ${mb(gzipSync(Buffer.concat([glue, await readFile(join(root, 'pkg/index.js'))]), { level: 9 }).length)} MB |\n`;

const fixtures = join(root, 'target/bench-fixtures');
const models = (await readdir(fixtures)).filter((d) => existsSync(join(fixtures, d, 'config.json'))).sort();
const server = await serve(root);
const profile = await mkdtemp(join(tmpdir(), 'mobileclip-bench-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let rows = '';
// flex (the shipped module) for every model; ndarray (built by tools/bench.sh) on the first,
// to decide the default CPU backend.
const variants = [['flex', '/pkg', models]];
if (existsSync(join(root, 'target/pkg-ndarray/index.js'))) variants.push(['ndarray', '/target/pkg-ndarray', models.filter((m) => m !== 'MobileCLIP-B')]);
try {
  for (const [backend, pkg, list] of variants) {
    for (const m of list) {
      const file = existsSync(join(fixtures, m, 'model.pt')) ? 'model.pt' : 'model.safetensors';
      const page = await browser.newPage(); // a fresh page: cold wasm instantiation each time
      await page.goto(`${server.url}/benches/browser.html?pkg=${pkg}&dir=/target/bench-fixtures/${m}&file=${file}&iters=${iters}`);
      await page.waitForFunction(() => window.__bench, null, { timeout: 600_000 });
      const r = await page.evaluate(() => window.__bench);
      await page.close();
      if (r.error) throw new Error(`${backend} ${m}: ${r.error}`);
      console.log(backend, m, r);
      rows += `| ${m} | ${backend} | ${r.load_ms.toFixed(0)} | ${r.first_embedding_ms.toFixed(0)} | ${r.image_ms.toFixed(0)} | ${r.text_ms.toFixed(0)} |\n`;
    }
  }
} finally {
  await browser.close();
  server.server.close();
  await rm(profile, { recursive: true, force: true });
}
const version = execFileSync(process.env.CHROMIUM ?? '/usr/bin/chromium', ['--version']).toString().trim().replace(/^Chromium\s*/, '');
const section = `## Browser (headless Chromium, CPU module)\n\nMeasured by \`tools/bench.sh\` in Debian's headless Chromium ${version} on this machine (see the native section), `
  + `wasm SIMD128, one thread; weights served over loopback; ${iters} iterations, median after one warm-up. `
  + `Cold = from \`MobileClip.load\` (wasm instantiation, download, parse, fold) to the first image embedding of a 640×480 image.\n\n`
  + `| file | raw | gzip -9 |\n|---|---|---|\n${sizes}\n`
  + `| model | CPU backend | load (ms) | cold load to first embedding (ms) | image (ms) | text (ms) |\n|---|---|---|---|---|---|\n${rows}`;

const path = join(root, 'BENCHMARKS.md');
const old = existsSync(path) ? await readFile(path, 'utf8') : '# Benchmarks\n';
const parts = old.split(/^(?=## )/m).filter((s) => !s.startsWith('## Browser'));
await writeFile(path, `${parts.map((s) => s.trimEnd()).join('\n\n')}\n\n${section}`);
console.log(section);
