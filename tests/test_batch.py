"""Batches at scale (issue 15): worker processes, resumable output, a Dask cluster.

The reference is always the serial run: ``ser-edge classify --jobs 1 --json`` in a fresh process
(one BLAS thread, as every worker has; the pytest process's numpy may run more, which changes the
last float32 digits). The batch holds real RAVDESS clips and bad files: an empty file, a text
file named .wav, and a WAV cut short (classified with a warning).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from ser_edge import AudioWarning, batch
from ser_edge.cli import app
from ser_edge.results import json_record

N_CLIPS = 30
ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``ser-edge`` in a fresh process (this checkout's code)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                          if p))
    return subprocess.run([sys.executable, "-m", "ser_edge", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300,
                          check=False)


def _clips(ravdess_dir: Path, n: int = N_CLIPS) -> list[Path]:
    files = sorted(ravdess_dir.glob("Actor_*/*.flac"))
    return files[:: max(1, len(files) // n)][:n]  # every actor, every emotion


def _voice(seconds: float, sr: int = 16000) -> np.ndarray:
    """Voiced syllables with a gliding pitch (as ``tests/test_cli.py``'s): speech to voice activity
    detection from half a second on, so classified; a steady tone would be 'no speech detected'."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f0 = 150 + 30 * np.sin(2 * np.pi * 1.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 11))
    envelope = np.sqrt(np.clip(np.sin(2 * np.pi * 4 * t), 0, None))
    noise = np.random.default_rng(n).standard_normal(n)
    return (0.2 * voice * envelope + 0.003 * noise).astype(np.float32)


def _noise(seconds: float, sr: int = 16000) -> np.ndarray:
    """White noise: no speech (the error table of docs/errors.md uses the same)."""
    return (0.05 * np.random.default_rng(0).standard_normal(int(seconds * sr))).astype(np.float32)


def _bad_files(folder: Path) -> None:
    (folder / "b-empty.wav").write_bytes(b"")
    (folder / "b-notes.wav").write_text("not audio\n")
    sf.write(folder / "b-whole.wav", _voice(2.0), 16000)
    whole = (folder / "b-whole.wav").read_bytes()
    (folder / "b-cut.wav").write_bytes(whole[: len(whole) * 2 // 5])  # warns, is classified
    (folder / "b-whole.wav").unlink()


@pytest.fixture(scope="module")
def folder(ravdess_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real clips (links), with the bad files sorted among them."""
    root = tmp_path_factory.mktemp("batch") / "batch"
    root.mkdir()
    for i, clip in enumerate(_clips(ravdess_dir)):
        (root / f"{'a' if i < N_CLIPS // 2 else 'c'}-{clip.name}").symlink_to(clip)
    _bad_files(root)
    return root


@pytest.fixture(scope="module")
def serial(folder: Path) -> subprocess.CompletedProcess[str]:
    """The serial run over ``folder``, from its parent folder (paths relative)."""
    proc = _cli("classify", "--json", "--jobs", "1", folder.name, "missing.wav", cwd=folder.parent)
    assert proc.returncode == 1, proc.stderr
    return proc


def _records(text: str) -> dict[str, dict]:
    records = [json.loads(line) for line in text.splitlines()]
    by_path = {r["path"]: r for r in records}
    assert len(by_path) == len(records), "a path twice"
    return by_path


def test_serial_reference_is_what_the_batch_should_be(serial: subprocess.CompletedProcess[str],
                                                      folder: Path) -> None:
    records = _records(serial.stdout)
    assert len(records) == N_CLIPS + 4
    assert sum("label" in r for r in records.values()) == N_CLIPS + 1
    assert serial.stderr.splitlines() == [
        "ser-edge: warning: batch/b-cut.wav: the file is shorter than its header says (0.80 s "
        "of audio, the header says 2.00 s): classified from what is there",
        "ser-edge: error: batch/b-empty.wav: empty file (0 bytes)",
        "ser-edge: error: batch/b-notes.wav: cannot decode as audio (Format not recognised.)",
        "ser-edge: error: missing.wav: no such file or folder",
        f"ser-edge: 3 of {N_CLIPS + 4} files failed",
    ]


# -- worker processes on this machine ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["--json", "--top-k=2"])
def test_jobs_2_gives_exactly_the_serial_results(folder: Path, fmt: str) -> None:
    """Same stdout (labels, probabilities to the last digit, order), same stderr, same status."""
    one = _cli("classify", fmt, "--jobs", "1", folder.name, "missing.wav", cwd=folder.parent)
    two = _cli("classify", fmt, "--jobs", "2", folder.name, "missing.wav", cwd=folder.parent)
    assert two.returncode == one.returncode == 1
    assert two.stdout == one.stdout
    assert two.stderr == one.stderr
    # text: the predictions (and the cut file's); --json: the failures too
    assert len(two.stdout.splitlines()) == N_CLIPS + 1 + 3 * (fmt == "--json")


def test_unordered_gives_the_same_records(folder: Path,
                                          serial: subprocess.CompletedProcess[str]) -> None:
    proc = _cli("classify", "--json", "--jobs", "2", "--unordered", folder.name, "missing.wav",
                cwd=folder.parent)
    assert proc.returncode == 1
    assert _records(proc.stdout) == _records(serial.stdout)
    assert sorted(proc.stderr.splitlines()) == sorted(serial.stderr.splitlines())


@pytest.fixture(scope="module")
def noisy(ravdess_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four real clips (links) with a file of white noise among them: no speech."""
    root = tmp_path_factory.mktemp("noisy") / "noisy"
    root.mkdir()
    for i, clip in enumerate(_clips(ravdess_dir, 4)):
        (root / f"{'a' if i < 2 else 'c'}-{clip.name}").symlink_to(clip)
    sf.write(root / "b-noise.wav", _noise(1.0), 16000)
    return root


def _invoke(*args: str | Path) -> Any:
    result = CliRunner().invoke(app, ["classify", *map(str, args)])
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture(scope="module")
def noisy_serial(noisy: Path) -> dict[bool, subprocess.CompletedProcess[str]]:
    """``classify --json --jobs 1`` over ``noisy`` in a fresh process (one BLAS thread, as the
    workers have: probabilities to the last digit), with the speech check and without."""
    return {vad: _cli("classify", "--json", "--jobs", "1", *([] if vad else ["--no-vad"]), noisy)
            for vad in (True, False)}


@pytest.mark.parametrize("vad", [True, False], ids=["default", "no-vad"])
def test_no_speech_with_workers_and_output_is_the_serial_outcome(noisy: Path, noisy_serial,
                                                                 tmp_path: Path,
                                                                 vad: bool) -> None:
    """Issue 12's speech check travels to the workers: ``--jobs 2`` gives the serial output,
    "no speech detected" by default and an emotion with ``--no-vad``; an ``--output`` file holds
    the same lines as standard output, and ``--resume`` counts the file as done."""
    flags = [] if vad else ["--no-vad"]
    serial = noisy_serial[vad]
    two = _cli("classify", "--json", "--jobs", "2", *flags, noisy)
    assert serial.returncode == two.returncode == (1 if vad else 0), serial.stderr
    assert two.stdout == serial.stdout and two.stderr == serial.stderr
    records = _records(serial.stdout)
    noise = records[str(noisy / "b-noise.wav")]
    assert len(records) == 5 and sum("label" in r for r in records.values()) == 4 + (not vad)
    if vad:
        assert noise == {"path": str(noisy / "b-noise.wav"), "error": "no speech detected",
                         "model": next(iter(records.values()))["model"]}
        assert serial.stderr.splitlines() == [
            f"ser-edge: error: {noisy / 'b-noise.wav'}: no speech detected",
            "ser-edge: 1 of 5 files failed"]
    else:
        assert noise["label"] and serial.stderr == ""
    out = tmp_path / "out.jsonl"
    written = _invoke("-o", out, "--jobs", "2", *flags, noisy)  # workers: one thread each
    assert written.exit_code == serial.returncode and written.stdout == ""
    assert out.read_text() == serial.stdout  # the same lines, the no-speech one included
    again = _invoke("-o", out, "--resume", "--jobs", "2", *flags, noisy)
    assert again.exit_code == serial.returncode
    assert f"5 of 5 files there already ({int(vad)} failed)" in again.stderr
    assert out.read_text() == serial.stdout


def _default_model_id() -> str:
    """How the command's records name the default model (``model``)."""
    from hashlib import sha256

    from ser_edge.model import BUNDLED_MODEL, DEFAULT_MODEL
    from ser_edge.results import model_identity

    return model_identity(DEFAULT_MODEL, sha256(BUNDLED_MODEL.read_bytes()).hexdigest())


def _api_lines(outcomes: list[batch.Outcome], cwd: Path) -> dict[str, dict]:
    """The --json records of predictions, keyed by path relative to ``cwd``."""
    out = {}
    for o in outcomes:
        if hasattr(o.result, "label"):
            record = json.loads(json_record(o.result, 3, o.warnings, _default_model_id()))
            record["path"] = os.path.relpath(record["path"], cwd)
            if "warnings" in record:
                record["warnings"] = [w.replace(f"{cwd}{os.sep}", "") for w in record["warnings"]]
            out[record["path"]] = record
    return out


def test_api_pool_runs_in_two_workers_with_serial_results(folder: Path, serial) -> None:
    paths = sorted(folder.iterdir())
    with pytest.warns(AudioWarning, match="b-cut.wav: the file is shorter"):
        results = list(batch.classify_many(paths, jobs=2, batch_size=4))
    assert [r.path for r in results] == [str(p) for p in paths]
    found = list(batch.outcomes(paths, jobs=2, batch_size=4))
    assert [o.index for o in found] == list(range(len(paths)))
    workers = {o.worker for o in found}
    assert len(workers) == 2 and all(w.startswith("pid ") for w in workers)
    assert f"pid {os.getpid()}" not in workers
    want = {k: v for k, v in _records(serial.stdout).items() if "label" in v}
    assert _api_lines(found, folder.parent) == want
    failures = {Path(o.result.path).name: o.result.message for o in found
                if hasattr(o.result, "error")}
    assert failures == {"b-empty.wav": f"{folder / 'b-empty.wav'}: empty file (0 bytes)",
                        "b-notes.wav": f"{folder / 'b-notes.wav'}: cannot decode as audio "
                                       "(Format not recognised.)"}


@pytest.mark.parametrize("n", [1, 6])
def test_a_small_batch_starts_no_pool_and_imports_none(folder: Path, n: int) -> None:
    """The cold path: ``ser-edge classify one.wav`` loads no process pool, no Dask."""
    clips = [str(p) for p in sorted(folder.glob("a-*"))[:n]]
    code = ("import sys\nfrom ser_edge.cli import main\nsys.argv = ['ser-edge', 'classify', "
            f"*{clips!r}]\ntry:\n    main()\nexcept SystemExit as e:\n    assert not e.code\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('multiprocessing', "
            "'concurrent', 'distributed', 'dask')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    lines = proc.stdout.splitlines()
    assert len(lines) == n + 1 and lines[-1] == "[]", proc.stdout


def test_auto_stays_in_this_process_for_a_small_batch(folder: Path, monkeypatch) -> None:
    paths = sorted(folder.iterdir())[:6]
    assert {o.worker for o in batch.outcomes(paths)} == {""}
    # Work estimated above the threshold: a pool takes the rest after the first file.
    monkeypatch.setattr(batch, "POOL_MIN_WORK_S", 0.0)
    found = list(batch.outcomes(paths, batch_size=2))
    assert [o.index for o in found] == list(range(6))
    assert found[0].worker == "" and all(o.worker.startswith("pid ") for o in found[1:])


def test_without_worker_processes_the_batch_runs_here(folder: Path, monkeypatch) -> None:
    """Where processes cannot be started (no /dev/shm for semaphores, say): one process."""
    def no_semaphores(self) -> None:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(batch._LocalEngine, "_start", no_semaphores)
    paths = sorted(folder.iterdir())[:6]
    found = list(batch.outcomes(paths, jobs=2))
    assert [o.index for o in found] == list(range(6)) and {o.worker for o in found} == {""}


def test_local_pool_survives_a_killed_worker(folder: Path, serial) -> None:
    """A worker killed midway breaks the pool: a new one finishes, each file once, as serial."""
    paths = sorted(p for p in folder.iterdir() if p.suffix == ".flac")
    found, killed = [], None
    for o in batch.outcomes(paths, jobs=2, batch_size=2):
        found.append(o)
        if killed is None:
            killed = o.worker
            os.kill(int(killed.split()[1]), signal.SIGKILL)
    assert [o.index for o in found] == list(range(len(paths)))
    want = {k: v for k, v in _records(serial.stdout).items() if "label" in v}
    got = _api_lines(found, folder.parent)
    assert len(got) == N_CLIPS and got == {k: want[k] for k in got}


# -- resumable output ----------------------------------------------------------------------------


def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    pytest.fail(f"{path}: fewer than {n} lines after {timeout} s")


def _by_name(records: dict[str, dict]) -> dict[str, dict]:
    """Records keyed by file name, the folder taken out of their paths and messages."""
    out = {}
    for path, record in records.items():
        name = Path(path).name
        record = {**record, "path": name}
        if "error" in record:
            record["error"] = record["error"].replace(path, name)
        if "warnings" in record:
            record["warnings"] = [w.replace(path, name) for w in record["warnings"]]
        out[name] = record
    return out


def test_resume_after_sigkill_completes_the_set(folder: Path, serial,
                                                tmp_path: Path) -> None:
    """A run stuck on a FIFO is killed with SIGKILL midway (its workers go too); its file's
    last line is then cut in half, as a kill during a write would leave it; ``--resume`` skips
    the finished files, redoes the torn one, and the set is complete: none missing or doubled."""
    psutil = pytest.importorskip("psutil")
    for sub in ("a", "c"):
        (tmp_path / sub).mkdir()
    for p in sorted(folder.iterdir()):
        (tmp_path / ("a" if p.name.startswith("a-") else "c") / p.name).symlink_to(p)
    fifo = tmp_path / "b-fifo.wav"
    os.mkfifo(fifo)  # nobody writes: the run waits here for ever
    out = tmp_path / "out.jsonl"
    args = ["classify", "a", fifo.name, "c", "-o", out.name, "--jobs", "2"]
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONPATH=str(ROOT))
    run = subprocess.Popen([sys.executable, "-m", "ser_edge", *args], cwd=tmp_path, env=env,
                           stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lines(out, 8, run)  # a's first batch; its second holds the FIFO
        time.sleep(0.5)
        children = psutil.Process(run.pid).children(recursive=True)
        os.kill(run.pid, signal.SIGKILL)
        run.communicate(timeout=30)
    finally:
        if run.poll() is None:  # pragma: no cover - only if the test failed above
            run.kill()
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"workers left running: {alive}"
    data = out.read_bytes()
    lines = data.splitlines(keepends=True)
    assert 8 <= len(lines) <= N_CLIPS // 2 and data.endswith(b"\n")
    out.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # torn
    fifo.unlink()
    sf.write(fifo, _voice(1.0), 16000)
    resumed = _cli(*args, "--resume", cwd=tmp_path)
    assert resumed.returncode == 1, resumed.stderr  # the bad files of the set
    n = N_CLIPS + 4
    assert f"ser-edge: out.jsonl: {len(lines) - 1} of {n} files there already" in resumed.stderr
    assert resumed.stdout == ""
    records = _records(out.read_text())  # fails on a doubled path
    assert len(records) == n
    want = _by_name({k: v for k, v in _records(serial.stdout).items() if k != "missing.wav"})
    got = _by_name(records)
    assert got.pop("b-fifo.wav")["label"]
    assert got == want
    # The whole set is there: a third run has nothing left to do.
    again = _cli(*args, "--resume", cwd=tmp_path)
    assert f"{n} of {n} files there already (2 failed)" in again.stderr
    assert again.returncode == 1 and out.read_text().count("\n") == n


def test_resume_csv_redoes_a_torn_row(folder: Path, tmp_path: Path) -> None:
    a0, a1 = sorted(folder.glob("a-*"))[:2]
    paths = [folder / "b-empty.wav", a0, folder / "b-cut.wav", a1, folder / "b-notes.wav"]
    whole = tmp_path / "whole.csv"
    first = CliRunner().invoke(app, ["classify", "--jobs", "1", "-o", str(whole),
                                     *map(str, paths)])
    assert first.exit_code == 1 and first.stdout == ""  # b-empty, b-notes
    text = whole.read_text()
    header, *rows = text.splitlines(keepends=True)
    assert header.startswith("path,label,confidence,duration_s,sample_rate,") and len(rows) == 5
    part = tmp_path / "part.csv"
    part.write_text(header + rows[0] + rows[1] + rows[2][:20])
    again = CliRunner().invoke(app, ["classify", "--jobs", "1", "-o", str(part), "--resume",
                                     *map(str, paths)])
    assert again.exit_code == 1
    assert "2 of 5 files there already (1 failed)" in again.stderr
    assert part.read_text() == text
    assert "3 of 5 files failed" not in again.stderr and "2 of 5 files failed" in again.stderr


@pytest.mark.parametrize("args, message", [
    (["--resume"], "--resume continues an --output file"),
    (["-o", "{tmp}/out.txt"], "the extension picks the format"),
    (["--json", "-o", "{tmp}/out.csv"], "--json with a .csv file"),
    (["-o", "{tmp}/exists.jsonl"], "the results file exists: --resume to continue it"),
    (["-o", "{tmp}/bad.jsonl", "--resume"], "line 2 is not a result record"),
    (["-o", "{tmp}/other.csv", "--resume"], "its columns are not this model's"),
    (["-o", "{tmp}/no/such/folder/out.jsonl"], "cannot open the results file"),
    (["--jobs", "2", "--scheduler", "tcp://127.0.0.1:1"], "choose one of --jobs"),
])
def test_output_options_are_checked(folder: Path, tmp_path: Path, args: list[str],
                                    message: str) -> None:
    (tmp_path / "exists.jsonl").write_text('{"path": "x", "label": "calm"}\n')
    (tmp_path / "bad.jsonl").write_text('{"path": "x", "label": "calm"}\nnot json\n')
    (tmp_path / "other.csv").write_text("path,label,error\n")
    clip = sorted(folder.iterdir())[0]
    result = CliRunner().invoke(app, ["classify", *[a.format(tmp=tmp_path) for a in args],
                                      str(clip)])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_a_second_run_cannot_append_to_a_locked_file(folder: Path, tmp_path: Path) -> None:
    from ser_edge.results import ResultsFile

    out = tmp_path / "out.jsonl"
    with ResultsFile(out, labels=("a", "b"), resume=True):
        result = CliRunner().invoke(app, ["classify", "-o", str(out), "--resume",
                                          str(sorted(folder.iterdir())[0])])
    assert result.exit_code == 2
    assert "another process is writing this results file" in result.stderr


def test_unreachable_scheduler_is_one_line(folder: Path, monkeypatch) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setattr(batch, "CONNECT_TIMEOUT_S", 1.0)
    result = CliRunner().invoke(app, ["classify", "--scheduler", "tcp://127.0.0.1:9",
                                      str(sorted(folder.iterdir())[0])])
    assert result.exit_code == 4
    assert result.stderr.startswith("ser-edge: error: cannot reach the Dask scheduler at "
                                    "tcp://127.0.0.1:9 (")
    assert len(result.stderr.splitlines()) == 1


# -- a Dask cluster ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 worker processes with one thread each, on the loopback interface."""
    distributed = pytest.importorskip("distributed")
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as c:
        yield c


def test_local_cluster_gives_the_serial_results(cluster, folder: Path, serial) -> None:
    """Relative paths from another working folder than the workers': the same output."""
    proc = _cli("classify", "--json", "--scheduler", cluster.scheduler_address, folder.name,
                "missing.wav", cwd=folder.parent)
    assert proc.returncode == 1
    assert proc.stdout == serial.stdout
    assert proc.stderr == serial.stderr


@pytest.mark.parametrize("vad", [True, False], ids=["default", "no-vad"])
def test_local_cluster_checks_speech_as_one_process_does(cluster, noisy: Path, noisy_serial,
                                                         vad: bool) -> None:
    serial = noisy_serial[vad]
    dask = _invoke("--json", "--scheduler", cluster.scheduler_address,
                   *([] if vad else ["--no-vad"]), noisy)
    assert dask.exit_code == serial.returncode == (1 if vad else 0)
    assert dask.stdout == serial.stdout and dask.stderr == serial.stderr
    noise = _records(dask.stdout)[str(noisy / "b-noise.wav")]
    assert noise.get("error") == ("no speech detected" if vad else None)


def test_local_cluster_survives_a_killed_worker(cluster, folder: Path, serial) -> None:
    from distributed import Client

    paths = sorted(folder.iterdir())
    with Client(cluster) as client:
        pids = client.run(os.getpid)
        assert len(pids) == 2
        found, victim = [], None
        for o in batch.outcomes(paths, scheduler=client, batch_size=2):
            found.append(o)
            if victim is None and o.worker in pids:
                victim = pids[o.worker]
                os.kill(victim, signal.SIGKILL)
        assert victim is not None
        assert [o.index for o in found] == list(range(len(paths)))  # each once, in order
        # Dask took back the tasks the dead worker was running, and ran them again.
        lost = client.run_on_scheduler(lambda dask_scheduler: [
            t[0] for t in dask_scheduler.transition_log
            if t[1:3] == ("processing", "released") and "worker-cleanup" in str(t[4])])
        assert any(str(key).startswith("_classify_batch") for key in lost)
        client.wait_for_workers(2, timeout=60)
        assert victim not in client.run(os.getpid).values()  # the nanny started a new one
    want = {k: v for k, v in _records(serial.stdout).items() if "label" in v}
    assert _api_lines(found, folder.parent) == want
    assert [Path(o.result.path).name for o in found if hasattr(o.result, "error")] == [
        "b-empty.wav", "b-notes.wav"]


@pytest.mark.slow  # librosa is imported by each worker: about 15 s on two busy cores
def test_export_features_on_a_cluster(cluster, ravdess_dir: Path, tmp_path: Path,
                                      monkeypatch) -> None:
    """``python -m export --scheduler ADDRESS features``: the same table as on this machine."""
    pytest.importorskip("librosa")
    pytest.importorskip("sklearn")
    from export.__main__ import app as export_app
    from export.features import extract_reference, use_scheduler
    from ser_edge.features import FeatureConfig

    corpus = tmp_path / "ravdess"
    for actor in ("01", "02"):
        (corpus / f"Actor_{actor}").mkdir(parents=True)
        for clip in sorted((ravdess_dir / f"Actor_{actor}").glob("03-01-0[45]-01-01-01-*"))[:2]:
            (corpus / f"Actor_{actor}" / clip.name).symlink_to(clip)
    config = FeatureConfig(sr=16000, n_mels=64, n_mfcc=20, tuning=0.0)
    names = config.feature_names()
    small = ["--sr", "16000", "--n-mels", "64", "--n-mfcc", "20", "--tuning", "0", "-q",
             "-c", f"ravdess={corpus}"]
    tables = {}
    for where, extra in (("here", ["-j", "1"]), ("cluster", [])):
        out = tmp_path / f"{where}.csv"
        cli = ["--scheduler", cluster.scheduler_address] if where == "cluster" else []
        result = CliRunner().invoke(export_app, [*cli, "features", "-o", str(out), *small,
                                                 *extra, "--cache-dir", str(tmp_path / where)])
        assert result.exit_code == 0, result.output
        with open(out, newline="") as f:
            rows = list(csv.DictReader(f))
        tables[where] = np.array([[float(r[n]) for n in names] for r in rows])
    assert tables["here"].shape == (4, len(names))
    # The workers run numpy's BLAS on one thread, this process perhaps on more: float32 rounding.
    np.testing.assert_allclose(tables["cluster"], tables["here"], rtol=1e-5, atol=1e-4)
    assert len(list((tmp_path / "cluster").rglob("*.npy"))) == 4  # cached here

    paths = sorted(corpus.rglob("*.flac"))
    with use_scheduler(cluster.scheduler_address):
        there = extract_reference(paths, config, use_cache=False, progress=False)
    here = extract_reference(paths, config, n_jobs=1, use_cache=False, progress=False)
    np.testing.assert_allclose(there, here, rtol=1e-5, atol=1e-4)

    monkeypatch.setattr(batch, "CONNECT_TIMEOUT_S", 1.0)
    unreachable = CliRunner().invoke(export_app, ["--scheduler", "tcp://127.0.0.1:9",
                                                  "features", "-o", str(tmp_path / "x.csv")])
    assert unreachable.exit_code == 2
    assert "error: cannot reach the Dask scheduler at tcp://127.0.0.1:9" in unreachable.output


# -- caps and schedulers that are not (issue 23) -------------------------------------------------


def test_jobs_beyond_the_usable_cores_are_lowered_and_said_once(folder: Path, serial) -> None:
    cores = len(os.sched_getaffinity(0))
    clips = sorted(f"{folder.name}/{p.name}" for p in folder.iterdir() if p.suffix == ".flac")
    proc = _cli("classify", "--json", "--jobs", "1000", *clips[:6], cwd=folder.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"ser-edge: --jobs 1000 is more than the {cores} usable cores: using {cores}"]
    want = _records(serial.stdout)
    assert _records(proc.stdout) == {c: want[c] for c in clips[:6]}


def test_api_jobs_are_capped_at_the_usable_cores(folder: Path) -> None:
    paths = sorted(p for p in folder.iterdir() if p.suffix == ".flac")[:12]
    found = list(batch.outcomes(paths, jobs=1000, batch_size=1))
    assert len(found) == len(paths)
    assert 1 <= len({o.worker for o in found}) <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("address", "message"), [
    ("not-an-address", "the Dask scheduler address not-an-address is not tcp://HOST:PORT (a host "
                       "and a port from 1 to 65535)"),
    ("http://127.0.0.1:8786", "the Dask scheduler address http://127.0.0.1:8786 is not "
                              "tcp://HOST:PORT (or tls://HOST:PORT): http:// is not supported"),
    ("inproc://x", "the Dask scheduler address inproc://x is not tcp://HOST:PORT (or "
                   "tls://HOST:PORT): inproc:// is not supported"),
    ("ucx://127.0.0.1:8786", "the Dask scheduler address ucx://127.0.0.1:8786 is not "
                             "tcp://HOST:PORT (or tls://HOST:PORT): ucx:// is not supported"),
    ("tcp://127.0.0.1:99999", "the Dask scheduler address tcp://127.0.0.1:99999 is not "
                              "tcp://HOST:PORT (a host and a port from 1 to 65535)"),
    ("tls://127.0.0.1:1", "the Dask scheduler at tls://127.0.0.1:1: tls:// needs Dask's TLS "
                          "settings (distributed.comm.tls: ca-file, client cert and key), and "
                          "none are configured"),
    ("http", "cannot reach the Dask scheduler at {address} (no answer within 2 s)"),
    ("silent", "cannot reach the Dask scheduler at {address} (no answer within 2 s)"),
    ("noise", "{address} is not a Dask scheduler (it answered b'"),
    ("no workers", "the Dask scheduler at {address} has no workers: none joined within 2 s "
                   "(start some: dask worker {address})"),
])
def test_a_scheduler_that_cannot_be_used_is_one_line_and_status_4(folder: Path, address: str,
                                                                  message: str) -> None:
    """Each case in a process bounded in time, against listeners started here on 127.0.0.1: no
    hang, no traceback, no allocation the peer asks for, no 'Exception ignored' at exit."""
    from contextlib import nullcontext

    from tests import hostile

    pytest.importorskip("distributed")
    clip = sorted(folder.iterdir())[0]
    where = (hostile.scheduler_without_workers() if address == "no workers" else
             hostile.listener(address) if address in ("http", "silent", "noise") else
             nullcontext(address))
    with where as real:
        proc = hostile.ser_edge("classify", "--scheduler", real, clip,
                                connect_timeout_s=hostile.CONNECT_TIMEOUT_S)
    assert proc.returncode == 4, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"ser-edge: error: {message.format(address=real)}"), line
    assert proc.stdout == ""
