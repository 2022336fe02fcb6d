// The photo gallery: one card per photo with its thumbnail, top tags as score bars, timings,
// its search match, or what went wrong with it.
import { explain } from './messages.js';

let nextId = 1;

/** A photo: the file, its thumbnail URL and, once embedded, its embedding and timings. */
export function makeItem(file) {
  return { id: nextId++, file, name: file.name || 'pasted image', url: URL.createObjectURL(file), state: 'queued', embedding: null, session: 0, timings: null, tags: null, match: null, error: null };
}

const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

const percent = (x) => `${(x * 100).toFixed(x >= 0.995 || x < 0.001 ? 0 : 1)}%`;

/** Renders (or re-renders) the card of `item` in `list`. */
export function renderCard(list, item, { onRemove }) {
  let card = list.querySelector(`[data-id="${item.id}"]`);
  if (!card) {
    card = el('li', 'card');
    card.dataset.id = item.id;
    const fig = el('figure');
    const img = el('img');
    img.src = item.url;
    img.alt = item.name;
    img.decoding = 'async';
    img.addEventListener('error', () => img.classList.add('broken'), { once: true }); // not an image: an empty frame
    const cap = el('figcaption');
    const remove = el('button', 'remove', '×');
    remove.type = 'button';
    remove.setAttribute('aria-label', `Remove ${item.name}`);
    remove.addEventListener('click', () => onRemove(item));
    fig.append(img, cap);
    card.append(fig, remove);
    list.append(card);
  }
  card.dataset.state = item.state;
  const cap = card.querySelector('figcaption');
  const parts = [el('span', 'name', item.name)];
  if (item.match !== null) parts.push(el('span', 'match', `match ${item.match.toFixed(3)}`));
  if (item.state === 'error') {
    const e = explain(item.error);
    const p = el('p', 'card-error', e.title);
    p.setAttribute('role', 'alert');
    p.dataset.code = e.code;
    p.title = `${e.code}: ${e.detail}`;
    parts.push(p);
  } else if (item.tags) {
    const ol = el('ol', 'tags');
    ol.setAttribute('aria-label', `Top tags for ${item.name}`);
    for (const { label, score } of item.tags) {
      const li = el('li');
      const bar = el('span', 'bar');
      bar.setAttribute('aria-hidden', 'true');
      const fill = el('span');
      fill.style.width = `${Math.max(score * 100, 0.5)}%`; // CSSOM: allowed under style-src 'self'
      bar.append(fill);
      li.append(el('span', 'label', label), bar, el('span', 'score', percent(score)));
      ol.append(li);
    }
    parts.push(ol);
  } else {
    parts.push(el('p', 'pending', item.state === 'working' ? 'Tagging…' : item.embedding ? 'Waiting for the labels…' : 'Waiting for the model…'));
  }
  if (item.timings) {
    const { decodeMs, encodeMs } = item.timings;
    parts.push(el('p', 'timing', `decoded in ${Math.round(decodeMs)} ms · embedded in ${Math.round(encodeMs)} ms`));
  }
  cap.replaceChildren(...parts);
  return card;
}

/** Puts the cards in `order` (an array of items), keeping focus where it was. */
export function reorder(list, order) {
  const active = document.activeElement;
  list.append(...order.map((it) => list.querySelector(`[data-id="${it.id}"]`)).filter(Boolean));
  if (active && list.contains(active)) active.focus();
}
