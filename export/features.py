"""The librosa reference features: what the model is trained on and the runtime must reproduce.

For one file, :func:`reference_feature_vector` is ``librosa.load`` followed by
``librosa.feature.mfcc``, ``chroma_stft`` and ``melspectrogram`` (librosa 0.11.0), each called with
every relevant keyword spelled out so that a change of librosa's defaults cannot pass unnoticed,
and then :func:`ser_edge.features.pool`, so that the vector layout is the runtime's.

:func:`extract_reference` runs it over many files in parallel (joblib, at most ``n_jobs``
processes, or the workers of a Dask cluster: :func:`use_scheduler`) with a progress bar (tqdm),
and caches each vector on disk under a key made of the configuration's JSON, the file's resolved
path, size and modification time, so a second run with the same configuration reads the cache
instead of recomputing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np

from ser_edge.errors import AudioError
from ser_edge.features import FeatureConfig, pool

__all__ = [
    "REFERENCE_LIBROSA",
    "DEFAULT_CACHE_DIR",
    "reference_load",
    "reference_feature_matrices",
    "reference_feature_vector",
    "extract_reference",
    "augmented_feature_vector",
    "reference_frame_matrix",
    "normalise_reference",
    "perturbed_feature_vector",
    "cache_key",
    "is_cached",
    "use_scheduler",
]

#: The librosa version the reference is written against (pinned in the ``export`` extra).
REFERENCE_LIBROSA = "0.11.0"

#: Default on-disk cache: ``.ser-edge-cache/`` at the project root (git-ignored).
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent.parent / ".ser-edge-cache"

# Bumped whenever the reference computation changes, so that old cache entries are not reused.
_CACHE_VERSION = "ref-v2"

#: Files per task sent to a Dask worker.
CLUSTER_BATCH = 16

# The Dask scheduler of :func:`use_scheduler` (None: joblib on this machine).
_SCHEDULER: ContextVar[Any] = ContextVar("ser_edge_export_scheduler", default=None)


def reference_load(path: str | Path, sr: int) -> np.ndarray:
    """Load a file as librosa does: ``librosa.load(path, sr=sr, mono=True)`` (soxr_hq resampling).

    Returns
    -------
    y : np.ndarray [shape=(n_samples,)], float32

    Raises
    ------
    AudioError
        If the file is missing or cannot be decoded, or holds no samples.
    """
    import librosa

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    try:
        y, _ = librosa.load(path, sr=sr, mono=True, res_type="soxr_hq", dtype=np.float32)
    except Exception as exc:  # librosa/soundfile/audioread raise many types
        raise AudioError(f"{path}: cannot decode audio ({type(exc).__name__}: {exc})") from None
    if y.size == 0:
        raise AudioError(f"{path}: no audio samples")
    return y


def reference_feature_matrices(y: np.ndarray, sr: int, config: FeatureConfig) -> dict[str, Any]:
    """Compute librosa's feature matrices for ``config`` (before pooling over time).

    One ``librosa.stft``, its power spectrogram passed as ``S=`` to each feature (what
    ``librosa.feature.mfcc(y=...)``, ``chroma_stft(y=...)`` and ``melspectrogram(y=...)`` compute
    from ``y`` themselves, value for value). The level normalisation and the active frames have
    no librosa function: they follow :mod:`ser_edge.level`'s rule, on frame levels from
    ``librosa.feature.rms``; nor do ``config.trim_zeros`` and ``config.trim_top_db``
    (``librosa.effects.trim`` works on frames in dB): the runtime's
    :meth:`ser_edge.features.FeatureConfig.trim` trims the ends of ``y`` first, sample-exact.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]
        Mono audio at ``sr``.
    sr : int > 0
        Sample rate of ``y``, in Hz; should equal ``config.sr``.
    config : FeatureConfig

    Returns
    -------
    blocks : dict of str to np.ndarray [shape=(n_rows, n_frames)]
        ``"mfcc"`` (``n_mfcc`` rows, ``librosa.feature.mfcc``: DCT-II orthonormal of the log-mel
        spectrogram with ``n_mels`` bands), ``"chroma"`` (``n_chroma`` rows,
        ``librosa.feature.chroma_stft``, ``tuning`` estimated per clip when None),
        ``"mel"`` (``n_mels`` rows, ``librosa.feature.melspectrogram`` in power, converted with
        ``librosa.power_to_db(ref=1.0, amin=1e-10, top_db=config.top_db)`` when
        ``config.mel_db``) and ``"mfcc_delta"`` (``librosa.feature.delta`` of the MFCCs, over
        every frame), for the blocks named in ``config.features``; with ``config.level_db`` the
        mel and chroma projections are scaled by the level gain first, and with
        ``config.frames == "active"`` only the active frames' columns are kept.
    """
    import librosa

    from ser_edge.level import active_frames, energy_db, level_gain

    y = config.trim(y)
    stft_kw = {
        "n_fft": config.n_fft,
        "hop_length": config.hop_length,
        "win_length": None,
        "window": "hann",
        "center": True,
        "pad_mode": "constant",
    }
    mel_kw = {"n_mels": config.n_mels, "fmin": config.fmin, "fmax": config.fmax, "htk": config.htk}
    magnitude = np.abs(librosa.stft(y, **stft_kw))
    S = magnitude**2.0
    gain = mask = None
    if config.level_db is not None or config.frames == "active":
        r = librosa.feature.rms(S=magnitude, frame_length=config.n_fft)[0]
        active = active_frames(energy_db(r), range_db=config.active_range_db,
                               floor_db=config.active_floor_db,
                               floor_range_db=config.active_floor_range_db)
        if config.level_db is not None:
            gain = np.float32(level_gain(r, active, config.level_db))
        if config.frames == "active":
            mask = active
    wanted = set(config.features)
    blocks: dict[str, Any] = {}
    if wanted & {"mfcc", "mfcc_delta", "mel"}:
        mel = librosa.feature.melspectrogram(S=S, sr=sr, norm="slaney", **mel_kw)
        if gain is not None:
            mel = mel * gain
        mel_db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=config.top_db)
        if wanted & {"mfcc", "mfcc_delta"}:
            mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=config.n_mfcc, dct_type=2,
                                        norm="ortho", lifter=0)
            if "mfcc" in wanted:
                blocks["mfcc"] = mfcc
            if "mfcc_delta" in wanted:
                blocks["mfcc_delta"] = librosa.feature.delta(
                    mfcc, width=config.delta_width, order=1, axis=-1, mode="interp"
                )
        if "mel" in wanted:
            blocks["mel"] = mel_db if config.mel_db else mel
    if "chroma" in wanted:
        # chroma_stft has no ``power`` keyword: it always uses the power spectrogram.
        # Unnormalised chroma, then librosa's own normalisation with the configuration's
        # threshold: chroma_stft does not pass one on (it uses the smallest float32).
        raw = librosa.feature.chroma_stft(
            S=S if gain is None else S * gain, sr=sr, norm=None, tuning=config.tuning,
            n_chroma=config.n_chroma, n_fft=config.n_fft, hop_length=config.hop_length,
        )
        blocks["chroma"] = librosa.util.normalize(
            raw, norm=np.inf, axis=-2, threshold=config.chroma_threshold
        )
    if mask is not None:
        blocks = {name: M[:, mask] for name, M in blocks.items()}
    if config.norm is not None:  # per-utterance normalisation, written out (no librosa function)
        blocks = {name: normalise_reference(M, config.norm) for name, M in blocks.items()}
    return blocks


def normalise_reference(M: np.ndarray, norm: str) -> np.ndarray:
    """The reference's per-utterance normalisation of each row (``FeatureConfig.norm``).

    Written out (librosa has no such function): the row's mean subtracted, and for
    ``"meanvar"`` its population standard deviation divided out where it exceeds 0.01.

    Parameters
    ----------
    M : np.ndarray [shape=(n_rows, n_frames)], float32
    norm : {"mean", "meanvar"}

    Returns
    -------
    M_normalised : np.ndarray [shape=(n_rows, n_frames)], float32
    """
    mean = M.mean(axis=-1, keepdims=True)
    std = M.std(axis=-1, keepdims=True) if norm == "meanvar" else 1.0
    return ((M - mean) / np.where(std > 1e-2, std, 1.0)).astype(np.float32)


def reference_feature_vector(path: str | Path, config: FeatureConfig) -> np.ndarray:
    """Compute the librosa reference vector of one file: load at ``config.sr``, matrices, pool.

    Parameters
    ----------
    path : str or Path
    config : FeatureConfig

    Returns
    -------
    x : np.ndarray [shape=(config.n_features,)], float32
        The layout of :func:`ser_edge.features.pool`.

    Raises
    ------
    AudioError
        If the file cannot be read.
    """
    y = reference_load(path, config.sr)
    return pool(reference_feature_matrices(y, config.sr, config), config)


def _features_of(y: np.ndarray, config: FeatureConfig, output: str = "vector") -> np.ndarray:
    """The reference vector of ``y`` (``output="vector"``) or its frame matrix (``"frames"``)."""
    blocks = reference_feature_matrices(y, config.sr, config)
    if output == "frames":
        return np.concatenate([blocks[name] for name in config.features]).astype(np.float32)
    return pool(blocks, config)


def reference_frame_matrix(path: str | Path, config: FeatureConfig) -> np.ndarray:
    """The librosa reference of :func:`ser_edge.features.frame_matrix` for one file.

    Returns
    -------
    F : np.ndarray [shape=(n_rows, n_frames)], float32
    """
    return _features_of(reference_load(path, config.sr), config, "frames")


class _ClipsOnDemand(Sequence):
    """Audio files read (``reference_load``) only when indexed: a babble pool's few picks."""

    def __init__(self, paths: Sequence[str | Path], sr: int):
        self.paths, self.sr = list(paths), sr

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        return reference_load(self.paths[i], self.sr)


