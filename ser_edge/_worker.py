"""Imported first in ser-edge's local worker processes: one BLAS thread, then the light imports.

The ``forkserver`` that :mod:`ser_edge.batch` starts its worker processes from preloads this
module, so that numpy's BLAS is loaded with one thread (unless the user's environment says
otherwise: the variables of :mod:`ser_edge._threads` are only set where unset), and each worker
forks with numpy, soundfile and soxr already imported. onnxruntime is not imported here: it
starts a thread when imported, and a process with threads should not fork.
"""

from ._threads import default_to_one_thread

default_to_one_thread()

import numpy  # noqa: E402, F401
import soundfile  # noqa: E402, F401
import soxr  # noqa: E402, F401
