// "Take a photo": a dialog with the camera's preview; each snap becomes a JPEG File.
import { showError } from './messages.js';

export function setupCamera({ button, dialog, video, snap, close, error }, onPhoto) {
  let stream = null;
  let count = 0;
  const stop = () => {
    for (const t of stream?.getTracks() ?? []) t.stop();
    stream = null;
    video.srcObject = null;
  };
  if (!navigator.mediaDevices?.getUserMedia) {
    button.disabled = true;
    button.title = 'This browser offers no camera access to this page';
  }
  button.addEventListener('click', async () => {
    error.hidden = true;
    snap.disabled = true;
    dialog.showModal();
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment', width: { ideal: 1280 } }, audio: false });
      video.srcObject = stream;
      await video.play();
      snap.disabled = false;
      snap.focus();
    } catch (e) {
      showError(error, Object.assign(new Error(`${e.name}: ${e.message}`), { code: 'CAMERA' }));
    }
  });
  snap.addEventListener('click', async () => {
    const canvas = Object.assign(document.createElement('canvas'), { width: video.videoWidth, height: video.videoHeight });
    canvas.getContext('2d').drawImage(video, 0, 0);
    const blob = await new Promise((r) => canvas.toBlob(r, 'image/jpeg', 0.92));
    onPhoto(new File([blob], `camera-${++count}.jpg`, { type: 'image/jpeg' }));
  });
  close.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', stop);
}
