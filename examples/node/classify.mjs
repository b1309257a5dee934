#!/usr/bin/env node
// Classify the emotion of WAV files with ser-edge's fused ONNX model and onnxruntime-node.
//
//   node classify.mjs [--model MODEL.onnx] [--json] [--top-k K] FILE.wav ...
//
// The model is one written by `python -m export fuse` (default: ../default-waveform.onnx, the
// default bundled model's, written from the project root by
// `python -m export fuse --out examples/default-waveform.onnx`): it takes the waveform and
// computes its features itself, so this program only reads the WAV file, mixes its channels
// down and runs the model. The file must be at the
// model's sample rate (16 kHz for the bundled model); resample it first otherwise, e.g.
// `sox in.wav -r 16000 out.wav`.
//
// Output, as `ser-edge classify`: one line per file (path, label, its probability, the next-best
// labels), or with --json one JSON object per line. Errors go to stderr as one line each,
// `ser-edge-node: error: FILE: reason`, and the other files are still classified. Exit status:
// 0 all classified, 1 some file failed, 2 usage error, 3 the model cannot be used.

import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as ort from 'onnxruntime-node';

import { classify, downmix, modelInfo, readMetadata } from '../js/ser-edge.mjs';
import { readWav } from './wav.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const DEFAULT_MODEL = join(HERE, '..', 'default-waveform.onnx');
const USAGE = 'usage: node classify.mjs [--model MODEL.onnx] [--json] [--top-k K] FILE.wav ...';

function fail(status, message) {
  process.stderr.write(`ser-edge-node: ${message}\n`);
  process.exit(status);
}

function parseArgs(argv) {
  const opts = { model: DEFAULT_MODEL, json: false, topK: 3, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (a === '--json') {
      opts.json = true;
    } else if (a === '--model' || a === '-m') {
      if (i + 1 >= argv.length) fail(2, `error: ${a} needs a path\n${USAGE}`);
      opts.model = argv[++i];
    } else if (a === '--top-k') {
      const k = Number(argv[++i]);
      if (!Number.isInteger(k) || k < 1) fail(2, `error: --top-k must be a positive integer\n${USAGE}`);
      opts.topK = k;
    } else if (a.startsWith('-') && a !== '-') {
      fail(2, `error: unknown option ${a}\n${USAGE}`);
    } else {
      opts.files.push(a);
    }
  }
  if (opts.files.length === 0) fail(2, `error: no FILE given\n${USAGE}`);
  return opts;
}

function textLine(path, result, topK, width) {
  const ranked = result.top.slice(0, topK);
  const [label, confidence] = ranked[0];
  const rest = ranked.slice(1).map(([name, p]) => `${name} ${p.toFixed(2)}`).join(', ');
  const line = `${path.padEnd(width)}  ${label.padEnd(9)}  ${confidence.toFixed(2)}`;
  return rest ? `${line}  ${rest}` : line;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let session;
  let info;
  try {
    const bytes = await readFile(opts.model);
    info = modelInfo(readMetadata(bytes));
    session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential',
    });
  } catch (err) {
    const why = err.code === 'ENOENT'
      ? 'model file not found (write the default model\'s from the project root: ' +
        '`python -m export fuse --out examples/default-waveform.onnx`)'
      : err.message.split('\n')[0];
    fail(3, `error: ${opts.model}: ${why}`);
  }
  const width = Math.max(...opts.files.map((f) => f.length));
  let failed = 0;
  for (const path of opts.files) {
    try {
      const wav = readWav(new Uint8Array(await readFile(path)));
      if (wav.sampleRate !== info.sampleRate) {
        throw new Error(`sample rate ${wav.sampleRate} Hz, the model takes ${info.sampleRate} Hz: ` +
                        `resample it first (e.g. sox ${basename(path)} -r ${info.sampleRate} out.wav)`);
      }
      const result = await classify(ort, session, info, downmix(wav.channels));
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({
          path, label: result.label, probabilities: result.probabilities,
          duration_s: result.durationS, sample_rate: wav.sampleRate,
          top: result.top.slice(0, opts.topK),
        })}\n`);
      } else {
        process.stdout.write(`${textLine(path, result, opts.topK, width)}\n`);
      }
    } catch (err) {
      failed += 1;
      const why = err.code === 'ENOENT' ? 'no such file' : err.message.split('\n')[0];
      process.stderr.write(`ser-edge-node: error: ${path}: ${why}\n`);
      if (opts.json) process.stdout.write(`${JSON.stringify({ path, error: why })}\n`);
    }
  }
  if (failed && opts.files.length > 1) {
    process.stderr.write(`ser-edge-node: ${failed} of ${opts.files.length} files failed\n`);
  }
  process.exitCode = failed ? 1 : 0;
}

main();
