"""Evaluation protocols and scoring: EmoBox folds, speaker independence, calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest

from export import protocols
from export.experiment import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    fold_scores,
    robustness,
)


def test_emobox_folds_are_the_published_ones():
    shared = protocols.EMOBOX_FOLDS_FILE
    data = json.loads(shared.read_text())
    groups = protocols.emobox_groups()
    assert sorted(groups) == [f"ravdess:{a:02d}" for a in range(1, 25)]
    assert [sorted(a for a, g in groups.items() if g == k) for k in range(6)] == [
        sorted(f"ravdess:{a:02d}" for a in fold["test_actors"]) for fold in data["folds"]]
    assert protocols.emobox_published()["hubert-base"] == pytest.approx(0.6543)


def test_copy_of_the_protocol_equals_the_shared_one():
    from export.paths import data_root

    shared = data_root().parent / "protocols" / "ravdess-emobox-folds.json"
    if not shared.is_file():
        pytest.skip(f"{shared} not found (the copy in export/protocols is used)")
    assert json.loads(shared.read_text()) == json.loads(protocols.EMOBOX_FOLDS_FILE.read_text())


def test_splits_are_speaker_independent():
    speakers = [f"ravdess:{a:02d}" for a in range(1, 25) for _ in range(5)]
    speakers += [f"emodb:{s}" for s in ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16")
                 for _ in range(4)]
    corpora = [s.split(":")[0] for s in speakers]
    speakers = np.array(speakers)
    for corpus, groups in [("ravdess", protocols.emobox_groups()),
                           ("ravdess", protocols.contiguous_groups()),
                           ("emodb", protocols.emodb_pair_groups())]:
        splits = protocols.in_corpus_splits(speakers, corpora, corpus, groups, name="x")
        tested = np.concatenate([s.test for s in splits])
        assert sorted(tested) == [i for i, c in enumerate(corpora) if c == corpus]  # once each
        for s in splits:
            assert not set(speakers[s.train]) & set(speakers[s.test])
            # the other corpus trains in every fold
            assert {c for i, c in enumerate(corpora) if i in set(s.train)} == {"ravdess", "emodb"}
    assert protocols.contiguous_groups()["ravdess:05"] == 1


def test_cross_corpus_split_keeps_shared_emotions():
    corpora = ["a"] * 4 + ["b"] * 4
    emotions = ["x", "y", "z", "x", "x", "y", "w", "y"]
    s = protocols.cross_corpus_split(corpora, emotions, "a", "b")
    assert list(s.train) == [0, 1, 3] and list(s.test) == [4, 5, 7]


def test_expected_calibration_error():
    # Confident and always right: 0. Always 0.9 sure and right half the time: 0.4.
    P = np.array([[1.0, 0.0]] * 10)
    assert expected_calibration_error(P, np.zeros(10, int)) == pytest.approx(0.0)
    P = np.array([[0.9, 0.1]] * 10)
    truth = np.array([0, 1] * 5)
    assert expected_calibration_error(P, truth) == pytest.approx(0.4)


def test_temperature_recovers_an_overconfident_model():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 5)) * 2
    P_true = apply_temperature(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 1.0)
    truth = np.array([rng.choice(5, p=p) for p in P_true])
    overconfident = apply_temperature(P_true, 0.5)  # sharpened twice
    T = fit_temperature(overconfident, truth)
    assert T == pytest.approx(2.0, rel=0.1)
    assert (expected_calibration_error(apply_temperature(overconfident, T), truth)
            < expected_calibration_error(overconfident, truth))


def test_robustness_counts_unchanged_labels():
    result = {"labels": ["a", "b"], "splits": [
        {"name": "f1", "test": np.array([0, 1]), "tested": ["s1"],
         "proba": {"clean": np.array([[0.9, 0.1], [0.2, 0.8]]),
                   "noise": np.array([[0.6, 0.4], [0.7, 0.3]])}},
        {"name": "f2", "test": np.array([2, 3]), "tested": ["s2"],
         "proba": {"clean": np.array([[0.9, 0.1], [0.1, 0.9]]),
                   "noise": np.array([[0.9, 0.1], [0.4, 0.6]])}}]}
    y = np.array(["a", "b", "a", "b"])
    rob = robustness(result, y)
    assert rob["noise"]["label_unchanged"] == pytest.approx(0.75)
    assert rob["noise"]["uar"] == pytest.approx((0.5 + 1.0) / 2)
    assert fold_scores(result, y)["uar_mean"] == pytest.approx(1.0)
