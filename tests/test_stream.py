"""StreamingClassifier: a window's numbers are Classifier.predict's, however the stream is cut.

Real RAVDESS and EmoDB clips are pushed as int16 or float PCM, mono or stereo, 16 or 48 kHz, in
chunks of random sizes; every window with speech must carry exactly the probabilities of
``Classifier.predict`` on the same samples at the model's rate (``ser_edge.audio.load`` of the
stream, which the stream's own resampling reproduces sample for sample).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from nonspeech import make

from ser_edge import Classifier, StreamingClassifier, audio, vad
from ser_edge.errors import AudioError, ParameterError
from ser_edge.stream import WindowResult, pcm_chunks

STEREO_CLIP = "Actor_05/03-01-02-01-02-02-05.flac"  # one of RAVDESS's five stereo clips


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier()


@pytest.fixture(scope="module")
def stereo_48k(ravdess_dir: Path) -> np.ndarray:
    """A stereo RAVDESS clip and two mono ones after it, as (n, 2) int16 at 48 kHz."""
    y, sr = sf.read(ravdess_dir / STEREO_CLIP, dtype="int16")
    assert sr == 48000 and y.ndim == 2
    mono = [sf.read(p, dtype="int16")[0] for p in sorted(ravdess_dir.glob("Actor_12/*.flac"))[5:7]]
    return np.concatenate([y] + [np.stack([m, m], axis=1) for m in mono])


def push_in_chunks(stream: StreamingClassifier, x: np.ndarray, rng, largest: int = 9000):
    out, pos = [], 0
    while pos < len(x):
        n = int(rng.integers(1, largest))
        out += stream.push(x[pos : pos + n])
        pos += n
    return out + stream.flush()


def model_rate(x: np.ndarray, sr: int, rate: int = 16000) -> np.ndarray:
    """The stream as ser_edge.audio.load gives it: float32, channels averaged, resampled."""
    y = x.astype(np.float32) / 32768 if x.dtype == np.int16 else x.astype(np.float32)
    if y.ndim == 2:
        y = np.mean(y.T, axis=0)
    return audio.resample(y, orig_sr=sr, target_sr=rate)


def test_windows_are_predict_on_the_same_samples(clf, stereo_48k, rng) -> None:
    stream = StreamingClassifier(clf, sr=48000, channels=2)
    results = push_in_chunks(stream, stereo_48k, rng)
    y = model_rate(stereo_48k, 48000)
    n_speech = 0
    for r in results:
        s, e = round(r.start_s * 16000), round(r.end_s * 16000)
        assert e - s == 48000 or e == len(y)
        if r.speech:
            n_speech += 1
            p = clf.predict(y[s:e], 16000)
            assert r.probabilities == p.probabilities  # exactly the same numbers
            assert r.label == p.label and r.confidence == p.confidence
    assert n_speech >= 5
    # Windows every second from 0, then one ending at the end of the stream.
    starts = [r.start_s for r in results]
    assert starts[: len(results) - 1] == [float(k) for k in range(len(results) - 1)]
    assert results[-1].end_s == pytest.approx(len(y) / 16000)


def test_chunking_does_not_matter(clf, stereo_48k, rng) -> None:
    x = stereo_48k[: 48000 * 5]
    whole = StreamingClassifier(clf, sr=48000, channels=2)
    expected = whole.push(x) + whole.flush()
    tiny = StreamingClassifier(clf, sr=48000, channels=2)
    assert push_in_chunks(tiny, x, rng, largest=700) == expected
    # 1-D interleaved samples, cut in the middle of frames, are the same stream.
    inter = StreamingClassifier(clf, sr=48000, channels=2)
    assert push_in_chunks(inter, x.reshape(-1), rng, largest=1001) == expected
    # Floats are int16 / 32768.
    floats = StreamingClassifier(clf, sr=48000, channels=2)
    assert push_in_chunks(floats, x.astype(np.float32) / 32768, rng) == expected


def test_16k_stream_needs_no_resampling(clf, emodb_dir, rng) -> None:
    clips = sorted(emodb_dir.glob("*.flac"))[:3]
    x = np.concatenate([sf.read(c, dtype="int16")[0] for c in clips])
    stream = StreamingClassifier(clf, sr=16000, window_s=2.0, hop_s=0.5)
    results = push_in_chunks(stream, x, rng)
    y = x.astype(np.float32) / 32768
    assert [r.end_s - r.start_s for r in results[:-1]] == [2.0] * (len(results) - 1)
    for r in results:
        if r.speech:
            s, e = round(r.start_s * 16000), round(r.end_s * 16000)
            assert r.probabilities == clf.predict(y[s:e], 16000).probabilities


@pytest.mark.parametrize("sr", [16000, 48000])
def test_speech_flag_is_has_speech_of_the_window(clf, ravdess_dir, rng, sr) -> None:
    """Each window's flag, from features cached across windows, is has_speech of its samples."""
    clips = sorted(ravdess_dir.glob("Actor_07/*.flac"))[:3]
    parts = []
    for i, c in enumerate(clips):
        parts += [make(("pink", "hum50", "tone")[i], sr=sr, seconds=3.5, level_db=-40, seed=i),
                  audio.load(c, sr=sr)[0]]
    x = np.concatenate(parts)
    stream = StreamingClassifier(clf, sr=sr, window_s=2.0, hop_s=0.5)
    results = push_in_chunks(stream, x, rng)
    y = model_rate(x, sr) if sr != 16000 else x
    flags = set()
    for r in results:
        s, e = round(r.start_s * 16000), round(r.end_s * 16000)
        assert r.speech == vad.has_speech(y[s:e], 16000) == bool(vad.speech_segments(y[s:e],
                                                                                     16000))
        flags.add(r.speech)
    assert flags == {True, False}


