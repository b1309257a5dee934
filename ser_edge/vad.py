"""Voice activity detection in numpy: which stretches of a signal hold speech.

A frame-level detector built for the two things ser-edge must not confuse with a voice: the
background it is recorded in (silence, hiss, hum, DC) and steady or impulsive artificial sounds
(tones, sweeps, clicks, bursts of hum or noise). Each 32 ms frame (20 ms hop) is described by its
power spectrum, mostly between ``fmin`` and ``fmax`` (100 Hz to 4 kHz, where speech has its energy
and mains hum and DC do not):

- its **level** in dB, compared with an adaptive **noise floor**: a low percentile of the levels
  of the frames around it (``context_s`` on either side), so a steady background never rises above
  its own floor, whatever its level. A frame at least ``margin_db`` above it is *active*. In
  speech with no pause the floor is speech itself, so the level is also compared with the **top**
  of the frames around it (a high percentile): a frame within ``prominence_db`` of it is
  *prominent*;
- its **periodicity**: the autocorrelation at the lags of a voice's pitch (60-600 Hz), of the
  spectrum tilted up by 6 dB per octave and corrected for the window (Boersma 1993), measured from
  the lowest value at any shorter lag, so a voice's pitch pulses count and rumble does not;
- its **spectral flatness** (1 for white noise and for a click, near 0 for a few harmonics);
- whether its **broadband level moves**: the range over ``change_s`` of the level smoothed over
  ``smooth_s`` (a voice's level seldom stays put for 100 ms; a tone's, a sweep's, hum's and a
  fan's do). A signal is taken to start from silence, as if digital silence preceded it;
- its **peak fraction**: the share of the band's power within two bins of the strongest one
  (near 1 for a pure or slowly swept tone, and for a soft or high voice whose fundamental
  dominates);
- its **glide**: how far, in semitones, the frequency of that strongest bin (interpolated) moved
  since the frame before (a voice's pitch glides a little from frame to frame; a tone's and a
  beep's stay put, and a jump from one harmonic or one noise peak to another is not a glide).

An active or prominent frame is *voiced* when it is periodic, not flat and its level moves; a
voiced frame is *evidence* of a voice when it is not a lone peak, or when its peak glides. Voiced
frames closer than ``hangover_s`` make a segment, which counts as speech only if at least
``min_voiced_s`` of it, and ``min_voiced_fraction`` of its length, is evidence (a click, a beep, a
burst of noise or hum holds almost none: the onset of a steady sound makes at most about 0.1 s of
it, while the level moves). The segment then reaches out over the active frames next to it
(``reach_s`` at most: the unvoiced consonants at a word's edges) and is padded by ``pad_s``.

:class:`VoiceActivityDetector` does this on a stream, chunk by chunk, deciding each frame once the
``context_s`` after it has arrived; :func:`speech_segments`, :func:`speech_span` and
:func:`has_speech` run it over a whole signal, so a stream and the whole signal give the same
segments, however the stream was cut. The defaults were chosen on RAVDESS and EmoDB and on the
seeded non-speech set of ``tests/nonspeech.py``, then on the seven corpora of ``SER_EDGE_DATA``
(soft, high and quiet voices, single words, clips that are speech from the first sample to the
last); ``benchmarks/vad.py`` and ``benchmarks/vad_corpora.py`` measure them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import ParameterError

__all__ = [
    "VadConfig",
    "Segment",
    "VoiceActivityDetector",
    "frame_features",
    "speech_segments",
    "speech_span",
    "has_speech",
    "speech_mask",
]


@dataclass(frozen=True)
class VadConfig:
    """Parameters of the voice activity detector; the defaults are the measured ones.

    Parameters
    ----------
    frame_s : float > 0
        Frame length, in seconds (32 ms: 512 samples at 16 kHz).
    hop_s : float > 0
        Step between frames, in seconds; the resolution of the segments' boundaries.
    fmin, fmax : float
        Band analysed, in Hz (``fmax`` is capped at 0.45 of the sample rate).
    floor_percentile : float in (0, 100)
        Percentile of the frame levels around a frame taken as its noise floor.
    context_s : float > 0
        The floor of a frame is taken over the frames up to this many seconds before and after it;
        the streaming detector decides a frame once this much audio after it has arrived.
    margin_db : float >= 0
        How far above its floor a frame must be to be active, in dB.
    top_percentile : float in (0, 100)
        Percentile of the frame levels around a frame taken as the top of its context.
    prominence_db : float >= 0
        Voiced frames count as speech when they are active, or *prominent*: at most this far
        under the top, in dB (in speech with no pause, the floor is speech itself).
    min_level_db : float
        Frames quieter than this, in dB relative to a full-scale sine's power in the band, are
        never active nor prominent.
    max_flatness : float in (0, 1]
        Voiced frames have a spectral flatness below this.
    max_peak_fraction : float in (0, 1]
        Evidence of a voice holds less than this share of its power within two bins of its peak,
        or its peak glides:
    min_glide_st, max_glide_st : float >= 0
        ... its peak's frequency moved by at least ``min_glide_st`` and at most ``max_glide_st``
        semitones since the frame before (a voice's pitch glides; a tone's, a beep's stay put).
    min_periodicity : float in [0, 1]
        Voiced frames are at least this periodic.
    min_change_db : float >= 0
        Voiced frames' smoothed broadband level moved by at least this much, in dB, over the last
        ``change_s`` seconds (smoothed over ``smooth_s`` seconds).
    change_s, smooth_s : float > 0
        See ``min_change_db``.
    f0_min, f0_max : float > 0
        The range of a voice's pitch searched for periodicity, in Hz.
    hangover_s : float >= 0
        Voiced frames at most this many seconds apart belong to one segment.
    min_voiced_s : float >= 0
        A segment is speech only if at least this much of it, in seconds, is evidence of a voice
        (voiced frames that are not a lone spectral peak, or whose peak glides).
    min_voiced_fraction : float in [0, 1]
        ... and at least this share of its voiced core.
    reach_s : float >= 0
        A speech segment's edges reach this far, in seconds, over active frames next to it.
    pad_s : float >= 0
        Seconds added before and after each speech segment (within the signal).

    Raises
    ------
    ParameterError
        If a value is out of range.
    """

    frame_s: float = 0.032
    hop_s: float = 0.020
    fmin: float = 100.0
    fmax: float = 4000.0
    floor_percentile: float = 10.0
    context_s: float = 2.0
    margin_db: float = 9.0
    top_percentile: float = 90.0
    prominence_db: float = 30.0
    min_level_db: float = -65.0
    max_flatness: float = 0.3
    max_peak_fraction: float = 0.9
    min_glide_st: float = 0.05
    max_glide_st: float = 1.0
    min_periodicity: float = 0.4
    min_change_db: float = 2.0
    change_s: float = 0.1
    smooth_s: float = 0.05
    f0_min: float = 60.0
    f0_max: float = 600.0
    hangover_s: float = 0.4
    reach_s: float = 0.15
    min_voiced_s: float = 0.16
    min_voiced_fraction: float = 0.15
    pad_s: float = 0.1

    def __post_init__(self) -> None:
        for name in ("frame_s", "hop_s", "context_s", "change_s", "smooth_s", "f0_min"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"VadConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("margin_db", "hangover_s", "min_voiced_s", "pad_s", "fmin", "reach_s",
                     "min_change_db", "min_glide_st", "prominence_db"):
            if not getattr(self, name) >= 0:
                raise ParameterError(f"VadConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.fmin < self.fmax:
            raise ParameterError(f"VadConfig.fmin={self.fmin!r} must be below fmax={self.fmax!r}")
        for name in ("floor_percentile", "top_percentile"):
            if not 0 < getattr(self, name) < 100:
                raise ParameterError(
                    f"VadConfig.{name} must be in (0, 100), got {getattr(self, name)!r}")
        if not self.min_glide_st <= self.max_glide_st:
            raise ParameterError(f"VadConfig.min_glide_st={self.min_glide_st!r} must not exceed "
                                 f"max_glide_st={self.max_glide_st!r}")
        if not self.f0_min < self.f0_max:
            raise ParameterError(f"VadConfig.f0_min={self.f0_min!r} must be below "
                                 f"f0_max={self.f0_max!r}")
        for name in ("min_periodicity", "min_voiced_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ParameterError(f"VadConfig.{name} must be in [0, 1], "
                                     f"got {getattr(self, name)!r}")
        for name in ("max_flatness", "max_peak_fraction"):
            if not 0 < getattr(self, name) <= 1:
                raise ParameterError(f"VadConfig.{name} must be in (0, 1], "
                                     f"got {getattr(self, name)!r}")


@dataclass(frozen=True)
class Segment:
    """A stretch of speech: samples ``start`` to ``end`` (exclusive) at rate ``sr``.

    Attributes
    ----------
    start, end : int
        First sample and one past the last, counted from the start of the signal or stream.
    sr : int
        Sample rate, in Hz.
    """

    start: int
    end: int
    sr: int

    @property
    def start_s(self) -> float:
        """Start, in seconds."""
        return self.start / self.sr

    @property
    def end_s(self) -> float:
        """End, in seconds."""
        return self.end / self.sr

    @property
    def duration_s(self) -> float:
        """Length, in seconds."""
        return (self.end - self.start) / self.sr


def _check_sr(sr: object) -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ParameterError(f"sr must be a positive integer in Hz, got {sr!r}")
    return int(sr)


@lru_cache(maxsize=8)
def _analysis(sr: int, config: VadConfig) -> tuple[int, int, int, np.ndarray, slice]:
    """Frame length, hop, FFT size, window and band of bins for ``sr``."""
    frame = max(16, int(round(config.frame_s * sr)))
    hop = max(1, int(round(config.hop_s * sr)))
    n_fft = 2 << (frame - 1).bit_length()  # zero-padded twice: linear autocorrelation
    window = np.hanning(frame + 2)[1:-1]  # symmetric, no zero end points
    window.flags.writeable = False
    fmax = min(config.fmax, 0.45 * sr)
    lo = int(np.ceil(config.fmin * n_fft / sr))
    hi = int(np.floor(fmax * n_fft / sr)) + 1
    if hi - lo < 4:
        raise ParameterError(f"sample rate {sr} Hz leaves no band between {config.fmin:g} and "
                             f"{config.fmax:g} Hz for voice activity detection")
    return frame, hop, n_fft, window, slice(lo, hi)


@lru_cache(maxsize=8)
def _frame_power_reference(sr: int, config: VadConfig) -> float:
    """Band power of a frame of a full-scale 1 kHz sine: the 0 dB of the levels.

    By Parseval, a sine of amplitude 1 under the window ``w`` puts ``n_fft * sum(w ** 2) / 4`` of
    power in the positive-frequency half of the spectrum.
    """
    _, _, n_fft, window, _ = _analysis(sr, config)
    return float(n_fft * np.sum(window.astype(np.float64) ** 2) / 4)


def frame_features(
    y: np.ndarray, sr: int, config: VadConfig | None = None
) -> dict[str, np.ndarray]:
    """Level, flatness and peak fraction of each analysis frame of ``y``.

    Frame ``k`` covers samples ``k * hop`` to ``k * hop + frame`` (``hop`` and ``frame`` from
    ``config``, in samples); only whole frames are analysed.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float
        Mono audio, nominally in [-1, 1].
    sr : int > 0
        Its sample rate, in Hz.
    config : VadConfig or None
        The parameters; ``None`` means ``VadConfig()``.

    Returns
    -------
    features : dict of str to np.ndarray [shape=(n_frames,)], float64
        ``level_db`` (power in the band, in dB relative to a full-scale sine, floored at -150
        dB), ``broadband_db`` (the same over the whole spectrum, DC removed), ``peak_hz`` (the
        frequency of the strongest bin from ``config.f0_min`` to the band's top, interpolated,
        in Hz), ``flatness`` (in [0, 1]),
        ``peak_fraction`` (in [0, 1]) and ``periodicity`` (in [0, 1]). Only what can
        make a frame voiced is computed: flatness for frames at ``config.min_level_db`` or above
        (1 below it), peak fraction and periodicity for those flatter than
        ``config.max_flatness`` (0 for the others).

    Raises
    ------
    ParameterError
        If ``y`` is not 1-D floating-point or ``sr`` is not a positive integer.
    """
    config = VadConfig() if config is None else config
    sr = _check_sr(sr)
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.floating):
        raise ParameterError(f"voice activity detection takes 1-D float audio, got {y.dtype} "
                             f"of shape {y.shape}")
    frame, hop, _, _, _ = _analysis(sr, config)
    n_frames = 0 if len(y) < frame else 1 + (len(y) - frame) // hop
    out = {name: np.empty(n_frames) for name in ("level_db", "broadband_db", "peak_hz",
                                                  "flatness", "peak_fraction", "periodicity")}
    if n_frames == 0:
        return out
    frames = np.lib.stride_tricks.sliding_window_view(y, frame)[::hop]
    for s in range(0, n_frames, _BLOCK):
        level, broadband, Pb, total, Pl = _levels(frames[s : s + _BLOCK], sr, config)
        out["level_db"][s : s + _BLOCK] = level
        out["broadband_db"][s : s + _BLOCK] = broadband
        out["peak_hz"][s : s + _BLOCK] = _peak_hz(Pb, Pl, sr, config)
        # The rest only matters for frames loud enough to be active.
        out["flatness"][s : s + _BLOCK] = 1.0
        out["peak_fraction"][s : s + _BLOCK] = 0.0
        out["periodicity"][s : s + _BLOCK] = 0.0
        loud = np.flatnonzero(level >= config.min_level_db)
        if len(loud):
            flat, peak, periodic = _voicing(Pb[loud], total[loud], sr, config)
            out["flatness"][s + loud] = flat
            out["peak_fraction"][s + loud] = peak
            out["periodicity"][s + loud] = periodic
    return out


# Frames analysed together: numpy's transforms of a few hundred rows stay in cache.
_BLOCK = 256

# The level of digital silence (see frame_features), which is taken to precede a signal.
_SILENCE_DB = -150.0


def _levels(
    frames: np.ndarray, sr: int, config: VadConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Band level and broadband level (dB) of ``frames``, and their band power spectra.

    Returns ``(level_db, broadband_db, Pb, total, Pl)``: ``Pb`` [shape=(n_frames, n_band_bins)]
    is the power in each bin of the band (plus 1e-20), ``total`` its sum over the band and
    ``Pl`` the power in the bins under the band from ``f0_min`` on (where a low voice's
    fundamental lies).
    """
    frame, _, n_fft, window, band = _analysis(sr, config)
    ref = _frame_power_reference(sr, config)
    # float64 throughout: numpy's float32 transforms of this size are several times slower.
    block = frames.astype(np.float64)
    block -= block.mean(axis=1, keepdims=True)  # DC, frame by frame
    block *= window
    spec = np.fft.rfft(block, n=n_fft, axis=1)
    parts = spec.view(np.float64)  # real and imaginary parts side by side
    whole = np.einsum("ij,ij->i", parts, parts)
    in_band = spec[:, band]
    Pb = np.square(in_band.real)
    Pb += np.square(in_band.imag)
    Pb += 1e-20
    below = spec[:, _low_bins(sr, config)]
    Pl = np.square(below.real)
    Pl += np.square(below.imag)
    Pl += 1e-20
    total = Pb.sum(axis=1)
    level = 10 * np.log10(np.maximum(total / ref, 1e-15))
    broadband = 10 * np.log10(np.maximum(whole / ref, 1e-15))
    return level, broadband, Pb, total, Pl


@lru_cache(maxsize=8)
def _low_bins(sr: int, config: VadConfig) -> slice:
    """The bins from ``f0_min`` up to the band (empty when ``f0_min`` is in the band)."""
    _, _, n_fft, _, band = _analysis(sr, config)
    return slice(min(band.start, max(1, int(np.ceil(config.f0_min * n_fft / sr)))), band.start)


def _peak_hz(Pb: np.ndarray, Pl: np.ndarray, sr: int, config: VadConfig) -> np.ndarray:
    """The frequency, in Hz, of the strongest bin of each frame, from ``f0_min`` to ``fmax``.

    ``Pb`` and ``Pl`` are the frames' power spectra in the band and under it (as
    :func:`_levels` gives them). Interpolated: the vertex of the parabola through the log powers
    of the bin and its two neighbours.
    """
    _, _, n_fft, _, _ = _analysis(sr, config)
    P = np.concatenate((Pl, Pb), axis=1) if Pl.shape[1] else Pb
    k = np.clip(np.argmax(P, axis=1), 1, P.shape[1] - 2)
    rows = np.arange(len(P))
    a, b, c = (np.log(P[rows, k + i]) for i in (-1, 0, 1))
    curve = a - 2 * b + c
    shift = np.where(curve < 0, 0.5 * (a - c) / np.minimum(curve, -1e-12), 0.0)
    return (_low_bins(sr, config).start + k + np.clip(shift, -0.5, 0.5)) * (sr / n_fft)


def _voicing(
    Pb: np.ndarray, total: np.ndarray, sr: int, config: VadConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatness, peak fraction and periodicity of frames from their band power spectra.

    Peak fraction and periodicity are computed only for frames flatter than
    ``config.max_flatness`` (0 for the others), as only those can be voiced.
    """
    frame, _, n_fft, _, band = _analysis(sr, config)
    lags, win_ac, q = _lags(sr, config)
    flat = np.exp(np.mean(np.log(Pb), axis=1)) / np.mean(Pb, axis=1)
    peak, periodic = np.zeros(len(Pb)), np.zeros(len(Pb))
    # Peak and periodicity only matter for frames that are not flat (they can be voiced).
    keep = np.flatnonzero(flat < config.max_flatness)
    if not len(keep):
        return flat, peak, periodic
    Pb, total = Pb[keep], total[keep]
    # Power within two bins (of the unpadded transform) of the strongest bin, as a share.
    near = n_fft // (1 << (frame - 1).bit_length())  # bins per bin of the unpadded transform
    cs = np.concatenate((np.zeros((len(Pb), 1)), np.cumsum(Pb, axis=1, dtype=np.float64)),
                        axis=1)
    k = np.argmax(Pb, axis=1)
    lo = np.maximum(k - 2 * near, 0)
    hi = np.minimum(k + 2 * near + 1, Pb.shape[1])
    rows = np.arange(len(Pb))
    peak[keep] = (cs[rows, hi] - cs[rows, lo]) / total
    # Normalised autocorrelation of the band-limited frame, corrected for the window's own
    # (Boersma 1993), at the lags of a voice's pitch: its height above the lowest value at
    # any shorter lag (a voice's falls between its pitch pulses; the autocorrelation of
    # rumble or of a narrow band of noise only decays).
    # With the spectrum tilted up by 6 dB per octave first (the first difference's
    # pre-emphasis), so that what counts is the comb of a voice's harmonics: rumble and
    # brown noise, crowded at the bottom of the band, would otherwise ring like a low voice.
    tilt = _tilt(sr, config)
    W = np.zeros((len(Pb), len(tilt)))
    W[:, band] = (Pb - 1e-20) * tilt[band]
    ac = np.fft.irfft(W, n=n_fft // q, axis=1)
    r = ac[:, 1 : lags[-1] + 1] / np.maximum(ac[:, :1], 1e-30) / win_ac
    dip = np.maximum(np.minimum.accumulate(r, axis=1), 0.0)
    height = (r - dip)[:, lags[0] - 1 :]
    periodic[keep] = np.clip(height.max(axis=1), 0.0, 1.0)
    return flat, peak, periodic


@lru_cache(maxsize=8)
def _tilt(sr: int, config: VadConfig) -> np.ndarray:
    """The +6 dB per octave weighting of the power spectrum's bins (up to ``n_fft // 2q``)."""
    _, _, n_fft, _, _ = _analysis(sr, config)
    _, _, q = _lags(sr, config)
    tilt = (np.arange(n_fft // (2 * q) + 1) * (sr / n_fft / 1000.0)) ** 2
    tilt.flags.writeable = False
    return tilt


@lru_cache(maxsize=8)
def _lags(sr: int, config: VadConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """The lags of a voice's pitch and the window's normalised autocorrelation at lags 1 on.

    Lags count in steps of ``q`` samples. ``q`` is 1: taking every other lag from the bins under
    half the Nyquist frequency (where the band ends at 16 kHz) halves the cost, but the coarser
    lags lower the peaks enough to lose a soft voice's evidence (EmoDB 16a04Tc).
    """
    frame, _, n_fft, window, band = _analysis(sr, config)
    q = 1
    lags = np.arange(max(1, int(sr / config.f0_max / q)),
                     min(frame // 2, int(sr / config.f0_min)) // q + 1)
    w = window.astype(np.float64)
    spec = np.abs(np.fft.rfft(w, n=n_fft)) ** 2
    ac = np.fft.irfft(spec[: n_fft // (2 * q) + 1], n=n_fft // q)
    return lags, ac[1 : lags[-1] + 1] / ac[0], q


def _level_change(
    recent: np.ndarray, level: np.ndarray, config: VadConfig
) -> tuple[np.ndarray, np.ndarray]:
    """How much the level has moved lately, in dB, at each frame of ``level``.

    The range, over the last ``change_s``, of the level smoothed over ``smooth_s`` (power
    averaged): mains hum's level otherwise wobbles by a dB or two from frame to frame, with
    the phase at which the frames cut it. ``recent`` holds the levels of the frames just before
    (empty at the start of a signal: digital silence stands in for them, so a signal that starts
    in speech moves as one preceded by silence does); returns the change and the ``recent`` of
    the frames that follow.
    """
    ks = max(1, int(round(config.smooth_s / config.hop_s)))
    kr = max(1, int(round(config.change_s / config.hop_s)))
    need = ks + kr - 2
    ext = np.concatenate((recent, level))
    if len(ext) < need + len(level):
        ext = np.concatenate((np.full(need + len(level) - len(ext), _SILENCE_DB), ext))
    recent = ext[len(ext) - need :] if need else np.zeros(0)
    power = 10.0 ** (ext / 10)
    cs = np.concatenate(([0.0], np.cumsum(power)))
    smooth = 10 * np.log10(np.maximum((cs[ks:] - cs[:-ks]) / ks, 1e-30))
    # The range over ``kr`` frames (sliding_window_view's max - min, without its overhead).
    n = len(smooth) - kr + 1
    top, bottom = smooth[kr - 1 :].copy(), smooth[kr - 1 :].copy()
    for j in range(kr - 1):
        np.maximum(top, smooth[j : j + n], out=top)
        np.minimum(bottom, smooth[j : j + n], out=bottom)
    return top - bottom, recent


def _glide(previous: np.ndarray, peak_hz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far, in semitones, each frame's peak moved from the frame before's.

    ``previous`` holds the peak of the frame just before (empty at the start of a signal: the
    first frame has not moved); returns the glide and the ``previous`` of the frames that follow.
    """
    if not len(peak_hz):
        return np.zeros(0), previous
    log = np.log2(np.concatenate((previous if len(previous) else peak_hz[:1], peak_hz)))
    return 12 * np.abs(np.diff(log)), peak_hz[-1:]


def _voiced(feats: dict[str, np.ndarray], change: np.ndarray, glide: np.ndarray,
            config: VadConfig) -> np.ndarray:
    """0 (not voiced), 1 (voiced) or 2 (voiced, and evidence of a voice) for each frame.

    Voiced: periodic, not flat, its level moving. Voiced frames count as evidence of a voice if
    they are not a lone peak, or if their peak glides as a voice's pitch does (``glide``, in
    semitones from the frame before, between ``min_glide_st`` and ``max_glide_st``): a tone's or
    a beep's edges are voiced too, but the tone holds its frequency. The other voiced frames
    still hold a segment together.
    """
    voiced = ((feats["flatness"] < config.max_flatness)
              & (feats["periodicity"] >= config.min_periodicity)
              & (change >= config.min_change_db))
    evidence = ((feats["peak_fraction"] < config.max_peak_fraction)
                | ((glide >= config.min_glide_st) & (glide <= config.max_glide_st)))
    return voiced.astype(np.int8) + (voiced & evidence)


class VoiceActivityDetector:
    """Find speech in a stream of audio, chunk by chunk, in memory that does not grow.

    Push mono audio of any chunk size with :meth:`push`; it returns the speech segments that are
    complete. A frame is decided once ``config.context_s`` of audio after it has arrived (its noise
    floor looks that far ahead), and a segment is complete once ``hangover_s`` of silence follows
    it, so segments come out a few seconds after they end. :meth:`flush` decides the rest at the
    end of the stream. The segments do not depend on how the stream was cut into chunks, and
    :func:`speech_segments` on the whole signal gives the same ones.

    Parameters
    ----------
    sr : int > 0
        Sample rate of the audio, in Hz.
    config : VadConfig or None
        The parameters; ``None`` means ``VadConfig()``.

    Raises
    ------
    ParameterError
        If ``sr`` is not a positive integer or leaves no analysis band.

    Examples
    --------
    >>> import numpy as np
    >>> from ser_edge.vad import VoiceActivityDetector
    >>> det = VoiceActivityDetector(16000)
    >>> segments = det.push(np.zeros(16000, np.float32)) + det.flush()
    >>> segments
    []
    """

    _BLOCK = 10  # frames decided together: one noise floor per 0.1 s (at a 20 ms hop)

    def __init__(self, sr: int, config: VadConfig | None = None):
        self.sr = _check_sr(sr)
        self.config = VadConfig() if config is None else config
        self._frame, self._hop, _, _, _ = _analysis(self.sr, self.config)
        c = self.config
        self._context = max(1, int(round(c.context_s / c.hop_s)))
        self._block = self._BLOCK
        self._hangover = int(round(c.hangover_s / c.hop_s))
        self._reach = int(round(c.reach_s / c.hop_s))
        self._min_voiced = int(np.ceil(c.min_voiced_s / c.hop_s - 1e-9))
        self._pad = int(round(c.pad_s * self.sr))
        self._tail = np.zeros(0, np.float32)  # samples from frame _n_framed's start on
        self._n_samples = 0
        self._n_framed = 0  # frames analysed
        # Features of frames _first .. _n_framed - 1 (the context the floor needs).
        self._first = 0
        self._level = np.zeros(0)
        self._recent = np.zeros(0)  # the levels of the frames before the next one analysed
        self._last_peak = np.zeros(0)  # the peak frequency of the last frame analysed
        self._voiced_ok = np.zeros(0, np.int8)  # 0 not voiced, 1 voiced, 2 evidence
        self._n_decided = 0
        # Activity of the last decided frames (_act_first on), for the segments' edges.
        self._act = np.zeros(0, bool)
        self._act_first = 0
        # The open segment: its first frame (edge included), first and last voiced frames, and
        # how many voiced frames it has.
        self._seg_start: int | None = None
        self._seg_edge = 0
        self._seg_last = 0
        self._seg_voiced = 0
        self._last_end = 0  # end sample of the last segment given out

    @property
    def n_samples(self) -> int:
        """Samples pushed so far."""
        return self._n_samples

    def push(self, y: np.ndarray) -> list[Segment]:
        """Add mono audio; return the speech segments completed by it, in order.

        Parameters
        ----------
        y : np.ndarray [shape=(n,)], float
            The next samples of the stream, nominally in [-1, 1]; any length, zero included.

        Returns
        -------
        segments : list of Segment
            Segments that ended (and are followed by ``hangover_s`` of decided non-speech).

        Raises
        ------
        ParameterError
            If ``y`` is not 1-D floating-point or not finite.
        """
        y = np.asarray(y)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.floating):
            raise ParameterError(f"voice activity detection takes 1-D float audio, got {y.dtype} "
                                 f"of shape {y.shape}")
        if not np.isfinite(y).all():
            raise ParameterError("audio has NaN or infinite samples")
        self._n_samples += len(y)
        self._tail = np.concatenate((self._tail, y.astype(np.float32, copy=False)))
        self._analyse()
        return self._decide(final=False)

    def flush(self) -> list[Segment]:
        """End the stream: decide every frame left and return the last segments.

        The samples after the last whole frame are analysed as one frame padded with zeros.
        The detector is then reset, ready for a new stream.

        Returns
        -------
        segments : list of Segment
        """
        if len(self._tail) and (self._n_framed == 0 or len(self._tail) > self._frame - self._hop):
            pad = np.zeros(self._frame - len(self._tail) if len(self._tail) < self._frame else 0,
                           np.float32)
            self._tail = np.concatenate((self._tail, pad))
            self._analyse()
        out = self._decide(final=True)
        out += self._close(final=True)
        self.__init__(self.sr, self.config)
        return out

    # -- internals ---------------------------------------------------------------------------

    def _analyse(self) -> None:
        feats = frame_features(self._tail, self.sr, self.config)
        m = len(feats["level_db"])
        if m:
            self._add_frames(feats)
            self._tail = self._tail[m * self._hop :]

    def _add_frames(self, feats: dict[str, np.ndarray]) -> None:
        """Take the features of the next frames (as :func:`frame_features` gives them)."""
        glide, self._last_peak = _glide(self._last_peak, feats["peak_hz"])
        ok = _voiced(feats, self._change(feats["broadband_db"]), glide, self.config)
        self._level = np.concatenate((self._level, feats["level_db"]))
        self._voiced_ok = np.concatenate((self._voiced_ok, ok))
        self._n_framed += len(ok)

    def _change(self, level: np.ndarray) -> np.ndarray:
        """How much the level has moved lately, in dB, at each of the new frames."""
        change, self._recent = _level_change(self._recent, level, self.config)
        return change

    def _decide(self, *, final: bool) -> list[Segment]:
        out: list[Segment] = []
        c = self.config
        while self._n_decided < self._n_framed:
            b0 = self._n_decided
            b1 = min(b0 + self._block, self._n_framed)
            if not final and (b1 - b0 < self._block or b1 + self._context > self._n_framed):
                break
            lo = max(self._first, b0 - self._context)
            hi = min(self._n_framed, b1 + self._context)
            level = self._level[b0 - self._first : b1 - self._first]
            active, prominent = _judge(level, self._level[lo - self._first : hi - self._first],
                                       c)
            voiced = np.where(active | prominent,
                              self._voiced_ok[b0 - self._first : b1 - self._first], 0)
            out += self._segments(b0, b1, active, voiced)
            self._n_decided = b1
            # Forget what no floor will look at again.
            drop = max(0, self._n_decided - self._context) - self._first
            if drop > 0:
                self._level = self._level[drop:]
                self._voiced_ok = self._voiced_ok[drop:]
                self._first += drop
        return out

    def _segments(self, b0: int, b1: int, active: np.ndarray, voiced: np.ndarray) -> list[Segment]:
        """Open, extend and close segments over the decided frames ``b0 .. b1 - 1``.

        ``voiced`` is 0 (not voiced), 1 (voiced) or 2 (voiced, and evidence of a voice) for each
        frame. Voiced frames at most ``hangover`` frames apart make one segment's core; it closes
        once ``hangover`` frames without a voiced one follow it. Its edges then reach out over the
        active frames next to the core, ``reach`` frames at most on each side.
        """
        out: list[Segment] = []
        self._act = np.concatenate((self._act, active))
        idx = np.flatnonzero(voiced)
        gap = self._hangover + 1
        breaks = np.flatnonzero(np.diff(idx) > gap) + 1
        runs = np.split(idx, breaks) if idx.size else []
        counts = np.add.reduceat(voiced[idx] == 2, np.r_[0, breaks]) if idx.size else []
        for run, n_evidence in zip(runs, counts, strict=True):
            first = b0 + int(run[0])
            if self._seg_start is not None and first - self._seg_last > gap:
                out += self._close(final=False)
            if self._seg_start is None:
                self._seg_start, self._seg_voiced = first, 0
                self._seg_edge = first - self._run_length(first - 1, -1)
            self._seg_last = b0 + int(run[-1])
            self._seg_voiced += int(n_evidence)
        if self._seg_start is not None and b1 - 1 - self._seg_last >= gap:
            out += self._close(final=False)
        keep = b1 - (self._hangover + self._reach + 2)
        if keep > self._act_first:
            self._act = self._act[keep - self._act_first :]
            self._act_first = keep
        return out

    def _run_length(self, f: int, step: int) -> int:
        """How many active frames there are from ``f`` on in direction ``step``, up to reach."""
        n = 0
        while n < self._reach:
            i = f + step * n - self._act_first
            if not 0 <= i < len(self._act) or not self._act[i]:
                break
            n += 1
        return n

    def _close(self, *, final: bool) -> list[Segment]:
        if self._seg_start is None:
            return []
        start_f, last_f, voiced = self._seg_start, self._seg_last, self._seg_voiced
        self._seg_start = None
        if voiced < self._min_voiced or voiced < self.config.min_voiced_fraction * (
                last_f - start_f + 1):
            return []
        first_f = self._seg_edge
        last_f += self._run_length(last_f + 1, 1)
        n = self._n_samples
        start = max(0, first_f * self._hop - self._pad, self._last_end)
        end = min(n, last_f * self._hop + self._frame + self._pad)
        if end <= start:
            return []
        self._last_end = end
        return [Segment(int(start), int(end), self.sr)]


class _FrameCache:
    """Frame features of a stream, each frame analysed once, for windows that overlap.

    :class:`ser_edge.stream.StreamingClassifier` asks :func:`has_speech` of a window every hop;
    consecutive windows share most of their frames, so their features are kept here (the last
    ``keep`` samples' worth) and a window's answer is :func:`has_speech` of its samples, exactly:
    the window's whole frames come from here, the zero-padded last frame is analysed afresh.
    Windows must start on the frame grid (a multiple of the hop, in samples).
    """

    def __init__(self, sr: int, keep: int, config: VadConfig | None = None):
        self.sr, self.config = _check_sr(sr), VadConfig() if config is None else config
        self.frame, self.hop, _, _, _ = _analysis(self.sr, self.config)
        self.keep = keep // self.hop + 2
        self.tail = np.zeros(0, np.float32)
        self.pending: list[np.ndarray] = []  # samples not analysed yet, after the tail
        self.n_pending = 0
        self.first = 0  # index of the first frame kept
        self.feats: dict[str, np.ndarray] = {}

    def push(self, y: np.ndarray) -> None:
        """Take the next samples; their frames are analysed 10 at a time, or when asked for."""
        self.pending.append(np.asarray(y, np.float32))
        self.n_pending += len(y)
        if self.n_pending >= 10 * self.hop + self.frame:
            self._analyse()

    def _analyse(self) -> None:
        if not self.pending:
            return
        self.tail = np.concatenate([self.tail, *self.pending])
        self.pending, self.n_pending = [], 0
        new = frame_features(self.tail, self.sr, self.config)
        m = len(new["level_db"])
        if not m:
            return
        self.tail = self.tail[m * self.hop :]
        for name, values in new.items():
            self.feats[name] = np.concatenate((self.feats.get(name, values[:0]), values))
        drop = len(self.feats["level_db"]) - self.keep
        if drop > 0:
            self.feats = {name: values[drop:] for name, values in self.feats.items()}
            self.first += drop

    def has_speech(self, y: np.ndarray, start: int) -> bool:
        """:func:`has_speech` of ``y``, the stream's samples from ``start`` on."""
        if start % self.hop:
            return has_speech(y, self.sr, self.config)
        self._analyse()
        k0 = start // self.hop - self.first
        n = 0 if len(y) < self.frame else 1 + (len(y) - self.frame) // self.hop
        if k0 < 0 or k0 + n > len(self.feats.get("level_db", ())):
            return has_speech(y, self.sr, self.config)
        feats = {name: v[k0 : k0 + n] for name, v in self.feats.items()} if n else {}
        return _speech_in_frames(
            feats.get("level_db", np.zeros(0)), feats.get("broadband_db", np.zeros(0)),
            lambda k: (feats["flatness"][k], feats["peak_fraction"][k], feats["periodicity"][k]),
            lambda k: feats["peak_hz"][k],
            np.asarray(y[n * self.hop :], np.float32), self.sr, self.config)


def _percentiles(x: np.ndarray, *q: float) -> np.ndarray:
    """The ``q``-th percentiles of ``x``: their nearest lower ranks, cheaper than np.percentile."""
    k = [int(p / 100 * (len(x) - 1)) for p in q]
    return np.partition(x, k)[k]


def _judge(level: np.ndarray, around: np.ndarray, config: VadConfig
           ) -> tuple[np.ndarray, np.ndarray]:
    """Which of the frames of ``level`` are active, and which prominent, among ``around``.

    ``around`` holds the levels of the frames of their context (their own included). Active:
    ``margin_db`` above the floor (the ``floor_percentile``-th percentile of ``around``).
    Prominent: within ``prominence_db`` of its top (the ``top_percentile``-th). Both at
    ``min_level_db`` or above.
    """
    floor, top = _percentiles(around, config.floor_percentile, config.top_percentile)
    loud = level >= config.min_level_db
    return ((level >= floor + config.margin_db) & loud,
            (level >= top - config.prominence_db) & loud)


def _mono(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2:  # (channels, n), librosa's layout
        y = np.mean(y, axis=0)
    return y


def speech_segments(
    y: np.ndarray, sr: int, config: VadConfig | None = None
) -> list[Segment]:
    """The speech segments of a whole signal.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (n_channels, n)], float
        Audio, nominally in [-1, 1]; channels are averaged.
    sr : int > 0
        Its sample rate, in Hz.
    config : VadConfig or None
        The parameters; ``None`` means ``VadConfig()``.

    Returns
    -------
    segments : list of Segment
        In order, not overlapping; empty when there is no speech.

    Raises
    ------
    ParameterError
        If ``y`` is not 1-D or 2-D floating-point and finite, or ``sr`` is not a positive integer.
    """
    det = VoiceActivityDetector(sr, config)
    return det.push(_mono(y)) + det.flush()


def iter_segments(
    chunks, sr: int, config: VadConfig | None = None
) -> Iterator[Segment]:
    """The speech segments of a signal that arrives in pieces, as they are found.

    Parameters
    ----------
    chunks : iterable of np.ndarray [shape=(n_i,)], float
        Consecutive pieces of one mono signal (e.g. an :class:`ser_edge.audio.AudioStream`).
    sr : int > 0
        Their sample rate, in Hz.
    config : VadConfig or None
        The parameters; ``None`` means ``VadConfig()``.

    Yields
    ------
    Segment
    """
    det = VoiceActivityDetector(sr, config)
    for chunk in chunks:
        yield from det.push(chunk)
    yield from det.flush()


def speech_span(
    y: np.ndarray, sr: int, config: VadConfig | None = None
) -> tuple[int, int] | None:
    """The span from the first speech to the last, to trim leading and trailing non-speech.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (n_channels, n)], float
        Audio, nominally in [-1, 1].
    sr : int > 0
        Its sample rate, in Hz.
    config : VadConfig or None
        The parameters; ``None`` means ``VadConfig()``.

    Returns
    -------
    span : (int, int) or None
        ``(start, end)`` in samples (``y[..., start:end]`` is the speech, ``pad_s`` included), or
        None when there is no speech.

    Raises
    ------
    ParameterError
        As :func:`speech_segments`.
    """
    segments = speech_segments(y, sr, config)
    if not segments:
        return None
    return segments[0].start, segments[-1].end


def has_speech(y: np.ndarray, sr: int, config: VadConfig | None = None) -> bool:
    """Whether ``y`` holds speech: at least one speech segment.

    Always ``bool(speech_segments(y, sr, config))``, but cheaper: the segments' edges are not
    needed, the costly features of a frame (flatness, peak fraction, periodicity) are computed
    only for frames that are active or prominent and whose level moves (no other frame can be
    voiced), its peak's glide only for those of them that are voiced and a lone peak, and the
    search stops as soon as some segment is certain to count as speech, whatever the frames
    after it hold (enough evidence of a voice for the longest the segment could still grow).

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (n_channels, n)], float
        Audio, nominally in [-1, 1].
    sr : int > 0
        Its sample rate, in Hz.
    config : VadConfig or None
        The parameters; ``None`` means ``VadConfig()``.

    Returns
    -------
    bool

    Raises
    ------
    ParameterError
        As :func:`speech_segments`.
    """
    config = VadConfig() if config is None else config
    sr = _check_sr(sr)
    _analysis(sr, config)  # the band exists at this rate
    y = _mono(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.floating):
        raise ParameterError(f"voice activity detection takes 1-D float audio, got {y.dtype} "
                             f"of shape {y.shape}")
    if not np.isfinite(y).all():
        raise ParameterError("audio has NaN or infinite samples")
    y = y.astype(np.float32, copy=False)  # as the detector holds it
    frame, hop, _, _, _ = _analysis(sr, config)
    m = 0 if len(y) < frame else 1 + (len(y) - frame) // hop
    frames = np.lib.stride_tricks.sliding_window_view(y, frame)[::hop] if m else None
    # Every frame's level; the band spectra are kept for a signal of a few seconds (a clip),
    # and computed again, for the frames that need them, in a longer one.
    keep = m <= _KEEP_FRAMES
    levels, broad, kept = [], [], []
    for s in range(0, m, _BLOCK):
        level, broadband, *spectra = _levels(frames[s : s + _BLOCK], sr, config)
        levels.append(level)
        broad.append(broadband)
        if keep:
            kept.append(spectra)
    if keep and m:
        Pb, total, Pl = (np.concatenate(parts) for parts in zip(*kept, strict=True))

    def voicing(k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if keep:
            return _voicing(Pb[k], total[k], sr, config)
        return _voicing(*_levels(frames[k], sr, config)[2:4], sr, config)

    def peak_of(k: np.ndarray) -> np.ndarray:
        if keep:
            return _peak_hz(Pb[k], Pl[k], sr, config)
        spectra = _levels(frames[k], sr, config)
        return _peak_hz(spectra[2], spectra[4], sr, config)

    level = np.concatenate(levels) if m else np.zeros(0)
    broadband = np.concatenate(broad) if m else np.zeros(0)
    return _speech_in_frames(level, broadband, voicing, peak_of, y[m * hop :], sr, config)


def _speech_in_frames(
    level: np.ndarray, broadband: np.ndarray, voicing, peak_of, rest: np.ndarray, sr: int,
    config: VadConfig,
) -> bool:
    """:func:`has_speech` of a signal from the levels of its whole frames.

    ``level`` and ``broadband`` are the whole frames' levels (as :func:`frame_features` gives
    them), ``voicing(k)`` the flatness, peak fraction and periodicity of whole frames ``k`` (as
    :func:`_voicing`; it is asked only about active or prominent frames whose level moves), and
    ``peak_of(k)`` their peak frequency (asked only about the voiced frames that are a lone
    peak, and the frames just before them), ``rest`` the samples after the last whole frame.
    As :meth:`VoiceActivityDetector.flush`, ``rest`` is analysed as one more frame, zero-padded,
    unless the last whole frame ends within a hop of the end.
    """
    frame, hop, _, _, _ = _analysis(sr, config)
    m = len(level)
    change, recent = (_level_change(np.zeros(0), broadband, config) if m
                      else (np.zeros(0), np.zeros(0)))
    last = None
    if len(rest) and (m == 0 or len(rest) > frame - hop):
        tail = np.zeros((1, frame), np.float32)
        tail[0, : len(rest)] = rest
        tail_level, tail_broadband, *last = _levels(tail, sr, config)
        level = np.concatenate((level, tail_level))
        change = np.concatenate((change, _level_change(recent, tail_broadband, config)[0]))
    if not len(level):
        return False

    def peaks(k: np.ndarray) -> np.ndarray:
        # In the order of ``k``: the zero-padded last frame (k == m) may be anywhere in it.
        peak = np.empty(len(k))
        is_whole = k < m
        if is_whole.any():
            peak[is_whole] = peak_of(k[is_whole])
        if not is_whole.all():
            peak[~is_whole] = _peak_hz(last[0], last[2], sr, config)[0]
        return peak

    def voiced_of(k: np.ndarray) -> np.ndarray:
        whole = k[k < m]
        flat, peak, periodic = voicing(whole) if len(whole) else (np.zeros(0),) * 3
        if len(whole) < len(k):  # and the zero-padded last frame
            flat, peak, periodic = (np.concatenate((a, b)) for a, b in zip(
                (flat, peak, periodic), _voicing(*last[:2], sr, config), strict=True))
        feats = {"flatness": flat, "peak_fraction": peak, "periodicity": periodic}
        # The glide matters only to voiced frames that are a lone peak: theirs alone.
        glide = np.zeros(len(k))
        lone = np.flatnonzero((_voiced(feats, change[k], glide, config) > 0)
                              & (peak >= config.max_peak_fraction) & (k > 0))
        if len(lone):
            both = peaks(np.concatenate((k[lone], k[lone] - 1)))
            glide[lone] = 12 * np.abs(np.log2(both[: len(lone)] / both[len(lone) :]))
        return _voiced(feats, change[k], glide, config)

    # Only active or prominent frames whose level moves can count: their costly features, in
    # order.
    candidates = np.flatnonzero(_may_count(level, config) & (change >= config.min_change_db))
    return _evidence_suffices(candidates, voiced_of, config)


# Frames whose band spectra has_speech keeps between its two passes (20 s at a 20 ms hop).
_KEEP_FRAMES = 1000


def _may_count(level: np.ndarray, config: VadConfig) -> np.ndarray:
    """Which frames of a whole signal are active or prominent, as ``_decide`` judges them.

    As :meth:`VoiceActivityDetector._decide` (only those frames can count as voiced), for all
    the blocks of frames at once: the levels of each block's context, sorted.
    """
    context = max(1, int(round(config.context_s / config.hop_s)))
    block = VoiceActivityDetector._BLOCK
    n = len(level)
    out = np.empty(n, bool)
    width = 2 * context + block
    # Blocks a few hundred at a time: their contexts' levels take ``width`` floats each.
    step = 256 * block
    for c0 in range(0, n, step):
        starts = np.arange(c0, min(n, c0 + step), block)
        lo = np.maximum(starts - context, 0)
        size = np.minimum(starts + block + context, n) - lo
        idx = lo[:, None] + np.arange(min(width, n))
        around = np.where(idx < (lo + size)[:, None], level[np.minimum(idx, n - 1)], np.inf)
        around.sort(axis=1)
        rows = np.arange(len(starts))
        floor = around[rows, (config.floor_percentile / 100 * (size - 1)).astype(int)]
        top = around[rows, (config.top_percentile / 100 * (size - 1)).astype(int)]
        c1 = min(n, c0 + step)
        per_frame = np.repeat(np.arange(len(starts)), block)[: c1 - c0]
        here = level[c0:c1]
        out[c0:c1] = (((here >= floor[per_frame] + config.margin_db)
                       | (here >= top[per_frame] - config.prominence_db))
                      & (here >= config.min_level_db))
    return out


def _evidence_suffices(candidates: np.ndarray, voiced_of, config: VadConfig) -> bool:
    """Whether a segment over the ``candidates`` frames counts as speech.

    ``voiced_of(k)`` gives the voicing (0, 1 or 2, as :func:`_voiced`) of the frames ``k``; no
    other frame is voiced. Frames are asked for in order, a few at a time, until a segment is
    certain to count as speech: its evidence already reaches ``min_voiced_s``, and
    ``min_voiced_fraction`` of the longest it could still grow to (were every candidate after
    it voiced); a closed segment is judged as :meth:`VoiceActivityDetector._close` judges it.
    """
    gap = int(round(config.hangover_s / config.hop_s)) + 1
    min_voiced = int(np.ceil(config.min_voiced_s / config.hop_s - 1e-9))
    done = 0  # candidates whose voicing is known
    known = np.zeros(0, np.int64)  # voiced frames so far, and their voicing
    values = np.zeros(0, np.int8)
    asked = 0
    while done < len(candidates):
        # Two fifths of a second of candidates decide most clips; then twice as many each time.
        step = 40 if asked < 2 else 40 << (asked - 1)
        k = candidates[done : done + step]
        v = voiced_of(k)
        done += len(k)
        asked += 1
        known = np.concatenate((known, k[v > 0]))
        values = np.concatenate((values, v[v > 0]))
        if not len(known):
            continue
        # Segments: voiced frames at most ``gap`` apart.
        starts = np.r_[0, np.flatnonzero(np.diff(known) > gap) + 1]
        ends = np.r_[starts[1:], len(known)]
        evidence = np.add.reduceat(values == 2, starts)
        first, last = known[starts], known[ends - 1]
        # The last one may grow while candidates follow within ``gap`` of each other.
        reach = last[-1]
        if done < len(candidates):
            following = candidates[done:]
            steps = np.diff(np.r_[reach, following]) > gap
            stop = int(np.argmax(steps)) if steps.any() else len(following)
            if stop:
                reach = following[stop - 1]
        longest = last.copy()
        longest[-1] = reach
        ok = (evidence >= min_voiced) & ~(evidence < config.min_voiced_fraction
                                          * (longest - first + 1))
        if ok.any():
            return True
        # Closed segments that failed are final: keep the open one only.
        keep = starts[-1]
        known, values = known[keep:], values[keep:]
    return False


def speech_mask(segments: list[Segment], n: int, *, hop: int = 1) -> np.ndarray:
    """Mark the samples (or blocks of ``hop`` samples) that the segments cover.

    Parameters
    ----------
    segments : list of Segment
        From :func:`speech_segments`.
    n : int >= 0
        Length of the signal, in samples.
    hop : int > 0
        Samples per entry of the mask; an entry is True when its first sample is in a segment.

    Returns
    -------
    mask : np.ndarray [shape=(ceil(n / hop),)], bool
    """
    mask = np.zeros(-(-n // hop), bool)
    for s in segments:
        mask[-(-s.start // hop) : -(-s.end // hop)] = True
    return mask
