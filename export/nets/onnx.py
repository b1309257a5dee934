"""Export a trained network to the ONNX model the ser-edge runtime reads, checked before saving.

The contract (``ser_edge.model``, ``input_kind`` ``"frames"``):

- one input ``"frames"``, float32 ``[batch, n_features, n_frames]``, the time axis dynamic;
- outputs ``"label"`` (string ``[batch]``) and ``"probabilities"`` (float32
  ``[batch, n_labels]``, columns in ``labels`` order), a softmax of the logits divided by the
  calibration temperature;
- ``metadata_props``: ``labels``, ``feature_config``, ``input_kind`` (``"frames"``),
  ``min_frames`` (the fewest frames the network takes), ``training``, ``metrics``.

Exported with ``torch.onnx.export``'s TorchScript-based exporter (``dynamo=False``), opset 17:
in torch 2.13 the default (new) exporter fixes the time axis of ``nn.MaxPool1d`` to the example's
length. Before the model is returned, onnxruntime runs it on the given frame matrices (different
lengths) and must agree with PyTorch within :data:`PROBA_ATOL`.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ser_edge.errors import ModelError
from ser_edge.features import FeatureConfig

__all__ = ["TARGET_OPSET", "PROBA_ATOL", "export_net", "export_pooled_net", "check_net",
           "SeedAverage"]

TARGET_OPSET = 17

#: Largest difference allowed between onnxruntime's and PyTorch's probabilities.
PROBA_ATOL = 1e-4


def _wrapper(model: Any, temperature: float) -> Any:
    import torch

    class Probabilities(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, frames: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.model(frames) / temperature, dim=-1)

    return Probabilities().eval()


def _torch_proba(model: Any, frames: Sequence[np.ndarray], temperature: float) -> list[np.ndarray]:
    import torch

    wrapped = _wrapper(model, temperature)
    with torch.no_grad():
        return [wrapped(torch.from_numpy(np.ascontiguousarray(F, np.float32))[None]).numpy()[0]
                for F in frames]


def check_net(onnx_bytes: bytes, model: Any, frames: Sequence[np.ndarray],
              temperature: float = 1.0, atol: float = PROBA_ATOL) -> float:
    """Run the ONNX model and PyTorch on each frame matrix; the largest probability difference.

    Raises
    ------
    ModelError
        If onnxruntime cannot run it, or a probability differs by more than ``atol``.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        sess = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types
        raise ModelError(f"onnxruntime cannot load the exported network: {exc}") from exc
    worst = 0.0
    for F, p_torch in zip(frames, _torch_proba(model, frames, temperature), strict=True):
        x = np.ascontiguousarray(F, np.float32)[None]
        (p_onnx,) = sess.run(["probabilities"], {"frames": x})
        diff = float(np.max(np.abs(p_onnx[0] - p_torch)))
        if diff > atol:
            raise ModelError(f"ONNX and PyTorch probabilities differ by {diff:.3g} on a clip of "
                             f"{F.shape[1]} frames (more than {atol:g})")
        worst = max(worst, diff)
    return worst


def _export(torch: Any, model: Any, temperature: float, example: Any, buf: io.BytesIO) -> None:
    torch.onnx.export(
        _wrapper(model, temperature), (example,), buf, input_names=["frames"],
        output_names=["probabilities"], opset_version=TARGET_OPSET, dynamo=False,
        dynamic_axes={"frames": {0: "batch", 2: "n_frames"}, "probabilities": {0: "batch"}},
    )


def export_net(
    model: Any,
    *,
    feature_config: FeatureConfig,
    labels: Sequence[str],
    training: Mapping[str, Any],
    metrics: Mapping[str, Any],
    check_frames: Sequence[np.ndarray],
    min_frames: int,
    temperature: float = 1.0,
    path: str | Path | None = None,
) -> Any:
    """Convert a trained network to ONNX, check it against PyTorch, and save it.

    Parameters
    ----------
    model : torch.nn.Module
        Trained; takes ``(batch, n_features, n_frames)``, returns logits ``(batch, n_labels)``.
    feature_config : FeatureConfig
        The frame matrix's configuration (:func:`ser_edge.features.frame_matrix`).
    labels : sequence of str
        Class names in logit order.
    training, metrics : mapping
        As for the scikit-learn models (``metrics`` must hold ``speaker_independent``).
    check_frames : sequence of np.ndarray [shape=(n_features, n_frames_i)]
        Frame matrices of real clips of several lengths to check on.
    min_frames : int
        Fewest frames the network takes; shorter clips are refused by the runtime.
    temperature : float
        Calibration temperature folded into the softmax.
    path : str or Path, optional
        Where to write the model.

    Returns
    -------
    model : onnx.ModelProto

    Raises
    ------
    ModelError
        If the check fails or ``metrics`` lacks ``speaker_independent``.
    """
    import onnx
    import torch
    from onnx import TensorProto, helper

    from ..onnx_export import save, set_metadata

    if "speaker_independent" not in metrics:
        raise ModelError("metrics must have a 'speaker_independent' entry")
    n_features = sum(feature_config.block_sizes.values())
    model = model.eval()
    example = torch.zeros((1, n_features, max(64, min_frames)), dtype=torch.float32)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, and chosen: above
        warnings.simplefilter("ignore", DeprecationWarning)
        _export(torch, model, temperature, example, buf)
    proto = onnx.load_from_string(buf.getvalue())
    graph = proto.graph
    graph.node.extend([
        helper.make_node("ArgMax", ["probabilities"], ["label_index"], axis=1, keepdims=0),
        helper.make_node("Constant", [], ["label_names"], value=helper.make_tensor(
            "label_names", TensorProto.STRING, [len(labels)],
            [str(label).encode() for label in labels])),
        helper.make_node("Gather", ["label_names", "label_index"], ["label"], axis=0),
    ])
    graph.output.insert(0, helper.make_tensor_value_info("label", TensorProto.STRING, ["batch"]))
    proto.doc_string = "ser-edge speech emotion classifier (frame-level network)"
    set_metadata(proto, labels=labels, feature_config=feature_config, training=training,
                 metrics=metrics, input_kind="frames", min_frames=int(min_frames))
    check_net(proto.SerializeToString(), model, check_frames, temperature)
    if path is not None:
        save(proto, path)
    return proto


