"""``ser-edge timeline`` on "conversations": real clips with gaps of silence and of noise.

Each conversation is 8 RAVDESS and 6 EmoDB clips drawn at random (seeded), laid end to end with
1-3 s gaps of digital silence, white noise, pink noise and 50 Hz hum (-50 dBFS) between them, as
``tests/test_timeline.py`` builds its own. For each clip: is its speech found, how far are the
first segment's start and the last segment's end from the spoken part (``tests/speechref.py``),
how much does any segment reach into the gaps, and does the segment's label agree with
``Classifier.classify`` on the clip's own file, for several ``context_s``.

usage: ``python -m benchmarks.timeline [--conversations 5]``; writes
``benchmarks/results/timeline.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import _common as C

sys.path.insert(0, str(C.ROOT / "tests"))
from test_timeline import build_conversation  # noqa: E402

CONTEXTS = (0.0, 0.3, 0.6, 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversations", type=int, default=5)
    ap.add_argument("--gaps", choices=("mixed", "silence"), default="mixed",
                    help="gaps of silence, noise and hum (1-3 s), or of digital silence only "
                         "(1-2 s: clips joined as an editor or a noise gate leaves them)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--results", default=None, help="results file name (default timeline)")
    args = ap.parse_args()
    from export.paths import corpus_dir
    from ser_edge import Classifier
    from ser_edge.timeline import timeline

    result = C.start(args.results or "timeline", args)
    clf = Classifier(args.model)
    rav = sorted(corpus_dir("ravdess").glob("Actor_*/*.flac"))
    emo = sorted(corpus_dir("emodb").glob("*.flac"))
    sr = clf.feature_config.sr
    gaps = {"mixed": {}, "silence": {"gaps": ("silence",), "gap_s": (1.0, 2.0)}}[args.gaps]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.conversations):
            rng = np.random.default_rng(seed)
            clips = ([rav[i] for i in rng.choice(len(rav), 8, replace=False)]
                     + [emo[i] for i in rng.choice(len(emo), 6, replace=False)])
            clips = [clips[i] for i in rng.permutation(len(clips))]
            path, truth = build_conversation(clips, Path(tmp), seed=seed, **gaps)
            by_context = {c: list(timeline(path, clf, context_s=c)) for c in CONTEXTS}
            for t in truth:
                row = {"conversation": seed, "clip": t["clip"].name,
                       "corpus": "emodb" if "emodb" in str(t["clip"]) else "ravdess",
                       "label": clf.classify(t["clip"]).label}
                for c, segments in by_context.items():
                    mine = [s for s in segments
                            if s.end_s > t["start"] / sr and s.start_s < t["end"] / sr]
                    row[f"agree_{c:g}"] = len(mine) == 1 and mine[0].label == row["label"]
                    if c == 0.6:
                        row["segments"] = len(mine)
                        if mine:
                            row["start_error_s"] = mine[0].start_s - t["speech"][0] / sr
                            row["end_error_s"] = mine[-1].end_s - t["speech"][1] / sr
                            row["into_gaps_s"] = max(0.0, t["start"] / sr - mine[0].start_s) + max(
                                0.0, mine[-1].end_s - t["end"] / sr)
                rows.append(row)
    result["clips"] = rows
    found = [r for r in rows if r["segments"]]
    errors = np.abs([r["start_error_s"] for r in found] + [r["end_error_s"] for r in found])
    lines = [C.table(["clips", "speech found", "boundaries within 0.3 s", "within 0.5 s",
                      "largest boundary error, s", "clips split in 2+ segments",
                      "largest reach into a gap, s"],
                     [[len(rows), len(found), f"{100 * np.mean(errors <= 0.3):.1f}%",
                       f"{100 * np.mean(errors <= 0.5):.1f}%", f"{errors.max():.2f}",
                       sum(r["segments"] > 1 for r in rows),
                       f"{max(r['into_gaps_s'] for r in found):.2f}"]])]
    agree_rows = []
    for corpus in ("ravdess", "emodb", "all"):
        rs = [r for r in rows if corpus in ("all", r["corpus"])]
        agree_rows.append([corpus, len(rs)] + [
            f"{100 * np.mean([r[f'agree_{c:g}'] for r in rs]):.0f}%" for c in CONTEXTS])
    lines.append(C.table(["clips", "n"] + [f"context {c:g} s" for c in CONTEXTS], agree_rows))
    C.finish(result, "\n\n".join(lines))


if __name__ == "__main__":
    main()
