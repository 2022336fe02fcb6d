// Assembles the loadable extension: src/ plus the npm package's runtime files under mobileclip/.
//   node examples/extension/build.mjs [--pkg DIR] [--out DIR] [--webgpu]
// --pkg: the built package (default: pkg/ of this repository, from tools/build-wasm.sh; an
// installed node_modules/mobileclip-wasm works too). --out: default target/extension.
// --webgpu: also copy the package's WebGPU module (gpu/), for BACKEND 'auto' in settings.js; the
// extension runs on the CPU and leaves it out by default.
import { cp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = fileURLToPath(new URL('./', import.meta.url));
const root = resolve(here, '../..');
const { values } = parseArgs({ options: { pkg: { type: 'string' }, out: { type: 'string' }, webgpu: { type: 'boolean' } } });
const pkg = resolve(values.pkg ?? join(root, 'pkg'));
const out = resolve(values.out ?? join(root, 'target', 'extension'));

// What a browser loads: the package's files but its types (and the WebGPU module unless asked).
const manifestOf = async (dir) => JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
const { version, files } = await manifestOf(pkg).catch(() => {
  console.error(`build.mjs: no package at ${pkg}; build it first (tools/build-wasm.sh) or pass --pkg`);
  process.exit(1);
});
const FILES = files.filter((f) => !f.endsWith('.d.ts') && (values.webgpu || !f.startsWith('gpu/')));
for (const f of ['index.js', 'cpu/mobileclip_wasm.js', 'cpu/mobileclip_wasm_bg.wasm']) {
  await stat(join(pkg, f)).catch(() => {
    console.error(`build.mjs: ${join(pkg, f)} is missing; build the package first (tools/build-wasm.sh) or pass --pkg`);
    process.exit(1);
  });
}

await rm(out, { recursive: true, force: true });
await cp(join(here, 'src'), out, { recursive: true });
for (const f of FILES) {
  if (!(await stat(join(pkg, f)).catch(() => null))) continue; // listed but not built (e.g. MOBILECLIP_GPU=0)
  await mkdir(join(out, 'mobileclip', f, '..'), { recursive: true });
  await cp(join(pkg, f), join(out, 'mobileclip', f));
}
// The extension's version follows the package's.
const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
manifest.version = version.replace(/[-+].*$/, ''); // Chrome takes 1-4 dot-separated integers
await writeFile(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
console.log(out);
