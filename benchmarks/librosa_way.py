"""The seeds' way of classifying one clip: librosa features and a pickled scikit-learn pipeline.

What a user writes without ser-edge, run as a fresh process by ``benchmarks.cold_start`` and
``benchmarks.scaling``: ``librosa.load`` mono (soxr_hq), ``mfcc``, ``chroma_stft`` and a dB
``melspectrogram``, the statistics over time of every row, then the pipeline's
``predict_proba``. The parameters are those of the feature configuration in ``MODEL.json`` beside
the pickle (written by ``benchmarks._common.make_models``: the bundled model's, so both sides
compute the same features); without it, the seeds' librosa defaults (22050 Hz, n_fft 2048,
hop 512, 40 MFCC, 128 mels, tuning estimated, mean and std). It imports librosa, numpy and
scikit-learn only (not ser_edge).

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
from pathlib import Path

#: The seeds' parameters (librosa's defaults, 40 MFCC), used when no configuration is given.
SEEDS = {"features": ["mfcc", "chroma", "mel"], "sr": 22050, "n_fft": 2048, "hop_length": 512,
         "n_mfcc": 40, "n_mels": 128, "n_chroma": 12, "fmin": 0.0, "fmax": None, "htk": False,
         "tuning": None, "mel_db": True, "stats": ["mean", "std"]}


def load_config(model_path: str) -> dict:
    """The feature configuration beside the pickle (``MODEL.json``), else :data:`SEEDS`."""
    path = Path(model_path).with_suffix(".json")
    return json.loads(path.read_text()) if path.exists() else dict(SEEDS)


def features(path: str, cfg: dict = SEEDS):  # noqa: ANN201, B006 - numpy is imported lazily
    """The feature vector of one file for configuration ``cfg``, float32."""
    import librosa

    y, sr = librosa.load(path, sr=cfg["sr"], mono=True)
    return features_of(y, sr, cfg)


def features_of(y, sr: int, cfg: dict = SEEDS):  # noqa: ANN001, ANN201, B006 - lazy numpy
    """The feature vector of audio ``y`` at ``sr`` Hz: the three calls, dB and pooling."""
    import librosa
    import numpy as np

    stft = {"n_fft": cfg["n_fft"], "hop_length": cfg["hop_length"]}
    mel = {"n_mels": cfg["n_mels"], "fmin": cfg["fmin"], "fmax": cfg["fmax"], "htk": cfg["htk"]}
    blocks = {}
    for name in cfg["features"]:
        if name in ("mfcc", "mfcc_delta") and "mfcc" not in blocks:
            blocks["mfcc"] = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=cfg["n_mfcc"], **stft, **mel)
        if name == "mfcc_delta":
            blocks[name] = librosa.feature.delta(blocks["mfcc"], width=cfg.get("delta_width", 9))
        elif name == "chroma":
            blocks[name] = librosa.feature.chroma_stft(y=y, sr=sr, tuning=cfg["tuning"],
                                                       n_chroma=cfg["n_chroma"], **stft)
        elif name == "mel":
            m = librosa.feature.melspectrogram(y=y, sr=sr, **stft, **mel)
            blocks[name] = librosa.power_to_db(m, ref=1.0) if cfg["mel_db"] else m
    stats = {"mean": np.mean, "std": np.std, "min": np.min, "max": np.max}
    per_block = cfg["stats"] if isinstance(cfg["stats"], dict) else None
    return np.concatenate(
        [stats[s](blocks[b], axis=1) for b in cfg["features"]
         for s in (per_block.get(b, ()) if per_block else cfg["stats"])]
    ).astype(np.float32)


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
    cfg = load_config(argv[0])
    t2 = time.perf_counter()
    x = features(argv[1], cfg)
    proba = pipe.predict_proba(x[np.newaxis, :])[0]
    t3 = time.perf_counter()
    if len(argv) == 3:
        pipe.predict_proba(features(argv[1], cfg)[np.newaxis, :])
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
