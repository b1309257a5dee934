"""The ``ser-edge`` command, in-process with typer's CliRunner and in a subprocess.

Every bad input of the issue (missing, empty, truncated, non-audio, too short, silent, NaN, an
unreadable model) gets a one-line message naming the file, its exit status, and does not stop the
other files of the batch. Bad files are made here in ``tmp_path``; real clips come from RAVDESS.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from ser_edge import __version__
from ser_edge.cli import AUDIO_EXTENSIONS, app, find_audio
from ser_edge.model import BUNDLED_MODEL, Classifier

runner = CliRunner()

EXIT_OK, EXIT_FILE_FAILED, EXIT_USAGE, EXIT_MODEL = 0, 1, 2, 3


@pytest.fixture(scope="session")
def model(build_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model when it is there, else a tiny model made for the tests."""
    if BUNDLED_MODEL.is_file():
        return BUNDLED_MODEL
    return build_model(tmp_path_factory.mktemp("cli-models") / "tiny.onnx")


@pytest.fixture(scope="session")
def labels(model: Path) -> tuple[str, ...]:
    return Classifier(model).labels


@pytest.fixture(scope="session")
def clips(ravdess_dir: Path) -> list[Path]:
    """Three real clips from three actors (48 kHz FLAC)."""
    return [sorted(ravdess_dir.glob(f"Actor_{n:02d}/*.flac"))[7] for n in (4, 11, 20)]


def run(*args: str | Path) -> object:
    return runner.invoke(app, [str(a) for a in args])


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ser-edge: error: ")]


# -- real clips ----------------------------------------------------------------------------------


def test_classify_text(model: Path, labels: tuple[str, ...], clips: list[Path]) -> None:
    result = run("classify", *clips, "--model", model)
    assert result.exit_code == EXIT_OK, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(clips)
    for clip, line in zip(clips, lines, strict=True):
        fields = line.split()
        assert fields[0] == str(clip)
        assert fields[1] in labels
        assert 0 < float(fields[2]) <= 1
        # two next-best labels, each with its probability, by default (--top-k 3)
        assert len(re.findall(r"(\w+) (0\.\d\d|1\.00)", line)) == 2
    assert result.stderr == ""


def test_classify_json(model: Path, labels: tuple[str, ...], clips: list[Path]) -> None:
    result = run("classify", "--json", "--model", model, *clips)
    assert result.exit_code == EXIT_OK, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in records] == [str(c) for c in clips]
    for clip, r in zip(clips, records, strict=True):
        assert list(r["probabilities"]) == list(labels)
        assert len(r["probabilities"]) == len(labels)
        assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)
        assert r["sample_rate"] == 48000
        assert r["duration_s"] == pytest.approx(sf.info(str(clip)).duration, abs=1e-3)
        assert len(r["top"]) == 3 and r["top"][0][0] == r["label"]


def test_classify_agrees_with_the_api(model: Path, clips: list[Path]) -> None:
    result = run("classify", "--json", "--model", model, clips[0])
    record = json.loads(result.stdout)
    p = Classifier(model).classify(clips[0])
    assert record["label"] == p.label
    assert record["probabilities"] == pytest.approx(p.probabilities, abs=1e-7)


def test_classify_csv(model: Path, labels: tuple[str, ...], clips: list[Path]) -> None:
    result = run("classify", "--csv", "--model", model, *clips)
    assert result.exit_code == EXIT_OK, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == len(clips)
    for clip, row in zip(clips, rows, strict=True):
        assert row["path"] == str(clip) and row["label"] in labels and row["error"] == ""
        probs = np.array([float(row[name]) for name in labels])
        assert probs.sum() == pytest.approx(1, abs=1e-4)
        assert float(row["confidence"]) == pytest.approx(probs.max(), abs=1e-6)


def test_top_k(model: Path, clips: list[Path]) -> None:
    one = run("classify", "--top-k", "1", "--model", model, clips[0])
    assert one.exit_code == EXIT_OK
    assert len(one.stdout.split()) == 3  # path label confidence
    many = run("classify", "--json", "-k", "50", "--model", model, clips[0])
    assert len(json.loads(many.stdout)["top"]) == len(Classifier(model).labels)
    assert run("classify", "--top-k", "0", clips[0]).exit_code == EXIT_USAGE


