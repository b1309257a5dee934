"""Voice activity detection: speech found in real clips, non-speech rejected, streams = whole.

The non-speech set is ``tests/nonspeech.py``'s seeded generator (silence, noise, hum, DC, tones,
sweeps, clicks, bursts, at levels from -70 to -1 dBFS). The spoken part of a clip is referred to
``tests/speechref.py``'s energy rule, independent of the detector (within 40 dB of the loudest
frame and 20 dB above the noise floor, in the speech band).

The seven corpora of ``SER_EDGE_DATA`` (RAVDESS, EmoDB, ASED, nEMO, Korean, TurEV, BAVED) are
all speech: a sample of each in the default run, every clip in the slow one, and the same clips
with no pause in them (cut to their speech, joined end to end, compressed as broadcast speech is).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from nonspeech import KINDS, make, nonspeech_set
from speechref import compressed, joined, speech_only, spoken_part

from export.paths import DATA_ENV, corpus_dir, data_root
from ser_edge import audio, vad
from ser_edge.errors import ParameterError

SR = 16000

#: The corpora of the data folder: the pattern of their audio files and how many there are.
CORPORA = {
    "ravdess": ("Actor_*/*.flac", 1440), "emodb": ("*.flac", 535), "ased": ("*/*.opus", 2474),
    "nemo": ("samples/*.opus", 4481), "korean": ("*/*/wav/*.opus", 300),
    "turev": ("*/*.opus", 1735), "baved": ("*/*.opus", 1935),
}

#: Clips of the corpora that the detector misses, and why (each one speech, to a listener).
KNOWN_MISSES = {
    # A held vowel: after a 0.2 s onset, 1.3 s of "aa" whose level stays within 2 dB over every
    # 0.1 s, as hum's does, so only the onset's 0.14 s is evidence of a voice (0.16 s needed);
    # found when the frame grid is shifted by 80, 160 or 240 samples.
    "baved/2/56-f-40-2-0-626.opus",
}


def corpus_files(name: str) -> list[Path]:
    """Every audio file of corpus ``name``, in order; skips when the corpus is not there."""
    folder = corpus_dir(name)
    if folder is None:
        pytest.skip(f"corpus {name!r} not found under {data_root()} (set {DATA_ENV})")
    return sorted(folder.glob(CORPORA[name][0]))


def _relative(path: Path) -> str:
    return path.relative_to(data_root()).as_posix()


def corpus_sample(ravdess_dir: Path, emodb_dir: Path, step: int) -> list[Path]:
    return sorted(ravdess_dir.glob("Actor_*/*.flac"))[::step] + sorted(emodb_dir.glob("*.flac"))[
        ::step]


# -- non-speech ------------------------------------------------------------------------------------


def test_nonspeech_generator_is_seeded() -> None:
    for kind in KINDS:
        a = make(kind, seconds=1.0, level_db=-20, seed=3)
        assert a.dtype == np.float32 and len(a) == SR
        assert np.array_equal(a, make(kind, seconds=1.0, level_db=-20, seed=3))
        assert np.all(np.abs(a) <= 1)
    assert not np.array_equal(make("white", seed=1), make("white", seed=2))


def _rejection(signals) -> tuple[int, list[str]]:
    n, found = 0, []
    for name, y in signals:
        n += 1
        if vad.has_speech(y, SR):
            found.append(name)
    return n, found


def test_nonspeech_is_rejected() -> None:
    """The issue asks for >= 99% rejected; the 1 s and 3 s signals of every family, every level."""
    n, found = _rejection(nonspeech_set(SR, seconds=(1.0, 3.0), seeds=1))
    assert n > 100
    assert len(found) <= 0.01 * n, found


@pytest.mark.slow
def test_nonspeech_is_rejected_whole_set() -> None:
    """Every family, level, length (1 to 30 s) and two seeds: 416 signals."""
    n, found = _rejection(nonspeech_set(SR))
    assert n == 416
    assert len(found) <= 0.01 * n, found


def test_nonspeech_at_48k() -> None:
    for kind in ("white", "hum60", "tone", "sweep", "clicks", "hum-bursts"):
        y = make(kind, sr=48000, seconds=3.0, level_db=-20, seed=1)
        assert not vad.has_speech(y, 48000), kind


# -- real speech -----------------------------------------------------------------------------------


def _check_clips(clips: list[Path]) -> None:
    missed, uncovered = [], []
    for clip in clips:
        y, _ = audio.load(clip, sr=SR)
        span = vad.speech_span(y, SR)
        if span is None:
            missed.append(clip.name)
            continue
        ref = spoken_part(y)
        outside = max(0, span[0] - ref[0]) + max(0, ref[1] - span[1])
        uncovered.append(outside / SR)
    # The issue: speech in >= 99.5% of the clips, the detected span covering the spoken part.
    assert len(missed) <= 0.005 * len(clips), missed
    uncovered = np.array(uncovered)
    assert np.mean(uncovered <= 0.05) >= 0.8, np.percentile(uncovered, [50, 80, 95])
    assert np.mean(uncovered <= 0.5) >= 0.95, np.percentile(uncovered, [50, 80, 95])


def test_speech_found_in_real_clips(ravdess_dir: Path, emodb_dir: Path) -> None:
    _check_clips(corpus_sample(ravdess_dir, emodb_dir, 40))


@pytest.mark.slow
def test_speech_found_in_every_corpus_clip(ravdess_dir: Path, emodb_dir: Path) -> None:
    clips = corpus_sample(ravdess_dir, emodb_dir, 1)
    assert len(clips) == 1975
    _check_clips(clips)


# -- the seven corpora, and speech with no pause -----------------------------------------------


@pytest.mark.parametrize("name", CORPORA)
def test_speech_found_in_each_corpus(name: str) -> None:
    """Every 40th clip of the corpus, and those the detector missed before (soft, high and quiet
    voices, single words: ``tests/vad_missed_before.txt``), hold speech."""
    files = corpus_files(name)
    listed = (Path(__file__).parent / "vad_missed_before.txt").read_text().splitlines()
    before = [data_root() / p for p in listed if p.startswith(f"{name}/")]
    clips = sorted(set(files[::40]) | set(before))
    missed = [_relative(c) for c in clips if not vad.has_speech(audio.load(c, sr=SR)[0], SR)]
    assert not set(missed) - KNOWN_MISSES, missed


@pytest.mark.parametrize("name", CORPORA)
def test_speech_with_no_pause(name: str) -> None:
    """Clips that are speech from the first sample to the last: every 60th clip cut to its
    speech, those joined end to end into 3 s pieces with nothing between, and the pieces evened
    out to -19 dBFS RMS by a 4:1 compressor (the quietest frames are then speech too, and close
    to the loudest). Each holds speech, and the speech found spans most of the pieces (not all
    of each: a held vowel or a whisper is no evidence of a voice)."""
    cut = [speech_only(audio.load(c, sr=SR)[0]) for c in corpus_files(name)[::60]]
    pieces = joined(cut, 3.0)
    assert len(pieces) >= 5
    squeezed = [compressed(y) for y in pieces]
    for kind, signals in (("cut", cut), ("joined", pieces), ("compressed", squeezed)):
        missed = [i for i, y in enumerate(signals) if not vad.has_speech(y, SR)]
        assert not missed, (kind, missed)
    covered = [vad.speech_mask(vad.speech_segments(y, SR), len(y), hop=160).mean()
               for y in pieces + squeezed]
    assert np.mean(covered) >= 0.85, np.percentile(covered, [5, 50])


def test_pause_free_speech_at_talk_show_level(ravdess_dir: Path) -> None:
    """The issue's case: 3 s of speech with no pause, at -19 dBFS RMS, evened out as a talk
    show's is. The noise floor around a frame is then speech, and nothing is far above it; it is
    speech all the same, alone and with a second of digital silence on either side."""
    clips = sorted(ravdess_dir.glob("Actor_0[1-4]/*.flac"))[::12]
    pieces = joined([speech_only(audio.load(c, sr=SR)[0]) for c in clips], 3.0)
    silence = np.zeros(SR, np.float32)
    for y in (compressed(y, ratio=ratio) for y in pieces for ratio in (2.0, 4.0)):
        rms = 10 * np.log10(np.mean(y.astype(np.float64) ** 2))
        assert abs(rms + 19) < 0.1
        assert vad.has_speech(y, SR)
        assert vad.has_speech(np.concatenate([silence, y, silence]), SR)


@pytest.mark.parametrize("name", CORPORA)
def test_silence_or_noise_around_a_clip_changes_nothing(name: str, rng) -> None:
    """0.6 s of digital silence (on and off the frame grid) or of -60 dBFS white noise on either
    side: a clip with speech still has speech."""
    for clip in corpus_files(name)[7::150]:
        y = audio.load(clip, sr=SR)[0]
        noise = (10 ** (-60 / 20) * rng.standard_normal(2 * 9600)).astype(np.float32)
        for z in (np.concatenate([np.zeros(9600, np.float32), y, np.zeros(9600, np.float32)]),
                  np.concatenate([np.zeros(9637, np.float32), y, np.zeros(9509, np.float32)]),
                  np.concatenate([noise[:9600], y, noise[9600:]])):
            assert vad.has_speech(z, SR) == vad.has_speech(y, SR), _relative(clip)


def test_nonspeech_with_silence_or_noise_around_it_is_rejected(rng) -> None:
    """The same padding around the non-speech set (1 s and 3 s, every family and level)."""
    found = []
    for name, y in nonspeech_set(SR, seconds=(1.0, 3.0), seeds=1):
        noise = (10 ** (-60 / 20) * rng.standard_normal(2 * 9600)).astype(np.float32)
        for tag, z in (("silence", np.concatenate([np.zeros(9637, np.float32), y,
                                                   np.zeros(9600, np.float32)])),
                       ("noise", np.concatenate([noise[:9600], y, noise[9600:]]))):
            if vad.has_speech(z, SR):
                found.append((name, tag))
    assert not found, found


@pytest.mark.slow
def test_speech_found_in_every_clip_of_every_corpus() -> None:
    """Every clip of the seven corpora holds speech (but :data:`KNOWN_MISSES`), and so does each
    cut to its speech (at least 99.8% of each corpus: a few single words are then shorter than
    the 0.16 s of evidence asked for) and each 3 s piece of them joined with no pause."""
    for name, (_, count) in CORPORA.items():
        files = corpus_files(name)
        assert len(files) == count, name
        missed, missed_cut, cut = [], [], []
        for clip in files:
            y = audio.load(clip, sr=SR)[0]
            if not vad.has_speech(y, SR):
                missed.append(_relative(clip))
            cut.append(speech_only(y))
            if not vad.has_speech(cut[-1], SR):
                missed_cut.append(_relative(clip))
        assert not set(missed) - KNOWN_MISSES, (name, missed)
        assert len(missed_cut) <= 0.002 * count, (name, missed_cut)
        pieces = joined(cut, 3.0)
        assert all(vad.has_speech(y, SR) for y in pieces), name


def _pad(y: np.ndarray, before: float, after: float, noise: np.ndarray | None) -> np.ndarray:
    a, b = int(before * SR), int(after * SR)
    out = np.zeros(a + len(y) + b, np.float32)
    if noise is not None:
        out[:a], out[a + len(y) :] = noise[:a], noise[a : a + b]
    out[a : a + len(y)] = y
    return out


@pytest.mark.parametrize("padding", ["silence", "white", "pink", "hum50"])
def test_frames_of_padded_clips(ravdess_dir: Path, emodb_dir: Path, padding: str) -> None:
    """Real clips padded with non-speech of known extent: frame precision and recall."""
    tp = fp = fn = 0
    for i, clip in enumerate(corpus_sample(ravdess_dir, emodb_dir, 150)):
        y, _ = audio.load(clip, sr=SR)
        ref = spoken_part(y)
        before, after = 0.5 + (i % 5) * 0.5, 3.0 - (i % 5) * 0.5
        noise = None if padding == "silence" else make(padding, seconds=before + after,
                                                       level_db=-45, seed=i)
        z = _pad(y, before, after, noise)
        got = vad.speech_mask(vad.speech_segments(z, SR), len(z), hop=160)
        want = np.zeros_like(got)
        a = int(before * SR)
        want[(a + ref[0]) // 160 : (a + ref[1]) // 160] = True
        tp += np.sum(got & want)
        fp += np.sum(got & ~want)
        fn += np.sum(~got & want)
        # Nothing in the padding is taken for speech, beyond 0.4 s of slack (a frame, the
        # reach over active frames and the pad, past voiced frames where the speech meets hum).
        slack = int(0.4 * SR)
        assert not got[: max(0, a - slack) // 160].any(), clip.name
        assert not got[-(-(a + len(y) + slack) // 160) :].any(), clip.name
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert precision >= 0.8 and recall >= 0.85, (precision, recall)


# -- the API ---------------------------------------------------------------------------------------


def test_stream_equals_whole(ravdess_dir: Path, emodb_dir: Path, rng) -> None:
    """Segments do not depend on how the stream is cut, and equal the whole signal's."""
    clips = corpus_sample(ravdess_dir, emodb_dir, 200)[:6]
    parts = []
    for i, clip in enumerate(clips):
        parts += [make("pink", seconds=1.0 + i % 3, level_db=-50, seed=i), audio.load(clip,
                                                                                  sr=SR)[0]]
    y = np.concatenate(parts)
    whole = vad.speech_segments(y, SR)
    assert len(whole) >= len(clips)
    det = vad.VoiceActivityDetector(SR)
    pieces, pos = [], 0
    while pos < len(y):
        n = int(rng.integers(1, 5000))
        pieces += det.push(y[pos : pos + n])
        pos += n
    pieces += det.flush()
    assert pieces == whole
    assert list(vad.iter_segments(np.array_split(y, 7), SR)) == whole
    # Segments come out in order, apart, within the signal.
    for a, b in zip(whole, whole[1:], strict=False):
        assert a.end <= b.start
    assert 0 <= whole[0].start and whole[-1].end <= len(y)


