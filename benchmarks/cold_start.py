"""Cold start: a fresh process that imports, loads the model and classifies one 3 s clip.

Side A is ``ser-edge classify --json CLIP`` (the venv's console script); side B is the seeds' way
in a fresh Python process (``benchmarks/librosa_way.py``: librosa.load + mfcc + chroma_stft +
melspectrogram + a pickled scikit-learn pipeline's predict_proba). After one unmeasured warm-up of
each (page cache), the two alternate A B A B ...; each run's wall time and peak resident memory
(``wait4`` rusage of that child alone) are recorded. Then librosa's very first run after
install: the same side B with ``NUMBA_CACHE_DIR`` pointed at a fresh empty folder, so that numba
compiles librosa's jitted helpers again (its cache normally lives in the ``__pycache__`` folders
of the installed librosa package, ``*.nbi``/``*.nbc``; nothing in the venv is touched).

usage: ``python -m benchmarks.cold_start [--runs 7] [--first-runs 3] [--clip PATH]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks import _common as C


def numba_cache_files() -> dict[str, object]:
    """Where librosa's numba cache lives in this venv, and how many files it holds."""
    import importlib.util

    spec = importlib.util.find_spec("librosa")
    if spec is None or spec.origin is None:
        return {"dir": None, "files": 0}
    root = Path(spec.origin).parent
    files = [p for ext in ("*.nbi", "*.nbc") for p in root.rglob(f"__pycache__/{ext}")]
    return {"dir": f"{root}/**/__pycache__", "files": len(files),
            "bytes": sum(p.stat().st_size for p in files)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="measured runs of each side (alternating)")
    ap.add_argument("--first-runs", type=int, default=3,
                    help="librosa runs with an empty numba cache (0 to skip)")
    ap.add_argument("--clip", type=Path, help="audio file (default: 3 s of RAVDESS speech, 48 kHz)")
    args = ap.parse_args(argv)
    result = C.start("cold_start", args)

    with tempfile.TemporaryDirectory(prefix="ser-edge-bench-") as tmp:
        tmp = Path(tmp)
        models = C.make_models(tmp)
        clip = args.clip or C.make_clip(tmp, 3, 48000)
        ser_cmd = [C.SER_EDGE_EXE, "classify", "--json", clip]
        if models["onnx_kind"].startswith("stand-in"):
            ser_cmd[2:2] = ["--model", models["onnx"]]
        lib_cmd = [sys.executable, C.LIBROSA_WAY, models["pickle"], clip]
        sides = {"ser-edge": ser_cmd, "librosa+sklearn": lib_cmd}
        env = C.child_env()
        for cmd in sides.values():  # warm-up: page cache, pyc files
            C.run_child(cmd, env)
        runs: dict[str, list[dict]] = {name: [] for name in sides}
        for _ in range(args.runs):
            for name, cmd in sides.items():
                r = C.run_child(cmd, env)
                r.pop("stdout")
                runs[name].append(r)
        first: list[dict] = []
        for _ in range(args.first_runs):
            with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
                r = C.run_child(lib_cmd, C.child_env(NUMBA_CACHE_DIR=cache))
                r.pop("stdout")
                first.append(r)

    result.update(
        clip=str(args.clip) if args.clip else "3 s of RAVDESS speech, 48 kHz mono 16-bit WAV",
        commands={k: " ".join(map(str, v)) for k, v in sides.items()},
        model=models["onnx_kind"], pickle=models["pickle_kind"],
        feature_config=models["feature_config"],
        numba_cache=numba_cache_files(), runs=runs, first_runs_empty_numba_cache=first,
    )
    stats = {}
    rows = []
    labelled = [(n, runs[n]) for n in sides]
    if first:
        labelled.append(("librosa+sklearn, numba cache empty (first run)", first))
    for name, rs in labelled:
        wall = C.summary([r["wall_s"] for r in rs])
        rss = C.summary([r["peak_rss_mb"] for r in rs])
        cpu = C.summary([r["user_s"] + r["sys_s"] for r in rs])
        stats[name] = {"wall_s": wall, "peak_rss_mb": rss, "cpu_s": cpu}
        rows.append([name, wall["n"], f"{wall['median']:.3f}",
                     f"{wall['min']:.3f}-{wall['max']:.3f}", f"{wall['q3'] - wall['q1']:.3f}",
                     f"{cpu['median']:.3f}", f"{rss['median']:.0f}", f"{rss['max']:.0f}"])
    a, b = stats["ser-edge"], stats["librosa+sklearn"]
    ratios = {
        "wall_librosa_over_ser_edge": b["wall_s"]["median"] / a["wall_s"]["median"],
        "rss_librosa_over_ser_edge": b["peak_rss_mb"]["median"] / a["peak_rss_mb"]["median"],
        "cpu_librosa_over_ser_edge": b["cpu_s"]["median"] / a["cpu_s"]["median"],
        # ratio of paired runs (each A with the B right after it), robust to load drifts
        "wall_paired_ratio_median": statistics.median(
            rb["wall_s"] / ra["wall_s"] for ra, rb in zip(runs["ser-edge"], runs["librosa+sklearn"],
                                                           strict=True)),
    }
    if first:
        ratios["first_run_over_ser_edge"] = (
            stats[labelled[-1][0]]["wall_s"]["median"] / a["wall_s"]["median"])
    targets = {
        "cold_start_5x": ratios["wall_librosa_over_ser_edge"] >= 5,
        "peak_rss_under_100mb": a["peak_rss_mb"]["max"] < 100,
    }
    result.update(stats=stats, ratios=ratios, targets=targets)
    text = C.table(["cold start (fresh process, 3 s clip)", "runs", "wall median s",
                    "wall min-max s", "wall IQR s", "CPU median s", "peak RSS median MB",
                    "peak RSS max MB"], rows)
    text += (
        f"\n\nlibrosa / ser-edge: wall {ratios['wall_librosa_over_ser_edge']:.1f}x "
        f"(paired runs {ratios['wall_paired_ratio_median']:.1f}x), "
        f"CPU time {ratios['cpu_librosa_over_ser_edge']:.1f}x, "
        f"peak RSS {ratios['rss_librosa_over_ser_edge']:.1f}x"
    )
    if first:
        text += f"; librosa first run (numba compiles) {ratios['first_run_over_ser_edge']:.1f}x"
    text += (f"\ntargets: cold start >= 5x {'met' if targets['cold_start_5x'] else 'MISSED'}; "
             f"ser-edge peak RSS < 100 MB {'met' if targets['peak_rss_under_100mb'] else 'MISSED'}"
             f"\nmodel: {models['onnx_kind']}; pickle: {models['pickle_kind']}")
    C.finish(result, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
