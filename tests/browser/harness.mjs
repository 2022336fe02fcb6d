// Shared helpers of the in-page test suites: each records rows in the page's table and the
// results in window.__results for tests/browser/run.mjs.
import { MobileClipError } from '/pkg/index.js';
import { parseSafetensors } from '/tests/js/safetensors.mjs';

export const params = new URLSearchParams(location.search);
export const crossOrigin = params.get('cross'); // another origin serving the same files, without CORS
const results = [];
export const TOL = 1e-4;

export function record(name, ok, detail = '', ms = undefined) {
  results.push({ name, ok, detail, ms });
  const row = document.createElement('tr');
  for (const [text, cls] of [[ok ? 'pass' : 'FAIL', ok ? 'ok' : 'fail'], [name], [detail]]) {
    const cell = row.insertCell();
    cell.textContent = text; // details quote markup such as "<img>": never parse them
    if (cls) cell.className = cls;
  }
  document.getElementById('results').append(row);
}

export async function check(name, f) {
  const t0 = performance.now();
  try {
    const detail = await f();
    record(name, true, detail ?? '', performance.now() - t0);
  } catch (e) {
    record(name, false, `${e?.code ?? ''} ${e?.message ?? e}`, performance.now() - t0);
  }
}

export function assert(cond, msg) { if (!cond) throw new Error(msg); }

export async function rejectsWith(p, code) {
  try { await p; } catch (e) {
    assert(e instanceof MobileClipError, `not a MobileClipError: ${e}`);
    assert(e.code === code, `code ${e.code}, expected ${code}: ${e.message}`);
    return e.message;
  }
  throw new Error(`did not reject (expected ${code})`);
}

export async function safetensors(url) {
  return parseSafetensors(await (await fetch(url)).arrayBuffer());
}

export function maxDiff(rows, flat) {
  let m = 0, i = 0;
  for (const r of rows) for (const v of r) m = Math.max(m, Math.abs(v - flat[i++]));
  assert(i === flat.length, 'embedding count differs');
  return m;
}

export function loadImg(src, cors) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    if (cors) img.crossOrigin = 'anonymous';
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`could not load ${src}`));
    img.src = src;
  });
}

export const fx = (name, file) => `/tests/fixtures/models/${name}/${file}`;
export const config = async (name) => (await fetch(fx(name, 'config.json'))).json();

/** Publishes the results (the runner waits for window.__results). */
export function finish() {
  const failed = results.filter((r) => !r.ok).length;
  document.getElementById('status').textContent = `${results.length - failed} passed, ${failed} failed`;
  window.__results = results;
}

/**
 * Compares a loaded model with the reference outputs in `io` (a parsed io.safetensors): embeds
 * its pixels and token ids, asserts both max |Δ| ≤ `tol`, returns the figures as text. `sfx` is
 * "_reparam" for a re-parameterised checkpoint's outputs.
 */
export async function assertParity(model, io, tol, sfx = '') {
  const di = maxDiff(await model.encodePixels(io.image.data, io.image.shape[0]), io[`image_embeddings${sfx}`].data);
  const dt = maxDiff(await model.encodeTokens(Uint32Array.from(io.tokens.data), io.tokens.shape[0]), io[`text_embeddings${sfx}`].data);
  assert(di <= tol && dt <= tol, `image ${di}, text ${dt}`);
  return `image max|Δ| ${di.toExponential(2)}, text max|Δ| ${dt.toExponential(2)}`;
}
