"""Speech found in the seven corpora of ``SER_EDGE_DATA``, by this code and by a reference.

``ser-edge classify`` refuses a clip in which ``vad.has_speech`` finds no speech, and every clip of
RAVDESS, EmoDB, ASED, nEMO, Korean, TurEV and BAVED is speech. For every clip (every ``--step``-th)
of each corpus, decoded at 16 kHz, ``has_speech`` of this code and of a reference revision's
``ser_edge/vad.py`` (``--against``, read from git: by default the last commit before issue 20's
fix) on:

1. **the clip** as it is; and at four frame-grid offsets (0, 80, 160 and 240 samples of digital
   silence before it): *found at every offset*;
2. **padded**: 0.6 s of digital silence, or of -60 dBFS white noise, on either side (the answer
   must not change);
3. **speech with no pause**: the clip cut to its speech (``tests/speechref.py``'s ``speech_only``:
   from the first to the last 10 ms frame within 30 dB of its loudest, or 20 dB for a harsher
   cut), the 30 dB cuts joined end to end with nothing between into 3 s and 8 s pieces, and the 3 s
   pieces evened out by a 2:1 and a 4:1 compressor to -19 dBFS RMS (a talk show's voice).

And ``tests/nonspeech.py``'s seeded non-speech set (416 signals), alone and padded with 0.6 s of
digital silence or of -60 dBFS noise: how many are rejected. The clips missed are listed.

usage: ``python -m benchmarks.vad_corpora [--step 1] [--against REV]``; writes
``benchmarks/results/vad_corpora.json``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from benchmarks import _common as C
from benchmarks.vad_cost import reference_vad

sys.path.insert(0, str(C.ROOT / "tests"))
from nonspeech import nonspeech_set  # noqa: E402
from speechref import compressed, joined, speech_only  # noqa: E402

SR = 16000
#: The last commit before issue 20's fix of the speech check (the "before").
BEFORE = "5a01ed2"
#: The corpora: the pattern of their audio files under the corpus folder.
CORPORA = {"ravdess": "Actor_*/*.flac", "emodb": "*.flac", "ased": "*/*.opus",
           "nemo": "samples/*.opus", "korean": "*/*/wav/*.opus", "turev": "*/*.opus",
           "baved": "*/*.opus"}
#: The variants of a clip, in the table's order.
CLIP_VARIANTS = ("clip", "every offset", "silence around", "noise around", "cut 30 dB",
                 "cut 20 dB")
PIECE_VARIANTS = ("joined 3 s", "joined 8 s", "3 s, 2:1", "3 s, 4:1")


def _pad(y: np.ndarray, pad: np.ndarray) -> np.ndarray:
    half = len(pad) // 2
    return np.concatenate((pad[:half], y, pad[half:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", type=int, default=1, help="every STEP-th clip of each corpus")
    ap.add_argument("--against", default=BEFORE, help="git revision of the reference vad.py")
    args = ap.parse_args()
    import ser_edge.vad as vad
    from export.paths import corpus_dir, data_root
    from ser_edge import audio

    result = C.start("vad_corpora", args)
    ref = reference_vad(args.against)
    checks = {"this code": vad.has_speech}
    if ref is not None:
        checks[f"at {args.against}"] = ref.has_speech
    rng = np.random.default_rng(20)
    silence = np.zeros(2 * int(0.6 * SR), np.float32)
    found: dict[str, dict[str, dict[str, int]]] = {}
    missed: dict[str, dict[str, dict[str, list[str]]]] = {}
    counts: dict[str, dict[str, int]] = {}
    t0 = time.perf_counter()
    for corpus, pattern in CORPORA.items():
        folder = corpus_dir(corpus)
        if folder is None:
            print(f"{corpus}: not found under {data_root()}, skipped", file=sys.stderr)
            continue
        files = sorted(folder.glob(pattern))[:: args.step]
        cut: list[np.ndarray] = []
        tally = {who: {v: 0 for v in CLIP_VARIANTS + PIECE_VARIANTS} for who in checks}
        lost = {who: {v: [] for v in CLIP_VARIANTS + PIECE_VARIANTS} for who in checks}
        for path in files:
            name = path.relative_to(data_root()).as_posix()
            y = audio.load(path, sr=SR)[0]
            noise = (10 ** (-60 / 20) * rng.standard_normal(len(silence))).astype(np.float32)
            cut.append(speech_only(y))
            signals = {
                "clip": [y],
                "every offset": [y] + [np.concatenate((np.zeros(k, np.float32), y))
                                       for k in (80, 160, 240)],
                "silence around": [_pad(y, silence)],
                "noise around": [_pad(y, noise)],
                "cut 30 dB": [cut[-1]],
                "cut 20 dB": [speech_only(y, below_db=20)],
            }
            for who, check in checks.items():
                for variant, ys in signals.items():
                    if all(check(z, SR) for z in ys):
                        tally[who][variant] += 1
                    else:
                        lost[who][variant].append(name)
        pieces = {"joined 3 s": joined(cut, 3.0), "joined 8 s": joined(cut, 8.0)}
        pieces["3 s, 2:1"] = [compressed(y, ratio=2.0) for y in pieces["joined 3 s"]]
        pieces["3 s, 4:1"] = [compressed(y, ratio=4.0) for y in pieces["joined 3 s"]]
        for who, check in checks.items():
            for variant, ys in pieces.items():
                ok = [check(z, SR) for z in ys]
                tally[who][variant] = int(sum(ok))
                lost[who][variant] = [str(i) for i, good in enumerate(ok) if not good]
        counts[corpus] = {"clips": len(files),
                          **{v: len(ys) for v, ys in pieces.items()}}
        found[corpus], missed[corpus] = tally, lost
        print(f"{corpus}: {len(files)} clips, {time.perf_counter() - t0:.0f} s", file=sys.stderr,
              flush=True)

    # The non-speech set, alone and padded.
    rejected = {who: {"alone": 0, "silence around": 0, "noise around": 0} for who in checks}
    n_nonspeech = 0
    for _, y in nonspeech_set(SR):
        n_nonspeech += 1
        noise = (10 ** (-60 / 20) * rng.standard_normal(len(silence))).astype(np.float32)
        for who, check in checks.items():
            for tag, z in (("alone", y), ("silence around", _pad(y, silence)),
                           ("noise around", _pad(y, noise))):
                rejected[who][tag] += not check(z, SR)

    result.update(counts=counts, found=found, missed=missed, nonspeech={
        "signals": n_nonspeech, "rejected": rejected})

    # tables --------------------------------------------------------------------------------
    whos = list(checks)
    text = (f"### Clips found as speech, this code against {args.against} (before)\n\n"
            "Each cell: this code / before. *every offset*: found at all four frame-grid "
            "offsets; *around*: 0.6 s on either side; *cut*: to within 30 or 20 dB of the clip's "
            "loudest 10 ms.\n\n")
    rows = []
    for corpus, tally in found.items():
        rows.append([corpus, str(counts[corpus]["clips"])]
                    + [" / ".join(str(tally[w][v]) for w in whos) for v in CLIP_VARIANTS])
    total = {w: {v: sum(found[c][w][v] for c in found) for v in CLIP_VARIANTS} for w in whos}
    rows.append(["**all**", str(sum(c["clips"] for c in counts.values()))]
                + [" / ".join(str(total[w][v]) for w in whos) for v in CLIP_VARIANTS])
    text += C.table(["corpus", "clips", *CLIP_VARIANTS], rows)
    text += ("\n\n### Speech with no pause: 30 dB cuts joined end to end (pieces found as "
             "speech, this code / before)\n\n")
    rows = [[corpus] + [f"{' / '.join(str(found[corpus][w][v]) for w in whos)} of "
                        f"{counts[corpus][v]}" for v in PIECE_VARIANTS] for corpus in found]
    text += C.table(["corpus", *PIECE_VARIANTS], rows)
    text += f"\n\n### Non-speech rejected ({n_nonspeech} signals of tests/nonspeech.py)\n\n"
    text += C.table(["", "alone", "silence around", "noise around"],
                    [[w, *(str(rejected[w][t]) for t in ("alone", "silence around",
                                                          "noise around"))] for w in whos])
    still = sorted({name for corpus in missed for v in ("clip",)
                    for name in missed[corpus][whos[0]][v]})
    text += ("\n\nClips this code misses: " + (", ".join(still) if still else "none") + ".")
    C.finish(result, text)


if __name__ == "__main__":
    main()
