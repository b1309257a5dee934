"""Adaptation to the speaker: running statistics, the per-row map, and the Classifier using them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ser_edge.adapt import Adaptation, SpeakerProfile
from ser_edge.errors import ModelError, ParameterError
from ser_edge.features import FeatureConfig, frame_matrix, pool

CONFIG = FeatureConfig(features=("mfcc", "chroma", "mel", "mfcc_delta"), n_mfcc=13, n_mels=32,
                       stats={"mfcc": ("mean", "std"), "chroma": ("mean", "std"),
                              "mel": ("std", "min", "max"), "mfcc_delta": ("std",)},
                       top_db=60.0, level_db=-20.0, frames="active", active_range_db=25.0,
                       active_floor_range_db=40.0)
N_ROWS = sum(CONFIG.block_sizes.values())


def _blocks(F: np.ndarray, config: FeatureConfig = CONFIG) -> dict[str, np.ndarray]:
    edges = np.cumsum([0, *config.block_sizes.values()])
    return {name: F[edges[i]:edges[i + 1]] for i, name in enumerate(config.features)}


def _population(rng: np.random.Generator) -> Adaptation:
    return Adaptation(CONFIG, ("mfcc", "mel"), rng.normal(0, 5, N_ROWS),
                      rng.uniform(0.5, 3, N_ROWS), min_seconds=2.0)


def test_running_statistics_equal_those_of_all_frames(rng):
    parts = [rng.normal(rng.uniform(-3, 3), rng.uniform(0.5, 2), (N_ROWS, n))
             for n in (7, 120, 1, 33)]
    profile = SpeakerProfile(CONFIG)
    for F in parts:
        profile.update(F)
    whole = np.concatenate(parts, axis=1)
    np.testing.assert_allclose(profile.mean, whole.mean(axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(profile.var, whole.var(axis=1), rtol=1e-10)
    assert profile.n_frames == whole.shape[1]
    assert profile.seconds == pytest.approx(whole.shape[1] * 256 / 16000)


def test_a_weighted_window_counts_its_share(rng):
    profile = SpeakerProfile(CONFIG)
    F = rng.normal(size=(N_ROWS, 90))
    profile.update(F, weight=1 / 3)
    assert profile.n_frames == pytest.approx(30)
    np.testing.assert_allclose(profile.mean, F.mean(axis=1))


def test_profile_round_trips_and_refuses_other_features(tmp_path, rng):
    profile = SpeakerProfile(CONFIG)
    profile.update(rng.normal(size=(N_ROWS, 50)))
    path = profile.save(tmp_path / "me.json")
    back = SpeakerProfile.load(path, CONFIG)
    np.testing.assert_allclose(back.mean, profile.mean)
    np.testing.assert_allclose(back.var, profile.var)
    assert back.n_frames == profile.n_frames
    other = FeatureConfig(features=("mfcc",), n_mfcc=13)
    with pytest.raises(ParameterError, match="other features"):
        SpeakerProfile.load(path, other)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ParameterError, match="bad.json: not a speaker profile"):
        SpeakerProfile.load(tmp_path / "bad.json", CONFIG)
    with pytest.raises(ParameterError, match="missing.json: cannot read"):
        SpeakerProfile.load(tmp_path / "missing.json", CONFIG)
    data = json.loads(path.read_text())
    data["mean"] = data["mean"][:3]
    (tmp_path / "short.json").write_text(json.dumps(data))
    with pytest.raises(ParameterError, match="short.json"):
        SpeakerProfile.load(tmp_path / "short.json", CONFIG)


def test_adapted_frames_have_the_population_statistics(rng):
    adaptation = _population(rng)
    F = rng.normal(rng.uniform(-10, 10, (N_ROWS, 1)), rng.uniform(0.2, 4, (N_ROWS, 1)),
                   (N_ROWS, 400))
    profile = SpeakerProfile(CONFIG)
    profile.update(F)
    G = adaptation.frames(F, profile)
    rows = adaptation.rows
    np.testing.assert_allclose(G[rows].mean(axis=1), adaptation.mean[rows], atol=1e-3)
    np.testing.assert_allclose(G[rows].std(axis=1), adaptation.std[rows], rtol=1e-4)
    np.testing.assert_allclose(G[~rows], F[~rows], atol=1e-5)  # chroma, deltas untouched


def test_vector_map_equals_pooling_the_mapped_frames(rng):
    adaptation = _population(rng)
    F = rng.normal(2, 3, (N_ROWS, 80)).astype(np.float32)
    profile = SpeakerProfile(CONFIG)
    profile.update(rng.normal(-1, 2, (N_ROWS, 300)))
    pooled_then_mapped = adaptation.vector(pool(_blocks(F), CONFIG), profile)
    mapped_then_pooled = pool(_blocks(adaptation.frames(F, profile)), CONFIG)
    np.testing.assert_allclose(pooled_then_mapped, mapped_then_pooled, rtol=1e-5, atol=1e-4)


def test_readiness_and_bad_metadata(rng):
    adaptation = _population(rng)
    profile = SpeakerProfile(CONFIG)
    assert not adaptation.ready(None) and not adaptation.ready(profile)
    profile.update(rng.normal(size=(N_ROWS, 100)))  # 1.6 s
    assert not adaptation.ready(profile)
    profile.update(rng.normal(size=(N_ROWS, 30)))  # 2.08 s
    assert adaptation.ready(profile)
    back = Adaptation.from_metadata(json.loads(json.dumps(adaptation.to_metadata())), CONFIG)
    np.testing.assert_allclose(back.mean, adaptation.mean, atol=1e-6)
    for bad, match in [([], "JSON object"), ({"blocks": ["pitch"], "population_mean": [0] * N_ROWS,
                                             "population_std": [1] * N_ROWS}, "lack"),
                       ({"blocks": ["mfcc"], "population_mean": [0], "population_std": [1]},
                        "shape"),
                       ({"blocks": "mfcc", "population_mean": [0] * N_ROWS,
                         "population_std": [1] * N_ROWS}, "list of names"),
                       ({"blocks": ["mfcc"], "population_mean": [0] * N_ROWS,
                         "population_std": [-1] * N_ROWS}, "non-negative")]:
        with pytest.raises(ModelError, match=match):
            Adaptation.from_metadata(bad, CONFIG)


# -- the Classifier ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adaptive_model(tmp_path_factory, build_model):
    """A tiny model of CONFIG's features with 'adaptation' metadata (min_seconds 2)."""
    import onnx

    from export.onnx_export import save

    path = build_model(tmp_path_factory.mktemp("adapt") / "plain.onnx", config=CONFIG)
    model = onnx.load(str(path))
    rng = np.random.default_rng(5)
    meta = _population(rng).to_metadata()
    model.metadata_props.add(key="adaptation", value=json.dumps(meta))
    out = path.with_name("adaptive.onnx")
    save(model, out)
    return path, out


