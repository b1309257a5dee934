"""Measure ser-edge on this machine: warm latency per stage, cold start, throughput.

The code behind ``ser-edge bench`` and ``benchmarks/latency.py``, so that a Raspberry Pi owner's
figures and the project's come from the same measuring code:

- :func:`ser_edge_stages` and :func:`librosa_stages`: one zero-argument callable per stage
  (decode, resample, stft, mel, mfcc, tuning, chroma, pooling, inference) and end to end
  (extract, features, classify), with their inputs prepared once;
- :func:`measure`: the timing core, repetitions that alternate between the sides, each a
  :func:`sample` of CPU time (``time.process_time``) and wall time, summarised by min and median;
- :func:`cold_start`: fresh ``python -m ser_edge classify`` processes, wall and CPU time, peak
  resident memory;
- :func:`throughput`: clips per second through :meth:`ser_edge.Classifier.classify_many`;
- :func:`streaming`: a live stream through :class:`ser_edge.StreamingClassifier` in 10 ms
  chunks: processing time per second of audio, latency from a window's end to its result,
  resident memory over the stream;
- :func:`run` and :func:`to_markdown`: the whole benchmark and its tables.

Only the standard library is imported with this module: numpy, onnxruntime and the rest load
when a function needs them, so that :func:`pin_threads` can still set the BLAS/OpenMP thread
counts before numpy loads its BLAS. librosa and scikit-learn, which the runtime does not
install, are imported only by :func:`librosa_stages` and :func:`sklearn_stand_in`, and only
called when they are installed.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._threads import THREAD_ENV
from ._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .features import FeatureConfig
    from .model import Classifier

__all__ = [
    "THREAD_ENV",
    "STAGES",
    "TOTALS",
    "pin_threads",
    "thread_state",
    "machine",
    "cpu_model",
    "mem_total_mb",
    "versions",
    "speech_like",
    "write_test_clip",
    "ser_edge_stages",
    "librosa_stages",
    "librosa_features_of",
    "sklearn_stand_in",
    "sample",
    "measure",
    "run_child",
    "cold_start",
    "throughput",
    "streaming",
    "rss_mb",
    "run",
    "to_markdown",
    "markdown_table",
    "format_ms",
]


#: The stages timed on their own, in pipeline order.
STAGES = ("decode", "resample", "stft", "mel", "mfcc", "tuning", "chroma", "pooling", "inference")
#: End-to-end measurements: samples to vector, file to vector, file to emotion.
TOTALS = ("extract", "features", "classify")

#: What each stage does (the legend of the latency table).
STAGE_HELP = {
    "decode": "file to mono float32 at its own rate",
    "resample": "to the model's rate (soxr HQ)",
    "stft": "power spectrogram",
    "mel": "mel filter bank",
    "mfcc": "dB, DCT",
    "tuning": "tuning estimate",
    "chroma": "chroma filter bank",
    "pooling": "mean/std over time",
    "inference": "the model on one vector",
    "extract": "samples to feature vector",
    "features": "file to feature vector",
    "classify": "file to emotion",
}

#: Fast calls are repeated within one sample until it lasts this long, in seconds.
SAMPLE_MIN_S = 0.005

#: The synthetic clip of ``ser-edge bench`` without a PATH: length in seconds, rate in Hz.
SYNTHETIC_SECONDS, SYNTHETIC_SR = 3.0, 48000

_RUNTIME_PACKAGES = ("numpy", "onnxruntime", "soxr", "soundfile", "typer")
_OPTIONAL_PACKAGES = ("librosa", "scikit-learn")


# -- threads -------------------------------------------------------------------------------------


def pin_threads() -> dict[str, Any]:
    """Pin the BLAS/OpenMP/numba thread pools to one thread, through the environment.

    Sets every variable of :data:`THREAD_ENV` to ``"1"`` in ``os.environ``. OpenBLAS, MKL and
    OpenMP read them once, when numpy loads its BLAS: they bind this process only if numpy is
    not imported yet, and they bind every child process started afterwards (the cold-start runs).
    Call it first, before anything imports numpy; ``ser-edge bench`` does.

    Returns
    -------
    threads : dict
        :func:`thread_state` after pinning: ``pinned_in_process`` is True when numpy was not
        loaded yet, or when it was loaded with these variables already at 1.
    """
    loaded = "numpy" in sys.modules
    before = {k: os.environ.get(k) for k in THREAD_ENV}
    os.environ.update(THREAD_ENV)
    already = all(before[k] == "1" for k in THREAD_ENV if k != "NUMBA_NUM_THREADS")
    return thread_state(pinned_in_process=not loaded or already, env_before=before)


def thread_state(
    *, pinned_in_process: bool | None = None, env_before: Mapping[str, str | None] | None = None
) -> dict[str, Any]:
    """The thread settings a measurement ran with, for the result.

    Parameters
    ----------
    pinned_in_process : bool or None
        Whether BLAS/OpenMP run one thread in this process; None works it out from the
        environment (all of :data:`THREAD_ENV` at 1 before numpy loaded cannot be checked
        afterwards, so it is taken from the current values).
    env_before : mapping of str to str or None, optional
        The variables before :func:`pin_threads` changed them.

    Returns
    -------
    threads : dict
        ``env`` (the variables now), ``env_before``, ``pinned_in_process``, ``children`` (the
        thread count of the cold-start processes: always 1) and ``onnxruntime_intra_op`` (1).
    """
    env = {k: os.environ.get(k) for k in THREAD_ENV}
    if pinned_in_process is None:
        pinned_in_process = all(env[k] == "1" for k in THREAD_ENV if k != "NUMBA_NUM_THREADS")
    return {"env": env, "env_before": dict(env_before) if env_before is not None else env,
            "pinned_in_process": bool(pinned_in_process), "children": 1,
            "onnxruntime_intra_op": 1}


# -- machine and versions ------------------------------------------------------------------------

# ARM's part numbers of the cores in Raspberry Pi boards (/proc/cpuinfo "CPU part").
_ARM_PARTS = {"0xd03": "Cortex-A53", "0xd08": "Cortex-A72", "0xd0b": "Cortex-A76",
              "0xd07": "Cortex-A57", "0xd05": "Cortex-A55", "0xb76": "ARM1176"}


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def cpu_model() -> str:
    """The CPU's name: ``model name`` from /proc/cpuinfo, or the board and its ARM core.

    On a Raspberry Pi, /proc/cpuinfo has no ``model name``; the board's name comes from its
    ``Model`` line or the device tree, and the core from ``CPU part`` (e.g. ``Raspberry Pi 4
    Model B Rev 1.4 (Cortex-A72)``). Elsewhere, ``platform.processor()`` or the architecture.

    Returns
    -------
    str
    """
    fields: dict[str, str] = {}
    for line in _read("/proc/cpuinfo").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    if fields.get("model name"):
        return fields["model name"]
    board = fields.get("Model") or _read("/proc/device-tree/model").strip("\x00\n ")
    core = _ARM_PARTS.get(fields.get("CPU part", "").lower())
    if board or core:
        return " ".join(x for x in (board, f"({core})" if board and core else core) if x)
    return platform.processor() or platform.machine()


def mem_total_mb() -> float | None:
    """Total memory from /proc/meminfo, in MiB (None where there is no /proc)."""
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024
    return None


def _blas() -> str | None:
    """The BLAS library numpy was built with and its version (numpy >= 1.25), or None."""
    try:
        import numpy as np

        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    except Exception:  # older numpy: no CONFIG dict
        return None


def machine() -> dict[str, Any]:
    """Facts about this machine: platform, CPU, cores, memory, Python, numpy's BLAS.

    Returns
    -------
    dict
        ``platform``, ``machine`` (architecture), ``cpu`` (:func:`cpu_model`), ``cpu_count``
        (logical cores), ``cpus_usable`` (those this process may run on), ``mem_total_mb``
        (MiB), ``python`` (version and implementation), ``blas``.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        usable = os.cpu_count()
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "mem_total_mb": mem_total_mb(),
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "blas": _blas(),
    }


