"""Short-time Fourier analysis in numpy, with librosa's arithmetic.

Each function mirrors its librosa 0.11.0 namesake operation for operation, down to the dtypes of
the intermediate results, because the chroma tuning estimate downstream is a histogram argmax that
a difference of one float32 ulp in the power spectrogram can flip.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import numpy as np

from .errors import ParameterError

__all__ = [
    "hann_window",
    "stft",
    "power_spectrogram",
    "power_blocks_stream",
    "power_to_db",
    "fft_frequencies",
    "trim_zeros",
    "trim_zeros_stream",
    "trim_quiet",
    "trim_quiet_threshold",
    "align_peak",
]

# Samples searched at once for a non-zero one (trim_zeros), and most zeros given out in one piece
# (trim_zeros_stream): 64 KB of float32.
_ZERO_BLOCK = 1 << 14

# Frames transformed at once: a 512 KB float64 scratch at n_fft=2048, whatever the clip's length.
_BLOCK_FRAMES = 32


# Scratch buffers kept between calls, per thread: fresh ones cost page faults on first touch,
# about a third of a short clip's STFT. A buffer is borrowed for one call and given back, so two
# transforms running at once (nested generators, threads) never share one.
_SCRATCH = threading.local()


@contextmanager
def _scratch(shape: tuple[int, ...], dtype: type) -> Iterator[np.ndarray]:
    free = _SCRATCH.__dict__.setdefault("free", {})
    key = (shape, np.dtype(dtype).str)
    stack = free.setdefault(key, [])
    buf = stack.pop() if stack else np.empty(shape, dtype=dtype)
    try:
        yield buf
    finally:
        if len(stack) < 4:
            stack.append(buf)


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ParameterError(f"{name}={value!r} must be a positive integer")


@lru_cache(maxsize=16)
def hann_window(n_fft: int) -> np.ndarray:
    """Return the periodic Hann window, as ``scipy.signal.get_window("hann", n_fft)`` computes it.

    Parameters
    ----------
    n_fft : int > 0
        Window length in samples.

    Returns
    -------
    window : np.ndarray [shape=(n_fft,)], float64, read-only
        ``0.5 + 0.5 * cos(x)`` for ``x`` from ``-pi`` in steps of ``2 pi / n_fft`` (the
        "fftbins" variant, periodic for spectral analysis), evaluated as scipy's
        ``general_cosine`` does so that the values are bit-identical.
    """
    _check_positive_int("n_fft", n_fft)
    if n_fft == 1:
        window = np.ones(1)
    else:
        fac = np.linspace(-np.pi, np.pi, n_fft + 1)
        window = np.zeros(n_fft + 1)
        window += 0.5 * np.cos(0 * fac)
        window += 0.5 * np.cos(1 * fac)
        window = window[:-1]
    window.flags.writeable = False
    return window


def _frame_blocks(y: np.ndarray, n_fft: int, hop_length: int | None, center: bool):
    """Validate, pad and frame ``y``; yield ``(channel, start, spectra)`` block by block.

    ``spectra`` is a reused complex buffer of shape ``(m, 1 + n_fft // 2)`` holding the rfft of
    frames ``start .. start + m`` of ``channel`` (after the window); the generator's first item is
    ``(lead_shape, n_frames, out_dtype)``.
    """
    _check_positive_int("n_fft", n_fft)
    if hop_length is None:
        hop_length = n_fft // 4
    _check_positive_int("hop_length", hop_length)
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.floating):
        raise ParameterError(f"audio must be floating-point, got dtype {y.dtype}")
    if y.ndim == 0 or y.shape[-1] == 0:
        raise ParameterError(f"audio must have at least one sample, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ParameterError("audio buffer is not finite everywhere")
    lead = y.shape[:-1]
    y = y.reshape((-1, y.shape[-1]))
    if center:  # zero padding, as np.pad(mode="constant") without its overhead
        pad = n_fft // 2
        padded = np.zeros((y.shape[0], y.shape[-1] + 2 * pad), dtype=y.dtype)
        padded[:, pad : pad + y.shape[-1]] = y
        y = padded
    if y.shape[-1] < n_fft:
        raise ParameterError(
            f"n_fft={n_fft} is too large for uncentred analysis of a signal of length {y.shape[-1]}"
        )
    # (channels, n_frames, n_fft) view: one contiguous row per frame, so rfft runs along the
    # last axis.
    n_frames = 1 + (y.shape[-1] - n_fft) // hop_length
    frames = np.lib.stride_tricks.as_strided(
        y, shape=(y.shape[0], n_frames, n_fft),
        strides=(y.strides[0], hop_length * y.strides[1], y.strides[1]), writeable=False)
    out_dtype = np.complex64 if y.dtype == np.float32 else np.complex128
    yield lead, n_frames, out_dtype
    for c in range(frames.shape[0]):
        for start, spec in _spectra(frames[c], out_dtype):
            yield c, start, spec


def _spectra(frames: np.ndarray, out_dtype: type):
    """Yield ``(start, spectra)``: the rfft of the windowed frames ``start .. start + m``.

    ``frames`` is a ``(n_frames, n_fft)`` view; ``spectra`` a reused ``(m, 1 + n_fft // 2)``
    buffer of ``out_dtype``.
    """
    n_frames, n_fft = frames.shape
    window = hann_window(n_fft)
    # Small blocks through two reused buffers: the float64 products and their spectra stay in
    # cache, and no large temporary is allocated (page faults cost more than the FFTs). The
    # float64 transform is written straight into the output dtype, the rounding librosa does
    # when it stores its complex64 matrix.
    block = min(_BLOCK_FRAMES, n_frames)
    with (_scratch((block, n_fft), np.float64) as buf,
          _scratch((block, 1 + n_fft // 2), out_dtype) as spec):
        for start in range(0, n_frames, block):
            m = min(block, n_frames - start)
            # Cast, then multiply in place: faster than numpy's buffered mixed-dtype loop, and
            # the same float64 products.
            np.copyto(buf[:m], frames[start : start + m])
            np.multiply(buf[:m], window, out=buf[:m])
            np.fft.rfft(buf[:m], axis=-1, out=spec[:m])
            yield start, spec[:m]


def _frames_of_chunks(chunks, n_fft: int, hop_length: int, center: bool):
    """Frame audio that arrives in chunks as :func:`stft` frames the whole signal.

    Yields ``(start, frames)``: a ``(m, n_fft)`` view of frames ``start .. start + m`` (valid
    until the next item), the same samples, zero padding included, as the whole signal's frames.
    """
    pad = n_fft // 2 if center else 0
    tail: np.ndarray | None = None  # samples from the next frame's first one on
    dtype = None
    next_frame = skip = n_samples = 0

    def ready(tail: np.ndarray):
        m = 1 + (len(tail) - n_fft) // hop_length if len(tail) >= n_fft else 0
        view = np.lib.stride_tricks.as_strided(
            tail, shape=(m, n_fft), strides=(hop_length * tail.strides[0], tail.strides[0]),
            writeable=False)
        return m, view

    for chunk in chunks:
        chunk = np.asarray(chunk)
        if dtype is None:
            if not np.issubdtype(chunk.dtype, np.floating):
                raise ParameterError(f"audio must be floating-point, got dtype {chunk.dtype}")
            dtype = chunk.dtype
            tail = np.zeros(pad, dtype=dtype)
        if chunk.ndim != 1 or chunk.dtype != dtype:
            raise ParameterError(f"audio chunks must be 1-D {dtype}, got {chunk.dtype} "
                                 f"of shape {chunk.shape}")
        if not np.isfinite(chunk).all():
            raise ParameterError("audio buffer is not finite everywhere")
        n_samples += len(chunk)
        dropped = min(skip, len(chunk))  # hop_length > n_fft: samples no frame covers
        skip -= dropped
        tail = np.concatenate((tail, chunk[dropped:]))
        m, frames = ready(tail)
        if m:
            yield next_frame, frames
            next_frame += m
            skip = max(0, m * hop_length - len(tail))
            tail = tail[m * hop_length :]
    if n_samples == 0:
        raise ParameterError("audio must have at least one sample")
    tail = np.concatenate((tail, np.zeros(max(0, pad - skip), dtype=dtype)))
    m, frames = ready(tail)
    if m:
        yield next_frame, frames
    elif next_frame == 0:
        raise ParameterError(
            f"n_fft={n_fft} is too large for uncentred analysis of a signal of length {n_samples}"
        )


def _magnitude(spec: np.ndarray, power: float, *, out: np.ndarray) -> None:
    """``abs(spec) ** power`` into ``out``; squared as numpy's ``x ** 2`` squares, by ``square``."""
    np.abs(spec, out=out)
    if power == 2.0:
        np.square(out, out=out)
    elif power != 1.0:
        np.power(out, power, out=out)


def stft(
    y: np.ndarray,
    *,
    n_fft: int = 2048,
    hop_length: int | None = None,
    center: bool = True,
) -> np.ndarray:
    """Short-time Fourier transform with a periodic Hann window and zero padding.

    Mirrors ``librosa.stft`` (librosa 0.11.0) with ``win_length=n_fft``, ``window="hann"`` and
    ``pad_mode="constant"``: each frame of float32 samples is multiplied by the float64 window and
    transformed in float64 by ``numpy.fft.rfft``, then stored as complex64. That is librosa's
    arithmetic, and it makes ``abs(D) ** 2`` bit-identical to librosa's power spectrogram.

    Parameters
    ----------
    y : np.ndarray [shape=(..., n)], float32 or float64
        Audio time series; leading dimensions (channels) are transformed independently.
    n_fft : int > 0
        FFT length in samples; the spectrum has ``1 + n_fft // 2`` frequency bins.
    hop_length : int > 0 or None
        Number of samples between successive frames; ``None`` means ``n_fft // 4``.
    center : bool
        Pad ``y`` with ``n_fft // 2`` zeros on both sides so that frame ``t`` is centred at
        sample ``t * hop_length``.

    Returns
    -------
    D : np.ndarray [shape=(..., 1 + n_fft // 2, n_frames)], complex64 (complex128 for float64 y)
        ``n_frames = 1 + (n + 2 * (n_fft // 2) - n_fft) // hop_length`` when centred.

    Raises
    ------
    ParameterError
        If ``y`` is not a finite floating-point array with at least one sample, or ``n_fft`` or
        ``hop_length`` is not a positive integer, or (uncentred) ``y`` is shorter than ``n_fft``.
    """
    blocks = _frame_blocks(y, n_fft, hop_length, center)
    lead, n_frames, dtype = next(blocks)
    D = np.empty((int(np.prod(lead)), n_frames, 1 + n_fft // 2), dtype=dtype)
    for c, start, spec in blocks:
        D[c, start : start + len(spec)] = spec
    return np.swapaxes(D.reshape(lead + D.shape[1:]), -1, -2)


def power_spectrogram(
    y: np.ndarray,
    *,
    n_fft: int = 2048,
    hop_length: int | None = None,
    center: bool = True,
    power: float = 2.0,
) -> np.ndarray:
    """``abs(stft(y)) ** power``, computed block by block without the complex matrix.

    Bit-identical to ``np.abs(librosa.stft(y, ...)) ** power`` (librosa 0.11.0): each block of
    spectra is rounded to complex64 before its magnitude is taken, as librosa stores it. Peak
    memory is the result alone, a third of what the complex STFT and its magnitude take.

    Parameters
    ----------
    y : np.ndarray [shape=(..., n)], float32 or float64
        Audio time series; leading dimensions (channels) are transformed independently.
    n_fft : int > 0
        FFT length in samples; the spectrum has ``1 + n_fft // 2`` frequency bins.
    hop_length : int > 0 or None
        Number of samples between successive frames; ``None`` means ``n_fft // 4``.
    center : bool
        Pad ``y`` with ``n_fft // 2`` zeros on both sides (see :func:`stft`).
    power : float > 0
        Exponent of the magnitude: 2.0 for power, 1.0 for magnitude.

    Returns
    -------
    S : np.ndarray [shape=(..., 1 + n_fft // 2, n_frames)], float32 for float32 y, C order

    Raises
    ------
    ParameterError
        As :func:`stft`.
    """
    blocks = _frame_blocks(y, n_fft, hop_length, center)
    lead, n_frames, dtype = next(blocks)
    real = np.float32 if dtype == np.complex64 else np.float64
    S = np.empty((int(np.prod(lead)), 1 + n_fft // 2, n_frames), dtype=real)
    with _scratch((min(_BLOCK_FRAMES, n_frames), 1 + n_fft // 2), real) as mag:
        for c, start, spec in blocks:
            m = len(spec)
            _magnitude(spec, power, out=mag[:m])
            S[c, :, start : start + m] = mag[:m].T
    return S.reshape(lead + S.shape[1:])


def power_blocks_stream(
    chunks,
    *,
    n_fft: int = 2048,
    hop_length: int | None = None,
    center: bool = True,
    power: float = 2.0,
    frames_per_block: int = 256,
):
    """Yield the power spectrogram of audio that arrives in chunks, a block of frames at a time.

    For features that need each frame once (mel, chroma at a fixed tuning): the spectrogram of
    the concatenation of ``chunks`` is never held, nor the signal itself; memory is one chunk and
    one block, whatever the signal's length. A whole signal ``y`` is the one chunk ``[y]``.

    Parameters
    ----------
    chunks : iterable of np.ndarray [shape=(n_i,)], float32 or float64
        Consecutive pieces of one mono signal, all of one dtype (empty pieces are allowed).
    n_fft, hop_length, center, power
        As :func:`power_spectrogram`.
    frames_per_block : int > 0
        Frames per block, at most; rounded up to whole transform blocks of 32 frames.

    Yields
    ------
    start, S : int, np.ndarray [shape=(1 + n_fft // 2, m)], float32 for float32 chunks
        Each block's first frame and the spectrogram's columns ``start .. start + m``,
        bit-identical to ``power_spectrogram(y)[:, start:start + m]`` of the whole signal ``y``.
        ``S`` is a view of a buffer that the next block reuses: use it before asking for the
        next one.

    Raises
    ------
    ParameterError
        As :func:`stft`, when the chunks are read, or if a chunk is not 1-D.
    """
    _check_positive_int("n_fft", n_fft)
    if hop_length is None:
        hop_length = n_fft // 4
    _check_positive_int("hop_length", hop_length)
    _check_positive_int("frames_per_block", frames_per_block)
    frames = _frames_of_chunks(chunks, n_fft, hop_length, center)
    first = next(frames, None)
    if first is None:
        return
    out_dtype = np.complex64 if first[1].dtype == np.float32 else np.complex128

    def spectra():
        for offset, view in itertools.chain([first], frames):
            for start, spec in _spectra(view, out_dtype):
                yield offset + start, spec

    cols = max(frames_per_block, _BLOCK_FRAMES)
    yield from _power_columns(spectra(), 1 + n_fft // 2, out_dtype, power, cols)


def _power_columns(spectra, n_bins: int, out_dtype: type, power: float, cols: int):
    """Gather ``|spectra| ** power`` into ``(n_bins, <= cols)`` blocks; yield ``(start, block)``."""
    real = np.float32 if out_dtype == np.complex64 else np.float64
    with (_scratch((n_bins, cols), real) as out,
          _scratch((_BLOCK_FRAMES, n_bins), real) as mag):
        first = filled = 0
        for start, spec in spectra:
            m = len(spec)
            if filled + m > cols:
                yield first, out[:, :filled]
                filled = 0
            if filled == 0:
                first = start
            _magnitude(spec, power, out=mag[:m])
            out[:, filled : filled + m] = mag[:m].T
            filled += m
        if filled:
            yield first, out[:, :filled]


def power_to_db(
    S: np.ndarray,
    *,
    ref: float = 1.0,
    amin: float = 1e-10,
    top_db: float | None = 80.0,
) -> np.ndarray:
    """Convert a power spectrogram to decibels: ``10 * log10(max(amin, S) / ref)``.

    Mirrors ``librosa.power_to_db`` (librosa 0.11.0) for a fixed scalar ``ref``.

    Parameters
    ----------
    S : np.ndarray [shape=(..., n_bins, n_frames)], non-negative
        Power spectrogram (e.g. a mel spectrogram).
    ref : float > 0
        The power that maps to 0 dB.
    amin : float > 0
        Floor on ``S`` and ``ref`` before the logarithm.
    top_db : float >= 0 or None
        Clip the output to ``max - top_db`` dB, the maximum taken over the whole array;
        ``None`` disables clipping.

    Returns
    -------
    S_db : np.ndarray [shape=S.shape], in dB, of ``S``'s floating dtype

    Raises
    ------
    ParameterError
        If ``amin <= 0`` or ``top_db < 0``.
    """
    S = np.asarray(S)
    if amin <= 0:
        raise ParameterError(f"amin={amin!r} must be strictly positive")
    if top_db is not None and top_db < 0:
        raise ParameterError(f"top_db={top_db!r} must be non-negative")
    log_spec = 10.0 * np.log10(np.maximum(amin, S))
    log_spec -= 10.0 * np.log10(np.maximum(amin, np.abs(ref)))
    if top_db is not None:
        log_spec = np.maximum(log_spec, log_spec.max() - top_db)
    return log_spec


def fft_frequencies(*, sr: float = 22050, n_fft: int = 2048) -> np.ndarray:
    """Centre frequency of each STFT bin, in Hz (mirrors ``librosa.fft_frequencies``).

    Returns
    -------
    freqs : np.ndarray [shape=(1 + n_fft // 2,)], float64
    """
    return np.fft.rfftfreq(n=n_fft, d=1.0 / sr)


def _first_nonzero(y: np.ndarray) -> int:
    """Index of the first sample of 1-D ``y`` that is not 0.0, or ``len(y)`` if none is.

    Searched block by block, so that a long signal costs no mask of its own length.
    """
    for start in range(0, len(y), _ZERO_BLOCK):
        hits = np.flatnonzero(y[start : start + _ZERO_BLOCK])
        if hits.size:
            return start + int(hits[0])
    return len(y)


def _nonzero_span(y: np.ndarray) -> tuple[int, int] | None:
    """``(start, stop)`` of the samples of 1-D ``y`` from the first non-zero one to the last.

    None if every sample is 0.0 (or there is none).
    """
    start = _first_nonzero(y)
    if start == len(y):
        return None
    return start, len(y) - _first_nonzero(y[::-1])


def trim_zeros(y: np.ndarray) -> np.ndarray:
    """The signal without its leading and trailing runs of samples that are exactly 0.0.

    Digital silence (a pad, an edited or gated clip, VoIP without comfort noise) carries no
    sound; this removes it from the ends, sample-exact: no threshold, no frames, the samples
    kept are those of ``y`` from its first non-zero sample to its last, unchanged (interior
    zeros included). ``-0.0`` counts as zero; NaN does not. A signal with no non-zero sample
    (all zeros, or empty) is returned unchanged: whether it holds sound is for the caller to
    decide (``numpy.trim_zeros`` would return an empty array).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono audio, of any dtype (float32 or float64 audio).

    Returns
    -------
    y_trimmed : np.ndarray [shape=(m,)], ``y``'s dtype
        A view of ``y``: ``y[start:stop]`` with ``y[start]`` and ``y[stop - 1]`` not zero, and
        ``m <= n``; ``y`` itself when it has no non-zero sample.

    Raises
    ------
    ParameterError
        If ``y`` is not 1-D.

    See Also
    --------
    trim_zeros_stream : the same, of a signal that arrives in chunks.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"trim_zeros takes mono audio (1-D), got shape {y.shape}")
    span = _nonzero_span(y)
    return y if span is None else y[span[0] : span[1]]


def trim_zeros_stream(chunks) -> Iterator[np.ndarray]:
    """Yield the pieces of a signal that arrives in chunks, without its leading and trailing zeros.

    The concatenation of the pieces yielded is :func:`trim_zeros` of the concatenation of
    ``chunks``, sample for sample, in memory that does not grow with the signal: leading zeros
    are dropped as they come; a run of zeros after a non-zero sample is held back as a count
    and given out (as pieces of zeros of at most 16384 samples) only when a non-zero sample
    follows it, so that a trailing run is never given out. A signal with no non-zero sample is
    given out whole, as :func:`trim_zeros` leaves it.

    Parameters
    ----------
    chunks : iterable of np.ndarray [shape=(n_i,)]
        Consecutive pieces of one mono signal (empty pieces are allowed), e.g. an
        :class:`ser_edge.audio.AudioStream`.

    Yields
    ------
    y_piece : np.ndarray [shape=(m_i,)]
        Views of the chunks, and pieces of zeros of the dtype of the chunk they precede (of the
        last chunk, for a signal of zeros only).

    Raises
    ------
    ParameterError
        If a chunk is not 1-D (when it is read).
    """
    held = 0  # zeros seen and not given out yet
    dtype = None
    heard = False  # whether a non-zero sample has been seen
    for chunk in chunks:
        chunk = np.asarray(chunk)
        if chunk.ndim != 1:
            raise ParameterError(f"audio chunks must be 1-D, got shape {chunk.shape}")
        span = _nonzero_span(chunk)
        if span is None:
            held += len(chunk)
            dtype = chunk.dtype if dtype is None or len(chunk) else dtype
            continue
        start, stop = span
        if heard:  # the zeros between two sounds are the signal's
            yield from _zeros(held, chunk.dtype)
            yield chunk[:stop]
        else:
            yield chunk[start:stop]
        heard = True
        held = len(chunk) - stop
    if not heard and held:
        yield from _zeros(held, dtype)


def trim_quiet_threshold(peak: float, top_db: float) -> float:
    """The level under which :func:`trim_quiet` trims: ``top_db`` dB under the peak sample.

    Parameters
    ----------
    peak : float >= 0
        The signal's largest absolute sample value.
    top_db : float > 0
        How far under ``peak`` the threshold lies, in dB.

    Returns
    -------
    threshold : float
        ``peak * 10 ** (-top_db / 20)``, in the samples' units (full scale 1.0).
    """
    return float(peak) * 10.0 ** (-float(top_db) / 20.0)


def trim_quiet(y: np.ndarray, top_db: float) -> np.ndarray:
    """The signal from its first sample loud relative to its peak to its last one.

    ``librosa.effects.trim`` with ``ref=np.max``, but sample-exact: a sample is loud when its
    magnitude is above :func:`trim_quiet_threshold` (``top_db`` dB under the largest magnitude,
    computed in float64 and rounded to ``y``'s dtype),
    and ``y[start:stop]`` spans the first loud sample to the last, interior samples unchanged.
    librosa compares frames' RMS in dB, so its cut falls on the frame grid, and what is added
    around a clip moves the grid under the rest; here the cut is on the first loud sample, so
    digital silence, a pad of noise under the threshold, or a gate that leaves the loud samples
    alone change nothing that is kept: the analysis frames start on the same sample. The
    threshold follows the peak, so a gain does not move the cut. A signal with no sample above
    the threshold (all zeros, or empty) is returned unchanged.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono audio, float.
    top_db : float > 0
        The threshold under the peak, in dB (``FeatureConfig.trim_top_db``).

    Returns
    -------
    y_trimmed : np.ndarray [shape=(m,)], ``y``'s dtype
        A view of ``y``; ``y`` itself when no sample is above the threshold.

    Raises
    ------
    ParameterError
        If ``y`` is not 1-D or ``top_db`` is not > 0.

    See Also
    --------
    trim_zeros : the same with the threshold at 0.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"trim_quiet takes mono audio (1-D), got shape {y.shape}")
    if not top_db > 0:
        raise ParameterError(f"trim_quiet's top_db must be > 0, got {top_db!r}")
    if not y.size:
        return y
    a = np.abs(y)
    # The threshold in float64, rounded to the samples' dtype: they are compared in it.
    threshold = np.asarray(trim_quiet_threshold(a.max(), top_db)).astype(a.dtype)
    loud = np.flatnonzero(a > threshold)
    return y if not loud.size else y[loud[0] : loud[-1] + 1]


def align_peak(y: np.ndarray, hop_length: int) -> np.ndarray:
    """The signal from the sample that puts its loudest one on the frame grid.

    Drops the first ``argmax(|y|) mod hop_length`` samples (fewer than one hop), so that with
    frames every ``hop_length`` samples from the first kept one, a frame starts on the loudest
    sample (the first of equal ones). Where the frames fall then follows the voice, not the
    file: digital silence, a quiet pad, a cut at either end or a gate that leaves the loudest
    sample alone do not move the frames over the voice, which otherwise shift by up to half a
    hop and change the features (a pad of 0.6 s at 16 kHz and a 256-sample hop moves them by
    128 samples). A gain does not move the loudest sample. An all-zero or empty signal is
    returned unchanged.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono audio, float.
    hop_length : int > 0
        The analysis hop, in samples (``FeatureConfig.hop_length``).

    Returns
    -------
    y_aligned : np.ndarray [shape=(n - offset,)], ``y``'s dtype
        A view of ``y`` without its first ``argmax(|y|) mod hop_length`` samples.

    Raises
    ------
    ParameterError
        If ``y`` is not 1-D or ``hop_length`` is not a positive integer.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"align_peak takes mono audio (1-D), got shape {y.shape}")
    if isinstance(hop_length, bool) or not isinstance(hop_length, (int, np.integer)) \
            or hop_length <= 0:
        raise ParameterError(f"align_peak's hop_length must be a positive integer, "
                             f"got {hop_length!r}")
    if not y.size:
        return y
    return y[int(np.argmax(np.abs(y))) % hop_length:]


def _zeros(n: int, dtype: np.dtype) -> Iterator[np.ndarray]:
    """``n`` zeros of ``dtype``, in pieces of at most ``_ZERO_BLOCK``."""
    for start in range(0, n, _ZERO_BLOCK):
        yield np.zeros(min(_ZERO_BLOCK, n - start), dtype=dtype)
