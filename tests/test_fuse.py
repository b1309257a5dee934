"""export.fuse and export.onnx_features: the feature extraction as ONNX, stage by stage, and fused.

Each stage is run alone in onnxruntime against its numpy counterpart in ``ser_edge`` on seeded
signals; the whole feature graph against :func:`ser_edge.features.feature_vector` over a grid of
configurations; the fused model against the numpy runtime through :class:`ser_edge.Classifier`.
Real clips are in ``test_fuse_corpora.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from export import onnx_features as of  # noqa: E402
from export.fuse import (  # noqa: E402
    GRAPH_KEY,
    IMPLEMENTED,
    check_fusable,
    feature_differences,
    feature_model,
    fuse,
    fuse_file,
)
from ser_edge.dsp import (  # noqa: E402
    align_peak,
    power_spectrogram,
    trim_quiet,
    trim_zeros,
)
from ser_edge.errors import AudioError, ModelError, ParameterError  # noqa: E402
from ser_edge.features import FeatureConfig, feature_matrices, feature_vector  # noqa: E402
from ser_edge.model import BUNDLED_MODELS, Classifier  # noqa: E402

#: The bundled pooled model (the MLP): fusing it puts the feature pipeline in the graph.
BUNDLED_MODEL = BUNDLED_MODELS["mlp"]


def session(model) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def stage_model(build, inputs: dict[str, list], output_rank: int = 2, *,
                types: dict[str, int] | None = None, out_type: int = TensorProto.FLOAT):
    """A model of one stage: ``build(g, *input_names) -> output name``; float32 inputs unless
    ``types`` names another ``TensorProto`` type."""
    types = types or {}
    g = of.GraphBuilder()
    out = build(g, *inputs)
    g.nodes.append(helper.make_node("Identity", [out], ["out"]))
    graph = helper.make_graph(
        g.nodes, "stage",
        [helper.make_tensor_value_info(name, types.get(name, TensorProto.FLOAT), shape)
         for name, shape in inputs.items()],
        [helper.make_tensor_value_info("out", out_type, [None] * output_rank)],
        g.initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", of.OPSET)])


def numpy_frames(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    padded = np.pad(y, n_fft // 2)
    n_frames = 1 + (len(padded) - n_fft) // hop
    return padded[np.arange(n_frames)[:, None] * hop + np.arange(n_fft)[None, :]]


# -- stages ------------------------------------------------------------------------------------


def test_trim_zeros_equals_numpy_sample_for_sample(rng: np.random.Generator) -> None:
    """The ArgMax/Slice stage keeps exactly the samples ser_edge.dsp.trim_zeros keeps: zeros
    at either end or both, inside, -0.0, a lone sample; zeros only kept whole."""
    sess = session(stage_model(of.trim_zeros, {"y": ["n"]}, output_rank=1))
    voice = rng.standard_normal(5000).astype(np.float32)
    voice[[0, 1234, 1235, -1]] = 0.0
    cases = [voice, np.pad(voice, (9600, 0)), np.pad(voice, (0, 7)), np.pad(voice, 4800),
             np.array([0.0, -0.0, 0.25, -0.0], np.float32), np.array([0.5], np.float32),
             np.zeros(1, np.float32), np.zeros(3000, np.float32)]
    for y in cases:
        (got,) = sess.run(None, {"y": y})
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, trim_zeros(y))


@pytest.mark.parametrize("top_db", [25.0, 60.0])
def test_trim_quiet_equals_numpy_sample_for_sample(rng: np.random.Generator, top_db: float) -> None:
    """The threshold in float64 and the ArgMax/Slice stage keep exactly the samples
    ser_edge.dsp.trim_quiet keeps: quiet noise or zeros at either end, samples at the threshold
    itself (not loud), zeros only kept whole."""
    sess = session(stage_model(lambda g, y: of.trim_quiet(g, y, top_db), {"y": ["n"]},
                               output_rank=1))
    voice = (0.3 * rng.standard_normal(5000)).astype(np.float32)
    hiss = (1e-4 * rng.standard_normal(4800)).astype(np.float32)
    at = np.float32(np.abs(voice).max() * 10.0 ** (-top_db / 20.0))
    edge = np.concatenate([[at, -at], voice, [at]]).astype(np.float32)
    cases = [voice, np.concatenate([hiss, voice]), np.concatenate([voice, hiss]),
             np.concatenate([hiss, voice, np.zeros(7, np.float32), hiss]), edge,
             np.array([0.5], np.float32), np.zeros(1, np.float32), np.zeros(3000, np.float32)]
    for y in cases:
        (got,) = sess.run(None, {"y": y})
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, trim_quiet(y, top_db))


@pytest.mark.parametrize("hop", [256, 160, 7])
def test_align_peak_equals_numpy_sample_for_sample(rng: np.random.Generator, hop: int) -> None:
    """ArgMax, Mod and Slice keep exactly the samples ser_edge.dsp.align_peak keeps: the
    loudest anywhere, equal maxima (the first counts), shorter than a hop, zeros only."""
    sess = session(stage_model(lambda g, y: of.align_peak(g, y, hop), {"y": ["n"]},
                               output_rank=1))
    voice = (0.3 * rng.standard_normal(5000)).astype(np.float32)
    ties = voice.copy()
    ties[[1234, 4321]] = [2.0, -2.0]
    cases = [voice, voice[::-1].copy(), ties, voice[:hop - 2], np.array([0.5], np.float32),
             np.zeros(1, np.float32), np.zeros(3000, np.float32)]
    for y in cases:
        (got,) = sess.run(None, {"y": y})
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, align_peak(y, hop))


@pytest.mark.parametrize(("n_fft", "hop"), [(1024, 256), (512, 160), (400, 160), (1000, 300),
                                            (64, 100), (7, 3), (2048, 512)])
def test_frames_equal_numpy_framing(n_fft: int, hop: int, rng: np.random.Generator) -> None:
    model = stage_model(lambda g, y: of.frames(g, y, n_fft=n_fft, hop_length=hop), {"y": [None]})
    s = session(model)
    for n in (1, n_fft // 3 + 1, n_fft, n_fft + 1, 3 * n_fft + 17, 10 * hop + 1):
        y = rng.standard_normal(n).astype(np.float32)
        (got,) = s.run(None, {"y": y})
        np.testing.assert_array_equal(got, numpy_frames(y, n_fft, hop), err_msg=f"n={n}")


# Largest power difference from numpy's (float64 FFT, rounded to complex64), relative to each
# frame's largest bin. Measured on this signal: float64 graphs 3.6e-7 at most (numpy's own
# complex64 rounding); float32 fft2 and matmul 1.1e-6; the ONNX DFT operator in float32 4.4e-6
# where n_fft is not a power of two (onnxruntime uses Bluestein's algorithm there).
DFT_RTOL = {("fft2", np.float32): 2e-6, ("matmul", np.float32): 2e-6,
            ("onnx-dft", np.float32): 1e-5, ("fft2", np.float64): 5e-7,
            ("matmul", np.float64): 5e-7, ("onnx-dft", np.float64): 5e-7}


@pytest.mark.parametrize("method", of.DFT_METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_fft", [1024, 512, 400, 257, 2048])
def test_dft_power_equals_numpy(signal, method: str, dtype: type, n_fft: int) -> None:
    hop = n_fft // 4
    y = signal("vibrato", 16000, duration=0.5, seed=1)
    model = stage_model(
        lambda g, x: of.dft_power(g, x, n_fft=n_fft, method=method, dtype=dtype),
        {"x": [None, n_fft]})
    (got,) = session(model).run(None, {"x": numpy_frames(y, n_fft, hop)})
    ref = power_spectrogram(y, n_fft=n_fft, hop_length=hop).T
    assert got.dtype == np.float32 and got.shape == ref.shape
    err = np.abs(got - ref) / ref.max(axis=1, keepdims=True)
    assert err.max() <= DFT_RTOL[method, dtype], err.max()


def test_dft_power_refuses_unknown_methods() -> None:
    g = of.GraphBuilder()
    with pytest.raises(ParameterError, match="unknown DFT method 'fft'"):
        of.dft_power(g, "x", n_fft=8, method="fft")
    with pytest.raises(ParameterError, match="float32 or float64"):
        of.dft_power(g, "x", n_fft=8, dtype=np.float16)


@pytest.mark.parametrize("mask_type", [None, "float", "bool"])
@pytest.mark.parametrize("per_block", [False, True])
def test_pool_equals_numpy(mask_type: str | None, per_block: bool,
                           rng: np.random.Generator) -> None:
    stats = {"a": ("std", "max"), "b": ("mean", "min", "std")} if per_block else (
        "mean", "std", "min", "max")
    a = rng.standard_normal((50, 3)).astype(np.float32) * 10
    b = rng.standard_normal((50, 2)).astype(np.float32)
    keep = rng.random((50, 1)) < 0.6
    types = {"mask": TensorProto.BOOL if mask_type == "bool" else TensorProto.FLOAT}

    def build(g, a_name, b_name, *mask_name):
        return of.pool(g, {"a": a_name, "b": b_name}, order=("b", "a"), stats=stats,
                       mask=mask_name[0] if mask_name else None)

    inputs = {"a": [None, 3], "b": [None, 2]}
    feeds = {"a": a, "b": b}
    if mask_type is not None:
        inputs["mask"] = [None, 1]
        feeds["mask"] = keep if mask_type == "bool" else keep.astype(np.float32)
    (got,) = session(stage_model(build, inputs, types=types)).run(None, feeds)
    rows = slice(None) if mask_type is None else keep[:, 0]
    ref = np.concatenate([getattr(np, stat)(M[rows], axis=0) for name, M in (("b", b), ("a", a))
                          for stat in (stats[name] if per_block else stats)])
    assert got.shape == (1, len(ref))
    np.testing.assert_allclose(got[0], ref, rtol=1e-5, atol=1e-5)


# -- the level stages --------------------------------------------------------------------------


def _speech_in_silence(signal, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """Speech-like vibrato between stretches of faint noise: 0.5 s, 1.5 s, 0.5 s (as in
    test_level.py): the active frames are the voiced ones."""
    rng = np.random.default_rng(seed)
    voice = signal("vibrato", sr, duration=1.5, seed=seed)
    quiet = 1e-4 * rng.standard_normal(sr // 2).astype(np.float32)
    return np.concatenate([quiet, voice, quiet]).astype(np.float32)


def _clip(signal, kind: str, sr: int, duration: float = 1.3, seed: int = 3) -> np.ndarray:
    """The conftest signals, plus "speech in silence" and "steady tone" (every frame active)."""
    if kind == "speech in silence":
        return _speech_in_silence(signal, sr, seed)
    if kind == "steady tone":
        return signal("sine", sr, duration=duration, seed=seed)
    return signal(kind, sr, duration=duration, seed=seed)


LEVEL_KINDS = ("speech in silence", "steady tone", "noise", "chirp", "silence")


@pytest.mark.parametrize("kind", LEVEL_KINDS)
@pytest.mark.parametrize("n_fft", [1024, 400, 257])
def test_rms_and_energy_equal_numpy(signal, kind: str, n_fft: int) -> None:
    from ser_edge import level

    y = _clip(signal, kind, 16000)
    S = power_spectrogram(y, n_fft=n_fft, hop_length=n_fft // 4)
    model = stage_model(lambda g, p: of.rms(g, p, n_fft=n_fft), {"p": [None, S.shape[0]]})
    (r,) = session(model).run(None, {"p": np.ascontiguousarray(S.T)})
    ref = level.rms(S=S, frame_length=n_fft)[0]
    # float32 sums of up to 513 bins in another order (numpy adds row by row, MatMul makes a dot
    # product). Measured against a float64 sum: numpy's 1.5e-6 at most, the graph's 7e-7.
    exact = level.rms(S=S.astype(np.float64), frame_length=n_fft)[0]
    assert np.all(np.abs(r[:, 0] - exact) <= 1e-6 * exact)
    np.testing.assert_allclose(r[:, 0], ref, rtol=3e-6, atol=0)
    model = stage_model(lambda g, x: of.energy_db(g, x), {"r": [None, 1]},
                        out_type=TensorProto.DOUBLE)
    (e,) = session(model).run(None, {"r": ref[:, None]})
    assert e.dtype == np.float64
    # ln times 20 / ln 10 against log10: a few units in the last place of float64.
    np.testing.assert_allclose(e[:, 0], level.energy_db(ref), rtol=1e-14, atol=1e-12)


@pytest.mark.parametrize("q", [10.0, 0.0, 35.0, 50.0, 95.0, 100.0])
def test_percentile_equals_numpy_bit_for_bit(q: float, rng: np.random.Generator) -> None:
    model = stage_model(lambda g, x: of.percentile(g, x, q=q), {"x": [None]}, output_rank=0,
                        types={"x": TensorProto.DOUBLE}, out_type=TensorProto.DOUBLE)
    s = session(model)
    for n in [*range(1, 24), 31, 97, 400, 1001]:
        x = np.round(rng.normal(-40, 15, n), 1)  # rounded: ties, as digital silence makes them
        (got,) = s.run(None, {"x": x})
        assert got == np.percentile(x, q), (n, got, np.percentile(x, q))


def _energies(signal, kind: str) -> np.ndarray:
    from ser_edge import level

    S = power_spectrogram(_clip(signal, kind, 16000), n_fft=1024, hop_length=256)
    return level.energy_db(level.rms(S=S, frame_length=1024)[0])


@pytest.mark.parametrize(("range_db", "floor_db", "floor_range_db"),
                         [(40.0, 6.0, None), (25.0, 3.0, None), (60.0, 12.0, None),
                          (25.0, 6.0, 40.0), (40.0, 6.0, 10.0)])
def test_active_frames_equal_numpy(signal, range_db: float, floor_db: float,
                                   floor_range_db: float | None,
                                   rng: np.random.Generator) -> None:
    from ser_edge import level

    model = stage_model(
        lambda g, e: of.active_frames(g, e, range_db=range_db, floor_db=floor_db,
                                      floor_range_db=floor_range_db),
        {"e": [None, 1]}, types={"e": TensorProto.DOUBLE}, out_type=TensorProto.BOOL)
    s = session(model)
    cases = {kind: _energies(signal, kind) for kind in LEVEL_KINDS}
    cases["flat, wobbling by 1e-6 dB"] = -30.0 + 1e-6 * rng.standard_normal(50)
    cases["one frame"] = np.array([-12.0])
    cases["two frames"] = np.array([-80.0, -12.0])
    cases["random"] = rng.normal(-45, 20, 333)
    cases["digital silence around"] = np.r_[[-200.0] * 40, rng.normal(-45, 20, 100), [-200.0] * 40]
    for name, e in cases.items():
        (got,) = s.run(None, {"e": e[:, None]})
        ref = level.active_frames(e, range_db=range_db, floor_db=floor_db,
                                  floor_range_db=floor_range_db)
        np.testing.assert_array_equal(got[:, 0], ref, err_msg=name)
    # The cases cover both outcomes: a steady tone is active throughout, the silences around
    # the voice are not.
    assert level.active_frames(cases["steady tone"]).all()
    speech = level.active_frames(cases["speech in silence"])
    assert 0.4 < speech.mean() < 0.8


def test_level_gain_equals_numpy(signal) -> None:
    from ser_edge import level

    model = stage_model(lambda g, r, m: of.level_gain(g, r, m, level_db=-23.0),
                        {"r": [None, 1], "m": [None, 1]}, output_rank=1,
                        types={"m": TensorProto.BOOL})
    s = session(model)
    for kind in LEVEL_KINDS:
        S = power_spectrogram(_clip(signal, kind, 16000), n_fft=1024, hop_length=256)
        r = level.rms(S=S, frame_length=1024)[0]
        mask = level.active_frames(level.energy_db(r))
        (got,) = s.run(None, {"r": r[:, None], "m": mask[:, None]})
        # Rounded to float32 as feature_matrices rounds it before multiplying.
        assert got.dtype == np.float32 and got.shape == (1,)
        assert got[0] == np.float32(level.level_gain(r, mask, -23.0)), kind
    (silent,) = s.run(None, {"r": np.zeros((5, 1), np.float32), "m": np.ones((5, 1), bool)})
    assert silent[0] == 1.0  # digital silence has no level to fix


@pytest.mark.parametrize("width", [3, 5, 9, 11])
def test_delta_equals_numpy(width: int, rng: np.random.Generator) -> None:
    from ser_edge.features import delta

    s = session(stage_model(lambda g, m: of.delta(g, m, width=width), {"m": [None, 7]}))
    for n in (width, width + 1, 2 * width, 200):
        M = (rng.standard_normal((n, 7)) * 30).astype(np.float32)
        (got,) = s.run(None, {"m": M})
        ref = delta(np.ascontiguousarray(M.T), width=width).T
        assert got.shape == M.shape and got.dtype == np.float32
        # float64 sums in another order, rounded to float32: equal or one unit apart.
        np.testing.assert_allclose(got, ref, rtol=2e-7, atol=1e-6, err_msg=f"n={n}")
    # Fewer frames than the width: numpy refuses; the graph cannot, so it gives NaN throughout.
    for n in (1, width - 1):
        (got,) = s.run(None, {"m": np.ones((n, 7), np.float32)})
        assert got.shape == (n, 7) and np.isnan(got).all()
    with pytest.raises(ParameterError, match="odd integer"):
        of.delta(of.GraphBuilder(), "m", width=4)


# -- the whole feature graph -------------------------------------------------------------------

CONFIGS = {
    "bundled": FeatureConfig(),
    "mel power, four stats": FeatureConfig(features=("mel",), mel_db=False,
                                           stats=("mean", "std", "min", "max")),
    "htk, band-limited, 24 chroma, librosa's chroma floor": FeatureConfig(
        features=("chroma", "mfcc"), n_chroma=24, chroma_threshold=None, n_mfcc=13, n_mels=40,
        fmin=50.0, fmax=7000.0, htk=True, stats=("max", "mean")),
    "22050 Hz, n_fft 2048, tuned": FeatureConfig(sr=22050, n_fft=2048, hop_length=512,
                                                 tuning=0.25, n_mels=64),
    "8 kHz, hop not dividing n_fft": FeatureConfig(sr=8000, n_fft=400, hop_length=160,
                                                   n_mels=40, n_mfcc=20),
    # The level options, one at a time, then all together.
    "top_db 50": FeatureConfig(top_db=50.0),
    "no top_db, mel power": FeatureConfig(features=("mfcc", "mel"), top_db=None, mel_db=False),
    "level -23 dBFS": FeatureConfig(level_db=-23.0),
    "active frames, own thresholds, four stats": FeatureConfig(
        frames="active", active_range_db=30.0, active_floor_db=3.0,
        stats=("mean", "std", "min", "max")),
    "MFCC deltas of width 5, per-block stats": FeatureConfig(
        features=("mfcc_delta", "chroma", "mfcc"), delta_width=5, n_mfcc=20,
        stats={"mfcc_delta": ("mean", "std"), "chroma": ("max",), "mfcc": ("min", "std")}),
    "robust: all together": FeatureConfig(
        features=("mfcc", "chroma", "mel", "mfcc_delta"),
        stats={"mfcc": ("mean", "std"), "chroma": ("mean", "std"), "mel": ("std",),
               "mfcc_delta": ("std",)},
        top_db=60.0, level_db=-20.0, frames="active"),
    "robust, the noise floor of the frames within 40 dB": FeatureConfig(
        features=("mfcc", "chroma", "mel", "mfcc_delta"),
        stats={"mfcc": ("mean", "std"), "chroma": ("mean", "std"), "mel": ("std",),
               "mfcc_delta": ("std",)},
        top_db=60.0, level_db=-20.0, frames="active", active_range_db=25.0,
        active_floor_range_db=40.0),
    "robust at 22050 Hz, n_fft 2048, odd hop": FeatureConfig(
        sr=22050, n_fft=2048, hop_length=500, n_mels=64, tuning=0.25,
        features=("mfcc_delta", "mel"), stats={"mfcc_delta": ("std", "max"), "mel": ("mean",)},
        top_db=70.0, level_db=-30.0, frames="active", delta_width=7, active_floor_db=10.0),
    "robust, the digital silence at the ends trimmed": FeatureConfig(
        features=("mfcc", "chroma", "mel", "mfcc_delta"),
        stats={"mfcc": ("mean", "std"), "chroma": ("mean", "std"), "mel": ("std",),
               "mfcc_delta": ("std",)},
        top_db=60.0, level_db=-20.0, frames="active", active_range_db=25.0,
        active_floor_range_db=40.0, trim_zeros=True),
    "robust, the quiet ends trimmed": FeatureConfig(
        features=("mfcc", "chroma", "mel", "mfcc_delta"),
        stats={"mfcc": ("mean", "std"), "chroma": ("mean", "std"), "mel": ("std",),
               "mfcc_delta": ("std",)},
        top_db=60.0, level_db=-20.0, frames="active", trim_top_db=25.0),
    "robust, trimmed and aligned to the peak": FeatureConfig(
        features=("mfcc", "chroma", "mel", "mfcc_delta"),
        stats={"mfcc": ("mean", "std"), "chroma": ("mean", "std"), "mel": ("std",),
               "mfcc_delta": ("std",)},
        top_db=60.0, level_db=-20.0, frames="active", active_range_db=25.0,
        active_floor_range_db=40.0, trim_zeros=True, align_peak=True),
    # Per-utterance normalisation (frame networks' input), over the active frames and all.
    "meanvar over active frames": FeatureConfig(
        features=("mel", "mfcc_delta"), n_mels=64, n_mfcc=13, level_db=-20.0, frames="active",
        norm="meanvar", stats=("std", "max")),
    "mean over all frames": FeatureConfig(features=("mfcc", "chroma"), norm="mean",
                                          stats=("std", "min")),
}
ROBUST = CONFIGS["robust: all together"]
TRIMMING_NAME = "robust, the digital silence at the ends trimmed"
TRIMMING = CONFIGS[TRIMMING_NAME]


def _block_tolerance(ref: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Per entry: 1e-5 of the largest |value| of its block, all statistics (one unit: dB for MFCC
    and dB mel), and at least 1e-3 dB for a block in dB. Measured on real speech: 2.3e-6 at
    most, for the mel dB means; float32 sums over frames set it. In digital silence the MFCCs
    past c0 are rounding noise of the DCT of a constant (c0 = -632 dB, the rest 5e-6) and differ
    by that much; so are a dB block's standard deviations (numpy's float32 mean of a constant
    -100 dB is one unit in the last place off: std 7.6e-6 where the graph's is 0) and the MFCC
    deltas (numpy's matrix product rounds some frames' MFCCs differently around c0: deltas up
    to 1e-4 where the graph's are 0). The floor is what a block of means would give (its
    values' scale, 100 dB), for blocks that pool only spreads or slopes."""
    in_db = {"mfcc", "mfcc_delta"} | ({"mel"} if config.mel_db else set())
    tol, start = np.empty(config.n_features), 0
    for name, rows in config.block_sizes.items():
        width = rows * len(config.stats_of(name))
        floor = 100.0 if name in in_db else 1e-3
        tol[start:start + width] = 1e-5 * max(np.abs(ref[start:start + width]).max(), floor)
        start += width
    return tol


