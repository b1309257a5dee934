"""The bundled models side by side: parameters, file size, inference time and cold start.

For each model (every bundled one, plus any ONNX files named with ``--extra``): the number of
parameters (the float initialisers of its graph), its file size, the warm CPU time of its
features and of its inference on a 3 s clip at 48 kHz (one thread, the minimum of ``--reps``),
and the cold start of ``ser-edge classify --model NAME CLIP`` in a fresh process (the models
alternate run by run; wall-time median and peak resident memory). Together with the models'
evaluation reports this is the model-comparison table of docs/accuracy.md.

usage: ``python -m benchmarks.models [--reps 30] [--cold-runs 7] [--extra NAME=FILE ...]
[--results NAME]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import _common as C


def n_parameters(path: Path) -> int:
    """Parameters of an ONNX model: the elements of its floating-point initialisers, and the
    float lists of its nodes' attributes (where ``ai.onnx.ml`` operators such as
    ``SVMClassifier`` keep their support vectors and coefficients)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    total = 0
    for t in model.graph.initializer:
        a = numpy_helper.to_array(t)
        if np.issubdtype(a.dtype, np.floating):
            total += a.size
    for node in model.graph.node:
        total += sum(len(attr.floats) for attr in node.attribute
                     if attr.type == onnx.AttributeProto.FLOATS)
    return int(total)


def warm_times(model: str, clip: Path, reps: int) -> dict[str, float]:
    """CPU seconds (minimum of ``reps``) of one clip's model input, and of its inference."""
    import numpy as np

    from ser_edge import Classifier, audio

    clf = Classifier(model)
    y, _ = audio.load(clip, sr=clf.feature_config.sr)
    kind = clf.input_kind
    feats, infer = [], []
    for _ in range(reps):
        t = time.process_time()
        x = clf._vector(y, None, kind=kind)
        feats.append(time.process_time() - t)
        t = time.process_time()
        clf._run(np.asarray(x)[np.newaxis])
        infer.append(time.process_time() - t)
    return {"features_s": min(feats), "inference_s": min(infer)}


def main(argv: list[str] | None = None) -> int:
    from ser_edge.model import BUNDLED_MODELS, DEFAULT_MODEL

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=30, help="warm repetitions per model")
    ap.add_argument("--cold-runs", type=int, default=7, help="fresh processes per model")
    ap.add_argument("--extra", nargs="*", default=[], metavar="NAME=FILE",
                    help="more ONNX models to measure beside the bundled ones")
    ap.add_argument("--results", default="models", metavar="NAME",
                    help="write benchmarks/results/NAME.json (default: models), so that a run "
                         "with other models keeps an earlier one")
    args = ap.parse_args(argv)
    result = C.start("models", args)
    result["benchmark"] = args.results
    models: dict[str, str] = {name: name for name in BUNDLED_MODELS}
    for item in args.extra:
        name, _, path = item.partition("=")
        models[name] = path
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="ser-edge-bench-") as tmp:
        clip = C.make_clip(Path(tmp), 3, 48000)
        for name, model in models.items():
            from ser_edge.model import resolve_model

            path = resolve_model(model)
            rows[name] = {"path": str(path), "bytes": path.stat().st_size,
                          "parameters": n_parameters(path), **warm_times(model, clip, args.reps),
                          "default": name == DEFAULT_MODEL, "cold": []}
        env = C.child_env()
        for model in models.values():  # warm-up: page cache
            C.run_child([C.SER_EDGE_EXE, "classify", "--model", model, clip], env)
        for _ in range(args.cold_runs):
            for name, model in models.items():
                rows[name]["cold"].append(
                    C.run_child([C.SER_EDGE_EXE, "classify", "--model", model, clip], env))
    header = ["model", "parameters", "file", "features, 3 s (CPU ms)", "inference (CPU ms)",
              "cold start (wall, median)", "peak memory"]
    body = []
    for name, r in rows.items():
        walls = [run["wall_s"] for run in r["cold"]]
        rss = [run["peak_rss_mb"] for run in r["cold"]]
        r["cold_wall_median_s"] = statistics.median(walls)
        r["cold_peak_rss_median_mb"] = statistics.median(rss)
        body.append([f"{name}{' (default)' if r['default'] else ''}", f"{r['parameters']:,}",
                     f"{r['bytes'] / 1024:.0f} KiB", C.ms(r["features_s"]),
                     C.ms(r["inference_s"]), f"{r['cold_wall_median_s']:.2f} s",
                     f"{r['cold_peak_rss_median_mb']:.0f} MB"])
    result["models"] = rows
    C.finish(result, C.table(header, body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
