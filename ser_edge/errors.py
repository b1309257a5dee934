"""The exceptions ser-edge raises.

One small hierarchy, after librosa's ``LibrosaError`` → ``ParameterError``: every error that a
user's input can cause is a :class:`SerEdgeError`, so a command-line front end catches that one
class, prints its one-line message and exits non-zero, and lets anything else (a bug) surface.
"""

from __future__ import annotations

__all__ = [
    "SerEdgeError",
    "ParameterError",
    "AudioError",
    "NoSpeechError",
    "ModelError",
    "ClusterError",
    "NetworkError",
    "AudioWarning",
]


class SerEdgeError(Exception):
    """Base class of every error ser-edge raises on bad input."""


class ParameterError(SerEdgeError, ValueError):
    """A parameter has an invalid value (mirrors ``librosa.util.exceptions.ParameterError``)."""


class AudioError(SerEdgeError, ValueError):
    """An audio file or signal cannot be used: missing, empty, corrupt, silent, too short, NaN."""


class NoSpeechError(AudioError):
    """A recording holds no speech (voice activity detection found none): nothing to classify."""


class ModelError(SerEdgeError):
    """A model file cannot be used: unreadable, or its metadata or shapes do not fit."""


class ClusterError(SerEdgeError):
    """A Dask cluster cannot be used: the ``cluster`` extra is missing, or no scheduler answers."""


class NetworkError(SerEdgeError):
    """The network cannot be used: an MQTT broker, its URL or credentials, or a server.

    A bad broker URL, a missing or bad credentials file, a broker that cannot be reached or
    refuses us at start, or the extra that speaks the protocol missing.
    """


class AudioWarning(UserWarning):
    """Audio that could be used, with a flaw worth saying: shorter than its header says, say.

    The ``ser-edge`` command prints each as one ``ser-edge: warning: FILE: ...`` line on stderr
    and still classifies the file.
    """
