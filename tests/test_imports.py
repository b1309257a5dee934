"""The runtime's import path stays light: no librosa, numba, scikit-learn or scipy.signal."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("librosa", "numba", "llvmlite", "sklearn", "scipy.signal", "scipy", "resampy")


@pytest.mark.parametrize(
    "statement",
    [
        "import ser_edge.features",
        "import ser_edge.audio",
        "import ser_edge",
        "from ser_edge import Classifier",
        "import ser_edge.cli",
        "import ser_edge.vad",
        "import ser_edge.stream",
        "import ser_edge.timeline",
        "from ser_edge import StreamingClassifier",
        "import ser_edge.mqtt",
        "import ser_edge.serve",
    ],
)
def test_runtime_imports_nothing_heavy(statement):
    code = (
        f"{statement}\n"
        "import json, sys\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} "
        f"or m in {HEAVY!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_features_do_not_load_onnxruntime():
    code = "import ser_edge.features, sys; print('onnxruntime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_classifying_one_file_loads_no_progress_bar():
    """The progress bar (typer's) is imported only when it is drawn: not on the cold path."""
    from ser_edge.samples import SAMPLE

    code = ("import atexit, sys\n"
            "atexit.register(lambda: print(sorted(m for m in sys.modules if '_termui_impl' in m), "
            "file=sys.stderr))\n"
            f"sys.argv = ['ser-edge', 'classify', {str(SAMPLE)!r}]\n"
            "from ser_edge.cli import main\n"
            "main()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines()[-1] == "[]"


#: The network extras' libraries: imported only by the option or command that uses them.
NETWORK = ("paho", "starlette", "uvicorn", "websockets", "anyio", "h11")


@pytest.mark.parametrize("statement", ["import ser_edge.cli", "import ser_edge.mqtt",
                                       "import ser_edge.serve"])
def test_network_libraries_are_imported_only_when_used(statement):
    code = (f"{statement}\nimport sys\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {NETWORK!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
