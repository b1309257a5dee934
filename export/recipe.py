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
    loco_splits,
)

__all__ = ["TrainingRecipe", "evaluate_recipe", "build_model", "NET_MODELS", "ENSEMBLE",
           "EMOTIONS", "PROTOCOLS"]

#: The emotion vocabulary of the bundled models: RAVDESS's eight (EmoDB's boredom has no
#: counterpart and is left out; EmoDB has no calm and no surprised).
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")

#: Recipe models that are networks (the rest are scikit-learn's, :data:`export.train.MODELS`):
#: over the frame matrix, and the pooled ``"mlpnet"`` (a one-hidden-layer MLP in PyTorch).
NET_MODELS = ("cnn", "crnn", "mlpnet")

#: The networks that take the frame matrix (the others take the pooled vector).
FRAME_NETS = ("cnn", "crnn")

#: The evaluation protocols of :func:`evaluate_recipe`, in the report's order.
PROTOCOLS = ("emobox", "loco", "contiguous", "emodb", "cross")

#: The recipe model that averages its members' probabilities (:func:`export.ensemble.compose`).
ENSEMBLE = "ensemble"

#: How a built ensemble stores its weights (``TrainingRecipe.storage``).
STORAGE = ("float32", "float16")


@dataclass(frozen=True)
class TrainingRecipe:
    """Everything a model is made of, as one JSON file.

    Parameters
    ----------
    name : str
        Short name (``"mlp"``, ``"cnn"``): the model's name in ``ser-edge models``.
    model : str
        ``"mlp"``, ``"svm"``, ``"rf"``, ``"knn"``, ``"tree"``, a network, ``"cnn"``, ``"crnn"``,
        or ``"ensemble"`` (``members``).
    feature_config : FeatureConfig
        Pooled features (scikit-learn models) or the frame matrix (networks). An ensemble's is
        its first member's without ``norm``: the frame matrix every member is computed from.
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
    members : tuple of TrainingRecipe
        An ensemble's members (recipes, or in a file, recipe files relative to it): each trained
        on its own, their probabilities averaged. They share one frame matrix: the same features
        but for ``norm`` (networks may normalise per utterance) and, for networks, ``stats`` and
        ``features`` (a network may take some of the blocks).
    weights : tuple of float
        Each member's weight (summing to 1; equal when empty).
    combine : {"mean", "geometric"}
        How an ensemble joins its members' probabilities (:func:`export.ensemble.combine`).
    storage : {"float32", "float16"}
        How an ensemble's graph stores its weights: ``"float16"`` halves the file
        (:func:`export.onnx_export.half_weights`; computed in float32). It changes the built
        model only, not its evaluation: the build measures what the rounding does.
    mask_labels : bool
        Networks: each clip's loss over the labels its corpus has
        (:func:`export.nets.train.corpus_label_mask`).
    balance : bool
        Networks: examples drawn so that every corpus, and every emotion in it, weighs alike
        (:func:`export.nets.train.corpus_class_weights`).
    adapt : mapping
        Adaptation to the speaker (:mod:`ser_edge.adapt`): ``blocks`` (the frame matrix's blocks
        standardised) and ``min_seconds``. Training takes every clean clip also standardised by
        its speaker's statistics; the evaluation adds the leave-one-corpus-out figures with the
        test speakers' own statistics; the model carries the population's statistics.
    teacher : mapping
        Networks (``cnn``, ``crnn``, ``mlpnet``): train the network as a student of Whisper
        tiny.en (:mod:`export.distill`): besides the labels, the soft labels of a teacher head
        fitted on each split's training speakers only (cross-fitted) and a regression of its
        pooled representation onto the teacher's embedding. Fields of
        :class:`~export.distill.TeacherConfig` (``soft_weight``, ``temperature``,
        ``embed_weight``, ``C``, ``groups``); empty: no teacher.
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
    members: tuple[TrainingRecipe, ...] = ()
    weights: tuple[float, ...] = ()
    combine: str = "mean"
    storage: str = "float32"
    mask_labels: bool = False
    balance: bool = False
    adapt: tuple[tuple[str, Any], ...] | Mapping[str, Any] = ()
    teacher: tuple[tuple[str, Any], ...] | Mapping[str, Any] = ()

    def __post_init__(self) -> None:
        from .train import MODELS

        if self.model not in MODELS and self.model not in NET_MODELS + (ENSEMBLE,):
            raise ParameterError(f"unknown model {self.model!r}; choose from "
                                 f"{MODELS + NET_MODELS + (ENSEMBLE,)}")
        if self.model == ENSEMBLE:
            self._check_members()
        elif self.members or self.weights:
            raise ParameterError(f"'members' and 'weights' are for model {ENSEMBLE!r} only")
        from .ensemble import COMBINE

        if self.combine not in COMBINE:
            raise ParameterError(f"unknown combine {self.combine!r}; choose from {COMBINE}")
        if self.combine != "mean" and self.model != ENSEMBLE:
            raise ParameterError(f"'combine' {self.combine!r} is for model {ENSEMBLE!r} only")
        if self.storage not in STORAGE:
            raise ParameterError(f"unknown storage {self.storage!r}; choose from {STORAGE}")
        if self.storage != "float32" and self.model != ENSEMBLE:
            raise ParameterError(f"'storage' {self.storage!r} is for model {ENSEMBLE!r} only")
        if (self.mask_labels or self.balance) and self.model not in NET_MODELS + (ENSEMBLE,):
            raise ParameterError("'mask_labels' and 'balance' need a network (cnn, crnn, "
                                 f"mlpnet), not {self.model!r}")
        adapt = dict(self.adapt)
        unknown_adapt = sorted(set(adapt) - {"blocks", "min_seconds"})
        if unknown_adapt:
            raise ParameterError(f"'adapt' has unknown fields: {', '.join(unknown_adapt)}")
        if adapt:
            blocks = tuple(adapt.get("blocks", ()))
            if not blocks or not set(blocks) <= set(self.feature_config.features):
                raise ParameterError(f"'adapt' blocks {list(blocks)} must name some of the "
                                     f"features {list(self.feature_config.features)}")
            adapt["blocks"] = blocks
            adapt["min_seconds"] = float(adapt.get("min_seconds", 10.0))
        object.__setattr__(self, "adapt", tuple(sorted(adapt.items())))
        teacher = dict(self.teacher)
        if teacher:
            from .distill import TeacherConfig

            if self.model not in NET_MODELS:
                raise ParameterError(f"'teacher' is for networks (cnn, crnn, mlpnet), not "
                                     f"{self.model!r}: an ensemble's members may have one")
            teacher = TeacherConfig.from_mapping(teacher).to_dict()
        object.__setattr__(self, "teacher", tuple(sorted(teacher.items())))
        object.__setattr__(self, "params", tuple(sorted(dict(self.params).items())))
        object.__setattr__(self, "net", tuple(sorted(dict(self.net).items())))
        object.__setattr__(self, "corpora", tuple(self.corpora))
        object.__setattr__(self, "emotions", tuple(self.emotions))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if not self.seeds:
            raise ParameterError("a recipe needs at least one seed")

    def _check_members(self) -> None:
        members = tuple(m if isinstance(m, TrainingRecipe) else TrainingRecipe.from_dict(m)
                        for m in self.members)
        if len(members) < 2:
            raise ParameterError("an ensemble needs at least two members")
        if any(m.model == ENSEMBLE for m in members):
            raise ParameterError("an ensemble's members cannot be ensembles")
        weights = tuple(float(w) for w in self.weights) or (1.0 / len(members),) * len(members)
        if len(weights) != len(members) or min(weights) < 0 or abs(sum(weights) - 1) > 1e-9:
            raise ParameterError(f"an ensemble's weights must be {len(members)} non-negative "
                                 f"numbers that sum to 1, got {list(self.weights)}")
        # One frame matrix feeds every member: the pooled members' configuration, unnormalised.
        shared = dataclasses.replace(members[0].feature_config, norm=None)
        for m in members:
            c = m.feature_config
            if m.model in FRAME_NETS:
                if not set(c.features) <= set(shared.features):
                    raise ParameterError(f"member {m.name!r} takes blocks the first member "
                                         f"does not compute: {c.features}")
                c = dataclasses.replace(c, norm=None, stats=shared.stats,
                                        features=shared.features)
            elif c.norm is not None:
                raise ParameterError(f"member {m.name!r}: a pooled member cannot normalise "
                                     "per utterance in an ensemble")
            if c != shared:
                raise ParameterError(
                    f"member {m.name!r} has other features than {members[0].name!r}: an "
                    "ensemble's members share one frame matrix (they may differ in 'norm', and "
                    "networks in 'stats' and take some of its 'features')")
            if not set(m.corpora) <= set(members[0].corpora) or \
                    m.emotions != members[0].emotions:
                raise ParameterError(f"member {m.name!r} is trained on other emotions than "
                                     "the first, or on corpora the first does not have (a "
                                     "member may train on some of the first's corpora)")
        adapting = [m for m in members if m.adapt]
        for m in members:  # the device maps the whole frame matrix once a profile is ready
            if adapting and m.adapt != adapting[0].adapt and not (
                    m.takes_frames and m.feature_config.norm == "meanvar"):
                raise ParameterError(
                    f"member {m.name!r} would see frames adapted to the speaker that it was not "
                    f"trained on: with {adapting[0].name!r} adapting, every pooled member must "
                    "adapt alike (a network normalising each utterance need not)")
        object.__setattr__(self, "members", members)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "feature_config", shared)
        object.__setattr__(self, "corpora", members[0].corpora)
        object.__setattr__(self, "emotions", members[0].emotions)

    @property
    def is_net(self) -> bool:
        """Whether the model is a frame-level network."""
        return self.model in NET_MODELS

    @property
    def takes_frames(self) -> bool:
        """Whether the model takes the frame matrix (a frame-level network), not a vector."""
        return self.model in FRAME_NETS

    @property
    def is_ensemble(self) -> bool:
        """Whether the model averages its members' probabilities."""
        return self.model == ENSEMBLE

    def net_config(self, seed: int | None = None) -> Any:
        """The network's :class:`~export.nets.train.NetConfig` (networks only)."""
        from .nets.train import NetConfig

        fields = dict(self.net)
        fields["architecture"] = self.model
        fields["seed"] = self.seeds[0] if seed is None else seed
        return NetConfig(**fields)

    def teacher_config(self) -> Any:
        """The :class:`~export.distill.TeacherConfig` of a student, or None."""
        from .distill import TeacherConfig

        return TeacherConfig(**dict(self.teacher)) if self.teacher else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (what :meth:`from_dict` reads)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["feature_config"] = json.loads(self.feature_config.to_json())
        data["params"] = dict(self.params)
        data["net"] = dict(self.net)
        data["augment"] = json.loads(self.augment.to_json())
        for key in ("corpora", "emotions", "seeds", "weights"):
            data[key] = list(data[key])
        data["members"] = [m.to_dict() for m in self.members]
        if not self.is_ensemble:
            del data["members"], data["weights"]
        data["adapt"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.adapt}
        data["teacher"] = dict(self.teacher)
        for key, default in (("combine", "mean"), ("storage", "float32"), ("mask_labels", False),
                             ("balance", False), ("adapt", {}), ("teacher", {})):
            if data[key] == default:  # left out: run keys and recipe files predate the fields
                del data[key]
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

        An ensemble's ``members`` may name other recipe files, relative to this one's folder.

        Raises
        ------
        ParameterError
            If the file cannot be read or is not a valid recipe.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("members"), list):
                data["members"] = [cls.load(path.parent / m) if isinstance(m, str) else m
                                   for m in data["members"]]
            return cls.from_dict(data)
        except (OSError, ValueError, TypeError) as exc:
            raise ParameterError(f"{path}: not a valid recipe ({exc})") from None


