// streamstyle in the browser: the style networks of streamstyle, run by onnxruntime-web on this machine.
// The runtime, its WASM and the networks are served beside this module; no picture leaves the page.
//
//   import { ready, stylize, live } from './streamstyle.js';
//   const { engine } = await ready();                      // 'webgpu' where the browser has an adapter, else 'wasm'
//   const image = await stylize(photo, { style: 7 });      // ImageData
//   await stylize(photo, { style: [[3, 0.5], [12, 0.5]], strength: 0.8 });   // a blend of built-in styles
//   await stylize(photo, { style: painting });             // any painting: an <img>, ImageBitmap, canvas...
//   const session = live(video, canvas, { style: 7 });     // newest frame each time; session.fps, .set(), .stop()
//
// The maths follows the Python package (see `streamstyle export`'s manifest): RGB in [0, 1], NCHW; pictures
// padded at the bottom and right by reflection to multiples of 4 and cropped back; a painting's style vector from
// its centre square resized to 256 px with an antialiased bicubic filter (torch's, with a = -0.5).

const HERE = new URL('./', import.meta.url);
const BUILTIN = 'dumoulin26';
const TRANSFORMER = 'magenta-transformer';
const PREDICTOR = 'magenta-predictor';

/** Every error this module throws on bad input or a failed load: its message is meant for the user. */
export class StreamstyleError extends Error {
  constructor(message) {
    super(message);
    this.name = 'StreamstyleError';
  }
}

let loading = null;

/**
 * Load the runtime and the page's description of the networks, once. `engine`: 'auto' (WebGPU where the browser
 * has an adapter, WASM otherwise), 'webgpu' or 'wasm'. Resolves to { engine, threads, styles, site }.
 */
export function ready({ engine = 'auto', base = HERE } = {}) {
  if (!loading) {
    loading = load(engine, new URL(base, HERE)).catch((error) => {
      loading = null; // a failed load is tried again by the next call
      throw error;
    });
  }
  return loading;
}

async function hasWebGpu() {
  try {
    return Boolean(navigator.gpu && (await navigator.gpu.requestAdapter()));
  } catch {
    return false;
  }
}

async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new StreamstyleError(`${url.pathname}: ${response.status} ${response.statusText}`);
  return response.json();
}

async function load(engine, base) {
  if (!['auto', 'webgpu', 'wasm'].includes(engine)) {
    throw new StreamstyleError(`engine ${engine}: use auto, webgpu or wasm`);
  }
  const site = await fetchJson(new URL('models/site.json', base));
  const webgpu = engine !== 'wasm' && (await hasWebGpu());
  if (engine === 'webgpu' && !webgpu) throw new StreamstyleError('this browser offers no WebGPU adapter');
  // The WebGPU build also runs the WASM engine, but its WASM file is twice the size: load it only when needed.
  const ort = await import(new URL(webgpu ? 'vendor/ort.webgpu.min.mjs' : 'vendor/ort.wasm.min.mjs', base).href);
  ort.env.wasm.wasmPaths = new URL('vendor/', base).href;
  // Threads need a cross-origin isolated page (the server's COOP and COEP headers); without, one thread works.
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(navigator.hardwareConcurrency || 1, 8) : 1;
  return {
    ort, base, site, sessions: new Map(), queue: Promise.resolve(), vectors: new WeakMap(),
    engine: webgpu ? 'webgpu' : 'wasm', threads: ort.env.wasm.numThreads, styles: site.styles,
  };
}

function session(runtime, name) {
  if (!runtime.sessions.has(name)) {
    const url = new URL(`models/${name}.onnx`, runtime.base).href;
    const executionProviders = runtime.engine === 'webgpu' ? ['webgpu', 'wasm'] : ['wasm'];
    const created = runtime.ort.InferenceSession.create(url, { executionProviders }).catch((error) => {
      runtime.sessions.delete(name);
      throw new StreamstyleError(`the ${name} network did not load: ${error.message}`);
    });
    runtime.sessions.set(name, created);
  }
  return runtime.sessions.get(name);
}

/** Run one network; one run at a time on the page, as onnxruntime-web's sessions want. */
function run(runtime, name, feeds) {
  const result = runtime.queue.then(async () => {
    const network = await session(runtime, name);
    const tensors = {};
    for (const [input, { data, dims }] of Object.entries(feeds)) {
      tensors[input] = new runtime.ort.Tensor('float32', data, dims);
    }
    const outputs = await network.run(tensors);
    const output = outputs[network.outputNames[0]];
    const data = await output.getData(true); // from the GPU too, and frees it there
    return { data, dims: output.dims };
  });
  runtime.queue = result.catch(() => {});
  return result;
}

