"""ser-edge serve, started as a user starts it, driven by a real HTTP client and WebSocket client.

The server is ``python -m ser_edge serve`` on 127.0.0.1 and a free port; the HTTP client is the
standard library's, the WebSocket client websockets' (the ``serve`` extra). Answers are checked
against ``classify --json`` and ``listen - --json`` run in process on the same audio; every
wait is bounded.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from ser_edge.cli import app
from ser_edge.samples import SAMPLES
from tests.network import WAIT_S, assert_same_windows, free_port, require, wait_until

require("starlette", "serve")
ws_client = require("websockets.sync.client", "serve")
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402

runner = CliRunner()
MAX_BYTES = 2_000_000


class Server:
    def __init__(self, *args: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "ser_edge", "serve", "--port",
                                      str(self.port), *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def up() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"serve exited: {self.proc.stderr.read().decode()[-800:]}")
            try:
                return self.get("/health")[0] == 200
            except OSError:
                return False

        wait_until(up, "the server to answer /health", timeout=120)

    def request(self, method: str, path: str, data: bytes | None = None,
                headers: dict | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=WAIT_S) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def get(self, path: str) -> tuple[int, bytes]:
        return self.request("GET", path)

    def post(self, data: bytes, path: str = "/classify") -> tuple[int, dict]:
        status, body = self.request("POST", path, data,
                                    {"Content-Type": "application/octet-stream"})
        return status, json.loads(body)

    def post_announced(self, n_bytes: int, path: str = "/classify") -> tuple[int, dict]:
        """A POST whose headers announce ``n_bytes`` and wait for the server's word before the
        body (``Expect: 100-continue``, as curl sends a large file): a server that refuses on
        the announced length answers before any byte of the body is sent, so the refusal
        cannot race the upload (sent anyway, a refused body breaks the client's pipe)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT_S)
        try:
            conn.putrequest("POST", path)
            conn.putheader("Content-Type", "application/octet-stream")
            conn.putheader("Content-Length", str(n_bytes))
            conn.putheader("Expect", "100-continue")
            conn.endheaders()
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def ws(self, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/listen{query}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def server():
    s = Server("--max-bytes", str(MAX_BYTES), "--max-concurrent", "1")
    yield s
    s.stop()
    # SIGTERM: a graceful shutdown, after which uvicorn ends by the signal (as systemd expects)
    assert s.proc.returncode in (0, -15), s.proc.stderr.read().decode()[-800:]


def classify_json(path: Path, *extra: str) -> tuple[int, list[dict], str]:
    result = runner.invoke(app, ["classify", "--json", str(path), *extra])
    return result.exit_code, [json.loads(x) for x in result.stdout.splitlines()], result.stderr


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_classify_answers_as_classify_json(server, name) -> None:
    code, [expected], _ = classify_json(SAMPLES[name])
    assert code == 0
    status, record = server.post(SAMPLES[name].read_bytes())
    assert status == 200
    assert record["path"] == "<request>"
    assert record["label"] == expected["label"] == name
    assert {k: v for k, v in record.items() if k != "path"} == \
        {k: v for k, v in expected.items() if k != "path"}


def test_other_formats_as_classify_reads_them(server, tmp_path: Path) -> None:
    y, sr = sf.read(SAMPLES["sad"], dtype="float32")
    flac = tmp_path / "sad48k.flac"
    import soxr

    sf.write(flac, np.stack([soxr.resample(y, sr, 48000)] * 2, axis=1), 48000)
    code, [expected], _ = classify_json(flac)
    status, record = server.post(flac.read_bytes())
    assert (status, code) == (200, 0)
    assert record["label"] == expected["label"] and record["sample_rate"] == 48000
    np.testing.assert_allclose(list(record["probabilities"].values()),
                               list(expected["probabilities"].values()), rtol=0, atol=1e-7)


def test_bad_input_gets_classify_error_and_a_4xx(server, tmp_path: Path) -> None:
    cases = {"text.wav": b"this is not audio\n" * 10,
             "empty.wav": b"",
             "cut.wav": SAMPLES["angry"].read_bytes()[:60]}
    for name, data in cases.items():
        piped = runner.invoke(app, ["classify", "--json", "-"], input=data)
        assert piped.exit_code == 1
        expected = json.loads(piped.stdout)
        status, record = server.post(data)
        assert status == 400, (name, record)
        # The line classify prints for the same bytes piped in, the request in stdin's place.
        assert record["error"] == expected["error"].replace("<stdin>", "<request>")
        assert f"ser-edge: error: {expected['error']}" in piped.stderr
        assert server.get("/health")[0] == 200  # still up
    noise = tmp_path / "noise.wav"
    sf.write(noise, 0.05 * np.random.default_rng(0).standard_normal(3 * 16000), 16000)
    code, [expected], _ = classify_json(noise)
    status, record = server.post(noise.read_bytes())
    assert (status, code) == (422, 1)
    assert record["error"] == expected["error"] == "no speech detected"


def test_limits(server) -> None:
    status, record = server.post_announced(MAX_BYTES + 1)
    assert status == 413 and "larger than the 2000000 bytes" in record["error"]
    # One request or stream at a time (--max-concurrent 1): an open stream takes the place.
    with ws_client.connect(server.ws()) as ws:
        ws.send(np.zeros(1600, np.int16).tobytes())
        status, record = server.post(SAMPLES["angry"].read_bytes())
        assert status == 503 and record["error"].startswith("busy")
        with pytest.raises(InvalidStatus) as refused:
            ws_client.connect(server.ws())
        assert refused.value.response.status_code == 503
        ws.send("end")
        list(ws)
    wait_until(lambda: json.loads(server.get("/health")[1])["busy"] == 0, "the stream to end")
    assert server.post(SAMPLES["angry"].read_bytes())[0] == 200
    # A WebSocket message larger than the limit closes the stream (1009: message too big).
    with ws_client.connect(server.ws()) as ws:
        ws.send(b"\0\0" * (MAX_BYTES // 2 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=WAIT_S)
        assert closed.value.rcvd.code == 1009
    assert server.get("/health")[0] == 200


def test_health_and_model(server) -> None:
    status, body = server.get("/health")
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok"
    info = runner.invoke(app, ["info", "--json"])
    assert json.loads(server.get("/model")[1]) == json.loads(info.stdout)
    assert health["model"].split("@")[0] == json.loads(info.stdout)["model_path"].rsplit(
        "/", 1)[1].removesuffix(".onnx")
    assert server.get("/classify")[0] == 405 and server.get("/nothing")[0] == 404


def pcm_of(*names: str, sr: int = 16000) -> np.ndarray:
    import soxr

    y = np.concatenate([sf.read(SAMPLES[n], dtype="float32")[0] for n in names])
    if sr != 16000:
        y = soxr.resample(y, 16000, sr)
    return y


@pytest.mark.parametrize(("fmt", "rate", "channels"), [("s16le", 16000, 1),
                                                       ("f32le", 48000, 2)])
def test_listen_streams_listen_windows(server, fmt, rate, channels) -> None:
    y = pcm_of("angry", "sad", "angry", sr=rate)
    frames = np.stack([y] * channels, axis=1)
    data = ((np.clip(frames, -1, 1) * 32767).astype("<i2") if fmt == "s16le"
            else frames.astype("<f4")).tobytes()
    expected = runner.invoke(app, ["listen", "-", "--json", "--rate", str(rate), "--channels",
                                   str(channels), "--format", fmt, "--hop", "0.5"], input=data)
    assert expected.exit_code == 0
    expected = [json.loads(x) for x in expected.stdout.splitlines()]
    cuts = np.sort(np.random.default_rng(1).choice(len(data), 40, replace=False))
    with ws_client.connect(server.ws(f"?rate={rate}&channels={channels}&format={fmt}"
                                     "&hop=0.5")) as ws:
        for piece in np.split(np.frombuffer(data, np.uint8), cuts):  # cut anywhere, mid-frame
            ws.send(piece.tobytes())
        ws.send("end")
        got = [json.loads(m) for m in ws]
    assert any(w["speech"] for w in got)
    assert_same_windows(got, expected)  # other chunks than listen's: to float32 rounding


@pytest.mark.parametrize(("query", "says"), [
    ("?rate=abc", "rate='abc' is not an integer"),
    ("?rate=10", "sample rate 10 Hz is outside"),
    ("?format=mp3", "unknown PCM format 'mp3'"),
    ("?window=0.001", "window_s=0.001 s is shorter than"),
    ("?speed=2", "unknown parameter 'speed'"),
])
def test_listen_bad_parameters_get_400(server, query, says) -> None:
    with pytest.raises(InvalidStatus) as refused:
        ws_client.connect(server.ws(query))
    response = refused.value.response
    assert response.status_code == 400
    assert says in json.loads(response.body)["error"]
    assert server.get("/health")[0] == 200


def test_listen_bad_samples_close_the_stream(server) -> None:
    with ws_client.connect(server.ws("?format=f32le")) as ws:
        ws.send(np.full(1600, np.nan, "<f4").tobytes())
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=WAIT_S)
    assert closed.value.rcvd.code == 1007
    assert "NaN" in closed.value.rcvd.reason
    assert server.get("/health")[0] == 200


def test_two_workers_answer_alike() -> None:
    s = Server("--workers", "2")
    try:
        pids = set()
        for _ in range(8):
            status, record = s.post(SAMPLES["sad"].read_bytes())
            assert status == 200 and record["label"] == "sad"
            pids.add(json.loads(s.get("/health")[1])["pid"])
        assert s.proc.pid not in pids  # the workers answer, not the supervisor
    finally:
        s.stop()


def test_bind_failure_and_missing_extra_are_one_line(server) -> None:
    taken = subprocess.run([sys.executable, "-m", "ser_edge", "serve", "--port",
                            str(server.port)], capture_output=True, text=True, timeout=120)
    assert taken.returncode == 1
    assert taken.stderr.splitlines()[-1] == (f"ser-edge: error: the server could not start on "
                                             f"127.0.0.1:{server.port} (see above)")
    assert "address already in use" in taken.stderr and "Traceback" not in taken.stderr
    code = ("import sys\nsys.modules['starlette'] = None\n"
            "sys.argv = ['ser-edge', 'serve']\nfrom ser_edge.cli import main\nmain()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1
    assert out.stderr == ("ser-edge: error: ser-edge serve needs starlette and uvicorn: pip "
                          "install 'ser-edge[serve]'\n")
    bad = runner.invoke(app, ["serve", "--model", "/nonexistent.onnx"])
    assert bad.exit_code == 3 and "Traceback" not in bad.output