def test_detector_is_reset_by_flush(signal) -> None:
    y = np.concatenate([np.zeros(SR, np.float32), signal("vibrato", SR, duration=2.0)])
    det = vad.VoiceActivityDetector(SR)
    first = det.push(y) + det.flush()
    assert det.n_samples == 0
    assert det.push(y) + det.flush() == first


def test_speech_span_and_has_speech(ravdess_dir: Path) -> None:
    y, _ = audio.load(sorted(ravdess_dir.glob("Actor_01/*.flac"))[3], sr=SR)
    start, end = vad.speech_span(y, SR)
    assert 0 < start < end < len(y)  # RAVDESS: silence before and after the sentence
    assert vad.has_speech(y, SR)
    assert vad.speech_span(np.zeros(SR, np.float32), SR) is None
    assert not vad.has_speech(np.zeros(10, np.float32), SR)  # shorter than a frame
    stereo = np.stack([y, y])
    assert vad.speech_span(stereo, SR) == (start, end)
    seg = vad.speech_segments(y, SR)[0]
    assert seg.start_s == seg.start / SR and seg.duration_s == (seg.end - seg.start) / SR


# Configurations under which the same signals are judged differently: segments cut short,
# a verdict that depends on a segment's whole length, and more evidence asked for.
CONFIGS = [vad.VadConfig(), vad.VadConfig(min_voiced_fraction=0.7),
           vad.VadConfig(min_voiced_fraction=0.95, hangover_s=0.1),
           vad.VadConfig(min_voiced_s=1.5), vad.VadConfig(hangover_s=0.05, min_voiced_s=0.3)]


