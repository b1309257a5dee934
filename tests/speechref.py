"""A reference for the spoken part of a clean clip, independent of ``ser_edge.vad``.

An energy rule in the spirit of ``librosa.effects.trim``: from the first to the last 32 ms frame
(10 ms hop) whose power in the speech band (100 Hz-4 kHz) is within 40 dB of the loudest frame and
at least 20 dB above the clip's noise floor (its 10th-percentile frame). The second condition keeps
the rule off the floor of quiet recordings, where 40 dB under a soft voice is the room's rumble.
Used by ``tests/test_vad.py``, ``tests/test_timeline.py`` and ``benchmarks/vad.py``.

Also speech with no pause in it, made from real clips, for ``tests/test_vad.py`` and
``benchmarks/vad_corpora.py``: :func:`speech_only` cuts a clip to its speech (from the first to the
last 10 ms frame within 30 dB of its loudest, in the speech band), :func:`joined` puts such clips
end to end with nothing between, and :func:`compressed` evens out their level as a broadcast
compressor does (a talk show's voice at -19 dBFS RMS, whose quietest frames are speech).
"""

from __future__ import annotations

import numpy as np

__all__ = ["spoken_part", "speech_only", "joined", "compressed"]


def spoken_part(y: np.ndarray, sr: int = 16000) -> tuple[int, int]:
    """First and last sample of the spoken part of ``y`` (mono float), as ``(start, end)``."""
    spec = np.fft.rfft(y.astype(np.float64))
    f = np.fft.rfftfreq(len(y), 1 / sr)
    spec[(f < 100) | (f > 4000)] = 0
    band = np.fft.irfft(spec, len(y))
    frame, hop = int(0.032 * sr), int(0.010 * sr)
    padded = np.pad(band, frame // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop]
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    threshold = max(db.max() - 40, np.percentile(db, 10) + 20)
    loud = np.flatnonzero(db > threshold)
    return int(loud[0] * hop), int(min(len(y), (loud[-1] + 1) * hop))


def _band_db(y: np.ndarray, sr: int, hop: int) -> np.ndarray:
    """Power in 100 Hz-4 kHz of consecutive ``hop``-sample frames of ``y``, in dB."""
    spec = np.fft.rfft(y.astype(np.float64))
    f = np.fft.rfftfreq(len(y), 1 / sr)
    spec[(f < 100) | (f > 4000)] = 0
    band = np.fft.irfft(spec, len(y))
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(band, (0, hop)), hop)[::hop]
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)


def speech_only(y: np.ndarray, sr: int = 16000, *, below_db: float = 30.0) -> np.ndarray:
    """``y`` from the first to the last 10 ms frame within ``below_db`` of its loudest."""
    hop = sr // 100
    db = _band_db(y, sr, hop)
    loud = np.flatnonzero(db >= db.max() - below_db)
    return y[loud[0] * hop : min(len(y), (loud[-1] + 1) * hop)]


def joined(clips: list[np.ndarray], seconds: float, sr: int = 16000) -> list[np.ndarray]:
    """``clips`` end to end, nothing between, cut into pieces of ``seconds`` (the rest dropped)."""
    y = np.concatenate(clips) if clips else np.zeros(0, np.float32)
    n = int(round(seconds * sr))
    return [y[i : i + n] for i in range(0, len(y) - n + 1, n)]


def compressed(y: np.ndarray, sr: int = 16000, *, ratio: float = 4.0,
               level_db: float = -19.0) -> np.ndarray:
    """``y`` through a fast compressor (``ratio``:1 on its 20 ms RMS envelope), at ``level_db``
    dBFS RMS."""
    n = int(0.02 * sr)
    env = np.sqrt(np.convolve(y.astype(np.float64) ** 2, np.ones(n) / n, "same") + 1e-10)
    z = y * env ** (1 / ratio - 1)
    return (z * 10 ** (level_db / 20) / np.sqrt(np.mean(z**2))).astype(np.float32)
