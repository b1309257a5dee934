"""One ONNX file from waveform to emotion: the feature extraction fused in front of a model.

:func:`fuse` takes a model exported by :mod:`export.onnx_export` (input ``features``, the pooled
vector) or by :mod:`export.nets.onnx` (input ``frames``, the frame matrix of a frame-level
network) and prepends the graph of :func:`feature_graph`, which computes that input from the
waveform with ONNX operators (:mod:`export.onnx_features`). The fused model has one input,
``waveform``: float32 ``(1, n_samples)``, mono, at the feature configuration's rate; its outputs
and metadata are the source model's, plus ``input_kind`` (``"waveform"``) and ``waveform_graph``
(how the spectrum is computed, and the source model's SHA-256). Any onnxruntime (C, C++, C#,
Java, JavaScript, Objective-C, Rust; Node.js and the browser) can run it with no feature code of
its own; resampling and downmixing stay outside, as they are outside the numpy features too.

A fused frame-level network has a third output, ``n_frames`` (int64 ``(1,)``): the frames the
network was given (the active ones, with ``frames="active"``). A clip with fewer than the
network needs (the ``min_frames`` metadata, or the MFCC deltas' width) cannot be refused by a
graph; its frame matrix is padded with zeros so that the network runs, and its probabilities are
NaN. :class:`ser_edge.Classifier` (and ``examples/js/ser-edge.mjs``) read ``n_frames`` and raise
the numpy runtime's "too short" error instead.

A configuration the graph does not compute is refused, field by field (:func:`check_fusable`):
the fused model never silently computes something else than the runtime would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ser_edge.errors import ModelError, ParameterError
from ser_edge.features import FeatureConfig

from . import onnx_features as of

__all__ = [
    "INPUT_KIND_KEY",
    "WAVEFORM_INPUT",
    "GRAPH_KEY",
    "FRAME_COUNT",
    "PROBA_ATOL",
    "check_fusable",
    "feature_graph",
    "feature_model",
    "fuse",
    "fuse_file",
    "check_fused",
    "feature_differences",
    "bundled_models",
]

#: Metadata key naming what the model's input is: absent or ``"features"`` for the pooled vector,
#: ``"waveform"`` for a fused model.
INPUT_KIND_KEY = "input_kind"

#: Name of the fused model's input, and its ``input_kind``.
WAVEFORM_INPUT = "waveform"

#: Metadata key of the fused graph's description (JSON): DFT method and dtype, opset, source.
GRAPH_KEY = "waveform_graph"

#: Name of a fused frame-level network's output that counts the frames the network was given.
FRAME_COUNT = "n_frames"

#: Name of the output holding the class probabilities (the runtime's contract).
PROBABILITIES = "probabilities"

#: Largest probability difference :func:`check_fused` accepts between the fused model and the
#: numpy features + source model.
PROBA_ATOL = 1e-3


def _always(_: Any) -> None:
    return None


def _tuning(value: float | None) -> str | None:
    if value is None:
        return ("tuning=None (the tuning estimated per clip, a histogram of spectral peaks) is "
                "not implemented in ONNX; train with a fixed tuning (--tuning 0)")
    return None


#: Every :class:`FeatureConfig` field the fused graph implements, with a check of its value that
#: returns why a value is not implemented (or None). A field missing here is refused whatever
#: its value: a new option must be implemented (a stage in :mod:`export.onnx_features`) and
#: listed here before a model using it can be fused.
IMPLEMENTED: dict[str, Callable[[Any], str | None]] = {
    "features": _always,
    "sr": _always,
    "n_fft": _always,
    "hop_length": _always,
    "n_mfcc": _always,
    "n_mels": _always,
    "n_chroma": _always,
    "fmin": _always,
    "fmax": _always,
    "htk": _always,
    "tuning": _tuning,
    "chroma_threshold": _always,
    "mel_db": _always,
    "stats": _always,
    "top_db": _always,
    "level_db": _always,
    "frames": _always,
    "active_range_db": _always,
    "active_floor_db": _always,
    "active_floor_range_db": _always,
    "delta_width": _always,
    "norm": _always,
    "trim_zeros": _always,
    "trim_top_db": _always,
    "align_peak": _always,
}


def check_fusable(config: FeatureConfig) -> None:
    """Raise unless the fused graph computes exactly what ``config`` asks of the runtime.

    Parameters
    ----------
    config : FeatureConfig

    Raises
    ------
    ParameterError
        Naming the first field (in the dataclass's order) whose value the graph does not
        implement: a field :data:`IMPLEMENTED` does not list (one added to ``FeatureConfig``
        after this module), or a value its check refuses (``tuning=None``).
    """
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        check = IMPLEMENTED.get(field.name)
        if check is None:
            raise ParameterError(
                f"cannot fuse: FeatureConfig.{field.name}={value!r} is not implemented by the "
                f"ONNX feature graph (export/onnx_features.py); add a stage for it and list it "
                f"in export.fuse.IMPLEMENTED"
            )
        reason = check(value)
        if reason is not None:
            raise ParameterError(f"cannot fuse: FeatureConfig.{field.name}: {reason}")


def feature_graph(g: of.GraphBuilder, waveform: str, config: FeatureConfig, *,
                  dft: str = "fft2", dft_dtype: type = np.float32,
                  output: str = "vector") -> str:
    """Append the graph of ``config``'s features of ``waveform`` to ``g``.

    The stages of :func:`ser_edge.features.feature_matrices`, in ONNX: with ``trim_zeros`` the
    digital silence at the waveform's ends removed, with ``trim_top_db`` its quiet ends, with
    ``align_peak`` the samples before the one that puts the loudest on the frame grid, then
    frames, windowed DFT and power (once,
    shared); with ``level_db`` or ``frames="active"`` the frame levels, the active frames and
    the level gain (:mod:`ser_edge.level`); the mel bank (times the gain), dB with
    ``top_db`` under the clip's maximum, the DCT and its deltas, the chroma bank at the
    configuration's tuning (its raw projection times the gain); then pooling of each block's
    statistics over the active frames or all of them (or the frame matrix of those frames).

    Parameters
    ----------
    g : GraphBuilder
    waveform : str
        float32 ``[shape=(1, n_samples)]``, mono at ``config.sr``.
    config : FeatureConfig
        Checked by :func:`check_fusable`.
    dft, dft_dtype
        The spectrum's method and arithmetic (:func:`export.onnx_features.dft_power`).
    output : {"vector", "frames"}
        The pooled vector ``(1, config.n_features)``, or the frame matrix ``(1, n_rows,
        n_frames)`` of the blocks in ``config.features`` order (rows per block as
        ``config.block_sizes``), for frame-input networks.

    Returns
    -------
    name : str
        The output tensor.

    Raises
    ------
    ParameterError
        As :func:`check_fusable`, or if ``output`` is unknown.
    """
    check_fusable(config)
    if output not in ("vector", "frames"):
        raise ParameterError(f"output must be 'vector' or 'frames', got {output!r}")
    wanted = set(config.features)
    y = g.op("Squeeze", waveform, g.const([0], "ax0"), hint="y")
    if config.trim_zeros:
        y = of.trim_zeros(g, y)
    if config.trim_top_db is not None:
        y = of.trim_quiet(g, y, config.trim_top_db)
    if config.align_peak:
        y = of.align_peak(g, y, config.hop_length)
    x = of.frames(g, y, n_fft=config.n_fft, hop_length=config.hop_length)
    power = of.dft_power(g, x, n_fft=config.n_fft, method=dft, dtype=dft_dtype)
    gain = active = None
    if config.level_db is not None or config.frames == "active":
        r = of.rms(g, power, n_fft=config.n_fft)
        active = of.active_frames(g, of.energy_db(g, r), range_db=config.active_range_db,
                                  floor_db=config.active_floor_db,
                                  floor_range_db=config.active_floor_range_db)
        if config.level_db is not None:
            gain = of.level_gain(g, r, active, level_db=config.level_db)
    blocks: dict[str, str] = {}
    cepstra = wanted & {"mfcc", "mfcc_delta"}
    if cepstra or "mel" in wanted:
        mel = of.mel(g, power, sr=config.sr, n_fft=config.n_fft, n_mels=config.n_mels,
                     fmin=config.fmin, fmax=config.fmax, htk=config.htk)
        if gain is not None:
            mel = g.op("Mul", mel, gain, hint="mel_levelled")
        need_db = cepstra or config.mel_db
        db = of.power_to_db(g, mel, top_db=config.top_db) if need_db else None
        if cepstra:
            mfcc = of.dct(g, db, n_mfcc=config.n_mfcc, n_mels=config.n_mels)
            if "mfcc" in wanted:
                blocks["mfcc"] = mfcc
            if "mfcc_delta" in wanted:
                blocks["mfcc_delta"] = of.delta(g, mfcc, width=config.delta_width)
        if "mel" in wanted:
            blocks["mel"] = db if config.mel_db else mel
    if "chroma" in wanted:
        blocks["chroma"] = of.chroma(g, power, sr=config.sr, n_fft=config.n_fft,
                                     n_chroma=config.n_chroma, tuning=config.tuning,
                                     threshold=config.chroma_threshold, gain=gain)
    mask = active if config.frames == "active" else None
    if config.norm is not None:  # over the kept frames: select them first
        if mask is not None:
            blocks = {name: of.select_frames(g, M, mask) for name, M in blocks.items()}
            mask = None
        blocks = {name: of.normalise(g, M, norm=config.norm) for name, M in blocks.items()}
    if output == "frames":
        if mask is not None:
            blocks = {name: of.select_frames(g, M, mask) for name, M in blocks.items()}
        return of.frame_matrix(g, blocks, order=config.features)
    return of.pool(g, blocks, order=config.features,
                   stats={name: config.stats_of(name) for name in config.features}, mask=mask)


def feature_model(config: FeatureConfig, *, dft: str = "fft2", dft_dtype: type = np.float32,
                  output: str = "vector") -> Any:
    """A model of the features alone: ``waveform`` in, ``features`` (or ``frames``) out.

    For parity tests and benchmarks of the feature graph against
    :func:`ser_edge.features.feature_vector`.

    Returns
    -------
    model : onnx.ModelProto
        Input ``waveform`` float32 ``(1, n_samples)``; output ``features`` float32 ``(1,
        config.n_features)``, or ``frames`` float32 ``(1, n_rows, n_frames)``.
    """
    from onnx import TensorProto, helper

    g = of.GraphBuilder()
    out = feature_graph(g, WAVEFORM_INPUT, config, dft=dft, dft_dtype=dft_dtype, output=output)
    name = "features" if output == "vector" else "frames"
    g.nodes.append(helper.make_node("Identity", [out], [name]))
    shape = [1, config.n_features] if output == "vector" else [
        1, sum(config.block_sizes.values()), "n_frames"]
    graph = helper.make_graph(
        g.nodes, "ser_edge_features",
        [helper.make_tensor_value_info(WAVEFORM_INPUT, TensorProto.FLOAT, [1, "n_samples"])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)],
        g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", of.OPSET)],
                              producer_name="ser-edge export.fuse")
    model.ir_version = 8
    return model


def _load(model: Any) -> tuple[Any, bytes]:
    import onnx

    if isinstance(model, (str, Path)):
        path = Path(model)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"{path}: cannot read model: {exc.strerror or exc}") from None
        try:
            return onnx.load_from_string(data), data
        except Exception as exc:  # onnx raises DecodeError and others
            raise ModelError(f"{path}: not an ONNX model ({exc})") from None
    return model, model.SerializeToString()


def _metadata(model: Any) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def _opset_for(model: Any) -> int:
    """The default-domain opset of the fused graph: ``OPSET`` or the model's, if newer.

    The model's own nodes are relabelled only where each operator's definition is the same at
    both versions (true of the MatMul/Add/Relu/Softmax/ArgMax/Reshape nodes skl2onnx writes).
    """
    from onnx import defs

    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if current is None:
        raise ModelError("the model imports no default-domain (ai.onnx) opset")
    target = max(current, of.OPSET)
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        before = defs.get_schema(node.op_type, current, "").since_version
        after = defs.get_schema(node.op_type, target, "").since_version
        if before != after:
            raise ModelError(
                f"the model's {node.op_type} node is opset {current}, whose definition changed "
                f"by opset {target}; convert the model to opset {target} first "
                "(onnx.version_converter)"
            )
    return target


def _frames_for_network(g: of.GraphBuilder, matrix: str, need: int) -> tuple[str, str, str]:
    """The frame matrix padded to ``need`` frames, its frame count, and whether it was short.

    Parameters
    ----------
    matrix : str
        float32 ``[shape=(1, n_rows, n_frames)]`` (:func:`export.onnx_features.frame_matrix`).
    need : int >= 1
        Fewest frames the network takes.

    Returns
    -------
    padded : str
        float32 ``[shape=(1, n_rows, max(n_frames, need))]``, zeros after the frames.
    count : str
        int64 ``[shape=(1,)]``, ``n_frames``.
    short : str
        bool ``[shape=(1,)]``, ``n_frames < need``.
    """
    count = g.op("Slice", g.op("Shape", matrix), g.const([2], "ax2"), g.const([3], "three"),
                 hint="frames_given")
    need_c = g.const([need], "min_frames")
    missing = g.op("Max", g.op("Sub", need_c, count), g.const([0], "zero_i"), hint="missing")
    pads = g.op("Concat", g.const([0] * 5, "zeros_5"), missing, axis=0, hint="pads")
    padded = g.op("Pad", matrix, pads, g.const(np.float32(0), "zero", np.float32),
                  hint="frames_at_least_min")
    return padded, count, g.op("Less", count, need_c, hint="too_few_frames")


def fuse(model: Any, *, dft: str = "fft2", dft_dtype: type = np.float32,
         check: bool = True) -> Any:
    """Put the feature extraction in front of a model: one graph from the waveform.

    Parameters
    ----------
    model : onnx.ModelProto or str or Path
        A model exported by ``python -m export train``: a pooled-vector model
        (:func:`export.onnx_export.export_onnx`; input ``features`` ``(N, n_features)``) or a
        frame-level network (:func:`export.nets.onnx.export_net`; input ``frames`` ``(N, n_rows,
        n_frames)``, metadata ``input_kind`` ``"frames"`` and ``min_frames``); outputs ``label``
        and ``probabilities``, metadata with ``labels`` and ``feature_config``.
    dft, dft_dtype
        How the spectrum is computed (:func:`export.onnx_features.dft_power`); the defaults were
        chosen by measurement (``benchmarks/fused.py``).
    check : bool
        Run :func:`check_fused` on seeded synthetic signals before returning.

    Returns
    -------
    fused : onnx.ModelProto
        Input ``waveform`` float32 ``(1, n_samples)``, mono at ``feature_config.sr``; the source
        model's outputs and metadata, plus ``input_kind = "waveform"`` and ``waveform_graph``.
        A frame-level network's fused model also outputs :data:`FRAME_COUNT` (int64 ``(1,)``, the
        frames the network was given) and keeps ``min_frames``; on fewer frames than
        ``max(min_frames, feature_config.min_frames)`` its probabilities are NaN (the frames
        are padded with zeros so that the network runs).

    Raises
    ------
    ModelError
        If the model cannot be read, lacks ``feature_config`` metadata, is already a waveform
        model, has not exactly one input of the configuration's width (rank 2 for the vector,
        rank 3 for frames), has no ``probabilities`` output (a frame network), or the fused
        model disagrees with the numpy features + source model (``check``).
    ParameterError
        If the feature configuration cannot be fused (:func:`check_fusable`).
    """
    import onnx
    from onnx import TensorProto, helper

    import ser_edge

    source, data = _load(model)
    meta = _metadata(source)
    if "feature_config" not in meta:
        raise ModelError("the model has no 'feature_config' metadata (export it with "
                         "`python -m export train`)")
    try:
        kind = json.loads(meta.get(INPUT_KIND_KEY, '"features"'))
    except ValueError:
        kind = meta[INPUT_KIND_KEY]
    if kind not in ("features", "frames"):
        raise ModelError(f"the model's input is already {kind!r}, not the feature vector or "
                         "the frame matrix")
    frames = kind == "frames"
    try:
        config = FeatureConfig.from_json(meta["feature_config"])
    except (ParameterError, TypeError) as exc:
        raise ModelError(f"invalid 'feature_config' metadata: {exc}") from None
    check_fusable(config)
    need = _min_frames(meta, config) if frames else 1
    graph = source.graph
    initializer_names = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializer_names]
    what = "the frame matrix" if frames else "the feature vector"
    if len(inputs) != 1:
        raise ModelError(f"the model has {len(inputs)} inputs, expected 1 ({what})")
    dims = inputs[0].type.tensor_type.shape.dim
    width = sum(config.block_sizes.values()) if frames else config.n_features
    rank = 3 if frames else 2
    if len(dims) != rank or (dims[1].HasField("dim_value") and dims[1].dim_value != width):
        shape = [d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in dims]
        expected = f"(N, {width}, n_frames)" if frames else f"(N, {width})"
        raise ModelError(f"the model's input has shape {shape}, expected {expected}")
    outputs = [o.name for o in graph.output]
    if frames and PROBABILITIES not in outputs:
        raise ModelError(f"the model has no {PROBABILITIES!r} output (outputs: "
                         f"{', '.join(outputs)})")
    opset = _opset_for(source)

    taken = {n for node in graph.node for n in (*node.input, *node.output)}
    taken |= initializer_names | {i.name for i in graph.input} | set(outputs)
    for name in (WAVEFORM_INPUT, FRAME_COUNT) if frames else (WAVEFORM_INPUT,):
        if name in taken:
            raise ModelError(f"the model already has a tensor named {name!r}")
    prefix = "wf_"
    while any(name.startswith(prefix) for name in taken):
        prefix = "_" + prefix
    g = of.GraphBuilder(prefix)
    x = feature_graph(g, WAVEFORM_INPUT, config, dft=dft, dft_dtype=dft_dtype,
                      output="frames" if frames else "vector")
    nodes = list(graph.node)
    if frames:
        x, count, short = _frames_for_network(g, x, need)
        g.nodes.append(helper.make_node("Identity", [count], [FRAME_COUNT],
                                        name=f"{prefix}frame_count"))
        nodes = _nan_when_short(g, nodes, short, prefix)
    g.nodes.append(helper.make_node("Identity", [x], [inputs[0].name],
                                    name=f"{prefix}to_model_input"))

    fused = onnx.ModelProto()
    fused.CopyFrom(source)
    fused.graph.ClearField("node")
    fused.graph.node.extend([*g.nodes, *nodes])
    fused.graph.initializer.extend(g.initializers)
    fused.graph.ClearField("input")
    fused.graph.input.extend(
        [helper.make_tensor_value_info(WAVEFORM_INPUT, TensorProto.FLOAT, [1, "n_samples"])]
        + [i for i in graph.input if i.name in initializer_names])
    if frames:
        fused.graph.output.append(
            helper.make_tensor_value_info(FRAME_COUNT, TensorProto.INT64, [1]))
    for o in fused.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = opset
    fused.ir_version = max(fused.ir_version, 8)
    fused.doc_string = (source.doc_string + ": " if source.doc_string else "") + (
        "waveform in, features computed in the graph (ser-edge export.fuse)")
    description = {
        "dft": dft,
        "dft_dtype": np.dtype(dft_dtype).name,
        "opset": opset,
        "source_sha256": hashlib.sha256(data).hexdigest(),
        "source_input_kind": kind,
        "ser_edge": ser_edge.__version__,
        "input": {"name": WAVEFORM_INPUT, "dtype": "float32", "shape": [1, "n_samples"],
                  "sample_rate": config.sr, "channels": 1},
    }
    if frames:
        description["frame_count"] = {"output": FRAME_COUNT, "min_frames": need}
    _set_metadata(fused, INPUT_KIND_KEY, json.dumps(WAVEFORM_INPUT))
    _set_metadata(fused, GRAPH_KEY, json.dumps(description, sort_keys=True))
    onnx.checker.check_model(fused, full_check=True)
    if check:
        signals = _check_signals(config)
        worst = check_fused(fused, source, config, signals=signals)
        description["check"] = {"signals": len(signals),
                                "max_probability_difference": float(f"{worst:.3g}")}
        _set_metadata(fused, GRAPH_KEY, json.dumps(description, sort_keys=True))
    return fused


def _min_frames(meta: dict[str, str], config: FeatureConfig) -> int:
    """Fewest frames a frame network's clip needs, as :class:`ser_edge.Classifier` counts them.

    The ``min_frames`` metadata and the MFCC deltas' width, the larger.
    """
    try:
        value = json.loads(meta.get("min_frames", "1"))
    except ValueError:
        value = None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelError(f"'min_frames' metadata must be a positive integer, got "
                         f"{meta.get('min_frames')!r}")
    return max(value, config.min_frames)


def _nan_when_short(g: of.GraphBuilder, nodes: list, short: str, prefix: str) -> list:
    """The model's nodes, its ``probabilities`` output made NaN where ``short`` is true.

    The node that writes ``probabilities`` writes a new tensor instead, and a node after it adds
    ``NaN`` or ``0`` to it under the old name, so that its readers (the label's ``ArgMax``) and
    the graph's output follow.
    """
    from onnx import NodeProto, helper

    out = []
    nan = g.const([np.nan], "nan_f", np.float32)
    zero = g.const([0.0], "zero_f", np.float32)
    raw = g.name("network_probabilities")
    for node in nodes:
        if PROBABILITIES in node.output:
            node = NodeProto.FromString(node.SerializeToString())
            node.output[list(node.output).index(PROBABILITIES)] = raw
            out.append(node)
            out.append(helper.make_node("Where", [short, nan, zero], [raw + "_nan_or_zero"],
                                        name=f"{prefix}nan_when_short"))
            out.append(helper.make_node("Add", [raw, raw + "_nan_or_zero"], [PROBABILITIES],
                                        name=f"{prefix}probabilities_or_nan"))
        else:
            out.append(node)
    return out


def _set_metadata(model: Any, key: str, value: str) -> None:
    for p in model.metadata_props:
        if p.key == key:
            p.value = value
            return
    entry = model.metadata_props.add()
    entry.key, entry.value = key, value


def _session(model: Any) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _check_signals(config: FeatureConfig) -> list[tuple[str, np.ndarray]]:
    """Seeded speech-like, noise and chirp signals at ``config.sr``: 0.5, 1.3 and 3 s.

    Only those with the frames ``config.min_frames`` asks (a delta width over 31 leaves out the
    0.5 s ones). With ``config.trim_zeros``, ``trim_top_db`` or ``align_peak``, also each
    speech-like signal between 0.6 s of digital silence and between 0.6 s of quiet noise, which
    the graph must trim and align as numpy does.
    """
    sr = config.sr
    rng = np.random.default_rng(20261202)
    out = []
    for seconds in (0.5, 1.3, 3.0):
        t = np.arange(int(seconds * sr)) / sr
        phase = 2 * np.pi * (140.0 * t - 0.6 * np.cos(2 * np.pi * 4.0 * t))
        voice = sum(np.sin(h * phase) / h for h in range(1, 12)) * 0.1
        voice *= 0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t) ** 2
        voice = voice + 0.003 * rng.standard_normal(len(t))
        out.append((f"voice {seconds} s", voice))
        if config.trims:
            silence = np.zeros(int(0.6 * sr))
            out.append((f"voice {seconds} s in digital silence",
                        np.concatenate([silence, voice, silence])))
            hiss = 0.001 * rng.standard_normal(len(silence))
            out.append((f"voice {seconds} s in quiet noise",
                        np.concatenate([hiss, voice, hiss[::-1]])))
        out.append((f"noise {seconds} s", 0.05 * rng.standard_normal(len(t))))
        f1 = 0.45 * sr
        out.append((f"chirp {seconds} s",
                    0.3 * np.sin(2 * np.pi * (80 * t + 0.5 * (f1 - 80) / seconds * t**2))))
    pad = 2 * (config.n_fft // 2) - config.n_fft
    return [(name, y.astype(np.float32)) for name, y in out
            if 1 + (len(y) + pad) // config.hop_length >= config.min_frames]


def check_fused(fused: Any, source: Any, config: FeatureConfig, *,
                signals: list[tuple[str, np.ndarray]] | None = None,
                atol: float = PROBA_ATOL) -> float:
    """Compare the fused model with the numpy features + the source model.

    For a frame-level network, the numpy input is :func:`ser_edge.features.frame_matrix`; the
    fused model's :data:`FRAME_COUNT` must equal its frame count, and a signal with fewer
    frames than the network needs (which :class:`ser_edge.Classifier` refuses) must give NaN
    probabilities instead of being compared.

    Parameters
    ----------
    fused, source : onnx.ModelProto
    config : FeatureConfig
    signals : list of (str, np.ndarray) or None
        Named mono float32 signals at ``config.sr``; None: seeded speech-like, noise and chirp
        signals of 0.5, 1.3 and 3 s.
    atol : float
        Largest allowed probability difference.

    Returns
    -------
    worst : float
        The largest probability difference seen.

    Raises
    ------
    ModelError
        If a label differs, a probability differs by more than ``atol``, or a frame network's
        frame count (or its NaN for too few frames) differs from numpy's; the message names the
        signal. Also if no signal has the frames the network needs.
    """
    from ser_edge.features import feature_vector, frame_matrix

    if signals is None:
        signals = _check_signals(config)
    meta = _metadata(source)
    frames = json.loads(meta.get(INPUT_KIND_KEY, '"features"')) == "frames"
    need = _min_frames(meta, config) if frames else 1
    fused_s, source_s = _session(fused), _session(source)
    source_input = source_s.get_inputs()[0].name
    worst, compared = 0.0, 0
    for name, y in signals:
        if frames:
            x = frame_matrix(y, sr=config.sr, config=config)
            label, p, count = fused_s.run(["label", PROBABILITIES, FRAME_COUNT],
                                          {WAVEFORM_INPUT: y[None]})
            n = x.shape[1]
            if int(count[0]) != n or (n < need) != bool(np.isnan(p).all()):
                raise ModelError(
                    f"the fused model counts {int(count[0])} frames of the {name} signal, numpy "
                    f"{n} (the network needs {need}; probabilities "
                    f"{'NaN' if np.isnan(p).all() else 'finite'})"
                )
            if n < need:
                continue
        else:
            x = feature_vector(y, sr=config.sr, config=config)
            label, p = fused_s.run(["label", PROBABILITIES], {WAVEFORM_INPUT: y[None]})
        label_ref, p_ref = source_s.run(["label", PROBABILITIES], {source_input: x[None]})
        diff = float(np.max(np.abs(np.asarray(p, np.float64) - p_ref)))
        worst = max(worst, diff)
        compared += 1
        if label[0] != label_ref[0] or not diff <= atol:
            raise ModelError(
                f"the fused model disagrees with the numpy features on the {name} signal: "
                f"label {label[0]!r} vs {label_ref[0]!r}, probabilities differ by {diff:.3g} "
                f"(tolerance {atol:g})"
            )
    if signals and not compared:
        raise ModelError(f"none of the {len(signals)} check signals has the {need} frames the "
                         "network needs")
    return worst


def fuse_file(source: str | Path, out: str | Path, **kwargs: Any) -> Any:
    """:func:`fuse` the model at ``source`` and save the result to ``out`` (folders created).

    Returns
    -------
    fused : onnx.ModelProto
    """
    import onnx

    fused = fuse(source, **kwargs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(fused, str(out))
    return fused


def feature_differences(ours: np.ndarray, ref: np.ndarray,
                        config: FeatureConfig) -> list[dict[str, Any]]:
    """How far feature vectors are from the reference, per block and statistic.

    Parameters
    ----------
    ours, ref : np.ndarray [shape=(n_clips, config.n_features)]
        The fused graph's vectors and the numpy runtime's (:func:`ser_edge.features.
        feature_vector`) for the same clips.
    config : FeatureConfig

    Returns
    -------
    rows : list of dict
        One per block and statistic in the vector's order (``"mfcc mean"``, ...): ``max_abs``
        (the largest absolute difference over the clips and the block's rows, in the feature's
        unit: dB for MFCC and dB mel), ``scale`` (the largest ``|ref|`` there), ``max_rel``
        (``max_abs / scale``), ``mean_abs`` and ``worst`` (the name of the entry, e.g.
        ``"mfcc_mean_0"``).
    """
    ours = np.atleast_2d(np.asarray(ours, dtype=np.float64))
    ref = np.atleast_2d(np.asarray(ref, dtype=np.float64))
    if ours.shape != ref.shape or ours.shape[-1] != config.n_features:
        raise ParameterError(f"feature matrices of shapes {ours.shape} and {ref.shape} for "
                             f"{config.n_features} features")
    names = config.feature_names()
    diff = np.abs(ours - ref)
    rows, start = [], 0
    for block, n_rows in config.block_sizes.items():
        for stat in config.stats_of(block):
            cols = slice(start, start + n_rows)
            d = diff[:, cols]
            scale = float(np.abs(ref[:, cols]).max())
            worst = int(np.unravel_index(np.argmax(d), d.shape)[1])
            rows.append({
                "feature": f"{block} {stat}",
                "max_abs": float(d.max()),
                "mean_abs": float(d.mean()),
                "scale": scale,
                "max_rel": float(d.max() / scale) if scale > 0 else 0.0,
                "worst": names[start + worst],
            })
            start += n_rows
    return rows


def bundled_models() -> list[Path]:
    """The bundled models (:data:`ser_edge.model.BUNDLED_MODELS`) that can be fused.

    Those that take the feature vector or the frame matrix (a model that is already a waveform
    model is left out), in the order of ``BUNDLED_MODELS``.
    """
    import onnx

    from ser_edge.model import BUNDLED_MODELS

    out = []
    for path in BUNDLED_MODELS.values():
        meta = _metadata(onnx.load(str(path), load_external_data=False))
        if json.loads(meta.get(INPUT_KIND_KEY, '"features"')) in ("features", "frames"):
            out.append(path)
    return out
