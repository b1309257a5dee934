"""The thread pools of numpy's BLAS (and OpenMP, MKL, numba), set through the environment.

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
