"""Level invariance: frame levels, active frames, the level gain, gain-invariant features."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ser_edge import dsp, features, level
from ser_edge.errors import ParameterError
from ser_edge.features import FeatureConfig

#: A configuration with every level option on (the robust recipe's kind).
ROBUST = FeatureConfig(
    features=("mfcc", "chroma", "mel", "mfcc_delta"),
    stats={"mfcc": ("mean", "std"), "chroma": ("mean", "std"), "mel": ("std",),
           "mfcc_delta": ("std",)},
    top_db=60.0, level_db=-20.0, frames="active",
)


def _speech_in_silence(signal, sr=16000, seed=0):
    """Speech-like vibrato between stretches of faint noise: 0.5 s, 1.5 s, 0.5 s."""
    rng = np.random.default_rng(seed)
    voice = signal("vibrato", sr, duration=1.5, seed=seed)
    quiet = 1e-4 * rng.standard_normal(sr // 2).astype(np.float32)
    return np.concatenate([quiet, voice, quiet]).astype(np.float32)


def test_rms_of_a_full_scale_sine_under_the_window():
    sr, n_fft = 16000, 1024
    y = np.sin(2 * np.pi * 1000.0 * np.arange(sr) / sr).astype(np.float32)
    S = dsp.power_spectrogram(y, n_fft=n_fft, hop_length=256)
    r = level.rms(S=S, frame_length=n_fft)
    assert r.shape == (1, S.shape[1])
    # Parseval: a unit sine's frame level under the periodic Hann window is sqrt(0.5 * 3/8).
    np.testing.assert_allclose(r[0, 4:-4], np.sqrt(0.5 * 3 / 8), rtol=1e-3)
    with pytest.raises(ParameterError, match="does not fit frame_length=2048"):
        level.rms(S=S, frame_length=2048)


def test_active_frames_follow_the_voice_not_the_gain(signal):
    y = _speech_in_silence(signal)
    S = dsp.power_spectrogram(y, n_fft=1024, hop_length=256)
    e = level.energy_db(level.rms(S=S, frame_length=1024)[0])
    mask = level.active_frames(e)
    t = np.arange(len(mask)) * 256 / 16000
    voiced = (t > 0.55) & (t < 1.95)
    silent = (t < 0.45) | (t > 2.05)
    assert mask[voiced].all() and not mask[silent].any()
    for gain in (1e-3, 0.1, 3.0):
        np.testing.assert_array_equal(level.active_frames(e + 20 * np.log10(gain)), mask)


def test_active_frames_keep_the_loudest_frame_of_a_flat_clip():
    e = np.full(50, -30.0)
    assert level.active_frames(e).all()  # noise floor = peak: the threshold is capped under it
    wobble = -30.0 + 1e-6 * np.random.default_rng(0).standard_normal(50)
    assert level.active_frames(wobble).all()  # not the few frames rounding puts at the peak
    with pytest.raises(ParameterError, match="non-empty 1-D"):
        level.active_frames(np.zeros(0))
    with pytest.raises(ParameterError, match="range_db"):
        level.active_frames(e, range_db=0.0)


def test_level_gain_brings_the_active_frames_to_the_target():
    r = np.array([0.01, 0.1, 0.1, 0.001])
    mask = np.array([False, True, True, False])
    gain = level.level_gain(r, mask, -20.0)
    assert 10 * np.log10(gain * 0.1**2) == pytest.approx(-20.0)
    assert level.level_gain(np.zeros(4), mask, -20.0) == 1.0  # digital silence: nothing to fix


@pytest.mark.parametrize("config", [ROBUST, FeatureConfig(level_db=-23.0)], ids=["robust", "level"])
def test_a_gain_changes_the_features_by_float_rounding_only(signal, config):
    """The design makes gain invariance exact: what is left is float32 rounding.

    The yardstick is the rounding itself: the same clip's features computed from float64 samples
    (a float64 spectrogram) differ from the float32 ones by about as much as a gain does.
    """
    y = _speech_in_silence(signal, seed=3)
    x = features.feature_vector(y, sr=16000, config=config)
    rounding = np.abs(features.feature_vector(y.astype(np.float64), sr=16000, config=config) - x)
    scale = np.abs(x) + 1.0
    for gain in (0.1, 10 ** (-10 / 20), 10 ** (10 / 20), 0.01, 0.125):
        xg = features.feature_vector((y * gain).astype(np.float32), sr=16000, config=config)
        change = np.abs(xg - x)
        assert (change / scale).max() < 1e-4, gain
        assert (change / scale).max() <= 50 * max((rounding / scale).max(), 1e-7), gain


def test_without_level_normalisation_a_gain_moves_the_features(signal):
    # The contrast: the legacy configuration's mel means shift by 20 dB at a gain of 0.1.
    y = _speech_in_silence(signal, seed=3)
    config = FeatureConfig()
    x = features.feature_vector(y, sr=16000, config=config)
    xg = features.feature_vector((0.1 * y).astype(np.float32), sr=16000, config=config)
    assert np.abs(xg - x).max() > 5.0


def test_active_frames_ignore_added_silence(signal):
    y = _speech_in_silence(signal, seed=5)
    padded = np.concatenate([np.zeros(16000, np.float32), y, np.zeros(8000, np.float32)])
    x = features.feature_vector(y, sr=16000, config=ROBUST)
    xp = features.feature_vector(padded, sr=16000, config=ROBUST)
    # The padding is not pooled; the frames at the clip's edges see different neighbours only.
    np.testing.assert_allclose(xp, x, rtol=0, atol=0.05 * np.abs(x).max())
    legacy = FeatureConfig()
    moved = np.abs(features.feature_vector(padded, sr=16000, config=legacy)
                   - features.feature_vector(y, sr=16000, config=legacy)).max()
    assert moved > 1.0


def test_delta_equals_the_savitzky_golay_slope(rng):
    M = rng.standard_normal((3, 20)).astype(np.float32)
    d = features.delta(M, width=5)
    k = np.arange(-2, 3)
    for t in range(2, 18):
        assert d[1, t] == pytest.approx(np.dot(M[1, t - 2 : t + 3], k) / 10, abs=1e-6)
    np.testing.assert_array_equal(d[:, :2], d[:, 2:3].repeat(2, axis=1))
    np.testing.assert_array_equal(d[:, -2:], d[:, -3:-2].repeat(2, axis=1))
    ramp = np.arange(12, dtype=np.float32)[None, :] * 0.5
    np.testing.assert_allclose(features.delta(ramp), 0.5, rtol=1e-6)
    with pytest.raises(ParameterError, match="odd integer"):
        features.delta(M, width=4)
    with pytest.raises(ParameterError, match="cannot exceed the 20 frames"):
        features.delta(M, width=21)


def test_too_few_frames_for_the_deltas(signal):
    y = signal("vibrato", 16000, duration=0.1)  # 7 frames at hop 256
    with pytest.raises(ParameterError, match="fewer than the 9"):
        features.feature_vector(y, sr=16000, config=ROBUST)
    assert ROBUST.min_frames == 9 and FeatureConfig().min_frames == 1


@pytest.mark.parametrize("config", [ROBUST, FeatureConfig(level_db=-20.0),
                                    FeatureConfig(frames="active", top_db=None),
                                    FeatureConfig(norm="meanvar", stats=("mean", "std", "max"))],
                         ids=["robust", "level", "active", "norm"])
def test_streamed_vector_equals_the_whole(signal, rng, config):
    y = np.concatenate([_speech_in_silence(signal, seed=s) for s in range(3)])
    whole = features.feature_vector(y, sr=16000, config=config)
    cuts = np.sort(rng.choice(len(y), size=11, replace=False))
    got = features.feature_vector_stream(np.split(y, cuts), sr=16000, config=config)
    np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-4)


def test_per_block_stats_layout_and_json():
    config = ROBUST
    names = config.feature_names()
    assert len(names) == config.n_features == 40 * 2 + 12 * 2 + 128 + 40
    assert names[80] == "chroma_mean_0" and names[104] == "mel_std_0"
    assert names[-1] == "mfcc_delta_std_39"
    data = json.loads(config.to_json())
    assert data["stats"] == {"mfcc": ["mean", "std"], "chroma": ["mean", "std"],
                             "mel": ["std"], "mfcc_delta": ["std"]}
    assert FeatureConfig.from_json(config.to_json()) == config
    with pytest.raises(ParameterError, match="missing: mel"):
        FeatureConfig(features=("mfcc", "mel"), stats={"mfcc": ("mean",)})
    with pytest.raises(ParameterError, match="unknown statistic"):
        FeatureConfig(features=("mfcc",), stats={"mfcc": ("median",)})


def test_old_metadata_reads_as_before():
    """A configuration written before these fields existed means no level options, top_db 80."""
    old = json.loads(FeatureConfig().to_json())
    for key in ("top_db", "level_db", "frames", "active_range_db", "active_floor_db",
                "delta_width", "chroma_threshold"):
        old.pop(key)
    config = FeatureConfig.from_json(json.dumps(old))
    assert config.top_db == 80.0 and config.level_db is None and config.frames == "all"
    assert config.chroma_threshold is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [(dict(frames="speech"), "frames must be one of"), (dict(top_db=-1.0), "top_db"),
     (dict(delta_width=4), "delta_width"), (dict(active_floor_db=0.0), "active_floor_db"),
     (dict(active_floor_range_db=0.0), "active_floor_range_db")],
)
def test_bad_level_options(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        FeatureConfig(**kwargs)


@pytest.mark.parametrize("norm", ["mean", "meanvar"])
def test_per_utterance_normalisation(signal, norm):
    config = FeatureConfig(features=("mel", "mfcc"), n_mels=64, n_mfcc=20, frames="active",
                           norm=norm)
    y = _speech_in_silence(signal, seed=2)
    F = features.frame_matrix(y, sr=16000, config=config)
    assert F.shape[0] == 84 and F.dtype == np.float32
    np.testing.assert_allclose(F.mean(axis=1), 0.0, atol=1e-4)
    if norm == "meanvar":
        np.testing.assert_allclose(F.std(axis=1), 1.0, atol=1e-4)
    # A gain, a microphone's constant tilt in dB: gone from the frames.
    Fg = features.frame_matrix((0.05 * y).astype(np.float32), sr=16000, config=config)
    np.testing.assert_allclose(Fg, F, atol=1e-3)
    with pytest.raises(ParameterError, match="norm must be one of"):
        FeatureConfig(norm="cmvn")


def test_floor_range_round_trips_and_is_left_out_when_none():
    assert "active_floor_range_db" not in json.loads(FeatureConfig().to_json())
    config = FeatureConfig(frames="active", active_range_db=25.0, active_floor_range_db=40.0)
    assert FeatureConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["active_floor_range_db"] == 40.0


def _room_clip(rng, sr=16000, *, noise_db=-50.0):
    """Three syllables of a harmonic voice (-20 dBFS) in room noise, with pauses between."""
    t = np.arange(int(0.25 * sr)) / sr
    voice = sum(np.sin(2 * np.pi * 150 * h * t) / h for h in range(1, 8)).astype(np.float32)
    voice *= 0.1 / np.sqrt(np.mean(voice**2)) * np.hanning(len(t)).astype(np.float32) ** 0.3
    pause = np.zeros(int(0.2 * sr), np.float32)
    y = np.concatenate([pause, voice, pause, voice, pause, voice, pause])
    noise = rng.standard_normal(len(y)).astype(np.float32) * 10 ** (noise_db / 20)
    return y + noise


def test_digital_silence_around_a_clip_leaves_its_active_frames_alone(rng):
    """With a floor range, 0.6 s of digital silence or -60 dBFS noise padded around a clip in
    room noise about 38 dB under its loudest frame makes none of the room noise "speech";
    without one (the old rule), the digital silence pulls the floor down and the pauses, room
    noise, become active."""
    from ser_edge.level import active_frames, energy_db, rms

    sr, n_fft, hop = 16000, 1024, 256
    y = _room_clip(rng, sr, noise_db=-55.0)
    pad = 9728  # 38 hops: the clip's frames stay where they were

    def energies(z):
        from ser_edge.features import _power_spectrogram

        S, _ = _power_spectrogram(z, None, n_fft, hop, 2.0)
        return energy_db(rms(S=S, frame_length=n_fft)[0])

    e = energies(y)
    quiet = np.zeros(pad, np.float32)
    hiss = (rng.standard_normal(pad) * 1e-3).astype(np.float32)
    for padding in (quiet, hiss):
        e_pad = energies(np.concatenate([padding, y, padding]))
        inner = slice(38, 38 + len(e))
        new = active_frames(e_pad, range_db=25.0, floor_db=6.0, floor_range_db=40.0)
        assert np.array_equal(new[inner], active_frames(e, range_db=25.0, floor_db=6.0,
                                                        floor_range_db=40.0))
        assert not new[:30].any() and not new[-30:].any()
    old = active_frames(energies(np.concatenate([quiet, y, quiet])), range_db=40.0, floor_db=6.0)
    assert old[38:38 + len(e)].sum() > 1.5 * active_frames(e, range_db=40.0, floor_db=6.0).sum()


def test_floor_range_keeps_gain_invariance(rng):
    from ser_edge.level import active_frames

    e = rng.normal(-40, 10, 500)
    e[:50] = -200.0  # digital silence
    a = active_frames(e, range_db=25.0, floor_db=6.0, floor_range_db=40.0)
    b = active_frames(e + 17.3, range_db=25.0, floor_db=6.0, floor_range_db=40.0)
    assert np.array_equal(a, b) and a.any() and not a[:50].any()
