"""listen --mqtt and timeline --mqtt against a real broker: Debian's mosquitto on 127.0.0.1.

Each test starts its own broker on a free port (skipped, saying so, where mosquitto is not
installed; .ci/run installs it) and subscribes to it with paho-mqtt. Every window published is
checked against ``listen - --json`` run in process on the same PCM; the broker is stopped and
started again in the middle of a stream; the last will is seen when the process is killed; the
Home Assistant discovery message is checked against the fields Home Assistant documents.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from ser_edge.cli import app
from ser_edge.samples import SAMPLES
from tests.network import (
    WAIT_S,
    Mosquitto,
    Subscriber,
    assert_same_windows,
    certificates,
    free_port,
    require,
    wait_until,
)

paho = require("paho.mqtt.client", "mqtt")

from ser_edge import mqtt  # noqa: E402

runner = CliRunner()
SR = 16000
PREFIX = "test/ser-edge"


@pytest.fixture
def broker(tmp_path: Path):
    b = Mosquitto(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def pcm() -> np.ndarray:
    """About 15 s of int16 PCM at 16 kHz: the shipped clips, and a quiet stretch without speech."""
    clips = {name: sf.read(path, dtype="int16")[0] for name, path in SAMPLES.items()}
    for y in clips.values():
        assert sf.info(SAMPLES["angry"]).samplerate == SR and y.ndim == 1
    quiet = (np.random.default_rng(0).standard_normal(int(3.5 * SR)) * 20).astype(np.int16)
    a, s = clips["angry"], clips["sad"]
    return np.concatenate([a, s, quiet, a, s, a])


def listen_json(pcm: np.ndarray, *extra: str) -> tuple[list[dict], str]:
    """``listen - --json`` in process: its windows, and its stderr."""
    result = runner.invoke(app, ["listen", "-", "--json", *extra], input=pcm.tobytes())
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def test_every_window_is_published_as_listen_prints_it(broker, pcm) -> None:
    reference, _ = listen_json(pcm)
    assert any(w["speech"] for w in reference) and not all(w["speech"] for w in reference)
    sub = Subscriber(broker.port)
    url = f"{broker.url}/{PREFIX}"
    printed, stderr = listen_json(pcm, "--mqtt", url, "--ha-discovery")
    assert stderr == ""
    assert printed == reference  # --mqtt changes nothing on standard output
    wait_until(lambda: len(sub.on(f"{PREFIX}/emotion")) == len(reference), "every window")
    wait_until(lambda: sub.on(f"{PREFIX}/availability")[-1:] == ["offline"], "offline")
    assert [json.loads(m) for m in sub.on(f"{PREFIX}/emotion")] == reference
    assert sub.on(f"{PREFIX}/state") == changes([w["label"] or "no speech" for w in reference])
    assert sub.on(f"{PREFIX}/availability") == ["online", "offline"]
    topic, payload = mqtt.discovery(mqtt.parse_url(url), reference_labels(reference),
                                    model="mlp-cnn3-robust-geometric")
    assert [json.loads(m) for m in sub.on(topic)] == [payload]
    sub.close()
    # One who subscribes later gets the retained state, availability and discovery at once.
    late = Subscriber(broker.port, client_id="late")
    wait_until(lambda: len(late.messages) >= 3, "the retained messages")
    retained = {t: p for t, p, r in late.messages if r}
    assert retained[f"{PREFIX}/state"] == (reference[-1]["label"] or "no speech")
    assert retained[f"{PREFIX}/availability"] == "offline"
    assert json.loads(retained[topic]) == payload
    assert f"{PREFIX}/emotion" not in retained  # results are events, not state
    late.close()


def changes(states: list[str]) -> list[str]:
    """The states as published: each when it differs from the one before."""
    return [x for i, x in enumerate(states) if i == 0 or x != states[i - 1]]


def reference_labels(windows: list[dict]) -> list[str]:
    return list(next(w["probabilities"] for w in windows if w["speech"]))


def test_timeline_publishes_its_segments(broker, pcm, tmp_path: Path) -> None:
    wav = tmp_path / "talk.wav"
    sf.write(wav, pcm, SR)
    plain = runner.invoke(app, ["timeline", "--json", str(wav)])
    assert plain.exit_code == 0, plain.output
    segments = [json.loads(line) for line in plain.stdout.splitlines()]
    sub = Subscriber(broker.port)
    result = runner.invoke(app, ["timeline", "--json", str(wav), "--mqtt",
                                 f"{broker.url}/{PREFIX}"])
    assert result.exit_code == 0, result.output
    wait_until(lambda: len(sub.on(f"{PREFIX}/emotion")) == len(segments), "every segment")
    assert [json.loads(m) for m in sub.on(f"{PREFIX}/emotion")] == segments
    assert sub.on(f"{PREFIX}/state") == changes([s["label"] for s in segments])
    sub.close()


class _Lines:
    """The lines a child process writes to one of its pipes, read as they come."""

    def __init__(self, pipe):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe) -> None:
        for line in iter(pipe.readline, b""):
            self.lines.append(line.decode())

    def having(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]


def test_broker_stopped_and_started_mid_stream(broker, pcm) -> None:
    """Windows before the stop arrive; of those made while it is away, the newest --mqtt-queue
    arrive after the restart, the older ones are dropped and counted; the stream goes on."""
    reference, _ = listen_json(pcm)
    ends = np.array([w["end_s"] for w in reference])
    cut1, cut2 = int(5.5 * SR), int(11.5 * SR)
    before, away = int(np.sum(ends <= 5.5)), int(np.sum((ends > 5.5) & (ends <= 11.5)))
    queue = 2
    assert away > queue
    sub = Subscriber(broker.port)
    proc = subprocess.Popen([sys.executable, "-m", "ser_edge", "listen", "-", "--json",
                             "--mqtt", f"{broker.url}/{PREFIX}", "--mqtt-queue", str(queue)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = _Lines(proc.stdout), _Lines(proc.stderr)
        proc.stdin.write(pcm[:cut1].tobytes())
        proc.stdin.flush()
        wait_until(lambda: len(sub.on(f"{PREFIX}/emotion")) == before, "the first windows")
        broker.stop()
        wait_until(lambda: err.having("connection lost"), "the publisher to see the broker go")
        proc.stdin.write(pcm[cut1:cut2].tobytes())
        proc.stdin.flush()
        wait_until(lambda: len(out.lines) == before + away, "the windows made while away")
        assert len(err.having("dropping the oldest")) == 1  # said once
        broker.start()
        wait_until(lambda: err.having("connected again"), "the publisher to reconnect")
        proc.stdin.write(pcm[cut2:].tobytes())
        proc.stdin.close()
        assert proc.wait(timeout=WAIT_S) == 0, "".join(err.lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    printed = [json.loads(line) for line in out.lines]
    assert_same_windows(printed, reference)
    kept = printed[:before] + printed[before + away - queue:]
    wait_until(lambda: len(sub.on(f"{PREFIX}/emotion")) == len(kept), "the windows after it")
    assert [json.loads(m) for m in sub.on(f"{PREFIX}/emotion")] == kept
    dropped = away - queue
    assert err.having(f"({dropped} dropped while it was unreachable)"), err.lines
    assert not err.having("Traceback")
    sub.close()


def test_an_idle_publisher_keeps_its_connection_alive(broker, monkeypatch) -> None:
    """Nothing published for three keep-alive periods (1 s here): the publisher's own service
    thread (paho has none here) pings the broker, and reads its answers; a result published
    then arrives, and no connection was lost."""
    monkeypatch.setattr(mqtt, "KEEPALIVE_S", 1)
    warnings: list[str] = []
    sub = Subscriber(broker.port)
    pub = mqtt.MqttPublisher(f"{broker.url}/{PREFIX}", labels=("angry", "calm"),
                             warn=warnings.append)
    log: list[str] = []
    pub._client.on_log = lambda client, userdata, level, message: log.append(message)
    try:
        wait_until(lambda: sub.on(f"{PREFIX}/availability") == ["online"], "online")
        threading.Event().wait(3.5)
        assert sum(m.startswith("Sending PINGREQ") for m in log) >= 2, log
        assert sum(m.startswith("Received PINGRESP") for m in log) >= 2, log
        assert pub.connected and warnings == []
        assert sub.on(f"{PREFIX}/availability") == ["online"]  # no will
        pub.publish({"start_s": 0.0, "end_s": 3.0, "speech": True, "label": "calm",
                     "probabilities": {"angry": 0.25, "calm": 0.75}})
        wait_until(lambda: len(sub.on(f"{PREFIX}/emotion")) == 1, "the result")
    finally:
        assert pub.close() == 0
    sub.close()


def test_last_will_when_the_process_dies(broker, pcm) -> None:
    sub = Subscriber(broker.port)
    proc = subprocess.Popen([sys.executable, "-m", "ser_edge", "listen", "-", "--mqtt",
                             f"{broker.url}/{PREFIX}"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(pcm[: 4 * SR].tobytes())
        proc.stdin.flush()
        wait_until(lambda: sub.on(f"{PREFIX}/emotion"), "a window")
        assert sub.on(f"{PREFIX}/availability") == ["online"]
        proc.kill()  # no goodbye: the broker says it for us
        proc.wait(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wait_until(lambda: sub.on(f"{PREFIX}/availability") == ["online", "offline"], "the last will")
    sub.close()


#: The configuration variables of Home Assistant's MQTT sensor, as its documentation lists them
#: (https://www.home-assistant.io/integrations/sensor.mqtt/, "Configuration variables"), with the
#: keys of ``device`` and ``origin`` (the MQTT integration's discovery documentation).
HA_SENSOR_FIELDS = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "default_entity_id", "device", "device_class", "enabled_by_default", "encoding",
    "entity_category", "entity_picture", "expire_after", "force_update", "group", "icon",
    "json_attributes_template", "json_attributes_topic", "last_reset_value_template", "name",
    "object_id", "options", "origin", "payload_available", "payload_not_available", "platform",
    "qos", "state_class", "state_topic", "suggested_display_precision", "unique_id",
    "unit_of_measurement", "value_template",
}
HA_DEVICE_FIELDS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model",
    "model_id", "name", "serial_number", "suggested_area", "sw_version", "via_device",
}
HA_ORIGIN_FIELDS = {"name", "sw_version", "support_url"}
#: Home Assistant's sensor device classes that take text states.
HA_TEXT_DEVICE_CLASSES = {"enum", None}


def test_discovery_payload_is_a_home_assistant_sensor() -> None:
    from ser_edge import Classifier

    labels = Classifier().labels
    target = mqtt.parse_url("mqtt://pi.local/home/kitchen/ser-edge")
    topic, payload = mqtt.discovery(target, labels, model="mlp")
    # <discovery_prefix>/<component>/[<node_id>/]<object_id>/config
    assert re.fullmatch(r"homeassistant/sensor/[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+/config", topic)
    assert set(payload) <= HA_SENSOR_FIELDS, set(payload) - HA_SENSOR_FIELDS
    assert set(payload["device"]) <= HA_DEVICE_FIELDS
    assert set(payload["origin"]) <= HA_ORIGIN_FIELDS
    assert payload["state_topic"] == "home/kitchen/ser-edge/state"
    assert payload["availability_topic"] == "home/kitchen/ser-edge/availability"
    assert payload["json_attributes_topic"] == "home/kitchen/ser-edge/emotion"
    assert payload["device"]["identifiers"] and payload["unique_id"]
    # An enum sensor: every state ser-edge publishes is one of its options.
    assert payload.get("device_class") in HA_TEXT_DEVICE_CLASSES
    assert set(payload["options"]) == {*labels, mqtt.NO_SPEECH_STATE}
    assert payload["qos"] in (0, 1, 2)
    assert json.loads(json.dumps(payload)) == payload
    # The attributes template, rendered as Home Assistant does (Jinja2, value_json the payload):
    # a JSON dictionary of the probabilities, or an empty one without speech.
    jinja2 = pytest.importorskip("jinja2")
    template = jinja2.Environment().from_string(payload["json_attributes_template"])
    probabilities = {label: 1 / len(labels) for label in labels}
    window = {"start_s": 0.0, "end_s": 3.0, "speech": True, "label": labels[0],
              "probabilities": probabilities}
    assert json.loads(template.render(value_json=window)) == probabilities
    silent = {**window, "speech": False, "label": None, "probabilities": None}
    assert json.loads(template.render(value_json=silent)) == {}


@pytest.mark.parametrize(("url", "says"), [
    ("http://localhost/x", "not an MQTT URL"),
    ("mqtt://localhost", "no topic prefix"),
    ("mqtt://localhost/a/#", "no wildcard"),
    ("mqtt://localhost:99999/x", "not an MQTT URL"),
    ("mqtt://user:secret@localhost/x", "credentials file"),
])
def test_bad_urls_are_one_line(url: str, says: str) -> None:
    result = runner.invoke(app, ["listen", "-", "--mqtt", url], input=b"")
    assert result.exit_code == 2
    assert says in result.stderr and len(result.stderr.splitlines()) == 1
    assert "secret" not in result.stderr
    assert "Traceback" not in result.output


def test_unreachable_broker_and_missing_credentials(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = runner.invoke(app, ["listen", "-", "--mqtt", f"mqtt://127.0.0.1:{port}/x"],
                           input=b"")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"ser-edge: error: cannot reach the MQTT broker at "
                                    f"127.0.0.1:{port}")
    assert len(result.stderr.splitlines()) == 1
    missing = tmp_path / "nope.env"
    result = runner.invoke(app, ["listen", "-", "--mqtt", f"mqtt://127.0.0.1:{port}/x",
                                 "--mqtt-credentials", str(missing)], input=b"")
    assert result.exit_code == 2
    assert result.stderr == (f"ser-edge: error: {missing}: cannot read the MQTT credentials "
                             "file (No such file or directory)\n")
    result = runner.invoke(app, ["listen", "-", "--ha-discovery"], input=b"")
    assert result.exit_code == 2 and "--mqtt" in result.output


def test_credentials_from_a_file_and_the_environment(tmp_path: Path) -> None:
    f = tmp_path / "mqtt.env"
    f.write_text("# the broker's account\nSER_EDGE_MQTT_USERNAME=pi\n"
                 "SER_EDGE_MQTT_PASSWORD='s3 cret'\n")
    assert mqtt.credentials(f, environ={}) == {"SER_EDGE_MQTT_USERNAME": "pi",
                                               "SER_EDGE_MQTT_PASSWORD": "s3 cret"}
    env = {"SER_EDGE_MQTT_USERNAME": "env", "SER_EDGE_MQTT_PASSWORD": "p", "HOME": "/"}
    assert mqtt.credentials(None, environ=env) == {"SER_EDGE_MQTT_USERNAME": "env",
                                                   "SER_EDGE_MQTT_PASSWORD": "p"}
    assert mqtt.credentials(f, environ=env)["SER_EDGE_MQTT_USERNAME"] == "pi"  # the file wins
    f.write_text("PASSWORD=x\n")
    with pytest.raises(mqtt.NetworkError, match="line 1 is not KEY=VALUE"):
        mqtt.credentials(f, environ={})
    with pytest.raises(mqtt.NetworkError, match="without a user name"):
        mqtt.credentials(None, environ={"SER_EDGE_MQTT_PASSWORD": "x"})
    with pytest.raises(mqtt.NetworkError, match="no such file"):
        mqtt.credentials(None, environ={"SER_EDGE_MQTT_CA_FILE": str(tmp_path / "ca.pem")})


def test_a_broker_that_wants_a_password(tmp_path: Path, pcm) -> None:
    passwd = tmp_path / "passwd"
    made = subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "pi", "raspberry"],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"mosquitto_passwd failed: {made.stderr.strip()}")
    passwd.chmod(0o600)
    b = Mosquitto(tmp_path, password_file=passwd)
    b.start()
    try:
        good, bad = tmp_path / "good.env", tmp_path / "bad.env"
        good.write_text("SER_EDGE_MQTT_USERNAME=pi\nSER_EDGE_MQTT_PASSWORD=raspberry\n")
        bad.write_text("SER_EDGE_MQTT_USERNAME=pi\nSER_EDGE_MQTT_PASSWORD=wrong\n")
        url = f"{b.url}/{PREFIX}"
        refused = runner.invoke(app, ["listen", "-", "--mqtt", url], input=b"")
        assert refused.exit_code == 1 and "refused the connection" in refused.stderr
        refused = runner.invoke(app, ["listen", "-", "--mqtt", url, "--mqtt-credentials",
                                      str(bad)], input=b"")
        assert refused.exit_code == 1
        assert refused.stderr == (f"ser-edge: error: the MQTT broker at 127.0.0.1:{b.port} "
                                  "refused the connection (Not authorized)\n")
        assert "wrong" not in refused.stderr
        ok = runner.invoke(app, ["listen", "-", "--json", "--mqtt", url, "--mqtt-credentials",
                                 str(good)], input=pcm[: 4 * SR].tobytes())
        assert ok.exit_code == 0, ok.output
        assert len(ok.stdout.splitlines()) == 2
    finally:
        b.stop()


def test_without_paho_one_line_of_advice() -> None:
    code = ("import sys\nsys.modules['paho'] = None\n"
            "sys.argv = ['ser-edge', 'listen', '-', '--mqtt', 'mqtt://127.0.0.1:1/x']\n"
            "from ser_edge.cli import main\nmain()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         input="", timeout=120)
    assert out.returncode == 1
    assert out.stderr == ("ser-edge: error: MQTT needs paho-mqtt: pip install "
                          "'ser-edge[mqtt]'\n")


def test_the_documented_discovery_message_is_the_one_sent() -> None:
    """docs/network.md shows the discovery message: it must be what ser-edge sends."""
    from ser_edge import Classifier
    from ser_edge._version import __version__

    page = (Path(__file__).resolve().parent.parent / "docs" / "network.md").read_text()
    shown = json.loads(re.search(r"```json\n(.*?)```", page, re.DOTALL)[1]
                       .replace('"sw_version": "..."', f'"sw_version": "{__version__}"'))
    clf = Classifier()
    _, sent = mqtt.discovery(mqtt.parse_url("mqtt://homeassistant.local/ser-edge/living-room"),
                             clf.labels, model=clf.name)
    assert shown == sent


def test_tls_with_a_ca_from_the_environment(tmp_path: Path, pcm, monkeypatch) -> None:
    """mqtts:// to a broker whose certificate a CA of the test signed: the CA file comes from
    the environment; without it the certificate is refused, in one line."""
    ca, cert, key = certificates(tmp_path)
    b = Mosquitto(tmp_path, tls=(cert, key))
    b.start()
    try:
        url = f"{b.url}/{PREFIX}"
        assert url.startswith("mqtts://")
        untrusted = runner.invoke(app, ["listen", "-", "--mqtt", url], input=b"")
        assert untrusted.exit_code == 1
        assert untrusted.stderr == (
            f"ser-edge: error: the MQTT broker at 127.0.0.1:{b.port}: its TLS certificate is "
            "not trusted (unable to get local issuer certificate): name the CA that signed it "
            "in SER_EDGE_MQTT_CA_FILE\n")
        sub = Subscriber(b.port, ca=ca)
        monkeypatch.setenv("SER_EDGE_MQTT_CA_FILE", str(ca))
        reference, _ = listen_json(pcm[: 5 * SR])
        printed, stderr = listen_json(pcm[: 5 * SR], "--mqtt", url)
        assert printed == reference and stderr == ""
        wait_until(lambda: len(sub.on(f"{PREFIX}/emotion")) == len(reference), "every window")
        assert [json.loads(m) for m in sub.on(f"{PREFIX}/emotion")] == reference
        sub.close()
    finally:
        b.stop()
