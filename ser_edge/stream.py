"""Emotion over time in a live stream: push audio in, get a result per window out.

:class:`StreamingClassifier` has the shape of ``soxr.ResampleStream`` and ``zlib.decompressobj``:
built once with the stream's rate and channels, fed chunks of any size with :meth:`push`, which
returns the results that became ready, and ended with :meth:`flush`. It holds no thread and no
global buffer; its memory is one window of audio at the model's rate, whatever the stream's
length.

Each window goes through :meth:`ser_edge.Classifier.predict`'s own path (the classifier's
``_predict_model_rate``), so a window's probabilities are exactly those of
``Classifier.predict(window, sr)`` on the same samples at the model's rate. The stream is mixed
to mono and resampled once, as it arrives (``soxr`` at ``soxr_hq``, the resampler of
:func:`ser_edge.audio.load`), so a recording pushed through in pieces gives the windows of
``ser_edge.audio.load(path, sr=model_rate)``, sample for sample, however it was cut.

:func:`pcm_chunks` turns raw PCM bytes (``arecord``'s output, a pipe) into the arrays
:meth:`StreamingClassifier.push` takes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from .errors import AudioError, ParameterError

__all__ = ["StreamingClassifier", "WindowResult", "PcmDecoder", "pcm_chunks", "PCM_FORMATS"]

#: Raw PCM sample formats :func:`pcm_chunks` reads: little-endian 16-bit integers and 32-bit floats.
PCM_FORMATS = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}

# Samples at the stream's own rate resampled at a time: bounds the memory a huge push takes.
_PIECE = 1 << 15


@dataclass(frozen=True)
class WindowResult:
    """The emotion of one window of a stream.

    Attributes
    ----------
    start_s, end_s : float
        Where the window starts and ends, in seconds from the start of the stream.
    speech : bool
        Whether voice activity detection found speech in the window. Windows without speech are
        not classified.
    label : str or None
        The most probable emotion (after smoothing, if any); None without speech.
    probabilities : dict of str to float or None
        Probability of every label in the model's label order (averaged over the last
        ``smoothing`` windows with speech); None without speech.
    """

    start_s: float
    end_s: float
    speech: bool
    label: str | None = None
    probabilities: dict[str, float] | None = None

    @property
    def confidence(self) -> float | None:
        """Probability of :attr:`label`, or None without speech."""
        return None if self.label is None else self.probabilities[self.label]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: start_s, end_s, speech, label, probabilities."""
        return {"start_s": round(self.start_s, 6), "end_s": round(self.end_s, 6),
                "speech": self.speech, "label": self.label,
                "probabilities": None if self.probabilities is None else dict(self.probabilities)}


