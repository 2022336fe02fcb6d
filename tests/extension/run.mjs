// The browser-extension example (examples/extension) in Debian's headless Chromium: builds it,
// loads it with --load-extension, sets it up through its options page as a user would (custom
// config + weights downloaded from a loopback server), then tags images on a test page by calling
// the context-menu handler in the service worker (headless Chromium cannot open a native context
// menu) and checks the overlay against the package's own zeroShot in a normal page.
// Network: every request of the pages and of the extension (offscreen document and worker
// included) is watched browser-wide through DevTools, and everything the browser sends goes through
// a logging proxy that passes on only what is for the loopback test servers; anything else but
// Chromium's own background requests fails the test. Screenshots: target/extension-screenshots/.
// Needs: pkg/ (tools/build-wasm.sh), chromium at /usr/bin/chromium (or $CHROMIUM).
import { launch } from '../browser/chromium.mjs';
import { execFileSync } from 'node:child_process';
import { createServer, request as httpRequest } from 'node:http';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '../browser/server.mjs';
import { CLIP_VOCAB, widenVocabulary } from '../js/safetensors.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tmp = await mkdtemp(join(tmpdir(), 'mobileclip-extension-'));
const ext = join(tmp, 'extension');
const shots = join(root, 'target', 'extension-screenshots');
await mkdir(shots, { recursive: true });
execFileSync(process.execPath, [join(root, 'examples/extension/build.mjs'), '--out', ext], { stdio: ['ignore', 'ignore', 'inherit'] });

// The weights. By default the small random-weight fixture v2-mci0 with its token embedding widened
// from the fixture's 256 tokens (the parity tests feed token ids) to CLIP's 49,408, so that labels
// go through the real tokenizer; its config is a custom one, passed as a config object.
// MOBILECLIP_EXTENSION_WEIGHTS=<checkpoint> (+ MOBILECLIP_EXTENSION_MODEL, default MobileCLIP-S0)
// runs the same test on a full-size checkpoint picked by its shipped name instead.
const fullWeights = process.env.MOBILECLIP_EXTENSION_WEIGHTS;
const fx = join(tmp, 'fixture');
await mkdir(fx);
let model; // the model as the options page picks it: a shipped name, or a config file
if (fullWeights) {
  model = { name: process.env.MOBILECLIP_EXTENSION_MODEL ?? 'MobileCLIP-S0' };
  await symlink(resolve(fullWeights), join(fx, basename(fullWeights)));
} else {
  const config = JSON.parse(await readFile(join(root, 'tests/fixtures/models/v2-mci0/config.json'), 'utf8'));
  config.name = 'v2-mci0-clip-vocab';
  config.text_cfg.vocab_size = CLIP_VOCAB;
  model = { config, configFile: join(fx, 'config.json') };
  await writeFile(model.configFile, JSON.stringify(config, null, 2));
  await writeFile(join(fx, 'model.safetensors'), widenVocabulary(await readFile(join(root, 'tests/fixtures/models/v2-mci0/model.safetensors'))));
}
const weightsFile = fullWeights ? basename(fullWeights) : 'model.safetensors';

const main = await serve(root); // the test page and the package for the reference
const other = await serve(root); // a second origin for the cat photo, without CORS headers
const weightsServer = await serve(fx, { 'access-control-allow-origin': '*' }); // the checkpoint: the options page downloads it, the reference page too
const local = new Set([main, other, weightsServer].map((s) => new URL(s.url).host));

// Hosts Chromium 156 itself contacts in this set-up with no extension loaded and no page open
// (component updater on-demand check, Google account cookie check), despite
// --disable-background-networking and --disable-component-update. The proxy refuses them.
const CHROMIUM_OWN = new Set(['update.googleapis.com', 'accounts.google.com']);

// A forward proxy that logs every request and passes on only those for the test servers.
const proxied = [];
const proxy = createServer((req, res) => {
  let url;
  try { url = new URL(req.url); } catch { url = null; }
  proxied.push({ method: req.method, url: req.url });
  if (!url || !local.has(url.host)) {
    res.writeHead(403, { 'content-type': 'text/plain' });
    res.end('blocked by the test proxy');
    return;
  }
  const up = httpRequest(url, { method: req.method, headers: req.headers }, (r) => {
    res.writeHead(r.statusCode, r.headers);
    r.pipe(res);
  });
  up.on('error', () => { res.writeHead(502); res.end(); });
  req.pipe(up);
});
proxy.on('connect', (req, socket) => {
  proxied.push({ method: 'CONNECT', url: req.url });
  socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
});
await new Promise((r) => proxy.listen(0, '127.0.0.1', r));

