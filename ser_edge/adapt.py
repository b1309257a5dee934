"""Adaptation to a speaker and a microphone, without labels: their own statistics taken out.

A recording's microphone, room and voice shift and scale each row of the frame matrix (a
channel's frequency response is a constant added to every log-mel band, in dB; a voice has its
own register and spread). A model trained on a few dozen voices meets a new one with every row
off, and its answers drift to one label (a corpus that all comes out "sad"). The remedy is the
speaker normalisation of the SER literature (Busso et al. 2011) and the cepstral mean and
variance normalisation of speech recognition, done on what the speaker says anyway:

- :class:`SpeakerProfile` keeps running statistics (count, mean, variance) of every row over the
  active frames of a speaker's unlabelled audio, as it arrives, in memory that does not grow; it
  saves to and loads from a small JSON file, so a profile carries across runs;
- :class:`Adaptation`, from the model's ``adaptation`` metadata, says which blocks are adapted,
  the training population's statistics, and how much speech a profile needs before it is used
  (``min_seconds``);
- :meth:`Adaptation.frames` maps each adapted row from the speaker's mean and standard
  deviation to the population's::

      x' = (x - mean_speaker) / std_speaker * std_population + mean_population

  so an adapted clip looks like the same clip said by a typical training voice into a typical
  microphone, and :meth:`Adaptation.vector` does the same to a pooled vector (each statistic of
  the mapping: means, minima and maxima move and scale, standard deviations scale).

Training standardises its speakers the same way (each clip both as it is and adapted), so one
model takes either; with too little audio the input is left as it is, the best answer a single
clip can get.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError, ParameterError
from .features import FeatureConfig

__all__ = ["Adaptation", "SpeakerProfile", "ADAPTABLE_STATS", "PROFILE_FORMAT"]

#: The pooled statistics :meth:`Adaptation.vector` can map (all of ``FeatureConfig.stats``).
ADAPTABLE_STATS = ("mean", "std", "min", "max")

#: The ``format`` of a saved profile.
PROFILE_FORMAT = "ser-edge speaker profile 1"

# Standard deviations under this (a flat row: digital silence, a constant band) are not divided
# out: the row is only shifted.
_STD_FLOOR = 1e-3


def _fingerprint(config: FeatureConfig) -> str:
    """What a profile's rows mean: a hash of the feature configuration, normalisation aside."""
    text = FeatureConfig.from_json(config.to_json()).to_json()
    data = json.loads(text)
    data.pop("norm", None)
    data.pop("stats", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class SpeakerProfile:
    """Running statistics of every row of the frame matrix over a speaker's active frames.

    Parameters
    ----------
    config : FeatureConfig
        The features whose rows it counts (the model's; ``norm`` and ``stats`` do not matter).

    Attributes
    ----------
    n_frames : float
        Frames counted (a weighted count: overlapping windows of a stream count their share).
    mean, var : np.ndarray [shape=(n_rows,)], float64
        Each row's mean and population variance over those frames.
    """

    def __init__(self, config: FeatureConfig):
        self.config = config
        self.n_rows = sum(config.block_sizes.values())
        self.n_frames = 0.0
        self.mean = np.zeros(self.n_rows)
        self.m2 = np.zeros(self.n_rows)

    @property
    def var(self) -> np.ndarray:
        """Each row's population variance, ``(n_rows,)`` float64 (zeros before any frame)."""
        return self.m2 / self.n_frames if self.n_frames > 0 else np.zeros(self.n_rows)

    @property
    def seconds(self) -> float:
        """How much speech the profile holds: its frames times the hop, in seconds."""
        return self.n_frames * self.config.hop_length / self.config.sr

    def add(self, n_frames: float, mean: np.ndarray, var: np.ndarray) -> None:
        """Merge the statistics of ``n_frames`` frames (Chan et al.'s parallel update).

        Parameters
        ----------
        n_frames : float >= 0
            Frames (or a weighted count) the statistics are of; 0 adds nothing.
        mean, var : np.ndarray [shape=(n_rows,)]
            Their mean and population variance per row.

        Raises
        ------
        ParameterError
            If the shapes differ from the profile's rows, or a value is not finite.
        """
        mean = np.asarray(mean, dtype=np.float64)
        var = np.asarray(var, dtype=np.float64)
        if mean.shape != (self.n_rows,) or var.shape != (self.n_rows,):
            raise ParameterError(f"statistics of shape {mean.shape} and {var.shape} for a "
                                 f"profile of {self.n_rows} rows")
        if not (math.isfinite(n_frames) and n_frames >= 0):
            raise ParameterError(f"n_frames must be a finite count >= 0, got {n_frames!r}")
        if not n_frames:
            return
        if not (np.isfinite(mean).all() and np.isfinite(var).all()):
            raise ParameterError("the statistics are not finite")
        n = self.n_frames + n_frames
        delta = mean - self.mean
        self.mean = self.mean + delta * (n_frames / n)
        self.m2 = self.m2 + var * n_frames + delta**2 * (self.n_frames * n_frames / n)
        self.n_frames = n

    def update(self, F: np.ndarray, *, weight: float = 1.0) -> None:
        """Count the frames of a frame matrix (its columns).

        Parameters
        ----------
        F : np.ndarray [shape=(n_rows, n_frames)]
            :func:`ser_edge.features.frame_matrix` of some of the speaker's audio, over the
            active frames, without per-utterance normalisation.
        weight : float in (0, 1]
            The share of its frames that are new (a stream's overlapping windows).

        Raises
        ------
        ParameterError
            If ``F`` has another number of rows.
        """
        F = np.asarray(F, dtype=np.float64)
        if F.ndim != 2 or F.shape[0] != self.n_rows:
            raise ParameterError(f"a frame matrix of shape {F.shape} for a profile of "
                                 f"{self.n_rows} rows")
        if F.shape[1]:
            self.add(weight * F.shape[1], F.mean(axis=1), F.var(axis=1))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (what :meth:`from_dict` reads)."""
        return {"format": PROFILE_FORMAT, "features": _fingerprint(self.config),
                "n_frames": self.n_frames, "seconds": round(self.seconds, 3),
                "mean": self.mean.tolist(), "var": self.var.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], config: FeatureConfig) -> SpeakerProfile:
        """A profile of ``config``'s rows from :meth:`to_dict`'s fields.

        Raises
        ------
        ParameterError
            If the fields are not a profile, or of another feature configuration.
        """
        if not isinstance(data, Mapping) or data.get("format") != PROFILE_FORMAT:
            raise ParameterError(f"not a speaker profile (no 'format': {PROFILE_FORMAT!r})")
        if data.get("features") != _fingerprint(config):
            raise ParameterError("the profile was made with other features than this model's: "
                                 "start a new one")
        profile = cls(config)
        try:
            n = float(data["n_frames"])
            profile.add(n, np.asarray(data["mean"], dtype=np.float64),
                        np.asarray(data["var"], dtype=np.float64))
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"a damaged speaker profile ({exc})") from None
        return profile

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the profile as JSON (atomically: a temporary file, then renamed).

        Raises
        ------
        OSError
            If the file cannot be written.
        """
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict()) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], config: FeatureConfig) -> SpeakerProfile:
        """Read a profile written by :meth:`save`.

        Raises
        ------
        ParameterError
            If the file cannot be read or is not a profile of ``config``'s features (the
            message names the file).
        """
        try:
            data = json.loads(Path(path).read_text())
            return cls.from_dict(data, config)
        except OSError as exc:
            raise ParameterError(f"{path}: cannot read the profile "
                                 f"({exc.strerror or exc})") from None
        except ValueError as exc:
            raise ParameterError(f"{path}: {exc}") from None

    def __repr__(self) -> str:
        return f"SpeakerProfile({self.seconds:.1f} s of speech, {self.n_rows} rows)"


