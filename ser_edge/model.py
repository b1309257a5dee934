"""The classifier: one onnxruntime session, the model's labels and its feature configuration.

After audonnx's ``Model``: the :class:`~onnxruntime.InferenceSession` is built once, with its
thread counts set explicitly; the labels and the :class:`~ser_edge.features.FeatureConfig` are
read from the ONNX model's ``metadata_props`` (written by ``export/``); the width of the feature
vector is checked against the model's input and the number of labels against its output, with
errors that give both numbers.

This is the only module of ser-edge that imports onnxruntime.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from .errors import AudioError, ModelError, NoSpeechError, ParameterError, SerEdgeError
from .features import FeatureConfig, _streams

if TYPE_CHECKING:
    from .adapt import Adaptation, SpeakerProfile

__all__ = ["BUNDLED_MODEL", "BUNDLED_MODELS", "DEFAULT_MODEL", "Classifier", "Prediction",
           "Failure", "resolve_model", "bundled_name"]

#: Where the bundled models live.
_MODELS_DIR = Path(__file__).resolve().parent / "models"

#: The models shipped inside the package, by name (``ser-edge models``, ``--model NAME``); each
#: has a model card beside it (``NAME.md``) and its evaluation report (``NAME-report/``).
BUNDLED_MODELS: dict[str, Path] = {
    name: _MODELS_DIR / f"{name}.onnx"
    for name in ("mlp-cnn3-robust-geometric", "ens6-mb-adapt", "mlp")}

#: The name of the model used when none is named: the best on EmoBox's folds among those at
#: least as robust as the MLP (the share of labels a perturbation leaves unchanged).
DEFAULT_MODEL = "mlp-cnn3-robust-geometric"

#: The default model's file.
BUNDLED_MODEL = BUNDLED_MODELS[DEFAULT_MODEL]


def resolve_model(model: str | os.PathLike[str] | bytes | None) -> Path:
    """The file of a model given by name (a key of :data:`BUNDLED_MODELS`), by path, or None.

    A bundled model's name wins over a file of that name in the working folder; name such a
    file with a path (``./mlp``). Bytes are a path (``os.fsdecode``), never a name.

    Raises
    ------
    ParameterError
        If ``model`` is none of these (a number, say).
    """
    if model is None:
        return BUNDLED_MODEL
    if isinstance(model, str) and model in BUNDLED_MODELS:
        return BUNDLED_MODELS[model]
    if not isinstance(model, (str, bytes, os.PathLike)):
        raise ParameterError(f"model must be a bundled model's name or a path, got {model!r}")
    try:
        return Path(os.fsdecode(model))
    except TypeError:  # an os.PathLike whose __fspath__ gives neither str nor bytes
        raise ParameterError(f"model must be a bundled model's name or a path, "
                             f"got {model!r}") from None


def bundled_name(model: str | os.PathLike[str] | None) -> str | None:
    """The bundled model's name that ``model`` names or whose file it is; None for others."""
    path = resolve_model(model)
    for name, bundled in BUNDLED_MODELS.items():
        if os.path.abspath(path) == os.path.abspath(bundled):
            return name
    return None

#: Files longer than this, in seconds, are classified in two streaming passes in bounded memory
#: (:func:`ser_edge.features.feature_vector_stream`) instead of being read whole.
STREAM_MIN_SECONDS = 60.0

#: The reason given for a file in which voice activity detection finds no speech.
NO_SPEECH = "no speech detected"

#: Names of the model's input and of the output that holds the class probabilities.
INPUT_NAME = "features"
PROBABILITIES = "probabilities"

#: The element types a model's :data:`PROBABILITIES` output may have.
PROBABILITY_TYPES = ("tensor(float)", "tensor(double)", "tensor(float16)")

#: How far a row of probabilities may sum from 1, and a probability stray outside [0, 1].
PROBABILITY_TOLERANCE = 1e-3

#: A waveform model's output that counts the frames its network was given (a frame-level network
#: fused by ``python -m export fuse``): clips with fewer than :attr:`Classifier.min_frames` are
#: refused with the frame model's error (the graph itself can only give NaN for them).
FRAME_COUNT = "n_frames"

#: What a model's input can be, as its ``input_kind`` metadata says (absent: ``"features"``):
#: the pooled feature vector ``(N, n_features)``; the mono waveform ``(1, n_samples)`` at the
#: feature configuration's rate, the features being computed inside the graph (a model fused by
#: ``python -m export fuse``); or the frame matrix ``(1, n_rows, n_frames)`` of a frame-level
#: network (:func:`ser_edge.features.frame_matrix`, the time axis dynamic).
INPUT_KINDS = ("features", "waveform", "frames")

#: Longest file a frame-input network classifies whole, in seconds: its input grows with the
#: file (``ser-edge timeline`` takes longer recordings a window at a time).
FRAMES_MAX_SECONDS = 600.0


def _unnormalised(config: FeatureConfig) -> FeatureConfig:
    """``config`` without per-utterance normalisation: the frames a profile counts."""
    return config if config.norm is None else dataclasses.replace(config, norm=None)


