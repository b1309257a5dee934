"""Coverage-guided fuzzing of the public loaders with atheris (libFuzzer for Python).

Each input is one selector byte and the bytes of a file. The selector picks the file name's
extension (``.wav``, ``.flac``, ``.ogg``, ``.mp3``: libsndfile and ser-edge's MP3 handling look at
it), whether the data arrive as a path or as a file object, and the call: ``audio.load`` at the
file's own rate, an ``AudioStream`` read in pieces and whole, or ``Classifier.classify``; or, for
the fourth call, the bytes are a model's metadata value (``labels``, ``feature_config``,
``training`` or ``min_frames``, by the same two bits as the extension), checked as a model's
are (:func:`ser_edge.modelfile.decode_metadata`), and a ``feature_config`` that passes is used to
compute features of a quarter second of sound. Any
exception other than a :class:`~ser_edge.SerEdgeError`, and any warning other than an
:class:`~ser_edge.AudioWarning` (numpy's RuntimeWarnings included), is a crash that libFuzzer
reports with the input that caused it; ``-rss_limit_mb`` catches memory that follows a header's
claims instead of the data.

Run from the project root, with atheris installed (``pip install -e ".[fuzz]"``)::

    python tests/fuzz/atheris_loaders.py -max_total_time=300 -rss_limit_mb=2048 corpus/

``corpus/`` (created if missing, and seeded with the files of ``tests/fuzz/seeds.py``) keeps
what libFuzzer finds interesting between runs; without a folder a temporary one is used. Other
libFuzzer options work as usual (``-runs=N``, ``-jobs=N``, ``-print_final_stats=1``); a crash
writes ``crash-<sha1>`` in the working directory, which the same command replays when given as
the only argument.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import warnings

import atheris

# This checkout's ser_edge and tests.fuzz, whatever the working directory.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

with atheris.instrument_imports(include=["ser_edge"]):
    import numpy as np

    from ser_edge import AudioWarning, SerEdgeError, audio, modelfile
    from ser_edge.features import FeatureConfig, feature_vector
    from ser_edge.model import Classifier

SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
CALLS = ("load", "stream", "classify", "metadata")
#: The metadata key of a ``"metadata"`` input, by its extension's two bits.
METADATA_KEYS = ("labels", "feature_config", "training", "min_frames")

_CLF: Classifier | None = None
_DIR = tempfile.mkdtemp(prefix="ser-edge-fuzz-")


def selector(suffix: str, as_path: bool, call: str) -> int:
    """The first byte of an input that makes it a ``suffix`` file, read by ``call``."""
    return SUFFIXES.index(suffix) | (as_path << 2) | (CALLS.index(call) << 3)


def test_one_input(data: bytes) -> None:
    """Feed one input to one loader; only SerEdgeError may come out."""
    global _CLF
    if len(data) < 2:
        return
    suffix = SUFFIXES[data[0] & 3]
    as_path = bool(data[0] & 4)
    call = CALLS[(data[0] >> 3) % len(CALLS)]
    body = data[1:]
    if call == "metadata":
        _metadata(METADATA_KEYS[data[0] & 3], body.decode("utf-8", "replace"))
        return
    if as_path:
        source: object = os.path.join(_DIR, "input" + suffix)
        with open(source, "wb") as f:
            f.write(body)
    else:
        source = io.BytesIO(body)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", AudioWarning)
        try:
            if call == "load":
                audio.load(source, sr=None, mono=False)
            elif call == "stream":
                with audio.AudioStream(source, sr=16000) as stream:
                    for _ in stream:
                        pass
                    stream.read()
            else:
                if _CLF is None:
                    _CLF = Classifier()
                _CLF.classify(source)
        except SerEdgeError:
            pass


def _metadata(key: str, text: str) -> None:
    """Check ``text`` as the model metadata ``key``; use a feature configuration that passes."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            metadata = modelfile.decode_metadata({key: text}, "fuzz.onnx")
            if key == "labels":
                modelfile.check_labels(metadata[key], "fuzz.onnx")
            elif key == "feature_config":
                config = FeatureConfig.from_json(text)
                t = np.arange(config.sr // 4) / config.sr
                y = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
                feature_vector(y, sr=config.sr, config=config)
        except SerEdgeError:
            pass


def _seed_corpus(folder: str) -> None:
    from tests.fuzz.seeds import SUFFIX, seed_files

    os.makedirs(folder, exist_ok=True)
    if os.listdir(folder):
        return
    from tests.fuzz.seeds import metadata_seeds

    for i, (key, text) in enumerate(metadata_seeds()):
        first = METADATA_KEYS.index(key) | (CALLS.index("metadata") << 3)
        with open(os.path.join(folder, f"seed-metadata-{key}-{i}"), "wb") as f:
            f.write(bytes([first]) + text.encode())
    for name, data in seed_files().items():
        for as_path in (False, True):
            for call in CALLS[:3]:
                first = selector(SUFFIX[name], as_path, call)
                path = os.path.join(folder, f"seed-{name}-{call}-{int(as_path)}")
                with open(path, "wb") as f:
                    f.write(bytes([first]) + data)


def main(argv: list[str]) -> None:
    """Run libFuzzer with ``argv``; a folder argument is the corpus, seeded when empty."""
    argv = list(argv)
    folders = [a for a in argv[1:] if not a.startswith("-") and not os.path.isfile(a)]
    if not folders and not any(os.path.isfile(a) for a in argv[1:]):
        folders = [tempfile.mkdtemp(prefix="ser-edge-corpus-")]
        argv.append(folders[0])
    for folder in folders:
        _seed_corpus(folder)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
