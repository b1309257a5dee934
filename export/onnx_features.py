"""ser-edge's feature extraction as ONNX operators: one function per stage.

Each stage takes a :class:`GraphBuilder` and the names of its input tensors, appends its nodes and
constants, and returns the names of its outputs, so that a pipeline reads as the numpy one does
(:func:`ser_edge.features.feature_matrices`) and a new :class:`~ser_edge.features.FeatureConfig`
option slots in as one more function::

    (trim ends) -> frames -> windowed DFT -> power -> mel -> (x gain) -> dB -> DCT (MFCC) -> deltas
                                    -> chroma (x gain, then scaled per frame)
                                    -> frame levels (rms) -> dB -> active frames -> level gain
    (per-block matrices) -> pooling, over the active frames or all -> the model's input vector
                         (or the frame matrix)

The constants (window, DFT tables, mel and chroma banks, DCT) come from :mod:`ser_edge.dsp` and
:mod:`ser_edge.filters`, so the graph uses the very filters the runtime uses; the ONNX
``MelWeightMatrix`` operator is not used (it snaps band edges to FFT bins and differs from
librosa's Slaney filters). The level stages mirror :mod:`ser_edge.level`: the frame levels come
from the power spectrum the features share, the noise floor is a percentile over a dynamic number
of frames (``TopK`` and two ``Gather``), and the level gain multiplies the mel and raw chroma
projections, as :func:`ser_edge.features.feature_matrices` does.

Tensors inside the graph are laid out frames first, ``(n_frames, n_rows)``, for a batch of one
clip; :func:`frame_matrix` gives the ``(1, n_rows, n_frames)`` layout of ``librosa``. Scalars
that decide (the noise floor, the thresholds, the gain) are computed in float64, as numpy
computes them.

A network on the frame matrix takes :func:`frame_matrix` instead of :func:`pool`. Until a stage
exists for a ``FeatureConfig`` field, ``export.fuse`` refuses configurations that use it.

Written against ONNX opset 17 (:data:`OPSET`): the reductions take ``axes`` as an attribute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ser_edge.dsp import hann_window
from ser_edge.errors import ParameterError
from ser_edge.filters import chroma_filters, dct_matrix, mel_filters
from ser_edge.level import NOISE_FLOOR_PERCENTILE

__all__ = [
    "OPSET",
    "DFT_METHODS",
    "GraphBuilder",
    "trim_zeros",
    "trim_quiet",
    "align_peak",
    "frames",
    "dft_power",
    "rms",
    "energy_db",
    "percentile",
    "active_frames",
    "level_gain",
    "mel",
    "power_to_db",
    "dct",
    "delta",
    "chroma",
    "select_frames",
    "normalise",
    "pool",
    "frame_matrix",
]

#: The ONNX opset (default domain) the stages are written for.
OPSET = 17

#: Ways :func:`dft_power` computes the spectrum (see its docstring); ``"fft2"`` is the default.
DFT_METHODS = ("fft2", "matmul", "onnx-dft")

_NP_TO_ONNX = {np.dtype(np.float32): 1, np.dtype(np.float64): 11, np.dtype(np.int64): 7,
               np.dtype(np.int32): 6}


class GraphBuilder:
    """Collects nodes and constants for an ONNX graph, naming every tensor it makes.

    Parameters
    ----------
    prefix : str
        Put before every tensor and node name this builder makes, so that its names never meet
        those of a graph it is merged with.

    Attributes
    ----------
    nodes : list of onnx.NodeProto
        In topological order (each node after the nodes that produce its inputs).
    initializers : list of onnx.TensorProto
        The constants.
    """

    def __init__(self, prefix: str = "wf_"):
        self.prefix = prefix
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def name(self, hint: str) -> str:
        """A fresh tensor name, ``{prefix}{hint}_{n}``."""
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, value: np.ndarray | float | int | Sequence, hint: str = "c",
              dtype: type | None = None) -> str:
        """Add a constant (an initializer) and return its name.

        Parameters
        ----------
        value : array-like
            The value; Python ints become int64, floats float32 unless ``dtype`` says otherwise.
        hint : str
            Part of the name, for a reader of the graph.
        dtype : numpy dtype or None
            float32, float64 or int64.
        """
        from onnx import numpy_helper

        if dtype is None:
            arr = np.asarray(value)
            dtype = np.int64 if np.issubdtype(arr.dtype, np.integer) else np.float32
        arr = np.ascontiguousarray(value, dtype=dtype)
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, *inputs: str, n_out: int = 1, hint: str | None = None,
           **attrs) -> str | tuple[str, ...]:
        """Append one node and return the name of its output (a tuple when ``n_out > 1``)."""
        from onnx import helper

        outs = tuple(self.name(hint or op_type.lower()) for _ in range(n_out))
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outs),
                                           name=self.name(f"node_{op_type}"), **attrs))
        return outs[0] if n_out == 1 else outs

    def cast(self, x: str, dtype: type) -> str:
        """``x`` cast to float32, float64, int64 or int32."""
        return self.op("Cast", x, to=_NP_TO_ONNX[np.dtype(dtype)], hint="cast")


# -- framing ---------------------------------------------------------------------------------


def _trim_to(g: GraphBuilder, y: str, kept: str) -> str:
    """``y`` from the first sample where int32 mask ``kept`` is 1 to the last.

    The mask's ``ArgMax`` (the first maximum) for the first kept sample, the ``ArgMax`` of the
    mask reversed (``Slice`` with step -1) for the samples after the last, then ``Slice``. With
    no sample kept, both first maxima are at 0: ``y`` is kept whole, as the runtime keeps it.
    """
    first = g.op("ArgMax", kept, axis=0, keepdims=1, hint="first_kept")
    backwards = g.op("Slice", kept, g.const([-1], "last"),
                     g.const([np.iinfo(np.int64).min], "before_first"), g.const([0], "ax0"),
                     g.const([-1], "step_back"), hint="kept_reversed")
    after = g.op("ArgMax", backwards, axis=0, keepdims=1, hint="trimmed_after")
    stop = g.op("Sub", g.op("Shape", y), after, hint="stop")
    return g.op("Slice", y, first, stop, g.const([0], "ax0"), hint="trimmed")


def trim_zeros(g: GraphBuilder, y: str) -> str:
    """The signal without its leading and trailing runs of samples that are exactly 0.0.

    As :func:`ser_edge.dsp.trim_zeros`, sample-exact: the mask ``y != 0`` as int32, cut from
    its first 1 to its last (a signal of zeros only is kept whole).

    Parameters
    ----------
    g : GraphBuilder
    y : str
        float32 ``[shape=(n_samples,)]``, ``n_samples >= 1``.

    Returns
    -------
    trimmed : str
        float32 ``[shape=(m,)]``, from the first non-zero sample to the last.
    """
    nonzero = g.cast(g.op("Not", g.op("Equal", y, g.const(np.float32(0), "zero", np.float32))),
                     np.int32)
    return _trim_to(g, y, nonzero)


def trim_quiet(g: GraphBuilder, y: str, top_db: float) -> str:
    """The signal from its first sample loud relative to its peak to its last one.

    As :func:`ser_edge.dsp.trim_quiet`, sample-exact: the threshold
    ``max |y| * 10 ** (-top_db / 20)`` computed in float64 and rounded to float32, as numpy
    does, the mask ``|y| > threshold`` in float32 as int32, cut from its first 1 to its last
    (a signal with no sample above it is kept whole).

    Parameters
    ----------
    g : GraphBuilder
    y : str
        float32 ``[shape=(n_samples,)]``, ``n_samples >= 1``.
    top_db : float > 0
        The threshold under the loudest sample, in dB.

    Returns
    -------
    trimmed : str
        float32 ``[shape=(m,)]``.
    """
    magnitude = g.op("Abs", y, hint="magnitude")
    peak = g.cast(g.op("ReduceMax", magnitude, keepdims=1, hint="peak"), np.float64)
    factor = g.const(np.float64(10.0 ** (-float(top_db) / 20.0)), "trim_factor", np.float64)
    threshold = g.cast(g.op("Mul", peak, factor), np.float32)
    loud = g.cast(g.op("Greater", magnitude, threshold), np.int32)
    return _trim_to(g, y, loud)


def align_peak(g: GraphBuilder, y: str, hop_length: int) -> str:
    """The signal from the sample that puts its loudest one on the frame grid.

    As :func:`ser_edge.dsp.align_peak`, sample-exact: ``ArgMax`` of ``|y|`` (the first of equal
    maxima, as ``numpy.argmax``), ``Mod`` the hop, and ``Slice`` from there to the end.

    Parameters
    ----------
    g : GraphBuilder
    y : str
        float32 ``[shape=(n_samples,)]``, ``n_samples >= 1``.
    hop_length : int > 0
        The analysis hop, in samples.

    Returns
    -------
    aligned : str
        float32 ``[shape=(n_samples - offset,)]``, ``offset < hop_length``.
    """
    loudest = g.op("ArgMax", g.op("Abs", y, hint="magnitude"), axis=0, keepdims=1,
                   hint="loudest")
    start = g.op("Mod", loudest, g.const([int(hop_length)], "align_hop"), hint="aligned_start")
    end = g.const([np.iinfo(np.int64).max], "to_end")
    return g.op("Slice", y, start, end, g.const([0], "ax0"), hint="aligned")


def frames(g: GraphBuilder, y: str, *, n_fft: int, hop_length: int) -> str:
    """Centred, zero-padded frames of a mono signal.

    As :func:`ser_edge.dsp.stft` with ``center=True`` frames it (``librosa.stft``'s
    ``pad_mode="constant"``): ``n_fft // 2`` zeros on each side, then frame ``t`` is samples
    ``t * hop_length .. t * hop_length + n_fft`` of the padded signal.

    No index tensor is built (a ``Gather`` of every sample cost a third of the graph's time):
    the padded signal is cut into rows of ``hop_length`` samples, and frame ``t`` is rows ``t ..
    t + r - 1`` side by side (``r = ceil(n_fft / hop_length)``), cut to ``n_fft`` samples; so
    the frames are ``r`` shifted slices of the rows, concatenated.

    Parameters
    ----------
    g : GraphBuilder
    y : str
        A float tensor ``[shape=(n_samples,)]``.
    n_fft : int > 0
        Frame length, in samples.
    hop_length : int > 0
        Samples between successive frames.

    Returns
    -------
    frames : str
        ``[shape=(n_frames, n_fft)]``, ``n_frames = 1 + (n_samples + 2 * (n_fft // 2) - n_fft)
        // hop_length``; the signal must be at least ``n_fft - 2 * (n_fft // 2)`` samples long.
    """
    pad = n_fft // 2
    r = -(-n_fft // hop_length)
    # Zeros after the right padding too, so that the last frame's r rows exist.
    padded = g.op("Pad", y, g.const([pad, pad + r * hop_length], "pads"),
                  g.const(np.float32(0), "zero", np.float32), hint="padded")
    n = g.op("Sub", g.op("Shape", padded), g.const([r * hop_length], "extra"), hint="n_padded")
    # n_frames = 1 + (n - n_fft) // hop (integer division of non-negatives).
    n_frames = g.op("Add", g.op("Div", g.op("Sub", n, g.const([n_fft], "n_fft")),
                                g.const([hop_length], "hop")), g.const([1], "one"),
                    hint="n_frames")
    n_rows = g.op("Add", n_frames, g.const([r - 1], "r_minus_1"), hint="n_rows")
    rows = g.op("Reshape", g.op("Slice", padded, g.const([0], "zero_i"),
                                g.op("Mul", n_rows, g.const([hop_length], "hop"))),
                g.const([-1, hop_length], "row_shape"), hint="rows")
    shifted = [g.op("Slice", rows, g.const([i], "first"), g.op("Add", n_frames, g.const([i], "i")),
                    g.const([0], "ax0"), hint=f"rows_{i}") for i in range(r)]
    out = shifted[0] if r == 1 else g.op("Concat", *shifted, axis=1, hint="rows_side_by_side")
    if r * hop_length != n_fft:
        out = g.op("Slice", out, g.const([0], "zero_i"), g.const([n_fft], "n_fft"),
                   g.const([1], "ax1"))
    return g.op("Identity", out, hint="frames")


# -- spectrum --------------------------------------------------------------------------------


def _unit_circle(n: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """``cos`` and ``sin`` of ``2 pi m / n`` for ``m = 0 .. n - 1``, rounded once to ``dtype``."""
    m = np.arange(n)
    return (np.cos(2 * np.pi * m / n).astype(dtype), np.sin(2 * np.pi * m / n).astype(dtype))


def _dft_matrices(g: GraphBuilder, n_in: int, n_out: int, n: int, dtype: type,
                  hint: str) -> tuple[str, str]:
    """``cos`` and ``sin`` of ``2 pi (j k mod n) / n``, ``[shape=(n_in, n_out)]``.

    For ``j < n_in`` and ``k < n_out``.
    Stored as the ``n`` values of the unit circle and gathered at the index ``j k mod n``, which
    the graph computes exactly in int64 when the session is built (a constant that
    onnxruntime folds): the file holds ``2 n`` numbers instead of ``2 n_in n_out``, and each
    entry is the correctly rounded value of its angle.
    """
    cos, sin = _unit_circle(n, dtype)
    index = g.op("Mod", g.op("Mul", g.const(np.arange(n_in)[:, np.newaxis], f"{hint}_j"),
                             g.const(np.arange(n_out)[np.newaxis, :], f"{hint}_k")),
                 g.const(np.int64(n), f"{hint}_n"), hint=f"{hint}_index")
    return (g.op("Gather", g.const(cos, f"{hint}_cos", dtype), index, axis=0, hint=f"{hint}_c"),
            g.op("Gather", g.const(sin, f"{hint}_sin", dtype), index, axis=0, hint=f"{hint}_s"))


def _split_radix(n_fft: int) -> int | None:
    """The factor ``n1`` of ``n_fft = n1 * n2`` closest to its square root, or None if prime."""
    best = None
    for n1 in range(2, math.isqrt(n_fft) + 1):
        if n_fft % n1 == 0:
            best = n1
    if best is None:
        return None
    # n1 * n2 with n1 <= n2; the larger factor first costs the same multiply-adds (4 N (n1 + n2))
    # but gives the second stage fewer, longer rows.
    return n_fft // best


def dft_power(g: GraphBuilder, x: str, *, n_fft: int, method: str = "fft2",
              dtype: type = np.float32) -> str:
    """The power spectrum ``|rfft(window * frame)| ** 2`` of each frame, periodic Hann window.

    :func:`ser_edge.dsp.power_spectrogram` computes it as librosa does: float32 samples times the
    float64 window, the FFT in float64, rounded to complex64, then squared. Here the frames are
    cast to ``dtype``, multiplied by the window in ``dtype``, transformed in ``dtype`` and the
    power rounded to float32.

    Parameters
    ----------
    g : GraphBuilder
    x : str
        Frames, float32 ``[shape=(n_frames, n_fft)]`` (from :func:`frames`).
    n_fft : int > 0
        Frame length, in samples; the spectrum has ``1 + n_fft // 2`` bins.
    method : {"fft2", "matmul", "onnx-dft"}
        ``"fft2"``: one step of Cooley-Tukey's decomposition (Cooley and Tukey 1965) written as
        matrix products, ``n_fft = n1 * n2``: DFTs of length ``n1`` over the real samples, then of
        length ``n2`` with the twiddle factors folded in; about ``2 n_fft (n1 + n2)``
        multiply-adds per frame instead of ``n_fft^2`` (falls back to ``"matmul"`` when ``n_fft``
        is prime).
        ``"matmul"``: one product with the ``(n_fft, 2 (1 + n_fft // 2))`` DFT basis.
        ``"onnx-dft"``: the ONNX ``DFT`` operator (opset 17; float32 or float64 as ``dtype``).
    dtype : np.float32 or np.float64
        Arithmetic of the window, the transform and the power. float32 is faster; on real speech
        the pooled features differ from numpy's as much with either, but for the mel dB
        statistics (``benchmarks/fused.py``).

    Returns
    -------
    power : str
        float32 ``[shape=(n_frames, 1 + n_fft // 2)]``.

    Raises
    ------
    ParameterError
        If ``method`` or ``dtype`` is not one of those above.
    """
    if method not in DFT_METHODS:
        raise ParameterError(f"unknown DFT method {method!r}; choose from {DFT_METHODS}")
    dtype = np.dtype(dtype).type
    if dtype not in (np.float32, np.float64):
        raise ParameterError(f"DFT dtype must be float32 or float64, got {np.dtype(dtype)}")
    n_bins = 1 + n_fft // 2
    x = x if dtype == np.float32 else g.cast(x, dtype)
    n1 = _split_radix(n_fft) if method == "fft2" else None
    if n1 is not None:
        power = _fft2_power(g, x, n_fft, n1, dtype)
        return power if dtype == np.float32 else g.cast(power, np.float32)
    xw = g.op("Mul", x, g.const(hann_window(n_fft), "window", dtype), hint="windowed")
    if method == "onnx-dft":
        spec = g.op("DFT", g.op("Unsqueeze", g.op("Unsqueeze", xw, g.const([0], "ax0")),
                                g.const([-1], "axl")), axis=2, onesided=1, hint="dft")
        power = g.op("ReduceSum", g.op("Mul", spec, spec), g.const([-1], "axl"), keepdims=0)
        power = g.op("Squeeze", power, g.const([0], "ax0"), hint="power")
    else:
        cos, sin = _dft_matrices(g, n_fft, n_bins, n_fft, dtype, "basis")
        re, im = g.op("MatMul", xw, cos, hint="re"), g.op("MatMul", xw, sin, hint="im")
        power = g.op("Add", g.op("Mul", re, re), g.op("Mul", im, im), hint="power")
    return power if dtype == np.float32 else g.cast(power, np.float32)


def _fft2_power(g: GraphBuilder, x: str, n_fft: int, n1: int, dtype: type) -> str:
    """:func:`dft_power`'s ``"fft2"``: ``n = n2 * j1 + j2``, ``k = k1 + n1 * k2``.

    ``X[k1 + n1 k2] = sum_j2 W_N^(j2 (k1 + n1 k2)) sum_j1 x[n2 j1 + j2] W_n1^(j1 k1)`` with
    ``W_m = exp(-2 pi i / m)`` (Cooley and Tukey 1965): a length-``n1`` DFT down each column of
    the frame seen as ``(n1, n2)`` (one matrix product for all frames and columns), then for each
    ``k1`` a product with ``W_N^(j2 k)``, ``k = k1 + n1 k2``, the twiddle factors folded into the
    second DFT's matrix; only the ``k2`` that reach bin ``n_fft // 2`` are computed.

    The frames are first laid out ``(n1, n_frames, n2)`` (one transpose), so that both stages are
    plain matrix products and no elementwise twiddle pass is needed: each pass over a long clip's
    frames costs memory bandwidth.
    """
    n2 = n_fft // n1
    k2_count = (n_fft // 2) // n1 + 1
    # (n_frames, n_fft) -> (n1, n_frames, n2) = x[f, n2 j1 + j2] at [j1, f, j2], windowed.
    cube = g.op("Transpose", g.op("Reshape", x, g.const([0, n1, n2], "shape_cube")),
                perm=[1, 0, 2], hint="columns")
    window = hann_window(n_fft).reshape(n1, 1, n2)
    cube = g.op("Mul", cube, g.const(window, "window", dtype), hint="windowed")
    flat = g.op("Reshape", cube, g.const([n1, -1], "shape_stage1"), hint="columns_flat")
    shape_y = g.op("Shape", cube, hint="shape_y")
    # Stage 1, real input: Y = (C1 - i S1) x, C1 and S1 of 2 pi k1 j1 / n1, (n1, n1).
    c1, s1 = _dft_matrices(g, n1, n1, n1, dtype, "dft1")
    yr = g.op("Reshape", g.op("MatMul", c1, flat), shape_y, hint="yr")
    yi = g.op("Reshape", g.op("MatMul", g.op("Neg", s1), flat), shape_y, hint="yi")
    # Stage 2, per k1: (yr + i yi)(C - i S), C and S of 2 pi j2 (k1 + n1 k2) / N, (n1, n2, k2).
    c2, s2 = _dft_matrices(g, n2, n1 * k2_count, n_fft, dtype, "dft2")  # [j2, k1 + n1 k2]
    # Column k1 + n1 k2 of (n2, n1 * k2_count) -> [k1, j2, k2].
    def per_k1(t: str) -> str:
        return g.op("Transpose", g.op("Reshape", t, g.const([n2, k2_count, n1], "shape_tw")),
                    perm=[2, 0, 1], hint="per_k1")
    c2, s2 = per_k1(c2), per_k1(s2)
    xr = g.op("Add", g.op("MatMul", yr, c2), g.op("MatMul", yi, s2), hint="xr")
    xi = g.op("Sub", g.op("MatMul", yi, c2), g.op("MatMul", yr, s2), hint="xi")
    power = g.op("Add", g.op("Mul", xr, xr), g.op("Mul", xi, xi), hint="power_k1fk2")
    # (k1, n_frames, k2) -> bins k = k1 + n1 k2 in order: (n_frames, k2, k1), flattened.
    flat = g.op("Reshape", g.op("Transpose", power, perm=[1, 2, 0]),
                g.const([0, -1], "shape_flat"), hint="power_flat")
    return g.op("Slice", flat, g.const([0], "start0"), g.const([1 + n_fft // 2], "n_bins"),
                g.const([1], "axis1"), hint="power")


# -- frame levels ------------------------------------------------------------------------------


def rms(g: GraphBuilder, power: str, *, n_fft: int) -> str:
    """Root-mean-square level of each frame, from its power spectrum.

    As :func:`ser_edge.level.rms` (``librosa.feature.rms(S=sqrt(power))``, librosa 0.11.0):
    Parseval's sum over the one-sided spectrum with the bins between DC and Nyquist counted
    twice, divided by ``n_fft ** 2``, then the square root. The sum is one product with the
    weights ``(1, 2, ..., 2, 1) / n_fft ** 2`` (the last 2 for an odd ``n_fft``, which has no
    Nyquist bin), in float32 as numpy sums it.

    Parameters
    ----------
    g : GraphBuilder
    power : str
        float32 ``[shape=(n_frames, 1 + n_fft // 2)]`` (from :func:`dft_power`).
    n_fft : int > 0
        The frame length the spectrum was computed with, in samples.

    Returns
    -------
    rms : str
        float32 ``[shape=(n_frames, 1)]``.
    """
    weights = np.full((1 + n_fft // 2, 1), 2.0)
    weights[0] = 1.0
    if n_fft % 2 == 0:
        weights[-1] = 1.0
    weights /= float(n_fft) ** 2
    total = g.op("MatMul", power, g.const(weights, "rms_weights"), hint="mean_square")
    return g.op("Sqrt", total, hint="rms")


def energy_db(g: GraphBuilder, r: str) -> str:
    """Frame energy in dB, ``20 log10(max(rms, 1e-10))``, in float64.

    As :func:`ser_edge.level.energy_db`: the float32 levels are cast to float64 first.

    Returns
    -------
    e : str
        float64, the shape of ``r``, in dB re full scale.
    """
    r64 = g.op("Max", g.cast(r, np.float64), g.const(1e-10, "rms_floor", np.float64))
    return g.op("Mul", g.op("Log", r64), g.const(20.0 / math.log(10.0), "db_per_neper_20",
                                                 np.float64), hint="energy_db")


def percentile(g: GraphBuilder, x: str, *, q: float) -> str:
    """The ``q``-th percentile of a float64 vector of any length, as ``numpy.percentile``.

    numpy's default ``method="linear"``: the position ``(n - 1) * q / 100`` in the sorted
    values, its floor ``i`` and ``j = min(i + 1, n - 1)``, and numpy's ``_lerp`` of the values
    there with the fraction ``t`` (``a + (b - a) t``, or ``b - (b - a)(1 - t)`` from ``t =
    0.5`` on), all in float64, so the result is numpy's to the last bit. The sorted values are
    the ``j + 1`` smallest (``TopK``), found for the number of values the clip has.

    Parameters
    ----------
    g : GraphBuilder
    x : str
        float64 ``[shape=(n,)]``, ``n >= 1``.
    q : float in [0, 100]
        The percentile.

    Returns
    -------
    p : str
        float64 scalar.

    Raises
    ------
    ParameterError
        If ``q`` is outside [0, 100].
    """
    if not 0 <= q <= 100:
        raise ParameterError(f"q={q!r} must be between 0 and 100")
    f64 = np.float64
    last = g.op("Sub", g.op("Shape", x), g.const([1], "one"), hint="last_index")
    position = g.op("Mul", g.cast(last, f64), g.const([q / 100], "quantile", f64),
                    hint="position")
    below = g.op("Floor", position)
    t = g.op("Sub", position, below, hint="fraction")
    i = g.cast(below, np.int64)
    j = g.op("Min", g.op("Add", i, g.const([1], "one")), last, hint="next_index")
    smallest, _ = g.op("TopK", x, g.op("Add", j, g.const([1], "one")), n_out=2, axis=0,
                       largest=0, sorted=1, hint="smallest")
    a = g.op("Gather", smallest, i, axis=0, hint="value_i")
    b = g.op("Gather", smallest, j, axis=0, hint="value_j")
    diff = g.op("Sub", b, a)
    up = g.op("Add", a, g.op("Mul", diff, t))
    down = g.op("Sub", b, g.op("Mul", diff, g.op("Sub", g.const([1.0], "one_d", f64), t)))
    late = g.op("GreaterOrEqual", t, g.const([0.5], "half_d", f64))
    return g.op("Reshape", g.op("Where", late, down, up), g.const([], "scalar", np.int64),
                hint="percentile")


def active_frames(g: GraphBuilder, e: str, *, range_db: float, floor_db: float,
                  floor_range_db: float | None = None) -> str:
    """The speech-active frames: loud relative to the clip's peak and to its noise floor.

    As :func:`ser_edge.level.active_frames`, in float64: the noise floor is the
    :data:`~ser_edge.level.NOISE_FLOOR_PERCENTILE`-th percentile (:func:`percentile`) of the
    energies within ``floor_range_db`` of the peak (``Compress``; all when it is None), and a
    frame is active when ``e >= min(max(peak - range_db, floor + floor_db), peak - floor_db)``.

    Parameters
    ----------
    g : GraphBuilder
    e : str
        float64 ``[shape=(n_frames, 1)]``, frame energies in dB (:func:`energy_db`).
    range_db, floor_db : float > 0
        Largest distance under the loudest frame, smallest above the noise floor, in dB.
    floor_range_db : float > 0 or None
        The frames setting the noise floor are within this many dB of the loudest.

    Returns
    -------
    mask : str
        bool ``[shape=(n_frames, 1)]``; true for at least the loudest frame.
    """
    f64 = np.float64
    flat = g.op("Reshape", e, g.const([-1], "flat"), hint="energies")
    peak = g.op("ReduceMax", flat, keepdims=0, hint="peak_db")
    heard = flat
    if floor_range_db is not None:
        near = g.op("GreaterOrEqual", flat,
                    g.op("Sub", peak, g.const(floor_range_db, "floor_range_db", f64)))
        heard = g.op("Compress", flat, near, axis=0, hint="heard")
    noise = percentile(g, heard, q=NOISE_FLOOR_PERCENTILE)
    threshold = g.op("Max", g.op("Sub", peak, g.const(range_db, "range_db", f64)),
                     g.op("Add", noise, g.const(floor_db, "floor_db", f64)))
    threshold = g.op("Min", threshold, g.op("Sub", peak, g.const(floor_db, "floor_db", f64)),
                     hint="threshold_db")
    return g.op("GreaterOrEqual", e, threshold, hint="active")


def level_gain(g: GraphBuilder, r: str, mask: str, *, level_db: float) -> str:
    """The power gain that brings the mean energy of the active frames to ``level_db`` dBFS.

    As :func:`ser_edge.level.level_gain`: ``10 ** (level_db / 10) / mean(rms ** 2)`` over the
    active frames, in float64, 1.0 when that mean is 0 (digital silence); rounded to float32, as
    numpy rounds it before multiplying a float32 projection by it.

    Parameters
    ----------
    g : GraphBuilder
    r : str
        float32 ``[shape=(n_frames, 1)]``, frame levels (:func:`rms`).
    mask : str
        bool ``[shape=(n_frames, 1)]``, the active frames (:func:`active_frames`).
    level_db : float
        Target level, in dB re full scale.

    Returns
    -------
    gain : str
        float32 ``[shape=(1,)]``, which broadcasts over a projection.
    """
    f64 = np.float64
    r64 = g.cast(r, f64)
    m = g.cast(mask, f64)
    total = g.op("ReduceSum", g.op("Mul", g.op("Mul", r64, r64), m), keepdims=0)
    power = g.op("Div", total, g.op("ReduceSum", m, keepdims=0), hint="active_power")
    target = g.const(10.0 ** (level_db / 10.0), "target_power", f64)
    audible = g.op("Greater", power, g.const(0.0, "zero_d", f64))
    gain = g.op("Where", audible, g.op("Div", target, power), g.const(1.0, "one_d", f64))
    return g.cast(gain, np.float32)


# -- filter banks ------------------------------------------------------------------------------


def mel(g: GraphBuilder, power: str, *, sr: int, n_fft: int, n_mels: int, fmin: float,
        fmax: float | None, htk: bool) -> str:
    """The mel power spectrogram: ``power @ mel_filters(...).T``.

    The bank is :func:`ser_edge.filters.mel_filters` (librosa's Slaney-normalised filters),
    stored as a float32 constant.

    Returns
    -------
    mel : str
        float32 ``[shape=(n_frames, n_mels)]``.
    """
    bank = mel_filters(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk)
    return g.op("MatMul", power, g.const(bank.T, "mel_bank"), hint="mel")


def power_to_db(g: GraphBuilder, S: str, *, amin: float = 1e-10,
                top_db: float | None = 80.0) -> str:
    """``10 log10(max(amin, S))``, floored at ``top_db`` under the largest value of the clip.

    Mirrors :func:`ser_edge.dsp.power_to_db` with ``ref=1.0`` (``librosa.power_to_db``): the
    maximum is taken over the whole matrix, every frame and band. ``log10`` is ``ln`` times
    ``10 / ln 10`` in float32.

    Returns
    -------
    S_db : str
        float32, the shape of ``S``, in dB.
    """
    log = g.op("Log", g.op("Max", S, g.const(np.float32(amin), "amin")))
    db = g.op("Mul", log, g.const(np.float32(10.0 / math.log(10.0)), "db_per_neper"), hint="db")
    if top_db is None:
        return db
    floor = g.op("Sub", g.op("ReduceMax", db, keepdims=0), g.const(np.float32(top_db), "top_db"))
    return g.op("Max", db, floor, hint="db_floored")


def dct(g: GraphBuilder, S_db: str, *, n_mfcc: int, n_mels: int) -> str:
    """MFCC: the orthonormal DCT-II of each frame's log-mel vector, ``S_db @ dct_matrix.T``.

    The basis is :func:`ser_edge.filters.dct_matrix` (``librosa.feature.mfcc`` with
    ``dct_type=2``, ``norm="ortho"``, ``lifter=0``).

    Returns
    -------
    mfcc : str
        float32 ``[shape=(n_frames, n_mfcc)]``.
    """
    return g.op("MatMul", S_db, g.const(dct_matrix(n_mfcc, n_mels).T, "dct"), hint="mfcc")


def delta(g: GraphBuilder, M: str, *, width: int) -> str:
    """Local slope of each column over the frames: first-order deltas.

    As :func:`ser_edge.features.delta` (``librosa.feature.delta(order=1, mode="interp")``,
    librosa 0.11.0): inside, the least-squares slope over the ``width`` frames centred on each
    frame, ``sum_k k M[t + k] / sum_k k^2`` for ``k = -width // 2 .. width // 2``, in float64
    (numpy multiplies the float32 frames by float64 weights) and rounded to float32; the first
    and last ``width // 2`` frames copy the first and last of those slopes (a ``Gather`` at the
    clipped frame index).

    The numpy function refuses fewer frames than ``width``; a graph cannot raise, so it gives
    NaN for every value then (the frames are padded with zeros so that it runs at all), and the
    fused model's probabilities are NaN. :class:`ser_edge.Classifier` refuses such clips before
    they reach either model (``FeatureConfig.min_frames``).

    Parameters
    ----------
    g : GraphBuilder
    M : str
        float32 ``[shape=(n_frames, n_rows)]``, e.g. the MFCCs (:func:`dct`).
    width : int >= 3, odd
        Frames per slope.

    Returns
    -------
    delta : str
        float32 ``[shape=(n_frames, n_rows)]``, change per frame.

    Raises
    ------
    ParameterError
        If ``width`` is not an odd integer >= 3.
    """
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 3 \
            or width % 2 != 1:
        raise ParameterError(f"width must be an odd integer >= 3, got {width!r}")
    half = width // 2
    k = np.arange(-half, half + 1, dtype=np.float64)
    weights = k / np.sum(k * k)
    X = g.cast(M, np.float64)
    n = g.op("Slice", g.op("Shape", X), g.const([0], "zero_i"), g.const([1], "one"),
             hint="n_frames")
    short = g.op("Less", n, g.const([width], "width"), hint="too_few_frames")
    missing = g.op("Max", g.op("Sub", g.const([width], "width"), n), g.const([0], "zero_i"))
    pads = g.op("Concat", g.const([0, 0], "zeros_2"), missing, g.const([0], "zero_i"), axis=0)
    X = g.op("Pad", X, pads, hint="at_least_width")
    n_slopes = g.op("Add", g.op("Max", n, g.const([width], "width")),
                    g.const([1 - width], "one_minus_width"), hint="n_slopes")
    interior = None
    for j, w in enumerate(weights):
        if w == 0:
            continue
        start = g.const([j], "start")
        shifted = g.op("Slice", X, start, g.op("Add", n_slopes, start), g.const([0], "ax0"))
        term = g.op("Mul", shifted, g.const(w, "delta_weight", np.float64))
        interior = term if interior is None else g.op("Add", interior, term, hint="slope")
    scalar = g.const([], "scalar", np.int64)
    frame = g.op("Range", g.const(np.int64(-half), "minus_half"),
                 g.op("Reshape", g.op("Sub", n, g.const([half], "half")), scalar),
                 g.const(np.int64(1), "step"))
    last = g.op("Sub", n_slopes, g.const([1], "one"))
    index = g.op("Min", g.op("Max", frame, g.const([0], "zero_i")), last, hint="slope_index")
    out = g.op("Gather", interior, index, axis=0, hint="delta64")
    nan = g.op("Where", short, g.const([np.nan], "nan", np.float64),
               g.const([0.0], "zero_d", np.float64))
    return g.cast(g.op("Add", out, nan, hint="delta_or_nan"), np.float32)


def chroma(g: GraphBuilder, power: str, *, sr: int, n_fft: int, n_chroma: int, tuning: float,
           threshold: float | None, gain: str | None = None) -> str:
    """The chromagram at a fixed tuning, each frame scaled to a maximum of 1.

    As :func:`ser_edge.features.chroma_stft` with ``tuning`` given: ``power @ chroma_filters.T``,
    times the level gain if there is one (:func:`level_gain`; as
    :func:`ser_edge.features.feature_matrices` scales the raw chroma), then each frame divided
    by its largest value unless that is below ``threshold`` (``None``: the smallest positive
    float32, librosa's). The comparison is made in float64, as numpy makes it.

    Parameters
    ----------
    g : GraphBuilder
    power : str
        float32 ``[shape=(n_frames, 1 + n_fft // 2)]``.
    sr, n_fft, n_chroma, tuning
        As :func:`ser_edge.filters.chroma_filters`.
    threshold : float > 0 or None
        Frames whose largest raw value is below it stay unscaled.
    gain : str or None
        float32 ``[shape=(1,)]`` (:func:`level_gain`), multiplying the raw chroma before the
        threshold is applied.

    Returns
    -------
    chroma : str
        float32 ``[shape=(n_frames, n_chroma)]``.
    """
    bank = chroma_filters(sr=sr, n_fft=n_fft, tuning=float(tuning), n_chroma=n_chroma)
    raw = g.op("MatMul", power, g.const(bank.T, "chroma_bank"), hint="chroma_raw")
    if gain is not None:
        raw = g.op("Mul", raw, gain, hint="chroma_raw_levelled")
    peak = g.op("ReduceMax", g.op("Abs", raw), axes=[1], keepdims=1, hint="chroma_peak")
    if threshold is None:
        threshold = float(np.finfo(np.float32).tiny)
    quiet = g.op("Less", g.cast(peak, np.float64), g.const(np.float64(threshold), "chroma_thr",
                                                            np.float64))
    scale = g.op("Where", quiet, g.const(np.float32(1.0), "one_f"), peak, hint="chroma_scale")
    return g.op("Div", raw, scale, hint="chroma")


# -- pooling and layouts -----------------------------------------------------------------------


def pool(g: GraphBuilder, blocks: Mapping[str, str], *, order: Sequence[str],
         stats: Sequence[str] | Mapping[str, Sequence[str]], mask: str | None = None,
         dtype: type = np.float64) -> str:
    """The model's input vector: each statistic over time of each block, in ``order``.

    As :func:`ser_edge.features.pool`: for each block in ``order``, for each name in ``stats``,
    that statistic of each row over the frames; ``std`` is the population standard deviation
    (``numpy.std``: the mean, the deviations, the mean of their squares, its square root).

    Parameters
    ----------
    g : GraphBuilder
    blocks : mapping of str to str
        Name of each block's tensor, float32 ``[shape=(n_frames, n_rows)]``.
    order : sequence of str
        Block names in the order of the vector.
    stats : sequence of {"mean", "std", "min", "max"}, or mapping of str to such sequences
        Statistics, in the order of the vector: the same for every block, or each block's own
        (``FeatureConfig.stats_of``).
    mask : str or None
        A bool, or float32 of ones and zeros, ``[shape=(n_frames, 1)]``: pool over the marked
        frames only (:func:`active_frames`); ``None`` pools over every frame.
    dtype : np.float64 or np.float32
        Arithmetic of the sums. numpy sums float32 pairwise (an error growing with the log of
        the number of frames); onnxruntime's float32 reductions drift further on long clips (a
        60 s clip's mel dB means by 1.3e-3 dB), so the sums are made in float64 by default and
        rounded to float32, as close to numpy's pairwise sums as either can be.

    Returns
    -------
    x : str
        float32 ``[shape=(1, n_features)]``.

    Raises
    ------
    ParameterError
        If a statistic is unknown.
    """
    dtype = np.dtype(dtype).type
    parts = []
    if mask is not None:
        mask = g.cast(mask, dtype)
    count = None if mask is None else g.op("ReduceSum", mask, g.const([0], "ax0"), keepdims=1,
                                           hint="n_selected")

    def mean(M: str) -> str:
        if mask is None:
            return g.op("ReduceMean", M, axes=[0], keepdims=1, hint="mean")
        return g.op("Div", g.op("ReduceSum", g.op("Mul", M, mask), g.const([0], "ax0"),
                                keepdims=1), count, hint="mean")

    for name in order:
        M = blocks[name] if dtype == np.float32 else g.cast(blocks[name], dtype)
        for stat in (stats[name] if isinstance(stats, Mapping) else stats):
            if stat == "mean":
                parts.append(mean(M))
            elif stat == "std":
                dev = g.op("Sub", M, mean(M), hint="dev")
                parts.append(g.op("Sqrt", mean(g.op("Mul", dev, dev)), hint="std"))
            elif stat in ("min", "max"):
                op = "ReduceMin" if stat == "min" else "ReduceMax"
                if mask is not None:
                    fill = np.inf if stat == "min" else -np.inf
                    selected = g.op("Greater", mask, g.const(0, "zero_f", dtype))
                    M_sel = g.op("Where", selected, M, g.const(fill, f"fill_{stat}", dtype))
                else:
                    M_sel = M
                parts.append(g.op(op, M_sel, axes=[0], keepdims=1, hint=stat))
            else:
                raise ParameterError(f"unknown statistic {stat!r}")
    x = g.op("Concat", *parts, axis=1, hint="features")
    return x if dtype == np.float32 else g.cast(x, np.float32)


def normalise(g: GraphBuilder, M: str, *, norm: str, floor: float = 1e-2,
              dtype: type = np.float64) -> str:
    """Per-utterance normalisation of each row over the frames (``FeatureConfig.norm``).

    As :func:`ser_edge.features.feature_matrices`: the row's mean subtracted (``"mean"``), and
    its population standard deviation divided out where it exceeds ``floor`` (``"meanvar"``);
    the sums in float64, the result rounded to float32.

    Parameters
    ----------
    M : str
        float32 ``[shape=(n_frames, n_rows)]``, the kept frames only.
    norm : {"mean", "meanvar"}
    floor : float
        Spread under which a row is only centred.

    Returns
    -------
    M_norm : str
        float32 ``[shape=(n_frames, n_rows)]``.
    """
    X = g.cast(M, dtype)
    dev = g.op("Sub", X, g.op("ReduceMean", X, axes=[0], keepdims=1, hint="row_mean"),
               hint="centred")
    if norm == "meanvar":
        std = g.op("Sqrt", g.op("ReduceMean", g.op("Mul", dev, dev), axes=[0], keepdims=1),
                   hint="row_std")
        scale = g.op("Where", g.op("Greater", std, g.const(floor, "norm_floor", dtype)), std,
                     g.const(1.0, "one_f", dtype), hint="row_scale")
        dev = g.op("Div", dev, scale, hint="normalised")
    elif norm != "mean":
        raise ParameterError(f"unknown norm {norm!r}")
    return g.cast(dev, np.float32)


def select_frames(g: GraphBuilder, M: str, mask: str) -> str:
    """The marked frames of a matrix, ``M[mask]`` (``Compress``).

    As :func:`ser_edge.features.feature_matrices` keeps the active frames' columns.

    Parameters
    ----------
    M : str
        ``[shape=(n_frames, n_rows)]``.
    mask : str
        bool ``[shape=(n_frames, 1)]`` (:func:`active_frames`).

    Returns
    -------
    selected : str
        ``[shape=(n_selected, n_rows)]``.
    """
    flat = g.op("Reshape", mask, g.const([-1], "flat"), hint="selected")
    return g.op("Compress", M, flat, axis=0, hint="selected_frames")


def frame_matrix(g: GraphBuilder, blocks: Mapping[str, str], *, order: Sequence[str]) -> str:
    """The blocks stacked row-wise, librosa's layout: float32 ``[shape=(1, n_rows, n_frames)]``.

    For a network that takes the frame matrix instead of a pooled vector: rows are the blocks in
    ``order``, each with its own rows in order.
    """
    stacked = g.op("Concat", *(blocks[name] for name in order), axis=1, hint="stacked")
    return g.op("Unsqueeze", g.op("Transpose", stacked, perm=[1, 0]), g.const([0], "ax0"),
                hint="frame_matrix")
