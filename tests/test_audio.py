"""ser_edge.audio: loading real and made-up files, and one-line errors for bad ones."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import soundfile as sf

from ser_edge import AudioError, AudioWarning, audio


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


# -- bad input, tried by a stranger (issue 13) ---------------------------------------------------


def _tone(seconds=1.0, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("FLAC", "PCM_16"),
                                              ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_file_objects_read_like_paths(tmp_path, fmt, subtype):
    import io

    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, _tone(), 16000, format=fmt, subtype=subtype)
    ref, _ = audio.load(path, sr=8000)
    data = path.read_bytes()
    decimals = 6 if fmt == "MP3" else 7  # mpg123's float output differs in the last bit by read
    np.testing.assert_array_almost_equal(audio.load(io.BytesIO(data), sr=8000)[0], ref, decimals)
    with open(path, "rb") as f:
        np.testing.assert_array_almost_equal(audio.load(f, sr=8000)[0], ref, decimals)
        assert not f.closed  # the caller's file stays open
    np.testing.assert_array_almost_equal(audio.load(os.fsencode(path), sr=8000)[0], ref, decimals)
    # Read from the current position: a container's header before the audio is skipped.
    prefixed = io.BytesIO(b"HEADER" + data)
    prefixed.seek(6)
    np.testing.assert_array_almost_equal(audio.load(prefixed, sr=8000)[0], ref, decimals)
    # A stream that cannot seek is copied first, then read as any other.
    np.testing.assert_array_almost_equal(audio.load(_Unseekable(data), sr=8000)[0], ref, decimals)


class _Unseekable:
    """A socket-like source: read() only."""

    def __init__(self, data: bytes):
        import io

        self._data = io.BytesIO(data)
        self.name = "<socket>"

    def read(self, n: int = -1) -> bytes:
        return self._data.read(n)


def test_a_pipe_is_read_in_bounded_memory(tmp_path, monkeypatch):
    """A FIFO is a path that cannot seek: copied to a temporary file, in memory only up to
    audio._SPOOL_MEMORY (16 MiB; 1 MiB here), so memory does not grow with the stream."""
    import threading
    import tracemalloc

    monkeypatch.setattr(audio, "_SPOOL_MEMORY", 1 << 20)
    path = tmp_path / "long.wav"
    sf.write(path, np.tile(_tone(), 200), 16000)  # 200 s, 6.4 MB
    data = path.read_bytes()
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=(data,))
    writer.start()
    tracemalloc.start()
    try:
        with audio.AudioStream(fifo, sr=16000) as stream:
            assert stream.n_frames_native == 200 * 16000
            n = sum(len(piece) for piece in stream)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        writer.join()
    assert n == 200 * 16000
    # 1 MiB in memory and its copy when it moves to disk, a 1 MiB read buffer, blocks of audio:
    # less than the 6.4 MB stream, and the same for any longer one.
    assert peak < 4 << 20


def test_other_sources_are_parameter_errors():
    import io

    from ser_edge import ParameterError

    for bad, message in [(3, "got int"), (np.zeros(100), "use Classifier.predict"),
                         (io.StringIO("text"), "binary mode"), (None, "got NoneType")]:
        with pytest.raises(ParameterError, match=message):
            audio.load(bad)


def test_empty_file_object():
    import io

    with pytest.raises(AudioError, match=r"^<BytesIO>: empty input \(0 bytes\)$"):
        audio.load(io.BytesIO(b""))
    with pytest.raises(AudioError, match=r"^<socket>: empty input \(0 bytes\)$"):
        audio.load(_Unseekable(b""))


def test_non_utf8_names(tmp_path):
    raw = os.fsencode(tmp_path) + b"/caf\xe9.wav"
    sf.write(raw, _tone(), 16000)
    y, sr = audio.load(raw, sr=None)
    assert len(y) == 16000
    y2, _ = audio.load(os.fsdecode(raw), sr=None)  # the str Python's os functions give
    np.testing.assert_array_equal(y, y2)
    with pytest.raises(AudioError, match=r"caf\\xe9-missing\.wav: no such file$") as info:
        audio.load(os.fsencode(tmp_path) + b"/caf\xe9-missing.wav")
    str(info.value).encode("utf-8")  # printable: no lone surrogates


def test_display_name():
    assert audio.display_name("caf\udce9.wav") == "caf\\xe9.wav"
    assert audio.display_name(b"caf\xe9.wav") == "caf\\xe9.wav"
    assert audio.display_name("café.wav") == "café.wav"  # valid UTF-8 is left alone
    assert audio.display_name("a\nb\tc\x1b.wav") == "a\\nb\\tc\\x1b.wav"
    assert audio.display_name("\ud800.wav") == "\\ud800.wav"  # no file system gives this


def test_display_names_of_two_files_differ() -> None:
    """A name holding a newline and one holding a backslash and an n do not print alike (a
    results file keys its records by this name: issue 23)."""
    names = ["a\nb.wav", "a\\nb.wav", "a\\\\nb.wav", "caf\udce9.wav", "caf\\xe9.wav",
             "x\x1b.wav", "x\\x1b.wav", "t\tb", "t\\tb"]
    shown = [audio.display_name(name) for name in names]
    assert len(set(shown)) == len(names), shown
    assert shown[:2] == ["a\\nb.wav", "a\\\\nb.wav"]


def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.wav"
    sf.write(path, _tone(), 16000)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("this user reads files whatever their mode (root): see test_cli's "
                        "unprivileged tests")
        with pytest.raises(AudioError, match=r"secret\.wav: permission denied$"):
            audio.load(path)
    finally:
        path.chmod(0o644)


def test_broken_symlink(tmp_path):
    (tmp_path / "link.wav").symlink_to(tmp_path / "gone.wav")
    with pytest.raises(AudioError, match=r"link\.wav: broken symbolic link"):
        audio.load(tmp_path / "link.wav")


def test_flac_header_claiming_billions_of_frames(tmp_path):
    """Found by the fuzzer: a FLAC whose STREAMINFO says 2**32 + 5000 samples. Decoding follows
    the data, not the header: an AudioError naming the file, and memory bounded by the data."""
    import io
    import tracemalloc

    from tests.fuzz.seeds import flac_with_total_samples

    path = tmp_path / "huge.flac"
    sf.write(path, _tone(), 16000)
    path.write_bytes(flac_with_total_samples(path.read_bytes(), 2**32 + 5000))
    assert sf.info(str(path)).frames == 2**32 + 5000
    tracemalloc.start()
    try:
        for call in (lambda: audio.load(path, sr=None), lambda: audio.load(path, sr=8000),
                     lambda: audio.load(io.BytesIO(path.read_bytes()), sr=None, mono=False),
                     lambda: list(audio.AudioStream(path, sr=22050))):
            tracemalloc.reset_peak()
            with pytest.raises(AudioError, match=r"(huge\.flac|<BytesIO>): cannot decode as audio: "
                               r"truncated or corrupt, decoding failed past .* of the "
                               r"268435\.77 s its header says"):
                call()
            assert tracemalloc.get_traced_memory()[1] < 8 << 20
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(("fmt", "header"), [("WAV", 44), ("AIFF", 54)])
def test_truncated_wav_warns_and_keeps_what_is_there(tmp_path, fmt, header):
    y = _tone(2.0)
    path = tmp_path / f"cut.{fmt.lower()}"
    sf.write(path, y, 16000, format=fmt, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[:header + 2 * 12345])  # header + 12345 samples
    with pytest.warns(AudioWarning, match=rf"cut\.{fmt.lower()}: the file is shorter than its "
                      r"header says \(0\.77 s of audio, the header says 2\.00 s\)"):
        out, _ = audio.load(path, sr=None)
    np.testing.assert_allclose(out, y[:12345], atol=1 / 32768)
    sf.write(path, y, 16000, subtype="PCM_16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the whole file: no warning
        audio.load(path, sr=None)


def test_truncated_mp3_warns(tmp_path):
    path = tmp_path / "clip.mp3"
    sf.write(path, _tone(2.0), 16000, format="MP3", subtype="MPEG_LAYER_III")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the whole file: no warning
        whole, _ = audio.load(path, sr=None)
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    with pytest.warns(AudioWarning, match=r"clip\.mp3: the file is shorter than its header says "
                      r"\(\d\.\d\d s of audio, the header says 2\.00 s\)"):
        cut, _ = audio.load(path, sr=None)
    assert 0.3 * len(whole) < len(cut) < 0.7 * len(whole)


def test_mp3_with_a_damaged_frame_warns(capfd):
    """40 bytes of 0xFF in the middle of a 3 s MP3, at a few places: each either decodes whole
    with a 'damaged MP3 frames were skipped' warning, or stops early with the truncation warning
    (mpg123 resyncs, or gives up quietly), or decodes whole; at least one place says damaged."""
    import io

    buf = io.BytesIO()
    sf.write(buf, _tone(3.0), 16000, format="MP3", subtype="MPEG_LAYER_III")
    data = buf.getvalue()
    said = []
    for start in range(len(data) // 3, len(data) * 3 // 4, 150):
        damaged = data[:start] + b"\xff" * 40 + data[start + 40:]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            y, _ = audio.load(io.BytesIO(damaged), sr=None)
        assert all(issubclass(w.category, AudioWarning) for w in caught)
        said += [str(w.message) for w in caught]
    damage = [m for m in said if "damaged MP3 frames were skipped (mpg123: " in m]
    assert damage, said
    assert all(m.endswith("classified from what could be decoded") for m in damage)
    assert capfd.readouterr().err == ""


def test_corrupt_mp3_is_quiet(tmp_path, capfd):
    path = tmp_path / "bad.mp3"
    sf.write(path, _tone(2.0), 16000, format="MP3", subtype="MPEG_LAYER_III")
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    data[200::3] = rng.integers(0, 256, len(data[200::3]), dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=r"bad\.mp3: cannot decode the MP3 \(mpg123: [^)]+\)"):
        audio.load(path, sr=16000)
    assert capfd.readouterr().err == ""  # mpg123 wrote to descriptor 2: captured, not shown


def test_overflowing_and_huge_samples():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AudioError, match=r"^samples overflow float32 \(peak magnitude 3e\+29"):
            audio.valid_audio(_tone().astype(np.float64) * 1e30)
        with pytest.raises(AudioError, match=r"^samples overflow float32 \(peak magnitude 3e\+19"):
            audio.valid_audio(_tone() * np.float32(1e20))
        with pytest.raises(AudioError, match=r"^x\.wav: samples overflow float32 \(peak magnitude "
                           r"1e\+300"):
            audio.valid_audio(np.full(10, 1e300), path="x.wav")
    audio.valid_audio(_tone() * np.float32(32768))  # int16-scaled floats are still audio


def test_channels_first():
    y = np.zeros((1000, 2), np.float32)
    assert audio.channels_first(y).shape == (2, 1000)
    assert audio.channels_first(y.T).shape == (2, 1000)
    assert audio.channels_first(np.zeros(5)).shape == (5,)
    with pytest.raises(AudioError, match=r"shape \(1000, 20\): cannot tell channels from samples"):
        audio.channels_first(np.zeros((1000, 20)))
