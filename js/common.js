// Internals shared by the main-thread API (index.js) and the worker helper (worker.js): the error
// class, reading a weights download with progress, checking an image source and reading its pixels.

/** Error thrown by every method: `code` is stable, `message` says what was wrong. */
export class MobileClipError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'MobileClipError';
    this.code = code;
  }
}

/** A value's type for error messages: "null", "number", "HTMLBodyElement", ... */
export function describe(v) {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  return v.constructor?.name ?? 'object';
}

/** The body of a weights download as bytes, reporting `{loaded, total}` per chunk; abortable. */
export async function readResponse(response, onProgress, signal) {
  if (!response.ok) throw new MobileClipError('WEIGHTS_DOWNLOAD', `downloading the weights failed: HTTP ${response.status} ${response.statusText}`);
  const total = Number(response.headers.get('content-length')) || 0;
  if (!response.body) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    if (signal?.aborted) throw new MobileClipError('ABORTED', 'loading was aborted');
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onProgress?.({ loaded, total });
  }
  const out = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}

/** `v instanceof globalThis[name]`, false where that class does not exist (Node, workers). */
export const isA = (v, name) => typeof globalThis[name] !== 'undefined' && v instanceof globalThis[name];

/**
 * Checks an image source and says what it is: `{ kind: 'pixels', data, width, height }` for
 * ImageData or a `{data, width, height}` RGBA buffer, `{ kind: 'canvas', width, height }` for a
 * canvas or OffscreenCanvas, `{ kind: 'drawable', width, height }` for an ImageBitmap, `<img>`,
 * `<video>` or VideoFrame. Throws INVALID_IMAGE naming what is wrong (type, empty, not loaded).
 */
export function imageSource(src) {
  const bad = (msg) => new MobileClipError('INVALID_IMAGE', msg);
  if (src && typeof src === 'object' && 'data' in src && 'width' in src && 'height' in src && !('getContext' in src)) {
    const { data, width, height } = src;
    if (!(data instanceof Uint8ClampedArray || data instanceof Uint8Array)) throw bad(`image data must be a Uint8ClampedArray or Uint8Array, got ${describe(data)}`);
    if (!width || !height) throw bad(`the image is empty (${width}x${height})`);
    return { kind: 'pixels', data, width, height };
  }
  if (src && typeof src.getContext === 'function') {
    if (!src.width || !src.height) throw bad(`the canvas is empty (${src.width}x${src.height})`);
    return { kind: 'canvas', width: src.width, height: src.height };
  }
  if (!['ImageBitmap', 'HTMLImageElement', 'HTMLVideoElement', 'VideoFrame'].some((t) => isA(src, t))) {
    throw bad(`unsupported image source: ${describe(src)} (use ImageData, a canvas, OffscreenCanvas, ImageBitmap, <img> or <video>)`);
  }
  const width = src.naturalWidth ?? src.videoWidth ?? src.displayWidth ?? src.width;
  const height = src.naturalHeight ?? src.videoHeight ?? src.displayHeight ?? src.height;
  if (!width || !height) throw bad(`the image has no pixels (${width ?? 0}x${height ?? 0}); is it loaded?`);
  return { kind: 'drawable', width, height };
}

function check2d(ctx) {
  if (!ctx) throw new MobileClipError('INVALID_IMAGE', 'could not get a 2d context to read the image');
  return ctx;
}

/**
 * Pixels of an image source: `{ data: Uint8Array (RGBA), width, height }`. ImageData-like sources
 * are viewed, not copied; a canvas is read with getImageData; an ImageBitmap, `<img>`, `<video>`
 * or VideoFrame is drawn on a canvas first. A cross-origin image without CORS: TAINTED_IMAGE.
 */
export function toRgba(src) {
  const img = imageSource(src);
  const { width: w, height: h } = img;
  if (img.kind === 'pixels') return { data: new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.byteLength), width: w, height: h };
  let ctx;
  if (img.kind === 'canvas') { // HTMLCanvasElement, OffscreenCanvas
    ctx = check2d(src.getContext('2d', { willReadFrequently: true }));
  } else {
    if (typeof OffscreenCanvas === 'undefined' && typeof document === 'undefined') {
      throw new MobileClipError('INVALID_IMAGE', `cannot read the pixels of this ${describe(src)} here: this worker has no OffscreenCanvas (Safari before 16.4); pass ImageData or {data, width, height}, or use mobileclip-wasm/worker, which reads them on the page`);
    }
    const canvas = typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(w, h) : Object.assign(document.createElement('canvas'), { width: w, height: h });
    ctx = check2d(canvas.getContext('2d', { willReadFrequently: true }));
    ctx.drawImage(src, 0, 0, w, h);
  }
  try {
    const d = ctx.getImageData(0, 0, w, h);
    return { data: new Uint8Array(d.data.buffer, d.data.byteOffset, d.data.byteLength), width: w, height: h };
  } catch (e) {
    if (e && e.name === 'SecurityError') throw new MobileClipError('TAINTED_IMAGE', 'the image is cross-origin without CORS (a tainted canvas cannot be read)');
    throw e;
  }
}
