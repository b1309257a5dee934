"""The real things the network tests talk to: Debian's mosquitto on 127.0.0.1, a subscriber.

Everything here is bounded in time: a broker that does not listen within :data:`WAIT_S`, a
message that does not come, fail the test rather than hang it.
"""

from __future__ import annotations

import getpass
import importlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

#: The longest any test waits for something to happen, in seconds.
WAIT_S = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """Poll ``predicate`` until it is true (returned), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:g} s for {what}")
        time.sleep(0.02)


def missing(why: str) -> None:
    """Skip, saying ``why``; or fail, where ``SER_EDGE_REQUIRE_NETWORK=1`` (CI) says it is there."""
    if os.environ.get("SER_EDGE_REQUIRE_NETWORK") == "1":
        pytest.fail(f"{why} (SER_EDGE_REQUIRE_NETWORK=1)")
    pytest.skip(why)


def require(module: str, extra: str) -> Any:
    """Import ``module`` of the ``extra``, or :func:`missing`."""
    try:
        return importlib.import_module(module)
    except ImportError:
        missing(f"the {extra} extra is not installed: pip install -e '.[{extra}]'")


def mosquitto_binary() -> str:
    """Debian's mosquitto (``apt-get install mosquitto``, as .ci/run does), or :func:`missing`."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        missing("mosquitto is not installed (apt-get install mosquitto; .ci/run installs it)")
    return found


class Mosquitto:
    """A mosquitto broker of this test's own on 127.0.0.1, on a free port.

    Persistence is on (in ``folder``), so that a subscriber's session and its queued QoS 1
    messages outlive :meth:`stop` and :meth:`start`, as on a real broker restarted.
    """

    def __init__(self, folder: Path, *, password_file: Path | None = None,
                 tls: tuple[Path, Path] | None = None):
        self.binary = mosquitto_binary()
        self.port = free_port()
        self.folder = Path(folder)
        self.conf = self.folder / "mosquitto.conf"
        # As root, mosquitto would become the user "mosquitto", who cannot write the folder.
        lines = [f"listener {self.port} 127.0.0.1", f"user {getpass.getuser()}",
                 "persistence true",
                 f"persistence_location {self.folder}/", "log_dest stderr"]
        if tls is not None:  # (certificate, key) of the server: this listener speaks TLS only
            lines += [f"certfile {tls[0]}", f"keyfile {tls[1]}"]
        if password_file is not None:
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines += ["allow_anonymous true"]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None
        self.url = f"{'mqtts' if tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the broker and wait until it takes connections."""
        self.log = open(self.folder / "mosquitto.log", "ab")  # noqa: SIM115 - closed in stop
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=self.log,
                                     stderr=self.log)

        def listening() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"mosquitto exited with status {self.proc.returncode}: "
                            f"{(self.folder / 'mosquitto.log').read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                return False

        wait_until(listening, f"mosquitto to listen on port {self.port}")

    def stop(self) -> None:
        """Stop the broker (SIGTERM: it saves its sessions) and wait for it to exit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.log.close()


class Subscriber:
    """An MQTT client that records every message under a topic filter, with its retain flag.

    ``clean_session=False`` with a fixed client id: the broker keeps its subscription (and
    queues its QoS 1 messages) while it is away, and across a broker restart.
    """

    def __init__(self, port: int, topic: str = "#", client_id: str | None = None,
                 ca: Path | None = None):
        import paho.mqtt.client as paho

        self.messages: list[tuple[str, str, bool]] = []
        self._lock = threading.Lock()
        self.connects = 0
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"test-sub-{os.getpid()}-{id(self)}",
                                  clean_session=False, protocol=paho.MQTTv311)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self._topic = topic
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        wait_until(self._subscribed.is_set, "the subscription")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                    properties: Any = None) -> None:
        if not reason.is_failure:
            client.subscribe(self._topic, qos=1)
            self.connects += 1

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload.decode(), bool(msg.retain)))

    def on(self, topic: str) -> list[str]:
        """The payloads received on ``topic``, in order."""
        with self._lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def assert_same_windows(a: list[dict], b: list[dict]) -> None:
    """The same windows of ``listen --json``: times, speech flags and labels equal, the
    probabilities within float32 rounding (another process, or chunks cut elsewhere, sum the
    same samples in another order)."""
    import numpy as np

    assert [(w["start_s"], w["end_s"], w["speech"], w["label"]) for w in a] == \
        [(w["start_s"], w["end_s"], w["speech"], w["label"]) for w in b]
    for x, y in zip(a, b, strict=True):
        if x["speech"]:
            np.testing.assert_allclose(list(x["probabilities"].values()),
                                       list(y["probabilities"].values()), rtol=0, atol=1e-6)


def certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A certificate authority and a server certificate for 127.0.0.1 signed by it (openssl).

    Returns
    -------
    ca, certificate, key : Path
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        missing("openssl is not installed (apt-get install openssl)")
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr = folder / "server.pem", folder / "server.key", folder / "server.csr"
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    for cmd in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
         "-days", "2", "-subj", "/CN=ser-edge test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj",
         "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out",
         cert, "-days", "2", "-extfile", ext],
    ):
        subprocess.run([openssl, *map(str, cmd)], check=True, capture_output=True, timeout=60)
    key.chmod(0o644)  # mosquitto reads it as the user it runs as
    return ca, cert, key
