"""Latency of a 48 kHz stream: what the resampler holds back, and what other resamplers would do.

``StreamingClassifier`` resamples a stream to the model's rate once, as it arrives, with soxr at
``soxr_hq`` (``ser_edge.audio.load``'s resampler), so that a recording pushed in pieces gives the
samples of ``load(path, sr=16000)`` exactly (``tests/test_stream.py``). A window can be
classified only once the resampler has given out its last sample. This measures, on real speech
(RAVDESS clips end to end) at 48 kHz:

1. **The resampler's wait**, soxr alone: for window ends every second, the stream time from a
   window's end to the end of the chunk whose push gives out its last model-rate sample, for
   chunks of 1, 10, 20 and 50 ms (a microphone's buffers; ``ser-edge listen`` reads 50 ms from a
   microphone and up to 20 ms from a pipe), for each quality python-soxr offers (``QQ`` to
   ``VHQ``, linear phase: the only setting of its public API) and, through python-soxr's private
   extension (``soxr.soxr_ext.CSoxr``, which passes the recipe to libsoxr unchecked), libsoxr's
   minimum-phase filters, whose delay is shorter.
2. **The latency end to end**: ``StreamingClassifier`` (3 s windows every second, voice activity
   detection on each) fed 10 ms int16 chunks, its resampler swapped for each option; latency is
   the wait plus the wall time of the push that returns the window. And what each option costs:
   how far its samples are from ``load``'s (``soxr_hq``), and how many windows with speech get
   another label than with the default.

A 16 kHz stream (no resampling) is the reference. One thread.

usage: ``python -m benchmarks.stream_latency [--seconds 120]``; writes
``benchmarks/results/stream_latency.json``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchmarks import _common as C

IN, OUT = 48000, 16000
#: libsoxr's recipe flags (soxr.h): the phase response of the filter.
MINIMUM_PHASE = 0x30
#: (name, quality for soxr.ResampleStream, or the libsoxr recipe for the private extension)
OPTIONS = [
    ("soxr HQ (the default; load's samples)", "soxr_hq", None),
    ("soxr VHQ", "soxr_vhq", None),
    ("soxr MQ", "soxr_mq", None),
    ("soxr LQ", "soxr_lq", None),
    ("soxr QQ (no anti-aliasing filter)", "soxr_qq", None),
    ("soxr HQ, minimum phase (private API)", None, 4 | MINIMUM_PHASE),
    ("soxr LQ, minimum phase (private API)", None, 1 | MINIMUM_PHASE),
]


class _Recipe:
    """A libsoxr stream with any recipe, through python-soxr's private extension."""

    def __init__(self, recipe: int):
        from soxr import soxr_ext

        self._s = soxr_ext.CSoxr(IN, OUT, 1, soxr_ext.SOXR_FLOAT32_I, recipe)

    def resample_chunk(self, x: Any, last: bool = False) -> Any:
        return self._s.process_float32(x.reshape(-1, 1), last)[:, 0]


def resampler(quality: str | None, recipe: int | None) -> Any:
    import soxr

    if recipe is not None:
        return _Recipe(recipe)
    return soxr.ResampleStream(IN, OUT, 1, dtype="float32", quality=quality)


def waits(x: Any, quality: str | None, recipe: int | None, chunk: int) -> list[float]:
    """Milliseconds from each window end (every second of output) to its release."""
    rs = resampler(quality, recipe)
    n_in = n_out = 0
    end, out = OUT, []
    for i in range(0, len(x), chunk):
        piece = x[i : i + chunk]
        n_in += len(piece)
        n_out += len(rs.resample_chunk(piece))
        while n_out >= end:
            out.append(1000 * (n_in / IN - end / OUT))
            end += OUT
    return out


