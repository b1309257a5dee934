// ser-edge in JavaScript: read a fused model's metadata, check a signal, run the model.
//
// Shared by the Node.js example (../node/classify.mjs, with onnxruntime-node) and the web page
// (../web/app.mjs, with onnxruntime-web). It holds no feature code: a model written by
// `python -m export fuse` computes its features itself, from the waveform ("waveform", float32
// (1, n_samples), mono at the model's sample rate). What it needs from the model's metadata
// (labels, sample rate, frame length) is read from the ONNX file, since onnxruntime's
// JavaScript API does not expose a model's custom metadata. A fused frame-level network also
// says how many frames its network was given ("n_frames"): a clip with fewer than it needs gets
// ser-edge's "too short" message, as in Python.

/**
 * The `metadata_props` of an ONNX model, as an object of strings.
 *
 * Walks the protobuf wire format of `onnx.ModelProto` (field 14, repeated
 * `StringStringEntryProto {key = 1, value = 2}`) and skips every other field unread.
 *
 * @param {ArrayBuffer | Uint8Array} bytes The model file.
 * @returns {Record<string, string>}
 */
export function readMetadata(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const text = new TextDecoder();
  let pos = 0;
  const varint = () => {
    let value = 0;
    let scale = 1;
    let byte;
    do {
      if (pos >= u8.length) throw new Error('not an ONNX model (truncated protobuf)');
      byte = u8[pos++];
      value += (byte & 0x7f) * scale;
      scale *= 128;
    } while (byte & 0x80);
    return value;
  };
  const skip = (wire) => {
    if (wire === 0) varint();
    else if (wire === 1) pos += 8;
    else if (wire === 2) {
      const length = varint(); // before `pos +=` reads pos: varint() moves it
      pos += length;
    }
    else if (wire === 5) pos += 4;
    else throw new Error(`not an ONNX model (protobuf wire type ${wire})`);
    if (pos > u8.length) throw new Error('not an ONNX model (truncated protobuf)');
  };
  const meta = {};
  while (pos < u8.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field !== 14 || wire !== 2) {
      skip(wire);
      continue;
    }
    const length = varint();
    const end = pos + length;
    let key = '';
    let value = '';
    while (pos < end) {
      const t = varint();
      const f = Math.floor(t / 8);
      if ((f === 1 || f === 2) && t % 8 === 2) {
        const n = varint();
        const s = text.decode(u8.subarray(pos, pos + n));
        pos += n;
        if (f === 1) key = s;
        else value = s;
      } else {
        skip(t % 8);
      }
    }
    meta[key] = value;
  }
  return meta;
}

/**
 * What a fused model needs to be run: its labels, sample rate and shortest input.
 *
 * `minSamples` and `deltaFrames` are what every clip needs (one analysis frame, and the frames
 * the MFCC deltas need); `minFrames` is what a frame-level network needs, counted after the
 * active frames are kept (ser-edge's `Classifier.min_frames`: the `min_frames` metadata or
 * `deltaFrames`, the larger).
 *
 * @param {Record<string, string>} meta From {@link readMetadata}.
 * @returns {{labels: string[], sampleRate: number, minSamples: number, deltaFrames: number,
 *            minFrames: number, featureConfig: object, metadata: Record<string, string>}}
 * @throws {Error} If the metadata lacks labels or a feature configuration, or the model takes the
 *   feature vector rather than the waveform.
 */
export function modelInfo(meta) {
  for (const key of ['labels', 'feature_config']) {
    if (!(key in meta)) {
      throw new Error(`the model has no '${key}' metadata (export it with \`python -m export\`)`);
    }
  }
  const kind = JSON.parse(meta.input_kind ?? '"features"');
  if (kind !== 'waveform') {
    throw new Error(`the model takes the ${kind}, not the waveform: ` +
                    'fuse it first with `python -m export fuse MODEL.onnx --out MODEL-waveform.onnx`');
  }
  const featureConfig = JSON.parse(meta.feature_config);
  // As ser-edge's Classifier.min_samples: one analysis frame, and the centred frames that the
  // MFCC deltas need (the graph gives NaN for fewer).
  const { n_fft: nFft, hop_length: hop } = featureConfig;
  const deltaFrames = (featureConfig.features ?? []).includes('mfcc_delta')
    ? featureConfig.delta_width : 1;
  const networkFrames = meta.min_frames === undefined ? 1 : JSON.parse(meta.min_frames);
  return {
    labels: JSON.parse(meta.labels),
    sampleRate: featureConfig.sr,
    minSamples: Math.max(nFft, (deltaFrames - 1) * hop + (nFft % 2)),
    deltaFrames,
    minFrames: Math.max(networkFrames, deltaFrames),
    featureConfig,
    metadata: meta,
  };
}

/**
 * The mean of the channels, as `librosa.to_mono` (and ser-edge) mixes them down.
 *
 * @param {Float32Array[]} channels One array per channel, all of one length.
 * @returns {Float32Array}
 */
export function downmix(channels) {
  if (channels.length === 1) return channels[0];
  const out = new Float32Array(channels[0].length);
  for (let i = 0; i < out.length; i++) {
    let sum = 0;
    for (const c of channels) sum += c[i];
    out[i] = sum / channels.length;
  }
  return out;
}

/**
 * Why a signal cannot be classified (ser-edge's own messages), or null.
 *
 * @param {Float32Array} samples Mono, at the model's rate.
 * @param {{sampleRate: number, minSamples: number, deltaFrames?: number, featureConfig?: object}} info
 *   From {@link modelInfo}.
 * @returns {string | null}
 */
