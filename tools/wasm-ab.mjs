// Side-by-side timing (and optional CPU profile) of CPU wasm modules in one headless Chromium run:
// a developer's tool for kernel work, not part of the test suite.
//
//   node tools/wasm-ab.mjs [--model DIR] [--iters N] [--batch B] [--tower image|text|both]
//                          [--threads N] [--backend cpu|webgpu] [--profile OUT.json]
//                          PKG[:simd128] [PKG[:simd128]...]
//
// Each PKG is a package folder under the repository (e.g. pkg, target/pkg-main) with index.js and
// cpu/ (and cpu-relaxed/, which Chromium loads; `PKG:simd128` makes that page's engine report no
// relaxed SIMD, so it runs the SIMD128 build). Every package gets its own page (fresh wasm instance) with the same checkpoint; rounds
// alternate between the packages so that load on this shared machine hits them alike. Prints the
// median per package and tower, in wall time and in CPU time of the page's main thread (DevTools
// Protocol Performance.getMetrics ThreadTime: less disturbed by other processes on a loaded
// machine than wall time, though not immune to them). Each package's last embedding is compared with the first
// package's (max |Δ|: 0 where the arithmetic is unchanged). --profile records a CPU profile (DevTools Protocol, Profiler
// domain) of the first package's timed runs and prints its heaviest functions by self time
// (build that package with the name section kept: wasm-bindgen without --remove-name-section);
// with --threads N it also profiles each of that page's pool workers (where the model runs:
// OUT.worker<i>.json, their heaviest functions printed too): comparing the worker that ran the
// call with the others shows what ran on one thread while the rest waited.
// --threads N (N > 1) serves the pages cross-origin isolated and loads the threaded module with
// N threads (each page its own pool); CPU time is then the page's renderer process's (all its
// threads, the pool's workers included: /proc, 10 ms ticks summed over the rounds), which
// shows what a split costs in total even where load keeps the threads from running at once.
// --backend webgpu loads the packages' WebGPU module (pkg/gpu/) on Chromium's adapter (SwiftShader
// here): the main thread's CPU time is then the module's own work per call (fusion, encoding,
// dispatch), the adapter's runs in the GPU process.
import { launch } from '../tests/browser/chromium.mjs';
import { serve } from '../tests/browser/server.mjs';
import { ISOLATION_HEADERS } from './serve.mjs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  if (i < 0) return def;
  const [v] = args.splice(i, 2).slice(1);
  return v;
};
const model = opt('--model', 'target/bench-fixtures/MobileCLIP-S0');
const iters = Number(opt('--iters', 7));
const batch = Number(opt('--batch', 1));
const tower = opt('--tower', 'both');
const backendName = opt('--backend', 'cpu');
const profileOut = opt('--profile', null);
const threads = Number(opt('--threads', 1));
const pkgs = args.length ? args : ['pkg'];
const towers = tower === 'both' ? ['image', 'text'] : [tower];
const modelDir = relative(root, join(root, model));
const file = ['model_reparam.pt', 'model.pt', 'model.safetensors'].find((f) => existsSync(join(root, modelDir, f)));