def versions() -> dict[str, str | None]:
    """Installed versions of ser-edge, its runtime and librosa/scikit-learn, None when absent.

    Read from the packages' metadata, without importing them.

    Returns
    -------
    dict of str to str or None
    """
    out: dict[str, str | None] = {"ser-edge": __version__}
    for name in (*_RUNTIME_PACKAGES, *_OPTIONAL_PACKAGES):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# -- a test clip ---------------------------------------------------------------------------------


def speech_like(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """A seeded speech-like signal: voiced syllables with vibrato, and noise.

    A voice around 140 Hz (a slow glide of 30 Hz and a 5.5 Hz vibrato of 5 Hz) with harmonics
    falling off as ``k ** -1.2`` up to the Nyquist frequency, switched on and off three times a
    second like syllables, over white noise 40 dB below.

    Parameters
    ----------
    seconds : float > 0
        Length, in seconds.
    sr : int > 0
        Sample rate, in Hz.
    seed : int
        Seed of the noise.

    Returns
    -------
    y : np.ndarray [shape=(round(seconds * sr),)], float32
        Peak amplitude 0.3.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t) + 5 * np.sin(2 * np.pi * 5.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(k * phase) / k**1.2 for k in range(1, 25) if k * 200 < sr / 2)
    syllables = (np.sin(2 * np.pi * 3.0 * t) > -0.2).astype(float)
    y = y * syllables + 0.01 * rng.standard_normal(n)
    return (0.3 * y / np.max(np.abs(y))).astype(np.float32)


def write_test_clip(
    folder: str | os.PathLike[str],
    seconds: float = SYNTHETIC_SECONDS,
    sr: int = SYNTHETIC_SR,
    seed: int = 0,
) -> Path:
    """Write :func:`speech_like` as a mono 16-bit WAV file.

    Parameters
    ----------
    folder : str or os.PathLike
        An existing folder.
    seconds : float > 0
        Length, in seconds.
    sr : int > 0
        Sample rate, in Hz.
    seed : int
        Seed of the noise.

    Returns
    -------
    path : pathlib.Path
        ``folder/speech-like_{seconds}s_{sr}Hz.wav``; the same arguments give the same file.
    """
    import soundfile as sf

    path = Path(folder) / f"speech-like_{seconds:g}s_{sr}Hz.wav"
    sf.write(path, speech_like(seconds, sr, seed), sr, subtype="PCM_16")
    return path


# -- the stages ----------------------------------------------------------------------------------


def ser_edge_stages(
    path: str | os.PathLike[str], clf: Classifier, config: FeatureConfig | None = None
) -> dict[str, Callable[[], Any]]:
    """Zero-argument callables, one per stage, on ser-edge; their inputs are prepared once.

    Parameters
    ----------
    path : str or os.PathLike
        An audio file.
    clf : Classifier
        Its session runs ``inference``; it runs ``classify``.
    config : FeatureConfig or None
        The features' parameters; None means ``clf.feature_config``.

    Returns
    -------
    dict of str to callable
        A callable for each name of :data:`STAGES` and :data:`TOTALS`. ``stft`` is the power
        spectrogram, ``mfcc`` includes the dB conversion of the mel spectrogram, ``chroma``
        takes the configuration's tuning (estimated once here when it is None), ``extract``
        is :func:`ser_edge.features.feature_vector` of the samples at the model's rate (a frame
        model's :func:`~ser_edge.features.frame_matrix`), ``features`` loads the file at that
        rate first, ``inference`` runs the model on its input.

    Raises
    ------
    AudioError
        If the file cannot be decoded.
    """
    import numpy as np

    from . import audio
    from .features import (
        _power_spectrogram,
        chroma_stft,
        estimate_tuning,
        feature_matrices,
        feature_vector,
        frame_matrix,
        melspectrogram,
        mfcc,
        pool,
        power_to_db,
    )

    config = clf.feature_config if config is None else config
    sr, n_fft, hop = config.sr, config.n_fft, config.hop_length
    mel_kw = {"n_mels": config.n_mels, "fmin": config.fmin, "fmax": config.fmax, "htk": config.htk}
    y, sr_native = audio.load(path, sr=None)
    y_sr = audio.resample(y, orig_sr=sr_native, target_sr=sr)
    S = _power_spectrogram(y_sr, None, n_fft, hop, 2.0)[0]
    mel = melspectrogram(S=S, sr=sr, n_fft=n_fft, **mel_kw)
    estimated = estimate_tuning(S=S, sr=sr, bins_per_octave=config.n_chroma)
    tuning = estimated if config.tuning is None else config.tuning
    blocks = feature_matrices(y_sr, sr=sr, config=config)  # with every option of config
    kind = getattr(clf, "input_kind", "features")

    def computed(y: Any) -> Any:  # what the runtime computes: a frame model's is the matrix
        if kind == "frames":
            return frame_matrix(y, sr=sr, config=config)
        return feature_vector(y, sr=sr, config=config)

    # A waveform model (python -m export fuse) computes the features in its graph.
    model_input = y_sr if kind == "waveform" else computed(y_sr)

    def features() -> Any:
        y, _ = audio.load(path, sr=sr)
        return computed(y)

    def extract() -> Any:
        return computed(y_sr)

    return {
        "decode": lambda: audio.load(path, sr=None),
        "resample": lambda: audio.resample(y, orig_sr=sr_native, target_sr=sr),
        "stft": lambda: _power_spectrogram(y_sr, None, n_fft, hop, 2.0),
        "mel": lambda: melspectrogram(S=S, sr=sr, n_fft=n_fft, **mel_kw),
        "mfcc": lambda: mfcc(S=power_to_db(mel), n_mfcc=config.n_mfcc),
        "tuning": lambda: estimate_tuning(S=S, sr=sr, bins_per_octave=config.n_chroma),
        "chroma": lambda: chroma_stft(S=S, sr=sr, tuning=tuning, n_chroma=config.n_chroma),
        "pooling": lambda: pool(blocks, config),
        "inference": lambda: clf._run(model_input[np.newaxis]),
        "extract": extract,
        "features": features,
        "classify": lambda: clf.classify(path),
    }


def librosa_features_of(y: np.ndarray, sr: int, cfg: Mapping[str, Any]) -> np.ndarray:
    """The feature vector the librosa way: the three calls, dB and pooling.

    ``librosa.feature.mfcc``, ``chroma_stft`` and ``melspectrogram`` (+ ``power_to_db``) on the
    samples, each computing its own spectrogram (and ``librosa.feature.delta`` of the MFCCs),
    then each statistic of each row. The level options of a configuration (``level_db``, active
    frames, ``top_db``, ``norm``) are no librosa call and are left out: the vector has the
    model's width and the librosa way's cost, not the model's values, so a ratio against
    ser-edge (which computes them) is, if anything, low. The same code
    as ``features_of`` in ``benchmarks/librosa_way.py`` (a standalone script, for a venv without
    ser-edge), which a test keeps equal to this one. Needs librosa.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32
        Mono audio.
    sr : int > 0
        Its sample rate, in Hz.
    cfg : mapping
        A feature configuration as JSON (``json.loads(FeatureConfig.to_json())``).

    Returns
    -------
    x : np.ndarray [shape=(n_features,)], float32
    """
    import librosa
    import numpy as np

    stft = {"n_fft": cfg["n_fft"], "hop_length": cfg["hop_length"]}
    mel = {"n_mels": cfg["n_mels"], "fmin": cfg["fmin"], "fmax": cfg["fmax"], "htk": cfg["htk"]}
    blocks = {}
    for name in cfg["features"]:
        if name in ("mfcc", "mfcc_delta") and "mfcc" not in blocks:
            blocks["mfcc"] = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=cfg["n_mfcc"], **stft, **mel)
        if name == "mfcc_delta":
            blocks[name] = librosa.feature.delta(blocks["mfcc"], width=cfg.get("delta_width", 9))
        elif name == "chroma":
            blocks[name] = librosa.feature.chroma_stft(y=y, sr=sr, tuning=cfg["tuning"],
                                                       n_chroma=cfg["n_chroma"], **stft)
        elif name == "mel":
            m = librosa.feature.melspectrogram(y=y, sr=sr, **stft, **mel)
            blocks[name] = librosa.power_to_db(m, ref=1.0) if cfg["mel_db"] else m
    stats = {"mean": np.mean, "std": np.std, "min": np.min, "max": np.max}
    per_block = cfg["stats"] if isinstance(cfg["stats"], dict) else None
    return np.concatenate(
        [stats[s](blocks[b], axis=1) for b in cfg["features"]
         for s in (per_block.get(b, ()) if per_block else cfg["stats"])]
    ).astype(np.float32)


def librosa_stages(
    path: str | os.PathLike[str], config: FeatureConfig, pipe: Any = None
) -> dict[str, Callable[[], Any]]:
    """Zero-argument callables, one per stage, on librosa (and scikit-learn).

    The same stages as :func:`ser_edge_stages`, computed the way a librosa user does:
    ``librosa.load`` (soxr_hq), ``librosa.resample``, librosa's spectrogram, feature functions
    and ``power_to_db``; ``extract`` is :func:`librosa_features_of`. Imports librosa.

    Parameters
    ----------
    path : str or os.PathLike
        An audio file.
    config : FeatureConfig
        The features' parameters (the model's).
    pipe : scikit-learn estimator or None
        Runs ``inference`` and ``classify`` through ``predict_proba``; None leaves those two out.

    Returns
    -------
    dict of str to callable
        A callable for each name of :data:`STAGES` and :data:`TOTALS` (but ``inference`` and
        ``classify`` when ``pipe`` is None).
    """
    import librosa
    import numpy as np
    from librosa.core.spectrum import _spectrogram

    cfg = json.loads(config.to_json())
    sr, n_fft, hop = config.sr, config.n_fft, config.hop_length
    mel_kw = {"n_mels": config.n_mels, "fmin": config.fmin, "fmax": config.fmax, "htk": config.htk}
    y, sr_native = librosa.load(path, sr=None, mono=True)
    y_sr = librosa.resample(y, orig_sr=sr_native, target_sr=sr, res_type="soxr_hq")
    S = _spectrogram(y=y_sr, n_fft=n_fft, hop_length=hop, power=2.0)[0]
    mel = librosa.feature.melspectrogram(S=S, sr=sr, n_fft=n_fft, **mel_kw)
    estimated = librosa.estimate_tuning(S=S, sr=sr, bins_per_octave=config.n_chroma)
    tuning = estimated if config.tuning is None else config.tuning
    blocks = [librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=config.n_mfcc),
              librosa.feature.chroma_stft(S=S, sr=sr, tuning=tuning, n_chroma=config.n_chroma),
              librosa.power_to_db(mel)]

    def pooling() -> Any:
        return np.concatenate([np.r_[b.mean(axis=1), b.std(axis=1)] for b in blocks]).astype(
            np.float32)

    def features() -> Any:
        y, sr_ = librosa.load(str(path), sr=cfg["sr"], mono=True)
        return librosa_features_of(y, sr_, cfg)

    x = librosa_features_of(y_sr, sr, cfg)  # the model's width (its options' extra rows too)
    stages: dict[str, Callable[[], Any]] = {
        "decode": lambda: librosa.load(path, sr=None, mono=True),
        "resample": lambda: librosa.resample(y, orig_sr=sr_native, target_sr=sr,
                                             res_type="soxr_hq"),
        "stft": lambda: _spectrogram(y=y_sr, n_fft=n_fft, hop_length=hop, power=2.0),
        "mel": lambda: librosa.feature.melspectrogram(S=S, sr=sr, n_fft=n_fft, **mel_kw),
        "mfcc": lambda: librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=config.n_mfcc),
        "tuning": lambda: librosa.estimate_tuning(S=S, sr=sr, bins_per_octave=config.n_chroma),
        "chroma": lambda: librosa.feature.chroma_stft(S=S, sr=sr, tuning=tuning,
                                                      n_chroma=config.n_chroma),
        "pooling": pooling,
        "inference": lambda: pipe.predict_proba(x[np.newaxis, :]),
        "extract": lambda: librosa_features_of(y_sr, sr, cfg),
        "features": features,
        "classify": lambda: pipe.predict_proba(features()[np.newaxis, :]),
    }
    if pipe is None:
        del stages["inference"], stages["classify"]
    return stages


def sklearn_stand_in(
    n_features: int, labels: Sequence[str], hidden_layer_sizes: Sequence[int], *, seed: int = 0
) -> Any:
    """A scikit-learn pipeline with the cost of an MLP model, for librosa's side of a comparison.

    ``Pipeline(StandardScaler, MLPClassifier(hidden_layer_sizes))`` fitted for 20 iterations on
    seeded random rows: its predictions mean nothing, its ``predict_proba`` costs what the real
    pipeline's does. Needs scikit-learn.

    Parameters
    ----------
    n_features : int > 0
        Input width.
    labels : sequence of str
        Class names (40 rows each).
    hidden_layer_sizes : sequence of int
        The MLP's hidden layers, in units.
    seed : int
        Seed of the rows.

    Returns
    -------
    sklearn.pipeline.Pipeline
    """
    import warnings

    import numpy as np
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40 * len(labels), n_features)).astype(np.float32)
    y = np.array(labels)[np.arange(len(X)) % len(labels)]
    mlp = MLPClassifier(hidden_layer_sizes=tuple(hidden_layer_sizes), max_iter=20,
                        random_state=0)
    pipe = Pipeline([("scaler", StandardScaler()), ("clf", mlp)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: 20 iterations on noise
        pipe.fit(X, y)
    return pipe


# -- the timing core -----------------------------------------------------------------------------


def sample(fn: Callable[[], Any], number: int) -> tuple[float, float]:
    """Time ``number`` back-to-back calls of ``fn``.

    Parameters
    ----------
    fn : callable
        Called with no arguments.
    number : int > 0
        Calls in the sample.

    Returns
    -------
    wall_s, cpu_s : float
        Wall time (``time.perf_counter``) and CPU time of this process (``time.process_time``,
        user + system, all its threads) per call, in seconds.
    """
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number, (time.process_time() - c0) / number


def measure(
    sides: Mapping[str, Mapping[str, Callable[[], Any]]],
    reps: int,
    stages: Sequence[str] = (*STAGES, *TOTALS),
) -> dict[str, dict[str, Any]]:
    """Time each stage on each side in one warm process, the sides alternating.

    Each callable is first called once (warm-up: caches, lazy imports, numba's compilation) and
    timed once more to choose how many calls make one sample (enough for
    :data:`SAMPLE_MIN_S`, at most 1000). Then ``reps`` repetitions: in each, every stage is
    sampled on every side, the sides in their given order on even repetitions and reversed on
    odd ones, so that a drift of the machine reaches both alike.

    Parameters
    ----------
    sides : mapping of str to (mapping of str to callable)
        Per side, its stages (from :func:`ser_edge_stages`, :func:`librosa_stages`). The first
        side is the reference of the ratios. A stage a side lacks is skipped for that side.
    reps : int > 0
        Repetitions (samples per stage and side).
    stages : sequence of str
        Which stages, in this order.

    Returns
    -------
    dict of str to dict
        Per stage, per side that has it: ``min_s``, ``median_s`` (wall, seconds per call),
        ``cpu_min_s``, ``cpu_median_s`` (CPU), the samples (``samples_wall_s``,
        ``samples_cpu_s``) and ``calls_per_sample``. With a second side that has the stage too:
        ``ratio_min``, ``ratio_median``, ``ratio_cpu_min``, ``ratio_cpu_median``, the second
        side's figure over the first's (above 1: the first side is faster; None if the
        first's is 0).
    """
    names = list(sides)
    number: dict[tuple[str, str], int] = {}
    for side, fns in sides.items():  # warm-up, and calls per sample for the fast stages
        for stage, fn in fns.items():
            fn()
            once = sample(fn, 1)[0]
            number[side, stage] = max(1, min(1000, int(SAMPLE_MIN_S / max(once, 1e-7))))
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {
        s: {k: [] for k in sides[s]} for s in sides}
    for rep in range(reps):
        order = names if rep % 2 == 0 else names[::-1]
        for stage in stages:
            for side in order:
                if stage in sides[side]:
                    samples[side][stage].append(sample(sides[side][stage], number[side, stage]))
    out: dict[str, dict[str, Any]] = {}
    for stage in stages:
        out[stage] = {}
        for side in names:
            if stage not in sides[side]:
                continue
            wall = [w for w, _ in samples[side][stage]]
            cpu = [c for _, c in samples[side][stage]]
            out[stage][side] = {"min_s": min(wall), "median_s": statistics.median(wall),
                                "cpu_min_s": min(cpu), "cpu_median_s": statistics.median(cpu),
                                "samples_wall_s": wall, "samples_cpu_s": cpu,
                                "calls_per_sample": number[side, stage]}
        if len(names) > 1 and names[0] in out[stage] and names[1] in out[stage]:
            a, b = out[stage][names[0]], out[stage][names[1]]
            for key in ("min", "median", "cpu_min", "cpu_median"):
                out[stage][f"ratio_{key}"] = (b[f"{key}_s"] / a[f"{key}_s"]
                                              if a[f"{key}_s"] > 0 else None)
    return out


# -- cold start ----------------------------------------------------------------------------------

# A small launcher: the child is forked from this ~10 MB interpreter, not from the benchmark. On
# Linux a child's ru_maxrss keeps the high-water mark of the process it was forked from (exec
# records the old address space's peak), so forking from a process that has imported numpy and
# onnxruntime (or librosa) would report that process's memory for any child.
_LAUNCHER = """
import os, sys, time, json
out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(out, "w") as f:
    json.dump({"wall_s": wall, "maxrss_kb": ru.ru_maxrss, "user_s": ru.ru_utime,
               "sys_s": ru.ru_stime, "code": os.waitstatus_to_exitcode(status)}, f)
"""

#: ``ru_maxrss`` is in kilobytes on Linux, in bytes on macOS.
_MAXRSS_TO_MB = 1 / 2**20 if sys.platform == "darwin" else 1 / 1024


def run_child(
    cmd: Sequence[str | os.PathLike[str]], env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run a command to completion: its wall time, CPU time, own peak RSS and output.

    Where ``os.fork`` and ``os.wait4`` exist (Linux, macOS), the command is started by a small
    launcher interpreter (see ``_LAUNCHER``), timed there from fork to exit, and its resource
    usage is that of the command alone (``wait4``). Elsewhere it is timed from here with
    ``subprocess``, and its CPU time and memory are not known.

    Parameters
    ----------
    cmd : sequence of str or os.PathLike
        The command and its arguments.
    env : mapping of str to str, optional
        Its environment; None inherits this process's.

    Returns
    -------
    dict
        ``wall_s`` (seconds), ``user_s`` and ``sys_s`` (CPU seconds, or None), ``peak_rss_mb``
        (the command's peak resident memory in MiB, or None), ``stdout`` (text).

    Raises
    ------
    RuntimeError
        If the command fails: the message's first line names the command, its exit status and
        the last line of its stderr; the lines after it are the tail of its stderr.
    """
    cmd = [os.fspath(c) for c in cmd]
    env = dict(env) if env is not None else None
    if not (hasattr(os, "fork") and hasattr(os, "wait4")):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, env=env)
        wall = time.perf_counter() - t0
        rep = {"code": proc.returncode, "wall_s": wall, "user_s": None, "sys_s": None,
               "maxrss_kb": None}
    else:
        with tempfile.TemporaryDirectory(prefix="ser-edge-child-") as d:
            report = Path(d) / "rusage.json"
            launch = [sys.executable, "-S", "-c", _LAUNCHER, str(report), *cmd]
            proc = subprocess.run(launch, capture_output=True, env=env)
            rep = json.loads(report.read_text()) if report.exists() else {"code": proc.returncode}
    stdout, stderr = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    if proc.returncode != 0 or rep["code"] != 0:
        last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "")
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit status {rep['code']}): {last}\n"
                           f"{stderr[-3000:]}")
    rss = rep["maxrss_kb"]
    return {
        "wall_s": rep["wall_s"],
        "peak_rss_mb": rss * _MAXRSS_TO_MB if rss is not None else None,
        "user_s": rep["user_s"],
        "sys_s": rep["sys_s"],
        "stdout": stdout,
    }


