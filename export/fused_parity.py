"""The fused model against the numpy runtime on real clips: RAVDESS and EmoDB, 0.5 s to 60 s.

The harness shared by ``tests/test_fuse_corpora.py`` (which asserts) and ``benchmarks/fused.py``
(which reports): :func:`parity_items` cuts the corpora into the clips as they are, their middle
0.5 s, and 60 s recordings made of one speaker's clips end to end; :func:`measure_parity` runs
each through :meth:`ser_edge.Classifier.predict` twice, with the numpy features and with the
fused model, and the feature vectors through the feature graph alone, with the DFT in float32
and in float64. :func:`fit_model` makes a model of a configuration no bundled model has (the
robust one, :data:`ROBUST`), so that its fused graph can be compared the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ser_edge.features import FeatureConfig, feature_vector

from .fuse import feature_differences, feature_model
from .paths import corpus_dir

__all__ = ["Item", "ROBUST", "parity_items", "measure_parity", "fit_model"]

#: Length of the short cuts and of the long recordings, in seconds.
SHORT_S, LONG_S = 0.5, 60.0

#: Every level option on: level normalisation, pooling over the active frames, ``top_db`` 60,
#: MFCC deltas, and per-block statistics (the mel block's spread only).
ROBUST = FeatureConfig(
    features=("mfcc", "chroma", "mel", "mfcc_delta"),
    stats={"mfcc": ("mean", "std"), "chroma": ("mean", "std"), "mel": ("std",),
           "mfcc_delta": ("std",)},
    top_db=60.0, level_db=-20.0, frames="active",
)


@dataclass
class Item:
    """One signal to compare on: a name, the samples ``(n,)`` or ``(channels, n)``, the rate."""

    name: str
    y: np.ndarray
    sr: int
    kind: str  # "clip", "0.5 s", "60 s"


def _read(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    y, sr = sf.read(path, dtype="float32", always_2d=True)
    return (y[:, 0] if y.shape[1] == 1 else y.T.copy()), sr


def _corpus_files(corpus: str) -> list[tuple[str, Path]]:
    """``(speaker, path)`` of every clip of ``corpus``, sorted; empty if it is absent."""
    root = corpus_dir(corpus)
    if root is None:
        return []
    if corpus == "ravdess":
        return [(p.parent.name, p) for p in sorted(root.glob("Actor_*/*.flac"))]
    return [(p.name[:2], p) for p in sorted(root.glob("*.flac"))]


def parity_items(corpora: tuple[str, ...] = ("ravdess", "emodb"), *, step: int = 1,
                 long_every: int = 1) -> Iterator[Item]:
    """The signals of the parity check, read from the corpora under ``SER_EDGE_DATA``.

    Parameters
    ----------
    corpora : tuple of str
        ``"ravdess"`` (48 kHz, 5 stereo clips) and/or ``"emodb"`` (16 kHz).
    step : int >= 1
        Take every ``step``-th clip (1: all of them).
    long_every : int >= 1
        Make a 60 s recording of every ``long_every``-th speaker's clips (mono, end to end, cut
        at 60 s; 0 for none).

    Yields
    ------
    Item
        Each chosen clip whole (its own rate and channels), its middle 0.5 s, then the 60 s
        recordings.
    """
    for corpus in corpora:
        files = _corpus_files(corpus)
        for _, path in files[::step]:
            y, sr = _read(path)
            yield Item(f"{corpus}/{path.name}", y, sr, "clip")
            mid, half = y.shape[-1] // 2, int(SHORT_S * sr) // 2
            yield Item(f"{corpus}/{path.name}[middle 0.5 s]", y[..., mid - half: mid + half],
                       sr, f"{SHORT_S:g} s")
        if not long_every:
            continue
        speakers = sorted({s for s, _ in files})
        for speaker in speakers[::long_every]:
            parts, n, sr = [], 0, None
            for s, path in files:
                if s != speaker:
                    continue
                y, sr = _read(path)
                parts.append(y if y.ndim == 1 else y.mean(axis=0))
                n += len(parts[-1])
                if n >= LONG_S * sr:
                    break
            if sr is not None and n >= LONG_S * sr:
                yield Item(f"{corpus}/{speaker}[{LONG_S:g} s]",
                           np.concatenate(parts)[: int(LONG_S * sr)], sr, f"{LONG_S:g} s")


@dataclass
class Parity:
    """What :func:`measure_parity` found."""

    names: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    same_label: list[bool] = field(default_factory=list)
    prob_diff: list[float] = field(default_factory=list)
    x_numpy: list[np.ndarray] = field(default_factory=list)
    x_graph: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Signals compared."""
        return len(self.names)

    def summary(self, config: Any) -> dict[str, Any]:
        """Counts, label agreement, the worst probability difference and per-feature tables."""
        worst = int(np.argmax(self.prob_diff))
        kinds = {k: self.kinds.count(k) for k in dict.fromkeys(self.kinds)}
        X = np.stack(self.x_numpy)
        return {
            "n_signals": self.n,
            "by_kind": kinds,
            "same_label": int(np.sum(self.same_label)),
            "same_label_share": float(np.mean(self.same_label)),
            "different_label": [n for n, s in zip(self.names, self.same_label, strict=True)
                                if not s],
            "max_probability_difference": float(self.prob_diff[worst]),
            "worst_signal": self.names[worst],
            "median_probability_difference": float(np.median(self.prob_diff)),
            "features": {dtype: feature_differences(np.stack(v), X, config)
                         for dtype, v in self.x_graph.items()},
        }


