// A TypeScript user of the package: compiled by tests/types/run.mjs with `tsc --strict --noEmit`
// against js/index.d.ts and js/worker.d.ts (what pkg/ ships). Lines marked @ts-expect-error must fail.
import { LabelPack, MobileClip, MobileClipError, type MobileClipErrorCode, type TowerPrecision, modelNames, similarity, wasmMemoryBytes } from 'mobileclip-wasm';
import { MobileClipWorker } from 'mobileclip-wasm/worker';

export async function use(canvas: HTMLCanvasElement, signal: AbortSignal): Promise<string> {
  const clip = await MobileClip.load({ model: 'MobileCLIP-S0', weights: '/s0.pt', backend: 'auto', onProgress: ({ loaded, total }) => loaded / total, signal });
  const backend: 'cpu' | 'webgpu' = clip.backend;
  const why: string = clip.backendReason;
  const half = await MobileClip.load({ weights: '/s0.pt', precision: 'f16' });
  const computes: 'f32' | 'f16' | 'f16-weights' | null = half.precision.text ?? clip.precision.image;
  const tower: TowerPrecision | null = computes;
  // @ts-expect-error: a tower may compute on f16 weights ('f16-weights')
  const twoOnly: 'f32' | 'f16' | null = clip.precision.image;
  const image: Float32Array = await clip.encodeImage(canvas, { signal });
  const images: Float32Array[] = await clip.encodeImages([canvas, { data: new Uint8Array(4), width: 1, height: 1 }], { onProgress: ({ done, total }) => done / total });
  const one: Float32Array = await clip.encodeText('a cat');
  const many: Float32Array[] = await clip.encodeText(['a cat', 'a dog'], { signal });
  const px: Float32Array[] = await clip.encodePixels(new Float32Array(3 * 256 * 256), 1);
  const ids: Float32Array[] = await clip.encodeTokens(new Uint32Array(77), 1);
  const pack: LabelPack = await clip.labelEmbeddings(['cat', 'dog'], { templates: ['a photo of a {}.'], reuse: [], onProgress: ({ done }) => done, signal });
  const again = LabelPack.fromBytes(pack.toBytes());
  const tags = await clip.zeroShot(image, again, { topK: 1 });
  const direct = await clip.zeroShot(canvas, ['cat'], { templates: ['{}'], topK: 2, onProgress: () => {} });
  const w = await MobileClipWorker.load({ weights: new Uint8Array(8) });
  const compact = await MobileClip.load({ weights: '/s0-image.safetensors', integrity: 'sha256-abc' });
  const converted: Uint8Array = await MobileClip.convert({ model: 'MobileCLIP-S0', weights: '/s0.pt', dtype: 'auto', towers: 'image', onProgress: ({ loaded }) => loaded, signal });
  const inWorker: Uint8Array = await MobileClipWorker.convert({ model: { name: 'x' }, weights: converted, dtype: 'f16' });
  // @ts-expect-error: precision is auto, f32 or f16
  await MobileClipWorker.load({ weights: converted, precision: 'f64' });
  // @ts-expect-error: dtype is one of f32, f16, int8, auto
  await MobileClip.convert({ model: 'MobileCLIP-S0', weights: inWorker, dtype: 'bf16' });
  // @ts-expect-error: convert needs the checkpoint's model
  await MobileClipWorker.convert({ weights: inWorker });
  const towers: 'both' | 'image' | 'text' = compact.towers === 'image' ? w.towers : clip.towers;
  const fromWorker: LabelPack = await w.labelEmbeddings(['x'], { reuse: pack });
  const s: number = similarity(image, one) + clip.similarity(images[0], many[0]) + px.length + ids.length + fromWorker.dim + wasmMemoryBytes();
  const batch: number = clip.batchSize.images + w.batchSize.texts + towers.length + compact.labelPackId.length;
  try {
    await clip.zeroShot(image, pack);
  } catch (e) {
    if (e instanceof MobileClipError) {
      const code: MobileClipErrorCode = e.code;
      if (code === 'LABEL_PACK_MISMATCH' || code === 'INVALID_LABEL_PACK' || code === 'INTERNAL' || code === 'INVALID_CONFIG' || code === 'DEVICE_LOST' || code === 'INTEGRITY_MISMATCH' || code === 'NO_TEXT_TOWER' || code === 'NO_IMAGE_TOWER') return code;
      // @ts-expect-error: not an error code
      if (code === 'NO_SUCH_CODE') return code;
    }
  }
  // @ts-expect-error: the backend is 'cpu' or 'webgpu', not a description
  if (clip.backend === 'cpu: requested') return why;
  // @ts-expect-error: templates go with a label list, and must be strings
  await clip.labelEmbeddings(['x'], { templates: 'a {}' });
  // @ts-expect-error: raw is not part of the API
  void clip.raw;
  return `${backend} ${computes} ${tags[0].label} ${direct[0].score} ${s} ${batch} ${(await modelNames()).length}`;
}
