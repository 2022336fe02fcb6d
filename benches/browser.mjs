// Browser benchmark: the npm package in the three browser engines (tests/browser/engines.mjs).
// Sizes of the wasm modules (raw and gzip -9), cold load to first embedding (wasm init + weights
// over loopback + parse/fold + first image), image and text latency: the CPU module (flex) in
// Chromium, Firefox and WebKitGTK, same run, same weights; in Chromium also the WebGPU module (on
// this machine's only adapter, SwiftShader: a correctness path, slow) and, when
// target/pkg-ndarray exists (tools/bench.sh with MOBILECLIP_BENCH_NDARRAY=1 builds it, ~15 more
// minutes), burn's ndarray backend in place of flex, the comparison that chose flex. Writes the
// "## Browser" section of BENCHMARKS.md.
// Run through tools/bench.sh (needs pkg/ and target/bench-fixtures); MOBILECLIP_ENGINES picks
// the engines (default all three).
import { launch, selectedEngines } from '../tests/browser/engines.mjs';
import { readFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '../tests/browser/server.mjs';
import { writeSection } from './section.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const iters = Number(process.env.MOBILECLIP_BENCH_ITERS ?? 5);
const wasm = await readFile(join(root, 'pkg/cpu/mobileclip_wasm_bg.wasm'));
const glue = await readFile(join(root, 'pkg/cpu/mobileclip_wasm.js'));
const mb = (n) => (n / 1e6).toFixed(2);
const ndWasm = join(root, 'target/pkg-ndarray/cpu/mobileclip_wasm_bg.wasm');
const nd = existsSync(ndWasm) ? await readFile(ndWasm) : null;
const gpuWasm = await readFile(join(root, 'pkg/gpu/mobileclip_wasm_bg.wasm'));
const mtWasm = await readFile(join(root, 'pkg/cpu-mt/mobileclip_wasm_bg.wasm'));
const poolJs = Buffer.concat([await readFile(join(root, 'pkg/threads.js')), await readFile(join(root, 'pkg/thread-worker.js')), await readFile(join(root, 'pkg/cpu-mt/mobileclip_wasm.js'))]);
const row = (name, bytes) => `| ${name} | ${mb(bytes.length)} MB | ${mb(gzipSync(bytes, { level: 9 }).length)} MB |\n`;
const relaxed = await readFile(join(root, 'pkg/cpu-relaxed/mobileclip_wasm_bg.wasm'));
const mtRelaxed = await readFile(join(root, 'pkg/cpu-mt-relaxed/mobileclip_wasm_bg.wasm'));
const sizes = row('CPU module, flex (`pkg/cpu/mobileclip_wasm_bg.wasm`), loaded where threads cannot run and relaxed SIMD is missing', wasm)
  + row('its relaxed-SIMD build (`pkg/cpu-relaxed/`), loaded instead where the engine validates relaxed SIMD (Chromium, Firefox)', relaxed)
  + row('Threaded CPU module (`pkg/cpu-mt/mobileclip_wasm_bg.wasm`), loaded instead on cross-origin-isolated pages', mtWasm)
  + row('its relaxed-SIMD build (`pkg/cpu-mt-relaxed/`)', mtRelaxed)
  + row('its JS: glue + thread pool (`cpu-mt/mobileclip_wasm.js`, `threads.js`, `thread-worker.js`)', poolJs)
  + row('WebGPU module (`pkg/gpu/mobileclip_wasm_bg.wasm`), loaded only with a WebGPU adapter', gpuWasm)
  + (nd ? row('CPU module, ndarray variant (not shipped)', nd) : '')
  + row('JS glue + API (`cpu/mobileclip_wasm.js`, `index.js`, `common.js`)', Buffer.concat([glue, await readFile(join(root, 'pkg/index.js')), await readFile(join(root, 'pkg/common.js'))]));

const fixtures = join(root, 'target/bench-fixtures');
const models = (await readdir(fixtures)).filter((d) => existsSync(join(fixtures, d, 'config.json'))).sort();
const loadStart = (await readFile('/proc/loadavg', 'utf8')).split(' ')[0];
const server = await serve(root);
let rows = '';
const versions = new Map(); // engine -> browser version
// flex (the shipped CPU module) for every model in every engine; in Chromium, ndarray (when built)
// and WebGPU on S0 only (SwiftShader takes seconds per image).
const engines = selectedEngines();
const variants = engines.map((engine) => [engine, 'cpu (flex)', '/pkg', models, false, 'cpu', iters]);
if (engines.includes('chromium')) {
  if (existsSync(join(root, 'target/pkg-ndarray/index.js'))) variants.push(['chromium', 'cpu (ndarray)', '/target/pkg-ndarray', models.filter((m) => m !== 'MobileCLIP-B'), false, 'cpu', iters]);
  variants.push(['chromium', 'webgpu (SwiftShader)', '/pkg', models.filter((m) => m === 'MobileCLIP-S0'), true, 'webgpu', 1]);
}
for (const [engine, label, pkg, list, webgpu, backend, n] of variants) {
  const browser = await launch(engine, { webgpu });
  versions.set(engine, browser.version);
  try {
    for (const m of list) {
      const file = existsSync(join(fixtures, m, 'model.pt')) ? 'model.pt' : 'model.safetensors';
      const page = await browser.newPage(); // a fresh page: cold wasm instantiation each time
      await page.goto(`${server.url}/benches/browser.html?pkg=${pkg}&dir=/target/bench-fixtures/${m}&file=${file}&iters=${n}&backend=${backend}`);
      const r = await page.waitFor(() => window.__bench, 600_000);
      await page.close();
      if (r.error) throw new Error(`${engine} ${label} ${m}: ${r.error}`);
      console.log(engine, label, m, r);
      rows += `| ${m} | ${engine} | ${label} | ${r.load_ms.toFixed(0)} | ${r.first_embedding_ms.toFixed(0)} | ${r.image_ms.toFixed(0)} | ${r.text_ms.toFixed(0)} |\n`;
    }
  } finally {
    await browser.close();
  }
}
server.server.close();
const tested = [...versions.values()].join('; ');
const loadEnd = (await readFile('/proc/loadavg', 'utf8')).split(' ')[0];
const ndarrayNote = nd
  ? 'The ndarray rows run burn\'s ndarray backend in place of flex (not shipped; built with MOBILECLIP_BENCH_NDARRAY=1): the comparison that made flex the CPU backend. '
  : 'The flex-vs-ndarray comparison (burn\'s ndarray backend in place of flex, not shipped) is left out: it needs a build of its own (~15 minutes), `MOBILECLIP_BENCH_NDARRAY=1 tools/bench.sh` adds it. ';
const section = `## Browser\n\nMeasured by \`tools/bench.sh\` (benches/browser.mjs) in one run on this machine (see the native section; 1-minute load average ${loadStart} at the start, ${loadEnd} at the end) in ${tested}; `
  + `headless except WebKitGTK's MiniBrowser (under Xvfb); the CPU module each engine loads on a page that is not cross-origin isolated (one thread; relaxed SIMD in Chromium and Firefox, SIMD128 in WebKitGTK); weights served over loopback; ${iters} iterations (WebGPU: 1), median after one warm-up, wall time (the side-by-side section below compares runtimes; this one the models and engines). `
  + ndarrayNote
  + `The only WebGPU adapter headless Chromium offers here is SwiftShader (a CPU emulation of a GPU), so the WebGPU row shows the path works, not its speed on real GPUs. `
  + `Cold = from \`MobileClip.load\` (wasm instantiation, download, parse, fold) to the first image embedding of a 640×480 image.\n\n`
  + `| file | raw | gzip -9 |\n|---|---|---|\n${sizes}\n`
  + `| model | engine | backend | load (ms) | cold load to first embedding (ms) | image (ms) | text (ms) |\n|---|---|---|---|---|---|---|\n${rows}`;

await writeSection(join(root, 'BENCHMARKS.md'), section);
console.log(section);
