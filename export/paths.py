"""Where the real corpora live: one setting, ``SER_EDGE_DATA``, for tests, scripts, benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV", "data_root", "corpus_dir"]

#: The environment variable that points at the folder holding ``ravdess/`` and ``emodb/``.
DATA_ENV = "SER_EDGE_DATA"

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """Return the data folder: ``$SER_EDGE_DATA``, else ``../shared/data`` beside the project."""
    value = os.environ.get(DATA_ENV)
    if value:
        return Path(value).expanduser()
    return _PROJECT_ROOT.parent / "shared" / "data"


def corpus_dir(name: str) -> Path | None:
    """Return the folder of corpus ``name`` (``"ravdess"``, ``"emodb"``), or None if it is absent.

    For EmoDB that is the folder holding the clips (``emodb/wav``).
    """
    sub = {"emodb": Path("emodb") / "wav"}.get(name, Path(name))
    path = data_root() / sub
    return path if path.is_dir() else None
