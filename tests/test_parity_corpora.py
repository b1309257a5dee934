"""Parity with librosa on real speech: RAVDESS and EmoDB from ``SER_EDGE_DATA``.

A fixed sample (two clips per RAVDESS actor, 20 EmoDB clips) runs by default; every RAVDESS clip
runs in the slow test. Both paths load the file themselves, so loading is compared too.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest

from ser_edge import audio, features

librosa = pytest.importorskip("librosa")
pytestmark = pytest.mark.parity

CONFIG = features.FeatureConfig()
#: librosa's own defaults, with the tuning estimated per clip as chroma_stft does by default.
LIBROSA_DEFAULTS = features.FeatureConfig(sr=22050, n_fft=2048, hop_length=512, tuning=None,
                                          chroma_threshold=None)
CONFIGS = pytest.mark.parametrize("config", [CONFIG, LIBROSA_DEFAULTS], ids=["bundled", "librosa"])
#: Every level option on: level normalisation, active frames, top_db 60, MFCC deltas.
LEVEL = features.FeatureConfig(
    features=("mfcc", "chroma", "mel", "mfcc_delta"), level_db=-20.0, frames="active",
    top_db=60.0, stats={"mfcc": ("mean", "std"), "chroma": ("mean", "std"), "mel": ("std",),
                        "mfcc_delta": ("std",)})
#: LEVEL with the silence-proof noise floor and the digital silence at the ends trimmed.
TRIM = dataclasses.replace(LEVEL, active_range_db=25.0, active_floor_range_db=40.0,
                           trim_zeros=True)
#: RAVDESS clips that begin with exact zeros at 16 kHz (0.55, 0.64 and 0.03 s; the last also
#: ends with 17 ms of them).
LEADING_ZEROS = ("Actor_02/03-01-01-01-01-01-02.flac", "Actor_02/03-01-05-01-01-01-02.flac",
                 "Actor_01/03-01-04-01-02-01-01.flac")


def _ravdess_sample(root: Path) -> list[Path]:
    """Two clips per actor, spread over emotions and statements, chosen by position."""
    picks = []
    for k, actor in enumerate(sorted(root.glob("Actor_*"))):
        clips = sorted(actor.glob("*.flac"))
        picks += [clips[(7 * k) % len(clips)], clips[(7 * k + 31) % len(clips)]]
    return picks


def _librosa_blocks(y: np.ndarray, sr: int, config: features.FeatureConfig):
    common = dict(n_fft=config.n_fft, hop_length=config.hop_length, center=True,
                  pad_mode="constant")
    mel_kw = dict(n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax, htk=config.htk)
    S = np.abs(librosa.stft(y, window="hann", **common)) ** 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tuning = librosa.estimate_tuning(S=S, sr=sr, bins_per_octave=config.n_chroma)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, power=2.0, **common, **mel_kw)
    return tuning, {
        "mfcc": librosa.feature.mfcc(y=y, sr=sr, n_mfcc=config.n_mfcc, **common, **mel_kw),
        "chroma": librosa.util.normalize(
            librosa.feature.chroma_stft(y=y, sr=sr, norm=None, tuning=config.tuning,
                                        n_chroma=config.n_chroma, **common),
            norm=np.inf, axis=-2, threshold=config.chroma_threshold),
        "mel": librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0) if config.mel_db
        else mel,
        "mel_power": mel,
    }


def _check_clip(path: Path, config: features.FeatureConfig) -> None:
    y_ref, sr_ref = librosa.load(path, sr=config.sr, mono=True)
    y, sr = audio.load(path, sr=config.sr, mono=True)
    assert sr == sr_ref
    np.testing.assert_array_equal(y, y_ref, err_msg=f"{path}: samples differ from librosa.load")
    tuning_ref, ref = _librosa_blocks(y_ref, sr, config)
    S = np.abs(features.stft(y, n_fft=config.n_fft, hop_length=config.hop_length)) ** 2
    assert features.estimate_tuning(S=S, sr=sr, bins_per_octave=config.n_chroma) == tuning_ref, path
    ours = features.feature_matrices(y, sr=sr, config=config)
    mel = features.melspectrogram(S=S, sr=sr, n_mels=config.n_mels, fmin=config.fmin,
                                  fmax=config.fmax, htk=config.htk)
    np.testing.assert_allclose(mel, ref["mel_power"], rtol=0, atol=1e-4 * ref["mel_power"].max())
    np.testing.assert_allclose(features.power_to_db(mel), librosa.power_to_db(ref["mel_power"]),
                               rtol=0, atol=1e-3)
    np.testing.assert_allclose(ours["mfcc"], ref["mfcc"], rtol=0, atol=1e-2, err_msg=str(path))
    np.testing.assert_allclose(ours["chroma"], ref["chroma"], rtol=0, atol=1e-3, err_msg=str(path))


@CONFIGS
def test_ravdess_sample(ravdess_dir, config):
    clips = _ravdess_sample(ravdess_dir)
    assert len(clips) == 48
    # The stereo clips of the corpus are in the sample's reach through the slow test; force one in.
    stereo = ravdess_dir / "Actor_01" / "03-01-02-01-01-02-01.flac"
    for path in clips + [stereo]:
        _check_clip(path, config)


@CONFIGS
def test_emodb_sample(emodb_dir, config):
    clips = sorted(emodb_dir.glob("*.flac"))[::27][:20]
    assert len(clips) == 20
    for path in clips:
        _check_clip(path, config)


def _tunings(path: str, config: features.FeatureConfig) -> tuple[float, float]:
    """The tuning chroma_stft estimates for ``path`` at ``config``: (librosa's, ours)."""
    y_ref, sr = librosa.load(path, sr=config.sr, mono=True)
    S_ref = np.abs(librosa.stft(y_ref, n_fft=config.n_fft, hop_length=config.hop_length,
                                window="hann", center=True, pad_mode="constant")) ** 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tuning_ref = librosa.estimate_tuning(S=S_ref, sr=sr, bins_per_octave=config.n_chroma)
    y, sr = audio.load(path, sr=config.sr)
    S = features.power_spectrogram(y, n_fft=config.n_fft, hop_length=config.hop_length)
    return tuning_ref, features.estimate_tuning(S=S, sr=sr, bins_per_octave=config.n_chroma)


def _clip_worker(path: str):
    """One clip: the tunings at both configurations, and our vector at the bundled one."""
    y, sr = audio.load(path, sr=CONFIG.sr)
    return (_tunings(path, CONFIG), _tunings(path, LIBROSA_DEFAULTS),
            features.feature_vector(y, sr=sr, config=CONFIG))


@pytest.mark.slow
def test_all_ravdess_clips(ravdess_dir):
    """Every RAVDESS clip: the same estimated tuning (at the bundled model's STFT and at
    librosa's defaults), and the pooled vector within 1e-3 of each feature's spread over the
    corpus, against the librosa reference vectors of ``export``."""
    joblib = pytest.importorskip("joblib")
    from export.dataset import load_dataset

    data = load_dataset([f"ravdess={ravdess_dir}"], CONFIG, emotions="all", progress=False)
    paths = [clip.path for clip in data.clips]
    assert len(paths) == 1440
    results = joblib.Parallel(n_jobs=2)(joblib.delayed(_clip_worker)(str(p)) for p in paths)
    for i, name in enumerate(["bundled", "librosa"]):
        mismatched = [str(p) for p, r in zip(paths, results, strict=True) if r[i][0] != r[i][1]]
        assert not mismatched, f"{name}: tuning differs on {len(mismatched)}: {mismatched[:5]}"
    X = np.stack([r[2] for r in results])
    spread = data.X.std(axis=0)
    err = np.abs(X - data.X) / np.where(spread > 0, spread, 1.0)
    worst = np.unravel_index(np.argmax(err), err.shape)
    assert err.max() < 1e-3, (
        f"feature {CONFIG.feature_names()[worst[1]]} of {paths[worst[0]]} is "
        f"{err.max():.2e} spreads off")


def test_streamed_long_recording_equals_librosa(ravdess_dir, tmp_path):
    """A 4-minute recording made of one actor's clips (48 kHz FLAC), streamed in two passes
    from the file in bounded memory, against librosa's features of the whole file."""
    import soundfile as sf

    from export.features import reference_feature_vector

    clips = sorted((ravdess_dir / "Actor_07").glob("*.flac"))[:60]
    y = np.concatenate([audio.load(c, sr=None)[0] for c in clips])
    path = tmp_path / "long.flac"
    sf.write(str(path), y, 48000)
    assert len(y) / 48000 > 200
    ref = reference_feature_vector(path, CONFIG)
    with audio.AudioStream(path, sr=CONFIG.sr) as stream:
        ours = features.feature_vector_stream(stream, sr=CONFIG.sr, config=CONFIG)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-4)  # |ref| reaches ~500


