"""Choose the feature configuration by measurement: a small grid, cheaply.

The expensive part of a feature vector is the audio loading and the spectrograms; the pooling is
cheap. So for each *base* (sample rate, FFT size, hop, number of mel bands) the librosa matrices of
every clip are computed once (:func:`superset_statistics`: MFCCs up to 40, chroma with tuning
estimated and with tuning 0, mel in power and in dB, each pooled with every statistic), cached on
disk like the vectors of :mod:`export.features`, and any :class:`FeatureConfig` on that base is
assembled from those columns (:func:`assemble`) without touching the audio again.
:func:`assemble` gives exactly :func:`export.features.reference_feature_vector` (checked by
:func:`check_assembly`): the MFCC DCT is orthonormal, so its first ``n_mfcc`` rows do not depend
on how many are kept, and the statistics are taken row by row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ser_edge.features import STATS, FeatureConfig

from .features import (
    extract_cached,
    reference_feature_matrices,
    reference_feature_vector,
    reference_load,
)

__all__ = ["Base", "superset_statistics", "extract_superset", "assemble", "check_assembly"]

_MAX_MFCC = 40


@dataclasses.dataclass(frozen=True)
class Base:
    """The part of a :class:`FeatureConfig` that needs the audio: one extraction per base."""

    sr: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128

    def config(self, **kwargs: object) -> FeatureConfig:
        """Return a :class:`FeatureConfig` on this base with the other fields from ``kwargs``."""
        return FeatureConfig(
            sr=self.sr, n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels, **kwargs
        )

    @property
    def n_mfcc(self) -> int:
        """MFCC rows the superset keeps."""
        return min(_MAX_MFCC, self.n_mels)

    def layout(self) -> dict[tuple[str, str], tuple[int, int]]:
        """Column ranges of the superset: ``(block, stat) -> (start, stop)``.

        Blocks: ``mfcc``, ``chroma`` (tuning estimated), ``chroma0`` (tuning 0), ``mel``
        (power), ``meldb`` (dB).
        """
        rows = {"mfcc": self.n_mfcc, "chroma": 12, "chroma0": 12, "mel": self.n_mels}
        rows["meldb"] = self.n_mels
        out, start = {}, 0
        for block, n in rows.items():
            for stat in STATS:
                out[(block, stat)] = (start, start + n)
                start += n
        return out


def superset_statistics(path: Path, base: Base) -> np.ndarray:
    """Pool every block and statistic of one file for ``base`` (see :meth:`Base.layout`)."""
    import librosa

    y = reference_load(path, base.sr)
    cfg = base.config(n_mfcc=base.n_mfcc, mel_db=False, tuning=None)
    blocks = reference_feature_matrices(y, base.sr, cfg)
    blocks["chroma0"] = reference_feature_matrices(
        y, base.sr, dataclasses.replace(cfg, features=("chroma",), tuning=0.0)
    )["chroma"]
    blocks["meldb"] = librosa.power_to_db(blocks["mel"], ref=1.0, amin=1e-10, top_db=80.0)
    funcs = {"mean": np.mean, "std": np.std, "min": np.min, "max": np.max}
    parts = []
    for block in ("mfcc", "chroma", "chroma0", "mel", "meldb"):
        M = np.asarray(blocks[block], dtype=np.float32)
        parts.extend(funcs[stat](M, axis=-1) for stat in STATS)
    return np.concatenate(parts).astype(np.float32)


def extract_superset(
    paths: Sequence[str | Path],
    base: Base,
    *,
    n_jobs: int = 2,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Compute :func:`superset_statistics` of many files, in parallel, cached on disk."""
    tag = f"superset-v1 {dataclasses.asdict(base)}"
    return extract_cached(
        paths,
        superset_statistics,
        base,
        tag,
        n_jobs=n_jobs,
        cache_dir=cache_dir,
        progress=progress,
        desc=f"superset sr={base.sr} n_mels={base.n_mels}",
    )


