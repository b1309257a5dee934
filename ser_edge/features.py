"""Spectral features that equal librosa's, in numpy alone.

The functions mirror ``librosa.feature`` of librosa 0.11.0: the same keyword-only parameters, the
same names and defaults, the same axis convention ``(..., n_features, n_frames)``. The model's input
vector is built by :func:`feature_vector` from a declarative :class:`FeatureConfig`, which rides in
the ONNX model's metadata so that the runtime computes what the training computed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from .dsp import (
    align_peak,
    fft_frequencies,
    power_blocks_stream,
    power_spectrogram,
    power_to_db,
    stft,
    trim_quiet,
    trim_quiet_threshold,
    trim_zeros,
    trim_zeros_stream,
)
from .errors import ParameterError
from .filters import chroma_filters, dct_matrix, hz_to_octs, mel_filters, mel_projection
from .level import active_frames, energy_db, level_gain, rms

__all__ = [
    "FEATURES",
    "STATS",
    "FRAMES",
    "NORMS",
    "FeatureConfig",
    "chroma_filters",
    "chroma_stft",
    "delta",
    "estimate_tuning",
    "feature_matrices",
    "feature_vector",
    "frame_matrix",
    "normalise_rows",
    "feature_vector_stream",
    "mel_filters",
    "melspectrogram",
    "mfcc",
    "pitch_tuning",
    "pool",
    "power_spectrogram",
    "power_to_db",
    "stft",
]

#: The feature blocks a :class:`FeatureConfig` can name, in no particular order.
FEATURES = ("mfcc", "chroma", "mel", "mfcc_delta")

#: Which frames a :class:`FeatureConfig` pools over: all of them, or the speech-active ones
#: (:func:`ser_edge.level.active_frames`).
FRAMES = ("all", "active")

#: Per-utterance normalisation of each feature row over the kept frames: none, the mean
#: subtracted (cepstral mean normalisation), or the mean subtracted and the standard deviation
#: divided out.
NORMS = (None, "mean", "meanvar")

#: The standard deviation under which ``norm="meanvar"`` only centres a row (a hundredth of a dB
#: or of a chroma unit: a flat row, whose spread is rounding, is not blown up to unit variance).
_NORM_FLOOR = 1e-2

#: The statistics over time that :func:`pool` can take of each feature row.
STATS = ("mean", "std", "min", "max")

_STAT_FUNCS = {
    "mean": np.mean,
    "std": np.std,
    "min": np.min,
    "max": np.max,
}

_CONFIG_SCHEMA = 1

#: What a configuration written before a field existed meant by it (librosa's behaviour, and no
#: level normalisation or frame selection).
_LEGACY = {"chroma_threshold": None, "top_db": 80.0, "level_db": None, "frames": "all",
           "active_range_db": 40.0, "active_floor_db": 6.0, "delta_width": 9, "norm": None,
           "active_floor_range_db": None, "trim_zeros": False, "trim_top_db": None,
           "align_peak": False}


def _check_names(field: str, names: tuple[str, ...], allowed: tuple[str, ...], kind: str) -> None:
    """Raise ParameterError unless ``names`` is a non-empty, repeat-free subset of ``allowed``."""
    if not names:
        raise ParameterError(f"FeatureConfig.{field} is empty: name at least one {kind}")
    for name in names:
        if name not in allowed:
            raise ParameterError(f"unknown {kind} {name!r}; choose from {allowed}")
    if len(set(names)) != len(names):
        raise ParameterError(f"FeatureConfig.{field} repeats a name: {names}")


@dataclass(frozen=True)
class FeatureConfig:
    """What the model's input vector is made of: a declarative, JSON-serialisable configuration.

    ``FeatureConfig()`` with no arguments is the configuration of the previous bundled model,
    ``ravdess-mlp.onnx`` (the bundled ``mlp`` adds level normalisation, active frames, ``top_db``
    60 and MFCC deltas: see ``export/recipes/mlp.json`` and ``export/reports/ablation.md``),
    chosen by speaker-independent UAR on RAVDESS: 16 kHz,
    ``n_fft=1024``, ``hop_length=256``, 40 MFCC + 12 chroma + 128 mel bands in dB, mean and
    standard deviation over time, chroma at ``tuning=0.0`` (estimating the tuning per clip scored
    the same within noise, at a third more cost) with silent frames left at zero
    (``chroma_threshold=1e-10``). The defaults of the feature *functions* are
    librosa's; only this configuration differs. The same
    object drives the runtime (:func:`feature_vector`) and the librosa reference in ``export/``,
    and its JSON rides in the ONNX model's metadata under ``feature_config``.

    The vector is, for each name in ``features`` in that order, for each of its statistics in
    the order of ``stats``, that statistic over time (over the frames ``frames`` keeps) of each
    row of the feature matrix: for example
    ``[mfcc mean (n_mfcc), mfcc std (n_mfcc), chroma mean (n_chroma), ...]``.

    Parameters
    ----------
    features : tuple of str
        Feature blocks, a subset of ``("mfcc", "chroma", "mel", "mfcc_delta")`` in the order of
        the vector; ``"mfcc_delta"`` is the local slope of the MFCCs over time (:func:`delta`),
        ``n_mfcc`` rows.
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
    chroma_threshold : float > 0 or None
        Chroma frames whose largest raw energy (power) is below this stay unscaled, i.e. near
        zero, instead of being scaled to a maximum of 1 (see :func:`chroma_stft`'s
        ``threshold``); ``None`` is librosa's behaviour. The default, 1e-10, is
        ``power_to_db``'s floor: digital silence, whose resampling noise would otherwise become
        full-scale chroma that differs between CPUs (x86 and a Raspberry Pi's ARM).
    mel_db : bool
        Pool the mel block in dB (``power_to_db(ref=1.0, amin=1e-10, top_db=top_db)``) instead
        of in power.
    stats : tuple of str, or mapping of str to tuple of str
        Statistics over time, a subset of ``("mean", "std", "min", "max")``; ``std`` is the
        population standard deviation (``ddof=0``). A mapping gives each block of ``features``
        its own (e.g. ``{"mel": ("std",), ...}``: a mel block's mean is mostly the microphone's
        frequency response, its spread over time is the voice's).
    top_db : float >= 0 or None
        ``power_to_db``'s clipping under the clip's loudest mel value, in dB, for MFCC and the dB
        mel block; ``None`` clips nothing. librosa's default is 80; a smaller one floors the
        quiet parts of the spectrum where background noise would otherwise decide the values.
    level_db : float or None
        Level normalisation: the power spectrogram is scaled so that the mean energy of the
        active frames (:func:`ser_edge.level.active_frames`) is this many dB re full scale, as if
        the waveform had been scaled before the analysis (:func:`ser_edge.level.level_gain`).
        A gain applied to the recording then changes no feature beyond float rounding. ``None``
        analyses the clip at its recorded level.
    frames : {"all", "active"}
        Pool over every frame, or over the active frames only (leading and trailing silence,
        pauses and background noise then weigh nothing).
    active_range_db, active_floor_db : float
        What an active frame is (:func:`ser_edge.level.active_frames`): within
        ``active_range_db`` of the loudest frame, and ``active_floor_db`` above the noise floor
        (the 10th percentile of the clip's frame energies), in dB; frames within
        ``active_floor_db`` of the loudest are always active.
    active_floor_range_db : float > 0 or None
        Only the frames within this many dB of the loudest set the noise floor, so that digital
        silence, a gate's zeros or a quiet pad around the clip do not lower it (and turn the
        room's noise into "speech"); None counts every frame, as configurations written before
        this field did. Left out of the JSON when None.
    delta_width : int >= 3, odd
        Frames of the ``"mfcc_delta"`` block's local slope (:func:`delta`); clips need at least
        this many frames.
    norm : {None, "mean", "meanvar"}
        Per-utterance normalisation of each row of every block over the kept frames, after
        everything else: ``"mean"`` subtracts the row's mean (cepstral mean normalisation),
        ``"meanvar"`` also divides by its standard deviation (rows flatter than 0.01 are not
        divided). For frame-input networks (:func:`frame_matrix`); it makes a pooled mean zero.
    trim_zeros : bool
        Remove the signal's leading and trailing runs of samples that are exactly 0.0 (digital
        silence: a pad, an edit, a gate) before anything else (:func:`ser_edge.dsp.trim_zeros`),
        so that digital silence at a clip's ends changes no feature; a clip of zeros only is
        left as it is. False analyses every sample, as configurations written before this field
        did. Left out of the JSON when False.
    trim_top_db : float > 0 or None
        Remove the signal's ends quieter than this many dB under its loudest sample, after
        ``trim_zeros`` and before anything else (:func:`ser_edge.dsp.trim_quiet`, sample-exact):
        silence, a quiet pad or a gate at a clip's ends then changes no kept sample and does not
        move the frame grid. None keeps the ends, as configurations written before this field
        did (and it is then left out of the JSON).
    align_peak : bool
        After any trim, drop the first ``argmax(|y|) mod hop_length`` samples (fewer than a hop;
        :func:`ser_edge.dsp.align_peak`), so that a frame starts on the loudest sample: the
        frames over the voice then fall on the same samples whatever silence, pad or cut
        surrounds it, where otherwise a 0.6 s pad moves them by half a hop and changes the
        label of a few clips in a hundred. False analyses from the first sample, as
        configurations written before this field did (and it is then left out of the JSON).

    Raises
    ------
    ParameterError
        If a name is unknown or a number is out of range.
    """

    features: tuple[str, ...] = ("mfcc", "chroma", "mel")
    sr: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    n_mfcc: int = 40
    n_mels: int = 128
    n_chroma: int = 12
    fmin: float = 0.0
    fmax: float | None = None
    htk: bool = False
    tuning: float | None = 0.0
    chroma_threshold: float | None = 1e-10
    mel_db: bool = True
    stats: tuple[str, ...] | Mapping[str, tuple[str, ...]] = ("mean", "std")
    top_db: float | None = 80.0
    level_db: float | None = None
    frames: str = "all"
    active_range_db: float = 40.0
    active_floor_db: float = 6.0
    active_floor_range_db: float | None = None
    delta_width: int = 9
    norm: str | None = None
    trim_zeros: bool = False
    trim_top_db: float | None = None
    align_peak: bool = False

    def __post_init__(self) -> None:
        # Lists arrive from JSON; keep the dataclass hashable and immutable.
        object.__setattr__(self, "features", tuple(self.features))
        _check_names("features", self.features, FEATURES, "feature")
        if isinstance(self.stats, Mapping):
            unknown = sorted(set(self.stats) - set(self.features))
            missing = [name for name in self.features if name not in self.stats]
            if unknown or missing:
                raise ParameterError(
                    "FeatureConfig.stats, as a mapping, needs one entry per feature block "
                    f"({', '.join(self.features)}); "
                    + (f"unknown: {', '.join(unknown)}" if unknown
                       else f"missing: {', '.join(missing)}")
                )
            pairs = tuple((name, tuple(self.stats[name])) for name in self.features)
            for name, names in pairs:
                _check_names(f"stats[{name!r}]", names, STATS, "statistic")
            object.__setattr__(self, "stats", pairs)
        else:
            object.__setattr__(self, "stats", tuple(self.stats))
            if self.stats and isinstance(self.stats[0], tuple):  # already normalised pairs
                for name, names in self.stats:
                    _check_names(f"stats[{name!r}]", names, STATS, "statistic")
                if tuple(name for name, _ in self.stats) != self.features:
                    raise ParameterError("FeatureConfig.stats pairs must follow features' order")
            else:
                _check_names("stats", self.stats, STATS, "statistic")
        if self.norm not in NORMS:
            raise ParameterError(f"FeatureConfig.norm must be one of {NORMS}, got {self.norm!r}")
        if self.frames not in FRAMES:
            raise ParameterError(
                f"FeatureConfig.frames must be one of {FRAMES}, got {self.frames!r}"
            )
        if self.top_db is not None and not self.top_db >= 0:
            raise ParameterError(
                f"FeatureConfig.top_db must be >= 0 or None, got {self.top_db!r}"
            )
        if not self.active_range_db > 0 or not self.active_floor_db > 0:
            raise ParameterError(
                f"FeatureConfig.active_range_db={self.active_range_db!r} and "
                f"active_floor_db={self.active_floor_db!r} must be > 0"
            )
        if self.active_floor_range_db is not None and not self.active_floor_range_db > 0:
            raise ParameterError(
                "FeatureConfig.active_floor_range_db must be > 0 or None, got "
                f"{self.active_floor_range_db!r}"
            )
        if not isinstance(self.trim_zeros, (bool, np.bool_)):
            raise ParameterError(
                f"FeatureConfig.trim_zeros must be true or false, got {self.trim_zeros!r}"
            )
        object.__setattr__(self, "trim_zeros", bool(self.trim_zeros))
        if self.trim_top_db is not None and (isinstance(self.trim_top_db, bool)
                                             or not self.trim_top_db > 0):
            raise ParameterError(
                f"FeatureConfig.trim_top_db must be > 0 or None, got {self.trim_top_db!r}"
            )
        if not isinstance(self.align_peak, (bool, np.bool_)):
            raise ParameterError(
                f"FeatureConfig.align_peak must be true or false, got {self.align_peak!r}"
            )
        object.__setattr__(self, "align_peak", bool(self.align_peak))
        width = self.delta_width
        if (isinstance(width, bool) or not isinstance(width, (int, np.integer))
                or width < 3 or width % 2 != 1):
            raise ParameterError(
                f"FeatureConfig.delta_width must be an odd integer >= 3, got {self.delta_width!r}"
            )
        for name in ("sr", "n_fft", "hop_length", "n_mfcc", "n_mels", "n_chroma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ParameterError(
                    f"FeatureConfig.{name} must be a positive integer, got {value!r}"
                )
        if self.n_mfcc > self.n_mels:
            raise ParameterError(f"n_mfcc={self.n_mfcc} exceeds n_mels={self.n_mels}")
        if self.fmin < 0:
            raise ParameterError(f"FeatureConfig.fmin must be >= 0 Hz, got {self.fmin!r}")
        if self.chroma_threshold is not None and not self.chroma_threshold > 0:
            raise ParameterError(
                f"FeatureConfig.chroma_threshold must be > 0 or None, got {self.chroma_threshold!r}"
            )
        if self.fmax is not None and not self.fmin < self.fmax:
            raise ParameterError(
                f"FeatureConfig.fmax={self.fmax!r} Hz must exceed fmin={self.fmin!r} Hz"
            )

    @property
    def block_sizes(self) -> dict[str, int]:
        """Rows of each feature block, in the order of ``features``."""
        rows = {"mfcc": self.n_mfcc, "chroma": self.n_chroma, "mel": self.n_mels,
                "mfcc_delta": self.n_mfcc}
        return {name: rows[name] for name in self.features}

    def stats_of(self, name: str) -> tuple[str, ...]:
        """The statistics pooled of block ``name``, in the vector's order."""
        if self.stats and isinstance(self.stats[0], tuple):
            return dict(self.stats)[name]
        return self.stats

    @property
    def n_features(self) -> int:
        """Length of the vector :func:`feature_vector` returns."""
        return sum(rows * len(self.stats_of(name)) for name, rows in self.block_sizes.items())

    @property
    def min_frames(self) -> int:
        """Fewest analysis frames a clip needs: ``delta_width`` with ``"mfcc_delta"``, else 1."""
        return self.delta_width if "mfcc_delta" in self.features else 1

    def feature_names(self) -> list[str]:
        """Name every entry of the vector, e.g. ``"mfcc_mean_0"``, in the vector's order."""
        return [
            f"{name}_{stat}_{i}"
            for name, rows in self.block_sizes.items()
            for stat in self.stats_of(name)
            for i in range(rows)
        ]

    def row_names(self) -> list[str]:
        """Name every row of the frame matrix (``"mfcc_0"``, ...), in :func:`frame_matrix` order."""
        return [f"{name}_{i}" for name, rows in self.block_sizes.items() for i in range(rows)]

    @property
    def trims(self) -> bool:
        """Whether samples are cut from the signal's ends before the analysis (:meth:`trim`)."""
        return self.trim_zeros or self.trim_top_db is not None or self.align_peak

    def trim(self, y: np.ndarray) -> np.ndarray:
        """The samples of ``y`` that are analysed: its ends trimmed as the configuration says.

        :func:`ser_edge.dsp.trim_zeros` with ``trim_zeros``, then
        :func:`ser_edge.dsp.trim_quiet` with ``trim_top_db``, then
        :func:`ser_edge.dsp.align_peak` with ``align_peak``; ``y`` itself with none.

        Parameters
        ----------
        y : np.ndarray [shape=(n,)]
            Mono audio at ``sr``.

        Returns
        -------
        y_trimmed : np.ndarray [shape=(m,)], ``m <= n``
            A view of ``y``.
        """
        if self.trim_zeros:
            y = trim_zeros(y)
        if self.trim_top_db is not None:
            y = trim_quiet(y, self.trim_top_db)
        if self.align_peak:
            y = align_peak(y, self.hop_length)
        return y

    def to_json(self) -> str:
        """Serialise to a JSON object string (keys sorted, with a ``schema`` number)."""
        data = dataclasses.asdict(self)
        data["features"] = list(self.features)
        if self.stats and isinstance(self.stats[0], tuple):
            data["stats"] = {name: list(names) for name, names in self.stats}
        else:
            data["stats"] = list(self.stats)
        data["schema"] = _CONFIG_SCHEMA
        if data["active_floor_range_db"] is None:  # as configurations written before it
            del data["active_floor_range_db"]
        if not data["trim_zeros"]:  # as configurations written before it
            del data["trim_zeros"]
        if data["trim_top_db"] is None:  # as configurations written before it
            del data["trim_top_db"]
        if not data["align_peak"]:  # as configurations written before it
            del data["align_peak"]
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
        # Written before a field existed, a configuration meant librosa's behaviour.
        for key, value in _LEGACY.items():
            data.setdefault(key, value)
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
        A matrix for each name in ``config.features`` (extra names are ignored), over the frames
        to pool (:func:`feature_matrices` keeps only the active ones when ``config.frames`` says
        so); the mel block is expected already in dB when ``config.mel_db``.
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
    mats = []
    for name, rows in config.block_sizes.items():
        if name not in blocks:
            raise ParameterError(f"feature block {name!r} is missing")
        M = np.asarray(blocks[name], dtype=np.float32)
        if M.ndim != 2 or M.shape[0] != rows or M.shape[1] == 0:
            raise ParameterError(
                f"feature block {name!r} has shape {M.shape}, expected ({rows}, n_frames > 0)"
            )
        mats.append(M)
    # One call per block and statistic, on the block as given: numpy's summation order follows
    # the memory layout (librosa's matrices are not all C-ordered), and the bundled model was
    # trained on vectors reduced this way, bit for bit.
    per_block = [_STAT_FUNCS[stat](M, axis=-1)
                 for name, M in zip(config.block_sizes, mats, strict=True)
                 for stat in config.stats_of(name)]
    return np.concatenate(per_block).astype(np.float32, copy=False)


def delta(data: np.ndarray, *, width: int = 9) -> np.ndarray:
    """Local slope of each row over time: first-order delta features.

    Mirrors ``librosa.feature.delta(data, width=width, order=1, axis=-1, mode="interp")``
    (librosa 0.11.0), a Savitzky-Golay first derivative: inside, the least-squares slope of a
    straight line through the ``width`` frames centred on each frame; in the first and last
    ``width // 2`` frames, that of the first and last ``width`` frames (``"interp"``).

    Parameters
    ----------
    data : np.ndarray [shape=(..., n_frames)]
        A feature matrix, e.g. MFCCs ``(n_mfcc, n_frames)``.
    width : int >= 3, odd
        Frames per slope; at most ``n_frames``.

    Returns
    -------
    delta_data : np.ndarray [shape=data.shape], float32 for float32 ``data``
        Change per frame.

    Raises
    ------
    ParameterError
        If ``width`` is not an odd integer >= 3, or exceeds ``n_frames``.
    """
    data = np.asarray(data)
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 3 \
            or width % 2 != 1:
        raise ParameterError(f"width must be an odd integer >= 3, got {width!r}")
    n = data.shape[-1]
    if width > n:
        raise ParameterError(f"width={width} cannot exceed the {n} frames of the data")
    interior = _delta_interior(data, width)
    half = width // 2
    out = np.empty(data.shape, dtype=interior.dtype)
    out[..., half : n - half] = interior
    out[..., :half] = interior[..., :1]
    out[..., n - half :] = interior[..., -1:]
    return out


def _delta_interior(data: np.ndarray, width: int) -> np.ndarray:
    """The slopes centred on frames ``width // 2 .. n - 1 - width // 2`` (``n - width + 1``)."""
    half = width // 2
    k = np.arange(-half, half + 1, dtype=np.float64)
    weights = k / np.sum(k * k)
    windows = np.lib.stride_tricks.sliding_window_view(data, width, axis=-1)
    return np.matmul(windows, weights).astype(np.result_type(data.dtype, np.float32), copy=False)


def _power_spectrogram(
    y: np.ndarray | None, S: np.ndarray | None, n_fft: int, hop_length: int | None, power: float
) -> tuple[np.ndarray, int]:
    """Return ``(S, n_fft)``: ``S`` as given (``n_fft`` from its height), or ``|stft(y)| ** power``.

    Mirrors librosa's private ``_spectrogram``.
    """
    if S is not None:
        # C order: matmul on the transposed layout that stft returns is ten times slower.
        S = np.ascontiguousarray(S)
        if n_fft // 2 + 1 != S.shape[-2]:
            n_fft = 2 * (S.shape[-2] - 1)
        return S, n_fft
    if y is None:
        raise ParameterError("give either y (audio) or S (a spectrogram)")
    return power_spectrogram(y, n_fft=n_fft, hop_length=hop_length, power=power), n_fft


def melspectrogram(
    *,
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    power: float = 2.0,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Mel-scaled spectrogram.

    Mirrors ``librosa.feature.melspectrogram`` (librosa 0.11.0) with a centred, zero-padded,
    periodic-Hann STFT.

    Parameters
    ----------
    y : np.ndarray [shape=(..., n)] or None
        Audio time series.
    sr : float > 0
        Sample rate of ``y``, in Hz.
    S : np.ndarray [shape=(..., 1 + n_fft // 2, n_frames)] or None
        A precomputed spectrogram (magnitude raised to ``power``); if given, ``y`` is ignored
        and ``n_fft`` is taken from its height.
    n_fft : int > 0
        FFT length in samples.
    hop_length : int > 0
        Number of samples between successive frames.
    power : float > 0
        Exponent of the magnitude (2.0 for power, 1.0 for energy).
    n_mels : int > 0
        Number of mel bands.
    fmin, fmax : float
        Frequency range of the filter bank, in Hz; ``fmax=None`` means ``sr / 2``.
    htk : bool
        Use the HTK mel formula instead of Slaney's.
    norm : {"slaney", None}
        Normalisation of the mel filters.

    Returns
    -------
    M : np.ndarray [shape=(..., n_mels, n_frames)], float32 for float32 input

    Raises
    ------
    ParameterError
        If neither ``y`` nor ``S`` is given, or the audio is invalid.
    """
    S, n_fft = _power_spectrogram(y, S, n_fft, hop_length, power)
    return mel_projection(S, sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk,
                          norm=norm)


def mfcc(
    *,
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    n_mfcc: int = 20,
    **kwargs,
) -> np.ndarray:
    """Mel-frequency cepstral coefficients: the orthonormal DCT-II of the log-power mel spectrogram.

    Mirrors ``librosa.feature.mfcc`` (librosa 0.11.0) with ``dct_type=2``, ``norm="ortho"`` and
    ``lifter=0``.

    Parameters
    ----------
    y : np.ndarray [shape=(..., n)] or None
        Audio time series.
    sr : float > 0
        Sample rate of ``y``, in Hz.
    S : np.ndarray [shape=(..., n_mels, n_frames)] or None
        A precomputed log-power mel spectrogram in dB (as from :func:`power_to_db`).
    n_mfcc : int > 0
        Number of coefficients; at most ``n_mels``.
    **kwargs
        Passed to :func:`melspectrogram` when ``S`` is not given (``n_fft``, ``hop_length``,
        ``n_mels``, ``fmin``, ``fmax``, ``htk``).

    Returns
    -------
    M : np.ndarray [shape=(..., n_mfcc, n_frames)], float32

    Raises
    ------
    ParameterError
        If ``n_mfcc`` exceeds the number of mel bands, or the audio is invalid.
    """
    if S is None:
        S = power_to_db(melspectrogram(y=y, sr=sr, **kwargs))
    S = np.asarray(S)
    n_mels = S.shape[-2]
    if not 0 < n_mfcc <= n_mels:
        raise ParameterError(f"n_mfcc={n_mfcc} must be between 1 and n_mels={n_mels}")
    return np.matmul(dct_matrix(n_mfcc, n_mels), S.astype(np.float32, copy=False))


def _localmax_rows(Z: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``librosa.util.localmax(Z, axis=-2)`` on ``rows`` only, shape ``(len(rows), n_frames)``."""
    n = Z.shape[-2]
    out = np.zeros((len(rows),) + Z.shape[-1:], dtype=bool)
    inner = (rows > 0) & (rows < n - 1)
    r = rows[inner]
    out[inner] = (Z[r] > Z[r - 1]) & (Z[r] >= Z[r + 1])
    last = rows == n - 1
    if last.any() and n > 1:
        out[last] = Z[n - 1] > Z[n - 2]
    return out


def _piptrack_peaks(
    S: np.ndarray, *, sr: float, n_fft: int, fmin: float = 150.0, fmax: float = 4000.0,
    threshold: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """The non-zero entries of ``librosa.piptrack(S=S, sr=sr)``: pitches (Hz) and magnitudes.

    librosa fills two ``S``-sized arrays and keeps the peaks; only the peaks matter to the tuning
    estimate, so this computes them alone, over the bins from ``fmin`` to ``fmax`` and their
    neighbours, with librosa's arithmetic (float32 data, the parabolic shift evaluated in float64
    as numba does in ``_pi_stencil``).
    """
    # librosa takes np.abs(S); for a real non-negative S (a power spectrogram) that is S itself,
    # so skip the copy, as large as the spectrogram.
    if np.iscomplexobj(S) or S.min() < 0:
        S = np.abs(S)
    fmin = np.maximum(fmin, 0)
    fmax = np.minimum(fmax, float(sr) / 2)
    fft_freqs = fft_frequencies(sr=sr, n_fft=n_fft)
    rows = np.flatnonzero((fmin <= fft_freqs) & (fft_freqs < fmax))
    if rows.size == 0 or S.shape[-1] == 0:
        empty = np.zeros(0, dtype=S.dtype)
        return empty, empty
    lo, hi = max(rows[0] - 1, 0), min(rows[-1] + 2, S.shape[-2])
    ref_value = threshold * np.max(S, axis=-2, keepdims=True)
    band = S[lo:hi]
    Z = band * (band > ref_value)
    peaks = _localmax_rows(Z, rows - lo)
    r_idx, t_idx = np.nonzero(peaks)
    k = rows[r_idx]  # bin index in S
    n = S.shape[-2]
    center = S[k, t_idx]
    # Neighbours; at the edges the stencil is not evaluated and the shift is 0.
    edge = (k == 0) | (k == n - 1)
    up = S[np.minimum(k + 1, n - 1), t_idx]
    down = S[np.maximum(k - 1, 0), t_idx]
    # np.gradient along frequency: central differences inside, one-sided at the edges.
    avg = np.where(k == 0, up - center, np.where(k == n - 1, center - down, (up - down) / 2.0))
    a = (up + down).astype(np.float64) - 2 * center.astype(np.float64)
    b = (up - down).astype(np.float64) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where((np.abs(b) >= np.abs(a)) | edge, 0.0, -b / a).astype(S.dtype)
    dskew = 0.5 * avg.astype(S.dtype) * shift
    pitches = ((k + shift) * float(sr) / n_fft).astype(S.dtype)
    mags = center + dskew
    return pitches, mags


def pitch_tuning(
    frequencies: np.ndarray, *, resolution: float = 0.01, bins_per_octave: int = 12
) -> float:
    """Estimate the tuning offset from a set of frequencies.

    The estimate is the peak of a histogram of their deviations from the equal-tempered grid.

    Mirrors ``librosa.pitch_tuning`` (librosa 0.11.0), except that an empty set returns 0.0
    without a warning.

    Parameters
    ----------
    frequencies : np.ndarray
        Frequencies, in Hz; values <= 0 are ignored.
    resolution : float in (0, 1)
        Width of a histogram bin, in fractions of a bin of the grid.
    bins_per_octave : int > 0
        Bins per octave of the grid.

    Returns
    -------
    tuning : float in [-0.5, 0.5)
        Deviation from A440 tuning, in fractions of a bin.
    """
    frequencies = np.atleast_1d(frequencies)
    frequencies = frequencies[frequencies > 0]
    if not np.any(frequencies):
        return 0.0
    residual = np.mod(bins_per_octave * hz_to_octs(frequencies), 1.0)
    # A residual of 0.95 is more likely a deviation of -0.05 from the next tone up.
    residual[residual >= 0.5] -= 1.0
    bins = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / resolution)) + 1)
    counts, tuning = np.histogram(residual, bins)
    return float(tuning[np.argmax(counts)])


def estimate_tuning(
    *,
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    n_fft: int = 2048,
    hop_length: int | None = None,
    resolution: float = 0.01,
    bins_per_octave: int = 12,
) -> float:
    """Estimate the tuning of a signal from its spectral peaks between 150 and 4000 Hz.

    Mirrors ``librosa.estimate_tuning`` (librosa 0.11.0) with its default ``piptrack`` settings
    (``fmin=150``, ``fmax=4000``, ``threshold=0.1``): peaks above a tenth of their frame's
    maximum, refined by parabolic interpolation, are kept where their magnitude reaches the median,
    and :func:`pitch_tuning` takes the histogram peak of their deviations.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)] or None
        Audio time series.
    sr : float > 0
        Sample rate, in Hz.
    S : np.ndarray [shape=(1 + n_fft // 2, n_frames)] or None
        A precomputed magnitude or power spectrogram (``chroma_stft`` passes the power one).
    n_fft : int > 0
        FFT length in samples (taken from ``S`` when it is given).
    hop_length : int > 0 or None
        Hop for the STFT of ``y``; ``None`` means ``n_fft // 4`` as in ``librosa.piptrack``.
    resolution : float in (0, 1)
        Resolution of the tuning, in fractions of a bin.
    bins_per_octave : int > 0
        Bins per octave.

    Returns
    -------
    tuning : float in [-0.5, 0.5)
        Deviation from A440 tuning, in fractions of a bin.
    """
    S, n_fft = _power_spectrogram(y, S, n_fft, hop_length, 1.0)
    if S.ndim != 2:
        raise ParameterError(f"estimate_tuning takes one spectrogram (2-D), got shape {S.shape}")
    pitch, mag = _piptrack_peaks(S, sr=sr, n_fft=n_fft)
    pitch_mask = pitch > 0
    threshold = np.median(mag[pitch_mask]) if pitch_mask.any() else 0.0
    return pitch_tuning(
        pitch[(mag >= threshold) & pitch_mask],
        resolution=resolution,
        bins_per_octave=bins_per_octave,
    )


def chroma_stft(
    *,
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    tuning: float | None = None,
    n_chroma: int = 12,
    threshold: float | None = None,
) -> np.ndarray:
    """Chromagram from a power spectrogram, each frame scaled to a maximum of 1.

    Mirrors ``librosa.feature.chroma_stft`` (librosa 0.11.0) with ``norm=np.inf``: with
    ``tuning=None`` the tuning is estimated from the power spectrogram (:func:`estimate_tuning`)
    and shifts the chroma filter bank.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)] or None
        Audio time series.
    sr : float > 0
        Sample rate, in Hz.
    S : np.ndarray [shape=(1 + n_fft // 2, n_frames)] or None
        A precomputed power spectrogram; if given, ``y`` is ignored.
    n_fft : int > 0
        FFT length in samples (taken from ``S`` when it is given).
    hop_length : int > 0
        Number of samples between successive frames.
    tuning : float or None
        Deviation from A440 tuning in fractions of a chroma bin; ``None`` estimates it.
    n_chroma : int > 0
        Number of chroma bins.
    threshold : float > 0 or None
        Frames whose largest raw chroma energy is below ``threshold`` are left unscaled instead
        of being scaled to 1; ``None`` means librosa's default, the smallest positive float32.
        This is ``librosa.util.normalize``'s ``threshold``, which ``librosa.feature.chroma_stft``
        does not pass on (an extension: the reference computes it as
        ``normalize(chroma_stft(..., norm=None), norm=np.inf, axis=-2, threshold=threshold)``).
        It keeps the resampler's rounding noise in digital silence (~1e-16 in power) from
        becoming full-scale chroma that differs between CPUs.

    Returns
    -------
    chromagram : np.ndarray [shape=(n_chroma, n_frames)], float32, in [0, 1]
        Frames without energy (or below ``threshold``) keep their raw, near-zero values.
    """
    S, n_fft = _power_spectrogram(y, S, n_fft, hop_length, 2.0)
    if tuning is None:
        tuning = estimate_tuning(S=S, sr=sr, bins_per_octave=n_chroma)
    chromafb = chroma_filters(sr=sr, n_fft=n_fft, tuning=float(tuning), n_chroma=n_chroma)
    return _scale_chroma(np.matmul(chromafb, S), threshold)


def _scale_chroma(raw: np.ndarray, threshold: float | None) -> np.ndarray:
    """Scale each chroma frame to a maximum of 1, leaving frames below ``threshold`` unscaled.

    ``librosa.util.normalize(raw, norm=np.inf, axis=-2, threshold=threshold)``; the default
    threshold is the smallest positive float.
    """
    if threshold is None:
        threshold = np.finfo(raw.dtype).tiny
    elif not threshold > 0:
        raise ParameterError(f"threshold={threshold!r} must be strictly positive")
    length = np.max(np.abs(raw), axis=-2, keepdims=True).astype(np.float64)
    length[length < threshold] = 1.0
    return (raw / length).astype(raw.dtype)


def _mel_of(S: np.ndarray, sr: int, config: FeatureConfig) -> np.ndarray:
    """The mel power spectrogram of ``S`` at ``config``'s filter bank."""
    return melspectrogram(S=S, sr=sr, n_fft=config.n_fft, n_mels=config.n_mels,
                          fmin=config.fmin, fmax=config.fmax, htk=config.htk)


def _mel_chroma_blocks(chunks, sr: int, config: FeatureConfig, *, mel: bool, chroma: bool,
                       energy: bool = False):
    """Yield mel power, raw chroma (at ``config.tuning``) and frame levels, block by block.

    Each block of the power spectrogram (:func:`~ser_edge.dsp.power_blocks_stream`) is projected
    onto the banks and dropped: ``(mel_block or None, raw_chroma_block or None, rms or None)``,
    equal to the columns of :func:`melspectrogram`, :func:`chroma_stft` (before scaling) and
    :func:`ser_edge.level.rms` of the whole spectrogram up to the rounding of the block-wise
    matrix products.
    """
    mel_kw = {"sr": sr, "n_fft": config.n_fft, "n_mels": config.n_mels, "fmin": config.fmin,
              "fmax": config.fmax, "htk": config.htk}
    chromafb = chroma_filters(sr=sr, n_fft=config.n_fft, tuning=float(config.tuning or 0.0),
                              n_chroma=config.n_chroma) if chroma else None
    for _, S in power_blocks_stream(chunks, n_fft=config.n_fft, hop_length=config.hop_length):
        yield (mel_projection(S, **mel_kw) if mel else None,
               np.matmul(chromafb, S) if chroma else None,
               rms(S=S, frame_length=config.n_fft)[0] if energy else None)


def _columns(blocks: tuple[np.ndarray, ...]) -> np.ndarray:
    """The blocks side by side (a clip of one block, the usual case, is not copied)."""
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)


def _streams(config: FeatureConfig) -> bool:
    """Whether ``config``'s features can be computed block by block of frames.

    All can but chroma at an estimated tuning, which takes the median over every frame's peaks.
    """
    return "chroma" not in config.features or config.tuning is not None


def _needs_levels(config: FeatureConfig) -> bool:
    """Whether ``config`` needs the frame levels: level normalisation or active frames."""
    return config.level_db is not None or config.frames == "active"


def _gain_and_mask(r: np.ndarray, config: FeatureConfig) -> tuple[float | None, np.ndarray | None]:
    """The level gain (or None) and the frames to pool (or None for all) of frame levels ``r``."""
    active = active_frames(energy_db(r), range_db=config.active_range_db,
                           floor_db=config.active_floor_db,
                           floor_range_db=config.active_floor_range_db)
    gain = None if config.level_db is None else level_gain(r, active, config.level_db)
    return gain, (active if config.frames == "active" else None)


def feature_matrices(y: np.ndarray, *, sr: int, config: FeatureConfig) -> dict[str, np.ndarray]:
    """The feature matrices named by ``config``, from one shared STFT, over the frames it pools.

    librosa's three calls (``mfcc``, ``chroma_stft``, ``melspectrogram``) each compute the same
    power spectrogram; this computes it once, and the log-mel spectrogram once for MFCC and mel.
    With ``config.trim_zeros``, ``config.trim_top_db`` or ``config.align_peak`` the ends of
    ``y`` are cut first (:meth:`FeatureConfig.trim`). With ``config.level_db`` the mel and
    chroma projections are scaled by the level gain (:func:`ser_edge.level.level_gain`) before
    the dB conversion; with ``config.frames == "active"`` only the active frames' columns are
    returned (the deltas are taken over every frame first).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32
        Mono audio at ``config.sr``.
    sr : int
        Sample rate of ``y``, in Hz; must equal ``config.sr``.
    config : FeatureConfig
        Which features and their parameters.

    Returns
    -------
    blocks : dict of str to np.ndarray [shape=(n_rows, n_frames)], float32
        ``"mfcc"`` (n_mfcc rows), ``"chroma"`` (n_chroma), ``"mel"`` (n_mels, in dB when
        ``config.mel_db``) and ``"mfcc_delta"`` (n_mfcc), those that ``config.features`` names;
        ``n_frames`` counts the pooled frames.

    Raises
    ------
    ParameterError
        If ``sr`` differs from ``config.sr``, ``y`` is not 1-D, finite and non-empty, or it has
        fewer frames than ``config.min_frames``.
    """
    if sr != config.sr:
        raise ParameterError(
            f"audio at {sr} Hz, but the feature configuration expects {config.sr} Hz: "
            f"load it with sr={config.sr}"
        )
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"feature_matrices takes mono audio (1-D), got shape {y.shape}")
    y = config.trim(y)
    wanted = set(config.features)
    levels = _needs_levels(config)
    need_mel = bool(wanted & {"mfcc", "mel", "mfcc_delta"})
    r = None
    if not _streams(config):
        # The tuning is estimated from every frame before the chroma bank is known: keep S.
        S, _ = _power_spectrogram(y, None, config.n_fft, config.hop_length, 2.0)
        mel = _mel_of(S, sr, config) if need_mel else None
        r = rms(S=S, frame_length=config.n_fft)[0] if levels else None
        gain, mask = _gain_and_mask(r, config) if levels else (None, None)
        if gain is not None:  # the tuning is estimated from the scaled spectrogram
            S = S * np.asarray(gain, dtype=S.dtype)
        raw = _raw_chroma(S, sr, config)
    else:  # the whole power spectrogram is never held
        mels, raws, rs = zip(*_mel_chroma_blocks([y], sr, config, mel=need_mel,
                                                  chroma="chroma" in wanted, energy=levels),
                             strict=True)
        mel = _columns(mels) if need_mel else None
        raw = _columns(raws) if "chroma" in wanted else None
        r = np.concatenate(rs) if levels else None
        gain, mask = _gain_and_mask(r, config) if levels else (None, None)
        if gain is not None and raw is not None:
            raw = raw * np.asarray(gain, dtype=raw.dtype)
    if gain is not None and mel is not None:
        mel = mel * np.asarray(gain, dtype=mel.dtype)
    blocks: dict[str, np.ndarray] = {}
    if mel is not None:
        mel_db = (power_to_db(mel, top_db=config.top_db)
                  if (wanted & {"mfcc", "mfcc_delta"} or config.mel_db) else None)
        if wanted & {"mfcc", "mfcc_delta"}:
            M = mfcc(S=mel_db, n_mfcc=config.n_mfcc)
            if "mfcc" in wanted:
                blocks["mfcc"] = M
            if "mfcc_delta" in wanted:
                if M.shape[-1] < config.delta_width:
                    raise ParameterError(
                        f"{M.shape[-1]} frames are fewer than the {config.delta_width} the "
                        "MFCC deltas need"
                    )
                blocks["mfcc_delta"] = delta(M, width=config.delta_width)
        if "mel" in wanted:
            blocks["mel"] = mel_db if config.mel_db else mel
    if raw is not None:
        blocks["chroma"] = _scale_chroma(raw, config.chroma_threshold)
    if mask is not None:
        blocks = {name: M[:, mask] for name, M in blocks.items()}
    if config.norm is not None:
        blocks = {name: normalise_rows(M, config.norm) for name, M in blocks.items()}
    return blocks


def normalise_rows(M: np.ndarray, norm: str) -> np.ndarray:
    """Per-utterance normalisation of each row over the frames (``FeatureConfig.norm``).

    Parameters
    ----------
    M : np.ndarray [shape=(n_rows, n_frames)], float32
    norm : {"mean", "meanvar"}
        Subtract each row's mean; ``"meanvar"`` also divides by its population standard
        deviation where it exceeds 0.01.

    Returns
    -------
    M_normalised : np.ndarray [shape=(n_rows, n_frames)], float32
    """
    mean = np.mean(M, axis=-1, keepdims=True)
    out = M - mean
    if norm == "meanvar":
        std = np.std(M, axis=-1, keepdims=True)
        out /= np.where(std > _NORM_FLOOR, std, 1.0)
    return out.astype(np.float32, copy=False)


def frame_matrix(y: np.ndarray, *, sr: int, config: FeatureConfig) -> np.ndarray:
    """The input of a frame-level network: :func:`feature_matrices`' blocks stacked.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32
        Mono audio at ``config.sr``.
    sr : int
        Sample rate of ``y``, in Hz; must equal ``config.sr``.
    config : FeatureConfig
        Which features; their rows are stacked in the order of ``config.features``.

    Returns
    -------
    F : np.ndarray [shape=(n_rows, n_frames)], float32
        ``n_rows = sum(config.block_sizes.values())``; ``n_frames`` the kept frames.

    Raises
    ------
    ParameterError
        As :func:`feature_matrices`.
    """
    blocks = feature_matrices(y, sr=sr, config=config)
    return np.ascontiguousarray(
        np.concatenate([blocks[name] for name in config.features], axis=0), dtype=np.float32)


def _raw_chroma(S: np.ndarray, sr: int, config: FeatureConfig) -> np.ndarray | None:
    """Unscaled chroma of a whole power spectrogram (the tuning estimated when it is None)."""
    if "chroma" not in config.features:
        return None
    tuning = config.tuning
    if tuning is None:
        tuning = estimate_tuning(S=S, sr=sr, bins_per_octave=config.n_chroma)
    chromafb = chroma_filters(sr=sr, n_fft=config.n_fft, tuning=float(tuning),
                              n_chroma=config.n_chroma)
    return np.matmul(chromafb, np.ascontiguousarray(S))


def feature_vector(y: np.ndarray, *, sr: int, config: FeatureConfig | None = None) -> np.ndarray:
    """The model's input vector: :func:`feature_matrices` pooled over time by :func:`pool`.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32
        Mono audio at ``config.sr``.
    sr : int
        Sample rate of ``y``, in Hz; must equal ``config.sr``.
    config : FeatureConfig or None
        The configuration; ``None`` means ``FeatureConfig()`` (the previous bundled model's).

    Returns
    -------
    x : np.ndarray [shape=(config.n_features,)], float32

    Raises
    ------
    ParameterError
        As :func:`feature_matrices`.
    """
    if config is None:
        config = FeatureConfig()
    return pool(feature_matrices(y, sr=sr, config=config), config)


class _RunningStats:
    """Mean, standard deviation, minimum and maximum of each row, over blocks of columns.

    Block moments are merged in float64 (Chan, Golub and LeVeque 1979), so the result matches
    numpy's float32 ``mean`` and ``std`` of the whole matrix to within their own rounding.
    """

    def __init__(self, n_rows: int):
        self.n = 0
        self.mean = np.zeros(n_rows)
        self.m2 = np.zeros(n_rows)
        self.min = np.full(n_rows, np.inf, dtype=np.float32)
        self.max = np.full(n_rows, -np.inf, dtype=np.float32)

    def add(self, M: np.ndarray) -> None:
        m = M.shape[1]
        M64 = M.astype(np.float64)
        mean_b = M64.mean(axis=1)
        M64 -= mean_b[:, np.newaxis]
        m2_b = np.einsum("ij,ij->i", M64, M64)
        n = self.n + m
        delta = mean_b - self.mean
        self.mean += delta * (m / n)
        self.m2 += m2_b + delta**2 * (self.n * m / n)
        self.n = n
        np.minimum(self.min, M.min(axis=1), out=self.min)
        np.maximum(self.max, M.max(axis=1), out=self.max)

    def value(self, stat: str, norm: str | None = None) -> np.ndarray:
        """A statistic of each row; with ``norm``, of the rows normalised as ``norm`` says."""
        std = np.sqrt(self.m2 / self.n)
        shift = self.mean if norm is not None else 0.0
        scale = np.where(std > _NORM_FLOOR, std, 1.0) if norm == "meanvar" else 1.0
        if stat == "mean":
            value = (self.mean - shift) / scale
        elif stat == "std":
            value = std / scale
        else:
            value = (getattr(self, stat).astype(np.float64) - shift) / scale
        return np.asarray(value, dtype=np.float32)


def feature_vector_stream(
    chunks: Iterable[np.ndarray], *, sr: int, config: FeatureConfig | None = None
) -> np.ndarray:
    """The model's input vector of audio that arrives in pieces, in memory that does not grow.

    :func:`feature_vector` holds the clip, its spectrogram blocks' mel matrix and the dB
    matrices, all growing with the clip's length; this keeps one block of frames and the running
    statistics. ``power_to_db``'s floor (``top_db`` under the loudest mel value of the whole clip)
    needs that value before any frame is converted to dB, so when MFCC or dB mel are wanted
    ``chunks`` is read twice: once for the loudest mel value, once for the features.
    With ``config.trim_zeros`` the digital silence at the signal's ends is dropped as the pieces
    come (:func:`ser_edge.dsp.trim_zeros_stream`): leading zeros are skipped, and a run of zeros
    is held back as a count until a non-zero sample follows it. With ``config.trim_top_db`` the
    pieces are read once more first, for the loudest sample and each piece's loudest: the
    pieces before the first loud sample and after the last are skipped, the two around them cut
    (:func:`ser_edge.dsp.trim_quiet`, the same samples). With ``config.align_peak`` they are
    read once more first, for the position of the loudest sample, and the samples before the
    aligned start are skipped (:func:`ser_edge.dsp.align_peak`).

    Parameters
    ----------
    chunks : re-iterable of np.ndarray [shape=(n_i,)], float32
        Consecutive pieces of one mono signal at ``config.sr`` (e.g. an
        :class:`ser_edge.audio.AudioStream`); iterated twice when dB is needed.
    sr : int
        Sample rate of the pieces, in Hz; must equal ``config.sr``.
    config : FeatureConfig or None
        The configuration; ``None`` means ``FeatureConfig()``. Chroma needs a fixed ``tuning``:
        the estimate takes the median of every frame's peaks.

    Returns
    -------
    x : np.ndarray [shape=(config.n_features,)], float32
        :func:`feature_vector` of the concatenated pieces, to within float32 rounding (the
        statistics are accumulated in float64 block by block, not reduced pairwise in float32).

    Raises
    ------
    ParameterError
        If ``sr`` differs from ``config.sr``, chroma is wanted with ``tuning=None``, or the
        pieces are not 1-D, finite, of one floating dtype, and at least one sample in all.
    """
    if config is None:
        config = FeatureConfig()
    if sr != config.sr:
        raise ParameterError(
            f"audio at {sr} Hz, but the feature configuration expects {config.sr} Hz: "
            f"load it with sr={config.sr}"
        )
    if not _streams(config):
        raise ParameterError("chroma with tuning=None needs the whole spectrogram: "
                             "use feature_vector, or fix the tuning")
    if config.trim_zeros:  # leading zeros skipped, trailing ones held back as a count
        chunks = _ZeroTrimmed(chunks)
    if config.trim_top_db is not None:
        chunks = _QuietTrimmed(chunks, config.trim_top_db)
    if config.align_peak:
        chunks = _PeakAligned(chunks, config.hop_length)
    wanted = set(config.features)
    cepstra = bool(wanted & {"mfcc", "mfcc_delta"})
    need_mel = cepstra or "mel" in wanted
    need_db = cepstra or ("mel" in wanted and config.mel_db)
    levels = _needs_levels(config)
    gain = mask = None
    floor = -np.inf
    if need_db or levels:  # pass 1: the loudest mel value (top_db's floor) and the frame levels
        peak, rs = None, []
        for mel, _, r in _mel_chroma_blocks(chunks, sr, config, mel=need_db, chroma=False,
                                            energy=levels):
            if need_db:
                top = mel.max()
                peak = top if peak is None else max(peak, top)
            if levels:
                rs.append(r)
        if levels:
            if not rs:
                raise ParameterError("no audio: the chunks hold no samples")
            gain, mask = _gain_and_mask(np.concatenate(rs), config)
        if need_db and config.top_db is not None and peak is not None:
            if gain is not None:  # scaling by a positive constant keeps the maximum's place
                peak = peak * np.asarray(gain, dtype=peak.dtype)
            floor = power_to_db(np.array([peak], dtype=np.float32), top_db=None)[0] - config.top_db
    acc = {name: _RunningStats(rows) for name, rows in config.block_sizes.items()}
    deltas = _DeltaStream(config.delta_width) if "mfcc_delta" in wanted else None

    def add(name: str, M: np.ndarray, start: int) -> None:
        if mask is not None:
            M = M[:, mask[start : start + M.shape[1]]]
        if M.shape[1]:
            acc[name].add(M)

    start = 0
    for mel, raw, _ in _mel_chroma_blocks(chunks, sr, config, mel=need_mel,
                                          chroma="chroma" in wanted):
        if gain is not None:
            mel = None if mel is None else mel * np.asarray(gain, dtype=mel.dtype)
            raw = None if raw is None else raw * np.asarray(gain, dtype=raw.dtype)
        if need_db:
            db = np.maximum(power_to_db(mel, top_db=None), floor)
        if cepstra:
            M = mfcc(S=db, n_mfcc=config.n_mfcc)
            if "mfcc" in wanted:
                add("mfcc", M, start)
            if deltas is not None:
                for at, D in deltas.push(M):
                    add("mfcc_delta", D, at)
        if "mel" in wanted:
            add("mel", db if config.mel_db else mel, start)
        if raw is not None:
            add("chroma", _scale_chroma(raw, config.chroma_threshold), start)
        start += (mel if mel is not None else raw).shape[1]
    if deltas is not None:
        for at, D in deltas.finish():
            add("mfcc_delta", D, at)
    if any(a.n == 0 for a in acc.values()):
        raise ParameterError("no audio: the chunks hold no frames to pool")
    return np.concatenate(
        [acc[name].value(stat, config.norm) for name in config.block_sizes
         for stat in config.stats_of(name)]
    ).astype(np.float32, copy=False)


class _ZeroTrimmed:
    """``chunks`` without the digital silence at the signal's ends, each time it is iterated.

    :func:`ser_edge.dsp.trim_zeros_stream` of ``chunks``: :func:`feature_vector_stream` reads
    the pieces twice.
    """

    def __init__(self, chunks: Iterable[np.ndarray]):
        self.chunks = chunks

    def __iter__(self):
        return trim_zeros_stream(self.chunks)


class _QuietTrimmed:
    """``chunks`` without their ends quieter than ``top_db`` under the loudest sample.

    :func:`ser_edge.dsp.trim_quiet` of the concatenated ``chunks``, sample for sample: a first
    reading finds the loudest sample and each piece's loudest (one float per piece), so that
    the piece holding the first loud sample and the one holding the last are known; each
    iteration then skips the pieces outside them and cuts those two.
    """

    def __init__(self, chunks: Iterable[np.ndarray], top_db: float):
        self.chunks = chunks
        peaks, dtype = [], np.dtype(np.float32)
        for chunk in chunks:
            dtype = np.asarray(chunk).dtype
            peaks.append(np.max(np.abs(chunk)) if len(chunk) else dtype.type(0))
        peak = max(peaks, default=0.0)
        # As trim_quiet: the threshold in float64, rounded to the samples' dtype.
        threshold = np.asarray(trim_quiet_threshold(peak, top_db)).astype(dtype)
        loud = [i for i, p in enumerate(peaks) if p > threshold]
        self.first, self.last = (loud[0], loud[-1]) if loud else (None, None)
        self.threshold = threshold

    def __iter__(self):
        for i, chunk in enumerate(self.chunks):
            if self.first is None:  # nothing above the threshold: the signal as it is
                yield chunk
                continue
            if i < self.first:
                continue
            if i > self.last:
                break
            loud = np.flatnonzero(np.abs(chunk) > self.threshold)
            start = loud[0] if i == self.first else 0
            stop = loud[-1] + 1 if i == self.last else len(chunk)
            yield chunk[start:stop]


class _PeakAligned:
    """``chunks`` without their first ``argmax(|y|) mod hop_length`` samples.

    :func:`ser_edge.dsp.align_peak` of the concatenated ``chunks``, sample for sample: a first
    reading finds the position of the loudest sample (the first of equal ones, as
    ``numpy.argmax``); each iteration then skips the samples before the aligned start.
    """

    def __init__(self, chunks: Iterable[np.ndarray], hop_length: int):
        self.chunks = chunks
        at, index, peak = 0, 0, None
        for chunk in chunks:
            if len(chunk):
                i = int(np.argmax(np.abs(chunk)))
                value = np.abs(chunk[i])
                if peak is None or value > peak:
                    peak, index = value, at + i
            at += len(chunk)
        self.skip = index % hop_length

    def __iter__(self):
        skip = self.skip
        for chunk in self.chunks:
            if skip >= len(chunk):
                skip -= len(chunk)
                continue
            yield chunk[skip:]
            skip = 0


class _DeltaStream:
    """:func:`delta` of a matrix that arrives a block of frames at a time.

    ``push`` takes the next columns and returns the ``(first_frame, columns)`` pieces of the
    deltas that are now known (each needs ``width // 2`` frames on either side); ``finish``
    returns the last ``width // 2``. Their concatenation is :func:`delta` of the whole matrix.
    """

    def __init__(self, width: int):
        self.width, self.half = width, width // 2
        self.held = None  # the last width - 1 columns seen, from frame self.held_at
        self.held_at = 0
        self.emitted = 0
        self.last = None

    def push(self, M: np.ndarray) -> list[tuple[int, np.ndarray]]:
        X = M if self.held is None else np.concatenate((self.held, M), axis=1)
        out = []
        if X.shape[1] >= self.width:
            interior = _delta_interior(X, self.width)
            if self.emitted == 0:  # "interp": the first frames take the first slope
                out.append((0, np.repeat(interior[:, :1], self.half, axis=1)))
            out.append((self.held_at + self.half, interior))
            self.emitted = self.held_at + self.half + interior.shape[1]
            self.last = interior[:, -1:]
            keep = self.width - 1
            self.held_at += X.shape[1] - keep
            X = X[:, -keep:]
        self.held = X
        return out

    def finish(self) -> list[tuple[int, np.ndarray]]:
        if self.last is None:
            n = 0 if self.held is None else self.held.shape[1]
            raise ParameterError(
                f"{n} frames are fewer than the {self.width} the MFCC deltas need"
            )
        return [(self.emitted, np.repeat(self.last, self.half, axis=1))]
