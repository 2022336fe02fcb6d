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

/** `[{ name, url, unsupported? }]` from the parsed configs, sorted by name. */
export function demoModels(configs) {
  return configs
    .map((c) => ({ name: c.name, url: browserUrl(c.name, c.weights.url), ...(UNSUPPORTED[c.name] ? { unsupported: UNSUPPORTED[c.name] } : {}) }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Origins the page may connect to besides its own: the weights hosts and the CDNs Hugging Face
 * redirects downloads to (cas-bridge.xethub.hf.co, cdn-lfs*.hf.co, ...).
 */
export function weightsOrigins(models) {
  const origins = new Set(models.map((m) => new URL(m.url).origin));
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
