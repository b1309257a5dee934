"""End to end over every clip of RAVDESS and EmoDB: the runtime path equals the reference path.

For every bundled model (:data:`ser_edge.model.BUNDLED_MODELS`):

- runtime path: ``ser_edge`` audio loading, numpy features and the ONNX model
  (``Classifier.classify_many``), no librosa;
- reference path: librosa features (``export.dataset``, cached on disk: pooled vectors or frame
  matrices, as the model takes them) through the same ONNX model.

On every clip the two give the same label, and every probability agrees within 1e-3. And the
bundled model is what its committed recipe (``export/recipes/<name>.json``) says it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ser_edge.model import BUNDLED_MODELS, Classifier, Prediction

pytestmark = [pytest.mark.slow, pytest.mark.parity]

N_CLIPS = {"ravdess": 1440, "emodb": 535}
PROBA_ATOL = 1e-3
RECIPES = Path(__file__).resolve().parent.parent / "export" / "recipes"


@pytest.fixture(scope="module", params=sorted(BUNDLED_MODELS))
def bundled(request: pytest.FixtureRequest) -> Classifier:
    return Classifier(request.param)


def test_the_bundled_model_is_its_recipe(bundled: Classifier) -> None:
    """Features, emotions, corpora and augmentation in the metadata are the committed recipe's."""
    recipe = json.loads((RECIPES / f"{bundled.name}.json").read_text())
    trained = bundled.metadata["training"]["recipe"]
    for key in ("model", "corpora", "emotions", "seeds", "net", "params", "augment_seed"):
        if key in recipe:
            assert trained[key] == recipe[key], key
    for key, value in recipe.get("augment", {}).items():
        assert trained["augment"][key] == value, key
    pytest.importorskip("sklearn")
    from export.recipe import TrainingRecipe

    loaded = TrainingRecipe.load(RECIPES / f"{bundled.name}.json")  # an ensemble's: derived
    assert bundled.feature_config == loaded.feature_config
    assert set(bundled.labels) == set(loaded.emotions)
    if loaded.is_ensemble:  # each member as its committed recipe says
        assert trained["members"] == [m.to_dict() for m in loaded.members]
        assert trained["weights"] == list(loaded.weights)


@pytest.mark.parametrize("corpus", sorted(N_CLIPS))
def test_runtime_equals_reference_on_every_clip(bundled: Classifier, corpus: str,
                                                ravdess_dir: Path, emodb_dir: Path) -> None:
    pytest.importorskip("librosa")
    from export.dataset import frame_matrices, load_dataset

    where = {"ravdess": ravdess_dir, "emodb": emodb_dir}[corpus]
    data = load_dataset([f"{corpus}={where}"], bundled.feature_config, progress=False)
    assert len(data.clips) == N_CLIPS[corpus]
    if bundled.metadata.get("input_kind") == "frames":
        P_ref = np.concatenate([bundled._run(F[None].astype(np.float32))
                                for F in frame_matrices(data, progress=False)])
    else:
        P_ref = bundled._run(np.ascontiguousarray(data.X, dtype=np.float32))
    labels_ref = np.asarray(bundled.labels)[np.argmax(P_ref, axis=1)]

    results = list(bundled.classify_many([c.path for c in data.clips]))
    failed = [r for r in results if not isinstance(r, Prediction)]
    assert not failed, f"{len(failed)} clips failed, first: {failed[0].message}"
    P_run = np.array([[r.probabilities[k] for k in bundled.labels] for r in results])
    labels_run = np.array([r.label for r in results])

    wrong = np.flatnonzero(labels_run != labels_ref)
    diff = np.abs(P_run - P_ref).max(axis=1)
    far = np.flatnonzero(diff > PROBA_ATOL)
    worst = int(np.argmax(diff))
    name = lambda i: f"{Path(data.clips[i].path).parent.name}/{Path(data.clips[i].path).name}"  # noqa: E731
    print(f"{bundled.name} on {corpus}: {len(results)} clips, {wrong.size} labels differ; "
          f"largest probability difference {diff.max():.3g} ({name(worst)})")  # pytest -rP
    assert wrong.size == 0 and far.size == 0, (
        f"labels differ on {wrong.size} of {len(results)} clips ({[name(i) for i in wrong[:5]]});"
        f" probabilities differ by more than {PROBA_ATOL} on {far.size} clips; "
        f"worst {diff[worst]:.3g} on {name(worst)}")
