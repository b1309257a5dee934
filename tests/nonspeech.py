"""A seeded set of non-speech signals for voice activity detection: what must not be called speech.

Silence (digital and dithered), white, pink and brown noise, mains hum at 50 and 60 Hz with
harmonics, DC offsets, pure tones (steady and beeping), swept tones (linear and logarithmic,
single and repeated), clicks (single and trains, on silence and on hiss), hum and noise switched
on and off over silence, and mixtures of them, at
levels from faint to loud and lengths from 1 to 30 seconds. Every signal is a deterministic
function of its name and seed: ``nonspeech_set()`` always returns the same signals.

Used by ``tests/test_vad.py`` (the whole set, in the default run) and ``benchmarks/vad.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

__all__ = ["KINDS", "make", "nonspeech_set", "db"]

#: Families of signals, in the order :func:`nonspeech_set` makes them.
KINDS = ("silence", "dither", "white", "pink", "brown", "hum50", "hum60", "dc", "tone", "beeps",
         "sweep", "sweeps", "click", "clicks", "hum+hiss", "tone+pink", "clicks+hiss",
         "hum-bursts", "noise-bursts")


def db(level_db: float) -> float:
    """An amplitude from dB relative to full scale."""
    return float(10 ** (level_db / 20))


def _rms_to(y: np.ndarray, level_db: float) -> np.ndarray:
    rms = np.sqrt(np.mean(y**2))
    return y * (db(level_db) / rms) if rms > 0 else y


def _coloured(n: int, rng: np.random.Generator, slope: float) -> np.ndarray:
    """Noise whose power falls as ``f ** -slope`` (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=float)
    f[0] = 1.0
    spec = spec / f ** (slope / 2)
    spec[0] = 0
    return np.fft.irfft(spec, n)


def _gate(n: int, sr: int, rng: np.random.Generator, shortest: float, longest: float):
    """On and off stretches of ``shortest`` to ``longest`` seconds, with 10 ms ramps."""
    gate = np.zeros(n)
    pos, on = int(rng.uniform(0.0, 0.5) * sr), True
    while pos < n:
        length = int(rng.uniform(shortest, longest) * sr)
        if on:
            gate[pos : pos + length] = 1.0
        pos, on = pos + length, not on
    ramp = np.hanning(int(0.02 * sr))
    return np.convolve(gate, ramp / ramp.sum(), mode="same")


