"""ser-edge: speech emotion recognition for edge devices.

librosa-exact MFCC, chroma and mel features in numpy, and an ONNX model run with onnxruntime;
no librosa, numba or scikit-learn at run time.

``Classifier`` is imported lazily, so that ``import ser_edge.features`` does not load onnxruntime.
``dir(ser_edge)`` lists the public API: the names of ``__all__`` and the public modules.
"""

import typing as _typing

from ._version import __version__
from .errors import (
    AudioError,
    AudioWarning,
    ClusterError,
    ModelError,
    NoSpeechError,
    ParameterError,
    SerEdgeError,
)

if _typing.TYPE_CHECKING:  # pragma: no cover
    from .adapt import SpeakerProfile
    from .model import BUNDLED_MODEL, Classifier, Failure, Prediction
    from .stream import StreamingClassifier, WindowResult

__all__ = [
    "__version__",
    "BUNDLED_MODEL",
    "Classifier",
    "Failure",
    "Prediction",
    "SpeakerProfile",
    "StreamingClassifier",
    "WindowResult",
    "SerEdgeError",
    "AudioError",
    "NoSpeechError",
    "ModelError",
    "ParameterError",
    "ClusterError",
    "AudioWarning",
]

#: The public modules, each with an ``__all__`` of its own.
_MODULES = (
    "adapt",
    "audio",
    "batch",
    "bench",
    "cli",
    "dsp",
    "errors",
    "features",
    "filters",
    "model",
    "modelfile",
    "results",
    "samples",
    "stream",
    "timeline",
    "vad",
)

_LAZY = {name: "model" for name in ("BUNDLED_MODEL", "Classifier", "Failure", "Prediction")}
_LAZY.update({name: "stream" for name in ("StreamingClassifier", "WindowResult")})
_LAZY["SpeakerProfile"] = "adapt"


def __getattr__(name: str) -> object:
    if name in _LAZY or name in _MODULES:
        from importlib import import_module

        if name in _MODULES:
            return import_module(f".{name}", __name__)
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *_MODULES})
