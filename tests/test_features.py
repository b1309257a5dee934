"""The runtime features on their own: shapes, dtypes, configuration and errors (no librosa)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ser_edge import ParameterError, dsp, features, filters
from ser_edge.features import FeatureConfig


def test_default_config_shapes(signal):
    config = FeatureConfig()
    y = signal("vibrato", config.sr, duration=1.0)
    blocks = features.feature_matrices(y, sr=config.sr, config=config)
    n_frames = 1 + len(y) // config.hop_length
    assert {k: v.shape for k, v in blocks.items()} == {
        "mfcc": (config.n_mfcc, n_frames),
        "chroma": (config.n_chroma, n_frames),
        "mel": (config.n_mels, n_frames),
    }
    x = features.feature_vector(y, sr=config.sr, config=config)
    assert x.shape == (config.n_features,) == (len(config.feature_names()),)
    assert x.dtype == np.float32 and np.isfinite(x).all()


def test_vector_layout_follows_config_order(signal):
    config = FeatureConfig(features=("chroma", "mfcc"), stats=("std", "mean"), n_mfcc=13)
    y = signal("vibrato", config.sr)
    blocks = features.feature_matrices(y, sr=config.sr, config=config)
    x = features.feature_vector(y, sr=config.sr, config=config)
    expected = np.concatenate([blocks["chroma"].std(axis=1), blocks["chroma"].mean(axis=1),
                               blocks["mfcc"].std(axis=1), blocks["mfcc"].mean(axis=1)])
    np.testing.assert_array_equal(x, expected.astype(np.float32))
    assert config.feature_names()[:2] == ["chroma_std_0", "chroma_std_1"]


def test_mel_power_or_db(signal):
    y = signal("noise", 16000)
    power = features.feature_matrices(y, sr=16000, config=FeatureConfig(mel_db=False))["mel"]
    db = features.feature_matrices(y, sr=16000, config=FeatureConfig(mel_db=True))["mel"]
    np.testing.assert_allclose(db, dsp.power_to_db(power), rtol=0, atol=1e-5)


def test_fixed_tuning_is_used(signal):
    y = signal("vibrato", 22050)
    S = np.abs(dsp.stft(y)) ** 2
    a = features.chroma_stft(S=S, sr=22050, tuning=0.0)
    b = features.chroma_stft(S=S, sr=22050, tuning=0.4)
    config = FeatureConfig(sr=22050, n_fft=2048, hop_length=512, tuning=0.4, chroma_threshold=None)
    blocks = features.feature_matrices(y, sr=22050, config=config)
    assert not np.allclose(a, b)
    # feature_matrices streams the spectrogram through the banks block by block at a fixed
    # tuning: equal to the whole-matrix products up to float32 rounding.
    np.testing.assert_allclose(blocks["chroma"], b, rtol=0, atol=1e-5)
    mel = features.melspectrogram(S=S, sr=22050, n_mels=config.n_mels)
    np.testing.assert_allclose(blocks["mel"], dsp.power_to_db(mel), rtol=0, atol=1e-3)


def test_silence_gives_finite_features(signal):
    y = signal("silence", 16000)
    x = features.feature_vector(y, sr=16000)
    assert np.isfinite(x).all()
    assert features.estimate_tuning(y=y, sr=16000) == 0.0
    assert not features.chroma_stft(y=y, sr=16000).any()


def test_config_json_round_trip():
    config = FeatureConfig(features=("mel", "mfcc"), sr=16000, n_mfcc=13, fmax=7600.0,
                           tuning=0.1, stats=("mean", "min", "max"), htk=True)
    text = config.to_json()
    assert json.loads(text)["schema"] == 1
    assert FeatureConfig.from_json(text) == config
    assert FeatureConfig.from_json(FeatureConfig().to_json()) == FeatureConfig()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(features=("mfcc", "pitch")), "unknown feature 'pitch'"),
        (dict(features=()), "empty"),
        (dict(stats=("mean", "median")), "unknown statistic 'median'"),
        (dict(n_fft=0), "n_fft must be a positive integer"),
        (dict(hop_length=1.5), "hop_length must be a positive integer"),
        (dict(n_mfcc=200, n_mels=128), "n_mfcc=200 exceeds n_mels=128"),
        (dict(fmin=-1.0), "fmin must be >= 0"),
        (dict(fmin=4000.0, fmax=3000.0), "must exceed fmin"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        FeatureConfig(**kwargs)


@pytest.mark.parametrize(
    ("text", "match"),
    [("not json", "not valid JSON"), ("[1, 2]", "JSON object"),
     ('{"sr": 16000, "colour": "red"}', "unknown keys: colour"), ('{"schema": 9}', "schema 9")],
)
def test_config_from_bad_json(text, match):
    with pytest.raises(ParameterError, match=match):
        FeatureConfig.from_json(text)


def test_feature_vector_checks_rate_and_shape(signal):
    y = signal("noise", 22050)
    with pytest.raises(ParameterError, match="audio at 22050 Hz.*expects 16000 Hz"):
        features.feature_vector(y, sr=22050, config=FeatureConfig())
    with pytest.raises(ParameterError, match="mono audio"):
        features.feature_vector(np.stack([y, y]), sr=16000)


@pytest.mark.parametrize(
    ("y", "match"),
    [(np.zeros(0, np.float32), "at least one sample"), (np.arange(10), "floating-point"),
     (np.array([0.0, np.nan], np.float32), "not finite")],
)
def test_stft_rejects_bad_audio(y, match):
    with pytest.raises(ParameterError, match=match):
        dsp.stft(y)


def test_stft_multichannel_matches_each_channel(signal):
    y = np.stack([signal("noise", 22050), signal("sine", 22050)])
    D = dsp.stft(y, n_fft=1024, hop_length=256)
    assert D.shape[0] == 2
    for c in range(2):
        np.testing.assert_array_equal(D[c], dsp.stft(y[c], n_fft=1024, hop_length=256))


def test_hann_window_is_periodic():
    w = dsp.hann_window(8)
    np.testing.assert_allclose(w, 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(8) / 8), atol=1e-15)


def test_filter_banks_are_cached_and_read_only():
    a = filters.mel_filters(sr=22050, n_fft=2048)
    assert a is filters.mel_filters(sr=22050, n_fft=2048)
    with pytest.raises(ValueError):
        a[0, 0] = 1.0
    assert filters.chroma_filters(sr=22050, n_fft=2048).shape == (12, 1025)


def test_dct_matrix_is_orthonormal():
    B = filters.dct_matrix(32, 32).astype(np.float64)
    np.testing.assert_allclose(B @ B.T, np.eye(32), atol=1e-6)


def test_pitch_tuning_finds_a_detuned_grid():
    # A sharp by a fifth of a semitone: every partial sits 0.2 bins above the grid.
    freqs = 440.0 * 2.0 ** (np.array([-12, -5, 0, 3, 7, 12]) / 12 + 0.2 / 12)
    assert features.pitch_tuning(freqs.astype(np.float32)) == pytest.approx(0.2, abs=0.011)
    assert features.pitch_tuning(np.zeros(3)) == 0.0


def test_silence_noise_does_not_become_chroma(signal):
    """Rounding noise (~1e-9) in digital silence, as resamplers leave it and as it differs between
    CPUs, must not reach the features: the chroma threshold keeps such frames near zero."""
    config = FeatureConfig()
    y = signal("vibrato", config.sr, duration=2.0)
    y[: config.sr] = 0.0
    noisy = y.copy()
    noisy[: config.sr] = 1e-9 * signal("noise", config.sr)[: config.sr]
    chroma = slice(2 * config.n_mfcc, 2 * config.n_mfcc + 2 * config.n_chroma)
    a = features.feature_vector(y, sr=config.sr, config=config)
    b = features.feature_vector(noisy, sr=config.sr, config=config)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    # Without the threshold (librosa's behaviour) the same noise is scaled to full-size chroma.
    bare = dataclasses.replace(config, chroma_threshold=None)
    a = features.feature_vector(y, sr=config.sr, config=bare)
    b = features.feature_vector(noisy, sr=config.sr, config=bare)
    assert np.abs(a - b)[chroma].max() > 0.05


def test_config_without_chroma_threshold_means_librosas_scaling():
    data = json.loads(FeatureConfig().to_json())
    del data["chroma_threshold"]
    assert FeatureConfig.from_json(json.dumps(data)).chroma_threshold is None


def test_chroma_threshold_must_be_positive():
    with pytest.raises(ParameterError, match="chroma_threshold must be > 0"):
        FeatureConfig(chroma_threshold=0.0)


def test_interleaved_power_blocks_do_not_share_buffers(signal):
    """Two spectrogram generators alive at once in one thread get their own scratch buffers."""
    a, b = signal("noise", 16000), signal("vibrato", 16000)
    gens = [dsp.power_blocks_stream([x], n_fft=1024, hop_length=256, frames_per_block=32)
            for x in (a, b)]
    out = [np.empty((513, 1 + len(x) // 256), np.float32) for x in (a, b)]
    for (sa, pa), (sb, pb) in zip(*gens, strict=True):
        out[0][:, sa : sa + pa.shape[1]] = pa
        out[1][:, sb : sb + pb.shape[1]] = pb
    for x, S in zip((a, b), out, strict=True):
        np.testing.assert_array_equal(S, dsp.power_spectrogram(x, n_fft=1024, hop_length=256))


@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels", "fmin", "fmax", "htk", "norm"),
    [
        (16000, 1024, 128, 0.0, None, False, "slaney"),  # the bundled bank
        (22050, 2048, 40, 50.0, 8000.0, True, None),
        (8000, 256, 128, 0.0, None, False, "slaney"),  # low bands with no bin: zero rows
        (48000, 512, 13, 300.0, 3000.0, False, "slaney"),
    ],
)
def test_mel_projection_equals_the_dense_product(signal, sr, n_fft, n_mels, fmin, fmax, htk,
                                                 norm):
    """Skipping the bank's zeros changes nothing but rounding, also with empty bands and
    channels, and on a strided view (a block of the streaming path)."""
    kw = {"sr": sr, "n_fft": n_fft, "n_mels": n_mels, "fmin": fmin, "fmax": fmax, "htk": htk,
          "norm": norm}
    y = np.stack([signal("noise", sr, seed=1), signal("chirp", sr)])
    S = dsp.power_spectrogram(y, n_fft=n_fft, hop_length=n_fft // 4)
    bank = filters.mel_filters(**kw)
    dense = (bank.astype(np.float64) @ S.astype(np.float64)).astype(np.float32)
    got = filters.mel_projection(S, **kw)
    assert got.shape == dense.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, dense, rtol=1e-5, atol=1e-6 * dense.max())
    assert not got[..., ~bank.any(axis=1), :].any()
    view = S[0, :, 3:40]
    np.testing.assert_allclose(filters.mel_projection(view, **kw), got[0, :, 3:40], rtol=1e-5,
                               atol=1e-6 * dense.max())


def _chunked(y: np.ndarray, rng: np.random.Generator, n_cuts: int) -> list[np.ndarray]:
    return np.split(y, np.sort(rng.integers(0, len(y) + 1, size=n_cuts)))


@pytest.mark.parametrize(
    ("n", "n_fft", "hop_length", "center"),
    [(48000, 1024, 256, True), (5000, 512, 128, False), (1, 1024, 256, True),
     (1023, 256, 300, True), (4000, 256, 300, False), (30000, 2048, 512, True)],
)
def test_power_blocks_stream_equals_the_whole_spectrogram(rng, n, n_fft, hop_length, center):
    """However the signal is cut (empty pieces too, hop longer than the frame), the streamed
    blocks are the whole signal's spectrogram, bit for bit."""
    y = rng.standard_normal(n).astype(np.float32)
    ref = dsp.power_spectrogram(y, n_fft=n_fft, hop_length=hop_length, center=center)
    for n_cuts in (0, 1, 7):
        got = np.full_like(ref, np.nan)
        for start, S in dsp.power_blocks_stream(_chunked(y, rng, n_cuts), n_fft=n_fft,
                                                hop_length=hop_length, center=center,
                                                frames_per_block=40):
            got[:, start : start + S.shape[1]] = S
        np.testing.assert_array_equal(got, ref)


