"""The JavaScript examples against Python: Node.js (onnxruntime-node) and the web page in Chromium.

Both run the fused model (``python -m export fuse``) of the bundled model, on real clips:

- ``examples/node/classify.mjs`` reads 16 kHz WAV files; its probabilities must equal those of
  the same fused model in Python on the same samples (the same graph; 1e-5) and be within 1e-3
  of ``Classifier.predict`` with the numpy features. A fused model of the robust configuration
  (level options, MFCC deltas) gives Python's probabilities too, and Python's message for a clip
  too short for its deltas; a fused frame-level network (conftest's tiny ``frame_net``) gives
  the frame model's probabilities, and its message for a clip with too few active frames.
- ``examples/web/`` is loaded in headless Chromium (Debian's ``chromium``, driven by
  ``playwright-core``; no browser download) and fed files through its file chooser: at the
  model's rate the probabilities it shows are within 1e-3 of Python's; through the Web Audio
  resampler (48 kHz RAVDESS files) the label is Python's. A recording from a fake microphone
  gives a result too. The fused frame network runs in the page too, with Python's probabilities
  and its "too short" message. The timings are printed, not asserted.

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

from export.fuse import fuse_file  # noqa: E402
from ser_edge import audio  # noqa: E402
from ser_edge.model import BUNDLED_MODELS, Classifier  # noqa: E402

#: The examples run the fused MLP (README: `python -m export fuse ser_edge/models/mlp.onnx`).
BUNDLED_MODEL = BUNDLED_MODELS["mlp"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
NODE = shutil.which("node")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def need(ok: bool, why: str) -> None:
    """Skip (or, in CI, fail) when a prerequisite of the examples is missing."""
    if ok:
        return
    if os.environ.get("SER_EDGE_REQUIRE_EXAMPLES") == "1":
        pytest.fail(f"{why} (SER_EDGE_REQUIRE_EXAMPLES=1)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def fused(tmp_path_factory) -> Path:
    need(BUNDLED_MODEL.is_file(), "no bundled model")
    out = tmp_path_factory.mktemp("fused") / "mlp-waveform.onnx"
    fuse_file(BUNDLED_MODEL, out)
    return out


@pytest.fixture(scope="module")
def classifiers(fused: Path) -> tuple[Classifier, Classifier]:
    return Classifier(BUNDLED_MODEL), Classifier(fused)


def _max_diff(a: dict, b: dict) -> float:
    return max(abs(a[k] - b[k]) for k in b)


@pytest.fixture(scope="module")
def wav_16k(ravdess_dir: Path, emodb_dir: Path, tmp_path_factory) -> list[Path]:
    """Real clips at 16 kHz as WAV: RAVDESS resampled (float, PCM 16 and 24 bit, one stereo
    clip), and an EmoDB clip as it is (16 kHz)."""
    import soxr

    out = tmp_path_factory.mktemp("wav16k")
    paths = []
    ravdess = sorted(ravdess_dir.glob("Actor_*/*.flac"))
    for i, (clip, subtype) in enumerate(zip(ravdess[7::300], ["FLOAT", "PCM_16", "PCM_24",
                                                              "FLOAT", "PCM_16"], strict=False)):
        y, _ = audio.load(clip, sr=16000)
        paths.append(out / f"{i}-{clip.stem}-{subtype}.wav")
        sf.write(paths[-1], y, 16000, subtype=subtype)
    stereo = next(p for p in ravdess if sf.info(p).channels == 2)
    y, sr = sf.read(stereo, dtype="float32")
    paths.append(out / f"stereo-{stereo.stem}.wav")
    sf.write(paths[-1], soxr.resample(y, sr, 16000, quality="HQ"), 16000, subtype="FLOAT")
    emodb = sorted(emodb_dir.glob("*.flac"))[100]
    y, sr = sf.read(emodb, dtype="float32")
    assert sr == 16000
    paths.append(out / f"emodb-{emodb.stem}.wav")
    sf.write(paths[-1], y, sr, subtype="PCM_16")
    return paths


def _python(path: Path, classifiers) -> tuple:
    """Python's answers on the samples soundfile reads from ``path``: numpy path, fused model."""
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    numpy_clf, fused_clf = classifiers
    return numpy_clf.predict(y, sr), fused_clf.predict(y, sr)


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


