"""``ser-edge bench`` and ``ser_edge.bench``: it runs, and its output has the expected structure.

No timing assertions (a shared machine makes them flaky): only that every stage, table and JSON
field is there, that paths and errors are handled as in the other commands, and that the module
stays importable on a runtime-only install.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ser_edge import bench
from ser_edge.cli import app

runner = CliRunner()

ROOT = Path(__file__).resolve().parent.parent
ALL_STAGES = (*bench.STAGES, *bench.TOTALS)
HEADINGS = ("# ser-edge bench", "## Machine", "## Warm latency per stage", "## Cold start",
            "## Throughput", "## Streaming")
HEAVY = ("librosa", "numba", "llvmlite", "sklearn", "scipy", "resampy")


@pytest.fixture(autouse=True)
def _restore_thread_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ser-edge bench`` pins the thread variables in os.environ: undo that after each test."""
    for key in bench.THREAD_ENV:
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:
            monkeypatch.delenv(key, raising=False)


def sections(text: str) -> dict[str, list[list[str]]]:
    """The Markdown tables under each ``#`` heading, as rows of cells (header and body)."""
    out: dict[str, list[list[str]]] = {}
    heading = None
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line
            out[heading] = []
        elif line.startswith("|") and heading is not None and not line.startswith("| ---"):
            out[heading].append([cell.strip() for cell in line.strip("|").split("|")])
    return out


def librosa_installed() -> bool:
    return importlib.util.find_spec("librosa") is not None


def check_markdown(text: str, *, cold: bool = True,
                   stream: bool = True) -> dict[str, list[list[str]]]:
    tables = sections(text)
    assert list(tables) == list(HEADINGS if stream else HEADINGS[:-1])
    machine = {row[0]: row[1] for row in tables["## Machine"][1:]}
    for key in ("platform", "CPU", "cores, memory", "Python", "numpy", "onnxruntime", "soxr",
                "soundfile", "librosa", "BLAS threads"):
        assert machine[key], key
    latency = tables["## Warm latency per stage"]
    assert [row[0] for row in latency[1:]] == list(ALL_STAGES)
    assert len({len(row) for row in latency}) == 1
    for row in latency[1:]:
        assert all(float(cell) >= 0 for cell in row[2:5])  # ser-edge's figures are numbers
    rows = [row[0] for row in tables["## Cold start"][1:]]
    assert rows == (["wall time, s", "CPU time, s", "peak resident memory, MiB"] if cold else [])
    (tp,) = tables["## Throughput"][1:]
    assert int(tp[1]) >= 1 and tp[2] == "0"
    if stream:  # at the model's rate and at the clip's own
        rows = tables["## Streaming"][1:]
        assert [row[0] for row in rows] in (["16 kHz", "48 kHz"], ["16 kHz"])
        assert all(float(row[4]) > 0 for row in rows)
    assert "Threads: " in text
    return tables


# -- the command, in-process --------------------------------------------------------------------


def test_bench_markdown() -> None:
    result = runner.invoke(app, ["bench", "--reps", "1", "--cold-runs", "1", "--stream-seconds",
                                 "8"])
    assert result.exit_code == 0, result.output
    tables = check_markdown(result.stdout)
    header = tables["## Warm latency per stage"][0]
    if librosa_installed():
        assert header[-1] == "ratio (CPU min)"
        assert "librosa CPU ms min" in header
        assert "librosa 0." in result.stdout
    else:
        assert "librosa is not installed: only ser-edge's figures are shown." in result.stdout
    assert "synthetic speech-like clip, 3 s at 48 kHz" in result.stdout


def test_bench_without_librosa_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a Raspberry Pi's runtime-only install: one line, and ser-edge's figures alone."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "librosa" else find_spec(name, *a))
    result = runner.invoke(app, ["bench", "--reps", "1", "--cold-runs", "0", "--stream-seconds",
                                 "0"])
    assert result.exit_code == 0, result.output
    tables = check_markdown(result.stdout, cold=False, stream=False)
    assert tables["## Warm latency per stage"][0] == [
        "stage", "what", "CPU ms min", "CPU ms median", "wall ms min"]
    assert result.stdout.count("librosa is not installed") == 1
    assert "Skipped (--cold-runs 0)." in result.stdout