def _spread(values: Sequence[float | None]) -> dict[str, Any]:
    known = [v for v in values if v is not None]
    if not known:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(known), "min": min(known), "max": max(known)}


def cold_start(
    clip: str | os.PathLike[str], *, runs: int, model: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Time fresh processes that classify one clip: ``python -m ser_edge classify CLIP``.

    Each run is a new interpreter (this one, ``sys.executable``) that imports ser-edge, loads
    the model and classifies the clip, with BLAS/OpenMP pinned to one thread (:data:`THREAD_ENV`).
    The runs follow each other; the files are in the page cache by then if this process has read
    them (``ser-edge bench`` has), so this is a cold *process*, not a cold disk. See
    :func:`run_child` for how time and memory are taken.

    Parameters
    ----------
    clip : str or os.PathLike
        An audio file.
    runs : int > 0
        Fresh processes.
    model : str or os.PathLike or None
        Passed as ``--model``; None for the bundled model.

    Returns
    -------
    dict
        ``command``, ``runs``, and per run and summarised (``median``, ``min``, ``max``):
        ``wall_s`` (seconds), ``cpu_s`` (user + system CPU seconds, or None) and
        ``peak_rss_mb`` (MiB, or None where it cannot be measured); ``rss_method``.

    Raises
    ------
    RuntimeError
        If a run fails.
    """
    cmd = [sys.executable, "-m", "ser_edge", "classify", os.fspath(clip)]
    if model is not None:
        cmd += ["--model", os.fspath(model)]
    env = {**os.environ, **THREAD_ENV}
    per_run = [run_child(cmd, env) for _ in range(runs)]
    wall = [r["wall_s"] for r in per_run]
    cpu = [r["user_s"] + r["sys_s"] if r["user_s"] is not None else None for r in per_run]
    rss = [r["peak_rss_mb"] for r in per_run]
    return {
        "command": cmd,
        "runs": runs,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": rss,
        "wall": _spread(wall),
        "cpu": _spread(cpu),
        "peak_rss": _spread(rss),
        "rss_method": "wait4 ru_maxrss" if rss and rss[0] is not None else None,
    }


# -- throughput ----------------------------------------------------------------------------------


def throughput(
    clf: Classifier, paths: Sequence[str | os.PathLike[str]], *, min_clips: int = 50
) -> dict[str, Any]:
    """Clips per second, classified one after the other in this process.

    The files go through :meth:`Classifier.classify_many` (decode, resample, features,
    inference), whole passes over ``paths`` until at least ``min_clips`` classifications (one
    pass when there are that many files), after one unmeasured call on the first file.

    Parameters
    ----------
    clf : Classifier
        The classifier (its thread count is the one measured).
    paths : sequence of str or os.PathLike
        Audio files; at least one.
    min_clips : int > 0
        Fewest classifications timed.

    Returns
    -------
    dict
        ``files``, ``passes``, ``clips`` (classified), ``failed`` (per pass), ``failures``
        (``"path: reason"`` lines of the first pass), ``audio_s`` (seconds of audio
        classified), ``wall_s`` and ``cpu_s`` (seconds in all), ``clips_per_s`` and
        ``clips_per_cpu_s`` (clips per second of wall and of CPU time), ``realtime_factor``
        (seconds of audio per second of wall time).
    """
    paths = list(paths)
    if not paths:
        raise ValueError("throughput needs at least one file")
    passes = -(-min_clips // len(paths))
    for _ in clf.classify_many(paths[:1]):  # warm-up
        pass
    clips, failed, audio_s, failures = 0, 0, 0.0, []
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(passes):
        for r in clf.classify_many(paths):
            if hasattr(r, "error"):
                failed += 1
                if i == 0:
                    failures.append(r.message)
            else:
                clips += 1
                audio_s += r.duration_s
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "files": len(paths),
        "passes": passes,
        "clips": clips,
        "failed": failed // passes,
        "failures": failures,
        "audio_s": audio_s,
        "wall_s": wall,
        "cpu_s": cpu,
        "clips_per_s": clips / wall if wall > 0 else None,
        "clips_per_cpu_s": clips / cpu if cpu > 0 else None,
        "realtime_factor": audio_s / wall if wall > 0 else None,
    }


# -- streaming -----------------------------------------------------------------------------------


def rss_mb() -> float | None:
    """Resident memory of this process now, in MiB, from /proc (None where there is none)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def streaming(
    clf: Classifier,
    y: np.ndarray,
    sr: int,
    *,
    seconds: float = 60.0,
    chunk_s: float = 0.01,
    window_s: float = 3.0,
    hop_s: float = 1.0,
    rss_every_s: float = 10.0,
) -> dict[str, Any]:
    """Stream ``y`` (tiled to ``seconds``) through a StreamingClassifier, as a microphone would.

    The audio is pushed as int16 in chunks of ``chunk_s``, one after the other as fast as the
    classifier takes them. For each chunk that completes a window, the latency is the stream
    time from the window's end to the end of that chunk (the resampler's delay, zero when the
    stream is at the model's rate, plus up to one chunk) plus the time the push took.

    Parameters
    ----------
    clf : Classifier
        The classifier.
    y : np.ndarray [shape=(n,)], float
        Mono audio at ``sr``, repeated (or cut) to ``seconds``; at least one chunk long.
    sr : int
        Its sample rate, the stream's, in Hz.
    seconds : float > 0
        Length of the stream, in seconds.
    chunk_s : float > 0
        Length of a chunk, in seconds.
    window_s, hop_s : float > 0
        The classifier's window and hop, in seconds.
    rss_every_s : float > 0
        Stream seconds between two readings of the resident memory.

    Returns
    -------
    dict
        ``sr``, ``seconds``, ``chunk_s``, ``window_s``, ``hop_s``, ``windows``,
        ``speech_windows``, ``cpu_s`` and ``wall_s`` (all pushes), ``cpu_per_audio_s``
        (processing time over audio time, CPU), ``wall_per_audio_s``, ``latency_ms``
        (``median``, ``p95``, ``max`` of stream delay + push wall time, per window),
        ``compute_ms`` (the push's wall time alone, same statistics), ``compute_cpu_ms`` (its
        CPU time, which other work on the machine does not stretch), ``delay_ms`` (the stream
        delay alone), ``rss_mb`` (``[stream seconds, MiB]`` pairs; empty without /proc),
        ``rss_growth_mb`` (last reading minus the first after one window).
    """
    import numpy as np

    from .stream import StreamingClassifier

    n = int(round(seconds * sr))
    # The source once, as int16; the stream's chunks are cut from it in a loop, so the hour of
    # audio is never held and the resident memory is the classifier's and the source's.
    pcm = (np.clip(np.asarray(y, np.float32), -1, 1) * 32767).astype(np.int16)
    twice = np.concatenate((pcm, pcm))
    stream = StreamingClassifier(clf, sr=sr, window_s=window_s, hop_s=hop_s)
    step = max(1, int(round(chunk_s * sr)))
    latency, compute, compute_cpu, delay, rss = [], [], [], [], []
    windows = speech = 0
    next_rss = window_s
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(0, n, step):
        j = i % len(pcm)
        chunk = twice[j : j + min(step, n - i)]
        w0, p0 = time.perf_counter(), time.process_time()
        results = stream.push(chunk)
        took, took_cpu = time.perf_counter() - w0, time.process_time() - p0
        now = (i + len(chunk)) / sr
        for r in results:
            windows += 1
            speech += r.speech
            wait = max(0.0, now - r.end_s)
            delay.append(1000 * wait)
            compute.append(1000 * took)
            compute_cpu.append(1000 * took_cpu)
            latency.append(1000 * (wait + took))
        if now >= next_rss:
            mb = rss_mb()
            if mb is not None:
                rss.append([round(now, 1), round(mb, 1)])
            next_rss += rss_every_s
    windows += len(stream.flush())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0

    def stats(v: list[float]) -> dict[str, float | None]:
        if not v:
            return {"median": None, "p95": None, "max": None}
        a = np.asarray(v)
        return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)),
                "max": float(a.max())}

    return {
        "sr": sr, "seconds": n / sr, "chunk_s": step / sr, "window_s": window_s, "hop_s": hop_s,
        "windows": windows, "speech_windows": speech, "cpu_s": cpu, "wall_s": wall,
        "cpu_per_audio_s": cpu * sr / n, "wall_per_audio_s": wall * sr / n,
        "latency_ms": stats(latency), "compute_ms": stats(compute),
        "compute_cpu_ms": stats(compute_cpu), "delay_ms": stats(delay),
        "rss_mb": rss, "rss_growth_mb": (rss[-1][1] - rss[0][1]) if len(rss) > 1 else None,
    }


