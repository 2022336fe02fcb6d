// webpack 5 build of the sample app (tests/package/run.mjs), as a user's project would have it:
// the package's wasm is picked up through `new URL(..., import.meta.url)` as an asset.
const path = require('node:path');

module.exports = (env) => ({
  mode: 'production',
  context: env.app,
  entry: './app.js',
  output: { path: path.join(env.app, 'dist'), filename: 'main.js', publicPath: 'auto' },
  resolve: { modules: [path.join(env.app, 'node_modules'), 'node_modules'] },
  experiments: { topLevelAwait: true },
  performance: { hints: false },
});
