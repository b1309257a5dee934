"""Write the pickled scikit-learn pipeline that ``benchmarks/librosa_way.py`` loads, on a Pi.

``benchmarks._common.make_models`` does this on a development machine, but it imports ser_edge
and export/; a Pi's librosa venv has neither. This writes the same pipeline with only numpy and
scikit-learn: ``Pipeline(StandardScaler, MLPClassifier((256,)))`` (the bundled model's hidden
layer size) fitted on seeded random rows of the width of the feature configuration in
``model.json`` beside the pickle when there is one (which ``librosa_way.py`` then also reads),
else of the seeds' layout (360 numbers). Its predictions mean nothing; its cost is that of the
real one.

usage::

    python make_pickle.py model.pkl
"""

from __future__ import annotations

import json
import pickle
import sys
import warnings
from pathlib import Path

LABELS = ["angry", "calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised"]
N_FEATURES = (40 + 12 + 128) * 2  # FeatureConfig(): mfcc, chroma, mel; mean and std
HIDDEN = (256,)  # export.train.DEFAULT_PARAMS["mlp"]["hidden_layer_sizes"]


def n_features(path: str) -> int:
    """Width of the vector of the configuration beside ``path``, else :data:`N_FEATURES`."""
    conf = Path(path).with_suffix(".json")
    if not conf.exists():
        return N_FEATURES
    cfg = json.loads(conf.read_text())
    rows = {"mfcc": cfg["n_mfcc"], "chroma": cfg["n_chroma"], "mel": cfg["n_mels"]}
    return sum(rows[f] for f in cfg["features"]) * len(cfg["stats"])


def main(path: str) -> None:
    import numpy as np
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40 * len(LABELS), n_features(path))).astype(np.float32)
    y = np.array(LABELS)[np.arange(len(x)) % len(LABELS)]
    clf = MLPClassifier(hidden_layer_sizes=HIDDEN, max_iter=20, random_state=0)
    pipe = Pipeline([("scaler", StandardScaler()), ("clf", clf)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: 20 iterations on noise
        pipe.fit(x, y)
    with open(path, "wb") as f:
        pickle.dump(pipe, f)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