# -- data --------------------------------------------------------------------------------------


def _groups(speakers: Sequence[str] = (), corpora: Sequence[str] = ()) -> dict[str, int]:
    """Babble groups: RAVDESS by EmoBox fold, EmoDB by speaker pair, any other corpus whole.

    A corpus other than those two is tested only whole (leave one corpus out), so babble from
    its other speakers never brings a tested voice into training.
    """
    names = sorted(set(corpora))
    whole = {s: 1000 + names.index(c) for s, c in zip(speakers, corpora, strict=True)}
    return {**whole, **emobox_groups(), **{s: 100 + k for s, k in emodb_pair_groups().items()}}


@dataclass
class _Inputs:
    data: Any
    corpora: np.ndarray
    inputs: Any  # (n_clips, n_features) vectors, or a list of frame matrices
    augmented: Any  # (copies, n_clips, n_features), or a list (copies) of lists
    variants: dict[str, Any]
    members: list[_Inputs] = field(default_factory=list)  # an ensemble's, one per member
    rowstats: Any = None  # (n, mean, var) of each clip's frames, when the recipe adapts
    adapted: list = field(default_factory=list)  # training views adapted to their speakers
    trainable: Any = None  # bool per clip: of the corpora the model trains on (None: all)
    teacher: Any = None  # (n_clips, 768) the teacher's pooled embeddings, for a student
    teacher_spec: Any = None  # the export.teacher.TeacherSpec they are of


