"""ser_edge.results: records name their model, and a results file is resumed only by that model,
keyed by names no two files share; ``-o`` is a regular file written line by line (issue 23)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from ser_edge.cli import app
from ser_edge.errors import ParameterError
from ser_edge.results import ResultsFile, model_identity
from tests import hostile

runner = CliRunner()


def _voice(path: Path, seconds: float = 1.0, sr: int = 16000) -> Path:
    """Voiced syllables: speech to voice activity detection."""
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(150 + 30 * np.sin(2 * np.pi * 1.3 * t)) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 11))
    envelope = np.sqrt(np.clip(np.sin(2 * np.pi * 4 * t), 0, None))
    sf.write(path, (0.2 * voice * envelope).astype(np.float32), sr, format="WAV")
    return path


@pytest.fixture(scope="module")
def models(build_model, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two different models with the same labels in the same order."""
    folder = tmp_path_factory.mktemp("results-models")
    return build_model(folder / "one.onnx", seed=1), build_model(folder / "two.onnx", seed=2)


def test_model_identity_names_the_file_and_its_digest() -> None:
    assert model_identity("mlp", "0123456789abcdef" * 4) == "mlp@0123456789abcdef"
    assert model_identity("a\nb.onnx", "f" * 64) == "a\\nb.onnx@ffffffffffffffff"


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_resume_refuses_a_file_of_another_model(models: tuple[Path, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                suffix: str) -> None:
    """The issue's case: ``--model A -o r``, then ``--model B -o r --resume`` with the same labels
    in the same order; exit status 2 and the file untouched, whatever its format."""
    one, two = models
    monkeypatch.chdir(tmp_path)
    _voice(tmp_path / "a.wav")
    _voice(tmp_path / "b.wav", seconds=1.5)
    out = f"r{suffix}"
    first = runner.invoke(app, ["classify", "a.wav", "-o", out, "--model", str(one)])
    assert first.exit_code == 0, first.output
    before = Path(out).read_bytes()
    mixed = runner.invoke(app, ["classify", "a.wav", "b.wav", "-o", out, "--resume",
                                "--model", str(two)])
    assert mixed.exit_code == 2, mixed.output
    assert Path(out).read_bytes() == before
    line = 2 if suffix == ".csv" else 1
    assert mixed.stderr.startswith(f"ser-edge: error: {out}: line {line} holds results of "
                                   f"another model (one.onnx@")
    assert len(mixed.stderr.splitlines()) == 1
    # The same model under another name is the same model: its digest decides.
    (tmp_path / "renamed.onnx").write_bytes(one.read_bytes())
    same = runner.invoke(app, ["classify", "a.wav", "b.wav", "-o", out, "--resume",
                               "--model", "renamed.onnx"])
    assert same.exit_code == 0, same.output
    assert "1 of 2 files there already" in same.stderr


def test_a_file_that_names_no_model_is_not_resumed(tmp_path: Path) -> None:
    """Lines an older ser-edge wrote say nothing of their model: not continued blindly."""
    out = tmp_path / "old.jsonl"
    out.write_text(json.dumps({"path": "a.wav", "label": "calm"}) + "\n")
    with pytest.raises(ParameterError, match=r"line 1 holds results that name no model"):
        ResultsFile(out, labels=("calm",), resume=True, model="new@0123456789abcdef")
    with ResultsFile(out, labels=("calm",), resume=True) as sink:  # no model given: no check
        assert sink.done == {"a.wav": None}


def test_names_that_printed_alike_are_two_files(models: tuple[Path, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A file named 'a', newline, 'b.wav' and one named 'a\\nb.wav' (a backslash and an n) are
    two records; after the first is written, --resume still classifies the second."""
    one, _ = models
    monkeypatch.chdir(tmp_path)
    newline, backslash = "a\nb.wav", "a\\nb.wav"
    _voice(tmp_path / newline)
    _voice(tmp_path / backslash, seconds=1.5)
    first = runner.invoke(app, ["classify", newline, "-o", "r.jsonl", "--model", str(one)])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["classify", newline, backslash, "-o", "r.jsonl", "--resume",
                                "--model", str(one)])
    assert again.exit_code == 0, again.output
    assert "1 of 2 files there already" in again.stderr
    paths = [json.loads(line)["path"] for line in Path("r.jsonl").read_text().splitlines()]
    assert paths == ["a\\nb.wav", "a\\\\nb.wav"]


def test_a_file_called_stdin_is_not_standard_input(models: tuple[Path, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    one, _ = models
    monkeypatch.chdir(tmp_path)
    _voice(tmp_path / "<stdin>")
    result = runner.invoke(app, ["classify", "--json", "<stdin>", "--model", str(one)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["path"] == f".{os.sep}<stdin>"


def test_results_file_must_be_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(ParameterError, match="must be a regular file, not a FIFO or a device"):
        ResultsFile(fifo, labels=("a",), resume=True)


def test_a_full_disk_is_one_line(models: tuple[Path, Path], tmp_path: Path) -> None:
    """A write that fails (here past RLIMIT_FSIZE, as on a full disk) ends the run with one line
    and status 2; closing the file does not fail again, and what was written can be resumed."""
    one, _ = models
    for name in ("a", "b", "c", "d"):
        _voice(tmp_path / f"{name}.wav")
    args = ["--model", one, "-o", "r.jsonl", "a.wav", "b.wav", "c.wav", "d.wav"]
    proc = hostile.ser_edge("classify", *args, cwd=tmp_path, file_size=1500)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "ser-edge: error: r.jsonl: cannot write the results file (File too large)"]
    resumed = hostile.ser_edge("classify", *args, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["path"] for r in records] == ["a.wav", "b.wav", "c.wav", "d.wav"]


@pytest.mark.parametrize("command", ["classify", "timeline", "features"])
def test_a_name_is_escaped_once(models: tuple[Path, Path], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    """Messages and records show a backslash doubled, once: a name is never escaped twice."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x\\y.wav").write_text("not audio")
    result = runner.invoke(app, [command, "x\\y.wav", "--model", str(models[0])])
    assert result.exit_code == 1
    assert result.stderr.startswith("ser-edge: error: x\\\\y.wav: cannot decode as audio ("), (
        result.stderr)


def test_failures_are_resumed_by_their_name(models: tuple[Path, Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing file and a bad one, named with a backslash: their records' names are the ones
    --resume looks for, so a second run finds both there."""
    monkeypatch.chdir(tmp_path)
    _voice(tmp_path / "ok.wav")
    (tmp_path / "bad\\1.wav").write_text("not audio")
    args = ["classify", "ok.wav", "bad\\1.wav", "gone\\2.wav", "-o", "r.jsonl",
            "--model", str(models[0])]
    first = runner.invoke(app, args)
    assert first.exit_code == 1
    paths = [json.loads(line)["path"] for line in Path("r.jsonl").read_text().splitlines()]
    assert paths == ["ok.wav", "bad\\\\1.wav", "gone\\\\2.wav"]
    again = runner.invoke(app, [*args, "--resume"])
    assert "3 of 3 files there already (2 failed)" in again.stderr
    assert Path("r.jsonl").read_text().count("\n") == 3
