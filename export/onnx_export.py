"""Convert a scikit-learn pipeline to the ONNX model the ser-edge runtime reads.

The contract (shared with ``ser_edge.model``):

- one input ``"features"``, float32 ``[None, n_features]``;
- outputs ``"label"`` (string tensor ``[N]``) and ``"probabilities"`` (float32 ``[N, n_labels]``,
  columns in ``labels`` order, which is ``classifier.classes_``), no ZipMap;
- ``metadata_props``: ``labels``, ``feature_config``, ``training`` and ``metrics``, each a JSON
  string.

Before it is returned (and saved), the model is run with onnxruntime on the given rows and
compared with scikit-learn (:func:`check_onnx`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ser_edge.errors import ModelError
from ser_edge.features import FeatureConfig

__all__ = [
    "TARGET_OPSET",
    "INPUT_NAME",
    "LABEL_OUTPUT",
    "PROBA_OUTPUT",
    "METADATA_KEYS",
    "export_onnx",
    "check_onnx",
    "onnx_predict",
    "read_metadata",
    "set_metadata",
    "save",
    "half_weights",
]

#: ONNX opset the export pins for the default domain (skl2onnx then uses ``ai.onnx.ml`` opset 3).
#: Opset 17 runs on onnxruntime >= 1.13, so older Raspberry Pi wheels load the bundled model too.
TARGET_OPSET = 17

INPUT_NAME = "features"
LABEL_OUTPUT = "label"
PROBA_OUTPUT = "probabilities"
METADATA_KEYS = ("labels", "feature_config", "training", "metrics")

#: Tolerance of :func:`check_onnx` on probabilities (absolute).
PROBA_ATOL = 1e-4


def _final_estimator(pipeline: Any) -> Any:
    return pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_json_default)


def export_onnx(
    pipeline: Any,
    *,
    feature_config: FeatureConfig,
    labels: Sequence[str],
    training: Mapping[str, Any],
    metrics: Mapping[str, Any],
    path: str | Path | None = None,
    target_opset: int | Mapping[str, int] = TARGET_OPSET,
    check_rows: np.ndarray | None = None,
    temperature: float = 1.0,
) -> Any:
    """Convert a fitted ``Pipeline(StandardScaler, classifier)`` to an ONNX model.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline or export.experiment.Ensemble
        Fitted; its final step is a classifier with ``predict_proba`` and ``classes_``. An
        ensemble of such pipelines with the same scaler (one per seed, fitted on the same rows)
        becomes ``Pipeline(scaler, VotingClassifier(soft))``: their probabilities averaged.
    feature_config : FeatureConfig
        The configuration the features were computed with; its JSON goes into the metadata.
    labels : sequence of str
        Emotion names in output order; must equal the classifier's ``classes_``.
    training : mapping
        Corpora and sizes, seed, versions, ...; ``estimator`` (the final estimator's class name)
        and ``estimator_params`` (its ``get_params()``) are filled in when absent.
    metrics : mapping
        Evaluation figures; must hold ``speaker_independent`` (may be empty for quick models).
    path : str or Path, optional
        Where to save the model (parent folders are created).
    target_opset : int or mapping of str to int
        Pinned opset(s) passed to ``skl2onnx.convert_sklearn``.
    check_rows : np.ndarray [shape=(n, n_features)], optional
        Rows to compare ONNX against scikit-learn on before saving (:func:`check_onnx`); the
        issue asks for every training row.
    temperature : float
        Calibration temperature: the graph's probabilities become ``softmax(log(p) / T)``
        (:func:`export.experiment.apply_temperature`); the label does not change.

    Returns
    -------
    model : onnx.ModelProto

    Raises
    ------
    ModelError
        If ``labels`` differ from ``classes_``, the pipeline's input width differs from
        ``feature_config.n_features``, or the ONNX model disagrees with scikit-learn.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    pipeline = _as_pipeline(pipeline)
    clf = _final_estimator(pipeline)
    classes = [str(c) for c in clf.classes_]
    labels = [str(label) for label in labels]
    if classes != labels:
        raise ModelError(f"labels {labels} differ from the classifier's classes_ {classes}")
    n_features = feature_config.n_features
    n_in = getattr(pipeline, "n_features_in_", None)
    if n_in is not None and int(n_in) != n_features:
        raise ModelError(
            f"the pipeline was fitted on {n_in} features but the feature configuration "
            f"gives {n_features}"
        )
    if "speaker_independent" not in metrics:
        raise ModelError("metrics must have a 'speaker_independent' entry")

    training = dict(training)
    members = getattr(clf, "estimators_", None) if type(clf).__name__ == "VotingClassifier" \
        else None
    if members:  # an ensemble: say so, and give one member's parameters (they differ by seed)
        training.setdefault("estimator", f"soft-voting ensemble of {len(members)} "
                            f"{type(members[0]).__name__} (seeds "
                            f"{', '.join(str(m.random_state) for m in members)})")
        params = members[0].get_params(deep=False)
        params.pop("random_state", None)
        training.setdefault("estimator_params", params)
    training.setdefault("estimator", type(clf).__name__)
    training.setdefault("estimator_params", clf.get_params())
    training.setdefault("pipeline", [name for name, _ in getattr(pipeline, "steps", [])])
    training.setdefault("versions", _versions())

    with warnings.catch_warnings():
        # scikit-learn 1.9 deprecates SVC's probA_/probB_, which the converter reads.
        warnings.simplefilter("ignore", FutureWarning)
        model = convert_sklearn(
            pipeline,
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
            target_opset=dict(target_opset) if isinstance(target_opset, Mapping) else target_opset,
            options={id(clf): {"zipmap": False}},
        )
    outputs = [o.name for o in model.graph.output]
    if outputs != [LABEL_OUTPUT, PROBA_OUTPUT]:
        expected = [LABEL_OUTPUT, PROBA_OUTPUT]
        raise ModelError(f"unexpected ONNX outputs {outputs}, expected {expected}")
    if temperature != 1.0:
        _append_temperature(model, temperature)
    used = {name for node in model.graph.node for name in node.input}
    unused = [t for t in model.graph.initializer if t.name not in used]
    for t in unused:  # e.g. the voting classifier's class indices: onnxruntime warns of them
        model.graph.initializer.remove(t)
    model.doc_string = "ser-edge speech emotion classifier"
    set_metadata(model, labels=labels, feature_config=feature_config, training=training,
                 metrics=metrics)
    if check_rows is not None:
        check_onnx(model, pipeline, check_rows, temperature=temperature)
    if path is not None:
        save(model, path)
    return model


def set_metadata(model: Any, *, labels: Sequence[str], feature_config: FeatureConfig,
                 training: Mapping[str, Any], metrics: Mapping[str, Any],
                 **extra: Any) -> None:
    """Write the runtime's metadata into ``model`` (replacing any), then check the model.

    ``labels``, ``feature_config``, ``training`` and ``metrics`` (:data:`METADATA_KEYS`), and
    any ``extra`` entries (e.g. ``input_kind``), each a JSON string.
    """
    import onnx

    meta = {
        "labels": _dumps([str(label) for label in labels]),
        "feature_config": feature_config.to_json(),
        "training": _dumps(dict(training)),
        "metrics": _dumps(dict(metrics)),
        **{key: _dumps(value) for key, value in extra.items()},
    }
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)


