// Parses a safetensors file (F32 and I32 tensors) from an ArrayBuffer: shared by the Node and the
// browser tests, which read the fixtures' io.safetensors.
export function parseSafetensors(buf) {
  const n = Number(new DataView(buf).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, n)));
  const out = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = info.data_offsets;
    const bytes = buf.slice(8 + n + a, 8 + n + b);
    const data = info.dtype === 'F32' ? new Float32Array(bytes) : info.dtype === 'I32' ? new Int32Array(bytes) : null;
    out[name] = { shape: info.shape, data };
  }
  return out;
}

/** CLIP's vocabulary size: a model must have it for text to go through the real tokenizer. */
export const CLIP_VOCAB = 49408;

/**
 * The small fixtures know 256 tokens (their parity tests feed token ids). This returns a copy of a
 * fixture's safetensors bytes (Uint8Array) with `text.token_embedding.weight` grown to CLIP_VOCAB
 * rows, row i = base[i % n] + base[⌊i / n⌋ % n] / 2 (every token keeps a distinct embedding), so
 * tests can tag with real labels; set the config's `text_cfg.vocab_size` to CLIP_VOCAB with it.
 */
export function widenVocabulary(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const data = bytes.subarray(8 + n);
  const names = Object.keys(header).filter((k) => k !== '__metadata__').sort((a, b) => header[a].data_offsets[0] - header[b].data_offsets[0]);
  const parts = [];
  let at = 0;
  for (const name of names) {
    const info = header[name];
    let part = data.subarray(...info.data_offsets);
    if (name === 'text.token_embedding.weight') {
      const [rows, width] = info.shape;
      const base = new Float32Array(part.slice().buffer);
      const wide = new Float32Array(CLIP_VOCAB * width);
      for (let i = 0; i < CLIP_VOCAB; i++) {
        for (let k = 0; k < width; k++) wide[i * width + k] = base[(i % rows) * width + k] + base[(Math.floor(i / rows) % rows) * width + k] / 2;
      }
      info.shape = [CLIP_VOCAB, width];
      part = new Uint8Array(wide.buffer);
    }
    info.data_offsets = [at, at + part.length];
    at += part.length;
    parts.push(part);
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let pos = 8 + head.length;
  for (const p of parts) { out.set(p, pos); pos += p.length; }
  return out;
}
