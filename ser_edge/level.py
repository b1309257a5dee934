"""Level invariance: frame energy, the speech-active frames, and the gain that fixes a clip's level.

A recording's gain is an accident of the microphone and the recorder, not of the speaker's
emotion; in dB it is an additive constant, so it can be removed exactly. The functions here work
on the power spectrogram that the features already compute:

- :func:`rms` is each frame's root-mean-square level (``librosa.feature.rms`` from a spectrogram);
- :func:`active_frames` keeps the frames that carry the voice: within ``range_db`` of the clip's
  loudest frame and ``floor_db`` above its noise floor (the 10th percentile of frame energies,
  of the frames within ``floor_range_db`` of the loudest: digital silence or a quiet pad is not
  the room's noise); every threshold moves with the clip's level, so the selection does not
  depend on the gain;
- :func:`level_gain` is the power gain that brings the mean energy of those frames to a fixed
  level in dBFS. Multiplying the power spectrogram (and so the mel and chroma projections, which
  are linear in it) by that gain is the same, in exact arithmetic, as scaling the waveform by its
  square root before the analysis.

Gain in, gain out: for ``y * g`` the frame energies are ``g**2`` times those of ``y``, the same
frames are active, and :func:`level_gain` is ``1 / g**2`` times, so every feature downstream is
unchanged up to float rounding.
"""

from __future__ import annotations

import numpy as np

from .errors import ParameterError

__all__ = ["rms", "energy_db", "active_frames", "level_gain", "NOISE_FLOOR_PERCENTILE"]

#: The percentile of a clip's frame energies taken as its noise floor by :func:`active_frames`.
NOISE_FLOOR_PERCENTILE = 10.0


def rms(*, S: np.ndarray, frame_length: int = 2048) -> np.ndarray:
    """Root-mean-square level of each frame, from its power spectrogram.

    Mirrors ``librosa.feature.rms(S=np.sqrt(S), frame_length=frame_length)`` (librosa 0.11.0):
    Parseval's sum over the one-sided spectrum, the bins between DC and Nyquist counted twice,
    divided by ``frame_length ** 2``. It is the level of the windowed frame (librosa's
    convention), not of the raw samples.

    Parameters
    ----------
    S : np.ndarray [shape=(..., 1 + frame_length // 2, n_frames)], non-negative
        Power spectrogram, ``np.abs(stft(y, n_fft=frame_length)) ** 2``.
    frame_length : int > 0
        The FFT length the spectrogram was computed with, in samples.

    Returns
    -------
    rms : np.ndarray [shape=(..., 1, n_frames)], of ``S``'s dtype
        Root-mean-square level of each frame (1.0 for a full-scale square wave under the window's
        gain).

    Raises
    ------
    ParameterError
        If ``S``'s height does not fit ``frame_length``.
    """
    if S.shape[-2] != frame_length // 2 + 1:
        raise ParameterError(
            f"a spectrogram of {S.shape[-2]} bins does not fit frame_length={frame_length} "
            f"({frame_length // 2 + 1} bins)"
        )
    x = np.array(S, copy=True)
    x[..., 0, :] *= 0.5
    if frame_length % 2 == 0:
        x[..., -1, :] *= 0.5
    power = 2 * np.sum(x, axis=-2, keepdims=True) / frame_length**2
    return np.sqrt(power)


def energy_db(rms_values: np.ndarray) -> np.ndarray:
    """Frame energy in dB (``20 log10 rms``), floored at -200 dB for digital silence.

    Parameters
    ----------
    rms_values : np.ndarray [shape=(..., n_frames)]
        As :func:`rms` returns them.

    Returns
    -------
    e : np.ndarray [shape=rms_values.shape], float64, in dB re full scale
    """
    return 20.0 * np.log10(np.maximum(np.asarray(rms_values, dtype=np.float64), 1e-10))


def active_frames(
    e: np.ndarray, *, range_db: float = 40.0, floor_db: float = 6.0,
    floor_range_db: float | None = None,
) -> np.ndarray:
    """The frames that carry the voice: loud relative to the clip's peak and its noise floor.

    A frame is active when its energy is at least ``max(e) - range_db`` and at least
    ``floor_db`` above the noise floor, the :data:`NOISE_FLOOR_PERCENTILE`-th percentile
    (``numpy.percentile``, linear interpolation) of the energies of the frames within
    ``floor_range_db`` of the loudest (of every frame when it is None); the frames within
    ``floor_db`` of the loudest are always active, so a clip of steady sound (a tone, noise, or
    speech without pauses) keeps its frames rather than a rounding-dependent few at its peak.
    Every threshold is relative to the clip's own energies, so a gain does not change which
    frames are active.

    ``floor_range_db`` keeps what is not the room from lowering the floor: digital silence (a
    trimmed, edited or gated clip, VoIP without comfort noise), or a quiet stretch padded around
    the clip, has frames far under the room's noise; counted, they put the floor under the room
    noise, which then passes for speech (0.6 s of digital silence around a clip more than
    doubled its active frames). Frames more than ``floor_range_db`` under the peak are neither
    the voice nor, for the floor, its background.

    Parameters
    ----------
    e : np.ndarray [shape=(n_frames,)]
        Frame energies in dB (:func:`energy_db`).
    range_db : float > 0
        Largest distance under the loudest frame, in dB.
    floor_db : float > 0
        Smallest distance above the noise floor, in dB.
    floor_range_db : float > 0 or None
        The frames whose energies set the noise floor are within this many dB of the loudest;
        None counts every frame (the rule before it existed).

    Returns
    -------
    mask : np.ndarray [shape=(n_frames,)], bool
        True for the active frames; at least one.

    Raises
    ------
    ParameterError
        If ``e`` is empty or not 1-D, or a threshold is out of range.
    """
    e = np.asarray(e, dtype=np.float64)
    if e.ndim != 1 or e.size == 0:
        raise ParameterError(f"active_frames takes a non-empty 1-D array, got shape {e.shape}")
    if not range_db > 0 or not floor_db > 0:
        raise ParameterError(f"range_db={range_db!r} and floor_db={floor_db!r} must be > 0")
    if floor_range_db is not None and not floor_range_db > 0:
        raise ParameterError(f"floor_range_db={floor_range_db!r} must be > 0 or None")
    peak = e.max()
    heard = e if floor_range_db is None else e[e >= peak - floor_range_db]
    threshold = max(peak - range_db, np.percentile(heard, NOISE_FLOOR_PERCENTILE) + floor_db)
    return e >= min(threshold, peak - floor_db)


def level_gain(rms_values: np.ndarray, mask: np.ndarray, level_db: float) -> float:
    """The power gain that brings the mean energy of the active frames to ``level_db`` dBFS.

    Parameters
    ----------
    rms_values : np.ndarray [shape=(n_frames,)]
        Frame levels (:func:`rms`).
    mask : np.ndarray [shape=(n_frames,)], bool
        The active frames (:func:`active_frames`).
    level_db : float
        Target level of the active frames, in dB re full scale (e.g. -20.0).

    Returns
    -------
    gain : float
        Multiply a power spectrogram by it (the waveform by its square root); 1.0 for digital
        silence, which has no level to fix.
    """
    r = np.asarray(rms_values, dtype=np.float64)[np.asarray(mask, dtype=bool)]
    power = float(np.mean(r * r)) if r.size else 0.0
    if not power > 0:
        return 1.0
    return 10.0 ** (level_db / 10.0) / power
