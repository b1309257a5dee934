"""Parity with librosa 0.11.0 on synthetic signals, over an explicit grid of parameters.

librosa is called with every relevant keyword spelled out, so that a change of its defaults fails
here loudly. Tolerances (from the issue): mel power within 1e-4 of the clip's largest value, MFCC
within 1e-2, chroma within 1e-3, power_to_db within 1e-3 dB, frame by frame.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from ser_edge import dsp, features, filters

librosa = pytest.importorskip("librosa")
pytestmark = pytest.mark.parity

SIGNALS = ("noise", "sine", "chirp", "vibrato", "silence", "short")  # see conftest.make_signal
SRS = (16000, 22050, 44100)
N_FFTS = (512, 1024, 2048)


@pytest.fixture(autouse=True)
def _quiet_librosa():
    # librosa warns on clips shorter than n_fft and on empty tuning sets; both are expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def test_librosa_is_the_pinned_reference():
    assert librosa.__version__ == "0.11.0"


def _power(y, n_fft, hop_length):
    D = librosa.stft(y, n_fft=n_fft, hop_length=hop_length, win_length=None, window="hann",
                     center=True, pad_mode="constant")
    return np.abs(D) ** 2


@pytest.mark.parametrize("kind", SIGNALS)
@pytest.mark.parametrize(("sr", "n_fft"), list(itertools.product(SRS, N_FFTS)))
def test_stft_power_is_bit_identical(signal, kind, sr, n_fft):
    y = signal(kind, sr)
    hop_length = n_fft // 4
    ours = np.abs(dsp.stft(y, n_fft=n_fft, hop_length=hop_length)) ** 2
    ref = _power(y, n_fft, hop_length)
    assert ours.shape == ref.shape
    assert ours.dtype == ref.dtype == np.float32
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(dsp.power_spectrogram(y, n_fft=n_fft, hop_length=hop_length), ref)


@pytest.mark.parametrize("kind", SIGNALS)
@pytest.mark.parametrize(("sr", "n_fft"), list(itertools.product(SRS, N_FFTS)))
@pytest.mark.parametrize("hop_length", [128, 512])
def test_features_grid(signal, kind, sr, n_fft, hop_length):
    """mel, MFCC, chroma (estimated tuning) and power_to_db on each signal, sr and n_fft."""
    y = signal(kind, sr)
    n_mels, n_mfcc = 64, 20
    mel_ref = librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, win_length=None, window="hann",
        center=True, pad_mode="constant", power=2.0, n_mels=n_mels, fmin=0.0, fmax=None,
        htk=False, norm="slaney")
    mel = features.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    np.testing.assert_allclose(mel, mel_ref, rtol=0, atol=1e-4 * max(mel_ref.max(), 1e-30))

    db_ref = librosa.power_to_db(mel_ref, ref=1.0, amin=1e-10, top_db=80.0)
    np.testing.assert_allclose(dsp.power_to_db(mel), db_ref, rtol=0, atol=1e-3)

    mfcc_ref = librosa.feature.mfcc(
        y=y, sr=sr, n_mfcc=n_mfcc, dct_type=2, norm="ortho", lifter=0, n_fft=n_fft,
        hop_length=hop_length, n_mels=n_mels, fmin=0.0, fmax=None, htk=False, center=True,
        pad_mode="constant", power=2.0)
    mfcc = features.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop_length,
                         n_mels=n_mels)
    np.testing.assert_allclose(mfcc, mfcc_ref, rtol=0, atol=1e-2)

    S = _power(y, n_fft, hop_length)
    tuning_ref = librosa.estimate_tuning(S=S, sr=sr, n_fft=n_fft, resolution=0.01,
                                         bins_per_octave=12)
    assert features.estimate_tuning(S=S, sr=sr, n_fft=n_fft) == tuning_ref
    chroma_ref = librosa.feature.chroma_stft(
        y=y, sr=sr, norm=np.inf, n_fft=n_fft, hop_length=hop_length, win_length=None,
        window="hann", center=True, pad_mode="constant", tuning=None, n_chroma=12)
    chroma = features.chroma_stft(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length)
    assert chroma.shape == chroma_ref.shape
    np.testing.assert_allclose(chroma, chroma_ref, rtol=0, atol=1e-3)


@pytest.mark.parametrize(
    ("n_mels", "fmin", "fmax", "htk", "norm"),
    [(128, 0.0, None, False, "slaney"), (40, 20.0, 7600.0, False, "slaney"),
     (80, 0.0, None, True, "slaney"), (26, 300.0, 4000.0, True, None),
     (128, 0.0, 8000.0, False, None)],
)
@pytest.mark.parametrize(("sr", "n_fft"), [(16000, 512), (22050, 2048), (44100, 1024)])
def test_mel_filters_equal_librosa(n_mels, fmin, fmax, htk, norm, sr, n_fft):
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk,
                              norm=norm, dtype=np.float32)
    ours = filters.mel_filters(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk,
                               norm=norm)
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("tuning", [0.0, -0.5, -0.13, 0.27, 0.49])
@pytest.mark.parametrize(("sr", "n_fft", "n_chroma"), [(16000, 512, 12), (22050, 2048, 12),
                                                      (44100, 1024, 24)])
def test_chroma_filters_equal_librosa(tuning, sr, n_fft, n_chroma):
    ref = librosa.filters.chroma(sr=sr, n_fft=n_fft, n_chroma=n_chroma, tuning=tuning, ctroct=5.0,
                                 octwidth=2, norm=2, base_c=True, dtype=np.float32)
    ours = filters.chroma_filters(sr=sr, n_fft=n_fft, n_chroma=n_chroma, tuning=tuning)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("n_mels", "n_mfcc", "fmin", "fmax", "htk"),
    [(128, 40, 0.0, None, False), (40, 13, 20.0, 7600.0, False), (64, 64, 0.0, None, True)],
)
@pytest.mark.parametrize("kind", ["noise", "vibrato", "silence"])
def test_mfcc_parameters(signal, n_mels, n_mfcc, fmin, fmax, htk, kind):
    sr, n_fft, hop_length = 22050, 2048, 256
    y = signal(kind, sr)
    ref = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, dct_type=2, norm="ortho", lifter=0,
                               n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=fmin,
                               fmax=fmax, htk=htk, center=True, pad_mode="constant", power=2.0)
    ours = features.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop_length,
                         n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-2)


@pytest.mark.parametrize("tuning", [0.0, 0.3, None])
@pytest.mark.parametrize("n_chroma", [12, 24])
def test_chroma_fixed_and_estimated_tuning(signal, tuning, n_chroma):
    sr, n_fft, hop_length = 22050, 1024, 256
    y = signal("vibrato", sr, duration=2.0)
    ref = librosa.feature.chroma_stft(y=y, sr=sr, norm=np.inf, n_fft=n_fft, hop_length=hop_length,
                                      win_length=None, window="hann", center=True,
                                      pad_mode="constant", tuning=tuning, n_chroma=n_chroma)
    ours = features.chroma_stft(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, tuning=tuning,
                                n_chroma=n_chroma)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-3)


def test_power_to_db_parameters():
    S = np.abs(np.random.default_rng(1).standard_normal((64, 50)).astype(np.float32)) ** 4
    S[0, :5] = 0.0
    for ref, amin, top_db in [(1.0, 1e-10, 80.0), (2.5, 1e-5, None), (1.0, 1e-10, 20.0)]:
        np.testing.assert_allclose(
            dsp.power_to_db(S, ref=ref, amin=amin, top_db=top_db),
            librosa.power_to_db(S, ref=ref, amin=amin, top_db=top_db), rtol=0, atol=1e-3)


@pytest.mark.parametrize("sr", SRS)
def test_feature_vector_equals_pooled_librosa(signal, sr):
    """The whole vector, through the same pooling, from librosa's three calls."""
    config = features.FeatureConfig(sr=sr, n_fft=2048, hop_length=512, n_mfcc=20, n_mels=64,
                                    tuning=None, stats=("mean", "std", "max"))
    y = signal("vibrato", sr, duration=1.5)
    common = dict(n_fft=config.n_fft, hop_length=config.hop_length, center=True,
                  pad_mode="constant")
    blocks = {
        "mfcc": librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, n_mels=64, **common),
        "chroma": librosa.feature.chroma_stft(y=y, sr=sr, tuning=None, n_chroma=12, **common),
        "mel": librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=64, **common),
                                   ref=1.0, amin=1e-10, top_db=80.0),
    }
    ref = features.pool(blocks, config)
    ours = features.feature_vector(y, sr=sr, config=config)
    assert ours.shape == (config.n_features,) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-2)


