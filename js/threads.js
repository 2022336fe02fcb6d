// The thread pool of the threaded CPU module (cpu-mt/): Web Workers that instantiate the module on
// its shared memory and each run one of rayon's threads (src/web/threads.rs), so that burn flex's
// parallel kernels use several cores. The thread that loads the module (a page's main thread or a
// worker) runs no model code itself: each call is a job of the pool, and its promise resolves
// when a pool thread posts the job's id back.

import { MobileClipError } from './common.js';

/** Most threads `threads: 'auto'` starts (more cores rarely pay for one image). */
export const AUTO_MAX_THREADS = 8;

/**
 * Why this context cannot run the threaded module, or null when it can. It needs Web Workers,
 * cross-origin isolation and a shared WebAssembly.Memory it can post to a worker; it does not
 * need the global `SharedArrayBuffer` itself (a Chromium page without it still runs threads).
 * WebKitGTK 2.50 leaves that global undefined even on isolated pages and then refuses to post
 * a shared memory: one thread there.
 */
export function threadsUnsupported() {
  if (typeof process !== 'undefined' && process.versions?.node) return 'Node has no Web Workers';
  if (globalThis.crossOriginIsolated !== true) {
    return 'the page is not cross-origin isolated: serve it with the headers COOP same-origin and COEP require-corp';
  }
  if (typeof Worker === 'undefined') return 'this context cannot start Web Workers';
  if (typeof Atomics === 'undefined') return 'this browser has no Atomics';
  let memory;
  try {
    memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  } catch {
    return 'this browser cannot share WebAssembly memory between threads';
  }
  // WebKitGTK makes shared memories but cannot send one to a worker (DataCloneError) while its
  // global SharedArrayBuffer is off: found here, before the threaded module is fetched.
  if (typeof MessageChannel === 'undefined') return 'this context has no MessageChannel to send shared memory with';
  const channel = new MessageChannel();
  try {
    channel.port1.postMessage(memory);
  } catch (e) {
    return `this browser cannot send shared WebAssembly memory to a Web Worker (${e.name}${typeof SharedArrayBuffer === 'undefined' ? '; its SharedArrayBuffer is off' : ''})`;
  } finally {
    channel.port1.close();
    channel.port2.close();
  }
  return null;
}

/**
 * Starts `threads` workers on the instantiated threaded module `glue` and builds its pool.
 * Resolves once every worker has instantiated the module; rejects (terminating them) if one
 * cannot, e.g. when a Content-Security-Policy forbids workers.
 */
export async function startPool(glue, threads) {
  const [module, memory] = glue.threadContext();
  const workers = [];
  try {
    await Promise.all(Array.from({ length: threads }, (_, i) => new Promise((resolve, reject) => {
      const worker = new Worker(new URL('./thread-worker.js', import.meta.url), { type: 'module', name: `mobileclip-thread-${i}` });
      workers.push(worker);
      worker.onmessage = ({ data }) => (data === 'ready' ? resolve() : reject(new Error(data?.error ?? 'unexpected message')));
      worker.onerror = (e) => { e.preventDefault?.(); reject(new Error(e.message || 'could not load thread-worker.js')); };
      worker.postMessage({ module, memory });
    })));
  } catch (e) {
    for (const w of workers) w.terminate();
    throw new MobileClipError('INTERNAL', `the thread pool could not start: ${e.message}`);
  }

  const pending = new Map(); // job id -> { done, fail }
  let dead = null; // the failure of a pool thread, once one failed
  // A pool thread that failed (a trap: a bug, or out of memory) leaves the module's shared memory
  // and locks in an unknown state: the whole threaded module is given up. Its calls reject with a
  // trap (a WebAssembly.RuntimeError as the cause), so that index.js switches to the
  // single-threaded module and its models reload there, as after a trap on the calling thread.
  const failure = () => new MobileClipError('INTERNAL', `the threaded CPU module failed (${dead}); the single-threaded one takes over and the next call reloads the model`, { cause: new WebAssembly.RuntimeError(dead) });
  const fail = (message) => {
    dead ??= message;
    for (const p of pending.values()) p.fail(failure());
    pending.clear();
  };
  // The waiter src/web/threads.rs calls for each job before queueing it: a promise of `take()`
  // (the job's result, as JavaScript values made on this thread), once the job posts its id.
  glue.buildThreadPool(threads, (id, take) => new Promise((resolve, reject) => {
    if (dead) { reject(failure()); return; }
    pending.set(id, {
      done: () => { try { resolve(take()); } catch (e) { reject(e); } },
      fail: reject,
    });
  }));
  workers.forEach((worker, i) => {
    worker.onmessage = ({ data }) => {
      if (typeof data === 'number') {
        const p = pending.get(data);
        pending.delete(data);
        p?.done();
      } else if (data?.error) {
        fail(data.error);
      }
    };
    worker.onerror = (e) => { e.preventDefault?.(); fail(e.message || 'error'); };
    worker.postMessage({ run: i });
  });
  return threads;
}
