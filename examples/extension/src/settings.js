// Settings shared by the service worker, the options page and the model worker.

/** The context-menu entry's id. */
export const MENU_ID = 'mobileclip-tag-image';

/**
 * The backend the model runs on: 'cpu' (wasm SIMD128, the only one the extension is tested with).
 * 'auto' would take WebGPU where the browser offers an adapter; it needs the package's gpu/
 * module (build.mjs --webgpu) and is untested in an extension's worker.
 */
export const BACKEND = 'cpu';

/** Models worth running on a CPU in a browser, with their official Hugging Face checkpoints. */
export const MODELS = [
  { name: 'MobileCLIP-S0', url: 'https://huggingface.co/apple/MobileCLIP-S0/resolve/main/mobileclip_s0.pt' },
  { name: 'MobileCLIP-S1', url: 'https://huggingface.co/apple/MobileCLIP-S1/resolve/main/mobileclip_s1.pt' },
  { name: 'MobileCLIP-S2', url: 'https://huggingface.co/apple/MobileCLIP-S2/resolve/main/mobileclip_s2.pt' },
  { name: 'MobileCLIP2-S0', url: 'https://huggingface.co/timm/MobileCLIP2-S0-OpenCLIP/resolve/main/open_clip_model.safetensors' },
  { name: 'MobileCLIP2-S2', url: 'https://huggingface.co/timm/MobileCLIP2-S2-OpenCLIP/resolve/main/open_clip_model.safetensors' },
];

/** Everyday objects and kinds of picture; editable in the options page. */
export const DEFAULT_LABELS = [
  'cat', 'dog', 'bird', 'horse', 'person', 'group of people', 'baby', 'car', 'bicycle', 'motorcycle',
  'bus', 'train', 'airplane', 'boat', 'rocket', 'house', 'city street', 'bridge', 'tree', 'flower',
  'mountain', 'beach', 'food', 'cup of coffee', 'fruit', 'book', 'computer', 'mobile phone', 'chair',
  'clock', 'toy', 'painting', 'chart or diagram', 'screenshot of text', 'logo',
];

export const DEFAULT_SETTINGS = {
  labels: DEFAULT_LABELS,
  templates: ['a photo of a {}.'],
  topK: 5,
};

/** The user's settings from chrome.storage.local, defaults filled in. */
export async function loadSettings() {
  const s = await chrome.storage.local.get(DEFAULT_SETTINGS);
  return { labels: s.labels, templates: s.templates, topK: s.topK };
}
