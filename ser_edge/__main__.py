"""``python -m ser_edge``: the ``ser-edge`` command, for a fresh interpreter of one's choice.

``ser-edge bench`` times its cold start this way (``sys.executable -m ser_edge classify CLIP``),
so that the measured interpreter is the one running the benchmark.
"""

from .cli import main

if __name__ == "__main__":
    main()
