"""The README's quickstart, run as it is written.

The section between the README's ``quickstart`` markers is read here, not copied: each line of
its ``sh`` blocks is run by bash, in order, and its ``python`` block by the venv's Python.
``ser-edge listen`` reads a stand-in for sounddevice (first on ``PYTHONPATH``) whose microphone
plays the sample clips, then presses Ctrl-C.

- The default run uses the development install (``.venv`` is this interpreter's environment)
  and leaves out the ``pip install`` lines.
- The slow run starts where a new user does: a copy of the files git tracks (what a clone
  holds), no ``.venv``; every line is run, ``pip install .`` included.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ser_edge.model import Classifier
from ser_edge.samples import SAMPLES

ROOT = Path(__file__).resolve().parents[1]

#: A stand-in for sounddevice: the "microphone" plays the samples, then Ctrl-C.
FAKE_SOUNDDEVICE = '''
"""A stand-in for sounddevice (tests/test_quickstart.py): the samples, then Ctrl-C."""
import _thread
import threading
import time

import numpy as np
import soundfile as sf

from ser_edge.samples import SAMPLES


class InputStream:
    def __init__(self, *, samplerate, channels, dtype, device, blocksize, callback):
        clips = [sf.read(path, dtype="float32")[0] for path in SAMPLES.values()]
        assert samplerate == 16000 and channels == 1, (samplerate, channels)
        self.data = np.concatenate(clips * 2)[:, None].astype(dtype)
        self.callback, self.blocksize = callback, blocksize
        self.thread = threading.Thread(target=self.play)

    def play(self):
        for i in range(0, len(self.data), self.blocksize):
            block = self.data[i:i + self.blocksize]
            self.callback(block, len(block), None, None)
        time.sleep(1.0)
        _thread.interrupt_main()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join()
'''


def quickstart() -> tuple[list[str], str]:
    """The quickstart's shell lines and its Python code, from the README."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("[start:quickstart]"):readme.index("[end:quickstart]")]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.DOTALL)
    lines = [line for kind, body in blocks if kind == "sh" for line in body.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    (python,) = [body for kind, body in blocks if kind == "python"]
    return lines, python


def _run(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    assert proc.returncode == 0, (line, proc.stdout, proc.stderr)
    return proc


def _check_output(line: str, proc: subprocess.CompletedProcess, labels: tuple[str, ...]) -> None:
    if "classify --sample" in line:
        rows = [row.split() for row in proc.stdout.splitlines()]
        assert [Path(r[0]).name for r in rows] == [p.name for p in SAMPLES.values()]
        assert all(r[1] in labels and 0 < float(r[2]) <= 1 for r in rows)
    elif line.rstrip().endswith("ser-edge listen"):
        windows = [w for w in proc.stdout.splitlines() if " - " in w]
        assert len(windows) >= 3, proc.stdout
        assert all(w.split()[3] in labels for w in windows if "no speech" not in w)


def _walk(cwd: Path, env: dict[str, str], *, install: bool) -> None:
    lines, python = quickstart()
    labels = Classifier().labels
    assert any("classify --sample" in line for line in lines)
    assert any(line.rstrip().endswith("ser-edge listen") for line in lines)
    for line in lines:
        if "pip install" in line and not install:
            continue
        _check_output(line, _run(line, cwd, env), labels)
    proc = subprocess.run([str(cwd / ".venv" / "bin" / "python"), "-c", python], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    top = ast.literal_eval(proc.stdout.strip())
    assert len(top) == 3 and all(label in labels for label, _ in top)
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)


def _env(tmp_path: Path) -> dict[str, str]:
    fake = tmp_path / "fake-microphone"
    fake.mkdir()
    (fake / "sounddevice.py").write_text(FAKE_SOUNDDEVICE)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "PYTHONPATH": str(fake)}


def test_the_quickstart_with_the_development_install(tmp_path: Path) -> None:
    """Every line but ``pip install``, with this environment as ``.venv``."""
    folder = tmp_path / "clone"
    folder.mkdir()
    (folder / ".venv").symlink_to(Path(sys.prefix))
    if not (folder / ".venv" / "bin" / "ser-edge").exists():
        pytest.skip("the ser-edge console script is not installed beside this Python")
    _walk(folder, _env(tmp_path), install=False)


@pytest.mark.slow
def test_the_quickstart_from_a_clean_clone(tmp_path: Path) -> None:
    """Every line, from the files a clone holds: a fresh venv, ``pip install .`` and the rest."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the files a clone holds are unknown")
    tracked = subprocess.run([git, "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode().split("\0")
    clone = tmp_path / "clone"
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    env = _env(tmp_path)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if not p.startswith(sys.prefix))  # not this venv's tools
    _walk(clone, env, install=True)
    assert (clone / ".venv" / "bin" / "ser-edge").is_file()
