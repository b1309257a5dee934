"""Choose the robust recipe by measurement: level options, then augmentations, one at a time.

Each row trains a recipe on EmoBox's RAVDESS folds (with all of EmoDB in training, as the
bundled model is trained) and reports the EmoBox-fold UAR, the robustness of its labels (gain,
white noise, babble, telephone band, MP3, reverberation: :data:`export.augment.PERTURBATIONS`),
and the RAVDESS -> EmoDB cross-corpus UAR with its weakest emotion. Two stages:

- ``features``: the level options of :class:`ser_edge.features.FeatureConfig`, added one by
  one, without augmentation;
- ``augment``: with the chosen features, no augmentation, each augmentation alone, and
  combinations.

Rows are appended to a JSON file (a rerun skips the rows already there) and printed as a
Markdown table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ser_edge.features import FeatureConfig

from .augment import AUGMENTATIONS, PERTURBATIONS, AugmentConfig, babble_pools
from .experiment import Recipe, fold_scores, per_class_recall, robustness, run_splits
from .protocols import cross_corpus_split, emobox_groups, emodb_pair_groups, in_corpus_splits

__all__ = ["ROBUST_CONFIG", "FEATURE_STEPS", "AUGMENT_ROWS", "run_row", "ablate",
           "markdown_table"]

#: Every level option on: what the ``features`` stage ends with.
ROBUST_CONFIG = FeatureConfig(
    features=("mfcc", "chroma", "mel", "mfcc_delta"),
    stats={"mfcc": ("mean", "std"), "chroma": ("mean", "std"), "mel": ("std",),
           "mfcc_delta": ("std",)},
    top_db=60.0, level_db=-20.0, frames="active",
)

_LEGACY = FeatureConfig()

#: The ``features`` stage: (label, configuration), each adding one option to the one before.
FEATURE_STEPS: list[tuple[str, FeatureConfig]] = [
    ("today's features (bundled model)", _LEGACY),
    ("+ level normalisation (active frames at -20 dBFS)", FeatureConfig(level_db=-20.0)),
    ("+ pooling over active frames only", FeatureConfig(level_db=-20.0, frames="active")),
    ("+ top_db 60", FeatureConfig(level_db=-20.0, frames="active", top_db=60.0)),
    ("+ MFCC deltas (std)", FeatureConfig(
        features=("mfcc", "chroma", "mel", "mfcc_delta"), level_db=-20.0, frames="active",
        top_db=60.0, stats={"mfcc": ("mean", "std"), "chroma": ("mean", "std"),
                            "mel": ("mean", "std"), "mfcc_delta": ("std",)})),
    ("+ mel block: std only (no mean)", ROBUST_CONFIG),
]

#: The ``augment`` stage: (label, augmentation).
AUGMENT_ROWS: list[tuple[str, AugmentConfig]] = (
    [("no augmentation", AugmentConfig(kinds=(), copies=0))]
    + [(f"{name} alone", AugmentConfig(kinds=(name,), copies=2, p_default=1.0))
       for name in AUGMENTATIONS]
)

#: The emotions of the bundled model's vocabulary; EmoDB's boredom has no RAVDESS counterpart.
_EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


def _data(config: FeatureConfig, jobs: int, cache_dir: Path | None, quiet: bool) -> Any:
    from .dataset import load_dataset

    return load_dataset(["ravdess", "emodb"], config, emotions=list(_EMOTIONS), n_jobs=jobs,
                        cache_dir=cache_dir, progress=not quiet)


def _groups() -> dict[str, int]:
    groups = dict(emobox_groups())
    groups.update({s: 100 + k for s, k in emodb_pair_groups().items()})
    return groups


def run_row(
    label: str,
    config: FeatureConfig,
    recipe: Recipe,
    *,
    jobs: int = 2,
    cache_dir: Path | None = None,
    quiet: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``recipe`` on ``config``'s features over the EmoBox folds; score everything.

    Returns
    -------
    row : dict
        ``label``, ``feature_config``, ``recipe``, ``uar_mean``, ``uar_std``, per-fold UARs,
        ``robustness`` (per perturbation: ``uar``, ``label_unchanged``), ``cross_corpus``
        (RAVDESS -> EmoDB: ``uar``, ``recall``), ``seconds``.
    """
    from .dataset import augmented_features, perturbed_features

    t0 = time.time()
    data = _data(config, jobs, cache_dir, quiet)
    speakers, corpora, y = data.speakers, np.array([c.corpus for c in data.clips]), data.y
    groups = _groups()
    splits = in_corpus_splits(speakers, corpora, "ravdess", emobox_groups(), name="emobox")
    # Babble for a test clip: its fold's other tested speakers; for training: its own group's.
    others = [np.array([], int)] * len(y)
    for s in splits:
        for i in s.test:
            others[i] = s.test[speakers[s.test] != speakers[i]]
    variants = perturbed_features(data, list(PERTURBATIONS), others,
                                  only=np.flatnonzero(corpora == "ravdess"), n_jobs=jobs,
                                  cache_dir=cache_dir, progress=not quiet)
    X_aug = augmented_features(data, recipe.augment, seed=recipe.augment_seed,
                               pools=babble_pools(speakers, groups), n_jobs=jobs,
                               cache_dir=cache_dir, progress=not quiet)
    result = run_splits(data.X, y, splits, recipe, X_aug=X_aug, variants=variants,
                        labels=list(_EMOTIONS), n_jobs=jobs)
    scores = fold_scores(result, y)
    cross = cross_corpus_split(corpora, y, "ravdess", "emodb")
    cc = run_splits(data.X, y, [cross], recipe, X_aug=X_aug, labels=list(_EMOTIONS), n_jobs=1)
    row = {
        "label": label,
        "feature_config": json.loads(config.to_json()),
        "recipe": recipe.to_dict(),
        "uar_mean": scores["uar_mean"],
        "uar_std": scores["uar_std"],
        "fold_uar": [f["uar"] for f in scores["folds"]],
        "recall": per_class_recall(result, y)["recall"],
        "robustness": robustness(result, y),
        "cross_corpus": {"uar": fold_scores(cc, y)["uar_mean"],
                         "recall": per_class_recall(cc, y)["recall"]},
        "seconds": time.time() - t0,
    }
    log(markdown_table([row], header=False))
    return row