// Pictures as planes: { data: Float32Array of 3 planes (R, G, B) in [0, 1], height, width }.

function sizeOf(source) {
  if (source instanceof ImageData) return [source.width, source.height];
  if (typeof HTMLVideoElement !== 'undefined' && source instanceof HTMLVideoElement) {
    return [source.videoWidth, source.videoHeight];
  }
  if (typeof HTMLImageElement !== 'undefined' && source instanceof HTMLImageElement) {
    return [source.naturalWidth, source.naturalHeight];
  }
  if (typeof VideoFrame !== 'undefined' && source instanceof VideoFrame) {
    return [source.displayWidth, source.displayHeight];
  }
  if (source && source.width > 0 && source.height > 0) return [source.width, source.height];
  throw new StreamstyleError('not a picture: give an image, a canvas, a video, an ImageBitmap, a VideoFrame or ImageData');
}

/** The RGBA pixels of anything drawable, its longer side shrunk to `maxSize` when over it (0: as it is). */
export async function pixelsOf(source, maxSize = 0) {
  const [width, height] = sizeOf(source);
  if (!width || !height) throw new StreamstyleError('the picture is empty (a video not playing yet?)');
  const scale = maxSize && Math.max(width, height) > maxSize ? maxSize / Math.max(width, height) : 1;
  if (source instanceof ImageData && scale === 1) return source;
  const drawable = source instanceof ImageData ? await createImageBitmap(source) : source;
  const canvas = new OffscreenCanvas(Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale)));
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.imageSmoothingQuality = 'high';
  context.drawImage(drawable, 0, 0, canvas.width, canvas.height);
  return context.getImageData(0, 0, canvas.width, canvas.height);
}

export function planesOf(image) {
  const { width, height, data: rgba } = image;
  const area = width * height;
  const data = new Float32Array(3 * area);
  for (let i = 0; i < area; i++) {
    data[i] = rgba[4 * i] / 255;
    data[area + i] = rgba[4 * i + 1] / 255;
    data[2 * area + i] = rgba[4 * i + 2] / 255;
  }
  return { data, height, width };
}

export function imageDataOf({ data, height, width }) {
  const area = width * height;
  const rgba = new Uint8ClampedArray(4 * area);
  for (let i = 0; i < area; i++) {
    // Uint8ClampedArray rounds half to even and clips, as the Python side's round and clip do.
    rgba[4 * i] = data[i] * 255;
    rgba[4 * i + 1] = data[area + i] * 255;
    rgba[4 * i + 2] = data[2 * area + i] * 255;
    rgba[4 * i + 3] = 255;
  }
  return new ImageData(rgba, width, height);
}

/** Where row or column `index` of a padded picture of `size` comes from: reflection, or the edge repeated. */
function sourceIndex(index, size, reflect) {
  if (index < size) return index;
  return reflect ? 2 * (size - 1) - index : size - 1;
}

/** Pad the bottom and right to multiples of `multiple`, `minimum` at least, as the Python side does. */
export function padPlanes({ data, height, width }, multiple, minimum) {
  const padded = (side) => Math.ceil(Math.max(side, minimum) / multiple) * multiple;
  const outHeight = padded(height);
  const outWidth = padded(width);
  if (outHeight === height && outWidth === width) return { data, height, width };
  const reflect = outHeight - height < height && outWidth - width < width;
  const out = new Float32Array(3 * outHeight * outWidth);
  for (let channel = 0; channel < 3; channel++) {
    for (let y = 0; y < outHeight; y++) {
      const from = channel * height * width + sourceIndex(y, height, reflect) * width;
      const to = (channel * outHeight + y) * outWidth;
      out.set(data.subarray(from, from + width), to);
      for (let x = width; x < outWidth; x++) out[to + x] = data[from + sourceIndex(x, width, reflect)];
    }
  }
  return { data: out, height: outHeight, width: outWidth };
}

/** The top-left `height` x `width` of planes `{ data, height: fullHeight, width: fullWidth }`. */
export function cropPlanes({ data, height: fullHeight, width: fullWidth }, height, width) {
  if (fullHeight === height && fullWidth === width) return { data, height, width };
  const out = new Float32Array(3 * height * width);
  for (let channel = 0; channel < 3; channel++) {
    for (let y = 0; y < height; y++) {
      const from = (channel * fullHeight + y) * fullWidth;
      out.set(data.subarray(from, from + width), (channel * height + y) * width);
    }
  }
  return { data: out, height, width };
}

