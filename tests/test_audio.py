"""ser_edge.audio: loading real and made-up files, and one-line errors for bad ones."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from ser_edge import AudioError, audio


def _write(path, y, sr, subtype=None):
    sf.write(path, y, sr, subtype=subtype)
    return path


def test_load_resamples_to_librosa_length(tmp_path, signal):
    y = signal("noise", 48000, duration=0.5)
    path = _write(tmp_path / "a.wav", y, 48000, "FLOAT")
    out, sr = audio.load(path, sr=22050)
    assert sr == 22050 and out.dtype == np.float32
    assert len(out) == int(np.ceil(len(y) * 22050 / 48000))
    native, sr = audio.load(path, sr=None)
    assert sr == 48000
    np.testing.assert_array_equal(native, y)


def test_stereo_is_averaged(tmp_path, signal):
    left, right = signal("sine", 16000), signal("noise", 16000)
    path = _write(tmp_path / "s.wav", np.stack([left, right], axis=1), 16000, "FLOAT")
    mono, _ = audio.load(path, sr=None)
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-7)
    both, _ = audio.load(path, sr=None, mono=False)
    assert both.shape == (2, len(left))


@pytest.mark.parametrize("sr", [22050, 16000, None])
def test_load_equals_librosa_on_real_clips(ravdess_dir, sr):
    librosa = pytest.importorskip("librosa")
    for path in [ravdess_dir / "Actor_05" / "03-01-02-01-02-02-05.flac",  # stereo
                 ravdess_dir / "Actor_12" / "03-01-05-02-01-01-12.flac"]:
        a, sr_a = librosa.load(path, sr=sr, mono=True)
        b, sr_b = audio.load(path, sr=sr, mono=True)
        assert sr_a == sr_b
        np.testing.assert_array_equal(a, b)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match=r"nope\.wav: no such file"):
        audio.load(tmp_path / "nope.wav")


def test_folder(tmp_path):
    with pytest.raises(AudioError, match="is a folder"):
        audio.load(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: empty file"):
        audio.load(path)


def test_not_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are not samples\n" * 50)
    with pytest.raises(AudioError, match=r"notes\.wav: cannot decode as audio"):
        audio.load(path)


def test_truncated_flac(tmp_path, signal):
    path = _write(tmp_path / "cut.flac", signal("noise", 16000), 16000)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(AudioError, match=r"cut\.flac: "):
        audio.load(path)


def test_nan_samples(tmp_path, signal):
    y = signal("noise", 16000)
    y[100] = np.nan
    path = _write(tmp_path / "nan.wav", y, 16000, "FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: audio has NaN"):
        audio.load(path)


def test_odd_sample_rate(tmp_path, signal):
    path = _write(tmp_path / "slow.wav", signal("noise", 16000)[:800], 100, "FLOAT")
    with pytest.raises(AudioError, match=r"slow\.wav: sample rate 100 Hz"):
        audio.load(path)


def test_valid_audio_checks():
    y = np.zeros(100, np.float32)
    audio.valid_audio(y)
    with pytest.raises(AudioError, match="clip.wav: digital silence"):
        audio.valid_audio(y, path="clip.wav", allow_silence=False)
    with pytest.raises(AudioError, match="too short: 100 samples, at least 2048"):
        audio.valid_audio(y, min_samples=2048)
    with pytest.raises(AudioError, match="floating-point"):
        audio.valid_audio(np.zeros(10, np.int16))
    with pytest.raises(AudioError, match="1-D or"):
        audio.valid_audio(np.zeros((1, 2, 3), np.float32))


def test_long_file_streams_to_librosas_samples(tmp_path, signal):
    """Files past the streaming threshold are decoded and resampled block by block; the result
    must still equal librosa.load sample for sample (stereo, odd length, 44.1 kHz)."""
    librosa = pytest.importorskip("librosa")
    sr = 44100
    n = audio._STREAM_MIN_FRAMES + 12345
    left = np.resize(signal("vibrato", sr, duration=2.0), n)
    right = np.resize(signal("noise", sr, duration=2.0), n)
    path = _write(tmp_path / "long.flac", np.stack([left, right], axis=1), sr)
    for target in (16000, 22050):
        ref, _ = librosa.load(path, sr=target, mono=True)
        ours, sr_out, sr_native = audio.load_with_rate(path, sr=target)
        assert (sr_out, sr_native) == (target, sr)
        np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize(("channels", "sr_native", "sr"),
                         [(1, 48000, 16000), (2, 44100, 22050), (1, 16000, 16000)])
def test_stream_pieces_are_load(tmp_path, signal, channels, sr_native, sr):
    """Iterating an AudioStream gives load()'s samples (soxr's stream against its one-shot call),
    the last pieces cut to librosa's length; read() and a second pass give them again."""
    y = np.stack([signal("vibrato", sr_native, duration=3.3), signal("noise", sr_native, seed=2,
                                                                     duration=3.3)][:channels])
    path = _write(tmp_path / "clip.flac", y.T, sr_native)
    ref, _ = audio.load(path, sr=sr)
    with audio.AudioStream(path, sr=sr) as stream:
        assert (stream.sr, stream.sr_native, stream.n_frames_native) == (sr, sr_native, y.shape[1])
        for _ in range(2):
            pieces = list(stream)
            assert all(p.dtype == np.float32 and p.ndim == 1 for p in pieces)
            np.testing.assert_array_equal(np.concatenate(pieces), ref)
        np.testing.assert_array_equal(stream.read(), ref)


def test_stream_errors(tmp_path, signal):
    with pytest.raises(AudioError, match=r"nope\.wav: no such file"):
        audio.AudioStream(tmp_path / "nope.wav", sr=16000)
    slow = _write(tmp_path / "slow.wav", signal("noise", 16000)[:800], 100, "FLOAT")
    with pytest.raises(AudioError, match=r"slow\.wav: sample rate 100 Hz"):
        audio.AudioStream(slow, sr=16000)
    y = signal("noise", 16000, duration=10.0)
    y[150000] = np.inf
    bad = _write(tmp_path / "inf.wav", y, 16000, "FLOAT")
    with audio.AudioStream(bad, sr=8000) as stream, pytest.raises(
            AudioError, match=r"inf\.wav: audio has NaN or infinite"):
        list(stream)
