"""A seeded mutation fuzz test of the public loaders, in the default run (a few seconds).

Valid WAV, FLAC, OGG and MP3 files are made, then mutated byte by byte (headers more than bodies:
bit flips, random bytes, huge length fields, truncation, splices; see ``tests/fuzz/seeds.py``),
and each mutant goes through ``audio.load``, ``AudioStream`` (a file object, streamed) and
``Classifier.classify`` (a path and a file object). Every exception must be a
:class:`~ser_edge.SerEdgeError`, no warning but :class:`~ser_edge.AudioWarning` may be raised
(numpy's RuntimeWarnings are errors here), nothing may reach file descriptor 2 (mpg123's chatter,
cffi's tracebacks), and memory must stay bounded: the peak of numpy's and Python's allocations
per call (tracemalloc) and the growth of the process's peak resident memory.

A longer, coverage-guided run: ``tests/fuzz/atheris_loaders.py`` (see docs/development.md).
"""

from __future__ import annotations

import io
import resource
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

from ser_edge import AudioWarning, SerEdgeError, audio
from ser_edge.model import BUNDLED_MODEL, Classifier
from tests.fuzz.seeds import SUFFIX, flac_with_total_samples, mutate, seed_files

SEED = 20261202
MUTANTS_PER_SEED = 40

#: Most memory one call may allocate (tracemalloc's peak): the seeds decode to ~30 KB, so this
#: only trips on allocations sized by a header's claims rather than by the data.
PEAK_BYTES = 64 << 20

#: Most the process's peak resident memory may grow over the whole run.
RSS_GROWTH_BYTES = 256 << 20


@pytest.fixture(scope="module")
def clf(build_model, tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    if BUNDLED_MODEL.is_file():
        return Classifier()
    return Classifier(build_model(tmp_path_factory.mktemp("fuzz") / "tiny.onnx"))


def _calls(clf: Classifier, path: Path, data: bytes):
    yield "audio.load(path, sr=None)", lambda: audio.load(path, sr=None)
    yield "audio.load(path, sr=22050, mono=False)", lambda: audio.load(path, sr=22050, mono=False)
    yield "AudioStream(BytesIO, sr=16000)", lambda: _stream(io.BytesIO(data))
    yield "Classifier.classify(path)", lambda: clf.classify(path)
    yield "Classifier.classify(BytesIO)", lambda: clf.classify(io.BytesIO(data))


def _stream(f: io.BytesIO) -> None:
    with audio.AudioStream(f, sr=16000) as stream:
        for _ in stream:
            pass
        stream.read()


def _rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def test_mutated_files_raise_only_ser_edge_errors(clf: Classifier, tmp_path: Path,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    seeds = seed_files()
    rng = np.random.default_rng(SEED)
    cases = [(name, mutate(data, rng, list(seeds.values())))
             for name, data in seeds.items() for _ in range(MUTANTS_PER_SEED)]
    # What the fuzzer found: a FLAC header claiming 2**32 + 5000 frames.
    cases.append(("flac", flac_with_total_samples(seeds["flac"], 2**32 + 5000)))
    problems: list[str] = []
    outcomes = {"ok": 0, "error": 0}
    rss_before = _rss_bytes()
    tracemalloc.start()
    try:
        for i, (name, data) in enumerate(cases):
            path = tmp_path / f"case{i:03d}{SUFFIX[name]}"
            path.write_bytes(data)
            for what, call in _calls(clf, path, data):
                tracemalloc.reset_peak()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("error")
                        warnings.simplefilter("ignore", AudioWarning)
                        call()
                    outcomes["ok"] += 1
                except SerEdgeError as exc:
                    outcomes["error"] += 1
                    if "\n" in str(exc) or path.name not in str(exc) and "BytesIO" not in str(exc):
                        problems.append(f"case {i} ({name}), {what}: message {str(exc)!r}")
                except Exception as exc:  # noqa: BLE001 - what the test is looking for
                    problems.append(f"case {i} ({name}), {what}: {type(exc).__name__}: {exc}")
                peak = tracemalloc.get_traced_memory()[1]
                if peak > PEAK_BYTES:
                    problems.append(f"case {i} ({name}), {what}: {peak >> 20} MiB allocated")
            path.unlink()
    finally:
        tracemalloc.stop()
    rss_growth = _rss_bytes() - rss_before
    assert not problems, "\n".join(problems[:20])
    assert rss_growth < RSS_GROWTH_BYTES, f"peak resident memory grew by {rss_growth >> 20} MiB"
    # Both outcomes happen: the mutants are neither all harmless nor all fatal.
    print(outcomes)
    assert outcomes["ok"] > 0 and outcomes["error"] > 0, outcomes
    assert capfd.readouterr().err == "", "something wrote to file descriptor 2"