def _corpus_name(spec: str) -> str:
    """A corpus spec's name: ``"emodb"`` of ``"emodb"`` or ``"emodb=/data/EmoDB"``."""
    return spec.partition("=")[0].strip()


def _inputs(recipe: TrainingRecipe, *, jobs: int, cache_dir: Path | None, quiet: bool,
            pools_groups: Mapping[str, int] | None = None, robust: bool = True,
            source: FeatureConfig | None = None,
            clips_of: Sequence[str] | None = None,
            teacher_cache_dir: Path | None = None) -> _Inputs:
    """Features of the recipe's clips; an ensemble's members' from one shared frame matrix.

    ``source`` is an ensemble's shared configuration (the members' inputs are derived from its
    frame matrices, computed once); ``clips_of`` the corpora whose clips the model is given
    (an ensemble's: its first member's), of which it trains on its own ``corpora``. A student
    (``teacher``) also gets the teacher's pooled embeddings of every clip, from
    ``teacher_cache_dir`` (default ``cache_dir``; those not cached are computed and kept).
    """
    from .dataset import augmented_features, frame_matrices, load_dataset, perturbed_features

    if recipe.is_ensemble:
        members = [_inputs(m, jobs=jobs, cache_dir=cache_dir, quiet=quiet,
                           pools_groups=pools_groups, robust=robust,
                           source=recipe.feature_config, clips_of=recipe.members[0].corpora,
                           teacher_cache_dir=teacher_cache_dir)
                   for m in recipe.members]
        first = members[0]
        for m in members[1:]:
            if [c.path for c in m.data.clips] != [c.path for c in first.data.clips]:
                raise ParameterError("an ensemble's members were given different clips")
        return _Inputs(first.data, first.corpora, None, None, first.variants, members)

    if source is None and not recipe.takes_frames:
        # A pooled model's vectors from its frame matrices, as an ensemble's member's: the
        # extractions (clean, augmented, perturbed) are then shared with ensembles it joins.
        source = dataclasses.replace(recipe.feature_config, norm=None)
    data = load_dataset(list(clips_of or recipe.corpora), recipe.feature_config,
                        emotions=list(recipe.emotions), n_jobs=jobs, cache_dir=cache_dir,
                        progress=not quiet, source=source)
    corpora = np.array([c.corpus for c in data.clips])
    own = {_corpus_name(c) for c in recipe.corpora}
    trainable = None if set(corpora) <= own else np.isin(corpora, sorted(own))
    output = "frames" if recipe.takes_frames else "vector"
    inputs = frame_matrices(data, n_jobs=jobs, cache_dir=cache_dir, progress=not quiet,
                            source=source) if recipe.takes_frames else data.X
    pools = babble_pools(data.speakers, pools_groups or _groups(data.speakers, corpora)) if (
        "babble" in recipe.augment.kinds) else None
    augmented = augmented_features(
        data, recipe.augment, seed=recipe.augment_seed, pools=pools, n_jobs=jobs,
        cache_dir=cache_dir, progress=not quiet, output=output, source=source,
        only=None if trainable is None else np.flatnonzero(trainable))
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
                                      cache_dir=cache_dir, progress=not quiet, output=output,
                                      source=source)
    rowstats = None
    if recipe.adapt:  # of the frame matrix the device counts: the shared one, if any
        from .dataset import Dataset, row_statistics

        counted = data if source is None else Dataset(data.clips, None, source)
        rowstats = row_statistics(counted, n_jobs=jobs, cache_dir=cache_dir,
                                  progress=not quiet)
    teacher = spec = None
    if recipe.teacher:
        from .teacher import TeacherSpec, teacher_embeddings

        spec = TeacherSpec.installed()
        teacher = teacher_embeddings([c.path for c in data.clips], pooled=True, spec=spec,
                                     n_jobs=jobs, progress=not quiet,
                                     cache_dir=cache_dir if teacher_cache_dir is None
                                     else teacher_cache_dir)
    return _Inputs(data, corpora, inputs, augmented, variants, rowstats=rowstats,
                   trainable=trainable, teacher=teacher, teacher_spec=spec)


# -- adaptation to the speaker ---------------------------------------------------------------------

#: A test speaker's profile in the adapted figures: from this much of their speech, in seconds
#: (whole clips in a seeded order until it is reached), or from all of it (None).
ADAPT_BUDGETS = (10.0, 30.0, 60.0, None)


def _adapt_name(budget: float | None) -> str:
    return "adapted" if budget is None else f"adapted {budget:g} s"


