"""Audio loading and validation: soundfile decoding, mean downmix, soxr resampling.

:func:`load` returns what ``librosa.load`` (librosa 0.11.0) returns on the same file, sample for
sample: libsndfile decodes to float32, channels are averaged, and ``soxr`` resamples at librosa's
default quality (``soxr_hq``) to librosa's output length ``ceil(n * sr / sr_native)``.

A source is a path (``str``, ``bytes`` or ``os.PathLike``; any bytes the file system takes, UTF-8
or not) or a binary file object (an open file, :class:`io.BytesIO`, standard input's
``sys.stdin.buffer``, a socket's ``makefile("rb")``). Sources that cannot seek (pipes, sockets,
FIFOs) are first copied to a temporary file, in memory up to 16 MiB and on disk past that, so
memory stays bounded whatever their length. Decoding never trusts the length a header claims: it
reads block by block and stops where the data do, so a header claiming days of audio costs no
more memory than the real data.
"""

from __future__ import annotations

import io
import os
import re
import stat
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Union

import numpy as np
import soundfile as sf
import soxr

from ._names import display_name, source_name
from .errors import AudioError, AudioWarning, ParameterError

__all__ = [
    "load",
    "load_with_rate",
    "resample",
    "valid_audio",
    "require_sound",
    "channels_first",
    "source_name",
    "display_name",
    "AudioStream",
    "Source",
    "MIN_SR",
    "MAX_SR",
    "MAX_PEAK",
    "MIN_PEAK",
    "MAX_CHANNELS_LAST",
    "MAX_STREAM_BYTES",
]

#: What the loaders read: a path (str, bytes or os.PathLike) or a binary file object.
Source = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]", IO[bytes]]

#: The range of native sample rates accepted, in Hz: below it there is no speech band to analyse,
#: above it no real recorder.
MIN_SR, MAX_SR = 1000, 768_000

#: Largest sample magnitude accepted. Audio is nominally within [-1, 1]; integer-scaled floats
#: (±32768, ±2**31) still pass, but past this the power spectrum (a sum of ``n_fft`` squared
#: samples, then of mel bands) would overflow float32, the precision the features use.
MAX_PEAK = 1e12

#: Smallest peak sample magnitude of audio to classify: -100 dBFS, a third of a 16-bit step.
#: Quieter than any recorder's noise floor; the float32 features start to lose such a signal
#: near 3e-7 (a RAVDESS clip scaled to a peak of 1e-7 changes its probabilities by 0.03, to 1e-8
#: its label), and at 1e-20 they overflow.
MIN_PEAK = 1e-5

#: A 2-D signal of shape ``(n, c)`` with ``c`` at most this and ``n > c`` is taken as
#: (samples, channels), the layout ``soundfile.read`` returns.
MAX_CHANNELS_LAST = 8

#: Most bytes read from a source that cannot seek (a pipe, standard input): about three hours of
#: 48 kHz stereo 16-bit WAV.
MAX_STREAM_BYTES = 2 << 30

# Bytes of a stream held in memory before the copy moves to a temporary file.
_SPOOL_MEMORY = 16 << 20

# -- names ---------------------------------------------------------------------------------------


def _name(path: object) -> str:
    return display_name(path)


# -- checks on samples ---------------------------------------------------------------------------


