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


# -- model files: metadata and outputs ----------------------------------------------------------

#: Mutated models per test: each is an ONNX file written, loaded, and (if it loads) run.
MODEL_CASES = 120


@pytest.fixture(scope="module")
def features_model(build_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny valid model of pooled features: the source of the mutants."""
    return build_model(tmp_path_factory.mktemp("fuzz-models") / "tiny.onnx")


def _voice(sr: int = 16000, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    phase = 2 * np.pi * np.cumsum(150 + 30 * np.sin(2 * np.pi * 1.3 * t)) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 11))
    envelope = np.sqrt(np.clip(np.sin(2 * np.pi * 4 * t), 0, None))
    return (0.2 * voice * envelope).astype(np.float32)


def _check_prediction(p: object, labels: tuple[str, ...]) -> str | None:
    """Why a prediction is not one (None if it is): finite probabilities summing to 1."""
    import json

    probs = np.array(list(p.probabilities.values()))
    if list(p.probabilities) != list(labels) or p.label not in labels:
        return f"labels {list(p.probabilities)}"
    if not np.isfinite(probs).all() or (probs < -1e-3).any() or abs(probs.sum() - 1) > 1e-3:
        return f"probabilities {probs}"
    json.dumps(p.to_dict(), allow_nan=False)  # valid JSON: no NaN
    return None


def test_mutated_model_metadata_gives_model_errors_only(features_model: Path, tmp_path: Path,
                                                        capfd: pytest.CaptureFixture[str]
                                                        ) -> None:
    """Metadata mutated anywhere (types, ranges, NaN, nesting, control characters, keys): the
    model loads and gives probabilities, or :class:`ModelError` says why; nothing else comes
    out, no warning, and nothing the metadata sizes is allocated (tracemalloc)."""
    from ser_edge import ModelError
    from ser_edge.cli import _describe
    from tests.fuzz.models import mutate_metadata
    from tests.hostile import metadata_of, rewrite_metadata

    props = metadata_of(features_model)
    rng = np.random.default_rng(SEED + 1)
    y = _voice()
    problems: list[str] = []
    outcomes = {"loaded": 0, "refused": 0}
    tracemalloc.start()
    try:
        for i in range(MODEL_CASES):
            mutant = mutate_metadata(props, rng)
            path = rewrite_metadata(features_model, tmp_path / f"m{i:03d}.onnx",
                                    **{k: mutant.get(k) for k in {*props, *mutant}})
            tracemalloc.reset_peak()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    clf = Classifier(path)
                    outcomes["loaded"] += 1
                    _describe(clf)  # what `ser-edge info` prints
                    try:
                        reason = _check_prediction(clf.predict(y, 16000), clf.labels)
                    except SerEdgeError:
                        reason = None
                    if reason:
                        problems.append(f"case {i}: {reason}")
            except ModelError as exc:
                outcomes["refused"] += 1
                if "\n" in str(exc) or path.name not in str(exc):
                    problems.append(f"case {i}: message {str(exc)[:200]!r}")
            except Exception as exc:  # noqa: BLE001 - what the test is looking for
                changed = {k: v[:80] for k, v in mutant.items() if props.get(k) != v}
                problems.append(f"case {i}: {type(exc).__name__}: {str(exc)[:200]} ({changed})")
            peak = tracemalloc.get_traced_memory()[1]
            if peak > PEAK_BYTES:
                problems.append(f"case {i}: {peak >> 20} MiB allocated")
            path.unlink()
    finally:
        tracemalloc.stop()
    assert not problems, "\n".join(problems[:20])
    print(outcomes)
    assert outcomes["loaded"] > 0 and outcomes["refused"] > 0, outcomes
    assert capfd.readouterr().err == "", "something wrote to file descriptor 2"


def test_odd_model_outputs_are_probabilities_or_model_errors(features_model: Path,
                                                             tmp_path: Path) -> None:
    """A model whose output is of another shape or type, or not probabilities (NaN, logits,
    negative, a sum off 1): refused at load or at inference with a :class:`ModelError`, or, if
    it is probabilities, a prediction that is valid JSON; never a label for NaN."""
    from ser_edge import ModelError
    from tests.fuzz.models import odd_output
    from tests.hostile import constant_output_model

    rng = np.random.default_rng(SEED + 2)
    y = _voice()
    problems: list[str] = []
    outcomes = {"predicted": 0, "refused": 0}
    n_labels = len(Classifier(features_model).labels)
    for i in range(MODEL_CASES // 2):
        value = odd_output(n_labels, rng)
        path = constant_output_model(features_model, tmp_path / f"o{i:03d}.onnx", value)
        what = f"case {i}: output {value.dtype} {value.shape} {value.ravel()[:3]}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                clf = Classifier(path)
                p = clf.predict(y, 16000)
            reason = _check_prediction(p, clf.labels)
            if reason:
                problems.append(f"{what}: {reason}")
            outcomes["predicted"] += 1
        except ModelError as exc:
            outcomes["refused"] += 1
            if "\n" in str(exc) or path.name not in str(exc):
                problems.append(f"{what}: message {str(exc)[:200]!r}")
        except Exception as exc:  # noqa: BLE001 - what the test is looking for
            problems.append(f"{what}: {type(exc).__name__}: {str(exc)[:200]}")
        path.unlink()
    assert not problems, "\n".join(problems[:20])
    print(outcomes)
    assert outcomes["predicted"] > 0 and outcomes["refused"] > 0, outcomes