def save(model: Any, path: str | Path) -> None:
    """Write ``model`` to ``path``, creating its folder."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))


def half_weights(model: Any, *, min_size: int = 256) -> Any:
    """The model with its large float32 weights stored as float16, cast back when it loads.

    Each float32 initializer of at least ``min_size`` values is replaced by a float16 copy and a
    ``Cast`` node to float32 placed first in the graph: the file is about half the size, the
    computation stays in float32 (onnxruntime folds the casts once, when the session starts).
    Only the stored weights change, by their rounding to float16 (a relative error of at most
    2**-11); what that does to the probabilities is for the caller to measure.

    Parameters
    ----------
    model : onnx.ModelProto
        Not modified.
    min_size : int
        Smaller initializers (biases, shapes, constants) stay as they are.

    Returns
    -------
    model : onnx.ModelProto
        A copy, checked with ``onnx.checker``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    keep, casts = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_size:
            keep.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16),
                                       f"{init.name}_float16")
        keep.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}_cast"))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    return model


def _as_pipeline(model: Any) -> Any:
    """A fitted pipeline as is; an ensemble of pipelines as one with a soft-voting classifier."""
    members = getattr(model, "members", None)
    if members is None:
        return model
    from sklearn.ensemble import VotingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import LabelEncoder

    scalers = [m.steps[0][1] for m in members]
    for sc in scalers[1:]:
        if not (np.array_equal(sc.mean_, scalers[0].mean_)
                and np.array_equal(sc.scale_, scalers[0].scale_)):
            raise ModelError("the ensemble's members were scaled differently: fit them on the "
                             "same rows")
    clfs = [m.steps[-1][1] for m in members]
    voting = VotingClassifier([(f"seed{i}", c) for i, c in enumerate(clfs)], voting="soft",
                              flatten_transform=False)
    voting.estimators_ = clfs
    voting.le_ = LabelEncoder().fit(clfs[0].classes_)
    voting.classes_ = voting.le_.classes_
    return Pipeline([("scaler", scalers[0]), ("clf", voting)])


