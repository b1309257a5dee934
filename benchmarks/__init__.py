"""Benchmarks of ser-edge against the librosa + scikit-learn pipeline it replaces.

One script per question, each run from the project root as a module, e.g.
``python -m benchmarks.latency``; each prints a Markdown table and writes
``benchmarks/results/<name>.json`` (machine, versions, date, load average, per-run figures).

Importing this package pins the BLAS/OpenMP/numba thread pools to one thread (unless the caller
already set them), before numpy is imported by the script: both sides then run single-threaded,
and a shared, loaded machine does not distort the comparison through oversubscribed BLAS threads.
"""

import os

# ser_edge.bench imports only the standard library: numpy is not loaded yet after this line.
from ser_edge.bench import THREAD_ENV  # thread pools pinned for both sides (in every JSON result)

for _key, _value in THREAD_ENV.items():
    os.environ.setdefault(_key, _value)