def test_node_example_equals_python(node_example: Path, fused: Path, wav_16k: list[Path],
                                    classifiers) -> None:
    proc = _node(node_example, "--model", str(fused), "--json", *map(str, wav_16k))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["path"] for r in lines] == [str(p) for p in wav_16k]
    for path, r in zip(wav_16k, lines, strict=True):
        p_numpy, p_fused = _python(path, classifiers)
        assert r["label"] == p_fused.label == p_numpy.label, path.name
        # The same graph and samples; onnxruntime-node 1.30 and Python's onnxruntime agree to the
        # last digit here.
        assert _max_diff(r["probabilities"], p_fused.probabilities) <= 1e-5, path.name
        assert _max_diff(r["probabilities"], p_numpy.probabilities) <= 1e-3, path.name
        assert r["sample_rate"] == 16000
        assert r["duration_s"] == pytest.approx(p_numpy.duration_s)
    text = _node(node_example, "--model", str(fused), str(wav_16k[0]))
    label, confidence = text.stdout.split()[1:3]
    assert (label, float(confidence)) == (lines[0]["label"],
                                          round(lines[0]["probabilities"][label], 2))


def test_node_example_errors(node_example: Path, fused: Path, wav_16k: list[Path],
                             tmp_path: Path) -> None:
    sf.write(tmp_path / "48k.wav", np.full(48000, 0.1, np.float32), 48000)
    sf.write(tmp_path / "short.wav", np.full(500, 0.1, np.float32), 16000)
    sf.write(tmp_path / "silence.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "text.wav").write_text("not audio")
    bad = ["48k.wav", "short.wav", "silence.wav", "text.wav", "missing.wav"]
    proc = _node(node_example, "--model", str(fused), str(wav_16k[0]),
                 *(str(tmp_path / b) for b in bad))
    assert proc.returncode == 1
    assert len(proc.stdout.splitlines()) == 1  # the good file is still classified
    errors = proc.stderr.splitlines()
    expected = ["sample rate 48000 Hz, the model takes 16000 Hz", "too short: 31 ms",
                "digital silence", "not a WAV file", "no such file"]
    for name, line, why in zip(bad, errors, expected, strict=False):
        assert line.startswith(f"ser-edge-node: error: {tmp_path / name}: ") and why in line
    assert errors[-1] == "ser-edge-node: 5 of 6 files failed"
    proc = _node(node_example, "--model", str(tmp_path / "none.onnx"), str(wav_16k[0]))
    assert proc.returncode == 3 and "model file not found" in proc.stderr
    proc = _node(node_example, "--model", str(BUNDLED_MODEL), str(wav_16k[0]))
    assert proc.returncode == 3 and "fuse it first" in proc.stderr


def test_node_example_runs_a_robust_model(node_example: Path, wav_16k: list[Path], build_model,
                                         tmp_path: Path) -> None:
    """A model of the robust configuration (level options, deltas): the same probabilities as
    Python's fused model, and Python's message for a clip too short for the deltas."""
    from export.fused_parity import ROBUST
    from ser_edge.errors import AudioError

    model = tmp_path / "robust-waveform.onnx"
    fuse_file(build_model(tmp_path / "robust.onnx", config=ROBUST), model)
    fused_clf = Classifier(model)
    short = tmp_path / "short.wav"  # 100 ms: 7 frames, the deltas need 9
    sf.write(short, 0.1 * np.sin(np.arange(1600) / 5).astype(np.float32), 16000)
    proc = _node(node_example, "--model", str(model), "--json", *map(str, wav_16k), str(short))
    assert proc.returncode == 1
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == len(wav_16k) + 1 and "error" in lines[-1]
    for path, r in zip(wav_16k, lines, strict=False):
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        q = fused_clf.predict(y, sr)
        assert r["label"] == q.label and _max_diff(r["probabilities"], q.probabilities) <= 1e-5
    with pytest.raises(AudioError) as python_error:
        fused_clf.classify(short, vad=False)
    why = str(python_error.value).split(": ", 1)[1]
    assert why.startswith("too short: 100 ms, fewer than the 9 analysis frames")
    assert proc.stderr.splitlines()[0] == f"ser-edge-node: error: {short}: {why}"


def _burst_wav(path: Path) -> Path:
    """One second at 16 kHz of faint noise with a 20 ms tone: a few active frames only."""
    y = 1e-4 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    y[8000:8320] += 0.5 * np.sin(np.arange(320) * 2 * np.pi * 300 / 16000)
    sf.write(path, y, 16000, subtype="FLOAT")
    return path


def test_node_example_runs_a_fused_frame_network(node_example: Path, wav_16k: list[Path],
                                                 frame_net, tmp_path: Path) -> None:
    """The tiny frame network fused: the frame model's probabilities (1e-3; the fused model's in
    Python, 1e-5), and the frame model's message for a clip with too few active frames."""
    from ser_edge.errors import AudioError

    source, fused = frame_net
    frame_clf, fused_clf = Classifier(source), Classifier(fused)
    burst = _burst_wav(tmp_path / "burst.wav")
    proc = _node(node_example, "--model", str(fused), "--json", *map(str, wav_16k), str(burst))
    assert proc.returncode == 1
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == len(wav_16k) + 1 and "error" in lines[-1]
    for path, r in zip(wav_16k, lines, strict=False):
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        p, q = frame_clf.predict(y, sr), fused_clf.predict(y, sr)
        assert r["label"] == p.label == q.label, path.name
        assert _max_diff(r["probabilities"], q.probabilities) <= 1e-5, path.name
        assert _max_diff(r["probabilities"], p.probabilities) <= 1e-3, path.name
    with pytest.raises(AudioError) as python_error:
        frame_clf.classify(burst, vad=False)
    why = str(python_error.value).split(": ", 1)[1]
    assert why.startswith("too short: ") and "active analysis frames, the model needs at " \
        "least 16" in why
    assert proc.stderr.splitlines()[0] == f"ser-edge-node: error: {burst}: {why}"


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


def _serve(model: Path):
    """Serve ``examples/`` with ``model`` as ``/model.onnx``; yield the page's URL."""
    need(NODE is not None, "node is not installed")
    need((EXAMPLES / "web" / "node_modules" / "playwright-core").is_dir()
         and (EXAMPLES / "web" / "node_modules" / "onnxruntime-web").is_dir(),
         "run `npm ci` in examples/web")
    need(Path(CHROMIUM).is_file(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    handler = type("Handler", (_Handler,), {"model": model})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(EXAMPLES)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/web/?model=/model.onnx"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def site(fused: Path):
    yield from _serve(fused)


@pytest.fixture(scope="module")
def frame_net_site(frame_net):
    yield from _serve(frame_net[1])


def drive(url: str, **options) -> dict:
    """Run ``examples/web/test/drive.mjs``: what the page shows, as a dict."""
    proc = subprocess.run(
        [NODE, str(EXAMPLES / "web" / "test" / "drive.mjs"), json.dumps({"url": url, **options})],
        capture_output=True, text=True, timeout=300, check=False, cwd=EXAMPLES / "web",
        env={**os.environ, "CHROMIUM": CHROMIUM})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_web_page_in_chromium(site: str, wav_16k: list[Path], ravdess_dir: Path,
                              classifiers, tmp_path: Path, capsys) -> None:
    numpy_clf, _ = classifiers
    # Through the Web Audio resampler (Chromium's, not soxr): 48 kHz RAVDESS files, those where
    # Python's best label leads the next by 0.2 or more. On 48 clips (every 30th) the label was
    # Python's on 46, the two others within 0.1 of a tie; probabilities moved by up to 0.22.
    candidates = sorted(ravdess_dir.glob("Actor_*/*.flac"))[5::97]
    clear = [p for p in candidates
             if (lambda top: top[0][1] - top[1][1] >= 0.2)(numpy_clf.classify(p).top(2))][:8]
    assert len(clear) >= 5
    shot = tmp_path / "page.png"
    out = drive(site, files=[*map(str, wav_16k), *map(str, clear)], screenshot=str(shot),
                record=str(wav_16k[0]), recordSeconds=2)
    assert not [c for c in out["console"] if c.startswith(("error", "pageerror"))], out["console"]
    results = out["results"]
    assert len(results) == len(wav_16k) + len(clear)
    worst_16k = worst_48k = 0.0
    for path, r in zip(wav_16k, results, strict=False):
        assert r["error"] is None, r
        shown = {b["label"]: b["probability"] for b in r["bars"]}
        p_numpy, _ = _python(path, classifiers)
        assert r["label"] == p_numpy.label, path.name
        worst_16k = max(worst_16k, _max_diff(shown, p_numpy.probabilities))
        assert _max_diff(shown, p_numpy.probabilities) <= 1e-3, path.name
        assert [b["probability"] for b in r["bars"]] == sorted(shown.values(), reverse=True)
        assert r["bars"][0]["text"] == f"{100 * r['bars'][0]['probability']:.1f}%"
    for path, r in zip(clear, results[len(wav_16k):], strict=True):
        p = numpy_clf.classify(path)
        assert r["error"] is None and r["label"] == p.label, path.name
        worst_48k = max(worst_48k, _max_diff({b["label"]: b["probability"] for b in r["bars"]},
                                             p.probabilities))
    rec = out["recording"]
    assert rec["error"] is None and len(rec["bars"]) == len(numpy_clf.labels)
    assert sum(b["probability"] for b in rec["bars"]) == pytest.approx(1.0, abs=1e-4)
    assert shot.stat().st_size > 10_000
    with capsys.disabled():
        print(f"\nweb page: {len(wav_16k)} files at 16 kHz, largest probability difference "
              f"{worst_16k:.2e}; {len(clear)} files at 48 kHz through Web Audio, same label, "
              f"largest difference {worst_48k:.3f}; model ready {out['modelReadyMs']:.0f} ms "
              f"after navigation, first result {out['firstResultMs']:.0f} ms after choosing "
              f"the file; recording: {rec['label']}")


@pytest.mark.slow
def test_web_page_runs_a_fused_frame_network(frame_net_site: str, frame_net,
                                             wav_16k: list[Path], tmp_path: Path) -> None:
    """The tiny fused frame network in Chromium: 16 kHz files give the frame model's
    probabilities (1e-3), and a clip with too few active frames the frame model's message."""
    from ser_edge.errors import AudioError

    frame_clf = Classifier(frame_net[0])
    burst = _burst_wav(tmp_path / "burst.wav")
    files = wav_16k[:3]
    out = drive(frame_net_site, files=[*map(str, files), str(burst)])
    assert not [c for c in out["console"] if c.startswith(("error", "pageerror"))], out["console"]
    *shown, refused = out["results"]
    for path, r in zip(files, shown, strict=True):
        assert r["error"] is None, r
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        p = frame_clf.predict(y, sr)
        assert r["label"] == p.label, path.name
        assert _max_diff({b["label"]: b["probability"] for b in r["bars"]},
                         p.probabilities) <= 1e-3, path.name
    with pytest.raises(AudioError) as python_error:
        frame_clf.classify(burst, vad=False)
    why = str(python_error.value).split(": ", 1)[1]
    assert refused["error"] == f"burst.wav: {why}"
