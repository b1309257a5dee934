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
