// Label packs: the label embeddings of one model and one set of weights, computed once by
// `clip.labelEmbeddings(...)` (or the CLI's `mobileclip labels`) and ranked against by
// `clip.zeroShot(image, pack)` without the text tower. Bytes: a safetensors file, the layout the
// Rust crate's `label_pack` module documents and also reads and writes (the tests check each
// side reads the other's files): one F32 tensor `embeddings` [labels, dim] and metadata strings
// format, version, model, weights_id, labels (JSON), templates (JSON).
import { describe, MobileClipError } from './common.js';

const FORMAT = 'mobileclip-label-pack';
const VERSION = '1';
const NORM_TOLERANCE = 1e-3; // how far from 1 a row's L2 norm may be

const bad = (message) => new MobileClipError('INVALID_LABEL_PACK', message);

function stringArray(v, what, err) {
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw err(`${what} must be an array of strings, got ${describe(v)}`);
  return v;
}

/** A pack's parts as plain data, for a message to or from a worker (`new LabelPack(parts)` rebuilds it). */
export const packParts = (p) => ({ model: p.model, weightsId: p.weightsId, labels: p.labels, templates: p.templates, embeddings: p.embeddings });

/** One model's embeddings of a list of labels: rank images against it with `clip.zeroShot(image, pack)`. */
export class LabelPack {
  /**
   * Checks and wraps the parts of a pack: `embeddings` holds one L2-normalised row of `dim`
   * values per label (`dim = embeddings.length / labels.length`). Throws INVALID_LABEL_PACK.
   * Usually made by `clip.labelEmbeddings(...)` or `LabelPack.fromBytes(...)`.
   */
  constructor({ model, weightsId, labels, templates, embeddings }) {
    if (typeof model !== 'string' || !model || typeof weightsId !== 'string' || !weightsId) throw bad('a pack needs the model name and the weights id');
    stringArray(labels, 'labels', bad);
    stringArray(templates, 'templates', bad);
    if (!(embeddings instanceof Float32Array)) throw bad(`embeddings must be a Float32Array, got ${describe(embeddings)}`);
    const dim = embeddings.length / labels.length;
    if (labels.length === 0 || !Number.isInteger(dim) || dim === 0) throw bad(`${labels.length} labels do not fit ${embeddings.length} embedding values`);
    for (let i = 0; i < labels.length; i++) {
      let n = 0;
      for (let k = i * dim; k < (i + 1) * dim; k++) n += embeddings[k] * embeddings[k];
      if (!(Math.abs(Math.sqrt(n) - 1) <= NORM_TOLERANCE)) throw bad(`the embedding of label ${i} (${JSON.stringify(labels[i])}) is not a unit vector (norm ${Math.sqrt(n)})`);
    }
    this.model = model;
    this.weightsId = weightsId;
    this.labels = Object.freeze([...labels]);
    this.templates = Object.freeze([...templates]);
    this.dim = dim;
    this.embeddings = embeddings;
    Object.freeze(this);
  }

  /** Number of labels. */
  get size() { return this.labels.length; }

  /** The embedding of label `i` (a view, not a copy). */
  embedding(i) {
    if (!(Number.isInteger(i) && i >= 0 && i < this.labels.length)) throw new MobileClipError('INVALID_ARGUMENT', `label index ${i} is out of range (0–${this.labels.length - 1})`);
    return this.embeddings.subarray(i * this.dim, (i + 1) * this.dim);
  }

  /** The pack as bytes (a safetensors file), for IndexedDB, the Cache API or a file. */
  toBytes() {
    const header = {
      __metadata__: {
        format: FORMAT, version: VERSION, model: this.model, weights_id: this.weightsId,
        labels: JSON.stringify(this.labels), templates: JSON.stringify(this.templates),
      },
      embeddings: { dtype: 'F32', shape: [this.labels.length, this.dim], data_offsets: [0, this.embeddings.byteLength] },
    };
    const json = new TextEncoder().encode(JSON.stringify(header));
    const head = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20); // padded with spaces to 8 bytes
    head.set(json);
    const out = new Uint8Array(8 + head.length + this.embeddings.byteLength);
    const view = new DataView(out.buffer);
    view.setBigUint64(0, BigInt(head.length), true);
    out.set(head, 8);
    for (let i = 0, at = 8 + head.length; i < this.embeddings.length; i++, at += 4) view.setFloat32(at, this.embeddings[i], true);
    return out;
  }

  /**
   * Reads a pack from `toBytes()` or `mobileclip labels -o FILE`. Anything else (garbage, a
   * truncated file, another safetensors file, a newer version, rows that are not unit vectors)
   * throws INVALID_LABEL_PACK naming the problem.
   */
  static fromBytes(bytes) {
    if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
    if (!(bytes instanceof Uint8Array)) throw bad(`a pack is read from a Uint8Array or ArrayBuffer, got ${describe(bytes)}`);
    const what = `${bytes.length} bytes that are not a safetensors file`;
    if (bytes.length < 8) throw bad(`not a label pack (${what}: too short)`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const n = Number(view.getBigUint64(0, true));
    if (n > bytes.length - 8 || n > 100_000_000) throw bad(`not a label pack (${what}: header length ${n})`);
    let header;
    try {
      header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
    } catch (e) {
      throw bad(`not a label pack (${what}: ${e.message})`);
    }
    if (!header || typeof header !== 'object' || Array.isArray(header)) throw bad(`not a label pack (${what}: the header is not an object)`);
    const meta = header.__metadata__ ?? {};
    if (meta.format !== FORMAT) throw bad(`a safetensors file, but not a label pack (its format is ${JSON.stringify(meta.format)})`);
    if (meta.version !== VERSION) throw bad(`version ${JSON.stringify(meta.version)}; this version of mobileclip-wasm reads version ${VERSION}`);
    const json = (k) => {
      try { return stringArray(JSON.parse(meta[k]), `\`${k}\``, bad); } catch (e) { throw e instanceof MobileClipError ? e : bad(`\`${k}\` is not a JSON array of strings: ${e.message}`); }
    };
    const [labels, templates] = [json('labels'), json('templates')];
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    if (names.length !== 1 || names[0] !== 'embeddings') throw bad(`expected one tensor \`embeddings\`, found ${JSON.stringify(names)}`);
    const { dtype, shape, data_offsets: offsets } = header.embeddings ?? {};
    if (dtype !== 'F32' || !Array.isArray(shape) || shape.length !== 2 || !(shape[1] > 0)) throw bad(`\`embeddings\` is ${dtype} ${JSON.stringify(shape)}, expected F32 [labels, dim]`);
    if (shape[0] !== labels.length) throw bad(`${labels.length} labels but ${shape[0]} embeddings`);
    const size = shape[0] * shape[1] * 4;
    if (!Array.isArray(offsets) || offsets[0] !== 0 || offsets[1] !== size || 8 + n + size !== bytes.length) {
      throw bad(`not a label pack (${what}: the tensor data is ${bytes.length - 8 - n} bytes, its header says ${JSON.stringify(offsets)} of ${size})`);
    }
    const embeddings = new Float32Array(shape[0] * shape[1]);
    for (let i = 0, at = 8 + n; i < embeddings.length; i++, at += 4) embeddings[i] = view.getFloat32(at, true);
    return new LabelPack({ model: meta.model, weightsId: meta.weights_id, labels, templates, embeddings });
  }
}
