"""ser-edge: speech emotion recognition for edge devices.

librosa-exact MFCC, chroma and mel features in numpy, and an ONNX model run with onnxruntime;
no librosa, numba or scikit-learn at run time.

``Classifier`` is imported lazily, so that ``import ser_edge.features`` does not load onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import AudioError, ModelError, NoSpeechError, ParameterError, SerEdgeError

if TYPE_CHECKING:  # pragma: no cover
    from .model import BUNDLED_MODEL, Classifier, Failure, Prediction
    from .stream import StreamingClassifier, WindowResult

__all__ = [
    "__version__",
    "BUNDLED_MODEL",
    "Classifier",
    "Failure",
    "Prediction",
    "StreamingClassifier",
    "WindowResult",
    "SerEdgeError",
    "AudioError",
    "NoSpeechError",
    "ModelError",
    "ParameterError",
]

_LAZY = {name: "model" for name in ("BUNDLED_MODEL", "Classifier", "Failure", "Prediction")}
_LAZY.update({name: "stream" for name in ("StreamingClassifier", "WindowResult")})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
