"""Several trained models as one ONNX graph over one frame matrix: their probabilities averaged.

An ensemble recipe (``"model": "ensemble"``, :class:`export.recipe.TrainingRecipe`) trains each
member on its own; :func:`compose` joins their ONNX models into one graph whose input is the
frame matrix of the shared :class:`~ser_edge.features.FeatureConfig` (no per-utterance
normalisation), so that the runtime computes the features once, in numpy, as for any frame
network::

    frames (1, n_rows, n_frames) --+--> pool (mean, std, ... per block) --> MLP ---+
                                   +--> normalise per utterance (rows) --> CNN ---+--> mean
    mean (with the weights) --> log, / temperature, softmax --> probabilities; argmax --> label

(or the weighted geometric mean of the probabilities, :func:`combine`).

The pooling and normalisation are :func:`export.onnx_features.pool` and
:func:`~export.onnx_features.normalise`, the stages the fused waveform models use: they mirror
:func:`ser_edge.features.pool` and ``FeatureConfig.norm``. :func:`check_ensemble` compares the
graph with the members run on their own inputs before it is saved.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ser_edge.errors import ModelError
from ser_edge.features import FeatureConfig, pool

from . import onnx_features as of

__all__ = ["compose", "combine", "check_ensemble", "member_inputs", "member_spec", "COMBINE",
           "PROBA_ATOL"]

#: Largest difference allowed between the graph's probabilities and the members' average.
PROBA_ATOL = 1e-5

FRAMES_INPUT = "frames"

#: How an ensemble joins its members' probabilities (:func:`combine`).
COMBINE = ("mean", "geometric")

#: Probabilities are floored here before their logarithm (as the temperature stage does).
FLOOR = 1e-12


def combine(probas: Sequence[np.ndarray], weights: Sequence[float],
            how: str = "mean") -> np.ndarray:
    """The members' probabilities joined into the ensemble's.

    Parameters
    ----------
    probas : sequence of np.ndarray [shape=(n_clips, n_labels)]
        One per member, columns in the same label order.
    weights : sequence of float
        One per member, summing to 1.
    how : {"mean", "geometric"}
        ``"mean"``: ``sum_k w_k p_k``. ``"geometric"``: the weighted geometric mean, normalised,
        ``softmax(sum_k w_k log(max(p_k, 1e-12)))``: a label that one member rules out stays
        unlikely (a product of experts).

    Returns
    -------
    P : np.ndarray [shape=(n_clips, n_labels)]
        Rows summing to 1.

    Raises
    ------
    ModelError
        If ``how`` is unknown or the counts differ.
    """
    if how not in COMBINE:
        raise ModelError(f"unknown combination {how!r}; choose from {COMBINE}")
    if len(probas) != len(weights):
        raise ModelError(f"{len(weights)} weights for {len(probas)} members")
    if how == "mean":
        return sum(w * np.asarray(p) for w, p in zip(weights, probas, strict=True))
    logits = sum(w * np.log(np.maximum(p, FLOOR)) for w, p in zip(weights, probas, strict=True))
    logits = logits - logits.max(axis=1, keepdims=True)
    E = np.exp(logits)
    return E / E.sum(axis=1, keepdims=True)


def _meta(model: Any) -> dict[str, Any]:
    from .onnx_export import read_metadata

    return read_metadata(model)


def _kind(model: Any) -> str:
    return _meta(model).get("input_kind", "features")


def _config(model: Any) -> FeatureConfig:
    return FeatureConfig.from_json(json.dumps(_meta(model)["feature_config"]))


def member_inputs(F: np.ndarray, members: Sequence[tuple[str, FeatureConfig]],
                  config: FeatureConfig) -> list[np.ndarray]:
    """What each member takes, from one frame matrix, computed as the runtime computes it.

    Parameters
    ----------
    F : np.ndarray [shape=(n_rows, n_frames)], float32
        :func:`ser_edge.features.frame_matrix` with the shared ``config``.
    members : sequence of (str, FeatureConfig)
        Each member's ``input_kind`` (``"features"`` or ``"frames"``) and configuration
        (:func:`member_spec`).
    config : FeatureConfig
        The shared configuration (``norm`` None).

    Returns
    -------
    inputs : list of np.ndarray
        A pooled member's vector ``(1, n_features)`` (:func:`ser_edge.features.pool`, as
        :func:`ser_edge.features.feature_vector`); a network's frame matrix
        ``(1, n_rows, n_frames)`` of its own blocks (``features``, a subset of the shared
        ones), normalised by its own ``norm`` (as :func:`ser_edge.features.frame_matrix`).
    """
    from ser_edge.features import normalise_rows

    offsets = np.cumsum([0, *config.block_sizes.values()])
    blocks = {name: F[offsets[i]:offsets[i + 1]] for i, name in enumerate(config.block_sizes)}
    out = []
    for kind, c in members:
        if kind == "frames":
            G = np.concatenate([blocks[name] if c.norm is None else
                                normalise_rows(blocks[name], c.norm) for name in c.features])
            out.append(np.ascontiguousarray(G, np.float32)[None])
        else:
            out.append(pool(blocks, c)[None])
    return out


def member_spec(model: Any) -> tuple[str, FeatureConfig]:
    """A member model's ``input_kind`` and feature configuration, from its metadata."""
    return _kind(model), _config(model)


