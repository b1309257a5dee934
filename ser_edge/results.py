"""Result records, and a results file that an interrupted batch continues.

A prediction or a failure is written as one JSON object per line (``--json``, ``.jsonl``) or one
CSV row (``--csv``, ``.csv``), the same on standard output and in a file.

:class:`ResultsFile` appends records to a file as they come, one write and one flush per line, so
a run killed at any moment (even with SIGKILL) leaves every finished line in the file, and at most
a last line cut short. Opened again with ``resume=True`` it reads the paths already there, with
their result or their error, and cuts off a last line that was cut short (its file is classified
again); the caller skips the paths in :attr:`ResultsFile.done`. The file is locked
(``fcntl.flock``) while open, so two runs cannot append to it at once.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._names import display_name
from .errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from .model import Failure, Prediction

__all__ = [
    "FORMATS",
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
CSV_COLUMNS = ("path", "label", "confidence", "duration_s", "sample_rate")


def json_record(p: Prediction, top_k: int, said: list[str] | tuple[str, ...] = ()) -> str:
    """A prediction as one JSON line (without the newline).

    ``path``, ``label``, ``probabilities`` (in the model's label order), ``duration_s`` (seconds),
    ``sample_rate`` (the file's own, in Hz), ``top`` (the ``top_k`` best ``[label, p]`` pairs),
    and ``warnings`` (a list of one-line messages) when ``said`` is not empty.
    """
    record = p.to_dict()
    record["path"] = display_name(p.path)
    record["top"] = [[name, prob] for name, prob in p.top(top_k)]
    if said:
        record["warnings"] = list(said)
    return json.dumps(record)


def json_failure(f: Failure, message: str) -> str:
    """A failure as one JSON line: ``{"path": ..., "error": message}``."""
    return json.dumps({"path": display_name(f.path), "error": message})


def csv_header(labels: tuple[str, ...] | list[str]) -> list[str]:
    """The CSV header: :data:`CSV_COLUMNS`, one column per label, ``error``."""
    return [*CSV_COLUMNS, *labels, "error"]


def csv_row(p: Prediction) -> list[str]:
    """A prediction as a CSV row (probabilities with six decimals, duration in seconds)."""
    return ([display_name(p.path), p.label, f"{p.confidence:.6f}", f"{p.duration_s:.3f}",
             str(p.sample_rate)]
            + [f"{prob:.6f}" for prob in p.probabilities.values()]
            + [""])


def csv_failure(f: Failure, message: str, n_labels: int) -> list[str]:
    """A failure as a CSV row: the path, empty fields, the message in ``error``."""
    return [display_name(f.path), "", "", "", ""] + [""] * n_labels + [message]


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
        model's); if another process has it open; if it cannot be opened.
    """

    def __init__(self, path: str | os.PathLike[str], *, labels: tuple[str, ...] | list[str],
                 resume: bool):
        self.path = Path(path)
        name = display_name(self.path)
        fmt = FORMATS.get(self.path.suffix.lower())
        if fmt is None:
            raise ParameterError(f"{name}: the results file's extension picks its format: "
                                 f"{', '.join(FORMATS)}")
        self.format, self.labels = fmt, tuple(labels)
        self.done: dict[str, str | None] = {}
        self.torn = False
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        except OSError as exc:
            raise ParameterError(f"{name}: cannot open the results file "
                                 f"({exc.strerror or exc})") from None
        try:
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
            self._file = io.open(fd, "a", encoding="utf-8", newline="", closefd=True)
        except BaseException:
            os.close(fd)
            raise
        if self.format == "csv" and not data:
            self.write(csv_line(csv_header(self.labels)))

    def _read(self, data: bytes, name: str) -> None:
        lines = data.decode("utf-8", "replace").splitlines()
        if self.format == "csv":
            rows = list(csv.reader(lines))
            header = csv_header(self.labels)
            if rows and rows[0] != header:
                raise ParameterError(f"{name}: its columns are not this model's ({len(rows[0])} "
                                     f"columns, expected {', '.join(header)})")
            for n, row in enumerate(rows[1:], start=2):
                if len(row) != len(header):
                    raise ParameterError(f"{name}: line {n} is not a result row "
                                         f"({len(row)} fields, expected {len(header)})")
                self.done[row[0]] = row[-1] or None
            return
        for n, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict) or not isinstance(record.get("path"), str):
                raise ParameterError(f"{name}: line {n} is not a result record")
            error = record.get("error")
            self.done[record["path"]] = str(error) if error is not None else None

    def write(self, line: str) -> None:
        """Append one line (ending with a newline) and flush it to the operating system.

        Raises
        ------
        OSError
            If it cannot be written (a full disk, say).
        """
        self._file.write(line)
        self._file.flush()

    def close(self) -> None:
        """Close the file (and release its lock)."""
        self._file.close()

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