@dataclass(frozen=True)
class Adaptation:
    """How a model adapts to a speaker: the rows it standardises and the population's statistics.

    Parameters
    ----------
    config : FeatureConfig
        The model's features.
    blocks : tuple of str
        The blocks of the frame matrix standardised (a subset of ``config.features``).
    mean, std : np.ndarray [shape=(n_rows,)]
        The training population's statistics of every row (the average over the training
        speakers of each one's mean and standard deviation); rows of other blocks are ignored.
    min_seconds : float >= 0
        A profile is used once it holds this much speech (:attr:`SpeakerProfile.seconds`).

    Raises
    ------
    ModelError
        If a block is unknown, the shapes differ from the rows, or a value is not finite.
    """

    config: FeatureConfig
    blocks: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    min_seconds: float = 10.0

    def __post_init__(self) -> None:
        n_rows = sum(self.config.block_sizes.values())
        object.__setattr__(self, "blocks", tuple(self.blocks))
        object.__setattr__(self, "mean", np.asarray(self.mean, dtype=np.float64))
        object.__setattr__(self, "std", np.asarray(self.std, dtype=np.float64))
        unknown = sorted(set(self.blocks) - set(self.config.features))
        if unknown or not self.blocks:
            raise ModelError(f"adaptation names blocks the features lack: {unknown or 'none'}")
        if self.mean.shape != (n_rows,) or self.std.shape != (n_rows,):
            raise ModelError(f"adaptation statistics of shape {self.mean.shape} for "
                             f"{n_rows} rows")
        if not (np.isfinite(self.mean).all() and np.isfinite(self.std).all()
                and (self.std >= 0).all()):
            raise ModelError("adaptation statistics are not finite non-negative numbers")
        if not (math.isfinite(self.min_seconds) and self.min_seconds >= 0):
            raise ModelError(f"adaptation min_seconds must be >= 0, got {self.min_seconds!r}")

    @property
    def rows(self) -> np.ndarray:
        """Which rows of the frame matrix are standardised, ``(n_rows,)`` bool."""
        return np.concatenate([np.full(n, name in self.blocks)
                               for name, n in self.config.block_sizes.items()])

    def ready(self, profile: SpeakerProfile | None) -> bool:
        """Whether ``profile`` holds enough speech to be used."""
        return profile is not None and profile.n_frames > 0 \
            and profile.seconds >= self.min_seconds

    def affine(self, profile: SpeakerProfile) -> tuple[np.ndarray, np.ndarray]:
        """The per-row map ``x' = a x + b`` from the speaker to the population.

        Returns
        -------
        a, b : np.ndarray [shape=(n_rows,)], float64
            1 and 0 for the rows not adapted; a flat row of the speaker's (std under 1e-3) is
            only shifted.
        """
        sd = np.sqrt(profile.var)
        a = np.where(sd > _STD_FLOOR, self.std / np.maximum(sd, _STD_FLOOR), 1.0)
        b = self.mean - a * profile.mean
        keep = self.rows
        return np.where(keep, a, 1.0), np.where(keep, b, 0.0)

    def frames(self, F: np.ndarray, profile: SpeakerProfile) -> np.ndarray:
        """A frame matrix mapped from the speaker's statistics to the population's.

        Parameters
        ----------
        F : np.ndarray [shape=(n_rows, n_frames)]
            :func:`ser_edge.features.frame_matrix` (without per-utterance normalisation).
        profile : SpeakerProfile

        Returns
        -------
        F_adapted : np.ndarray [shape=(n_rows, n_frames)], float32
        """
        a, b = self.affine(profile)
        return (np.asarray(F, np.float64) * a[:, None] + b[:, None]).astype(np.float32)

    def vector(self, x: np.ndarray, profile: SpeakerProfile,
               config: FeatureConfig | None = None) -> np.ndarray:
        """A pooled vector mapped as :meth:`frames` maps the frames it was pooled from.

        ``pool(frames(F))`` equals ``vector(pool(F))`` to float rounding: a positive affine map
        of a row moves and scales its mean, minimum and maximum, and scales its standard
        deviation.

        Parameters
        ----------
        x : np.ndarray [shape=(..., n_features)]
            :func:`ser_edge.features.feature_vector` vectors (no per-utterance normalisation).
        profile : SpeakerProfile
        config : FeatureConfig, optional
            The vector's layout (a member's own blocks and statistics); the adaptation's.

        Returns
        -------
        x_adapted : np.ndarray [shape=x.shape], float32
        """
        config = self.config if config is None else config
        a, b = self.affine(profile)
        offsets = dict(zip(self.config.block_sizes,
                           np.cumsum([0, *self.config.block_sizes.values()]), strict=False))
        scale, shift = [], []
        for name, n in config.block_sizes.items():
            rows = slice(offsets[name], offsets[name] + n)
            for stat in config.stats_of(name):
                scale.append(a[rows])
                shift.append(np.zeros(n) if stat == "std" else b[rows])
        scale, shift = np.concatenate(scale), np.concatenate(shift)
        return (np.asarray(x, np.float64) * scale + shift).astype(np.float32)

    def to_metadata(self) -> dict[str, Any]:
        """The model's ``adaptation`` metadata (what :meth:`from_metadata` reads)."""
        return {"blocks": list(self.blocks), "min_seconds": self.min_seconds,
                "population_mean": [round(float(v), 6) for v in self.mean],
                "population_std": [round(float(v), 6) for v in self.std],
                "method": "per-row standardisation of the frame matrix by the speaker's "
                          "statistics, mapped to the training population's"}

    @classmethod
    def from_metadata(cls, data: Any, config: FeatureConfig) -> Adaptation:
        """Read a model's ``adaptation`` metadata.

        Raises
        ------
        ModelError
            If it is not a JSON object with valid ``blocks``, ``population_mean``,
            ``population_std`` and ``min_seconds``.
        """
        if not isinstance(data, Mapping):
            raise ModelError("'adaptation' metadata must be a JSON object")
        try:
            blocks = data["blocks"]
            if not isinstance(blocks, Sequence) or isinstance(blocks, str) \
                    or not all(isinstance(b, str) for b in blocks):
                raise TypeError("blocks must be a list of names")
            seconds = data.get("min_seconds", 10.0)
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
                raise TypeError("min_seconds must be a number")
            return cls(config, tuple(blocks), np.asarray(data["population_mean"], np.float64),
                       np.asarray(data["population_std"], np.float64), float(seconds))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"invalid 'adaptation' metadata ({exc})") from None
