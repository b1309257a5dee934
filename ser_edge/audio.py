"""Audio loading and validation: soundfile decoding, mean downmix, soxr resampling.

:func:`load` returns what ``librosa.load`` (librosa 0.11.0) returns on the same file, sample for
sample: libsndfile decodes to float32, channels are averaged, and ``soxr`` resamples at librosa's
default quality (``soxr_hq``) to librosa's output length ``ceil(n * sr / sr_native)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError

__all__ = ["load", "load_with_rate", "resample", "valid_audio", "AudioStream", "MIN_SR", "MAX_SR"]

#: The range of native sample rates accepted, in Hz: below it there is no speech band to analyse,
#: above it no real recorder.
MIN_SR, MAX_SR = 1000, 768_000


def _name(path: object) -> str:
    return os.fspath(path) if isinstance(path, (str, os.PathLike)) else repr(path)


def valid_audio(
    y: np.ndarray,
    *,
    path: str | os.PathLike | None = None,
    min_samples: int = 1,
    allow_silence: bool = True,
) -> None:
    """Check that ``y`` is audio the features can use; raise :class:`AudioError` if not.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (n_channels, n)]
        Audio time series.
    path : str or os.PathLike or None
        The file ``y`` came from, named in the message.
    min_samples : int >= 1
        Fewest samples accepted (e.g. ``n_fft``, one analysis frame).
    allow_silence : bool
        Accept digital silence (every sample zero).

    Raises
    ------
    AudioError
        If ``y`` is not floating-point, not 1-D or 2-D, has fewer than ``min_samples`` samples,
        has NaN or infinite samples, or (``allow_silence=False``) is all zeros.
    """
    where = f"{_name(path)}: " if path is not None else ""
    if not isinstance(y, np.ndarray) or not np.issubdtype(y.dtype, np.floating):
        kind = getattr(y, "dtype", type(y).__name__)
        raise AudioError(f"{where}audio must be a floating-point numpy array, got {kind}")
    if y.ndim not in (1, 2):
        raise AudioError(f"{where}audio must be 1-D or (channels, samples), got shape {y.shape}")
    n = y.shape[-1]
    if n == 0:
        raise AudioError(f"{where}no audio samples")
    if n < min_samples:
        raise AudioError(f"{where}too short: {n} samples, at least {min_samples} needed")
    if not np.isfinite(y).all():
        raise AudioError(f"{where}audio has NaN or infinite samples")
    if not allow_silence and not y.any():
        raise AudioError(f"{where}digital silence: every sample is zero")


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis with soxr at ``soxr_hq``, to ``ceil(n * target_sr / orig_sr)``.

    Mirrors ``librosa.resample(y, orig_sr=..., target_sr=..., res_type="soxr_hq")`` (librosa
    0.11.0): each channel separately, then trimmed or zero-padded to librosa's length.

    Parameters
    ----------
    y : np.ndarray [shape=(..., n)], float32 or float64
        Audio time series.
    orig_sr, target_sr : int > 0
        Sample rates, in Hz.

    Returns
    -------
    y_hat : np.ndarray [shape=(..., ceil(n * target_sr / orig_sr))], of ``y``'s dtype
    """
    if orig_sr == target_sr:
        return y
    n_samples = int(np.ceil(y.shape[-1] * (float(target_sr) / orig_sr)))
    flat = y.reshape(-1, y.shape[-1])
    out = np.zeros((flat.shape[0], n_samples), dtype=y.dtype)
    for i, channel in enumerate(flat):
        y_hat = soxr.resample(channel, orig_sr, target_sr, quality="soxr_hq")[:n_samples]
        out[i, : len(y_hat)] = y_hat
    return out.reshape(y.shape[:-1] + (n_samples,))


