// As a user would: `npm pack` the package, install the tarball into a fresh app, then open it in
// headless Chromium: a plain <script type="module"> page (import map) and a webpack 5 bundle, each
// served cross-origin isolated (two threads) and not (one).
// Needs pkg/ (tools/build-wasm.sh), webpack in node_modules (npm ci), /usr/bin/chromium.
import { launch } from '../browser/chromium.mjs';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '../browser/server.mjs';
import { ISOLATION_HEADERS } from '../../tools/serve.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const here = fileURLToPath(new URL('./', import.meta.url));
const tmp = await mkdtemp(join(tmpdir(), 'mobileclip-pack-'));
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'] }).toString();
let failed = 0;
try {
  run('npm', ['pack', join(root, 'pkg'), '--pack-destination', tmp, '--silent'], root);
  const tarball = (await readdir(tmp)).find((f) => f.endsWith('.tgz'));
  const app = join(tmp, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'sample-app', private: true, type: 'module' }));
  run('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock', join(tmp, tarball)], app);
  for (const f of ['app.js', 'index.html', 'bundled.html']) await copyFile(join(here, f), join(app, f));
  await copyFile(join(root, 'tests/js/safetensors.mjs'), join(app, 'safetensors.mjs'));
  await symlink(join(root, 'tests/fixtures/models'), join(app, 'fixtures'));
  run(join(root, 'node_modules/.bin/webpack'), ['--config', join(here, 'webpack.config.cjs'), '--env', `app=${app}`], root);

  const servers = { 'cross-origin isolated': await serve(app, ISOLATION_HEADERS), 'not isolated': await serve(app) };
  const profile = join(tmp, 'profile');
  const browser = await launch(profile);
  try {
    for (const [name, page, how] of ['cross-origin isolated', 'not isolated'].flatMap((how) => [['npm pack → plain <script type="module"> page', 'index.html', how], ['npm pack → webpack 5 bundle', 'bundled.html', how]])) {
      const tab = await browser.newPage();
      const errors = [];
      tab.on('pageerror', (e) => errors.push(e.message));
      await tab.goto(`${servers[how].url}/${page}`);
      const r = await tab.waitForFunction(() => window.__result, null, { timeout: 120_000 }).then((h) => h.jsonValue()).catch((e) => ({ ok: false, detail: e.message }));
      const ok = r.ok && errors.length === 0;
      failed += ok ? 0 : 1;
      console.log(`${ok ? 'ok    ' : 'FAILED'} ${name}, ${how} — ${r.detail}${errors.length ? ` (page errors: ${errors.join('; ')})` : ''}`);
    }
  } finally {
    await browser.close();
    for (const s of Object.values(servers)) s.server.close();
  }
} catch (e) {
  failed += 1;
  console.log(`FAILED packaging: ${e.message}`);
} finally {
  await rm(tmp, { recursive: true, force: true });
}
console.log(`package: ${4 - Math.min(failed, 4)} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