#: Most windows :class:`StreamingClassifier` averages (``smoothing``).
MAX_SMOOTHING = 10_000


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParameterError(f"{name} must be a positive number, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ParameterError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ParameterError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class StreamingClassifier:
    """Classify the emotion of a live stream, window by window, as the audio arrives.

    Every ``hop_s`` seconds the last ``window_s`` seconds are classified: the window from
    ``k * hop_s`` to ``k * hop_s + window_s`` is ready once the stream has reached its end, and
    :meth:`push` returns it then. Windows in which voice activity detection
    (:func:`ser_edge.vad.has_speech`, the check ``classify`` makes on a file) finds no speech are
    returned with ``speech=False`` and no label, as are windows too quiet to analyse and, for a
    model that trims a clip's ends (``FeatureConfig.trim_zeros``, ``trim_top_db``), windows
    with less sound between their trimmed ends than the model analyses.

    Parameters
    ----------
    classifier : Classifier or str or os.PathLike or None
        A :class:`~ser_edge.Classifier`, or the path of an ONNX model for one; ``None`` loads the
        bundled model.
    sr : int
        Sample rate of the stream, in Hz.
    channels : int >= 1
        Channels of the stream; they are averaged into one, as ``librosa.to_mono`` does.
    window_s : float > 0
        Length of a window, in seconds.
    hop_s : float > 0
        Step between windows, in seconds.
    smoothing : int in [1, MAX_SMOOTHING]
        Average the probabilities over this many of the last windows with speech (1: none);
        a window without speech (or too quiet to analyse: :data:`ser_edge.audio.MIN_PEAK`)
        starts the average afresh.
    vad : bool
        Detect speech in each window; ``False`` classifies every window.

    Attributes
    ----------
    classifier : Classifier
    labels : tuple of str
    rate : int
        The model's sample rate, in Hz, at which the windows are analysed.

    Raises
    ------
    ParameterError
        If a parameter is out of range, or the window is shorter than one analysis frame
        (or the frames the model's MFCC deltas need: ``Classifier.min_samples``).
    ModelError
        If the model cannot be used.

    Notes
    -----
    A stream at another rate than the model's is resampled with soxr at ``soxr_hq``, so that its
    samples are those of :func:`ser_edge.audio.load`; libsoxr gives that filter's output out in
    blocks, and a window's last samples come out 10 to 40 ms after the window's end in 10 ms
    chunks at 48 kHz (``benchmarks/stream_latency.py``, which also measures the lower-latency
    settings and what they change). A stream at the model's rate is not resampled and waits for
    nothing.

    Examples
    --------
    >>> import numpy as np
    >>> from ser_edge import StreamingClassifier
    >>> stream = StreamingClassifier(sr=16000)
    >>> results = stream.push(np.zeros(16000 * 4, np.int16))  # 4 s of silence: 2 windows
    >>> [(r.start_s, r.end_s, r.speech) for r in results]
    [(0.0, 3.0, False), (1.0, 4.0, False)]
    """

    def __init__(
        self,
        classifier: Any = None,
        *,
        sr: int,
        channels: int = 1,
        window_s: float = 3.0,
        hop_s: float = 1.0,
        smoothing: int = 1,
        vad: bool = True,
    ):
        from . import audio
        from .model import Classifier

        self.sr = _positive_int("sr", sr)
        if not audio.MIN_SR <= self.sr <= audio.MAX_SR:
            raise ParameterError(f"sample rate {self.sr} Hz is outside the supported "
                                 f"{audio.MIN_SR}-{audio.MAX_SR} Hz")
        self.channels = _positive_int("channels", channels)
        self.window_s = _positive("window_s", window_s)
        self.hop_s = _positive("hop_s", hop_s)
        self.smoothing = _positive_int("smoothing", smoothing)
        if self.smoothing > MAX_SMOOTHING:
            raise ParameterError(f"smoothing must be at most {MAX_SMOOTHING} windows, "
                                 f"got {self.smoothing}")
        self._min_peak = audio.MIN_PEAK
        self.vad = bool(vad)
        self.classifier = (classifier if isinstance(classifier, Classifier)
                           else Classifier(classifier))
        self.labels = self.classifier.labels
        self.rate = self.classifier.feature_config.sr
        self._window = int(round(self.window_s * self.rate))
        self._hop = int(round(self.hop_s * self.rate))
        n_min, config = self.classifier.min_samples, self.classifier.feature_config
        if self._window < n_min:
            need = ("one analysis frame" if n_min == config.n_fft else
                    f"the {config.min_frames} analysis frames the MFCC deltas need")
            raise ParameterError(f"window_s={self.window_s:g} s is shorter than {need} "
                                 f"({n_min} samples at {self.rate} Hz)")
        self._reset()

    def _reset(self) -> None:
        import soxr

        from .vad import _FrameCache

        self._resampler = (soxr.ResampleStream(self.sr, self.rate, 1, dtype="float32",
                                               quality="soxr_hq")
                           if self.sr != self.rate else None)
        self._partial = np.zeros(0, np.float32)  # interleaved samples of an incomplete frame
        self._n_in = 0  # frames pushed, at the stream's rate
        self._buf = np.zeros(0, np.float32)  # model-rate samples from _buf_start on
        self._pieces: list[np.ndarray] = []  # and the samples after them
        self._buf_start = 0
        self._n_out = 0  # model-rate samples produced
        self._next = 0  # start of the next window, in model-rate samples
        self._last_end = 0  # end of the last window given out
        self._recent: deque[np.ndarray] = deque(maxlen=self.smoothing)
        # Voice activity features of the last window's frames, each frame analysed once.
        self._vad_frames = _FrameCache(self.rate, self._window + self._hop)

    @property
    def time_s(self) -> float:
        """Seconds of audio pushed since the start (or the last :meth:`flush`)."""
        return self._n_in / self.sr

    # -- input ---------------------------------------------------------------------------------

    def _frames(self, samples: Any) -> np.ndarray:
        """Mono float32 frames of a chunk: (n,) or (n, channels), float or int16/int32."""
        x = np.asarray(samples)
        if x.dtype == np.int16:
            x = x.astype(np.float32) / np.float32(32768)
        elif x.dtype == np.int32:
            x = x.astype(np.float32) / np.float32(2**31)
        elif np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32, copy=False)
        else:
            raise ParameterError(f"samples must be float, int16 or int32, got {x.dtype}")
        if not np.isfinite(x).all():
            raise AudioError("the stream has NaN or infinite samples")
        c = self.channels
        if x.ndim == 2:
            if x.shape[1] != c:
                raise ParameterError(f"a chunk of shape {x.shape} does not have the stream's "
                                     f"{c} channel(s): expected (n_frames, {c})")
        elif x.ndim == 1:
            if c > 1:  # interleaved; keep an incomplete frame for the next chunk
                x = np.concatenate((self._partial, x))
                whole = len(x) // c * c
                self._partial = x[whole:]
                x = x[:whole].reshape(-1, c)
        else:
            raise ParameterError(f"samples must be (n,) or (n, channels), got shape {x.shape}")
        if x.ndim == 2:
            # (channels, n) averaged as ser_edge.audio averages a file's blocks.
            x = x[:, 0] if c == 1 else np.mean(x.T, axis=0)
        return x

    def push(self, samples: Any) -> list[WindowResult]:
        """Add a chunk of the stream; return the windows it completed, in order.

        Parameters
        ----------
        samples : np.ndarray [shape=(n,) or (n, channels)]
            The next samples: float (nominally in [-1, 1]), or int16 or int32 PCM (scaled by
            1/32768 or 1/2**31, as libsndfile reads them). For several channels, either
            ``(n_frames, channels)`` or 1-D interleaved samples (an incomplete frame at the end
            waits for the next chunk). Any length, zero included.

        Returns
        -------
        results : list of WindowResult
            Zero, one or several windows.

        Raises
        ------
        ParameterError
            If the samples have another dtype or shape.
        AudioError
            If they are not finite.
        """
        x = self._frames(samples)
        out: list[WindowResult] = []
        for i in range(0, len(x), _PIECE):
            piece = x[i : i + _PIECE]
            self._n_in += len(piece)
            if self._resampler is not None:
                piece = self._resampler.resample_chunk(piece)
            out += self._add(piece)
        return out

    def flush(self) -> list[WindowResult]:
        """End the stream: return the last window, over its tail, if one is due.

        The resampler's tail is drained and the stream cut to ``ceil(n * rate / sr)`` samples at
        the model's rate (``librosa.load``'s length). If samples arrived after the end of the
        last window, one more window of ``window_s`` ending at the end of the stream is
        classified (shorter, from 0, when the whole stream is shorter than a window). The
        classifier is then reset for a new stream.

        Returns
        -------
        results : list of WindowResult
            Zero or one window.
        """
        out: list[WindowResult] = []
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            n_total = int(np.ceil(self._n_in * self.rate / self.sr))
            tail = tail[: max(0, n_total - self._n_out)]
            tail = np.concatenate((tail, np.zeros(max(0, n_total - self._n_out - len(tail)),
                                                  np.float32)))
            out += self._add(tail)
        self._buf = np.concatenate([self._buf, *self._pieces])
        self._pieces = []
        end = self._n_out
        if end > self._last_end and end >= self.classifier.min_samples:
            start = max(0, end - self._window)
            out.append(self._classify(start, end))
        self._reset()
        return out

    # -- windows -------------------------------------------------------------------------------

    def _add(self, y: np.ndarray) -> list[WindowResult]:
        out: list[WindowResult] = []
        # Pieces wait in a list until a window needs them: a 10 ms chunk costs an append, not a
        # copy of the window.
        self._pieces.append(y)
        self._n_out += len(y)
        if self.vad:
            self._vad_frames.push(y)
        if self._next + self._window > self._n_out and self._n_out - self._buf_start < (
                2 * self._window + self._hop):
            return out
        self._buf = np.concatenate([self._buf, *self._pieces])
        self._pieces = []
        while self._next + self._window <= self._n_out:
            out.append(self._classify(self._next, self._next + self._window))
            self._next += self._hop
        # Keep the next window's samples, and the last window's worth for flush.
        keep = min(self._next, self._n_out - self._window)
        if keep > self._buf_start:
            self._buf = self._buf[keep - self._buf_start :]
            self._buf_start = keep
        return out

    def _classify(self, start: int, end: int) -> WindowResult:
        y = self._buf[start - self._buf_start : end - self._buf_start]
        self._last_end = end
        start_s, end_s = start / self.rate, end / self.rate
        # Digital silence, and audio too quiet to analyse (--no-vad), hold no speech either;
        # nor, for a model that trims digital silence, a blip too short to analyse inside it.
        if (self.vad and not self._vad_frames.has_speech(y, start)) \
                or not len(y) or max(float(y.max()), -float(y.min())) < self._min_peak \
                or self._too_short_once_trimmed(y):
            self._recent.clear()
            return WindowResult(start_s, end_s, False)
        # Windows overlap: each adds to a speaker profile only the share of it that is new.
        weight = min(1.0, self._hop / self._window)
        p = self.classifier._predict_model_rate(y, len(y) / self.rate, self.rate, weight=weight)
        row = np.array([p.probabilities[label] for label in self.labels])
        self._recent.append(row)
        if len(self._recent) > 1:
            row = np.mean(np.stack(self._recent), axis=0)
        probabilities = {label: float(v) for label, v in zip(self.labels, row, strict=True)}
        label = self.labels[int(np.argmax(row))]
        return WindowResult(start_s, end_s, True, label, probabilities)

    def _too_short_once_trimmed(self, y: np.ndarray) -> bool:
        """Whether the model trims the window's ends and leaves less of ``y`` than it analyses.

        :attr:`Classifier.min_samples`, counted between the window's trimmed ends.
        """
        config = self.classifier.feature_config
        return config.trims and len(config.trim(y)) < self.classifier.min_samples

    def __repr__(self) -> str:
        return (f"StreamingClassifier(sr={self.sr}, channels={self.channels}, "
                f"window_s={self.window_s:g}, hop_s={self.hop_s:g}, smoothing={self.smoothing}, "
                f"vad={self.vad}, model={os.fspath(self.classifier.model_path)!r})")


