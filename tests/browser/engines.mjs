// The three browser engines the package is tested in, behind one small driver interface, so that
// each test page is written once and run in all of them:
//
//   const browser = await launch('firefox', { webgpu: true, viewport: { width: 1000, height: 700 } });
//   browser.engine, browser.version                  'firefox', 'Mozilla Firefox 153.8.0esr'
//   const page = await browser.newPage();
//   await page.goto(url);                             waits for the load event
//   await page.waitFor(() => window.__results, 600_000);   polls until truthy, returns the value
//   await page.evaluate((x) => ..., arg);             a function that JSON crosses (no closures)
//   await page.errors();                              uncaught errors, unhandled rejections, console.error
//   await page.screenshot(path);                      the whole page as a PNG
//   page.native                                       playwright's / puppeteer's page (null in WebKit),
//                                                     for what only one engine offers
//   await page.front();                               makes it the visible tab (background tabs'
//                                                     timers are throttled)
//   browser.workerCpu()                               CPU time (ns) of the browser's Web Worker
//                                                     threads by thread id (Linux /proc)
//   await page.close(); await browser.close();
//
//   chromium  Debian's `chromium`, new headless, driven by playwright-core (chromium.mjs).
//   firefox   Debian's `firefox-esr`, headless, driven by puppeteer-core over WebDriver BiDi (no
//             geckodriver). `webgpu` sets dom.webgpu.enabled + gfx.webgpu.ignore-blocklist: its
//             adapter is then Mesa's lavapipe (software Vulkan, package mesa-vulkan-drivers).
//   webkit    WebKitGTK's MiniBrowser (`webkit2gtk-driver`) under WebKitWebDriver, classic
//             WebDriver over HTTP, in an Xvfb of its own (MiniBrowser has no headless mode).
//             `webgpu` turns on its WebGPU feature flag (navigator.gpu is then null in 2.50);
//             `workerCanvas: false` turns off OffscreenCanvas in workers (Safari < 16.4 has none),
//             `wasm: 'no-simd' | 'off'` WebAssembly's SIMD or all of it (JavaScriptCore's
//             JSC_useWasmSIMD / JSC_useWasm, which reach its web process through the environment).
//
// Page errors come from a probe the test server puts into every HTML page it serves (server.mjs:
// window.__pageErrors), the same way in the three engines (classic WebDriver has no events).
// The binaries: $CHROMIUM, $FIREFOX, $WEBKIT_WEBDRIVER / $MINIBROWSER override the Debian paths;
// tools/setup.sh installs them (setup_browsers).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { executablePath as chromiumPath, launch as launchChromium } from './chromium.mjs';

/** Every engine, in the order the suites run them. */
export const ENGINES = ['chromium', 'firefox', 'webkit'];

/**
 * The engines to test: $MOBILECLIP_ENGINES (comma-separated) or all three, intersected with
 * `supported` (the engines a suite applies to).
 */