def test_json_and_csv_exclude_each_other(clips: list[Path]) -> None:
    result = run("classify", "--json", "--csv", clips[0])
    assert result.exit_code == EXIT_USAGE
    assert "--json" in result.stderr


def test_folders_are_searched_recursively(model: Path, ravdess_dir: Path, tmp_path: Path) -> None:
    actor = ravdess_dir / "Actor_05"
    result = run("classify", "--json", "--model", model, actor)
    assert result.exit_code == EXIT_OK, result.stderr
    paths = [json.loads(line)["path"] for line in result.stdout.splitlines()]
    assert paths == [str(p) for p in sorted(actor.glob("*.flac"))]
    # Nested folders; only audio extensions are taken from folders.
    (tmp_path / "a" / "b").mkdir(parents=True)
    sf.write(tmp_path / "a" / "b" / "deep.WAV", _tone(16000, 16000), 16000)
    sf.write(tmp_path / "a" / "top.flac", _tone(22050, 22050), 22050)
    (tmp_path / "a" / "notes.txt").write_text("not audio")
    found = find_audio([tmp_path / "a"])
    assert [p.name for p, problem in found] == ["deep.WAV", "top.flac"]
    assert all(problem is None for _, problem in found)


def test_audio_extensions_cover_libsndfile() -> None:
    for ext in (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au",
                ".caf", ".w64"):
        assert ext in AUDIO_EXTENSIONS


def test_empty_folder(model: Path, tmp_path: Path) -> None:
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "readme.txt").write_text("hi")
    result = run("classify", "--model", model, tmp_path / "nothing")
    assert result.exit_code == EXIT_FILE_FAILED
    assert re.search(r"nothing: no audio files in this folder", result.stderr)


def test_default_model(clips: list[Path]) -> None:
    if not BUNDLED_MODEL.is_file():
        pytest.skip("the bundled model is not there yet")
    result = run("classify", clips[0])
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.startswith(str(clips[0]))


