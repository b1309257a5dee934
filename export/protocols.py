"""Evaluation protocols: which speakers are tested together, and the train/test splits they make.

Every split is speaker-independent: no speaker's clips are on both sides. A split of a
multi-corpus dataset trains on every clip whose speaker is not tested (the other corpus
included, when training pools corpora) and tests on the tested speakers' clips of one corpus.

- **EmoBox** (the headline for RAVDESS): the six folds of four actors published with EmoBox
  (Ma et al., 2024; ``protocols/ravdess-emobox-folds.json``, with EmoBox's own results for large
  self-supervised models), so our figures stand beside theirs.
- **Contiguous** (RAVDESS, for continuity with earlier reports): actors 01-04, 05-08, ..., 21-24.
- **EmoDB pairs**: five folds of two speakers, one male and one female, in speaker order.
- **Cross-corpus**: train on all of one corpus, test on all of another, over shared emotions.
- **Leave one corpus out** (LOCO, the cross-corpus headline): for each corpus with emotion
  labels, train on every other corpus and test on all of it, over the emotions it shares with
  the training labels. Its voices, language, microphones and rooms are never trained on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_edge.errors import ParameterError

__all__ = [
    "EMOBOX_FOLDS_FILE",
    "Split",
    "emobox_groups",
    "emobox_parameters",
    "contiguous_groups",
    "emodb_pair_groups",
    "in_corpus_splits",
    "cross_corpus_split",
    "loco_splits",
    "emobox_published",
]

#: EmoBox's RAVDESS folds and published results (a copy of the file in ``../shared/protocols``).
EMOBOX_FOLDS_FILE = Path(__file__).resolve().parent / "protocols" / "ravdess-emobox-folds.json"

#: EmoDB's speakers, male and female (Burkhardt et al. 2005), paired in order into five folds.
_EMODB_MALE = ("03", "10", "11", "12", "15")
_EMODB_FEMALE = ("08", "09", "13", "14", "16")


@dataclass(frozen=True)
class Split:
    """One train/test split of a dataset's clips.

    Attributes
    ----------
    name : str
        E.g. ``"emobox fold 3"``.
    train, test : np.ndarray of int
        Clip indices.
    tested : tuple of str
        The speakers tested.
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    tested: tuple[str, ...]


def _load_emobox() -> dict:
    return json.loads(EMOBOX_FOLDS_FILE.read_text())


def emobox_published() -> dict[str, float]:
    """EmoBox's published unweighted average recall on these folds, per model, as a fraction."""
    return {k: v / 100.0 for k, v in _load_emobox()["emobox_published_ua_percent"].items()}


def emobox_parameters(model: str) -> str:
    """Size of a published EmoBox model's encoder, by its name's ending (``"95M"``), or ``"-"``."""
    sizes = {"large-v3": "1550M", "base": "95M", "large": "317M"}
    return next((v for k, v in sizes.items() if model.endswith(k)), "-")


def emobox_groups() -> dict[str, int]:
    """RAVDESS speaker (``"ravdess:NN"``) -> EmoBox fold (0-5) that tests them."""
    return {f"ravdess:{actor:02d}": k for k, fold in enumerate(_load_emobox()["folds"])
            for actor in fold["test_actors"]}


def contiguous_groups(n_folds: int = 6) -> dict[str, int]:
    """RAVDESS speaker -> contiguous fold: actors 01-04 in fold 0, 05-08 in fold 1, ..."""
    actors = [f"ravdess:{a:02d}" for a in range(1, 25)]
    return {s: k for k, group in enumerate(np.array_split(actors, n_folds)) for s in group}


def emodb_pair_groups() -> dict[str, int]:
    """EmoDB speaker (``"emodb:NN"``) -> fold of two speakers, one male and one female."""
    return {f"emodb:{s}": k for k, pair in enumerate(zip(_EMODB_MALE, _EMODB_FEMALE, strict=True))
            for s in pair}


