"""Frame-level networks: a tiny one trained for one epoch on real clips, exported, run on the
device path; the Classifier runs a frame model from its metadata alone."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from export.nets.onnx import check_net, export_net  # noqa: E402
from export.nets.train import NetConfig, predict_proba, train_net, validation_speakers  # noqa: E402
from ser_edge import Classifier, audio  # noqa: E402
from ser_edge.errors import AudioError, ModelError  # noqa: E402
from ser_edge.features import FeatureConfig, frame_matrix  # noqa: E402

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
CONFIG = FeatureConfig(features=("mel", "mfcc_delta"), n_mels=32, n_mfcc=13, level_db=-20.0,
                       frames="active", norm="meanvar", stats=("mean",))
TINY = NetConfig(architecture="cnn", channels=(8, 8, 8), epochs=1, crop=32, batch_size=8,
                 val_fraction=0.25, seed=0)


@pytest.fixture(scope="module")
def clips(ravdess_dir):
    """Two clips per emotion from four actors: paths, emotions, speakers."""
    paths = []
    for actor in ("01", "02", "03", "04"):
        files = sorted((ravdess_dir / f"Actor_{actor}").glob("*.flac"))
        paths += [f for f in files if f.name.split("-")[3] == "02"][::4][:4]
    return paths


def _frames(path):
    y, _ = audio.load(path, sr=CONFIG.sr)
    return y, frame_matrix(y, sr=CONFIG.sr, config=CONFIG)


@pytest.fixture(scope="module")
def trained(clips, tmp_path_factory):
    data = [_frames(p) for p in clips]
    y = np.array([EMOTIONS.index(EMOTIONS[int(p.name.split("-")[2]) - 1]) for p in clips])
    speakers = [p.parent.name for p in clips]
    model, history = train_net([[F] for _, F in data], y, speakers, ["ravdess"] * len(clips),
                               TINY, len(EMOTIONS))
    # Check lengths from 0.5 s to 20 s of real speech.
    long = np.concatenate([d[0] for d in data])[: 20 * CONFIG.sr]
    checks = [frame_matrix(z, sr=CONFIG.sr, config=CONFIG)
              for z in (data[0][0][: CONFIG.sr // 2 + 4000], data[1][0], long)]
    path = tmp_path_factory.mktemp("net") / "tiny.onnx"
    export_net(model, feature_config=CONFIG, labels=EMOTIONS, training={"net": TINY.to_dict()},
               metrics={"speaker_independent": {}}, check_frames=checks,
               min_frames=model.min_frames, path=path)
    return model, history, path, data, checks


def test_one_epoch_trains_and_holds_out_training_speakers(trained, clips):
    _, history, *_ = trained
    assert len(history["epochs"]) == 1 and history["best_epoch"] == 1
    speakers = [p.parent.name for p in clips]
    held = validation_speakers(speakers, ["ravdess"] * len(clips), 0.25, TINY.seed)
    assert history["val_speakers"] == sorted(held) and len(held) == 1  # a quarter of four
    assert held == validation_speakers(speakers, ["ravdess"] * len(clips), 0.25, TINY.seed)
    assert history["n_parameters"] > 0


def test_onnx_equals_pytorch_on_clips_of_several_lengths(trained):
    model, _, path, _, checks = trained
    assert len({F.shape[1] for F in checks}) == 3  # the time axis is really dynamic
    assert check_net(path.read_bytes(), model, checks) < 1e-4


def test_classifier_runs_a_frame_model_from_metadata_alone(trained, clips):
    model, _, path, data, _ = trained
    clf = Classifier(path)
    assert clf.input_kind == "frames" and clf.labels == EMOTIONS
    # The network needs 4 frames (two poolings), the MFCC deltas 9: the larger counts.
    assert clf.feature_config == CONFIG and model.min_frames == 4 and clf.min_frames == 9
    p = clf.classify(clips[0], vad=False)
    expected = predict_proba(model, [data[0][1]])[0]
    np.testing.assert_allclose(list(p.probabilities.values()), expected, atol=1e-4)
    assert p.label == EMOTIONS[int(np.argmax(expected))]
    q = clf.predict(data[0][0], CONFIG.sr)
    assert q.label == p.label
    assert clf.features(clips[0]).shape == data[0][1].shape


def test_clips_shorter_than_the_network_needs_are_refused(trained):
    _, _, path, data, _ = trained
    clf = Classifier(path)
    with pytest.raises(AudioError, match=r"too short: 70 ms, fewer than the 9 analysis frames"):
        clf.predict(data[0][0][int(0.9 * CONFIG.sr): int(0.97 * CONFIG.sr)], CONFIG.sr)
    # Long enough in all, but only a 20 ms burst of sound: too few active frames.
    y = 1e-4 * np.random.default_rng(0).standard_normal(CONFIG.sr).astype(np.float32)
    y[8000:8320] += 0.5 * np.sin(np.arange(320) * 2 * np.pi * 300 / CONFIG.sr)
    with pytest.raises(AudioError, match=r"too short: [1-8] active analysis frames, the model "
                                         r"needs at least 9"):
        clf.predict(y, CONFIG.sr)


def test_a_frame_model_with_the_wrong_width_is_refused(trained, tmp_path):
    import onnx

    _, _, path, *_ = trained
    proto = onnx.load(str(path))
    for prop in proto.metadata_props:
        if prop.key == "feature_config":
            prop.value = FeatureConfig(features=("mel",), n_mels=40, frames="active").to_json()
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(ModelError, match="40 rows per frame but the model's input takes 45"):
        Classifier(bad)


def test_a_short_clip_is_repeated_along_time_not_across_rows():
    from export.nets.train import _crop

    rng = np.random.default_rng(0)
    F = np.arange(3 * 5, dtype=np.float32).reshape(3, 5)  # 3 rows, 5 frames
    out = _crop(F, 12, rng)
    assert out.shape == (3, 12)
    for row in range(3):  # every row holds its own values only, in time order, repeated
        np.testing.assert_array_equal(out[row], np.tile(F[row], 3)[:12])
    assert _crop(np.zeros((3, 0), np.float32), 8, rng).shape == (3, 8)
    long = np.arange(2 * 40, dtype=np.float32).reshape(2, 40)
    cut = _crop(long, 16, rng)
    start = int(cut[0, 0])
    np.testing.assert_array_equal(cut, long[:, start:start + 16])


# -- the pooled network: masked, balanced, adversarial -------------------------------------------


def _pooled_data(rng: np.random.Generator):
    """Three 'corpora' of vectors: the class is in dimensions 0-3, the corpus in dimension 5;
    corpus c has classes {0, 1, 2} minus c's own missing one."""
    n_classes, rows = 3, []
    for c in range(3):
        for k in range(n_classes):
            if k == (c + 2) % 3 and c > 0:  # corpora 1 and 2 each lack one class
                continue
            for s in range(4):  # speakers
                for _ in range(12):
                    x = rng.normal(0, 1, 8).astype(np.float32)
                    x[k] += 3.0
                    x[5] += 4.0 * c
                    rows.append((x, k, f"c{c}:{s}", f"c{c}"))
    X, y, speakers, corpora = map(np.array, zip(*rows, strict=True))
    return X, y, speakers, corpora


