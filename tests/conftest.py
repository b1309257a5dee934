"""Shared fixtures: seeded synthetic signals and the real corpora under ``SER_EDGE_DATA``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.paths import DATA_ENV, corpus_dir, data_root


def _corpus(name: str) -> Path:
    path = corpus_dir(name)
    if path is None:
        pytest.skip(f"corpus {name!r} not found under {data_root()} (set {DATA_ENV} to its folder)")
    return path


@pytest.fixture(scope="session")
def ravdess_dir() -> Path:
    """The RAVDESS folder (``Actor_01`` .. ``Actor_24``), or skip."""
    return _corpus("ravdess")


@pytest.fixture(scope="session")
def emodb_dir() -> Path:
    """The EmoDB clips folder, or skip."""
    return _corpus("emodb")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261120)
