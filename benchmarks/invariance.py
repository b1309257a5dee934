"""Does silence change the label? Padding and gating every clip of every corpus, per model.

What trimmed, edited, gated or VoIP audio does to a recording, applied to real clips of the seven
corpora in ``SER_EDGE_DATA`` and classified with the runtime (``Classifier.predict`` on the file's
samples at their own rate, as ``ser-edge classify`` does):

- ``digital silence 0.6 s around``: 0.6 s of zeros before and after;
- ``white noise -60 dBFS 0.6 s around``: 0.6 s of white noise at -60 dBFS RMS instead;
- ``gate under -50 dBFS``: every sample under -50 dBFS set to zero;

and, to read those against, ``first 8 ms cut``: the clip without its first 8 ms, which moves the
frame grid under the rest by half a hop (128 samples at 16 kHz, as a pad of 0.6 s does) and
changes nothing else a listener hears: what a model's label owes to where its frames fall.

(``export.augment.perturb``, the robustness evaluation's own). For each corpus: the share of
clips whose label is unchanged (the voices issue asks >= 0.95 on every corpus), and how many
clips had no speech found. Clips are every ``--every``-th of each corpus (1: all).

    python -m benchmarks.invariance --model mlp-cnn3-robust-geometric --every 1

``--align-peak`` measures the model with ``FeatureConfig.align_peak`` switched on at inference
(the frames start on the loudest sample; :func:`ser_edge.dsp.align_peak`): a probe of what the
option does for a model trained without it, which cuts fewer than a hop of samples from each
clip and so gives its features the frame phase it was trained on at random.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from benchmarks._common import finish, start
from export.augment import clip_id, perturb
from export.corpora import parse_corpus
from export.paths import corpus_dir
from ser_edge import audio
from ser_edge.errors import NoSpeechError, SerEdgeError
from ser_edge.model import Classifier

CORPORA = ("ravdess", "emodb", "ased", "nemo", "korean", "turev", "baved")
PERTURBATIONS = ("digital silence 0.6 s around", "white noise -60 dBFS 0.6 s around",
                 "gate under -50 dBFS")
#: The frame grid moved by half a hop, and nothing else: the yardstick for the perturbations.
SHIFT = "first 8 ms cut"


def _label(clf: Classifier, y: np.ndarray, sr: int) -> str:
    try:
        return clf.predict(y, sr).label
    except NoSpeechError:
        return "(no speech)"
    except SerEdgeError as exc:
        return f"(error: {exc})"


def measure(model: str | None, every: int = 1, corpora: tuple[str, ...] = CORPORA,
            align_peak: bool = False) -> dict:
    """Per corpus: clips, the share unchanged under each perturbation, clips without speech."""
    clf = Classifier(model)
    if align_peak:
        clf.feature_config = dataclasses.replace(clf.feature_config, align_peak=True)
    out: dict = {"model": clf.name or str(clf.model_path), "align_peak": align_peak,
                 "every": every, "corpora": {}}
    for name in corpora:
        root = corpus_dir(name)
        if root is None:
            continue
        clips = parse_corpus(name, root, warn=False).clips[::every]
        same = {p: 0 for p in (*PERTURBATIONS, SHIFT)}
        changed: dict[str, list[str]] = {p: [] for p in (*PERTURBATIONS, SHIFT)}
        no_speech = 0
        t0 = time.time()
        for clip in clips:
            y, sr = audio.load(clip.path, sr=None)
            base = _label(clf, y, sr)
            no_speech += base == "(no speech)"
            for p in (*PERTURBATIONS, SHIFT):
                z = (y[..., round(0.008 * sr):] if p == SHIFT
                     else perturb(y, sr, p, clip=clip_id(clip.path)))
                if _label(clf, z, sr) == base:
                    same[p] += 1
                elif len(changed[p]) < 5:
                    changed[p].append(clip.path.name)
        n = len(clips)
        out["corpora"][name] = {
            "clips": n, "no_speech": no_speech, "seconds": round(time.time() - t0, 1),
            "label_unchanged": {p: round(same[p] / n, 4) for p in (*PERTURBATIONS, SHIFT)},
            "changed_examples": changed}
        print(f"{name:8s} {n:5d} clips  " + "  ".join(
            f"{p.split()[0]} {same[q] / n:.3f}" for p, q in zip(
                ("silence", "noise", "gate", "8-ms"), (*PERTURBATIONS, SHIFT), strict=True))
              + f"  no speech {no_speech}", flush=True)
    return out


def table(result: dict) -> str:
    """Markdown: per corpus, clips, the share of labels each perturbation leaves unchanged."""
    aligned = " with align_peak" if result.get("align_peak") else ""
    md = [f"Labels unchanged by padding and gating, {result['model']}{aligned} (every "
          f"{result['every']}. clip):", "",
          "| corpus | clips | digital silence 0.6 s | white noise -60 dBFS 0.6 s | "
          "gate -50 dBFS | first 8 ms cut | no speech |", "|---|---|---|---|---|---|---|"]
    for name, c in result["corpora"].items():
        u = c["label_unchanged"]
        md.append(f"| {name} | {c['clips']} | " + " | ".join(
            f"{u[p]:.3f}" if p in u else "–" for p in (*PERTURBATIONS, SHIFT))
                  + f" | {c['no_speech']} |")
    return "\n".join(md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="bundled name or ONNX file")
    parser.add_argument("--every", type=int, default=1, help="every N-th clip of each corpus")
    parser.add_argument("--align-peak", action="store_true",
                        help="switch FeatureConfig.align_peak on at inference (a probe)")
    parser.add_argument("--results", default=None,
                        help="name of the results file (default invariance-<model>)")
    args = parser.parse_args()
    result = start("invariance", args)
    result.update(measure(args.model, args.every, align_peak=args.align_peak))
    result["benchmark"] = args.results or (f"invariance-{Path(result['model']).stem}"
                                           + ("-aligned" if args.align_peak else ""))
    finish(result, table(result))


if __name__ == "__main__":
    main()
