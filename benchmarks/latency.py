"""Warm latency per clip and per stage: ser-edge against librosa (+ scikit-learn).

For clips of 1, 3, 10 and 60 s at 16, 22.05 and 48 kHz (mono 16-bit WAV made in a temporary
folder from RAVDESS speech, never kept), each stage is timed on both sides with the same input,
in one warm process, alternating sides (ser-edge first on even repetitions, librosa first on odd
ones); the minimum and median of the repetitions are reported, in CPU time (``process_time``,
both sides single-threaded: robust to the load of a shared machine) and in wall time. Both sides
compute the bundled model's features (its ``FeatureConfig``: sample rate, n_fft, hop, mels,
MFCC, chroma, tuning). Stages:

- decode: file to mono float32 at the native rate (``load(sr=None)`` on both sides)
- resample: native rate to the feature rate, soxr_hq (nothing to do when they are equal)
- stft: the power spectrogram ``|STFT|**2``
- mel: mel filter bank on that spectrogram
- mfcc: dB conversion and DCT of the mel spectrogram
- tuning: tuning estimation on the power spectrogram (``estimate_tuning``; on the features path
  only when the configuration's ``tuning`` is None)
- chroma: chroma from the power spectrogram at that tuning
- pooling: mean and standard deviation of each row into the model's input vector
- inference: ONNX Runtime session (ser-edge) / ``predict_proba`` of the pickled pipeline

and end to end: ``extract`` = the feature vector of the samples at the feature rate (ser-edge
``feature_vector``; librosa ``mfcc`` + ``chroma_stft`` + ``melspectrogram`` + ``power_to_db`` +
pooling, the seeds' three calls), ``features`` = load at the feature rate + ``extract``,
``classify`` = features + inference (``Classifier.classify``). The target, "warm feature
extraction at least 5x faster than librosa's three calls", is ``extract`` on the 3 s 48 kHz clip;
``features`` adds decoding and resampling, the same libraries on both sides.

Both sides run with one BLAS/OpenMP thread (see ``benchmarks/__init__.py``). The stages and the
timing core are those of ``ser_edge/bench.py`` (``ser_edge_stages``, ``librosa_stages``,
``measure``), which ``ser-edge bench`` runs on a user's own machine.

usage: ``python -m benchmarks.latency [--reps 5] [--lengths 1 3 10 60] [--rates 16000 22050 48000]``
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import _common as C
from ser_edge import bench as B
from ser_edge.bench import STAGES, TOTALS


def measure_clip(
    path: Path, clf: Any, pipe: Any, config: Any, reps: int
) -> dict[str, dict[str, Any]]:
    """Per stage and side: every sample, min and median, seconds per call (``bench.measure``)."""
    sides = {"ser-edge": B.ser_edge_stages(path, clf, config),
             "librosa": B.librosa_stages(path, config, pipe)}
    return B.measure(sides, reps, (*STAGES, *TOTALS))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="repetitions per stage and side")
    ap.add_argument("--lengths", type=float, nargs="+", default=[1, 3, 10, 60],
                    help="clip lengths in seconds")
    ap.add_argument("--rates", type=int, nargs="+", default=[16000, 22050, 48000],
                    help="native sample rates of the clips, in Hz")
    args = ap.parse_args(argv)
    result = C.start("latency", args)
    from ser_edge import Classifier

    clips: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ser-edge-bench-") as tmp:
        tmp = Path(tmp)
        models = C.make_models(tmp)
        clf = Classifier(models["onnx"])
        with open(models["pickle"], "rb") as f:
            pipe = pickle.load(f)
        for seconds in args.lengths:
            for rate in args.rates:
                path = C.make_clip(tmp, seconds, rate)
                stages = measure_clip(path, clf, pipe, models["config"], args.reps)
                clips.append({"seconds": seconds, "sr": rate, "stages": stages,
                              "loadavg": C.loadavg()})
                f = stages["extract"]
                print(f"{seconds:g} s {rate} Hz: extract CPU ser-edge "
                      f"{C.ms(f['ser-edge']['cpu_min_s'])} ms, librosa "
                      f"{C.ms(f['librosa']['cpu_min_s'])} ms ({f['ratio_cpu_min']:.1f}x)",
                      file=sys.stderr, flush=True)
    config = models["config"]
    result.update(model=models["onnx_kind"], pickle=models["pickle_kind"],
                  clips_from=C.source_kind(), feature_config=models["feature_config"],
                  clips=clips)

    def find(seconds: float, rate: int) -> dict[str, Any] | None:
        return next((c for c in clips if c["seconds"] == seconds and c["sr"] == rate), None)

    text = []
    ref = find(3, 48000) or clips[0]
    label = f"{ref['seconds']:g} s at {ref['sr'] / 1000:g} kHz"
    rows = []
    for stage in (*STAGES, *TOTALS):
        s = ref["stages"][stage]
        rows.append([stage, C.ms(s["ser-edge"]["cpu_min_s"]), C.ms(s["librosa"]["cpu_min_s"]),
                     f"{s['ratio_cpu_min']:.1f}x", C.ms(s["ser-edge"]["min_s"]),
                     C.ms(s["librosa"]["min_s"]), f"{s['ratio_min']:.1f}x"])
    if config.tuning is not None:
        text.append(f"(the configuration fixes tuning={config.tuning:g}: the tuning stage is "
                    "timed for reference but is not on the features path)")
    text.append(C.table([f"stage ({label})", "ser-edge CPU ms", "librosa CPU ms", "ratio (CPU)",
                         "ser-edge wall ms", "librosa wall ms", "ratio (wall)"], rows))
    rows = []
    for c in clips:
        e, f, k = (c["stages"][s] for s in TOTALS)
        rows.append([f"{c['seconds']:g} s, {c['sr'] / 1000:g} kHz",
                     C.ms(e["ser-edge"]["cpu_min_s"]), C.ms(e["librosa"]["cpu_min_s"]),
                     f"{e['ratio_cpu_min']:.1f}x",
                     C.ms(f["ser-edge"]["cpu_min_s"]), C.ms(f["librosa"]["cpu_min_s"]),
                     f"{f['ratio_cpu_min']:.1f}x", f"{f['ratio_min']:.1f}x",
                     C.ms(k["ser-edge"]["cpu_min_s"]), C.ms(k["librosa"]["cpu_min_s"]),
                     f"{k['ratio_cpu_min']:.1f}x", f"{k['ratio_min']:.1f}x"])
    text.append(C.table(["clip", "extract ser-edge CPU ms", "extract librosa CPU ms",
                         "ratio (CPU)", "load + extract ser-edge CPU ms",
                         "load + extract librosa CPU ms", "ratio (CPU)", "ratio (wall)",
                         "classify ser-edge CPU ms",
                         "classify librosa CPU ms", "ratio (CPU)", "ratio (wall)"], rows))
    heads = [f"{c['seconds']:g}s/{c['sr'] / 1000:g}k" for c in clips]
    rows = [[stage, *(f"{c['stages'][stage]['ratio_cpu_min']:.1f}" for c in clips)]
            for stage in (*STAGES, *TOTALS)]
    text.append("librosa / ser-edge CPU-time ratio per stage (min of repetitions):\n\n"
                + C.table(["stage", *heads], rows))
    e, f = ref["stages"]["extract"], ref["stages"]["features"]
    target = e["ratio_cpu_min"]
    keys = ("cpu_min", "cpu_median", "min", "median")
    result["targets"] = {"warm_features_5x": target >= 5,
                         "warm_extract_ratio_3s_48k": {k: e[f"ratio_{k}"] for k in keys},
                         "warm_load_and_extract_ratio_3s_48k": {k: f[f"ratio_{k}"] for k in keys}}
    text.append(f"target, warm feature extraction (the three calls) on {label} >= 5x: "
                f"{target:.1f}x CPU time ({e['ratio_cpu_median']:.1f}x median), "
                f"{e['ratio_min']:.1f}x wall -> {'met' if target >= 5 else 'MISSED'}; "
                f"with decoding and resampling (load + the three calls): "
                f"{f['ratio_cpu_min']:.1f}x CPU time\n"
                f"model: {models['onnx_kind']}; ms per clip, min over {args.reps} repetitions, "
                "sides alternating; CPU time (process_time) is what the ratios rest on: the shared "
                "machine's load stretches wall times")
    C.finish(result, "\n\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
