"""The ``ser-edge`` command, in-process with typer's CliRunner and in a subprocess.

Every bad input of the issue (missing, empty, truncated, non-audio, too short, silent, NaN, an
unreadable model) gets a one-line message naming the file, its exit status, and does not stop the
other files of the batch. Bad files are made here in ``tmp_path``; real clips come from RAVDESS.
"""

from __future__ import annotations

import contextlib
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
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from ser_edge import __version__
from ser_edge.cli import AUDIO_EXTENSIONS, app, find_audio
from ser_edge.model import BUNDLED_MODEL, Classifier
from tests import hostile

runner = CliRunner()

#: The documented errors and exit statuses (the tables the tests below execute row by row).
ERRORS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "errors.md"

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
    sf.write(tmp_path / "a" / "b" / "deep.WAV", _voice(16000, 16000), 16000)
    sf.write(tmp_path / "a" / "top.flac", _voice(22050, 22050), 22050)
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


def test_classify_without_a_path_says_how_in_three_lines() -> None:
    result = run("classify")
    assert result.exit_code == EXIT_USAGE
    assert result.stdout == ""
    usage, error, hint = result.stderr.splitlines()
    assert usage == "Usage: ser-edge classify [OPTIONS] [PATH]..."
    assert error.startswith("ser-edge: error: no PATH")
    assert "ser-edge classify --sample" in hint


def test_the_samples_are_classified_and_found_by_info(model: Path) -> None:
    from ser_edge.samples import SAMPLE, SAMPLES

    assert SAMPLE in SAMPLES.values()
    result = run("classify", "--sample", "--json", "--model", model)
    assert result.exit_code == EXIT_OK, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in records] == [str(p) for p in SAMPLES.values()]
    labels = Classifier(model).labels
    assert all(r["label"] in labels and r["sample_rate"] == 16000 for r in records)
    # after the PATHs given
    result = run("classify", "--sample", "--model", model, *SAMPLES.values())
    assert len(result.stdout.splitlines()) == 2 * len(SAMPLES)
    info = " ".join(run("info", "--model", model).stdout.split())
    for path in SAMPLES.values():
        assert f"{path}" in info and sf.info(path).channels == 1