def SeedAverage(models: Sequence[Any]) -> Any:  # noqa: N802 - a module factory
    """One module whose logits are the log of the mean of ``models``' softmax probabilities.

    Soft voting over seeds, as :class:`export.experiment.Ensemble` does for scikit-learn's:
    ``softmax(SeedAverage(x)) == mean_k softmax(model_k(x))``.
    """
    import torch

    class _SeedAverage(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.members = torch.nn.ModuleList(models)
            self.min_frames = max(getattr(m, "min_frames", 1) for m in models)

        def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
            p = torch.stack([torch.softmax(m(x), dim=-1) for m in self.members]).mean(dim=0)
            return torch.log(torch.clamp(p, min=1e-12))

    return _SeedAverage().eval()


def export_pooled_net(
    model: Any,
    *,
    feature_config: FeatureConfig,
    labels: Sequence[str],
    training: Mapping[str, Any],
    metrics: Mapping[str, Any],
    check_rows: np.ndarray,
    temperature: float = 1.0,
    path: str | Path | None = None,
    **extra: Any,
) -> Any:
    """Convert a pooled network (:class:`~export.nets.modules.PooledMLP`) to ONNX, checked.

    The contract of a scikit-learn model's file (:func:`export.onnx_export.export_onnx`): input
    ``"features"`` float32 ``[batch, n_features]``, outputs ``"label"`` and ``"probabilities"``
    (the softmax of the logits over ``temperature``).

    Parameters
    ----------
    model : torch.nn.Module
        Takes ``(batch, n_features)``, returns logits ``(batch, n_labels)``.
    feature_config : FeatureConfig
        The pooled vector's configuration.
    labels : sequence of str
        Class names in logit order.
    training, metrics : mapping
        As for the other models (``metrics`` must hold ``speaker_independent``).
    check_rows : np.ndarray [shape=(n, n_features)]
        Real vectors: onnxruntime must agree with PyTorch on them within :data:`PROBA_ATOL`.
    temperature : float
    path : str or Path, optional
    **extra
        Further metadata entries (``adaptation``).

    Returns
    -------
    model : onnx.ModelProto

    Raises
    ------
    ModelError
        If the check fails or ``metrics`` lacks ``speaker_independent``.
    """
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper

    from ..onnx_export import INPUT_NAME, save, set_metadata

    if "speaker_independent" not in metrics:
        raise ModelError("metrics must have a 'speaker_independent' entry")
    wrapped = _wrapper(model.eval(), temperature)
    example = torch.zeros((1, feature_config.n_features), dtype=torch.float32)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(wrapped, (example,), buf, input_names=[INPUT_NAME],
                          output_names=["probabilities"], opset_version=TARGET_OPSET,
                          dynamo=False, dynamic_axes={INPUT_NAME: {0: "batch"},
                                                      "probabilities": {0: "batch"}})
    proto = onnx.load_from_string(buf.getvalue())
    graph = proto.graph
    graph.node.extend([
        helper.make_node("ArgMax", ["probabilities"], ["label_index"], axis=1, keepdims=0),
        helper.make_node("Constant", [], ["label_names"], value=helper.make_tensor(
            "label_names", TensorProto.STRING, [len(labels)],
            [str(label).encode() for label in labels])),
        helper.make_node("Gather", ["label_names", "label_index"], ["label"], axis=0),
    ])
    graph.output.insert(0, helper.make_tensor_value_info("label", TensorProto.STRING, ["batch"]))
    proto.doc_string = "ser-edge speech emotion classifier (pooled network)"
    set_metadata(proto, labels=labels, feature_config=feature_config, training=training,
                 metrics=metrics, **extra)
    rows = np.ascontiguousarray(check_rows, np.float32)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(["probabilities"], {INPUT_NAME: rows})
    with torch.no_grad():
        want = wrapped(torch.from_numpy(rows)).numpy()
    worst = float(np.max(np.abs(got - want))) if len(rows) else 0.0
    if worst > PROBA_ATOL:
        raise ModelError(f"ONNX and PyTorch probabilities differ by {worst:.3g} "
                         f"(more than {PROBA_ATOL:g})")
    if path is not None:
        save(proto, path)
    return proto
