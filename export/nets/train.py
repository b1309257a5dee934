"""Training frame-level networks: a seeded loop with early stopping on held-out training speakers.

The data are frame matrices ``(n_features, n_frames)`` of different lengths, several versions
per clip (the clean one and its augmented copies). An epoch draws one version of every training
clip, cuts a random crop of ``crop`` frames from it (a shorter clip is repeated to length), and
goes through them in shuffled batches. After each epoch the network is scored on the clean,
full-length clips of the validation speakers: a few of the *training* speakers, held out of the
gradient steps, so that the test fold never chooses the epoch (:func:`validation_speakers`).
The epoch with the best validation UAR is kept; training stops after ``patience`` epochs without
a better one.

Seeds are set in one place (:func:`train_net`); with one thread, two runs with the same seed
give the same weights (``torch.use_deterministic_algorithms`` is set).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ser_edge.errors import ParameterError

__all__ = ["NetConfig", "Distillation", "validation_speakers", "build", "train_net",
           "predict_proba", "corpus_class_weights", "corpus_label_mask", "tempered",
           "soft_label_loss"]


@dataclass(frozen=True)
class NetConfig:
    """A network and how it is trained (saved with its results and in the model's metadata).

    Parameters
    ----------
    architecture : {"cnn", "crnn", "mlpnet"}
        :class:`~export.nets.modules.CNN1D`, :class:`~export.nets.modules.CRNN`, or the pooled
        :class:`~export.nets.modules.PooledMLP` (it takes pooled vectors, not frames).
    channels : tuple of int
        Convolution blocks' output channels.
    hidden : int
        GRU units per direction (``"crnn"``); hidden units (``"mlpnet"``).
    kernel_size : int
        Convolution width, in frames.
    dropout : float
    epochs : int
        Most epochs.
    patience : int
        Epochs without a better validation UAR before stopping.
    batch_size : int
    lr : float
        Peak learning rate of AdamW (one-cycle schedule over ``epochs``).
    weight_decay : float
    crop : int
        Frames per training example.
    freq_masks, freq_width, time_masks, time_width : int
        SpecAugment (Park et al. 2019): masks of up to ``freq_width`` rows and ``time_width``
        frames set to zero (the per-utterance mean); 0 masks turns it off.
    mixup : float
        Mixup's Beta(alpha, alpha) parameter (Zhang et al. 2018); 0 turns it off.
    label_smoothing : float
    adversary : float >= 0
        ``"mlpnet"``: the weight of a domain-adversarial loss (Ganin & Lempitsky 2015): a
        linear corpus classifier on the hidden layer, whose gradient reaches the layer reversed,
        so that the hidden layer learns what the corpora share rather than which corpus a clip
        is from. Ramped from 0 to this weight over training (``2 / (1 + exp(-10 p)) - 1``);
        0 turns it off.
    val_fraction : float
        Share of each corpus's training speakers held out for validation (at least one).
    seed : int
    threads : int
        PyTorch intra-op threads.
    """

    architecture: str = "cnn"
    channels: tuple[int, ...] = (96, 128, 128)
    hidden: int = 64
    kernel_size: int = 5
    dropout: float = 0.2
    epochs: int = 40
    patience: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-2
    crop: int = 128
    freq_masks: int = 0
    freq_width: int = 8
    time_masks: int = 0
    time_width: int = 16
    mixup: float = 0.0
    label_smoothing: float = 0.0
    adversary: float = 0.0
    val_fraction: float = 0.15
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        from .modules import ARCHITECTURES

        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if self.architecture not in ARCHITECTURES:
            raise ParameterError(f"unknown architecture {self.architecture!r}; choose from "
                                 f"{tuple(ARCHITECTURES)}")
        if self.crop < 8 or self.epochs < 1 or self.batch_size < 1:
            raise ParameterError("crop >= 8, epochs >= 1 and batch_size >= 1 are needed")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        data = dataclasses.asdict(self)
        data["channels"] = list(self.channels)
        return data

    @classmethod
    def from_json(cls, text: str) -> NetConfig:
        """Read :meth:`to_dict`'s JSON."""
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Distillation:
    """What a student learns from its teacher besides the labels (issue 21).

    The loss of a training batch becomes ``CE(labels) + soft_weight * T**2 *
    KL(teacher_T || student_T) + embed_weight * MSE(P h, e)``: ``teacher_T`` the teacher's
    probabilities tempered by ``T`` (:func:`tempered`), ``student_T`` the softmax of the student's
    logits over ``T`` (:func:`soft_label_loss`, Hinton et al. 2015), ``h`` the student's pooled
    representation (the modules' ``embed``), ``P`` a linear projection trained with it and
    discarded afterwards, ``e`` the teacher's embedding of the clip. Each version of a clip (its
    augmented copies) has the clean clip's targets.

    Parameters
    ----------
    soft : np.ndarray [shape=(n_clips, n_classes)], float
        The teacher's probabilities for each training clip, in the classes' order. Rows of the
        clips held out for validation are never read (they may be NaN); every other row must be
        finite, non-negative and sum to 1.
    embed : np.ndarray [shape=(n_clips, n_dims)], float, or None
        The teacher's embedding of each training clip, standardised (None when
        ``embed_weight`` is 0).
    soft_weight : float >= 0
        ``a``: the weight of the soft labels' term (0 leaves it out).
    temperature : float > 0
        ``T``.
    embed_weight : float >= 0
        ``b``: the weight of the embedding regression (0 leaves it out, and no projection is
        made).

    Raises
    ------
    ParameterError
        If a weight is negative, ``temperature`` is not positive, or ``embed`` is missing while
        ``embed_weight`` is positive.
    """

    soft: np.ndarray
    embed: np.ndarray | None = None
    soft_weight: float = 1.0
    temperature: float = 2.0
    embed_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.soft_weight < 0 or self.embed_weight < 0 or not self.temperature > 0:
            raise ParameterError(f"distillation needs weights >= 0 and a temperature > 0, got "
                                 f"soft_weight {self.soft_weight}, embed_weight "
                                 f"{self.embed_weight}, temperature {self.temperature}")
        if self.embed_weight > 0 and self.embed is None:
            raise ParameterError("embed_weight > 0 needs the teacher's embeddings ('embed')")


def tempered(P: np.ndarray, temperature: float, mask: np.ndarray | None = None) -> np.ndarray:
    """The teacher's probabilities at temperature ``T``: ``P ** (1 / T)``, renormalised.

    Equal to ``softmax(log(P) / T)``, the tempered softmax of the teacher's logits. With a
    mask, the classes a clip's corpus does not have get 0 and the others share the mass (the
    masked student cannot put any there).

    Parameters
    ----------
    P : np.ndarray [shape=(n, n_classes)]
        Probabilities (rows summing to 1; zeros allowed).
    temperature : float > 0
    mask : np.ndarray [shape=(n, n_classes)], bool, optional
        True on the classes each row may have.

    Returns
    -------
    Q : np.ndarray [shape=(n, n_classes)], float32
        Rows summing to 1. A row with no mass left under its mask is uniform over the mask.
    """
    logp = np.log(np.clip(np.asarray(P, np.float64), 1e-12, None)) / temperature
    if mask is not None:
        logp = np.where(mask, logp, -np.inf)
    logp -= logp.max(axis=1, keepdims=True)
    Q = np.exp(logp)
    return (Q / Q.sum(axis=1, keepdims=True)).astype(np.float32)


def soft_label_loss(logits: Any, target: Any, temperature: float) -> Any:
    """``T**2 * KL(target || softmax(logits / T))``, averaged over the batch.

    Parameters
    ----------
    logits : Tensor [shape=(batch, n_classes)]
        The student's logits (masked, when the labels are).
    target : Tensor [shape=(batch, n_classes)]
        The teacher's tempered probabilities (:func:`tempered`); zeros contribute nothing.
    temperature : float > 0

    Returns
    -------
    loss : Tensor [shape=()]
        In the units of a cross-entropy (nats); the ``T**2`` keeps its gradients' scale as
        ``T`` changes (Hinton et al. 2015).
    """
    import torch

    log_p = torch.log_softmax(logits / temperature, dim=-1)
    kl = torch.sum(torch.xlogy(target, target) - target * log_p, dim=-1)
    return temperature ** 2 * kl.mean()


def validation_speakers(speakers: Sequence[str], corpora: Sequence[str], fraction: float,
                        seed: int) -> set[str]:
    """Training speakers held out for validation: a seeded ``fraction`` of each corpus's.

    Parameters
    ----------
    speakers, corpora : sequence of str
        The training clips' speakers and corpora.
    fraction : float
    seed : int

    Returns
    -------
    held : set of str
    """
    import zlib

    speakers = np.asarray(speakers).astype(str)
    corpora = np.asarray(corpora).astype(str)
    held: set[str] = set()
    for corpus in sorted(set(corpora)):
        # Seeded per corpus: a corpus's held-out speakers do not depend on the other corpora
        # trained on (the members of an ensemble may train on some of them).
        rng = np.random.default_rng([seed, 7, zlib.crc32(corpus.encode("utf-8"))])
        pool = sorted(set(speakers[corpora == corpus]))
        k = max(1, int(round(fraction * len(pool)))) if len(pool) > 1 else 0
        held.update(rng.choice(pool, size=k, replace=False).tolist() if k else [])
    return held


def build(config: NetConfig, n_features: int, n_classes: int) -> Any:
    """The untrained module ``config`` describes."""
    from .modules import CNN1D, CRNN, PooledMLP

    if config.architecture == "mlpnet":
        return PooledMLP(n_features, n_classes, hidden=config.hidden, dropout=config.dropout)
    if config.architecture == "cnn":
        return CNN1D(n_features, n_classes, channels=config.channels,
                     kernel_size=config.kernel_size, dropout=config.dropout)
    return CRNN(n_features, n_classes, channels=config.channels, hidden=config.hidden,
                kernel_size=config.kernel_size, dropout=config.dropout)


def _crop(F: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``crop``-frame window of ``F``; a shorter ``F`` is repeated to length."""
    n = F.shape[1]
    if n < crop:
        if not n:
            return np.zeros((F.shape[0], crop), F.dtype)
        return np.tile(F, (1, -(-crop // n)))[:, :crop]  # along time; np.resize mixes rows
    start = int(rng.integers(n - crop + 1))
    return F[:, start:start + crop]


def _spec_augment(x: np.ndarray, config: NetConfig, rng: np.random.Generator) -> None:
    """Zero random bands of rows and frames in place (SpecAugment), per example."""
    for item in x:
        for _ in range(config.freq_masks):
            w = int(rng.integers(config.freq_width + 1))
            f0 = int(rng.integers(max(1, item.shape[0] - w)))
            item[f0:f0 + w] = 0.0
        for _ in range(config.time_masks):
            w = int(rng.integers(config.time_width + 1))
            t0 = int(rng.integers(max(1, item.shape[1] - w)))
            item[:, t0:t0 + w] = 0.0


def predict_proba(model: Any, frames: Sequence[np.ndarray]) -> np.ndarray:
    """Class probabilities of each full-length clip, one clip at a time (as on the device).

    A pooled network (:class:`~export.nets.modules.PooledMLP`) takes the vectors all at once.

    Returns
    -------
    P : np.ndarray [shape=(len(frames), n_classes)], float64
    """
    import torch

    model.eval()
    out = []
    if len(frames) and np.ndim(frames[0]) == 1:
        with torch.no_grad():
            X = torch.from_numpy(np.ascontiguousarray(np.stack(frames), np.float32))
            return torch.softmax(model(X), dim=-1).double().numpy()
    with torch.no_grad():
        for F in frames:
            logits = model(torch.from_numpy(np.ascontiguousarray(F, np.float32))[None])
            out.append(torch.softmax(logits, dim=-1)[0].double().numpy())
    return np.stack(out) if out else np.zeros((0, 0))


def _uar(y: np.ndarray, pred: np.ndarray) -> float:
    classes = np.unique(y)
    return float(np.mean([np.mean(pred[y == c] == c) for c in classes]))


def _corpus_uar(y: np.ndarray, pred: np.ndarray, corpora: np.ndarray) -> float:
    """The mean over corpora of each one's UAR: no corpus weighs by its size."""
    return float(np.mean([_uar(y[corpora == c], pred[corpora == c])
                          for c in np.unique(corpora)]))


def corpus_class_weights(y: np.ndarray, corpora: Sequence[str]) -> np.ndarray:
    """Sampling weights under which every corpus, and every emotion within it, weighs alike.

    Parameters
    ----------
    y : np.ndarray [shape=(n_clips,)]
        Each clip's class.
    corpora : sequence of str [shape=(n_clips,)]

    Returns
    -------
    w : np.ndarray [shape=(n_clips,)], float64
        Summing to 1: ``1 / (n_corpora * n_classes_of_its_corpus * n_clips_of_its_class)``.
    """
    y = np.asarray(y)
    corpora = np.asarray(corpora).astype(str)
    w = np.zeros(len(y))
    names = np.unique(corpora)
    for c in names:
        mine = corpora == c
        classes = np.unique(y[mine])
        for k in classes:
            cell = mine & (y == k)
            w[cell] = 1.0 / (len(names) * len(classes) * cell.sum())
    return w / w.sum()


def corpus_label_mask(y: np.ndarray, corpora: Sequence[str], n_classes: int) -> np.ndarray:
    """Per clip, the classes its corpus has: a corpus without a label never teaches its absence.

    Returns
    -------
    mask : np.ndarray [shape=(n_clips, n_classes)], bool
    """
    y = np.asarray(y)
    corpora = np.asarray(corpora).astype(str)
    mask = np.zeros((len(y), n_classes), bool)
    for c in np.unique(corpora):
        mine = corpora == c
        mask[np.ix_(mine, np.unique(y[mine]))] = True
    return mask


def train_net(
    versions: Sequence[Sequence[np.ndarray]],
    y: np.ndarray,
    speakers: Sequence[str],
    corpora: Sequence[str],
    config: NetConfig,
    n_classes: int,
    *,
    mask_labels: bool = False,
    balance: bool = False,
    val_seed: int | None = None,
    distill: Distillation | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train a network on the given clips, choosing the epoch on held-out training speakers.

    Parameters
    ----------
    versions : sequence of sequence of np.ndarray [shape=(n_features, n_frames_i)]
        Per training clip, its frame matrices: the clean one first, then augmented copies (for
        the pooled ``"mlpnet"``, vectors ``(n_features,)``).
    y : np.ndarray [shape=(n_clips,)], int
        Class index of each clip.
    speakers, corpora : sequence of str [shape=(n_clips,)]
    config : NetConfig
    n_classes : int
    mask_labels : bool
        Each clip's loss over the labels its corpus has only (:func:`corpus_label_mask`): a
        corpus without disgust does not teach that disgust never happens.
    balance : bool
        Draw each epoch's examples with :func:`corpus_class_weights` (with replacement) instead
        of every clip once, and weigh no class in the loss: no corpus dominates by its size.
        With either option the epoch is chosen by the mean over the validation corpora of
        their UAR.
    val_seed : int, optional
        The seed that holds out the validation speakers (``config.seed`` by default): networks
        of several seeds averaged hold out the same ones.
    distill : Distillation, optional
        A teacher's soft labels and embeddings, rows as the clips: the network is trained as its
        student (the epoch is still chosen on the validation speakers' label UAR). The
        projection onto the embeddings is made with its own seed, so that it changes no other
        random draw, and is not part of the returned model.
    log : callable, optional
        Called with a line per epoch.

    Returns
    -------
    model : torch.nn.Module
        With the best epoch's weights, in eval mode.
    history : dict
        ``epochs`` (per epoch: ``loss``, ``val_uar``; with ``distill`` also the mean of each
        term, ``ce``, ``soft`` and ``embed``, unweighted), ``best_epoch``, ``best_val_uar``,
        ``val_speakers``, ``seconds``, ``n_parameters``.

    Raises
    ------
    ParameterError
        If the corpus adversary is asked of a frame network, or ``distill``'s rows do not match
        the clips or are not valid probabilities on the clips trained on.
    """
    import torch

    t0 = time.time()
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng([config.seed, 11])
    y = np.asarray(y, dtype=np.int64)
    held = validation_speakers(speakers, corpora, config.val_fraction,
                               config.seed if val_seed is None else val_seed)
    is_val = np.isin(np.asarray(speakers).astype(str), sorted(held))
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    n_features = versions[0][0].shape[0]
    pooled = np.ndim(versions[0][0]) == 1
    model = build(config, n_features, n_classes)
    if pooled:
        model.standardise_on(torch.from_numpy(np.stack(
            [versions[i][0] for i in train_idx]).astype(np.float32)))
    counts = np.bincount(y[train_idx], minlength=n_classes).astype(np.float64)
    weights = torch.tensor(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes,
                                    0.0), dtype=torch.float32)
    corpora = np.asarray(corpora).astype(str)
    draw = corpus_class_weights(y[train_idx], corpora[train_idx]) if balance else None
    log_mask = None
    if mask_labels:
        log_mask = torch.from_numpy(np.where(corpus_label_mask(y, corpora, n_classes), 0.0,
                                             -1e4).astype(np.float32))
    loss_fn = torch.nn.CrossEntropyLoss(weight=None if balance else weights,
                                        label_smoothing=config.label_smoothing)
    params = list(model.parameters())
    corpus_head = None
    if config.adversary > 0:
        if not pooled:
            raise ParameterError("the corpus adversary is for the pooled network (mlpnet)")
        from .modules import reverse_gradient

        names = sorted(set(corpora[train_idx]))
        corpus_index = torch.from_numpy(np.array([names.index(c) if c in names else 0
                                                  for c in corpora]))
        corpus_head = torch.nn.Linear(model.hidden_size, len(names))
        params += list(corpus_head.parameters())
    soft_targets = embed_targets = projection = None
    if distill is not None:
        soft_targets, embed_targets, projection = _student_targets(
            distill, y, train_idx, corpus_label_mask(y, corpora, n_classes) if mask_labels
            else None, model, config.seed)
        if projection is not None:
            params += list(projection.parameters())
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * max(1, int(np.ceil(len(train_idx) / config.batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps)
    val_frames = [versions[i][0] for i in val_idx]
    best = {"uar": -1.0, "epoch": -1, "state": None}
    history: list[dict[str, float]] = []
    for epoch in range(config.epochs):
        model.train()
        order = (rng.permutation(train_idx) if draw is None
                 else train_idx[rng.choice(len(train_idx), size=len(train_idx), p=draw)])
        total, n_seen = 0.0, 0
        terms = {"ce": 0.0, "soft": 0.0, "embed": 0.0}
        for b in range(0, len(order), config.batch_size):
            batch = order[b:b + config.batch_size]
            if len(batch) < 2:  # batch norm needs two examples
                continue
            picks = [versions[i][int(rng.integers(len(versions[i])))] for i in batch]
            x = (np.stack(picks) if pooled else
                 np.stack([_crop(F, config.crop, rng) for F in picks])).astype(np.float32)
            if (config.freq_masks or config.time_masks) and not pooled:
                _spec_augment(x, config, rng)
            xt, yt = torch.from_numpy(x), torch.from_numpy(y[batch])

            def masked(logits: Any, rows: Any = batch) -> Any:
                return logits if log_mask is None else logits + log_mask[rows]
            if distill is not None:
                parts = _student_loss(model, xt, yt, batch, loss_fn, masked, config, rng,
                                      distill, soft_targets, embed_targets, projection,
                                      corpus_head, None if corpus_head is None else
                                      corpus_index, (epoch + b / len(order)) / config.epochs)
                loss = parts.pop("loss")
                for k, v in parts.items():
                    terms[k] += v * len(batch)
            elif config.mixup > 0:
                lam = float(rng.beta(config.mixup, config.mixup))
                perm = rng.permutation(len(batch))
                logits = model(lam * xt + (1 - lam) * xt[torch.from_numpy(perm)])
                loss = (lam * loss_fn(masked(logits), yt)
                        + (1 - lam) * loss_fn(masked(logits, batch[perm]),
                                              yt[torch.from_numpy(perm)]))
            elif corpus_head is not None:
                h = model.hidden(xt)
                progress = (epoch + b / len(order)) / config.epochs
                weight = config.adversary * (2.0 / (1.0 + np.exp(-10.0 * progress)) - 1.0)
                loss = (loss_fn(masked(model.head(h)), yt)
                        + torch.nn.functional.cross_entropy(
                            corpus_head(reverse_gradient(h, float(weight))),
                            corpus_index[batch]))
            else:
                loss = loss_fn(masked(model(xt)), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(batch)
            n_seen += len(batch)
        val_uar = 0.0
        if len(val_idx):
            pred = np.argmax(predict_proba(model, val_frames), axis=1)
            val_uar = (_corpus_uar(y[val_idx], pred, corpora[val_idx])
                       if mask_labels or balance else _uar(y[val_idx], pred))
        history.append({"epoch": epoch + 1, "loss": total / max(n_seen, 1), "val_uar": val_uar})
        if distill is not None:
            history[-1].update({k: v / max(n_seen, 1) for k, v in terms.items()})
        if log is not None:
            log(f"epoch {epoch + 1:3d}  loss {total / max(n_seen, 1):.3f}  val UAR {val_uar:.3f}")
        if val_uar > best["uar"]:
            best = {"uar": val_uar, "epoch": epoch + 1,
                    "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        elif epoch + 1 - best["epoch"] >= config.patience:
            break
    model.load_state_dict(best["state"])
    model.eval()
    return model, {
        "epochs": history, "best_epoch": best["epoch"], "best_val_uar": best["uar"],
        "val_speakers": sorted(held), "seconds": time.time() - t0,
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
    }


def _student_targets(distill: Distillation, y: np.ndarray, train_idx: np.ndarray,
                     mask: np.ndarray | None, model: Any, seed: int) -> tuple[Any, Any, Any]:
    """The tempered soft labels and embeddings as tensors, and the projection (or None)."""
    import torch

    n = len(y)
    soft = np.asarray(distill.soft, np.float64)
    if soft.shape != (n, model.head[-1].out_features):
        raise ParameterError(f"the teacher's soft labels have shape {soft.shape}, the clips "
                             f"and classes are {(n, model.head[-1].out_features)}")
    rows = soft[train_idx]
    if not (np.isfinite(rows).all() and (rows >= 0).all()
            and np.allclose(rows.sum(axis=1), 1.0, atol=1e-4)):
        raise ParameterError("the teacher's soft labels of the clips trained on must be finite "
                             "probabilities summing to 1 (NaN is for held-out clips only)")
    soft = np.where(np.isfinite(soft), soft, 1.0 / soft.shape[1])  # held-out rows: never read
    soft_t = torch.from_numpy(tempered(soft, distill.temperature, mask))
    if distill.embed_weight <= 0:
        return soft_t, None, None
    embed = np.asarray(distill.embed, np.float32)
    if embed.ndim != 2 or len(embed) != n or not np.isfinite(embed[train_idx]).all():
        raise ParameterError(f"the teacher's embeddings must be ({n}, n_dims) and finite on the "
                             f"clips trained on; got shape {embed.shape}")
    # Its own seed: the projection's initial weights draw nothing from the training's stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 100_003)
        projection = torch.nn.Linear(model.embed_size, embed.shape[1])
    return soft_t, torch.from_numpy(np.nan_to_num(embed)), projection


def _student_loss(model: Any, xt: Any, yt: Any, batch: np.ndarray, loss_fn: Any,
                  masked: Callable[..., Any], config: NetConfig, rng: np.random.Generator,
                  distill: Distillation, soft_t: Any, embed_t: Any, projection: Any,
                  corpus_head: Any, corpus_index: Any, progress: float) -> dict[str, Any]:
    """A student's batch loss (:class:`Distillation`) and its terms' values, unweighted.

    Mixup, the label mask and the corpus adversary act as in the plain loss, with the same
    random draws in the same order (the adversary, as there, only without mixup): a mixed
    example's soft-label term is the mixture of its two clips' terms (each under its own mask),
    its embedding target the mixture of their embeddings.
    """
    import torch

    mix = [(1.0, batch)]
    if config.mixup > 0:
        lam = float(rng.beta(config.mixup, config.mixup))
        perm = rng.permutation(len(batch))
        xt = lam * xt + (1 - lam) * xt[torch.from_numpy(perm)]
        h = model.embed(xt)
        logits = model.head(h)
        ce = (lam * loss_fn(masked(logits), yt)
              + (1 - lam) * loss_fn(masked(logits, batch[perm]), yt[torch.from_numpy(perm)]))
        mix = [(lam, batch), (1 - lam, batch[perm])]
    else:
        h = model.embed(xt)
        logits = model.head(h)
        ce = loss_fn(masked(logits), yt)
    loss = ce
    out = {"ce": float(ce.item()), "soft": 0.0, "embed": 0.0}
    if corpus_head is not None and config.mixup <= 0:
        from .modules import reverse_gradient

        weight = config.adversary * (2.0 / (1.0 + np.exp(-10.0 * progress)) - 1.0)
        loss = loss + torch.nn.functional.cross_entropy(
            corpus_head(reverse_gradient(h, float(weight))), corpus_index[batch])
    if distill.soft_weight > 0:
        soft = sum(w * soft_label_loss(masked(logits, rows), soft_t[rows], distill.temperature)
                   for w, rows in mix)
        loss = loss + distill.soft_weight * soft
        out["soft"] = float(soft.item())
    if projection is not None:
        target = sum(w * embed_t[rows] for w, rows in mix)
        mse = torch.mean((projection(h) - target) ** 2)
        loss = loss + distill.embed_weight * mse
        out["embed"] = float(mse.item())
    out["loss"] = loss
    return out