_COLUMNS = [("gain -20 dB", "gain -20"), ("gain +10 dB", "gain +10"),
            ("white noise 20 dB SNR", "white 20"), ("white noise 10 dB SNR", "white 10"),
            ("babble 10 dB SNR", "babble 10"), ("telephone band", "phone"),
            ("MP3 32 kbit/s", "MP3 32k"), ("reverberation RT60 0.5 s", "RT60 0.5")]


def markdown_table(rows: Sequence[dict[str, Any]], header: bool = True) -> str:
    """Rows as a Markdown table: UAR, share of labels unchanged per perturbation, cross-corpus."""
    lines = []
    if header:
        heads = ["recipe", "EmoBox UAR", *[h for _, h in _COLUMNS], "RAVDESS->EmoDB UAR",
                 "weakest emotion"]
        lines += ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for r in rows:
        rob = r["robustness"]
        rec = r["cross_corpus"]["recall"]
        weakest = min(rec, key=rec.get)
        cells = [r["label"], f"{r['uar_mean']:.3f} ± {r['uar_std']:.3f}",
                 *[f"{rob[k]['label_unchanged']:.2f}" for k, _ in _COLUMNS],
                 f"{r['cross_corpus']['uar']:.3f}", f"{weakest} {rec[weakest]:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ablate(
    stage: str,
    out: Path,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    rows: Sequence[tuple[str, Any]] | None = None,
    config: FeatureConfig = ROBUST_CONFIG,
    jobs: int = 2,
    cache_dir: Path | None = None,
    quiet: bool = True,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run a stage's rows (skipping those already in ``out``), appending each to ``out``.

    Parameters
    ----------
    stage : {"features", "augment"}
    out : Path
        JSON file of rows (``{"rows": [...]}``).
    seeds : sequence of int
        The MLP ensemble's seeds.
    rows : sequence of (label, FeatureConfig or AugmentConfig), optional
        Instead of the stage's own (:data:`FEATURE_STEPS`, :data:`AUGMENT_ROWS`).
    config : FeatureConfig
        The features of the ``augment`` stage.

    Returns
    -------
    rows : list of dict
        Every row of ``out`` after the run.
    """
    done = json.loads(out.read_text())["rows"] if out.is_file() else []
    have = {r["label"] for r in done}
    todo = rows if rows is not None else (FEATURE_STEPS if stage == "features" else AUGMENT_ROWS)
    log(markdown_table([], header=True))
    for label, item in todo:
        if label in have:
            continue
        if stage == "features":
            row = run_row(label, item, Recipe(seeds=tuple(seeds)), jobs=jobs,
                          cache_dir=cache_dir, quiet=quiet, log=log)
        else:
            row = run_row(label, config, Recipe(seeds=tuple(seeds), augment=item), jobs=jobs,
                          cache_dir=cache_dir, quiet=quiet, log=log)
        done.append(row)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"rows": done}, indent=1) + "\n")
    return done