const results = [];
function record(name, ok, detail = '') {
  results.push({ name, ok });
  console.log(`${ok ? 'ok    ' : 'FAILED'} ${name}${detail ? ` — ${detail}` : ''}`);
}
async function check(name, f) {
  try {
    record(name, true, (await f()) ?? '');
  } catch (e) {
    record(name, false, e?.message ?? String(e));
  }
}
function assert(cond, msg) { if (!cond) throw new Error(msg); }

const t0 = performance.now();
const context = await launch(join(tmp, 'profile'), {
  viewport: { width: 900, height: 760 },
  args: [
    `--disable-extensions-except=${ext}`, `--load-extension=${ext}`,
    `--proxy-server=http://127.0.0.1:${proxy.address().port}`, '--proxy-bypass-list=<-loopback>',
  ],
});
// Every request of every tab, extension page, offscreen document and worker loaded from now on,
// through the browser-wide DevTools Fetch domain (playwright's request events miss the offscreen
// document and its worker). The service worker started before this (it has no fetch in its code)
// and Chromium's own background requests do not pass here; the proxy sees those.
const cdp = await context.browser().newBrowserCDPSession();
const intercepted = [];
cdp.on('Fetch.requestPaused', (e) => {
  intercepted.push({ url: e.request.url, type: e.resourceType, frameId: e.frameId });
  cdp.send('Fetch.continueRequest', { requestId: e.requestId }).catch(() => {});
});
await cdp.send('Fetch.enable', { patterns: [{ urlPattern: '*' }] });
const pageErrors = [];