export function selectedEngines(supported = ENGINES) {
  const asked = (process.env.MOBILECLIP_ENGINES ?? ENGINES.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = asked.filter((e) => !ENGINES.includes(e));
  if (unknown.length) throw new Error(`MOBILECLIP_ENGINES: unknown engine(s) ${unknown.join(', ')} (known: ${ENGINES.join(', ')})`);
  return supported.filter((e) => asked.includes(e));
}

/**
 * Launches `engine` ('chromium', 'firefox' or 'webkit'). Options: `webgpu` (enable it),
 * `viewport`, `chromiumArgs` (more Chromium flags; the other engines have no equivalent and
 * ignore them), and, WebKit only, to make it lack what older or locked-down Safaris lack:
 * `workerCanvas: false` (no OffscreenCanvas in workers: Safari before 16.4), `wasm: 'no-simd'`
 * (WebAssembly without SIMD: Safari before 16.4) or `wasm: 'off'` (none: Lockdown Mode).
 */
export async function launch(engine, { webgpu = false, viewport = { width: 1000, height: 700 }, chromiumArgs = [], workerCanvas = true, wasm = 'simd' } = {}) {
  const make = { chromium: Chromium.launch, firefox: Firefox.launch, webkit: WebKit.launch }[engine];
  if (!make) throw new Error(`unknown engine "${engine}" (known: ${ENGINES.join(', ')})`);
  if ((!workerCanvas || wasm !== 'simd') && engine !== 'webkit') throw new Error(`workerCanvas and wasm are WebKit settings, not available in ${engine}`);
  if (!['simd', 'no-simd', 'off'].includes(wasm)) throw new Error(`wasm: 'simd', 'no-simd' or 'off', not ${wasm}`);
  return make({ webgpu, viewport, chromiumArgs, workerCanvas, wasm });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const readErrors = () => window.__pageErrors ?? [];

/** What every driver's page shares: polling and the error probe on top of goto/evaluate. */
class Page {
  /** Polls `fn` in the page every 200 ms until it returns something truthy; returns it. */
  async waitFor(fn, timeout = 600_000, arg) {
    const end = Date.now() + timeout;
    for (;;) {
      const v = await this.evaluate(fn, arg);
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out after ${timeout / 1000} s waiting for ${fn}`);
      await sleep(200);
    }
  }

  /** Makes this page the visible, focused tab (a background tab's timers are throttled). */
  async front() { await this.native.bringToFront(); }

  /** Uncaught errors, unhandled rejections and console.error calls the server's probe recorded. */
  errors() {
    return this.evaluate(readErrors).catch((e) => [`could not read the page's errors: ${e.message}`]);
  }
}

function need(path, what) {
  if (!existsSync(path)) throw new Error(`${what} not found at ${path}: tools/setup.sh browsers installs it (or set MOBILECLIP_ENGINES to the engines you have)`);
  return path;
}

/** The name each engine gives a Web Worker's thread (/proc shows its first 15 characters). */
const WORKER_THREAD = { chromium: 'DedicatedWorker', firefox: 'DOM Worker', webkit: 'WebCore: Worker' };

/**
 * CPU time (ns, from /proc/<pid>/task/<tid>/schedstat) of the Web Worker threads of `engine`'s
 * processes that descend from (or are) the processes `isRoot(pid, cmdline)` picks, by thread id.
 */
function workerCpu(engine, isRoot) {
  const read = (f) => { try { return readFileSync(f, 'utf8'); } catch { return ''; } };
  const procs = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  const parent = new Map(procs.map((p) => [p, read(`/proc/${p}/stat`).replace(/^.*\) /, '').split(' ')[1]]));
  const ours = new Set(procs.filter((p) => isRoot(p, read(`/proc/${p}/cmdline`))));
  for (let grew = true; grew;) {
    grew = false;
    for (const [p, pp] of parent) if (!ours.has(p) && ours.has(pp)) { ours.add(p); grew = true; }
  }
  const cpu = {};
  for (const p of ours) {
    let tasks = [];
    try { tasks = readdirSync(`/proc/${p}/task`); } catch { continue; }
    for (const t of tasks) {
      if (read(`/proc/${p}/task/${t}/comm`).startsWith(WORKER_THREAD[engine])) cpu[t] = Number(read(`/proc/${p}/task/${t}/schedstat`).split(' ')[0]);
    }
  }
  return cpu;
}

// ---- Chromium: playwright-core -------------------------------------------------------------

class ChromiumPage extends Page {
  constructor(page) { super(); this.page = page; this.native = page; }
  async goto(url) { await this.page.goto(url); }
  evaluate(fn, arg) { return this.page.evaluate(fn, arg); }
  async screenshot(path) { await this.page.screenshot({ path, fullPage: true }); }
  close() { return this.page.close(); }
}

class Chromium {
  static async launch({ webgpu, viewport, chromiumArgs }) {
    need(chromiumPath, 'chromium');
    const profile = await mkdtemp(join(tmpdir(), 'mobileclip-chromium-'));
    const context = await launchChromium(profile, { args: [...(webgpu ? ['--enable-unsafe-webgpu'] : []), ...chromiumArgs], viewport });
    const version = execFileSync(chromiumPath, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return new Chromium(context, profile, version);
  }
  constructor(context, profile, version) {
    this.engine = 'chromium';
    this.context = context;
    this.profile = profile;
    this.version = version;
  }
  async newPage() { return new ChromiumPage(await this.context.newPage()); }
  /** The processes started with this profile folder, and their descendants (zygote, renderers). */
  workerCpu() { return workerCpu('chromium', (_, cmdline) => cmdline.includes(this.profile)); }
  async close() {
    await this.context.close();
    await rm(this.profile, { recursive: true, force: true });
  }
}

// ---- Firefox: puppeteer-core over WebDriver BiDi ---------------------------------------------

class FirefoxPage extends Page {
  constructor(page) { super(); this.page = page; this.native = page; }
  async goto(url) { await this.page.goto(url, { timeout: 120_000 }); }
  evaluate(fn, arg) { return this.page.evaluate(fn, arg); }
  async screenshot(path) { await this.page.screenshot({ path, fullPage: true }); }
  close() { return this.page.close(); }
}

class Firefox {
  static async launch({ webgpu, viewport }) {
    const executablePath = need(process.env.FIREFOX ?? '/usr/bin/firefox-esr', 'firefox-esr');
    const { default: puppeteer } = await import('puppeteer-core');
    const browser = await puppeteer.launch({
      browser: 'firefox',
      executablePath,
      headless: true,
      defaultViewport: viewport,
      protocolTimeout: 900_000, // a long in-page computation must not end the session
      extraPrefsFirefox: {
        // no updates, telemetry or other background traffic
        'app.update.enabled': false,
        'datareporting.policy.dataSubmissionEnabled': false,
        'toolkit.telemetry.enabled': false,
        ...(webgpu ? { 'dom.webgpu.enabled': true, 'gfx.webgpu.ignore-blocklist': true } : {}),
      },
    });
    return new Firefox(browser, execFileSync(executablePath, ['--version']).toString().trim());
  }
  constructor(browser, version) {
    this.engine = 'firefox';
    this.browser = browser;
    this.version = version;
  }
  async newPage() { return new FirefoxPage(await this.browser.newPage()); }
  workerCpu() { const pid = String(this.browser.process()?.pid); return workerCpu('firefox', (p) => p === pid); }
  close() { return this.browser.close(); }
}

// ---- WebKit: WebKitGTK's MiniBrowser, classic WebDriver, under Xvfb --------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** An X server of its own on a free display number (Xvfb -displayfd writes the number it took). */
function startXvfb() {
  return new Promise((resolve, reject) => {
    const x = spawn(need('/usr/bin/Xvfb', 'Xvfb (package xvfb)'), ['-displayfd', '3', '-screen', '0', '1600x1200x24', '-nolisten', 'tcp'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    x.stderr.on('data', (d) => { err += d; });
    x.stdio[3].on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve({ process: x, display: `:${out.trim()}` });
    });
    x.on('exit', (code) => reject(new Error(`Xvfb exited (${code}): ${err.trim()}`)));
  });
}

function miniBrowser() {
  if (process.env.MINIBROWSER) return need(process.env.MINIBROWSER, 'MiniBrowser');
  for (const arch of existsSync('/usr/lib') ? readdirSync('/usr/lib') : []) {
    const p = `/usr/lib/${arch}/webkit2gtk-4.1/MiniBrowser`;
    if (existsSync(p)) return p;
  }
  return need('/usr/lib/<arch>/webkit2gtk-4.1/MiniBrowser', 'MiniBrowser (package webkit2gtk-driver)');
}

class WebKitPage extends Page {
  constructor(browser, handle) { super(); this.browser = browser; this.handle = handle; this.native = null; }
  async goto(url) {
    await this.browser.focus(this.handle);
    await this.browser.command('POST', '/url', { url });
  }
  front() { return this.browser.focus(this.handle); }
  async evaluate(fn, arg) {
    await this.browser.focus(this.handle);
    // a function source, run with its argument; promises are awaited, errors come back as text
    const script = `const done = arguments[1];
      Promise.resolve().then(() => (${fn})(arguments[0]))
        .then((value) => done({ value: value === undefined ? null : value }), (e) => done({ error: String(e && e.stack || e) }));`;
    const r = await this.browser.command('POST', '/execute/async', { script, args: [arg ?? null] });
    if (r.error) throw new Error(r.error);
    return r.value;
  }
  /** The whole page: the window is made as tall as the document (capped) for the shot. */
  async screenshot(path) {
    const { width, height } = await this.evaluate(() => ({ width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight }));
    const { viewport } = this.browser;
    await this.browser.setSize({ width: Math.max(viewport.width, width), height: Math.min(Math.max(viewport.height, height), 4000) });
    const png = await this.browser.command('GET', '/screenshot');
    await this.browser.setSize(viewport);
    await writeFile(path, Buffer.from(png, 'base64'));
  }
  async close() {
    await this.browser.focus(this.handle);
    if ((await this.browser.command('GET', '/window/handles')).length === 1) {
      // closing the last window would end the session: blank it, the next newPage takes it
      await this.browser.command('POST', '/url', { url: 'about:blank' });
      this.browser.fresh = true;
      return;
    }
    const left = await this.browser.command('DELETE', '/window');
    this.browser.current = null;
    await this.browser.focus(left[0]);
  }
}

class WebKit {
  static async launch(options) {
    const browser = new WebKit(options);
    await browser.start();
    return browser;
  }
  constructor({ webgpu, viewport, workerCanvas, wasm }) {
    this.engine = 'webkit';
    this.options = { webgpu, workerCanvas, wasm };
    this.viewport = viewport;
    this.base = null;
    this.driver = null;
    this.xvfb = null;
    this.session = null;
    this.current = null; // the window handle commands go to
    this.fresh = true; // the session's first window, not yet given out by newPage
    this.chrome = null; // the window's size minus the viewport's
  }

  /** Xvfb, WebKitWebDriver, and a session on a new MiniBrowser with one window. */
  async start() {
    const { webgpu, workerCanvas, wasm } = this.options;
    const driverPath = need(process.env.WEBKIT_WEBDRIVER ?? '/usr/bin/WebKitWebDriver', 'WebKitWebDriver (package webkit2gtk-driver)');
    const binary = miniBrowser();
    const x = await startXvfb();
    const port = await freePort();
    const jsc = { 'no-simd': { JSC_useWasmSIMD: '0' }, off: { JSC_useWasm: '0' } }[wasm] ?? {};
    // its own process group (MiniBrowser and WebKit's processes join it): ended as one, also
    // when this script exits without closing the browser
    const driver = spawn(driverPath, [`--port=${port}`], { env: { ...process.env, DISPLAY: x.display, ...jsc }, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let log = '';
    driver.stderr.on('data', (d) => { log = (log + d).slice(-4000); });
    Object.assign(this, { base: `http://127.0.0.1:${port}`, driver, xvfb: x.process, session: null, current: null, fresh: true, chrome: null });
    process.once('exit', this.kill);
    try {
      const features = [...(webgpu ? ['+WebGPU'] : []), ...(workerCanvas ? [] : ['-OffscreenCanvasInWorkers'])];
      const args = ['--automation', ...(features.length ? [`--features=${features.join(',')}`] : [])];
      const session = await this.request('POST', '/session', {
        capabilities: { alwaysMatch: { browserName: 'MiniBrowser', 'webkitgtk:browserOptions': { binary, args } } },
      });
      this.session = session.sessionId;
      this.version = `WebKitGTK ${session.capabilities.browserVersion} (MiniBrowser)`;
      await this.command('POST', '/timeouts', { script: 900_000, pageLoad: 120_000 });
      this.current = await this.command('GET', '/window');
      await this.setSize(this.viewport);
    } catch (e) {
      await this.close();
      throw new Error(`WebKitWebDriver did not start a MiniBrowser session: ${e.message}\n${log}`);
    }
  }

  /**
   * Whether `error` says the session is gone: WebKitWebDriver deletes the whole session (every
   * window) when one page crashes or hangs.
   */
  lost(error) { return /invalid session id/.test(error?.message ?? ''); }

  /**
   * After `lost`, or a page that stopped answering (its command channel stays busy): the driver
   * and MiniBrowser ended and started afresh; pages of the old session are gone.
   */
  async recover() {
    await this.close();
    await this.start();
  }

  /** One WebDriver request; retries while the driver is still starting. */
  async request(method, path, body) {
    for (let attempt = 0; ; attempt++) {
      let response;
      try {
        response = await fetch(this.base + path, { method, headers: { 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
      } catch (e) {
        if (attempt < 100 && this.driver.exitCode === null) { await sleep(100); continue; }
        throw new Error(`WebKitWebDriver ${method} ${path}: ${e.cause?.message ?? e.message}`);
      }
      const { value } = await response.json();
      if (!response.ok) throw new Error(`WebKitWebDriver ${method} ${path}: ${value?.error}: ${value?.message}`);
      return value;
    }
  }

  command(method, path, body) { return this.request(method, `/session/${this.session}${path}`, body); }

  /** WebKitWebDriver, MiniBrowser and WebKit's processes under them. */
  workerCpu() { const pid = String(this.driver.pid); return workerCpu('webkit', (p) => p === pid); }

  async focus(handle) {
    if (this.current === handle) return;
    await this.command('POST', '/window', { handle });
    this.current = handle;
  }

  /** Makes the page's viewport `width` × `height` (the window rect includes MiniBrowser's chrome). */
  async setSize({ width, height }) {
    if (!this.chrome) {
      const rect = await this.command('GET', '/window/rect');
      const [w, h] = await this.command('POST', '/execute/sync', { script: 'return [innerWidth, innerHeight]', args: [] });
      this.chrome = { width: rect.width - w, height: rect.height - h };
    }
    await this.command('POST', '/window/rect', { width: width + this.chrome.width, height: height + this.chrome.height });
  }

  async newPage() {
    if (this.fresh) {
      this.fresh = false;
      return new WebKitPage(this, this.current);
    }
    // a window, not a tab: WebKitGTK keeps a tab it is switched to hidden (document.visibilityState,
    // throttled timers), but shows every window
    const { handle } = await this.command('POST', '/window/new', { type: 'window' });
    await this.focus(handle);
    await this.setSize(this.viewport);
    return new WebKitPage(this, handle);
  }

  async close() {
    // a hung page can keep the driver from answering: wait for it a little, then end it anyway
    if (this.session) await Promise.race([this.command('DELETE', '').catch(() => {}), sleep(5000)]);
    this.session = null;
    const gone = [this.driver, this.xvfb].filter((p) => p.exitCode === null && p.signalCode === null).map((p) => new Promise((r) => p.once('exit', r)));
    this.kill();
    process.off('exit', this.kill);
    await Promise.race([Promise.all(gone), sleep(5000)]);
  }

  /** Ends the driver's process group (MiniBrowser included) and Xvfb, synchronously. */
  kill = () => {
    try { process.kill(-this.driver.pid, 'SIGTERM'); } catch { /* already gone */ }
    try { this.xvfb.kill(); } catch { /* already gone */ }
  };
}

// ---- Running a test page -------------------------------------------------------------------

/**
 * Opens `url` in a new page of `browser` (after `await setup(page)` when given), waits until the
 * page function `done` returns its results (or the page stalls: an uncaught error and nothing
 * finished a minute later), saves a screenshot to `shot`, closes the page. Returns
 * `{ value, errors }`: `value` is what `done` returned (undefined if it never did), `errors` the
 * page's uncaught errors and time-outs.
 */
export async function runPage(browser, url, { done = () => window.__results, shot, timeout = 600_000, setup } = {}) {
  const page = await browser.newPage();
  const errors = [];
  let value;
  try {
    await setup?.(page);
    await page.goto(url);
    const r = await page.waitFor((fn) => {
      const v = (0, eval)(`(${fn})`)();
      if (v) return { v };
      return window.__pageErrorAt !== undefined && performance.now() - window.__pageErrorAt > 60_000 ? { stalled: true } : null;
    }, timeout, done.toString());
    if (r.stalled) errors.push('the page stopped after an uncaught error (no results a minute later)');
    value = r.v;
  } catch (e) {
    errors.push(e.message);
  }
  errors.push(...await page.errors());
  if (shot) await page.screenshot(shot).catch((e) => errors.push(`screenshot: ${e.message}`));
  await page.close().catch(() => {});
  return { value, errors };
}

/**
 * Prints a page's `results` ([{name, ok, detail, ms?}]) and `errors`, each line naming the engine,
 * then "<label>: N passed, N failed". Returns the number of failures (an error counts as one).
 */
export function report(label, engine, results = [], errors = []) {
  for (const r of results) {
    const time = r.ms === undefined ? '' : ` (${(r.ms / 1000).toFixed(1)} s)`;
    console.log(`${r.ok ? 'ok    ' : 'FAILED'} [${engine}] ${r.name}${time}${r.detail ? ` — ${r.detail}` : ''}`);
  }
  for (const e of errors) console.log(`FAILED [${engine}] page error: ${e}`);
  const failed = results.filter((r) => !r.ok).length + errors.length;
  console.log(`${label}: ${results.length + errors.length - failed} passed, ${failed} failed`);
  return failed;
}

/**
 * Runs `fn(browser)` in a freshly launched `engine` (`options` as for launch) and closes it;
 * returns what `fn` returns, the number of failures. An engine that does not start is one
 * failure of `label`, named in the output.
 */
export async function inEngine(engine, options, label, fn) {
  let browser;
  try {
    browser = await launch(engine, options);
  } catch (e) {
    return report(label, engine, [], [`could not start ${engine}: ${e.message}`]);
  }
  try {
    return await fn(browser);
  } finally {
    await browser.close();
  }
}
