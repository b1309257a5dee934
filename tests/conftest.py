"""Shared fixtures: seeded synthetic signals and the real corpora under ``SER_EDGE_DATA``."""

from __future__ import annotations

# As the ser-edge command does before numpy loads: one BLAS thread, so that a classification run
# in this process (CliRunner) computes what the command and `serve`'s workers compute, to the
# last bit (two BLAS threads differ in the 9th digit of a probability).
from ser_edge._threads import default_to_one_thread

default_to_one_thread()

import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from export.data import missing_corpus  # noqa: E402
from export.paths import corpus_dir  # noqa: E402
from ser_edge.features import FeatureConfig  # noqa: E402

#: RAVDESS's eight emotions.
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


def _corpus(name: str) -> Path:
    path = corpus_dir(name)
    if path is None:
        pytest.skip(missing_corpus(name))  # names `python -m export data get NAME`
    return path


@pytest.fixture(scope="session")
def ravdess_dir() -> Path:
    """The RAVDESS folder (``Actor_01`` .. ``Actor_24``), or skip."""
    return _corpus("ravdess")


@pytest.fixture(scope="session")
def emodb_dir() -> Path:
    """The EmoDB clips folder, or skip."""
    return _corpus("emodb")


SIGNALS = ("noise", "sine", "chirp", "vibrato", "silence", "short")


def make_signal(kind: str, sr: int, *, duration: float = 1.0, seed: int = 0) -> np.ndarray:
    """Return a float32 test signal: a deterministic function of (kind, sr, duration, seed).

    ``short`` is 300 samples, shorter than every ``n_fft`` the tests use.
    """
    n = 300 if kind == "short" else int(round(duration * sr))
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    if kind == "noise":
        y = 0.1 * rng.standard_normal(n)
    elif kind == "sine":
        y = 0.5 * np.sin(2 * np.pi * 440.0 * t) + 0.2 * np.sin(2 * np.pi * 1234.5 * t)
    elif kind == "chirp":
        f0, f1 = 100.0, min(8000.0, 0.45 * sr)
        k = (f1 - f0) / max(t[-1], 1e-9)
        y = 0.5 * np.sin(2 * np.pi * (f0 * t + 0.5 * k * t**2))
    elif kind in ("vibrato", "short"):
        # Speech-like: a 160 Hz voice with 5 Hz vibrato and ten harmonics falling off, plus breath.
        phase = 2 * np.pi * (160.0 * t - (3.0 / 5.0) * np.cos(2 * np.pi * 5.0 * t))
        y = sum(np.sin(h * phase) / h for h in range(1, 11)) * 0.2
        y = y + 0.005 * rng.standard_normal(n)
    elif kind == "silence":
        y = np.zeros(n)
    else:
        raise ValueError(kind)
    return np.asarray(y, dtype=np.float32)


@pytest.fixture(scope="session")
def signal():
    """The factory :func:`make_signal`: ``signal(kind, sr, duration=1.0, seed=0)``."""
    return make_signal


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261120)


def _build_model(
    path: Path, *, config: FeatureConfig | None = None, seed: int = 0
) -> Path:
    """Export a tiny Pipeline(StandardScaler, MLPClassifier) fitted on random rows to ``path``."""
    pytest.importorskip("sklearn")
    pytest.importorskip("skl2onnx")
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from export.onnx_export import export_onnx

    config = FeatureConfig() if config is None else config
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(16 * len(EMOTIONS), config.n_features)).astype(np.float32)
    y = np.array(EMOTIONS)[np.arange(len(X)) % len(EMOTIONS)]
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=50, random_state=seed)
    pipeline = Pipeline([("scaler", StandardScaler()), ("clf", clf)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: 50 iterations on noise
        pipeline.fit(X, y)
    export_onnx(
        pipeline,
        feature_config=config,
        labels=[str(c) for c in clf.classes_],
        training={"corpora": {"random": len(X)}, "seed": seed},
        metrics={"speaker_independent": {}},
        path=path,
    )
    return path


@pytest.fixture(scope="session")
def build_model():
    """The factory ``build_model(path, *, config=None, seed=0) -> path``: a tiny ONNX model
    (StandardScaler + MLP fitted on random rows, the eight RAVDESS labels), exported by
    ``export.onnx_export``; skips without scikit-learn or skl2onnx."""
    return _build_model


@pytest.fixture(scope="session")
def frame_net(ravdess_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny frame-level network and its fused model: ``(frames.onnx, frames-waveform.onnx)``.

    :func:`export.fused_parity.fit_net` on :data:`~export.fused_parity.NET_CONFIG` (level
    normalisation, active frames, per-utterance normalisation, MFCC deltas): a 4k-parameter CNN
    that needs 16 frames, trained in a few seconds on 96 RAVDESS clips; then ``export.fuse``.
    Skips without PyTorch, onnx or RAVDESS.
    """
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from export.fuse import fuse_file
    from export.fused_parity import NET_CONFIG, fit_net

    folder = tmp_path_factory.mktemp("frame_net")
    source = fit_net(NET_CONFIG, folder / "frames.onnx")
    fused = folder / "frames-waveform.onnx"
    fuse_file(source, fused)
    return source, fused