try {
  let sw = context.serviceWorkers().find((w) => w.url().startsWith('chrome-extension://'));
  sw ??= await context.waitForEvent('serviceworker', { timeout: 30_000 });
  const id = new URL(sw.url()).host;
  record('the extension loads (--load-extension, new headless)', true, `id ${id}, service worker ${new URL(sw.url()).pathname}`);
  const optionsUrl = `chrome-extension://${id}/options.html`;
  let options;
  await check('on install, the options page opens', async () => {
    for (let i = 0; i < 100 && !options; i++) {
      options = context.pages().find((p) => p.url() === optionsUrl);
      if (!options) await new Promise((r) => setTimeout(r, 100));
    }
    assert(options, `open pages: ${context.pages().map((p) => p.url()).join(', ')}`);
  });
  options ??= await context.newPage();
  // onInstalled has run (it opened the options page).
  await check('the context-menu entry is registered (contextMenus.update on its id succeeds, on another id fails)', () => sw.evaluate(async () => {
    await chrome.contextMenus.update('mobileclip-tag-image', {});
    const other = await chrome.contextMenus.update('no-such-entry', {}).then(() => 'succeeded', (e) => e.message);
    if (other === 'succeeded') throw new Error('update on an unknown id succeeded: the check proves nothing');
    return `unknown id: ${other}`;
  }));
  options.on('pageerror', (e) => pageErrors.push(`options: ${e.message}`));

  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`page: ${e.message}`));
  const pageUrl = `${main.url}/tests/extension/page.html?other=${encodeURIComponent(other.url)}`;
  await page.goto(pageUrl);
  await page.waitForFunction(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0));
  const catUrl = `${other.url}/tests/fixtures/preprocess/chelsea_301x217.png`;
  const rocketUrl = `${main.url}/tests/fixtures/preprocess/rocket_513x260.png`;

  // What the context-menu entry does on a click on `srcUrl`.
  const click = (srcUrl) => sw.evaluate(async ({ srcUrl, pageUrl }) => {
    const tab = (await chrome.tabs.query({})).find((t) => t.url === pageUrl);
    return globalThis.onContextMenuClick({ menuItemId: 'mobileclip-tag-image', srcUrl, pageUrl, frameId: 0, mediaType: 'image' }, tab);
  }, { srcUrl, pageUrl });
  const overlay = (n) => page.locator('mobileclip-tags').nth(n);

  await check('before any weights are chosen, the overlay says so', async () => {
    const state = await click(catUrl);
    assert(state?.status === 'error' && state.code === 'NO_WEIGHTS', `state ${JSON.stringify(state)}`);
    await overlay(0).locator('.error').waitFor();
    const text = await overlay(0).locator('.body').innerText();
    assert(/options/.test(text), text);
    // Its link opens the options page (closed first, so that a new tab must appear).
    await options.close();
    const [opened] = await Promise.all([context.waitForEvent('page'), overlay(0).locator('button.link').click()]);
    await opened.waitForURL(optionsUrl);
    options = opened;
    options.on('pageerror', (e) => pageErrors.push(`options: ${e.message}`));
    return `${JSON.stringify(text)}; the link opened ${optionsUrl.replace(id, '<id>')}`;
  });

  // Set-up as a user would: the options page, a custom config file, weights downloaded from a URL.
  const labels = ['cat', 'dog', 'rocket', 'cup of coffee', 'astronaut', 'car', 'tree', 'house', 'flower', 'computer'];
  const templates = ['a photo of a {}.', 'a picture of a {}.'];
  const topK = 5;
  const weightsUrl = `${weightsServer.url}/${weightsFile}`;
  await check(`options page: ${model.name ? `model ${model.name}` : 'custom config file'} + download from a URL, checked and stored`, async () => {
    // (Re)load it: DevTools' browser-wide interception covers documents loaded after Fetch.enable,
    // and the install-time tab opened before.
    await options.goto(optionsUrl);
    await options.bringToFront();
    await options.waitForSelector('body[data-ready]');
    if (model.name) {
      await options.selectOption('#model', model.name);
    } else {
      await options.selectOption('#model', 'custom');
      await options.setInputFiles('#config', model.configFile);
    }
    await options.fill('#url', weightsUrl);
    await options.click('#download');
    await options.waitForSelector('#weights-status.ok, #weights-status.error', { timeout: 120_000 });
    const msg = await options.textContent('#weights-status');
    assert(await options.locator('#weights-status.ok').count() === 1, msg);
    // Kept: a compact file per tower, not the checkpoint.
    const rec = await options.evaluate(() => new Promise((resolve, reject) => {
      const req = indexedDB.open('mobileclip-extension');
      req.onsuccess = () => {
        const get = req.result.transaction('kv').objectStore('kv').get('weights');
        get.onsuccess = () => resolve({ keys: Object.keys(get.result), image: get.result.image?.size, text: get.result.text?.size, bytes: get.result.bytes });
      };
      req.onerror = () => reject(req.error);
    }));
    assert(!rec.keys.includes('blob') && rec.image > 0 && rec.text > 0 && rec.image + rec.text < rec.bytes, `stored: ${JSON.stringify(rec)}`);
    const current = await options.textContent('#current');
    assert(/image tower of .* text tower of .*not kept/.test(current), current);
    return `${msg} ${current}`;
  });
  await check('options page: labels, templates and top-k saved; the label pack\'s progress shown while it is encoded', async () => {
    await options.fill('#labels', labels.join('\n'));
    await options.click('summary');
    await options.fill('#templates', templates.join('\n'));
    await options.fill('#topk', String(topK));
    await options.evaluate(() => {
      window.__statuses = [];
      const el = document.getElementById('labels-status');
      new MutationObserver(() => window.__statuses.push(el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
    });
    await options.click('#save');
    await options.waitForSelector('#labels-status.ok');
    const seen = await options.evaluate(() => window.__statuses);
    const progress = seen.filter((t) => /Encoding the labels \(once\): \d+\/10…/.test(t));
    assert(progress.length > 0, `no label progress among ${JSON.stringify(seen)}`);
    assert(seen.some((t) => /Loading the text tower for the new labels/.test(t)), `new labels did not bring the text tower: ${JSON.stringify(seen)}`);
    return `${await options.textContent('#labels-status')} (progress seen: ${progress.map((t) => t.replace(/.*: /, '')).join(', ')})`;
  });
  await options.screenshot({ path: join(shots, 'options.png'), fullPage: true });
  await check("extension CSP: wasm compiles (the model loaded above), string code does not", async () => {
    const csp = JSON.parse(await readFile(join(ext, 'manifest.json'), 'utf8')).content_security_policy.extension_pages;
    assert(csp === "script-src 'self' 'wasm-unsafe-eval'; object-src 'self'", csp);
    // DevTools' own evaluate is exempt from the page's CSP, so the page compiles the string itself
    // (a string timer) and reports what happened.
    const r = await options.evaluate(() => new Promise((resolve) => {
      document.addEventListener('securitypolicyviolation', (e) => resolve(`blocked (${e.violatedDirective}: ${e.blockedURI})`), { once: true });
      setTimeout('window.__evalRan = true', 0); // eslint-disable-line no-implied-eval
      setTimeout(() => resolve(window.__evalRan ? 'string timer ran' : 'string timer did not run, no violation event'), 200);
    }));
    assert(r.startsWith('blocked'), r);
    return `${csp} → string code ${r}`;
  });

  // The package's own answer for the same bytes in a normal page (the cat from the page's origin),
  // the extension's way: the checkpoint converted to a compact image and text tower, labels
  // encoded by the text tower, ranked for the image tower's embedding.
  const expected = async (path) => page.evaluate(async ({ model, weights, path, labels, templates, topK }) => {
    const { MobileClip } = await import('/pkg/index.js');
    const [image, text] = await Promise.all(['image', 'text'].map(async (towers) => MobileClip.load({ weights: await MobileClip.convert({ model, weights, dtype: 'auto', towers }), backend: 'cpu' })));
    const bitmap = await createImageBitmap(await (await fetch(path)).blob());
    const pack = await text.labelEmbeddings(labels, { templates });
    const tags = await image.zeroShot(bitmap, pack, { topK });
    image.dispose();
    text.dispose();
    return tags;
  }, { model: model.name ?? model.config, weights: weightsUrl, path, labels, templates, topK });

  const tagged = async (n, srcUrl, path) => {
    const t = performance.now();
    let finished = false;
    const pending = click(srcUrl).finally(() => { finished = true; });
    const busy = new Set(); // the progress lines the overlay showed meanwhile
    while (!finished) {
      const s = await page.evaluate((n) => {
        const host = document.querySelectorAll('mobileclip-tags')[n];
        return host?.dataset.status === 'busy' ? host.shadowRoot.querySelector('.body').textContent : null;
      }, n);
      if (s) busy.add(s.replace(/\d+\/\d+/, 'i/n'));
      await new Promise((r) => setTimeout(r, 20));
    }
    const state = await pending;
    const ms = performance.now() - t;
    assert(state?.status === 'done', `state ${JSON.stringify(state)}`);
    assert(state.towers === 'image' && state.textTower === false, `tagged with towers ${state.towers}, text tower loaded: ${state.textTower}`);
    await overlay(n).locator('li.tag').first().waitFor();
    assert(await overlay(n).getAttribute('data-status') === 'done', 'overlay not done');
    const shown = await overlay(n).locator('li.tag').evaluateAll((lis) => lis.map((li) => ({ label: li.dataset.label, score: Number(li.dataset.score), text: li.innerText })));
    const want = await expected(path);
    assert(shown.length === topK, `${shown.length} tags shown, expected ${topK}`);
    assert(shown[0].label === want[0].label, `top tag ${shown[0].label}, the package says ${want[0].label}`);
    const diff = Math.max(...want.map((w, i) => (w.label === shown[i].label ? Math.abs(w.score - shown[i].score) : Infinity)));
    assert(diff <= 1e-5, `ranking differs from the package's: ${JSON.stringify(shown)} vs ${JSON.stringify(want)}`);
    const worker = Object.entries(state.timings).map(([k, v]) => `${k} ${Math.round(v)}`).join(', ');
    // the manifest isolates the extension's pages (COOP/COEP keys): the worker runs on threads
    assert(state.backend === 'cpu' && state.threads >= 1 && /; (\d+ threads|1 thread \(one core\))$/.test(state.backendReason), `backend "${state.backend}" (${state.backendReason}), ${state.threads} threads`);
    return `backend "${state.backend}" (${state.backendReason}); top "${shown[0].label}" (${shown[0].text.replace(/\s+/g, ' ')}), max |Δscore| vs package ${diff.toExponential(1)}; ${Math.round(ms)} ms click → tags (worker ms: ${worker}); progress shown: ${[...busy].map((b) => JSON.stringify(b)).join(', ') || 'none caught'}`;
  };
  await check('cross-origin photo (no CORS): tags drawn over it equal the package\'s zeroShot', () => tagged(0, catUrl, '/tests/fixtures/preprocess/chelsea_301x217.png'));
  await check('same-origin photo, second click', () => tagged(1, rocketUrl, '/tests/fixtures/preprocess/rocket_513x260.png'));
  await check('the overlay sits on its image', async () => {
    for (const [n, sel] of [[0, '#cat'], [1, '#rocket']]) {
      const o = await overlay(n).boundingBox();
      const i = await page.locator(sel).boundingBox();
      assert(o.x >= i.x && o.y >= i.y && o.x + o.width <= i.x + i.width && o.y < i.y + i.height, `${sel}: overlay ${JSON.stringify(o)}, image ${JSON.stringify(i)}`);
    }
  });
  await page.screenshot({ path: join(shots, 'tagged.png'), fullPage: true });
  await check('the close button removes the overlay', async () => {
    await overlay(1).locator('button.close').click();
    assert(await page.locator('mobileclip-tags').count() === 1, 'overlay still there');
  });

  await check('a missing image gives an error overlay, not a hang', async () => {
    const state = await click(`${main.url}/no-such-image.png`);
    assert(state?.status === 'error' && /HTTP 404/.test(state.text), JSON.stringify(state));
    return state.text;
  });

  await check('no request from a page or the extension went anywhere but the test servers (DevTools, browser-wide)', async () => {
    const { targetInfos } = await cdp.send('Target.getTargets');
    const optionsTarget = targetInfos.find((t) => t.url === optionsUrl)?.targetId;
    const offscreen = targetInfos.find((t) => t.url === `chrome-extension://${id}/offscreen.html`);
    assert(offscreen, `no offscreen document among ${targetInfos.map((t) => `${t.type} ${t.url}`).join(', ')}`);
    const web = intercepted.filter((r) => /^https?:/.test(r.url));
    const outside = web.filter((r) => !local.has(new URL(r.url).host));
    assert(outside.length === 0, `requests elsewhere: ${outside.map((r) => r.url).join(', ')}`);
    const file = (r) => new URL(r.url).pathname.split('/').pop();
    const byOffscreen = web.filter((r) => r.frameId === offscreen.targetId);
    const byOptions = web.filter((r) => r.frameId === optionsTarget);
    assert(byOffscreen.some((r) => r.url === catUrl), `the offscreen document's fetch of the cat was not seen: ${JSON.stringify(byOffscreen)}`);
    assert(byOptions.some((r) => r.url === weightsUrl), `the options page's download of the weights was not seen: ${JSON.stringify(byOptions)}`);
    return `${web.length} http(s) requests, all to 127.0.0.1; offscreen document + worker: ${byOffscreen.map(file).join(', ')}; options page: ${byOptions.map(file).join(', ')}`;
  });
  await check('the proxy saw nothing leave but Chromium\'s own background requests (refused)', async () => {
    const host = (r) => (r.method === 'CONNECT' ? r.url.replace(/:\d+$/, '') : new URL(r.url).hostname);
    const outside = proxied.filter((r) => r.method === 'CONNECT' || !local.has(new URL(r.url).host));
    const unexpected = outside.filter((r) => !CHROMIUM_OWN.has(host(r)));
    assert(unexpected.length === 0, `requests elsewhere: ${unexpected.map((r) => `${r.method} ${r.url}`).join(', ')}`);
    return `${proxied.length} requests; ${outside.length} refused, all Chromium's own: ${[...new Set(outside.map((r) => `${r.method} ${host(r)}`))].join(', ')}`;
  });
  await check('no page errors', async () => assert(pageErrors.length === 0, pageErrors.join('; ')));
} catch (e) {
  record('extension test', false, e?.stack ?? String(e));
} finally {
  await context.close();
  for (const s of [main.server, other.server, weightsServer.server, proxy]) s.close();
  await rm(tmp, { recursive: true, force: true });
}
const failed = results.filter((r) => !r.ok).length;
console.log(`extension: ${results.length - failed} passed, ${failed} failed (${((performance.now() - t0) / 1000).toFixed(1)} s; screenshots in ${shots})`);
process.exit(failed ? 1 : 0);