def test_power_blocks_stream_errors():
    with pytest.raises(ParameterError, match="at least one sample"):
        list(dsp.power_blocks_stream([np.zeros(0, np.float32)]))
    with pytest.raises(ParameterError, match="too large"):
        list(dsp.power_blocks_stream([np.zeros(100, np.float32)], n_fft=256, center=False))
    with pytest.raises(ParameterError, match="not finite"):
        list(dsp.power_blocks_stream([np.zeros(3000, np.float32), np.full(5, np.nan, np.float32)]))
    with pytest.raises(ParameterError, match="1-D"):
        list(dsp.power_blocks_stream([np.zeros(3000, np.float32), np.zeros(5)]))


@pytest.mark.parametrize(
    "config",
    [FeatureConfig(), FeatureConfig(stats=("mean", "std", "min", "max")),
     FeatureConfig(features=("mel",), mel_db=False), FeatureConfig(features=("chroma",)),
     FeatureConfig(sr=22050, n_fft=2048, hop_length=512, n_mfcc=20, tuning=0.3)],
    ids=["bundled", "four-stats", "mel-power", "chroma", "librosa-stft"],
)
def test_feature_vector_stream_equals_feature_vector(signal, rng, config):
    """Two streaming passes with running float64 statistics give the in-memory vector, to
    float32 rounding: a loud burst late in the clip moves the dB floor after many frames."""
    parts = [signal("noise", config.sr, duration=3.0, seed=3) * 0.01,
             signal("silence", config.sr, duration=1.0),
             signal("vibrato", config.sr, duration=4.0),
             signal("chirp", config.sr, duration=2.0) * 3]
    y = np.concatenate(parts).astype(np.float32)
    ref = features.feature_vector(y, sr=config.sr, config=config)
    got = features.feature_vector_stream(_chunked(y, rng, 9), sr=config.sr, config=config)
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5 * np.abs(ref).max())


