// Drive the page in headless Chromium (Debian's /usr/bin/chromium, through playwright-core; no
// browser download): load it, choose each file, optionally record from a fake microphone that
// plays a WAV file, and print what the page shows as one JSON object.
//
//   node test/drive.mjs '{"url": "http://127.0.0.1:8000/web/", "files": ["a.wav"],
//                         "record": "b.wav", "recordSeconds": 3, "screenshot": "shot.png"}'
//
// Used by tests/test_examples.py (which compares the probabilities with Python's) and by
// benchmarks/fused.py (which reports the timings). Env: CHROMIUM (default /usr/bin/chromium).

import { chromium } from 'playwright-core';

const opts = JSON.parse(process.argv[2]);
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
// The flags this machine needs (no background connections: the network is closed) and, for the
// recording, a fake microphone fed from a WAV file, allowed without a prompt.
const args = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
if (opts.record) {
  args.push('--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
            `--use-file-for-fake-audio-capture=${opts.record}`);
}

const browser = await chromium.launch({ executablePath, args, headless: true });
const out = { console: [], results: [] };
try {
  const page = await browser.newPage({ viewport: { width: 760, height: 640 } });
  page.on('console', (m) => out.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => out.console.push(`pageerror: ${e.message}`));
  const t0 = Date.now();
  await page.goto(opts.url);
  await page.waitForFunction(() => window.serEdge && (window.serEdge.session || window.serEdge.lastError),
                             null, { timeout: 60000 });
  out.modelReadyMs = await page.evaluate(() => window.serEdge.timings.modelReadyMs ?? null);
  out.loadWallMs = Date.now() - t0;
  const shown = () => page.evaluate(() => ({
    label: document.getElementById('label').textContent,
    error: document.getElementById('status').classList.contains('error')
      ? document.getElementById('status').textContent : null,
    bars: [...document.querySelectorAll('#chart .bar')].map((b) => ({
      label: b.dataset.label, probability: Number(b.dataset.probability),
      text: b.querySelector('.value').textContent,
    })),
    timings: window.serEdge.timings.last ?? null,
  }));
  for (const [i, file] of (opts.files ?? []).entries()) {
    await page.setInputFiles('#file', file);
    await page.waitForFunction((n) => window.serEdge.count >= n, i + 1, { timeout: 60000 });
    out.results.push({ file, ...(await shown()) });
  }
  out.firstResultMs = await page.evaluate(() => window.serEdge.timings.firstResultMs ?? null);
  if (opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true });
  if (opts.record) {
    const before = await page.evaluate(() => window.serEdge.count);
    await page.click('#record');
    await page.waitForFunction(() => document.getElementById('record').textContent === 'Stop');
    await page.waitForTimeout(1000 * (opts.recordSeconds ?? 3));
    await page.click('#record');
    await page.waitForFunction((n) => window.serEdge.count > n, before, { timeout: 60000 });
    out.recording = await shown();
  }
} finally {
  await browser.close();
}
process.stdout.write(`${JSON.stringify(out)}\n`);
