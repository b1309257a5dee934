"""Networks over speaker-independent splits, scored like the pooled models.

:func:`run_net_splits` gives the same result as :func:`export.experiment.run_splits` (per split,
the test clips' probabilities, clean and perturbed), so :func:`export.experiment.fold_scores`,
:func:`~export.experiment.robustness` and :func:`~export.experiment.per_class_recall` score both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..protocols import Split
from .train import NetConfig, predict_proba, train_net

__all__ = ["run_net_splits"]


def _run_split(frames, frames_aug, variants, y_index, speakers, corpora, split, config,
               n_labels):  # noqa: ANN001, ANN202 - joblib worker
    train = split.train
    versions = [[frames[i]] + [copy[i] for copy in frames_aug] for i in train]
    model, history = train_net(versions, y_index[train], speakers[train], corpora[train], config,
                               n_labels)
    out = {"clean": predict_proba(model, [frames[i] for i in split.test])}
    for name, V in variants.items():
        out[name] = predict_proba(model, [V[i] for i in split.test])
    return out, history


def run_net_splits(
    frames: Sequence[np.ndarray],
    y: np.ndarray,
    speakers: Sequence[str],
    corpora: Sequence[str],
    splits: Sequence[Split],
    config: NetConfig,
    *,
    frames_aug: Sequence[Sequence[np.ndarray]] = (),
    variants: Mapping[str, Sequence[np.ndarray]] | None = None,
    labels: Sequence[str] | None = None,
    n_jobs: int = 2,
) -> dict[str, Any]:
    """Train a network on each split's training clips; keep its test clips' probabilities.

    Parameters
    ----------
    frames : sequence of np.ndarray [shape=(n_features, n_frames_i)]
        Clean frame matrix of every clip.
    y : np.ndarray [shape=(n_clips,)], str
    speakers, corpora : sequence of str [shape=(n_clips,)]
    splits : sequence of Split
    config : NetConfig
    frames_aug : sequence (copies) of sequence (clips) of np.ndarray
        Augmented copies; only the training clips' are used.
    variants : mapping of str to sequence of np.ndarray, optional
        Perturbed test frame matrices.
    labels : sequence of str, optional
        Column order (default: sorted emotions of ``y``).
    n_jobs : int
        Splits trained in parallel (joblib processes, ``config.threads`` threads each).

    Returns
    -------
    result : dict
        As :func:`export.experiment.run_splits`, each split also with its training ``history``.
    """
    from joblib import Parallel, delayed

    y = np.asarray(y).astype(str)
    labels = sorted(set(y)) if labels is None else list(labels)
    y_index = np.array([labels.index(v) for v in y])
    speakers = np.asarray(speakers).astype(str)
    corpora = np.asarray(corpora).astype(str)
    variants = dict(variants or {})
    jobs = [delayed(_run_split)(frames, frames_aug, variants, y_index, speakers, corpora, s,
                                config, len(labels)) for s in splits]
    outs = (Parallel(n_jobs=n_jobs)(jobs) if n_jobs > 1 and len(jobs) > 1
            else [j[0](*j[1], **j[2]) for j in jobs])
    return {"labels": labels,
            "splits": [{"name": s.name, "test": s.test, "tested": list(s.tested), "proba": o,
                        "history": h} for s, (o, h) in zip(splits, outs, strict=True)]}