@pytest.mark.parametrize("corpus", ["ravdess", "emodb"])
def test_level_options_on_real_speech(ravdess_dir, emodb_dir, corpus):
    """The level options on real clips: the same active frames and features as librosa's."""
    from export.features import reference_feature_matrices

    clips = (_ravdess_sample(ravdess_dir)[::2] if corpus == "ravdess"
             else sorted(emodb_dir.glob("*.flac"))[::27][:20])
    for path in clips:
        y, sr = audio.load(path, sr=LEVEL.sr)
        ours = features.feature_matrices(y, sr=sr, config=LEVEL)
        ref = reference_feature_matrices(librosa.load(path, sr=LEVEL.sr)[0], sr, LEVEL)
        for name in LEVEL.features:
            assert ours[name].shape == ref[name].shape, (path, name)  # the same active frames
        np.testing.assert_allclose(features.pool(ours, LEVEL), features.pool(ref, LEVEL),
                                   rtol=1e-4, atol=1e-3, err_msg=str(path))


def test_trimmed_digital_silence_on_real_speech(ravdess_dir):
    """trim_zeros on RAVDESS clips that begin with digital silence, and on them padded with
    0.6 s more: the runtime's features are the librosa reference's (the same active frames),
    and the reference trims sample-exact (a padded clip's matrices are the clip's, bit for
    bit)."""
    from export.features import reference_feature_matrices

    clips = [ravdess_dir / name for name in LEADING_ZEROS] + _ravdess_sample(ravdess_dir)[::8]
    silence = np.zeros(int(0.6 * TRIM.sr), np.float32)
    starting = 0
    for path in clips:
        y_ref = librosa.load(path, sr=TRIM.sr)[0]
        y, sr = audio.load(path, sr=TRIM.sr)
        starting += y[0] == 0
        ref = reference_feature_matrices(y_ref, sr, TRIM)
        padded = reference_feature_matrices(np.concatenate([silence, y_ref, silence]), sr, TRIM)
        for name in TRIM.features:
            np.testing.assert_array_equal(padded[name], ref[name], err_msg=f"{path} {name}")
        for z in (y, np.concatenate([silence, y, silence])):
            ours = features.feature_matrices(z, sr=sr, config=TRIM)
            for name in TRIM.features:
                assert ours[name].shape == ref[name].shape, (path, name)
            np.testing.assert_allclose(features.pool(ours, TRIM), features.pool(ref, TRIM),
                                       rtol=1e-4, atol=1e-3, err_msg=str(path))
    assert starting >= len(LEADING_ZEROS)
