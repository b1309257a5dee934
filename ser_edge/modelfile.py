"""The model file: read with limits, and its metadata checked against a schema before use.

A model file is untrusted input, as an audio file is. This module reads one (a regular file, at
most :data:`MAX_MODEL_BYTES`), finds the external data it names (files beside it, each a regular
file inside the model's folder), and decodes and checks its metadata: JSON nested at most
:data:`MAX_METADATA_DEPTH` deep, the keys ser-edge reads of the right types and within ranges
(:data:`METADATA_SCHEMA`, :data:`FEATURE_CONFIG_SCHEMA`), and labels fit to print. All of it runs
before anything is sized by what the file says (a filter bank, a buffer of ``sr`` samples), and
every problem is one :class:`~ser_edge.errors.ModelError` naming the file and the value.

The schema is written here in plain Python (no ``jsonschema`` at run time): each entry is a
small type object (:class:`Int`, :class:`Number`, :class:`Choice`, ...) whose ``check`` returns
the reason a value does not fit, or None.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._names import display_name
from .errors import ModelError
from .features import FEATURES, FRAMES, NORMS, STATS

__all__ = [
    "MAX_MODEL_BYTES",
    "MAX_METADATA_DEPTH",
    "MAX_LABEL_CHARS",
    "METADATA_SCHEMA",
    "FEATURE_CONFIG_SCHEMA",
    "read_model_bytes",
    "external_data",
    "decode_metadata",
    "check_labels",
]

#: Largest model file read, in bytes, and largest external data file beside it (the bundled
#: models are under 2 MB): a bigger file, ``/dev/zero`` or a FIFO is refused before it is read.
MAX_MODEL_BYTES = 256 << 20

#: Deepest nesting of lists and objects in a metadata value (ser-edge's own go 6 deep).
MAX_METADATA_DEPTH = 32

#: Longest label, in characters.
MAX_LABEL_CHARS = 64

#: Most labels a model may have.
MAX_LABELS = 1000


# -- the schema's types --------------------------------------------------------------------------


class Int:
    """An integer (not a bool) from ``lo`` to ``hi``, both included."""

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = lo, hi

    def check(self, value: Any) -> str | None:
        """The reason ``value`` does not fit, or None."""
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, got {_short(value)}"
        if not self.lo <= value <= self.hi:
            return f"must be from {self.lo} to {self.hi}, got {_short(value)}"
        return None


class Number:
    """A finite number (int or float, not a bool) from ``lo`` to ``hi``; ``above``: ``> lo``."""

    def __init__(self, lo: float, hi: float, *, above: bool = False):
        self.lo, self.hi, self.above = lo, hi, above

    def check(self, value: Any) -> str | None:
        """The reason ``value`` does not fit, or None."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {_short(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {_short(value)}"
        low = value > self.lo if self.above else value >= self.lo
        if not (low and value <= self.hi):
            bound = ">" if self.above else ">="
            return f"must be {bound} {self.lo:g} and <= {self.hi:g}, got {_short(value)}"
        return None


class Text:
    """A string of ``min_chars`` to ``max_chars`` characters."""

    def __init__(self, min_chars: int = 0, max_chars: int = 1 << 20):
        self.min_chars, self.max_chars = min_chars, max_chars

    def check(self, value: Any) -> str | None:
        """The reason ``value`` does not fit, or None."""
        if not isinstance(value, str):
            return f"must be a string, got {_short(value)}"
        if not self.min_chars <= len(value) <= self.max_chars:
            return (f"must have {self.min_chars} to {self.max_chars} characters, "
                    f"got {len(value)}")
        return None


class Bool:
    """``true`` or ``false``."""

    def check(self, value: Any) -> str | None:
        """The reason ``value`` does not fit, or None."""
        return None if isinstance(value, bool) else f"must be true or false, got {_short(value)}"


class Choice:
    """One of ``values`` (compared with ``==``, type and all: ``1`` is not ``"1"``)."""

    def __init__(self, values: tuple[Any, ...]):
        self.values = values

    def check(self, value: Any) -> str | None:
        """The reason ``value`` does not fit, or None."""
        if any(type(value) is type(v) and value == v for v in self.values):
            return None
        return f"must be one of {list(self.values)}, got {_short(value)}"


