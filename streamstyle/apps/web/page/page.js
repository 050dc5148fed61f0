// The page: a photo or the webcam in, a built-in style or paintings chosen, the result shown beside the original.
// Everything it does goes through streamstyle.js, the module other pages can use too.
import { StreamstyleError, live, pixelsOf, ready, stylize } from './streamstyle.js';

const $ = (id) => document.getElementById(id);
const DECODING = { imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none' };
const RECORDING_TYPES = ['video/webm;codecs=vp9,opus', 'video/webm;codecs=vp8,opus', 'video/webm'];

const state = {
  photo: null, // ImageBitmap
  builtin: 7,
  paintings: [], // ImageBitmaps: one painting, or two mixed
  camera: null, // MediaStream
  session: null, // live()'s session while the webcam runs in the browser
  call: null, // { peer, channel } while the webcam runs on the server
  recorder: null,
  microphone: null, // MediaStream: the sound of a recording
  rendering: false,
  again: false,
};

function say(text) {
  $('message').textContent = text;
  $('message').hidden = !text;
}

function showError(error) {
  say(error instanceof StreamstyleError ? error.message : `something went wrong: ${error.message || error}`);
  $('status').textContent = 'ready';
}

function options() {
  const strength = Number($('strength').value);
  const maxSize = Number($('size').value);
  if (!state.paintings.length) return { style: state.builtin, strength, maxSize };
  if (state.paintings.length === 1) return { style: state.paintings[0], strength, maxSize };
  const mix = Number($('mix').value);
  return { style: [[state.paintings[0], 1 - mix], [state.paintings[1], mix]], strength, maxSize };
}

async function decode(file) {
  if (!file.type.startsWith('image/')) {
    throw new StreamstyleError(
      `${file.name} is not an image (${file.type || 'unknown type'}): use a photo or a painting, e.g. PNG, JPEG or WebP`);
  }
  try {
    return await createImageBitmap(file, DECODING);
  } catch {
    throw new StreamstyleError(`${file.name} could not be read as an image: is it damaged?`);
  }
}

function draw(canvas, image) {
  canvas.width = image.width;
  canvas.height = image.height;
  canvas.getContext('2d').putImageData(image, 0, 0);
}

function offerDownload() {
  $('result').toBlob((blob) => {
    const link = $('download');
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(blob);
    link.hidden = false;
  }, 'image/png');
}

/** Stylize the photo with what is chosen now; a change made meanwhile runs once more after. */
async function render() {
  if (state.session) {
    state.session.set(options());
    return;
  }
  if (state.call) {
    if (state.paintings.length) say('The server paints with its built-in styles: pick one of them.');
    if (state.call.channel.readyState === 'open') state.call.channel.send(JSON.stringify(serverSettings()));
    return;
  }
  if (!state.photo) return;
  if (state.rendering) {
    state.again = true;
    return;
  }
  state.rendering = true;
  try {
    do {
      state.again = false;
      const chosen = options();
      $('status').textContent = 'painting…';
      draw($('original'), await pixelsOf(state.photo, chosen.maxSize));
      const started = performance.now();
      const image = await stylize(state.photo, chosen);
      draw($('result'), image);
      $('result').dataset.renders = String(Number($('result').dataset.renders || 0) + 1);
      $('status').textContent = `painted ${image.width}x${image.height} in ${Math.round(performance.now() - started)} ms`;
      say('');
      offerDownload();
    } while (state.again);
  } catch (error) {
    showError(error);
  } finally {
    state.rendering = false;
  }
}

async function takePhoto(file) {
  state.photo = await decode(file);
  await render();
}

async function takePainting(file, second) {
  const painting = await decode(file);
  state.paintings = second && state.paintings.length ? [state.paintings[0], painting] : [painting];
  const shown = $('paintings');
  shown.replaceChildren();
  for (const each of state.paintings) {
    const canvas = document.createElement('canvas');
    canvas.width = each.width;
    canvas.height = each.height;
    canvas.getContext('2d').drawImage(each, 0, 0);
    const image = document.createElement('img');
    image.src = canvas.toDataURL('image/jpeg');
    shown.append(image);
  }
  $('mix-label').hidden = state.paintings.length < 2;
  selectBuiltin(null);
  await render();
}

function selectBuiltin(index) {
  for (const button of $('styles').children) {
    button.setAttribute('aria-selected', String(Number(button.dataset.style) === index));
  }
  if (index === null) return;
  state.builtin = index;
  state.paintings = [];
  $('paintings').replaceChildren();
  $('mix-label').hidden = true;
}

function showStyles(styles) {
  for (const style of styles) {
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.style = String(style.index);
    button.title = `${style.index}: ${style.look}`;
    const image = document.createElement('img');
    image.src = style.thumbnail;
    image.alt = `style ${style.index}: ${style.look}`;
    button.append(image);
    button.addEventListener('click', () => {
      selectBuiltin(style.index);
      render();
    });
    $('styles').append(button);
  }
  selectBuiltin(state.builtin);
}

function serverSettings() {
  return { style: String(state.builtin), strength: Number($('strength').value) };
}

function iceGathered(peer) {
  // The server takes the offer with all its candidates at once (no trickle ICE over plain HTTP).
  if (peer.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    peer.addEventListener('icegatheringstatechange', () => {
      if (peer.iceGatheringState === 'complete') resolve();
    });
  });
}

