"""How cost grows with clip length, 1 s to 10 min: time and peak memory, one fresh process each.

For every length (mono 16-bit WAV at 48 kHz made from RAVDESS speech in a temporary folder), a
fresh process classifies the clip twice on each side, alternating: ser-edge (``Classifier(model)
.classify(clip)``) and the seeds' way (``benchmarks/librosa_way.py --timing``). Recorded: the
time of the first call (after imports and model loading; for librosa it includes its lazy imports
and numba cache loads) and of the second, warm call, both measured inside the process; the
process's wall time; and its peak resident memory (``wait4`` rusage of that child alone).

The growth of peak memory is fitted by least squares over the clips of 120 s and longer and is
reported in bytes per second of audio: a bounded runtime shows a slope near zero. ser-edge reads
clips up to ``ser_edge.model.STREAM_MIN_SECONDS`` (60 s) whole, and streams longer ones in two
passes that hold one block of audio and of frames; the bound stated is the largest peak over all
lengths.

usage: ``python -m benchmarks.scaling [--lengths 1 3 10 30 60 120 300 600] [--repeats 1]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import _common as C

RATE = 48000

SER_EDGE_WAY = """
import json, sys, time
t0 = time.perf_counter()
from ser_edge import Classifier
clf = Classifier(sys.argv[1])
t1 = time.perf_counter()
p = clf.classify(sys.argv[2])
t2 = time.perf_counter()
clf.classify(sys.argv[2])
t3 = time.perf_counter()
print(json.dumps({"label": p.label, "timing_s": {"import+model": t1 - t0, "classify": t2 - t1,
                                                 "classify_again": t3 - t2}}))
"""


def slope(x: list[float], y: list[float]) -> tuple[float, float]:
    """Least-squares line ``y = a * x + b``: ``(a, b)``."""
    a, b = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(a), float(b)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", type=float, nargs="+",
                    default=[1, 3, 10, 30, 60, 120, 300, 600], help="clip lengths in seconds")
    ap.add_argument("--repeats", type=int, default=1, help="fresh processes per length and side")
    ap.add_argument("--fit-from", type=float, default=120,
                    help="fit the memory slope over clips at least this long (s)")
    args = ap.parse_args(argv)
    result = C.start("scaling", args)
    runs: dict[str, dict[str, list[dict]]] = {"ser-edge": {}, "librosa+sklearn": {}}
    with tempfile.TemporaryDirectory(prefix="ser-edge-bench-") as tmp:
        tmp = Path(tmp)
        models = C.make_models(tmp)
        env = C.child_env()
        for seconds in args.lengths:
            clip = C.make_clip(tmp, seconds, RATE)
            cmds = {
                "ser-edge": [sys.executable, "-c", SER_EDGE_WAY, models["onnx"], clip],
                "librosa+sklearn": [sys.executable, C.LIBROSA_WAY, models["pickle"], clip,
                                    "--timing"],
            }
            for rep in range(args.repeats):
                order = list(cmds) if rep % 2 == 0 else list(cmds)[::-1]
                for side in order:
                    r = C.run_child(cmds[side], env)
                    timing = json.loads(r.pop("stdout"))["timing_s"]
                    r["first_classify_s"] = timing["classify"]
                    r["classify_s"] = timing["classify_again"]
                    runs[side].setdefault(f"{seconds:g}", []).append(r)
            clip.unlink()
            a = runs["ser-edge"][f"{seconds:g}"][-1]
            b = runs["librosa+sklearn"][f"{seconds:g}"][-1]
            print(f"{seconds:g} s: ser-edge {a['classify_s']:.2f} s {a['peak_rss_mb']:.0f} MB, "
                  f"librosa {b['classify_s']:.2f} s {b['peak_rss_mb']:.0f} MB",
                  file=sys.stderr, flush=True)

    med = {side: {k: {f: float(np.median([r[f] for r in v]))
                      for f in ("first_classify_s", "classify_s", "wall_s", "peak_rss_mb")}
                  for k, v in by_len.items()} for side, by_len in runs.items()}
    fits = {}
    for side, by_len in med.items():
        xs = [float(k) for k in by_len if float(k) >= args.fit_from]
        if len(xs) >= 2:
            mb_per_s, base = slope(xs, [by_len[f"{x:g}"]["peak_rss_mb"] for x in xs])
            s_per_s, _ = slope(xs, [by_len[f"{x:g}"]["classify_s"] for x in xs])
            fits[side] = {"peak_rss_bytes_per_audio_s": mb_per_s * 2**20,
                          "peak_rss_intercept_mb": base,
                          "classify_s_per_audio_s": s_per_s, "fit_lengths_s": xs}
    result.update(rate=RATE, clips_from=C.source_kind(), model=models["onnx_kind"],
                  feature_config=models["feature_config"],
                  pickle=models["pickle_kind"], runs=runs, medians=med, fits=fits)
    rows = []
    for k in med["ser-edge"]:
        a, b = med["ser-edge"][k], med["librosa+sklearn"][k]
        rows.append([f"{k} s", f"{a['first_classify_s']:.3f}", f"{b['first_classify_s']:.3f}",
                     f"{a['classify_s']:.3f}", f"{b['classify_s']:.3f}",
                     C.ratio(b["classify_s"], a["classify_s"]), f"{a['peak_rss_mb']:.0f}",
                     f"{b['peak_rss_mb']:.0f}", C.ratio(b["peak_rss_mb"], a["peak_rss_mb"])])
    text = C.table(["clip (48 kHz)", "ser-edge 1st call s", "librosa 1st call s",
                    "ser-edge warm s", "librosa warm s", "warm ratio",
                    "ser-edge peak RSS MB", "librosa peak RSS MB", "ratio"], rows)
    for side, f in fits.items():
        text += (f"\n{side}: peak memory grows by {f['peak_rss_bytes_per_audio_s'] / 1024:.0f} KiB "
                 f"per second of 48 kHz audio (fit over {min(f['fit_lengths_s']):g}-"
                 f"{max(f['fit_lengths_s']):g} s; {f['peak_rss_intercept_mb']:.0f} MB at 0 s), "
                 f"warm time by {1000 * f['classify_s_per_audio_s']:.1f} ms per second of audio")
    if "ser-edge" in fits:
        from ser_edge.model import STREAM_MIN_SECONDS

        kib = fits["ser-edge"]["peak_rss_bytes_per_audio_s"] / 1024
        peak = max(v["peak_rss_mb"] for v in med["ser-edge"].values())
        longest = max(float(k) for k in med["ser-edge"])
        bounded = abs(kib) <= 16
        result["bound"] = {"bounded": bounded, "peak_rss_mb_max": peak, "longest_s": longest,
                           "stream_min_s": STREAM_MIN_SECONDS}
        text += (f"\nser-edge's memory is {'bounded' if bounded else 'NOT bounded'}: "
                 f"{kib:.1f} KiB per second of audio past {args.fit_from:g} s; the largest peak "
                 f"over all lengths (up to {longest:g} s) is {peak:.0f} MB. Clips over "
                 f"{STREAM_MIN_SECONDS:g} s are streamed in two passes (one block of audio and "
                 "of frames in memory); shorter ones are read whole.")
    C.finish(result, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