def _normalised_tolerance(y: np.ndarray, ref: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """:func:`_block_tolerance`, for a per-utterance normalised vector: of the scale before the
    normalisation. Subtracting a row's mean leaves the float32 rounding of its values: in digital
    silence MFCC c0 is about -1131 dB at top_db 80 and numpy's matrix product rounds it 1.4e-3
    apart between frames (one part in 1e6), where the graph's frames are equal (0 after the
    mean is taken out)."""
    raw = feature_vector(y, sr=config.sr, config=dataclasses.replace(config, norm=None))
    return np.maximum(_block_tolerance(ref, config), _block_tolerance(raw, config))


_SESSIONS: dict[str, ort.InferenceSession] = {}


def _graph(name: str) -> ort.InferenceSession:
    """The feature graph of ``CONFIGS[name]``, built once per test run."""
    if name not in _SESSIONS:
        _SESSIONS[name] = session(feature_model(CONFIGS[name]))
    return _SESSIONS[name]


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("kind", ["vibrato", "noise", "chirp", "silence", "speech in silence",
                                  "steady tone"])
def test_feature_graph_equals_feature_vector(signal, name: str, kind: str) -> None:
    config = CONFIGS[name]
    y = _clip(signal, kind, config.sr)
    (got,) = _graph(name).run(None, {"waveform": y[None]})
    ref = feature_vector(y, sr=config.sr, config=config)
    assert got.shape == (1, config.n_features)
    tol = (_block_tolerance(ref, config) if config.norm is None
           else _normalised_tolerance(y, ref, config))
    assert np.all(np.abs(got[0] - ref) <= tol), (
        feature_differences(got, ref[None], config))


@pytest.mark.parametrize("name", ["bundled", "robust: all together"])
def test_frame_matrix_equals_feature_matrices(signal, name: str) -> None:
    # With frames="active", the matrix has the active frames' columns only, as numpy's.
    config = CONFIGS[name]
    y = _speech_in_silence(signal, config.sr, seed=4)
    (got,) = session(feature_model(config, output="frames")).run(None, {"waveform": y[None]})
    blocks = feature_matrices(y, sr=config.sr, config=config)
    ref = np.concatenate([blocks[name] for name in config.features])
    assert got.shape == (1,) + ref.shape
    for name, M in zip(config.features, np.split(got[0], np.cumsum(
            list(config.block_sizes.values()))[:-1]), strict=True):
        np.testing.assert_allclose(M, blocks[name], atol=2e-5 * np.abs(blocks[name]).max(),
                                   err_msg=name)


@pytest.mark.parametrize("output", ["vector", "frames"])
def test_feature_graph_trims_digital_silence(signal, output: str) -> None:
    """Exact zeros around a clip (and only before it, or after it): the graph's vector and frame
    matrix are numpy's, which are the clip's without them."""
    config = TRIMMING
    sess = _graph(TRIMMING_NAME) if output == "vector" else session(
        feature_model(config, output="frames"))
    y = _speech_in_silence(signal, config.sr, seed=5)
    silence = np.zeros(int(0.6 * config.sr), np.float32)
    for z in (np.concatenate([silence, y, silence]), np.concatenate([silence, y]),
              np.concatenate([y, silence[:333]])):
        (got,) = sess.run(None, {"waveform": z[None]})
        if output == "vector":
            ref = feature_vector(z, sr=config.sr, config=config)
            np.testing.assert_array_equal(ref, feature_vector(y, sr=config.sr, config=config))
            assert np.all(np.abs(got[0] - ref) <= _block_tolerance(ref, config)), (
                feature_differences(got, ref[None], config))
        else:
            blocks = feature_matrices(z, sr=config.sr, config=config)
            ref = np.concatenate([blocks[name] for name in config.features])
            assert got.shape == (1,) + ref.shape  # the same active frames
            np.testing.assert_allclose(got[0], ref, atol=2e-5 * np.abs(ref).max())


# -- what cannot be fused ----------------------------------------------------------------------


def test_every_feature_config_field_is_implemented_or_refused() -> None:
    # A new FeatureConfig field fails here until export/fuse.py decides about it.
    assert [f.name for f in dataclasses.fields(FeatureConfig)] == list(IMPLEMENTED)


def test_estimated_tuning_is_refused() -> None:
    with pytest.raises(ParameterError, match=r"FeatureConfig\.tuning: tuning=None"):
        check_fusable(FeatureConfig(tuning=None))


def test_a_field_the_graph_does_not_know_is_refused_by_name() -> None:
    @dataclasses.dataclass(frozen=True)
    class Later(FeatureConfig):
        level_dbfs: float | None = None

    with pytest.raises(ParameterError, match=r"FeatureConfig\.level_dbfs=None is not implemented"):
        check_fusable(Later())
    with pytest.raises(ParameterError, match=r"level_dbfs=-23\.0"):
        feature_model(Later(level_dbfs=-23.0))


# -- fusing a model ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fused_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not BUNDLED_MODEL.is_file():
        pytest.skip(f"the bundled model {BUNDLED_MODEL} is not there")
    out = tmp_path_factory.mktemp("fused") / "bundled-waveform.onnx"
    fuse_file(BUNDLED_MODEL, out)
    return out


@pytest.fixture(scope="module")
def fused(fused_path: Path) -> Classifier:
    return Classifier(fused_path)


@pytest.fixture(scope="module")
def numpy_clf() -> Classifier:
    return Classifier(BUNDLED_MODEL)


def test_fused_model_io_metadata_and_size(fused_path: Path) -> None:
    source = onnx.load(str(BUNDLED_MODEL))
    model = onnx.load(str(fused_path))
    (inp,) = model.graph.input
    assert inp.name == "waveform" and inp.type.tensor_type.elem_type == TensorProto.FLOAT
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_value == 1 and dims[1].dim_param == "n_samples"
    assert [o.name for o in model.graph.output] == [o.name for o in source.graph.output]
    meta = {p.key: p.value for p in model.metadata_props}
    for p in source.metadata_props:
        assert meta[p.key] == p.value
    assert json.loads(meta["input_kind"]) == "waveform"
    graph = json.loads(meta[GRAPH_KEY])
    assert graph["dft"] == "fft2" and graph["dft_dtype"] == "float32"
    assert graph["source_sha256"] == hashlib.sha256(BUNDLED_MODEL.read_bytes()).hexdigest()
    assert graph["check"]["max_probability_difference"] <= 1e-3
    assert {o.domain: o.version for o in model.opset_import}[""] >= 17
    assert fused_path.stat().st_size <= 3 * 1024 * 1024  # the target


def test_classifier_reads_the_input_kind(fused: Classifier, numpy_clf: Classifier) -> None:
    assert fused.input_kind == "waveform" and numpy_clf.input_kind == "features"
    assert fused.labels == numpy_clf.labels
    assert fused.feature_config == numpy_clf.feature_config
    assert "input_kind='waveform'" in repr(fused)


@pytest.mark.parametrize("kind", ["vibrato", "noise", "chirp"])
@pytest.mark.parametrize(("sr", "channels"), [(16000, 1), (48000, 2), (22050, 1)])
def test_fused_predict_equals_numpy_predict(signal, fused: Classifier, numpy_clf: Classifier,
                                            kind: str, sr: int, channels: int) -> None:
    y = np.stack([signal(kind, sr, duration=2.0, seed=s) for s in range(channels)])
    p, q = numpy_clf.predict(y, sr), fused.predict(y, sr)
    assert q.label == p.label
    assert max(abs(p.probabilities[k] - q.probabilities[k]) for k in p.probabilities) <= 1e-3
    assert q.duration_s == p.duration_s and q.sample_rate == sr


def test_fused_classify_file_and_its_errors(signal, fused: Classifier, numpy_clf: Classifier,
                                            tmp_path: Path) -> None:
    sf = pytest.importorskip("soundfile")
    y = signal("vibrato", 44100, duration=1.5, seed=5)
    sf.write(tmp_path / "clip.wav", y, 44100)
    # A steady vibrato is no speech to voice activity detection: the two paths are compared on it
    # without it (the detector is the same for both; see test_fused_model_streams below).
    p = numpy_clf.classify(tmp_path / "clip.wav", vad=False)
    q = fused.classify(tmp_path / "clip.wav", vad=False)
    assert (q.label, q.sample_rate, q.path) == (p.label, 44100, str(tmp_path / "clip.wav"))
    assert max(abs(p.probabilities[k] - q.probabilities[k]) for k in p.probabilities) <= 1e-3
    with pytest.raises(AudioError, match="too short"):
        fused.predict(y[:500], 44100)
    with pytest.raises(AudioError, match="digital silence"):
        fused.predict(np.zeros(44100, np.float32), 44100)
    with pytest.raises(AudioError, match="NaN"):
        fused.predict(np.full(44100, np.nan, np.float32), 44100)
    # The numpy features of a waveform model's configuration are still there.
    np.testing.assert_array_equal(fused.features(tmp_path / "clip.wav"),
                                  numpy_clf.features(tmp_path / "clip.wav"))


def _syllables(sr: int, seconds: float, seed: int) -> np.ndarray:
    """Voiced syllables with a gliding pitch, in bursts of 1.5 s between 0.5 s of quiet hiss:
    speech to voice activity detection."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    phase = 2 * np.pi * np.cumsum(150 + 30 * np.sin(2 * np.pi * 1.3 * t)) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 11))
    envelope = np.sqrt(np.clip(np.sin(2 * np.pi * 4 * t), 0, None)) * (t % 2.0 < 1.5)
    return (0.2 * voice * envelope + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def test_fused_model_streams(fused: Classifier, numpy_clf: Classifier, tmp_path: Path) -> None:
    """A waveform model takes the path every window takes (Classifier._predict_model_rate):
    StreamingClassifier, timeline and classify with voice activity detection give the numpy
    model's results, and noise is 'no speech detected' for both."""
    sf = pytest.importorskip("soundfile")
    from ser_edge import NoSpeechError, StreamingClassifier
    from ser_edge.timeline import timeline

    y = _syllables(22050, 6.0, seed=3)
    windows = []
    for clf in (numpy_clf, fused):
        stream = StreamingClassifier(clf, sr=22050, window_s=2.0, hop_s=1.0)
        windows.append([*stream.push(y[:40000]), *stream.push(y[40000:]), *stream.flush()])
    a, b = windows
    assert len(a) == len(b) >= 5 and any(w.speech for w in a)
    for u, v in zip(a, b, strict=True):
        assert (u.start_s, u.end_s, u.speech, u.label) == (v.start_s, v.end_s, v.speech, v.label)
        if u.speech:
            worst = max(abs(u.probabilities[k] - v.probabilities[k]) for k in u.probabilities)
            assert worst <= 1e-3, (u.start_s, worst)
    path = tmp_path / "talk.wav"
    sf.write(path, y, 22050)
    s, t = list(timeline(path, numpy_clf)), list(timeline(path, fused))
    assert [(x.start_s, x.end_s, x.label) for x in s] == [(x.start_s, x.end_s, x.label) for x in t]
    assert len(s) >= 2
    assert fused.classify(path).label == numpy_clf.classify(path).label
    noise = tmp_path / "noise.wav"
    sf.write(noise, 0.05 * np.random.default_rng(0).standard_normal(44100), 22050)
    for clf in (numpy_clf, fused):
        with pytest.raises(NoSpeechError, match=r"noise\.wav: no speech detected"):
            clf.classify(noise)


def test_info_describes_the_waveform_input(fused_path: Path) -> None:
    from typer.testing import CliRunner

    from ser_edge.cli import app

    result = CliRunner().invoke(app, ["info", "--model", str(fused_path)])
    assert result.exit_code == 0, result.output
    assert "input:     waveform, float32 (1, n_samples), mono at 16000 Hz" in result.output


def test_an_unknown_input_kind_is_a_model_error(fused_path: Path, tmp_path: Path) -> None:
    model = onnx.load(str(fused_path))
    for p in model.metadata_props:
        if p.key == "input_kind":
            p.value = '"spectrogram"'
    onnx.save_model(model, str(tmp_path / "m.onnx"))
    with pytest.raises(ModelError, match=r"'input_kind' metadata 'spectrogram' is not one of"):
        Classifier(tmp_path / "m.onnx")
    # A waveform graph labelled as a frame model: its input's shape says otherwise.
    for p in model.metadata_props:
        if p.key == "input_kind":
            p.value = '"frames"'
    onnx.save_model(model, str(tmp_path / "f.onnx"))
    with pytest.raises(ModelError, match=r"a frame model's input has shape \[1, 'n_samples'\]"):
        Classifier(tmp_path / "f.onnx")


def test_fuse_refuses_what_it_cannot_fuse(fused_path: Path, build_model, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="already 'waveform'"):
        fuse(fused_path)
    estimated = build_model(tmp_path / "estimated.onnx", config=FeatureConfig(tuning=None))
    with pytest.raises(ParameterError, match=r"FeatureConfig\.tuning"):
        fuse(estimated)
    model = onnx.load(str(estimated))
    kept = [p for p in model.metadata_props if p.key != "feature_config"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    with pytest.raises(ModelError, match="no 'feature_config' metadata"):
        fuse(model)
    with pytest.raises(ModelError, match="cannot read model"):
        fuse(tmp_path / "missing.onnx")


def test_fuse_refuses_an_operator_whose_definition_changed(build_model,
                                                           tmp_path: Path) -> None:
    model = onnx.load(str(build_model(tmp_path / "m.onnx")))
    for o in model.opset_import:
        if o.domain == "":
            o.version = 12  # Cast and Softmax changed at opset 13
    with pytest.raises(ModelError, match="node is opset 12, whose definition changed by opset 17"):
        fuse(model, check=False)


def test_fuse_a_model_of_another_configuration(signal, build_model, tmp_path: Path) -> None:
    config = FeatureConfig(features=("mel", "chroma"), n_fft=512, hop_length=128, n_mels=64,
                           stats=("mean", "std", "min", "max"))
    src = build_model(tmp_path / "other.onnx", config=config, seed=3)
    fuse_file(src, tmp_path / "other-waveform.onnx")
    a, b = Classifier(src), Classifier(tmp_path / "other-waveform.onnx")
    for kind in ("vibrato", "chirp"):
        y = signal(kind, 16000, duration=1.0, seed=6)
        p, q = a.predict(y, 16000), b.predict(y, 16000)
        assert p.label == q.label
        assert max(abs(p.probabilities[k] - q.probabilities[k]) for k in p.probabilities) <= 1e-3


# -- a model of the robust configuration -------------------------------------------------------


@pytest.fixture(scope="module")
def robust_pair(signal, tmp_path_factory: pytest.TempPathFactory) -> tuple[Classifier, Classifier]:
    """A model of ROBUST's features (level, active frames, top_db, deltas, per-block stats) and
    its fused model. Fitted on the features of seeded synthetic clips at random gains, so that
    its scaler sees real feature values and its probabilities are not saturated."""
    pytest.importorskip("sklearn")
    pytest.importorskip("skl2onnx")
    from export.onnx_export import export_onnx
    from export.train import fit_pipeline

    rng = np.random.default_rng(14)
    emotions = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    kinds = ("vibrato", "noise", "chirp", "steady tone", "speech in silence")
    X, labels = [], []
    for i in range(48):
        y = _clip(signal, kinds[i % len(kinds)], 16000, duration=0.8 + 0.1 * (i % 7), seed=i)
        y = (y * rng.uniform(0.02, 1.0)).astype(np.float32)
        X.append(feature_vector(y, sr=16000, config=ROBUST))
        labels.append(emotions[(i // len(kinds) + i) % len(emotions)])
    pipeline = fit_pipeline(np.stack(X), np.array(labels),
                            params={"hidden_layer_sizes": (32,), "batch_size": 16})
    folder = tmp_path_factory.mktemp("robust")
    export_onnx(pipeline, feature_config=ROBUST, labels=list(pipeline.classes_),
                training={"corpora": {"synthetic": len(X)}}, metrics={"speaker_independent": {}},
                path=folder / "robust.onnx")
    fuse_file(folder / "robust.onnx", folder / "robust-waveform.onnx")  # checks it, too
    return Classifier(folder / "robust.onnx"), Classifier(folder / "robust-waveform.onnx")


@pytest.mark.parametrize("kind", ["speech in silence", "vibrato", "steady tone", "noise",
                                  "chirp"])
@pytest.mark.parametrize(("sr", "channels"), [(16000, 1), (48000, 2)])
def test_fused_robust_model_equals_numpy(signal, robust_pair, kind: str, sr: int,
                                         channels: int) -> None:
    numpy_clf, fused_clf = robust_pair
    y = np.stack([_clip(signal, kind, sr, duration=2.0, seed=s) for s in range(channels)])
    p, q = numpy_clf.predict(y, sr), fused_clf.predict(y, sr)
    assert q.label == p.label
    assert max(abs(p.probabilities[k] - q.probabilities[k]) for k in p.probabilities) <= 1e-3
    assert 0.2 < max(p.probabilities.values()) < 0.999  # not saturated: the check means something


def test_fused_robust_model_ignores_a_gain(signal, robust_pair) -> None:
    # The graph's level normalisation removes a gain as numpy's does (to float rounding).
    numpy_clf, fused_clf = robust_pair
    y = _speech_in_silence(signal, 16000, seed=8)
    for clf in (numpy_clf, fused_clf):
        p = clf.predict(y, 16000)
        for gain in (0.05, 3.0):
            q = clf.predict((gain * y).astype(np.float32), 16000)
            assert q.label == p.label
            assert max(abs(p.probabilities[k] - q.probabilities[k]) for k in p.probabilities) < 1e-4


def test_too_short_for_the_deltas(signal, robust_pair, numpy_clf: Classifier) -> None:
    """Fewer frames than the deltas' width: the same AudioError from both models (Classifier
    refuses the clip before either computes anything); the fused graph run directly gives NaN."""
    from ser_edge import StreamingClassifier

    numpy_clf_robust, fused_clf = robust_pair
    assert numpy_clf_robust.min_samples == fused_clf.min_samples == 2048  # 9 frames, hop 256
    deltas = "mfcc_delta" in numpy_clf.feature_config.features  # the bundled model's
    assert numpy_clf.min_samples == (2048 if deltas else 1024)
    y = signal("vibrato", 16000, duration=0.1, seed=9)  # 1600 samples: 7 frames
    message = (r"too short: 100 ms, fewer than the 9 analysis frames the MFCC deltas need "
               r"\(2048 samples at 16000 Hz = 128 ms\)")
    for clf in robust_pair:
        with pytest.raises(AudioError, match=message):
            clf.predict(y, 16000)
        with pytest.raises(AudioError, match="too short: 100 ms"):
            clf.predict(signal("vibrato", 48000, duration=0.1, seed=9), 48000)
        with pytest.raises(ParameterError, match="shorter than the 9 analysis frames"):
            StreamingClassifier(clf, sr=16000, window_s=0.1)
    y = signal("vibrato", 16000, duration=2048 / 16000, seed=9)  # just enough
    p, q = numpy_clf_robust.predict(y, 16000), fused_clf.predict(y, 16000)
    assert max(abs(p.probabilities[k] - q.probabilities[k]) for k in p.probabilities) <= 1e-3
    (probabilities,) = fused_clf._session.run(["probabilities"], {"waveform": y[None, :1600]})
    assert np.isnan(probabilities).all()


def test_fuse_checks_on_signals_long_enough_for_the_deltas(build_model, tmp_path: Path) -> None:
    # delta_width 41 needs 41 frames (0.64 s): the 0.5 s check signals are left out, not an error.
    config = FeatureConfig(features=("mfcc_delta",), n_mfcc=13, n_mels=40, delta_width=41)
    fused_model = fuse(build_model(tmp_path / "wide.onnx", config=config))
    graph = json.loads({p.key: p.value for p in fused_model.metadata_props}[GRAPH_KEY])
    assert graph["check"]["signals"] == 6  # 1.3 s and 3 s: voice, noise, chirp
    assert Classifier(build_model(tmp_path / "w.onnx", config=config)).min_samples == 40 * 256


def test_export_fuse_command(tmp_path: Path, build_model) -> None:
    from typer.testing import CliRunner

    from export.__main__ import app

    if not BUNDLED_MODEL.is_file():
        pytest.skip("no bundled model")
    out = tmp_path / "f.onnx"
    result = CliRunner().invoke(app, ["fuse", str(BUNDLED_MODEL), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output and "input 'waveform'" in result.output
    assert Classifier(out).input_kind == "waveform"
    estimated = build_model(tmp_path / "estimated.onnx", config=FeatureConfig(tuning=None))
    result = CliRunner().invoke(app, ["fuse", str(estimated), "--out", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2
    assert "FeatureConfig.tuning" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.onnx").exists()


# -- a frame-level network ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def frame_pair(frame_net) -> tuple[Classifier, Classifier]:
    """The tiny frame network (conftest ``frame_net``) and its fused model, as Classifiers."""
    source, fused_file = frame_net
    return Classifier(source), Classifier(fused_file)


def _burst(sr: int = 16000) -> np.ndarray:
    """One second of faint noise with a 20 ms tone burst: long enough in all, but only a few
    active frames (as in test_nets.py)."""
    y = 1e-4 * np.random.default_rng(0).standard_normal(sr).astype(np.float32)
    y[sr // 2: sr // 2 + sr // 50] += 0.5 * np.sin(np.arange(sr // 50) * 2 * np.pi * 300 / sr)
    return y


def test_fused_frame_network_io_and_metadata(frame_net) -> None:
    from export.fuse import FRAME_COUNT

    source_path, fused_path = frame_net
    source, model = onnx.load(str(source_path)), onnx.load(str(fused_path))
    (inp,) = model.graph.input
    assert inp.name == "waveform" and [d.dim_param or d.dim_value
                                       for d in inp.type.tensor_type.shape.dim] == [1, "n_samples"]
    assert [o.name for o in model.graph.output] == ["label", "probabilities", FRAME_COUNT]
    meta = {p.key: p.value for p in model.metadata_props}
    for p in source.metadata_props:
        if p.key != "input_kind":
            assert meta[p.key] == p.value, p.key
    assert json.loads(meta["input_kind"]) == "waveform" and json.loads(meta["min_frames"]) == 16
    graph = json.loads(meta[GRAPH_KEY])
    assert graph["source_input_kind"] == "frames"
    assert graph["frame_count"] == {"output": FRAME_COUNT, "min_frames": 16}
    assert graph["source_sha256"] == hashlib.sha256(source_path.read_bytes()).hexdigest()
    assert graph["check"]["signals"] == 9 and graph["check"]["max_probability_difference"] <= 1e-3
    numpy_clf, fused = Classifier(source_path), Classifier(fused_path)
    assert (fused.input_kind, numpy_clf.input_kind) == ("waveform", "frames")
    assert fused.min_frames == numpy_clf.min_frames == 16  # the network's, over the deltas' 9
    assert fused.labels == numpy_clf.labels and fused.feature_config == numpy_clf.feature_config


@pytest.mark.parametrize("kind", ["speech in silence", "vibrato", "chirp", "noise"])
@pytest.mark.parametrize(("sr", "channels"), [(16000, 1), (48000, 2)])
def test_fused_frame_network_equals_the_frame_model(signal, frame_pair, kind: str, sr: int,
                                                    channels: int) -> None:
    numpy_clf, fused = frame_pair
    y = np.stack([_clip(signal, kind, sr, duration=2.0, seed=s) for s in range(channels)])
    p, q = numpy_clf.predict(y, sr), fused.predict(y, sr)
    assert q.label == p.label
    assert max(abs(p.probabilities[k] - q.probabilities[k]) for k in p.probabilities) <= 1e-3


def test_fused_frame_network_counts_the_frames_numpy_keeps(signal, frame_pair) -> None:
    """The graph's frame matrix is numpy's (active frames only, normalised, with deltas), and
    its n_frames output counts its columns."""
    from ser_edge.features import frame_matrix

    numpy_clf, fused = frame_pair
    config = numpy_clf.feature_config
    for y in (_speech_in_silence(signal, 16000, seed=2), signal("chirp", 16000, duration=1.7),
              _burst()):
        ref = frame_matrix(y, sr=16000, config=config)
        label, probabilities, n_frames = fused._session.run(None, {"waveform": y[None]})
        assert int(n_frames[0]) == ref.shape[1]
        (got,) = session(feature_model(config, output="frames")).run(None, {"waveform": y[None]})
        np.testing.assert_allclose(got[0], ref, atol=2e-5 * np.abs(ref).max())
        # Fewer frames than the network needs: NaN probabilities, not an answer from padding.
        assert np.isnan(probabilities).all() == (ref.shape[1] < 16)


def test_fused_frame_network_refuses_what_the_frame_model_refuses(signal, frame_pair,
                                                                  tmp_path: Path) -> None:
    """Too few active frames for the network, too few samples for the deltas: the same
    AudioError, from predict, classify (with and without voice activity detection) and a
    stream, for both models."""
    sf = pytest.importorskip("soundfile")
    from ser_edge import StreamingClassifier

    y = _burst()
    sf.write(tmp_path / "burst.wav", y, 16000)
    few = (r"too short: [1-9] active analysis frames, the model needs at least 16 "
           r"\(about 240 ms of sound\)")
    messages = []
    for clf in frame_pair:
        with pytest.raises(AudioError, match=few) as error:
            clf.predict(y, 16000)
        messages.append(str(error.value))
        for vad in (True, False):
            with pytest.raises(AudioError, match=rf"burst\.wav: {few}"):
                clf.classify(tmp_path / "burst.wav", vad=vad)
        with pytest.raises(AudioError, match="fewer than the 9 analysis frames the MFCC deltas"):
            clf.predict(y[:1600], 16000)
        stream = StreamingClassifier(clf, sr=16000, window_s=1.0, hop_s=1.0, vad=False)
        with pytest.raises(AudioError, match=few):
            [*stream.push(y), *stream.flush()]
    assert messages[0] == messages[1]


def test_a_long_file_is_refused_by_a_fused_frame_network_too(frame_pair, tmp_path: Path) -> None:
    sf = pytest.importorskip("soundfile")
    from ser_edge import model as model_module

    path = tmp_path / "long.wav"
    sf.write(path, 0.1 * np.sin(np.arange(16000 * 3) / 7).astype(np.float32), 16000)
    limit = model_module.FRAMES_MAX_SECONDS
    try:
        model_module.FRAMES_MAX_SECONDS = 2.0
        for clf in frame_pair:
            with pytest.raises(AudioError, match="too long for a frame-level network"):
                clf.classify(path, vad=False)
    finally:
        model_module.FRAMES_MAX_SECONDS = limit


def test_fuse_refuses_a_frame_network_that_does_not_fit(frame_net, tmp_path: Path) -> None:
    source_path, _ = frame_net
    model = onnx.load(str(source_path))
    for p in model.metadata_props:
        if p.key == "feature_config":
            p.value = FeatureConfig(features=("mel",), n_mels=40, frames="active").to_json()
    with pytest.raises(ModelError, match=r"input has shape \['batch', 45, 'n_frames'\], "
                                         r"expected \(N, 40, n_frames\)"):
        fuse(model, check=False)
    model = onnx.load(str(source_path))
    for p in model.metadata_props:
        if p.key == "min_frames":
            p.value = "0"
    with pytest.raises(ModelError, match="'min_frames' metadata must be a positive integer"):
        fuse(model, check=False)


def test_check_fused_catches_a_frame_network_that_differs(frame_net, signal) -> None:
    """A fused model whose frames are not numpy's (here: the active frames of another range)
    fails the check, naming the signal."""
    from export.fuse import check_fused

    source_path, _ = frame_net
    source = onnx.load(str(source_path))
    config = FeatureConfig.from_json({p.key: p.value for p in source.metadata_props}
                                     ["feature_config"])
    other = onnx.load(str(source_path))
    for p in other.metadata_props:
        if p.key == "feature_config":
            p.value = dataclasses.replace(config, active_range_db=10.0).to_json()
    wrong = fuse(other, check=False)
    y = _speech_in_silence(signal, 16000, seed=5)
    with pytest.raises(ModelError, match=r"counts \d+ frames of the speech signal, numpy \d+"):
        check_fused(wrong, source, config, signals=[("speech", y)])


def test_export_fuse_command_on_a_frame_network(frame_net, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from export.__main__ import app

    source_path, _ = frame_net
    out = tmp_path / "net-waveform.onnx"
    result = CliRunner().invoke(app, ["fuse", str(source_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "outputs label, probabilities, n_frames" in result.output
    assert Classifier(out).min_frames == 16


def test_fused_model_that_trims_quiet_ends_equals_numpy_on_padded_and_gated_clips(
        build_model, ravdess_dir: Path, tmp_path: Path, rng: np.random.Generator) -> None:
    """A model with trim_top_db, fused (fuse_file checks it on voice in quiet noise too): on
    real clips padded with digital silence or with noise under the threshold, and gated under
    it, the numpy runtime's label and probabilities, which are the clip's."""
    from ser_edge import audio

    src = build_model(tmp_path / "quiet.onnx", config=CONFIGS["robust, the quiet ends trimmed"],
                      seed=5)
    fuse_file(src, tmp_path / "quiet-waveform.onnx")
    numpy_clf, fused_clf = Classifier(src), Classifier(tmp_path / "quiet-waveform.onnx")
    assert fused_clf.feature_config.trim_top_db == 25.0 and fused_clf.input_kind == "waveform"
    for name in ["Actor_02/03-01-01-01-01-01-02.flac", "Actor_20/03-01-06-01-02-02-20.flac"]:
        y = audio.load(ravdess_dir / name, sr=16000)[0]
        threshold = float(np.abs(y).max()) * 10 ** (-25 / 20)
        hiss = (0.5 * threshold * rng.uniform(-1, 1, 9600)).astype(np.float32)
        gated = np.where(np.abs(y) < 0.5 * threshold, np.float32(0), y)
        loud = np.flatnonzero(np.abs(y) > threshold)
        gated[loud[0]:loud[-1] + 1] = y[loud[0]:loud[-1] + 1]  # the gate only where trimmed
        p = numpy_clf.predict(y, 16000)
        for z in (np.concatenate([np.zeros(9600, np.float32), y, np.zeros(9600, np.float32)]),
                  np.concatenate([hiss, y, hiss]), gated):
            assert numpy_clf.predict(z, 16000).probabilities == p.probabilities, name
            q = fused_clf.predict(z, 16000)
            assert q.label == p.label, name
            assert max(abs(p.probabilities[k] - q.probabilities[k]) for k in p.probabilities) \
                <= 1e-3, name


def test_fused_model_that_trims_equals_numpy_on_padded_clips(build_model, ravdess_dir: Path,
                                                              tmp_path: Path) -> None:
    """A model with trim_zeros, fused (fuse_file checks it on voice in digital silence too):
    on real clips padded with 0.6 s of exact zeros, the numpy runtime's label and
    probabilities, which are the unpadded clip's."""
    from ser_edge import audio

    src = build_model(tmp_path / "trim.onnx", config=TRIMMING, seed=4)
    fuse_file(src, tmp_path / "trim-waveform.onnx")
    numpy_clf, fused_clf = Classifier(src), Classifier(tmp_path / "trim-waveform.onnx")
    assert fused_clf.feature_config.trim_zeros and fused_clf.input_kind == "waveform"
    silence = np.zeros(int(0.6 * 16000), np.float32)
    clips = ["Actor_02/03-01-01-01-01-01-02.flac", "Actor_11/03-01-03-02-01-01-11.flac",
             "Actor_20/03-01-06-01-02-02-20.flac"]
    for name in clips:
        y = audio.load(ravdess_dir / name, sr=16000)[0]
        padded = np.concatenate([silence, y, silence])
        p = numpy_clf.predict(padded, 16000)
        assert p.probabilities == numpy_clf.predict(y, 16000).probabilities
        for z in (padded, y):
            q = fused_clf.predict(z, 16000)
            assert q.label == p.label, name
            assert max(abs(p.probabilities[k] - q.probabilities[k]) for k in p.probabilities) \
                <= 1e-3, name
