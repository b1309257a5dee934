"""The commands for live and long audio, and classify's "no speech" outcome.

``ser-edge listen -`` runs in a subprocess fed raw PCM in small chunks and must print what
``StreamingClassifier`` gives in process; the microphone path runs against a stand-in for
``sounddevice.InputStream`` that plays a real clip (CI has no sound card) and is stopped the way
Ctrl-C stops it. ``ser-edge timeline`` runs on a conversation of real clips.
"""

from __future__ import annotations

import _thread
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from nonspeech import make
from typer.testing import CliRunner

from ser_edge import Classifier, StreamingClassifier
from ser_edge.cli import app

runner = CliRunner()
EXIT_OK, EXIT_FILE_FAILED, EXIT_USAGE = 0, 1, 2
STEREO_CLIP = "Actor_05/03-01-02-01-02-02-05.flac"


def run(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier()


# -- classify: no speech ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nonspeech_files(tmp_path_factory) -> list[Path]:
    """White noise, a square wave, DC, a tone and hum: the issue's fearful-1.00 cases and more."""
    folder = tmp_path_factory.mktemp("nonspeech")
    sr = 44100
    t = np.arange(3 * sr) / sr
    signals = {
        "white.wav": make("white", sr=sr, seconds=3.0, level_db=-20),
        "square.wav": (0.3 * np.sign(np.sin(2 * np.pi * 220 * t))).astype(np.float32),
        "dc.wav": np.full(3 * sr, 0.25, np.float32),
        "tone.flac": make("tone", sr=sr, seconds=3.0, level_db=-12, seed=2),
        "hum.wav": make("hum60", sr=sr, seconds=3.0, level_db=-30),
    }
    paths = []
    for name, y in signals.items():
        sf.write(folder / name, y, sr)
        paths.append(folder / name)
    return paths


def test_classify_says_no_speech(nonspeech_files: list[Path], ravdess_dir: Path) -> None:
    clip = sorted(ravdess_dir.glob("Actor_07/*.flac"))[12]
    result = run("classify", clip, *nonspeech_files)
    assert result.exit_code == EXIT_FILE_FAILED
    assert result.stdout.splitlines()[0].startswith(str(clip))  # speech still classified
    lines = [line for line in result.stderr.splitlines() if line.startswith("ser-edge: error: ")]
    assert lines == [f"ser-edge: error: {p}: no speech detected" for p in nonspeech_files]
    result = run("classify", "--json", *nonspeech_files)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    model = records[0]["model"]  # the model each record names (issue 23)
    assert records == [{"path": str(p), "error": "no speech detected", "model": model}
                       for p in nonspeech_files]
    # --no-vad classifies them anyway.
    result = run("classify", "--no-vad", "--json", *nonspeech_files)
    assert result.exit_code == EXIT_OK, result.output
    assert all("label" in json.loads(line) for line in result.stdout.splitlines())


def test_classify_no_speech_in_a_long_file(clf: Classifier, tmp_path: Path) -> None:
    """Past a minute the file streams; the speech check streams with it."""
    path = tmp_path / "fan.flac"
    sf.write(path, make("pink", sr=16000, seconds=70.0, level_db=-30), 16000)
    result = run("classify", path)
    assert result.exit_code == EXIT_FILE_FAILED
    assert result.stderr.strip() == f"ser-edge: error: {path}: no speech detected"
    from ser_edge.errors import NoSpeechError

    with pytest.raises(NoSpeechError, match="no speech detected"):
        clf.classify(path)
    assert clf.classify(path, vad=False).label in clf.labels


# -- listen - --------------------------------------------------------------------------------------


def _stream_of(ravdess_dir: Path, emodb_dir: Path, rate: int, channels: int) -> np.ndarray:
    """About 8 s of real speech with a pause, as (n, channels) int16 at ``rate``."""
    if rate == 48000:
        parts = [sf.read(ravdess_dir / STEREO_CLIP, dtype="int16")[0],
                 sf.read(sorted(ravdess_dir.glob("Actor_15/*.flac"))[20], dtype="int16")[0]]
        parts = [p if p.ndim == 2 else np.stack([p, p // 2], axis=1) for p in parts]
    else:
        parts = [sf.read(p, dtype="int16")[0] for p in sorted(emodb_dir.glob("*.flac"))[40:43]]
        parts = [np.stack([p, p // 2], axis=1) for p in parts]
    x = np.concatenate(parts[:1] + [np.zeros((rate // 2, 2), np.int16)] + parts[1:])
    return x if channels == 2 else x[:, :1]


def _as_format(x: np.ndarray, fmt: str) -> np.ndarray:
    return x.astype("<i2") if fmt == "s16le" else (x.astype(np.float32) / 32768).astype("<f4")


def _in_process(clf, x: np.ndarray, rate: int, channels: int) -> list[dict]:
    stream = StreamingClassifier(clf, sr=rate, channels=channels)
    return [r.to_dict() for r in stream.push(x) + stream.flush()]


def assert_same_results(got: list[dict], expected: list[dict]) -> None:
    """The same windows, speech flags and labels; probabilities to float32 rounding (the command
    runs BLAS on one thread, this process perhaps on more, and matrix products round by block)."""
    assert [(r["start_s"], r["end_s"], r["speech"], r["label"]) for r in got] == [
        (r["start_s"], r["end_s"], r["speech"], r["label"]) for r in expected]
    for a, b in zip(got, expected, strict=True):
        if b["probabilities"] is None:
            assert a["probabilities"] is None
        else:
            assert list(a["probabilities"]) == list(b["probabilities"])
            np.testing.assert_allclose(list(a["probabilities"].values()),
                                       list(b["probabilities"].values()), rtol=1e-4, atol=1e-6)


def _listen_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "ser_edge", "listen", *[str(a) for a in args]]


@pytest.mark.parametrize(("fmt", "rate", "channels"), [
    ("s16le", 16000, 1),
    ("f32le", 48000, 2),
    pytest.param("s16le", 48000, 2, marks=pytest.mark.slow),
    pytest.param("f32le", 16000, 1, marks=pytest.mark.slow),
    pytest.param("s16le", 16000, 2, marks=pytest.mark.slow),
    pytest.param("f32le", 48000, 1, marks=pytest.mark.slow),
    pytest.param("s16le", 48000, 1, marks=pytest.mark.slow),
    pytest.param("f32le", 16000, 2, marks=pytest.mark.slow),
])
def test_listen_stdin_equals_the_stream_in_process(clf, ravdess_dir, emodb_dir, fmt, rate,
                                                   channels) -> None:
    x = _as_format(_stream_of(ravdess_dir, emodb_dir, rate, channels), fmt)
    expected = _in_process(clf, x, rate, channels)
    assert sum(r["speech"] for r in expected) >= 3
    proc = subprocess.Popen(
        _listen_cmd("-", "--json", "--rate", rate, "--channels", channels, "--format", fmt),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    data = x.tobytes()

    def feed() -> None:  # small chunks of odd sizes, as a pipe delivers them
        pos, k = 0, 0
        while pos < len(data):
            n = 1000 + 331 * (k % 7)
            proc.stdin.write(data[pos : pos + n])
            proc.stdin.flush()
            pos, k = pos + n, k + 1
        proc.stdin.close()

    writer = threading.Thread(target=feed)
    writer.start()
    out, err = proc.stdout.read(), proc.stderr.read()
    writer.join()
    assert proc.wait(timeout=120) == EXIT_OK, err.decode()
    assert_same_results([json.loads(line) for line in out.decode().splitlines()], expected)


def test_listen_text_lines(clf, emodb_dir) -> None:
    x = sf.read(sorted(emodb_dir.glob("*.flac"))[7], dtype="int16")[0]
    expected = [r for r in _in_process(clf, x, 16000, 1)]
    result = runner.invoke(app, ["listen", "-"], input=x.astype("<i2").tobytes())
    assert result.exit_code == EXIT_OK, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(expected)
    for line, r in zip(lines, expected, strict=True):
        if r["speech"]:
            p = r["probabilities"][r["label"]]
            assert f" {r['label']} " in line and f"{p:.2f}" in line
            assert "#" * int(round(20 * p)) in line
        else:
            assert line.endswith("no speech")
    only = runner.invoke(app, ["listen", "-", "--speech-only"], input=x.astype("<i2").tobytes())
    assert len(only.stdout.splitlines()) == sum(r["speech"] for r in expected)


def test_listen_ctrl_c_ends_cleanly(ravdess_dir, emodb_dir) -> None:
    """SIGINT while reading standard input: exit status 0, no traceback."""
    x = _stream_of(ravdess_dir, emodb_dir, 16000, 1)
    proc = subprocess.Popen(_listen_cmd("-", "--json"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(x[: 16000 * 4].tobytes())  # 4 s: two windows, and the pipe stays open
    proc.stdin.flush()
    first = proc.stdout.readline()
    assert json.loads(first)["end_s"] == 3.0
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_OK, err.decode()
    assert b"Traceback" not in err
    proc.stdin.close()


def test_listen_bad_input() -> None:
    assert run("listen", "file.wav").exit_code == EXIT_USAGE
    assert run("listen", "-", "--format", "s24le").exit_code == EXIT_USAGE
    assert run("listen", "-", "--window", "0.01").exit_code == EXIT_USAGE
    nan = np.array([0.0, np.nan] * 100, "<f4").tobytes()
    result = runner.invoke(app, ["listen", "-", "--format", "f32le"], input=nan)
    assert result.exit_code == EXIT_FILE_FAILED
    assert result.stderr.strip() == ("ser-edge: error: standard input: the stream has NaN or "
                                     "infinite samples")


# -- listen from the microphone --------------------------------------------------------------------


def _fake_sounddevice(y: np.ndarray, sr: int, opened: list) -> types.ModuleType:
    """A stand-in for sounddevice whose InputStream plays ``y`` through the callback, in blocks
    of the size asked, then presses Ctrl-C (interrupts the main thread)."""

    class InputStream:
        def __init__(self, *, samplerate, channels, dtype, device, blocksize, callback):
            opened.append({"samplerate": samplerate, "channels": channels, "dtype": dtype,
                           "device": device, "blocksize": blocksize})
            self.callback, self.blocksize = callback, blocksize
            self.data = np.repeat(y[:, None], channels, axis=1).astype(dtype)
            self.thread = threading.Thread(target=self.play)

        def play(self) -> None:
            for i in range(0, len(self.data), self.blocksize):
                block = self.data[i : i + self.blocksize]
                self.callback(block, len(block), None, None)
            time.sleep(1.0)  # the main thread drains the queue, then "Ctrl-C"
            _thread.interrupt_main()

        def __enter__(self):
            self.thread.start()
            return self

        def __exit__(self, *exc):
            self.thread.join()

    module = types.ModuleType("sounddevice")
    module.InputStream = InputStream
    return module


def test_listen_microphone(clf, emodb_dir, monkeypatch) -> None:
    y = np.concatenate([sf.read(p, dtype="float32")[0]
                        for p in sorted(emodb_dir.glob("*.flac"))[100:102]])
    opened: list = []
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(y, 16000, opened))
    result = run("listen", "--json", "--device", "2")
    assert result.exit_code == EXIT_OK, result.output
    assert opened == [{"samplerate": 16000, "channels": 1, "dtype": "float32", "device": 2,
                       "blocksize": 800}]
    # Ctrl-C stops at once: the windows complete by then, not flush's tail window.
    stream = StreamingClassifier(clf, sr=16000)
    expected = [r.to_dict() for r in stream.push(y)]
    assert len(expected) >= 2
    assert [json.loads(line) for line in result.stdout.splitlines()] == expected


def test_listen_microphone_at_48k_stereo(clf, ravdess_dir, monkeypatch) -> None:
    y = sf.read(sorted(ravdess_dir.glob("Actor_03/*.flac"))[30], dtype="float32")[0]
    opened: list = []
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(y, 48000, opened))
    result = run("listen", "--json", "--rate", 48000, "--channels", 2)
    assert result.exit_code == EXIT_OK, result.output
    stream = StreamingClassifier(clf, sr=48000, channels=2)
    expected = [r.to_dict() for r in stream.push(np.stack([y, y], axis=1))]
    assert [json.loads(line) for line in result.stdout.splitlines()] == expected


def test_listen_without_sounddevice(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as when not installed
    result = run("listen")
    assert result.exit_code == EXIT_FILE_FAILED
    assert "pip install 'ser-edge[mic]'" in result.stderr
    assert "libportaudio2" in result.stderr


def test_sounddevice_is_not_imported_before_it_is_needed() -> None:
    code = ("import sys, ser_edge.cli, ser_edge.stream, ser_edge.timeline; "
            "print('sounddevice' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "False False"


# -- timeline --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_conversation(ravdess_dir: Path, emodb_dir: Path, tmp_path_factory) -> Path:
    sr = 16000
    parts = [np.zeros(sr, np.float32)]
    from ser_edge import audio

    for i, clip in enumerate([sorted(ravdess_dir.glob("Actor_09/*.flac"))[33],
                              sorted(emodb_dir.glob("*.flac"))[200],
                              sorted(ravdess_dir.glob("Actor_20/*.flac"))[50]]):
        parts += [audio.load(clip, sr=sr)[0], make("pink", sr=sr, seconds=1.5, level_db=-50,
                                                   seed=i)]
    path = tmp_path_factory.mktemp("timeline-cli") / "talk.wav"
    sf.write(path, np.concatenate(parts), sr)
    return path


def test_timeline_outputs(clf, short_conversation: Path, tmp_path: Path) -> None:
    from ser_edge.timeline import timeline

    segments = list(timeline(short_conversation, clf))
    assert len(segments) == 3
    text = run("timeline", short_conversation)
    assert text.exit_code == EXIT_OK, text.output
    lines = text.stdout.splitlines()
    assert [line.split()[3] for line in lines] == [s.label for s in segments]
    records = [json.loads(line) for line in run("timeline", "--json",
                                                short_conversation).stdout.splitlines()]
    assert records == [{"path": str(short_conversation), **s.to_dict()} for s in segments]
    table = list(csv.reader(io.StringIO(run("timeline", "--csv", short_conversation).stdout)))
    assert table[0] == ["start_s", "end_s", "label", "confidence", *clf.labels]
    assert [row[2] for row in table[1:]] == [s.label for s in segments]
    png = tmp_path / "talk.png"
    result = run("timeline", short_conversation, "--plot", png)
    assert result.exit_code == EXIT_OK, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_timeline_no_speech_and_errors(nonspeech_files: list[Path], tmp_path: Path) -> None:
    path = nonspeech_files[0]
    result = run("timeline", path)
    assert result.exit_code == EXIT_FILE_FAILED
    assert result.stderr.strip() == f"ser-edge: error: {path}: no speech detected"
    result = run("timeline", "--json", path)
    assert json.loads(result.stdout) == {"path": str(path), "error": "no speech detected"}
    missing = run("timeline", tmp_path / "nope.wav")
    assert missing.exit_code == EXIT_FILE_FAILED and "no such file" in missing.stderr
    assert run("timeline", "--json", "--csv", path).exit_code == EXIT_USAGE


def test_timeline_plot_without_matplotlib(short_conversation: Path, tmp_path: Path,
                                          monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = run("timeline", short_conversation, "--plot", tmp_path / "x.png")
    assert result.exit_code == EXIT_FILE_FAILED
    assert "pip install 'ser-edge[plot]'" in result.stderr


def test_timeline_names_stdin_and_warnings(clf, short_conversation: Path, tmp_path: Path) -> None:
    """timeline shows names as classify does (bytes that are not UTF-8 as \\xNN), reads ``-``
    from standard input, and says a truncated file's warning in one line."""
    from ser_edge.timeline import timeline

    expected = [s.to_dict() for s in timeline(short_conversation, clf)]
    raw = os.fsencode(tmp_path) + b"/caf\xe9.wav"
    with open(raw, "wb") as f:
        f.write(short_conversation.read_bytes())
    shown = f"{tmp_path}/caf\\xe9.wav"
    result = run("timeline", "--json", os.fsdecode(raw))
    assert result.exit_code == EXIT_OK, result.output
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"path": shown, **e} for e in expected]
    missing = run("timeline", os.fsdecode(raw[:-4] + b"-missing.wav"))
    assert missing.stderr.startswith(f"ser-edge: error: {tmp_path}/caf\\xe9-missing.wav: ")
    piped = runner.invoke(app, ["timeline", "--json", "-"], input=short_conversation.read_bytes())
    assert piped.exit_code == EXIT_OK, piped.output
    assert [json.loads(line) for line in piped.stdout.splitlines()] == [
        {"path": "<stdin>", **e} for e in expected]
    cut = tmp_path / "cut.wav"
    data = short_conversation.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    result = run("timeline", cut)
    assert result.exit_code == EXIT_OK, result.output
    (line,) = result.stderr.splitlines()  # once, though the file is read twice
    assert line.startswith(f"ser-edge: warning: {cut}: the file is shorter than its header says")


@pytest.mark.parametrize("command", ["timeline", "listen"])
def test_closed_pipe_ends_quietly(short_conversation: Path, tmp_path: Path, command: str) -> None:
    """``ser-edge timeline FILE | head -1`` and ``... | ser-edge listen - | head -1`` in a real
    shell pipeline: status 141 (128 + SIGPIPE, as classify gives), nothing on stderr."""
    bash = shutil.which("bash")
    if bash is None:  # pragma: no cover
        pytest.skip("no bash for a shell pipeline")
    cli = f'"{sys.executable}" -m ser_edge.cli'
    if command == "timeline":  # pieces of half a second at most: many lines
        cmd = f'{cli} timeline --max-segment 0.5 "{short_conversation}"'
    else:
        y, sr = sf.read(short_conversation, dtype="int16")
        (tmp_path / "talk.raw").write_bytes(np.tile(y, 2).astype("<i2").tobytes())
        cmd = f'{cli} listen - --rate {sr} --hop 0.25 < "{tmp_path / "talk.raw"}"'
    script = f'set -o pipefail; {cmd} | head -1; echo "status=${{PIPESTATUS[0]}}" >&2'
    proc = subprocess.run([bash, "-c", script], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONWARNINGS="ignore"), check=False)
    assert len(proc.stdout.splitlines()) == 1
    assert proc.stderr == "status=141\n"


@pytest.mark.parametrize("command", [["listen"], ["timeline"]])
def test_help_has_examples(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == EXIT_OK
    assert "Examples" in result.stdout and "Exit status" in result.stdout

