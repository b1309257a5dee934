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
import tempfile
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


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, of that child alone) of one run, in seconds.

    CPU time is what the program costs; wall time also holds waiting for a machine that other
    work shares. Raises SystemExit if the program fails.
    """
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read()[-2000:].decode(errors="replace")
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return elapsed, usage.ru_utime + usage.ru_stime


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
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in programs}
    for _ in range(args.runs):
        for name, cmd in programs.items():
            runs[name].append(timed(cmd))

    wall = {k: [w for w, _ in v] for k, v in runs.items()}
    cpu = {k: [c for _, c in v] for k, v in runs.items()}
    result = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "clip": args.clip,
        "commands": {k: " ".join(v) for k, v in programs.items()},
        "runs": args.runs,
        "first_run": {k: {"wall_s": w, "cpu_s": c} for k, (w, c) in first.items()},
        "wall_s": wall,
        "cpu_s": cpu,
        "median_wall_s": {k: statistics.median(v) for k, v in wall.items()},
        "median_cpu_s": {k: statistics.median(v) for k, v in cpu.items()},
        "site_packages_bytes": {
            d: {"all": disk_usage(Path(d)), "without_pip": disk_usage(Path(d), True)}
            for d in args.site_packages
        },
    }
    mw, mc = result["median_wall_s"], result["median_cpu_s"]
    if "librosa+sklearn" in mw:
        result["ratio_librosa_over_ser_edge"] = {
            "wall": mw["librosa+sklearn"] / mw["ser-edge"],
            "cpu": mc["librosa+sklearn"] / mc["ser-edge"],
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"cold start on {result['machine']}, python {result['python']}, {args.runs} runs "
        f"each, alternating, after one first run each; clip {Path(args.clip).name}"
    )
    print(
        f"{'program':16s}{'first wall/cpu s':>18s}{'median wall s':>15s}{'median cpu s':>14s}"
        "   wall of each run"
    )
    for name in programs:
        fw, fc = first[name]
        each = " ".join(f"{t:.2f}" for t in wall[name])
        print(f"{name:16s}{fw:10.2f}/{fc:<7.2f}{mw[name]:15.2f}{mc[name]:14.2f}   {each}")
    if "ratio_librosa_over_ser_edge" in result:
        r = result["ratio_librosa_over_ser_edge"]
        print(f"librosa+sklearn / ser-edge (medians): wall {r['wall']:.1f}x, cpu {r['cpu']:.1f}x")
    for d, b in result["site_packages_bytes"].items():
        print(
            f"site-packages {d}: {b['all'] / 2**20:.1f} MiB "
            f"({b['without_pip'] / 2**20:.1f} MiB without pip/setuptools)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
