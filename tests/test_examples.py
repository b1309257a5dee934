"""The JavaScript examples against ``ser-edge classify``: Node.js and the web page in Chromium.

Both run the default bundled model's fused graph, written here as the documented step writes it
(``python -m export fuse --out examples/default-waveform.onnx``). On the same 16 kHz files,
``examples/node/classify.mjs``, the page and ``ser-edge classify`` give the same label and
probabilities within 1e-4: the sample clips shipped with ser-edge (as 16-bit and float WAV, and
mixed into one stereo file) always, and real RAVDESS and EmoDB clips when the corpora are there
(CI). No test here needs a corpus.

- Node: the CLI's answers; the same fused model in Python to 1e-5 (the same graph); ser-edge's
  messages for a clip too short for the deltas and for one with too few active frames (the
  default is a frame-level network); a fused model of the robust configuration (a tiny MLP with
  every level option, made by conftest's ``build_model``) gives Python's probabilities.
- The page, loaded in headless Chromium (Debian's ``chromium``, driven by ``playwright-core``; no
  browser download) and fed files through its file chooser: the CLI's answers at 16 kHz; through
  the Web Audio resampler (the samples at 48 kHz) the CLI's label; a recording from a fake
  microphone gives a result too. The timings are printed, not asserted.

They need ``node`` and ``npm ci`` in ``examples/node`` and ``examples/web`` (``.ci/run`` does it,
and installs ``chromium``); they skip without them, or fail if ``SER_EDGE_REQUIRE_EXAMPLES=1``.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
sf = pytest.importorskip("soundfile")

from typer.testing import CliRunner  # noqa: E402

from export.fuse import fuse_file  # noqa: E402
from export.paths import corpus_dir  # noqa: E402
from ser_edge import audio  # noqa: E402
from ser_edge.cli import app  # noqa: E402
from ser_edge.model import BUNDLED_MODEL, Classifier  # noqa: E402
from ser_edge.samples import SAMPLES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
NODE = shutil.which("node")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

#: Node, the page and the CLI on the same samples: the same label, probabilities this close.
AGREE = 1e-4


def need(ok: bool, why: str) -> None:
    """Skip (or, in CI, fail) when a prerequisite of the examples is missing."""
    if ok:
        return
    if os.environ.get("SER_EDGE_REQUIRE_EXAMPLES") == "1":
        pytest.fail(f"{why} (SER_EDGE_REQUIRE_EXAMPLES=1)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def fused(tmp_path_factory) -> Path:
    """The default model's fused graph, as ``python -m export fuse --out ...`` writes it."""
    from export.__main__ import app as export_app

    out = tmp_path_factory.mktemp("fused") / "default-waveform.onnx"
    result = CliRunner().invoke(export_app, ["fuse", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert Classifier(out).metadata["feature_config"] == Classifier().metadata["feature_config"]
    return out


def _max_diff(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max(abs(a[k] - b[k]) for k in b)


@pytest.fixture(scope="module")
def clips_16k(tmp_path_factory) -> list[Path]:
    """16 kHz WAV files: the samples (as shipped, as float, both mixed into one stereo file),
    and, when the corpora are there, real clips: RAVDESS resampled (float, PCM 16 and 24 bit,
    one stereo clip) and an EmoDB clip as it is."""
    import soxr

    out = tmp_path_factory.mktemp("wav16k")
    paths = [*SAMPLES.values()]
    angry, sad = (sf.read(p, dtype="float32")[0] for p in SAMPLES.values())
    paths.append(out / "angry-float.wav")
    sf.write(paths[-1], angry, 16000, subtype="FLOAT")
    n = min(len(angry), len(sad))
    paths.append(out / "both-stereo.wav")
    sf.write(paths[-1], np.stack([angry[:n], sad[:n]], axis=1), 16000, subtype="PCM_16")
    ravdess, emodb = corpus_dir("ravdess"), corpus_dir("emodb")
    if ravdess is not None:
        clips = sorted(ravdess.glob("Actor_*/*.flac"))
        for i, (clip, subtype) in enumerate(zip(clips[7::300], ["FLOAT", "PCM_16", "PCM_24",
                                                                "FLOAT", "PCM_16"], strict=False)):
            y, _ = audio.load(clip, sr=16000)
            paths.append(out / f"{i}-{clip.stem}-{subtype}.wav")
            sf.write(paths[-1], y, 16000, subtype=subtype)
        stereo = next(p for p in clips if sf.info(p).channels == 2)
        y, sr = sf.read(stereo, dtype="float32")
        paths.append(out / f"stereo-{stereo.stem}.wav")
        sf.write(paths[-1], soxr.resample(y, sr, 16000, quality="HQ"), 16000, subtype="FLOAT")
    if emodb is not None:
        clip = sorted(emodb.glob("*.flac"))[100]
        y, sr = sf.read(clip, dtype="float32")
        assert sr == 16000
        paths.append(out / f"emodb-{clip.stem}.wav")
        sf.write(paths[-1], y, sr, subtype="PCM_16")
    return paths


def cli(*args: object) -> list[dict]:
    """``ser-edge classify --json ARGS``: one record per file."""
    result = CliRunner().invoke(app, ["classify", "--json", *map(str, args)])
    assert result.exit_code in (0, 1), result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def _burst_wav(path: Path) -> Path:
    """One second at 16 kHz of faint noise with a 20 ms tone: a few active frames only."""
    y = 1e-4 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    y[8000:8320] += 0.5 * np.sin(np.arange(320) * 2 * np.pi * 300 / 16000)
    sf.write(path, y, 16000, subtype="FLOAT")
    return path


def _python_error(path: Path) -> str:
    """The reason the default model gives for ``path`` (after ``FILE: ``)."""
    from ser_edge.errors import AudioError

    with pytest.raises(AudioError) as error:
        Classifier().classify(path, vad=False)
    return str(error.value).split(": ", 1)[1]


# -- Node.js -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_example() -> Path:
    need(NODE is not None, "node is not installed")
    need((EXAMPLES / "node" / "node_modules" / "onnxruntime-node").is_dir(),
         "onnxruntime-node is not installed: run `npm ci` in examples/node")
    return EXAMPLES / "node" / "classify.mjs"


def _node(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([NODE, str(script), *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_node_example_gives_the_cli_answers(node_example: Path, fused: Path,
                                            clips_16k: list[Path]) -> None:
    proc = _node(node_example, "--model", str(fused), "--json", *map(str, clips_16k))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["path"] for r in lines] == [str(p) for p in clips_16k]
    fused_clf = Classifier(fused)
    for path, r, c in zip(clips_16k, lines, cli(*clips_16k), strict=True):
        assert r["label"] == c["label"], path.name
        assert _max_diff(r["probabilities"], c["probabilities"]) <= AGREE, path.name
        # The same graph and samples in Python: onnxruntime-node and Python's onnxruntime agree
        # to the last digits.
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        assert _max_diff(r["probabilities"], fused_clf.predict(y, sr).probabilities) <= 1e-5
        assert r["sample_rate"] == c["sample_rate"] == 16000
        assert r["duration_s"] == pytest.approx(c["duration_s"])
    text = _node(node_example, "--model", str(fused), str(clips_16k[0]))
    label, confidence = text.stdout.split()[1:3]
    assert (label, float(confidence)) == (lines[0]["label"],
                                          round(lines[0]["probabilities"][label], 2))


def test_node_example_errors(node_example: Path, fused: Path, tmp_path: Path) -> None:
    sf.write(tmp_path / "48k.wav", np.full(48000, 0.1, np.float32), 48000)
    sf.write(tmp_path / "short.wav", np.full(500, 0.1, np.float32), 16000)
    sf.write(tmp_path / "silence.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "text.wav").write_text("not audio")
    _burst_wav(tmp_path / "burst.wav")
    bad = ["48k.wav", "short.wav", "silence.wav", "text.wav", "missing.wav", "burst.wav"]
    good = next(iter(SAMPLES.values()))
    proc = _node(node_example, "--model", str(fused), str(good),
                 *(str(tmp_path / b) for b in bad))
    assert proc.returncode == 1
    assert len(proc.stdout.splitlines()) == 1  # the good file is still classified
    errors = proc.stderr.splitlines()
    expected = ["sample rate 48000 Hz, the model takes 16000 Hz", "too short: 31 ms",
                "digital silence", "not a WAV file", "no such file",
                _python_error(tmp_path / "burst.wav")]  # too few active frames, as in Python
    assert "active analysis frames" in expected[-1]
    for name, line, why in zip(bad, errors, expected, strict=False):
        assert line.startswith(f"ser-edge-node: error: {tmp_path / name}: ") and why in line
    assert errors[-1] == f"ser-edge-node: {len(bad)} of {len(bad) + 1} files failed"
    proc = _node(node_example, "--model", str(tmp_path / "none.onnx"), str(good))
    assert proc.returncode == 3 and "model file not found" in proc.stderr
    assert "python -m export fuse --out examples/default-waveform.onnx" in proc.stderr
    proc = _node(node_example, "--model", str(BUNDLED_MODEL), str(good))
    assert proc.returncode == 3 and "fuse it first" in proc.stderr


def test_node_example_runs_a_robust_model(node_example: Path, clips_16k: list[Path],
                                         build_model, tmp_path: Path) -> None:
    """A model of the robust configuration (level options, deltas): the same probabilities as
    Python's fused model, and Python's message for a clip too short for the deltas."""
    from export.fused_parity import ROBUST
    from ser_edge.errors import AudioError

    model = tmp_path / "robust-waveform.onnx"
    fuse_file(build_model(tmp_path / "robust.onnx", config=ROBUST), model)
    fused_clf = Classifier(model)
    short = tmp_path / "short.wav"  # 100 ms: 7 frames, the deltas need 9
    sf.write(short, 0.1 * np.sin(np.arange(1600) / 5).astype(np.float32), 16000)
    proc = _node(node_example, "--model", str(model), "--json", *map(str, clips_16k), str(short))
    assert proc.returncode == 1
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == len(clips_16k) + 1 and "error" in lines[-1]
    for path, r in zip(clips_16k, lines, strict=False):
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        q = fused_clf.predict(y, sr)
        assert r["label"] == q.label and _max_diff(r["probabilities"], q.probabilities) <= 1e-5
    with pytest.raises(AudioError) as python_error:
        fused_clf.classify(short, vad=False)
    why = str(python_error.value).split(": ", 1)[1]
    assert why.startswith("too short: 100 ms, fewer than the 9 analysis frames")
    assert proc.stderr.splitlines()[0] == f"ser-edge-node: error: {short}: {why}"


def test_node_example_counts_the_samples_align_peak_drops(node_example: Path, build_model,
                                                          tmp_path: Path) -> None:
    """A model with align_peak: a clip long enough for the deltas but not once the samples
    before the aligned start are dropped gets Python's "too short" message, with the length
    that is analysed."""
    import dataclasses

    from export.fused_parity import ROBUST
    from ser_edge.errors import AudioError

    model = tmp_path / "aligned-waveform.onnx"
    fuse_file(build_model(tmp_path / "aligned.onnx",
                          config=dataclasses.replace(ROBUST, align_peak=True)), model)
    fused_clf = Classifier(model)
    y = 0.1 * np.sin(np.arange(fused_clf.min_samples + 60) / 5).astype(np.float32)
    y[100] = 0.5  # the loudest: 100 samples dropped, 40 fewer than the deltas need
    clip = tmp_path / "clip.wav"
    sf.write(clip, y, 16000, subtype="FLOAT")
    with pytest.raises(AudioError) as python_error:
        fused_clf.classify(clip, vad=False)
    why = str(python_error.value).split(": ", 1)[1]
    assert why.startswith("too short: ") and "digital silence" not in why
    proc = _node(node_example, "--model", str(model), str(clip))
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == f"ser-edge-node: error: {clip}: {why}"


# -- the web page in Chromium ------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    """``examples/`` as the site, and ``/model.onnx``: the fused model under test."""

    model: Path

    def translate_path(self, path: str) -> str:
        if path.split("?")[0] == "/model.onnx":
            return str(self.model)
        return super().translate_path(path)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def site(fused: Path):
    """Serve ``examples/`` with the fused model as ``/model.onnx``; yield the page's URL."""
    need(NODE is not None, "node is not installed")
    need((EXAMPLES / "web" / "node_modules" / "playwright-core").is_dir()
         and (EXAMPLES / "web" / "node_modules" / "onnxruntime-web").is_dir(),
         "run `npm ci` in examples/web")
    need(Path(CHROMIUM).is_file(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    handler = type("Handler", (_Handler,), {"model": fused})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(EXAMPLES)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/web/?model=/model.onnx"
    server.shutdown()
    server.server_close()


def drive(url: str, **options) -> dict:
    """Run ``examples/web/test/drive.mjs``: what the page shows, as a dict."""
    proc = subprocess.run(
        [NODE, str(EXAMPLES / "web" / "test" / "drive.mjs"), json.dumps({"url": url, **options})],
        capture_output=True, text=True, timeout=300, check=False, cwd=EXAMPLES / "web",
        env={**os.environ, "CHROMIUM": CHROMIUM})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_web_page_in_chromium(site: str, clips_16k: list[Path], tmp_path: Path,
                              capsys) -> None:
    import soxr

    # The samples at 48 kHz: the page resamples them with Web Audio (Chromium's resampler, not
    # soxr), so only the label is compared.
    at_48k = []
    for name, path in SAMPLES.items():
        y, _ = sf.read(path, dtype="float32")
        at_48k.append(tmp_path / f"{name}-48k.wav")
        sf.write(at_48k[-1], soxr.resample(y, 16000, 48000, quality="HQ"), 48000,
                 subtype="FLOAT")
    burst = _burst_wav(tmp_path / "burst.wav")
    shot = tmp_path / "page.png"
    out = drive(site, files=[*map(str, clips_16k), *map(str, at_48k), str(burst)],
                screenshot=str(shot), record=str(clips_16k[0]), recordSeconds=2)
    assert not [c for c in out["console"] if c.startswith(("error", "pageerror"))], out["console"]
    *results, refused = out["results"]
    assert len(results) == len(clips_16k) + len(at_48k)
    worst_16k = worst_48k = 0.0
    for path, r, c in zip(clips_16k, results, cli(*clips_16k), strict=False):
        assert r["error"] is None, r
        shown = {b["label"]: b["probability"] for b in r["bars"]}
        assert r["label"] == c["label"], path.name
        worst_16k = max(worst_16k, _max_diff(shown, c["probabilities"]))
        assert _max_diff(shown, c["probabilities"]) <= AGREE, path.name
        assert [b["probability"] for b in r["bars"]] == sorted(shown.values(), reverse=True)
        assert r["bars"][0]["text"] == f"{100 * r['bars'][0]['probability']:.1f}%"
    for path, r, c in zip(at_48k, results[len(clips_16k):], cli(*at_48k), strict=True):
        assert r["error"] is None and r["label"] == c["label"], path.name
        worst_48k = max(worst_48k, _max_diff({b["label"]: b["probability"] for b in r["bars"]},
                                             c["probabilities"]))
    assert refused["error"] == f"burst.wav: {_python_error(burst)}"
    rec = out["recording"]
    assert rec["error"] is None and len(rec["bars"]) == len(Classifier().labels)
    assert sum(b["probability"] for b in rec["bars"]) == pytest.approx(1.0, abs=1e-4)
    assert shot.stat().st_size > 10_000
    with capsys.disabled():
        print(f"\nweb page: {len(clips_16k)} files at 16 kHz, largest probability difference "
              f"from ser-edge classify {worst_16k:.2e}; {len(at_48k)} files at 48 kHz through "
              f"Web Audio, same label, largest difference {worst_48k:.3f}; model ready "
              f"{out['modelReadyMs']:.0f} ms after navigation, first result "
              f"{out['firstResultMs']:.0f} ms after choosing the file; recording: {rec['label']}")