def pcm_chunks(
    stream: IO[bytes] | Any, *, format: str = "s16le", channels: int = 1, chunk_bytes: int = 4096
) -> Iterator[np.ndarray]:
    """Read raw interleaved PCM from a binary stream, as arrays of whole frames.

    Reads return as soon as some bytes are there (``read1`` or ``os.read`` on a pipe), so a live
    source such as ``arecord`` is not held back; bytes of an incomplete frame wait for the next
    read.

    Parameters
    ----------
    stream : binary file-like
        Standard input's ``buffer``, a pipe, a socket file, a file opened ``"rb"``.
    format : {"s16le", "f32le"}
        Little-endian 16-bit integers or 32-bit floats (``arecord -f S16_LE`` or ``FLOAT_LE``).
    channels : int >= 1
        Channels, interleaved.
    chunk_bytes : int > 0
        Bytes asked for at a time.

    Yields
    ------
    frames : np.ndarray [shape=(n, channels)], int16 or float32
        Never empty. Ends at the end of the stream; an incomplete last frame is dropped.

    Raises
    ------
    ParameterError
        If ``format`` or ``channels`` is not valid.
    """
    decoder = PcmDecoder(format=format, channels=channels)
    read = getattr(stream, "read1", None) or stream.read
    while True:
        data = read(chunk_bytes)
        if not data:
            return
        x = decoder.push(data)
        if len(x):
            yield x


