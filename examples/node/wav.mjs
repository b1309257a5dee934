// A WAV reader: RIFF/WAVE, PCM (8, 16, 24, 32 bit) and IEEE float (32, 64 bit), plain or
// WAVE_FORMAT_EXTENSIBLE, any number of channels. Samples are scaled to [-1, 1) as libsndfile
// (and so Python's soundfile) scales them: PCM by 2^(bits - 1), 8-bit around 128.

const PCM = 1;
const FLOAT = 3;
const EXTENSIBLE = 0xfffe;

/**
 * Decode a WAV file.
 *
 * @param {Uint8Array} bytes The file's contents.
 * @returns {{sampleRate: number, channels: Float32Array[]}} One array per channel.
 * @throws {Error} If the file is not a WAV file this reader knows (the message says why).
 */
export function readWav(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (at) => String.fromCharCode(...bytes.subarray(at, at + 4));
  if (bytes.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') {
    throw new Error('not a WAV file (no RIFF/WAVE header)');
  }
  let fmt = null;
  let data = null;
  for (let pos = 12; pos + 8 <= bytes.length;) {
    const id = tag(pos);
    const size = view.getUint32(pos + 4, true);
    const body = pos + 8;
    if (id === 'fmt ') {
      if (size < 16) throw new Error('WAV fmt chunk too short');
      let format = view.getUint16(body, true);
      if (format === EXTENSIBLE && size >= 26) format = view.getUint16(body + 24, true);
      fmt = {
        format,
        channels: view.getUint16(body + 2, true),
        sampleRate: view.getUint32(body + 4, true),
        blockAlign: view.getUint16(body + 12, true),
        bits: view.getUint16(body + 14, true),
      };
    } else if (id === 'data') {
      // A header may claim more than the file holds (a recording cut short): keep what is there.
      data = bytes.subarray(body, Math.min(body + size, bytes.length));
    }
    pos = body + size + (size % 2); // chunks are padded to an even length
  }
  if (!fmt) throw new Error('WAV file without a fmt chunk');
  if (!data) throw new Error('WAV file without a data chunk');
  const { format, channels, bits, blockAlign } = fmt;
  if (channels < 1) throw new Error('WAV file with no channels');
  const width = bits / 8;
  const known = (format === PCM && [8, 16, 24, 32].includes(bits)) ||
    (format === FLOAT && (bits === 32 || bits === 64));
  if (!known || blockAlign !== width * channels) {
    throw new Error(`unsupported WAV encoding (format ${format}, ${bits} bit)`);
  }
  const frames = Math.floor(data.length / blockAlign);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const read = {
    8: (at) => (dv.getUint8(at) - 128) / 128,
    16: (at) => dv.getInt16(at, true) / 32768,
    24: (at) => ((dv.getUint8(at) | (dv.getUint8(at + 1) << 8) | (dv.getInt8(at + 2) << 16))
                 / 8388608),
    32: format === FLOAT ? (at) => dv.getFloat32(at, true) : (at) => dv.getInt32(at, true) / 2147483648,
    64: (at) => dv.getFloat64(at, true),
  }[bits];
  const out = Array.from({ length: channels }, () => new Float32Array(frames));
  for (let i = 0; i < frames; i++) {
    for (let c = 0; c < channels; c++) out[c][i] = read(i * blockAlign + c * width);
  }
  return { sampleRate: fmt.sampleRate, channels: out };
}