function countServedFrames(video) {
  const shown = [];
  const step = () => {
    if (!state.call) return;
    shown.push(performance.now());
    if (shown.length > 60) shown.shift();
    const recent = shown.filter((time) => time > performance.now() - 2000);
    const fps = recent.length > 1 ? (1000 * (recent.length - 1)) / (recent.at(-1) - recent[0]) : 0;
    $('fps').textContent = `${fps.toFixed(1)} fps`;
    $('result').dataset.frames = String(Number($('result').dataset.frames || 0) + 1);
    video.requestVideoFrameCallback(step);
  };
  video.requestVideoFrameCallback(step);
}

/** Send the camera to the server over WebRTC; its stylized pictures come back on the same connection. */
async function callServer(camera) {
  const peer = new RTCPeerConnection({ iceServers: [] });
  for (const track of camera.getTracks()) peer.addTrack(track, camera);
  const channel = peer.createDataChannel('settings');
  state.call = { peer, channel };
  channel.addEventListener('message', (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'error') say(message.error);
    if (message.type === 'stats') $('status').textContent = `on the server: ${message.size} px, ${message.dropped} dropped, latency ${message.latency_ms_median} ms`;
  });
  peer.addEventListener('track', (event) => {
    if (event.track.kind !== 'video') return;
    const served = $('served');
    served.srcObject = event.streams[0] || new MediaStream([event.track]);
    served.hidden = false;
    $('result').hidden = true;
    countServedFrames(served);
  });
  await peer.setLocalDescription(await peer.createOffer());
  await iceGathered(peer);
  const response = await fetch('offer', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ sdp: peer.localDescription.sdp, type: 'offer', ...serverSettings() }),
  });
  const answer = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new StreamstyleError(`The server did not take the call: ${answer.error}`);
  await peer.setRemoteDescription(answer);
}

async function startWebcam() {
  try {
    state.camera = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 } }, audio: false });
  } catch (error) {
    say(`The camera could not be opened (${error.name}${error.message ? `: ${error.message}` : ''}). Photos still work.`);
    return;
  }
  const video = $('camera');
  video.srcObject = state.camera;
  video.hidden = false;
  $('original').hidden = true;
  await video.play();
  $('webcam-start').disabled = true;
  $('webcam-stop').disabled = false;
  $('record').disabled = false;
  say('');
  if ($('run-on').value === 'server') {
    try {
      await callServer(state.camera);
    } catch (error) {
      stopWebcam();
      throw error;
    }
    return;
  }
  state.session = live(video, $('result'), {
    ...options(),
    onFrame: (session) => {
      $('fps').textContent = `${session.fps.toFixed(1)} fps`;
      $('result').dataset.frames = String(session.frames);
    },
  });
  state.session.done.catch(showError).finally(stopWebcam);
}

function stopWebcam() {
  state.session?.stop();
  state.session = null;
  state.call?.peer.close();
  state.call = null;
  $('served').hidden = true;
  $('result').hidden = false;
  if (state.recorder?.state === 'recording') state.recorder.stop();
  for (const track of state.camera?.getTracks() ?? []) track.stop();
  state.camera = null;
  $('camera').hidden = true;
  $('original').hidden = false;
  $('webcam-start').disabled = false;
  $('webcam-stop').disabled = true;
  $('record').disabled = true;
  $('record').textContent = 'Record';
  $('fps').textContent = '';
}

/** The painted pictures, with the microphone's sound where the browser gives it (asked only now: a user who
 * never records is never asked); a recording without sound says why. */
async function recordedStream() {
  if (state.call) return $('served').srcObject; // what the server sent back
  const painted = $('result').captureStream();
  try {
    state.microphone = await navigator.mediaDevices.getUserMedia({ audio: true });
    for (const track of state.microphone.getAudioTracks()) painted.addTrack(track);
  } catch (error) {
    say(`Recording without sound: the microphone could not be opened (${error.name}).`);
  }
  return painted;
}