def valid_audio(
    y: np.ndarray,
    *,
    path: str | os.PathLike | None = None,
    min_samples: int = 1,
    allow_silence: bool = True,
    name: str | None = None,
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
        Accept digital silence (every sample zero), and audio too quiet to analyse (peak
        magnitude below :data:`MIN_PEAK`).
    name : str or None
        The source as messages already show it (:func:`display_name` of it, as
        :attr:`AudioStream.name`); used instead of ``path``. A shown name is not escaped twice.

    Raises
    ------
    AudioError
        If ``y`` is not floating-point, not 1-D or 2-D, has fewer than ``min_samples`` samples,
        has NaN or infinite samples, has samples larger than :data:`MAX_PEAK` in magnitude
        (``"samples overflow float32"``: the features, computed in float32, would overflow), or
        (``allow_silence=False``) is all zeros or peaks below :data:`MIN_PEAK` (``"too
        quiet"``).
    """
    where = (f"{name}: " if name is not None else f"{_name(path)}: " if path is not None
             else "")
    if not isinstance(y, np.ndarray) or not np.issubdtype(y.dtype, np.floating):
        kind = getattr(y, "dtype", type(y).__name__)
        raise AudioError(f"{where}audio must be a floating-point numpy array, got {kind}")
    if y.ndim not in (1, 2):
        raise AudioError(f"{where}audio must be 1-D or (channels, samples), got shape {y.shape}")
    n = y.shape[-1]
    if y.size == 0:  # (0, n) too: no channel
        raise AudioError(f"{where}no audio samples")
    if n < min_samples:
        raise AudioError(f"{where}too short: {n} samples, at least {min_samples} needed")
    peak = _check_peak(y, where)
    if not allow_silence:
        require_sound(peak, where)


def require_sound(peak: float, where: str = "") -> None:
    """Refuse a signal whose peak magnitude is zero or below :data:`MIN_PEAK`.

    Parameters
    ----------
    peak : float >= 0
        The signal's largest sample magnitude.
    where : str
        What the message starts with (``"FILE: "``).

    Raises
    ------
    AudioError
        ``digital silence`` if ``peak`` is 0, ``too quiet`` if below :data:`MIN_PEAK`.
    """
    if peak == 0:
        raise AudioError(f"{where}digital silence: every sample is zero")
    if peak < MIN_PEAK:
        raise AudioError(f"{where}too quiet: peak magnitude {peak:.3g} ("
                         f"{20 * np.log10(peak):.0f} dBFS), below {MIN_PEAK:.0e} (-100 dBFS): "
                         "below any recorder's noise floor, the features cannot be trusted")


def _check_peak(y: np.ndarray, where: str) -> float:
    """NaN, infinite, float32-overflowing or absurdly large samples: one AudioError, no warning.

    Returns the peak magnitude.
    """
    peak = max(float(y.max()), -float(y.min()))  # NaN propagates; no temporary |y| array
    if not np.isfinite(peak):
        raise AudioError(f"{where}audio has NaN or infinite samples")
    if peak > MAX_PEAK:
        raise AudioError(f"{where}samples overflow float32 (peak magnitude {peak:.3g}; audio is "
                         f"nominally within [-1, 1], and past {MAX_PEAK:.0e} its power spectrum "
                         "exceeds float32's range)")
    return peak


def channels_first(y: np.ndarray, *, path: str | os.PathLike | None = None) -> np.ndarray:
    """Return a 2-D signal as ``(n_channels, n_samples)``, accepting ``(n_samples, n_channels)``.

    ``librosa`` (and ser-edge) put channels first; ``soundfile.read`` returns them last. A
    signal of shape ``(n, c)`` with ``n > c`` and ``c <= MAX_CHANNELS_LAST`` (8) can only be
    ``c`` channels of ``n`` samples, and is transposed; one with ``a <= b`` is taken as ``a``
    channels of ``b`` samples, as before. Other arrays are returned unchanged.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), (n_channels, n) or (n, n_channels)]
        Audio time series.
    path : str or os.PathLike or None
        Named in the message.

    Returns
    -------
    y : np.ndarray [shape=(n,) or (n_channels, n)]
        A view of ``y``.

    Raises
    ------
    AudioError
        If ``y`` is 2-D with more rows than columns and more than ``MAX_CHANNELS_LAST`` columns:
        neither axis can be told to be the channels.
    """
    if not isinstance(y, np.ndarray) or y.ndim != 2:
        return y
    a, b = y.shape
    if a <= b:
        return y
    if b <= MAX_CHANNELS_LAST:
        return y.T
    where = f"{_name(path)}: " if path is not None else ""
    raise AudioError(
        f"{where}audio of shape {y.shape}: cannot tell channels from samples; pass (channels, "
        f"samples), or (samples, channels) with at most {MAX_CHANNELS_LAST} channels"
    )


# -- resampling ----------------------------------------------------------------------------------


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


# -- loading -------------------------------------------------------------------------------------


def load(
    path: Source,
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
    path : str, bytes, os.PathLike or binary file object
        The audio file, or a file object open for reading in binary mode (read from its current
        position; one that cannot seek is copied to a temporary file first).
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
        If the file is missing, a folder, unreadable (permission denied), empty, not audio, an
        MP3 that cannot be decoded, truncated or corrupt so that libsndfile stops decoding, has
        no samples or NaN, infinite or too large samples, or its sample rate is outside
        [MIN_SR, MAX_SR] Hz. The message names the file and the problem on one line.
    ParameterError
        If ``path`` is neither a path nor a binary file object.

    Warns
    -----
    AudioWarning
        If the file holds less audio than its header says (a WAV or AIFF cut short, an MP3
        whose length header counts more frames): the audio that is there is returned.
    """
    y, sr, _ = load_with_rate(path, sr=sr, mono=mono)
    return y, sr


