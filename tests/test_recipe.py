"""Recipes: the file format, and a tiny recipe evaluated and built end to end on real clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from export.augment import AugmentConfig
from export.data import missing_corpus
from export.recipe import EMOTIONS, TrainingRecipe
from ser_edge.errors import ModelError, ParameterError
from ser_edge.features import FeatureConfig

RECIPES = Path(__file__).resolve().parent.parent / "export" / "recipes"


def test_recipe_round_trip_and_checks(tmp_path):
    recipe = TrainingRecipe(name="x", model="mlp", feature_config=FeatureConfig(level_db=-20.0),
                            params={"alpha": 0.5}, seeds=(0, 1),
                            augment=AugmentConfig(kinds=("white",), copies=1))
    path = tmp_path / "x.json"
    path.write_text(json.dumps(recipe.to_dict()))
    assert TrainingRecipe.load(path) == recipe
    with pytest.raises(ParameterError, match="unknown model 'gbm'"):
        TrainingRecipe(name="x", model="gbm")
    path.write_text('{"name": "x", "colour": "red"}')
    with pytest.raises(ParameterError, match="unknown fields: colour"):
        TrainingRecipe.load(path)
    with pytest.raises(ParameterError, match="not a valid recipe"):
        TrainingRecipe.load(tmp_path / "missing.json")


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.json")), ids=lambda p: p.stem)
def test_the_committed_recipes_load(path):
    recipe = TrainingRecipe.load(path)
    assert recipe.name == path.stem and recipe.emotions == EMOTIONS
    if recipe.is_net:
        assert recipe.net_config().architecture == recipe.model


def _ravdess_subset(root: Path, dst: Path) -> None:
    """One clip of each emotion per actor (192 clips), as symbolic links."""
    for folder in sorted(root.glob("Actor_*")):
        (dst / folder.name).mkdir(parents=True)
        for code in range(1, 9):
            f = sorted(folder.glob(f"03-01-{code:02d}-*.flac"))[-1]
            (dst / folder.name / f.name).symlink_to(f)


@pytest.mark.slow
def test_a_tiny_recipe_end_to_end(ravdess_dir, emodb_dir, tmp_path):
    """Evaluate (EmoBox folds with robustness and calibration, cross-corpus) and build."""
    from export.recipe import build_model, evaluate_recipe
    from export.report import write_recipe_report
    from ser_edge import Classifier

    _ravdess_subset(ravdess_dir, tmp_path / "ravdess")
    (tmp_path / "emodb").mkdir()
    for f in sorted(emodb_dir.glob("*.flac"))[::12]:
        (tmp_path / "emodb" / f.name).symlink_to(f)
    recipe = TrainingRecipe(
        name="tiny", corpora=(f"ravdess={tmp_path / 'ravdess'}", f"emodb={tmp_path / 'emodb'}"),
        feature_config=FeatureConfig(features=("mfcc", "mfcc_delta"), n_mfcc=13, level_db=-20.0,
                                     frames="active", top_db=60.0),
        params={"hidden_layer_sizes": [8], "max_iter": 30}, seeds=(0, 1),
        augment=AugmentConfig(kinds=("white",), copies=1, p_default=1.0))
    cache = tmp_path / "cache"
    report = evaluate_recipe(recipe, jobs=2, cache_dir=cache, protocols=("emobox", "cross"))
    emobox = report["emobox"]
    assert emobox["n_folds"] == 6 and 0.0 <= emobox["uar_mean"] <= 1.0
    assert set(emobox["robustness"]) == {
        "gain -20 dB", "gain -10 dB", "gain +10 dB", "white noise 20 dB SNR",
        "white noise 10 dB SNR", "babble 10 dB SNR", "telephone band", "MP3 32 kbit/s",
        "reverberation RT60 0.5 s", "digital silence 0.6 s around",
        "white noise -60 dBFS 0.6 s around", "gate under -50 dBFS"}
    # Level normalisation: a gain changes no label.
    for name in ("gain -20 dB", "gain -10 dB", "gain +10 dB"):
        assert emobox["robustness"][name]["label_unchanged"] == 1.0
    assert emobox["calibration"]["temperature"] > 0
    assert set(report["cross_corpus"]) == {"ravdess -> emodb", "emodb -> ravdess"}
    write_recipe_report(tmp_path / "report", report)
    assert (tmp_path / "report" / "summary.md").read_text().count("EmoBox") > 2
    assert (tmp_path / "report" / "robustness.png").stat().st_size > 0
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    summary = build_model(recipe, tmp_path / "tiny.onnx", report=saved, cache_dir=cache)
    clf = Classifier(tmp_path / "tiny.onnx")
    assert clf.labels == tuple(sorted(EMOTIONS)) and clf.feature_config == recipe.feature_config
    assert clf.metadata["training"]["temperature"] == pytest.approx(summary["temperature"])
    assert clf.metadata["metrics"]["speaker_independent"]["uar_mean"] == emobox["uar_mean"]
    clip = next((tmp_path / "ravdess").glob("Actor_03/*.flac"))
    p = clf.classify(clip)
    assert p.label in EMOTIONS and np.isclose(sum(p.probabilities.values()), 1.0, atol=1e-5)


def test_an_ensemble_recipe_checks_its_members():
    mlp = TrainingRecipe(name="a", model="mlp", feature_config=FeatureConfig(level_db=-20.0))
    cnn = TrainingRecipe(name="b", model="cnn",
                         feature_config=FeatureConfig(level_db=-20.0, norm="meanvar"))
    both = TrainingRecipe(name="ab", model="ensemble", members=(mlp, cnn))
    assert both.weights == (0.5, 0.5) and both.feature_config == mlp.feature_config
    assert TrainingRecipe.from_dict(both.to_dict()) == both
    with pytest.raises(ParameterError, match="other features"):
        TrainingRecipe(name="x", model="ensemble", members=(
            mlp, TrainingRecipe(name="c", model="cnn", feature_config=FeatureConfig(n_mels=64))))
    with pytest.raises(ParameterError, match="blocks the first member does not compute"):
        TrainingRecipe(name="x", model="ensemble", members=(
            mlp, TrainingRecipe(name="c", model="cnn", feature_config=FeatureConfig(
                features=("mfcc_delta",), stats=("mean",), level_db=-20.0))))
    with pytest.raises(ParameterError, match="sum to 1"):
        TrainingRecipe(name="x", model="ensemble", members=(mlp, cnn), weights=(0.9, 0.9))
    with pytest.raises(ParameterError, match="at least two"):
        TrainingRecipe(name="x", model="ensemble", members=(mlp,))
    with pytest.raises(ParameterError, match="for model 'ensemble' only"):
        TrainingRecipe(name="x", model="mlp", members=(mlp, cnn))
    # Stored weights: float32 unless asked, and then only the ensemble's file changes.
    assert "storage" not in both.to_dict() and "storage" not in mlp.to_dict()
    half = TrainingRecipe(name="ab", model="ensemble", members=(mlp, cnn), storage="float16")
    assert TrainingRecipe.from_dict(half.to_dict()) == half
    assert TrainingRecipe.from_dict({**both.to_dict(), "combine": "geometric"}).combine == (
        "geometric")
    with pytest.raises(ParameterError, match="unknown combine"):
        TrainingRecipe(name="x", model="ensemble", members=(mlp, cnn), combine="max")
    with pytest.raises(ParameterError, match="unknown storage"):
        TrainingRecipe(name="x", model="ensemble", members=(mlp, cnn), storage="int8")
    with pytest.raises(ParameterError, match="for model 'ensemble' only"):
        TrainingRecipe(name="x", storage="float16")


def test_combine_mean_and_geometric():
    from export.ensemble import combine
    a = np.array([[0.7, 0.3, 0.0], [0.2, 0.5, 0.3]])
    b = np.array([[0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    np.testing.assert_allclose(combine([a, b], (0.5, 0.5)), (a + b) / 2)
    g = combine([a, b], (0.5, 0.5), "geometric")
    np.testing.assert_allclose(g.sum(axis=1), 1.0)
    np.testing.assert_allclose(g[1], a[1])  # members that agree give their answer
    # one member ruling a label out keeps it out (the mean would give it 0.3)
    assert g[0, 2] < 1e-5 and g[0, 1] > g[0, 0]
    np.testing.assert_allclose(combine([a, b], (1.0, 0.0), "geometric")[1], a[1])
    with pytest.raises(ModelError, match="unknown combination"):
        combine([a, b], (0.5, 0.5), "median")


@pytest.mark.slow
def test_a_tiny_ensemble_end_to_end(ravdess_dir, emodb_dir, tmp_path):
    """An MLP and a CNN over one frame matrix: evaluated from the members' (cached) runs,
    built as one graph that the runtime runs as a frame model, equal to its members."""
    from export.ensemble import member_inputs
    from export.recipe import build_model, evaluate_recipe
    from ser_edge import Classifier
    from ser_edge.audio import load
    from ser_edge.features import feature_vector, frame_matrix

    _ravdess_subset(ravdess_dir, tmp_path / "ravdess")
    (tmp_path / "emodb").mkdir()
    for f in sorted(emodb_dir.glob("*.flac"))[::12]:
        (tmp_path / "emodb" / f.name).symlink_to(f)
    corpora = (f"ravdess={tmp_path / 'ravdess'}", f"emodb={tmp_path / 'emodb'}")
    config = FeatureConfig(features=("mfcc", "chroma", "mfcc_delta"), n_mfcc=13,
                           level_db=-20.0, frames="active", top_db=60.0,
                           stats={"mfcc": ("mean", "std"), "chroma": ("mean",),
                                  "mfcc_delta": ("std",)})
    mlp = TrainingRecipe(name="m", corpora=corpora, feature_config=config,
                         params={"hidden_layer_sizes": [8], "max_iter": 30}, seeds=(0,))
    # The network takes two of the three blocks, in its own order.
    cnn = TrainingRecipe(name="c", model="cnn", corpora=corpora,
                         feature_config=FeatureConfig(**{
                             **config.__dict__, "norm": "meanvar", "features": ("chroma", "mfcc"),
                             "stats": {"chroma": ("mean",), "mfcc": ("mean",)}}),
                         net={"channels": [8, 8], "hidden": 8, "epochs": 1, "crop": 64})
    both = TrainingRecipe(name="mc", model="ensemble", members=(mlp, cnn), weights=(0.4, 0.6))
    cache = tmp_path / "cache"
    report = evaluate_recipe(both, jobs=2, cache_dir=cache, protocols=("emobox",))
    parts = [evaluate_recipe(m, jobs=2, cache_dir=cache, protocols=("emobox",))
             for m in (mlp, cnn)]  # the members' runs, read back from the cache
    runs = [r["_emobox_result"]["splits"] for r in (report, *parts)]
    for s, a, b in zip(*runs, strict=True):
        assert np.array_equal(s["test"], a["test"])
        for variant in ("clean", "white noise 20 dB SNR"):
            np.testing.assert_allclose(s["proba"][variant],
                                       0.4 * a["proba"][variant] + 0.6 * b["proba"][variant])
        assert s["temperature"] > 0  # fitted on the members' shared held-out speakers
    assert report["emobox"]["robustness"]["gain -20 dB"]["label_unchanged"] == 1.0
    # The held-out training speakers' UAR (for choices between models): one per fold.
    held = report["emobox"]["held_out"]
    assert len(held["folds"]) == len(runs[0]) and 0.0 <= held["uar_mean"] <= 1.0
    for s, fold_uar in zip(runs[0], held["folds"], strict=True):
        truth = np.asarray(report["truth"])[s["held_out"]["index"]]
        assert not set(s["held_out"]["index"]) & set(s["test"])  # never the test fold
        assert fold_uar == pytest.approx(np.mean([
            np.mean(np.argmax(s["held_out"]["proba"][truth == e], axis=1) == EMOTIONS.index(e))
            for e in sorted(set(truth))]))

    summary = build_model(both, tmp_path / "mc.onnx", report=report, cache_dir=cache)
    assert len(list((cache / "members").glob("*.onnx"))) == 2  # kept for other ensembles
    clf = Classifier(tmp_path / "mc.onnx")
    assert clf.input_kind == "frames" and clf.feature_config == config
    assert clf.min_frames >= 4 and summary["temperature"] > 0
    assert set(clf.metadata["training"]["history"]) == {"c"}
    clip = next((tmp_path / "ravdess").glob("Actor_03/*.flac"))
    p = clf.classify(clip)
    assert p.label in EMOTIONS and np.isclose(sum(p.probabilities.values()), 1.0, atol=1e-5)
    # The fused model (waveform in) computes the shared frames in the graph: same answer.
    from export.fuse import fuse_file
    fuse_file(tmp_path / "mc.onnx", tmp_path / "mc-waveform.onnx")
    q = Classifier(tmp_path / "mc-waveform.onnx").classify(clip)
    assert q.label == p.label
    assert max(abs(q.probabilities[k] - v) for k, v in p.probabilities.items()) < 1e-4
    # What the graph's branches are fed is what the runtime computes for the members alone.
    y, sr = load(clip, sr=config.sr)
    F = frame_matrix(y, sr=sr, config=config)
    vector, frames = member_inputs(F, [("features", config), ("frames", cnn.feature_config)],
                                   config)
    # (the same numbers, summed in another order: numpy's pairwise sums follow memory layout)
    np.testing.assert_allclose(vector[0], feature_vector(y, sr=sr, config=config), rtol=1e-6,
                               atol=1e-5)
    np.testing.assert_allclose(frames[0], frame_matrix(y, sr=sr, config=cnn.feature_config),
                               atol=1e-5)
    # The geometric combination from the same cached runs; stored in half precision: the same
    # cached members, a smaller file, (almost) the same answers.
    import dataclasses

    from export.ensemble import combine
    half = dataclasses.replace(both, combine="geometric", storage="float16")
    geo = evaluate_recipe(half, jobs=2, cache_dir=cache, protocols=("emobox",))
    for s, a, b in zip(geo["_emobox_result"]["splits"], *runs[1:], strict=True):
        np.testing.assert_allclose(s["proba"]["clean"], combine(
            [a["proba"]["clean"], b["proba"]["clean"]], (0.4, 0.6), "geometric"))
    build_model(half, tmp_path / "mc-half.onnx", report=geo, cache_dir=cache)
    assert len(list((cache / "members").glob("*.onnx"))) == 2  # no member trained again
    import onnx
    n_big = sum(int(np.prod(i.dims)) for i in onnx.load(str(tmp_path / "mc.onnx")).graph.initializer
                if i.data_type == onnx.TensorProto.FLOAT and np.prod(i.dims) >= 256)
    saved = (tmp_path / "mc.onnx").stat().st_size - (tmp_path / "mc-half.onnx").stat().st_size
    assert n_big > 0 and saved > 1.5 * n_big  # two bytes per stored weight, less the casts
    clf_half = Classifier(tmp_path / "mc-half.onnx")
    rounding = clf_half.metadata["training"]["storage"]
    assert rounding["dtype"] == "float16" and rounding["clips_checked"] >= 5
    assert rounding["max_probability_change"] < 1e-2
    assert len(list((cache / "members").glob("*.onnx"))) == 2


def _corpus_subset(root: Path, dst: Path, step: int) -> None:
    """Every ``step``-th audio file under ``root``, linked at the same relative path."""
    files = sorted(p for p in root.rglob("*") if p.suffix in (".flac", ".opus"))
    for f in files[::step]:
        link = dst / f.relative_to(root)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(f)


def test_adapt_mask_and_balance_checks():
    config = FeatureConfig(features=("mfcc", "chroma"))
    with pytest.raises(ParameterError, match="need a network"):
        TrainingRecipe(name="x", model="mlp", mask_labels=True)
    with pytest.raises(ParameterError, match="must name some of the features"):
        TrainingRecipe(name="x", model="mlpnet", feature_config=config, adapt={"blocks": ["mel"]})
    with pytest.raises(ParameterError, match="unknown fields: colour"):
        TrainingRecipe(name="x", model="mlpnet", feature_config=config,
                       adapt={"blocks": ["mfcc"], "colour": 1})
    recipe = TrainingRecipe(name="x", model="mlpnet", feature_config=config, mask_labels=True,
                            balance=True, adapt={"blocks": ["mfcc"], "min_seconds": 5})
    assert TrainingRecipe.from_dict(recipe.to_dict()) == recipe
    assert recipe.to_dict()["adapt"] == {"blocks": ["mfcc"], "min_seconds": 5.0}
    # Recipes without them keep the fields they had (the cached runs' keys).
    assert "adapt" not in TrainingRecipe(name="y").to_dict()


@pytest.mark.slow
def test_a_tiny_multi_corpus_recipe_end_to_end(tmp_path):
    """Four corpora, a pooled network with masked, balanced training and adaptation: leave one
    corpus out with and without adaptation, then the built model adapts on the device."""
    from export.paths import corpus_dir
    from export.recipe import build_model, evaluate_recipe
    from export.report import write_recipe_report
    from ser_edge import Classifier

    roots = {name: corpus_dir(name) for name in ("ravdess", "emodb", "korean", "turev")}
    missing = [name for name, root in roots.items() if root is None]
    if missing:
        pytest.skip("; ".join(missing_corpus(name) for name in missing))
    for name, step in (("ravdess", 7), ("emodb", 5), ("korean", 3), ("turev", 16)):
        _corpus_subset(roots[name], tmp_path / name, step)
    recipe = TrainingRecipe(
        name="tiny-loco", model="mlpnet",
        corpora=tuple(f"{n}={tmp_path / n}" for n in ("ravdess", "emodb", "korean", "turev")),
        feature_config=FeatureConfig(features=("mfcc", "mel"), n_mfcc=13, n_mels=32,
                                     stats={"mfcc": ("mean", "std"), "mel": ("std",)},
                                     level_db=-20.0, frames="active", top_db=60.0,
                                     active_range_db=25.0, active_floor_range_db=40.0),
        net={"hidden": 16, "epochs": 6, "patience": 3, "batch_size": 16}, seeds=(0, 1),
        mask_labels=True, balance=True, adapt={"blocks": ["mfcc", "mel"], "min_seconds": 4.0})
    cache = tmp_path / "cache"
    report = evaluate_recipe(recipe, jobs=2, cache_dir=cache, protocols=("loco",))
    loco = report["loco"]
    assert list(loco["corpora"]) == ["emodb", "korean", "ravdess", "turev"]
    korean = loco["corpora"]["korean"]
    assert set(korean["recall"]) == {"neutral", "happy", "angry", "sad"}
    # TurEV's calm is scored: RAVDESS has calm; EmoDB's boredom is not among the labels.
    assert "calm" in loco["corpora"]["turev"]["recall"]
    assert loco["uar_mean"] == pytest.approx(np.mean([c["uar"] for c in
                                                      loco["corpora"].values()]))
    assert 0 <= loco["uar_open_mean"] <= 1 and all("uar_open" in c
                                                   for c in loco["corpora"].values())
    assert set(loco["adapted"]) == {"adapted 10 s", "adapted 30 s", "adapted 60 s", "adapted"}
    for entry in loco["adapted"].values():
        assert set(entry["corpora"]) == set(loco["corpora"])
    folder = write_recipe_report(tmp_path / "report", report)
    summary = (folder / "summary.md").read_text()
    assert "## Leave one corpus out" in summary and "Adapted to the speaker" in summary
    assert (folder / "confusion_loco_korean.png").is_file()

    out = tmp_path / "tiny.onnx"
    build_model(recipe, out, report=report, jobs=2, cache_dir=cache)
    clf = Classifier(out, adapt=True)
    assert clf.adaptation is not None and clf.adaptation.min_seconds == 4.0
    clips = sorted((tmp_path / "korean").rglob("*.opus"))[:6]
    unadapted = Classifier(out)
    first, *_ = [clf.classify(c) for c in clips]
    assert first.probabilities == unadapted.classify(clips[0]).probabilities
    assert clf.adaptation.ready(clf.profile)
    assert clf.classify(clips[0]).probabilities != first.probabilities


def test_an_adapting_ensemble_has_no_member_that_would_see_unknown_input():
    config = FeatureConfig(features=("mfcc", "mel"), n_mfcc=13, n_mels=32, frames="active",
                           level_db=-20.0)
    adapt = {"blocks": ["mfcc", "mel"], "min_seconds": 10}
    pooled = TrainingRecipe(name="a", model="mlpnet", feature_config=config, adapt=adapt)
    plain = TrainingRecipe(name="b", model="mlpnet", feature_config=config)
    import dataclasses

    cnn = TrainingRecipe(name="c", model="cnn",
                         feature_config=dataclasses.replace(config, norm="meanvar"))
    TrainingRecipe(name="ok", model="ensemble", members=(pooled, cnn))
    with pytest.raises(ParameterError, match="'b' would see frames adapted"):
        TrainingRecipe(name="bad", model="ensemble", members=(pooled, plain))
