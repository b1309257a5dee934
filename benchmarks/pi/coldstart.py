"""Cold start of ``ser-edge classify`` against the librosa + scikit-learn way, on one machine.

Standard library only, so it runs with any Python 3 on a Raspberry Pi (or inside the emulated
one, see ``benchmarks/pi/emulated.sh``). Each run is a fresh process that imports everything,
loads the model and classifies one clip; the two programs alternate (A B A B ...) so that a
drift of the machine's speed hits both alike. Prints a table and, with ``--json``, one JSON
object; also the size on disk of the site-packages folders given.

usage::

    python coldstart.py --clip clip.flac --ser-edge ~/ser-edge-venv/bin/ser-edge \\
        [--librosa-python ~/librosa-venv/bin/python --librosa-model model.pkl] \\
        [--runs 5] [--site-packages DIR ...] [--json]

``--librosa-model`` is a pickle written by ``make_pickle.py``; the librosa side runs
``benchmarks/librosa_way.py`` (the same program as ``benchmarks/cold_start.py``'s). The first run
of each program (the first after install: librosa's numba compiles its helpers then, and caches
them) is reported apart from the measured runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

LIBROSA_WAY = Path(__file__).resolve().parent.parent / "librosa_way.py"
# Not part of what an application needs at run time.
TOOLING = {"pip", "setuptools", "_distutils_hack", "distutils-precedence.pth", "wheel"}


def disk_usage(path: Path, skip_tooling: bool = False) -> int:
    """Bytes allocated on disk under ``path`` (as ``du``), optionally without pip/setuptools."""
    total = 0
    for entry in path.iterdir():
        name = entry.name.split("-")[0] if entry.name.endswith(".dist-info") else entry.name
        if skip_tooling and name in TOOLING:
            continue
        if entry.is_dir() and not entry.is_symlink():
            for root, _dirs, files in os.walk(entry):
                for f in files:
                    total += os.lstat(os.path.join(root, f)).st_blocks * 512
        else:
            total += os.lstat(entry).st_blocks * 512
    return total


def timed(cmd: list[str]) -> float:
    """Wall time of one run of ``cmd``, in seconds; raises if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", required=True)
    ap.add_argument("--ser-edge", required=True, help="the ser-edge executable of a venv")
    ap.add_argument("--model", help="ONNX model for ser-edge (default: the bundled one)")
    ap.add_argument("--librosa-python", help="python of a venv with librosa and scikit-learn")
    ap.add_argument("--librosa-model", help="pickle from make_pickle.py")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--site-packages", nargs="*", default=[], help="folders to size")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    programs = {"ser-edge": [args.ser_edge, "classify", "--json", args.clip]}
    if args.model:
        programs["ser-edge"][2:2] = ["--model", args.model]
    if args.librosa_python:
        if not args.librosa_model:
            ap.error("--librosa-python needs --librosa-model")
        programs["librosa+sklearn"] = [
            args.librosa_python,
            str(LIBROSA_WAY),
            args.librosa_model,
            args.clip,
        ]
    first = {name: timed(cmd) for name, cmd in programs.items()}
    times: dict[str, list[float]] = {name: [] for name in programs}
    for _ in range(args.runs):
        for name, cmd in programs.items():
            times[name].append(timed(cmd))

    result = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "clip": args.clip,
        "commands": {k: " ".join(v) for k, v in programs.items()},
        "runs": args.runs,
        "first_run_s": first,
        "seconds": times,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "min_s": {k: min(v) for k, v in times.items()},
        "site_packages_bytes": {
            d: {"all": disk_usage(Path(d)), "without_pip": disk_usage(Path(d), True)}
            for d in args.site_packages
        },
    }
    med = result["median_s"]
    if "librosa+sklearn" in med:
        result["ratio_librosa_over_ser_edge"] = med["librosa+sklearn"] / med["ser-edge"]
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"cold start on {result['machine']}, python {result['python']}, {args.runs} runs "
        f"each, alternating; clip {Path(args.clip).name}"
    )
    print(f"{'program':18s}{'first s':>9s}{'median s':>10s}{'min s':>8s}   measured runs")
    for name, v in times.items():
        runs = " ".join(f"{t:.2f}" for t in v)
        print(f"{name:18s}{first[name]:9.2f}{med[name]:10.2f}{min(v):8.2f}   {runs}")
    if "ratio_librosa_over_ser_edge" in result:
        print(
            f"ratio librosa+sklearn / ser-edge (medians): "
            f"{result['ratio_librosa_over_ser_edge']:.1f}x"
        )
    for d, b in result["site_packages_bytes"].items():
        print(
            f"site-packages {d}: {b['all'] / 2**20:.1f} MiB "
            f"({b['without_pip'] / 2**20:.1f} MiB without pip/setuptools)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