def stream_run(clf: Any, pcm: Any, quality: str | None, recipe: int | None) -> dict[str, Any]:
    """Push ``pcm`` (int16, 48 kHz) in 10 ms chunks; per window: result, wait, push time."""
    from ser_edge import StreamingClassifier

    sr = IN if (quality, recipe) != (None, None) else OUT
    stream = StreamingClassifier(clf, sr=sr)
    if sr == IN:
        stream._resampler = resampler(quality, recipe)  # the option measured
    step = sr // 100
    rows = []
    for i in range(0, len(pcm), step):
        chunk = pcm[i : i + step]
        t0, c0 = time.perf_counter(), time.process_time()
        results = stream.push(chunk)
        took, took_cpu = time.perf_counter() - t0, time.process_time() - c0
        now = (i + len(chunk)) / sr
        for r in results:
            wait = max(0.0, now - r.end_s)
            rows.append({"end_s": r.end_s, "speech": r.speech, "label": r.label,
                         "p": r.probabilities, "wait_ms": 1000 * wait, "push_ms": 1000 * took,
                         "push_cpu_ms": 1000 * took_cpu, "latency_ms": 1000 * (wait + took)})
    return {"windows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0, help="length of the stream")
    args = ap.parse_args()
    import numpy as np

    from ser_edge import Classifier, audio

    result = C.start("stream_latency", args)
    result["source"] = C.source_kind()
    x = C._source_48k(args.seconds).astype(np.float32)
    pcm48 = (np.clip(x, -1, 1) * 32767).astype(np.int16)
    x48 = pcm48.astype(np.float32) / 32768  # what the stream holds
    hq = audio.resample(x48, orig_sr=IN, target_sr=OUT)  # load's samples

    # 1. soxr alone ---------------------------------------------------------------------------
    chunks_ms = (1, 10, 20, 50)
    wait_stats = {}
    for name, quality, recipe in OPTIONS:
        wait_stats[name] = {}
        for ms in chunks_ms:
            w = waits(x48[: 30 * IN], quality, recipe, IN * ms // 1000)
            wait_stats[name][f"{ms} ms"] = C.summary(w) | {"p95": float(np.percentile(w, 95))}
        # How far its samples are from load's.
        rs = resampler(quality, recipe)
        y = np.concatenate([rs.resample_chunk(x48[i : i + 480]) for i in range(0, len(x48), 480)]
                           + [rs.resample_chunk(np.zeros(0, np.float32), last=True)])
        n = min(len(y), len(hq))
        err = y[:n] - hq[:n]
        wait_stats[name]["max_abs_diff"] = float(np.max(np.abs(err)))
        wait_stats[name]["snr_db_vs_hq"] = (float(10 * np.log10(np.sum(hq[:n] ** 2)
                                                               / np.sum(err ** 2)))
                                            if np.any(err) else None)
        print(f"soxr alone: {name}", flush=True)
    result["resampler_wait_ms"] = wait_stats

    # 2. end to end ---------------------------------------------------------------------------
    clf = Classifier()
    runs = {"16 kHz stream (no resampling)": stream_run(
        clf, (np.clip(hq, -1, 1) * 32767).astype(np.int16), None, None)}
    for name, quality, recipe in OPTIONS:
        runs[name] = stream_run(clf, pcm48, quality, recipe)
        print(f"stream: {name}", flush=True)
    default = runs[OPTIONS[0][0]]["windows"]
    table2, summary2 = [], {}
    for name, run in runs.items():
        w = run["windows"]
        lat = np.array([r["latency_ms"] for r in w])
        push = np.array([r["push_cpu_ms"] for r in w])
        both = [(a, b) for a, b in zip(w, default, strict=False) if a["speech"] and b["speech"]]
        same = np.mean([a["label"] == b["label"] for a, b in both]) if both else float("nan")
        dp = max((abs(a["p"][k] - b["p"][k]) for a, b in both for k in a["p"]), default=0.0)
        flags = np.mean([a["speech"] == b["speech"] for a, b in zip(w, default, strict=False)])
        summary2[name] = {"windows": len(w), "latency_ms": C.summary(lat.tolist())
                          | {"p95": float(np.percentile(lat, 95))},
                          "push_cpu_ms": C.summary(push.tolist()),
                          "same_label_as_default": float(same), "max_prob_diff": float(dp),
                          "same_speech_flag_as_default": float(flags)}
        s = summary2[name]
        table2.append([name, len(w), f"{s['latency_ms']['median']:.1f} / "
                       f"{s['latency_ms']['p95']:.1f} / {s['latency_ms']['max']:.1f}",
                       f"{s['push_cpu_ms']['median']:.1f}",
                       f"{100 * same:.1f}%", f"{dp:.3f}"])
    result["end_to_end"] = summary2

    rows1 = []
    for name, st in wait_stats.items():
        cells = [f"{st[f'{ms} ms']['median']:.0f} / {st[f'{ms} ms']['max']:.0f}"
                 for ms in chunks_ms]
        snr = st["snr_db_vs_hq"]
        rows1.append([name, *cells, "identical" if snr is None else f"{snr:.0f} dB"])
    text = (f"### soxr alone, 48 kHz to 16 kHz: wait from a window's end to its last sample, ms "
            f"(median / max over {len(waits(x48[: 30 * IN], 'soxr_hq', None, 480))} window "
            "ends)\n\n")
    text += C.table(["resampler", *[f"{ms} ms chunks" for ms in chunks_ms],
                     "samples vs load's (SNR)"], rows1)
    text += (f"\n\n### StreamingClassifier, {args.seconds:g} s of speech in 10 ms int16 chunks, "
             "3 s windows every second\n\n")
    text += C.table(["stream", "windows", "latency ms (median / p95 / max)",
                     "push CPU ms (median)", "same label as the default (speech windows)",
                     "largest probability change"], table2)
    C.finish(result, text)


if __name__ == "__main__":
    main()
