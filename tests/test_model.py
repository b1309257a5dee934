"""ser_edge.model: the Classifier, its metadata and shape checks, and its results."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from ser_edge.errors import AudioError, ModelError, ParameterError
from ser_edge.features import FeatureConfig
from ser_edge.model import BUNDLED_MODEL, Classifier, Failure, Prediction

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


# -- models made in fixtures ---------------------------------------------------------------------


def rewrite_metadata(src: Path, dst: Path, **entries: str | None) -> Path:
    """Copy an ONNX model, replacing (str) or deleting (None) metadata entries."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in entries.items():
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(model, str(dst))
    return dst


@pytest.fixture(scope="session")
def tiny_model(build_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny valid model with the default feature configuration and the 8 RAVDESS labels."""
    return build_model(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny(tiny_model: Path) -> Classifier:
    return Classifier(tiny_model)


@pytest.fixture
def speech_like(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """One second of voiced syllables (four, with a gliding pitch) plus a little noise, at 16 kHz.

    Voice activity detection takes it for speech, so :meth:`Classifier.classify` gives a file of
    it an emotion (a steady harmonic tone would be 'no speech detected').
    """
    sr = 16000
    t = np.arange(sr) / sr
    f0 = 150 + 30 * np.sin(2 * np.pi * 1.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    envelope = np.sqrt(np.clip(np.sin(2 * np.pi * 4 * t), 0, None))
    y = sum(np.sin(k * phase) / k for k in range(1, 11)) * 0.2 * envelope
    y = y + 0.003 * rng.standard_normal(sr)
    return y.astype(np.float32), sr


# -- loading -------------------------------------------------------------------------------------


def test_attributes_come_from_the_metadata(tiny_model: Path, tiny: Classifier) -> None:
    assert tiny.model_path == tiny_model
    assert tiny.labels == tuple(sorted(EMOTIONS))  # classes_ order
    assert tiny.feature_config == FeatureConfig()
    assert tiny.metadata["labels"] == list(tiny.labels)
    assert tiny.metadata["training"]["estimator"] == "MLPClassifier"
    assert "speaker_independent" in tiny.metadata["metrics"]
    assert "360" in repr(tiny) and str(tiny_model) in repr(tiny)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_num_threads_must_be_a_positive_integer(tiny_model: Path, bad: object) -> None:
    with pytest.raises(ParameterError, match="num_threads"):
        Classifier(tiny_model, num_threads=bad)  # type: ignore[arg-type]


def test_two_threads_give_the_same_answer(tiny_model: Path, tiny: Classifier, speech_like) -> None:
    y, sr = speech_like
    two = Classifier(tiny_model, num_threads=2)
    a, b = tiny.predict(y, sr), two.predict(y, sr)
    assert a.label == b.label
    np.testing.assert_allclose(list(a.probabilities.values()), list(b.probabilities.values()),
                               atol=1e-6)


def test_missing_model(tmp_path: Path) -> None:
    path = tmp_path / "nope.onnx"
    with pytest.raises(ModelError, match=r"nope\.onnx: model file not found"):
        Classifier(path)


def test_empty_model(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelError, match=r"empty\.onnx: model file is empty"):
        Classifier(path)


def test_folder_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="is a folder"):
        Classifier(tmp_path)


def test_garbage_model(tmp_path: Path) -> None:
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"this is not a protobuf\n" * 10)
    with pytest.raises(ModelError, match=r"garbage\.onnx: not a readable ONNX model") as info:
        Classifier(path)
    assert "\n" not in str(info.value)


def test_truncated_model(tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.onnx"
    path.write_bytes(tiny_model.read_bytes()[:500])
    with pytest.raises(ModelError, match=r"cut\.onnx: not a readable ONNX model"):
        Classifier(path)


def test_wrong_width_gives_both_numbers(build_model, tmp_path: Path) -> None:
    # A model fitted on 20 MFCCs (320 features) whose metadata claims the default 360.
    narrow = FeatureConfig(n_mfcc=20)
    src = build_model(tmp_path / "narrow.onnx", config=narrow)
    bad = rewrite_metadata(src, tmp_path / "wrong-width.onnx",
                           feature_config=FeatureConfig().to_json())
    with pytest.raises(ModelError, match=r"wrong-width\.onnx: .*gives 360 features.* takes 320"):
        Classifier(bad)


def test_wrong_label_count_gives_both_numbers(tiny_model: Path, tmp_path: Path) -> None:
    bad = rewrite_metadata(tiny_model, tmp_path / "seven.onnx",
                           labels=json.dumps(list(EMOTIONS[:7])))
    with pytest.raises(ModelError, match=r"seven\.onnx: .*7 labels.* 8 probability columns"):
        Classifier(bad)


@pytest.mark.parametrize("key", ["labels", "feature_config"])
def test_missing_metadata(tiny_model: Path, tmp_path: Path, key: str) -> None:
    bad = rewrite_metadata(tiny_model, tmp_path / "bare.onnx", **{key: None})
    with pytest.raises(ModelError, match=rf"bare\.onnx: the model has no '{key}' metadata"):
        Classifier(bad)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("labels", '"angry"', "non-empty JSON list of strings"),
        ("labels", json.dumps(["a", "a", "b", "c", "d", "e", "f", "g"]), "repeats a name"),
        ("feature_config", '{"n_mfcc": -3}', "invalid 'feature_config' metadata"),
        ("feature_config", "not json", "invalid 'feature_config' metadata"),
    ],
)
def test_invalid_metadata(tiny_model: Path, tmp_path: Path, key: str, value: str,
                          message: str) -> None:
    bad = rewrite_metadata(tiny_model, tmp_path / "bad-meta.onnx", **{key: value})
    with pytest.raises(ModelError, match=message):
        Classifier(bad)


# -- results -------------------------------------------------------------------------------------


def _check(p: Prediction, labels: tuple[str, ...]) -> None:
    assert list(p.probabilities) == list(labels)
    values = np.array(list(p.probabilities.values()))
    assert np.all(values >= 0)
    assert values.sum() == pytest.approx(1.0, abs=1e-5)
    assert p.label == labels[int(np.argmax(values))]
    assert p.confidence == p.probabilities[p.label] == max(values)
    top = p.top(3)
    assert [name for name, _ in top][0] == p.label
    assert [prob for _, prob in top] == sorted((prob for _, prob in top), reverse=True)


def test_predict(tiny: Classifier, speech_like) -> None:
    y, sr = speech_like
    p = tiny.predict(y, sr)
    _check(p, tiny.labels)
    assert p.path is None
    assert p.sample_rate == sr
    assert p.duration_s == pytest.approx(len(y) / sr, abs=1e-3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.label = "calm"  # type: ignore[misc]
    record = p.to_dict()
    assert json.loads(json.dumps(record)) == record


def test_predict_mixes_channels_down(tiny: Classifier, speech_like) -> None:
    y, sr = speech_like
    mono = tiny.predict(y, sr)
    stereo = tiny.predict(np.stack([y, y]), sr)
    assert stereo.label == mono.label
    np.testing.assert_allclose(list(stereo.probabilities.values()),
                               list(mono.probabilities.values()), atol=1e-5)


@pytest.mark.parametrize("sr", [0, -16000, 16000.5, True])
def test_predict_rejects_bad_rates(tiny: Classifier, speech_like, sr: object) -> None:
    y, _ = speech_like
    with pytest.raises(ParameterError, match="sr must be a positive integer"):
        tiny.predict(y, sr)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.zeros(16000, dtype=np.float32),  # digital silence
        lambda: np.full(16000, np.nan, dtype=np.float32),
        lambda: np.zeros(0, dtype=np.float32),
    ],
    ids=["silence", "nan", "empty"],
)
def test_predict_rejects_unusable_signals(tiny: Classifier, make) -> None:
    with pytest.raises(AudioError):
        tiny.predict(make(), 16000)


def test_classify_real_clip(tiny: Classifier, ravdess_dir: Path) -> None:
    import soundfile as sf

    clip = sorted(ravdess_dir.glob("Actor_01/*.flac"))[0]
    p = tiny.classify(clip)
    _check(p, tiny.labels)
    info = sf.info(str(clip))
    assert p.path == str(clip)
    assert p.sample_rate == info.samplerate
    assert p.duration_s == pytest.approx(info.duration, abs=1e-3)
    x = tiny.features(clip)
    assert x.shape == (tiny.feature_config.n_features,) and x.dtype == np.float32


def test_classify_many_goes_on_after_a_bad_file(tiny: Classifier, ravdess_dir: Path,
                                                 tmp_path: Path) -> None:
    clips = sorted(ravdess_dir.glob("Actor_02/*.flac"))[:2]
    missing = tmp_path / "missing.wav"
    results = list(tiny.classify_many([clips[0], missing, clips[1]]))
    assert [type(r) for r in results] == [Prediction, Failure, Prediction]
    assert [r.path for r in results] == [str(clips[0]), str(missing), str(clips[1])]
    failure = results[1]
    assert isinstance(failure.error, (AudioError, OSError))
    assert "missing.wav" in failure.message and "\n" not in failure.message
    assert results[0].probabilities == tiny.classify(clips[0]).probabilities


def test_long_files_stream_with_the_same_answer(tiny: Classifier, ravdess_dir: Path,
                                                 tmp_path: Path, monkeypatch) -> None:
    """Past STREAM_MIN_SECONDS a file is classified in two streaming passes: same prediction as
    reading it whole, to float32 rounding; digital silence is still refused."""
    import soundfile as sf

    from ser_edge import model

    clips = sorted(ravdess_dir.glob("Actor_04/*.flac"))[:4]
    y = np.concatenate([sf.read(str(c), dtype="float32")[0] for c in clips])
    path = tmp_path / "long.flac"
    sf.write(str(path), y, 48000)
    whole = tiny.classify(path)
    x_whole = tiny.features(path)
    monkeypatch.setattr(model, "STREAM_MIN_SECONDS", 5.0)
    streamed = tiny.classify(path)
    assert streamed.label == whole.label
    assert streamed.duration_s == whole.duration_s == pytest.approx(len(y) / 48000, abs=1e-4)
    for label, p in whole.probabilities.items():
        assert streamed.probabilities[label] == pytest.approx(p, abs=1e-5)
    np.testing.assert_allclose(tiny.features(path), x_whole, rtol=1e-5,
                               atol=1e-5 * np.abs(x_whole).max())
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(48000 * 6, np.float32), 48000)
    with pytest.raises(AudioError, match=r"silent\.wav: digital silence"):
        tiny.classify(silent)


#: The default model's pooled features, with the digital silence at a clip's ends trimmed.
TRIMMING = FeatureConfig(features=("mfcc", "chroma", "mel", "mfcc_delta"), level_db=-20.0,
                         frames="active", top_db=60.0, trim_zeros=True)


@pytest.fixture(scope="session")
def trimming(build_model, tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    """A tiny model whose feature configuration has ``trim_zeros``."""
    return Classifier(build_model(tmp_path_factory.mktemp("models") / "trim.onnx",
                                  config=TRIMMING))


def test_a_model_that_trims_digital_silence(trimming: Classifier, ravdess_dir: Path,
                                             tmp_path: Path, monkeypatch) -> None:
    """0.6 s of exact zeros around a clip: the same probabilities, in memory, from a file, and
    from a long file streamed in two passes; a clip too short between its zeros is refused."""
    import soundfile as sf

    from ser_edge import audio, model

    assert trimming.feature_config.trim_zeros
    y = audio.load(ravdess_dir / "Actor_02" / "03-01-01-01-01-01-02.flac", sr=16000)[0]
    silence = np.zeros(int(0.6 * 16000), np.float32)
    padded = np.concatenate([silence, y, silence])
    assert trimming.predict(padded, 16000).probabilities == \
        trimming.predict(y, 16000).probabilities
    for name, z in (("clip.wav", y), ("padded.wav", padded)):
        sf.write(str(tmp_path / name), z, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(trimming.features(tmp_path / "padded.wav"),
                                  trimming.features(tmp_path / "clip.wav"))
    # A long recording: clips joined by digital silence, with seconds of it at both ends.
    long = np.concatenate([np.zeros(3 * 16000, np.float32), y, silence, y, silence, y,
                           np.zeros(2 * 16000, np.float32)])
    sf.write(str(tmp_path / "long.wav"), long, 16000, subtype="FLOAT")
    whole = trimming.classify(tmp_path / "long.wav")
    monkeypatch.setattr(model, "STREAM_MIN_SECONDS", 5.0)
    streamed = trimming.classify(tmp_path / "long.wav")
    inner = long[3 * 16000 : -2 * 16000]
    for label, p in trimming.predict(inner, 16000).probabilities.items():
        assert whole.probabilities[label] == p
        assert streamed.probabilities[label] == pytest.approx(p, abs=1e-5)
    # Enough samples in all, too few between the zeros.
    with pytest.raises(AudioError, match=r"too short: 31 ms, fewer than the 9 analysis frames "
                                         r"the MFCC deltas need, between the digital silence"):
        trimming.predict(np.concatenate([silence, y[8808 : 8808 + 500], silence]), 16000)


def test_a_model_that_trims_quiet_ends(build_model, ravdess_dir: Path, tmp_path: Path,
                                       monkeypatch, rng: np.random.Generator) -> None:
    """Quiet noise (50 dB under the clip's peak) and digital silence around a clip: the same
    probabilities in memory and from a long file streamed in two passes; a clip too short
    between its quiet ends is refused, saying so."""
    import soundfile as sf

    from ser_edge import audio, model

    clf = Classifier(build_model(tmp_path / "quiet.onnx",
                                 config=dataclasses.replace(TRIMMING, trim_zeros=False,
                                                            trim_top_db=25.0)))
    y = audio.load(ravdess_dir / "Actor_02" / "03-01-01-01-01-01-02.flac", sr=16000)[0]
    level = float(np.abs(y).max()) * 10 ** (-50 / 20)
    hiss = (level * rng.uniform(-1, 1, int(0.6 * 16000))).astype(np.float32)
    padded = np.concatenate([np.zeros(300, np.float32), hiss, y, hiss])
    assert clf.predict(padded, 16000).probabilities == clf.predict(y, 16000).probabilities
    long = np.concatenate([hiss, hiss, y, hiss, y, np.zeros(2 * 16000, np.float32)])
    sf.write(str(tmp_path / "long.wav"), long, 16000, subtype="FLOAT")
    monkeypatch.setattr(model, "STREAM_MIN_SECONDS", 2.0)
    streamed = clf.classify(tmp_path / "long.wav")
    for label, p in clf.predict(long, 16000).probabilities.items():
        assert streamed.probabilities[label] == pytest.approx(p, abs=1e-5)
    loud = np.where(np.arange(500) % 80 < 40, 0.5, -0.5).astype(np.float32)  # a square wave
    with pytest.raises(AudioError, match=r"too short: 31 ms, .* between the quiet ends trimmed"):
        clf.predict(np.concatenate([hiss, loud, hiss]), 16000)


# -- the bundled model ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bundled() -> Classifier:
    if not BUNDLED_MODEL.is_file():
        pytest.skip(f"the bundled model {BUNDLED_MODEL} is not there yet")
    return Classifier()


def test_bundled_model(bundled: Classifier) -> None:
    assert bundled.model_path == BUNDLED_MODEL
    assert sorted(bundled.labels) == sorted(EMOTIONS)
    assert bundled.feature_config.n_features > 0
    for key in ("labels", "feature_config", "training", "metrics"):
        assert key in bundled.metadata
    assert "speaker_independent" in bundled.metadata["metrics"]


def test_bundled_model_on_a_real_clip(bundled: Classifier, ravdess_dir: Path) -> None:
    clip = sorted(ravdess_dir.glob("Actor_03/*.flac"))[5]
    _check(bundled.classify(clip), bundled.labels)


def test_lazy_export_from_the_package() -> None:
    import ser_edge

    assert ser_edge.Classifier is Classifier
    assert ser_edge.Prediction is Prediction


# -- bad input, tried by a stranger (issue 13) ---------------------------------------------------


def test_predict_takes_what_soundfile_read_returns(tiny: Classifier, speech_like) -> None:
    """``soundfile.read`` gives (samples, channels): taken as such when unambiguous."""
    y, sr = speech_like
    stereo = np.stack([y, 0.5 * y])
    by_channel = tiny.predict(stereo, sr)
    by_sample = tiny.predict(stereo.T, sr)  # shape (16000, 2)
    assert by_sample.duration_s == by_channel.duration_s == pytest.approx(1.0)
    assert by_sample.probabilities == by_channel.probabilities


def test_predict_names_an_ambiguous_layout(tiny: Classifier, speech_like) -> None:
    y, sr = speech_like
    with pytest.raises(AudioError, match=r"audio of shape \(800, 20\): cannot tell channels "
                       r"from samples; pass \(channels, samples\)"):
        tiny.predict(y[:16000].reshape(800, 20), sr)


def test_predict_samples_that_overflow_float32(tiny: Classifier, speech_like) -> None:
    """Finite float64 samples times 1e30: one AudioError, no numpy RuntimeWarning."""
    y, sr = speech_like
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AudioError, match=r"^samples overflow float32 \(peak magnitude "):
            tiny.predict(y.astype(np.float64) * 1e30, sr)
        with pytest.raises(AudioError, match=r"^samples overflow float32"):
            tiny.predict(np.stack([y, y]).T.astype(np.float64) * 1e300, sr)


@pytest.fixture
def clip(tmp_path: Path, speech_like) -> Path:
    import soundfile as sf

    y, sr = speech_like
    path = tmp_path / "clip.flac"
    sf.write(str(path), y, sr)
    return path


def test_classify_file_objects_and_bytes_paths(tiny: Classifier, clip: Path) -> None:
    import io
    import os

    ref = tiny.classify(clip)
    with open(clip, "rb") as f:
        from_file = tiny.classify(f)
    from_bytes = tiny.classify(io.BytesIO(clip.read_bytes()))
    from_raw_path = tiny.classify(os.fsencode(clip))
    for p in (from_file, from_bytes, from_raw_path):
        assert p.probabilities == ref.probabilities
        assert p.sample_rate == ref.sample_rate and p.duration_s == ref.duration_s
    assert (from_file.path, from_bytes.path, from_raw_path.path) == (str(clip), "<BytesIO>",
                                                                    str(clip))
    np.testing.assert_array_equal(tiny.features(io.BytesIO(clip.read_bytes())),
                                  tiny.features(clip))


@pytest.mark.parametrize("bad", [3, None, np.zeros(16000, np.float32), ["a.wav"]],
                         ids=["int", "None", "array", "list"])
def test_classify_other_types_raise_parameter_error(tiny: Classifier, bad: object) -> None:
    with pytest.raises(ParameterError, match="path|binary file object"):
        tiny.classify(bad)  # type: ignore[arg-type]
    (failure,) = tiny.classify_many([bad])  # type: ignore[list-item]
    assert isinstance(failure, Failure) and isinstance(failure.error, ParameterError)


def test_classify_text_file_object(tiny: Classifier, clip: Path) -> None:
    with open(clip, encoding="latin-1") as f, pytest.raises(ParameterError, match="binary mode"):
        tiny.classify(f)  # type: ignore[arg-type]


def test_classify_warns_on_a_truncated_file(tiny: Classifier, tmp_path: Path,
                                            speech_like) -> None:
    import soundfile as sf

    from ser_edge import AudioWarning

    y, sr = speech_like
    path = tmp_path / "cut.wav"
    sf.write(str(path), np.tile(y, 2), sr, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:44 + 2 * 20000])
    with pytest.warns(AudioWarning, match=r"cut\.wav: the file is shorter than its header says"):
        p = tiny.classify(path)
    assert p.duration_s == pytest.approx(20000 / sr)


def test_dir_shows_the_public_api() -> None:
    import ser_edge

    names = dir(ser_edge)
    assert set(ser_edge.__all__) <= set(names)
    assert {"Classifier", "Prediction", "audio", "features"} <= set(names)
    assert not {"Any", "TYPE_CHECKING", "annotations", "import_module"} & set(names)
    for name in names:  # everything listed can be reached
        getattr(ser_edge, name)


def test_bundled_models_by_name_and_the_default():
    from ser_edge.model import (
        BUNDLED_MODEL,
        BUNDLED_MODELS,
        DEFAULT_MODEL,
        bundled_name,
        resolve_model,
    )

    assert BUNDLED_MODEL == BUNDLED_MODELS[DEFAULT_MODEL] and BUNDLED_MODEL.is_file()
    for name, path in BUNDLED_MODELS.items():
        assert resolve_model(name) == path and bundled_name(path) == name
        clf = Classifier(name)
        assert clf.name == name and clf.model_path == path
        assert (path.parent / f"{name}.md").is_file()  # its model card
    assert Classifier().name == DEFAULT_MODEL
    assert bundled_name("elsewhere.onnx") is None
    with pytest.raises(ModelError, match="no-such-model: model file not found; the bundled "
                       "models are ") as error:
        Classifier("no-such-model")
    assert all(name in str(error.value) for name in BUNDLED_MODELS)


# -- hostile model files (issue 23) --------------------------------------------------------------


def _python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python (this checkout's ser_edge), bounded in time and to 4 GB."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=timeout, preexec_fn=_limit_memory, check=False)


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


_LOAD = ("import sys\nfrom ser_edge import Classifier, SerEdgeError\n"
         "try:\n    Classifier(sys.argv[1])\n"
         "except SerEdgeError as exc:\n    print(type(exc).__name__, exc)\n")


def test_model_that_is_not_a_regular_file(tmp_path: Path) -> None:
    """A FIFO is not waited on, and /dev/zero is not read until memory runs out (each in a
    process bounded in time and to 4 GB)."""
    fifo = tmp_path / "fifo.onnx"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "a FIFO"), (Path("/dev/zero"), "a device")):
        if not path.exists():  # pragma: no cover
            continue
        proc = _python(_LOAD, str(path), timeout=60)
        assert proc.stdout.strip() == (f"ModelError {path}: model file is not a regular file "
                                       f"({kind})"), proc.stdout + proc.stderr


def test_model_larger_than_the_cap_is_not_read(tmp_path: Path) -> None:
    from ser_edge.modelfile import MAX_MODEL_BYTES

    huge = tmp_path / "huge.onnx"
    with open(huge, "wb") as f:
        f.truncate(MAX_MODEL_BYTES + 1)  # sparse: no disk used
    with pytest.raises(ModelError, match=r"huge\.onnx: model file is larger than 256 MiB"):
        Classifier(huge)


def test_model_argument_is_a_name_or_a_path(tiny_model: Path) -> None:
    for bad in (123, 1.5, ["mlp"]):
        with pytest.raises(ParameterError, match="model must be a bundled model's name or a "
                                                 "path"):
            Classifier(bad)  # type: ignore[arg-type]
    assert Classifier(os.fsencode(tiny_model)).labels == Classifier(tiny_model).labels
    with pytest.raises(ModelError, match="model file not found"):  # bytes are a path, not a name
        Classifier(b"no-such-model-name")


def test_num_threads_is_capped_at_the_usable_cores(tiny_model: Path) -> None:
    """A million threads are not started (in a process bounded in time and to 4 GB)."""
    code = ("import os, sys\nfrom ser_edge import Classifier\n"
            "clf = Classifier(sys.argv[1], num_threads=10**6)\n"
            "print(clf.num_threads, len(os.sched_getaffinity(0)))\n")
    proc = _python(code, str(tiny_model), timeout=60)
    threads, cores = map(int, proc.stdout.split())
    assert threads == cores, proc.stderr


@pytest.mark.parametrize(("field", "value", "message"), [
    ("level_db", "x", "'level_db' must be a number"),
    ("level_db", 1e308, "'level_db' must be >= -200 and <= 50"),
    ("tuning", "x", "'tuning' must be a number"),
    ("sr", 2**40, "'sr' must be from 1000 to 768000"),
    ("sr", 16000.0, "'sr' must be an integer"),
    ("fmax", float("inf"), "'fmax' must be a finite number"),
    ("fmin", float("nan"), "'fmin' must be a finite number"),
    ("fmax", 20000.0, "fmax 20000 Hz must be at most sr/2 = 8000 Hz"),
    ("n_fft", 2**30, "'n_fft' must be from 16 to 65536"),
    ("n_mels", True, "'n_mels' must be an integer"),
    ("features", ["mfcc"] * 1000, "'features' must have 1 to 4 items"),
    ("stats", {"mfcc": ["mean"], "chroma": 7, "mel": ["std"]}, "'stats' must be a list"),
    ("htk", "yes", "'htk' must be true or false"),
])
def test_feature_config_metadata_is_checked_before_use(tiny_model: Path, tmp_path: Path,
                                                       field: str, value: object,
                                                       message: str) -> None:
    from tests.hostile import with_feature_config

    bad = with_feature_config(tiny_model, tmp_path / "bad.onnx", **{field: value})
    with pytest.raises(ModelError, match=re.escape("bad.onnx: invalid 'feature_config' "
                                                   "metadata: ")) as info:
        Classifier(bad)
    assert message in str(info.value)


@pytest.mark.parametrize("depth", [33, 100_000])
def test_metadata_nested_too_deep(tiny_model: Path, tmp_path: Path, depth: int) -> None:
    bad = rewrite_metadata(tiny_model, tmp_path / "deep.onnx",
                           training="[" * depth + "]" * depth)
    with pytest.raises(ModelError, match=r"deep\.onnx: 'training' metadata is nested more than "
                                         r"32 deep"):
        Classifier(bad)


@pytest.mark.parametrize("label", ["a\x1b]0;pwned\x07", "line\nbreak", "\u202eevil", " angry",
                                   "x" * 65, "tab\there"])
def test_labels_must_be_printable_text(tiny_model: Path, tmp_path: Path, label: str) -> None:
    labels = [label, *EMOTIONS[1:]]
    bad = rewrite_metadata(tiny_model, tmp_path / "labels.onnx", labels=json.dumps(labels))
    with pytest.raises(ModelError, match=r"labels\.onnx: .*label") as info:
        Classifier(bad)
    assert "\x1b" not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("output", "message"), [
    ("int64", "its 'probabilities' output is tensor(int64), not probabilities (a float tensor)"),
    ("scalar", "its 'probabilities' output has shape [], expected (n_clips, n_labels)"),
    ("rank3", "its 'probabilities' output has shape [None, 1, 8], expected (n_clips, n_labels)"),
    ("empty", "the metadata names 8 labels but the model's output has 0 probability columns"),
])
def test_model_output_that_is_not_a_matrix_of_floats(tiny_model: Path, tmp_path: Path,
                                                     output: str, message: str) -> None:
    from tests.hostile import output_model

    bad = output_model(tiny_model, tmp_path / f"{output}.onnx", output)
    with pytest.raises(ModelError, match=rf"{output}\.onnx: {re.escape(message)}"):
        Classifier(bad)


@pytest.mark.parametrize(("output", "message"), [
    ("nan", "not finite"), ("logits", "not probabilities (values from")])
def test_model_output_that_is_not_probabilities(tiny_model: Path, tmp_path: Path, speech_like,
                                                output: str, message: str) -> None:
    from tests.hostile import output_model

    y, sr = speech_like
    good = Classifier(output_model(tiny_model, tmp_path / "softmax.onnx", "softmax"))
    _check(good.predict(y, sr), good.labels)
    bad = Classifier(output_model(tiny_model, tmp_path / f"{output}.onnx", output))
    with pytest.raises(ModelError, match=rf"{output}\.onnx: its 'probabilities' output .*"
                                         rf"{re.escape(message)}"):
        bad.predict(y, sr)


def test_external_data_is_read_from_the_models_folder(tiny_model: Path, tmp_path: Path,
                                                      speech_like, monkeypatch) -> None:
    """Weights beside the model are found from any working folder, and a file of the same name
    in the working folder is not read."""
    from tests.hostile import external_data_model

    y, sr = speech_like
    model = external_data_model(tiny_model, tmp_path / "models")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "weights.bin").write_bytes((tmp_path / "models" / "weights.bin").stat().st_size
                                            * b"\0")
    monkeypatch.chdir(elsewhere)
    want = Classifier(tiny_model).predict(y, sr)
    got = Classifier(os.path.relpath(model, elsewhere)).predict(y, sr)
    assert got.probabilities == pytest.approx(want.probabilities, abs=1e-6)


@pytest.mark.parametrize("escape", ["link", "dotdot", "absolute"])
def test_external_data_outside_the_models_folder_is_refused(tiny_model: Path, tmp_path: Path,
                                                            escape: str) -> None:
    from tests.hostile import external_data_model

    model = external_data_model(tiny_model, tmp_path / "models", escape=escape)
    with pytest.raises(ModelError, match=r"model\.onnx: external data '.*weights\.bin' lies "
                                         r"outside the model's folder"):
        Classifier(model)


def test_external_data_that_is_not_a_regular_file_or_too_large(tiny_model: Path,
                                                                tmp_path: Path) -> None:
    from ser_edge.modelfile import MAX_MODEL_BYTES
    from tests.hostile import external_data_model

    model = external_data_model(tiny_model, tmp_path / "models")
    weights = tmp_path / "models" / "weights.bin"
    weights.unlink()
    os.mkfifo(weights)
    with pytest.raises(ModelError, match=r"external data 'weights\.bin': .*not a regular file "
                                         r"\(a FIFO\)"):
        Classifier(model)
    weights.unlink()
    with open(weights, "wb") as f:
        f.truncate(MAX_MODEL_BYTES + 1)
    with pytest.raises(ModelError, match=r"external data 'weights\.bin': .*larger than 256 MiB"):
        Classifier(model)


def test_predict_rates_are_those_of_files(tiny: Classifier, speech_like) -> None:
    """A rate past 768 kHz is refused at once (2**50 spun in the resampler for minutes)."""
    code = ("import numpy as np\nfrom ser_edge import Classifier, SerEdgeError\n"
            f"clf = Classifier({str(tiny.model_path)!r})\n"
            "for sr in (2**50, 768_001, 999):\n"
            "    try:\n        clf.predict(np.ones(20000, np.float32) * 0.1, sr)\n"
            "    except SerEdgeError as exc:\n        print(type(exc).__name__, exc)\n")
    proc = _python(code, timeout=60)
    assert proc.stdout.splitlines() == [
        f"ParameterError sample rate {sr} Hz is outside the supported 1000-768000 Hz"
        for sr in (2**50, 768_001, 999)], proc.stderr


def test_predict_empty_channels_and_too_quiet(tiny: Classifier, speech_like) -> None:
    y, sr = speech_like
    with pytest.raises(AudioError, match="no audio samples"):
        tiny.predict(np.zeros((0, 2), np.float32), sr)
    for scale in (1e-8, 1e-20, 1e-38):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no numpy RuntimeWarning either
            with pytest.raises(AudioError, match=r"too quiet: peak magnitude .* below 1e-05"):
                tiny.predict(y * np.float32(scale), sr)
    _check(tiny.predict(y * np.float32(1e-4), sr), tiny.labels)  # a 16-bit file's level


def test_predict_with_a_frame_model_has_the_files_ten_minutes() -> None:
    clf = Classifier()
    if clf.input_kind != "frames":  # pragma: no cover - the default model is a frame model
        pytest.skip("the default model is not a frame-level network")
    y = 0.1 * np.sin(np.arange(601 * 1000) * 0.3).astype(np.float32)
    with pytest.raises(AudioError, match=r"10 min is too long for a frame-level network \(at "
                                         r"most 10 min\)"):
        clf.predict(y, 1000)


def test_bundled_models_do_not_trim_and_keep_their_configuration() -> None:
    """Model files written before trim_zeros read as they were written: the option off, and
    the configuration written back as the same JSON."""
    from ser_edge.model import BUNDLED_MODELS

    for name in BUNDLED_MODELS:
        clf = Classifier(name)
        written = clf.metadata["feature_config"]  # decoded
        assert "trim_zeros" not in written and clf.feature_config.trim_zeros is False
        assert json.loads(clf.feature_config.to_json()) == written


def test_the_schema_covers_every_feature_config_field() -> None:
    """A field added to FeatureConfig needs its type and range in the model file's schema."""
    from ser_edge.modelfile import FEATURE_CONFIG_SCHEMA

    fields = {f.name for f in dataclasses.fields(FeatureConfig)}
    assert fields | {"schema"} == set(FEATURE_CONFIG_SCHEMA)
    # Every bundled model's configuration fits it (the schema refuses nothing real).
    from ser_edge.model import BUNDLED_MODELS

    for name in BUNDLED_MODELS:
        Classifier(name)