def test_feature_vector_stream_errors(signal):
    y = signal("vibrato", 16000)
    with pytest.raises(ParameterError, match="expects 16000 Hz"):
        features.feature_vector_stream([y], sr=22050)
    with pytest.raises(ParameterError, match="tuning=None"):
        features.feature_vector_stream([y], sr=16000, config=FeatureConfig(tuning=None))
    with pytest.raises(ParameterError, match="at least one sample"):
        features.feature_vector_stream([], sr=16000)


def test_pool_reduces_each_block_as_given(rng):
    """numpy's float32 sums follow the memory layout, and the bundled model was trained on
    vectors of librosa matrices that are not all C-ordered: pool must reduce each block as it
    is, so that the training features are reproduced bit for bit."""
    config = FeatureConfig()
    blocks = {name: np.asfortranarray(rng.standard_normal((rows, 219)).astype(np.float32) * 40)
              for name, rows in config.block_sizes.items()}
    expected = np.concatenate([f(blocks[name], axis=-1) for name in config.block_sizes
                               for f in (np.mean, np.std)]).astype(np.float32)
    np.testing.assert_array_equal(features.pool(blocks, config), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trim_zeros_removes_the_zeros_at_the_ends_only(dtype):
    y = np.array([0.0, -0.0, 0.0, 0.5, 0.0, 0.0, -0.25, 1e-30, 0.0, 0.0], dtype=dtype)
    got = dsp.trim_zeros(y)
    assert got.dtype == dtype and np.shares_memory(got, y)  # a view, not a copy
    np.testing.assert_array_equal(got, np.array([0.5, 0.0, 0.0, -0.25, 1e-30], dtype=dtype))
    # Nothing to trim, a lone sample, NaN (not zero), zeros only, nothing at all.
    for kept in ([0.1, 0.0, 0.2], [3.0], [0.0, np.nan]):
        y = np.array(kept, dtype=dtype)
        np.testing.assert_array_equal(dsp.trim_zeros(y), y[y.nonzero()[0][0]:])
    for same in (np.zeros(7, dtype), np.zeros(0, dtype), np.array([-0.0, 0.0], dtype)):
        assert dsp.trim_zeros(same) is same
    with pytest.raises(ParameterError, match=r"1-D.*\(2, 3\)"):
        dsp.trim_zeros(np.ones((2, 3), dtype))


def test_trim_zeros_finds_samples_far_from_the_ends(rng):
    """Runs of zeros longer than the blocks it searches, and a non-zero sample on a block's
    edge."""
    y = np.zeros(100_000, np.float32)
    for first, last in [(16384, 16384), (16383, 83616), (70_001, 99_999), (0, 0)]:
        y[:] = 0.0
        y[first] = y[last] = rng.uniform(0.1, 1.0)
        got = dsp.trim_zeros(y)
        assert len(got) == last - first + 1 and got[0] == y[first] and got[-1] == y[last]


@pytest.mark.parametrize("n_cuts", [0, 1, 5, 40])
def test_trim_zeros_stream_equals_trim_zeros(signal, rng, n_cuts):
    """However the signal is cut (empty pieces, pieces of zeros only, a run of zeros across
    pieces), the pieces given out join into trim_zeros of the whole, sample for sample."""
    voice = signal("vibrato", 16000, duration=0.5)
    gap = np.zeros(40_000, np.float32)  # longer than the pieces of zeros given out
    for y in (np.concatenate([gap, voice, gap[:7], voice, gap, voice[:3], gap]),
              np.concatenate([voice, gap[:1], voice]), gap, gap[:0], voice[:1]):
        pieces = list(dsp.trim_zeros_stream(_chunked(y, rng, n_cuts)))
        assert all(p.ndim == 1 and p.dtype == y.dtype for p in pieces)
        assert max((len(p) for p in pieces), default=0) <= max(len(y), 16384)
        joined = np.concatenate(pieces) if pieces else y[:0]
        np.testing.assert_array_equal(joined, dsp.trim_zeros(y))
    with pytest.raises(ParameterError, match="1-D"):
        list(dsp.trim_zeros_stream([voice, np.zeros((2, 2), np.float32)]))


def test_trim_zeros_option_round_trips_and_is_left_out_when_false():
    """Configurations written before the option read as before, and write the same JSON."""
    assert "trim_zeros" not in json.loads(FeatureConfig().to_json())
    assert FeatureConfig.from_json(FeatureConfig().to_json()).trim_zeros is False
    config = FeatureConfig(frames="active", level_db=-20.0, trim_zeros=True)
    assert json.loads(config.to_json())["trim_zeros"] is True
    assert FeatureConfig.from_json(config.to_json()) == config
    assert FeatureConfig(trim_zeros=np.bool_(True)).trim_zeros is True
    for bad in ("yes", 1, None):
        with pytest.raises(ParameterError, match="trim_zeros must be true or false"):
            FeatureConfig(trim_zeros=bad)


def test_trim_quiet_cuts_at_the_first_and_last_loud_sample(rng):
    """A sample is loud above top_db under the peak (strictly); the cut is sample-exact, a view,
    gain-invariant; nothing loud (zeros, empty) leaves the signal as it is."""
    y = np.array([0.0, 0.001, -0.05, 0.2, 0.0, 0.001, -1.0, 0.04, 0.09, 0.001], np.float32)
    got = dsp.trim_quiet(y, 20.0)  # threshold 0.1: 0.2 first, -1.0 last
    assert np.shares_memory(got, y)
    np.testing.assert_array_equal(got, y[3:7])
    np.testing.assert_array_equal(dsp.trim_quiet(y, 30.0), y[2:9])  # 0.0316...
    np.testing.assert_array_equal(dsp.trim_quiet(y * np.float32(0.01), 20.0), y[3:7] * 0.01)
    assert dsp.trim_quiet_threshold(0.5, 20.0) == pytest.approx(0.05)
    np.testing.assert_array_equal(dsp.trim_quiet(np.array([0.1, 1.0, 0.1], np.float32), 20.0),
                                  [1.0])  # at the threshold is not above it
    for same in (np.zeros(5, np.float32), np.zeros(0, np.float32)):
        assert dsp.trim_quiet(same, 25.0) is same
    voice = rng.standard_normal(3000).astype(np.float32)
    np.testing.assert_array_equal(dsp.trim_quiet(voice, 80.0), voice)
    with pytest.raises(ParameterError, match="1-D"):
        dsp.trim_quiet(np.ones((2, 3), np.float32), 25.0)
    for bad in (0.0, -3.0):
        with pytest.raises(ParameterError, match="top_db must be > 0"):
            dsp.trim_quiet(voice, bad)


def test_trim_top_db_option_round_trips_and_is_left_out_when_none():
    assert "trim_top_db" not in json.loads(FeatureConfig().to_json())
    assert FeatureConfig.from_json(FeatureConfig().to_json()).trim_top_db is None
    config = FeatureConfig(frames="active", level_db=-20.0, trim_top_db=25.0)
    assert json.loads(config.to_json())["trim_top_db"] == 25.0
    assert FeatureConfig.from_json(config.to_json()) == config
    assert config.trims and not FeatureConfig().trims
    for bad in (0.0, -1.0, True):
        with pytest.raises(ParameterError, match="trim_top_db must be > 0"):
            FeatureConfig(trim_top_db=bad)


def test_align_peak_drops_the_loudest_samples_offset_from_the_grid(rng):
    """argmax |y| mod hop_length samples dropped (the first of equal maxima), a view; a gain
    does not move it; zeros and empty signals unchanged; bad input refused."""
    y = np.zeros(1000, np.float32)
    y[[300, 700]] = [0.5, -0.9]  # the loudest at 700: 700 mod 256 = 188
    got = dsp.align_peak(y, 256)
    assert np.shares_memory(got, y) and len(got) == 1000 - 188
    assert got[700 - 188] == np.float32(-0.9) and (700 - 188) % 256 == 0
    assert len(dsp.align_peak(y * np.float32(1e-3), 256)) == len(got)
    y[[300, 700]] = [0.9, -0.9]  # equal magnitudes: the first counts, 300 mod 256 = 44
    assert len(dsp.align_peak(y, 256)) == 1000 - 44
    assert len(dsp.align_peak(y, 100)) == 1000  # 300 is on a grid of 100 already
    for same in (np.zeros(5, np.float32), np.zeros(0, np.float32)):
        np.testing.assert_array_equal(dsp.align_peak(same, 256), same)
    with pytest.raises(ParameterError, match="1-D"):
        dsp.align_peak(np.ones((2, 3), np.float32), 256)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ParameterError, match="hop_length must be a positive integer"):
            dsp.align_peak(y, bad)