def test_progress_bar_only_on_a_terminal(model: Path, ravdess_dir: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import ser_edge.cli

    clips = sorted((ravdess_dir / "Actor_06").glob("*.flac"))[:ser_edge.cli.PROGRESS_MIN_FILES]
    plain = run("classify", "--model", model, *clips)
    assert plain.exit_code == EXIT_OK and plain.stderr == ""
    monkeypatch.setattr(ser_edge.cli, "_stderr_is_terminal", lambda: True)
    shown = run("classify", "--model", model, *clips)
    assert shown.exit_code == EXIT_OK
    assert f"] {len(clips)}/{len(clips)}" in shown.stderr
    assert shown.stdout == plain.stdout  # results untouched by the bar
    few = run("classify", "--model", model, *clips[:2])
    assert few.stderr == ""


def test_info(model: Path, labels: tuple[str, ...]) -> None:
    result = run("info", "--model", model)
    assert result.exit_code == EXIT_OK, result.output
    assert ", ".join(labels) in result.stdout
    assert f"features:  {Classifier(model).feature_config.n_features}" in result.stdout
    assert "onnxruntime" in result.stdout
    as_json = run("info", "--json", "--model", model)
    meta = json.loads(as_json.stdout)
    assert meta["labels"] == list(labels)
    assert {"feature_config", "training", "metrics", "model_path"} <= set(meta)


def test_features(model: Path, clips: list[Path]) -> None:
    result = run("features", "--model", model, clips[1])
    assert result.exit_code == EXIT_OK, result.output
    record = json.loads(result.stdout)
    clf = Classifier(model)
    assert record["names"] == clf.feature_config.feature_names()
    np.testing.assert_allclose(record["values"], clf.features(clips[1]), rtol=1e-6)
    assert record["sample_rate"] == clf.feature_config.sr


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == EXIT_OK
    assert result.stdout.strip() == f"ser-edge {__version__}"


@pytest.mark.parametrize("command", [[], ["classify"], ["info"], ["features"]])
def test_help_has_examples_and_exit_codes(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == EXIT_OK
    assert "Examples:" in result.stdout
    assert "ser-edge " in result.stdout
    if command != ["info"]:
        assert "Exit status" in result.stdout


def test_unknown_option_is_a_usage_error() -> None:
    result = run("classify", "--frobnicate", "x.wav")
    assert result.exit_code == EXIT_USAGE


# -- bad inputs ----------------------------------------------------------------------------------


def _tone(n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _missing(d: Path) -> Path:
    return d / "missing.wav"


def _empty(d: Path) -> Path:
    path = d / "empty.wav"
    path.write_bytes(b"")
    return path


def _truncated_flac(d: Path) -> Path:
    path = d / "truncated.flac"
    sf.write(path, _tone(48000, 16000), 16000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_wav(d: Path) -> Path:
    path = d / "truncated.wav"
    sf.write(path, _tone(16000, 16000), 16000)
    path.write_bytes(path.read_bytes()[:40])  # the header, cut before the data chunk
    return path


def _not_audio(d: Path) -> Path:
    path = d / "notes.wav"
    path.write_text("these are my notes, not a recording\n" * 20)
    return path


def _too_short(d: Path) -> Path:
    path = d / "short.wav"
    sf.write(path, _tone(100, 16000), 16000)  # 6 ms: shorter than one 2048-sample frame
    return path


def _silent(d: Path) -> Path:
    path = d / "silent.wav"
    sf.write(path, np.zeros(16000, dtype=np.int16), 16000, subtype="PCM_16")
    return path


def _nan(d: Path) -> Path:
    path = d / "nan.wav"
    y = _tone(16000, 16000)
    y[4000:4100] = np.nan
    sf.write(path, y, 16000, subtype="FLOAT")
    return path


# Each bad input, and what its one-line message must say (after the file's name).
BAD_INPUTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (_missing, r"no such file"),
    "empty": (_empty, r"empty file"),
    "truncated-flac": (_truncated_flac, r"(cannot decode|truncated|corrupt)"),
    "truncated-wav": (_truncated_wav, r"(cannot decode|truncated|corrupt)"),
    "not-audio": (_not_audio, r"(cannot decode|not .*audio)"),
    "too-short": (_too_short, r"too short"),
    "silent": (_silent, r"digital silence"),
    "nan": (_nan, r"NaN"),
}


@pytest.fixture(params=list(BAD_INPUTS))
def bad_input(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    make, reason = BAD_INPUTS[request.param]
    return make(tmp_path), reason


def _message_re(path: Path, reason: str) -> re.Pattern[str]:
    return re.compile(rf"^ser-edge: error: .*{re.escape(path.name)}.*{reason}", re.IGNORECASE)


def test_bad_input_alone(model: Path, bad_input: tuple[Path, str]) -> None:
    path, reason = bad_input
    result = run("classify", "--model", model, path)
    assert result.exit_code == EXIT_FILE_FAILED, result.output
    assert result.stdout == ""
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert _message_re(path, reason).search(lines[0]), lines[0]
    assert "Traceback" not in result.stderr


def test_bad_input_does_not_stop_the_batch(model: Path, clips: list[Path],
                                           bad_input: tuple[Path, str]) -> None:
    path, reason = bad_input
    result = run("classify", "--json", "--model", model, clips[0], path, clips[1])
    assert result.exit_code == EXIT_FILE_FAILED, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in records] == [str(clips[0]), str(path), str(clips[1])]
    assert "label" in records[0] and "label" in records[2]
    assert set(records[1]) == {"path", "error"}
    assert re.search(reason, records[1]["error"], re.IGNORECASE)
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and _message_re(path, reason).search(lines[0])
    assert "1 of 3 files failed" in result.stderr


def test_features_of_a_bad_input(model: Path, bad_input: tuple[Path, str]) -> None:
    path, reason = bad_input
    result = run("features", "--model", model, path)
    assert result.exit_code == EXIT_FILE_FAILED
    assert result.stdout == ""
    assert _message_re(path, reason).search(result.stderr.strip())


def test_csv_records_errors(model: Path, clips: list[Path], tmp_path: Path) -> None:
    bad = _empty(tmp_path)
    result = run("classify", "--csv", "--model", model, bad, clips[2])
    assert result.exit_code == EXIT_FILE_FAILED
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["path"] == str(bad) and rows[0]["label"] == "" and "empty" in rows[0]["error"]
    assert rows[1]["label"] != "" and rows[1]["error"] == ""


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "model file not found"), (b"", "model file is empty"),
     (b"\x08\x07garbage" * 50, "not a readable ONNX model")],
    ids=["missing", "empty", "garbage"],
)
@pytest.mark.parametrize("command", ["classify", "info", "features"])
def test_unreadable_model(tmp_path: Path, clips: list[Path], content: bytes | None, reason: str,
                          command: str) -> None:
    bad = tmp_path / "broken.onnx"
    if content is not None:
        bad.write_bytes(content)
    args = [command, "--model", bad] + ([] if command == "info" else [clips[0]])
    result = run(*args)
    assert result.exit_code == EXIT_MODEL, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert re.search(rf"^ser-edge: error: .*broken\.onnx: {reason}", lines[0])