class PcmDecoder:
    """Raw interleaved PCM, pushed in pieces of any size, out as arrays of whole frames.

    The bytes of an incomplete frame wait for the next piece, so a stream may be cut anywhere
    (a pipe's reads, a WebSocket's messages). :func:`pcm_chunks` reads a file-like through one.

    Parameters
    ----------
    format : {"s16le", "f32le"}
        Little-endian 16-bit integers or 32-bit floats (``arecord -f S16_LE`` or ``FLOAT_LE``).
    channels : int >= 1
        Channels, interleaved.

    Attributes
    ----------
    frame_bytes : int
        Bytes of one frame (one sample of every channel).

    Raises
    ------
    ParameterError
        If ``format`` or ``channels`` is not valid.
    """

    def __init__(self, *, format: str = "s16le", channels: int = 1):
        if format not in PCM_FORMATS:
            raise ParameterError(f"unknown PCM format {format!r}; choose from "
                                 f"{sorted(PCM_FORMATS)}")
        self.channels = _positive_int("channels", channels)
        self._dtype = PCM_FORMATS[format]
        self.frame_bytes = self._dtype.itemsize * self.channels
        self._left = b""

    def push(self, data: bytes) -> np.ndarray:
        """Add bytes of the stream; return the whole frames they complete.

        Parameters
        ----------
        data : bytes
            The next bytes of the stream, any number of them.

        Returns
        -------
        frames : np.ndarray [shape=(n, channels)], int16 or float32
            In native byte order; ``n`` may be 0.
        """
        data = self._left + bytes(data)
        whole = len(data) // self.frame_bytes * self.frame_bytes
        self._left = data[whole:]
        x = np.frombuffer(data[:whole], dtype=self._dtype).reshape(-1, self.channels)
        return x.astype(self._dtype.newbyteorder("="), copy=False)