def _label_order(model: Any, labels: Sequence[str]) -> list[int]:
    own = [str(v) for v in _meta(model)["labels"]]
    if sorted(own) != sorted(labels):
        raise ModelError(f"a member's labels {own} differ from the ensemble's {list(labels)}")
    return [own.index(v) for v in labels]


def compose(members: Sequence[Any], weights: Sequence[float], *, config: FeatureConfig,
            labels: Sequence[str], temperature: float = 1.0, how: str = "mean") -> Any:
    """One ONNX graph: the frame matrix in, the members' combined probabilities out.

    Parameters
    ----------
    members : sequence of onnx.ModelProto
        Models of :func:`export.onnx_export.export_onnx` (pooled vector in) or
        :func:`export.nets.onnx.export_net` (frame matrix in), with their metadata, each without
        a temperature of its own.
    weights : sequence of float
        One per member, summing to 1.
    config : FeatureConfig
        The shared frame matrix's configuration: each member's, but for a network's ``norm``,
        ``stats`` and ``features`` (some of the shared blocks, in its own order).
    labels : sequence of str
        The ensemble's label order (each member's columns are reordered to it).
    temperature : float
        Applied to the mean: ``softmax(log(max(p, 1e-12)) / T)``.
    how : {"mean", "geometric"}
        How the members' probabilities are joined (:func:`combine`).

    Returns
    -------
    model : onnx.ModelProto
        Input ``frames`` float32 ``(1, n_rows, n_frames)``; outputs ``label`` (string
        ``(1,)``) and ``probabilities`` (float32 ``(1, n_labels)``); no metadata yet.

    Raises
    ------
    ModelError
        If a member's input, labels or configuration does not fit.
    """
    import onnx
    from onnx import TensorProto, helper

    if config.norm is not None:
        raise ModelError("the shared frame matrix must not be normalised (config.norm)")
    if len(weights) != len(members):
        raise ModelError(f"{len(weights)} weights for {len(members)} members")
    if how not in COMBINE:
        raise ModelError(f"unknown combination {how!r}; choose from {COMBINE}")
    g = of.GraphBuilder("ens_")
    floor = g.const(np.float32(FLOOR), "floor")
    n_rows = sum(config.block_sizes.values())
    # (1, n_rows, n_frames) -> (n_frames, n_rows): the builder's layout.
    M = g.op("Transpose", g.op("Squeeze", FRAMES_INPUT, g.const([0], "ax0")), perm=[1, 0],
             hint="frames_first")
    offsets = np.cumsum([0, *config.block_sizes.values()])
    blocks = {name: g.op("Slice", M, g.const([int(offsets[i])], "start"),
                         g.const([int(offsets[i + 1])], "end"), g.const([1], "ax1"),
                         hint=f"block_{name}")
              for i, name in enumerate(config.block_sizes)}
    nodes, inits, opsets = [], [], {}
    parts = []
    for k, (m, w) in enumerate(zip(members, weights, strict=True)):
        c = _config(m)
        frames = _kind(m) == "frames"
        shared = dataclasses.replace(c, norm=None, stats=config.stats,
                                     features=config.features) if frames else c
        if shared != config or not set(c.features) <= set(config.features):
            raise ModelError(f"member {k}'s features differ from the shared configuration")
        prefix = f"m{k}_"
        m = onnx.compose.add_prefix(m, prefix)
        inputs = [i for i in m.graph.input
                  if i.name not in {t.name for t in m.graph.initializer}]
        if len(inputs) != 1:
            raise ModelError(f"member {k} has {len(inputs)} inputs, expected 1")
        if frames:  # its blocks, in its order, normalised per utterance as it was trained
            x = M if list(c.features) == list(config.features) else g.op(
                "Concat", *(blocks[name] for name in c.features), axis=1, hint=f"m{k}_blocks")
            x = x if c.norm is None else of.normalise(g, x, norm=c.norm)
            x = g.op("Unsqueeze", g.op("Transpose", x, perm=[1, 0]), g.const([0], "ax0"),
                     hint=f"m{k}_frames")
        else:
            x = of.pool(g, blocks, order=list(config.block_sizes),
                        stats={name: c.stats_of(name) for name in config.block_sizes})
        g.nodes.append(helper.make_node("Identity", [x], [inputs[0].name],
                                        name=f"ens_to_member_{k}"))
        nodes.extend(m.graph.node)
        inits.extend(m.graph.initializer)
        for o in m.opset_import:
            opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
        p = g.op("Gather", f"{prefix}probabilities", g.const(_label_order(m, labels), "cols"),
                 axis=1, hint=f"m{k}_probabilities")
        if how == "geometric":
            p = g.op("Log", g.op("Max", p, floor), hint=f"m{k}_log_p")
        parts.append(g.op("Mul", p, g.const(np.float32(w), f"weight_{k}"),
                          hint=f"m{k}_weighted"))
    if how == "geometric":  # the softmax below normalises the weighted sum of logarithms
        logp = g.op("Sum", *parts, hint="log_p")
    else:
        mean = g.op("Sum", *parts, hint="mean_probabilities")
        logp = g.op("Log", g.op("Max", mean, floor), hint="log_p")
    g.nodes.append(helper.make_node(
        "Softmax", [g.op("Div", logp, g.const(np.float32(temperature), "temperature"))],
        ["probabilities"], axis=-1, name="ens_softmax"))
    index = g.op("ArgMax", "probabilities", axis=1, keepdims=0, hint="label_index")
    g.nodes.append(helper.make_node("Constant", [], ["ens_label_names"], value=helper.make_tensor(
        "ens_label_names", TensorProto.STRING, [len(labels)], [str(v).encode() for v in labels])))
    g.nodes.append(helper.make_node("Gather", ["ens_label_names", index], ["label"], axis=0))
    graph = helper.make_graph(
        _ordered(g.nodes, nodes), "ser_edge_ensemble",
        [helper.make_tensor_value_info(FRAMES_INPUT, TensorProto.FLOAT, [1, n_rows, "n_frames"])],
        [helper.make_tensor_value_info("label", TensorProto.STRING, [1]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, len(labels)])],
        initializer=[*g.initializers, *inits])
    opsets[""] = max(opsets.get("", 0), of.OPSET)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v)
                                                    for d, v in sorted(opsets.items())])
    model.ir_version = max(m.ir_version for m in members)
    model.doc_string = "ser-edge speech emotion classifier (ensemble over one frame matrix)"
    onnx.checker.check_model(model, full_check=True)
    return model