def test_align_peak_option_round_trips_and_is_left_out_when_false():
    assert "align_peak" not in json.loads(FeatureConfig().to_json())
    config = FeatureConfig(frames="active", level_db=-20.0, align_peak=True)
    assert json.loads(config.to_json())["align_peak"] is True
    assert FeatureConfig.from_json(config.to_json()) == config
    assert config.trims and FeatureConfig(align_peak=np.bool_(True)).align_peak is True
    for bad in ("yes", 1, None):
        with pytest.raises(ParameterError, match="align_peak must be true or false"):
            FeatureConfig(align_peak=bad)


@pytest.mark.parametrize("pad_s", [0.6, 0.3371])
def test_align_peak_keeps_the_frames_over_a_real_voice_where_they_were(rng, pad_s):
    """Quiet noise (40 dB under the peak) of any length before and after a real clip: with
    align_peak every frame over the clip is one of the unpadded clip's frames, whole frames
    later; without it the frames fall between them (a 0.6 s pad is half a hop)."""
    aligned = FeatureConfig(align_peak=True)
    for name, y in _real_clips():
        peak = float(np.abs(y).max())
        n = int(pad_s * 16000)
        hiss = (rng.uniform(-1, 1, n) * peak * 10 ** (-40 / 20)).astype(np.float32)
        z = np.concatenate([hiss, y, hiss[::-1]])
        for config, grid in ((aligned, True), (FeatureConfig(), False)):
            a, b = config.trim(y), config.trim(z)
            shift = len(b) - len(a) - n  # where a starts in b
            S_a = dsp.power_spectrogram(a, n_fft=1024, hop_length=256)
            S_b = dsp.power_spectrogram(b, n_fft=1024, hop_length=256)
            inner = slice(4, S_a.shape[1] - 4)  # frames within the clip, not its ends
            if grid:
                assert shift % 256 == 0, name
                k = shift // 256
                np.testing.assert_allclose(S_b[:, 4 + k : S_a.shape[1] - 4 + k], S_a[:, inner],
                                           rtol=1e-5, atol=1e-9 * S_a.max(), err_msg=name)
            else:
                assert shift % 256 != 0, name


