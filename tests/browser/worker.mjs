// Loads the package inside a module worker and embeds one image.
import { MobileClip } from '/pkg/index.js';

self.onmessage = async ({ data }) => {
  try {
    const model = await (await fetch(data.config)).json();
    const clip = await MobileClip.load({ model, weights: data.weights });
    const embedding = await clip.encodeImage(data.image);
    self.postMessage({ embedding });
  } catch (e) {
    self.postMessage({ error: `${e.code}: ${e.message}` });
  }
};
