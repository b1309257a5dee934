"""The teacher's encoder as a bundled model: what Whisper tiny.en would cost on the device.

Issue 21's fallback question: if no small student reaches the teacher's accuracy, could the
teacher itself ship as an optional model? This measures, beside the default model in the same
run:

- **size**: the CTranslate2 file as shipped (float16, encoder and decoder), and the encoder's
  weights in int8 (its weight matrices and kernels at one byte per value, its biases, norms
  and positional table at four), counted from the file's own header; the decoder is not
  needed to classify;
- **the package it needs**: the installed size of ``ctranslate2`` against ``onnxruntime``'s
  (``benchmarks.footprint``'s count);
- **warm latency** on a 3 s clip at 16 kHz, one thread, the minimum of ``--reps``: the log-mel
  front end (``export.teacher.log_mel_spectrogram``, numpy) and the encoder (int8);
- **cold start**: a fresh process that imports numpy, soundfile and ctranslate2, loads the
  encoder (int8, one thread), reads the clip, computes the front end, encodes and pools it and
  applies a linear head of the probe's shape (768 -> 8) -- against ``ser-edge classify --json``
  on the same clip with the default model, alternating run by run (wall-time median, peak
  resident memory of the child alone).

Needs the ``teacher`` extra. usage: ``python -m benchmarks.teacher_encoder [--reps 20]
[--cold-runs 7]``
"""

from __future__ import annotations

import argparse
import math
import struct
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import _common as C

#: The child process of the cold start: the encoder deployed as a classifier would be.
_CHILD = """
import sys
import numpy as np, soundfile as sf, ctranslate2
from export.teacher import encoder_input, log_mel_spectrogram
model = ctranslate2.models.Whisper(sys.argv[1], device="cpu", compute_type="int8",
                                   inter_threads=1, intra_threads=1)
y, sr = sf.read(sys.argv[2], dtype="float32")
E = np.array(model.encode(ctranslate2.StorageView.from_array(
    encoder_input(log_mel_spectrogram(y=y))), to_cpu=True))[0]
pooled = np.concatenate([E.mean(0), E.std(0)])
W = np.random.default_rng(0).standard_normal((pooled.size, 8)).astype(np.float32)
z = pooled @ W
p = np.exp(z - z.max()); p /= p.sum()
print(int(p.argmax()))
"""


#: CTranslate2's floating-point ``DataType`` codes (float32, float16, bfloat16); the others are
#: settings stored as variables (a head count, a flag).
_FLOAT_TYPES = (0, 4, 5)


def encoder_variables(path: Path) -> dict[str, int]:
    """The encoder's variables in a CTranslate2 ``model.bin``, counted from the file's header.

    The file (format version 6) holds, after its version, spec name and revision, each
    variable as: name, rank, dims, dtype, byte count, data. Only ``encoder/`` variables count:
    the decoder is not needed to classify.

    Parameters
    ----------
    path : Path
        A CTranslate2 model's ``model.bin``.

    Returns
    -------
    dict
        ``weights`` (values of the encoder's weight matrices and convolution kernels, which int8
        quantises), ``position`` (its positional table), ``vectors`` (biases and norms: the
        position and vectors stay float32), ``total``.

    Raises
    ------
    ValueError
        If the file is not in format version 6.
    """
    counts = {"weights": 0, "position": 0, "vectors": 0}
    with open(path, "rb") as f:
        def read(fmt: str) -> int:
            return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))[0]

        def string() -> str:
            return f.read(read("H"))[:-1].decode()

        if (version := read("I")) != 6:
            raise ValueError(f"{path}: CTranslate2 model format {version}, not 6")
        string(), read("I")  # spec name, revision
        for _ in range(read("I")):
            name, rank = string(), read("B")
            dims = [read("I") for _ in range(rank)]
            dtype = read("B")
            f.seek(read("I"), 1)
            if name.startswith("encoder/") and dtype in _FLOAT_TYPES:
                kind = ("position" if "position" in name else
                        "weights" if rank >= 2 else "vectors")
                counts[kind] += math.prod(dims)
    return {**counts, "total": sum(counts.values())}


