"""From corpus folders to a labelled feature matrix: parse, select, extract (cached)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_edge.errors import ParameterError
from ser_edge.features import FeatureConfig

from .corpora import Clip, parse_corpus, select
from .features import extract_reference
from .paths import corpus_dir

__all__ = ["Dataset", "resolve_corpus", "load_dataset"]


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
    X = extract_reference(
        [c.path for c in clips], config, n_jobs=n_jobs, cache_dir=cache_dir, progress=progress
    )
    return Dataset(clips=clips, X=X, config=config)
