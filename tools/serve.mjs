// A small static file server for the demo (tools/demo.sh) and its tests: serves folders under URL
// prefixes, with the page's Content-Security-Policy (read from the <meta> of a served index.html)
// also sent as a header, so that it covers the page's worker too, and the headers that make the
// page cross-origin isolated (COOP + COEP), so that the package can run on several threads.
//   node tools/serve.mjs [DIR] [--port 8080] [--host localhost] [--no-isolation]
import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.json': 'application/json',
  '.wasm': 'application/wasm', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png', '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg', '.md': 'text/markdown; charset=utf-8', '.txt': 'text/plain; charset=utf-8',
};

/** The CSP of an HTML page's <meta http-equiv="Content-Security-Policy">, or null. */
async function metaCsp(file) {
  const html = await readFile(file, 'utf8');
  return /http-equiv=["']?Content-Security-Policy["']?\s+content=(["'])(.*?)\1/i.exec(html)?.[2] ?? null;
}

/**
 * Headers of a cross-origin-isolated page: its documents and workers get SharedArrayBuffer and
 * shared WebAssembly memory (the package's threaded CPU module); cross-origin resources then need
 * CORS (fetch) or CORP headers, which the model hosts the demo offers send.
 */
export const ISOLATION_HEADERS = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

/**
 * Serves `mounts` (`{ '/prefix/': '/dir' }`, longest prefix first) on `host`:`port` (0: any
 * free port), cross-origin isolated unless `isolated` is false. Resolves to `{ server, url,
 * requests }`; `requests` logs `{ method, url }`.
 */
export function serveStatic(mounts, { port = 0, host = '127.0.0.1', isolated = true } = {}) {
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  const requests = [];
  const server = createServer(async (req, res) => {
    requests.push({ method: req.method, url: req.url });
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw Object.assign(new Error('method'), { status: 405 });
      let path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
      const prefix = prefixes.find((p) => path.startsWith(p) || `${path}/` === p);
      if (!prefix) throw Object.assign(new Error('not found'), { status: 404 });
      if (`${path}/` === prefix) { res.writeHead(301, { location: prefix }); res.end(); return; }
      const dir = resolve(mounts[prefix]);
      let file = join(dir, normalize(`/${path.slice(prefix.length)}`));
      if (!file.startsWith(dir)) throw Object.assign(new Error('outside'), { status: 404 });
      let info = await stat(file).catch(() => null);
      if (info?.isDirectory()) { file = join(file, 'index.html'); info = await stat(file).catch(() => null); }
      if (!info?.isFile()) throw Object.assign(new Error('not found'), { status: 404 });
      const headers = {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'content-length': info.size,
        'x-content-type-options': 'nosniff',
        'cache-control': 'no-cache',
        ...(isolated ? ISOLATION_HEADERS : {}),
      };
      const csp = file.endsWith('.html') ? await metaCsp(file) : await metaCsp(join(dir, 'index.html')).catch(() => null);
      if (csp) headers['content-security-policy'] = csp;
      res.writeHead(200, headers);
      if (req.method === 'HEAD') res.end();
      else createReadStream(file).pipe(res);
    } catch (e) {
      res.writeHead(e.status ?? 500, { 'content-type': 'text/plain' });
      res.end(e.status === 405 ? 'method not allowed' : 'not found');
    }
  });
  return new Promise((ok) => server.listen(port, host, () => {
    const { port: p } = server.address();
    ok({ server, requests, url: `http://${host.includes(':') ? `[${host}]` : host}:${p}` });
  }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args.splice(i, 2)[1] : def; };
  const port = Number(opt('--port', process.env.PORT ?? 8080));
  const host = opt('--host', 'localhost');
  const isolated = !args.includes('--no-isolation');
  const dir = args.filter((a) => !a.startsWith('--'))[0] ?? 'dist';
  const { url } = await serveStatic({ '/': dir }, { port, host, isolated });
  console.log(`Serving ${dir} at ${url}/${isolated ? ', cross-origin isolated' : ''} (Ctrl+C stops)`);
}
