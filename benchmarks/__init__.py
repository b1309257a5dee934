"""Benchmarks of ser-edge against the librosa + scikit-learn pipeline it replaces.

One script per question, each run from the project root as a module, e.g.
``python -m benchmarks.latency``; each prints a Markdown table and writes
``benchmarks/results/<name>.json`` (machine, versions, date, load average, per-run figures).

Importing this package pins the BLAS/OpenMP/numba thread pools to one thread (unless the caller
already set them), before numpy is imported by the script: both sides then run single-threaded,
and a shared, loaded machine does not distort the comparison through oversubscribed BLAS threads.
"""

import os

#: Thread pools pinned for both sides (recorded in every JSON result).
THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}

for _key, _value in THREAD_ENV.items():
    os.environ.setdefault(_key, _value)
