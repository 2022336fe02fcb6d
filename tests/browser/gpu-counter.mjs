// Counts the WebGPU work a page does, by wrapping the WebGPU API's prototypes: import this module
// before anything creates a GPUDevice (wgpu's web backend and onnxruntime-web both call through
// these prototypes, so their work is counted too).
//
//   const work = await countGpuWork(() => clip.encodeImage(img));
//   // { computePasses, dispatches, submits, commandBuffers, buffers, bufferBytes, mapAsync,
//   //   pipelines, shaderModules, bindGroups, writeBuffers, writeBytes, kernels }
//
// `kernels` counts the dispatches per kernel: by the label of the pipeline bound when each was
// recorded (cubecl labels its pipelines with the kernel's entry point name, which names the
// kernel and its variant) or, unlabelled, by the shader's first entry point.

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
const kernels = new Map(); // kernel name -> dispatches
const pipelineNames = new WeakMap(); // GPUComputePipeline -> kernel name
const moduleNames = new WeakMap(); // GPUShaderModule -> its label or first entry point
const boundNames = new WeakMap(); // GPUComputePassEncoder -> name of the pipeline it has bound

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
  const dispatched = (pass) => {
    counts.dispatches++;
    const name = boundNames.get(pass) ?? '(no pipeline)';
    kernels.set(name, (kernels.get(name) ?? 0) + 1);
  };
  for (const name of ['dispatchWorkgroups', 'dispatchWorkgroupsIndirect']) {
    const original = GPUComputePassEncoder.prototype[name];
    GPUComputePassEncoder.prototype[name] = function (...args) {
      dispatched(this);
      return original.apply(this, args);
    };
  }
  const setPipeline = GPUComputePassEncoder.prototype.setPipeline;
  GPUComputePassEncoder.prototype.setPipeline = function (pipeline) {
    boundNames.set(this, pipelineNames.get(pipeline) ?? '(unnamed)');
    return setPipeline.call(this, pipeline);
  };
  wrap(GPUQueue.prototype, 'submit', (buffers) => {
    counts.submits++;
    counts.commandBuffers += buffers?.length ?? 0;
  });
  wrap(GPUDevice.prototype, 'createBuffer', (desc) => {
    counts.buffers++;
    counts.bufferBytes += Number(desc?.size ?? 0);
  });
  wrap(GPUBuffer.prototype, 'mapAsync', () => counts.mapAsync++);
  const named = (desc) => desc?.label || moduleNames.get(desc?.compute?.module) || '(unnamed)';
  const createComputePipeline = GPUDevice.prototype.createComputePipeline;
  GPUDevice.prototype.createComputePipeline = function (desc) {
    counts.pipelines++;
    const pipeline = createComputePipeline.call(this, desc);
    pipelineNames.set(pipeline, named(desc));
    return pipeline;
  };
  const createComputePipelineAsync = GPUDevice.prototype.createComputePipelineAsync;
  GPUDevice.prototype.createComputePipelineAsync = async function (desc) {
    counts.pipelines++;
    const pipeline = await createComputePipelineAsync.call(this, desc);
    pipelineNames.set(pipeline, named(desc));
    return pipeline;
  };
  const createShaderModule = GPUDevice.prototype.createShaderModule;
  GPUDevice.prototype.createShaderModule = function (desc) {
    counts.shaderModules++;
    const module = createShaderModule.call(this, desc);
    const entry = /@compute[^]*?fn\s+(\w+)/.exec(desc?.code ?? '')?.[1];
    moduleNames.set(module, desc?.label || entry || '(unnamed)');
    return module;
  };
  wrap(GPUDevice.prototype, 'createBindGroup', () => counts.bindGroups++);
  wrap(GPUQueue.prototype, 'writeBuffer', (_buffer, _offset, data, _dataOffset, size) => {
    counts.writeBuffers++;
    counts.writeBytes += Number(size ?? data?.byteLength ?? 0) * (size !== undefined && data?.BYTES_PER_ELEMENT ? data.BYTES_PER_ELEMENT : 1);
  });
}

/** A copy of the running totals (`kernels`: dispatches per kernel name). */
export function gpuCounts() {
  return { ...counts, kernels: Object.fromEntries(kernels) };
}

/**
 * The WebGPU work done while `fn()` (sync or async) runs: the difference of the totals;
 * `kernels` holds the kernels dispatched meanwhile, most dispatched first.
 */
export async function countGpuWork(fn) {
  const before = gpuCounts();
  await fn();
  const after = gpuCounts();
  const work = Object.fromEntries(Object.keys(counts).map((k) => [k, after[k] - before[k]]));
  const diff = Object.entries(after.kernels).map(([k, n]) => [k, n - (before.kernels[k] ?? 0)]).filter(([, n]) => n > 0);
  work.kernels = Object.fromEntries(diff.sort((a, b) => b[1] - a[1]));
  return work;
}
