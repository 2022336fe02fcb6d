// As a user would: `npm pack` the package, install the tarball into a fresh app, then open it in
// the three browser engines (tests/browser/engines.mjs) twice each: a plain <script type="module">
// page (import map) and a webpack 5 bundle; in Chromium both once more cross-origin isolated (the
// threaded module, in the page and in the worker helper). One line per page naming the engine; screenshots in
// target/browser-screenshots/package-<page>-<engine>.png.
//   node tests/package/run.mjs      MOBILECLIP_ENGINES=chromium,firefox,webkit (default: all three)
// Needs pkg/ (tools/build-wasm.sh), webpack in node_modules (npm ci), the browsers (tools/setup.sh browsers).
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inEngine, report, runPage, selectedEngines } from '../browser/engines.mjs';
import { serve } from '../browser/server.mjs';
import { ISOLATION_HEADERS } from '../../tools/serve.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const here = fileURLToPath(new URL('./', import.meta.url));
const shots = join(root, 'target', 'browser-screenshots');
await mkdir(shots, { recursive: true });
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

  const server = await serve(app, {}, { probe: true });
  const isolated = await serve(app, ISOLATION_HEADERS, { probe: true });
  try {
    for (const engine of selectedEngines()) {
      failed += await inEngine(engine, {}, `package/${engine}`, async (browser) => {
        const results = [], errors = [];
        const pages = [['npm pack → plain <script type="module"> page', 'index.html'], ['npm pack → webpack 5 bundle', 'bundled.html']];
        const runs = pages.map(([name, page]) => [name, page, server]);
        if (engine === 'chromium') runs.push(...pages.map(([name, page]) => [`${name}, cross-origin isolated`, page, isolated]));
        for (const [name, page, host] of runs) {
          const shot = join(shots, `package-${page.replace('.html', '')}${host === isolated ? '-isolated' : ''}-${engine}.png`);
          const r = await runPage(browser, `${host.url}/${page}`, { done: () => window.__result, shot, timeout: 120_000 });
          results.push({ name, ok: !!r.value?.ok, detail: r.value?.detail ?? '' });
          errors.push(...r.errors);
        }
        console.log(`\npackage in ${browser.version}:`);
        return report(`package/${engine}`, engine, results, errors);
      });
    }
  } finally {
    server.server.close();
    isolated.server.close();
  }
} catch (e) {
  failed += report('package', 'all engines', [], [`packaging: ${e.message}`]);
} finally {
  await rm(tmp, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
