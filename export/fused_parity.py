"""The fused model against the numpy runtime on real clips: RAVDESS and EmoDB, 0.5 s to 60 s.

The harness shared by ``tests/test_fuse_corpora.py`` (which asserts) and ``benchmarks/fused.py``
(which reports): :func:`parity_items` cuts the corpora into the clips as they are, their middle
0.5 s, and 60 s recordings made of one speaker's clips end to end; :func:`measure_parity` runs
each through :meth:`ser_edge.Classifier.predict` twice, with the numpy features and with the
fused model, and the feature vectors (or a frame network's frame matrices) through the feature
graph alone, with the DFT in float32 and in float64. :func:`fit_model` makes a model of a
configuration no bundled model has (the robust one, :data:`ROBUST`), and :func:`fit_net` a small
frame-level network (:data:`NET_CONFIG`), so that their fused graphs can be compared the same way.
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

__all__ = ["Item", "ROBUST", "NET_CONFIG", "parity_items", "measure_parity", "fit_model",
           "fit_net"]

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

#: The frames of a frame-level network with every stage of the frame graph: level
#: normalisation, the active frames (``Compress``), per-utterance mean and variance
#: normalisation, and MFCC deltas beside a 32-band log-mel spectrogram (45 rows per frame).
NET_CONFIG = FeatureConfig(features=("mel", "mfcc_delta"), n_mels=32, n_mfcc=13, level_db=-20.0,
                           frames="active", norm="meanvar", stats=("mean",))


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
    """What :func:`measure_parity` found.

    For a pooled-vector model, ``x_numpy`` and ``x_graph`` hold the feature vectors; for a frame
    network (``frames``), ``frame_stats`` holds, per DFT dtype and per signal, each block's
    ``(max abs difference, sum of abs differences, values, max |numpy value|)`` over the frame
    matrix (the matrices themselves are not kept: a 60 s one has thousands of frames), and
    ``frame_count_differs`` the signals whose graph kept another number of frames than numpy.
    ``refused`` names the signals both classifiers refused with the same message (a frame
    network's clip with too few active frames).
    """

    names: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    same_label: list[bool] = field(default_factory=list)
    prob_diff: list[float] = field(default_factory=list)
    x_numpy: list[np.ndarray] = field(default_factory=list)
    x_graph: dict[str, list[np.ndarray]] = field(default_factory=dict)
    frames: bool = False
    frame_stats: dict[str, list[np.ndarray]] = field(default_factory=dict)
    frame_count_differs: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        """Signals compared."""
        return len(self.names)

    def summary(self, config: Any) -> dict[str, Any]:
        """Counts, label agreement, the worst probability difference and per-feature tables."""
        worst = int(np.argmax(self.prob_diff))
        kinds = {k: self.kinds.count(k) for k in dict.fromkeys(self.kinds)}
        if self.frames:
            features = {dtype: self._frame_rows(v, config) for dtype, v in
                        self.frame_stats.items()}
        else:
            X = np.stack(self.x_numpy)
            features = {dtype: feature_differences(np.stack(v), X, config)
                        for dtype, v in self.x_graph.items()}
        return {
            "n_signals": self.n,
            "by_kind": kinds,
            "same_label": int(np.sum(self.same_label)),
            "same_label_share": float(np.mean(self.same_label)),
            "different_label": [n for n, s in zip(self.names, self.same_label, strict=True)
                                if not s],
            "refused_by_both": len(self.refused),
            "frame_count_differs": list(self.frame_count_differs),
            "max_probability_difference": float(self.prob_diff[worst]),
            "worst_signal": self.names[worst],
            "median_probability_difference": float(np.median(self.prob_diff)),
            "features": features,
        }

    def _frame_rows(self, stats: list[np.ndarray], config: Any) -> list[dict[str, Any]]:
        """Per block of the frame matrix, the rows :func:`export.fuse.feature_differences` gives.

        ``max_abs``, ``mean_abs``, ``scale``, ``max_rel``, and ``worst``: the signal where the
        largest difference is.
        """
        S = np.stack(stats)  # (n_signals, n_blocks, 4)
        rows = []
        for b, block in enumerate(config.block_sizes):
            worst = int(np.argmax(S[:, b, 0]))
            max_abs, scale = float(S[:, b, 0].max()), float(S[:, b, 3].max())
            rows.append({
                "feature": f"{block} frames",
                "max_abs": max_abs,
                "mean_abs": float(S[:, b, 1].sum() / max(S[:, b, 2].sum(), 1)),
                "scale": scale,
                "max_rel": max_abs / scale if scale > 0 else 0.0,
                "worst": self.names[worst],
            })
        return rows


def _block_stats(ours: np.ndarray, ref: np.ndarray, config: Any) -> np.ndarray:
    """``(n_blocks, 4)``: each block's max and sum of ``|ours - ref|``, its values, max |ref|."""
    out = []
    start = 0
    for rows in config.block_sizes.values():
        d = np.abs(ours[start:start + rows].astype(np.float64) - ref[start:start + rows])
        out.append([d.max(initial=0.0), d.sum(), d.size,
                    np.abs(ref[start:start + rows]).max(initial=0.0)])
        start += rows
    return np.array(out)


def _predict(clf: Any, item: Item) -> Any:
    """``clf.predict`` of the item, or the message of the ``AudioError`` it raises."""
    from ser_edge.errors import AudioError

    try:
        return clf.predict(item.y, item.sr)
    except AudioError as exc:
        return str(exc)


def measure_parity(numpy_clf: Any, fused_clf: Any, items: Iterator[Item], *,
                   dft_dtypes: tuple[str, ...] = ("float32", "float64")) -> Parity:
    """Compare the fused model with the numpy runtime on ``items``.

    Parameters
    ----------
    numpy_clf, fused_clf : ser_edge.Classifier
        The source model (the feature vector or, for a frame network, the frame matrix in) and
        its fused model (waveform in).
    items : iterable of Item
    dft_dtypes : tuple of str
        The feature graph (``feature_model``, fft2 DFT) is run in each of these arithmetics on the
        same resampled samples as the numpy features (or frames), for the per-feature
        differences.

    Returns
    -------
    Parity
        A signal that one classifier refuses (``AudioError``: too few active frames for a frame
        network) counts as the same label only if the other refuses it with the same message;
        otherwise its probability difference is infinite.
    """
    import onnxruntime as ort

    from ser_edge import audio
    from ser_edge.features import frame_matrix

    config = numpy_clf.feature_config
    frames = numpy_clf.input_kind == "frames"
    output = "frames" if frames else "vector"
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    graphs = {dt: ort.InferenceSession(
        feature_model(config, dft_dtype=np.dtype(dt).type, output=output).SerializeToString(),
        options, providers=["CPUExecutionProvider"]) for dt in dft_dtypes}
    out = Parity(x_graph={dt: [] for dt in dft_dtypes}, frames=frames,
                 frame_stats={dt: [] for dt in dft_dtypes})
    for item in items:
        p, q = _predict(numpy_clf, item), _predict(fused_clf, item)
        out.names.append(item.name)
        out.kinds.append(item.kind)
        if isinstance(p, str) or isinstance(q, str):
            out.same_label.append(p == q)
            out.prob_diff.append(0.0 if p == q else float("inf"))
            if p == q:
                out.refused.append(item.name)
        else:
            out.same_label.append(p.label == q.label)
            out.prob_diff.append(max(abs(p.probabilities[k] - q.probabilities[k])
                                     for k in p.probabilities))
        mono = item.y if item.y.ndim == 1 else item.y.mean(axis=0)
        y = audio.resample(mono.astype(np.float32), orig_sr=item.sr, target_sr=config.sr)
        if not frames:
            out.x_numpy.append(feature_vector(y, sr=config.sr, config=config))
            for dt, s in graphs.items():
                out.x_graph[dt].append(s.run(None, {"waveform": y[np.newaxis]})[0][0])
            continue
        ref = frame_matrix(y, sr=config.sr, config=config)
        for dt, s in graphs.items():
            ours = s.run(None, {"waveform": y[np.newaxis]})[0][0]
            if ours.shape != ref.shape:
                out.frame_count_differs.append(f"{item.name} ({dt}: {ours.shape[1]} frames, "
                                               f"numpy {ref.shape[1]})")
                ours = np.full(ref.shape, np.inf, np.float32)
            out.frame_stats[dt].append(_block_stats(ours, ref, config))
    return out


def _ravdess_root() -> Path:
    """RAVDESS's folder under ``SER_EDGE_DATA``; ParameterError if it is not there."""
    from ser_edge.errors import ParameterError

    root = corpus_dir("ravdess")
    if root is None:
        raise ParameterError("RAVDESS not found: set SER_EDGE_DATA to the corpora's folder")
    return root


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

    from .corpora import parse_ravdess
    from .onnx_export import export_onnx
    from .train import fit_pipeline

    root = _ravdess_root()
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


def fit_net(config: FeatureConfig, path: str | Path, *, net: Any = None, actors: int = 24,
            per_actor: int = 4) -> Path:
    """A frame-level network of ``config``'s frames, trained briefly on RAVDESS, as ONNX.

    As ``tests/test_nets.py`` trains one: the strong-intensity clips of the first ``actors``
    actors, every fourth of each actor's (``per_actor`` of them: 96 clips by default), their
    numpy frame matrices (:func:`ser_edge.features.frame_matrix`),
    :func:`export.nets.train.train_net`, then :func:`export.nets.onnx.export_net` (checked
    against PyTorch on a 0.75 s cut, a clip and 20 s of clips end to end). A few seconds in all.

    Its probabilities respond to real frames (the largest is 0.26 to 0.30 on RAVDESS clips, and
    the label changes from clip to clip), so that agreeing with them means something; one epoch
    on 16 clips, as ``tests/test_nets.py`` trains, leaves them within 0.002 of uniform on every
    clip. It is no emotion model worth using.

    Parameters
    ----------
    config : FeatureConfig
        The frames (:data:`NET_CONFIG`, for instance).
    path : str or Path
        Where the ONNX model is written.
    net : export.nets.train.NetConfig or None
        The network and its training; None: a tiny CNN (five blocks of 8 channels, four
        poolings: at least 16 frames, 4k parameters) trained for at most 20 epochs on
        64-frame crops.
    actors, per_actor : int
        How many clips (``actors * per_actor``).

    Returns
    -------
    path : Path

    Raises
    ------
    ParameterError
        If RAVDESS is not under ``SER_EDGE_DATA``.
    """
    from ser_edge import audio
    from ser_edge.features import frame_matrix

    from .nets.onnx import export_net
    from .nets.train import NetConfig, train_net

    root = _ravdess_root()
    if net is None:
        net = NetConfig(architecture="cnn", channels=(8, 8, 8, 8, 8), epochs=20, crop=64,
                        batch_size=16, lr=2e-2, weight_decay=0.0, val_fraction=0.25, seed=0)
    emotions = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    paths = []
    for actor in range(1, actors + 1):
        files = sorted((root / f"Actor_{actor:02d}").glob("*.flac"))
        paths += [f for f in files if f.name.split("-")[3] == "02"][::4][:per_actor]
    ys = [audio.load(p, sr=config.sr)[0] for p in paths]
    frames = [frame_matrix(y, sr=config.sr, config=config) for y in ys]
    labels = np.array([int(p.name.split("-")[2]) - 1 for p in paths])
    model, history = train_net([[F] for F in frames], labels, [p.parent.name for p in paths],
                               ["ravdess"] * len(paths), net, len(emotions))
    long = np.concatenate(ys)[: 20 * config.sr]
    checks = [frame_matrix(z, sr=config.sr, config=config)
              for z in (ys[0][: config.sr // 2 + 4000], ys[1], long)]
    path = Path(path)
    export_net(model, feature_config=config, labels=emotions,
               training={"net": net.to_dict(), "corpora": {"ravdess": len(paths)},
                         "history": history, "purpose": "fused-graph parity"},
               metrics={"speaker_independent": {}}, check_frames=checks,
               min_frames=model.min_frames, path=path)
    return path
