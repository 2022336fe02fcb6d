// Where the demo gets each model's weights: the one place that turns configs/*.json into the
// browser's download URLs and the Content-Security-Policy's list of weights origins.
// Read at build time by webpack.config.js (Node); the result is compiled into the page.

/**
 * Apple's CDN (docs-assets.developer.apple.com) sends no CORS headers, so a page cannot read it:
 * its v1 checkpoints come from the same files in Apple's Hugging Face repositories instead.
 */
function browserUrl(name, url) {
  const u = new URL(url);
  if (u.hostname === 'docs-assets.developer.apple.com') {
    return `https://huggingface.co/apple/${name}/resolve/main/${u.pathname.split('/').pop()}`;
  }
  return url;
}

/**
 * Models that cannot run in a browser yet, and why (shown next to them, not selectable): none
 * since weights stream into wasm tensor by tensor (MobileCLIP2-L-14's 1.7 GB checkpoint loads
 * within its 1.7 GB of parameters + 15 %).
 */
const UNSUPPORTED = {};

/** "apple/MobileCLIP-S2-OpenCLIP · open_clip_model.safetensors" for a Hugging Face file URL. */
function fileLabel(url) {
  const u = new URL(url);
  const parts = u.pathname.split('/').filter(Boolean);
  return u.hostname === 'huggingface.co' && parts.length >= 3 ? `${parts[0]}/${parts[1]} · ${parts.at(-1)}` : `${u.hostname} · ${parts.at(-1)}`;
}

/**
 * The published files the page can load a model from, `[{ label, url }]`: the config's own, then
 * (v1 models) the same model in open_clip's layout (`apple/MobileCLIP-S1/S2/B-OpenCLIP`,
 * open_clip_model.safetensors), which the package detects by its tensor names.
 */
function publishedFiles(c) {
  const files = [browserUrl(c.name, c.weights.url)];
  if (c.open_clip?.weights?.url) files.push(c.open_clip.weights.url);
  return files.map((url) => ({ label: fileLabel(url), url }));
}

/** `[{ name, url, files, unsupported? }]` from the parsed configs, sorted by name (`url`: the first of `files`). */
export function demoModels(configs) {
  return configs
    .map((c) => {
      const files = publishedFiles(c);
      return { name: c.name, url: files[0].url, files, ...(UNSUPPORTED[c.name] ? { unsupported: UNSUPPORTED[c.name] } : {}) };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Origins the page may connect to besides its own: the weights hosts and the CDNs Hugging Face
 * redirects downloads to (cas-bridge.xethub.hf.co, cdn-lfs*.hf.co, ...).
 */
export function weightsOrigins(models) {
  const origins = new Set(models.flatMap((m) => m.files.map((f) => new URL(f.url).origin)));
  if ([...origins].some((o) => o === 'https://huggingface.co')) {
    origins.add('https://*.huggingface.co');
    origins.add('https://*.hf.co');
  }
  return [...origins].sort();
}

/** The page's Content-Security-Policy: network access only to itself and the weights origins. */
export function contentSecurityPolicy(models) {
  return [
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "worker-src 'self'",
    `connect-src 'self' ${weightsOrigins(models).join(' ')}`,
    "img-src 'self' blob: data:",
    "media-src 'self' blob: mediastream:",
    "style-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'none'",
  ].join('; ');
}
