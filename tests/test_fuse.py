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
from ser_edge.dsp import power_spectrogram  # noqa: E402
from ser_edge.errors import AudioError, ModelError, ParameterError  # noqa: E402
from ser_edge.features import FeatureConfig, feature_matrices, feature_vector  # noqa: E402
from ser_edge.model import BUNDLED_MODEL, Classifier  # noqa: E402


def session(model) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def stage_model(build, inputs: dict[str, list], output_rank: int = 2):
    """A model of one stage: ``build(g, *input_names) -> output name``, float32 inputs."""
    g = of.GraphBuilder()
    out = build(g, *inputs)
    g.nodes.append(helper.make_node("Identity", [out], ["out"]))
    graph = helper.make_graph(
        g.nodes, "stage",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
         for name, shape in inputs.items()],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None] * output_rank)],
        g.initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", of.OPSET)])


def numpy_frames(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    padded = np.pad(y, n_fft // 2)
    n_frames = 1 + (len(padded) - n_fft) // hop
    return padded[np.arange(n_frames)[:, None] * hop + np.arange(n_fft)[None, :]]


# -- stages ------------------------------------------------------------------------------------


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


@pytest.mark.parametrize("masked", [False, True])
def test_pool_equals_numpy(masked: bool, rng: np.random.Generator) -> None:
    stats = ("mean", "std", "min", "max")
    a = rng.standard_normal((50, 3)).astype(np.float32) * 10
    b = rng.standard_normal((50, 2)).astype(np.float32)
    mask = (rng.random((50, 1)) < 0.6).astype(np.float32) if masked else None

    def build(g, a_name, b_name, *mask_name):
        return of.pool(g, {"a": a_name, "b": b_name}, order=("b", "a"), stats=stats,
                       mask=mask_name[0] if mask_name else None)

    inputs = {"a": [None, 3], "b": [None, 2]}
    feeds = {"a": a, "b": b}
    if masked:
        inputs["mask"] = [None, 1]
        feeds["mask"] = mask
    (got,) = session(stage_model(build, inputs)).run(None, feeds)
    keep = slice(None) if mask is None else mask[:, 0] > 0
    ref = np.concatenate([getattr(np, stat)(M[keep], axis=0) for M in (b, a) for stat in stats])
    assert got.shape == (1, 4 * 5)
    np.testing.assert_allclose(got[0], ref, rtol=1e-5, atol=1e-5)


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
}


def _block_tolerance(ref: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Per entry: 1e-5 of the largest |value| of its block, all statistics (one unit: dB for MFCC
    and dB mel). Measured on real speech: 2.3e-6 at most, for the mel dB means; float32 sums
    over frames set it. In digital silence the MFCCs past c0 are rounding noise of the DCT of a
    constant (c0 = -632 dB, the rest 5e-6) and differ by that much."""
    tol, start = np.empty(config.n_features), 0
    for rows in config.block_sizes.values():
        width = rows * len(config.stats)
        tol[start:start + width] = 1e-5 * max(np.abs(ref[start:start + width]).max(), 1e-3)
        start += width
    return tol


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("kind", ["vibrato", "noise", "chirp", "silence"])
def test_feature_graph_equals_feature_vector(signal, name: str, kind: str) -> None:
    config = CONFIGS[name]
    s = session(feature_model(config))
    y = signal(kind, config.sr, duration=1.3, seed=3)
    (got,) = s.run(None, {"waveform": y[None]})
    ref = feature_vector(y, sr=config.sr, config=config)
    assert got.shape == (1, config.n_features)
    assert np.all(np.abs(got[0] - ref) <= _block_tolerance(ref, config)), (
        feature_differences(got, ref[None], config))


def test_frame_matrix_equals_feature_matrices(signal) -> None:
    config = FeatureConfig()
    y = signal("vibrato", config.sr, duration=1.0, seed=4)
    (got,) = session(feature_model(config, output="frames")).run(None, {"waveform": y[None]})
    blocks = feature_matrices(y, sr=config.sr, config=config)
    ref = np.concatenate([blocks[name] for name in config.features])
    assert got.shape == (1,) + ref.shape
    for name, M in zip(config.features, np.split(got[0], np.cumsum(
            list(config.block_sizes.values()))[:-1]), strict=True):
        np.testing.assert_allclose(M, blocks[name], atol=2e-5 * np.abs(blocks[name]).max(),
                                   err_msg=name)


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
    return Classifier()


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
            p.value = '"frames"'
    onnx.save_model(model, str(tmp_path / "m.onnx"))
    with pytest.raises(ModelError, match=r"'input_kind' metadata 'frames' is not one of"):
        Classifier(tmp_path / "m.onnx")


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