def augmented_feature_vector(path: str | Path, arg: Any) -> np.ndarray:
    """The reference vector of one augmented copy of a clip (:func:`export.augment.augment`).

    Parameters
    ----------
    path : str or Path
        The clip.
    arg : ((FeatureConfig, AugmentConfig, int[, str]), (int, list of str))
        ``((config, augment_config, seed[, output]), (copy, pool_paths))``, as
        :func:`extract_cached` passes a per-path extra: the copy's number and the clips babble
        may come from; ``output`` ``"frames"`` for the frame matrix instead of the vector.

    Returns
    -------
    x : np.ndarray [shape=(config.n_features,)] or [shape=(n_rows, n_frames)], float32
    """
    from .augment import augment, clip_id

    (config, augment_config, seed, *output), (copy, pool_paths) = arg
    y = reference_load(path, config.sr)
    z = augment(y, config.sr, augment_config, seed=seed, clip=clip_id(path), copy=copy,
                pool=_ClipsOnDemand(pool_paths, config.sr))
    return _features_of(z, config, *output)


def perturbed_feature_vector(path: str | Path, arg: Any) -> np.ndarray:
    """The reference vector of a test clip under a perturbation of the robustness evaluation.

    Parameters
    ----------
    path : str or Path
        The clip.
    arg : (FeatureConfig or (FeatureConfig, str), (str, list of str))
        ``(config, (perturbation, other_paths))``: a key of
        :data:`export.augment.PERTURBATIONS` and, for babble, the clips of the test fold's other
        speakers; ``(config, "frames")`` for the frame matrix instead of the vector.

    Returns
    -------
    x : np.ndarray [shape=(config.n_features,)] or [shape=(n_rows, n_frames)], float32
    """
    from .augment import clip_id, perturb

    head, (name, other_paths) = arg
    config, output = head if isinstance(head, tuple) else (head, "vector")
    y = reference_load(path, config.sr)
    z = perturb(y, config.sr, name, clip=clip_id(path),
                others=_ClipsOnDemand(other_paths, config.sr))
    return _features_of(z, config, output)


