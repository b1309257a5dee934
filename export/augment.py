"""Waveform augmentation for training, and the perturbations of the robustness evaluation.

Training sees more than the studio: each training clip gets ``copies`` augmented versions, each
drawing every augmentation of :class:`AugmentConfig` with its probability, with parameters drawn
from a generator seeded by ``(seed, clip, copy)``, so the same configuration and seed give the
same audio, sample for sample, on any run and in any process.

The signal processing is libraries' (audiomentations for pitch shift and time stretch,
pyroomacoustics for the rooms' impulse responses, soundfile/libsndfile for the MP3 and Opus
codecs, soxr for band limiting and speed); what is here is the drawing of parameters, the mixing
at a signal-to-noise ratio, and which speakers' audio may be mixed into which clip.

Signal-to-noise ratio (SNR) is in dB over the whole clip: ``10 log10(P_clip / P_noise)``, with
``P`` the mean power of the samples (audiomentations' definition). Babble is the sum of several
other speakers' clips, drawn only from a clip's *babble pool*: :func:`babble_pools` gives a
clip the clips of the other speakers of its own fold group, so that babble never carries the
audio of a speaker who is tested while the clip is trained on.

The evaluation's perturbations (:data:`PERTURBATIONS`) use other seeds, other noise (for babble,
the clip's own test fold's other speakers) and another bank of rooms than training.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from ser_edge.errors import ParameterError

__all__ = [
    "AUGMENTATIONS",
    "PERTURBATIONS",
    "AugmentConfig",
    "augment",
    "clip_id",
    "draws_babble",
    "perturb",
    "mix_at_snr",
    "snr_db",
    "white_noise",
    "pink_noise",
    "babble",
    "babble_pools",
    "telephone",
    "codec",
    "rir_bank",
    "reverberate",
    "rt60",
    "pitch_shift",
    "time_stretch",
    "speed",
    "pad",
    "gate",
    "equalise",
]

#: The augmentations :class:`AugmentConfig` can name.
AUGMENTATIONS = ("gain", "white", "pink", "babble", "telephone", "mp3", "opus", "reverb",
                 "pitch", "stretch", "speed", "pad", "gate", "eq")

#: The robustness evaluation's perturbations: name -> (kind, parameter).
PERTURBATIONS: dict[str, tuple[str, float]] = {
    "gain -20 dB": ("gain", -20.0),
    "gain -10 dB": ("gain", -10.0),
    "gain +10 dB": ("gain", 10.0),
    "white noise 20 dB SNR": ("white", 20.0),
    "white noise 10 dB SNR": ("white", 10.0),
    "babble 10 dB SNR": ("babble", 10.0),
    "telephone band": ("telephone", 0.0),
    "MP3 32 kbit/s": ("mp3", 32.0),
    "reverberation RT60 0.5 s": ("reverb", 0.5),
    # What trimmed, edited, gated or VoIP audio does to a clip (the voices issue): the label
    # should not change.
    "digital silence 0.6 s around": ("pad_silence", 0.6),
    "white noise -60 dBFS 0.6 s around": ("pad_noise", -60.0),
    "gate under -50 dBFS": ("gate", -50.0),
}

#: Seeds of the evaluation's perturbations and rooms, apart from any training seed.
_EVAL_SEED = 9_000_001
_EVAL_ROOMS_SEED = 9_000_002


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations training applies, with what probability and ranges.

    Each augmented copy of a clip applies each named augmentation with probability ``p[name]``
    (``p_default`` where not given), in the order of :data:`AUGMENTATIONS` (effects of the
    voice, then the room, then the channel: pitch, stretch, speed, reverb, noise, band, codec,
    gain, then what editing does: a sample gate, padding; then another microphone's response).

    Parameters
    ----------
    kinds : tuple of str
        Augmentations to draw from, a subset of :data:`AUGMENTATIONS`; empty means none.
    copies : int >= 0
        Augmented copies per training clip (the clean clip is always kept).
    p_default : float in [0, 1]
        Probability of each augmentation in a copy.
    p : mapping of str to float
        Per-augmentation probabilities over ``p_default``.
    gain_db : (float, float)
        Range of the gain, in dB.
    snr_db : (float, float)
        Range of the SNR of white, pink noise and babble, in dB.
    babble_speakers : (int, int)
        Range of the number of speakers mixed into babble.
    mp3_kbps, opus_kbps : tuple of int
        Bit rates drawn from, in kbit/s.
    rt60_s : (float, float)
        Range of the rooms' reverberation time, in seconds (a bank of ``n_rooms`` rooms).
    n_rooms : int > 0
        Rooms in the training bank.
    semitones : (float, float)
        Range of the pitch shift, in semitones.
    stretch_rate : (float, float)
        Range of the time-stretch rate (tempo factor; 1.1 is 10 % faster).
    speed_rate : (float, float)
        Range of the speed perturbation (resampling: tempo and pitch together).
    pad_s : (float, float)
        Range of the padding put on each side of a clip (``"pad"``), in seconds: digital
        silence half the time, else white noise at a level in ``pad_noise_db``.
    pad_noise_db : (float, float)
        Range of the padding noise's RMS level, in dB re full scale.
    gate_db : (float, float)
        Range of the sample gate's threshold (``"gate"``: samples under it set to zero), in dB
        re full scale.
    eq_db : float > 0
        A microphone's frequency response (``"eq"``): seven bands, each cut or boosted by up to
        this many dB (:func:`equalise`).

    Raises
    ------
    ParameterError
        If a name is unknown or a value is out of range.
    """

    kinds: tuple[str, ...] = ()
    copies: int = 2
    p_default: float = 0.5
    p: tuple[tuple[str, float], ...] | Mapping[str, float] = ()
    gain_db: tuple[float, float] = (-20.0, 20.0)
    snr_db: tuple[float, float] = (5.0, 30.0)
    babble_speakers: tuple[int, int] = (3, 6)
    mp3_kbps: tuple[int, ...] = (16, 24, 32, 48, 64)
    opus_kbps: tuple[int, ...] = (12, 16, 24, 32)
    rt60_s: tuple[float, float] = (0.2, 0.9)
    n_rooms: int = 40
    semitones: tuple[float, float] = (-2.0, 2.0)
    stretch_rate: tuple[float, float] = (0.85, 1.15)
    speed_rate: tuple[float, float] = (0.9, 1.1)
    pad_s: tuple[float, float] = (0.2, 1.0)
    pad_noise_db: tuple[float, float] = (-70.0, -50.0)
    gate_db: tuple[float, float] = (-60.0, -45.0)
    eq_db: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", tuple(self.kinds))
        p = dict(self.p)
        object.__setattr__(self, "p", tuple(sorted(p.items())))
        for name in (*self.kinds, *p):
            if name not in AUGMENTATIONS:
                raise ParameterError(f"unknown augmentation {name!r}; choose from {AUGMENTATIONS}")
        if isinstance(self.copies, bool) or not isinstance(self.copies, int) or self.copies < 0:
            raise ParameterError(f"copies must be a non-negative integer, got {self.copies!r}")
        for name, value in [("p_default", self.p_default), *p.items()]:
            if not 0.0 <= value <= 1.0:
                raise ParameterError(f"probability {name}={value!r} is outside [0, 1]")
        for name in ("gain_db", "snr_db", "babble_speakers", "rt60_s", "semitones",
                     "stretch_rate", "speed_rate", "mp3_kbps", "opus_kbps", "pad_s",
                     "pad_noise_db", "gate_db"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.n_rooms > 0:
            raise ParameterError(f"n_rooms must be positive, got {self.n_rooms!r}")

    def probability(self, name: str) -> float:
        """Probability that a copy applies augmentation ``name``."""
        return dict(self.p).get(name, self.p_default)

    def to_json(self) -> str:
        """Serialise to a JSON object string (keys sorted)."""
        data = dataclasses.asdict(self)
        data["p"] = dict(self.p)
        # Left out unless used, as configurations written before them (and the caches keyed
        # on their JSON) had them.
        for name, default in (("pad_s", (0.2, 1.0)), ("pad_noise_db", (-70.0, -50.0)),
                              ("gate_db", (-60.0, -45.0)), ("eq_db", 10.0)):
            if (tuple(data[name]) if isinstance(data[name], list) else data[name]) == default:
                del data[name]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AugmentConfig:
        """Read a configuration written by :meth:`to_json`."""
        return cls(**json.loads(text))


# -- building blocks ------------------------------------------------------------------------------


def snr_db(clean: np.ndarray, noise: np.ndarray) -> float:
    """The SNR of ``clean`` over ``noise``, in dB: ``10 log10(mean(clean^2) / mean(noise^2))``."""
    c = np.asarray(clean, dtype=np.float64)
    n = np.asarray(noise, dtype=np.float64)
    return float(10.0 * np.log10(np.mean(c * c) / np.mean(n * n)))


def mix_at_snr(y: np.ndarray, noise: np.ndarray, snr: float) -> np.ndarray:
    """Add ``noise`` to ``y``, scaled so that the SNR is ``snr`` dB.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        The clean signal.
    noise : np.ndarray [shape=(m,)]
        The noise; repeated or cut to ``n`` samples.
    snr : float
        Signal-to-noise ratio, in dB (:func:`snr_db`).

    Returns
    -------
    y_noisy : np.ndarray [shape=(n,)], float32

    Raises
    ------
    ParameterError
        If ``y`` or ``noise`` has no power.
    """
    y = np.asarray(y, dtype=np.float64)
    noise = np.resize(np.asarray(noise, dtype=np.float64), y.shape)
    p_y, p_n = np.mean(y * y), np.mean(noise * noise)
    if not (p_y > 0 and p_n > 0):
        raise ParameterError("cannot mix at an SNR: the clip or the noise has no power")
    return (y + noise * np.sqrt(p_y / p_n / 10.0 ** (snr / 10.0))).astype(np.float32)


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of Gaussian white noise, float32."""
    return rng.standard_normal(n).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of pink (1/f, -3 dB per octave) Gaussian noise, float32."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spectrum / np.sqrt(f), n).astype(np.float32)


def babble(n: int, sources: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Several speakers at once: the sum of ``sources``, each at a random offset and equal power.

    Parameters
    ----------
    n : int
        Samples wanted.
    sources : sequence of np.ndarray
        Other speakers' clips (each looped to ``n`` samples from a random start).
    rng : np.random.Generator

    Returns
    -------
    noise : np.ndarray [shape=(n,)], float32
    """
    out = np.zeros(n, dtype=np.float64)
    for s in sources:
        s = np.asarray(s, dtype=np.float64)
        p = np.mean(s * s)
        if not p > 0:
            continue
        start = int(rng.integers(len(s)))
        out += np.resize(np.roll(s, -start), n) / np.sqrt(p)
    return out.astype(np.float32)


def babble_pools(speakers: Sequence[str], groups: Mapping[str, int]) -> list[np.ndarray]:
    """For each clip, the clips babble may be mixed from: other speakers of its fold group.

    A clip trained on in some fold is trained on in every fold but its own group's, and there
    the only speakers never tested are those of its own group; so babble from the other
    speakers of the clip's group never carries a tested speaker's audio into training.

    Parameters
    ----------
    speakers : sequence of str [shape=(n_clips,)]
        Each clip's speaker.
    groups : mapping of str to int
        Each speaker's fold group (e.g. the EmoBox fold that tests them).

    Returns
    -------
    pools : list of np.ndarray of int
        Clip indices, per clip.

    Raises
    ------
    ParameterError
        If a speaker has no group, or a group has a single speaker.
    """
    speakers = np.asarray(speakers).astype(str)
    missing = sorted(set(speakers) - set(groups))
    if missing:
        raise ParameterError(f"speakers without a fold group: {', '.join(missing[:5])}")
    group_of = np.array([groups[s] for s in speakers])
    pools = []
    for i in range(len(speakers)):
        pool = np.flatnonzero((group_of == group_of[i]) & (speakers != speakers[i]))
        if pool.size == 0:
            raise ParameterError(f"speaker {speakers[i]} is alone in fold group {group_of[i]}")
        pools.append(pool)
    return pools


def pad(y: np.ndarray, sr: int, seconds: float, level_db: float | None = None, *,
        rng: np.random.Generator | None = None) -> np.ndarray:
    """``seconds`` of digital silence, or of white noise at ``level_db`` dBFS, on each side.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32
    sr : int
        Sample rate, in Hz.
    seconds : float >= 0
        Padding on each side, in seconds.
    level_db : float or None
        RMS level of the white noise, in dB re full scale; None pads with zeros.
    rng : np.random.Generator, optional
        The noise's generator (needed with ``level_db``).

    Returns
    -------
    y_padded : np.ndarray [shape=(n + 2 * round(seconds * sr),)], float32
    """
    n = int(round(seconds * sr))
    if level_db is None:
        side = [np.zeros(n, np.float32)] * 2
    else:
        scale = np.float32(10.0 ** (level_db / 20.0))
        side = [white_noise(n, rng) * scale for _ in range(2)]
    return np.concatenate([side[0], np.asarray(y, np.float32), side[1]])


def gate(y: np.ndarray, level_db: float) -> np.ndarray:
    """Set every sample whose magnitude is under ``level_db`` dBFS to zero (a sample gate).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32
    level_db : float
        Threshold, in dB re full scale (-50: magnitudes under 0.00316).

    Returns
    -------
    y_gated : np.ndarray [shape=(n,)], float32
    """
    y = np.array(y, dtype=np.float32)
    y[np.abs(y) < np.float32(10.0 ** (level_db / 20.0))] = 0.0
    return y


def telephone(y: np.ndarray, sr: int) -> np.ndarray:
    """Telephone band: through 8 kHz sampling (soxr, up to 4 kHz) and a 300 Hz high-pass.

    The high-pass is audiomentations' ``HighPassFilter`` (12 dB per octave).
    """
    import soxr
    from audiomentations import HighPassFilter

    narrow = soxr.resample(np.asarray(y, dtype=np.float32), sr, 8000, quality="HQ")
    wide = soxr.resample(narrow, 8000, sr, quality="HQ")[: len(y)]
    wide = np.pad(wide, (0, len(y) - len(wide)))
    hp = HighPassFilter(min_cutoff_freq=300.0, max_cutoff_freq=300.0, min_rolloff=12,
                        max_rolloff=12, zero_phase=False, p=1.0)
    hp.parameters = {"should_apply": True, "cutoff_freq": 300.0, "rolloff": 12}
    return np.asarray(hp.apply(wide.astype(np.float32), sr), dtype=np.float32)


#: libsndfile's format and subtype of each codec, and its bit-rate range at 16 kHz in kbit/s
#: (libsndfile maps ``compression_level`` 0..1 linearly onto it; measured).
_CODECS = {"mp3": ("MP3", "MPEG_LAYER_III", 160.0, 8.0), "opus": ("OGG", "OPUS", 256.0, 6.0)}


def codec(y: np.ndarray, sr: int, name: str, kbps: float) -> np.ndarray:
    """Encode and decode through a lossy codec with libsndfile (through soundfile).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    sr : int
        Sample rate, in Hz (MP3 and Opus both take 16 kHz).
    name : {"mp3", "opus"}
    kbps : float
        Bit rate, in kbit/s (constant for MP3; the encoder rounds to its allowed rates).

    Returns
    -------
    y_coded : np.ndarray [shape=(n,)], float32
        Cut or zero-padded to ``n`` samples.
    """
    import soundfile as sf

    fmt, subtype, hi, lo = _CODECS[name]
    level = float(np.clip((hi - kbps) / (hi - lo), 0.0, 0.99))
    buf = io.BytesIO()
    extra = {"bitrate_mode": "CONSTANT"} if name == "mp3" else {}
    sf.write(buf, np.clip(y, -1.0, 1.0), sr, format=fmt, subtype=subtype,
             compression_level=level, **extra)
    buf.seek(0)
    z, _ = sf.read(buf, dtype="float32")
    z = z[: len(y)]
    return np.pad(z, (0, len(y) - len(z))).astype(np.float32)


@lru_cache(maxsize=8)
def rir_bank(seed: int, n: int, rt60_range: tuple[float, float], sr: int) -> tuple[np.ndarray, ...]:
    """Room impulse responses of ``n`` simulated shoebox rooms (pyroomacoustics, image source).

    Each room's size, reverberation time (uniform in ``rt60_range``, s), source and microphone
    positions are drawn from ``seed``; the walls' absorption and reflection order come from
    Sabine's formula for that RT60 (``pyroomacoustics.inverse_sabine``).

    Returns
    -------
    rirs : tuple of np.ndarray [shape=(n_taps,)], float32
        Each normalised to a peak of 1.
    """
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    rirs = []
    for _ in range(n):
        dims = np.array([rng.uniform(3.0, 8.0), rng.uniform(3.0, 6.0), rng.uniform(2.4, 3.5)])
        target = rng.uniform(*rt60_range)
        absorption, max_order = pra.inverse_sabine(target, dims)
        room = pra.ShoeBox(dims, fs=sr, materials=pra.Material(absorption),
                           max_order=min(max_order, 40))
        src = rng.uniform([0.5, 0.5, 1.2], dims - [0.5, 0.5, 1.0])
        mic = rng.uniform([0.5, 0.5, 0.8], dims - [0.5, 0.5, 0.8])
        room.add_source(src)
        room.add_microphone(mic)
        room.compute_rir()
        h = np.asarray(room.rir[0][0], dtype=np.float64)
        rirs.append((h / np.max(np.abs(h))).astype(np.float32))
    return tuple(rirs)


def rt60(h: np.ndarray, sr: int) -> float:
    """Reverberation time of an impulse response, in seconds (T20).

    Schroeder's backward integral; the decay from -5 to -25 dB, extrapolated to 60 dB.
    """
    e = np.cumsum(np.asarray(h, dtype=np.float64)[::-1] ** 2)[::-1]
    db = 10 * np.log10(e / e[0] + 1e-300)
    i5, i25 = np.argmax(db <= -5.0), np.argmax(db <= -25.0)
    if i25 <= i5:
        return float("nan")
    return 3.0 * (i25 - i5) / sr


def reverberate(y: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Convolve with an impulse response (FFT), keep ``len(y)`` samples, restore the RMS level."""
    from scipy.signal import fftconvolve

    y64 = np.asarray(y, dtype=np.float64)
    wet = fftconvolve(y64, np.asarray(h, dtype=np.float64))[: len(y)]
    p_dry, p_wet = np.mean(y64 * y64), np.mean(wet * wet)
    if p_wet > 0:
        wet *= np.sqrt(p_dry / p_wet)
    return wet.astype(np.float32)


def equalise(y: np.ndarray, sr: int, max_gain_db: float, *, seed: int) -> np.ndarray:
    """Another microphone's frequency response: a random seven-band equaliser.

    audiomentations' ``SevenBandParametricEQ`` (a low shelf, five peaking filters and a high
    shelf, centre frequencies from 42 Hz to 9.5 kHz), each band cut or boosted by up to
    ``max_gain_db``; its parameters are drawn from ``seed`` (the random modules' state is put
    back afterwards).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32
    sr : int
        Sample rate, in Hz.
    max_gain_db : float > 0
    seed : int

    Returns
    -------
    y_eq : np.ndarray [shape=(n,)], float32
    """
    import random

    from audiomentations import SevenBandParametricEQ

    # audiomentations draws from both global generators (random and numpy's legacy one).
    state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    try:
        random.seed(seed)
        np.random.seed(seed % 2**32)  # noqa: NPY002
        t = SevenBandParametricEQ(min_gain_db=-max_gain_db, max_gain_db=max_gain_db, p=1.0)
        return np.asarray(t(np.asarray(y, dtype=np.float32), sample_rate=sr), dtype=np.float32)
    finally:
        random.setstate(state)
        np.random.set_state(np_state)  # noqa: NPY002


def pitch_shift(y: np.ndarray, sr: int, semitones: float) -> np.ndarray:
    """Shift the pitch, keeping the tempo (audiomentations ``PitchShift``, Signalsmith Stretch)."""
    from audiomentations import PitchShift

    t = PitchShift(min_semitones=semitones, max_semitones=semitones, p=1.0)
    t.parameters = {"should_apply": True, "num_semitones": float(semitones)}
    return np.asarray(t.apply(np.asarray(y, dtype=np.float32), sr), dtype=np.float32)


def time_stretch(y: np.ndarray, sr: int, rate: float) -> np.ndarray:
    """Change the tempo by ``rate``, keeping the pitch (audiomentations ``TimeStretch``)."""
    from audiomentations import TimeStretch

    t = TimeStretch(min_rate=rate, max_rate=rate, leave_length_unchanged=False, p=1.0)
    t.parameters = {"should_apply": True, "rate": float(rate)}
    return np.asarray(t.apply(np.asarray(y, dtype=np.float32), sr), dtype=np.float32)


def speed(y: np.ndarray, sr: int, rate: float) -> np.ndarray:
    """Play ``rate`` times faster: tempo and pitch together (resampled with soxr)."""
    import soxr

    return soxr.resample(np.asarray(y, dtype=np.float32), sr * rate, sr, quality="HQ")


# -- training ---------------------------------------------------------------------------------


@dataclass
class _Draw:
    """What one augmented copy applies: augmentation name -> its parameter."""

    steps: list[tuple[str, Any]] = field(default_factory=list)


def _draw(config: AugmentConfig, rng: np.random.Generator, n_pool: int) -> _Draw:
    draw = _Draw()
    for name in ("pitch", "stretch", "speed", "reverb", "white", "pink", "babble", "telephone",
                 "mp3", "opus", "gain", "gate", "pad", "eq"):
        if name not in config.kinds or not rng.random() < config.probability(name):
            continue
        if name == "pitch":
            draw.steps.append((name, rng.uniform(*config.semitones)))
        elif name == "stretch":
            draw.steps.append((name, rng.uniform(*config.stretch_rate)))
        elif name == "speed":
            draw.steps.append((name, rng.uniform(*config.speed_rate)))
        elif name == "reverb":
            draw.steps.append((name, int(rng.integers(config.n_rooms))))
        elif name in ("white", "pink"):
            draw.steps.append((name, rng.uniform(*config.snr_db)))
        elif name == "babble":
            # As many draws whatever the pool's size, so the other parameters do not depend on it.
            k = int(rng.integers(config.babble_speakers[0], config.babble_speakers[1] + 1))
            u = rng.random(k)
            picks = sorted({int(v * n_pool) for v in u}) if n_pool else []
            draw.steps.append((name, (rng.uniform(*config.snr_db), picks)))
        elif name == "telephone":
            draw.steps.append((name, None))
        elif name == "mp3":
            draw.steps.append((name, float(rng.choice(config.mp3_kbps))))
        elif name == "opus":
            draw.steps.append((name, float(rng.choice(config.opus_kbps))))
        elif name == "gate":
            draw.steps.append((name, rng.uniform(*config.gate_db)))
        elif name == "eq":
            draw.steps.append((name, (int(rng.integers(2**31)), config.eq_db)))
        elif name == "pad":
            noise = rng.random() < 0.5
            level = rng.uniform(*config.pad_noise_db)
            draw.steps.append((name, (rng.uniform(*config.pad_s), level if noise else None)))
        else:
            draw.steps.append((name, rng.uniform(*config.gain_db)))
    return draw


def clip_id(path: Any) -> int:
    """A clip's number for seeding its augmentation: the CRC-32 of its file name.

    The same file gets the same augmented copies whatever set or order it is trained in.
    """
    import os
    import zlib

    return zlib.crc32(os.path.basename(os.fspath(path)).encode("utf-8"))


def draws_babble(config: AugmentConfig, *, seed: int, clip: int, copy: int) -> bool:
    """Whether copy ``copy`` of clip ``clip`` mixes in babble (its pool then matters)."""
    rng = np.random.default_rng([seed, clip, copy])
    return any(name == "babble" for name, _ in _draw(config, rng, 1).steps)


def augment(
    y: np.ndarray,
    sr: int,
    config: AugmentConfig,
    *,
    seed: int,
    clip: int,
    copy: int,
    pool: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """One augmented copy of a training clip, the same for the same ``(seed, clip, copy)``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32
        The clip, mono at ``sr``.
    sr : int
        Sample rate, in Hz.
    config : AugmentConfig
    seed : int
        The training run's seed.
    clip, copy : int
        Which clip (its index in the training set) and which of its copies.
    pool : sequence of np.ndarray
        Clips babble may be mixed from (:func:`babble_pools`: other speakers of the clip's fold
        group); babble is skipped without them.

    Returns
    -------
    y_aug : np.ndarray [shape=(m,)], float32
        ``m`` differs from ``n`` after a time stretch or speed change.
    """
    rng = np.random.default_rng([seed, clip, copy])
    draw = _draw(config, rng, len(pool))
    y = np.asarray(y, dtype=np.float32)
    for name, value in draw.steps:
        if name == "pitch":
            y = pitch_shift(y, sr, value)
        elif name == "stretch":
            y = time_stretch(y, sr, value)
        elif name == "speed":
            y = speed(y, sr, value)
        elif name == "reverb":
            y = reverberate(y, rir_bank(seed, config.n_rooms, config.rt60_s, sr)[value])
        elif name == "white":
            y = mix_at_snr(y, white_noise(len(y), rng), value)
        elif name == "pink":
            y = mix_at_snr(y, pink_noise(len(y), rng), value)
        elif name == "babble" and len(value[1]):
            y = mix_at_snr(y, babble(len(y), [pool[i] for i in value[1]], rng), value[0])
        elif name == "telephone":
            y = telephone(y, sr)
        elif name in ("mp3", "opus"):
            y = codec(y, sr, name, value)
        elif name == "gain":
            y = (y * np.float32(10.0 ** (value / 20.0))).astype(np.float32)
        elif name == "gate":
            y = gate(y, value)
        elif name == "pad":
            y = pad(y, sr, value[0], value[1], rng=rng)
        elif name == "eq":
            y = equalise(y, sr, value[1], seed=value[0])
    return y


# -- evaluation -------------------------------------------------------------------------------


def perturb(
    y: np.ndarray, sr: int, name: str, *, clip: int, others: Sequence[np.ndarray] = ()
) -> np.ndarray:
    """The evaluation's perturbation ``name`` (a key of :data:`PERTURBATIONS`) of a test clip.

    Seeds, noise and rooms are the evaluation's own: white noise from a generator seeded by
    ``clip`` apart from any training seed, babble from ``others`` (clips of the test fold's other
    speakers, never trained on), the impulse response of one room with an RT60 of about 0.5 s from
    a bank no training run draws from, MP3 at 32 kbit/s constant bit rate.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32
    sr : int
    name : str
        A key of :data:`PERTURBATIONS`.
    clip : int
        The clip's index, to seed its noise.
    others : sequence of np.ndarray
        Babble sources (the test fold's other speakers' clips).

    Returns
    -------
    y_perturbed : np.ndarray [shape=(n,)], float32

    Raises
    ------
    ParameterError
        If ``name`` is unknown, or babble is asked for without ``others``.
    """
    if name not in PERTURBATIONS:
        raise ParameterError(f"unknown perturbation {name!r}; choose from {list(PERTURBATIONS)}")
    kind, value = PERTURBATIONS[name]
    rng = np.random.default_rng([_EVAL_SEED, clip])
    y = np.asarray(y, dtype=np.float32)
    if kind == "gain":
        return (y * np.float32(10.0 ** (value / 20.0))).astype(np.float32)
    if kind == "white":
        return mix_at_snr(y, white_noise(len(y), rng), value)
    if kind == "babble":
        if not len(others):
            raise ParameterError("babble needs other speakers' clips")
        picks = rng.choice(len(others), size=min(4, len(others)), replace=False)
        return mix_at_snr(y, babble(len(y), [others[i] for i in picks], rng), value)
    if kind == "telephone":
        return telephone(y, sr)
    if kind == "mp3":
        return codec(y, sr, "mp3", value)
    if kind == "pad_silence":
        return pad(y, sr, value)
    if kind == "pad_noise":
        return pad(y, sr, 0.6, value, rng=rng)
    if kind == "gate":
        return gate(y, value)
    h = rir_bank(_EVAL_ROOMS_SEED, 8, (value, value), sr)[clip % 8]
    return reverberate(y, h)