@pytest.mark.parametrize("n_cuts", [0, 3, 25])
def test_feature_vector_stream_aligns_to_the_peak_as_feature_vector(signal, rng, n_cuts):
    """With align_peak (after trim_zeros), the streamed vector is the whole signal's however it
    is cut, and differs from the unaligned one."""
    config = dataclasses.replace(_QUIET, trim_top_db=None, trim_zeros=True, align_peak=True)
    voice = signal("vibrato", 16000, duration=2.0)
    y = np.concatenate([np.zeros(300, np.float32), voice, voice[::-1] * 1.5,
                        np.zeros(77, np.float32)])
    ref = features.feature_vector(y, sr=16000, config=config)
    got = features.feature_vector_stream(_chunked(y, rng, n_cuts), sr=16000, config=config)
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5 * np.abs(ref).max())
    plain = features.feature_vector(y, sr=16000,
                                    config=dataclasses.replace(config, align_peak=False))
    assert not np.array_equal(plain, ref)


#: The default model's features with the quiet ends trimmed (the -quiet candidate's).
_QUIET = FeatureConfig(features=("mfcc", "chroma", "mel", "mfcc_delta"), level_db=-20.0,
                       frames="active", top_db=60.0, trim_top_db=25.0,
                       stats={"mfcc": ("mean", "std"), "chroma": ("mean", "std"),
                              "mel": ("std",), "mfcc_delta": ("std",)})


