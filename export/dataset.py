"""From corpus folders to a labelled feature matrix: parse, select, extract (cached)."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ser_edge.errors import ParameterError
from ser_edge.features import FeatureConfig

from .corpora import Clip, parse_corpus, select
from .features import extract_reference
from .paths import corpus_dir

__all__ = ["Dataset", "resolve_corpus", "load_dataset", "augmented_features",
           "perturbed_features", "frame_matrices", "row_statistics", "derive", "check_source",
           "Ragged"]


@dataclass
class Dataset:
    """Clips with their feature matrix.

    Attributes
    ----------
    clips : list of Clip
    X : np.ndarray [shape=(n_clips, n_features)], float32
    config : FeatureConfig
    """

    clips: list[Clip]
    X: np.ndarray
    config: FeatureConfig

    @property
    def y(self) -> np.ndarray:
        """Emotion of each clip, ``(n_clips,)`` str."""
        return np.array([c.emotion for c in self.clips], dtype=str)

    @property
    def speakers(self) -> np.ndarray:
        """Speaker of each clip, ``(n_clips,)`` str."""
        return np.array([c.speaker for c in self.clips], dtype=str)

    def describe(self) -> list[dict]:
        """Corpora with their clip, speaker and per-emotion counts (for model metadata)."""
        out = []
        for corpus in sorted({c.corpus for c in self.clips}):
            clips = [c for c in self.clips if c.corpus == corpus]
            counts: dict[str, int] = {}
            for c in clips:
                counts[c.emotion] = counts.get(c.emotion, 0) + 1
            out.append(
                {
                    "name": corpus,
                    "n_clips": len(clips),
                    "n_speakers": len({c.speaker for c in clips}),
                    "emotions": dict(sorted(counts.items())),
                }
            )
        return out


class Ragged(Sequence):
    """Frame matrices of different lengths held in one array: a list that shares well.

    ``Ragged(mats)[i]`` is ``mats[i]`` (a view), or None where ``mats[i]`` was None. One
    contiguous float32 array instead of thousands: joblib hands it to its worker processes as
    one memory map (``JOBLIB_TEMP_FOLDER``) instead of a pickled copy each, which for the
    corpora's frame matrices (gigabytes) decides whether two workers fit in memory.

    Parameters
    ----------
    mats : sequence of np.ndarray [shape=(n_rows, n_frames_i)] or None
        Every matrix has the same ``n_rows``.
    """

    def __init__(self, mats: Sequence[np.ndarray | None]):
        present = [m for m in mats if m is not None]
        n_rows = present[0].shape[0] if present else 0
        lengths = np.array([-1 if m is None else m.shape[1] for m in mats], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(np.maximum(lengths, 0))])
        self.missing = lengths < 0
        self.data = (np.concatenate([np.asarray(m, np.float32) for m in present], axis=1)
                     if present else np.zeros((n_rows, 0), np.float32))

    def __len__(self) -> int:
        return len(self.missing)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if self.missing[i]:
            return None
        return self.data[:, self.offsets[i]:self.offsets[i + 1]]


def check_source(config: FeatureConfig, source: FeatureConfig) -> None:
    """Check that ``config``'s inputs can be derived from ``source``'s frame matrix.

    ``source`` is an ensemble's shared configuration (no per-utterance normalisation); a member
    may take some of its blocks, pool its own statistics and normalise each utterance.

    Raises
    ------
    ParameterError
        If ``source`` normalises, or ``config`` differs in anything else.
    """
    if source.norm is not None:
        raise ParameterError("a shared frame matrix must not be normalised per utterance")
    if not set(config.features) <= set(source.features) or dataclasses.replace(
            config, norm=None, stats=source.stats, features=source.features) != source:
        raise ParameterError("a member's features cannot be derived from the shared frame "
                             "matrix: they differ in more than blocks, statistics and norm")


def derive(F: np.ndarray | None, source: FeatureConfig, config: FeatureConfig,
           output: str) -> np.ndarray | None:
    """A member's input from the shared frame matrix (:func:`check_source`).

    Parameters
    ----------
    F : np.ndarray [shape=(n_rows, n_frames)] or None
        The shared reference frame matrix (None passes through: a clip not computed).
    source, config : FeatureConfig
        The shared and the member's configuration.
    output : {"vector", "frames"}
        The pooled vector (:func:`ser_edge.features.pool`) or the member's frame matrix.

    Returns
    -------
    x : np.ndarray [shape=(n_features,)] or [shape=(n_rows_member, n_frames)], float32
        Equal to what the reference computes for ``config`` directly: the blocks are the same
        float32 matrices, normalised with the reference's own arithmetic.
    """
    from ser_edge.features import pool

    from .features import normalise_reference

    if F is None:
        return None
    edges = np.cumsum([0, *source.block_sizes.values()])
    blocks = {name: F[edges[i]:edges[i + 1]] for i, name in enumerate(source.features)}
    blocks = {name: blocks[name] for name in config.features}
    if config.norm is not None:
        blocks = {name: normalise_reference(M, config.norm) for name, M in blocks.items()}
    if output == "vector":
        return pool(blocks, config)
    return np.concatenate([blocks[name] for name in config.features]).astype(np.float32)


def resolve_corpus(spec: str) -> tuple[str, Path]:
    """Turn ``"ravdess"`` or ``"emodb=/some/folder"`` into (layout name, folder).

    Without a folder the corpus is looked up under :func:`export.paths.data_root`.

    Raises
    ------
    ParameterError
        If no folder is given and the corpus is not found under the data root.
    """
    name, _, folder = spec.partition("=")
    name = name.strip()
    if folder:
        return name, Path(folder).expanduser()
    found = corpus_dir(name)
    if found is None:
        raise ParameterError(
            f"corpus {name!r} not found under the data folder; give it as {name}=/path/to/folder"
        )
    return name, found


def load_dataset(
    corpora: Sequence[str],
    config: FeatureConfig,
    *,
    emotions: str | Collection[str] | None = None,
    where: Mapping[str, str | Collection[str]] | None = None,
    speakers: Collection[str] | None = None,
    n_jobs: int = 2,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    source: FeatureConfig | None = None,
) -> Dataset:
    """Parse corpora, keep a subset, and extract reference features (cached).

    Parameters
    ----------
    corpora : sequence of str
        Specs for :func:`resolve_corpus`, e.g. ``["ravdess", "tess=/data/TESS"]``.
    config : FeatureConfig
    emotions, where, speakers
        Passed to :func:`export.corpora.select`; ``"boredom"`` and folder labels outside
        the vocabulary are kept only if named.
    n_jobs, cache_dir, progress
        Passed to :func:`export.features.extract_reference`.
    source : FeatureConfig, optional
        An ensemble's shared configuration: the vectors are pooled from its frame matrices
        (:func:`derive`), extracted once for every member.

    Returns
    -------
    dataset : Dataset

    Raises
    ------
    ParameterError
        If a corpus is missing or nothing is left after the selection.
    """
    clips: list[Clip] = []
    for spec in corpora:
        name, root = resolve_corpus(spec)
        clips.extend(parse_corpus(name, root).clips)
    clips = select(clips, emotions, speakers=speakers, where=where)
    if not clips:
        raise ParameterError(f"no clips left in {list(corpora)} after the selection")
    if source is not None:
        check_source(config, source)
        shared = frame_matrices(Dataset(clips, None, source), n_jobs=n_jobs,
                                cache_dir=cache_dir, progress=progress)
        X = np.stack([derive(F, source, config, "vector") for F in shared])
        return Dataset(clips=clips, X=X, config=config)
    X = extract_reference(
        [c.path for c in clips], config, n_jobs=n_jobs, cache_dir=cache_dir, progress=progress
    )
    return Dataset(clips=clips, X=X, config=config)


def augmented_features(
    data: Dataset,
    augment_config: Any,
    *,
    seed: int,
    pools: Sequence[np.ndarray] | None = None,
    n_jobs: int = 2,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    output: str = "vector",
    source: FeatureConfig | None = None,
    only: np.ndarray | None = None,
) -> Any:
    """The reference feature vectors of every clip's augmented copies (cached on disk).

    Parameters
    ----------
    data : Dataset
        The clips and their feature configuration.
    augment_config : export.augment.AugmentConfig
        What to apply; ``copies`` copies per clip.
    seed : int
        The training run's seed (with the clip's file name and the copy's number, it fixes the
        copy: :func:`export.augment.augment`).
    pools : sequence of np.ndarray of int, optional
        Per clip, the indices of the clips its babble may come from
        (:func:`export.augment.babble_pools`); without them babble is left out.
    n_jobs, cache_dir, progress
        As :func:`export.features.extract_reference`.
    output : {"vector", "frames"}
        Pooled vectors, or the frame matrices of frame-level networks.
    source : FeatureConfig, optional
        An ensemble's shared configuration: the copies' frame matrices are computed in it, once
        for every member with this augmentation, and each member's inputs derived
        (:func:`derive`).
    only : np.ndarray of int, optional
        The clips to augment (the others' rows are zero, or None for frames): a member trained
        on some of the corpora.

    Returns
    -------
    X_aug : np.ndarray [shape=(copies, n_clips, n_features)], float32
        For ``output="frames"``: a list (copies) of lists (clips) of ``(n_rows, n_frames)``.
        No copies at all (``copies`` 0) when the configuration names no augmentation.
    """
    import hashlib

    from .augment import clip_id, draws_babble
    from .features import augmented_feature_vector, extract_cached

    n = len(data.clips)
    frames = output == "frames"
    out: Any = ([] if frames else
                np.zeros((augment_config.copies, n, data.config.n_features), dtype=np.float32))
    if not augment_config.kinds or not augment_config.copies:  # nothing to add
        return [] if frames else out[:0]
    paths = [c.path for c in data.clips]
    idx = np.arange(n) if only is None else np.asarray(only)
    config = data.config if source is None else source
    if source is not None:
        check_source(data.config, source)
    computed_frames = frames or source is not None
    wanted = set(idx.tolist())
    tag = "augmented-v1\n" + config.to_json() + "\n" + augment_config.to_json() + \
        f"\nseed={seed}" + ("\nframes" if computed_frames else "")
    for copy in range(augment_config.copies):
        extras = []
        for i, path in enumerate(paths):
            if i not in wanted:
                continue
            pool_paths: list[str] = []
            extra_tag = f"copy={copy}"
            if pools is not None and draws_babble(augment_config, seed=seed, clip=clip_id(path),
                                                  copy=copy):
                pool_paths = [str(paths[j]) for j in pools[i]]
                digest = hashlib.sha256("\n".join(pool_paths).encode()).hexdigest()[:16]
                extra_tag += f" babble={digest}"
            extras.append(((copy, pool_paths), extra_tag))
        got = extract_cached(
            [paths[i] for i in idx], augmented_feature_vector,
            (config, augment_config, seed, "frames" if computed_frames else "vector"), tag,
            n_jobs=n_jobs, cache_dir=cache_dir, progress=progress,
            desc=f"augmented copy {copy + 1}/{augment_config.copies}", extras=extras,
            stack=not computed_frames,
        )
        if source is not None:
            got = [derive(F, source, data.config, output) for F in got]
        if frames:
            full: list = [None] * n
            for k, i in enumerate(idx):
                full[i] = got[k]
            out.append(Ragged(full))
        else:
            out[copy][idx] = np.stack(got) if len(got) else 0.0
    return out



def perturbed_features(
    data: Dataset,
    names: Sequence[str],
    others: Sequence[np.ndarray],
    *,
    only: np.ndarray | None = None,
    n_jobs: int = 2,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    output: str = "vector",
    source: FeatureConfig | None = None,
) -> dict[str, Any]:
    """Reference feature vectors of clips under the robustness evaluation's perturbations.

    Parameters
    ----------
    data : Dataset
    names : sequence of str
        Keys of :data:`export.augment.PERTURBATIONS`.
    others : sequence of np.ndarray of int
        Per clip, the clips babble is mixed from (the test fold's other speakers).
    only : np.ndarray of int, optional
        The clips to perturb (others' rows are left zero), e.g. one corpus's.
    n_jobs, cache_dir, progress
        As :func:`export.features.extract_reference`.
    output : {"vector", "frames"}
        Pooled vectors, or frame matrices.
    source : FeatureConfig, optional
        An ensemble's shared configuration, as for :func:`augmented_features`.

    Returns
    -------
    variants : dict of str to np.ndarray [shape=(n_clips, n_features)], float32
        For ``output="frames"``, lists of frame matrices (None for clips not perturbed).
    """
    import hashlib

    from .features import extract_cached, perturbed_feature_vector

    idx = np.arange(len(data.clips)) if only is None else np.asarray(only)
    paths = [data.clips[i].path for i in idx]
    out = {}
    for name in names:
        extras = []
        for i in idx:
            other_paths = [str(data.clips[j].path) for j in others[i]] if "babble" in name else []
            digest = hashlib.sha256("\n".join(other_paths).encode()).hexdigest()[:16]
            extras.append(((name, other_paths), f"perturbation={name} others={digest}"))
        frames = output == "frames"
        if source is None:
            got = extract_cached(paths, perturbed_feature_vector,
                                 (data.config, output) if frames else data.config,
                                 "perturbed-v1\n" + data.config.to_json()
                                 + ("\nframes" if frames else ""), n_jobs=n_jobs,
                                 cache_dir=cache_dir, progress=progress, desc=name,
                                 extras=extras, stack=not frames)
        else:  # the shared frame matrices, once for every member; each member's derived
            check_source(data.config, source)
            shared = extract_cached(paths, perturbed_feature_vector, (source, "frames"),
                                    "perturbed-v1\n" + source.to_json() + "\nframes",
                                    n_jobs=n_jobs, cache_dir=cache_dir, progress=progress,
                                    desc=name, extras=extras, stack=False)
            got = [derive(F, source, data.config, output) for F in shared]
            if not frames:
                got = np.stack(got) if got else np.zeros((0, data.config.n_features))
        if frames:
            X = [None] * len(data.clips)
            for k, i in enumerate(idx):
                X[i] = got[k]
            X = Ragged(X)
        else:
            X = np.zeros((len(data.clips), data.config.n_features), dtype=np.float32)
            X[idx] = got
        out[name] = X
    return out


def frame_matrices(
    data: Dataset,
    *,
    n_jobs: int = 2,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    source: FeatureConfig | None = None,
) -> list[np.ndarray]:
    """The reference frame matrix of every clip (cached on disk).

    With ``source`` (an ensemble's shared configuration), derived from its frame matrices
    (:func:`derive`): the member's blocks, normalised as it says.

    Returns
    -------
    frames : list of np.ndarray [shape=(n_rows, n_frames_i)], float32
    """
    if source is not None:
        check_source(data.config, source)
        shared = frame_matrices(Dataset(data.clips, None, source), n_jobs=n_jobs,
                                cache_dir=cache_dir, progress=progress)
        return Ragged([derive(F, source, data.config, "frames") for F in shared])
    from .features import extract_cached, reference_frame_matrix

    return Ragged(extract_cached([c.path for c in data.clips], reference_frame_matrix,
                                 data.config, "frames-v1\n" + data.config.to_json(),
                                 n_jobs=n_jobs, cache_dir=cache_dir, progress=progress,
                                 desc="frame matrices", stack=False))


def row_statistics(
    data: Dataset,
    *,
    n_jobs: int = 2,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each clip's frame count and each row's mean and variance over its (active) frames.

    What a speaker profile (:class:`ser_edge.adapt.SpeakerProfile`) adds up: from the reference
    frame matrices (:func:`frame_matrices`, cached), without per-utterance normalisation.

    Returns
    -------
    n : np.ndarray [shape=(n_clips,)], float64
    mean, var : np.ndarray [shape=(n_clips, n_rows)], float64
    """
    import dataclasses

    plain = Dataset(data.clips, data.X, dataclasses.replace(data.config, norm=None))
    frames = frame_matrices(plain, n_jobs=n_jobs, cache_dir=cache_dir, progress=progress)
    n = np.array([F.shape[1] for F in frames], dtype=np.float64)
    mean = np.stack([F.astype(np.float64).mean(axis=1) for F in frames])
    var = np.stack([F.astype(np.float64).var(axis=1) for F in frames])
    return n, mean, var
