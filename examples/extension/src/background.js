// The service worker: the context-menu entry, the offscreen document that holds the model, and
// the overlay it draws over the clicked image. It runs no model itself (an MV3 service worker is
// stopped after 30 s idle, which would throw the loaded model away).
import { MENU_ID, loadSettings } from './settings.js';

chrome.runtime.onInstalled.addListener(({ reason }) => {
  chrome.contextMenus.create({ id: MENU_ID, title: 'Tag this image with MobileCLIP', contexts: ['image'] });
  if (reason === 'install') chrome.runtime.openOptionsPage();
});

chrome.action.onClicked.addListener(() => chrome.runtime.openOptionsPage());

chrome.contextMenus.onClicked.addListener((info, tab) => { onContextMenuClick(info, tab); });

// Progress lines from the model worker (via the offscreen document), by request id.
const progressListeners = new Map();

chrome.runtime.onMessage.addListener((msg, sender, sendResponse) => {
  if (msg?.target !== 'background') return false;
  if (msg.type === 'progress') progressListeners.get(msg.id)?.(msg.text);
  if (msg.type === 'open-options') chrome.runtime.openOptionsPage();
  if (msg.type === 'prepare') {
    // From the options page: encode the labels now (and load the model), not on the first click.
    prepare(msg.id).then(sendResponse, (e) => sendResponse({ ok: false, code: 'INTERNAL', message: e?.message ?? String(e) }));
    return true;
  }
  sendResponse(true);
  return false;
});

async function prepare(id) {
  const settings = await loadSettings();
  await ensureOffscreen();
  return chrome.runtime.sendMessage({ target: 'offscreen', type: 'prepare', id, ...settings });
}

/**
 * What the context-menu entry does: draws a "tagging…" overlay on the image, has the offscreen
 * document tag it, then draws the tags (or the error). Resolves to the result it drew.
 * Exposed on globalThis for the test, which cannot click a native menu in headless Chromium.
 */
async function onContextMenuClick(info, tab) {
  if (info.menuItemId !== MENU_ID || !info.srcUrl || tab?.id === undefined) return null;
  const target = { tabId: tab.id, frameIds: [info.frameId ?? 0] };
  // Pages where extensions may not inject (chrome://, the Web Store) keep no overlay.
  const draw = (state) => chrome.scripting.executeScript({ target, func: renderOverlay, args: [info.srcUrl, state] }).catch(() => {});
  const id = crypto.randomUUID();
  progressListeners.set(id, (text) => draw({ status: 'busy', text }));
  let state;
  try {
    await draw({ status: 'busy', text: 'Tagging…' });
    const settings = await loadSettings();
    await ensureOffscreen();
    const res = await chrome.runtime.sendMessage({ target: 'offscreen', type: 'tag', id, srcUrl: info.srcUrl, ...settings });
    state = res?.ok
      ? { status: 'done', tags: res.tags, model: res.model, backend: res.backend, backendReason: res.backendReason, threads: res.threads, towers: res.towers, textTower: res.textTower, ms: res.ms, timings: res.timings }
      : { status: 'error', code: res?.code, text: res?.message ?? 'the model page did not answer' };
  } catch (e) {
    state = { status: 'error', code: 'INTERNAL', text: e?.message ?? String(e) };
  } finally {
    progressListeners.delete(id);
  }
  await draw(state);
  return state;
}
globalThis.onContextMenuClick = onContextMenuClick;

let creating = null;

/** Creates the offscreen document (model host) unless it exists. */
async function ensureOffscreen() {
  const url = chrome.runtime.getURL('offscreen.html');
  const contexts = await chrome.runtime.getContexts({ contextTypes: ['OFFSCREEN_DOCUMENT'], documentUrls: [url] });
  if (contexts.length > 0) return;
  creating ??= chrome.offscreen
    .createDocument({ url: 'offscreen.html', reasons: ['WORKERS'], justification: 'runs the MobileCLIP model (WebAssembly) in a Web Worker' })
    .finally(() => { creating = null; });
  await creating;
}

/**
 * Injected into the page (the extension's isolated world): draws or updates the overlay of the
 * image whose URL is `srcUrl`. Self-contained, as chrome.scripting requires. Text goes in with
 * textContent only (no innerHTML: pages with Trusted Types stay happy); the page's styles cannot reach into the shadow root.
 */
