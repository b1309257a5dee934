"""Honest evaluation: speaker-independent cross-validation, the seeds' random split, cross-corpus.

- :func:`speaker_folds`: every clip of a speaker in the same fold. For RAVDESS's 24 actors and 6
  folds that is actors 01-04, 05-08, ..., 21-24 (two male and two female actors per fold).
- :func:`cross_validate`: accuracy, unweighted average recall (UAR, i.e. balanced accuracy) and
  macro-F1 per fold, their mean and standard deviation (population, over folds), a per-class report
  and the confusion matrix of the out-of-fold predictions (the sum of the folds' matrices).
- :func:`random_split`: the seeds' random stratified 75/25 split of clips, which puts the same
  speakers on both sides and so overstates what a new voice will see.
- :func:`cross_corpus`: train on one corpus, test on another, over the emotions they share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ser_edge.errors import ParameterError

from .train import DEFAULT_SEED, fit_pipeline, predict

__all__ = ["speaker_folds", "scores", "cross_validate", "random_split", "cross_corpus"]


def speaker_folds(speakers: Sequence[str], n_folds: int = 6) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split clip indices into folds by speaker, deterministically.

    The sorted unique speakers are cut into ``n_folds`` contiguous groups of (nearly) equal size.

    Parameters
    ----------
    speakers : sequence of str [shape=(n_clips,)]
    n_folds : int >= 2

    Returns
    -------
    folds : list of (train_index, test_index)

    Raises
    ------
    ParameterError
        If there are fewer speakers than folds, or a speaker is empty (unknown).
    """
    speakers = np.asarray(speakers).astype(str)
    unique = np.unique(speakers)
    if "" in unique:
        raise ParameterError("speaker-independent folds need a speaker for every clip")
    if n_folds < 2 or len(unique) < n_folds:
        raise ParameterError(f"cannot make {n_folds} speaker folds from {len(unique)} speaker(s)")
    folds = []
    for group in np.array_split(unique, n_folds):
        test = np.isin(speakers, group)
        folds.append((np.flatnonzero(~test), np.flatnonzero(test)))
    return folds


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy, UAR (balanced accuracy over the true classes) and macro-F1."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    labels = np.unique(y_true)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "uar": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
    }


def _summary(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    from sklearn.metrics import classification_report, confusion_matrix

    report = classification_report(
        y_true, y_pred, labels=list(labels), output_dict=True, zero_division=0
    )
    per_class = {
        label: {k: float(v) for k, v in report[label].items()}
        for label in labels
        if label in report
    }
    return {
        "labels": list(labels),
        "per_class": per_class,
        "confusion": confusion_matrix(y_true, y_pred, labels=list(labels)).tolist(),
    }


def _fit_predict(X, y, train, test, model, params, seed):  # noqa: ANN001, ANN202 - joblib worker
    pipeline = fit_pipeline(X[train], y[train], model=model, params=params, seed=seed)
    return predict(pipeline, X[test])


def cross_validate(
    X: np.ndarray,
    y: np.ndarray,
    speakers: Sequence[str],
    *,
    model: str = "mlp",
    params: Mapping[str, Any] | None = None,
    seed: int = DEFAULT_SEED,
    n_folds: int = 6,
    n_jobs: int = 1,
) -> dict[str, Any]:
    """Speaker-independent k-fold cross-validation of one model.

    Parameters
    ----------
    X : np.ndarray [shape=(n_clips, n_features)]
    y : np.ndarray [shape=(n_clips,)], str
    speakers : sequence of str [shape=(n_clips,)]
    model, params, seed
        See :func:`export.train.make_pipeline`.
    n_folds : int
    n_jobs : int
        Folds fitted in parallel (joblib processes; at most 2 on a shared machine).

    Returns
    -------
    result : dict
        ``uar_mean``, ``uar_std``, ``accuracy_mean``, ``accuracy_std``, ``macro_f1_mean``,
        ``macro_f1_std``, ``n_folds``, ``folds`` (per-fold scores and test speakers), ``labels``,
        ``per_class`` (precision, recall, F1, support of the out-of-fold predictions),
        ``confusion`` (rows true, columns predicted, summed over folds) and ``predictions``
        (out-of-fold labels, in clip order).
    """
    from joblib import Parallel, delayed

    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y).astype(str)
    speakers = np.asarray(speakers).astype(str)
    folds = speaker_folds(speakers, n_folds)
    jobs = [delayed(_fit_predict)(X, y, tr, te, model, params, seed) for tr, te in folds]
    if n_jobs == 1:
        preds = [job[0](*job[1], **job[2]) for job in jobs]
    else:
        preds = Parallel(n_jobs=n_jobs)(jobs)
    oof = np.empty(len(y), dtype=object)
    fold_scores = []
    for (_, test), pred in zip(folds, preds, strict=True):
        oof[test] = pred
        entry = scores(y[test], pred)
        entry["speakers"] = sorted(set(speakers[test].tolist()))
        fold_scores.append(entry)
    result: dict[str, Any] = {"protocol": f"speaker-independent {n_folds}-fold", "n_folds": n_folds}
    for key in ("uar", "accuracy", "macro_f1"):
        values = np.array([f[key] for f in fold_scores])
        result[f"{key}_mean"] = float(values.mean())
        result[f"{key}_std"] = float(values.std())
    result["folds"] = fold_scores
    result.update(_summary(y, oof.astype(str), np.unique(y)))
    result["predictions"] = oof.astype(str).tolist()
    return result


