"""Augmentation and the robustness perturbations: reproducible, as asked, and leak-free."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("audiomentations")
pytest.importorskip("pyroomacoustics")

from export import augment as A  # noqa: E402
from export.protocols import emobox_groups, emodb_pair_groups, in_corpus_splits  # noqa: E402
from ser_edge import dsp  # noqa: E402
from ser_edge.errors import ParameterError  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def clip():
    """A speech-like clip: a gliding voice with harmonics, 1.5 s."""
    t = np.arange(int(1.5 * SR)) / SR
    phase = 2 * np.pi * (140 * t + 30 * t**2)
    y = sum(np.sin(h * phase) / h for h in range(1, 12)) * 0.1 * (1 + np.sin(2 * np.pi * 3 * t))
    return y.astype(np.float32)


@pytest.mark.parametrize("name", A.AUGMENTATIONS)
def test_the_same_seed_gives_the_same_audio(clip, name):
    config = A.AugmentConfig(kinds=(name,), p_default=1.0)
    pool = [np.roll(clip, 1000 * k) for k in range(5)]
    a = A.augment(clip, SR, config, seed=3, clip=7, copy=1, pool=pool)
    b = A.augment(clip, SR, config, seed=3, clip=7, copy=1, pool=pool)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and np.isfinite(a).all()
    if name != "telephone":  # the one augmentation without a parameter to draw
        # Other seeds draw other parameters (a codec's few bit rates can repeat: some differ).
        others = [A.augment(clip, SR, config, seed=s, clip=7, copy=1, pool=pool)
                  for s in range(4, 8)]
        assert any(not np.array_equal(a, c) for c in others)


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0, 30.0])
@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
def test_measured_snr_is_the_requested_one(clip, snr, kind):
    rng = np.random.default_rng(0)
    if kind == "white":
        noise = A.white_noise(len(clip), rng)
    elif kind == "pink":
        noise = A.pink_noise(len(clip), rng)
    else:
        noise = A.babble(len(clip), [np.roll(clip, 777 * k) for k in range(4)], rng)
    noisy = A.mix_at_snr(clip, noise, snr)
    assert abs(A.snr_db(clip, noisy.astype(np.float64) - clip) - snr) < 0.5


def test_pink_noise_falls_3_db_per_octave():
    n = A.pink_noise(1 << 18, np.random.default_rng(1)).astype(np.float64)
    P = np.abs(np.fft.rfft(n)) ** 2
    f = np.fft.rfftfreq(len(n), 1 / SR)
    band = lambda lo: P[(f >= lo) & (f < 2 * lo)].mean()  # noqa: E731
    assert 10 * np.log10(band(250) / band(500)) == pytest.approx(3.0, abs=0.5)


def test_babble_never_carries_a_tested_speaker_into_training():
    """With the EmoBox folds, every training clip's babble pool excludes that fold's test actors."""
    speakers = [f"ravdess:{a:02d}" for a in range(1, 25) for _ in range(3)]
    speakers += [f"emodb:{s}" for s in ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16")
                 for _ in range(2)]
    corpora = [s.split(":")[0] for s in speakers]
    groups = {**emobox_groups(), **{s: 100 + k for s, k in emodb_pair_groups().items()}}
    pools = A.babble_pools(speakers, groups)
    speakers = np.array(speakers)
    for split in in_corpus_splits(speakers, corpora, "ravdess", emobox_groups(), name="emobox"):
        tested = set(split.tested)
        for i in split.train:
            assert not tested & set(speakers[pools[i]]), (speakers[i], split.name)
            assert speakers[i] not in set(speakers[pools[i]])  # never the clip's own voice
    with pytest.raises(ParameterError, match="without a fold group"):
        A.babble_pools(["x:1", "x:2"], {"x:1": 0})
    with pytest.raises(ParameterError, match="alone"):
        A.babble_pools(["x:1", "x:2"], {"x:1": 0, "x:2": 1})


def test_telephone_band_removes_what_a_telephone_does_not_carry(clip):
    noise = A.white_noise(2 * SR, np.random.default_rng(2)) * 0.1
    out = A.telephone(noise, SR)
    P = np.abs(np.fft.rfft(out.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(len(out), 1 / SR)
    inside = P[(f > 500) & (f < 3000)].mean()
    assert P[f > 4500].mean() < 1e-3 * inside
    assert P[(f > 30) & (f < 120)].mean() < 0.2 * inside


@pytest.mark.parametrize("kbps", [16, 32, 64])
def test_mp3_bit_rate(clip, kbps):
    import io

    import soundfile as sf

    y = np.tile(clip, 4)
    out = A.codec(y, SR, "mp3", kbps)
    assert out.shape == y.shape
    # The same encoding to a buffer, to measure its size: within the encoder's steps.
    fmt, subtype, hi, lo = A._CODECS["mp3"]
    buf = io.BytesIO()
    sf.write(buf, y, SR, format=fmt, subtype=subtype, bitrate_mode="CONSTANT",
             compression_level=(hi - kbps) / (hi - lo))
    measured = 8 * len(buf.getvalue()) / (len(y) / SR) / 1000
    assert measured == pytest.approx(kbps, rel=0.15)


def test_evaluation_rooms_ring_for_half_a_second():
    rooms = A.rir_bank(A._EVAL_ROOMS_SEED, 8, (0.5, 0.5), SR)
    measured = [A.rt60(h, SR) for h in rooms]
    assert np.all(np.abs(np.array(measured) - 0.5) < 0.1), measured


def test_perturbations(clip):
    others = [np.roll(clip, 500 * k) for k in range(1, 5)]
    for name, (kind, value) in A.PERTURBATIONS.items():
        out = A.perturb(clip, SR, name, clip=11, others=others)
        padded = kind.startswith("pad")
        assert out.shape == ((len(clip) + 2 * int(0.6 * SR),) if padded else clip.shape), name
        assert np.isfinite(out).all(), name
        np.testing.assert_array_equal(out, A.perturb(clip, SR, name, clip=11, others=others))
        if kind == "gain":
            np.testing.assert_allclose(out, clip * 10 ** (value / 20), rtol=1e-6)
        if kind in ("white", "babble"):
            assert abs(A.snr_db(clip, out.astype(np.float64) - clip) - value) < 0.5
        if padded:
            n = int(0.6 * SR)
            np.testing.assert_array_equal(out[n:-n], clip)
            side = np.r_[out[:n], out[-n:]]
            level = 10 * np.log10(np.mean(side.astype(np.float64) ** 2) + 1e-30)
            assert (level < -200) if kind == "pad_silence" else abs(level - value) < 0.2, name
        if kind == "gate":
            quiet = np.abs(clip) < 10 ** (value / 20)
            assert quiet.any() and not out[quiet].any()
            np.testing.assert_array_equal(out[~quiet], clip[~quiet])
    with pytest.raises(ParameterError, match="unknown perturbation"):
        A.perturb(clip, SR, "underwater", clip=0)
    with pytest.raises(ParameterError, match="other speakers"):
        A.perturb(clip, SR, "babble 10 dB SNR", clip=0)


def test_evaluation_noise_is_not_training_noise(clip):
    """Other seeds: the evaluation's white noise is not any training copy's."""
    config = A.AugmentConfig(kinds=("white",), p_default=1.0, snr_db=(20.0, 20.0))
    evaluated = A.perturb(clip, SR, "white noise 20 dB SNR", clip=5) - clip
    for copy in range(4):
        trained = A.augment(clip, SR, config, seed=0, clip=5, copy=copy) - clip
        assert abs(np.corrcoef(evaluated, trained)[0, 1]) < 0.1


def test_config_checks_and_json():
    config = A.AugmentConfig(kinds=("white", "speed"), copies=3, p={"white": 0.3})
    assert A.AugmentConfig.from_json(config.to_json()) == config
    assert config.probability("white") == 0.3 and config.probability("speed") == 0.5
    with pytest.raises(ParameterError, match="unknown augmentation"):
        A.AugmentConfig(kinds=("chorus",))
    with pytest.raises(ParameterError, match="outside"):
        A.AugmentConfig(kinds=("white",), p_default=1.5)


def test_speed_and_stretch_change_the_length(clip):
    assert len(A.speed(clip, SR, 1.1)) == pytest.approx(len(clip) / 1.1, rel=0.01)
    assert len(A.time_stretch(clip, SR, 1.25)) == pytest.approx(len(clip) / 1.25, rel=0.05)
    shifted = A.pitch_shift(clip, SR, 2.0)
    assert len(shifted) == len(clip)
    S0 = dsp.power_spectrogram(clip, n_fft=2048, hop_length=512).mean(axis=1)
    S1 = dsp.power_spectrogram(shifted, n_fft=2048, hop_length=512).mean(axis=1)
    f = np.fft.rfftfreq(2048, 1 / SR)
    centroid = lambda S: (f * S).sum() / S.sum()  # noqa: E731
    assert centroid(S1) / centroid(S0) == pytest.approx(2 ** (2 / 12), rel=0.05)


def test_pad_and_gate_augmentations_draw_within_their_ranges(clip):
    config = A.AugmentConfig(kinds=("pad", "gate"), p_default=1.0, pad_s=(0.25, 0.5),
                             gate_db=(-55.0, -45.0))
    lengths = set()
    for copy in range(8):
        out = A.augment(clip, SR, config, seed=1, clip=3, copy=copy)
        extra = (len(out) - len(clip)) / 2 / SR
        assert 0.25 - 1e-3 <= extra <= 0.5 + 1e-3
        lengths.add(len(out))
        body = out[(len(out) - len(clip)) // 2:][:len(clip)]
        assert np.all((body == 0) | (body == clip))  # gated: samples kept or zeroed, no other
        assert (body == 0).sum() > (clip == 0).sum()
    assert len(lengths) > 1
    assert A.AugmentConfig.from_json(config.to_json()) == config
    # Configurations that do not use them keep the JSON they had (the caches' keys).
    assert "pad_s" not in A.AugmentConfig(kinds=("white",)).to_json()