def test_smoothing_averages_the_last_windows(clf, stereo_48k) -> None:
    x = stereo_48k[: 48000 * 7]
    raw = StreamingClassifier(clf, sr=48000, channels=2)
    plain = raw.push(x) + raw.flush()
    smooth = StreamingClassifier(clf, sr=48000, channels=2, smoothing=3)
    smoothed = smooth.push(x) + smooth.flush()
    labels = clf.labels
    history: list[np.ndarray] = []
    for p, s in zip(plain, smoothed, strict=True):
        assert (p.start_s, p.end_s, p.speech) == (s.start_s, s.end_s, s.speech)
        if not p.speech:
            history.clear()
            assert s.label is None
            continue
        history = (history + [np.array([p.probabilities[k] for k in labels])])[-3:]
        mean = np.mean(history, axis=0)
        np.testing.assert_allclose([s.probabilities[k] for k in labels], mean, rtol=1e-12)
        assert s.label == labels[int(np.argmax(mean))]


def test_non_speech_windows_have_no_emotion(clf) -> None:
    stream = StreamingClassifier(clf, sr=16000)
    noise = make("pink", seconds=5.0, level_db=-30)
    results = stream.push(noise) + stream.push(np.zeros(16000, np.float32)) + stream.flush()
    assert len(results) == 4
    assert all(not r.speech and r.label is None and r.probabilities is None for r in results)
    assert results[0].to_dict() == {"start_s": 0.0, "end_s": 3.0, "speech": False,
                                    "label": None, "probabilities": None}
    # Without voice activity detection every window is classified, silence aside.
    every = StreamingClassifier(clf, sr=16000, vad=False)
    results = every.push(noise) + every.flush()
    assert all(r.speech and r.label in clf.labels for r in results)


def test_short_stream_and_flush(clf, ravdess_dir) -> None:
    x, sr = sf.read(sorted(ravdess_dir.glob("Actor_02/*.flac"))[9], dtype="float32")
    stream = StreamingClassifier(clf, sr=sr, window_s=10.0)
    assert stream.push(x) == []
    assert stream.time_s == pytest.approx(len(x) / sr)
    (only,) = stream.flush()
    assert only.start_s == 0.0 and only.end_s == pytest.approx(len(x) / sr, abs=1e-4)
    assert only.speech
    y = model_rate(x, sr)
    assert only.probabilities == clf.predict(y, 16000).probabilities
    assert stream.time_s == 0.0 and stream.flush() == []  # reset, nothing left


def test_memory_stays_one_window(clf) -> None:
    """Two minutes of audio in 100 ms chunks: the buffer never holds more than a window."""
    stream = StreamingClassifier(clf, sr=48000, window_s=3.0, hop_s=1.0)
    chunk = make("white", sr=48000, seconds=0.1, level_db=-40)
    n = 0
    for _ in range(1200):
        n += len(stream.push(chunk))
        assert len(stream._buf) <= 48000 + 1600 + 4096  # window, chunk, resampler's block
    # The window ending at 120 s waits for the resampler's last samples: flush gives it.
    assert n == 117 and len(stream.flush()) == 1