def test_quiet_ends_and_a_gate_around_a_real_clip_change_nothing_when_trimmed(rng):
    """0.6 s of digital silence, or of white noise 40 dB under the clip's peak, on each side,
    and a gate under the trim's threshold: with trim_top_db the same vector and frame matrix,
    bit for bit, as the clip trimmed; without it, other features."""
    for name, y in _real_clips():
        peak = float(np.abs(y).max())
        n = int(0.6 * 16000)
        hiss = (rng.standard_normal(n) * peak * 10 ** (-40 / 20) / 4).astype(np.float32)
        gated = y.copy()
        quiet = np.abs(gated) <= dsp.trim_quiet_threshold(peak, 25.0)
        first, last = np.flatnonzero(~quiet)[[0, -1]]
        gated[:first][quiet[:first]] = 0.0  # the gate touches only what the trim removes
        gated[last + 1:][quiet[last + 1:]] = 0.0
        for z in (np.concatenate([np.zeros(n, np.float32), y, np.zeros(n, np.float32)]),
                  np.concatenate([hiss, y, hiss[::-1]]), gated):
            for func in (features.feature_vector, features.frame_matrix):
                np.testing.assert_array_equal(func(z, sr=16000, config=_QUIET),
                                              func(y, sr=16000, config=_QUIET), err_msg=name)
        untrimmed = dataclasses.replace(_QUIET, trim_top_db=None)
        padded = np.concatenate([hiss, y, hiss[::-1]])
        assert not np.array_equal(features.feature_vector(padded, sr=16000, config=untrimmed),
                                  features.feature_vector(y, sr=16000, config=untrimmed))