def measure_parity(numpy_clf: Any, fused_clf: Any, items: Iterator[Item], *,
                   dft_dtypes: tuple[str, ...] = ("float32", "float64")) -> Parity:
    """Compare the fused model with the numpy runtime on ``items``.

    Parameters
    ----------
    numpy_clf, fused_clf : ser_edge.Classifier
        The source model (features in) and its fused model (waveform in).
    items : iterable of Item
    dft_dtypes : tuple of str
        The feature graph (``feature_model``, fft2 DFT) is run in each of these arithmetics on the
        same resampled samples as the numpy features, for the per-feature differences.

    Returns
    -------
    Parity
    """
    import onnxruntime as ort

    from ser_edge import audio

    config = numpy_clf.feature_config
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    graphs = {dt: ort.InferenceSession(
        feature_model(config, dft_dtype=np.dtype(dt).type).SerializeToString(), options,
        providers=["CPUExecutionProvider"]) for dt in dft_dtypes}
    out = Parity(x_graph={dt: [] for dt in dft_dtypes})
    for item in items:
        p, q = numpy_clf.predict(item.y, item.sr), fused_clf.predict(item.y, item.sr)
        out.names.append(item.name)
        out.kinds.append(item.kind)
        out.same_label.append(p.label == q.label)
        out.prob_diff.append(max(abs(p.probabilities[k] - q.probabilities[k])
                                 for k in p.probabilities))
        mono = item.y if item.y.ndim == 1 else item.y.mean(axis=0)
        y = audio.resample(mono.astype(np.float32), orig_sr=item.sr, target_sr=config.sr)
        out.x_numpy.append(feature_vector(y, sr=config.sr, config=config))
        for dt, s in graphs.items():
            out.x_graph[dt].append(s.run(None, {"waveform": y[np.newaxis]})[0][0])
    return out


def fit_model(config: FeatureConfig, path: str | Path, *, step: int = 20, offset: int = 5,
              seed: int = 0) -> Path:
    """A quick model of ``config``'s features on RAVDESS, to compare a fused graph against.

    ``StandardScaler`` + a 32-unit MLP fitted on the numpy features
    (:func:`ser_edge.features.feature_vector`) of every ``step``-th RAVDESS clip from
    ``offset`` (72 clips by default, none of :func:`parity_items`' ``step=60`` sample), and
    exported by :func:`export.onnx_export.export_onnx`. Its scaler sees real feature values, so
    its probabilities respond to them as a trained model's do; it is no emotion model worth
    using.

    Parameters
    ----------
    config : FeatureConfig
    path : str or Path
        Where the ONNX model is written.
    step, offset : int
        Which clips of the sorted RAVDESS list.
    seed : int
        The MLP's ``random_state``.

    Returns
    -------
    path : Path

    Raises
    ------
    ParameterError
        If RAVDESS is not under ``SER_EDGE_DATA``.
    """
    from ser_edge import audio
    from ser_edge.errors import ParameterError

    from .corpora import parse_ravdess
    from .onnx_export import export_onnx
    from .train import fit_pipeline

    root = corpus_dir("ravdess")
    if root is None:
        raise ParameterError("RAVDESS not found: set SER_EDGE_DATA to the corpora's folder")
    clips = parse_ravdess(root, warn=False).clips[offset::step]
    X = np.stack([feature_vector(audio.load(c.path, sr=config.sr)[0], sr=config.sr,
                                 config=config) for c in clips])
    labels = np.array([c.emotion for c in clips])
    pipeline = fit_pipeline(X, labels, params={"hidden_layer_sizes": (32,), "batch_size": 16},
                            seed=seed)
    path = Path(path)
    export_onnx(pipeline, feature_config=config, labels=[str(c) for c in pipeline.classes_],
                training={"corpora": {"ravdess": len(clips)}, "seed": seed,
                          "purpose": "fused-graph parity"},
                metrics={"speaker_independent": {}}, path=path, check_rows=X)
    return path
