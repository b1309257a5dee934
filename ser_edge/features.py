"""Spectral features that equal librosa's, in numpy alone.

The functions mirror ``librosa.feature`` of librosa 0.11.0: the same keyword-only parameters, the
same names and defaults, the same axis convention ``(..., n_features, n_frames)``. The model's input
vector is built by :func:`feature_vector` from a declarative :class:`FeatureConfig`, which rides in
the ONNX model's metadata so that the runtime computes what the training computed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .errors import ParameterError

__all__ = [
    "FEATURES",
    "STATS",
    "FeatureConfig",
    "pool",
]

#: The feature blocks a :class:`FeatureConfig` can name, in no particular order.
FEATURES = ("mfcc", "chroma", "mel")

#: The statistics over time that :func:`pool` can take of each feature row.
STATS = ("mean", "std", "min", "max")

_STAT_FUNCS = {
    "mean": np.mean,
    "std": np.std,
    "min": np.min,
    "max": np.max,
}

_CONFIG_SCHEMA = 1


@dataclass(frozen=True)
class FeatureConfig:
    """What the model's input vector is made of: a declarative, JSON-serialisable configuration.

    ``FeatureConfig()`` with no arguments is the configuration of the bundled model. The same
    object drives the runtime (:func:`feature_vector`) and the librosa reference in ``export/``,
    and its JSON rides in the ONNX model's metadata under ``feature_config``.

    The vector is, for each name in ``features`` in that order, for each name in ``stats`` in that
    order, that statistic over time of each row of the feature matrix: for example
    ``[mfcc mean (n_mfcc), mfcc std (n_mfcc), chroma mean (n_chroma), ...]``.

    Parameters
    ----------
    features : tuple of str
        Feature blocks, a subset of ``("mfcc", "chroma", "mel")`` in the order of the vector.
    sr : int > 0
        Sample rate the audio is resampled to before analysis, in Hz.
    n_fft : int > 0
        FFT length in samples; the spectrum has ``1 + n_fft // 2`` frequency bins.
    hop_length : int > 0
        Number of samples between successive frames.
    n_mfcc : int > 0
        Number of MFCCs (``librosa.feature.mfcc``'s ``n_mfcc``).
    n_mels : int > 0
        Number of mel bands, shared by the mel block and the MFCCs (librosa's ``mfcc`` computes
        its log-mel spectrogram with the same ``n_mels``).
    n_chroma : int > 0
        Number of chroma bins per octave.
    fmin : float >= 0
        Lowest frequency of the mel filter bank, in Hz.
    fmax : float > 0 or None
        Highest frequency of the mel filter bank, in Hz; ``None`` means ``sr / 2``.
    htk : bool
        Use the HTK mel formula instead of Slaney's.
    tuning : float or None
        Deviation from A440 tuning in fractions of a chroma bin for the chroma filter bank;
        ``None`` estimates it per clip as ``librosa.feature.chroma_stft`` does.
    mel_db : bool
        Pool the mel block in dB (``power_to_db(ref=1.0, amin=1e-10, top_db=80.0)``) instead of
        in power.
    stats : tuple of str
        Statistics over time, a subset of ``("mean", "std", "min", "max")``; ``std`` is the
        population standard deviation (``ddof=0``).

    Raises
    ------
    ParameterError
        If a name is unknown or a number is out of range.
    """

    features: tuple[str, ...] = ("mfcc", "chroma", "mel")
    sr: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mfcc: int = 40
    n_mels: int = 128
    n_chroma: int = 12
    fmin: float = 0.0
    fmax: float | None = None
    htk: bool = False
    tuning: float | None = None
    mel_db: bool = True
    stats: tuple[str, ...] = ("mean", "std")

    def __post_init__(self) -> None:
        # Lists arrive from JSON; keep the dataclass hashable and immutable.
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "stats", tuple(self.stats))
        if not self.features:
            raise ParameterError("FeatureConfig.features is empty: name at least one feature")
        for name in self.features:
            if name not in FEATURES:
                raise ParameterError(f"unknown feature {name!r}; choose from {FEATURES}")
        if len(set(self.features)) != len(self.features):
            raise ParameterError(f"FeatureConfig.features repeats a name: {self.features}")
        if not self.stats:
            raise ParameterError("FeatureConfig.stats is empty: name at least one statistic")
        for name in self.stats:
            if name not in STATS:
                raise ParameterError(f"unknown statistic {name!r}; choose from {STATS}")
        if len(set(self.stats)) != len(self.stats):
            raise ParameterError(f"FeatureConfig.stats repeats a name: {self.stats}")
        for name in ("sr", "n_fft", "hop_length", "n_mfcc", "n_mels", "n_chroma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ParameterError(f"FeatureConfig.{name} must be a positive integer, got {value!r}")
        if self.n_mfcc > self.n_mels:
            raise ParameterError(f"n_mfcc={self.n_mfcc} exceeds n_mels={self.n_mels}")
        if self.fmin < 0:
            raise ParameterError(f"FeatureConfig.fmin must be >= 0 Hz, got {self.fmin!r}")
        if self.fmax is not None and not self.fmin < self.fmax:
            raise ParameterError(f"FeatureConfig.fmax={self.fmax!r} Hz must exceed fmin={self.fmin!r} Hz")

    @property
    def block_sizes(self) -> dict[str, int]:
        """Rows of each feature block, in the order of ``features``."""
        rows = {"mfcc": self.n_mfcc, "chroma": self.n_chroma, "mel": self.n_mels}
        return {name: rows[name] for name in self.features}

    @property
    def n_features(self) -> int:
        """Length of the vector :func:`feature_vector` returns."""
        return sum(self.block_sizes.values()) * len(self.stats)

    def feature_names(self) -> list[str]:
        """Name every entry of the vector, e.g. ``"mfcc_mean_0"``, in the vector's order."""
        return [
            f"{name}_{stat}_{i}"
            for name, rows in self.block_sizes.items()
            for stat in self.stats
            for i in range(rows)
        ]

    def to_json(self) -> str:
        """Serialise to a JSON object string (keys sorted, with a ``schema`` number)."""
        data = dataclasses.asdict(self)
        data["features"] = list(self.features)
        data["stats"] = list(self.stats)
        data["schema"] = _CONFIG_SCHEMA
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeatureConfig:
        """Read a configuration written by :meth:`to_json`.

        Raises
        ------
        ParameterError
            If the text is not a JSON object, has unknown keys, a newer schema, or bad values.
        """
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"feature configuration is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ParameterError("feature configuration must be a JSON object")
        schema = data.pop("schema", _CONFIG_SCHEMA)
        if schema != _CONFIG_SCHEMA:
            raise ParameterError(
                f"feature configuration schema {schema!r} is not supported "
                f"(this ser-edge reads schema {_CONFIG_SCHEMA})"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParameterError(f"feature configuration has unknown keys: {', '.join(unknown)}")
        return cls(**data)


def pool(blocks: Mapping[str, np.ndarray], config: FeatureConfig) -> np.ndarray:
    """Pool feature matrices over time into the model's input vector.

    The one place where time disappears: the runtime (:func:`feature_vector`) and the librosa
    reference in ``export/`` both call it, so their vectors share one layout.

    Parameters
    ----------
    blocks : mapping of str to np.ndarray [shape=(n_rows, n_frames)]
        A matrix for each name in ``config.features`` (extra names are ignored); the mel block is
        expected already in dB when ``config.mel_db``.
    config : FeatureConfig
        Which blocks and statistics, in which order.

    Returns
    -------
    x : np.ndarray [shape=(config.n_features,)], float32

    Raises
    ------
    ParameterError
        If a block is missing or has the wrong number of rows or no frames.
    """
    parts = []
    for name, rows in config.block_sizes.items():
        if name not in blocks:
            raise ParameterError(f"feature block {name!r} is missing")
        M = np.asarray(blocks[name], dtype=np.float32)
        if M.ndim != 2 or M.shape[0] != rows or M.shape[1] == 0:
            raise ParameterError(
                f"feature block {name!r} has shape {M.shape}, expected ({rows}, n_frames > 0)"
            )
        parts.extend(_STAT_FUNCS[stat](M, axis=-1) for stat in config.stats)
    return np.concatenate(parts).astype(np.float32, copy=False)
