"""How sources are named: a path's ``str``, and the same name made fit to print.

Kept apart from :mod:`ser_edge.audio` (which loads numpy and libsndfile) so that the command line
can name files before anything heavy is imported.
"""

from __future__ import annotations

import os

__all__ = ["source_name", "display_name", "printable"]


def source_name(source: object) -> str:
    """The name of an audio source, as :attr:`ser_edge.Prediction.path` reports it.

    Parameters
    ----------
    source : str, bytes, os.PathLike or file object
        A path, or a file object (its ``name`` if it has a str or bytes one, else its type).

    Returns
    -------
    name : str
        ``os.fsdecode`` of a path (bytes that are not UTF-8 become lone surrogates, as
        ``os.listdir`` gives them, so the name opens the same file), the file object's ``name``
        (``'<stdin>'`` for ``sys.stdin.buffer``), or ``'<BytesIO>'`` and the like.
    """
    if isinstance(source, (str, bytes, os.PathLike)):
        return os.fsdecode(source)
    name = getattr(source, "name", None)
    if isinstance(name, (str, bytes)):
        return os.fsdecode(name)
    return f"<{type(source).__name__}>"


_CONTROL = {i: f"\\x{i:02x}" for i in [*range(0x20), 0x7F]}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
if os.sep == "/":  # a backslash in a name is escaped too: no two names print alike
    _CONTROL[ord("\\")] = "\\\\"


def display_name(path: object) -> str:
    r"""A file name fit to print on one line of UTF-8: how messages and the CLI show names.

    Bytes that are not valid UTF-8 (a name from another system's encoding, held in a ``str`` as
    Python's ``surrogateescape`` lone surrogates) are shown as ``\xNN``, the byte's value in hex,
    as Python's ``backslashreplace`` shows them: ``b'caf\xe9.wav'`` prints as ``caf\xe9.wav``.
    Control characters are escaped alike (``\n``, ``\t``, ``\x1b``), so a name never breaks a
    line or drives the terminal. A backslash is shown doubled (``\\``), as GNU ``ls -b`` shows
    it, so that no two names print alike: a name holding a newline prints ``a\nb.wav``, one
    holding a backslash and an ``n`` prints ``a\\nb.wav``; results files key their records by
    this name. (On Windows, where a backslash separates folders and no name holds one or a
    control character, it is left alone.) Every other name, valid UTF-8 in any script, is shown
    unchanged.

    Parameters
    ----------
    path : str, bytes, os.PathLike or file object
        A path or a source, as :func:`source_name` takes.

    Returns
    -------
    name : str
        Valid UTF-8 without control characters; a different name gives a different string.
    """
    name = (path if isinstance(path, str) else source_name(path)).translate(_CONTROL)
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # lone surrogates that no file system gave
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


def printable(text: str) -> str:
    r"""``text`` with every character that is not printable escaped: what a model's metadata shows.

    Control characters (``\n``, ``\x1b``: a terminal's escape sequences), C1 controls, format
    characters (a right-to-left override) and line separators become ``\xNN``, ``\uNNNN``, as
    Python's ``repr`` writes them; spaces and every printable character of any script stay.

    Parameters
    ----------
    text : str

    Returns
    -------
    text : str
        One line, printable (``str.isprintable`` but for spaces).
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)