class Nullable:
    """``null``, or what ``inner`` takes."""

    def __init__(self, inner: Any):
        self.inner = inner

    def check(self, value: Any) -> str | None:
        """The reason ``value`` does not fit, or None."""
        return None if value is None else self.inner.check(value)


class List:
    """A list of ``min_items`` to ``max_items`` items, each what ``item`` takes."""

    def __init__(self, item: Any, min_items: int, max_items: int):
        self.item, self.min_items, self.max_items = item, min_items, max_items

    def check(self, value: Any) -> str | None:
        """The reason ``value`` does not fit, or None."""
        if not isinstance(value, list):
            return f"must be a list, got {_short(value)}"
        if not self.min_items <= len(value) <= self.max_items:
            return f"must have {self.min_items} to {self.max_items} items, got {len(value)}"
        for i, item in enumerate(value):
            reason = self.item.check(item)
            if reason is not None:
                return f"item {i} {reason}"
        return None


class Object:
    """A JSON object: ``fields`` by name (others allowed), or each value what ``values`` takes."""

    def __init__(self, fields: Mapping[str, Any] | None = None, values: Any = None):
        self.fields, self.values = dict(fields or {}), values

    def check(self, value: Any) -> str | None:
        """The reason ``value`` does not fit, or None."""
        if not isinstance(value, dict):
            return f"must be a JSON object, got {_short(value)}"
        for key, item in value.items():
            spec = self.fields.get(key, self.values)
            reason = None if spec is None else spec.check(item)
            if reason is not None:
                return f"{key!r} {reason}"
        return None


class AnyOf:
    """What one of ``options`` takes; the reason given is the first option's."""

    def __init__(self, *options: Any):
        self.options = options

    def check(self, value: Any) -> str | None:
        """The reason ``value`` does not fit, or None."""
        reasons = [option.check(value) for option in self.options]
        return None if None in reasons else reasons[0]