def assemble(S: np.ndarray, base: Base, config: FeatureConfig) -> np.ndarray:
    """Build the feature matrix of ``config`` from superset columns ``S`` of ``base``.

    Returns
    -------
    X : np.ndarray [shape=(n_clips, config.n_features)], float32

    Raises
    ------
    ValueError
        If ``config`` is not on ``base`` or asks for something the superset lacks.
    """
    for name in ("sr", "n_fft", "hop_length", "n_mels"):
        if getattr(config, name) != getattr(base, name):
            raise ValueError(f"config.{name}={getattr(config, name)} is not on base {base}")
    if config.n_mfcc > base.n_mfcc or config.n_chroma != 12 or config.fmin != 0.0:
        raise ValueError("the superset has n_mfcc <= 40, n_chroma 12 and fmin 0 only")
    if config.fmax is not None or config.htk or config.tuning not in (None, 0.0):
        raise ValueError("the superset has fmax None, htk False and tuning None or 0 only")
    layout = base.layout()
    block_name = {
        "mfcc": "mfcc",
        "chroma": "chroma" if config.tuning is None else "chroma0",
        "mel": "meldb" if config.mel_db else "mel",
    }
    cols = []
    for feature, rows in config.block_sizes.items():
        for stat in config.stats:
            start, _ = layout[(block_name[feature], stat)]
            cols.append(np.arange(start, start + rows))
    return np.ascontiguousarray(S[:, np.concatenate(cols)], dtype=np.float32)


def check_assembly(path: Path, base: Base, config: FeatureConfig, S_row: np.ndarray) -> float:
    """Return the largest difference between :func:`assemble` and the reference vector of a file."""
    x = reference_feature_vector(path, config)
    return float(np.max(np.abs(assemble(S_row[None, :], base, config)[0] - x)))


#: The feature grid (stage 1, with the default MLP): label, base, FeatureConfig fields.
_B22 = Base(22050, 2048, 512, 128)
_B16 = Base(16000, 2048, 512, 128)
_B16S = Base(16000, 1024, 256, 128)
_B16M = Base(16000, 2048, 512, 64)
_ALL = ("mean", "std", "min", "max")
FEATURE_GRID: list[tuple[str, Base, dict]] = [
    ("seeds: 22.05 kHz, mean, mel power", _B22, {"stats": ("mean",), "mel_db": False}),
    ("22.05 kHz, mean, mel dB", _B22, {"stats": ("mean",)}),
    ("22.05 kHz, mean+std, mel power", _B22, {"mel_db": False}),
    ("22.05 kHz, mean+std, mel dB", _B22, {}),
    ("22.05 kHz, mean+std+min+max, mel dB", _B22, {"stats": _ALL}),
    ("22.05 kHz, mean+std, 20 MFCC", _B22, {"n_mfcc": 20}),
    ("22.05 kHz, mean+std, tuning 0", _B22, {"tuning": 0.0}),
    ("22.05 kHz, mean+std, no chroma", _B22, {"features": ("mfcc", "mel")}),
    ("22.05 kHz, mean+std, MFCC only", _B22, {"features": ("mfcc",)}),
    ("16 kHz, mean+std, mel dB", _B16, {}),
    ("16 kHz, mean+std, tuning 0", _B16, {"tuning": 0.0}),
    ("16 kHz, mean+std+min+max", _B16, {"stats": _ALL}),
    ("16 kHz n_fft 1024 hop 256, mean+std", _B16S, {}),
    ("16 kHz, 64 mels, mean+std", _B16M, {}),
    ("16 kHz, 64 mels, mean+std, tuning 0", _B16M, {"tuning": 0.0}),
]