@pytest.mark.parametrize(("bad", "error", "match"), [
    (np.zeros(10, np.int8), ParameterError, "int16"),
    (np.zeros((10, 3), np.float32), ParameterError, "channel"),
    (np.zeros((2, 2, 2), np.float32), ParameterError, "shape"),
    (np.array([0.0, np.nan], np.float32), AudioError, "NaN"),
])
def test_bad_chunks(clf, bad, error, match) -> None:
    with pytest.raises(error, match=match):
        StreamingClassifier(clf, sr=16000, channels=2).push(bad)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"sr": 0}, "sr"), ({"sr": 16000, "channels": 0}, "channels"),
    ({"sr": 16000, "window_s": 0.01}, "shorter than (one analysis frame|the 9 analysis frames)"),
    ({"sr": 16000, "hop_s": -1}, "hop_s"), ({"sr": 16000, "smoothing": 0}, "smoothing"),
    ({"sr": 500}, "outside"),
    ({"sr": 16000, "smoothing": 99999999999999999999}, "smoothing must be at most 10000"),
])
def test_bad_parameters(clf, kwargs, match) -> None:
    with pytest.raises(ParameterError, match=match):
        StreamingClassifier(clf, **kwargs)


def test_pcm_chunks_keep_frames_whole(rng) -> None:
    x = rng.integers(-32768, 32767, size=(1000, 2), dtype=np.int16)
    data = x.astype("<i2").tobytes()

    class Trickle(io.RawIOBase):  # a pipe that gives 1 to 7 bytes at a time
        def __init__(self):
            self.pos = 0

        def readable(self):
            return True

        def read(self, n=-1):
            k = min(n, 1 + self.pos % 7, len(data) - self.pos)
            out = data[self.pos : self.pos + k]
            self.pos += k
            return out

    chunks = list(pcm_chunks(Trickle(), format="s16le", channels=2, chunk_bytes=64))
    assert all(c.ndim == 2 and c.shape[1] == 2 and len(c) for c in chunks)
    assert np.array_equal(np.concatenate(chunks), x)
    f = rng.standard_normal((300, 1)).astype("<f4")
    (got,) = list(pcm_chunks(io.BytesIO(f.tobytes()), format="f32le", chunk_bytes=1 << 16))
    assert np.array_equal(got, f)
    with pytest.raises(ParameterError, match="PCM format"):
        next(pcm_chunks(io.BytesIO(b""), format="s24le"))


def test_window_result() -> None:
    r = WindowResult(1.0, 4.0, True, "sad", {"sad": 0.75, "calm": 0.25})
    assert r.confidence == 0.75
    assert WindowResult(0.0, 3.0, False).confidence is None


def test_windows_too_quiet_to_analyse_hold_no_speech(clf) -> None:
    """Without voice activity detection, a window scaled far below any recorder's noise floor is
    'no speech', as digital silence is, not an emotion the float32 features made up (issue 23)."""
    voice = make("pink", seconds=4.0, level_db=-30)
    quiet = StreamingClassifier(clf, sr=16000, vad=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning
        results = quiet.push(voice * np.float32(1e-20)) + quiet.flush()
    assert results and all(not r.speech and r.label is None for r in results)


def test_windows_are_trimmed_by_a_model_that_trims(build_model, ravdess_dir, tmp_path,
                                                   rng) -> None:
    """A model with trim_zeros: a window that starts or ends in digital silence gets the
    probabilities of its samples without it (the gap between two clips is longer than a
    window's hop, so windows end and begin inside it)."""
    from ser_edge.dsp import trim_zeros
    from ser_edge.features import FeatureConfig

    config = FeatureConfig(features=("mfcc", "chroma", "mel", "mfcc_delta"), level_db=-20.0,
                           frames="active", top_db=60.0, trim_zeros=True)
    clf = Classifier(build_model(tmp_path / "trim.onnx", config=config))
    clips = sorted(ravdess_dir.glob("Actor_09/*.flac"))[:2]
    gap = np.zeros(int(1.2 * 16000), np.float32)
    y = np.concatenate([audio.load(clips[0], sr=16000)[0], gap, audio.load(clips[1], sr=16000)[0]])
    stream = StreamingClassifier(clf, sr=16000, window_s=2.0, hop_s=0.5)
    edged = 0
    for r in push_in_chunks(stream, y, rng):
        s, e = round(r.start_s * 16000), round(r.end_s * 16000)
        window = y[s:e]
        if not r.speech:
            continue
        edged += window[0] == 0 or window[-1] == 0
        assert r.probabilities == clf.predict(trim_zeros(window), 16000).probabilities
    assert edged >= 2
    # Without the speech check, a blip of 60 ms in digital silence is too short to analyse
    # once trimmed: no speech, where predict would refuse it.
    blip = np.concatenate([gap, 0.1 * rng.standard_normal(960).astype(np.float32), gap])
    with pytest.raises(AudioError, match="between the digital silence at its ends"):
        clf.predict(blip, 16000)
    stream = StreamingClassifier(clf, sr=16000, window_s=2.0, hop_s=0.5, vad=False)
    results = push_in_chunks(stream, blip, rng)
    assert results and not any(r.speech for r in results)
