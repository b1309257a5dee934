"""The models: ``Pipeline(StandardScaler, classifier)`` for five classifiers, all exportable.

:func:`fit_pipeline` is the one way a model is made, so that tests and benchmarks can refit the
bundled pipeline exactly from a feature matrix: ``fit_pipeline(X, y)`` with the defaults here is
what ``python -m export train`` fits (the seed and parameters are also in the ONNX model's
``training`` metadata).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ser_edge.errors import ParameterError
from ser_edge.features import FeatureConfig

__all__ = [
    "MODELS",
    "DEFAULT_SEED",
    "DEFAULT_PARAMS",
    "DEFAULT_FEATURE_CONFIG",
    "make_pipeline",
    "fit_pipeline",
]

#: The seed of every random choice in training (MLP initialisation and batches, forests, splits).
DEFAULT_SEED = 0

#: Model names accepted by :func:`fit_pipeline` and the command line.
MODELS = ("mlp", "knn", "svm", "rf", "tree")

#: Each model's parameters (beyond ``random_state``), chosen on speaker-independent RAVDESS UAR;
#: see ``ser_edge/models/ravdess-mlp-report/summary.md``.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "mlp": {
        "hidden_layer_sizes": (256,),
        "alpha": 1.0,
        "max_iter": 300,
        "early_stopping": False,
        "learning_rate_init": 1e-3,
        "batch_size": 64,
    },
    # uniform weights: "distance" gives a training row infinite weight, which ONNX cannot mirror
    "knn": {"n_neighbors": 10, "weights": "uniform"},
    "svm": {"C": 10.0, "kernel": "rbf", "gamma": "scale"},
    "rf": {"n_estimators": 200, "min_samples_leaf": 2, "max_features": "sqrt"},
    "tree": {"max_depth": 12, "min_samples_leaf": 3},
}

#: The feature configuration of the bundled model, chosen on speaker-independent RAVDESS UAR
#: (grid in ``ser_edge/models/ravdess-mlp-report/summary.md``): 16 kHz, 1024-sample FFT, hop 256,
#: tuning fixed at 0 (as good as per-clip estimation over three seeds, and cheaper at run time).
DEFAULT_FEATURE_CONFIG = FeatureConfig(
    features=("mfcc", "chroma", "mel"),
    sr=16000,
    n_fft=1024,
    hop_length=256,
    n_mfcc=40,
    n_mels=128,
    n_chroma=12,
    fmin=0.0,
    fmax=None,
    htk=False,
    tuning=0.0,
    mel_db=True,
    stats=("mean", "std"),
)


def make_pipeline(
    model: str = "mlp", params: Mapping[str, Any] | None = None, *, seed: int = DEFAULT_SEED
) -> Any:
    """Build an unfitted ``Pipeline([("scaler", StandardScaler()), ("clf", classifier)])``.

    Parameters
    ----------
    model : {"mlp", "knn", "svm", "rf", "tree"}
        MLPClassifier, KNeighborsClassifier, SVC (with probabilities), RandomForestClassifier,
        DecisionTreeClassifier.
    params : mapping, optional
        Classifier parameters; they update :data:`DEFAULT_PARAMS` ``[model]``.
    seed : int
        ``random_state`` of the classifier (where it has one).

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline

    Raises
    ------
    ParameterError
        If ``model`` is unknown or a parameter is not one of the classifier's.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    if model not in MODELS:
        raise ParameterError(f"unknown model {model!r}; choose from {MODELS}")
    kwargs = dict(DEFAULT_PARAMS[model])
    kwargs.update(params or {})
    if "hidden_layer_sizes" in kwargs:
        kwargs["hidden_layer_sizes"] = tuple(kwargs["hidden_layer_sizes"])
    if model == "mlp":
        clf = MLPClassifier(random_state=seed)
    elif model == "knn":
        clf = KNeighborsClassifier()
    elif model == "svm":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            clf = SVC(probability=True, random_state=seed)
    elif model == "rf":
        clf = RandomForestClassifier(random_state=seed, n_jobs=1)
    else:
        clf = DecisionTreeClassifier(random_state=seed)
    unknown = sorted(set(kwargs) - set(clf.get_params()))
    if unknown:
        raise ParameterError(f"{type(clf).__name__} has no parameter(s) {', '.join(unknown)}")
    clf.set_params(**kwargs)
    return Pipeline([("scaler", StandardScaler()), ("clf", clf)])


def fit_pipeline(
    X: np.ndarray,
    y: np.ndarray,
    *,
    model: str = "mlp",
    params: Mapping[str, Any] | None = None,
    seed: int = DEFAULT_SEED,
) -> Any:
    """Fit :func:`make_pipeline` on float32 features, deterministically for a given seed.

    Parameters
    ----------
    X : np.ndarray [shape=(n_clips, n_features)]
        Cast to float32 first, as the runtime feeds the ONNX model.
    y : np.ndarray [shape=(n_clips,)], str
        Emotion names.
    model, params, seed
        See :func:`make_pipeline`.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Fitted; ``pipeline.classes_`` is the sorted label set (the ONNX output order).

    Raises
    ------
    ParameterError
        If the shapes disagree, fewer than two classes are given, or the model is unknown.
    """
    from sklearn.exceptions import ConvergenceWarning

    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y).astype(str)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ParameterError(f"features have shape {X.shape} but labels {y.shape}")
    if len(np.unique(y)) < 2:
        raise ParameterError(f"need at least two emotions to train, got {np.unique(y).tolist()}")
    pipeline = make_pipeline(model, params, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)
        pipeline.fit(X, y)
    return pipeline


def predict(pipeline: Any, X: np.ndarray) -> np.ndarray:
    """Predict labels of float32 features (silencing scikit-learn's deprecation noise)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return np.asarray(pipeline.predict(np.asarray(X, dtype=np.float32))).astype(str)