@pytest.mark.parametrize("n_cuts", [0, 3, 25])
def test_feature_vector_stream_trims_quiet_ends_as_feature_vector(signal, rng, n_cuts):
    """Quiet noise and zeros at both ends, a quiet gap inside (kept): the streamed vector is the
    whole signal's, however it is cut."""
    voice = signal("vibrato", 16000, duration=2.0)
    hiss = (1e-4 * rng.standard_normal(int(1.3 * 16000))).astype(np.float32)
    y = np.concatenate([np.zeros(300, np.float32), hiss, voice, hiss, voice[::-1], hiss[:5]])
    ref = features.feature_vector(y, sr=16000, config=_QUIET)
    np.testing.assert_array_equal(ref, features.feature_vector(dsp.trim_quiet(y, 25.0), sr=16000,
                                                               config=_QUIET))
    got = features.feature_vector_stream(_chunked(y, rng, n_cuts), sr=16000, config=_QUIET)
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5 * np.abs(ref).max())


#: A RAVDESS clip that starts with 0.55 s of exact zeros at 16 kHz, and the shipped samples (one
#: starts with a zero, neither ends with one).
_LEADING_ZEROS = "Actor_02/03-01-01-01-01-01-02.flac"
#: The default model's features (active frames, level, MFCC deltas), with the option on.
_TRIMMING = [
    FeatureConfig(trim_zeros=True),
    FeatureConfig(features=("mfcc", "chroma", "mel", "mfcc_delta"), level_db=-20.0,
                  frames="active", top_db=60.0, trim_zeros=True,
                  stats={"mfcc": ("mean", "std"), "chroma": ("mean", "std"), "mel": ("std",),
                         "mfcc_delta": ("std",)}),
    FeatureConfig(features=("mfcc", "mel"), level_db=-20.0, frames="active",
                  active_floor_range_db=40.0, norm="meanvar", trim_zeros=True),
]


