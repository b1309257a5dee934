"""``python -m export data get``: against a local HTTP server (127.0.0.1) serving an archive made
here in RAVDESS's layout; no network. The server can cut its first answer half-way, ignore range
requests, and records each request's ``Range`` header."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import re
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import export.data as data
from export.__main__ import app
from export.data import SOURCES, DataError, audio_digest, missing_corpus

pytest.importorskip("tqdm")

#: name in the archive -> (sample rate, channels): RAVDESS's names, and its quirk of a few
#: stereo files.
CLIPS = {"Actor_01/03-01-05-01-01-01-01.wav": (48000, 1),
         "Actor_01/03-01-04-02-01-02-01.wav": (48000, 2),
         "Actor_12/03-01-08-01-02-01-12.wav": (44100, 1)}


def _samples(i: int, sr: int, channels: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    return (rng.integers(-20000, 20000, size=(sr // 4, channels))).astype(np.int16)


def _expected_digest() -> str:
    """The samples' SHA-256 as export.data defines it, spelt out again."""
    h = hashlib.sha256()
    rows = sorted((f"{name.split('/')[0]}/{Path(name).stem}.flac", i, *spec)
                  for i, (name, spec) in enumerate(CLIPS.items()))
    for rel, i, sr, channels in rows:
        y = _samples(i, sr, channels)
        h.update(f"{rel}\t{sr}\t{channels}\t{len(y)}\n".encode())
        h.update(y.astype("<i2").tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> bytes:
    """A zip as Zenodo's: ``Actor_NN/*.wav``, plus a file that is not a recording."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for i, (name, (sr, channels)) in enumerate(CLIPS.items()):
            wav = io.BytesIO()
            sf.write(wav, _samples(i, sr, channels), sr, format="WAV", subtype="PCM_16")
            z.writestr(name, wav.getvalue())
        z.writestr("Actor_01/notes.txt", "not a recording")
    return buf.getvalue()


class _Server:
    """Serves ``/corpus.zip``, honouring ``Range: bytes=N-`` unless told not to."""

    def __init__(self, body: bytes, *, cut_first: bool = False, ranges: bool = True):
        self.body, self.cut_first, self.ranges = body, cut_first, ranges
        self.requests: list[str | None] = []  # each request's Range header
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.requests.append(self.headers.get("Range"))
                if self.path.split("?")[0] != "/corpus.zip":
                    self.send_error(404)
                    return
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and server.ranges:
                    start = int(match.group(1))
                    if start >= len(server.body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(server.body) - 1}/{len(server.body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(server.body) - start))
                self.end_headers()
                if server.cut_first and len(server.requests) == 1:  # half, then hang up
                    self.wfile.write(server.body[:len(server.body) // 2])
                    self.close_connection = True
                    return
                self.wfile.write(server.body[start:])

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/corpus.zip"

    def __enter__(self) -> _Server:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def source(archive: bytes, monkeypatch: pytest.MonkeyPatch) -> data.Source:
    """RAVDESS's source, but for the test's archive (three recordings, their digest)."""
    test = dataclasses.replace(SOURCES["ravdess"], n_files=len(CLIPS),
                               checksum=f"md5:{hashlib.md5(archive).hexdigest()}",
                               audio_sha256=_expected_digest())
    monkeypatch.setitem(SOURCES, "ravdess", test)
    return test


def _get(*args: str):
    return CliRunner().invoke(app, ["data", "get", *args])


def test_get_resumes_checks_converts_and_prints_the_licence(archive: bytes, source, tmp_path,
                                                            monkeypatch) -> None:
    with _Server(archive, cut_first=True) as server:
        result = _get("ravdess", "--to", str(tmp_path), "--url", server.url, "-q")
    assert result.exit_code == 0, result.output
    # cut half-way, resumed at once from where the part ended
    assert server.requests == [None, f"bytes={len(archive) // 2}-"]
    assert "resuming" in result.output
    assert "MD5 as expected" in result.output
    assert f"SHA-256 {hashlib.sha256(archive).hexdigest()}" in result.output
    assert "CC BY-NC-SA 4.0" in result.output and "Livingstone" in result.output
    folder = tmp_path / "ravdess"
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert written == sorted(f"{n.split('/')[0]}/{Path(n).stem}.flac" for n in CLIPS)
    for i, (name, (sr, channels)) in enumerate(CLIPS.items()):
        flac = folder / name.split("/")[0] / f"{Path(name).stem}.flac"
        info = sf.info(flac)
        assert (info.format, info.subtype, info.samplerate, info.channels) == (
            "FLAC", "PCM_16", sr, channels)
        y, _ = sf.read(flac, dtype="int16", always_2d=True)
        np.testing.assert_array_equal(y, _samples(i, sr, channels))  # lossless
    assert not (tmp_path / ".downloads").exists() and not (tmp_path / ".ravdess.partial").exists()
    monkeypatch.setenv("SER_EDGE_DATA", str(tmp_path))
    from export.paths import corpus_dir

    assert corpus_dir("ravdess") == folder  # where the tests and training look
    again = _get("ravdess", "-q")
    assert again.exit_code == 0 and "there already" in again.output


def test_a_killed_run_resumes_from_its_part(archive: bytes, source, tmp_path) -> None:
    part = tmp_path / ".downloads" / f"{source.archive}.part"
    part.parent.mkdir()
    part.write_bytes(archive[:1000])
    with _Server(archive) as server:
        result = _get("ravdess", "--to", str(tmp_path), "--url", server.url, "--sha256",
                      hashlib.sha256(archive).hexdigest(), "-q")
    assert result.exit_code == 0, result.output
    assert server.requests == ["bytes=1000-"]
    assert "SHA-256 as expected" in result.output
    assert len(list((tmp_path / "ravdess").rglob("*.flac"))) == len(CLIPS)


def test_a_server_without_ranges_is_read_again_from_the_start(archive: bytes, source,
                                                              tmp_path) -> None:
    part = tmp_path / ".downloads" / f"{source.archive}.part"
    part.parent.mkdir()
    part.write_bytes(b"x" * 1000)  # not even the archive's first bytes: they are not kept
    with _Server(archive, ranges=False) as server:
        result = _get("ravdess", "--to", str(tmp_path), "--url", server.url, "-q")
    assert result.exit_code == 0, result.output
    assert server.requests == ["bytes=1000-"]  # asked, answered with the whole file


def test_a_wrong_checksum_deletes_the_archive(archive: bytes, source, tmp_path) -> None:
    with _Server(archive) as server:
        result = _get("ravdess", "--to", str(tmp_path), "--url", server.url, "--sha256",
                      "0" * 64, "-q")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert re.fullmatch(rf"error: {source.archive}: SHA-256 [0-9a-f]{{64}}, expected 0{{64}} "
                        r"\(a damaged or different file: it was deleted; .*\)", line), line
    assert not (tmp_path / ".downloads" / source.archive).exists()
    assert not (tmp_path / "ravdess").exists()


def test_audio_unlike_the_projects_is_refused(archive: bytes, source, tmp_path,
                                              monkeypatch) -> None:
    monkeypatch.setitem(SOURCES, "ravdess", dataclasses.replace(source, audio_sha256="0" * 64))
    with _Server(archive) as server:
        result = _get("ravdess", "--to", str(tmp_path), "--url", server.url, "-q")
    assert result.exit_code == 2
    assert "is not the audio ser-edge's models were trained and tested on" in result.stderr
    assert not (tmp_path / "ravdess").exists()
    assert len(list((tmp_path / ".ravdess.partial").rglob("*.flac"))) == len(CLIPS)


def test_an_archive_of_something_else_is_refused(source, tmp_path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "hello")
    with _Server(buf.getvalue()) as server:
        result = _get("ravdess", "--to", str(tmp_path), "--url", server.url, "--sha256",
                      hashlib.sha256(buf.getvalue()).hexdigest(), "-q")
    assert result.exit_code == 2
    assert "0 recordings, expected 3 (not the ravdess archive?)" in result.stderr


def test_an_unreachable_server_keeps_what_it_got(archive: bytes, source, tmp_path) -> None:
    with _Server(archive) as server:
        url = server.url
    with pytest.raises(DataError, match="run the same command again to resume"):
        data.get("ravdess", tmp_path, url=url, progress=False, log=lambda line: None)
    assert not (tmp_path / "ravdess").exists()


def test_missing_corpus_names_the_command(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SER_EDGE_DATA", str(tmp_path))
    for name in SOURCES:
        assert f"`python -m export data get {name}`" in missing_corpus(name)
        assert str(tmp_path) in missing_corpus(name)
    assert "export data get" not in missing_corpus("ased")  # no source to download it from


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_the_pinned_audio_is_the_corpus_the_tests_use(name: str) -> None:
    """The samples' SHA-256 ``data get`` checks is that of the copy under SER_EDGE_DATA."""
    from export.paths import corpus_dir

    found = corpus_dir(name)
    if found is None:
        pytest.skip(missing_corpus(name))
    root = data.data_root() / name
    files = [p.relative_to(root).as_posix() for p in root.rglob("*.flac")]
    assert len(files) == SOURCES[name].n_files
    assert audio_digest(root, files) == SOURCES[name].audio_sha256


def test_the_sources_layout_is_the_one_the_parsers_read() -> None:
    for name, source in SOURCES.items():
        example = {"ravdess": "03-01-05-02-01-02-17.wav", "emodb": "03a01Wa.wav"}[name]
        match = re.match(source.pattern, example)
        assert match, (name, example)
        rel = source.place(match)
        assert rel == {"ravdess": "Actor_17/03-01-05-02-01-02-17.flac",
                       "emodb": "wav/03a01Wa.flac"}[name]


def test_unknown_corpus() -> None:
    with pytest.raises(DataError, match="no source for corpus 'tess'"):
        data.get("tess", progress=False)
    result = _get("tess")
    assert result.exit_code == 2 and "ravdess" in result.output


def test_a_missing_extra_is_one_line_of_advice(tmp_path) -> None:
    """``python -m export fuse`` in a runtime-only install (onnx missing): which extra, no
    traceback."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['onnx'] = None; "  # import onnx fails, as without it
            f"sys.argv = ['export', 'fuse', '--out', {str(tmp_path / 'x.onnx')!r}]; "
            "from export.__main__ import main; main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: python -m export fuse needs the 'export' extra (onnx is not installed): "
        "pip install -e '.[export]'"]