def load(
    path: str | os.PathLike,
    *,
    sr: int | None = 22050,
    mono: bool = True,
) -> tuple[np.ndarray, int]:
    """Load an audio file as float32, downmixed and resampled as ``librosa.load`` does.

    Mirrors ``librosa.load(path, sr=sr, mono=mono)`` (librosa 0.11.0, soundfile back end,
    ``res_type="soxr_hq"``). Reads WAV, FLAC, OGG/Vorbis, Opus, MP3 and whatever else the
    installed libsndfile reads. Long mono audio that is resampled is decoded and resampled block
    by block, so the file at its own rate is never held whole.

    Parameters
    ----------
    path : str or os.PathLike
        The audio file.
    sr : int > 0 or None
        Target sample rate, in Hz; ``None`` keeps the file's own rate.
    mono : bool
        Average the channels into one.

    Returns
    -------
    y : np.ndarray [shape=(n,) or (n_channels, n)], float32
        Audio samples, nominally in [-1, 1].
    sr : int
        Sample rate of ``y``, in Hz.

    Raises
    ------
    AudioError
        If the file is missing, empty, unreadable, not audio, truncated so that libsndfile cannot
        decode it, has no samples or NaN/infinite samples, or its sample rate is outside
        [MIN_SR, MAX_SR] Hz. The message names the file and the problem on one line.
    """
    y, sr, _ = load_with_rate(path, sr=sr, mono=mono)
    return y, sr


def load_with_rate(
    path: str | os.PathLike,
    *,
    sr: int | None = 22050,
    mono: bool = True,
) -> tuple[np.ndarray, int, int]:
    """:func:`load`, also returning the file's own sample rate.

    Returns
    -------
    y : np.ndarray [shape=(n,) or (n_channels, n)], float32
        As :func:`load`.
    sr : int
        Sample rate of ``y``, in Hz.
    sr_native : int
        Sample rate of the file, in Hz.

    Raises
    ------
    AudioError
        As :func:`load`.
    """
    with AudioStream(path, sr=sr) as stream:
        return stream.read(mono=mono), stream.sr, stream.sr_native


_DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError)


@contextmanager
def _decoding(name: str) -> Iterator[None]:
    """Turn libsndfile's errors into a one-line :class:`AudioError` that names the file."""
    try:
        yield
    except AudioError:
        raise
    except _DECODE_ERRORS as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise AudioError(f"{name}: cannot decode as audio ({reason})") from None


def _check_file(path: str | os.PathLike, sr: int | None) -> tuple[str, Path]:
    """The file's name for messages and its path; :class:`AudioError` if it cannot be audio."""
    name = _name(path)
    file = Path(path)
    if not file.exists():
        raise AudioError(f"{name}: no such file")
    if file.is_dir():
        raise AudioError(f"{name}: is a folder, not an audio file")
    if file.stat().st_size == 0:
        raise AudioError(f"{name}: empty file (0 bytes)")
    if sr is not None and (isinstance(sr, bool) or not isinstance(sr, (int, np.integer))
                           or sr <= 0):
        raise AudioError(f"{name}: target sample rate must be a positive integer, got {sr!r}")
    return name, file


def _check_format(f: sf.SoundFile, name: str) -> int:
    """The open file's sample rate, in Hz; :class:`AudioError` if we do not take it."""
    if f.channels < 1:
        raise AudioError(f"{name}: no audio channels")
    if not MIN_SR <= f.samplerate <= MAX_SR:
        raise AudioError(
            f"{name}: sample rate {f.samplerate} Hz is outside the supported {MIN_SR}-{MAX_SR} Hz"
        )
    return f.samplerate


# Frames decoded at a time when decoding and resampling stream: ~1.4 s at 48 kHz; files longer
# than _STREAM_MIN_FRAMES (~11 s at 48 kHz) stream.
_BLOCK_SAMPLES = 1 << 16
_STREAM_MIN_FRAMES = 1 << 19


# Output samples held back while streaming, until the input's end fixes librosa's length.
_HOLD_BACK = 4096