def packages_mb(*names: str) -> dict[str, float]:
    """Installed size of packages in this venv, in MiB, as ``benchmarks.footprint`` counts a
    distribution (its package, vendored libraries and metadata, allocated on disk)."""
    import sysconfig

    from benchmarks.footprint import group, top_level_sizes

    sizes = group(top_level_sizes(Path(sysconfig.get_paths()["purelib"])))
    return {name: sizes[name] / 2**20 for name in names}


def main(argv: list[str] | None = None) -> int:
    import soundfile as sf

    from export.teacher import WhisperTeacher, encoder_input, log_mel_spectrogram, model_dir
    from ser_edge.model import DEFAULT_MODEL

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=20, help="warm repetitions")
    ap.add_argument("--cold-runs", type=int, default=7, help="fresh processes per side")
    args = ap.parse_args(argv)
    result = C.start("teacher_encoder", args)
    path = model_dir()
    params = encoder_variables(path / "model.bin")
    int8_mb = (params["weights"] + 4 * (params["position"] + params["vectors"])) / 2**20
    result["teacher"] = {"dir": str(path), "file_mb": (path / "model.bin").stat().st_size / 2**20,
                       "encoder_parameters": params, "encoder_int8_mb": int8_mb,
                       "default_model": DEFAULT_MODEL}
    result["packages_mb"] = packages_mb("ctranslate2", "onnxruntime")

    with tempfile.TemporaryDirectory(prefix="ser-edge-bench-") as tmp:
        clip = C.make_clip(Path(tmp), 3, 16000)
        y, _ = sf.read(clip, dtype="float32")
        teacher = WhisperTeacher(compute_type="int8", threads=1)
        front, enc = [], []
        for _ in range(args.reps):
            t = time.process_time()
            M = log_mel_spectrogram(y=y)
            front.append(time.process_time() - t)
            t = time.process_time()
            teacher.encode(M)
            enc.append(time.process_time() - t)
        result["warm"] = {"front_end_s": min(front), "encoder_s": min(enc),
                          "frames": int(encoder_input(M).shape[-1])}

        script = Path(tmp) / "encoder_child.py"
        script.write_text(_CHILD)
        sides = {"ser-edge classify": [C.SER_EDGE_EXE, "classify", "--json", clip],
                 "whisper-tiny.en encoder": [sys.executable, script, path, clip]}
        env = C.child_env(PYTHONPATH=str(C.ROOT))
        for cmd in sides.values():  # warm-up: page cache, pyc files
            C.run_child(cmd, env)
        runs: dict[str, list[dict]] = {name: [] for name in sides}
        for _ in range(args.cold_runs):
            for name, cmd in sides.items():
                runs[name].append(C.run_child(cmd, env))
    result["cold"] = {name: {"wall_s": C.summary([r["wall_s"] for r in rs]),
                             "peak_rss_mb": max(r["peak_rss_mb"] or 0 for r in rs)}
                      for name, rs in runs.items()}

    cold, warm = result["cold"], result["warm"]
    base = cold["ser-edge classify"]["wall_s"]["median"]
    rows = [["encoder parameters", f"{params['total'] / 1e6:.2f} M", ""],
            ["encoder weights in int8", f"{int8_mb:.1f} MiB", ""],
            ["model file as shipped (float16, with decoder)",
             f"{result['teacher']['file_mb']:.1f} MiB", ""],
            ["runtime package", f"ctranslate2 {result['packages_mb']['ctranslate2']:.0f} MiB",
             f"onnxruntime {result['packages_mb']['onnxruntime']:.0f} MiB"],
            ["warm front end, 3 s clip, 1 thread (CPU)", f"{C.ms(warm['front_end_s'])} ms", ""],
            ["warm encoder (int8), 3 s clip, 1 thread (CPU)", f"{C.ms(warm['encoder_s'])} ms",
             ""]]
    for name, c in cold.items():
        med = c["wall_s"]["median"]
        rows.append([f"cold start: {name}", f"{med:.2f} s ({C.ratio(med, base)})",
                     f"peak RSS {c['peak_rss_mb']:.0f} MiB"])
    table = C.table(["", "figure", "beside it"], rows)
    C.finish(result, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
