"""Result records, and a results file that an interrupted batch continues.

A prediction or a failure is written as one JSON object per line (``--json``, ``.jsonl``) or one
CSV row (``--csv``, ``.csv``), the same on standard output and in a file. Each names the model
that gave it (:func:`model_identity`: its name and the start of its file's SHA-256).

:class:`ResultsFile` appends records to a file as they come, one ``write`` system call per line,
so a run killed at any moment (even with SIGKILL) leaves every finished line in the file, and at
most a last line cut short. Opened again with ``resume=True`` it reads the paths already there,
with their result or their error, and cuts off a last line that was cut short (its file is
classified again); the caller skips the paths in :attr:`ResultsFile.done`. A file written by
another model is refused, and so is anything but a regular file (a FIFO, a device). The file is
locked (``fcntl.flock``) while open, so two runs cannot append to it at once.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._names import display_name, printable
from .errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from .model import Failure, Prediction

__all__ = [
    "FORMATS",
    "model_identity",
    "json_record",
    "json_failure",
    "csv_header",
    "csv_row",
    "csv_failure",
    "csv_line",
    "ResultsFile",
]

#: Results file formats by file name extension (any case).
FORMATS = {".jsonl": "json", ".ndjson": "json", ".json": "json", ".csv": "csv"}

#: The CSV columns before the labels' (and ``error`` after them).
CSV_COLUMNS = ("path", "label", "confidence", "duration_s", "sample_rate", "model")

#: Hex digits of the model file's SHA-256 in :func:`model_identity` (64 bits).
DIGEST_CHARS = 16


def model_identity(name: str, sha256: str) -> str:
    """How records name the model that gave them: ``NAME@DIGEST``.

    Parameters
    ----------
    name : str
        The bundled model's name, or the model file's name (escaped as
        :func:`~ser_edge.audio.display_name` shows it).
    sha256 : str
        The SHA-256 of the model file, in hex (:attr:`ser_edge.Classifier.sha256`); its first
        :data:`DIGEST_CHARS` digits are kept.

    Returns
    -------
    identity : str
        For example ``"mlp@0123456789abcdef"``. Two records come from the same model when the
        digits after the last ``@`` agree, whatever the name.
    """
    return f"{display_name(name)}@{sha256[:DIGEST_CHARS]}"


def _digest(identity: object) -> str | None:
    """The digest part of a :func:`model_identity` (None for anything else)."""
    if not isinstance(identity, str):
        return None
    return identity.rpartition("@")[2] or None


def json_record(p: Prediction, top_k: int, said: list[str] | tuple[str, ...] = (),
                model: str | None = None) -> str:
    """A prediction as one JSON line (without the newline).

    ``path``, ``label``, ``probabilities`` (in the model's label order), ``duration_s`` (seconds),
    ``sample_rate`` (the file's own, in Hz), ``top`` (the ``top_k`` best ``[label, p]`` pairs),
    ``warnings`` (a list of one-line messages) when ``said`` is not empty, and ``model``
    (:func:`model_identity`) when given.
    """
    record = p.to_dict()
    record["path"] = display_name(p.path)
    record["top"] = [[name, prob] for name, prob in p.top(top_k)]
    if said:
        record["warnings"] = list(said)
    if model is not None:
        record["model"] = model
    return json.dumps(record, allow_nan=False)


def json_failure(f: Failure, message: str, model: str | None = None) -> str:
    """A failure as one JSON line: ``{"path": ..., "error": message}``, and ``model`` if given."""
    record = {"path": display_name(f.path), "error": message}
    if model is not None:
        record["model"] = model
    return json.dumps(record)


def csv_header(labels: tuple[str, ...] | list[str]) -> list[str]:
    """The CSV header: :data:`CSV_COLUMNS`, one column per label, ``error``."""
    return [*CSV_COLUMNS, *labels, "error"]


def csv_row(p: Prediction, model: str = "") -> list[str]:
    """A prediction as a CSV row (probabilities with six decimals, duration in seconds)."""
    return ([display_name(p.path), p.label, f"{p.confidence:.6f}", f"{p.duration_s:.3f}",
             str(p.sample_rate), model]
            + [f"{prob:.6f}" for prob in p.probabilities.values()]
            + [""])


def csv_failure(f: Failure, message: str, n_labels: int, model: str = "") -> list[str]:
    """A failure as a CSV row: the path, empty fields, the model, the message in ``error``."""
    return [display_name(f.path), "", "", "", "", model] + [""] * n_labels + [message]


def csv_line(row: list[Any]) -> str:
    """One CSV row as ``csv.writer`` writes it, with its newline."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(row)
    return buffer.getvalue()


class ResultsFile:
    """A JSON-lines or CSV file that results are appended to, one flushed line at a time.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its extension picks the format (:data:`FORMATS`).
    labels : sequence of str
        The model's labels (the CSV header names them).
    resume : bool
        Continue the file if it exists: read the paths already in it into :attr:`done` and cut
        off a last line cut short. Without it, the file must not exist or be empty.
    model : str, optional
        The :func:`model_identity` of the model whose results are written: with ``resume``,
        every record already in the file must come from the same model file (the same digest).

    Attributes
    ----------
    path : pathlib.Path
    format : {"json", "csv"}
    done : dict of str to str or None
        Each path already in the file (as records name it, :func:`~ser_edge.audio.display_name`)
        and its error message, or None for a result.
    torn : bool
        Whether a last line cut short was cut off.

    Raises
    ------
    ParameterError
        If the extension is not one of :data:`FORMATS`; if the file exists, is not empty and
        ``resume`` is False; if a line of it is not a record (or, for CSV, its header is not this
        model's); if a record does not come from ``model``; if another process has it open; if
        it cannot be opened, or is not a regular file (a FIFO, a device: it could not be read
        back).
    """

    def __init__(self, path: str | os.PathLike[str], *, labels: tuple[str, ...] | list[str],
                 resume: bool, model: str | None = None):
        self.path = Path(path)
        name = display_name(self.path)
        fmt = FORMATS.get(self.path.suffix.lower())
        if fmt is None:
            raise ParameterError(f"{name}: the results file's extension picks its format: "
                                 f"{', '.join(FORMATS)}")
        self.format, self.labels, self.model = fmt, tuple(labels), model
        self.done: dict[str, str | None] = {}
        self.torn = False
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NONBLOCK", 0)
        try:  # O_NONBLOCK: a FIFO does not wait for a reader (it is refused just below)
            fd = os.open(self.path, flags, 0o666)
        except OSError as exc:
            raise ParameterError(f"{name}: cannot open the results file "
                                 f"({exc.strerror or exc})") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ParameterError(f"{name}: the results file must be a regular file, not a "
                                     "FIFO or a device (--resume reads it back); print to "
                                     "standard output with --json or --csv instead")
            _lock(fd, name)
            data = _read_all(fd)
            if data and not resume:
                raise ParameterError(f"{name}: the results file exists: --resume to continue "
                                     "it, or choose another name")
            keep = data.rfind(b"\n") + 1
            if keep < len(data):  # a line cut short by a killed run: redo its file
                os.ftruncate(fd, keep)
                data, self.torn = data[:keep], True
            self._read(data, name)
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd
        if self.format == "csv" and not data:
            try:
                self.write(csv_line(csv_header(self.labels)))
            except OSError as exc:
                self.close()
                raise ParameterError(f"{name}: cannot write the results file "
                                     f"({exc.strerror or exc})") from None

    def _read(self, data: bytes, name: str) -> None:
        lines = data.decode("utf-8", "replace").split("\n")[:-1]
        models: list[tuple[int, Any]] = []  # (line, model) of each record
        if self.format == "csv":
            rows = list(csv.reader(lines))
            header = csv_header(self.labels)
            if rows and rows[0] != header:
                raise ParameterError(f"{name}: its columns are not this model's ({len(rows[0])} "
                                     f"columns, expected {', '.join(header)})")
            if len(rows) != len(lines):  # a quoted newline: not a row ser-edge wrote
                raise ParameterError(f"{name}: a field of it holds a line break: not a results "
                                     "file ser-edge wrote")
            for n, row in enumerate(rows[1:], start=2):
                if len(row) != len(header):
                    raise ParameterError(f"{name}: line {n} is not a result row "
                                         f"({len(row)} fields, expected {len(header)})")
                self.done[row[0]] = row[-1] or None
                models.append((n, row[CSV_COLUMNS.index("model")]))
        else:
            for n, line in enumerate(lines, start=1):
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if not isinstance(record, dict) or not isinstance(record.get("path"), str):
                    raise ParameterError(f"{name}: line {n} is not a result record")
                error = record.get("error")
                self.done[record["path"]] = str(error) if error is not None else None
                models.append((n, record.get("model")))
        want = _digest(self.model)
        for n, model in models if want is not None else ():
            if _digest(model) != want:
                given = (f"results of another model ({printable(model)})"
                         if _digest(model) else "results that name no model (an older ser-edge?)")
                raise ParameterError(f"{name}: line {n} holds {given}, not of this run's "
                                     f"{self.model}: continue it with the model that wrote it, "
                                     "or choose another file")

    def write(self, line: str) -> None:
        """Append one line (ending with a newline): one ``write`` system call, nothing buffered.

        Raises
        ------
        OSError
            If it cannot be written (a full disk, say); what was written of the line is cut off
            by the next ``resume``.
        """
        if self._fd is None:
            raise ValueError("write to a closed ResultsFile")
        data = line.encode("utf-8", "surrogateescape")
        while data:  # a regular file takes it in one write; a signal may cut one short
            data = data[os.write(self._fd, data):]

    def close(self) -> None:
        """Close the file (and release its lock); closing again does nothing."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _lock(fd: int, name: str) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ParameterError(f"{name}: another process is writing this results file") from None
    except OSError:  # pragma: no cover - a file system without locks
        pass
