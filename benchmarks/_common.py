"""What every benchmark shares: machine facts, result files, tables, child processes, test clips.

Nothing here measures; the scripts do, with the measuring code of ``ser_edge/bench.py`` (which
``ser-edge bench`` runs on a user's machine): child processes (:func:`run_child`), tables and the
synthetic clip come from there. Imported as ``benchmarks._common`` (run the scripts with
``python -m benchmarks.<name>`` from the project root).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import THREAD_ENV
from ser_edge import bench as B

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: The seeds' way of classifying one clip, run as a script in a fresh process.
LIBROSA_WAY = ROOT / "benchmarks" / "librosa_way.py"
#: The venv's own console script and interpreter.
VENV_BIN = Path(sys.executable).parent
SER_EDGE_EXE = VENV_BIN / "ser-edge"

PACKAGES = (
    "ser-edge", "numpy", "soundfile", "soxr", "onnxruntime", "typer",
    "librosa", "scikit-learn", "numba", "scipy", "audioread", "psutil",
)


# -- machine and versions --------------------------------------------------------------------------


def versions() -> dict[str, str | None]:
    """Installed versions of the packages both sides use (None when absent), without importing."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


_cpu_model = B.cpu_model
_mem_total_mb = B.mem_total_mb


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (the machine is shared: they qualify every figure)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine() -> dict[str, Any]:
    """Facts about this machine and run, for the JSON result."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "mem_total_mb": _mem_total_mb(),
        "thread_env": {k: os.environ.get(k) for k in THREAD_ENV},
    }


def git_state() -> dict[str, Any]:
    """The project's commit and whether ``ser_edge/*.py`` differs from it (what was measured)."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    return {"commit": git("rev-parse", "--short", "HEAD") or None,
            "ser_edge_modified": bool(git("status", "--porcelain", "--", "ser_edge/*.py"))}


