"""Train and score a recipe over speaker-independent splits: UAR, robustness, calibration.

A :class:`Recipe` is how a model is made (classifier, parameters, the seeds of a soft-voting
ensemble, the augmentation of the training clips). :func:`run_splits` trains it on each split's
training clips (with their augmented copies, never the test speakers') and keeps the test clips'
probabilities, clean and under each perturbation of the robustness evaluation; the scoring
functions turn those into the report's figures.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ser_edge.errors import ParameterError

from .augment import AugmentConfig
from .protocols import Split
from .train import DEFAULT_SEED, fit_pipeline

__all__ = [
    "Recipe",
    "Ensemble",
    "fit_recipe",
    "run_splits",
    "fold_scores",
    "per_class_recall",
    "robustness",
    "expected_calibration_error",
    "fit_temperature",
    "apply_temperature",
]


@dataclass(frozen=True)
class Recipe:
    """How a model is trained.

    Parameters
    ----------
    model : str
        A name of :data:`export.train.MODELS`.
    params : mapping
        Classifier parameters over :data:`export.train.DEFAULT_PARAMS`.
    seeds : tuple of int
        One model per seed, their probabilities averaged (soft voting); one seed, one model.
    augment : AugmentConfig
        Augmentation of the training clips (none by default).
    augment_seed : int
        Seed of the augmented copies.
    """

    model: str = "mlp"
    params: tuple[tuple[str, Any], ...] | Mapping[str, Any] = ()
    seeds: tuple[int, ...] = (DEFAULT_SEED,)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    augment_seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(sorted(dict(self.params).items())))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if not self.seeds:
            raise ParameterError("a recipe needs at least one seed")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (for reports and model metadata)."""
        data = dataclasses.asdict(self)
        data["params"] = dict(self.params)
        data["seeds"] = list(self.seeds)
        data["augment"] = json.loads(self.augment.to_json())
        return data


class Ensemble:
    """Soft voting: the mean of fitted classifiers' probabilities (all with the same classes).

    Parameters
    ----------
    members : sequence of fitted estimators
        Each with ``predict_proba`` and the same ``classes_``.
    """

    def __init__(self, members: Sequence[Any]):
        self.members = list(members)
        self.classes_ = np.asarray(self.members[0].classes_)
        for m in self.members[1:]:
            if list(m.classes_) != list(self.classes_):
                raise ParameterError("ensemble members have different classes")

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Mean probability of each class, ``(n, n_classes)``."""
        import warnings

        X = np.asarray(X, dtype=np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return np.mean([m.predict_proba(X) for m in self.members], axis=0)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable class of each row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)].astype(str)


def _training_rows(
    X: np.ndarray, X_aug: np.ndarray, y: np.ndarray, train: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The training clips and their augmented copies, stacked."""
    Xs = [X[train]] + [X_aug[c, train] for c in range(X_aug.shape[0])]
    return np.concatenate(Xs), np.tile(y[train], len(Xs))


def fit_recipe(X: np.ndarray, y: np.ndarray, recipe: Recipe) -> Any:
    """Fit the recipe's classifier (one per seed) on rows ``X`` (already with their copies).

    Returns
    -------
    model : sklearn Pipeline or Ensemble
        One pipeline for one seed; an :class:`Ensemble` otherwise.
    """
    members = [fit_pipeline(X, y, model=recipe.model, params=dict(recipe.params), seed=s)
               for s in recipe.seeds]
    return members[0] if len(members) == 1 else Ensemble(members)


def _run_split(X, X_aug, y, split, recipe, variants, labels):  # noqa: ANN001, ANN202 - worker
    Xtr, ytr = _training_rows(X, X_aug, y, split.train)
    model = fit_recipe(Xtr, ytr, recipe)
    cols = [labels.index(str(c)) for c in model.classes_]
    out = {}
    for name, V in [("clean", X), *variants.items()]:
        P = np.zeros((len(split.test), len(labels)))
        P[:, cols] = model.predict_proba(np.asarray(V[split.test], dtype=np.float32))
        out[name] = P
    return out