def load_with_rate(
    path: Source,
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
    AudioError, ParameterError
        As :func:`load`.
    """
    with AudioStream(path, sr=sr) as stream:
        return stream.read(mono=mono), stream.sr, stream.sr_native


_DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError)


def _reason(exc: BaseException) -> str:
    # libsndfile's own words, without soundfile's "Error opening <object at 0x...>: " prefix.
    text = exc.error_string if isinstance(exc, sf.LibsndfileError) else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def _check_rate(name: str, sr: object) -> None:
    if sr is not None and (isinstance(sr, bool) or not isinstance(sr, (int, np.integer))
                           or sr <= 0):
        raise AudioError(f"{name}: target sample rate must be a positive integer, got {sr!r}")


def _open_path(path: str | bytes | os.PathLike, name: str) -> tuple[Any, Any]:
    """Open a path: ``(what soundfile opens, what to close)``; AudioError if it cannot be audio.

    Regular files are handed to libsndfile as a file descriptor (decoded in C, no Python in the
    loop); anything else that opens (a FIFO, ``/dev/stdin``, a process substitution) is read as
    a stream.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if os.path.islink(path):
            raise AudioError(f"{name}: broken symbolic link (its target does not exist)") from None
        raise AudioError(f"{name}: no such file") from None
    except PermissionError:
        raise AudioError(f"{name}: permission denied") from None
    except IsADirectoryError:
        raise AudioError(f"{name}: is a folder, not an audio file") from None
    except (OSError, ValueError) as exc:  # ELOOP, ENAMETOOLONG, ENOTDIR, embedded NUL, ...
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _reason(exc)
        raise AudioError(f"{name}: cannot open ({reason})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise AudioError(f"{name}: is a folder, not an audio file")
        if stat.S_ISREG(st.st_mode):
            if st.st_size == 0:
                raise AudioError(f"{name}: empty file (0 bytes)")
            return fd, fd
        with os.fdopen(fd, "rb", closefd=False) as stream:
            spooled = _spool(stream, name)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return spooled, spooled


def _open_file_object(f: Any, name: str) -> tuple[Any, Any]:
    """Check a file object: ``(what soundfile opens, what to close, or None)``."""
    if isinstance(f, io.TextIOBase):
        raise ParameterError(f"{name}: a text-mode file object; open the file in binary mode "
                             "('rb'), or pass sys.stdin.buffer rather than sys.stdin")
    try:
        seekable = bool(f.seekable()) if callable(getattr(f, "seekable", None)) else False
        if seekable and callable(getattr(f, "tell", None)):
            start = f.tell()
            f.seek(0, io.SEEK_END)
            size = f.tell() - start
            f.seek(start)
            if size <= 0:
                raise AudioError(f"{name}: empty input (0 bytes)")
            if start == 0:
                return f, None
        spooled = _spool(f, name)  # libsndfile reads from offset 0: copy what is left
    except (AudioError, ParameterError):
        raise
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _reason(exc)
        raise AudioError(f"{name}: cannot read ({reason})") from None
    return spooled, spooled


def _spool(stream: Any, name: str) -> Any:
    """Copy a stream to a seekable temporary file: in memory up to 16 MiB, then on disk."""
    out = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)
    n = 0
    try:
        while True:
            chunk = stream.read(1 << 20)
            if not chunk:
                break
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise ParameterError(f"{name}: the file object gives {type(chunk).__name__}, "
                                     "not bytes: open it in binary mode ('rb')")
            n += len(chunk)
            if n > MAX_STREAM_BYTES:
                raise AudioError(f"{name}: input longer than {MAX_STREAM_BYTES >> 20} MiB")
            out.write(chunk)
        if n == 0:
            raise AudioError(f"{name}: empty input (0 bytes)")
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


def _open_source(source: object, sr: int | None) -> tuple[str, Any, Any]:
    """``(display name, what soundfile opens, what to close or None)`` for any source."""
    if isinstance(source, (str, bytes, os.PathLike)):
        name = display_name(source)
        _check_rate(name, sr)
        opened, owned = _open_path(source, name)
        return name, opened, owned
    if isinstance(source, (np.ndarray, list, tuple)):
        raise ParameterError(
            f"an audio source is a path or a binary file object, got {type(source).__name__} "
            "(for samples in memory use Classifier.predict(y, sr))"
        )
    if not callable(getattr(source, "read", None)):
        raise ParameterError(
            "an audio source is a path (str, bytes, os.PathLike) or a binary file object, "
            f"got {type(source).__name__}"
        )
    name = display_name(source)
    _check_rate(name, sr)
    opened, owned = _open_file_object(source, name)
    return name, opened, owned


def _close(owned: Any) -> None:
    if owned is None:
        return
    if isinstance(owned, int):
        os.close(owned)
    else:
        owned.close()


# -- MP3 decoder chatter -------------------------------------------------------------------------

# mpg123, libsndfile's MP3 decoder, prints its complaints about damaged frames to file
# descriptor 2 itself. While an MP3 is opened or decoded, descriptor 2 points at a temporary file
# instead, and what it says ends up in the error message. One lock: two threads must not swap
# descriptor 2 at once.
_STDERR_LOCK = threading.Lock()
_MP3_SUFFIXES = (".mp3", ".mp2", ".mp1", ".mpga", ".mpeg")


def _looks_like_mp3(head: bytes, name: str) -> bool:
    if name.lower().endswith(_MP3_SUFFIXES) or head.startswith(b"ID3"):
        return True
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0


def _head(opened: Any) -> bytes:
    """The first bytes of an opened source, its position unchanged."""
    try:
        if isinstance(opened, int):
            return os.pread(opened, 4, 0)
        where = opened.tell()
        head = opened.read(4)
        opened.seek(where)
        return bytes(head or b"")
    except (OSError, ValueError, AttributeError):
        return b""


@contextmanager
def _captured_stderr(lines: list[str], enabled: bool = True) -> Iterator[None]:
    """Send what C code writes to descriptor 2 into ``lines`` instead of the terminal."""
    if not enabled:
        yield
        return
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass
        try:
            saved = os.dup(2)
        except OSError:  # no descriptor 2: nothing would be shown anyway
            yield
            return
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read(1 << 16).decode("utf-8", "replace")
                lines.extend(line.strip() for line in text.splitlines() if line.strip())


def _mpg123_reason(lines: list[str]) -> str | None:
    """mpg123's first error, else its first complaint, without source location or 'Note:'."""
    errors = [line for line in lines if "error" in line.lower()]
    notes = [line for line in lines if "illegal" in line.lower() or "bad" in line.lower()]
    for line in errors or notes:
        line = re.sub(r"^\[[^\]]*\]\s*", "", line)
        return re.sub(r"^(?:error|note|warning):\s*", "", line, flags=re.IGNORECASE)
    return None


# -- streaming -----------------------------------------------------------------------------------

# Frames decoded at a time when decoding and resampling stream: ~1.4 s at 48 kHz; files longer
# than _STREAM_MIN_FRAMES (~11 s at 48 kHz) stream.
_BLOCK_SAMPLES = 1 << 16
_STREAM_MIN_FRAMES = 1 << 19

# A whole-file read allocates its output at once only up to this many samples (16 MiB of
# float32), as the header announces them; past that it grows block by block with the real data.
_PREALLOC_SAMPLES = 1 << 22

# Output samples held back while streaming, until the input's end fixes librosa's length.
_HOLD_BACK = 4096

# libsndfile's log line for a data chunk longer than the file: "data : 32000 (should be 19956)".
_SHORT_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)