def _mono_chunks(f: sf.SoundFile, name: str, sr: int):
    """Decode, downmix and resample block by block: yield float32 pieces of :func:`load`'s result.

    The whole file at its own rate is never held: each block is averaged over its channels and
    fed to a ``soxr.ResampleStream`` at ``soxr_hq``, whose output equals ``soxr.resample`` on the
    whole signal sample for sample. The last few thousand output samples are held back until the
    input ends, then cut or zero-padded to librosa's length ``ceil(n * sr / sr_native)``.
    """
    sr_native = f.samplerate
    stream = (soxr.ResampleStream(sr_native, sr, 1, dtype="float32", quality="soxr_hq")
              if sr != sr_native else None)
    held = np.zeros(0, dtype=np.float32)
    n_in = emitted = 0
    for block in f.blocks(blocksize=_BLOCK_SAMPLES, dtype="float32", always_2d=True):
        block = block.T  # (channels, m), the layout librosa averages over
        if not np.isfinite(block).all():
            raise AudioError(f"{name}: audio has NaN or infinite samples")
        n_in += block.shape[-1]
        mono = block[0] if len(block) == 1 else np.mean(block, axis=0)
        if stream is None:
            yield mono
            continue
        held = np.concatenate((held, stream.resample_chunk(mono)))
        if len(held) > _HOLD_BACK:
            yield held[:-_HOLD_BACK]
            emitted += len(held) - _HOLD_BACK
            held = held[-_HOLD_BACK:]
    if stream is None:
        return
    held = np.concatenate((held, stream.resample_chunk(np.zeros(0, np.float32), last=True)))
    n_out = int(np.ceil(n_in * (float(sr) / sr_native)))
    if emitted > n_out:  # soxr's output overshot librosa's length by more than the hold-back
        raise AudioError(f"{name}: resampling produced {emitted} samples, more than {n_out}")
    tail = held[: n_out - emitted]
    yield np.concatenate((tail, np.zeros(n_out - emitted - len(tail), np.float32)))


class AudioStream:
    """An open audio file, read whole (:meth:`read`) or piece by piece (iterating), again and again.

    Iterating decodes, downmixes and resamples the file block by block and yields 1-D float32
    pieces whose concatenation equals ``load(path, sr=sr)[0]`` sample for sample; memory is one
    block, whatever the file's length. Two passes over a long file (features whose dB scale needs
    the loudest frame first) cost two decodings, not a copy of the audio. Use it as a context
    manager, or call :meth:`close`.

    Parameters
    ----------
    path : str or os.PathLike
        The audio file.
    sr : int > 0 or None
        Target sample rate, in Hz; ``None`` keeps the file's own rate.

    Attributes
    ----------
    name : str
        The path, as error messages name it.
    sr, sr_native : int
        The target rate and the file's own rate, in Hz.
    n_frames_native : int
        Frames in the file at its own rate, as its header says.
    duration : float
        ``n_frames_native / sr_native``, in seconds.

    Raises
    ------
    AudioError
        At construction, as :func:`load` for a missing, empty or non-audio file or an
        unsupported sample rate; while reading, for undecodable blocks or NaN/infinite samples.
    """

    def __init__(self, path: str | os.PathLike, *, sr: int | None):
        self.name, file = _check_file(path, sr)
        with _decoding(self.name):
            self._f = sf.SoundFile(file)
        try:
            self.sr_native = _check_format(self._f, self.name)
        except AudioError:
            self._f.close()
            raise
        self.n_frames_native = int(self._f.frames)
        self.sr = self.sr_native if sr is None else int(sr)
        self.duration = self.n_frames_native / self.sr_native

    def read(self, *, mono: bool = True) -> np.ndarray:
        """The whole file, as :func:`load` returns it.

        Parameters
        ----------
        mono : bool
            Average the channels into one.

        Returns
        -------
        y : np.ndarray [shape=(n,) or (n_channels, n)], float32
            At ``sr`` Hz.

        Raises
        ------
        AudioError
            As :func:`load`.
        """
        f, name = self._f, self.name
        with _decoding(name):
            f.seek(0)
            # Long files stream; short ones are read at once (streaming costs ~0.2 ms a clip).
            if mono and self.sr != self.sr_native and f.frames > _STREAM_MIN_FRAMES:
                y = np.concatenate(list(_mono_chunks(f, name, self.sr)))
                if not len(y):
                    raise AudioError(f"{name}: no audio samples")
                return y
            y = f.read(frames=-1, dtype="float32", always_2d=False).T
        valid_audio(y, path=name)
        if mono and y.ndim > 1:
            y = np.mean(y, axis=tuple(range(y.ndim - 1)))
        return resample(y, orig_sr=self.sr_native, target_sr=self.sr)

    def __iter__(self) -> Iterator[np.ndarray]:
        with _decoding(self.name):
            self._f.seek(0)
            yield from _mono_chunks(self._f, self.name, self.sr)

    def close(self) -> None:
        """Close the file."""
        self._f.close()

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AudioStream({self.name!r}, sr={self.sr})"
