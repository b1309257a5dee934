"""The fused model against Classifier.predict on real clips: RAVDESS and EmoDB, 0.5 s to 60 s.

For every bundled model (``ser_edge.model.BUNDLED_MODELS``: pooled-vector models and frame-level
networks alike), a model of the robust configuration (every level option on:
``export.fused_parity.ROBUST``, fitted on a few dozen RAVDESS clips by ``fit_model``) and a tiny
frame network (``fit_net`` on ``NET_CONFIG``: active frames, per-utterance normalisation, deltas;
conftest's ``frame_net``): the same label on at least 99.5% of the signals, probabilities within
1e-3, and every pooled feature (or, for a frame network, every value of its frame matrix) within
3e-5 of its block's scale (the per-feature differences of the float32 and float64 DFT are
printed); a frame network's graph keeps exactly numpy's frames. The default run takes a sample of
each corpus; the slow run takes every clip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnx")

from export.data import missing_corpus  # noqa: E402
from export.fuse import bundled_models, fuse_file  # noqa: E402
from export.fused_parity import ROBUST, fit_model, measure_parity, parity_items  # noqa: E402
from export.paths import corpus_dir  # noqa: E402
from ser_edge.model import Classifier  # noqa: E402

MODELS = bundled_models()
#: Not files: a model of ROBUST's features, and a tiny frame network, fitted for the test.
FITTED_ROBUST = "robust configuration (fitted)"
FITTED_NET = "frame network (fitted)"


@pytest.fixture(scope="module", params=[p.name for p in MODELS] + [FITTED_ROBUST, FITTED_NET])
def pair(request, tmp_path_factory) -> tuple[Classifier, Classifier]:
    if request.param == FITTED_NET:
        source, fused = request.getfixturevalue("frame_net")
        return Classifier(source), Classifier(fused)
    folder = tmp_path_factory.mktemp("fused")
    if request.param == FITTED_ROBUST:
        pytest.importorskip("sklearn")
        if corpus_dir("ravdess") is None:  # the robust model is fitted on it
            pytest.skip(missing_corpus("ravdess"))
        source = fit_model(ROBUST, folder / "robust.onnx")
    else:
        source = next(p for p in MODELS if p.name == request.param)
    out = folder / f"{source.stem}-waveform.onnx"
    fuse_file(source, out)
    return Classifier(source), Classifier(out)


def _table(summary: dict) -> str:
    lines = [f"{summary['n_signals']} signals {summary['by_kind']}: same label "
             f"{summary['same_label']}, largest probability difference "
             f"{summary['max_probability_difference']:.2e} ({summary['worst_signal']})",
             f"{'feature':12s} " + "  ".join(f"{dt + ' max abs':>16s} {'rel':>8s}"
                                              for dt in summary["features"])]
    rows = zip(*summary["features"].values(), strict=True)
    for per_dtype in rows:
        lines.append(f"{per_dtype[0]['feature']:12s} " + "  ".join(
            f"{r['max_abs']:16.2e} {r['max_rel']:8.1e}" for r in per_dtype))
    return "\n".join(lines)


def _check(pair, items, capsys) -> None:
    numpy_clf, fused_clf = pair
    parity = measure_parity(numpy_clf, fused_clf, items)
    if parity.n == 0:
        pytest.skip(missing_corpus("ravdess") + "; " + missing_corpus("emodb"))
    summary = parity.summary(numpy_clf.feature_config)
    with capsys.disabled():
        print(f"\n{fused_clf.model_path.name}: " + _table(summary))
    assert summary["same_label_share"] >= 0.995, summary["different_label"]
    assert summary["max_probability_difference"] <= 1e-3, summary["worst_signal"]
    assert not summary["frame_count_differs"]
    # Measured over both corpora (3984 signals): 7.6e-6 at most, the mel dB std with the float32
    # DFT (2.2e-7 with a float64 DFT); 3.3e-6 for the MFCC std, numpy's own float32 sums over
    # thousands of frames; a frame network's frames (NET_CONFIG) 2.5e-6. A guard against
    # regressions: the contract is the probabilities.
    for rows in summary["features"].values():
        for row in rows:
            assert row["max_rel"] <= 3e-5, row


def test_fused_parity_sample(pair, ravdess_dir: Path, emodb_dir: Path, capsys) -> None:
    # 24 RAVDESS clips (all 24 actors), 12 EmoDB clips, their middle 0.5 s, and two 60 s
    # recordings: one of RAVDESS at 48 kHz, one of EmoDB at 16 kHz.
    items = [*parity_items(("ravdess",), step=60, long_every=24),
             *parity_items(("emodb",), step=45, long_every=10)]
    _check(pair, items, capsys)


@pytest.mark.slow
def test_fused_parity_all_clips(pair, ravdess_dir: Path, emodb_dir: Path, capsys) -> None:
    # Every clip of both corpora, its middle 0.5 s, and a 60 s recording per speaker.
    _check(pair, parity_items(("ravdess", "emodb")), capsys)