# An MP3's frame count comes from its Xing/LAME/VBRI header, or is estimated from the file's
# size and bit rate; only a shortfall past one frame of slack and 1 % is reported.
_MP3_SLACK_FRAMES = 2 * 1152


def _mono_chunks(blocks: Iterator[np.ndarray], name: str, sr_native: int, sr: int):
    """Downmix and resample decoded blocks: yield float32 pieces of :func:`load`'s result.

    The whole file at its own rate is never held: each ``(m, channels)`` block is averaged over
    its channels and fed to a ``soxr.ResampleStream`` at ``soxr_hq``, whose output equals
    ``soxr.resample`` on the whole signal sample for sample. The last few thousand output samples
    are held back until the input ends, then cut or zero-padded to librosa's length
    ``ceil(n * sr / sr_native)``.
    """
    stream = (soxr.ResampleStream(sr_native, sr, 1, dtype="float32", quality="soxr_hq")
              if sr != sr_native else None)
    held = np.zeros(0, dtype=np.float32)
    n_in = emitted = 0
    for block in blocks:
        block = block.T  # (channels, m), the layout librosa averages over
        _check_peak(block, f"{name}: ")
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
    """An open audio source, read whole (:meth:`read`) or piece by piece (iterating), repeatedly.

    Iterating decodes, downmixes and resamples the source block by block and yields 1-D float32
    pieces whose concatenation equals ``load(path, sr=sr)[0]`` sample for sample; memory is one
    block, whatever the file's length. Two passes over a long file (features whose dB scale needs
    the loudest frame first) cost two decodings, not a copy of the audio. Use it as a context
    manager, or call :meth:`close`.

    Parameters
    ----------
    path : str, bytes, os.PathLike or binary file object
        The audio source, as :func:`load` takes it. A file object is not closed.
    sr : int > 0 or None
        Target sample rate, in Hz; ``None`` keeps the file's own rate.

    Attributes
    ----------
    name : str
        The source, as error messages name it (:func:`display_name`).
    sr, sr_native : int
        The target rate and the file's own rate, in Hz.
    n_frames_native : int
        Frames in the file at its own rate, as its header says (possibly more than it holds).
    duration : float
        ``n_frames_native / sr_native``, in seconds.

    Raises
    ------
    AudioError
        At construction, as :func:`load` for a missing, unreadable, empty or non-audio source or
        an unsupported sample rate; while reading, for undecodable blocks or NaN, infinite or
        too large samples.
    ParameterError
        If ``path`` is neither a path nor a binary file object.

    Warns
    -----
    AudioWarning
        After a complete pass, if the file held less audio than its header says or damaged MP3
        frames were skipped (once per stream).
    """

    def __init__(self, path: Source, *, sr: int | None):
        self.name, opened, self._owned = _open_source(path, sr)
        self._chatter: list[str] = []
        self._mp3 = _looks_like_mp3(_head(opened), self.name)
        self._warned = False
        self._at_start = True  # no seek before the first pass: it fails on some damaged files
        try:
            with self._decoding(), _captured_stderr(self._chatter, self._mp3):
                self._f = (sf.SoundFile(opened, closefd=False) if isinstance(opened, int)
                           else sf.SoundFile(opened))
        except BaseException:
            _close(self._owned)
            raise
        try:
            self._mp3 = self._mp3 or self._f.format == "MP3"
            self.sr_native = self._check_format()
        except BaseException:
            self.close()
            raise
        self.n_frames_native = max(int(self._f.frames), 0)
        self.sr = self.sr_native if sr is None else int(sr)
        self.duration = self.n_frames_native / self.sr_native

    # -- errors --

    @contextmanager
    def _decoding(self, at: int | None = None) -> Iterator[None]:
        """Turn libsndfile's errors into a one-line :class:`AudioError` that names the file."""
        try:
            yield
        except (AudioError, ParameterError):
            raise
        except _DECODE_ERRORS as exc:
            raise self._decode_error(exc, at) from None

    def _decode_error(self, exc: BaseException, at: int | None) -> AudioError:
        name, reason = self.name, _reason(exc)
        if self._mp3:
            said = _mpg123_reason(self._chatter)
            reason = f"mpg123: {said}" if said else f"libsndfile: {reason}"
            what = "cannot decode the MP3"
        else:
            what = "cannot decode as audio"
        if at is not None and at < getattr(self, "n_frames_native", 0):
            sr = self.sr_native
            return AudioError(
                f"{name}: {what}: truncated or corrupt, decoding failed past {at / sr:.2f} s of "
                f"the {self.n_frames_native / sr:.2f} s its header says ({reason})"
            )
        return AudioError(f"{name}: {what} ({reason})")

    def _check_format(self) -> int:
        """The open file's sample rate, in Hz; :class:`AudioError` if we do not take it."""
        f, name = self._f, self.name
        if f.channels < 1:
            raise AudioError(f"{name}: no audio channels")
        if not MIN_SR <= f.samplerate <= MAX_SR:
            raise AudioError(f"{name}: sample rate {f.samplerate} Hz is outside the supported "
                             f"{MIN_SR}-{MAX_SR} Hz")
        return f.samplerate

    def _check_length(self, n: int) -> None:
        """After a complete pass, warn once if it was short or skipped damaged MP3 frames.

        An MP3 so damaged that less than half of it decoded is an :class:`AudioError`.
        """
        if self._warned:
            return
        header, sr = self.n_frames_native, self.sr_native
        if self._mp3:
            said = _mpg123_reason([line for line in self._chatter if "error" in line.lower()])
            if said and n < header // 2:
                raise AudioError(
                    f"{self.name}: cannot decode the MP3 (mpg123: {said}): damaged, only "
                    f"{n / sr:.2f} s of the {header / sr:.2f} s its header says could be decoded"
                )
            if said:
                self._warn(f"damaged MP3 frames were skipped (mpg123: {said}): classified "
                           "from what could be decoded")
                return
            short = header - n > max(_MP3_SLACK_FRAMES, header // 100)
        else:
            short = n < header
            match = _SHORT_CHUNK.search(self._log())
            if match and int(match.group(1)) > int(match.group(2)) > 0:
                # libsndfile already trimmed frames to what the file holds.
                header = round(n * int(match.group(1)) / int(match.group(2)))
                short = header > n
        if short:
            self._warn(f"the file is shorter than its header says ({n / sr:.2f} s of audio, "
                       f"the header says {header / sr:.2f} s): classified from what is there")

    def _warn(self, text: str) -> None:
        self._warned = True
        warnings.warn(f"{self.name}: {text}", AudioWarning, stacklevel=4)

    def _log(self) -> str:
        try:
            return self._f.extra_info
        except (sf.LibsndfileError, RuntimeError, AttributeError):  # pragma: no cover
            return ""

    # -- decoding --

    def _blocks(self, size: int, out: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """Decode from the start: ``(m, channels)`` float32 blocks of ``size`` frames.

        Stops where the data end, whatever the header says; into ``out`` (views of it) if
        given, until it is full. Warns after the last block if the file was short.
        """
        f = self._f
        if not self._at_start:
            with self._decoding(), _captured_stderr(self._chatter, self._mp3):
                f.seek(0)
        self._at_start = False
        n = 0
        while True:
            if out is not None:
                if n >= len(out):
                    break
                size = min(size, len(out) - n)
            with self._decoding(at=n), _captured_stderr(self._chatter, self._mp3):
                if out is not None:
                    block = f.read(size, dtype="float32", always_2d=True, out=out[n:n + size])
                else:
                    block = f.read(size, dtype="float32", always_2d=True)
            n += len(block)
            if len(block):
                yield block
            if len(block) < size:
                break
        self._check_length(n)

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
        # Long files stream; short ones are read at once (streaming costs ~0.2 ms a clip).
        if mono and self.sr != self.sr_native and self.n_frames_native > _STREAM_MIN_FRAMES:
            y = np.concatenate([np.zeros(0, np.float32), *self])
            if not len(y):
                raise AudioError(f"{name}: no audio samples")
            return y
        channels = f.channels
        if 0 < self.n_frames_native * channels <= _PREALLOC_SAMPLES:
            out = np.empty((self.n_frames_native, channels), dtype=np.float32)
            n = sum(len(block) for block in self._blocks(_BLOCK_SAMPLES, out))
            y = out[:n]
        else:  # a header that says nothing, or more than a short read should trust
            blocks = list(self._blocks(max(1, _BLOCK_SAMPLES // channels)))
            y = np.concatenate(blocks) if blocks else np.zeros((0, channels), np.float32)
        y = y[:, 0] if channels == 1 else y.T  # (n,) or (channels, n), as librosa
        valid_audio(y, name=name)
        if mono and y.ndim > 1:
            y = np.mean(y, axis=tuple(range(y.ndim - 1)))
        return resample(y, orig_sr=self.sr_native, target_sr=self.sr)

    def __iter__(self) -> Iterator[np.ndarray]:
        return _mono_chunks(self._blocks(_BLOCK_SAMPLES), self.name, self.sr_native, self.sr)

    def close(self) -> None:
        """Close the file (a file object given by the caller stays open)."""
        f = getattr(self, "_f", None)
        if f is not None:
            f.close()
        _close(self._owned)
        self._owned = None

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AudioStream({self.name!r}, sr={self.sr})"
