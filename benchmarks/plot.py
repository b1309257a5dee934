"""Plot latency against clip length for ser-edge and librosa: ``results/latency_vs_length.png``.

Reads ``benchmarks/results/latency.json`` (warm end-to-end ``classify`` latency in CPU time,
min of the repetitions, per native sample rate) and, when present,
``benchmarks/results/scaling.json`` (fresh-process classify time and peak memory, 1 s to 10 min
at 48 kHz). Run the benchmarks first.

usage: ``python -m benchmarks.plot``
"""

from __future__ import annotations

import json
import sys

from benchmarks import _common as C

COLORS = {16000: "tab:blue", 22050: "tab:green", 48000: "tab:red"}
SIDES = {"ser-edge": "-", "librosa": "--", "librosa+sklearn": "--"}


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat_path, scal_path = C.RESULTS / "latency.json", C.RESULTS / "scaling.json"
    if not lat_path.exists():
        sys.exit(f"{lat_path} not found: run python -m benchmarks.latency first")
    lat = json.loads(lat_path.read_text())
    scal = json.loads(scal_path.read_text()) if scal_path.exists() else None
    ncols = 3 if scal else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 4.2), squeeze=False)
    ax = axes[0, 0]
    for rate in sorted({c["sr"] for c in lat["clips"]}):
        clips = sorted((c for c in lat["clips"] if c["sr"] == rate), key=lambda c: c["seconds"])
        xs = [c["seconds"] for c in clips]
        for side in ("ser-edge", "librosa"):
            ys = [1000 * c["stages"]["classify"][side]["cpu_min_s"] for c in clips]
            ax.plot(xs, ys, SIDES[side], marker="o", ms=3, color=COLORS.get(rate),
                    label=f"{side}, {rate / 1000:g} kHz")
    ax.set(xscale="log", yscale="log", xlabel="clip length (s)",
           ylabel="CPU ms per clip (min of repetitions)", title="Warm latency: file to emotion")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    if scal:
        lengths = sorted(scal["medians"]["ser-edge"], key=float)
        xs = [float(k) for k in lengths]
        for side in ("ser-edge", "librosa+sklearn"):
            med = scal["medians"][side]
            axes[0, 1].plot(xs, [med[k]["classify_s"] for k in lengths], SIDES[side],
                            marker="o", ms=3, color="k", label=side)
            axes[0, 2].plot(xs, [med[k]["peak_rss_mb"] for k in lengths], SIDES[side],
                            marker="o", ms=3, color="k", label=side)
        axes[0, 1].set(xscale="log", yscale="log", xlabel="clip length (s), 48 kHz",
                       ylabel="s to classify (warm call, wall)",
                       title="Time, 1 s to 10 min (fresh process)")
        axes[0, 2].set(xlabel="clip length (s), 48 kHz", ylabel="peak resident memory (MB)",
                       title="Peak memory, fresh process", ylim=(0, None))
        for a in axes[0, 1:]:
            a.grid(True, which="both", alpha=0.3)
            a.legend(fontsize=7)
    fig.suptitle(f"ser-edge vs librosa + scikit-learn ({lat['machine']['cpu_count']} cores, "
                 f"1 thread, {lat['date'][:10]})", fontsize=9)
    fig.tight_layout()
    out = C.RESULTS / "latency_vs_length.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out.relative_to(C.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