def _real_clips() -> list:
    from pathlib import Path

    from export.paths import corpus_dir
    from ser_edge import audio
    from ser_edge.samples import SAMPLES

    paths = [SAMPLES[name] for name in sorted(SAMPLES)]
    ravdess = corpus_dir("ravdess")
    if ravdess is not None and (Path(ravdess) / _LEADING_ZEROS).is_file():
        paths.append(Path(ravdess) / _LEADING_ZEROS)
    return [(path.name, audio.load(path, sr=16000)[0]) for path in paths]


@pytest.mark.parametrize("config", _TRIMMING, ids=["librosa-like", "bundled", "normalised"])
def test_digital_silence_around_a_real_clip_changes_nothing_when_trimmed(config):
    """0.6 s of exact zeros on each side: with trim_zeros the same vector and frame matrix, bit
    for bit; without it (as before), other features."""
    silence = np.zeros(int(0.6 * config.sr), np.float32)
    for name, y in _real_clips():
        padded = np.concatenate([silence, y, silence])
        for func in (features.feature_vector, features.frame_matrix):
            np.testing.assert_array_equal(func(padded, sr=16000, config=config),
                                          func(y, sr=16000, config=config), err_msg=name)
        untrimmed = dataclasses.replace(config, trim_zeros=False)
        before = features.frame_matrix(padded, sr=16000, config=untrimmed)
        assert before.shape != features.frame_matrix(y, sr=16000, config=config).shape \
            or not np.array_equal(before, features.frame_matrix(y, sr=16000, config=config))


@pytest.mark.parametrize("config", _TRIMMING[:2], ids=["librosa-like", "bundled"])
def test_feature_vector_stream_trims_as_feature_vector(signal, rng, config):
    """Zeros at both ends and in the middle, longer than the pieces: the streamed vector is the
    whole signal's, which is the vector without the zeros at the ends (those in the middle
    stay)."""
    voice = signal("vibrato", config.sr, duration=2.0)
    gap = np.zeros(int(1.3 * config.sr), np.float32)
    y = np.concatenate([gap, voice, gap, voice[::-1], gap[:5]])
    ref = features.feature_vector(y, sr=config.sr, config=config)
    np.testing.assert_array_equal(
        ref, features.feature_vector(y[len(gap) : -5], sr=config.sr, config=config))
    for n_cuts in (0, 3, 25):
        got = features.feature_vector_stream(_chunked(y, rng, n_cuts), sr=config.sr,
                                             config=config)
        np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5 * np.abs(ref).max())
    # Zeros only are analysed as they are, as feature_vector leaves them.
    zeros = _chunked(np.zeros(config.sr, np.float32), rng, 4)
    np.testing.assert_array_equal(
        features.feature_vector_stream(zeros, sr=config.sr, config=config),
        features.feature_vector_stream(zeros, sr=config.sr,
                                       config=dataclasses.replace(config, trim_zeros=False)))