async function toggleRecording() {
  if (state.recorder?.state === 'recording') {
    state.recorder.stop();
    return;
  }
  const mimeType = RECORDING_TYPES.find((type) => MediaRecorder.isTypeSupported(type));
  const chunks = [];
  state.recorder = new MediaRecorder(await recordedStream(), mimeType ? { mimeType } : {});
  state.recorder.ondataavailable = (event) => chunks.push(event.data);
  state.recorder.onstop = () => {
    for (const track of state.microphone?.getTracks() ?? []) track.stop();
    state.microphone = null;
    const link = $('recording');
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob(chunks, { type: 'video/webm' }));
    link.hidden = false;
    $('record').textContent = 'Record';
  };
  state.recorder.start(1000);
  $('record').textContent = 'Stop recording';
}

function acceptDrops(zone, take) {
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    const files = [...(event.dataTransfer?.files ?? [])];
    if (!files.length) {
      say('Nothing to use was dropped: drop an image file.');
      return;
    }
    files.slice(0, 2).reduce((previous, file, index) => previous.then(() => take(file, index > 0)), Promise.resolve())
      .catch(showError);
  });
}

function fromPicker(input, take) {
  input.addEventListener('change', () => {
    if (input.files.length) take(input.files[0]).catch(showError);
    input.value = ''; // the same file picked again is a change too
  });
}

/** `streamstyle serve` also paints the webcam and video files on the server; a static host does not. */
async function offerServerMode() {
  try {
    const response = await fetch('api/info');
    if (!response.ok) return;
    const offered = await response.json();
    $('run-on-label').hidden = !offered.live;
    $('video-job').hidden = !offered.jobs;
  } catch {
    // a static host: the page paints in the browser only
  }
}

function describeJob(job) {
  if (job.state === 'queued') return job.place === 1 ? 'next in line' : `waiting: ${job.place - 1} before it`;
  if (job.state === 'running') return job.total ? `painting frame ${job.frames} of ${job.total}` : `painting frame ${job.frames}`;
  if (job.state === 'failed') return `failed: ${job.error}`;
  return job.state;
}

/** Send a video file to the server, follow its progress, offer the result. */
async function sendVideo(file) {
  const form = new FormData();
  form.append('style', String(state.builtin));
  form.append('strength', $('strength').value);
  if (Number($('size').value)) form.append('max_size', $('size').value);
  form.append('file', file);
  $('video-state').textContent = 'sending…';
  $('video-result').hidden = true;
  const response = await fetch('api/jobs', { method: 'POST', body: form });
  const job = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) {
    $('video-state').textContent = '';
    throw new StreamstyleError(job.error);
  }
  $('video-cancel').hidden = false;
  $('video-cancel').onclick = () => fetch(`api/jobs/${job.id}`, { method: 'DELETE' });
  const events = new EventSource(`api/jobs/${job.id}/events`);
  events.onmessage = (event) => {
    const now = JSON.parse(event.data);
    $('video-state').textContent = describeJob(now);
    $('video-progress').value = now.total ? now.frames / now.total : 0;
    if (['done', 'failed', 'cancelled'].includes(now.state)) {
      events.close();
      $('video-cancel').hidden = true;
      if (now.state === 'done') {
        $('video-result').href = now.result;
        $('video-result').hidden = false;
      }
    }
  };
}

async function start() {
  // A file dropped outside the drop zones would make the browser leave the page for it.
  window.addEventListener('dragover', (event) => event.preventDefault());
  window.addEventListener('drop', (event) => event.preventDefault());
  acceptDrops($('photo-drop'), (file) => takePhoto(file));
  acceptDrops($('painting-drop'), (file, second) => takePainting(file, second || state.paintings.length > 0));
  fromPicker($('photo-input'), takePhoto);
  fromPicker($('painting-input'), (file) => takePainting(file, false));
  fromPicker($('painting2-input'), (file) => takePainting(file, true));
  fromPicker($('video-input'), sendVideo);
  for (const control of ['strength', 'mix', 'size']) $(control).addEventListener('change', render);
  $('webcam-start').addEventListener('click', () => startWebcam().catch(showError));
  $('webcam-stop').addEventListener('click', stopWebcam);
  $('record').addEventListener('click', () => toggleRecording().catch(showError));
  try {
    const { engine, threads, styles } = await ready();
    $('engine').textContent = engine === 'wasm' ? `WASM (SIMD, ${threads} thread${threads > 1 ? 's' : ''})` : 'WebGPU';
    showStyles(styles);
    offerServerMode();
    $('status').textContent = 'ready';
    document.body.dataset.ready = 'true';
  } catch (error) {
    $('engine').textContent = 'none';
    showError(error);
  }
}

start();
