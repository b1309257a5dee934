"""Results to an MQTT broker: each window (or segment) as JSON, the label retained, a last will.

:class:`MqttPublisher` is what ``ser-edge listen --mqtt URL`` and ``timeline --mqtt URL`` publish
through. Under the topic prefix of the URL (``mqtt://host[:port]/PREFIX``, or ``mqtts://`` for
TLS) it publishes

- ``PREFIX/emotion``: every result, at QoS 1, as the JSON object ``listen --json`` (or
  ``timeline --json``) prints for it;
- ``PREFIX/state``: the current label (``no speech`` for a window without speech), retained, so
  that a subscriber that comes later knows it at once; sent when it changes (and once on each
  connection);
- ``PREFIX/availability``: ``online`` once connected, ``offline`` when it stops, both retained;
  ``offline`` is also the connection's last will, which the broker publishes if the process dies
  or the network goes;
- with ``ha_discovery``, a Home Assistant MQTT discovery message (:func:`discovery`), retained
  under ``homeassistant/``: a sensor whose state is the label and whose attributes are the
  probabilities.

paho-mqtt's network loop is driven by the publisher itself, not by a thread of paho's: a result is
written to the socket in the caller's thread as it is published, and a service thread of ours
reads the broker's acknowledgements, keeps the connection alive and reconnects, ten times a
second, every paho call under one lock. (paho's own thread woke for every message, to write it and
again to read its acknowledgement: half of the publisher's CPU.) When the broker goes away, the
service thread reconnects with a backoff of 1 to 30 s, and results wait in a queue of at most
``queue_size`` results; past that the oldest is dropped, counted in :attr:`MqttPublisher.dropped`
and said once through ``warn``. At start the broker must answer (within ``connect_timeout``) and
accept us: a bad URL, credentials or a broker that is not there is a
:class:`~ser_edge.errors.NetworkError` naming the problem.

User name, password and TLS files never come from the command line: :func:`credentials` reads
them from the environment (``SER_EDGE_MQTT_USERNAME``, ``SER_EDGE_MQTT_PASSWORD``,
``SER_EDGE_MQTT_CA_FILE``, ``SER_EDGE_MQTT_CERT_FILE``, ``SER_EDGE_MQTT_KEY_FILE``) or from a
file of the same ``KEY=VALUE`` lines (which a systemd unit can also load as its
``EnvironmentFile``). paho-mqtt (the ``mqtt`` extra) is imported only when a publisher is made.
"""

from __future__ import annotations

import collections
import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ._version import __version__
from .errors import NetworkError

__all__ = [
    "MqttTarget",
    "parse_url",
    "credentials",
    "discovery",
    "MqttPublisher",
    "CREDENTIAL_KEYS",
    "NO_SPEECH_STATE",
    "INSTALL_HINT",
]

#: The one line of advice when paho-mqtt is missing.
INSTALL_HINT = "MQTT needs paho-mqtt: pip install 'ser-edge[mqtt]'"

#: The keys of a credentials file (and the environment variables of the same names).
CREDENTIAL_KEYS = ("SER_EDGE_MQTT_USERNAME", "SER_EDGE_MQTT_PASSWORD", "SER_EDGE_MQTT_CA_FILE",
                   "SER_EDGE_MQTT_CERT_FILE", "SER_EDGE_MQTT_KEY_FILE")

#: The state published for a window without speech (what ``listen`` prints for one).
NO_SPEECH_STATE = "no speech"

#: Home Assistant's default discovery prefix.
HA_PREFIX = "homeassistant"

#: Default ports of ``mqtt://`` and ``mqtts://``.
PORTS = {"mqtt": 1883, "mqtts": 8883}

#: Seconds between reconnection attempts: from the first to the longest (doubling).
BACKOFF_S = (1, 30)

#: Seconds between two turns of the service thread (acknowledgements read, keep-alive, reconnect).
SERVICE_S = 0.1

#: The connection's keep-alive, in seconds: with nothing to publish, the service thread pings the
#: broker within it (which otherwise drops the client after one and a half times it).
KEEPALIVE_S = 30


@dataclass(frozen=True)
class MqttTarget:
    """Where results go: a broker and a topic prefix.

    Attributes
    ----------
    tls : bool
        ``mqtts://``: a TLS connection.
    host : str
    port : int
    prefix : str
        The topic prefix, without a trailing ``/``.
    """

    tls: bool
    host: str
    port: int
    prefix: str

    def topic(self, name: str) -> str:
        """``PREFIX/name``."""
        return f"{self.prefix}/{name}"