def _profiles(inp: _Inputs, config: FeatureConfig, budget: float | None = None,
              seed: int = 0) -> dict[str, Any]:
    """Each speaker's profile: of all their clips, or of the first ``budget`` seconds of them."""
    from ser_edge.adapt import SpeakerProfile

    n, mean, var = inp.rowstats
    speakers = inp.data.speakers
    out = {}
    for s in np.unique(speakers):
        mine = np.flatnonzero(speakers == s)
        if budget is not None:
            mine = np.random.default_rng([seed, _crc(s)]).permutation(mine)
        profile = SpeakerProfile(config)
        for i in mine:
            profile.add(n[i], mean[i], var[i])
            if budget is not None and profile.seconds >= budget:
                break
        out[s] = profile
    return out


def _crc(text: str) -> int:
    """A stable number for a string (a speaker's seed)."""
    import zlib

    return zlib.crc32(text.encode("utf-8"))


def _adaptation(inp: _Inputs, recipe: TrainingRecipe, train: np.ndarray,
                profiles: Mapping[str, Any]) -> Any:
    """The population's statistics: the mean over the training speakers of theirs."""
    from ser_edge.adapt import Adaptation

    speakers = sorted(set(inp.data.speakers[train]))
    mean = np.mean([profiles[s].mean for s in speakers], axis=0)
    std = np.mean([np.sqrt(profiles[s].var) for s in speakers], axis=0)
    adapt = dict(recipe.adapt)
    return Adaptation(recipe.feature_config, adapt["blocks"], mean, std, adapt["min_seconds"])


def _adapted_rows(inp: _Inputs, adaptation: Any, profiles: Mapping[str, Any],
                  config: FeatureConfig) -> np.ndarray:
    """Every clip's clean vector mapped by its speaker's profile."""
    X = np.asarray(inp.inputs)
    out = np.empty_like(X, dtype=np.float32)
    speakers = inp.data.speakers
    for s, profile in profiles.items():
        mine = speakers == s
        out[mine] = adaptation.vector(X[mine], profile, config)
    return out


def _with_adaptation(inp: _Inputs, recipe: TrainingRecipe,
                     train: np.ndarray) -> tuple[_Inputs, Any, dict[str, Any]]:
    """Add the clean clips adapted to their speakers to ``inp`` as a training view.

    Returns ``inp`` so extended, the adaptation (the population of the ``train`` speakers) and
    every speaker's whole profile.
    """
    if not recipe.adapt:
        return inp, None, {}
    if recipe.takes_frames:
        raise ParameterError("'adapt' is for pooled models (mlpnet): a frame network normalises "
                             "each utterance itself")
    profiles = _profiles(inp, recipe.feature_config)
    adaptation = _adaptation(inp, recipe, train, profiles)
    A = _adapted_rows(inp, adaptation, profiles, recipe.feature_config)
    return dataclasses.replace(inp, adapted=[A]), adaptation, profiles


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
    """A network trained on clips ``train``; a pooled one, one per seed, soft-voted."""
    from .nets.train import train_net

    y_index = np.array([list(labels).index(v) for v in inp.data.y])
    versions = [[inp.inputs[i]] + [copy[i] for copy in inp.augmented]
                + [v[i] for v in inp.adapted] for i in train]
    seeds = recipe.seeds if recipe.model == "mlpnet" else recipe.seeds[:1]
    distill, teacher_info = (None, None) if not recipe.teacher else \
        _distillation(inp, recipe, train, labels)
    fits = [train_net(versions, y_index[train], inp.data.speakers[train], inp.corpora[train],
                      recipe.net_config(seed), len(labels), mask_labels=recipe.mask_labels,
                      balance=recipe.balance, val_seed=recipe.seeds[0], distill=distill)
            for seed in seeds]
    if teacher_info is not None:
        for _, h in fits:
            h["teacher"] = teacher_info
    if len(fits) == 1:
        return fits[0]
    from .nets.onnx import SeedAverage

    history = dict(fits[0][1])
    history["seeds"] = [{"best_epoch": h["best_epoch"], "best_val_uar": h["best_val_uar"]}
                        for _, h in fits]
    return SeedAverage([m for m, _ in fits]), history


