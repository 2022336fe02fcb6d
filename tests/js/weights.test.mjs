// Damaged and hostile checkpoints in the wasm module (Node, CPU backend): the zip's CRC-32s are
// checked there too (by the wasm-specific CRC code, src/weights/crc32.rs), a pickle nested a
// million levels deep is INVALID_WEIGHTS rather than a trap, and the module keeps working.
// The full set of hostile cases runs natively (tests/weights_errors.rs, tests/fuzz_readers.rs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const { MobileClip } = await import(`${root}pkg/index.js`);
const dir = `${root}tests/fixtures/models/v1-mci-mct`;
const config = JSON.parse(await readFile(`${dir}/config.json`, 'utf8'));
const good = new Uint8Array(await readFile(`${dir}/model.pt`));

async function rejects(weights, pattern) {
  await assert.rejects(MobileClip.load({ model: config, weights }), (e) => {
    assert.equal(e.code, 'INVALID_WEIGHTS', e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Where each stored zip entry's data lies: [name, start, length, central header, local header]. */
function zipEntries(bytes) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = bytes.length - 22;
  while (v.getUint32(eocd, true) !== 0x06054b50) eocd--;
  let at = v.getUint32(eocd + 16, true);
  const out = [];
  for (let i = v.getUint16(eocd + 10, true); i > 0; i--) {
    const [size, nameLen, extraLen, commentLen] = [v.getUint32(at + 20, true), v.getUint16(at + 28, true), v.getUint16(at + 30, true), v.getUint16(at + 32, true)];
    const local = v.getUint32(at + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLen));
    const start = local + 30 + v.getUint16(local + 26, true) + v.getUint16(local + 28, true);
    out.push([name, start, size, at, local]);
    at += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

test('a corrupted .pt names its damaged entry, and a good one loads afterwards', async () => {
  const entries = zipEntries(good);
  // the largest storage (long enough for the wasm CRC's fast path) and the pickle
  const big = entries.filter(([n]) => n.includes('/data/')).sort((a, b) => b[2] - a[2])[0];
  const pkl = entries.find(([n]) => n.endsWith('/data.pkl'));
  assert.ok(big[2] > 8192, `largest storage ${big[2]} bytes`);
  for (const [name, start, size] of [big, pkl]) {
    const bad = good.slice();
    const mid = start + (size >> 1);
    for (let i = Math.max(start, mid - 2048); i < Math.min(start + size, mid + 2048); i++) bad[i] = (i * 2654435761) >>> 24;
    await rejects(bad, new RegExp(`zip entry \`${name}\` is corrupted`));
  }
  const clip = await MobileClip.load({ model: config, weights: good });
  assert.equal(clip.embedDim, config.embed_dim);
  clip.dispose();
});

test('a pickle nested thousands of levels deep is INVALID_WEIGHTS, not a trap', async () => {
  const [, start, size, central, local] = zipEntries(good).find(([n]) => n.endsWith('/data.pkl'));
  const bad = good.slice();
  const n = (size - 3) >> 1; // PROTO 2, n empty lists, n - 1 APPENDs (each nests one more), STOP
  const pickle = new Uint8Array(size);
  pickle.set([0x80, 2]);
  pickle.fill(0x5d, 2, 2 + n); // ']'
  pickle.fill(0x61, 2 + n, 1 + 2 * n); // 'a'
  pickle[1 + 2 * n] = 0x2e; // '.'
  bad.set(pickle, start);
  const v = new DataView(bad.buffer);
  v.setUint32(central + 16, crc32(pickle), true);
  v.setUint32(local + 14, crc32(pickle), true);
  // torch.save writes the CRC-32 in a data descriptor after the entry too (what a streamed read checks)
  if (v.getUint32(start + size, true) === 0x08074b50) v.setUint32(start + size + 4, crc32(pickle), true);
  await rejects(bad, /nested deeper than 100 levels/);
  const clip = await MobileClip.load({ model: config, weights: good });
  assert.equal(clip.embedDim, config.embed_dim);
  clip.dispose();
});