def parse_url(url: str) -> MqttTarget:
    """Read ``mqtt://host[:port]/topic-prefix`` (or ``mqtts://``).

    Parameters
    ----------
    url : str
        The broker and the prefix of the topics; the prefix may have several levels
        (``mqtt://pi.local/home/kitchen/ser-edge``).

    Returns
    -------
    MqttTarget

    Raises
    ------
    NetworkError
        If the scheme is neither ``mqtt`` nor ``mqtts``, the host or the prefix is missing, the
        port is not a number in 1-65535, the prefix holds a wildcard (``+``, ``#``) or an empty
        level, or the URL holds a user name or password (they go in a credentials file or the
        environment, never on the command line).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise NetworkError(f"{url}: not an MQTT URL ({exc}); expected "
                           "mqtt://host[:port]/topic-prefix") from None
    if parts.scheme not in PORTS:
        raise NetworkError(f"{url}: not an MQTT URL: expected mqtt://host[:port]/topic-prefix "
                           "(or mqtts:// for TLS)")
    if parts.username is not None or parts.password is not None:
        raise NetworkError(f"{parts.scheme}://...@{parts.hostname}: a user name or password in "
                           "the URL would show in the process list: put them in a credentials "
                           "file (--mqtt-credentials) or the environment (SER_EDGE_MQTT_USERNAME, "
                           "SER_EDGE_MQTT_PASSWORD)")
    if not parts.hostname:
        raise NetworkError(f"{url}: no broker host: expected mqtt://host[:port]/topic-prefix")
    prefix = parts.path.strip("/")
    if "?" in url or "#" in url:  # '#' would be read as a URL's fragment, not a wildcard
        raise NetworkError(f"{url}: the topic prefix must have no wildcard (+, #) and the URL "
                           "no query (?)")
    if not prefix:
        raise NetworkError(f"{url}: no topic prefix: expected mqtt://host[:port]/topic-prefix "
                           "(e.g. mqtt://localhost/ser-edge/kitchen)")
    if any(c in prefix for c in "+#\0") or "" in prefix.split("/"):
        raise NetworkError(f"{url}: the topic prefix {prefix!r} must have no wildcard (+, #) "
                           "and no empty level")
    return MqttTarget(tls=parts.scheme == "mqtts", host=parts.hostname,
                      port=port or PORTS[parts.scheme], prefix=prefix)


def credentials(path: str | os.PathLike[str] | None = None,
                environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """User name, password and TLS files, from the environment and then a file.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A file of ``KEY=VALUE`` lines (:data:`CREDENTIAL_KEYS`; blank lines and ``#`` comments
        allowed, values may be quoted), read after the environment: its values win.
    environ : mapping, optional
        The environment (default ``os.environ``).

    Returns
    -------
    dict of str to str
        The keys of :data:`CREDENTIAL_KEYS` that are set, with their values.

    Raises
    ------
    NetworkError
        If the file cannot be read, a line of it is not ``KEY=VALUE`` or names an unknown key,
        a password comes without a user name, or a TLS file named does not exist.
    """
    env = os.environ if environ is None else environ
    found = {key: env[key] for key in CREDENTIAL_KEYS if env.get(key)}
    if path is not None:
        name = os.fspath(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise NetworkError(f"{name}: cannot read the MQTT credentials file ({reason})") \
                from None
        for n, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or key not in CREDENTIAL_KEYS:
                raise NetworkError(f"{name}: line {n} is not KEY=VALUE with a key of "
                                   f"{', '.join(CREDENTIAL_KEYS)}")
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            found[key] = value
    if "SER_EDGE_MQTT_PASSWORD" in found and "SER_EDGE_MQTT_USERNAME" not in found:
        raise NetworkError("an MQTT password without a user name (SER_EDGE_MQTT_USERNAME)")
    for key in CREDENTIAL_KEYS[2:]:
        if key in found and not os.path.isfile(found[key]):
            raise NetworkError(f"{found[key]}: no such file ({key})")
    return found


def node_id(prefix: str) -> str:
    """The topic prefix as a Home Assistant node id: ``[a-zA-Z0-9_-]`` (``ser-edge_kitchen``)."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", prefix)


