"""End to end on a small RAVDESS subset: cached librosa features, training, ONNX export."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("librosa")
pytest.importorskip("sklearn")
pytest.importorskip("skl2onnx")

import onnx  # noqa: E402

from export import features as ref  # noqa: E402
from export.corpora import parse_ravdess, select  # noqa: E402
from export.evaluate import cross_validate, speaker_folds  # noqa: E402
from export.onnx_export import (  # noqa: E402
    METADATA_KEYS,
    check_onnx,
    export_onnx,
    half_weights,
    onnx_predict,
    read_metadata,
)
from export.train import fit_pipeline, predict  # noqa: E402
from ser_edge.errors import AudioError, ModelError, ParameterError  # noqa: E402
from ser_edge.features import FeatureConfig  # noqa: E402

# Small and cheap: 16 kHz, 64 mels, 20 MFCCs; the layout is the same as the bundled model's.
CONFIG = FeatureConfig(sr=16000, n_mels=64, n_mfcc=20, tuning=0.0)
EMOTIONS = ("neutral", "happy", "sad", "angry")


@pytest.fixture(scope="module")
def subset(ravdess_dir):
    """Actors 01-04, four emotions, statement 01, repetition 01: 28 clips."""
    clips = parse_ravdess(ravdess_dir).clips
    return select(
        clips,
        EMOTIONS,
        speakers=["ravdess:01", "ravdess:02", "ravdess:03", "ravdess:04"],
        where={"statement": "01", "repetition": "01"},
    )


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="module")
def data(subset, cache):
    X = ref.extract_reference(
        [c.path for c in subset], CONFIG, n_jobs=1, cache_dir=cache, progress=False
    )
    y = np.array([c.emotion for c in subset])
    speakers = np.array([c.speaker for c in subset])
    return X, y, speakers


def test_subset_is_what_the_test_expects(subset):
    assert len(subset) == 4 * (1 + 3 * 2)  # neutral has one intensity, others two
    assert {c.emotion for c in subset} == set(EMOTIONS)


def test_reference_vector_shape_and_layout(data, subset):
    X, _, _ = data
    assert X.shape == (len(subset), CONFIG.n_features)
    assert X.dtype == np.float32
    assert np.isfinite(X).all()
    # The pooled layout: the first block is the MFCC means; MFCC 0 (log energy) is negative dB-ish
    x = ref.reference_feature_vector(subset[0].path, CONFIG)
    np.testing.assert_array_equal(x, X[0])


def test_cache_second_extraction_does_not_recompute(data, subset, cache, monkeypatch):
    X, _, _ = data
    entries = sorted(cache.rglob("*.npy"))
    assert len(entries) == len(subset)

    def fail(path, config):
        raise AssertionError(f"recomputed {path}")

    monkeypatch.setattr(ref, "reference_feature_vector", fail)
    X2 = ref.extract_reference(
        [c.path for c in subset], CONFIG, n_jobs=1, cache_dir=cache, progress=False
    )
    np.testing.assert_array_equal(X2, X)
    # Another configuration is another key: it must compute (and here, fail).
    with pytest.raises(AssertionError, match="recomputed"):
        ref.extract_reference(
            [subset[0].path], FeatureConfig(sr=16000, n_mels=64, n_mfcc=13, tuning=0.0),
            n_jobs=1, cache_dir=cache, progress=False,
        )  # fmt: skip
    # So is trim_zeros when on (off, it is left out of the key: the entries above were read).
    with pytest.raises(AssertionError, match="recomputed"):
        ref.extract_reference([subset[0].path], dataclasses.replace(CONFIG, trim_zeros=True),
                              n_jobs=1, cache_dir=cache, progress=False)


def test_missing_file_is_an_audio_error(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        ref.extract_reference([tmp_path / "nope.wav"], CONFIG, n_jobs=1, cache_dir=tmp_path)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="bad.wav"):
        ref.reference_feature_vector(bad, CONFIG)


def test_train_export_and_check_onnx(data, tmp_path):
    X, y, _ = data
    pipe = fit_pipeline(X, y, model="mlp", params={"max_iter": 200}, seed=3)
    path = tmp_path / "m.onnx"
    model = export_onnx(
        pipe, feature_config=CONFIG, labels=list(pipe.classes_),
        training={"corpora": [{"name": "ravdess", "n_clips": len(y)}], "seed": 3},
        metrics={"speaker_independent": {"uar_mean": 0.5}}, path=path, check_rows=X,
    )  # fmt: skip
    assert path.is_file()
    loaded = onnx.load(str(path))
    assert [i.name for i in loaded.graph.input] == ["features"]
    assert [o.name for o in loaded.graph.output] == ["label", "probabilities"]
    meta = read_metadata(path)
    assert tuple(meta) == METADATA_KEYS
    for prop in loaded.metadata_props:  # each value is a JSON string
        json.loads(prop.value)
    assert meta["labels"] == sorted(EMOTIONS)
    assert FeatureConfig.from_json(json.dumps(meta["feature_config"])) == CONFIG
    assert meta["training"]["estimator"] == "MLPClassifier"
    assert meta["training"]["estimator_params"]["random_state"] == 3
    assert meta["training"]["estimator_params"]["max_iter"] == 200
    assert {"scikit-learn", "skl2onnx", "librosa"} <= set(meta["training"]["versions"])
    labels, proba = onnx_predict(model, X)
    np.testing.assert_array_equal(labels, predict(pipe, X))
    np.testing.assert_allclose(proba, pipe.predict_proba(X), atol=1e-4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_half_weights_halves_the_file_and_keeps_the_answers(data):
    X, y, _ = data
    pipe = fit_pipeline(X, y, model="mlp", params={"max_iter": 50}, seed=0)
    model = export_onnx(pipe, feature_config=CONFIG, labels=list(pipe.classes_),
                        training={}, metrics={"speaker_independent": {}}, check_rows=X)
    before = model.SerializeToString()
    half = half_weights(model)
    assert model.SerializeToString() == before  # a copy: the original is left alone
    assert len(half.SerializeToString()) < 0.6 * len(before)
    casts = [n for n in half.graph.node if n.name.endswith("_cast")]
    big = [i for i in model.graph.initializer if np.prod(i.dims) >= 256]
    assert len(casts) == len(big) > 0 and half.graph.node[: len(casts)] == casts
    assert {i.data_type for i in half.graph.initializer if i.name.endswith("_float16")} == {
        onnx.TensorProto.FLOAT16}
    labels, proba = onnx_predict(half, X)
    _, exact = onnx_predict(model, X)
    # float16 keeps 11 significant bits: the probabilities move by far less than a label needs
    assert np.max(np.abs(proba - exact)) < 1e-2
    assert np.mean(labels == predict(pipe, X)) >= 0.98
    assert read_metadata(half) == read_metadata(model)


@pytest.mark.parametrize("name", ["knn", "svm", "rf", "tree"])
def test_other_models_export(data, name):
    X, y, _ = data
    pipe = fit_pipeline(X, y, model=name, seed=0)
    export_onnx(
        pipe, feature_config=CONFIG, labels=list(pipe.classes_), training={},
        metrics={"speaker_independent": {}}, check_rows=X,
    )  # fmt: skip


def test_check_onnx_catches_a_different_model(data):
    X, y, _ = data
    a = fit_pipeline(X, y, model="mlp", params={"max_iter": 50}, seed=0)
    b = fit_pipeline(X, y, model="tree", seed=0)
    model = export_onnx(
        a, feature_config=CONFIG, labels=list(a.classes_), training={},
        metrics={"speaker_independent": {}},
    )  # fmt: skip
    with pytest.raises(ModelError, match="disagree|differ"):
        check_onnx(model, b, X)


def test_export_rejects_wrong_labels_and_width(data):
    X, y, _ = data
    pipe = fit_pipeline(X, y, model="tree", seed=0)
    with pytest.raises(ModelError, match="classes_"):
        export_onnx(pipe, feature_config=CONFIG, labels=["a", "b", "c", "d"], training={},
                    metrics={"speaker_independent": {}})  # fmt: skip
    with pytest.raises(ModelError, match="features"):
        export_onnx(pipe, feature_config=FeatureConfig(), labels=list(pipe.classes_),
                    training={}, metrics={"speaker_independent": {}})  # fmt: skip


def test_same_seed_same_predictions(data):
    X, y, speakers = data
    a = cross_validate(X, y, speakers, model="mlp", params={"max_iter": 100}, seed=7, n_folds=2)
    b = cross_validate(X, y, speakers, model="mlp", params={"max_iter": 100}, seed=7, n_folds=2)
    assert a["predictions"] == b["predictions"]
    assert a["uar_mean"] == b["uar_mean"]
    p1 = fit_pipeline(X, y, params={"max_iter": 100}, seed=7).predict_proba(X)
    p2 = fit_pipeline(X, y, params={"max_iter": 100}, seed=7).predict_proba(X)
    np.testing.assert_array_equal(p1, p2)


def test_speaker_folds_keep_speakers_together():
    speakers = np.repeat([f"ravdess:{i:02d}" for i in range(1, 25)], 3)
    folds = speaker_folds(speakers, 6)
    assert len(folds) == 6
    seen = []
    for train, test in folds:
        assert not set(speakers[train]) & set(speakers[test])
        seen.append(sorted(set(speakers[test])))
    assert seen[0] == ["ravdess:01", "ravdess:02", "ravdess:03", "ravdess:04"]
    assert sorted(np.concatenate([t for _, t in folds]).tolist()) == list(range(len(speakers)))
    with pytest.raises(ParameterError, match="speaker"):
        speaker_folds(["a", "b"], 3)
    with pytest.raises(ParameterError, match="speaker"):
        speaker_folds(["a", "", "b"], 2)


def test_fit_pipeline_errors(data):
    X, y, _ = data
    with pytest.raises(ParameterError, match="unknown model"):
        fit_pipeline(X, y, model="xgboost")
    with pytest.raises(ParameterError, match="no parameter"):
        fit_pipeline(X, y, params={"hidden": 3})
    with pytest.raises(ParameterError, match="two emotions"):
        fit_pipeline(X[:2], np.array(["sad", "sad"]))


def test_bundled_models_carry_their_figures():
    from ser_edge.model import BUNDLED_MODELS

    for path in BUNDLED_MODELS.values():
        assert path.stat().st_size < 2 * 1024 * 1024
        meta = read_metadata(path)
        si = meta["metrics"]["speaker_independent"]
        assert {"uar_mean", "uar_std", "accuracy_mean", "macro_f1_mean", "n_folds"} <= set(si)
        assert set(meta["metrics"]["robustness"]) >= {"gain -20 dB", "white noise 20 dB SNR"}
        # Every clip of each corpus it names (EmoDB's 81 boredom clips left out); the other
        # corpora's counts are tested against their manifests in test_export_corpora.
        corpora = {c["name"]: c["n_clips"] for c in meta["training"]["corpora"]}
        assert corpora["ravdess"] == 1440 and corpora["emodb"] == 535 - 81
        assert meta["training"]["n_clips"] == sum(corpora.values())
        assert sorted(meta["labels"]) == sorted(
            ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
        )
        FeatureConfig.from_json(json.dumps(meta["feature_config"]))


def test_score_a_built_model_on_a_corpus_it_never_saw(tmp_path, build_model):
    """export.score: the runtime's answers on every clip, recall over the corpus's emotions."""
    from export.paths import corpus_dir
    from export.score import score_corpora
    from ser_edge import Classifier

    root = corpus_dir("korean")
    if root is None:
        pytest.skip("corpus 'korean' not found (set SER_EDGE_DATA)")
    path = build_model(tmp_path / "m.onnx")
    result = score_corpora(path, ["korean"], every=15)
    korean = result["corpora"]["korean"]
    assert korean["clips"] == 20 and set(korean["labels"]) == {"neutral", "happy", "sad", "angry"}
    clf = Classifier(path)
    from export.corpora import parse_corpus

    clips = parse_corpus("korean", root).clips[::15]
    answers = [clf.classify(c.path) for c in clips]
    own = korean["labels"]  # the answer: the likeliest of the corpus's own emotions
    pred = np.array([max(own, key=p.probabilities.__getitem__) for p in answers])
    open_pred = np.array([p.label for p in answers])
    truth = np.array([c.emotion for c in clips])
    for e in own:
        assert korean["recall"][e] == pytest.approx(np.mean(pred[truth == e] == e))
    assert korean["uar"] == pytest.approx(np.mean(list(korean["recall"].values())))
    assert korean["uar_open"] == pytest.approx(np.mean([np.mean(open_pred[truth == e] == e)
                                                        for e in own]))
    assert result["uar_mean"] == korean["uar"]


def test_score_refuses_a_corpus_the_model_was_trained_on(tmp_path, data):
    from export.onnx_export import export_onnx
    from export.score import score_corpora
    from export.train import fit_pipeline

    X, y, _ = data
    model = fit_pipeline(X, y, params={"hidden_layer_sizes": [4], "max_iter": 5})
    export_onnx(model, feature_config=CONFIG, labels=[str(c) for c in model.classes_],
                training={"recipe": {"corpora": ["ravdess", "korean=/x"]}},
                metrics={"speaker_independent": {}}, path=tmp_path / "m.onnx")
    with pytest.raises(ParameterError, match="trained on korean"):
        score_corpora(tmp_path / "m.onnx", ["korean"])
