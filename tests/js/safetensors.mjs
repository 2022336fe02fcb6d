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