def make(kind: str, *, sr: int = 16000, seconds: float = 3.0, level_db: float = -30.0,
         seed: int = 0) -> np.ndarray:
    """One non-speech signal, float32 in [-1, 1].

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    sr : int
        Sample rate, in Hz.
    seconds : float
        Length, in seconds.
    level_db : float
        RMS level in dB relative to full scale (peak level for clicks, offset for DC).
    seed : int
        Seed of the noise and of the random choices (frequencies, click times).

    Returns
    -------
    y : np.ndarray [shape=(round(seconds * sr),)], float32
    """
    rng = np.random.default_rng([seed, KINDS.index(kind), int(sr), int(seconds * 1000)])
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    hiss = lambda lvl: _rms_to(rng.standard_normal(n), lvl)  # noqa: E731
    if kind == "silence":
        y = np.zeros(n)
    elif kind == "dither":  # 16-bit dither: a quantisation step of noise
        y = rng.uniform(-1, 1, n) / 32768
    elif kind in ("white", "pink", "brown"):
        y = _rms_to(_coloured(n, rng, {"white": 0, "pink": 1, "brown": 2}[kind]), level_db)
    elif kind in ("hum50", "hum60", "hum+hiss", "hum-bursts"):
        f0 = 60.0 if kind == "hum60" or (kind == "hum-bursts" and seed % 2) else 50.0
        amps = rng.uniform(0.2, 1.0, 12) / np.arange(1, 13) ** rng.uniform(0.5, 1.5)
        phases = rng.uniform(0, 2 * np.pi, 12)
        y = sum(a * np.sin(2 * np.pi * f0 * (h + 1) * t + p)
                for h, (a, p) in enumerate(zip(amps, phases, strict=True)))
        y = _rms_to(y, level_db)
        if kind == "hum+hiss":
            y = y + hiss(level_db - 10)
        if kind == "hum-bursts":  # an appliance switched on and off, over silence
            y = y * _gate(n, sr, rng, 0.5, 3.0)
    elif kind == "dc":
        y = np.full(n, db(level_db) * rng.choice([-1, 1])) + hiss(-90)
    elif kind in ("tone", "tone+pink"):
        f = rng.choice([100.0, 250.0, 440.0, 1000.0, 2500.0, 3500.0]) * rng.uniform(0.97, 1.03)
        y = _rms_to(np.sin(2 * np.pi * f * t), level_db)
        if kind == "tone+pink":
            y = y + _rms_to(_coloured(n, rng, 1), level_db - 6)
    elif kind == "beeps":  # tone bursts of 0.1 to 1 s with 5 ms ramps, over silence
        f = rng.choice([440.0, 800.0, 1000.0, 2000.0])
        y = np.zeros(n)
        pos = int(rng.uniform(0.05, 0.4) * sr)
        ramp = int(0.005 * sr)
        while pos < n:
            length = int(rng.uniform(0.1, 1.0) * sr)
            env = np.ones(min(length, n - pos))
            env[:ramp] = np.linspace(0, 1, ramp)[: len(env)]
            env[-ramp:] *= np.linspace(1, 0, ramp)[-len(env):]
            y[pos : pos + len(env)] = env * np.sin(2 * np.pi * f * t[: len(env)])
            pos += length + int(rng.uniform(0.1, 1.0) * sr)
        y = y * db(level_db + 3)
    elif kind in ("sweep", "sweeps"):
        f0, f1 = 100.0, min(8000.0, 0.45 * sr)
        period = seconds if kind == "sweep" else rng.uniform(0.3, 2.0)
        tt = t % period
        if rng.uniform() < 0.5:  # linear
            phase = 2 * np.pi * (f0 * tt + 0.5 * (f1 - f0) / period * tt**2)
        else:  # logarithmic
            k = np.log(f1 / f0) / period
            phase = 2 * np.pi * f0 * (np.exp(k * tt) - 1) / k
        y = _rms_to(np.sin(phase), level_db)
    elif kind in ("click", "clicks", "clicks+hiss"):
        y = np.zeros(n)
        rate = 0.0 if kind == "click" else rng.choice([1.0, 2.0, 5.0, 10.0, 20.0])
        times = ([rng.uniform(0.1, 0.9) * seconds] if rate == 0
                 else np.arange(rng.uniform(0, 1 / rate), seconds, 1 / rate))
        width = max(1, int(rng.choice([1, 2, 8, 48]) * sr / 48000))
        for when in times:
            i = int(when * sr)
            y[i : i + width] = db(level_db) * rng.choice([-1, 1])
        if kind == "clicks+hiss":
            y = y + hiss(level_db - 40)
    elif kind == "noise-bursts":  # hiss or rumble switched on and off, over silence
        y = _rms_to(_coloured(n, rng, rng.choice([0.0, 1.0, 2.0])), level_db)
        y = y * _gate(n, sr, rng, 0.2, 2.0)
    else:
        raise ValueError(f"unknown kind {kind!r}; choose from {KINDS}")
    return np.clip(y, -1, 1).astype(np.float32)


#: Levels per family, dB re full scale: faint room sounds to loud interference.
_LEVELS = {
    "silence": (0,), "dither": (0,),
    "white": (-70, -50, -35, -20, -10), "pink": (-70, -50, -35, -20, -10),
    "brown": (-50, -30, -15),
    "hum50": (-60, -40, -20), "hum60": (-60, -40, -20), "hum+hiss": (-45, -25),
    "dc": (-40, -20, -6),
    "tone": (-50, -30, -12), "tone+pink": (-40, -20), "beeps": (-40, -20, -6),
    "sweep": (-40, -20, -6), "sweeps": (-40, -20),
    "click": (-30, -10, -1), "clicks": (-40, -20, -6), "clicks+hiss": (-30, -10),
    "hum-bursts": (-60, -40, -20), "noise-bursts": (-60, -40, -20),
}

#: Lengths, in seconds.
SECONDS = (1.0, 3.0, 10.0, 30.0)


def nonspeech_set(
    sr: int = 16000, *, seconds: tuple[float, ...] = SECONDS, seeds: int = 2
) -> Iterator[tuple[str, np.ndarray]]:
    """Every family at each of its levels, each length and ``seeds`` seeds.

    Parameters
    ----------
    sr : int
        Sample rate, in Hz.
    seconds : tuple of float
        Lengths, in seconds.
    seeds : int
        Seeds per (family, level, length); silence and dither take one.

    Yields
    ------
    name : str
        ``"{kind}_{level}dB_{seconds}s_seed{seed}"``.
    y : np.ndarray [shape=(n,)], float32
    """
    for kind in KINDS:
        n_seeds = 1 if kind in ("silence", "dither") else seeds
        for level, secs, seed in itertools.product(_LEVELS[kind], seconds, range(n_seeds)):
            yield (f"{kind}_{level}dB_{secs:g}s_seed{seed}",
                   make(kind, sr=sr, seconds=secs, level_db=level, seed=seed))