def test_reverse_gradient_reverses_and_scales():
    from export.nets.modules import reverse_gradient

    x = torch.ones(3, requires_grad=True)
    (reverse_gradient(x, 0.5) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([-0.5, -1.0, -1.5]))


@pytest.mark.parametrize("options", [{}, {"mask_labels": True, "balance": True},
                                     {"adversary": 0.5}])
def test_a_pooled_network_learns_and_repeats_itself(options, rng):
    from export.nets.train import corpus_class_weights, corpus_label_mask

    X, y, speakers, corpora = _pooled_data(rng)
    adversary = options.pop("adversary", 0.0)
    config = NetConfig(architecture="mlpnet", hidden=16, epochs=20, patience=20, batch_size=16,
                       adversary=adversary)
    versions = [[x] for x in X]
    model, history = train_net(versions, y, speakers, corpora, config, 3, **options)
    again, _ = train_net(versions, y, speakers, corpora, config, 3, **options)
    P, Q = predict_proba(model, list(X)), predict_proba(again, list(X))
    np.testing.assert_array_equal(P, Q)  # seeded: the same weights
    assert np.mean(np.argmax(P, axis=1) == y) > 0.75 and history["best_val_uar"] > 0.7
    w = corpus_class_weights(y, corpora)
    assert w.sum() == pytest.approx(1.0)
    for c in np.unique(corpora):  # every corpus weighs a third, every class in it alike
        assert w[corpora == c].sum() == pytest.approx(1 / 3)
    mask = corpus_label_mask(y, corpora, 3)
    assert mask[corpora == "c0"].all() and mask[corpora == "c1"].sum(axis=1).max() == 2