export function signalProblem(samples, info) {
  if (samples.length === 0) return 'no samples';
  let first = -1;
  let last = -1;
  let finite = true;
  for (let i = 0; i < samples.length; i++) {
    const v = samples[i];
    if (!Number.isFinite(v)) finite = false;
    if (v !== 0) {
      if (first < 0) first = i;
      last = i;
    }
  }
  // With trim_zeros the graph analyses the samples from the first non-zero one to the last; with
  // trim_top_db from the first loud one (above the threshold under the peak, in float32) to the
  // last.
  const trimsZeros = info.featureConfig?.trim_zeros && first >= 0;
  let n = trimsZeros ? last - first + 1 : samples.length;
  let lo = trimsZeros ? first : 0;
  const topDb = info.featureConfig?.trim_top_db;
  if (topDb != null && first >= 0) {
    let peak = 0;
    for (let i = 0; i < samples.length; i++) peak = Math.max(peak, Math.abs(samples[i]));
    const threshold = Math.fround(peak * 10 ** (-topDb / 20));
    let loudFirst = -1;
    let loudLast = -1;
    for (let i = 0; i < samples.length; i++) {
      if (Math.abs(samples[i]) > threshold) {
        if (loudFirst < 0) loudFirst = i;
        loudLast = i;
      }
    }
    if (loudFirst >= 0) {
      n = loudLast - loudFirst + 1;
      lo = loudFirst;
    }
  }
  // With align_peak the first (argmax |y| - start) mod hop_length samples of what is kept are
  // dropped, so that a frame starts on the loudest sample.
  if (info.featureConfig?.align_peak) {
    let loudest = lo;
    for (let i = lo; i < lo + n; i++) {
      if (Math.abs(samples[i]) > Math.abs(samples[loudest])) loudest = i;
    }
    n -= (loudest - lo) % info.featureConfig.hop_length;
  }
  if (n < info.minSamples) {
    const ms = (k) => Math.round((1000 * k) / info.sampleRate);
    const deltas = info.minSamples > (info.featureConfig?.n_fft ?? info.minSamples);
    let need = deltas
      ? `fewer than the ${info.deltaFrames} analysis frames the MFCC deltas need`
      : 'shorter than one analysis frame';
    if (n < samples.length && (info.featureConfig?.trim_zeros || topDb != null)) {
      need += topDb != null ? ', between the quiet ends trimmed'
        : ', between the digital silence at its ends';
    }
    return `too short: ${ms(n)} ms, ${need} ` +
      `(${info.minSamples} samples at ${info.sampleRate} Hz = ${ms(info.minSamples)} ms)`;
  }
  if (!finite) return 'audio has NaN or infinite samples';
  return first >= 0 ? null : 'digital silence: every sample is zero';
}

/**
 * Why a fused frame network's clip had too few frames (ser-edge's message), or null.
 *
 * As Python's `Classifier`: the frames counted are those the network was given (the active ones
 * when the feature configuration keeps only those).
 *
 * @param {number} frames The model's `n_frames` output.
 * @param {{sampleRate: number, minFrames: number, featureConfig: object}} info From
 *   {@link modelInfo}.
 * @returns {string | null}
 */
export function framesProblem(frames, info) {
  if (frames >= info.minFrames) return null;
  const active = info.featureConfig.frames === 'active';
  const needMs = (1000 * (info.minFrames - 1) * info.featureConfig.hop_length) / info.sampleRate;
  return `too short: ${frames} ${active ? 'active ' : ''}analysis frames, the model needs at ` +
    `least ${info.minFrames} (about ${needMs.toFixed(0)} ms of ${active ? 'sound' : 'audio'})`;
}

/**
 * Classify a mono signal at the model's rate with a fused model.
 *
 * @param {object} ort The onnxruntime module (onnxruntime-node or onnxruntime-web).
 * @param {object} session An `ort.InferenceSession` of the fused model.
 * @param {{labels: string[], sampleRate: number, minSamples: number}} info From
 *   {@link modelInfo}.
 * @param {Float32Array} samples Mono, at `info.sampleRate`.
 * @returns {Promise<{label: string, probabilities: Record<string, number>,
 *   top: [string, number][], durationS: number, inferenceMs: number}>}
 * @throws {Error} With ser-edge's message if the signal is too short (for a frame network: too
 *   few frames, as the model's `n_frames` output says), silent or not finite.
 */
export async function classify(ort, session, info, samples) {
  const problem = signalProblem(samples, info);
  if (problem) throw new Error(problem);
  const t0 = performance.now();
  const feeds = { waveform: new ort.Tensor('float32', samples, [1, samples.length]) };
  const out = await session.run(feeds);
  const inferenceMs = performance.now() - t0;
  if (out.n_frames !== undefined) {
    const frames = framesProblem(Number(out.n_frames.data[0]), info);
    if (frames) throw new Error(frames);
  }
  const p = out.probabilities.data;
  if (p.length !== info.labels.length) {
    throw new Error(`the model gives ${p.length} probabilities for ${info.labels.length} labels`);
  }
  if (!Array.from(p).every(Number.isFinite)) {
    throw new Error('the probabilities are not finite (is the audio valid?)');
  }
  const probabilities = {};
  info.labels.forEach((label, i) => { probabilities[label] = p[i]; });
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
  const top = info.labels.map((label, i) => [label, p[i]]).sort((a, b) => b[1] - a[1]);
  return {
    label: info.labels[best],
    probabilities,
    top,
    durationS: samples.length / info.sampleRate,
    inferenceMs,
  };
}
