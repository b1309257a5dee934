"""A built model on whole corpora it was never trained on: UAR and each emotion's recall.

What a new user's voice meets: the runtime (:class:`ser_edge.Classifier`, as ``ser-edge
classify``) on every clip of a corpus, scored over the corpus's own emotions that the model
knows, the answer being the likeliest of those (as leave-one-corpus-out scores; ``uar_open``
takes the model's answer over every label it knows). Only for corpora the model never saw (its
metadata names what it was trained on; :func:`score_corpora` refuses the others), so the figure
is as speaker-independent as leave-one-corpus-out.

    python -m export score --model mlp-cnn3-robust-geometric --corpus ased --corpus korean
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ser_edge.errors import ParameterError, SerEdgeError

from .corpora import parse_corpus
from .dataset import resolve_corpus

__all__ = ["trained_corpora", "score_corpora"]


def trained_corpora(clf: Any) -> set[str]:
    """The corpora a model's metadata says it was trained on (``training.recipe.corpora``)."""
    recipe = (clf.metadata.get("training") or {}).get("recipe") or {}
    return {str(c).partition("=")[0] for c in recipe.get("corpora") or []}


def score_corpora(model: Any, corpora: Sequence[str], *, every: int = 1,
                  adapt: bool = False,
                  log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Classify every clip of each corpus with a built model; UAR and recall per corpus.

    Parameters
    ----------
    model : str or Path or None
        A bundled model's name or an ONNX file (:class:`ser_edge.Classifier`).
    corpora : sequence of str
        Corpus specs (:func:`export.dataset.resolve_corpus`), none of them trained on.
    every : int >= 1
        Every ``every``-th clip of each corpus.
    adapt : bool
        Adapt to each speaker: a profile of all of the speaker's clips first
        (:meth:`ser_edge.Classifier.learn`), then each clip classified with it.
    log : callable

    Returns
    -------
    result : dict
        ``model``, ``corpora`` (per corpus ``uar``, ``recall``, ``labels``, ``confusion``,
        ``clips``, ``no_speech``), ``uar_mean``.

    Raises
    ------
    ParameterError
        If a corpus is one the model was trained on, or shares fewer than two emotions with its
        labels.
    """
    from sklearn.metrics import confusion_matrix, recall_score

    from ser_edge import Classifier

    clf = Classifier(model)
    seen = trained_corpora(clf)
    out: dict[str, Any] = {"model": clf.name or str(clf.model_path), "adapt": adapt,
                           "every": every, "corpora": {}}
    for spec in corpora:
        name, root = resolve_corpus(spec)
        if name in seen:
            raise ParameterError(f"the model was trained on {name}: score it on corpora it "
                                 "never saw")
        clips = [c for c in parse_corpus(name, root, warn=False).clips
                 if c.emotion in clf.labels][::every]
        emotions = sorted({c.emotion for c in clips}, key=clf.labels.index)
        if len(emotions) < 2:
            raise ParameterError(f"{name} shares fewer than two emotions with the model")
        profiles: dict[str, Any] = {}
        if adapt:
            for c in clips:
                one = profiles.setdefault(c.speaker, Classifier(clf.model_path))
                try:
                    one.learn(c.path)
                except SerEdgeError:
                    pass
        truth, pred, open_pred, no_speech = [], [], [], 0
        for c in clips:
            who = profiles.get(c.speaker, clf)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    p = who.classify(c.path)
                label = max(emotions, key=p.probabilities.__getitem__)
                open_label = p.label
            except SerEdgeError:
                no_speech += 1
                label = open_label = "(no answer)"
            truth.append(c.emotion)
            pred.append(label)
            open_pred.append(open_label)
        truth, pred, open_pred = np.array(truth), np.array(pred), np.array(open_pred)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            recall = recall_score(truth, pred, labels=emotions, average=None, zero_division=0)
        entry = {"uar": float(np.mean(recall)), "clips": len(clips), "no_speech": no_speech,
                 "uar_open": float(np.mean([np.mean(open_pred[truth == e] == e)
                                            for e in emotions])),
                 "labels": emotions,
                 "recall": {e: float(r) for e, r in zip(emotions, recall, strict=True)},
                 "confusion": confusion_matrix(truth, pred, labels=emotions).tolist()}
        out["corpora"][name] = entry
        log(f"{name}: UAR {entry['uar']:.3f} on {len(clips)} clips ("
            + ", ".join(f"{e} {r:.2f}" for e, r in entry["recall"].items()) + ")")
    out["uar_mean"] = float(np.mean([c["uar"] for c in out["corpora"].values()]))
    return out