# -- the whole benchmark -------------------------------------------------------------------------


def _librosa_side(
    clf: Classifier, log: Callable[[str], None]
) -> tuple[dict[str, Any], Any]:
    """Whether librosa's side can be measured, and the scikit-learn stand-in when it can."""
    info: dict[str, Any] = {"compared": False, "version": None, "inference": None, "note": None}
    if importlib.util.find_spec("librosa") is None:
        info["note"] = "librosa is not installed: only ser-edge's figures are shown"
        return info, None
    try:
        import librosa
    except Exception as exc:  # a broken install: say so and go on without it
        info["note"] = (f"librosa is installed but does not import ({type(exc).__name__}: "
                        f"{exc}): only ser-edge's figures are shown")
        return info, None
    info.update(compared=True, version=librosa.__version__)
    params = clf.metadata.get("training", {})
    params = params.get("estimator_params", {}) if isinstance(params, dict) else {}
    hidden = params.get("hidden_layer_sizes") if isinstance(params, dict) else None
    if importlib.util.find_spec("sklearn") is None:
        info["note"] = "scikit-learn is not installed: librosa's side has no inference or classify"
        return info, None
    if not hidden:
        info["note"] = ("the model's metadata names no MLP hidden_layer_sizes: librosa's side "
                        "has no inference or classify")
        return info, None
    log("fitting a scikit-learn stand-in of the model for librosa's side ...")
    pipe = sklearn_stand_in(clf.feature_config.n_features, clf.labels, hidden)
    info["inference"] = (f"scikit-learn Pipeline(StandardScaler, MLPClassifier{tuple(hidden)}) "
                         "fitted on random rows: the model's cost, not its predictions")
    return info, pipe


