// Errors in plain words, chosen by the package's stable error `code`.

const TEXT = {
  INVALID_WEIGHTS: ['This file is not a model checkpoint the page can read.',
    'Use the .pt, .bin or .safetensors file published for the model, as downloaded.'],
  WEIGHTS_MISMATCH: ['These weights belong to a different model than {model}.',
    'Pick the model the file was made for in the list, then load it again.'],
  WEIGHTS_DOWNLOAD: ['The weights could not be downloaded.',
    'Check the connection and try again, or load a checkpoint file from this device.'],
  NO_WEBGPU: ['WebGPU is not available here.',
    'This browser or this build has no usable WebGPU: choose “Automatic” or “CPU” as the backend.'],
  UNKNOWN_MODEL: ['This model is not one the page knows.', 'Pick one from the list.'],
  UNSUPPORTED_BROWSER: ['This browser cannot run the model.',
    'It needs WebAssembly with SIMD: a current Chrome, Edge, Firefox or Safari (16.4 or later), outside Lockdown Mode.'],
  INVALID_IMAGE: ['This file is not an image the browser can read.',
    'Use a JPEG, PNG, WebP, GIF or AVIF photo (HEIC photos need converting first in most browsers).'],
  TAINTED_IMAGE: ['The browser does not let the page read this image.', 'Save it to this device first, then add the file.'],
  INVALID_TEXT: ['That text cannot be encoded.', ''],
  INVALID_ARGUMENT: ['The labels or templates are not usable.', 'Every template needs a {} where the label goes.'],
  ABORTED: ['Loading was cancelled.', ''],
  CAMERA: ['The camera could not be opened.', 'Allow the page to use the camera, or add photos from files.'],
  STORAGE: ['The weights could not be kept for the next visit.', 'The browser is out of storage space for this site; the model still works for now.'],
};

/** `{ title, hint, code, detail }` for an error from the package (or a fetch/DOM error). */
export function explain(error, vars = {}) {
  let code = typeof error?.code === 'string' ? error.code : 'INTERNAL';
  if (error?.name === 'AbortError') code = 'ABORTED';
  else if (error instanceof TypeError && /fetch|network/i.test(error.message)) code = 'WEIGHTS_DOWNLOAD';
  const [title, hint] = TEXT[code] ?? ['Something went wrong.', 'Reload the page and try again.'];
  const fill = (s) => s.replace(/\{(\w+)\}/g, (m, k) => vars[k] ?? m);
  return { code, title: fill(title), hint: fill(hint), detail: error?.message ?? String(error) };
}

/** Fills `el` with an explanation: a headline, a hint and the technical detail (folded). */
export function showError(el, error, vars) {
  const e = explain(error, vars);
  const details = document.createElement('details');
  const summary = document.createElement('summary');
  summary.textContent = 'Details';
  const pre = document.createElement('code');
  pre.textContent = `${e.code}: ${e.detail}`;
  details.append(summary, pre);
  const title = document.createElement('strong');
  title.textContent = e.title;
  const hint = document.createElement('span');
  hint.textContent = e.hint ? ` ${e.hint}` : '';
  el.replaceChildren(title, hint, details);
  el.dataset.code = e.code;
  el.hidden = false;
  return e;
}
