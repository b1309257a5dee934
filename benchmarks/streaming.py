"""Live streaming: StreamingClassifier over an hour of speech, in 10 ms chunks.

The measuring code of ``ser-edge bench``'s streaming section (``ser_edge.bench.streaming``), run
longer: real RAVDESS speech end to end (tiled to ``--seconds``, an hour by default) pushed as
int16 in 10 ms chunks, at 16 kHz (the model's rate: ``arecord -r 16000``) and at 48 kHz (a sound
card's usual rate, resampled in the stream), 3 s windows every second, voice activity detection
on each. Reports processing time over audio time (CPU, one thread), the latency from a window's
end to its result (the resampler's delay plus the push's time) and the resident memory every
minute of stream, whose spread over the hour is the memory bound stated in docs/benchmarks.md.

usage: ``python -m benchmarks.streaming [--seconds 3600]``; writes
``benchmarks/results/streaming.json``.
"""

from __future__ import annotations

import argparse

from benchmarks import _common as C


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3600.0, help="length of each stream")
    args = ap.parse_args()
    from ser_edge import Classifier, audio, bench

    result = C.start("streaming", args)
    result["source"] = C.source_kind()
    clf = Classifier()
    y48 = C._source_48k(60.0)
    runs = []
    for sr in (16000, 48000):
        y = audio.resample(y48, orig_sr=48000, target_sr=sr)
        print(f"streaming {args.seconds:g} s at {sr} Hz ...", flush=True)
        runs.append(bench.streaming(clf, y, sr, seconds=args.seconds, rss_every_s=60.0))
    result["runs"] = runs
    rows = []
    for r in runs:
        rss = [mb for _, mb in r["rss_mb"]]
        rows.append([
            f"{r['sr'] / 1000:g} kHz", f"{r['seconds'] / 60:.0f} min", r["windows"],
            r["speech_windows"], f"{r['cpu_per_audio_s']:.4f}",
            f"{1 / r['cpu_per_audio_s']:.0f}x",
            f"{r['compute_ms']['median']:.1f} / {r['compute_ms']['max']:.1f}",
            f"{r['compute_cpu_ms']['median']:.1f} / {r['compute_cpu_ms']['max']:.1f}",
            f"{r['delay_ms']['median']:.1f} / {r['delay_ms']['max']:.1f}",
            f"{r['latency_ms']['median']:.1f} / {r['latency_ms']['p95']:.1f} / "
            f"{r['latency_ms']['max']:.1f}",
            f"{min(rss):.1f} - {max(rss):.1f}" if rss else "n/a"])
    table = C.table(
        ["stream", "length", "windows", "with speech", "CPU s per audio s", "real time",
         "push ms, wall (median / max)", "push ms, CPU (median / max)",
         "resampler delay ms (median / max)",
         "latency ms (median / p95 / max)", "resident memory MiB (min - max)"], rows)
    C.finish(result, table)


if __name__ == "__main__":
    main()
