"""A long recording as a timeline of emotions: speech segments, each with its label.

:func:`timeline` reads a file twice, in bounded memory whatever its length (an hour of audio is
never held): first voice activity detection over the whole file (:func:`ser_edge.vad.iter_segments`
on an :class:`ser_edge.audio.AudioStream`) finds the speech segments, then each segment is
classified. A segment longer than ``max_segment_s`` is cut into equal pieces no longer than that,
each classified on its own. Stretches without speech are not given an emotion.

Each segment is classified together with up to ``context_s`` of the audio around it (never past
half-way to the next segment): the bundled model was trained on whole clips that begin and end with
about a second of silence, and its answers depend on it. On RAVDESS, the label of the detected
speech alone agrees with the label of the whole clip for about half of the clips, with 0.6 s kept
on either side for 95% (``benchmarks/vad.py``); in a recording whose background differs from the
clip's own, more context brings more of that background in, and 0.6 s agreed best. A model
trained on trimmed speech would take ``context_s=0``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from .errors import ParameterError

__all__ = ["TimelineSegment", "timeline", "plan", "plot_timeline", "check_plotting"]


@dataclass(frozen=True)
class TimelineSegment:
    """One stretch of speech and its emotion.

    Attributes
    ----------
    start_s, end_s : float
        Where the speech starts and ends, in seconds from the start of the file.
    label : str
        The most probable emotion.
    probabilities : dict of str to float
        Probability of every label, in the model's label order.
    """

    start_s: float
    end_s: float
    label: str
    probabilities: dict[str, float]

    @property
    def confidence(self) -> float:
        """Probability of :attr:`label`."""
        return self.probabilities[self.label]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: start_s, end_s, label, probabilities."""
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "label": self.label, "probabilities": dict(self.probabilities)}