@pytest.mark.parametrize("threshold", [None, 1e-10, 1e-3])
def test_chroma_threshold_is_librosas_normalize_threshold(signal, threshold):
    sr, n_fft, hop_length = 16000, 1024, 256
    y = signal("vibrato", sr)
    y[: sr // 2] = 1e-9 * signal("noise", sr)[: sr // 2]  # resampler-noise-sized "silence"
    raw = librosa.feature.chroma_stft(y=y, sr=sr, norm=None, n_fft=n_fft, hop_length=hop_length,
                                      window="hann", center=True, pad_mode="constant",
                                      tuning=0.0, n_chroma=12)
    ref = librosa.util.normalize(raw, norm=np.inf, axis=-2, threshold=threshold)
    ours = features.chroma_stft(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, tuning=0.0,
                                threshold=threshold)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-3)


def _librosa_level_blocks(y, sr, config):
    """The level options computed with librosa, every keyword spelled out.

    The active-frame rule and the level gain have no librosa function; they are written out
    here from their definition (ser_edge.level's docstrings), on librosa's frame levels.
    """
    D = librosa.stft(y, n_fft=config.n_fft, hop_length=config.hop_length, win_length=None,
                     window="hann", center=True, pad_mode="constant")
    S = np.abs(D) ** 2
    r = librosa.feature.rms(S=np.abs(D), frame_length=config.n_fft, hop_length=config.hop_length,
                            center=True)[0].astype(np.float64)
    e = 20 * np.log10(np.maximum(r, 1e-10))
    heard = e if config.active_floor_range_db is None else \
        e[e >= e.max() - config.active_floor_range_db]
    threshold = max(e.max() - config.active_range_db,
                    np.percentile(heard, 10) + config.active_floor_db)
    active = e >= min(threshold, e.max() - config.active_floor_db)
    gain = 1.0
    if config.level_db is not None:
        gain = 10 ** (config.level_db / 10) / np.mean(r[active] ** 2)
    gain = np.float32(gain)
    mel = librosa.feature.melspectrogram(S=S, sr=sr, n_mels=config.n_mels, fmin=config.fmin,
                                         fmax=config.fmax, htk=config.htk, norm="slaney") * gain
    mel_db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=config.top_db)
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=config.n_mfcc, dct_type=2, norm="ortho",
                                lifter=0)
    chroma = librosa.util.normalize(
        librosa.feature.chroma_stft(S=S * gain, sr=sr, norm=None, tuning=config.tuning,
                                    n_chroma=config.n_chroma),
        norm=np.inf, axis=-2, threshold=config.chroma_threshold)
    blocks = {"mfcc": mfcc, "chroma": chroma, "mel": mel_db,
              "mfcc_delta": librosa.feature.delta(mfcc, width=config.delta_width, order=1,
                                                  axis=-1, mode="interp")}
    keep = active if config.frames == "active" else np.ones(len(e), bool)
    blocks = {name: M[:, keep] for name, M in blocks.items()}
    if config.norm is not None:  # per-utterance normalisation, from its definition
        for name, M in blocks.items():
            M = M - M.mean(axis=-1, keepdims=True)
            if config.norm == "meanvar":
                std = M.std(axis=-1, keepdims=True)
                M = M / np.where(std > 1e-2, std, 1.0)
            blocks[name] = M
    return blocks