def start(name: str, args: Any) -> dict[str, Any]:
    """Begin a result: name, UTC date, command line, options, machine, versions, load average."""
    return {
        "benchmark": name,
        "git": git_state(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", f"benchmarks.{name}", *sys.argv[1:]]),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine(),
        "versions": versions(),
        "loadavg_start": loadavg(),
    }


def finish(result: dict[str, Any], table: str) -> Path:
    """Close a result (load average at the end, the table), write it, print the table."""
    result["loadavg_end"] = loadavg()
    result["table_md"] = table
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{result['benchmark']}.json"
    text = json.dumps(result, indent=1, default=str)
    # lists of numbers on one line each: the per-run figures stay readable and the file small
    text = re.sub(r"\[\s+([-0-9.e,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]",
                  text)
    path.write_text(text + "\n")
    print(table)
    print(f"\nload average {result['loadavg_start']} -> {result['loadavg_end']}; "
          f"threads {result['machine']['thread_env']}; wrote {path.relative_to(ROOT)}")
    return path


# -- figures and tables --------------------------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and the quartiles of repeated measurements."""
    v = sorted(values)
    q = statistics.quantiles(v, n=4) if len(v) > 1 else [v[0], v[0], v[0]]
    return {"median": statistics.median(v), "min": v[0], "max": v[-1], "q1": q[0], "q3": q[2],
            "n": len(v)}


#: A Markdown table: the first column left-aligned, the others (figures) right-aligned.
table = B.markdown_table
#: Seconds as milliseconds with sensible precision.
ms = B.format_ms


def ratio(a: float, b: float) -> str:
    """``a / b`` as ``"4.2x"``."""
    return f"{a / b:.1f}x" if b > 0 else "n/a"


# -- child processes -----------------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment (with the pinned thread pools) plus ``extra``."""
    env = dict(os.environ)
    env.update(extra)
    return env


#: Run a command to completion: wall time, its own peak RSS (``wait4``), exit code, output.
run_child = B.run_child


# -- test clips ----------------------------------------------------------------------------------


def ravdess_files(limit: int | None = None) -> list[Path]:
    """The RAVDESS clips, sorted (empty if the corpus is absent)."""
    from export.paths import corpus_dir

    root = corpus_dir("ravdess")
    files = sorted(root.glob("Actor_*/*.flac")) if root is not None else []
    return files[:limit] if limit else files


_speech_like = B.speech_like
_SOURCE: dict[str, Any] = {}


def _source_48k(seconds: float) -> Any:
    """At least ``seconds`` of real speech at 48 kHz: RAVDESS clips end to end (mono), tiled."""
    import numpy as np
    import soundfile as sf

    if "y" not in _SOURCE:
        files = ravdess_files()
        if files:
            # 60 s of distinct clips from all actors, then tiled for longer clips.
            picked, total, parts = files[::24], 0, []
            for f in picked:
                y, sr = sf.read(f, dtype="float32", always_2d=True)
                parts.append(y.mean(axis=1))
                total += len(y) / sr
                if total >= 60:
                    break
            _SOURCE["y"], _SOURCE["kind"] = np.concatenate(parts), "RAVDESS clips end to end"
        else:
            _SOURCE["y"], _SOURCE["kind"] = _speech_like(60, 48000), "synthetic speech-like"
    y = _SOURCE["y"]
    n = int(np.ceil(seconds * 48000))
    return np.tile(y, -(-n // len(y)))[:n]


def source_kind() -> str:
    """What the clips are made of (for the JSON)."""
    _source_48k(1)
    return _SOURCE["kind"]


def make_clip(folder: Path, seconds: float, sr: int) -> Path:
    """Write a mono 16-bit WAV of ``seconds`` of speech at ``sr`` Hz in ``folder`` (cached)."""
    import soundfile as sf
    import soxr

    path = Path(folder) / f"clip_{seconds:g}s_{sr}Hz.wav"
    if not path.exists():
        y = _source_48k(seconds)
        if sr != 48000:
            y = soxr.resample(y, 48000, sr, quality="VHQ")
        sf.write(path, y[: int(round(seconds * sr))], sr, subtype="PCM_16")
    return path


# -- models --------------------------------------------------------------------------------------


def make_models(folder: Path) -> dict[str, Any]:
    """The two sides' models: an ONNX model for ser-edge and a pickled scikit-learn pipeline.

    ser-edge uses the bundled model when it exists. The pickle is ``Pipeline(StandardScaler,
    MLPClassifier)`` with the bundled model's hidden layer sizes and input width, fitted on
    seeded random rows: its predictions mean nothing, its cost is that of the real one. Without
    a bundled model, the same pipeline exported with ``export.onnx_export.export_onnx`` stands in.
    The feature configuration (the bundled model's, else ``FeatureConfig()``) is written beside
    the pickle as ``<name>.json``, so that ``librosa_way.py`` computes the same features.
    """
    import pickle

    from export.train import DEFAULT_PARAMS
    from ser_edge.features import FeatureConfig
    from ser_edge.model import BUNDLED_MODEL

    folder = Path(folder)
    labels = ["angry", "calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised"]
    hidden = tuple(DEFAULT_PARAMS["mlp"]["hidden_layer_sizes"])
    config = FeatureConfig()
    bundled = BUNDLED_MODEL.is_file()
    if bundled:
        from ser_edge import Classifier

        clf = Classifier(BUNDLED_MODEL)
        config, labels = clf.feature_config, list(clf.labels)
        params = clf.metadata.get("training", {}).get("estimator_params", {})
        hidden = tuple(params.get("hidden_layer_sizes", hidden))
    pipe = B.sklearn_stand_in(config.n_features, labels, hidden, seed=0)  # 40 rows per label
    pkl = folder / "librosa-way-mlp.pkl"
    with open(pkl, "wb") as f:
        pickle.dump(pipe, f)
    pkl.with_suffix(".json").write_text(config.to_json())
    if bundled:
        onnx_path, kind = BUNDLED_MODEL, f"bundled {BUNDLED_MODEL.name}"
    else:
        from export.onnx_export import export_onnx

        onnx_path, kind = folder / "stand-in-mlp.onnx", f"stand-in MLP {hidden}, random rows"
        export_onnx(pipe, feature_config=config, labels=labels,
                    training={"corpora": {"random": 40 * len(labels)}, "seed": 0},
                    metrics={"speaker_independent": {}}, path=onnx_path)
    return {"onnx": onnx_path, "pickle": pkl, "onnx_kind": kind,
            "pickle_kind": f"MLPClassifier{hidden} on seeded random rows",
            "hidden_layer_sizes": list(hidden), "n_features": config.n_features,
            "config": config, "feature_config": json.loads(config.to_json())}