def _speech(signal, seed: int, seconds: float = 1.5) -> np.ndarray:
    return signal("vibrato", 16000, duration=seconds, seed=seed) * np.float32(0.5 + 0.2 * seed)


def test_classifier_adapts_once_the_profile_holds_enough(adaptive_model, signal):
    from ser_edge import Classifier

    plain, adaptive = adaptive_model
    with pytest.raises(ModelError, match="cannot adapt"):
        Classifier(plain, adapt=True)
    clf = Classifier(adaptive, adapt=True)
    reference = Classifier(adaptive)
    assert clf.profile is not None and clf.profile.seconds == 0
    ys = [_speech(signal, k) for k in range(4)]
    first = clf.predict(ys[0], 16000)
    # Under min_seconds (1.5 s of a 2 s minimum): the unadapted answer.
    assert first.probabilities == reference.predict(ys[0], 16000).probabilities
    assert 0 < clf.profile.seconds < 2.0
    second = clf.predict(ys[1], 16000)
    assert clf.profile.seconds >= 2.0
    # Now adapted: the model's input is the mapped vector of the clip.
    F = frame_matrix(ys[1], sr=16000, config=CONFIG)
    x = clf.adaptation.vector(pool(_blocks(F), CONFIG), clf.profile)
    expected = clf._run(x[None])[0]
    np.testing.assert_allclose([second.probabilities[k] for k in clf.labels], expected,
                               atol=1e-5)
    assert second.probabilities != reference.predict(ys[1], 16000).probabilities


def test_a_saved_profile_is_used_as_it_is(adaptive_model, signal, tmp_path):
    from ser_edge import Classifier

    _, adaptive = adaptive_model
    learner = Classifier(adaptive, adapt=True)
    for k in range(3):
        learner.predict(_speech(signal, k), 16000)
    learner.profile.save(tmp_path / "me.json")
    profile = SpeakerProfile.load(tmp_path / "me.json", learner.feature_config)
    frozen = Classifier(adaptive, profile=profile)
    y = _speech(signal, 7)
    a = frozen.predict(y, 16000)
    b = frozen.predict(y, 16000)
    assert a.probabilities == b.probabilities  # not learning: the same answer twice
    assert frozen.profile.seconds == pytest.approx(learner.profile.seconds)


