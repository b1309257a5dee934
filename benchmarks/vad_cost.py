"""The speech check's cost: ``vad.has_speech`` alone, and ``classify`` with and without it.

``ser-edge classify`` refuses a file without speech (``vad.has_speech`` on the decoded clip at the
model's rate). Two questions, one thread, CPU time (which other jobs on a shared machine stretch
less than wall time; the load average is recorded with each part):

1. **The check alone**: CPU milliseconds per clip of ``has_speech`` on RAVDESS and EmoDB clips
   already decoded at 16 kHz, for this code and for a reference revision's ``ser_edge/vad.py``
   (``--against``, read from git: by default the last commit before has_speech's shortcut), and
   of this code's full detector (``speech_segments``, the segments' edges included), alternating
   clip batch by clip batch. The two revisions' answers are compared on every clip.
2. **Throughput**: ``Classifier.classify`` clips per CPU second over the RAVDESS files (decoding,
   resampling, features, inference; the bundled model), ``vad=False`` against the check of this
   code and the reference revision's check (its ``has_speech`` patched in), the three modes
   alternating chunk by chunk after a warm-up.

usage: ``python -m benchmarks.vad_cost [--step 4] [--limit N] [--chunks 6] [--against REV]``;
writes ``benchmarks/results/vad_cost.json``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path

from benchmarks import _common as C

#: The last commit whose has_speech ran the full detector (the "before" of docs/benchmarks.md).
REFERENCE = "c70d791"


def reference_vad(rev: str) -> types.ModuleType | None:
    """``ser_edge/vad.py`` as it was at ``rev``, as a module (None if git cannot give it)."""
    proc = subprocess.run(["git", "-C", str(C.ROOT), "show", f"{rev}:ser_edge/vad.py"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"no reference: git show {rev}: {proc.stderr.strip()}", file=sys.stderr)
        return None
    module = types.ModuleType("ser_edge._vad_reference")
    module.__package__ = "ser_edge"
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(proc.stdout, f"{rev}:ser_edge/vad.py", "exec"), module.__dict__)  # noqa: S102
    return module


def corpus(step: int) -> list[Path]:
    from export.paths import corpus_dir

    clips = []
    for name, pattern in (("ravdess", "Actor_*/*.flac"), ("emodb", "*.flac")):
        root = corpus_dir(name)
        if root is None:
            sys.exit(f"corpus {name} not found: set SER_EDGE_DATA")
        clips += sorted(root.glob(pattern))[::step]
    return clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", type=int, default=4, help="every STEP-th clip for part 1")
    ap.add_argument("--limit", type=int, help="only the first N RAVDESS files for part 2")
    ap.add_argument("--chunks", type=int, default=6, help="alternation chunks for part 2")
    ap.add_argument("--rounds", type=int, default=5, help="passes over the clips in part 1")
    ap.add_argument("--against", default=REFERENCE, help="git revision of the reference vad.py")
    args = ap.parse_args()
    import ser_edge.vad as vad
    from ser_edge import Classifier, audio

    result = C.start("vad_cost", args)
    ref = reference_vad(args.against)
    sr = 16000

    # 1. The check alone ------------------------------------------------------------------------
    clips = corpus(args.step)
    ys = [audio.load(c, sr=sr)[0] for c in clips]
    seconds = sum(len(y) for y in ys) / sr
    funcs = {"has_speech": vad.has_speech, "speech_segments": vad.speech_segments}
    if ref is not None:
        funcs[f"has_speech at {args.against}"] = ref.has_speech
    agree = (None if ref is None else
             sum(vad.has_speech(y, sr) == ref.has_speech(y, sr) for y in ys))
    found = sum(vad.has_speech(y, sr) for y in ys)
    batches = [ys[i : i + 50] for i in range(0, len(ys), 50)]
    cpu = {name: [] for name in funcs}  # per round: CPU seconds over all clips
    load1 = [C.loadavg()]
    for r in range(args.rounds):
        spent = dict.fromkeys(funcs, 0.0)
        for i, batch in enumerate(batches):
            names = list(funcs) if (i + r) % 2 == 0 else list(funcs)[::-1]
            for name in names:
                f = funcs[name]
                c0 = time.process_time()
                for y in batch:
                    f(y, sr)
                spent[name] += time.process_time() - c0
        for name, s in spent.items():
            cpu[name].append(s)
        print(f"check alone: round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
    load1.append(C.loadavg())
    per_clip = {name: C.summary([1000 * s / len(ys) for s in v]) for name, v in cpu.items()}
    result["check"] = {
        "clips": len(ys), "audio_s": seconds, "mean_clip_s": seconds / len(ys),
        "speech_found": found, "agree_with_reference": agree, "cpu_ms_per_clip": per_clip,
        "cpu_ms_per_audio_s": {n: 1000 * min(v) / seconds for n, v in cpu.items()},
        "loadavg": load1}

    # 2. Throughput of classify -------------------------------------------------------------------
    files = [str(p) for p in C.ravdess_files(args.limit)]
    clf = Classifier()
    original = vad.has_speech

    def run(mode: str, paths: list[str]) -> None:
        vad.has_speech = ref.has_speech if mode == "reference" else original
        try:
            for p in paths:
                clf.classify(p, vad=mode != "no check")
        finally:
            vad.has_speech = original

    modes = ["no check", "check"] + (["reference"] if ref is not None else [])
    for mode in modes:
        run(mode, files[:20])  # warm-up
    size = -(-len(files) // args.chunks)
    chunks = [files[i : i + size] for i in range(0, len(files), size)]
    cpu2 = {m: [] for m in modes}
    wall2 = {m: [] for m in modes}
    load2 = [C.loadavg()]
    for i, chunk in enumerate(chunks):
        order = modes[i % len(modes):] + modes[: i % len(modes)]
        for mode in order:
            c0, t0 = time.process_time(), time.perf_counter()
            run(mode, chunk)
            cpu2[mode].append(time.process_time() - c0)
            wall2[mode].append(time.perf_counter() - t0)
        print(f"classify: chunk {i + 1}/{len(chunks)}", file=sys.stderr, flush=True)
    load2.append(C.loadavg())
    rate = {m: len(files) / sum(v) for m, v in cpu2.items()}
    # per chunk, for the spread
    chunk_rates = {m: [len(c) / s for c, s in zip(chunks, v, strict=True)]
                   for m, v in cpu2.items()}
    result["classify"] = {"files": len(files), "chunks": [len(c) for c in chunks],
                          "cpu_s": cpu2, "wall_s": wall2, "clips_per_cpu_s": rate,
                          "clips_per_cpu_s_per_chunk": chunk_rates, "loadavg": load2}

    # tables ------------------------------------------------------------------------------------
    label = {"has_speech": "`has_speech`, this code",
             "speech_segments": "`speech_segments` (the full detector), this code",
             f"has_speech at {args.against}": f"`has_speech` at {args.against} (before)"}
    rows = [[label[n], f"{s['median']:.2f}", f"{s['min']:.2f}",
             f"{result['check']['cpu_ms_per_audio_s'][n]:.2f}"] for n, s in per_clip.items()]
    text = (f"### The check alone: {len(ys)} RAVDESS and EmoDB clips at 16 kHz "
            f"(mean {seconds / len(ys):.2f} s), {args.rounds} rounds, load average "
            f"{load1[0]} -> {load1[1]}\n\n")
    text += C.table(["", "CPU ms per clip (median of rounds)", "(best round)",
                     "CPU ms per audio s (best)"], rows)
    text += f"\n\nSpeech found in {found} of {len(ys)} clips"
    if agree is not None:
        text += f"; the two revisions agree on {agree} of {len(ys)}"
    names = {"no check": "`classify(vad=False)`", "check": "`classify()`, this code",
             "reference": f"`classify()` at {args.against} (before)"}
    rows = [[names[m], f"{rate[m]:.0f}", f"{1000 / rate[m]:.2f}",
             f"{min(chunk_rates[m]):.0f} - {max(chunk_rates[m]):.0f}"] for m in modes]
    text += (f"\n\n### `Classifier.classify`, {len(files)} RAVDESS files, one thread, "
             f"{len(chunks)} alternating chunks, load average {load2[0]} -> {load2[1]}\n\n")
    text += C.table(["", "clips per CPU s", "CPU ms per clip", "clips per CPU s, per chunk"],
                    rows)
    text += (f"\n\nThe check costs {100 * (rate['no check'] / rate['check'] - 1):.0f}% of "
             "classify's CPU time")
    if "reference" in rate:
        text += f" (before: {100 * (rate['no check'] / rate['reference'] - 1):.0f}%)"
    result["cost_of_check"] = {m: rate["no check"] / rate[m] - 1 for m in modes[1:]}
    C.finish(result, text + ".")


if __name__ == "__main__":
    main()