#: The MLP grid (stage 2, on the chosen features): label, MLPClassifier parameters.
MLP_GRID: list[tuple[str, dict]] = [
    ("(256,) alpha 1e-2, 300 it (default)", {}),
    ("(128,) alpha 1e-2", {"hidden_layer_sizes": (128,)}),
    ("(512,) alpha 1e-2", {"hidden_layer_sizes": (512,)}),
    ("(256, 128) alpha 1e-2", {"hidden_layer_sizes": (256, 128)}),
    ("(256,) alpha 1e-4", {"alpha": 1e-4}),
    ("(256,) alpha 1e-1", {"alpha": 1e-1}),
    ("(256,) alpha 1.0", {"alpha": 1.0}),
    ("(256,) early stopping", {"early_stopping": True, "max_iter": 1000}),
    ("(256,) 100 it", {"max_iter": 100}),
]

#: Stage 3: stronger regularisation, and the best MLP back on the other feature bases.
_A1 = {"alpha": 1.0}
REFINE_GRID: list[tuple[str, Base, dict, dict]] = [
    ("16 kHz 1024/256, MLP alpha 3", _B16S, {}, {"alpha": 3.0}),
    ("16 kHz 1024/256, MLP alpha 10", _B16S, {}, {"alpha": 10.0}),
    (
        "16 kHz 1024/256, MLP (512,) alpha 1",
        _B16S,
        {},
        {"alpha": 1.0, "hidden_layer_sizes": (512,)},
    ),
    ("16 kHz 1024/256, MLP alpha 1, 600 it", _B16S, {}, {"alpha": 1.0, "max_iter": 600}),
    ("16 kHz 1024/256, tuning 0, MLP alpha 1", _B16S, {"tuning": 0.0}, _A1),
    ("16 kHz 1024/256, mean+std+min+max, MLP alpha 1", _B16S, {"stats": _ALL}, _A1),
    ("22.05 kHz 2048/512, MLP alpha 1", _B22, {}, _A1),
    ("16 kHz 2048/512, tuning 0, MLP alpha 1", _B16, {"tuning": 0.0}, _A1),
    ("16 kHz 2048/512, 64 mels, tuning 0, MLP alpha 1", _B16M, {"tuning": 0.0}, _A1),
]

#: Stage 4: the two best configurations, to be run with other seeds (cheaper wins a tie).
TIEBREAK_GRID: list[tuple[str, Base, dict, dict]] = [
    ("16 kHz 1024/256, MLP alpha 1", _B16S, {}, _A1),
    ("16 kHz 1024/256, tuning 0, MLP alpha 1", _B16S, {"tuning": 0.0}, _A1),
]


def run_grid(
    paths: Sequence[Path],
    y: np.ndarray,
    speakers: np.ndarray,
    entries: Sequence[tuple[str, Base, dict, dict]],
    *,
    n_jobs: int = 2,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    log: object = print,
) -> list[dict]:
    """Cross-validate the MLP for each (label, base, config fields, MLP params) entry.

    Returns
    -------
    rows : list of dict
        ``label``, ``feature_config`` (JSON), ``params``, ``n_features`` and the scores of
        :func:`export.evaluate.cross_validate` (without per-clip predictions).
    """
    from .evaluate import cross_validate

    supersets: dict[Base, np.ndarray] = {}
    rows = []
    for label, base, fields, params in entries:
        if base not in supersets:
            supersets[base] = extract_superset(paths, base, n_jobs=n_jobs, cache_dir=cache_dir)
        config = base.config(**fields)
        X = assemble(supersets[base], base, config)
        res = cross_validate(X, y, speakers, model="mlp", params=params, seed=seed, n_jobs=n_jobs)
        row = {
            "label": label if seed == 0 else f"{label} (seed {seed})",
            "seed": seed,
            "feature_config": config.to_json(),
            "params": params,
            "n_features": config.n_features,
        }
        for key in ("uar", "accuracy", "macro_f1"):
            row[f"{key}_mean"] = res[f"{key}_mean"]
            row[f"{key}_std"] = res[f"{key}_std"]
        rows.append(row)
        log(
            f"{label:45s} n={config.n_features:4d} UAR {row['uar_mean']:.3f} ± {row['uar_std']:.3f}"
        )
    return rows