function cubic(x) {
  const a = -0.5;
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

/** For each output index: the first input index and the normalised weights, antialiased when shrinking. */
function resampling(inSize, outSize) {
  const scale = inSize / outSize;
  const support = 2 * Math.max(scale, 1);
  const stretch = 1 / Math.max(scale, 1);
  const taps = [];
  for (let i = 0; i < outSize; i++) {
    const centre = scale * (i + 0.5);
    const first = Math.max(Math.trunc(centre - support + 0.5), 0);
    const last = Math.min(Math.trunc(centre + support + 0.5), inSize);
    const weights = [];
    for (let j = first; j < last; j++) weights.push(cubic((j - centre + 0.5) * stretch));
    const total = weights.reduce((sum, weight) => sum + weight, 0);
    taps.push({ first, weights: weights.map((weight) => weight / total) });
  }
  return taps;
}

/** The centre square, resized to `size` x `size`, values clamped to [0, 1]. */
export function centreSquare({ data, height, width }, size) {
  const side = Math.min(height, width);
  const top = Math.floor((height - side) / 2);
  const left = Math.floor((width - side) / 2);
  const taps = resampling(side, size);
  const rows = new Float32Array(3 * side * size); // the horizontal pass, over the square's rows
  for (let channel = 0; channel < 3; channel++) {
    for (let y = 0; y < side; y++) {
      const from = (channel * height + top + y) * width + left;
      for (let x = 0; x < size; x++) {
        const { first, weights } = taps[x];
        let sum = 0;
        for (let k = 0; k < weights.length; k++) sum += weights[k] * data[from + first + k];
        rows[(channel * side + y) * size + x] = sum;
      }
    }
  }
  const out = new Float32Array(3 * size * size);
  for (let channel = 0; channel < 3; channel++) {
    for (let y = 0; y < size; y++) {
      const { first, weights } = taps[y];
      for (let x = 0; x < size; x++) {
        let sum = 0;
        for (let k = 0; k < weights.length; k++) sum += weights[k] * rows[(channel * side + first + k) * size + x];
        out[(channel * size + y) * size + x] = Math.min(1, Math.max(0, sum));
      }
    }
  }
  return { data: out, height: size, width: size };
}

function mix(from, to, amount) {
  const out = new Float32Array(to.length);
  for (let i = 0; i < to.length; i++) out[i] = from[i] + (to[i] - from[i]) * amount;
  return out;
}

/** A style as { builtin: Float32Array of weights } or { paintings: [[painting, weight], ...] }, weights summing to 1. */
function parseStyle(style, count) {
  const parts = Array.isArray(style) ? style : [[style, 1]];
  if (!parts.length || parts.some((part) => !Array.isArray(part) || part.length !== 2)) {
    throw new StreamstyleError('a blend is a list of [style, weight] pairs, e.g. [[3, 0.5], [12, 0.5]]');
  }
  const total = parts.reduce((sum, [, weight]) => sum + weight, 0);
  if (parts.some(([, weight]) => !(weight >= 0)) || !(total > 0)) {
    throw new StreamstyleError('style weights are numbers of 0 or more, not all 0');
  }
  const builtins = parts.filter(([which]) => typeof which === 'number');
  if (builtins.length && builtins.length !== parts.length) {
    throw new StreamstyleError('a blend is of built-in styles or of paintings, not both');
  }
  if (!builtins.length) return { paintings: parts.map(([painting, weight]) => [painting, weight / total]) };
  const weights = new Float32Array(count);
  for (const [index, weight] of parts) {
    if (!Number.isInteger(index) || index < 0 || index >= count) {
      throw new StreamstyleError(`style ${index}: the built-in styles are 0 to ${count - 1}`);
    }
    weights[index] += weight / total;
  }
  return { builtin: weights };
}

async function predict(runtime, planes) {
  const square = centreSquare(planes, runtime.site.style_image_size);
  const { data } = await run(runtime, PREDICTOR, { style_image: { data: square.data, dims: [1, 3, square.height, square.width] } });
  return Float32Array.from(data);
}

/** The style vector of a picture (the magenta predictor's output), computed once per painting object. */
export async function styleVectorOf(picture) {
  const runtime = await ready();
  if (picture instanceof Float32Array) return picture;
  const known = typeof picture === 'object' && runtime.vectors.get(picture);
  if (known) return known;
  const vector = await predict(runtime, planesOf(await pixelsOf(picture)));
  if (typeof picture === 'object') runtime.vectors.set(picture, vector);
  return vector;
}

function checkStrength(strength) {
  if (!(strength >= 0 && strength <= 1)) throw new StreamstyleError(`strength ${strength}: use a number from 0 to 1`);
}

/**
 * Stylize one picture. `style`: a built-in style's index, a painting (anything drawable, or its style vector),
 * or a blend: [[index, weight], ...] or [[painting, weight], ...]. `strength` from 0 (the photo) to 1 (all style).
 * `maxSize` shrinks the picture's longer side to it first (0: full size). `contentStyle`: the style vector that
 * strength < 1 mixes a painting with (default: the picture's own), so that video frames can share one.
 * Resolves to ImageData of the (shrunk) picture's size.
 */
export async function stylize(picture, { style = 0, strength = 1, maxSize = 0, contentStyle = null } = {}) {
  const runtime = await ready();
  checkStrength(strength);
  const parsed = parseStyle(style, runtime.site.styles.length);
  const content = planesOf(await pixelsOf(picture, maxSize));
  const padded = padPlanes(content, runtime.site.side_multiple, runtime.site.smallest_side);
  const contentTensor = { data: padded.data, dims: [1, 3, padded.height, padded.width] };
  let output;
  if (parsed.builtin) {
    output = await run(runtime, BUILTIN, { content: contentTensor, style_weights: { data: parsed.builtin, dims: [1, parsed.builtin.length] } });
  } else {
    let vector = new Float32Array(runtime.site.style_dim);
    for (const [painting, weight] of parsed.paintings) {
      const own = await styleVectorOf(painting);
      vector = vector.map((value, i) => value + weight * own[i]);
    }
    if (strength < 1) vector = mix(contentStyle || (await predict(runtime, content)), vector, strength);
    output = await run(runtime, TRANSFORMER, { content: contentTensor, style_vector: { data: vector, dims: [1, vector.length] } });
  }
  const stylized = cropPlanes({ data: output.data, height: padded.height, width: padded.width }, content.height, content.width);
  if (parsed.builtin && strength < 1) stylized.data = mix(content.data, stylized.data, strength);
  return imageDataOf(stylized);
}

function isBuiltin(style) {
  return typeof style === 'number' || (Array.isArray(style) && style.every((part) => typeof part[0] === 'number'));
}

function nextVideoFrame(video) {
  return new Promise((resolve) => {
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(() => resolve());
    else requestAnimationFrame(() => resolve());
  });
}

/**
 * Stylize a playing <video> into `canvas` for as long as it plays. Newest frame first: each run takes the frame
 * showing when the previous run ends, so a slow network skips frames instead of falling behind. Returns
 * { fps, frames, set(options), stop(), done }: `done` settles when stopped (rejects on an error).
 */
export function live(video, canvas, options = {}) {
  let settings = { ...options };
  let running = true;
  let ownStyle = null; // the first frame's style vector, for strength < 1 with paintings: steady, not per frame
  const shown = [];
  const context = canvas.getContext('2d');
  const session = {
    frames: 0,
    get fps() {
      const recent = shown.filter((time) => time > performance.now() - 2000);
      return recent.length > 1 ? (1000 * (recent.length - 1)) / (recent.at(-1) - recent[0]) : 0;
    },
    set(changes) {
      settings = { ...settings, ...changes };
      ownStyle = null;
    },
    stop() {
      running = false;
    },
  };
  session.done = (async () => {
    while (running) {
      if (video.readyState < 2 || !video.videoWidth) {
        await nextVideoFrame(video);
        continue;
      }
      const wanted = settings;
      if (wanted.strength < 1 && !isBuiltin(wanted.style ?? 0) && !ownStyle) ownStyle = await styleVectorOf(await pixelsOf(video, wanted.maxSize || 0));
      const image = await stylize(video, { ...wanted, contentStyle: ownStyle });
      if (!running) break;
      if (canvas.width !== image.width || canvas.height !== image.height) {
        canvas.width = image.width;
        canvas.height = image.height;
      }
      context.putImageData(image, 0, 0);
      session.frames += 1;
      shown.push(performance.now());
      if (shown.length > 120) shown.shift();
      settings.onFrame?.(session);
      await nextVideoFrame(video);
    }
  })();
  return session;
}