def test_has_speech_is_whether_there_are_segments(ravdess_dir: Path, emodb_dir: Path) -> None:
    """has_speech's shortcut (costly features of candidate frames only, stopping as soon as a
    segment is certain to count) answers as the full detector does, whatever the verdict."""
    clips = corpus_sample(ravdess_dir, emodb_dir, 160)
    signals = []
    for sr in (16000, 48000):
        ys = [audio.load(c, sr=sr)[0] for c in clips]
        signals += [(y, sr) for y in ys]
        # Speech among noise, tones and hum: several segments, some of them not speech.
        parts = []
        for i, y in enumerate(ys[:5]):
            kind = ("pink", "tone", "hum50", "beeps", "clicks")[i]
            noise = make(kind, sr=sr, seconds=1.0 + i % 2, level_db=-35, seed=i)
            parts += [noise, y[: len(y) // 2]]
        signals.append((np.concatenate(parts), sr))
        # Longer than the frames has_speech keeps between its passes: spectra recomputed.
        signals.append((np.concatenate(parts * 3), sr))
        signals += [(y, sr) for _, y in nonspeech_set(sr, seconds=(1.0,), seeds=1)][::4]
        frame, hop = round(0.032 * sr), round(0.02 * sr)
        signals += [(ys[0][sr : sr + n], sr) for n in (0, 1, frame - 1, frame, frame + hop - 1,
                                                       frame + hop, frame + hop + 1)]
    signals.append((np.stack([ys[0], ys[0] * 0.5]), 48000))  # (channels, n)
    signals.append((ys[1].astype(np.float64), 48000))
    verdicts = set()
    for config in CONFIGS:
        for y, sr in signals:
            expected = bool(vad.speech_segments(y, sr, config))
            assert vad.has_speech(y, sr, config) == expected, (config, sr, y.shape)
            verdicts.add((config, expected))
    # Each configuration finds speech in some signals and none in others.
    assert len(verdicts) == 2 * len(CONFIGS)


def test_has_speech_of_single_words_cut_to_their_speech() -> None:
    """Words of 0.2-0.7 s (TurEV), cut to their speech: the zero-padded last frame can be the
    voiced lone peak whose glide decides, and has_speech must still answer as the detector."""
    root = corpus_dir("turev")
    if root is None:
        pytest.skip(f"TurEV not found (set {DATA_ENV})")
    clips = sorted(root.glob("*/1358_hl_*.opus"))[:40]
    assert clips
    for clip in clips:
        y = speech_only(audio.load(clip, sr=SR)[0])
        assert vad.has_speech(y, SR) == bool(vad.speech_segments(y, SR)), clip.name


def test_frame_cache_answers_as_has_speech(ravdess_dir: Path, emodb_dir: Path, rng,
                                          monkeypatch) -> None:
    """The streaming classifier's check, from frame features kept across overlapping windows,
    is has_speech of each window's samples."""
    parts = []
    for i, clip in enumerate(corpus_sample(ravdess_dir, emodb_dir, 300)[:4]):
        parts += [make(("pink", "hum50", "tone", "clicks")[i], seconds=2.5, level_db=-40, seed=i),
                  audio.load(clip, sr=SR)[0]]
    y = np.concatenate(parts)
    has_speech, fallbacks = vad.has_speech, []
    monkeypatch.setattr(vad, "has_speech", lambda *a: fallbacks.append(1) or has_speech(*a))
    window, hop = 2 * SR, SR // 2
    verdicts = set()
    for config in CONFIGS:
        cache = vad._FrameCache(SR, window + hop, config)
        start, pos = 0, 0
        while pos < len(y):
            n = int(rng.integers(1, 5000))
            cache.push(y[pos : pos + n])
            pos += n
            while start + window <= pos:
                w = y[start : start + window]
                got = cache.has_speech(w, start)
                assert got == has_speech(w, SR, config), (config, start)
                verdicts.add((config, got))
                start += hop
    assert len(verdicts) >= len(CONFIGS) + 3  # both verdicts under three configurations at least
    assert len(fallbacks) <= len(CONFIGS)  # the features kept served all but the first windows


def test_has_speech_stops_early(ravdess_dir: Path, monkeypatch) -> None:
    """On a clip with speech, the costly features of most candidate frames are never computed."""
    y, _ = audio.load(sorted(ravdess_dir.glob("Actor_03/*.flac"))[7], sr=SR)
    asked, candidates = [], []
    evidence_suffices = vad._evidence_suffices

    def spy(cands, voiced_of, config):
        candidates.append(len(cands))
        return evidence_suffices(cands, lambda k: (asked.append(len(k)), voiced_of(k))[1],
                                 config)

    monkeypatch.setattr(vad, "_evidence_suffices", spy)
    assert vad.has_speech(y, SR)
    assert sum(asked) < candidates[0] / 2, (asked, candidates)


def test_frame_features_of_known_signals() -> None:
    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    f = vad.frame_features(tone, SR)
    assert len(f["level_db"]) == 1 + (SR - 512) // 320  # 32 ms frames, 20 ms hop
    np.testing.assert_allclose(f["level_db"], 0.0, atol=0.1)  # 0 dB: a full-scale sine
    assert np.all(f["peak_fraction"] > 0.99) and np.all(f["flatness"] < 1e-3)
    np.testing.assert_allclose(f["peak_hz"], 1000.0, atol=1.0)  # interpolated between bins
    # A low voice's fundamental, under the band (100 Hz on): its peak is found all the same.
    low = (0.1 * np.sin(2 * np.pi * 82.0 * t)).astype(np.float32)
    np.testing.assert_allclose(vad.frame_features(low, SR)["peak_hz"], 82.0, atol=1.5)
    noise = make("white", seconds=1.0, level_db=-20)
    f = vad.frame_features(noise, SR)
    assert np.all(f["flatness"] > 0.4) and np.median(f["periodicity"]) < 0.4
    assert np.all(f["level_db"] < -15)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"frame_s": 0}, "frame_s"), ({"margin_db": -1}, "margin_db"),
    ({"fmin": 5000.0}, "fmin"), ({"floor_percentile": 100}, "floor_percentile"),
    ({"max_flatness": 0}, "max_flatness"), ({"top_percentile": 0}, "top_percentile"),
    ({"prominence_db": -1}, "prominence_db"), ({"min_glide_st": 2.0}, "min_glide_st"),
])
def test_bad_config(kwargs, match) -> None:
    with pytest.raises(ParameterError, match=match):
        vad.VadConfig(**kwargs)


def test_bad_input() -> None:
    with pytest.raises(ParameterError, match="sr"):
        vad.VoiceActivityDetector(0)
    det = vad.VoiceActivityDetector(SR)
    with pytest.raises(ParameterError, match="1-D float"):
        det.push(np.zeros(10, np.int16))
    with pytest.raises(ParameterError, match="NaN"):
        det.push(np.full(10, np.nan, np.float32))
    with pytest.raises(ParameterError, match="no band"):
        vad.VoiceActivityDetector(150)