# -- in a subprocess -----------------------------------------------------------------------------


def _subprocess(*args: str | Path, script: bool = False) -> subprocess.CompletedProcess[str]:
    if script:
        exe = shutil.which("ser-edge", path=str(Path(sys.executable).parent))
        if exe is None:
            pytest.skip("the ser-edge console script is not installed beside this Python")
        cmd = [exe]
    else:
        cmd = [sys.executable, "-m", "ser_edge.cli"]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


@pytest.mark.parametrize("script", [False, True], ids=["python-m", "console-script"])
def test_subprocess_batch(model: Path, labels: tuple[str, ...], clips: list[Path], tmp_path: Path,
                          script: bool) -> None:
    bad = [_empty(tmp_path), _nan(tmp_path), _not_audio(tmp_path), _missing(tmp_path)]
    proc = _subprocess("classify", "--json", "--model", model, clips[0], *bad, clips[1],
                       script=script)
    assert proc.returncode == EXIT_FILE_FAILED, proc.stderr
    assert "Traceback" not in proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == 2 + len(bad)
    good = [r for r in records if "label" in r]
    assert [r["path"] for r in good] == [str(clips[0]), str(clips[1])]
    assert all(list(r["probabilities"]) == list(labels) for r in good)
    lines = error_lines(proc.stderr)
    assert len(lines) == len(bad)
    for path, line in zip(bad, lines, strict=True):
        assert path.name in line


def test_subprocess_ok_and_model_error(model: Path, clips: list[Path], tmp_path: Path) -> None:
    ok = _subprocess("classify", "--model", model, clips[2])
    assert ok.returncode == EXIT_OK, ok.stderr
    assert ok.stdout.startswith(str(clips[2]))
    bad_model = tmp_path / "bad.onnx"
    bad_model.write_text("not a model")
    broken = _subprocess("classify", "--model", bad_model, clips[2])
    assert broken.returncode == EXIT_MODEL
    assert "Traceback" not in broken.stderr
    assert re.fullmatch(r"ser-edge: error: .*bad\.onnx: not a readable ONNX model.*\n",
                        broken.stderr)
    usage = _subprocess("classify", "--top-k", "zero", clips[2])
    assert usage.returncode == EXIT_USAGE
    assert "Traceback" not in usage.stderr


def test_cli_import_is_light() -> None:
    """``import ser_edge.cli`` loads neither onnxruntime nor numpy (cold start on a Pi)."""
    code = (
        "import sys, ser_edge.cli; "
        "print(sorted(m for m in ('onnxruntime', 'numpy', 'soundfile', 'soxr', 'librosa', "
        "'sklearn', 'scipy', 'numba') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize(("given", "expected"), [(None, "1"), ("3", "3")])
def test_cli_keeps_blas_to_one_thread_unless_told(given, expected):
    """The command sets one BLAS/OpenMP thread before numpy loads (small products, and spinning
    BLAS threads doubled a batch's time on a busy 2-core machine), but a user's choice stands."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    code = ("import sys, os, ser_edge.cli; assert 'numpy' not in sys.modules; "
            "print(os.environ['OPENBLAS_NUM_THREADS'], os.environ['OMP_NUM_THREADS'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [expected, "1"]