def _append_temperature(model: Any, temperature: float) -> None:
    """Rewire the graph's probabilities to ``softmax(log(max(p, 1e-12)) / T)``."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    raw = PROBA_OUTPUT + "_uncalibrated"
    for node in graph.node:
        node.output[:] = [raw if o == PROBA_OUTPUT else o for o in node.output]
        node.input[:] = [raw if i == PROBA_OUTPUT else i for i in node.input]
    graph.initializer.extend([
        numpy_helper.from_array(np.array(1e-12, np.float32), "temperature_floor"),
        numpy_helper.from_array(np.array(temperature, np.float32), "temperature"),
    ])
    graph.node.extend([
        helper.make_node("Max", [raw, "temperature_floor"], ["p_floored"]),
        helper.make_node("Log", ["p_floored"], ["log_p"]),
        helper.make_node("Div", ["log_p", "temperature"], ["log_p_tempered"]),
        helper.make_node("Softmax", ["log_p_tempered"], [PROBA_OUTPUT], axis=-1),
    ])
    del TensorProto


def _versions() -> dict[str, str]:
    import onnx
    import skl2onnx
    import sklearn

    out = {
        "scikit-learn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnx": onnx.__version__,
    }
    try:
        import librosa

        out["librosa"] = librosa.__version__
    except ImportError:  # pragma: no cover - export extra installs it
        pass
    return out


def _session(model: Any) -> Any:
    import onnxruntime as ort

    data = model if isinstance(model, (bytes, bytearray)) else model.SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def onnx_predict(model: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run an ONNX model (``ModelProto`` or serialised bytes) with onnxruntime.

    Parameters
    ----------
    model : onnx.ModelProto or bytes
    X : np.ndarray [shape=(n, n_features)]

    Returns
    -------
    labels : np.ndarray [shape=(n,)], str
    probabilities : np.ndarray [shape=(n, n_labels)], float32
    """
    sess = _session(model)
    X = np.ascontiguousarray(X, dtype=np.float32)
    label, proba = sess.run([LABEL_OUTPUT, PROBA_OUTPUT], {INPUT_NAME: X})
    return np.asarray(label).astype(str), np.asarray(proba, dtype=np.float32)


def check_onnx(model: Any, pipeline: Any, X: np.ndarray, *, atol: float = PROBA_ATOL,
               temperature: float = 1.0) -> None:
    """Check that the ONNX model agrees with scikit-learn on the rows ``X``.

    Parameters
    ----------
    model : onnx.ModelProto or bytes
    pipeline : sklearn estimator
        The fitted pipeline ``model`` was converted from.
    X : np.ndarray [shape=(n, n_features)]
        Rows to compare on (cast to float32, as the runtime feeds them).
    atol : float
        Largest allowed absolute difference of a probability.
    temperature : float
        The temperature the graph applies (to scikit-learn's probabilities too, for the check).

    Raises
    ------
    ModelError
        If onnxruntime cannot load the model, a label differs on any row, or a probability
        differs by more than ``atol``; the message names the count and the worst row.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ModelError(f"check_onnx needs a non-empty 2-D feature matrix, got shape {X.shape}")
    try:
        labels, proba = onnx_predict(model, X)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"onnxruntime cannot run the exported model: {exc}") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        sk_labels = np.asarray(pipeline.predict(X)).astype(str)
        sk_proba = np.asarray(pipeline.predict_proba(X), dtype=np.float64)
    if temperature != 1.0:
        from .experiment import apply_temperature

        sk_proba = apply_temperature(sk_proba, temperature)
    if proba.shape != sk_proba.shape:
        raise ModelError(
            f"ONNX probabilities have shape {proba.shape}, scikit-learn's {sk_proba.shape}"
        )
    wrong = np.flatnonzero(labels != sk_labels)
    if wrong.size:
        i = int(wrong[0])
        raise ModelError(
            f"ONNX and scikit-learn disagree on the label of {wrong.size} of {len(X)} rows "
            f"(first: row {i}, ONNX {labels[i]!r} vs scikit-learn {sk_labels[i]!r})"
        )
    diff = np.abs(proba.astype(np.float64) - sk_proba)
    worst = float(diff.max())
    if worst > atol:
        i = int(np.unravel_index(np.argmax(diff), diff.shape)[0])
        raise ModelError(
            f"ONNX probabilities differ from scikit-learn's by up to {worst:.3g} (row {i}), "
            f"more than {atol:g}"
        )


def read_metadata(model: Any) -> dict[str, Any]:
    """Decode the JSON ``metadata_props`` of an ONNX model (``ModelProto`` or a path)."""
    import onnx

    if isinstance(model, (str, Path)):
        model = onnx.load(str(model))
    return {p.key: json.loads(p.value) for p in model.metadata_props}
