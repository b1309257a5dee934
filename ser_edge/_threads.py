"""The thread pools of numpy's BLAS (and OpenMP, MKL, numba), set through the environment.

Also how many cores this process may use: the cap of ser-edge's own thread and process counts.

ser-edge's matrix products are small: extra BLAS threads only spin waiting for one another, and
beside a busy process that spinning doubled a batch's time on a 2-core machine. The variables
take effect only if set before numpy loads.
"""

from __future__ import annotations

import os

#: One thread for every pool that reads its size from the environment.
THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}


def default_to_one_thread() -> None:
    """Set each variable of :data:`THREAD_ENV` to ``"1"`` unless the user has set it."""
    for name, value in THREAD_ENV.items():
        os.environ.setdefault(name, value)


def usable_cores() -> int:
    """The number of CPU cores this process may use (``len(os.sched_getaffinity(0))``).

    Returns
    -------
    cores : int >= 1
        The cores of the process's CPU affinity mask where the platform has one (Linux), else
        ``os.cpu_count()``.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)
