// One thread of the threaded CPU module's pool (started by threads.js): instantiates the module on
// the shared memory it is sent, says 'ready', then runs one of rayon's threads (`threadMain`),
// which returns only when the page goes away.
import init, { threadMain } from './cpu-mt/mobileclip_wasm.js';

self.onmessage = async ({ data }) => {
  try {
    if (data.module) {
      await init({ module_or_path: data.module, memory: data.memory });
      self.postMessage('ready');
    } else {
      threadMain(data.run);
    }
  } catch (e) {
    self.postMessage({ error: e?.message ?? String(e) });
  }
};