def in_corpus_splits(
    speakers: Sequence[str], corpora: Sequence[str], corpus: str, groups: dict[str, int],
    *, name: str,
) -> list[Split]:
    """Speaker-independent folds over one corpus's speakers; training takes every other clip.

    Parameters
    ----------
    speakers, corpora : sequence of str [shape=(n_clips,)]
        Each clip's speaker and corpus.
    corpus : str
        The corpus tested.
    groups : dict of str to int
        Its speakers' folds (e.g. :func:`emobox_groups`).
    name : str
        The protocol's name, for the splits' names.

    Returns
    -------
    splits : list of Split
        One per fold, in fold order.

    Raises
    ------
    ParameterError
        If a speaker of ``corpus`` has no fold.
    """
    speakers = np.asarray(speakers).astype(str)
    corpora = np.asarray(corpora).astype(str)
    mine = corpora == corpus
    missing = sorted(set(speakers[mine]) - set(groups))
    if missing:
        raise ParameterError(f"{corpus} speakers without a fold in {name}: {missing[:5]}")
    splits = []
    for k in sorted(set(groups.values())):
        tested = sorted(s for s, g in groups.items() if g == k)
        is_tested = np.isin(speakers, tested)
        test = np.flatnonzero(is_tested & mine)
        if test.size:
            splits.append(Split(f"{name} fold {k + 1}", np.flatnonzero(~is_tested), test,
                                tuple(tested)))
    return splits


def cross_corpus_split(
    corpora: Sequence[str], emotions: Sequence[str], train_corpus: str, test_corpus: str,
) -> Split:
    """Train on all of one corpus, test on all of another, over the emotions both have.

    Raises
    ------
    ParameterError
        If the corpora share fewer than two emotions.
    """
    corpora = np.asarray(corpora).astype(str)
    emotions = np.asarray(emotions).astype(str)
    shared = sorted(set(emotions[corpora == train_corpus]) & set(emotions[corpora == test_corpus]))
    if len(shared) < 2:
        raise ParameterError(f"{train_corpus} and {test_corpus} share fewer than two emotions")
    keep = np.isin(emotions, shared)
    return Split(f"{train_corpus} -> {test_corpus}",
                 np.flatnonzero(keep & (corpora == train_corpus)),
                 np.flatnonzero(keep & (corpora == test_corpus)), (test_corpus,))


def loco_splits(
    corpora: Sequence[str], emotions: Sequence[str], tested: Sequence[str] | None = None,
) -> list[Split]:
    """Leave one corpus out: per corpus, train on all the others, test on all of it.

    Parameters
    ----------
    corpora, emotions : sequence of str [shape=(n_clips,)]
        Each clip's corpus and emotion (``""`` for a clip without one, such as BAVED's, which
        is trained on, never tested).
    tested : sequence of str, optional
        The corpora tested, in this order; by default every corpus with emotion labels, sorted.

    Returns
    -------
    splits : list of Split
        ``"loco <corpus>"``: ``train`` every clip of the other corpora; ``test`` the corpus's
        clips whose emotion is among the training clips' (a corpus's own emotions that no other
        corpus has cannot be scored); ``tested`` the corpus.

    Raises
    ------
    ParameterError
        If fewer than two corpora are given, a tested corpus has no clips, or it shares fewer
        than two emotions with the others.
    """
    corpora = np.asarray(corpora).astype(str)
    emotions = np.asarray(emotions).astype(str)
    names = sorted(set(corpora))
    if len(names) < 2:
        raise ParameterError(f"leave-one-corpus-out needs two corpora or more, got {names}")
    if tested is None:
        tested = sorted(set(corpora[emotions != ""]))
    splits = []
    for corpus in tested:
        mine = corpora == corpus
        if not mine.any():
            raise ParameterError(f"leave-one-corpus-out: no clips of corpus {corpus!r}")
        taught = set(emotions[~mine]) - {""}
        shared = sorted(set(emotions[mine]) & taught)
        if len(shared) < 2:
            raise ParameterError(f"{corpus} shares fewer than two emotions with the other corpora")
        splits.append(Split(f"loco {corpus}", np.flatnonzero(~mine),
                            np.flatnonzero(mine & np.isin(emotions, shared)), (corpus,)))
    return splits