def test_bench_json() -> None:
    result = runner.invoke(app, ["bench", "--reps", "2", "--cold-runs", "1", "--no-librosa",
                                 "--stream-seconds", "8", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    for key in ("benchmark", "date", "machine", "versions", "threads", "options", "model",
                "feature_config", "clip", "librosa", "latency", "cold_start", "throughput"):
        assert key in record, key
    for key in ("platform", "cpu", "cpu_count", "python"):
        assert record["machine"][key]
    for key in ("ser-edge", "numpy", "onnxruntime", "soxr", "soundfile"):
        assert record["versions"][key]
    assert record["clip"] == {"path": None, "synthetic": True, "duration_s": 3.0,
                              "sample_rate": 48000, "label": record["clip"]["label"]}
    assert record["librosa"]["compared"] is False
    assert list(record["latency"]) == list(ALL_STAGES)
    for stage in record["latency"].values():
        s = stage["ser-edge"]
        assert len(s["samples_wall_s"]) == len(s["samples_cpu_s"]) == 2
        assert 0 <= s["min_s"] <= s["median_s"] and 0 <= s["cpu_min_s"] <= s["cpu_median_s"]
        assert s["calls_per_sample"] >= 1
    cold = record["cold_start"]
    assert cold["runs"] == 1 and len(cold["wall_s"]) == 1 and cold["wall_s"][0] > 0
    assert cold["command"][1:4] == ["-m", "ser_edge", "classify"]
    if sys.platform.startswith(("linux", "darwin")):
        assert cold["peak_rss_mb"][0] > 1 and cold["rss_method"]
    tp = record["throughput"]
    assert tp["files"] == 1 and tp["clips"] == tp["passes"] >= 1 and tp["failed"] == 0
    assert tp["clips_per_s"] > 0
    sixteen, native = record["streaming"]
    assert (sixteen["sr"], native["sr"]) == (16000, 48000)
    for s in (sixteen, native):
        assert s["seconds"] == 8.0 and s["windows"] == 6 and s["speech_windows"] >= 4
        assert s["cpu_per_audio_s"] > 0 and s["latency_ms"]["max"] >= s["latency_ms"]["median"]
    assert sixteen["delay_ms"]["max"] <= 10.0  # no resampler: a result with the window's chunk


def test_bench_paths(tmp_path: Path) -> None:
    """The first file is the clip of the latency and cold start; every file goes to throughput."""
    folder = tmp_path / "clips"
    folder.mkdir()
    first = bench.write_test_clip(folder, seconds=1.0, sr=16000)
    bench.write_test_clip(folder, seconds=2.0, sr=22050, seed=1)
    result = runner.invoke(app, ["bench", str(first), str(folder), "--reps", "1",
                                 "--cold-runs", "1", "--no-librosa", "--stream-seconds", "0",
                                 "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["clip"]["path"] == str(first) and record["clip"]["synthetic"] is False
    assert record["clip"]["sample_rate"] == 16000
    assert record["cold_start"]["command"][4] == str(first)
    assert record["throughput"]["files"] == 3  # the file, then the folder's two
    assert record["throughput"]["failed"] == 0


@pytest.mark.parametrize("kind", ["missing", "empty folder", "not audio"])
def test_bench_bad_path(tmp_path: Path, kind: str) -> None:
    if kind == "missing":
        path = tmp_path / "nope.wav"
    elif kind == "empty folder":
        path = tmp_path / "empty"
        path.mkdir()
    else:
        path = tmp_path / "notes.wav"
        path.write_text("not audio")
    result = runner.invoke(app, ["bench", str(path), "--reps", "1", "--cold-runs", "0"])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ser-edge: error: {path}"), lines


def test_bench_bad_model(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not onnx")
    result = runner.invoke(app, ["bench", "--model", str(bad), "--cold-runs", "0"])
    assert result.exit_code == 3
    assert len(result.stderr.splitlines()) == 1


def test_bench_bad_option() -> None:
    assert runner.invoke(app, ["bench", "--reps", "0"]).exit_code == 2


# -- the command, in a subprocess ---------------------------------------------------------------


def test_bench_subprocess(tmp_path: Path) -> None:
    """As a user runs it: threads pinned before numpy loads, the synthetic clip deleted after."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in bench.THREAD_ENV}
    env["TMPDIR"] = str(tmp)
    proc = subprocess.run(
        [sys.executable, "-m", "ser_edge", "bench", "--reps", "1", "--cold-runs", "1",
         "--stream-seconds", "5"],
        capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    check_markdown(proc.stdout)
    assert "| BLAS threads | 1 (pinned) |" in proc.stdout
    assert "before numpy loaded" in proc.stdout
    assert proc.stderr == ""  # progress lines only on a terminal
    # the temporary clip and the children's reports are gone (onnxruntime may leave a .ses file)
    assert [p.name for p in tmp.iterdir() if p.name.startswith("ser-edge-")] == []


def test_bench_subprocess_bad_path(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ser_edge", "bench", str(tmp_path / "missing.flac")],
        capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"ser-edge: error: {tmp_path / 'missing.flac'}: no such file or folder"]


# -- the module ---------------------------------------------------------------------------------


def test_import_is_light() -> None:
    """Only the standard library: no librosa & co. on a Pi, and no numpy (see pin_threads)."""
    code = (
        "import ser_edge.bench, json, sys\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{(*HEAVY, 'numpy', 'onnxruntime')!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_pin_threads_before_numpy() -> None:
    code = ("import ser_edge.bench as b, json, os\n"
            "t = b.pin_threads()\n"
            "import numpy\n"
            "print(json.dumps([t['pinned_in_process'], os.environ['OPENBLAS_NUM_THREADS']]))")
    env = {k: v for k, v in os.environ.items() if k not in bench.THREAD_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert json.loads(out.stdout) == [True, "1"]


def test_pin_threads_after_numpy_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in bench.THREAD_ENV:
        monkeypatch.delenv(key, raising=False)
    t = bench.pin_threads()  # numpy is loaded in this process
    assert t["pinned_in_process"] is False and t["env_before"]["OPENBLAS_NUM_THREADS"] is None
    assert t["env"]["OPENBLAS_NUM_THREADS"] == "1" and t["children"] == 1


def test_cpu_model_on_a_raspberry_pi(monkeypatch: pytest.MonkeyPatch) -> None:
    cpuinfo = ("processor\t: 0\nBogoMIPS\t: 108.00\nCPU implementer\t: 0x41\n"
               "CPU part\t: 0xd08\n\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B "
               "Rev 1.4\n")
    monkeypatch.setattr(bench, "_read", lambda path: cpuinfo if path == "/proc/cpuinfo" else "")
    assert bench.cpu_model() == "Raspberry Pi 4 Model B Rev 1.4 (Cortex-A72)"


def test_speech_like_clip_is_deterministic(tmp_path: Path) -> None:
    import soundfile as sf

    (tmp_path / "a").mkdir()
    a = bench.write_test_clip(tmp_path / "a")
    b = bench.write_test_clip(tmp_path)
    ya, sr = sf.read(a, dtype="int16")
    yb, _ = sf.read(b, dtype="int16")
    assert sr == 48000 and ya.shape == (144000,) and np.array_equal(ya, yb)
    assert sf.info(a).subtype == "PCM_16" and np.abs(ya).max() > 1000


def test_librosa_features_of_is_librosa_ways(signal) -> None:
    """The librosa side of ``ser-edge bench`` is the code of ``benchmarks/librosa_way.py``."""
    pytest.importorskip("librosa")
    spec = importlib.util.spec_from_file_location("librosa_way",
                                                  ROOT / "benchmarks" / "librosa_way.py")
    librosa_way = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(librosa_way)
    from ser_edge.features import FeatureConfig

    y = signal("vibrato", 16000, duration=1.0)
    for cfg in (json.loads(FeatureConfig().to_json()), librosa_way.SEEDS):
        np.testing.assert_array_equal(bench.librosa_features_of(y, 16000, cfg),
                                      librosa_way.features_of(y, 16000, cfg))