def discovery(target: MqttTarget, labels: tuple[str, ...] | list[str], *,
              model: str | None = None) -> tuple[str, dict[str, Any]]:
    """Home Assistant's MQTT discovery message for the emotion sensor.

    A sensor (``device_class: enum``, its options the labels and :data:`NO_SPEECH_STATE`) whose
    state is ``PREFIX/state`` and whose attributes are the probabilities of each result on
    ``PREFIX/emotion``, available while ``PREFIX/availability`` says ``online``; its device is
    this ser-edge. Field names are those Home Assistant documents for an MQTT sensor
    (``tests/test_mqtt.py`` checks them).

    Parameters
    ----------
    target : MqttTarget
    labels : sequence of str
        The model's labels.
    model : str, optional
        The model's name, shown as the device's model.

    Returns
    -------
    topic : str
        ``homeassistant/sensor/NODE/emotion/config``.
    payload : dict
        The configuration, to be published as JSON, retained.
    """
    node = node_id(target.prefix)
    payload = {
        "name": "Emotion",
        "unique_id": f"{node}_emotion",
        "state_topic": target.topic("state"),
        "json_attributes_topic": target.topic("emotion"),
        "json_attributes_template": "{{ (value_json.probabilities or {}) | tojson }}",
        "availability_topic": target.topic("availability"),
        "payload_available": "online",
        "payload_not_available": "offline",
        "device_class": "enum",
        "options": [*labels, NO_SPEECH_STATE],
        "icon": "mdi:emoticon-outline",
        "qos": 1,
        "device": {
            "identifiers": [node],
            "name": f"ser-edge {target.prefix}",
            "manufacturer": "ser-edge",
            "model": model or "ser-edge",
            "sw_version": __version__,
        },
        "origin": {"name": "ser-edge", "sw_version": __version__},
    }
    return f"{HA_PREFIX}/sensor/{node}/emotion/config", payload


def state_of(record: Mapping[str, Any]) -> str:
    """The state a result stands for: its label, or :data:`NO_SPEECH_STATE`."""
    label = record.get("label")
    return NO_SPEECH_STATE if label is None else str(label)