def _stderr_on_a_terminal(*args: object) -> tuple[str, str]:
    """Run ``ser-edge`` with stderr on a pseudo-terminal: (stdout, what the terminal got)."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ser_edge.cli", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    out, _ = proc.communicate(timeout=300)
    seen = b""
    with contextlib.suppress(OSError):  # EIO once the terminal's other end is closed
        while chunk := os.read(master, 65536):
            seen += chunk
    os.close(master)
    assert proc.returncode == EXIT_OK, seen
    return out, seen.decode()


def test_progress_bar_only_on_a_terminal(model: Path, ravdess_dir: Path) -> None:
    import ser_edge.cli

    clips = sorted((ravdess_dir / "Actor_06").glob("*.flac"))[:ser_edge.cli.PROGRESS_MIN_FILES]
    plain = run("classify", "--model", model, *clips)
    assert plain.exit_code == EXIT_OK and plain.stderr == ""
    out, terminal = _stderr_on_a_terminal("classify", "--jobs", "1", "--model", model, *clips)
    n = len(clips)
    assert f"[{'#' * 30}] {n}/{n}" in terminal  # typer's bar, drawn to the end
    assert terminal.count("\r\x1b[K") == n  # cleared before each result line
    assert out == plain.stdout  # results untouched by the bar
    out, terminal = _stderr_on_a_terminal("classify", "--model", model, *clips[:2])
    assert terminal == ""


def test_info(model: Path, labels: tuple[str, ...]) -> None:
    result = run("info", "--model", model)
    assert result.exit_code == EXIT_OK, result.output
    assert ", ".join(labels) in result.stdout
    clf = Classifier(model)
    cfg = clf.feature_config
    assert (f"features:  {sum(cfg.block_sizes.values())} rows per frame"
            if clf.input_kind == "frames" else f"features:  {cfg.n_features}") in result.stdout
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
    x = clf.features(clips[1])
    frames = clf.input_kind == "frames"
    assert record["names"] == (clf.feature_config.row_names() if frames
                               else clf.feature_config.feature_names())
    assert len(record["names"]) == len(x) and record.get("n_frames") == (
        x.shape[1] if frames else None)
    np.testing.assert_allclose(record["values"], x, rtol=1e-6)
    assert record["sample_rate"] == clf.feature_config.sr


def test_features_of_a_pooled_and_a_frame_model(clips: list[Path]) -> None:
    from ser_edge.model import BUNDLED_MODELS

    kinds = {Classifier(n).input_kind: n for n in BUNDLED_MODELS}
    if not {"features", "frames"} <= set(kinds):
        pytest.skip("the bundled models are not of both kinds")
    pooled = json.loads(run("features", "--model", kinds["features"], clips[0]).stdout)
    framed = json.loads(run("features", "--model", kinds["frames"], clips[0]).stdout)
    assert np.asarray(pooled["values"]).ndim == 1 and "n_frames" not in pooled
    F = np.asarray(framed["values"])
    assert F.shape == (len(framed["names"]), framed["n_frames"])
    assert framed["names"][0] == "mfcc_0" and framed["names"][-1].startswith(
        Classifier(kinds["frames"]).feature_config.features[-1])


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


def _voice(n: int, sr: int) -> np.ndarray:
    """Voiced syllables, four a second, with a gliding pitch: what voice activity detection takes
    for speech (from half a second on), so that classify gives it an emotion. A steady tone would
    be 'no speech detected'."""
    t = np.arange(n) / sr
    f0 = 150 + 30 * np.sin(2 * np.pi * 1.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 11))
    envelope = np.sqrt(np.clip(np.sin(2 * np.pi * 4 * t), 0, None))
    noise = np.random.default_rng(n).standard_normal(n)
    return (0.2 * voice * envelope + 0.003 * noise).astype(np.float32)


def _missing(d: Path) -> Path:
    return d / "missing.wav"


def _empty(d: Path) -> Path:
    path = d / "empty.wav"
    path.write_bytes(b"")
    return path


def _truncated_flac(d: Path) -> Path:
    path = d / "truncated.flac"
    sf.write(path, _voice(48000, 16000), 16000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_wav(d: Path) -> Path:
    path = d / "truncated.wav"
    sf.write(path, _voice(16000, 16000), 16000)
    path.write_bytes(path.read_bytes()[:40])  # the header, cut before the data chunk
    return path


def _not_audio(d: Path) -> Path:
    path = d / "notes.wav"
    path.write_text("these are my notes, not a recording\n" * 20)
    return path


def _too_short(d: Path) -> Path:
    path = d / "short.wav"
    sf.write(path, _voice(100, 16000), 16000)  # 6 ms: shorter than one 2048-sample frame
    return path


def _silent(d: Path) -> Path:
    path = d / "silent.wav"
    sf.write(path, np.zeros(16000, dtype=np.int16), 16000, subtype="PCM_16")
    return path


def _nan(d: Path) -> Path:
    path = d / "nan.wav"
    y = _voice(16000, 16000)
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
    assert set(records[1]) == {"path", "error", "model"}
    assert records[1]["model"] == records[0]["model"]  # the model that tried it
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


# -- bad input, tried by a stranger (issue 13) ---------------------------------------------------


def _voice_file(path: Path, sr: int = 16000, seconds: float = 1.0, **kwargs: object) -> Path:
    sf.write(path, _voice(int(sr * seconds), sr), sr, **kwargs)
    return path


# The child starts as this process's user and runs the command once on a clip of its own, so that
# everything it imports is loaded (the interpreter may live where 'nobody' cannot read, e.g. under
# /root); then, if it is root, it becomes nobody (uid/gid 65534) and runs the command asked for:
# file permissions then apply as to any user.
_UNPRIVILEGED = """
import contextlib, io, os, sys, tempfile
import numpy as np, soundfile as sf
from ser_edge.cli import app, main
args = sys.argv[1:]
model = args[args.index("--model") + 1]
with tempfile.TemporaryDirectory() as folder:
    clip = os.path.join(folder, "warm-up.wav")
    sf.write(clip, (0.3 * np.sin(np.arange(16000) / 5)).astype("float32"), 16000)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for fmt in ([], ["--json"], ["--csv"]):
            try:
                app(["classify", *fmt, "--model", os.path.abspath(model), clip, "-"],
                    prog_name="ser-edge", standalone_mode=False)
            except SystemExit:
                pass
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
assert os.geteuid() != 0
sys.argv = ["ser-edge", *args]
main()
"""


@pytest.fixture
def stranger_dir(model: Path):
    """A folder anyone may enter (not under pytest's private tmp), with a copy of the model."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="ser-edge-stranger-"))
    folder.chmod(0o755)
    shutil.copy(model, folder / "model.onnx")
    (folder / "model.onnx").chmod(0o644)
    yield folder
    for path in [folder, *folder.rglob("*")]:  # as a non-root user: make it removable again
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(folder)


def _as_stranger(folder: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``ser-edge`` in ``folder`` as an unprivileged user (nobody, when this test is root)."""
    if os.geteuid() == 0 and not hasattr(os, "setuid"):  # pragma: no cover
        pytest.skip("running as root and cannot drop privileges on this platform")
    root = str(Path(__file__).resolve().parents[1])  # this checkout's ser_edge, not another
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONPATH=path)
    return subprocess.run([sys.executable, "-c", _UNPRIVILEGED, *map(str, args)], cwd=folder,
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def _locked(path: Path, mode: int = 0) -> Path:
    path.chmod(mode)
    if os.access(path, os.R_OK) and os.geteuid() != 0:  # pragma: no cover
        pytest.skip(f"cannot make {path} unreadable for this user")
    return path


def test_unreadable_file_and_subfolder_in_a_scanned_folder(stranger_dir: Path) -> None:
    scan = stranger_dir / "scan"
    (scan / "private").mkdir(parents=True)
    _voice_file(scan / "ok.wav")
    _voice_file(scan / "private" / "hidden-from-you.wav")
    _locked(_voice_file(scan / "secret.wav"))
    _locked(scan / "private")
    proc = _as_stranger(stranger_dir, "classify", "--model", "model.onnx", "scan")
    assert proc.returncode == EXIT_FILE_FAILED, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == ["scan/ok.wav"]
    assert error_lines(proc.stderr) == [
        "ser-edge: error: scan/private: permission denied (folder not searched)",
        "ser-edge: error: scan/secret.wav: permission denied",
    ]
    assert "ser-edge: 2 of 3 files failed" in proc.stderr
    assert "cannot decode" not in proc.stderr and "Traceback" not in proc.stderr


def test_broken_symlink_in_a_scanned_folder_is_counted(model: Path, tmp_path: Path) -> None:
    _voice_file(tmp_path / "a.wav")
    (tmp_path / "gone.wav").symlink_to(tmp_path / "deleted.wav")
    (tmp_path / "notes.txt").symlink_to(tmp_path / "deleted.txt")  # not audio: not looked at
    result = run("classify", "--model", model, tmp_path)
    assert result.exit_code == EXIT_FILE_FAILED
    assert result.stdout.startswith(str(tmp_path / "a.wav"))
    assert error_lines(result.stderr) == [
        f"ser-edge: error: {tmp_path / 'gone.wav'}: broken symbolic link (its target does not "
        "exist)"]
    assert "1 of 2 files failed" in result.stderr
    named = run("classify", "--model", model, tmp_path / "gone.wav")
    assert named.exit_code == EXIT_FILE_FAILED
    assert "gone.wav: broken symbolic link" in named.stderr


def test_hidden_files_are_skipped_in_folders_but_tried_when_named(model: Path,
                                                                   tmp_path: Path) -> None:
    _voice_file(tmp_path / "clip.wav")
    (tmp_path / "._clip.wav").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 200)  # AppleDouble
    (tmp_path / ".git").mkdir()
    _voice_file(tmp_path / ".git" / "stash.wav")
    result = run("classify", "--json", "--model", model, tmp_path)
    assert result.exit_code == EXIT_OK, result.stderr
    assert [json.loads(line)["path"] for line in result.stdout.splitlines()] == [
        str(tmp_path / "clip.wav")]
    named = run("classify", "--model", model, tmp_path / "._clip.wav",
                tmp_path / ".git" / "stash.wav")
    assert named.exit_code == EXIT_FILE_FAILED
    assert len(error_lines(named.stderr)) == 1 and "._clip.wav" in named.stderr
    assert named.stdout.startswith(str(tmp_path / ".git" / "stash.wav"))


def test_non_utf8_file_name(model: Path, tmp_path: Path) -> None:
    """A name in Latin-1 (b'caf\\xe9.wav') is classified; printed as caf\\xe9.wav (the byte in
    hex, Python's backslashreplace), in text, JSON and CSV, and in error messages."""
    raw = os.fsencode(tmp_path) + b"/caf\xe9.wav"
    sf.write(raw, _voice(16000, 16000), 16000)  # soundfile wants bytes for such a name
    shown = f"{tmp_path}/caf\\xe9.wav"
    text = run("classify", "--model", model, os.fsdecode(raw))
    assert text.exit_code == EXIT_OK, text.output
    assert text.stdout.split()[0] == shown
    as_json = run("classify", "--json", "--model", model, tmp_path)
    assert json.loads(as_json.stdout)["path"] == shown
    as_csv = run("classify", "--csv", "--model", model, tmp_path)
    assert list(csv.DictReader(io.StringIO(as_csv.stdout)))[0]["path"] == shown
    # A real command line: the name arrives as bytes.
    proc = subprocess.run([sys.executable, "-m", "ser_edge.cli", "classify", "--model",
                           str(model), raw, os.fsencode(tmp_path) + b"/caf\xe9-missing.wav"],
                          capture_output=True, env=dict(os.environ, PYTHONWARNINGS="ignore"),
                          timeout=300, check=False)
    assert proc.returncode == EXIT_FILE_FAILED
    assert proc.stdout.decode("utf-8").split()[0] == shown
    assert proc.stderr.decode("utf-8").splitlines()[0] == (
        f"ser-edge: error: {tmp_path}/caf\\xe9-missing.wav: no such file or folder")


def test_control_characters_in_a_name_stay_on_one_line(model: Path, tmp_path: Path) -> None:
    path = _voice_file(tmp_path / "two\nlines.wav")
    result = run("classify", "--model", model, path, tmp_path / "bad\x1b[31m.wav")
    assert result.stdout.splitlines()[0].split()[0] == f"{tmp_path}/two\\nlines.wav"
    assert error_lines(result.stderr) == [
        f"ser-edge: error: {tmp_path}/bad\\x1b[31m.wav: no such file or folder"]


@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("FLAC", "PCM_16"),
                                              ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_standard_input(model: Path, tmp_path: Path, fmt: str, subtype: str) -> None:
    """``-`` reads standard input, in any format libsndfile reads; the same answer as the file."""
    path = _voice_file(tmp_path / f"clip.{fmt.lower()}", format=fmt, subtype=subtype)
    ok = _voice_file(tmp_path / "ok.wav")
    result = runner.invoke(app, ["classify", "--json", "--model", str(model), str(ok), "-"],
                           input=path.read_bytes())
    assert result.exit_code == EXIT_OK, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in records] == [str(ok), "<stdin>"]
    expected = Classifier(model).classify(path)
    assert records[1]["label"] == expected.label
    assert records[1]["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
    assert result.stderr == ""


def test_standard_input_from_a_real_pipe(model: Path, tmp_path: Path) -> None:
    """A pipe cannot seek, and libsndfile cannot read FLAC from one: it is copied first."""
    path = _voice_file(tmp_path / "clip.flac")
    proc = subprocess.run([sys.executable, "-m", "ser_edge.cli", "classify", "--model",
                           str(model), "-"], input=path.read_bytes(), capture_output=True,
                          timeout=300, check=False, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert proc.returncode == EXIT_OK, proc.stderr
    assert proc.stdout.decode().split()[:2] == ["<stdin>", Classifier(model).classify(path).label]
    assert proc.stderr == b""


def test_standard_input_in_process_and_its_errors(model: Path, tmp_path: Path) -> None:
    path = _voice_file(tmp_path / "clip.flac")
    result = runner.invoke(app, ["classify", "--model", str(model), "-"],
                           input=path.read_bytes())
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.startswith("<stdin>  ")
    empty = runner.invoke(app, ["classify", "--model", str(model), "-"], input=b"")
    assert empty.exit_code == EXIT_FILE_FAILED
    assert error_lines(empty.stderr) == ["ser-edge: error: <stdin>: empty input (0 bytes)"]
    garbage = runner.invoke(app, ["classify", "--model", str(model), "-"], input=b"hello" * 99)
    assert error_lines(garbage.stderr)[0].startswith(
        "ser-edge: error: <stdin>: cannot decode as audio")
    features = runner.invoke(app, ["features", "--model", str(model), "-"],
                             input=path.read_bytes())
    assert features.exit_code == EXIT_OK
    assert json.loads(features.stdout)["path"] == "<stdin>"
    dash = tmp_path / "-"  # a file called '-', named by a longer path, is a file
    dash.write_bytes(path.read_bytes())
    named = runner.invoke(app, ["classify", "--model", str(model), str(dash)], input=b"")
    assert named.exit_code == EXIT_OK and named.stdout.startswith(f"{dash}  ")


def _mp3(path: Path, seconds: float = 2.0) -> Path:
    return _voice_file(path, seconds=seconds, format="MP3", subtype="MPEG_LAYER_III")


def _corrupt_mp3(path: Path) -> Path:
    data = bytearray(_mp3(path).read_bytes())
    rng = np.random.default_rng(1)
    data[200::3] = rng.integers(0, 256, len(data[200::3]), dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def test_corrupt_mp3_is_quiet_and_says_mp3(model: Path, tmp_path: Path) -> None:
    """mpg123 writes to file descriptor 2 itself: only a real subprocess shows whether its
    chatter reaches the terminal."""
    bad = _corrupt_mp3(tmp_path / "corrupt.mp3")
    ok = _voice_file(tmp_path / "ok.wav")
    proc = _subprocess("classify", "--model", model, bad, ok)
    assert proc.returncode == EXIT_FILE_FAILED
    assert proc.stdout.startswith(str(ok))
    lines = proc.stderr.splitlines()
    assert len(lines) == 2, proc.stderr  # the error and the summary, no decoder chatter
    assert re.fullmatch(rf"ser-edge: error: {re.escape(str(bad))}: cannot decode the MP3 "
                        r"\(mpg123: .+\)", lines[0]), lines[0]
    assert "regular file" not in proc.stderr and "pipe" not in proc.stderr
    assert lines[1] == "ser-edge: 1 of 2 files failed"


@pytest.mark.parametrize("kind", ["wav", "mp3"])
def test_truncated_file_warns(model: Path, tmp_path: Path, kind: str) -> None:
    whole = _voice_file(tmp_path / "whole.wav", seconds=2.0) if kind == "wav" else _mp3(
        tmp_path / "whole.mp3")
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) * 2 // 5])
    proc = _subprocess("classify", "--model", model, cut)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert proc.stdout.startswith(str(cut))
    assert re.fullmatch(rf"ser-edge: warning: {re.escape(str(cut))}: the file is shorter than "
                        r"its header says \(0\.\d\d s of audio, the header says 2\.00 s\): "
                        r"classified from what is there\n", proc.stderr), proc.stderr
    as_json = run("classify", "--json", "--model", model, cut, whole)
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert "shorter than its header says" in records[0]["warnings"][0]
    assert "warnings" not in records[1]


def test_closed_pipe_exits_quietly(model: Path, tmp_path: Path) -> None:
    """``ser-edge classify ... | head -1`` in a real shell pipeline: status 141 (128 + SIGPIPE,
    as cat or yes give), nothing on stderr."""
    bash = shutil.which("bash")
    if bash is None:  # pragma: no cover
        pytest.skip("no bash for a shell pipeline")
    for i in range(12):
        _voice_file(tmp_path / f"clip{i:02d}.wav", seconds=0.5)
    script = (f'set -o pipefail; "{sys.executable}" -m ser_edge.cli classify --model "{model}" '
              f'"{tmp_path}" | head -1; echo "status=${{PIPESTATUS[0]}}" >&2')
    proc = subprocess.run([bash, "-c", script], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONWARNINGS="ignore"), check=False)
    assert proc.stdout.startswith(str(tmp_path / "clip00.wav"))
    assert len(proc.stdout.splitlines()) == 1
    assert proc.stderr == "status=141\n"


def test_top_k_one_is_what_the_docs_say(model: Path, tmp_path: Path) -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "classify.md").read_text()
    (line,) = [line for line in page.splitlines() if "--top-k 1" in line]
    assert line.split("#", 1)[1].strip() == "path, best label and its probability only"
    path = _voice_file(tmp_path / "clip.wav")
    result = run("classify", "--top-k", "1", "--model", model, path)
    fields = result.stdout.split()
    assert len(fields) == 3 and fields[0] == str(path)
    assert fields[1] in Classifier(model).labels and 0 < float(fields[2]) <= 1
    as_json = json.loads(run("classify", "--json", "-k", "1", "--model", model, path).stdout)
    assert as_json["top"] == [[as_json["label"], as_json["probabilities"][as_json["label"]]]]


def test_info_prints_values_in_full_and_numbers_alike(model: Path) -> None:
    result = run("info", "--model", model)
    assert result.exit_code == EXIT_OK
    text = result.stdout
    assert "..." not in text
    assert all(len(line) <= 100 for line in text.splitlines())
    meta = Classifier(model).metadata
    flat = " ".join(text.split())
    for key, value in meta["training"].get("estimator_params", {}).items():
        assert f"{key} {value!r}" in flat or f"{key} {value}" in flat, key
    metrics = flat[flat.index("metrics:"):flat.index("versions:")]
    metrics = re.sub(r"RT60 \d+\.\d+ s", "", metrics)  # a perturbation's name, not a figure
    decimals = {len(n.split(".")[1]) for n in re.findall(r"\b\d+\.\d+\b", metrics)}
    assert decimals <= {3}, metrics  # every rate with three decimals
    assert "±" not in text and "e-0" not in metrics


def test_info_and_features_say_the_digital_silence_is_trimmed(build_model, tmp_path: Path,
                                                                   clips: list[Path]) -> None:
    from ser_edge.features import FeatureConfig

    plain = run("info", "--model", build_model(tmp_path / "plain.onnx")).stdout
    model = build_model(tmp_path / "trim.onnx", config=FeatureConfig(trim_zeros=True))
    text = " ".join(run("info", "--model", model).stdout.split())
    assert "digital silence (samples exactly 0) trimmed from both ends first" in text
    assert "trimmed" not in plain
    record = json.loads(run("features", "--model", model, clips[0]).stdout)
    assert record["feature_config"]["trim_zeros"] is True


def test_readme_states_the_exit_statuses_the_code_uses() -> None:
    """Every status in the documented table and in --help is one the command uses, and vice
    versa."""
    import ser_edge.cli as cli

    section = ERRORS_PAGE.read_text()
    table = dict(re.findall(r"^\| (\d+) \| (.+) \|$", section, re.MULTILINE))
    codes = {cli.EXIT_OK, cli.EXIT_FILE_FAILED, cli.EXIT_USAGE, cli.EXIT_MODEL,
             cli.EXIT_CLUSTER, cli.EXIT_BROKEN_PIPE}
    assert {int(code) for code in table} == codes
    assert "141" in cli.EXIT_CODES_HELP
    assert "permission denied" in section and "broken symbolic link" in section


def _flac_claiming_billions_of_frames(d: Path) -> Path:
    from tests.fuzz.seeds import flac_with_total_samples

    path = d / "huge.flac"
    sf.write(path, _voice(16000, 16000), 16000)
    path.write_bytes(flac_with_total_samples(path.read_bytes(), 2**32 + 5000))
    return path


def _flac_claiming_more(d: Path) -> Path:
    from tests.fuzz.seeds import flac_with_total_samples

    path = d / "cut.flac"
    sf.write(path, _voice(16000, 16000), 16000)
    path.write_bytes(flac_with_total_samples(path.read_bytes(), 3 * 16000))
    return path


def _huge_samples(d: Path) -> Path:
    return _write_samples(d / "loud.wav", _voice(16000, 16000) * np.float32(1e20))


def _write_samples(path: Path, y: np.ndarray, sr: int = 16000) -> Path:
    sf.write(path, y, sr, subtype="FLOAT")
    return path


def _folder_without_audio(d: Path) -> Path:
    (d / "texts").mkdir()
    (d / "texts" / "readme.txt").write_text("hi")
    return d / "texts"


def _broken_link(d: Path) -> Path:
    (d / "gone.wav").symlink_to(d / "deleted.wav")
    return d / "gone.wav"


def _unreadable(d: Path) -> Path:
    return _locked(_voice_file(d / "unreadable.wav"))


def _in_unsearchable_folder(d: Path) -> Path:
    (d / "locked").mkdir()
    clip = _voice_file(d / "locked" / "clip.wav")
    _locked(d / "locked", 0o644)  # listable, not searchable
    return clip


def _with_unsearchable_subfolder(d: Path) -> Path:
    (d / "scan" / "private").mkdir(parents=True)
    _voice_file(d / "scan" / "private" / "x.wav")
    _locked(d / "scan" / "private")
    return d / "scan"


# The table of errors (docs/errors.md), row by row: how to make the input, and whether an
# unprivileged user must try it. A row added to the table without a line here fails the test,
# and so does a message that is not what the command prints.
README_ROWS: dict[str, tuple[Callable[[Path], Path | str], bool]] = {
    "missing": (_missing, False),
    "unreadable": (_unreadable, True),
    "inside a folder you may not search": (_in_unsearchable_folder, True),
    "a subfolder you may not search, met while searching a folder (counted as a failed file)": (
        _with_unsearchable_subfolder, True),
    "a broken symbolic link, named or met in a folder (counted as a failed file)": (
        _broken_link, False),
    "a folder with no audio files": (_folder_without_audio, False),
    "an empty file": (_empty, False),
    "empty standard input": (lambda d: "-", False),
    "not audio": (_not_audio, False),
    "a corrupt MP3 (mpg123's own messages are kept off the terminal)": (
        lambda d: _corrupt_mp3(d / "corrupt.mp3"), False),
    "a FLAC cut short, or a header claiming more audio than there is": (
        _flac_claiming_more, False),
    "longer than 10 minutes, or a header saying so, with a frame-level model such as the default "
    "(`ser-edge timeline` takes any length, and so do pooled models such as `--model mlp`)": (
        _flac_claiming_billions_of_frames, False),
    "shorter than the model needs (the bundled model's MFCC deltas take 9 analysis frames, 128 ms;"
    " a model without deltas says `shorter than one analysis frame`)": (_too_short, False),
    "digital silence": (_silent, False),
    "too quiet to analyse: a peak below 1e-5 (-100 dBFS), under any recorder's noise floor "
    "(`--no-vad` does not change it)": (
        lambda d: _write_samples(d / "quiet.wav", _voice(16000, 16000) * np.float32(3e-7)),
        False),
    "NaN or infinite samples": (_nan, False),
    "samples far outside [-1, 1] (past 1e12: the features would overflow float32)": (
        _huge_samples, False),
    "a sample rate below 1 kHz or above 768 kHz": (
        lambda d: _write_samples(d / "slow.wav", _voice(800, 100), sr=100), False),
    "no speech: noise, hum, a tone, DC, clicks (see below; `--no-vad` classifies it anyway)": (
        lambda d: _write_samples(d / "noise.wav", 0.05 * np.random.default_rng(0).standard_normal(
            16000).astype(np.float32)), False),
}


def _readme_error_rows() -> dict[str, str]:
    section = ERRORS_PAGE.read_text()
    table = section[section.index("| input | message"):]
    table = table[:table.index("\n\n")]
    return dict(re.findall(r"^\| (.+?) \| `(.+)` \|$", table, re.MULTILINE))


class _Case:
    """What a row of docs/errors.md's second table runs in: a folder, a clip, a source model."""

    def __init__(self, folder: Path, tiny: Path):
        self.folder, self.tiny = folder, tiny
        self.clip = _voice_file(folder / "clip.wav")

    def classify(self, *args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return hostile.ser_edge("classify", *args, cwd=self.folder, **kwargs)

    def with_model(self, model: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return self.classify("--model", model.name, *args, self.clip.name)


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def _results_of_another_model(c: _Case) -> subprocess.CompletedProcess[str]:
    out = c.folder / "out.jsonl"
    first = c.with_model(c.tiny, "-o", out.name)
    assert first.returncode == EXIT_OK, first.stderr
    other = hostile.output_model(c.tiny, c.folder / "other.onnx", "softmax")
    return c.classify("--model", other.name, "-o", out.name, "--resume", c.clip.name, "b.wav")


def _scheduler(c: _Case, address: str) -> subprocess.CompletedProcess[str]:
    return c.classify("--scheduler", address, c.clip.name,
                      connect_timeout_s=hostile.CONNECT_TIMEOUT_S)


def _at_listener(kind: str) -> Callable[[_Case], subprocess.CompletedProcess[str]]:
    def run_case(c: _Case) -> subprocess.CompletedProcess[str]:
        pytest.importorskip("distributed")
        with hostile.listener(kind) as address:
            return _scheduler(c, address)

    return run_case


def _at_scheduler_without_workers(c: _Case) -> subprocess.CompletedProcess[str]:
    with hostile.scheduler_without_workers() as address:
        return _scheduler(c, address)


def _full_disk(c: _Case) -> subprocess.CompletedProcess[str]:
    for i in range(3):
        _voice_file(c.folder / f"more{i}.wav")
    return c.classify("--model", c.tiny.name, "-o", "out.jsonl", c.clip.name,
                      *[f"more{i}.wav" for i in range(3)], file_size=1000)


def _adaptive(c: _Case) -> Path:
    """The tiny model with 'adaptation' metadata (a population of zeros and ones)."""
    from ser_edge.features import FeatureConfig

    n_rows = sum(FeatureConfig().block_sizes.values())
    meta = {"blocks": ["mfcc"], "min_seconds": 1.0, "population_mean": [0.0] * n_rows,
            "population_std": [1.0] * n_rows}
    return hostile.rewrite_metadata(c.tiny, c.folder / "adaptive.onnx",
                                    adaptation=json.dumps(meta))


def _not_a_profile(c: _Case) -> subprocess.CompletedProcess[str]:
    (c.folder / "me.json").write_text('{"mean": [1, 2]}')
    return c.classify("--model", _adaptive(c), "--profile", "me.json", c.clip.name)


# The second table of docs/errors.md (inputs that stop a command, or end it with another status
# than 1), row by row: how to run the case, in a subprocess bounded in time.
README_STOP_ROWS: dict[str, Callable[[_Case], subprocess.CompletedProcess[str]]] = {
    "`--adapt` (or `--profile`) with a model that cannot adapt: no `adaptation` metadata, or a "
    "waveform model": lambda c: c.classify("--model", c.tiny.name, "--adapt", c.clip.name),
    "`--profile FILE` that does not exist, without `--adapt` (nothing to use)": lambda c:
        c.classify("--model", _adaptive(c), "--profile", "nobody.json", c.clip.name),
    "`--profile FILE` that is not a speaker profile (or one made with another model's features)":
        _not_a_profile,
    "a model file that is not a regular file: a FIFO, a device such as `/dev/zero`":
        lambda c: c.with_model(_fifo(c.folder / "fifo.onnx")),
    "a model file larger than 256 MiB (`ser_edge.modelfile.MAX_MODEL_BYTES`)":
        lambda c: c.with_model(_sparse(c.folder / "huge.onnx", (256 << 20) + 1)),
    "a model whose external data (weights in a file beside it) lies outside its folder: "
    "`../x.bin`, an absolute path, a symbolic link out": lambda c: c.classify(
        "--model", hostile.external_data_model(c.tiny, c.folder / "ext", escape="dotdot"),
        c.clip.name),
    "model metadata of the wrong type or out of range (`level_db: \"x\"`, `sr: 2**40`, "
    "`fmax: Infinity`)": lambda c: c.with_model(
        hostile.with_feature_config(c.tiny, c.folder / "bad.onnx", level_db="x")),
    "model metadata nested more than 32 deep": lambda c: c.with_model(hostile.rewrite_metadata(
        c.tiny, c.folder / "deep.onnx", training="[" * 100_000 + "]" * 100_000)),
    "a label that is not printable text (a control character such as an escape or a newline, a "
    "format character)": lambda c: c.with_model(hostile.rewrite_metadata(
        c.tiny, c.folder / "esc.onnx", labels=json.dumps(
            ["a\x1b]0;pwned\x07", "b", "c", "d", "e", "f", "g", "h"]))),
    "a model whose `probabilities` output is not a float tensor (int64, say)": lambda c:
        c.with_model(hostile.output_model(c.tiny, c.folder / "int.onnx", "int64")),
    "a model whose `probabilities` output is not a matrix (shaped `()` or `(N, 1, 8)`)":
        lambda c: c.with_model(hostile.output_model(c.tiny, c.folder / "r3.onnx", "rank3")),
    "a model whose output for a file is not probabilities (NaN, logits: not within [0, 1] "
    "summing to 1 within 1e-3); the other files are still classified": lambda c:
        c.with_model(hostile.output_model(c.tiny, c.folder / "nan.onnx", "nan")),
    "`--resume` with a results file written by another model (or by an older ser-edge, which "
    "did not name it)": _results_of_another_model,
    "`--resume` with standard input (`-`): what it held last time cannot be told": lambda c:
        c.classify("-", "-o", "out.jsonl", "--resume", stdin=c.clip.read_bytes()),
    "`--output` a FIFO or a device": lambda c: c.classify(
        "-o", _fifo(c.folder / "fifo.jsonl").name, c.clip.name),
    "`--output` and the disk fills up (or the file size limit is reached)": _full_disk,
    "standard output that cannot be written (`> /dev/full`)": lambda c: c.classify(
        c.clip.name, stdout="full"),
    "standard output closed (`>&-`)": lambda c: c.classify(c.clip.name, stdout="closed"),
    "standard input closed (`classify - <&-`)": lambda c: c.classify("-", stdin="closed"),
    "`listen --smooth` past 10000 windows (`timeline --max-segment` past 3600 s, `--context` "
    "past 600 s: alike)": lambda c: hostile.ser_edge(
        "listen", "-", "--smooth", "99999999999999999999", cwd=c.folder, stdin=b"\0" * 64000),
    "`--scheduler` with an address that is not `tcp://HOST:PORT`: `not-an-address`, "
    "`http://...`, `inproc://x`, `ucx://...`": lambda c: _scheduler(c, "inproc://x"),
    "`--scheduler tls://...` without Dask's TLS settings": lambda c: _scheduler(
        c, "tls://127.0.0.1:1"),
    "`--scheduler` at a listener that never answers (or a web server, which waits for a "
    "request)": _at_listener("silent"),
    "`--scheduler` at a listener that answers something else (random bytes)":
        _at_listener("noise"),
    "`--scheduler` at a scheduler without workers": _at_scheduler_without_workers,
}


def _readme_stop_rows() -> dict[str, tuple[int, str]]:
    section = ERRORS_PAGE.read_text()
    table = section[section.index("| input | exit status | message"):]
    table = table[:table.index("\n\n")]
    return {row: (int(status), message) for row, status, message in re.findall(
        r"^\| (.+?) \| (\d+) \| `(.+)` \|$", table, re.MULTILINE)}


def test_readme_error_table_has_a_test_per_row() -> None:
    assert set(_readme_error_rows()) == set(README_ROWS)
    assert set(_readme_stop_rows()) == set(README_STOP_ROWS)


@pytest.fixture(scope="session")
def features_model(build_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny valid model of pooled features (the source of the hostile ones)."""
    return build_model(tmp_path_factory.mktemp("hostile") / "tiny.onnx")


def _stop_row(row: str, case: _Case) -> None:
    """A row of the second table: its exit status, one line with its message, no traceback."""
    status, message = _readme_stop_rows()[row]
    proc = README_STOP_ROWS[row](case)
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines()
             if line.startswith(("ser-edge: error: ", "Error: "))]
    assert len(lines) == 1, proc.stderr
    pattern = ".+".join(re.escape(piece) for piece in message.split("..."))
    pattern = pattern.replace("FILE", ".+")
    assert re.fullmatch(f"(ser-edge: error: |Error: ){pattern}", lines[0]), (lines[0], message)
    # Nothing else on stderr but typer's usage lines, and nothing on stdout but records.
    others = [line for line in proc.stderr.splitlines() if line not in lines]
    assert all(line.startswith(("Usage: ", "Try ")) or not line.strip() for line in others), (
        proc.stderr)


@pytest.mark.parametrize("row", [*README_ROWS, *README_STOP_ROWS])
def test_readme_error_table(row: str, request: pytest.FixtureRequest,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Each row of docs/errors.md's two tables, run as it says: its message, its exit status."""
    if row in README_STOP_ROWS:
        folder = request.getfixturevalue("tmp_path")
        source = request.getfixturevalue("features_model")
        shutil.copy(source, folder / source.name)
        _stop_row(row, _Case(folder, folder / source.name))
        return
    stranger_dir = request.getfixturevalue("stranger_dir")
    message = _readme_error_rows()[row]
    make, unprivileged = README_ROWS[row]
    target = make(stranger_dir)
    arg = target if target == "-" else Path(target).relative_to(stranger_dir)
    ok = _voice_file(stranger_dir / "zz-ok.wav")
    args = ["classify", "--model", "model.onnx", arg, ok.name]
    if unprivileged:
        proc = _as_stranger(stranger_dir, *args)
    else:
        monkeypatch.chdir(stranger_dir)
        result = runner.invoke(app, list(map(str, args)), input=b"")
        proc = subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)
    assert proc.returncode == EXIT_FILE_FAILED, proc.stderr
    assert "Traceback" not in proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == ["zz-ok.wav"]
    (line,) = error_lines(proc.stderr)
    name = "<stdin>" if target == "-" else str(arg / "private" if arg.name == "scan" else arg)
    pattern = ".+".join(re.escape(piece) for piece in f"{name}: {message}".split("..."))
    assert re.fullmatch(f"ser-edge: error: {pattern}", line), (line, message)
    assert proc.stderr.splitlines()[-1] == "ser-edge: 1 of 2 files failed"


def test_info_of_a_bundled_ensemble_names_its_members_and_how_they_are_joined() -> None:
    from ser_edge.model import BUNDLED_MODELS

    ensembles = [n for n in BUNDLED_MODELS
                 if Classifier(n).metadata["training"]["recipe"].get("members")]
    if not ensembles:
        pytest.skip("no bundled model is an ensemble")
    for name in ensembles:
        training = Classifier(name).metadata["training"]
        res = runner.invoke(app, ["info", "--model", name], env={"COLUMNS": "100"})
        assert res.exit_code == 0, res.output
        text = " ".join(res.output.split())
        for member, weight in zip(training["recipe"]["members"], training["recipe"]["weights"],
                                  strict=True):
            assert f"{member['name']} ({member['model']}, weight {weight:g}" in text
        geometric = training["recipe"].get("combine") == "geometric"
        assert ("combined: weighted geometric mean" in text) == geometric
        assert ("combined: weighted mean" in text) == (not geometric)
        if "storage" in training:
            assert f"weights stored as {training['storage']['dtype']}" in text


def test_models_lists_every_bundled_model_with_its_figures() -> None:
    from ser_edge.model import BUNDLED_MODELS, DEFAULT_MODEL

    res = runner.invoke(app, ["models", "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert [r["name"] for r in rows] == list(BUNDLED_MODELS)
    for r in rows:
        clf = Classifier(r["name"])
        si = clf.metadata["metrics"]["speaker_independent"]
        assert r["uar"] == pytest.approx(si["uar_mean"]) and r["default"] == (
            r["name"] == DEFAULT_MODEL)
        assert 0 <= r["white_noise_20db_unchanged"] <= 1
        assert r["ravdess_to_emodb_uar"] == pytest.approx(
            clf.metadata["metrics"]["cross_corpus"]["ravdess -> emodb"]["uar"])
    res = runner.invoke(app, ["models"], env={"COLUMNS": "80"})
    assert res.exit_code == 0 and f"{DEFAULT_MODEL}*" in res.output
    assert all(len(line) < 80 for line in res.output.splitlines())
    text = " ".join(res.output.split())
    for r in rows:  # each description in full, beneath its model's figures
        assert " ".join(r["description"].split()) in text


# -- hostile input, second round (issue 23) ------------------------------------------------------


def test_info_escapes_what_the_metadata_says(features_model: Path, tmp_path: Path) -> None:
    """Metadata text (a recipe's description, a corpus name) reaches the terminal escaped."""
    training = json.loads(hostile.metadata_of(features_model)["training"])
    training["recipe"] = {"name": "evil\x1b]0;pwned\x07", "description": "two\nlines\u202e"}
    bad = hostile.rewrite_metadata(features_model, tmp_path / "evil.onnx",
                                   training=json.dumps(training))
    result = run("info", "--model", bad)
    assert result.exit_code == EXIT_OK, result.output
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\u202e" not in result.stdout
    assert "recipe:    evil\\x1b]0;pwned\\x07: two lines\\u202e" in result.stdout


def test_model_output_errors_exit_3_and_the_batch_goes_on(features_model: Path,
                                                          tmp_path: Path) -> None:
    """A model that outputs NaN: each file's line says so, every file has its record (valid
    JSON, with --jobs 2 and -o too), and the status is 3."""
    nan = hostile.output_model(features_model, tmp_path / "nan.onnx", "nan")
    clips = [_voice_file(tmp_path / f"c{i}.wav", seconds=1 + i / 4) for i in range(3)]
    for args in (["--json"], ["--jobs", "2", "-o", str(tmp_path / "out.jsonl")]):
        proc = hostile.ser_edge("classify", "--model", nan, *args, *clips)
        assert proc.returncode == EXIT_MODEL, proc.stderr
        lines = error_lines(proc.stderr)
        assert len(lines) == 3 and all("nan.onnx: its 'probabilities' output is not finite" in
                                       line for line in lines), proc.stderr
        assert proc.stderr.splitlines()[-1] == "ser-edge: 3 of 3 files failed"
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["path"] for r in records] == [str(c) for c in clips]
    assert all("label" not in r and "not finite" in r["error"] for r in records)


@pytest.mark.parametrize("command", ["classify", "listen", "timeline", "features"])
def test_closed_or_full_standard_streams_are_one_line(command: str, tmp_path: Path) -> None:
    """``> /dev/full``, ``>&-`` and ``<&-``: one line each, no traceback (timeline and features
    read '-' for the closed standard input, classify too)."""
    clip = _voice_file(tmp_path / "clip.wav", seconds=2.0)
    source = "-" if command == "listen" else clip
    pcm = (_voice(32000, 16000) * 32767).astype("<i2").tobytes()
    feed = pcm if command == "listen" else clip.read_bytes()
    full = hostile.ser_edge(command, source, stdout="full", stdin=feed)
    assert full.returncode == EXIT_USAGE, full.stderr
    assert full.stderr.splitlines() == [
        "ser-edge: error: standard output: cannot write (No space left on device)"]
    closed = hostile.ser_edge(command, source, stdout="closed", stdin=feed)
    assert closed.returncode == EXIT_USAGE, closed.stderr
    assert closed.stderr.splitlines() == [
        "ser-edge: error: standard output is closed: nowhere to write the results (--output "
        "FILE writes them to a file)"]
    no_input = hostile.ser_edge(command, "-", stdin="closed")
    assert no_input.returncode == EXIT_FILE_FAILED, no_input.stderr
    (line,) = no_input.stderr.splitlines()
    assert "standard input is closed: " in line and line.startswith("ser-edge: error: ")


def test_output_file_with_standard_output_closed(features_model: Path, tmp_path: Path) -> None:
    """-o needs no standard output; the closed descriptor is not given to the results file."""
    clip = _voice_file(tmp_path / "clip.wav")
    proc = hostile.ser_edge("classify", "--model", features_model, "-o", "out.jsonl", clip.name,
                            cwd=tmp_path, stdout="closed")
    assert proc.returncode == EXIT_OK and proc.stderr == "", proc.stderr
    (record,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert record["path"] == "clip.wav" and "label" in record


@pytest.mark.parametrize("option", ["--max-segment", "--context"])
def test_timeline_lengths_are_bounded(option: str, tmp_path: Path) -> None:
    clip = _voice_file(tmp_path / "clip.wav")
    result = run("timeline", clip, option, "inf")
    assert result.exit_code == EXIT_USAGE
    assert f"Invalid value for '{option}': Input should be less than or equal to" in " ".join(
        result.stderr.split())
    assert "Traceback" not in result.stderr


def test_a_clip_too_quiet_is_one_line_without_warnings(features_model: Path,
                                                       tmp_path: Path) -> None:
    """--no-vad on a clip scaled by 1e-20: no numpy warning on the terminal, one line."""
    quiet = _write_samples(tmp_path / "quiet.wav", _voice(16000, 16000) * np.float32(1e-20))
    proc = hostile.ser_edge("classify", "--no-vad", "--model", features_model, quiet)
    assert proc.returncode == EXIT_FILE_FAILED
    (line,) = proc.stderr.splitlines()
    assert re.fullmatch(rf"ser-edge: error: {re.escape(str(quiet))}: too quiet: peak magnitude "
                        r"\S+e-21 \(-4\d\d dBFS\), below 1e-05 \(-100 dBFS\): below any "
                        r"recorder's noise floor, the features cannot be trusted", line), line
