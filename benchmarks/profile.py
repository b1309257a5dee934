"""Where ser-edge's time goes: pyinstrument profiles of the paths whose targets were missed.

Writes three text reports to ``benchmarks/results/``:

- ``profile_warm_features_3s_48k.txt``: ``audio.load(sr=22050)`` + ``feature_vector`` of a 3 s
  48 kHz clip, repeated (the issue-2 warm-features target);
- ``profile_throughput_ravdess.txt``: ``Classifier.classify`` over RAVDESS clips (throughput);
- ``profile_cold_start_cli.txt``: one ``ser-edge classify`` in a fresh process (cold start).

usage: ``python -m benchmarks.profile [--repeats 300] [--clips 120]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import _common as C


def _report(profiler: object, path: Path) -> None:
    text = profiler.output_text(unicode=True, color=False)  # type: ignore[attr-defined]
    path.write_text(text)
    print(f"wrote {path.relative_to(C.ROOT)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=300, help="warm feature calls to profile")
    ap.add_argument("--clips", type=int, default=120, help="RAVDESS clips to classify")
    args = ap.parse_args(argv)
    from pyinstrument import Profiler

    from ser_edge import Classifier, audio
    from ser_edge.features import FeatureConfig, feature_vector

    C.RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ser-edge-bench-") as tmp:
        tmp = Path(tmp)
        models = C.make_models(tmp)
        clip = C.make_clip(tmp, 3, 48000)
        config = FeatureConfig()
        feature_vector(audio.load(clip, sr=config.sr)[0], sr=config.sr, config=config)  # warm
        profiler = Profiler(interval=0.0005)
        with profiler:
            for _ in range(args.repeats):
                y, sr = audio.load(clip, sr=config.sr)
                feature_vector(y, sr=sr, config=config)
        _report(profiler, C.RESULTS / "profile_warm_features_3s_48k.txt")

        clf = Classifier(models["onnx"])
        files = C.ravdess_files(args.clips)
        if files:
            clf.classify(files[0])
            profiler = Profiler(interval=0.0005)
            with profiler:
                for f in files:
                    clf.classify(f)
            _report(profiler, C.RESULTS / "profile_throughput_ravdess.txt")

        cmd = [str(C.VENV_BIN / "pyinstrument"), "-i", "0.0005", "-r", "text", "--no-color",
               "-o", str(C.RESULTS / "profile_cold_start_cli.txt"), str(C.SER_EDGE_EXE),
               "classify", "--json", "--model", str(models["onnx"]), str(clip)]
        subprocess.run(cmd, check=True, capture_output=True, env=C.child_env())
        print(f"wrote {(C.RESULTS / 'profile_cold_start_cli.txt').relative_to(C.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