function renderOverlay(srcUrl, state) {
  const overlays = (globalThis.__mobileclipOverlays ??= new Map());
  const img = [...document.images].find((i) => i.currentSrc === srcUrl || i.src === srcUrl);
  let entry = overlays.get(srcUrl);
  if (!entry || !entry.host.isConnected) {
    const host = document.createElement('mobileclip-tags');
    const root = host.attachShadow({ mode: 'open' });
    // A constructed style sheet: page CSPs that forbid inline <style> do not apply to it.
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(`
      :host { all: initial; position: absolute; z-index: 2147483647; }
      .panel { font: 13px/1.35 system-ui, sans-serif; color: #f5f5f5; background: rgba(20, 20, 24, .88);
        border-radius: 8px; padding: 8px 10px; min-width: 190px; max-width: 280px; box-shadow: 0 2px 10px rgba(0,0,0,.35); }
      .head { display: flex; align-items: center; gap: 8px; font-weight: 600; margin-bottom: 4px; }
      .head span { flex: 1; }
      button { all: unset; cursor: pointer; padding: 0 4px; border-radius: 4px; color: #ccc; }
      button:hover { background: rgba(255,255,255,.15); color: #fff; }
      ol { list-style: none; margin: 0; padding: 0; }
      li { display: grid; grid-template-columns: 1fr auto; gap: 2px 8px; margin: 3px 0; }
      .bar { grid-column: 1 / 3; height: 3px; border-radius: 2px; background: #4da3ff; }
      .score { font-variant-numeric: tabular-nums; color: #bbb; }
      .status { color: #ddd; }
      .error { color: #ffb4a8; }
      .foot { margin-top: 4px; font-size: 11px; color: #999; }
      .link { text-decoration: underline; color: #9cc9ff; padding: 0; }
    `);
    root.adoptedStyleSheets = [sheet];
    const panel = Object.assign(document.createElement('div'), { className: 'panel' });
    const head = Object.assign(document.createElement('div'), { className: 'head' });
    const close = Object.assign(document.createElement('button'), { className: 'close', title: 'Close', textContent: '✕' });
    head.append(Object.assign(document.createElement('span'), { textContent: 'MobileCLIP tags' }), close);
    panel.append(head, Object.assign(document.createElement('div'), { className: 'body' }));
    root.append(panel);
    close.addEventListener('click', () => { host.remove(); overlays.delete(srcUrl); });
    document.documentElement.append(host);
    entry = { host, root };
    overlays.set(srcUrl, entry);
  }
  const { host, root } = entry;
  // Top-left corner of the image (kept on screen), or the viewport's corner when it is not found.
  if (img) {
    const r = img.getBoundingClientRect();
    host.style.position = 'absolute';
    host.style.left = `${Math.max(0, r.left + scrollX + 8)}px`;
    host.style.top = `${Math.max(0, r.top + scrollY + 8)}px`;
  } else {
    host.style.position = 'fixed';
    host.style.left = '16px';
    host.style.top = '16px';
  }
  host.dataset.status = state.status;
  const body = root.querySelector('.body');
  body.replaceChildren();
  const el = (tag, cls, text) => Object.assign(document.createElement(tag), { className: cls, textContent: text ?? '' });
  if (state.status === 'busy') {
    body.append(el('div', 'status', state.text));
  } else if (state.status === 'error') {
    body.append(el('div', 'error', state.text));
    if (state.code === 'NO_WEIGHTS' || state.code === 'WEIGHTS_MISMATCH' || state.code === 'INVALID_WEIGHTS') {
      const open = el('button', 'link', 'Open the options');
      open.addEventListener('click', () => chrome.runtime.sendMessage({ target: 'background', type: 'open-options' }));
      body.append(open);
    }
  } else {
    const list = el('ol', 'tags');
    const best = state.tags[0]?.score || 1;
    for (const { label, score } of state.tags) {
      const li = el('li', 'tag');
      li.dataset.label = label;
      li.dataset.score = String(score);
      const bar = el('div', 'bar');
      bar.style.width = `${Math.max(2, (100 * score) / best)}%`;
      li.append(el('span', 'label', label), el('span', 'score', `${(100 * score).toFixed(1)}%`), bar);
      list.append(li);
    }
    body.append(list, el('div', 'foot', `${state.model}${state.towers === 'image' ? ' (image tower)' : ''} · ${Math.round(state.ms)} ms · on this device`));
  }
}