def run(
    paths: Sequence[str | os.PathLike[str]] | None = None,
    *,
    model: str | os.PathLike[str] | Classifier | None = None,
    reps: int = 5,
    cold_runs: int = 3,
    min_clips: int = 50,
    stream_seconds: float = 60.0,
    compare_librosa: bool = True,
    threads: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Benchmark ser-edge on this machine: warm latency per stage, cold start, throughput.

    Parameters
    ----------
    paths : sequence of str or os.PathLike, optional
        Audio files: the first is timed per stage and in cold start, all of them in throughput.
        None or empty: a synthetic clip (:func:`write_test_clip`, 3 s at 48 kHz) is written to a
        temporary folder, used, and deleted.
    model : str or os.PathLike or Classifier or None
        The model; None for the bundled one.
    reps : int > 0
        Repetitions per stage and side for the warm latency.
    cold_runs : int >= 0
        Fresh processes for the cold start; 0 skips it.
    min_clips : int > 0
        Fewest classifications for the throughput.
    stream_seconds : float >= 0
        Length of the live stream timed by :func:`streaming`, at the model's rate and at the
        clip's own (the first file, tiled); 0 skips it.
    compare_librosa : bool
        Measure librosa's side too when librosa is installed (with scikit-learn, its inference).
    threads : mapping, optional
        What :func:`pin_threads` returned, if it was called; else :func:`thread_state`.
    log : callable, optional
        Called with a line of progress before each step.

    Returns
    -------
    dict
        ``benchmark``, ``date`` (UTC), ``machine``, ``versions``, ``threads``, ``loadavg``,
        ``options``, ``model``, ``feature_config``, ``clip`` (``path``, None for the synthetic
        clip; ``synthetic``; ``duration_s``; ``sample_rate``, the file's own, in Hz; ``label``,
        its prediction), ``librosa`` (``compared``, ``version``,
        ``inference``, ``note``), ``latency`` (:func:`measure`), ``cold_start``
        (:func:`cold_start`, or None), ``throughput`` (:func:`throughput`), ``streaming`` (a
        list of :func:`streaming` results, one per stream rate). Times in seconds, memory in
        MiB.

    Raises
    ------
    AudioError, OSError
        If the first file cannot be classified.
    ModelError
        If the model cannot be used.
    RuntimeError
        If a cold-start process fails.
    """
    from .model import Classifier

    say = log or (lambda line: None)
    clf = model if isinstance(model, Classifier) else Classifier(model)
    model_arg = None if clf.model_path == _bundled() else clf.model_path
    result: dict[str, Any] = {
        "benchmark": "ser-edge bench",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "threads": dict(threads) if threads is not None else thread_state(),
        "loadavg": _loadavg(),
        "options": {"reps": reps, "cold_runs": cold_runs, "min_clips": min_clips,
                    "stream_seconds": stream_seconds, "compare_librosa": compare_librosa},
        "model": str(clf.model_path),
        "input_kind": clf.input_kind,
        "feature_config": json.loads(clf.feature_config.to_json()),
    }
    with tempfile.TemporaryDirectory(prefix="ser-edge-bench-") as tmp:
        files = [Path(p) for p in paths or ()]
        synthetic = not files
        if synthetic:
            files = [write_test_clip(tmp)]
        first = files[0]
        p = clf.classify(first)  # fails here, with the file's name, if it cannot be used
        result["clip"] = {"path": None if synthetic else str(first), "synthetic": synthetic,
                          "duration_s": p.duration_s, "sample_rate": p.sample_rate,
                          "label": p.label}
        sides = {"ser-edge": ser_edge_stages(first, clf)}
        info = {"compared": False, "version": None, "inference": None,
                "note": "Not compared with librosa (--no-librosa)"}
        if compare_librosa:
            info, pipe = _librosa_side(clf, say)
            if info["compared"]:
                say("preparing librosa's side (its first run after install compiles with numba: "
                    "that can take minutes) ...")
                sides["librosa"] = librosa_stages(first, clf.feature_config, pipe)
        result["librosa"] = info
        say(f"warm latency: {reps} repetitions of {len(STAGES) + len(TOTALS)} stages ...")
        result["latency"] = measure(sides, reps)
        if cold_runs > 0:
            say(f"cold start: {cold_runs} fresh processes ...")
            result["cold_start"] = cold_start(first, runs=cold_runs, model=model_arg)
        else:
            result["cold_start"] = None
        say(f"throughput: {len(files)} file(s) ...")
        result["throughput"] = throughput(clf, files, min_clips=min_clips)
        result["streaming"] = []
        if stream_seconds > 0:
            from . import audio

            y, sr_native = audio.load(first, sr=None)
            rates = [clf.feature_config.sr] + ([sr_native] if sr_native != clf.feature_config.sr
                                               else [])
            for rate in rates:
                say(f"streaming: {stream_seconds:g} s at {rate} Hz in 10 ms chunks ...")
                x = audio.resample(y, orig_sr=sr_native, target_sr=rate)
                result["streaming"].append(streaming(clf, x, rate, seconds=stream_seconds))
    return result


def _bundled() -> Path:
    from .model import BUNDLED_MODEL

    return BUNDLED_MODEL


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # Windows
        return None


# -- tables --------------------------------------------------------------------------------------


def markdown_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, left: int = 1
) -> str:
    """A Markdown table: the first ``left`` columns left-aligned, the others (figures) right.

    Parameters
    ----------
    headers : sequence of str
        Column titles.
    rows : iterable of sequence
        Cells, turned into text with ``str``.
    left : int >= 0
        How many leading columns hold text (left-aligned).

    Returns
    -------
    str
    """
    body = [[str(x) for x in row] for row in rows]
    align = ["---" if i < left else "---:" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def format_ms(seconds: float) -> str:
    """Seconds as milliseconds, with three significant figures or so.

    Parameters
    ----------
    seconds : float
        A duration, in seconds.

    Returns
    -------
    str
        Milliseconds, without the unit.
    """
    x = 1000 * seconds
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:.0f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}x"


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _threads_line(t: Mapping[str, Any]) -> str:
    names = ", ".join(k for k in THREAD_ENV if k != "NUMBA_NUM_THREADS")
    if t.get("pinned_in_process"):
        return (f"Threads: BLAS/OpenMP 1 ({names} = 1 before numpy loaded), onnxruntime 1 "
                "intra-op thread, here and in the cold-start processes.")
    before = t.get("env_before", {}).get("OPENBLAS_NUM_THREADS")
    return ("Threads: BLAS/OpenMP were not pinned in this process (numpy loaded with "
            "OPENBLAS_NUM_THREADS "
            f"{'unset: OpenBLAS takes one thread per core' if before is None else '= ' + before}"
            "), so the warm latency and throughput ran with those threads; the cold-start "
            "processes run 1. onnxruntime: 1 intra-op thread. `ser-edge bench` as a command "
            "pins them before numpy loads.")


def to_markdown(result: Mapping[str, Any]) -> str:
    """The Markdown report of :func:`run`'s result: machine, latency, cold start, throughput.

    Parameters
    ----------
    result : mapping
        What :func:`run` returned.

    Returns
    -------
    str
        Headings, tables and notes, for a terminal or a file.
    """
    m, v, clip = result["machine"], result["versions"], result["clip"]
    lib = result["librosa"]
    cfg = result["feature_config"]
    khz = f"{clip['sample_rate'] / 1000:g} kHz"
    what = (f"synthetic speech-like clip, {clip['duration_s']:g} s at {khz}, mono 16-bit WAV"
            if clip["synthetic"] else f"{clip['path']}, {clip['duration_s']:.2f} s at {khz}")
    model = Path(result["model"]).name
    out = [f"# ser-edge bench\n\nser-edge {v['ser-edge']}, {result['date']}. Model: {model} "
           f"(features at {cfg['sr'] / 1000:g} kHz, n_fft {cfg['n_fft']}, hop "
           f"{cfg['hop_length']}). Clip: {what}."]

    mem = f", {m['mem_total_mb'] / 1024:.1f} GiB" if m.get("mem_total_mb") else ""
    cores = (f"{m['cpu_count']}" if m["cpus_usable"] == m["cpu_count"]
             else f"{m['cpu_count']} ({m['cpus_usable']} usable)")
    t = result["threads"]
    rows = [
        ["platform", m["platform"]],
        ["CPU", f"{m['cpu']} ({m['machine']})"],
        ["cores, memory", f"{cores}{mem}"],
        ["Python", m["python"]],
        ["numpy", f"{v['numpy']}" + (f" ({m['blas']})" if m.get("blas") else "")],
        ["onnxruntime", v["onnxruntime"]],
        ["soxr", v["soxr"]],
        ["soundfile", v["soundfile"]],
        ["librosa", v["librosa"] or "not installed"],
        ["BLAS threads", "1 (pinned)" if t.get("pinned_in_process")
         else "not pinned in this process (OPENBLAS_NUM_THREADS "
              f"{t['env_before'].get('OPENBLAS_NUM_THREADS') or 'unset'}); 1 in child processes"],
        ["load average", " ".join(map(str, result["loadavg"])) if result["loadavg"] else "n/a"],
    ]
    out.append("## Machine\n\n" + markdown_table(["", ""], rows, left=2))

    lat = result["latency"]
    compared = lib["compared"]
    headers = ["stage", "what", "CPU ms min", "CPU ms median", "wall ms min"]
    if compared:
        headers = ["stage", "what", "ser-edge CPU ms min", "ser-edge CPU ms median",
                   "ser-edge wall ms min", "librosa CPU ms min", "librosa CPU ms median",
                   "librosa wall ms min", "ratio (CPU min)"]
    rows = []
    for stage, s in lat.items():
        a = s["ser-edge"]
        row = [stage, STAGE_HELP.get(stage, ""), format_ms(a["cpu_min_s"]),
               format_ms(a["cpu_median_s"]), format_ms(a["min_s"])]
        if compared:
            b = s.get("librosa")
            row += ([format_ms(b["cpu_min_s"]), format_ms(b["cpu_median_s"]),
                     format_ms(b["min_s"]), _ratio(s.get("ratio_cpu_min"))]
                    if b else ["n/a"] * 4)
        rows.append(row)
    reps = result["options"]["reps"]
    notes = [f"Milliseconds per call in one warm process, min and median over {reps} "
             "repetitions; CPU time is this process's (what the machine's other work does not "
             "stretch), wall time what you wait."]
    if cfg.get("tuning") is not None:
        notes.append(f"The model fixes tuning at {cfg['tuning']:g}: the tuning stage is timed "
                     "for reference and is not on the classify path.")
    if result.get("input_kind") == "waveform":
        notes.append("The model takes the waveform (python -m export fuse): its inference stage "
                     "is the features and the classifier in one ONNX graph, and classify does not "
                     "run the numpy stages above it.")
    if compared:
        notes.append(f"librosa {lib['version']}: the same stages the way a librosa user computes "
                     "them; extract is its three calls (mfcc, chroma_stft, melspectrogram) + "
                     "power_to_db + mean/std pooling with the model's parameters, each call "
                     "computing its own spectrogram. Ratio: librosa's CPU time over ser-edge's "
                     "(above 1: ser-edge is faster).")
        if lib.get("inference"):
            notes.append(f"librosa's inference: {lib['inference']}.")
    if lib.get("note"):
        notes.append(lib["note"] + ".")
    out.append("## Warm latency per stage\n\n" + markdown_table(headers, rows, left=2) + "\n\n"
               + " ".join(notes))

    cold = result["cold_start"]
    if cold is None:
        out.append("## Cold start\n\nSkipped (--cold-runs 0).")
    else:
        rows = [["wall time, s", *(_num(cold["wall"][k], ".3f") for k in ("median", "min", "max"))],
                ["CPU time, s", *(_num(cold["cpu"][k], ".3f") for k in ("median", "min", "max"))],
                ["peak resident memory, MiB",
                 *(_num(cold["peak_rss"][k], ".1f") for k in ("median", "min", "max"))]]
        out.append(
            "## Cold start\n\n" + markdown_table(["`ser-edge classify` in a fresh process",
                                                  "median", "min", "max"], rows)
            + f"\n\n{cold['runs']} runs of `python -m ser_edge classify CLIP`: start Python, "
            "import, load the model, classify the clip, exit. Memory is the process's peak "
            "resident set (MiB), "
            + ("from wait4." if cold["rss_method"] else "n/a on this system.")
        )

    tp = result["throughput"]
    rows = [[f"{tp['files']} file(s) x {tp['passes']} pass(es)", tp["clips"], tp["failed"],
             _num(tp["wall_s"], ".3f"), _num(tp["clips_per_s"], ".1f"),
             _num(tp["clips_per_cpu_s"], ".1f"), _num(tp["realtime_factor"], ".0f") + "x"]]
    out.append("## Throughput\n\n" + markdown_table(
        ["one process, one after the other", "clips", "failed", "wall s", "clips/s",
         "clips/s of CPU", "audio s per s"], rows)
        + "\n\nClassifier.classify_many from file to emotion (decode, resample, features, "
        "inference); audio s per s is seconds of audio classified per second of wall time.")
    runs = result.get("streaming") or []
    if runs:
        rows = [[f"{r['sr'] / 1000:g} kHz", f"{r['seconds']:.0f}", f"{r['windows']}",
                 f"{r['speech_windows']}", _num(r["cpu_per_audio_s"], ".4f"),
                 _num(r["latency_ms"]["median"], ".1f"), _num(r["latency_ms"]["max"], ".1f"),
                 _num(r["compute_ms"]["max"], ".1f"),
                 _num(r["rss_growth_mb"], "+.1f") if r["rss_mb"] else "n/a"] for r in runs]
        out.append("## Streaming\n\n" + markdown_table(
            ["stream", "seconds", "windows", "with speech", "CPU s per audio s",
             "latency ms median", "latency ms max", "compute ms max", "memory growth MiB"],
            rows) + "\n\nStreamingClassifier (3 s windows every 1 s, voice activity detection "
            "on each) fed 10 ms chunks of the clip, tiled, one after the other. CPU s per audio s: "
            "processing time over audio time (below 1 keeps up with a live source; 0.02 is 50 "
            "times real time). Latency: from the end of a window to its result, counting the "
            "resampler's delay when the stream is not at the model's rate and the time the push "
            "took. Memory growth: resident memory at the end of the stream minus after its first "
            "window.")
    out.append(_threads_line(t))
    return "\n\n".join(out)
