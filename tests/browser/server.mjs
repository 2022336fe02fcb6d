// A static file server for the browser tests, on the loopback interface only.
import { createReadStream } from 'node:fs';
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.json': 'application/json',
  '.wasm': 'application/wasm', '.png': 'image/png', '.css': 'text/css', '.safetensors': 'application/octet-stream',
  '.pt': 'application/octet-stream', '.ts': 'text/plain',
};

// The error probe (`probe` option): a classic script put first into every HTML page, recording
// what would otherwise only reach a browser's own console, the same way in every engine
// (engines.mjs reads it: classic WebDriver has no console or error events).
const PROBE_PATH = '/__mobileclip_probe.js';
const PROBE = `(() => {
  const errors = (window.__pageErrors = []);
  const add = (msg) => { errors.push(msg); window.__pageErrorAt ??= performance.now(); };
  addEventListener('error', (e) => {
    if (e instanceof ErrorEvent) add(\`uncaught \${e.message} (\${e.filename}:\${e.lineno})\`);
    else if (e.target instanceof HTMLScriptElement) add(\`script failed to load: \${e.target.src}\`);
  }, true);
  addEventListener('unhandledrejection', (e) => add(\`unhandled rejection: \${e.reason?.message ?? e.reason}\`));
  const consoleError = console.error;
  console.error = (...args) => { add(\`console.error: \${args.join(' ')}\`); consoleError.apply(console, args); };
})();
`;

/**
 * Serves `root` on 127.0.0.1 (random port); `headers` are added to every response. With
 * `probe`, HTML pages get the error probe above as their first script. `routes` maps paths to
 * functions whose (awaited) value is sent as JSON: what a page asks of the test runner, the
 * same way in every engine (e.g. its worker threads' CPU time).
 */
export function serve(root, headers = {}, { probe = false, routes = {} } = {}) {
  const requests = [];
  const server = createServer(async (req, res) => {
    requests.push(req.url);
    const pathname = new URL(req.url, 'http://x').pathname;
    if (Object.hasOwn(routes, pathname)) {
      const body = Buffer.from(JSON.stringify(await routes[pathname]()));
      res.writeHead(200, { 'content-type': TYPES['.json'], 'content-length': body.length, 'cache-control': 'no-store', ...headers });
      res.end(body);
      return;
    }
    if (probe && pathname === PROBE_PATH) {
      res.writeHead(200, { 'content-type': TYPES['.js'], ...headers });
      res.end(PROBE);
      return;
    }
    const path = normalize(decodeURIComponent(pathname)).replace(/^(\.\.[/\\])+/, '');
    const file = join(root, path);
    try {
      const info = await stat(file);
      if (!info.isFile()) throw new Error('not a file');
      if (extname(file) !== '.html') { // streamed: full-size checkpoints are gigabytes
        res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': info.size, ...headers });
        createReadStream(file).on('error', () => res.destroy()).pipe(res);
        return;
      }
      let body = await readFile(file);
      if (probe && extname(file) === '.html') {
        const html = body.toString();
        const at = html.match(/<head[^>]*>/i);
        const i = at ? at.index + at[0].length : 0;
        body = Buffer.from(`${html.slice(0, i)}<script src="${PROBE_PATH}"></script>${html.slice(i)}`);
      }
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': body.length, ...headers });
      res.end(body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, requests, url: `http://127.0.0.1:${server.address().port}` })));
}
