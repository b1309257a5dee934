"""The fused model (waveform in, one ONNX file) against the numpy runtime: size, speed, parity.

Questions, each a table:

1. How large is the fused file, per DFT method (the issue's target: 3 MB for the bundled model)?
2. How fast is each way of computing the spectrum in the graph (the constant DFT basis through
   MatMul, one Cooley-Tukey step as two MatMuls, the ONNX DFT operator; float32 and float64), and
   how close is its power spectrum to numpy's? The fastest exact one is ``fuse``'s default.
3. onnxruntime (Python, one thread) on the fused model against the numpy features + inference,
   side by side, the sides alternating (:func:`ser_edge.bench.measure`): 3 s and 60 s at the
   model's rate, and ``Classifier.predict`` of 3 s at 48 kHz (resampling included on both sides).
   Target: within 2x.
4. ``--parity``: every RAVDESS and EmoDB clip, its middle 0.5 s and a 60 s recording per
   speaker, through both classifiers (:mod:`export.fused_parity`): labels, probabilities, and
   the per-feature differences with the DFT in float32 and in float64.
5. ``--browser``: the web page in headless Chromium (``examples/web/test/drive.mjs``): time to
   a ready model after navigation and to the first result after choosing a file (reported, not
   asserted); ``--screenshot`` also rewrites ``examples/web/screenshot.png``.

``--config robust`` asks 1, 3 and 4 of a model of the robust configuration instead
(``export.fused_parity.ROBUST``: level normalisation, active frames, ``top_db`` 60, MFCC deltas,
per-block statistics), fitted on 72 RAVDESS clips for the purpose (``fit_model``); its results go
to ``results/fused-robust.json``.

usage: ``python -m benchmarks.fused [--reps 15] [--config bundled|robust] [--parity] [--browser]
[--screenshot]``
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from benchmarks import _common as C

DFT_VARIANTS = [("fft2", "float32"), ("fft2", "float64"), ("matmul", "float32"),
                ("matmul", "float64"), ("onnx-dft", "float32"), ("onnx-dft", "float64")]


def _session(model: Any) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _clip_16k(seconds: float) -> Any:
    import numpy as np

    from ser_edge import audio

    y48 = C._source_48k(seconds)
    return audio.resample(y48, orig_sr=48000, target_sr=16000).astype(np.float32), y48


def dft_table(source: Path, reps: int) -> tuple[list[dict[str, Any]], str]:
    """Size, speed and power-spectrum error of each DFT variant (3 s at 16 kHz)."""
    import numpy as np
    from onnx import TensorProto, helper

    from export import onnx_features as of
    from export.fuse import fuse
    from ser_edge import bench as B
    from ser_edge.dsp import power_spectrogram

    y, _ = _clip_16k(3.0)
    frames_in = np.pad(y, 512)
    n_frames = 1 + (len(frames_in) - 1024) // 256
    frames = frames_in[np.arange(n_frames)[:, None] * 256 + np.arange(1024)]
    ref = power_spectrogram(y, n_fft=1024, hop_length=256).T
    sides, rows = {}, []
    for method, dtype in DFT_VARIANTS:
        dt = np.dtype(dtype).type
        model = fuse(source, dft=method, dft_dtype=dt, check=False)
        s = _session(model)
        feed = {"waveform": y[None]}
        sides[f"{method} {dtype}"] = {"run": functools.partial(s.run, ["probabilities"], feed)}
        g = of.GraphBuilder()
        out = of.dft_power(g, "x", n_fft=1024, method=method, dtype=dt)
        g.nodes.append(helper.make_node("Identity", [out], ["P"]))
        stage = helper.make_model(helper.make_graph(
            g.nodes, "dft", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1024])],
            [helper.make_tensor_value_info("P", TensorProto.FLOAT, None)], g.initializers),
            opset_imports=[helper.make_opsetid("", of.OPSET)])
        (P,) = _session(stage).run(None, {"x": frames})
        err = float((np.abs(P - ref) / ref.max(axis=1, keepdims=True)).max())
        rows.append({"method": method, "dtype": dtype, "bytes": len(model.SerializeToString()),
                     "power_error": err})
    timed = B.measure(sides, reps, stages=["run"])["run"]
    for row in rows:
        t = timed[f"{row['method']} {row['dtype']}"]
        row.update(cpu_min_s=t["cpu_min_s"], cpu_median_s=t["cpu_median_s"],
                   min_s=t["min_s"], median_s=t["median_s"])
    table = C.table(
        ["DFT in the graph", "fused file", "3 s at 16 kHz (CPU, min)", "median",
         "power error (of frame max)"],
        [[f"{r['method']}, {r['dtype']}", f"{r['bytes'] / 1024:.0f} KiB",
          C.ms(r["cpu_min_s"]), C.ms(r["cpu_median_s"]), f"{r['power_error']:.1e}"]
         for r in rows])
    return rows, table


def side_by_side(source: Path, fused_path: Path, reps: int) -> tuple[dict[str, Any], str]:
    """numpy features + inference against the fused model, alternating."""
    from ser_edge import Classifier
    from ser_edge import bench as B
    from ser_edge.features import feature_vector

    numpy_clf, fused_clf = Classifier(source), Classifier(fused_path)
    cfg = numpy_clf.feature_config
    y3, y3_48 = _clip_16k(3.0)
    y60, _ = _clip_16k(60.0)
    fused_s = fused_clf._session

    def numpy_side(y):
        return lambda: numpy_clf._run(feature_vector(y, sr=cfg.sr, config=cfg)[None])

    def fused_side(y):
        return lambda: fused_s.run(["probabilities"], {"waveform": y[None]})

    stages = ["3 s at 16 kHz: features + inference", "60 s at 16 kHz: features + inference",
              "3 s at 48 kHz: Classifier.predict (resampling included)"]
    sides = {
        "numpy runtime": {stages[0]: numpy_side(y3), stages[1]: numpy_side(y60),
                          stages[2]: lambda: numpy_clf.predict(y3_48, 48000)},
        "fused ONNX": {stages[0]: fused_side(y3), stages[1]: fused_side(y60),
                       stages[2]: lambda: fused_clf.predict(y3_48, 48000)},
    }
    timed = B.measure(sides, reps, stages=stages)
    rows = []
    for stage in stages:
        a, b = timed[stage]["numpy runtime"], timed[stage]["fused ONNX"]
        rows.append([stage, C.ms(a["cpu_min_s"]), C.ms(b["cpu_min_s"]),
                     f"{timed[stage]['ratio_cpu_min']:.2f}x",
                     f"{timed[stage]['ratio_cpu_median']:.2f}x"])
    table = C.table(["one thread, CPU time (min of samples)", "numpy runtime", "fused ONNX",
                     "fused / numpy (min)", "(median)"], rows)
    return timed, table


def parity(source: Path, fused_path: Path) -> tuple[dict[str, Any], str]:
    """Every clip of both corpora through both classifiers."""
    from export.fused_parity import measure_parity, parity_items
    from ser_edge import Classifier

    numpy_clf, fused_clf = Classifier(source), Classifier(fused_path)
    summary = measure_parity(numpy_clf, fused_clf, parity_items()).summary(
        numpy_clf.feature_config)
    f32, f64 = summary["features"]["float32"], summary["features"]["float64"]
    rows = [[a["feature"], f"{a['max_abs']:.1e}", f"{a['max_rel']:.1e}", f"{b['max_abs']:.1e}",
             f"{b['max_rel']:.1e}", f"{a['scale']:.3g}"] for a, b in zip(f32, f64, strict=True)]
    kinds = ", ".join(f"{v} {k}" for k, v in summary["by_kind"].items())
    table = (
        f"{summary['n_signals']} signals ({kinds}): "
        f"same label on {summary['same_label']} ({100 * summary['same_label_share']:.2f}%), "
        f"largest probability difference {summary['max_probability_difference']:.1e} "
        f"(median {summary['median_probability_difference']:.1e}).\n\n"
        + C.table(["pooled feature", "float32 DFT: max abs", "rel", "float64 DFT: max abs",
                   "rel", "scale (max |value|)"], rows))
    return summary, table


def browser(fused_path: Path, screenshot: bool) -> tuple[dict[str, Any], str]:
    """The web page in headless Chromium: model ready, first result (not asserted anywhere)."""
    import shutil

    import soundfile as sf

    from ser_edge import audio

    root = C.ROOT / "examples"
    files = C.ravdess_files()[5::180]
    with tempfile.TemporaryDirectory() as tmp:
        wavs = []
        for f in files:
            y, _ = audio.load(f, sr=16000)
            wavs.append(str(Path(tmp) / f"{f.stem}.wav"))
            sf.write(wavs[-1], y, 16000, subtype="FLOAT")
        route = "/mlp-waveform.onnx"  # the page's default model, from a temporary file
        handler = type("H", (http.server.SimpleHTTPRequestHandler,), {
            "translate_path": lambda self, p: (str(fused_path) if p.startswith(route)
                                               else http.server.SimpleHTTPRequestHandler
                                               .translate_path(self, p)),
            "log_message": lambda self, *a: None})
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        shot = root / "web" / "screenshot.png" if screenshot else None
        opts = {"url": f"http://127.0.0.1:{server.server_address[1]}/web/",
                "files": [*wavs, *map(str, files)]}
        if shot:
            opts["screenshot"] = str(shot)
        try:
            proc = subprocess.run([shutil.which("node") or "node", "test/drive.mjs",
                                   json.dumps(opts)], cwd=root / "web", capture_output=True,
                                  text=True, timeout=600, check=True)
        finally:
            server.shutdown()
            server.server_close()
    out = json.loads(proc.stdout)
    runs = [r["timings"] for r in out["results"]]
    result = {"model_ready_ms": out["modelReadyMs"], "first_result_ms": out["firstResultMs"],
              "runs": runs, "n_files": len(runs)}
    later = sorted(r["totalMs"] for r in runs[1:])
    table = C.table(["web page, headless Chromium (onnxruntime-web, WASM, one thread)", "ms"], [
        ["model loaded and session ready, after navigation", f"{out['modelReadyMs']:.0f}"],
        ["first result, after choosing a file (decode, resample, features, model)",
         f"{out['firstResultMs']:.0f}"],
        [f"later results, median of {len(later)} (3 to 4 s clips)",
         f"{later[len(later) // 2]:.0f}"],
    ])
    return result, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15, help="samples per stage and side")
    parser.add_argument("--parity", action="store_true", help="every clip of both corpora")
    parser.add_argument("--browser", action="store_true", help="the web page in Chromium")
    parser.add_argument("--screenshot", action="store_true",
                        help="with --browser: rewrite examples/web/screenshot.png")
    parser.add_argument("--config", choices=("bundled", "robust"), default="bundled",
                        help="the bundled model, or one of the robust configuration (fitted)")
    args = parser.parse_args()

    from export.fuse import fuse_file
    from ser_edge.model import BUNDLED_MODEL

    robust = args.config == "robust"
    result = C.start("fused-robust" if robust else "fused", args)
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        if robust:
            from export.fused_parity import ROBUST, fit_model

            source = fit_model(ROBUST, Path(tmp) / "robust.onnx")
            result["feature_config"] = json.loads(ROBUST.to_json())
            name = "robust-configuration model (features in; 72 RAVDESS clips)"
        else:
            source, name = BUNDLED_MODEL, "bundled model (features in)"
        fused_path = Path(tmp) / f"{source.stem}-waveform.onnx"
        fuse_file(source, fused_path)
        result["sizes"] = {"source_bytes": source.stat().st_size,
                           "fused_bytes": fused_path.stat().st_size}
        tables.append(C.table(["file", "size"], [
            [name, f"{source.stat().st_size / 1024:.0f} KiB"],
            ["fused model (waveform in; fft2, float32)",
             f"{fused_path.stat().st_size / 1024:.0f} KiB"]]))
        if not robust:
            result["dft"], table = dft_table(BUNDLED_MODEL, args.reps)
            tables.append(table)
        result["side_by_side"], table = side_by_side(source, fused_path, args.reps)
        tables.append(table)
        if args.parity:
            result["parity"], table = parity(source, fused_path)
            tables.append(table)
        if args.browser and not robust:
            result["browser"], table = browser(fused_path, args.screenshot)
            tables.append(table)
    C.finish(result, "\n\n".join(tables))


if __name__ == "__main__":
    main()