def run_splits(
    X: np.ndarray,
    y: np.ndarray,
    splits: Sequence[Split],
    recipe: Recipe,
    *,
    X_aug: np.ndarray | None = None,
    variants: Mapping[str, np.ndarray] | None = None,
    labels: Sequence[str] | None = None,
    n_jobs: int = 2,
) -> dict[str, Any]:
    """Train the recipe on each split and keep its test clips' probabilities.

    Parameters
    ----------
    X : np.ndarray [shape=(n_clips, n_features)]
        Clean features of every clip.
    y : np.ndarray [shape=(n_clips,)], str
        Emotions.
    splits : sequence of Split
        Speaker-independent splits (:mod:`export.protocols`).
    recipe : Recipe
    X_aug : np.ndarray [shape=(copies, n_clips, n_features)], optional
        Augmented copies of every clip; only the training clips' are used.
    variants : mapping of str to np.ndarray [shape=(n_clips, n_features)], optional
        Perturbed test features (the robustness evaluation), scored like the clean ones.
    labels : sequence of str, optional
        Column order of the probabilities (default: the sorted emotions of ``y``).
    n_jobs : int
        Splits trained in parallel (joblib processes).

    Returns
    -------
    result : dict
        ``labels``; ``splits``, a list of ``{"name", "test", "tested", "proba": {variant:
        (n_test, n_labels)}}``.
    """
    from joblib import Parallel, delayed

    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y).astype(str)
    labels = sorted(set(y)) if labels is None else list(labels)
    X_aug = np.zeros((0,) + X.shape, np.float32) if X_aug is None else X_aug
    variants = dict(variants or {})
    jobs = [delayed(_run_split)(X, X_aug, y, s, recipe, variants, labels) for s in splits]
    outs = (Parallel(n_jobs=n_jobs)(jobs) if n_jobs > 1 and len(jobs) > 1
            else [j[0](*j[1], **j[2]) for j in jobs])
    return {"labels": labels,
            "splits": [{"name": s.name, "test": s.test, "tested": list(s.tested), "proba": o}
                       for s, o in zip(splits, outs, strict=True)]}


def _pred(result: Mapping[str, Any], P: np.ndarray) -> np.ndarray:
    return np.asarray(result["labels"])[np.argmax(P, axis=1)]


def fold_scores(result: Mapping[str, Any], y: np.ndarray, variant: str = "clean") -> dict:
    """UAR, accuracy and macro-F1 per split, their mean and population std over splits.

    Scores over the emotions each test set holds (cross-corpus: the shared ones).
    """
    from .evaluate import scores

    y = np.asarray(y).astype(str)
    per = []
    for s in result["splits"]:
        entry = scores(y[s["test"]], _pred(result, s["proba"][variant]))
        entry["name"] = s["name"]
        entry["tested"] = s["tested"]
        per.append(entry)
    out: dict[str, Any] = {"folds": per, "n_folds": len(per)}
    for key in ("uar", "accuracy", "macro_f1"):
        v = np.array([f[key] for f in per])
        out[f"{key}_mean"], out[f"{key}_std"] = float(v.mean()), float(v.std())
    return out


def _pooled(result: Mapping[str, Any], variant: str) -> tuple[np.ndarray, np.ndarray]:
    """Test indices and probabilities of every split, concatenated (out-of-fold)."""
    idx = np.concatenate([s["test"] for s in result["splits"]])
    P = np.concatenate([s["proba"][variant] for s in result["splits"]])
    return idx, P


def per_class_recall(result: Mapping[str, Any], y: np.ndarray,
                     variant: str = "clean") -> dict[str, Any]:
    """Out-of-fold recall of each true emotion, and the confusion matrix (rows: true)."""
    from sklearn.metrics import confusion_matrix, recall_score

    y = np.asarray(y).astype(str)
    idx, P = _pooled(result, variant)
    truth, pred = y[idx], _pred(result, P)
    present = [label for label in result["labels"] if label in set(truth)]
    recall = recall_score(truth, pred, labels=present, average=None, zero_division=0)
    return {"recall": {label: float(r) for label, r in zip(present, recall, strict=True)},
            "labels": present,
            "confusion": confusion_matrix(truth, pred, labels=present).tolist()}


def robustness(result: Mapping[str, Any], y: np.ndarray) -> dict[str, dict[str, float]]:
    """Per perturbation: UAR (mean over splits) and the share of clips labelled as when clean."""
    y = np.asarray(y).astype(str)
    names = [k for k in result["splits"][0]["proba"] if k != "clean"]
    out = {}
    for name in names:
        same = [np.mean(_pred(result, s["proba"][name]) == _pred(result, s["proba"]["clean"]))
                * len(s["test"]) for s in result["splits"]]
        n = sum(len(s["test"]) for s in result["splits"])
        out[name] = {"uar": fold_scores(result, y, name)["uar_mean"],
                     "label_unchanged": float(np.sum(same) / n)}
    return out


def expected_calibration_error(P: np.ndarray, truth_index: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error of the top-label confidence, with ``n_bins`` equal-width bins.

    The mean, weighted by the share of clips in each bin, of ``|accuracy - mean confidence|``
    (Guo et al. 2017).
    """
    conf = P.max(axis=1)
    correct = np.argmax(P, axis=1) == truth_index
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def apply_temperature(P: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(P) / T)``: the probabilities sharpened (T < 1) or softened (T > 1)."""
    logits = np.log(np.clip(P, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    E = np.exp(logits)
    return E / E.sum(axis=1, keepdims=True)


def fit_temperature(P: np.ndarray, truth_index: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of the true labels."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        Q = apply_temperature(P, float(np.exp(log_t)))
        return float(-np.mean(np.log(np.clip(Q[np.arange(len(Q)), truth_index], 1e-12, 1.0))))

    res = minimize_scalar(nll, bounds=(np.log(0.2), np.log(10.0)), method="bounded")
    return float(np.exp(res.x))
