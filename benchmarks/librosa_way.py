"""The seeds' way of classifying one clip: librosa features and a pickled scikit-learn pipeline.

What a user writes without ser-edge, run as a fresh process by ``benchmarks.cold_start`` and
``benchmarks.scaling``: ``librosa.load`` at 22050 Hz mono (soxr_hq), ``mfcc`` (40 coefficients),
``chroma_stft`` (tuning estimated) and a dB ``melspectrogram`` (128 bands), the mean and standard
deviation over time of every row (ser-edge's ``FeatureConfig()`` layout, 360 numbers), then the
pipeline's ``predict_proba``. It imports librosa, numpy and scikit-learn only (not ser_edge).

usage::

    python benchmarks/librosa_way.py MODEL.pkl CLIP [--timing]

prints one JSON line: path, label, probabilities. With ``--timing`` it also classifies the clip a
second time and adds the seconds spent importing, loading the model, classifying the first time
(which includes librosa's lazy imports and numba's cache loads) and the second time (warm).
"""

from __future__ import annotations

import json
import pickle
import sys
import time


def features(path: str):  # noqa: ANN201 - numpy is imported lazily, after the clock starts
    """The seeds' feature vector of one file, shape (360,), float32."""
    import librosa
    import numpy as np

    y, sr = librosa.load(path, sr=22050, mono=True)
    blocks = [
        librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40),
        librosa.feature.chroma_stft(y=y, sr=sr),
        librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=128), ref=1.0),
    ]
    return np.concatenate([np.r_[b.mean(axis=1), b.std(axis=1)] for b in blocks]).astype(
        np.float32
    )


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] != "--timing"):
        print(__doc__, file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    import librosa  # noqa: F401 - the import is part of the cost
    import numpy as np
    import sklearn  # noqa: F401

    t1 = time.perf_counter()
    with open(argv[0], "rb") as f:
        pipe = pickle.load(f)
    t2 = time.perf_counter()
    x = features(argv[1])
    proba = pipe.predict_proba(x[np.newaxis, :])[0]
    t3 = time.perf_counter()
    if len(argv) == 3:
        pipe.predict_proba(features(argv[1])[np.newaxis, :])
    t4 = time.perf_counter()
    classes = [str(c) for c in pipe.classes_]
    out = {
        "path": argv[1],
        "label": classes[int(np.argmax(proba))],
        "probabilities": {c: float(p) for c, p in zip(classes, proba, strict=True)},
    }
    if len(argv) == 3:
        out["timing_s"] = {"import": t1 - t0, "model": t2 - t1, "classify": t3 - t2,
                           "classify_again": t4 - t3}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