class _Watched:
    """Iterate ``pieces`` again and again, noting each pass's sample count and peak magnitude.

    With a voice activity ``detector``, the first pass also looks for speech (``speech``).
    """

    def __init__(self, pieces: Iterable[np.ndarray], detector: Any = None):
        self.pieces, self.n_samples, self.peak = pieces, 0, 0.0
        self.detector, self.speech = detector, detector is None

    def __iter__(self) -> Iterator[np.ndarray]:
        self.n_samples, self.peak = 0, 0.0
        for piece in self.pieces:
            self.n_samples += len(piece)
            if len(piece):
                self.peak = max(self.peak, float(piece.max()), -float(piece.min()))
            if not self.speech and self.detector is not None:
                self.speech = bool(self.detector.push(piece))
            yield piece
        if not self.speech and self.detector is not None:
            self.speech = bool(self.detector.flush())
        self.detector = None  # one pass is enough


@dataclass(frozen=True)
class Prediction:
    """What the classifier says about one clip.

    Attributes
    ----------
    label : str
        The most probable emotion.
    probabilities : dict of str to float
        Probability of every label, in the model's label order; they sum to 1.
    duration_s : float
        Length of the clip, in seconds.
    sample_rate : int
        Sample rate of the input, in Hz: the file's own rate for :meth:`Classifier.classify`, the
        ``sr`` passed to :meth:`Classifier.predict`.
    path : str or None
        The file classified, or None for :meth:`Classifier.predict`.
    """

    label: str
    probabilities: dict[str, float]
    duration_s: float
    sample_rate: int
    path: str | None = None

    @property
    def confidence(self) -> float:
        """Probability of :attr:`label`."""
        return self.probabilities[self.label]

    def top(self, k: int | None = None) -> list[tuple[str, float]]:
        """Return the ``k`` most probable ``(label, probability)`` pairs, most probable first.

        ``None`` returns all of them. Ties keep the model's label order.
        """
        ranked = sorted(self.probabilities.items(), key=lambda item: -item[1])
        return ranked if k is None else ranked[:k]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: path, label, probabilities, duration_s, sample_rate."""
        return {
            "path": self.path,
            "label": self.label,
            "probabilities": dict(self.probabilities),
            "duration_s": self.duration_s,
            "sample_rate": self.sample_rate,
        }


@dataclass(frozen=True)
class Failure:
    """A file :meth:`Classifier.classify_many` could not classify.

    Attributes
    ----------
    path : str
        The file.
    error : Exception
        What went wrong: a :class:`~ser_edge.errors.SerEdgeError` or an :class:`OSError`.
    """

    path: str
    error: Exception

    @property
    def message(self) -> str:
        """One line naming the file and the reason."""
        return error_line(self.path, self.error)


def error_line(path: str | os.PathLike[str], error: BaseException) -> str:
    """Format ``error`` as one line that names ``path`` (once), escaped as messages show it."""
    from ._names import display_name

    path = display_name(path)
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror
        if error.filename is not None and str(error.filename) != path:
            text = f"{text}: {error.filename}"
    else:
        text = str(error) or type(error).__name__
    text = " ".join(text.split())  # one line, always
    return text if path in text else f"{path}: {text}"


def _stamp(path: Path) -> tuple[int, ...]:
    """What tells a file from another in its place: device, inode, size, modification time."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _first_line(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Classifier:
    """Speech emotion classifier: a feature configuration and an ONNX model.

    Parameters
    ----------
    model : str or os.PathLike or None
        A bundled model's name (a key of :data:`BUNDLED_MODELS`), or the path of an ONNX model
        exported by ``export/`` (``python -m export``); ``None`` loads the default bundled
        model, :data:`DEFAULT_MODEL`.
    num_threads : int >= 1
        Threads onnxruntime may use inside an operator (``intra_op_num_threads``), at most the
        cores this process may use (a larger number is lowered to that); operators run one after
        the other (``inter_op_num_threads=1``). 1 suits a small model on an edge device.

    Attributes
    ----------
    model_path : pathlib.Path
        The model file.
    name : str or None
        The bundled model's name, or None for another file.
    labels : tuple of str
        Emotion names, in the order of the model's probability columns: printable text (no
        control characters), each once.
    feature_config : FeatureConfig
        How the model's input vector is computed.
    metadata : dict of str to Any
        Every entry of the model's ``metadata_props``, JSON-decoded where it is JSON: ``labels``,
        ``feature_config``, ``training``, ``metrics``.
    input_kind : {"features", "waveform", "frames"}
        What the model takes (:data:`INPUT_KINDS`): the feature vector, computed here in numpy;
        the waveform, mono at ``feature_config.sr``, whose features the graph computes; or the
        frame matrix of a frame-level network, computed here in numpy (the audio is decoded,
        downmixed and resampled here in every case).
    min_frames : int
        Fewest analysis frames (after ``feature_config.frames`` keeps the active ones) a clip
        needs: the network's (``min_frames`` metadata) or the features' (MFCC deltas).

    Raises
    ------
    ModelError
        If the file is missing, not a regular file (a FIFO, a device), larger than
        :data:`ser_edge.modelfile.MAX_MODEL_BYTES` or not a readable ONNX model; if it names
        external data outside its folder (or not a regular file, or too large); if its metadata
        lacks ``labels`` or ``feature_config``, or does not fit
        :data:`ser_edge.modelfile.METADATA_SCHEMA` (types, ranges, nesting; labels that are not
        printable text); if its ``input_kind`` is unknown; if the feature vector's width differs
        from the model's input width (or a waveform model's input is not ``(1, n_samples)``, or
        a frame model's not ``(1, n_rows, n_frames)``); if its ``probabilities`` output is not
        a float matrix; or if the number of labels differs from the number of probability
        columns.
    ParameterError
        If ``model`` is not a name or a path, or ``num_threads`` is not a positive integer.

    Examples
    --------
    >>> from ser_edge import Classifier
    >>> clf = Classifier()
    >>> p = clf.classify("clip.wav")  # doctest: +SKIP
    >>> p.label, round(p.confidence, 2)  # doctest: +SKIP
    ('angry', 0.87)
    """

    def __init__(self, model: str | os.PathLike[str] | None = None, *, num_threads: int = 1,
                 adapt: bool = False, profile: SpeakerProfile | None = None):
        if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)):
            raise ParameterError(f"num_threads must be a positive integer, got {num_threads!r}")
        if num_threads < 1:
            raise ParameterError(f"num_threads must be a positive integer, got {num_threads!r}")
        from ._threads import usable_cores

        self.model_path = resolve_model(model)
        self.name = bundled_name(self.model_path)
        self.num_threads = min(int(num_threads), usable_cores())
        self._session = self._open_session()
        self.metadata = self._read_metadata()
        self.labels = self._read_labels()
        self.feature_config = self._read_feature_config()
        self.input_kind = self._read_input_kind()
        self.min_frames = self._read_min_frames()
        self._check_shapes()
        self.adaptation = self._read_adaptation()
        self.adapt = bool(adapt)
        self.profile = None
        if adapt or profile is not None:
            self.profile = self.new_profile() if profile is None else profile
            if self.profile.n_rows != sum(self.feature_config.block_sizes.values()):
                raise ParameterError(f"the profile has {self.profile.n_rows} rows, the "
                                     "model's frame matrix "
                                     f"{sum(self.feature_config.block_sizes.values())}")

    @property
    def sha256(self) -> str:
        """The SHA-256 digest of the model file, in hex: which model gave a result.

        Results files record it, and ``--resume`` refuses another model's file. Computed on
        first use (the file read again: a few milliseconds that ``ser-edge classify``'s text
        output does not spend).

        Raises
        ------
        ModelError
            If the file changed since the model was loaded, or cannot be read again.
        """
        if self._sha256 is None:
            from hashlib import sha256

            from .modelfile import read_model_bytes

            data = read_model_bytes(self.model_path)
            if _stamp(self.model_path) != self._stamp:
                raise ModelError(f"{self.model_path}: the model file changed since it was loaded")
            self._sha256 = sha256(data).hexdigest()
        return self._sha256

    # -- loading -------------------------------------------------------------------------------

    def _open_session(self) -> Any:
        path = self.model_path
        if not path.exists():
            if self.name is not None:
                hint = " (the bundled model is missing: reinstall ser-edge)"
            else:  # perhaps a misspelt name: say which names there are
                hint = f"; the bundled models are {', '.join(BUNDLED_MODELS)} (ser-edge models)"
            raise ModelError(f"{path}: model file not found{hint}")
        from .modelfile import external_data, read_model_bytes

        data = read_model_bytes(path)  # a regular file, capped
        self._sha256: str | None = None
        self._stamp = _stamp(path)
        external = external_data(data, path)  # inside the model's folder, regular, capped

        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: no warnings on the user's terminal
        if external:
            # The bytes are handed over, not the path: external data is looked for in the
            # model's folder only because this says so (onnxruntime >= 1.21; before, in the
            # working folder).
            if tuple(int(v) for v in ort.__version__.split(".")[:2] if v.isdigit()) < (1, 21):
                raise ModelError(f"{path}: its weights are in external data files, which need "
                                 f"onnxruntime >= 1.21 (installed: {ort.__version__})")
            options.add_session_config_entry(
                "session.model_external_initializers_file_folder_path",
                os.path.dirname(os.path.abspath(path)))
        try:
            return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's errors derive from Exception only
            raise ModelError(f"{path}: not a readable ONNX model ({_first_line(exc)})") from None

    def _read_metadata(self) -> dict[str, Any]:
        from .modelfile import decode_metadata

        return decode_metadata(self._session.get_modelmeta().custom_metadata_map,
                               self.model_path)

    def _read_labels(self) -> tuple[str, ...]:
        labels = self.metadata.get("labels")
        if labels is None:
            raise ModelError(
                f"{self.model_path}: the model has no 'labels' metadata "
                "(export models with `python -m export`)"
            )
        from .modelfile import check_labels

        return check_labels(labels, self.model_path)

    def _read_feature_config(self) -> FeatureConfig:
        props = self._session.get_modelmeta().custom_metadata_map
        text = props.get("feature_config")
        if text is None:
            raise ModelError(
                f"{self.model_path}: the model has no 'feature_config' metadata "
                "(export models with `python -m export`)"
            )
        try:
            return FeatureConfig.from_json(text)
        except (ParameterError, TypeError) as exc:
            raise ModelError(
                f"{self.model_path}: invalid 'feature_config' metadata: {exc}"
            ) from None

    def _read_input_kind(self) -> str:
        kind = self.metadata.get("input_kind", "features")
        if kind not in INPUT_KINDS:
            raise ModelError(
                f"{self.model_path}: 'input_kind' metadata {kind!r} is not one of {INPUT_KINDS} "
                "(a newer ser-edge may read it)"
            )
        return kind

    def _read_adaptation(self) -> Adaptation | None:
        data = self.metadata.get("adaptation")
        if data is None:
            return None
        from .adapt import Adaptation

        try:
            return Adaptation.from_metadata(data, self.feature_config)
        except ModelError as exc:
            raise ModelError(f"{self.model_path}: {exc}") from None

    def new_profile(self) -> SpeakerProfile:
        """An empty speaker profile for this model's features (:mod:`ser_edge.adapt`).

        Raises
        ------
        ModelError
            If the model cannot adapt: it has no ``adaptation`` metadata, or takes the waveform.
        """
        if self.adaptation is None or self._waveform:
            why = ("takes the waveform (its features are computed inside the graph)"
                   if self._waveform and self.adaptation is not None
                   else "has no 'adaptation' metadata")
            raise ModelError(f"{self.model_path}: the model cannot adapt to a speaker: it {why}")
        from .adapt import SpeakerProfile

        return SpeakerProfile(self.feature_config)

    def learn(self, path: str | os.PathLike[str] | bytes | IO[bytes]) -> float:
        """Add an audio file's speech to the speaker profile, without classifying it.

        What ``ser-edge classify --adapt`` does with every file first, so that each is then
        classified with the statistics of them all.

        Parameters
        ----------
        path : str, bytes, os.PathLike or binary file object
            As :meth:`classify` takes it.

        Returns
        -------
        seconds : float
            The speech the profile holds now, in seconds (:attr:`SpeakerProfile.seconds`).

        Raises
        ------
        ModelError
            If the model cannot adapt (:meth:`new_profile`).
        AudioError
            As :meth:`classify` (no speech is not an error here: nothing is added).
        """
        if self.profile is None:
            self.profile = self.new_profile()
        from . import audio
        from .features import feature_matrices

        config = self.feature_config
        with audio.AudioStream(path, sr=config.sr) as stream:
            if stream.duration > FRAMES_MAX_SECONDS:
                raise AudioError(f"{stream.name}: {stream.duration / 60:.0f} min is too long to "
                                 f"learn a profile from at once (at most "
                                 f"{FRAMES_MAX_SECONDS / 60:.0f} min)")
            y = stream.read()
        audio.valid_audio(y, path=path, min_samples=config.n_fft, allow_silence=False)
        from .vad import has_speech

        if has_speech(y, config.sr):
            blocks = feature_matrices(y, sr=config.sr, config=_unnormalised(config))
            self.profile.update(np.concatenate([blocks[n] for n in config.features]))
        return self.profile.seconds

    def _read_min_frames(self) -> int:
        value = self.metadata.get("min_frames", 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelError(f"{self.model_path}: 'min_frames' metadata must be a positive "
                             f"integer, got {value!r}")
        return max(value, self.feature_config.min_frames)

    @property
    def _waveform(self) -> bool:
        return self.input_kind == "waveform"

    @property
    def _frames(self) -> bool:
        return self.input_kind == "frames"

    @property
    def min_samples(self) -> int:
        """Fewest samples at ``feature_config.sr`` that a clip needs to be classified.

        One analysis frame (``n_fft``), and the ``feature_config.min_frames`` centred frames
        that the MFCC deltas need (``1 + n_samples // hop_length`` frames for an even
        ``n_fft``). The same for both kinds of model: a waveform model's graph cannot refuse a
        clip with a message (its deltas would be NaN), so shorter clips are refused here first.
        With ``feature_config.trim_zeros`` (``trim_top_db``) they are counted from the clip's
        first non-zero (loud) sample to its last: its trimmed ends are not analysed.
        """
        config = self.feature_config
        frames = (config.min_frames - 1) * config.hop_length + config.n_fft % 2
        return max(config.n_fft, frames)

    def _check_shapes(self) -> None:
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"{self.model_path}: the model has {len(inputs)} inputs, expected 1")
        self._input_name = inputs[0].name
        shape = inputs[0].shape
        n_features = self.feature_config.n_features
        if self._waveform:
            if len(shape) != 2 or (shape[0] not in (1, None) and not isinstance(shape[0], str)):
                raise ModelError(
                    f"{self.model_path}: a waveform model's input has shape {shape}, "
                    "expected (1, n_samples)"
                )
        elif self._frames:
            n_features = sum(self.feature_config.block_sizes.values())
            if len(shape) != 3:
                raise ModelError(
                    f"{self.model_path}: a frame model's input has shape {shape}, "
                    f"expected (1, {n_features}, n_frames)"
                )
            if isinstance(shape[1], int) and shape[1] != n_features:
                raise ModelError(
                    f"{self.model_path}: the feature configuration gives {n_features} rows per "
                    f"frame but the model's input takes {shape[1]}"
                )
        elif len(shape) != 2:
            raise ModelError(
                f"{self.model_path}: the model's input has shape {shape}, "
                f"expected (n_clips, {n_features})"
            )
        if self.input_kind == "features" and isinstance(shape[1], int) \
                and shape[1] != n_features:
            raise ModelError(
                f"{self.model_path}: the feature configuration gives {n_features} features "
                f"but the model's input takes {shape[1]}"
            )
        outputs = {o.name: o for o in self._session.get_outputs()}
        self._counts_frames = self._waveform and FRAME_COUNT in outputs
        if PROBABILITIES not in outputs:
            raise ModelError(
                f"{self.model_path}: the model has no {PROBABILITIES!r} output "
                f"(outputs: {', '.join(outputs)}); export it with zipmap disabled"
            )
        output = outputs[PROBABILITIES]
        if output.type not in PROBABILITY_TYPES:
            raise ModelError(f"{self.model_path}: its {PROBABILITIES!r} output is {output.type}, "
                             "not probabilities (a float tensor)")
        if isinstance(output.shape, list) and len(output.shape) != 2:
            raise ModelError(f"{self.model_path}: its {PROBABILITIES!r} output has shape "
                             f"{output.shape}, expected (n_clips, n_labels)")
        width = output.shape[-1] if output.shape else None
        if not isinstance(width, int):
            # Symbolic width: ask the model once, on zeros.
            probe = np.zeros((1, n_features, max(self.min_frames, 16)) if self._frames else
                             (1, self.min_samples if self._waveform else n_features),
                             dtype=np.float32)
            width = self._run(probe, check=False).shape[-1]
        if width != len(self.labels):
            raise ModelError(
                f"{self.model_path}: the metadata names {len(self.labels)} labels "
                f"but the model's output has {width} probability columns"
            )

    # -- running -------------------------------------------------------------------------------

    def _run(self, X: np.ndarray, *, count: bool = False, check: bool = True) -> Any:
        """The probabilities ``(n, n_labels)``, float64; with ``count``, and :data:`FRAME_COUNT`.

        With ``check``, the output must be probabilities: :meth:`_check_probabilities`.
        """
        names = [PROBABILITIES, FRAME_COUNT] if count else [PROBABILITIES]
        try:
            out = self._session.run(names, {self._input_name: X})
        except Exception as exc:  # onnxruntime's errors derive from Exception only
            raise ModelError(f"{self.model_path}: inference failed ({_first_line(exc)})") from None
        P = np.asarray(out[0])
        if P.dtype.kind != "f" or P.ndim != 2:
            raise ModelError(f"{self.model_path}: its {PROBABILITIES!r} output is {P.dtype} of "
                             f"shape {P.shape}, not probabilities (a float (n_clips, n_labels) "
                             "matrix)")
        P = P.astype(np.float64)
        if check:
            self._check_probabilities(P, len(X))
        if not count:
            return P
        n_frames = np.asarray(out[1]).reshape(-1)
        if n_frames.dtype.kind not in "iu" or len(n_frames) != 1:
            raise ModelError(f"{self.model_path}: its {FRAME_COUNT!r} output is {n_frames.dtype} "
                             f"of {len(n_frames)} values, expected one integer")
        return P, int(n_frames[0])

    def _check_probabilities(self, P: np.ndarray, n: int) -> None:
        """Raise a :class:`ModelError` unless ``P`` is ``n`` rows of probabilities, one per label.

        Each row finite, each value within [0, 1] and the row's sum within
        :data:`PROBABILITY_TOLERANCE` of 1 (a model's logits, or scores of another kind, are not
        probabilities). A waveform model's non-finite row is left to :meth:`_prediction`: its
        graph computes the features, and gives NaN for audio the features cannot take.
        """
        if P.shape != (n, len(self.labels)):
            raise ModelError(f"{self.model_path}: its {PROBABILITIES!r} output has shape "
                             f"{P.shape}, expected ({n}, {len(self.labels)}): one row per clip, "
                             "one column per label")
        finite = np.isfinite(P).all(axis=1)
        if not finite.all():
            if self._waveform:
                return
            raise ModelError(f"{self.model_path}: its {PROBABILITIES!r} output is not finite "
                             f"(NaN or infinite), not probabilities")
        sums = P.sum(axis=1)
        worst = int(np.argmax(np.abs(sums - 1)))
        if (P < -PROBABILITY_TOLERANCE).any() or (P > 1 + PROBABILITY_TOLERANCE).any() \
                or abs(sums[worst] - 1) > PROBABILITY_TOLERANCE:
            raise ModelError(f"{self.model_path}: its {PROBABILITIES!r} output is not "
                             f"probabilities (values from {P.min():.3g} to {P.max():.3g}, "
                             f"summing to {sums[worst]:.6g}, not 1): logits, or scores of "
                             "another kind?")

    def _prediction(
        self, x: np.ndarray, duration_s: float, sr: int, path: str | None
    ) -> Prediction:
        where = f"{path}: " if path is not None else ""
        if self._counts_frames:  # the frames the fused network was given, as _vector counts them
            P, n_frames = self._run(x[np.newaxis, :], count=True)
            if n_frames < self.min_frames:
                raise AudioError(self._too_short(where, n_frames))
        else:
            P = self._run(x[np.newaxis, :])
        row = P[0]
        if self._waveform and not np.all(np.isfinite(row)):
            raise AudioError(f"{where}the probabilities are not finite (is the audio valid?)")
        probabilities = {label: float(p) for label, p in zip(self.labels, row, strict=True)}
        label = self.labels[int(np.argmax(row))]
        return Prediction(label, probabilities, float(duration_s), int(sr), path)

    def features(self, path: str | os.PathLike[str] | bytes | IO[bytes]) -> np.ndarray:
        """Compute the model's input for an audio file: its feature vector or frame matrix.

        Parameters
        ----------
        path : str, bytes, os.PathLike or binary file object
            An audio file that libsndfile reads (WAV, FLAC, OGG, MP3, ...), as
            :meth:`classify` takes it.

        Returns
        -------
        x : np.ndarray [shape=(n_features,)] or [shape=(n_rows, n_frames)], float32
            The vector :func:`ser_edge.features.feature_vector` computes at
            ``feature_config.sr``; for a frame model, the matrix of
            :func:`ser_edge.features.frame_matrix`.

        Raises
        ------
        AudioError
            If the file is missing, empty, corrupt, not audio, too short, silent or has NaN.
        ParameterError
            If ``path`` is neither a path nor a binary file object.
        """
        kind = "frames" if self._frames else "features"
        return self._load_features(path, kind=kind)[0]

    def _load_features(
        self, path: Any, *, kind: str = "features", require_speech: bool = False
    ) -> tuple[np.ndarray, float, int]:
        """A file's model input of ``kind`` (:meth:`_vector`), duration (s) and native rate.

        With ``require_speech``, a file in which voice activity detection finds no speech raises
        :class:`~ser_edge.errors.NoSpeechError`.
        """
        from . import audio

        config = self.feature_config
        with audio.AudioStream(path, sr=config.sr) as stream:
            if (kind == "frames" or self._counts_frames) \
                    and stream.duration > FRAMES_MAX_SECONDS:
                raise AudioError(
                    f"{stream.name}: {stream.duration / 60:.0f} min is too long for a frame-level "
                    f"network (at most {FRAMES_MAX_SECONDS / 60:.0f} min): use `ser-edge "
                    "timeline`, or a pooled model (--model mlp)"
                )
            if self.profile is not None and stream.duration > FRAMES_MAX_SECONDS:
                raise AudioError(
                    f"{stream.name}: {stream.duration / 60:.0f} min is too long to classify "
                    f"with adaptation (at most {FRAMES_MAX_SECONDS / 60:.0f} min): use "
                    "`ser-edge timeline`, which adapts as it goes")
            # A waveform model takes the whole signal: long files are read whole.
            if kind == "features" and stream.duration > STREAM_MIN_SECONDS \
                    and _streams(config) and self.profile is None:
                x, n = self._stream_vector(stream, require_speech)
            else:
                y = stream.read()
                x, n = self._vector(y, stream.name, kind=kind), y.shape[-1]
                if require_speech:
                    from .vad import has_speech

                    if not has_speech(y, config.sr):
                        raise NoSpeechError(f"{stream.name}: {NO_SPEECH}")
        return x, n / config.sr, stream.sr_native

    def _stream_vector(self, stream: Any, require_speech: bool = False) -> tuple[np.ndarray, int]:
        """The feature vector of a long file in bounded memory, and its length in samples."""
        from .features import feature_vector_stream
        from .vad import VoiceActivityDetector

        detector = VoiceActivityDetector(self.feature_config.sr) if require_speech else None
        pieces = _Watched(stream, detector)
        x = feature_vector_stream(pieces, sr=self.feature_config.sr, config=self.feature_config)
        from .audio import require_sound

        require_sound(pieces.peak, f"{stream.name}: ")  # digital silence, or too quiet
        if not np.all(np.isfinite(x)):
            raise AudioError(f"{stream.name}: the features are not finite (is the audio valid?)")
        if not pieces.speech:
            raise NoSpeechError(f"{stream.name}: {NO_SPEECH}")
        return x, pieces.n_samples

    def _adapted(self, y: np.ndarray, kind: str, weight: float) -> np.ndarray:
        """The model input of ``kind`` from the frame matrix, the profile learnt and applied.

        With :attr:`adapt` the frames first go into :attr:`profile` (``weight``: the share that
        is new audio); once it holds enough speech the frames are mapped by the adaptation
        (:meth:`ser_edge.adapt.Adaptation.frames`) before they are pooled or passed on.
        """
        from .features import feature_matrices, normalise_rows, pool

        config = self.feature_config
        blocks = feature_matrices(y, sr=config.sr, config=_unnormalised(config))
        F = np.concatenate([blocks[name] for name in config.features])
        if self.adapt and F.shape[1]:
            self.profile.update(F, weight=weight)
        if self.adaptation.ready(self.profile):
            F = self.adaptation.frames(F, self.profile)
        offsets = np.cumsum([0, *config.block_sizes.values()])
        blocks = {name: F[offsets[i]:offsets[i + 1]] for i, name in enumerate(config.features)}
        if config.norm is not None:
            blocks = {name: normalise_rows(M, config.norm) for name, M in blocks.items()}
        if kind == "frames":
            return np.ascontiguousarray(np.concatenate([blocks[n] for n in config.features]),
                                        dtype=np.float32)
        return pool(blocks, config)

    def _vector(self, y: np.ndarray, path: str | os.PathLike[str] | None, *,
                kind: str = "features", weight: float = 1.0) -> np.ndarray:
        """Check mono audio at ``feature_config.sr``; the model input of ``kind``.

        ``"features"``: the pooled vector; ``"waveform"``: the signal itself; ``"frames"``: the
        frame matrix, refused with an :class:`AudioError` when it has fewer frames than
        :attr:`min_frames`. With a :attr:`profile`, adapted to the speaker (:meth:`_adapted`).
        """
        from . import audio
        from .features import feature_vector, frame_matrix

        config = self.feature_config
        where = f"{path}: " if path is not None else ""
        # One analysis frame at least (and the frames the deltas need), and not digital
        # silence: nothing to classify otherwise.
        n_min = self.min_samples
        n = y.shape[-1]
        if config.trims and y.ndim == 1:  # the samples that are analysed
            n = len(config.trim(y))
        if 0 < n < n_min:
            need = ("shorter than one analysis frame" if n_min == config.n_fft else
                    f"fewer than the {config.min_frames} analysis frames the MFCC deltas need")
            if n < y.shape[-1] and (config.trim_zeros or config.trim_top_db):
                need += (", between the digital silence at its ends" if not
                         config.trim_top_db else ", between the quiet ends trimmed")
            raise AudioError(
                f"{where}too short: {1000 * n / config.sr:.0f} ms, {need} "
                f"({n_min} samples at {config.sr} Hz = {1000 * n_min / config.sr:.0f} ms)"
            )
        audio.valid_audio(y, name=None if path is None else str(path), min_samples=config.n_fft,
                          allow_silence=False)  # ``path`` as messages show it: not escaped again
        if kind == "waveform":
            return np.ascontiguousarray(y, dtype=np.float32)
        if self.profile is not None:
            x = self._adapted(y, kind, weight)
        elif kind == "frames":
            x = frame_matrix(y, sr=config.sr, config=config)
        else:
            x = feature_vector(y, sr=config.sr, config=config)
        if kind == "frames" and x.shape[1] < self.min_frames:
            raise AudioError(self._too_short(where, x.shape[1]))
        if not np.all(np.isfinite(x)):
            raise AudioError(f"{where}the features are not finite (is the audio valid?)")
        return x

    def _too_short(self, where: str, frames: int) -> str:
        config = self.feature_config
        active = "active " if config.frames == "active" else ""
        need_ms = 1000 * (self.min_frames - 1) * config.hop_length / config.sr
        return (f"{where}too short: {frames} {active}analysis frames, the model needs at least "
                f"{self.min_frames} (about {need_ms:.0f} ms of {'sound' if active else 'audio'})")

    def classify(
        self, path: str | os.PathLike[str] | bytes | IO[bytes], *, vad: bool = True
    ) -> Prediction:
        """Classify the emotion of one audio file.

        The file is decoded, mixed to mono and resampled to ``feature_config.sr`` as
        ``librosa.load`` does, then the feature vector goes through the model (a waveform model
        takes the signal itself, read whole whatever its length). A file in which voice activity
        detection (:mod:`ser_edge.vad`) finds no speech is not given an emotion.

        Parameters
        ----------
        path : str, bytes, os.PathLike or binary file object
            An audio file that libsndfile reads (WAV, FLAC, OGG, MP3, ...): its path (bytes
            for a name that is not UTF-8), or a file object open in binary mode (an open file,
            ``io.BytesIO(data)`` of audio received over a network, ``sys.stdin.buffer``), read
            from its current position and left open. One that cannot seek is first copied to a
            temporary file (memory stays bounded; see :mod:`ser_edge.audio`).
        vad : bool
            Refuse a file without speech (:class:`~ser_edge.errors.NoSpeechError`); ``False``
            classifies whatever the file holds.

        Returns
        -------
        Prediction
            With ``path`` set to :func:`ser_edge.audio.source_name` of ``path`` (the path as a
            ``str``, a file object's ``name``, or ``'<BytesIO>'``) and ``sample_rate`` the
            file's own rate.

        Raises
        ------
        NoSpeechError
            If ``vad`` and the file holds no speech (a subclass of ``AudioError``).
        AudioError
            If the file is missing, unreadable, empty, corrupt, not audio, shorter than one
            frame, digital silence or has NaN samples.
        ParameterError
            If ``path`` is neither a path nor a binary file object.
        ModelError
            If inference fails.

        Warns
        -----
        AudioWarning
            If the file holds less audio than its header says, or an MP3 had damaged frames:
            the rest is classified.
        """
        from . import audio

        # A fused frame network counts its frames in the graph: its "too short" comes from the
        # model run, and goes before "no speech", as a frame model's does.
        late_vad = vad and self._counts_frames
        x, duration_s, native_sr = self._load_features(path, kind=self.input_kind,
                                                       require_speech=vad and not late_vad)
        p = self._prediction(x, duration_s, native_sr, audio.source_name(path))
        if late_vad:
            from .vad import has_speech

            if not has_speech(x, self.feature_config.sr):
                raise NoSpeechError(f"{audio.display_name(path)}: {NO_SPEECH}")
        return p

    def predict(self, y: np.ndarray, sr: int) -> Prediction:
        """Classify the emotion of a signal already in memory.

        Parameters
        ----------
        y : np.ndarray [shape=(n_samples,), (n_channels, n_samples) or (n_samples, n_channels)]
            The signal, float, in [-1, 1]; several channels are averaged, as ``librosa.to_mono``
            does. ``(n_samples, n_channels)``, what ``soundfile.read`` returns, is taken when
            there are at most 8 channels and more samples than channels
            (:func:`ser_edge.audio.channels_first`).
        sr : int > 0
            Its sample rate, in Hz; it is resampled to ``feature_config.sr`` if it differs.

        Returns
        -------
        Prediction
            With ``path=None`` and ``sample_rate=sr``.

        Raises
        ------
        ParameterError
            If ``sr`` is not an integer from :data:`ser_edge.audio.MIN_SR` to ``MAX_SR`` (1 kHz
            to 768 kHz, the rates files are accepted at).
        AudioError
            If the signal is empty, not finite, larger than 1e12 in magnitude (``"samples
            overflow float32"``: the float32 features would overflow), digital silence or too
            quiet (peak below :data:`ser_edge.audio.MIN_PEAK`), shorter than one frame, longer
            than :data:`FRAMES_MAX_SECONDS` for a frame-level network, or 2-D with a layout that
            does not say which axis holds the channels.
        """
        from . import audio

        if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
            raise ParameterError(f"sr must be a positive integer in Hz, got {sr!r}")
        if not audio.MIN_SR <= sr <= audio.MAX_SR:
            raise ParameterError(f"sample rate {sr} Hz is outside the supported "
                                 f"{audio.MIN_SR}-{audio.MAX_SR} Hz")
        y = audio.channels_first(np.asarray(y))
        audio.valid_audio(y)
        duration_s = y.shape[-1] / sr
        if (self._frames or self._counts_frames) and duration_s > FRAMES_MAX_SECONDS:
            raise AudioError(
                f"{duration_s / 60:.0f} min is too long for a frame-level network (at most "
                f"{FRAMES_MAX_SECONDS / 60:.0f} min): classify it in windows "
                "(ser_edge.timeline, StreamingClassifier), or with a pooled model ('mlp')")
        if y.ndim > 1:  # librosa.to_mono
            y = np.mean(y, axis=tuple(range(y.ndim - 1)))
        y = audio.resample(y.astype(np.float32, copy=False), orig_sr=int(sr),
                           target_sr=self.feature_config.sr)
        return self._predict_model_rate(y, duration_s, int(sr))

    def _predict_model_rate(self, y: np.ndarray, duration_s: float, sr: int, *,
                            weight: float = 1.0) -> Prediction:
        """Classify mono float32 audio already at ``feature_config.sr``.

        The one path from samples to a :class:`Prediction` (features, or the waveform itself for
        a waveform model): :meth:`predict` after resampling, and
        :class:`ser_edge.stream.StreamingClassifier` for each window. ``duration_s`` and ``sr``
        are only reported; ``weight`` is the share of ``y`` that is new to the speaker profile
        (a stream's overlapping windows).
        """
        x = self._vector(y, None, kind=self.input_kind, weight=weight)
        return self._prediction(x, duration_s, sr, None)

    def classify_many(
        self, paths: Iterable[str | os.PathLike[str]], *, vad: bool = True
    ) -> Iterator[Prediction | Failure]:
        """Classify many files, one at a time; a bad file does not stop the others.

        Parameters
        ----------
        paths : iterable of str, bytes, os.PathLike or binary file objects
            Audio files, as :meth:`classify` takes them.
        vad : bool
            As :meth:`classify`: a file without speech is a :class:`Failure`.

        Yields
        ------
        Prediction or Failure
            One per path, in order: a :class:`Prediction`, or a :class:`Failure` holding the
            :class:`~ser_edge.errors.SerEdgeError` or :class:`OSError` the file raised.
        """
        for path in paths:
            try:
                yield self.classify(path, vad=vad)
            except (SerEdgeError, OSError) as exc:
                from .audio import source_name

                yield Failure(source_name(path), exc)

    def __repr__(self) -> str:
        return (
            f"Classifier({str(self.model_path)!r}, labels={list(self.labels)}, "
            f"n_features={self.feature_config.n_features}, input_kind={self.input_kind!r}, "
            f"num_threads={self.num_threads})"
        )