def test_learn_adds_a_file_without_classifying_it(adaptive_model, emodb_dir):
    from ser_edge import Classifier

    _, adaptive = adaptive_model
    clf = Classifier(adaptive)
    assert clf.profile is None
    clips = sorted(emodb_dir.glob("*.flac"))[:3]
    seconds = [clf.learn(p) for p in clips]
    assert 0 < seconds[0] < seconds[1] < seconds[2]
    assert clf.profile is not None and clf.adaptation.ready(clf.profile)


# -- the command line ------------------------------------------------------------------------------


def _run(*args):
    from typer.testing import CliRunner

    from ser_edge.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_classify_adapt_learns_every_file_first_and_saves_the_profile(adaptive_model, emodb_dir,
                                                                      tmp_path):
    from ser_edge import Classifier

    plain, adaptive = adaptive_model
    clips = sorted(emodb_dir.glob("*.flac"))[:4]
    profile = tmp_path / "me.json"
    result = _run("classify", *clips, "--model", adaptive, "--adapt", "--profile", profile,
                  "--json")
    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in result.stdout.splitlines()]
    # Every file classified with the profile of all four.
    clf = Classifier(adaptive)
    for c in clips:
        clf.learn(c)
    expected = [clf.classify(c).probabilities for c in clips]
    for g, e in zip(got, expected, strict=True):
        assert g["probabilities"] == pytest.approx(e, abs=1e-6)
    saved = SpeakerProfile.load(profile, clf.feature_config)
    assert saved.seconds == pytest.approx(clf.profile.seconds)
    # The saved profile, used as it is, gives the same answers; with --adapt it learns more.
    again = _run("classify", clips[0], "--model", adaptive, "--profile", profile, "--json")
    assert json.loads(again.stdout)["probabilities"] == pytest.approx(expected[0], abs=1e-6)
    more = _run("classify", *clips[:2], "--model", adaptive, "--adapt", "--profile", profile)
    assert more.exit_code == 0
    assert SpeakerProfile.load(profile, clf.feature_config).seconds > saved.seconds
    # A model that cannot adapt: exit 3; a profile that is not there without --adapt: exit 2.
    refused = _run("classify", clips[0], "--model", plain, "--adapt")
    assert refused.exit_code == 3 and "cannot adapt" in refused.stderr
    missing = _run("classify", clips[0], "--model", adaptive, "--profile", tmp_path / "no.json")
    assert missing.exit_code == 2 and "no such profile" in missing.stderr
    (tmp_path / "bad.json").write_text("{}")
    bad = _run("classify", clips[0], "--model", adaptive, "--profile", tmp_path / "bad.json")
    assert bad.exit_code == 2 and "bad.json: not a speaker profile" in bad.stderr
    assert "Traceback" not in bad.output


def test_listen_adapts_as_it_goes_and_saves_the_profile(adaptive_model, emodb_dir, tmp_path):
    import soundfile as sf

    from ser_edge import Classifier, StreamingClassifier

    _, adaptive = adaptive_model
    y = np.concatenate([sf.read(p, dtype="float32")[0]
                        for p in sorted(emodb_dir.glob("*.flac"))[:6]])
    raw = tmp_path / "pcm.raw"
    (y * 32767).astype("<i2").tofile(raw)
    profile = tmp_path / "live.json"
    with open(raw, "rb") as stdin:
        from typer.testing import CliRunner

        from ser_edge.cli import app

        result = CliRunner().invoke(app, ["listen", "-", "--json", "--model", str(adaptive),
                                          "--profile", str(profile)], input=stdin.read())
    assert result.exit_code == 0, result.output
    windows = [json.loads(line) for line in result.stdout.splitlines()]
    stream = StreamingClassifier(Classifier(adaptive, adapt=True), sr=16000)
    samples = np.fromfile(raw, "<i2")
    expected = [r.to_dict() for r in stream.push(samples) + stream.flush()]
    assert len(windows) == len(expected)
    for w, e in zip(windows, expected, strict=True):
        assert w["speech"] == e["speech"]
        if w["speech"]:
            assert w["probabilities"] == pytest.approx(e["probabilities"], abs=1e-6)
    saved = SpeakerProfile.load(profile, stream.classifier.feature_config)
    assert saved.seconds == pytest.approx(stream.classifier.profile.seconds)
    assert saved.seconds > 2.0
    # --no-adapt leaves the windows unadapted and writes nothing.
    off = tmp_path / "off.json"
    plain = CliRunner().invoke(app, ["listen", "-", "--json", "--model", str(adaptive),
                                     "--no-adapt"], input=raw.read_bytes())
    assert plain.exit_code == 0 and not off.exists()
    reference = StreamingClassifier(Classifier(adaptive), sr=16000)
    unadapted = [r.to_dict() for r in reference.push(samples) + reference.flush()]
    assert [json.loads(line) for line in plain.stdout.splitlines()] == unadapted