@pytest.mark.parametrize("kind", ["vibrato-in-silence", "vibrato-in-digital-silence", "noise",
                                  "chirp", "sine"])
@pytest.mark.parametrize("level_db", [None, -20.0, -35.0])
@pytest.mark.parametrize("frames", ["all", "active", "active, floor range 40 dB"])
@pytest.mark.parametrize("top_db", [80.0, 60.0, None])
@pytest.mark.parametrize("norm", [None, "mean", "meanvar"])
def test_level_options_grid(signal, kind, level_db, frames, top_db, norm):
    """Level normalisation, active frames, top_db and MFCC deltas against librosa."""
    sr = 16000
    if kind == "vibrato-in-silence":
        quiet = 1e-4 * signal("noise", sr, duration=0.4)
        y = np.concatenate([quiet, signal("vibrato", sr, duration=1.2), quiet])
    elif kind == "vibrato-in-digital-silence":
        quiet = np.zeros(int(0.6 * sr), np.float32)
        y = np.concatenate([quiet, signal("vibrato", sr, duration=1.2), quiet])
    else:
        y = signal(kind, sr, duration=1.2)
    floor_range = {"range_db": 25.0, "floor_range_db": 40.0} if "floor range" in frames else {}
    config = features.FeatureConfig(
        features=("mfcc", "chroma", "mel", "mfcc_delta"), sr=sr, n_fft=1024, hop_length=256,
        n_mfcc=20, n_mels=64, top_db=top_db, level_db=level_db, frames=frames.split(",")[0],
        norm=norm, active_range_db=floor_range.get("range_db", 40.0),
        active_floor_range_db=floor_range.get("floor_range_db"),
        stats={"mfcc": ("mean", "std"), "chroma": ("mean",), "mel": ("std", "max"),
               "mfcc_delta": ("std",)})
    ref = _librosa_level_blocks(y, sr, config)
    ours = features.feature_matrices(y, sr=sr, config=config)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in ref.items()}
    # "meanvar" divides each row by its spread, down to 0.01: a row that barely moves (a sine's
    # far bands at the dB floor) carries its rounding up to 100-fold, so 1e-2 there.
    mel_tol = 1e-2 if norm == "meanvar" else 1e-3
    np.testing.assert_allclose(ours["mel"], ref["mel"], rtol=0, atol=mel_tol)
    np.testing.assert_allclose(ours["mfcc"], ref["mfcc"], rtol=0, atol=1e-2)
    np.testing.assert_allclose(ours["mfcc_delta"], ref["mfcc_delta"], rtol=0, atol=mel_tol)
    np.testing.assert_allclose(ours["chroma"], ref["chroma"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(features.feature_vector(y, sr=sr, config=config),
                               features.pool(ref, config), rtol=0, atol=1e-2)
    stacked = np.concatenate([ref[name] for name in config.features])
    np.testing.assert_allclose(features.frame_matrix(y, sr=sr, config=config), stacked,
                               rtol=0, atol=1e-2)


@pytest.mark.parametrize("width", [3, 9, 15])
def test_delta_equals_librosa(signal, width):
    mfcc = features.mfcc(y=signal("vibrato", 16000), sr=16000, n_mfcc=13, n_fft=1024,
                         hop_length=256)
    ref = librosa.feature.delta(mfcc, width=width, order=1, axis=-1, mode="interp")
    np.testing.assert_allclose(features.delta(mfcc, width=width), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["vibrato", "noise"])
@pytest.mark.parametrize("frames", ["all", "active"])
def test_trim_zeros_is_the_samples_between_the_first_and_last_nonzero(signal, kind, frames):
    """trim_zeros against its definition (librosa has no such function: ``effects.trim`` cuts
    frames under a threshold in dB): librosa's features of the samples from the first non-zero
    one to the last, interior zeros kept."""
    sr = 16000
    y = signal(kind, sr, duration=1.0)
    y[4000:4800] = 0.0  # a pause of digital silence inside stays
    y = np.concatenate([np.zeros(9600, np.float32), y[1:], np.zeros(7, np.float32)])
    config = features.FeatureConfig(
        features=("mfcc", "chroma", "mel", "mfcc_delta"), sr=sr, n_mfcc=20, n_mels=64,
        level_db=-20.0, frames=frames, top_db=60.0, trim_zeros=True)
    nonzero = np.flatnonzero(y)
    ref = _librosa_level_blocks(y[nonzero[0] : nonzero[-1] + 1], sr, config)
    ours = features.feature_matrices(y, sr=sr, config=config)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in ref.items()}
    np.testing.assert_allclose(features.feature_vector(y, sr=sr, config=config),
                               features.pool(ref, config), rtol=0, atol=1e-2)