def plan(
    segments: Iterable[tuple[int, int]],
    n: int,
    *,
    sr: int,
    context_s: float = 0.6,
    max_segment_s: float = 8.0,
) -> list[tuple[int, int, int, int]]:
    """What to classify: the pieces of the speech segments and the audio around each.

    Parameters
    ----------
    segments : iterable of (int, int)
        Speech segments ``(start, end)`` in samples, in order, not overlapping.
    n : int
        Length of the signal, in samples.
    sr : int
        Sample rate, in Hz.
    context_s : float >= 0
        Audio classified with a segment on either side, in seconds, up to half-way to the
        neighbouring segment and within the signal.
    max_segment_s : float > 0
        Longer segments are cut into ``ceil(length / max_segment_s)`` equal pieces.

    Returns
    -------
    pieces : list of (int, int, int, int)
        ``(lo, hi, start, end)``: the piece of speech ``start .. end`` (what is reported) and the
        audio ``lo .. hi`` classified for it, in samples; ``lo`` never decreases.

    Raises
    ------
    ParameterError
        If ``context_s`` is negative or ``max_segment_s`` not positive, or either is not finite.
    """
    if not 0 <= context_s < math.inf:
        raise ParameterError(f"context_s must be a finite number >= 0 seconds, "
                             f"got {context_s!r}")
    if not 0 < max_segment_s < math.inf:
        raise ParameterError(f"max_segment_s must be a finite number > 0 seconds, "
                             f"got {max_segment_s!r}")
    segments = list(segments)
    ctx = int(round(context_s * sr))
    longest = int(round(max_segment_s * sr))
    out = []
    for i, (start, end) in enumerate(segments):
        before = segments[i - 1][1] if i else 0
        after = segments[i + 1][0] if i + 1 < len(segments) else n
        lo = max(start - ctx, (before + start + 1) // 2 if i else 0)
        hi = min(end + ctx, (end + after) // 2 if i + 1 < len(segments) else n)
        k = max(1, math.ceil((end - start) / longest))
        cuts = [start + (end - start) * j // k for j in range(k + 1)]
        for j in range(k):
            out.append((lo if j == 0 else cuts[j], hi if j == k - 1 else cuts[j + 1],
                        cuts[j], cuts[j + 1]))
    return out


def timeline(
    path: str | os.PathLike[str] | bytes | IO[bytes],
    classifier: Any = None,
    *,
    context_s: float = 0.6,
    max_segment_s: float = 8.0,
) -> Iterator[TimelineSegment]:
    """The speech of a recording as segments, each with its emotion, in bounded memory.

    Parameters
    ----------
    path : str, bytes, os.PathLike or binary file object
        An audio file that libsndfile reads, of any length, as :meth:`Classifier.classify
        <ser_edge.Classifier.classify>` takes it (a file object that cannot seek, such as
        standard input, is first copied to a temporary file: it is read twice).
    classifier : Classifier or str or os.PathLike or None
        A :class:`~ser_edge.Classifier`, the path of an ONNX model, or ``None`` for the bundled
        model.
    context_s : float >= 0
        Seconds of audio classified with each segment on either side (see the module's note).
    max_segment_s : float > 0
        Segments longer than this, in seconds, are cut into equal pieces.

    Yields
    ------
    TimelineSegment
        In order. None at all when the recording holds no speech.

    Raises
    ------
    AudioError
        If the file cannot be read (missing, not audio, NaN samples, ...).
    ModelError
        If the model cannot be used.
    ParameterError
        If a parameter is out of range.
    """
    from . import audio
    from .model import Classifier
    from .vad import iter_segments

    clf = classifier if isinstance(classifier, Classifier) else Classifier(classifier)
    sr = clf.feature_config.sr
    with audio.AudioStream(path, sr=sr) as stream:
        n = 0

        def counted(pieces: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
            nonlocal n
            for piece in pieces:
                n += len(piece)
                yield piece

        segments = [(s.start, s.end) for s in iter_segments(counted(stream), sr)]
        todo = plan(segments, n, sr=sr, context_s=context_s, max_segment_s=max_segment_s)
        if not todo:
            return
        # Second pass: hold only the audio of the pieces still to classify.
        buf, buf_start, pos, i = np.zeros(0, np.float32), 0, 0, 0
        for piece in stream:
            piece_start, pos = pos, pos + len(piece)
            need = todo[i][0]
            if pos <= need:
                continue
            if piece_start < need:
                piece, piece_start = piece[need - piece_start :], need
            if not len(buf):
                buf_start = piece_start
            buf = np.concatenate((buf, piece))
            while i < len(todo) and todo[i][1] <= pos:
                lo, hi, start, end = todo[i]
                p = clf.predict(buf[lo - buf_start : hi - buf_start], sr)
                yield TimelineSegment(start / sr, end / sr, p.label, p.probabilities)
                i += 1
            if i == len(todo):
                return
            keep = todo[i][0]
            if keep >= pos:
                buf = np.zeros(0, np.float32)
            elif keep > buf_start:
                buf, buf_start = buf[keep - buf_start :], keep


def check_plotting() -> None:
    """Raise ImportError, with the install command, unless matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'ser-edge[plot]'") from None


def plot_timeline(
    segments: list[TimelineSegment],
    labels: tuple[str, ...] | list[str],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> None:
    """Draw emotion over time into an image file: each segment's probabilities, stacked.

    Each speech segment is a column as wide as the segment, split into its labels' probabilities
    (one colour per label, the most probable one outlined); stretches without speech stay empty.

    Parameters
    ----------
    segments : list of TimelineSegment
        From :func:`timeline`.
    labels : sequence of str
        The model's labels, in order (the legend's order).
    path : str or os.PathLike
        The image to write; its extension picks the format (PNG, SVG, PDF, ...).
    title : str or None
        A title above the plot.

    Raises
    ------
    ImportError
        If matplotlib is not installed (the ``plot`` extra).
    OSError
        If the file cannot be written.
    """
    check_plotting()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10")
    end = max((s.end_s for s in segments), default=1.0)
    fig, (ax, lab) = plt.subplots(2, 1, figsize=(max(8.0, min(40.0, end / 6)), 4.5),
                                  sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for s in segments:
        bottom = 0.0
        for i, label in enumerate(labels):
            p = s.probabilities.get(label, 0.0)
            ax.bar(s.start_s, p, width=s.end_s - s.start_s, bottom=bottom, align="edge",
                   color=colours(i % 10), linewidth=0)
            bottom += p
        i = list(labels).index(s.label)
        lab.barh(i, s.end_s - s.start_s, left=s.start_s, color=colours(i % 10))
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.legend([plt.Rectangle((0, 0), 1, 1, color=colours(i % 10)) for i in range(len(labels))],
              labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    lab.set_yticks(range(len(labels)), labels, fontsize="small")
    lab.set_ylim(-0.5, len(labels) - 0.5)
    lab.set_xlabel("time, s")
    lab.set_xlim(0, end)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
