"""A reference for the spoken part of a clean clip, independent of ``ser_edge.vad``.

An energy rule in the spirit of ``librosa.effects.trim``: from the first to the last 32 ms frame
(10 ms hop) whose power in the speech band (100 Hz-4 kHz) is within 40 dB of the loudest frame and
at least 20 dB above the clip's noise floor (its 10th-percentile frame). The second condition keeps
the rule off the floor of quiet recordings, where 40 dB under a soft voice is the room's rumble.
Used by ``tests/test_vad.py``, ``tests/test_timeline.py`` and ``benchmarks/vad.py``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["spoken_part"]


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
