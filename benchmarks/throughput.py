"""Throughput: clips per second over the RAVDESS corpus, ser-edge against librosa + scikit-learn.

Each clip is classified from its file: ser-edge ``Classifier.classify`` (decode, resample, features,
ONNX inference) against the seeds' way (``librosa.load`` + ``mfcc`` + ``chroma_stft`` +
``melspectrogram`` + pooling + the pickled pipeline's ``predict_proba``). Two modes:

- one process, one thread: the clips one after the other in this process;
- a pool of 2 worker processes (``multiprocessing``, spawn, one thread each), warmed up first.

To share the machine's drifts fairly, the corpus is cut into chunks and the sides alternate chunk
by chunk (ser-edge, librosa, then librosa, ser-edge on the next chunk ...); clips per second is
the number of clips over the summed time of each side.

In the one-process mode a third pass only decodes and resamples each clip to the feature rate
(``ser_edge.audio.load``: libsndfile and soxr_hq, what ``librosa.load`` runs too). Both sides
must do that work to get librosa's samples, so librosa's time over it is the highest ratio any
implementation with the same decoder and resampler can reach: the ceiling reported.

usage: ``python -m benchmarks.throughput [--limit N] [--chunks 4] [--workers 2]``
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import _common as C

_WORKER: dict[str, Any] = {}


def init_ser_edge(model: str) -> None:
    """Pool initializer: one Classifier per process."""
    from ser_edge import Classifier

    _WORKER["clf"] = Classifier(model)


def run_ser_edge(path: str) -> str:
    """Classify one file with ser-edge; the label."""
    return _WORKER["clf"].classify(path).label


def init_librosa(pickle_path: str) -> None:
    """Pool initializer: import librosa, load the pickled pipeline."""
    import librosa  # noqa: F401

    from benchmarks.librosa_way import load_config

    with open(pickle_path, "rb") as f:
        _WORKER["pipe"] = pickle.load(f)
    _WORKER["cfg"] = load_config(pickle_path)


def run_librosa(path: str) -> str:
    """Classify one file the seeds' way; the label."""
    import numpy as np

    from benchmarks.librosa_way import features

    pipe = _WORKER["pipe"]
    proba = pipe.predict_proba(features(path, _WORKER["cfg"])[np.newaxis, :])[0]
    return str(pipe.classes_[int(np.argmax(proba))])


def init_floor(model: str) -> None:
    """Decoding and resampling alone: the feature rate of the model."""
    from ser_edge import Classifier

    _WORKER["sr"] = Classifier(model).feature_config.sr


def run_floor(path: str) -> str:
    """Decode and resample one file as both sides must; no label."""
    from ser_edge import audio

    audio.load(path, sr=_WORKER["sr"])
    return ""