def random_split(
    X: np.ndarray,
    y: np.ndarray,
    *,
    model: str = "mlp",
    params: Mapping[str, Any] | None = None,
    seed: int = DEFAULT_SEED,
    test_size: float = 0.25,
) -> dict[str, Any]:
    """Evaluate on the seeds' random, stratified split of clips (speakers leak across it).

    Returns
    -------
    result : dict
        ``protocol``, ``accuracy``, ``uar``, ``macro_f1``, ``n_train``, ``n_test`` and the
        per-class report and confusion matrix.
    """
    from sklearn.model_selection import train_test_split

    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y).astype(str)
    train, test = train_test_split(
        np.arange(len(y)), test_size=test_size, random_state=seed, stratify=y
    )
    pred = _fit_predict(X, y, train, test, model, params, seed)
    result: dict[str, Any] = {
        "protocol": f"random stratified {1 - test_size:.0%}/{test_size:.0%} split of clips "
        "(speakers in both train and test; not speaker-independent)",
        "n_train": len(train),
        "n_test": len(test),
    }
    result.update(scores(y[test], pred))
    result.update(_summary(y[test], pred, np.unique(y)))
    return result


def cross_corpus(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    train_corpus: str,
    test_corpus: str,
    model: str = "mlp",
    params: Mapping[str, Any] | None = None,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """Train on one corpus and test on another, over the emotions both have.

    Returns
    -------
    result : dict
        ``protocol``, ``emotions`` (shared), ``n_train``, ``n_test``, ``accuracy``, ``uar``,
        ``macro_f1``, per-class report and confusion matrix.

    Raises
    ------
    ParameterError
        If the corpora share fewer than two emotions.
    """
    y_train = np.asarray(y_train).astype(str)
    y_test = np.asarray(y_test).astype(str)
    shared = sorted(set(y_train) & set(y_test))
    if len(shared) < 2:
        raise ParameterError(f"{train_corpus} and {test_corpus} share fewer than two emotions")
    tr = np.isin(y_train, shared)
    te = np.isin(y_test, shared)
    pipeline = fit_pipeline(
        np.asarray(X_train)[tr], y_train[tr], model=model, params=params, seed=seed
    )
    pred = predict(pipeline, np.asarray(X_test)[te])
    result: dict[str, Any] = {
        "protocol": f"train on all of {train_corpus}, test on all of {test_corpus}, "
        "shared emotions only",
        "train_corpus": train_corpus,
        "test_corpus": test_corpus,
        "emotions": shared,
        "n_train": int(tr.sum()),
        "n_test": int(te.sum()),
    }
    result.update(scores(y_test[te], pred))
    result.update(_summary(y_test[te], pred, shared))
    return result