def cache_key(path: str | Path, tag: str) -> str:
    """Hash of ``tag`` (e.g. a configuration's JSON), the resolved path, its size and mtime.

    Raises
    ------
    AudioError
        If the file does not exist.
    """
    path = Path(path).resolve()
    try:
        st = path.stat()
    except OSError:
        raise AudioError(f"{path}: file not found") from None
    text = "\n".join([_CACHE_VERSION, tag, str(path), str(st.st_size), str(st.st_mtime_ns)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _cache_file(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.npy"


def is_cached(path: str | Path, tag: str, cache_dir: str | Path | None = None) -> bool:
    """Whether :func:`extract_cached` holds a result for ``path`` under ``tag`` (no extras).

    Parameters
    ----------
    path : str or Path
    tag : str
        The tag given to :func:`extract_cached`.
    cache_dir : str or Path, optional
        Default :data:`DEFAULT_CACHE_DIR`.

    Raises
    ------
    AudioError
        If the file does not exist.
    """
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    return _cache_file(cache, cache_key(path, tag)).is_file()


def _compute_and_store(
    func: Callable[[Path, Any], np.ndarray], path: Path, arg: Any, target: Path | None
) -> np.ndarray:
    x = np.asarray(func(path, arg), dtype=np.float32)
    if target is not None:
        _store(x, target)
    return x


@contextmanager
def use_scheduler(scheduler: Any) -> Iterator[Any]:
    """Compute the features of :func:`extract_cached` on a Dask cluster inside a ``with`` block.

    Parameters
    ----------
    scheduler : str or distributed.Client or cluster
        A scheduler's address (``"tcp://host:8786"``), a client or a cluster object, as
        :func:`ser_edge.batch.dask_client` takes it. The workers need the ``export`` extra
        installed and must read the corpora at the same absolute paths; the cache stays here.

    Yields
    ------
    client : distributed.Client

    Raises
    ------
    ser_edge.errors.ClusterError
        If Dask distributed is not installed or the scheduler does not answer.
    """
    from ser_edge.batch import dask_client

    with dask_client(scheduler) as client:
        token = _SCHEDULER.set(client)
        try:
            yield client
        finally:
            _SCHEDULER.reset(token)


def _compute_batch(func: Callable[[Path, Any], np.ndarray], paths: list[str],
                   args: list[Any]) -> list[np.ndarray]:
    return [np.asarray(func(Path(p), a), dtype=np.float32) for p, a in zip(paths, args,
                                                                            strict=True)]


def _on_cluster(client: Any, func: Callable[[Path, Any], np.ndarray], args: list[Any],
                paths: list[Path]) -> Iterator[tuple[int, np.ndarray]]:
    """``(k, func(paths[k], args[k]))`` as Dask's workers finish them, a few at a time."""
    from distributed import as_completed

    chunks = iter([list(range(k, min(k + CLUSTER_BATCH, len(paths))))
                   for k in range(0, len(paths), CLUSTER_BATCH)])
    window = 2 * max(1, sum(client.nthreads().values()))
    running: dict[Any, list[int]] = {}

    def submit() -> Any:
        chunk = next(chunks, None)
        if chunk is not None:
            future = client.submit(_compute_batch, func,
                                   [os.path.abspath(paths[k]) for k in chunk],
                                   [args[k] for k in chunk], pure=False)
            running[future] = chunk
            return future

    flow = as_completed([f for f in (submit() for _ in range(window)) if f is not None],
                        loop=client.loop)
    try:
        for future in flow:
            chunk = running.pop(future)
            xs = future.result()  # a file's error is raised here, as joblib raises it
            following = submit()
            if following is not None:
                flow.add(following)
            yield from zip(chunk, xs, strict=True)
    finally:
        if running:
            client.cancel(list(running))


def _store(x: np.ndarray, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        np.save(fh, x)
    os.replace(tmp, target)


def extract_cached(
    paths: Sequence[str | Path],
    func: Callable[[Path, Any], np.ndarray],
    arg: Any,
    tag: str,
    *,
    n_jobs: int = 2,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: bool = True,
    desc: str = "features",
    scheduler: Any = None,
    extras: Sequence[tuple[Any, str]] | None = None,
    stack: bool = True,
) -> np.ndarray | list[np.ndarray]:
    """Run ``func(path, arg)`` over ``paths`` in parallel, caching each 1-D result on disk.

    ``func`` must be a picklable module-level function; ``tag`` must identify ``func`` and
    ``arg`` completely (it goes into :func:`cache_key`). With ``extras``, one
    ``(extra, extra_tag)`` per path, ``func`` is called as ``func(path, (arg, extra))`` and
    ``extra_tag`` is added to that path's cache tag (e.g. which augmented copy of a clip).
    ``stack=False`` returns the results as a list (arrays of any shape, e.g. frame matrices of
    different lengths) instead of stacking 1-D results into a matrix.
    The work runs on ``n_jobs`` joblib processes, or on a Dask cluster: ``scheduler`` (an
    address, a ``distributed.Client`` or a cluster), else the one of an enclosing
    :func:`use_scheduler`. Either way the cache is written here, as results come, so an
    interrupted run keeps what was done.

    Returns
    -------
    X : np.ndarray [shape=(len(paths), n)], float32
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    paths = [Path(p) for p in paths]
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    rows: list[np.ndarray | None] = [None] * len(paths)
    todo: list[tuple[int, Path | None]] = []
    if extras is not None and len(extras) != len(paths):
        raise ValueError(f"{len(extras)} extras for {len(paths)} paths")

    def item_arg(i: int) -> Any:
        return arg if extras is None else (arg, extras[i][0])

    for i, path in enumerate(paths):
        if not use_cache:
            todo.append((i, None))
            continue
        item_tag = tag if extras is None else f"{tag}\n{extras[i][1]}"
        target = _cache_file(cache, cache_key(path, item_tag))
        if target.is_file():
            try:
                rows[i] = np.load(target)
                continue
            except (OSError, ValueError):  # a damaged entry: recompute it
                pass
        todo.append((i, target))
    if scheduler is None:
        scheduler = _SCHEDULER.get()
    if todo and scheduler is not None:
        from ser_edge.batch import dask_client

        bar = tqdm(total=len(todo), desc=desc, disable=not progress, unit="file")
        with dask_client(scheduler) as client:
            for k, x in _on_cluster(client, func, [item_arg(i) for i, _ in todo],
                                    [paths[i] for i, _ in todo]):
                i, target = todo[k]
                if target is not None:
                    _store(x, target)
                rows[i] = x
                bar.update(1)
        bar.close()
    elif todo:
        bar = tqdm(total=len(todo), desc=desc, disable=not progress, unit="file")
        jobs = (delayed(_compute_and_store)(func, paths[i], item_arg(i), target)
                for i, target in todo)
        if n_jobs == 1:
            results = (job[0](*job[1], **job[2]) for job in jobs)
        else:
            results = Parallel(n_jobs=n_jobs, return_as="generator")(jobs)
        for (i, _), x in zip(todo, results, strict=True):
            rows[i] = x
            bar.update(1)
        bar.close()
    if not stack:
        return rows
    if not rows:
        return np.empty((0, 0), dtype=np.float32)
    return np.stack(rows).astype(np.float32, copy=False)


def extract_reference(
    paths: Sequence[str | Path],
    config: FeatureConfig,
    *,
    n_jobs: int = 2,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> np.ndarray:
    """Compute reference feature vectors of many files, in parallel, cached on disk.

    Parameters
    ----------
    paths : sequence of str or Path
    config : FeatureConfig
    n_jobs : int
        Worker processes (joblib); 1 computes in this process.
    cache_dir : str or Path, optional
        Cache folder; default :data:`DEFAULT_CACHE_DIR`.
    use_cache : bool
        Read and write the cache.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    X : np.ndarray [shape=(len(paths), config.n_features)], float32

    Raises
    ------
    AudioError
        If a file is missing or cannot be decoded.
    """
    return extract_cached(
        paths,
        reference_feature_vector,
        config,
        config.to_json(),
        n_jobs=n_jobs,
        cache_dir=cache_dir,
        use_cache=use_cache,
        progress=progress,
        desc="librosa features",
    )
