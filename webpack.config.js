// The demo page (www/) as a static folder: `npm run build` → dist/, which works from any static
// host and from a sub-path (publicPath 'auto', relative URLs only). It imports the npm package as
// a user would, by name, resolved to the built package in pkg/ (tools/build-wasm.sh).
//   --env out=DIR   output folder (default dist)
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import webpack from 'webpack';
import { contentSecurityPolicy, demoModels } from './www/models.mjs';

const root = dirname(fileURLToPath(import.meta.url));
const www = join(root, 'www');
const pkg = process.env.MOBILECLIP_PKG ?? join(root, 'pkg');

const configs = readdirSync(join(root, 'configs')).filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(join(root, 'configs', f), 'utf8')));
const models = demoModels(configs);

/** Writes index.html (with the CSP) and copies the static files next to the bundle. */
class StaticFiles {
  apply(compiler) {
    compiler.hooks.thisCompilation.tap('StaticFiles', (compilation) => {
      compilation.hooks.processAssets.tap({ name: 'StaticFiles', stage: webpack.Compilation.PROCESS_ASSETS_STAGE_ADDITIONAL }, () => {
        const main = [...compilation.entrypoints.get('main').getFiles()].find((f) => f.endsWith('.js'));
        const html = readFileSync(join(www, 'index.html'), 'utf8')
          .replace('%CSP%', contentSecurityPolicy(models))
          .replace('%MAIN%', main);
        compilation.emitAsset('index.html', new webpack.sources.RawSource(html));
        for (const f of ['style.css', 'icon.svg', 'samples/LICENSE.md']) {
          compilation.emitAsset(f, new webpack.sources.RawSource(readFileSync(join(www, f))));
          compilation.fileDependencies.add(join(www, f));
        }
        compilation.fileDependencies.add(join(www, 'index.html'));
      });
    });
  }
}

export default (env = {}) => ({
  mode: 'production',
  context: www,
  entry: './main.js',
  output: {
    path: env.out ? resolve(env.out) : join(root, 'dist'),
    publicPath: 'auto',
    filename: 'main.[contenthash:8].js',
    chunkFilename: '[name].[contenthash:8].js',
    assetModuleFilename: 'assets/[name].[contenthash:8][ext]',
    clean: true,
  },
  resolve: {
    alias: {
      'mobileclip-wasm$': join(pkg, 'index.js'),
      'mobileclip-wasm/worker$': join(pkg, 'worker.js'),
    },
  },
  plugins: [
    new webpack.DefinePlugin({ __DEMO_MODELS__: JSON.stringify(models) }),
    new StaticFiles(),
  ],
  devtool: false,
  performance: { hints: false },
});