SIDES = {"ser-edge": (init_ser_edge, run_ser_edge), "librosa+sklearn": (init_librosa, run_librosa)}
FLOOR = "decode+resample"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, help="only the first N clips (quick runs)")
    ap.add_argument("--chunks", type=int, default=4, help="alternation chunks")
    ap.add_argument("--workers", type=int, default=2, help="processes in the pool mode")
    args = ap.parse_args(argv)
    files = [str(p) for p in C.ravdess_files(args.limit)]
    if not files:
        sys.exit("RAVDESS not found: set SER_EDGE_DATA (see export/paths.py)")
    result = C.start("throughput", args)
    size = -(-len(files) // args.chunks)
    chunks = [files[i : i + size] for i in range(0, len(files), size)]
    elapsed: dict[str, dict[str, list[float]]] = {m: {s: [] for s in SIDES}
                                                  for m in ("one process", "pool")}
    labels: dict[str, list[str]] = {}
    cpu: dict[str, list[float]] = {s: [] for s in (*SIDES, FLOOR)}
    floor_wall: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ser-edge-bench-") as tmp:
        models = C.make_models(Path(tmp))
        args_of = {"ser-edge": str(models["onnx"]), "librosa+sklearn": str(models["pickle"])}
        # one process, one thread
        for name, (init, run) in SIDES.items():
            init(args_of[name])
            run(files[0])  # warm-up (librosa: numba's cache is read on the first call)
        init_floor(args_of["ser-edge"])
        for i, chunk in enumerate(chunks):
            for name in (list(SIDES) if i % 2 == 0 else list(SIDES)[::-1]):
                run = SIDES[name][1]
                c0, t0 = time.process_time(), time.perf_counter()
                out = [run(p) for p in chunk]
                elapsed["one process"][name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                labels.setdefault(name, []).extend(out)
            c0, t0 = time.process_time(), time.perf_counter()
            for p in chunk:
                run_floor(p)
            floor_wall.append(time.perf_counter() - t0)
            cpu[FLOOR].append(time.process_time() - c0)
            print(f"one process: chunk {i + 1}/{len(chunks)} done", file=sys.stderr, flush=True)
        # a pool per side, both warm, alternating chunk by chunk
        ctx = mp.get_context("spawn")
        pools = {name: ctx.Pool(args.workers, initializer=init, initargs=(args_of[name],))
                 for name, (init, _) in SIDES.items()}
        try:
            for name, pool in pools.items():
                pool.map(SIDES[name][1], files[: 2 * args.workers], chunksize=1)
            for i, chunk in enumerate(chunks):
                for name in (list(SIDES) if i % 2 == 0 else list(SIDES)[::-1]):
                    t0 = time.perf_counter()
                    pools[name].map(SIDES[name][1], chunk, chunksize=4)
                    elapsed["pool"][name].append(time.perf_counter() - t0)
                print(f"pool: chunk {i + 1}/{len(chunks)} done", file=sys.stderr, flush=True)
        finally:
            for pool in pools.values():
                pool.close()
                pool.join()

    rate = {m: {s: len(files) / sum(v) for s, v in sides.items()} for m, sides in elapsed.items()}
    agree = sum(a == b for a, b in zip(labels["ser-edge"], labels["librosa+sklearn"], strict=True))
    rows = []
    for mode, sides in rate.items():
        a, b = sides["ser-edge"], sides["librosa+sklearn"]
        mode_name = mode if mode == "one process" else f"pool of {args.workers} processes"
        rows.append([mode_name, f"{a:.1f}", f"{b:.1f}", f"{a / b:.1f}x",
                     f"{1000 / a:.1f}", f"{1000 / b:.1f}"])
    ratios = {m: s["ser-edge"] / s["librosa+sklearn"] for m, s in rate.items()}
    cpu_rate = {s: len(files) / sum(v) for s, v in cpu.items()}
    ratios["one process, CPU time"] = cpu_rate["ser-edge"] / cpu_rate["librosa+sklearn"]
    a, b = cpu_rate["ser-edge"], cpu_rate["librosa+sklearn"]
    rows.append(["one process, per CPU second", f"{a:.1f}", f"{b:.1f}", f"{a / b:.1f}x",
                 f"{1000 / a:.1f}", f"{1000 / b:.1f}"])
    ceiling = cpu_rate[FLOOR] / b
    floor_ms = 1000 / cpu_rate[FLOOR]
    result.update(
        n_clips=len(files), corpus="RAVDESS (48 kHz FLAC)", model=models["onnx_kind"],
        feature_config=models["feature_config"],
        pickle=models["pickle_kind"], chunks=[len(c) for c in chunks], elapsed_s=elapsed,
        cpu_s_one_process=cpu, clips_per_cpu_s_one_process=cpu_rate,
        clips_per_s=rate, ratios=ratios,
        decode_resample={"cpu_ms_per_clip": floor_ms, "wall_s": floor_wall,
                         "ceiling_ratio_cpu": ceiling,
                         "share_of_ser_edge_cpu": floor_ms / (1000 / a)},
        targets={"throughput_5x": min(ratios[m] for m in rate) >= 5},
        label_agreement=agree / len(files),
    )
    text = C.table([f"throughput ({len(files)} RAVDESS clips)", "ser-edge clips/s",
                    "librosa+sklearn clips/s", "ratio", "ser-edge ms/clip", "librosa ms/clip"],
                   rows)
    text += (f"\n\ndecoding and resampling alone (libsndfile + soxr_hq, needed by both sides): "
             f"{floor_ms:.2f} CPU ms per clip, {100 * floor_ms / (1000 / a):.0f}% of ser-edge's "
             f"time; the ceiling for any implementation with them is librosa's time over it, "
             f"{ceiling:.1f}x")
    text += (f"\n\ntarget throughput >= 5x: "
             f"{'met' if result['targets']['throughput_5x'] else 'MISSED'}; model: "
             f"{models['onnx_kind']}")
    if models["onnx_kind"].startswith("stand-in"):  # the same weights on both sides
        text += f"; both sides gave the same label for {100 * agree / len(files):.1f}% of clips"
    C.finish(result, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