class MqttPublisher:
    """Publish results to an MQTT broker; reconnect, queue and drop as the module says.

    Parameters
    ----------
    url : str
        ``mqtt://host[:port]/topic-prefix`` or ``mqtts://...`` (:func:`parse_url`).
    labels : sequence of str
        The model's labels (the discovery message lists them).
    creds : mapping of str to str, optional
        :func:`credentials`: user name, password, TLS files.
    ha_discovery : bool
        Publish Home Assistant's discovery message (:func:`discovery`) on every connection.
    queue_size : int >= 1
        Results kept while the broker is away (the oldest dropped past that).
    model : str, optional
        The model's name, for the discovery message.
    warn : callable, optional
        Called with a one-line message when results start being dropped (once) and when the
        connection is lost or back; default: nothing said.
    connect_timeout : float > 0
        Seconds to wait for the broker at start, in seconds.
    client_id : str, optional
        The MQTT client id; default ``ser-edge-HOST-PID``.

    Attributes
    ----------
    target : MqttTarget
    dropped : int
        Results dropped because the queue was full.
    published : int
        Results handed to the broker (acknowledged or on their way).

    Raises
    ------
    NetworkError
        If paho-mqtt is not installed (:data:`INSTALL_HINT`), the URL is not valid, or the broker
        cannot be reached, does not answer within ``connect_timeout`` or refuses the connection
        (bad credentials, say).
    """

    def __init__(self, url: str, *, labels: tuple[str, ...] | list[str],
                 creds: Mapping[str, str] | None = None, ha_discovery: bool = False,
                 queue_size: int = 1000, model: str | None = None,
                 warn: Callable[[str], None] | None = None, connect_timeout: float = 10.0,
                 client_id: str | None = None):
        self.target = parse_url(url)
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise NetworkError(f"the MQTT queue must hold at least 1 result, got {queue_size!r}")
        try:
            import paho.mqtt.client as paho
        except ImportError:
            raise NetworkError(INSTALL_HINT) from None
        self._paho = paho
        self.labels = tuple(labels)
        self.queue_size = queue_size
        self.dropped = self.published = 0
        self._warn = warn or (lambda message: None)
        self._discovery = discovery(self.target, self.labels, model=model) if ha_discovery \
            else None
        # Every paho call, and the queue, under _lock: paho has no thread of its own here (see
        # the module's docstring), and its callbacks run inside those calls.
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._service: threading.Thread | None = None
        self._unsent: collections.deque[tuple[str, str]] = collections.deque()
        self._infos: collections.deque[Any] = collections.deque()
        self._connected = False
        self._ever_connected = False
        self._state: str | None = None  # the last state published on this connection
        self._first = threading.Event()
        self._refused: str | None = None
        creds = dict(creds or {})
        client_id = client_id or f"ser-edge-{socket.gethostname()}-{os.getpid()}"
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=paho.MQTTv311)
        if "SER_EDGE_MQTT_USERNAME" in creds:
            client.username_pw_set(creds["SER_EDGE_MQTT_USERNAME"],
                                   creds.get("SER_EDGE_MQTT_PASSWORD"))
        if self.target.tls:
            try:
                client.tls_set(ca_certs=creds.get("SER_EDGE_MQTT_CA_FILE"),
                               certfile=creds.get("SER_EDGE_MQTT_CERT_FILE"),
                               keyfile=creds.get("SER_EDGE_MQTT_KEY_FILE"))
            except (OSError, ValueError) as exc:
                raise NetworkError(f"cannot set up TLS for {self._where()}: {exc}") from None
        client.will_set(self.target.topic("availability"), "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client
        try:
            client.connect(self.target.host, self.target.port, keepalive=KEEPALIVE_S)
        except (OSError, ValueError) as exc:
            import ssl

            if isinstance(exc, ssl.SSLCertVerificationError):
                raise NetworkError(f"the MQTT broker at {self._where()}: its TLS certificate "
                                   f"is not trusted ({exc.verify_message}): name the CA that "
                                   "signed it in SER_EDGE_MQTT_CA_FILE") from None
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise NetworkError(f"cannot reach the MQTT broker at {self._where()} "
                               f"({reason or type(exc).__name__})") from None
        deadline = time.monotonic() + connect_timeout
        with self._lock:
            while not self._first.is_set() and time.monotonic() < deadline:
                if not self._pump() and not self._first.is_set():
                    break  # the broker closed the connection without an answer
                time.sleep(0.01)
        if not self._first.is_set():
            self._stop()
            raise NetworkError(f"the MQTT broker at {self._where()} did not answer within "
                               f"{connect_timeout:g} s")
        if self._refused is not None:
            self._stop()
            raise NetworkError(f"the MQTT broker at {self._where()} refused the connection "
                               f"({self._refused})")
        self._service = threading.Thread(target=self._serve, name="ser-edge-mqtt", daemon=True)
        self._service.start()

    def _where(self) -> str:
        return f"{self.target.host}:{self.target.port}"

    @property
    def connected(self) -> bool:
        """Whether the broker is connected now."""
        return self._connected

    # -- paho's callbacks (inside a paho call, _lock held) --------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                    properties: Any = None) -> None:
        self._connecting = False
        if reason.is_failure:
            client.disconnect()
            if not self._ever_connected:  # at start: say why; later: tried again
                self._refused = str(reason)
                self._first.set()
            return
        client.publish(self.target.topic("availability"), "online", qos=1, retain=True)
        if self._discovery is not None:
            topic, payload = self._discovery
            client.publish(topic, json.dumps(payload), qos=1, retain=True)
        again = self._ever_connected
        self._state = None  # said again on this connection (a broker restarted may have lost it)
        self._ever_connected = self._connected = True
        if again:  # what waited goes at the service thread's next turn
            self._warn(f"MQTT broker at {self._where()}: connected again")
        self._first.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                       properties: Any = None) -> None:
        was, self._connected = self._connected, False
        if was and not self._closing:
            self._warn(f"MQTT broker at {self._where()}: connection lost ({reason}); "
                       f"reconnecting, keeping up to {self.queue_size} results")

    # -- paho's network work, in whichever thread holds _lock ----------------------------------

    def _pump(self) -> bool:
        """Read what the broker sent, write what waits, keep alive: whether still connected.

        paho's calls for an external loop (``loop_read``, ``loop_write``, ``loop_misc``) on its
        non-blocking socket; not ``loop()``, which makes paho wake a socket pair on every
        message. ``_lock`` held.
        """
        client, ok = self._client, (self._paho.MQTT_ERR_SUCCESS, self._paho.MQTT_ERR_AGAIN)
        rc = client.loop_read()
        if rc in ok and client.want_write():
            rc = client.loop_write()
        if rc in ok:
            rc = client.loop_misc()
        return rc in ok

    # -- the service thread ----------------------------------------------------------------------

    def _serve(self) -> None:
        """Read acknowledgements, keep the connection alive, send what waited, reconnect."""
        backoff, retry_at = float(BACKOFF_S[0]), 0.0
        while not self._stopping.wait(SERVICE_S):
            if self._connected or self._connecting:
                with self._lock:
                    if self._closing:
                        return
                    if not self._pump():
                        self._connecting = False  # lost, or refused: try again later
                    self._send_unsent()
                if self._connected:
                    backoff = float(BACKOFF_S[0])
                continue
            now = time.monotonic()
            if now < retry_at:
                continue
            # Not connected, so the caller does not touch paho: the reconnection, which waits
            # for TCP, can run without the lock; the broker's answer is read on the next turns.
            try:
                self._client.reconnect()
                self._connecting = True
            except (OSError, ValueError):
                pass
            retry_at = now + backoff
            backoff = min(2 * backoff, float(BACKOFF_S[1]))

    # -- the caller's thread -------------------------------------------------------------------

    _closing = False
    _connecting = False  # reconnect() sent, the broker's answer not read yet

    def _send_unsent(self) -> None:
        """Hand the queued results to paho, oldest first, while connected (``_lock`` held)."""
        while self._unsent and self._connected:
            payload, state = self._unsent.popleft()
            # The result's delivery is tracked; the state after it is the same connection's,
            # and is sent when it changes (half the messages, and their CPU, for a steady mood).
            self._infos.append(self._client.publish(self.target.topic("emotion"), payload, qos=1))
            if state != self._state:
                self._client.publish(self.target.topic("state"), state, qos=1, retain=True)
                self._state = state
            self.published += 1
        while self._infos and self._infos[0].is_published():
            self._infos.popleft()

    def publish(self, record: Mapping[str, Any]) -> None:
        """Publish one result: the JSON object on ``emotion``, its label on ``state``.

        While the broker is away the result is queued (at most ``queue_size``, the oldest
        dropped); queued results go first once it is back.

        Parameters
        ----------
        record : mapping
            A JSON-ready result, as ``listen --json`` or ``timeline --json`` prints it
            (:meth:`ser_edge.stream.WindowResult.to_dict`): its ``label`` (None: no speech)
            becomes the state.
        """
        payload = json.dumps(record, allow_nan=False)
        with self._lock:
            self._unsent.append((payload, state_of(record)))
            self._send_unsent()
            if len(self._unsent) > self.queue_size:
                self._unsent.popleft()
                self.dropped += 1
                if self.dropped == 1:
                    self._warn(f"MQTT broker at {self._where()} unreachable: more than "
                               f"{self.queue_size} results waiting, dropping the oldest (the "
                               "count is given at the end)")

    def close(self, timeout: float = 5.0) -> int:
        """Send what is waiting (up to ``timeout`` seconds), say ``offline``, disconnect.

        Parameters
        ----------
        timeout : float >= 0
            Seconds to wait for the broker to acknowledge the results still on their way (or,
            if it is away, to come back for the ones queued).

        Returns
        -------
        unsent : int
            Results that never reached the broker: queued when it stopped, or dropped.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._connected:
                    self._pump()
                self._send_unsent()
                if not self._unsent and not self._infos:
                    break
            time.sleep(0.02)
        with self._lock:
            unsent = len(self._unsent) + sum(not i.is_published() for i in self._infos)
            self._closing = True
            info = (self._client.publish(self.target.topic("availability"), "offline", qos=1,
                                         retain=True) if self._connected else None)
            until = max(time.monotonic() + 0.5, deadline)
            while info is not None and self._connected and not info.is_published() \
                    and time.monotonic() < until:
                self._pump()
                time.sleep(0.01)
        self._stop()
        return unsent + self.dropped

    def _stop(self) -> None:
        self._closing = True
        self._stopping.set()
        if self._service is not None and self._service is not threading.current_thread():
            self._service.join()
        with self._lock:
            self._client.disconnect()  # written at once: no thread of paho's to wait for

    def __enter__(self) -> MqttPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def print_warning(message: str) -> None:
    """Write ``ser-edge: warning: MESSAGE`` on stderr (the command line's ``warn``)."""
    if sys.stderr is not None:
        sys.stderr.write(f"ser-edge: warning: {message}\n")
        sys.stderr.flush()