def _ordered(ours: list, theirs: list) -> list:
    """Nodes in an order ONNX accepts (topological): a producer before its consumers."""
    nodes = [*ours, *theirs]
    produced = {o: i for i, n in enumerate(nodes) for o in n.output}
    done, order = set(), []

    def visit(i: int) -> None:
        stack = [(i, False)]
        while stack:
            j, expanded = stack.pop()
            if j in done:
                continue
            if expanded:
                done.add(j)
                order.append(nodes[j])
                continue
            stack.append((j, True))
            for name in nodes[j].input:
                k = produced.get(name)
                if k is not None and k not in done:
                    stack.append((k, False))

    for i in range(len(nodes)):
        visit(i)
    return order


def check_ensemble(model: Any, members: Sequence[Any], weights: Sequence[float], *,
                   config: FeatureConfig, labels: Sequence[str], temperature: float,
                   frames: Sequence[np.ndarray], atol: float = PROBA_ATOL,
                   how: str = "mean") -> float:
    """Compare the graph with its members run on their own inputs; the largest difference.

    Parameters
    ----------
    frames : sequence of np.ndarray [shape=(n_rows, n_frames_i)]
        Frame matrices of real clips (:func:`ser_edge.features.frame_matrix`, shared config).
    how : {"mean", "geometric"}
        The graph's combination (:func:`combine`).

    Raises
    ------
    ModelError
        If a probability differs by more than ``atol``, or a label differs.
    """
    import onnxruntime as ort

    from .experiment import apply_temperature

    def session(m: Any) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        return ort.InferenceSession(m.SerializeToString(), options,
                                    providers=["CPUExecutionProvider"])

    whole = session(model)
    parts = [session(m) for m in members]
    orders = [_label_order(m, labels) for m in members]
    specs = [member_spec(m) for m in members]
    worst = 0.0
    for F in frames:
        P = combine([s.run(["probabilities"], {s.get_inputs()[0].name: x})[0][:, order]
                     for s, x, order in zip(parts, member_inputs(F, specs, config), orders,
                                            strict=True)], weights, how)
        expected = apply_temperature(P, temperature)[0]
        label, got = whole.run(["label", "probabilities"], {FRAMES_INPUT: F[None]})
        diff = float(np.max(np.abs(got[0] - expected)))
        if diff > atol:
            raise ModelError(f"the ensemble's graph and its members differ by {diff:.3g} on a "
                             f"clip of {F.shape[1]} frames (more than {atol:g})")
        if str(label[0]) != labels[int(np.argmax(got[0]))]:
            raise ModelError("the ensemble's label is not its most probable emotion")
        worst = max(worst, diff)
    return worst
