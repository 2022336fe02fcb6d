// Counts the WebGPU work a page does, by wrapping the WebGPU API's prototypes: import this module
// before anything creates a GPUDevice (wgpu's web backend and onnxruntime-web both call through
// these prototypes, so their work is counted too).
//
//   const work = await countGpuWork(() => clip.encodeImage(img));
//   // { computePasses, dispatches, submits, commandBuffers, buffers, bufferBytes, mapAsync,
//   //   pipelines, shaderModules, bindGroups, writeBuffers, writeBytes }

const counts = {
  computePasses: 0, // GPUCommandEncoder.beginComputePass
  dispatches: 0, // GPUComputePassEncoder.dispatchWorkgroups(+Indirect)
  submits: 0, // GPUQueue.submit calls
  commandBuffers: 0, // command buffers submitted
  buffers: 0, // GPUDevice.createBuffer
  bufferBytes: 0, // their sizes
  mapAsync: 0, // GPUBuffer.mapAsync (read-backs)
  pipelines: 0, // GPUDevice.createComputePipeline(+Async)
  shaderModules: 0, // GPUDevice.createShaderModule
  bindGroups: 0, // GPUDevice.createBindGroup
  writeBuffers: 0, // GPUQueue.writeBuffer (uploads)
  writeBytes: 0, // their sizes
};

function wrap(proto, name, count) {
  const original = proto?.[name];
  if (typeof original !== 'function') return;
  proto[name] = function (...args) {
    count(...args);
    return original.apply(this, args);
  };
}

if (globalThis.GPUDevice) {
  wrap(GPUCommandEncoder.prototype, 'beginComputePass', () => counts.computePasses++);
  wrap(GPUComputePassEncoder.prototype, 'dispatchWorkgroups', () => counts.dispatches++);
  wrap(GPUComputePassEncoder.prototype, 'dispatchWorkgroupsIndirect', () => counts.dispatches++);
  wrap(GPUQueue.prototype, 'submit', (buffers) => {
    counts.submits++;
    counts.commandBuffers += buffers?.length ?? 0;
  });
  wrap(GPUDevice.prototype, 'createBuffer', (desc) => {
    counts.buffers++;
    counts.bufferBytes += Number(desc?.size ?? 0);
  });
  wrap(GPUBuffer.prototype, 'mapAsync', () => counts.mapAsync++);
  wrap(GPUDevice.prototype, 'createComputePipeline', () => counts.pipelines++);
  wrap(GPUDevice.prototype, 'createComputePipelineAsync', () => counts.pipelines++);
  wrap(GPUDevice.prototype, 'createShaderModule', () => counts.shaderModules++);
  wrap(GPUDevice.prototype, 'createBindGroup', () => counts.bindGroups++);
  wrap(GPUQueue.prototype, 'writeBuffer', (_buffer, _offset, data, _dataOffset, size) => {
    counts.writeBuffers++;
    counts.writeBytes += Number(size ?? data?.byteLength ?? 0) * (size !== undefined && data?.BYTES_PER_ELEMENT ? data.BYTES_PER_ELEMENT : 1);
  });
}

/** A copy of the running totals. */
export function gpuCounts() {
  return { ...counts };
}

/** The WebGPU work done while `fn()` (sync or async) runs: the difference of the totals. */
export async function countGpuWork(fn) {
  const before = gpuCounts();
  await fn();
  const after = gpuCounts();
  return Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - before[k]]));
}
