"""A model from one file: the recipe, its honest evaluation, and the trained ONNX model.

A recipe (``export/recipes/*.json``) names everything a model is made of: corpora and emotions,
the :class:`~ser_edge.features.FeatureConfig`, the classifier (a scikit-learn model with its
ensemble seeds, or a network's :class:`~export.nets.train.NetConfig`), the augmentation and
whether to calibrate. :func:`evaluate_recipe` measures it the way the report shows it; the
ONNX model :func:`build_model` writes carries those figures and the recipe in its metadata::

    python -m export evaluate --recipe export/recipes/mlp.json --out ser_edge/models/mlp-report
    python -m export train --recipe export/recipes/mlp.json --report ser_edge/models/mlp-report
        --out ser_edge/models/mlp.onnx            (one command, on one line)

Evaluation (every figure speaker-independent and out-of-fold):

- **EmoBox folds** (headline, RAVDESS, :mod:`export.protocols`), beside EmoBox's published
  results; with the robustness perturbations of :data:`export.augment.PERTURBATIONS` on the
  test clips, and calibration: a temperature fitted per fold on held-out *training* speakers.
- **contiguous folds** (RAVDESS, continuity), **EmoDB pairs** (EmoDB, by speaker).
- **cross-corpus** both ways over the shared emotions, trained on one corpus only.

In every in-corpus protocol, training takes all clips of the other corpora too (the model is
trained on them); babble for augmented training clips comes from the clip's own fold group.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ser_edge.errors import ParameterError
from ser_edge.features import FeatureConfig

from .augment import PERTURBATIONS, AugmentConfig, babble_pools
from .protocols import (
    Split,
    contiguous_groups,
    cross_corpus_split,
    emobox_groups,
    emobox_published,
    emodb_pair_groups,
    in_corpus_splits,
)

__all__ = ["TrainingRecipe", "evaluate_recipe", "build_model", "NET_MODELS", "EMOTIONS"]

#: The emotion vocabulary of the bundled models: RAVDESS's eight (EmoDB's boredom has no
#: counterpart and is left out; EmoDB has no calm and no surprised).
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")

#: Recipe models that are networks (the rest are scikit-learn's, :data:`export.train.MODELS`).
NET_MODELS = ("cnn", "crnn")


@dataclass(frozen=True)
class TrainingRecipe:
    """Everything a model is made of, as one JSON file.

    Parameters
    ----------
    name : str
        Short name (``"mlp"``, ``"cnn"``): the model's name in ``ser-edge models``.
    model : str
        ``"mlp"``, ``"svm"``, ``"rf"``, ``"knn"``, ``"tree"`` or a network, ``"cnn"``, ``"crnn"``.
    feature_config : FeatureConfig
        Pooled features (scikit-learn models) or the frame matrix (networks).
    corpora : tuple of str
        Corpora trained on (``export.dataset.resolve_corpus`` specs).
    emotions : tuple of str
        The emotions kept (others, such as EmoDB's boredom, are left out).
    params : mapping
        scikit-learn classifier parameters over :data:`export.train.DEFAULT_PARAMS`.
    seeds : tuple of int
        scikit-learn models: one per seed, soft-voted. Networks: the first is the seed.
    net : mapping
        :class:`~export.nets.train.NetConfig` fields (networks).
    augment : AugmentConfig
    augment_seed : int
    calibrate : bool
        Fit a temperature (per fold on held-out training speakers; for the model, on the
        EmoBox folds' out-of-fold probabilities) and store it in the model.
    description : str
    """

    name: str
    model: str = "mlp"
    feature_config: FeatureConfig = field(default_factory=FeatureConfig)
    corpora: tuple[str, ...] = ("ravdess", "emodb")
    emotions: tuple[str, ...] = EMOTIONS
    params: tuple[tuple[str, Any], ...] | Mapping[str, Any] = ()
    seeds: tuple[int, ...] = (0,)
    net: tuple[tuple[str, Any], ...] | Mapping[str, Any] = ()
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(copies=0))
    augment_seed: int = 0
    calibrate: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        from .train import MODELS

        if self.model not in MODELS and self.model not in NET_MODELS:
            raise ParameterError(f"unknown model {self.model!r}; choose from "
                                 f"{MODELS + NET_MODELS}")
        object.__setattr__(self, "params", tuple(sorted(dict(self.params).items())))
        object.__setattr__(self, "net", tuple(sorted(dict(self.net).items())))
        object.__setattr__(self, "corpora", tuple(self.corpora))
        object.__setattr__(self, "emotions", tuple(self.emotions))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if not self.seeds:
            raise ParameterError("a recipe needs at least one seed")

    @property
    def is_net(self) -> bool:
        """Whether the model is a frame-level network."""
        return self.model in NET_MODELS

    def net_config(self, seed: int | None = None) -> Any:
        """The network's :class:`~export.nets.train.NetConfig` (networks only)."""
        from .nets.train import NetConfig

        fields = dict(self.net)
        fields["architecture"] = self.model
        fields["seed"] = self.seeds[0] if seed is None else seed
        return NetConfig(**fields)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (what :meth:`from_dict` reads)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["feature_config"] = json.loads(self.feature_config.to_json())
        data["params"] = dict(self.params)
        data["net"] = dict(self.net)
        data["augment"] = json.loads(self.augment.to_json())
        for key in ("corpora", "emotions", "seeds"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingRecipe:
        """Build from :meth:`to_dict`'s fields.

        Raises
        ------
        ParameterError
            If a field is unknown or invalid.
        """
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParameterError(f"recipe has unknown fields: {', '.join(unknown)}")
        if "feature_config" in data:
            data["feature_config"] = FeatureConfig.from_json(json.dumps(data["feature_config"]))
        if "augment" in data:
            data["augment"] = AugmentConfig(**data["augment"])
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> TrainingRecipe:
        """Read a recipe file.

        Raises
        ------
        ParameterError
            If the file cannot be read or is not a valid recipe.
        """
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ParameterError(f"{path}: not a valid recipe ({exc})") from None


# -- data --------------------------------------------------------------------------------------


def _groups() -> dict[str, int]:
    """Babble groups: RAVDESS by EmoBox fold, EmoDB by speaker pair."""
    return {**emobox_groups(), **{s: 100 + k for s, k in emodb_pair_groups().items()}}


@dataclass
class _Inputs:
    data: Any
    corpora: np.ndarray
    inputs: Any  # (n_clips, n_features) vectors, or a list of frame matrices
    augmented: Any  # (copies, n_clips, n_features), or a list (copies) of lists
    variants: dict[str, Any]


def _inputs(recipe: TrainingRecipe, *, jobs: int, cache_dir: Path | None, quiet: bool,
            pools_groups: Mapping[str, int] | None = None, robust: bool = True) -> _Inputs:
    from .dataset import augmented_features, frame_matrices, load_dataset, perturbed_features

    data = load_dataset(list(recipe.corpora), recipe.feature_config, emotions=list(recipe.emotions),
                        n_jobs=jobs, cache_dir=cache_dir, progress=not quiet)
    corpora = np.array([c.corpus for c in data.clips])
    output = "frames" if recipe.is_net else "vector"
    inputs = frame_matrices(data, n_jobs=jobs, cache_dir=cache_dir,
                            progress=not quiet) if recipe.is_net else data.X
    pools = babble_pools(data.speakers, pools_groups or _groups()) if (
        "babble" in recipe.augment.kinds) else None
    augmented = augmented_features(data, recipe.augment, seed=recipe.augment_seed, pools=pools,
                                   n_jobs=jobs, cache_dir=cache_dir, progress=not quiet,
                                   output=output)
    variants: dict[str, Any] = {}
    if robust and "ravdess" in set(corpora):
        splits = in_corpus_splits(data.speakers, corpora, "ravdess", emobox_groups(),
                                  name="emobox")
        others = [np.array([], int)] * len(corpora)
        for s in splits:  # babble of a test clip: its fold's other tested speakers
            for i in s.test:
                others[i] = s.test[data.speakers[s.test] != data.speakers[i]]
        variants = perturbed_features(data, list(PERTURBATIONS), others,
                                      only=np.flatnonzero(corpora == "ravdess"), n_jobs=jobs,
                                      cache_dir=cache_dir, progress=not quiet, output=output)
    return _Inputs(data, corpora, inputs, augmented, variants)


# -- training and predicting on one split --------------------------------------------------------


def _held_out(speakers: np.ndarray, corpora: np.ndarray, train: np.ndarray,
              seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training clips split into (fit, validation) by speaker: calibration's held-out voices."""
    from .nets.train import validation_speakers

    held = validation_speakers(speakers[train], corpora[train], 0.15, seed)
    is_val = np.isin(speakers[train], sorted(held))
    return train[~is_val], train[is_val]


def _fit_sklearn(inp: _Inputs, recipe: TrainingRecipe, train: np.ndarray) -> Any:
    from .experiment import Recipe, _training_rows, fit_recipe

    X, y = _training_rows(inp.inputs, inp.augmented, inp.data.y, train)
    return fit_recipe(X, y, Recipe(model=recipe.model, params=dict(recipe.params),
                                   seeds=recipe.seeds))


def _proba_sklearn(model: Any, X: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    P = np.zeros((len(X), len(labels)))
    cols = [list(labels).index(str(c)) for c in model.classes_]
    P[:, cols] = model.predict_proba(np.asarray(X, dtype=np.float32))
    return P


def _fit_net(inp: _Inputs, recipe: TrainingRecipe, train: np.ndarray,
             labels: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    from .nets.train import train_net

    y_index = np.array([list(labels).index(v) for v in inp.data.y])
    versions = [[inp.inputs[i]] + [copy[i] for copy in inp.augmented] for i in train]
    return train_net(versions, y_index[train], inp.data.speakers[train], inp.corpora[train],
                     recipe.net_config(), len(labels))


def _split_worker(inp: _Inputs, recipe: TrainingRecipe, split: Split, labels: Sequence[str],
                  variants: bool, calibrate: bool) -> dict[str, Any]:
    """Train on a split; the test clips' probabilities (clean, perturbed) and a temperature."""
    from .experiment import fit_temperature
    from .nets.train import predict_proba

    y_index = np.array([list(labels).index(v) for v in inp.data.y])
    out: dict[str, Any] = {"history": None, "temperature": None}
    if recipe.is_net:
        model, history = _fit_net(inp, recipe, split.train, labels)
        out["history"] = history

        def proba(source: Any, idx: np.ndarray) -> np.ndarray:
            return predict_proba(model, [source[i] for i in idx])
        if calibrate:
            val = split.train[np.isin(inp.data.speakers[split.train], history["val_speakers"])]
            out["temperature"] = fit_temperature(proba(inp.inputs, val), y_index[val])
    else:
        model = _fit_sklearn(inp, recipe, split.train)

        def proba(source: Any, idx: np.ndarray) -> np.ndarray:
            return _proba_sklearn(model, np.asarray(source)[idx], labels)
        if calibrate:  # one more fit, without the held-out training speakers
            fit, val = _held_out(inp.data.speakers, inp.corpora, split.train, recipe.seeds[0])
            held_model = _fit_sklearn(inp, recipe, fit)
            P = _proba_sklearn(held_model, np.asarray(inp.inputs)[val], labels)
            out["temperature"] = fit_temperature(P, y_index[val])
    out["proba"] = {"clean": proba(inp.inputs, split.test)}
    if variants:
        for name, source in inp.variants.items():
            out["proba"][name] = proba(source, split.test)
    return out


def _run(inp: _Inputs, recipe: TrainingRecipe, splits: Sequence[Split], *, jobs: int,
         variants: bool = False, calibrate: bool = False) -> dict[str, Any]:
    from joblib import Parallel, delayed

    labels = list(recipe.emotions)
    jobs_ = [delayed(_split_worker)(inp, recipe, s, labels, variants, calibrate) for s in splits]
    outs = (Parallel(n_jobs=jobs)(jobs_) if jobs > 1 and len(jobs_) > 1
            else [j[0](*j[1], **j[2]) for j in jobs_])
    return {"labels": labels,
            "splits": [{"name": s.name, "test": s.test, "tested": list(s.tested), **o}
                       for s, o in zip(splits, outs, strict=True)]}


# -- evaluation ------------------------------------------------------------------------------


def _protocol_summary(result: Mapping[str, Any], y: np.ndarray, description: str) -> dict:
    from .experiment import fold_scores, per_class_recall

    scores = fold_scores(result, y)
    recall = per_class_recall(result, y)
    return {
        "protocol": description,
        "uar_mean": scores["uar_mean"], "uar_std": scores["uar_std"],
        "accuracy_mean": scores["accuracy_mean"], "macro_f1_mean": scores["macro_f1_mean"],
        "n_folds": scores["n_folds"],
        "folds": [{"name": f["name"], "tested": f["tested"], "uar": f["uar"],
                   "accuracy": f["accuracy"]} for f in scores["folds"]],
        "recall": recall["recall"], "labels": recall["labels"], "confusion": recall["confusion"],
        "weak_emotions": sorted(k for k, v in recall["recall"].items() if v < 0.10),
    }


def _calibration(result: Mapping[str, Any], y: np.ndarray) -> dict[str, Any]:
    from .experiment import apply_temperature, expected_calibration_error, fit_temperature

    labels = result["labels"]
    raw, cal, truth = [], [], []
    for s in result["splits"]:
        P = s["proba"]["clean"]
        raw.append(P)
        cal.append(apply_temperature(P, s["temperature"]) if s["temperature"] else P)
        truth.append([labels.index(v) for v in y[s["test"]]])
    raw_all, cal_all = np.concatenate(raw), np.concatenate(cal)
    truth_all = np.concatenate(truth)
    nll = lambda P: float(-np.mean(np.log(np.clip(P[np.arange(len(P)), truth_all], 1e-12, 1))))  # noqa: E731
    return {
        "ece_15_bins": expected_calibration_error(raw_all, truth_all),
        "ece_15_bins_calibrated": expected_calibration_error(cal_all, truth_all),
        "nll": nll(raw_all), "nll_calibrated": nll(cal_all),
        "fold_temperatures": [s["temperature"] for s in result["splits"]],
        # The model's own: fitted on every fold's out-of-fold probabilities.
        "temperature": fit_temperature(raw_all, truth_all),
    }


def evaluate_recipe(
    recipe: TrainingRecipe,
    *,
    jobs: int = 2,
    cache_dir: Path | None = None,
    quiet: bool = True,
    protocols: Sequence[str] = ("emobox", "contiguous", "emodb", "cross"),
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Measure a recipe: every protocol of the report, robustness and calibration.

    Parameters
    ----------
    recipe : TrainingRecipe
    jobs : int
        Processes (splits trained in parallel, features extracted in parallel).
    cache_dir : Path, optional
        Feature cache.
    quiet : bool
        No progress bars.
    protocols : sequence of str
        A subset of ``("emobox", "contiguous", "emodb", "cross")``.
    log : callable
        Called with a line per finished protocol.

    Returns
    -------
    report : dict
        ``recipe``, ``dataset``, ``emobox`` (with ``published``, ``robustness`` and
        ``calibration``), ``contiguous``, ``emodb``, ``cross_corpus``, ``seconds``.
    """
    from .experiment import robustness

    t0 = time.time()
    inp = _inputs(recipe, jobs=jobs, cache_dir=cache_dir, quiet=quiet,
                  robust="emobox" in protocols)
    y, speakers, corpora = inp.data.y, inp.data.speakers, inp.corpora
    report: dict[str, Any] = {
        "recipe": recipe.to_dict(), "dataset": inp.data.describe(),
        "clips": [f"{c.corpus}:{c.path.parent.name}/{c.path.name}" for c in inp.data.clips],
        "truth": y.tolist(),
    }
    present = set(corpora)
    if "emobox" in protocols and "ravdess" in present:
        splits = in_corpus_splits(speakers, corpora, "ravdess", emobox_groups(), name="emobox")
        res = _run(inp, recipe, splits, jobs=jobs, variants=True, calibrate=recipe.calibrate)
        entry = _protocol_summary(res, y, "EmoBox's RAVDESS folds (4 actors each), "
                                  "speaker-independent")
        entry["published"] = emobox_published()
        entry["robustness"] = robustness(res, y)
        if recipe.calibrate:
            entry["calibration"] = _calibration(res, y)
        entry["best_epochs"] = [s["history"]["best_epoch"] for s in res["splits"]
                                if s.get("history")]
        report["emobox"] = entry
        report["_emobox_result"] = res
        log(f"emobox UAR {entry['uar_mean']:.3f} ± {entry['uar_std']:.3f}")
    if "contiguous" in protocols and "ravdess" in present:
        groups = contiguous_groups()
        if "babble" in recipe.augment.kinds:  # babble pools follow this protocol's folds
            own = _inputs(recipe, jobs=jobs, cache_dir=cache_dir, quiet=quiet, robust=False,
                          pools_groups={**_groups(), **groups})
        else:
            own = inp
        splits = in_corpus_splits(speakers, corpora, "ravdess", groups, name="contiguous")
        report["contiguous"] = _protocol_summary(
            _run(own, recipe, splits, jobs=jobs), y,
            "contiguous RAVDESS folds (actors 01-04, 05-08, ...), speaker-independent")
        log(f"contiguous UAR {report['contiguous']['uar_mean']:.3f}")
    if "emodb" in protocols and "emodb" in present:
        splits = in_corpus_splits(speakers, corpora, "emodb", emodb_pair_groups(), name="emodb")
        report["emodb"] = _protocol_summary(
            _run(inp, recipe, splits, jobs=jobs), y,
            "EmoDB, 5 folds of 2 speakers (one male, one female)")
        log(f"emodb UAR {report['emodb']['uar_mean']:.3f}")
    if "cross" in protocols and {"ravdess", "emodb"} <= present:
        report["cross_corpus"] = {}
        pairs = [("ravdess", "emodb"), ("emodb", "ravdess")]
        results = _run(inp, recipe, [cross_corpus_split(corpora, y, a, b) for a, b in pairs],
                       jobs=jobs)
        for (a, b), split in zip(pairs, results["splits"], strict=True):
            one = {"labels": results["labels"], "splits": [split]}
            entry = _protocol_summary(one, y, f"trained on all of {a}, tested on all of {b}, "
                                      "the emotions both have")
            report["cross_corpus"][f"{a} -> {b}"] = entry
            log(f"{a} -> {b} UAR {entry['uar_mean']:.3f}")
    report["seconds"] = time.time() - t0
    return report


# -- the model -------------------------------------------------------------------------------


def _metrics(report: Mapping[str, Any]) -> dict[str, Any]:
    """The figures that ride in the model's metadata (``ser-edge info``)."""
    out: dict[str, Any] = {}
    emobox = report.get("emobox")
    if emobox:
        out["speaker_independent"] = {
            "protocol": emobox["protocol"], "uar_mean": emobox["uar_mean"],
            "uar_std": emobox["uar_std"], "accuracy_mean": emobox["accuracy_mean"],
            "macro_f1_mean": emobox["macro_f1_mean"], "n_folds": emobox["n_folds"],
            "recall": emobox["recall"]}
        out["robustness"] = {k: round(v["label_unchanged"], 4)
                             for k, v in emobox.get("robustness", {}).items()}
        if "calibration" in emobox:
            c = emobox["calibration"]
            out["calibration"] = {k: c[k] for k in ("ece_15_bins", "ece_15_bins_calibrated",
                                                     "temperature")}
    for key in ("contiguous", "emodb"):
        if key in report:
            out[key] = {"uar_mean": report[key]["uar_mean"], "uar_std": report[key]["uar_std"]}
    for key, entry in report.get("cross_corpus", {}).items():
        out.setdefault("cross_corpus", {})[key] = {"uar": entry["uar_mean"],
                                                   "recall": entry["recall"]}
    return out or {"speaker_independent": {}}


def _check_frames(inp: _Inputs) -> list[np.ndarray]:
    """Real frame matrices from 0.5 s to 20 s of speech, to check an exported network on."""
    from ser_edge.features import frame_matrix

    from .features import reference_load

    config = inp.data.config
    clips = [c for c in inp.data.clips][:: max(1, len(inp.data.clips) // 12)][:12]
    ys = [reference_load(c.path, config.sr) for c in clips]
    long = np.concatenate(ys)[: 20 * config.sr]
    half = ys[0][len(ys[0]) // 2 - config.sr // 4: len(ys[0]) // 2 + config.sr // 4]
    return [frame_matrix(z, sr=config.sr, config=config) for z in [half, *ys[:6], long]]


def build_model(
    recipe: TrainingRecipe,
    out: str | Path,
    *,
    report: Mapping[str, Any] | None = None,
    jobs: int = 2,
    cache_dir: Path | None = None,
    quiet: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Train the recipe on every clip and write its ONNX model, checked before saving.

    Parameters
    ----------
    recipe : TrainingRecipe
    out : str or Path
        The ONNX file.
    report : mapping, optional
        :func:`evaluate_recipe`'s report: its figures go into the metadata, and its temperature
        (when the recipe calibrates) into the model.

    Returns
    -------
    summary : dict
        ``path``, ``bytes``, ``n_clips``, ``temperature``, ``seconds`` (and for networks the
        training ``history``).
    """
    t0 = time.time()
    inp = _inputs(recipe, jobs=jobs, cache_dir=cache_dir, quiet=quiet, robust=False)
    labels = list(recipe.emotions)
    all_clips = np.arange(len(inp.data.clips))
    temperature = 1.0
    if report and recipe.calibrate and "calibration" in report.get("emobox", {}):
        temperature = float(report["emobox"]["calibration"]["temperature"])
    training = {
        "recipe": recipe.to_dict(),
        "corpora": inp.data.describe(),
        "n_clips": len(all_clips),
        "temperature": temperature,
        "command": "python -m export train --recipe ...",
    }
    metrics = _metrics(report or {})
    summary: dict[str, Any] = {"path": str(out), "n_clips": len(all_clips),
                               "temperature": temperature}
    if recipe.is_net:
        from .nets.onnx import export_net

        model, history = _fit_net(inp, recipe, all_clips, labels)
        training["history"] = history
        export_net(model, feature_config=recipe.feature_config, labels=labels,
                   training=training, metrics=metrics, check_frames=_check_frames(inp),
                   min_frames=model.min_frames, temperature=temperature, path=out)
        summary["history"] = history
    else:
        from .onnx_export import export_onnx

        model = _fit_sklearn(inp, recipe, all_clips)
        labels = [str(c) for c in model.classes_]  # scikit-learn's order: sorted
        export_onnx(model, feature_config=recipe.feature_config, labels=labels,
                    training=training, metrics=metrics, path=out, check_rows=inp.inputs,
                    temperature=temperature)
    summary["bytes"] = Path(out).stat().st_size
    summary["seconds"] = time.time() - t0
    log(f"wrote {out} ({summary['bytes'] / 1024:.0f} KiB) in {summary['seconds']:.0f} s")
    return summary