const server = threads > 1 ? await serve(root, ISOLATION_HEADERS) : await serve(root);
const profileDir = await mkdtemp(join(tmpdir(), 'mobileclip-ab-'));
const browser = await launch(profileDir, { args: backendName === 'webgpu' ? ['--enable-unsafe-webgpu'] : [] });
try {
  const pages = [];
  for (const spec of pkgs) {
    const [pkg, variant] = spec.split(':');
    const before = renderers(profileDir);
    const page = await browser.newPage();
    if (variant === 'simd128') {
      // js/index.js probes relaxed SIMD with a module holding f32x4.relaxed_madd (0xfd 0x85 0x02).
      await page.addInitScript(() => {
        const validate = WebAssembly.validate;
        WebAssembly.validate = (bytes) => {
          const b = new Uint8Array(bytes.buffer ?? bytes);
          for (let i = 0; i + 2 < b.length; i++) if (b[i] === 0xfd && b[i + 1] === 0x85 && b[i + 2] === 0x02) return false;
          return validate(bytes);
        };
      });
    }
    page.on('console', (m) => m.type() === 'error' && console.error(spec, m.text()));
    await page.route(`${server.url}/__blank.html`, (r) => r.fulfill({ contentType: 'text/html', headers: threads > 1 ? ISOLATION_HEADERS : {}, body: '<!doctype html><title>ab</title>' }));
    await page.goto(`${server.url}/__blank.html`);
    const backend = await page.evaluate(async ({ pkg, modelDir, file, batch, threads, backendName, tower }) => {
      const { MobileClip } = await import(`/${pkg}/index.js`);
      const config = await (await fetch(`/${modelDir}/config.json`)).json();
      const clip = await MobileClip.load({ model: config, weights: `/${modelDir}/${file}`, backend: backendName, threads });
      const s = clip.imageSize;
      const px = new Float32Array(batch * 3 * s * s).map((_, i) => (i % 255) / 255);
      const texts = Array.from({ length: batch }, (_, i) => `a photo of a cat on the table, number ${i}`);
      window.__run = async (t) => {
        const t0 = performance.now();
        const out = t === 'image' ? await clip.encodePixels(px, batch) : await clip.encodeText(texts);
        return { ms: performance.now() - t0, embedding: Array.from(out[0]) };
      };
      if (tower !== 'text') await window.__run('image');
      if (tower !== 'image') await window.__run('text');
      return clip.backendReason;
    }, { pkg, modelDir, file, batch, threads, backendName, tower });
    console.log(`${spec}: ${backend}`);
    const session = await page.context().newCDPSession(page);
    await session.send('Performance.enable', { timeDomain: 'threadTicks' });
    // the page's renderer: of the browser's new ones (the first page also brings the initial
    // blank page's), the one that did the warm-up's work
    const pids = renderers(profileDir).filter((pid) => !before.includes(pid));
    const pid = pids.sort((x, y) => processTime(y) - processTime(x))[0];
    if (threads > 1 && pid === undefined) throw new Error(`${spec}: no renderer process found`);
    pages.push({ page, session, pid });
  }
  const mainThreadTime = async (session) => (await session.send('Performance.getMetrics')).metrics.find((m) => m.name === 'ThreadTime').value * 1e3;
  let cdp = null;
  let workers = [];
  if (profileOut) {
    cdp = pages[0].session;
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
    await cdp.send('Profiler.start');
    if (threads > 1) workers = await profileWorkers(cdp);
  }
  const times = pkgs.map(() => Object.fromEntries(towers.map((t) => [t, []])));
  const cpu = pkgs.map(() => Object.fromEntries(towers.map((t) => [t, []])));
  const firsts = pkgs.map(() => ({}));
  for (let i = 0; i < iters; i++) {
    for (const [p, { page, session, pid }] of pages.entries()) {
      const threadTime = threads > 1 ? async () => processTime(pid) : () => mainThreadTime(session);
      for (const t of towers) {
        const before = await threadTime();
        const r = await page.evaluate((t) => window.__run(t), t);
        cpu[p][t].push((await threadTime()) - before);
        times[p][t].push(r.ms);
        firsts[p][t] = r.embedding;
      }
    }
  }
  const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  for (const [p, pkg] of pkgs.entries()) {
    const cpuText = (c) => (threads > 1 ? `process cpu ${mean(c).toFixed(1)} (mean)` : `cpu ${med(c).toFixed(1)}, min ${Math.min(...c).toFixed(1)}`);
    // the first values of the last embedding, and (other packages) its largest difference from the first package's
    const diff = (t) => (p === 0 ? '' : ` max |Δ| vs ${pkgs[0]} ${Math.max(...firsts[p][t].map((v, i) => Math.abs(v - firsts[0][t][i]))).toExponential(2)}`);
    const cols = towers.map((t) => `${t} ${med(times[p][t]).toFixed(1)} ms (min ${Math.min(...times[p][t]).toFixed(1)}; ${cpuText(cpu[p][t])}) [${firsts[p][t].slice(0, 4).map((v) => v.toFixed(6)).join(', ')}]${diff(t)}`);
    console.log(`${pkg.padEnd(28)} batch ${batch}: ${cols.join('  ')}`);
  }
  if (cdp) {
    const { profile } = await cdp.send('Profiler.stop');
    await writeFile(profileOut, JSON.stringify(profile));
    summarize(profile);
    for (const [i, w] of workers.entries()) {
      const { profile: wp } = await w.send('Profiler.stop');
      await writeFile(profileOut.replace(/(\.json)?$/, `.worker${i}.json`), JSON.stringify(wp));
      console.log(`\nworker ${i} (${w.title}):`);
      summarize(wp);
    }
  }
} finally {
  await browser.close();
  server.server.close();
  await rm(profileDir, { recursive: true, force: true });
}

