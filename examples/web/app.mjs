// The page: a file or a microphone recording -> Web Audio (decode, resample to the model's rate)
// -> mono -> the fused ONNX model in onnxruntime-web (WebAssembly) -> a bar chart.
//
// Everything runs in the browser; the only requests are for this page, onnxruntime-web's files
// and the model. `?model=URL` loads another fused model (default: ../default-waveform.onnx, the
// default bundled model's, written from the project root by
// `python -m export fuse --out examples/default-waveform.onnx`). For tests, `window.serEdge`
// holds the session, the last result, the count of results shown and the timings.

import * as ort from './node_modules/onnxruntime-web/dist/ort.wasm.min.mjs';

import { classify, downmix, modelInfo, readMetadata } from '../js/ser-edge.mjs';

// Several threads need a cross-origin isolated page (COOP/COEP headers), which a plain static
// server does not send; the model is small, one thread is what the Python runtime uses too.
ort.env.wasm.numThreads = 1;

const MODEL_URL = new URLSearchParams(location.search).get('model') ?? '../default-waveform.onnx';

const $ = (id) => document.getElementById(id);
const state = { session: null, info: null, count: 0, last: null, lastError: null, timings: {} };
window.serEdge = state;

function status(text, error = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
  if (error) state.lastError = text;
}

state.ready = (async () => {
  try {
    const response = await fetch(MODEL_URL);
    if (!response.ok) throw new Error(`${MODEL_URL}: HTTP ${response.status} (write it from the project root: \`python -m export fuse --out examples/default-waveform.onnx\`)`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    state.info = modelInfo(readMetadata(bytes));
    state.session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
    state.timings.modelReadyMs = performance.now();
    const kib = Math.round(bytes.length / 1024);
    $('model-name').textContent = `model: ${MODEL_URL.split('/').pop()} (${kib} KiB, ` +
      `${state.info.labels.length} emotions, ${state.info.sampleRate} Hz)`;
    status('Ready: choose a file or record yourself.');
    $('record').disabled = !navigator.mediaDevices?.getUserMedia || !window.MediaRecorder;
  } catch (err) {
    status(`Cannot load the model: ${err.message}`, true);
    throw err;
  }
})();

/**
 * Decode audio and resample it to `sampleRate` with the Web Audio API: `decodeAudioData` on an
 * OfflineAudioContext at the model's rate returns the channels at that rate. Then the mean of
 * the channels.
 */
async function decodeMono(arrayBuffer, sampleRate) {
  const ctx = new OfflineAudioContext({ numberOfChannels: 1, length: 1, sampleRate });
  const buffer = await ctx.decodeAudioData(arrayBuffer);
  const channels = Array.from({ length: buffer.numberOfChannels }, (_, c) => buffer.getChannelData(c));
  return { samples: downmix(channels), channels: buffer.numberOfChannels };
}

function render(result, source) {
  $('label').textContent = result.label;
  $('confidence').textContent = `${(100 * result.probabilities[result.label]).toFixed(1)}%`;
  $('source').textContent = source;
  const chart = $('chart');
  chart.replaceChildren();
  for (const [label, p] of result.top) {
    const row = document.createElement('div');
    row.className = label === result.label ? 'bar top' : 'bar';
    row.setAttribute('role', 'listitem');
    row.dataset.label = label;
    row.dataset.probability = String(p);
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = label;
    const track = document.createElement('span');
    track.className = 'track';
    const fill = document.createElement('span');
    fill.className = 'fill';
    fill.style.display = 'block';
    fill.style.width = `${(100 * p).toFixed(2)}%`;
    track.append(fill);
    const value = document.createElement('span');
    value.className = 'value';
    value.textContent = `${(100 * p).toFixed(1)}%`;
    row.append(name, track, value);
    chart.append(row);
  }
  $('result').hidden = false;
}

async function run(arrayBuffer, source, startedAt) {
  status('Listening…');
  try {
    await state.ready;
    const t0 = performance.now();
    const { samples, channels } = await decodeMono(arrayBuffer, state.info.sampleRate);
    const decodeMs = performance.now() - t0;
    const result = await classify(ort, state.session, state.info, samples);
    render(result, `${source}: ${result.durationS.toFixed(2)} s` +
      (channels > 1 ? `, ${channels} channels mixed down` : ''));
    const totalMs = performance.now() - startedAt;
    state.timings.last = { decodeMs, inferenceMs: result.inferenceMs, totalMs };
    if (state.timings.firstResultMs === undefined) state.timings.firstResultMs = totalMs;
    $('details').textContent = `decoded and resampled to ${state.info.sampleRate} Hz in ` +
      `${decodeMs.toFixed(0)} ms; features and model in ${result.inferenceMs.toFixed(0)} ms`;
    state.last = result;
    state.count += 1;
    status('Done: choose another file or record again.');
  } catch (err) {
    state.count += 1;
    status(`${source}: ${err.message}`, true);
  }
}

$('file').addEventListener('change', async (event) => {
  const startedAt = performance.now();
  const file = event.target.files[0];
  if (!file) return;
  await run(await file.arrayBuffer(), file.name, startedAt);
  event.target.value = ''; // the same file again is a new choice
});

let recorder = null;
$('record').addEventListener('click', async () => {
  const button = $('record');
  if (recorder?.state === 'recording') {
    recorder.stop();
    return;
  }
  let stream;
  try {
    // The raw signal: no echo cancellation, noise suppression or automatic gain, which would
    // change what the model hears.
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (err) {
    status(`No microphone: ${err.message}`, true);
    return;
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.addEventListener('dataavailable', (e) => chunks.push(e.data));
  const began = performance.now();
  const tick = setInterval(() => {
    $('rec-time').textContent = `${((performance.now() - began) / 1000).toFixed(1)} s`;
  }, 100);
  recorder.addEventListener('stop', async () => {
    const stoppedAt = performance.now();
    clearInterval(tick);
    stream.getTracks().forEach((t) => t.stop());
    button.textContent = 'Record';
    button.classList.remove('recording');
    const blob = new Blob(chunks, { type: recorder.mimeType });
    await run(await blob.arrayBuffer(), 'your recording', stoppedAt);
  });
  recorder.start();
  button.textContent = 'Stop';
  button.classList.add('recording');
  status('Recording… press Stop when you are done.');
});