def _distillation(inp: _Inputs, recipe: TrainingRecipe, train: np.ndarray,
                  labels: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """A student's targets on clips ``train`` (:func:`export.distill.teacher_targets`).

    Only ``train``'s clips are looked at, and of them the heads and the standardisation see
    only those trained on: the validation speakers that :func:`~export.nets.train.train_net`
    will hold out (the same call, the same seed) are left out.
    """
    from .distill import teacher_targets
    from .nets.train import Distillation, validation_speakers

    config = recipe.teacher_config()
    if inp.teacher is None:
        raise ParameterError(f"recipe {recipe.name!r} has a teacher but no teacher embeddings "
                             "were loaded")
    speakers, corpora = inp.data.speakers[train], inp.corpora[train]
    held = validation_speakers(speakers, corpora, recipe.net_config().val_fraction,
                               recipe.seeds[0])
    fit = ~np.isin(speakers, sorted(held))
    soft, embed, info = teacher_targets(inp.teacher[train], inp.data.y[train], speakers,
                                        corpora, fit, labels, config, seed=recipe.seeds[0])
    return Distillation(soft=soft, embed=embed if config.embed_weight > 0 else None,
                        soft_weight=config.soft_weight, temperature=config.temperature,
                        embed_weight=config.embed_weight), info


def _split_worker(inp: _Inputs, recipe: TrainingRecipe, split: Split, labels: Sequence[str],
                  variants: bool, calibrate: bool) -> dict[str, Any]:
    """Train on a split; the test clips' probabilities (clean, perturbed) and a temperature."""
    from .experiment import fit_temperature
    from .nets.train import predict_proba

    y_index = np.array([list(labels).index(v) for v in inp.data.y])
    out: dict[str, Any] = {"history": None, "temperature": None}
    if inp.trainable is not None:  # a member trained on some of the corpora: theirs only
        split = dataclasses.replace(split, train=split.train[inp.trainable[split.train]])
    inp, adaptation, _ = _with_adaptation(inp, recipe, split.train)
    if recipe.is_net:
        model, history = _fit_net(inp, recipe, split.train, labels)
        out["history"] = history

        def proba(source: Any, idx: np.ndarray) -> np.ndarray:
            return predict_proba(model, [source[i] for i in idx])
        if calibrate:
            val = split.train[np.isin(inp.data.speakers[split.train], history["val_speakers"])]
            P = proba(inp.inputs, val)
            out["temperature"] = fit_temperature(P, y_index[val])
            out["held_out"] = {"index": val, "proba": P}
    else:
        model = _fit_sklearn(inp, recipe, split.train)

        def proba(source: Any, idx: np.ndarray) -> np.ndarray:
            return _proba_sklearn(model, np.asarray(source)[idx], labels)
        if calibrate:  # one more fit, without the held-out training speakers
            fit, val = _held_out(inp.data.speakers, inp.corpora, split.train, recipe.seeds[0])
            held_model = _fit_sklearn(inp, recipe, fit)
            P = _proba_sklearn(held_model, np.asarray(inp.inputs)[val], labels)
            out["temperature"] = fit_temperature(P, y_index[val])
            out["held_out"] = {"index": val, "proba": P}
    out["proba"] = {"clean": proba(inp.inputs, split.test)}
    if variants:
        for name, source in inp.variants.items():
            out["proba"][name] = proba(source, split.test)
    if adaptation is not None:  # the test speakers' own statistics, of some or all their speech
        for budget in ADAPT_BUDGETS:
            profiles = _profiles(inp, recipe.feature_config, budget, seed=recipe.seeds[0])
            A = _adapted_rows(inp, adaptation, profiles, recipe.feature_config)
            # A profile under the adaptation's min_seconds is not used, as on the device.
            ready = np.array([adaptation.ready(profiles[s])
                              for s in inp.data.speakers[split.test]])
            P = proba(A, split.test)
            P[~ready] = out["proba"]["clean"][~ready]
            out["proba"][_adapt_name(budget)] = P
    return out


#: Bump when training or prediction changes what a run returns: cached runs are then ignored.
#: 2: validation speakers seeded per corpus.
RUNS_VERSION = 2


def _run_key(inp: _Inputs, recipe: TrainingRecipe, splits: Sequence[Split], variants: bool,
             calibrate: bool) -> str:
    """What a run depends on, hashed.

    The recipe (its name and description aside), the clips and their labels, the splits, the
    perturbations asked for and the code's version.
    """
    import hashlib

    import ser_edge

    fields = recipe.to_dict()
    fields.pop("name"), fields.pop("description"), fields.pop("storage", None)
    what = {
        "recipe": fields, "clips": [str(c.path) for c in inp.data.clips],
        "labels": [c.emotion for c in inp.data.clips],
        "splits": [[s.name, np.asarray(s.train).tolist(), np.asarray(s.test).tolist()]
                   for s in splits],
        "variants": sorted(inp.variants) if variants else [], "calibrate": calibrate,
        "version": [RUNS_VERSION, ser_edge.__version__],
    }
    if recipe.teacher:  # a student's targets are the teacher's: its packages and front end
        what["teacher"] = inp.teacher_spec.tag
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def _run(inp: _Inputs, recipe: TrainingRecipe, splits: Sequence[Split], *, jobs: int,
         variants: bool = False, calibrate: bool = False,
         cache_dir: Path | None = None) -> dict[str, Any]:
    """Train and predict every split (an ensemble: each member, then :func:`_combine`).

    With ``cache_dir``, the result is kept on disk (``runs/<key>.pkl``) and read back for the
    same recipe, clips and splits (training is seeded: a run repeats exactly), so that an
    ensemble reuses its members' runs.
    """
    import pickle

    if recipe.is_ensemble:
        return _combine([_run(i, m, splits, jobs=jobs, variants=variants, calibrate=calibrate,
                              cache_dir=cache_dir)
                         for i, m in zip(inp.members, recipe.members, strict=True)],
                        recipe, inp.data.y)
    path = None
    if cache_dir is not None:
        key = _run_key(inp, recipe, splits, variants, calibrate)
        path = Path(cache_dir) / "runs" / f"{key}.pkl"
        if path.is_file():
            with open(path, "rb") as f:
                return pickle.load(f)
    result = _run_splits(inp, recipe, splits, jobs=jobs, variants=variants, calibrate=calibrate)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(result, f)
        tmp.replace(path)
    return result


def _combine(results: Sequence[Mapping[str, Any]], recipe: TrainingRecipe,
             y: np.ndarray) -> dict[str, Any]:
    """An ensemble's run from its members' runs: probabilities combined with the weights.

    The fold's temperature is fitted on the members' combined probabilities of the held-out
    training speakers that every member held out (:func:`~export.nets.train.validation_speakers`
    draws them per corpus with the seed, so members of the same seed share them, a member of
    some corpora only theirs); without any there is none.
    """
    from .ensemble import combine
    from .experiment import fit_temperature

    def mix(probas: Sequence[np.ndarray]) -> np.ndarray:
        return combine(probas, recipe.weights, recipe.combine)

    labels = results[0]["labels"]
    y_index = np.array([labels.index(v) if v in labels else -1 for v in y])
    splits = []
    for parts in zip(*(r["splits"] for r in results), strict=True):
        split = {k: parts[0][k] for k in ("name", "test", "tested")}
        # A variant a member lacks is its clean answer: adaptation maps the frame matrix per
        # row, which a network normalising each utterance (mean and variance) does not see.
        names = list(dict.fromkeys(v for p in parts for v in p["proba"]))
        split["proba"] = {v: mix([p["proba"].get(v, p["proba"]["clean"]) for p in parts])
                          for v in names}
        split["history"] = next((p["history"] for p in parts if p.get("history")), None)
        held = [p.get("held_out") for p in parts]
        split["temperature"] = None
        if all(held):  # the held-out clips every member held out (members of some corpora)
            common = held[0]["index"]
            for h in held[1:]:
                common = np.intersect1d(common, h["index"])
            if len(common):
                P = mix([h["proba"][np.searchsorted(h["index"], common)] for h in held])
                split["temperature"] = fit_temperature(P, y_index[common])
                split["held_out"] = {"index": common, "proba": P}
        splits.append(split)
    return {"labels": labels, "splits": splits}


def _run_splits(inp: _Inputs, recipe: TrainingRecipe, splits: Sequence[Split], *, jobs: int,
                variants: bool, calibrate: bool) -> dict[str, Any]:
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


def _shared_scores(P: np.ndarray, truth: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """A corpus's scores over its own emotions: the answer is the likeliest of them.

    As the cross-corpus protocol trains on the emotions two corpora share, a corpus tested here
    is scored over the emotions it has that the model knows: the model's probabilities are
    restricted to those (the others are emotions the corpus does not label, whatever its
    speakers felt) and the likeliest is the answer. ``uar_open`` is the UAR of the answer over
    every label the model knows.
    """
    from sklearn.metrics import confusion_matrix, recall_score

    labels = list(labels)
    shared = [e for e in labels if e in set(truth)]
    cols = [labels.index(e) for e in shared]
    pred = np.asarray(shared)[np.argmax(P[:, cols], axis=1)]
    open_pred = np.asarray(labels)[np.argmax(P, axis=1)]
    recall = recall_score(truth, pred, labels=shared, average=None, zero_division=0)
    open_recall = np.array([np.mean(open_pred[truth == e] == e) for e in shared])
    return {"uar": float(np.mean(recall)), "accuracy": float(np.mean(pred == truth)),
            "uar_open": float(np.mean(open_recall)),
            "recall": {e: float(r) for e, r in zip(shared, recall, strict=True)},
            "labels": shared, "confusion": confusion_matrix(truth, pred, labels=shared).tolist(),
            "weak_emotions": sorted(e for e, r in zip(shared, recall, strict=True) if r < 0.10)}


def _loco_summary(result: Mapping[str, Any], y: np.ndarray, variant: str = "clean") -> dict:
    """Leave one corpus out: per corpus its UAR, recall of each emotion and confusion; the mean.

    Each corpus is scored over its own emotions that the other corpora have, the answer being
    the likeliest of them (:func:`_shared_scores`, as the cross-corpus protocol's classifier
    knows only the emotions both corpora share); ``uar_open`` scores the answer over every
    label the model knows.
    """
    y = np.asarray(y).astype(str)
    corpora: dict[str, Any] = {}
    for split in result["splits"]:
        entry = _shared_scores(np.asarray(split["proba"][variant]), y[split["test"]],
                               result["labels"])
        entry["n_clips"] = int(len(split["test"]))
        corpora[split["tested"][0]] = entry
    uars = np.array([c["uar"] for c in corpora.values()])
    emotions = sorted({e for c in corpora.values() for e in c["recall"]},
                      key=list(result["labels"]).index)
    return {
        "protocol": "leave one corpus out: trained on every other corpus, tested on all of one, "
                    "over the emotions it shares with them",
        "uar_mean": float(uars.mean()), "uar_std": float(uars.std()),
        "uar_min": float(uars.min()), "corpora": corpora,
        "uar_open_mean": float(np.mean([c["uar_open"] for c in corpora.values()])),
        "recall_mean": {e: float(np.mean([c["recall"][e] for c in corpora.values()
                                          if e in c["recall"]])) for e in emotions},
        "zero_recall": sorted(f"{k}: {e}" for k, c in corpora.items()
                              for e, r in c["recall"].items() if r == 0),
    }


def _held_out_uar(result: Mapping[str, Any], y: np.ndarray) -> dict[str, Any] | None:
    """UAR on each fold's held-out *training* speakers (what choices between models may use).

    A network's figure is optimistic: its early stopping chose the epoch on these speakers; a
    scikit-learn model's held-out fit never saw them. None when a fold has no held-out clips.
    """
    from sklearn.metrics import recall_score

    labels = list(result["labels"])
    scores = []
    for split in result["splits"]:
        held = split.get("held_out")
        if not held:
            return None
        truth = y[held["index"]]
        pred = np.asarray(labels)[np.argmax(held["proba"], axis=1)]
        scores.append(float(recall_score(truth, pred, labels=sorted(set(truth)),
                                          average="macro", zero_division=0)))
    return {"uar_mean": float(np.mean(scores)), "folds": scores,
            "note": "held-out training speakers of each fold (a network's early stopping saw "
                    "them); never the test fold"}


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
    protocols: Sequence[str] = PROTOCOLS,
    log: Callable[[str], None] = lambda _: None,
    teacher_cache_dir: Path | None = None,
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
        A subset of ``("emobox", "loco", "contiguous", "emodb", "cross")``.
    log : callable
        Called with a line per finished protocol.
    teacher_cache_dir : Path, optional
        A student's (``teacher``): the cache of the teacher's embeddings
        (:func:`export.teacher.teacher_embeddings`); default ``cache_dir``.

    Returns
    -------
    report : dict
        ``recipe``, ``dataset``, ``emobox`` (with ``published``, ``robustness`` and
        ``calibration``), ``loco`` (:func:`_loco_summary`), ``contiguous``, ``emodb``,
        ``cross_corpus``, ``seconds``.
    """
    from .experiment import robustness

    t0 = time.time()
    inp = _inputs(recipe, jobs=jobs, cache_dir=cache_dir, quiet=quiet,
                  robust="emobox" in protocols, teacher_cache_dir=teacher_cache_dir)
    y, speakers, corpora = inp.data.y, inp.data.speakers, inp.corpora
    report: dict[str, Any] = {
        "recipe": recipe.to_dict(), "dataset": inp.data.describe(),
        "clips": [f"{c.corpus}:{c.path.parent.name}/{c.path.name}" for c in inp.data.clips],
        "truth": y.tolist(),
    }
    present = set(corpora)
    if "emobox" in protocols and "ravdess" in present:
        splits = in_corpus_splits(speakers, corpora, "ravdess", emobox_groups(), name="emobox")
        res = _run(inp, recipe, splits, jobs=jobs, variants=True, calibrate=recipe.calibrate,
                   cache_dir=cache_dir)
        entry = _protocol_summary(res, y, "EmoBox's RAVDESS folds (4 actors each), "
                                  "speaker-independent")
        entry["published"] = emobox_published()
        perturbed = {**res, "splits": [{**sp, "proba": {k: v for k, v in sp["proba"].items()
                                                        if k == "clean" or k in PERTURBATIONS}}
                                       for sp in res["splits"]]}
        entry["robustness"] = robustness(perturbed, y)
        for name in (_adapt_name(b) for b in ADAPT_BUDGETS):
            if name in res["splits"][0]["proba"]:
                from .experiment import fold_scores

                scores = fold_scores(res, y, name)
                entry.setdefault("adapted", {})[name] = {
                    "uar_mean": scores["uar_mean"], "uar_std": scores["uar_std"],
                    "folds": [f["uar"] for f in scores["folds"]]}
        held = _held_out_uar(res, y)
        if held is not None:
            entry["held_out"] = held
        if recipe.calibrate:
            entry["calibration"] = _calibration(res, y)
        entry["best_epochs"] = [s["history"]["best_epoch"] for s in res["splits"]
                                if s.get("history")]
        report["emobox"] = entry
        report["_emobox_result"] = res
        log(f"emobox UAR {entry['uar_mean']:.3f} ± {entry['uar_std']:.3f}")
    if "loco" in protocols and len(present) > 1:
        splits = loco_splits(corpora, y)
        res = _run(inp, recipe, splits, jobs=jobs, variants=False, calibrate=False,
                   cache_dir=cache_dir)
        report["loco"] = _loco_summary(res, y)
        adapted = [_adapt_name(b) for b in ADAPT_BUDGETS
                   if _adapt_name(b) in res["splits"][0]["proba"]]
        for name in adapted:
            entry = _loco_summary(res, y, name)
            entry["description"] = (
                "each test speaker's profile from all of their clips" if name == "adapted" else
                f"each test speaker's profile from {name.split()[-2]} s of their speech (whole "
                "clips in a seeded order); under the model's min_seconds, not used")
            report["loco"].setdefault("adapted", {})[name] = entry
        report["_loco_result"] = res
        log("LOCO UAR " + " ".join(f"{k} {v['uar']:.3f}" for k, v in
                                   report["loco"]["corpora"].items())
            + f", mean {report['loco']['uar_mean']:.3f}")
    if "contiguous" in protocols and "ravdess" in present:
        groups = contiguous_groups()
        if "babble" in recipe.augment.kinds:  # babble pools follow this protocol's folds
            own = _inputs(recipe, jobs=jobs, cache_dir=cache_dir, quiet=quiet, robust=False,
                          pools_groups={**_groups(speakers, corpora), **groups},
                          teacher_cache_dir=teacher_cache_dir)
        else:
            own = inp
        splits = in_corpus_splits(speakers, corpora, "ravdess", groups, name="contiguous")
        report["contiguous"] = _protocol_summary(
            _run(own, recipe, splits, jobs=jobs, cache_dir=cache_dir), y,
            "contiguous RAVDESS folds (actors 01-04, 05-08, ...), speaker-independent")
        log(f"contiguous UAR {report['contiguous']['uar_mean']:.3f}")
    if "emodb" in protocols and "emodb" in present:
        splits = in_corpus_splits(speakers, corpora, "emodb", emodb_pair_groups(), name="emodb")
        report["emodb"] = _protocol_summary(
            _run(inp, recipe, splits, jobs=jobs, cache_dir=cache_dir), y,
            "EmoDB, 5 folds of 2 speakers (one male, one female)")
        log(f"emodb UAR {report['emodb']['uar_mean']:.3f}")
    if "cross" in protocols and {"ravdess", "emodb"} <= present:
        report["cross_corpus"] = {}
        pairs = [("ravdess", "emodb"), ("emodb", "ravdess")]
        results = _run(inp, recipe, [cross_corpus_split(corpora, y, a, b) for a, b in pairs],
                       jobs=jobs, cache_dir=cache_dir)
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
    loco = report.get("loco")
    if loco:
        out["loco"] = {"protocol": loco["protocol"], "uar_mean": loco["uar_mean"],
                       "uar": {k: c["uar"] for k, c in loco["corpora"].items()}}
        adapted = loco.get("adapted", {}).get("adapted")
        if adapted:
            out["loco"]["adapted_uar_mean"] = adapted["uar_mean"]
    out.setdefault("speaker_independent", {})
    return out


def _rounding(model: Any, exact: Any, frames: Sequence[np.ndarray]) -> dict[str, Any]:
    """How far a graph with rounded weights is from the exact one on real frame matrices."""
    from .ensemble import FRAMES_INPUT
    from .onnx_export import PROBA_OUTPUT, _session

    got, want = _session(model), _session(exact)
    diffs, changed = [], 0
    for F in frames:
        p = got.run([PROBA_OUTPUT], {FRAMES_INPUT: F[None]})[0]
        q = want.run([PROBA_OUTPUT], {FRAMES_INPUT: F[None]})[0]
        diffs.append(float(np.max(np.abs(p - q))))
        changed += int(np.argmax(p) != np.argmax(q))
    return {"max_probability_change": max(diffs), "labels_changed": changed,
            "clips_checked": len(frames)}


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
    teacher_cache_dir: Path | None = None,
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
    teacher_cache_dir : Path, optional
        As :func:`evaluate_recipe`'s. A student's model holds the network alone: its
        ``training`` metadata says what the teacher was (``teacher``,
        :func:`export.distill.teacher_metadata`) and that the file has none of its weights.

    Returns
    -------
    summary : dict
        ``path``, ``bytes``, ``n_clips``, ``temperature``, ``seconds`` (and for networks the
        training ``history``).
    """
    t0 = time.time()
    inp = _inputs(recipe, jobs=jobs, cache_dir=cache_dir, quiet=quiet, robust=False,
                  teacher_cache_dir=teacher_cache_dir)
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
    if recipe.is_ensemble:
        summary["history"] = _build_ensemble(recipe, inp, labels, training, metrics,
                                             temperature, out, cache_dir)
    else:
        history = _build_one(recipe, inp, labels, training, metrics, temperature, out)
        if history is not None:
            summary["history"] = history
    summary["bytes"] = Path(out).stat().st_size
    summary["seconds"] = time.time() - t0
    log(f"wrote {out} ({summary['bytes'] / 1024:.0f} KiB) in {summary['seconds']:.0f} s")
    return summary


def _build_one(recipe: TrainingRecipe, inp: _Inputs, labels: list[str], training: dict,
               metrics: Mapping[str, Any], temperature: float, out: str | Path) -> Any:
    """Train one (non-ensemble) model on every clip and write it; a network's history."""
    all_clips = np.arange(len(inp.data.clips))
    if inp.trainable is not None:
        all_clips = np.flatnonzero(inp.trainable)
    inp, adaptation, _ = _with_adaptation(inp, recipe, all_clips)
    if recipe.teacher:
        from .distill import teacher_metadata

        training["teacher"] = teacher_metadata(recipe.teacher_config(), inp.teacher_spec)
    if recipe.model == "mlpnet":
        from .nets.onnx import export_pooled_net

        model, history = _fit_net(inp, recipe, all_clips, labels)
        training["history"] = history
        extra = {"adaptation": adaptation.to_metadata()} if adaptation is not None else {}
        export_pooled_net(model, feature_config=recipe.feature_config, labels=labels,
                          training=training, metrics=metrics, check_rows=inp.inputs[::50],
                          temperature=temperature, path=out, **extra)
        return history
    if recipe.is_net:
        from .nets.onnx import export_net

        model, history = _fit_net(inp, recipe, all_clips, labels)
        training["history"] = history
        export_net(model, feature_config=recipe.feature_config, labels=labels,
                   training=training, metrics=metrics, check_frames=_check_frames(inp),
                   min_frames=model.min_frames, temperature=temperature, path=out)
        return history
    from .onnx_export import export_onnx

    model = _fit_sklearn(inp, recipe, all_clips)
    labels = [str(c) for c in model.classes_]  # scikit-learn's order: sorted
    export_onnx(model, feature_config=recipe.feature_config, labels=labels,
                training=training, metrics=metrics, path=out, check_rows=inp.inputs,
                temperature=temperature)
    return None


def _build_ensemble(recipe: TrainingRecipe, inp: _Inputs, labels: list[str], training: dict,
                    metrics: Mapping[str, Any], temperature: float, out: str | Path,
                    cache_dir: Path | None = None) -> Any:
    """Each member trained on every clip, exported, then composed into one checked graph."""
    import tempfile

    import onnx

    from .ensemble import check_ensemble, compose
    from .onnx_export import half_weights, read_metadata, save, set_metadata

    members, histories = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for k, (m, m_inp) in enumerate(zip(recipe.members, inp.members, strict=True)):
            # A member trained on every clip is kept in the cache (as a run is): ensembles
            # that share it train it once.
            path = Path(tmp) / f"member{k}.onnx"
            if cache_dir is not None:
                key = _run_key(m_inp, m, [], False, False)
                path = Path(cache_dir) / "members" / f"{key}.onnx"
            if not path.is_file():
                m_training = {"recipe": m.to_dict(), "n_clips": training["n_clips"]}
                built = path.with_suffix(".tmp")
                _build_one(m, m_inp, list(m.emotions), m_training,
                           {"speaker_independent": {}}, 1.0, built)
                built.replace(path)
            member = onnx.load(str(path))
            history = read_metadata(member)["training"].get("history")
            if history is not None:
                histories[m.name] = history
            teacher = read_metadata(member)["training"].get("teacher")
            if teacher is not None:  # a student member: what its teacher was (none of it here)
                training.setdefault("teacher", {})[m.name] = teacher
            members.append(member)
    frames = _check_frames(inp)

    def composed(parts: list) -> Any:
        return compose(parts, recipe.weights, config=recipe.feature_config, labels=labels,
                       temperature=temperature, how=recipe.combine)

    model = composed(members)
    if recipe.storage == "float16":
        # The graph is checked against its members with the same rounded weights; what the
        # rounding itself changes is measured against the full-precision graph.
        exact = model
        members = [half_weights(m) for m in members]
        model = composed(members)
        training["storage"] = {"dtype": "float16", **_rounding(model, exact, frames)}
    min_frames = max(int(read_metadata(m).get("min_frames", 1)) for m in members)
    training["history"] = histories
    # The members that adapt do so on the shared frame matrix (the others normalise each
    # utterance, which a per-row map does not change): the ensemble adapts as they do.
    adaptations = [read_metadata(m)["adaptation"] for m in members
                   if "adaptation" in read_metadata(m)]
    if len({json.dumps(a, sort_keys=True) for a in adaptations}) > 1:
        raise ParameterError("an ensemble's members adapt in different ways")
    extra = {"adaptation": adaptations[0]} if adaptations else {}
    set_metadata(model, labels=labels, feature_config=recipe.feature_config, training=training,
                 metrics=metrics, input_kind="frames", min_frames=min_frames, **extra)
    check_ensemble(model, members, recipe.weights, config=recipe.feature_config, labels=labels,
                   temperature=temperature, frames=frames, how=recipe.combine)
    save(model, out)
    return histories
