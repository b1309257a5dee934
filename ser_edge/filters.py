"""Mel and chroma filter banks and the frequency conversions behind them.

Mirrors ``librosa.filters`` and ``librosa.core.convert`` of librosa 0.11.0, with the same
intermediate dtypes so the banks are bit-identical to librosa's. Banks are built once per
configuration and cached (librosa caches ``filters.mel`` too); the cached arrays are read-only.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .dsp import fft_frequencies
from .errors import ParameterError

__all__ = [
    "hz_to_mel",
    "mel_to_hz",
    "mel_frequencies",
    "hz_to_octs",
    "mel_filters",
    "mel_projection",
    "chroma_filters",
    "dct_matrix",
]

# Slaney's mel scale: linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(frequencies: float | np.ndarray, *, htk: bool = False) -> np.ndarray:
    """Convert Hz to mels (Slaney 1998, or HTK's ``2595 log10(1 + f / 700)``).

    Mirrors ``librosa.hz_to_mel``.

    Parameters
    ----------
    frequencies : float or np.ndarray
        Frequencies, in Hz.
    htk : bool
        Use the HTK formula instead of Slaney's.

    Returns
    -------
    mels : np.ndarray [shape=frequencies.shape], float64
    """
    frequencies = np.asanyarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + frequencies / 700.0)
    mels = frequencies / _F_SP
    log_t = frequencies >= _MIN_LOG_HZ
    safe = np.where(log_t, frequencies, _MIN_LOG_HZ)
    return np.where(log_t, _MIN_LOG_MEL + np.log(safe / _MIN_LOG_HZ) / _LOGSTEP, mels)


def mel_to_hz(mels: float | np.ndarray, *, htk: bool = False) -> np.ndarray:
    """Convert mels to Hz, the inverse of :func:`hz_to_mel` (mirrors ``librosa.mel_to_hz``).

    Returns
    -------
    frequencies : np.ndarray [shape=mels.shape], float64, in Hz
    """
    mels = np.asanyarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    freqs = _F_SP * mels
    log_t = mels >= _MIN_LOG_MEL
    return np.where(log_t, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels - _MIN_LOG_MEL)), freqs)


def mel_frequencies(
    n_mels: int = 128, *, fmin: float = 0.0, fmax: float = 11025.0, htk: bool = False
) -> np.ndarray:
    """Centre frequencies of ``n_mels`` bands equally spaced on the mel scale, in Hz.

    Mirrors ``librosa.mel_frequencies``.

    Returns
    -------
    frequencies : np.ndarray [shape=(n_mels,)], float64
    """
    mels = np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels)
    return mel_to_hz(mels, htk=htk)


def hz_to_octs(
    frequencies: float | np.ndarray, *, tuning: float = 0.0, bins_per_octave: int = 12
) -> np.ndarray:
    """Convert Hz to octave numbers relative to C0 = A440 / 16 (mirrors ``librosa.hz_to_octs``).

    Parameters
    ----------
    frequencies : float or np.ndarray
        Frequencies, in Hz; a float32 array stays float32, as in librosa.
    tuning : float
        Deviation from A440 tuning, in fractions of a bin.
    bins_per_octave : int > 0
        Bins per octave, the unit of ``tuning``.

    Returns
    -------
    octaves : np.ndarray [shape=frequencies.shape]
    """
    a440 = 440.0 * 2.0 ** (tuning / bins_per_octave)
    return np.log2(np.asanyarray(frequencies) / (float(a440) / 16))


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@lru_cache(maxsize=32)
def mel_filters(
    *,
    sr: float,
    n_fft: int,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Mel filter bank: triangular filters on the mel scale over the STFT bins.

    Mirrors ``librosa.filters.mel`` (librosa 0.11.0) with ``dtype=np.float32``.

    Parameters
    ----------
    sr : float > 0
        Sample rate of the audio, in Hz.
    n_fft : int > 0
        FFT length in samples.
    n_mels : int > 0
        Number of mel bands.
    fmin : float >= 0
        Lowest frequency, in Hz.
    fmax : float > 0 or None
        Highest frequency, in Hz; ``None`` means ``sr / 2``.
    htk : bool
        Use the HTK mel formula instead of Slaney's (Slaney 1998, Auditory Toolbox).
    norm : {"slaney", None}
        ``"slaney"`` divides each triangle by its width in Hz (constant energy per band);
        ``None`` leaves the peaks at 1.

    Returns
    -------
    M : np.ndarray [shape=(n_mels, 1 + n_fft // 2)], float32, read-only

    Raises
    ------
    ParameterError
        If ``norm`` is neither ``"slaney"`` nor ``None``.
    """
    if norm not in ("slaney", None):
        raise ParameterError(f"unsupported mel norm={norm!r}; use 'slaney' or None")
    if fmax is None:
        fmax = float(sr) / 2
    n_mels = int(n_mels)
    weights = np.zeros((n_mels, int(1 + n_fft // 2)), dtype=np.float32)
    fftfreqs = fft_frequencies(sr=sr, n_fft=n_fft)
    mel_f = mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax, htk=htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    if norm == "slaney":
        enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
        weights *= enorm[:, np.newaxis]
    return _readonly(weights)


# Mel bands per dense block of :func:`mel_projection`: 8 keeps a block's bins close to its bands'
# support (7% of the full bank's multiply-adds at 128 mels) and the BLAS calls few.
_ROWS_PER_BLOCK = 8


@lru_cache(maxsize=32)
def _mel_blocks(**kwargs) -> tuple[int, tuple[tuple[int, int, int, int, np.ndarray], ...]]:
    """The mel bank of ``kwargs`` cut into dense blocks ``(r0, r1, lo, hi, bank[r0:r1, lo:hi])``.

    A triangular filter is non-zero on a narrow run of bins, so each block of consecutive bands
    covers only the bins ``lo:hi`` where one of its bands is non-zero; blocks of bands that are
    zero everywhere are left out.
    """
    bank = mel_filters(**kwargs)
    blocks = []
    for r0 in range(0, bank.shape[0], _ROWS_PER_BLOCK):
        r1 = min(r0 + _ROWS_PER_BLOCK, bank.shape[0])
        bins = np.flatnonzero(bank[r0:r1].any(axis=0))
        if len(bins):
            lo, hi = int(bins[0]), int(bins[-1]) + 1
            blocks.append((r0, r1, lo, hi, _readonly(np.ascontiguousarray(bank[r0:r1, lo:hi]))))
    return bank.shape[0], tuple(blocks)


def mel_projection(S: np.ndarray, *, out: np.ndarray | None = None, **kwargs) -> np.ndarray:
    """``mel_filters(**kwargs) @ S``, skipping the bank's zeros.

    The same sums as the dense product, over the bins where each band is non-zero (a tenth of
    the work or less): adding the zeros' products changes nothing but the rounding order, and
    the results agree with the dense product to within float32 rounding.

    Parameters
    ----------
    S : np.ndarray [shape=(..., 1 + n_fft // 2, n_frames)]
        Power spectrogram (any view: a transposed block is read in place).
    out : np.ndarray [shape=(..., n_mels, n_frames)] or None
        Where to write the result.
    **kwargs
        The filter bank's parameters, as :func:`mel_filters` takes them.

    Returns
    -------
    M : np.ndarray [shape=(..., n_mels, n_frames)], float32 for float32 ``S``
    """
    n_mels, blocks = _mel_blocks(**kwargs)
    if out is None:
        dtype = np.result_type(S.dtype, np.float32)
        out = np.empty(S.shape[:-2] + (n_mels, S.shape[-1]), dtype=dtype)
    covered = 0
    for r0, r1, lo, hi, W in blocks:
        out[..., covered:r0, :] = 0
        np.matmul(W, S[..., lo:hi, :], out=out[..., r0:r1, :])
        covered = r1
    out[..., covered:, :] = 0
    return out


@lru_cache(maxsize=256)
def chroma_filters(
    *,
    sr: float,
    n_fft: int,
    n_chroma: int = 12,
    tuning: float = 0.0,
    ctroct: float = 5.0,
    octwidth: float | None = 2,
    base_c: bool = True,
) -> np.ndarray:
    """Chroma filter bank: Gaussian bumps in log frequency that fold STFT bins onto pitch classes.

    Mirrors ``librosa.filters.chroma`` (librosa 0.11.0) with ``norm=2`` and ``dtype=np.float32``
    (after Ellis's ``chromagram_E``).

    Parameters
    ----------
    sr : float > 0
        Sample rate of the audio, in Hz.
    n_fft : int > 0
        FFT length in samples.
    n_chroma : int > 0
        Number of chroma bins per octave.
    tuning : float
        Deviation from A440 tuning, in fractions of a chroma bin.
    ctroct : float
        Centre of the Gaussian octave weighting, in octaves above C0.
    octwidth : float > 0 or None
        Width of the octave weighting, in octaves; ``None`` for flat weighting.
    base_c : bool
        Start the bins at C (else at A).

    Returns
    -------
    C : np.ndarray [shape=(n_chroma, 1 + n_fft // 2)], float32, read-only
    """
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    frqbins = n_chroma * hz_to_octs(frequencies, tuning=tuning, bins_per_octave=n_chroma)
    # A made-up value for the 0 Hz bin: 1.5 octaves below bin 1.
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    D = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    n_chroma2 = np.round(float(n_chroma) / 2)
    # Project into -n_chroma/2 .. n_chroma/2; the offset keeps the remainder's argument positive.
    D = np.remainder(D + n_chroma2 + 10 * n_chroma, n_chroma) - n_chroma2
    wts = np.exp(-0.5 * (2 * D / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    # Each column to unit L2 norm (librosa.util.normalize, norm=2, axis=0).
    length = np.sum(np.abs(wts) ** 2, axis=0, keepdims=True) ** 0.5
    length[length < np.finfo(wts.dtype).tiny] = 1.0
    wts = wts / length
    if octwidth is not None:
        wts *= np.tile(
            np.exp(-0.5 * (((frqbins / n_chroma - ctroct) / octwidth) ** 2)), (n_chroma, 1)
        )
    if base_c:
        wts = np.roll(wts, -3 * (n_chroma // 12), axis=0)
    return _readonly(np.ascontiguousarray(wts[:, : int(1 + n_fft / 2)], dtype=np.float32))


@lru_cache(maxsize=16)
def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II basis.

    ``dct_matrix(n, m) @ x`` equals ``scipy.fft.dct(x, type=2, norm="ortho", axis=0)[:n]``.

    Parameters
    ----------
    n_out : int > 0
        Coefficients kept (e.g. ``n_mfcc``); at most ``n_in``.
    n_in : int > 0
        Length of the transformed axis (e.g. ``n_mels``).

    Returns
    -------
    B : np.ndarray [shape=(n_out, n_in)], float32, read-only
    """
    k = np.arange(n_out)[:, np.newaxis]
    n = np.arange(n_in)[np.newaxis, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return _readonly(basis.astype(np.float32))