/**
 * Starts a CPU profile in each of the page's workers (the thread pool's), through the page's
 * DevTools session (Target auto-attach, messages wrapped for each worker's session). Returns one
 * `{ title, send }` per worker.
 */
async function profileWorkers(cdp) {
  let next = 1;
  const waiting = new Map();
  const found = [];
  cdp.on('Target.receivedMessageFromTarget', ({ message }) => {
    const m = JSON.parse(message);
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    if (m.error) w.reject(new Error(m.error.message));
    else w.resolve(m.result);
  });
  cdp.on('Target.attachedToTarget', ({ sessionId, targetInfo }) => found.push({ sessionId, title: targetInfo.title || targetInfo.url }));
  await cdp.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: false });
  await new Promise((r) => setTimeout(r, 500));
  const sessions = found.map(({ sessionId, title }) => ({
    title,
    send: (method, params = {}) => new Promise((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve, reject });
      cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) }).catch(reject);
    }),
  }));
  for (const w of sessions) {
    await w.send('Profiler.enable');
    await w.send('Profiler.setSamplingInterval', { interval: 200 });
    await w.send('Profiler.start');
  }
  console.log(`profiling ${sessions.length} worker(s): ${sessions.map((w) => w.title).join(', ')}`);
  return sessions;
}

/** ms of CPU the process `pid` has used (utime + stime, in 10 ms ticks). */
function processTime(pid) {
  return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ').slice(11, 13).reduce((a, v) => a + Number(v) * 10, 0);
}

/** Pids of the renderer processes of the Chromium whose profile is `profile` (other browsers may run on this machine). */
function renderers(profile) {
  const read = (pid, f) => { try { return readFileSync(`/proc/${pid}/${f}`, 'utf8'); } catch { return ''; } };
  const parent = (pid) => Number(read(pid, 'stat').split(') ')[1]?.split(' ')[1] ?? 0);
  const ours = (pid) => { for (let p = pid; p > 1; p = parent(p)) if (read(p, 'cmdline').includes(profile)) return true; return false; };
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d) && read(d, 'cmdline').includes('--type=renderer') && ours(Number(d))).map(Number);
}

/** Prints the functions with the most self time (samples), with their share. */
function summarize(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    dt.set(id, (dt.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  let total = 0;
  for (const [id, us] of dt) {
    const n = byId.get(id);
    const name = n.callFrame.functionName || `(anonymous ${n.callFrame.url.split('/').pop()})`;
    if (name === '(idle)' || name === '(program)') continue;
    self.set(name, (self.get(name) ?? 0) + us);
    total += us;
  }
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, 40);
  console.log(`\nself time, ${(total / 1e3).toFixed(0)} ms sampled:`);
  for (const [name, us] of rows) console.log(`${((100 * us) / total).toFixed(1).padStart(5)} %  ${(us / 1e3).toFixed(1).padStart(8)} ms  ${name.slice(0, 140)}`);
}