def _short(value: Any, limit: int = 60) -> str:
    text = display_name(json.dumps(value) if _jsonable(value) else repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


# -- the schema ----------------------------------------------------------------------------------

#: The rates audio is accepted at, in Hz (:data:`ser_edge.audio.MIN_SR`, ``MAX_SR``; not
#: imported, to keep libsndfile out of ``ser-edge info``).
_MIN_SR, _MAX_SR = 1000, 768_000

_STATS = List(Choice(STATS), 1, len(STATS))

#: ``feature_config``: every field of :class:`~ser_edge.features.FeatureConfig`, with the
#: ranges inside which its arrays stay small (an ``n_fft`` of 65536 and 512 mel bands make a
#: 64 MB filter bank); :meth:`FeatureConfig.from_json` then checks the rest (unknown keys, odd
#: ``delta_width``, ``n_mfcc <= n_mels``, ``fmin < fmax``).
FEATURE_CONFIG_SCHEMA: dict[str, Any] = {
    "features": List(Choice(FEATURES), 1, len(FEATURES)),
    "sr": Int(_MIN_SR, _MAX_SR),
    "n_fft": Int(16, 1 << 16),
    "hop_length": Int(1, 1 << 16),
    "n_mfcc": Int(1, 512),
    "n_mels": Int(1, 512),
    "n_chroma": Int(1, 120),
    "fmin": Number(0, _MAX_SR / 2),
    "fmax": Nullable(Number(0, _MAX_SR / 2, above=True)),
    "htk": Bool(),
    "tuning": Nullable(Number(-0.5, 0.5)),
    "chroma_threshold": Nullable(Number(0, 1e6, above=True)),
    "mel_db": Bool(),
    "stats": AnyOf(_STATS, Object(values=_STATS)),
    "top_db": Nullable(Number(0, 1000)),
    "level_db": Nullable(Number(-200, 50)),
    "frames": Choice(FRAMES),
    "active_range_db": Number(0, 1000, above=True),
    "active_floor_db": Number(0, 1000, above=True),
    "active_floor_range_db": Nullable(Number(0, 1000, above=True)),
    "delta_width": Int(3, 999),
    "norm": Choice(NORMS),
    "trim_zeros": Bool(),
    "trim_top_db": Nullable(Number(0, 1000, above=True)),
    "align_peak": Bool(),
    "schema": Int(0, 1000),
}

#: Any finite number.
_FINITE = Number(-1.7e308, 1.7e308)

#: A recipe's augmentation, as ``ser-edge info`` shows it.
_AUGMENT = Object({"kinds": List(Text(), 0, 1000)})

#: Most frames a frame model may ask for (``min_frames``): 10 000 frames of 16 ms are 160 s.
MAX_MIN_FRAMES = 10_000

#: Most rows of a frame matrix an ``adaptation`` may describe (the bundled models have 220).
_MAX_ROWS = 100_000

#: The metadata keys ser-edge reads, and what each must be where it is present:
#: ``feature_config``, ``input_kind``, ``min_frames``, ``adaptation`` (whose statistics
#: :class:`ser_edge.adapt.Adaptation` checks against the features), and the parts of
#: ``training`` and ``metrics`` that ``ser-edge info`` and ``ser-edge models`` format (``labels``
#: is checked by :func:`check_labels`). Other keys, and other fields of these, may hold any JSON
#: (or text) nested at most :data:`MAX_METADATA_DEPTH` deep.
METADATA_SCHEMA: dict[str, Any] = {
    "feature_config": Object(FEATURE_CONFIG_SCHEMA),
    "input_kind": Text(1, 64),
    "min_frames": Int(1, MAX_MIN_FRAMES),
    "adaptation": Object({
        "blocks": List(Text(1, 64), 1, 16),
        "population_mean": List(_FINITE, 1, _MAX_ROWS),
        "population_std": List(Number(0, 1.7e308), 1, _MAX_ROWS),
        "min_seconds": Number(0, 1e9),
    }),
    "training": Object({
        "recipe": Object({
            "description": Text(),
            "augment": _AUGMENT,
            "members": List(Object({"augment": _AUGMENT}), 0, 1000),
            "weights": List(_FINITE, 0, 1000),
        }),
        "storage": Object(),
        "temperature": _FINITE,
        "estimator_params": Object(),
    }),
    "metrics": Object({
        "speaker_independent": Object({"uar_mean": _FINITE}),
        "robustness": Object({"white noise 20 dB SNR": _FINITE}),
        "cross_corpus": Object(values=Object({"uar": _FINITE})),
    }),
}


# -- reading -------------------------------------------------------------------------------------


def read_model_bytes(path: str | os.PathLike[str]) -> bytes:
    """Read a model file: a regular file of at most :data:`MAX_MODEL_BYTES` bytes.

    Parameters
    ----------
    path : str or os.PathLike
        The model file.

    Returns
    -------
    data : bytes
        Its content, not empty.

    Raises
    ------
    ModelError
        If it cannot be opened or read, is not a regular file (a folder, a FIFO, a device such as
        ``/dev/zero``), is empty, or is larger than :data:`MAX_MODEL_BYTES`.
    """
    name = display_name(os.fspath(path))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:  # O_NONBLOCK: opening a FIFO does not wait for a writer
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ModelError(f"{name}: model file not found") from None
    except OSError as exc:
        raise ModelError(f"{name}: cannot read model: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        _regular(st, name, "model")
        data = _read_at_most(fd, MAX_MODEL_BYTES, name, st.st_size)
    finally:
        os.close(fd)
    if not data:
        raise ModelError(f"{name}: model file is empty")
    return data


def _regular(st: os.stat_result, name: str, what: str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise ModelError(f"{name}: is a folder, not an ONNX {what} file")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "not a file")
        raise ModelError(f"{name}: {what} file is not a regular file ({kind})")
    if st.st_size > MAX_MODEL_BYTES:
        raise ModelError(f"{name}: {what} file is larger than {_mib(MAX_MODEL_BYTES)} "
                         f"({_mib(st.st_size)})")


def _read_at_most(fd: int, limit: int, name: str, expected: int = 0) -> bytes:
    chunks, size = [], 0
    try:
        while size <= limit:  # the whole file in one read, as its size says; more if it grew
            chunk = os.read(fd, min(max(expected + 1, 1 << 16), limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except OSError as exc:
        raise ModelError(f"{name}: cannot read model: {exc.strerror or exc}") from None
    except MemoryError:
        raise ModelError(f"{name}: not enough memory to read the model") from None
    if size > limit:  # it grew while read
        raise ModelError(f"{name}: model file is larger than {_mib(limit)}")
    return data


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n >= 1 << 20 else f"{n} bytes"


# -- external data -------------------------------------------------------------------------------

#: How an external data entry's key starts in the protobuf: field 1, 8 bytes, ``location``.
_LOCATION_KEY = b"\x0a\x08location"

#: ONNX protobuf fields that hold messages which may hold tensors, by message:
#: ``{message: {field number: message of the field}}`` (onnx.proto3, IR version 10).
_MESSAGES = {
    "model": {7: "graph", 25: "function"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "function": {7: "node"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse",
                  23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {13: "entry"},
}

#: Deepest nesting of graphs in attributes followed (the bundled models have none).
_MAX_PROTO_DEPTH = 64


def external_data(data: bytes, model_path: str | os.PathLike[str]) -> list[Path]:
    """The external data files a model names, each checked: inside its folder, regular, capped.

    ONNX keeps large weights in files beside the model (``TensorProto.external_data``'s
    ``location``, relative to the model's folder). Each location is resolved from the model
    file's folder (symbolic links followed) and must stay inside it.

    Parameters
    ----------
    data : bytes
        The model file's content (:func:`read_model_bytes`).
    model_path : str or os.PathLike
        Where it was read from.

    Returns
    -------
    files : list of pathlib.Path
        The distinct files named, resolved; empty for a model without external data (the
        usual case, told in one search of ``data``).

    Raises
    ------
    ModelError
        If a location is absolute or resolves outside the model's folder, if a file is missing,
        not a regular file or larger than :data:`MAX_MODEL_BYTES` (or all of them together are),
        or if the protobuf that names them is malformed.
    """
    if _LOCATION_KEY not in data:
        return []
    name = display_name(os.fspath(model_path))
    locations: list[bytes] = []
    try:
        _walk(memoryview(data), "model", locations, 0)
    except (IndexError, ValueError):
        raise ModelError(f"{name}: not a readable ONNX model (malformed protobuf)") from None
    folder = os.path.dirname(os.path.abspath(model_path))
    real_folder = os.path.realpath(folder)
    files: dict[str, int] = {}
    for raw in locations:
        location = os.fsdecode(raw)
        shown = display_name(location)
        target = os.path.realpath(os.path.join(folder, location))
        if (os.path.isabs(location) or "\0" in location
                or os.path.commonpath([real_folder, target]) != real_folder):
            raise ModelError(f"{name}: external data {shown!r} lies outside the model's folder "
                             "(it must be a file beside the model)")
        try:
            st = os.stat(target)
        except OSError as exc:
            raise ModelError(f"{name}: external data {shown!r}: {exc.strerror or exc}") from None
        _regular(st, f"{name}: external data {shown!r}", "external data")
        files[target] = st.st_size
    if sum(files.values()) > MAX_MODEL_BYTES:
        raise ModelError(f"{name}: its external data files are larger than "
                         f"{_mib(MAX_MODEL_BYTES)} together ({_mib(sum(files.values()))})")
    return [Path(f) for f in files]


def _walk(buf: memoryview, message: str, out: list[bytes], depth: int) -> None:
    """Append the external data locations found in ``buf``, an ONNX ``message``, to ``out``."""
    if depth > _MAX_PROTO_DEPTH:
        raise ValueError("nested too deeply")
    inner = _MESSAGES.get(message, {})
    key = value = None
    for number, wire, field in _fields(buf):
        if message == "entry" and wire == 2:
            if number == 1:
                key = bytes(field)
            elif number == 2:
                value = bytes(field)
        elif wire == 2 and number in inner:
            _walk(field, inner[number], out, depth + 1)
    if message == "entry" and key == b"location" and value is not None:
        out.append(value)


def _fields(buf: memoryview) -> Any:
    """``(field number, wire type, value)`` of each field of a protobuf message.

    Length-delimited values are memoryviews of ``buf``; the others are not decoded (None).
    """
    i, n = 0, len(buf)
    while i < n:
        tag, i = _varint(buf, i)
        number, wire = tag >> 3, tag & 7
        value = None
        if wire == 0:
            _, i = _varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            length, i = _varint(buf, i)
            value = buf[i:i + length]
            i += length
        else:
            raise ValueError(f"wire type {wire}")
        if i > n or number == 0:
            raise ValueError("truncated")
        yield number, wire, value


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


# -- metadata ------------------------------------------------------------------------------------


def decode_metadata(props: Mapping[str, str], model_path: str | os.PathLike[str]) -> dict:
    """Decode a model's ``metadata_props`` and check them against :data:`METADATA_SCHEMA`.

    Parameters
    ----------
    props : mapping of str to str
        The model's metadata (onnxruntime's ``custom_metadata_map``).
    model_path : str or os.PathLike
        The model file, named in messages.

    Returns
    -------
    metadata : dict of str to Any
        Each entry JSON-decoded where it is JSON, kept as text otherwise.

    Raises
    ------
    ModelError
        If a value is nested deeper than :data:`MAX_METADATA_DEPTH`, or a key of
        :data:`METADATA_SCHEMA` (or a field of ``feature_config``) has the wrong type or a value
        out of range.
    """
    name = display_name(os.fspath(model_path))
    metadata: dict[str, Any] = {}
    for key, text in props.items():
        shown = display_name(key)
        try:
            value = json.loads(text)
        except RecursionError:  # json's decoder stops at the interpreter's recursion limit
            value = _TOO_DEEP
        except ValueError:
            value = text
        if value is _TOO_DEEP or _depth(value) > MAX_METADATA_DEPTH:
            raise ModelError(f"{name}: {shown!r} metadata is nested more than "
                             f"{MAX_METADATA_DEPTH} deep")
        spec = METADATA_SCHEMA.get(key)
        reason = None if spec is None else spec.check(value)
        if reason is None and key == "feature_config":
            reason = _feature_config_reason(value)
        if reason is not None:
            raise ModelError(f"{name}: invalid {shown!r} metadata: {reason}")
        metadata[key] = value
    return metadata


_TOO_DEEP = object()


def _depth(value: Any, budget: int = MAX_METADATA_DEPTH + 1) -> int:
    """Nesting depth of lists and objects (a scalar: 0), counted no deeper than ``budget``."""
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, list):
        return 0
    if budget <= 1:
        return 1
    deepest = 0
    for item in value:
        if isinstance(item, (dict, list)):
            deepest = max(deepest, _depth(item, budget - 1))
    return deepest + 1


def _feature_config_reason(config: dict[str, Any]) -> str | None:
    """What the schema cannot say field by field: frequencies within the analysis band."""
    nyquist = config.get("sr", 16000) / 2
    fmin, fmax = config.get("fmin", 0.0), config.get("fmax")
    if fmin >= nyquist:
        return f"fmin {fmin:g} Hz must be below sr/2 = {nyquist:g} Hz"
    if fmax is not None and fmax > nyquist:
        return f"fmax {fmax:g} Hz must be at most sr/2 = {nyquist:g} Hz"
    return None


def check_labels(labels: Any, model_path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Check a model's labels: printable text, each once; they are printed as they are.

    Parameters
    ----------
    labels : Any
        The ``labels`` metadata, decoded.
    model_path : str or os.PathLike
        The model file, named in messages.

    Returns
    -------
    labels : tuple of str

    Raises
    ------
    ModelError
        If ``labels`` is not a list of 1 to :data:`MAX_LABELS` strings of 1 to
        :data:`MAX_LABEL_CHARS` characters, if one holds a character that is not printable
        (a control character such as a newline or an escape, a format character such as a
        right-to-left override: ``str.isprintable``) or begins or ends with a space, or if one
        is repeated.
    """
    name = display_name(os.fspath(model_path))
    reason = List(Text(1, MAX_LABEL_CHARS), 1, MAX_LABELS).check(labels)
    if reason is not None:
        raise ModelError(f"{name}: 'labels' metadata must be a non-empty JSON list of strings: "
                         f"{reason}")
    for i, label in enumerate(labels):
        if not label.isprintable() or label != label.strip():
            raise ModelError(f"{name}: label {i} {label!r} is not printable text (control or "
                             "format characters, or spaces around it)")
    if len(set(labels)) != len(labels):
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        raise ModelError(f"{name}: 'labels' metadata repeats a name: {', '.join(repeated)}")
    return tuple(labels)
