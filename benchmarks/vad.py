"""Voice activity detection (``ser_edge.vad``): speech found, non-speech rejected, frame accuracy.

Four questions, on the real corpora and on ``tests/nonspeech.py``'s seeded non-speech set:

1. **Detection**: of the 1,975 RAVDESS and EmoDB clips, how many hold speech according to
   ``ser_edge.vad`` (the check ``ser-edge classify`` makes), and does the detected span cover the
   spoken part? The reference for the spoken part is ``tests/speechref.py``: from the first to the
   last 32 ms frame (10 ms hop) whose power in 100 Hz-4 kHz is within 40 dB of the loudest and
   20 dB above the clip's noise floor (``librosa.effects.trim``'s rule, kept off the floor of
   quiet clips). A span covers it when it starts no later and ends no earlier (20 ms of slack);
   the table also gives how much of the reference lies outside it.
2. **Rejection**: of the non-speech set (silence, dither, white/pink/brown noise, 50/60 Hz hum
   with harmonics, DC, pure tones, beeps, swept tones, clicks, mixtures; 1 to 30 s; -70 to -1
   dBFS), how many are found to hold no speech?
3. **Frame precision and recall** on real clips padded with non-speech of known extent (0.5 to
   3 s on each side): digital silence, room tone (pink noise at -60 dBFS), white noise at -35
   dBFS, pink noise at -30 dBFS, and pink noise under the whole clip at 20 and 10 dB SNR (speech
   level: the RMS of the reference span). Truth: the reference span is speech, everything else is
   not; frames are 10 ms.
4. **Trimming**: the bundled model's label on each clip against its label on the detected speech
   span alone and with 0.3, 0.6 and 1.0 s of the clip kept around it (what ``timeline``'s
   ``context_s`` is for), and the detected spans' leading and trailing non-speech; and, on every
   12th RAVDESS clip, how often the label changes when 0.3 s of digital silence is added at
   both ends, or white noise at -60 dBFS under the whole clip.

Also the detector's cost (CPU seconds per second of audio, one thread).

usage: ``python -m benchmarks.vad [--step 1] [--pad-step 3]``; writes
``benchmarks/results/vad.json`` and ``vad.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import _common as C

sys.path.insert(0, str(C.ROOT / "tests"))
from nonspeech import KINDS, nonspeech_set  # noqa: E402
from speechref import spoken_part  # noqa: E402

SR = 16000
HOP = 160  # 10 ms frames for precision and recall


def corpus_clips(step: int) -> list[Path]:
    from export.paths import corpus_dir

    clips = []
    for name, pattern in (("ravdess", "Actor_*/*.flac"), ("emodb", "*.flac")):
        root = corpus_dir(name)
        if root is None:
            raise SystemExit(f"corpus {name} not found: set SER_EDGE_DATA")
        clips += sorted(root.glob(pattern))[::step]
    return clips


def reference_span(y: np.ndarray) -> tuple[int, int]:
    return spoken_part(y, SR)


def mask(n: int, spans) -> np.ndarray:
    m = np.zeros(-(-n // HOP), bool)
    for s, e in spans:
        m[s // HOP : -(-e // HOP)] = True
    return m


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=float)
    f[0] = 1
    y = np.fft.irfft(spec / np.sqrt(f), n)
    return y / np.sqrt(np.mean(y**2))


def rms_db(y: np.ndarray) -> float:
    return 10 * np.log10(np.mean(y.astype(np.float64) ** 2) + 1e-20)


CONDITIONS = ("silence", "room tone -60 dBFS", "white -35 dBFS", "pink -30 dBFS",
              "pink under all, SNR 20 dB", "pink under all, SNR 10 dB")


def padded(y: np.ndarray, ref: tuple[int, int], condition: str, rng: np.random.Generator):
    """``y`` with non-speech before and after; the truth span moved with it."""
    a, b = (int(rng.uniform(0.5, 3.0) * SR) for _ in range(2))
    n = a + len(y) + b
    out = np.zeros(n)
    out[a : a + len(y)] = y
    speech_db = rms_db(y[ref[0] : ref[1]])
    if condition.startswith("room"):
        noise = pink(n, rng) * 10 ** (-60 / 20)
        out[:a], out[a + len(y) :] = noise[:a], noise[a + len(y) :]
    elif condition.startswith("white"):
        noise = rng.standard_normal(n) * 10 ** (-35 / 20)
        out[:a], out[a + len(y) :] = noise[:a], noise[a + len(y) :]
    elif condition.startswith("pink -30"):
        noise = pink(n, rng) * 10 ** (-30 / 20)
        out[:a], out[a + len(y) :] = noise[:a], noise[a + len(y) :]
    elif condition.startswith("pink under"):
        snr = float(condition.split("SNR ")[1].split()[0])
        out = out + pink(n, rng) * 10 ** ((speech_db - snr) / 20)
    out = np.clip(out, -1, 1).astype(np.float32)
    return out, (ref[0] + a, ref[1] + a)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", type=int, default=1, help="every STEP-th clip for detection")
    ap.add_argument("--pad-step", type=int, default=3, help="every N-th clip for padding")
    args = ap.parse_args()
    from ser_edge import Classifier, audio, vad

    result = C.start("vad", args)
    result["config"] = vad.VadConfig().__dict__
    clf = Classifier()

    # 1 and 4: detection, coverage, spans, trimming --------------------------------------------
    clips = corpus_clips(args.step)
    rows, t_vad, t_audio = [], 0.0, 0.0
    contexts = (0.0, 0.3, 0.6, 1.0)
    for clip in clips:
        y, _ = audio.load(clip, sr=SR)
        c0 = time.process_time()
        segments = vad.speech_segments(y, SR)
        t_vad += time.process_time() - c0
        t_audio += len(y) / SR
        ref = reference_span(y)
        row = {"clip": clip.name, "corpus": "emodb" if "emodb" in str(clip) else "ravdess",
               "n": len(y), "ref": ref, "segments": [(s.start, s.end) for s in segments]}
        if segments:
            s, e = segments[0].start, segments[-1].end
            row["covers"] = bool(s <= ref[0] + 0.02 * SR and e >= ref[1] - 0.02 * SR)
            row["uncovered_s"] = (max(0, s - ref[0]) + max(0, ref[1] - e)) / SR
            if row["uncovered_s"] > 0.1:  # how loud is what the span leaves out?
                level = vad.frame_features(y, SR)["level_db"]
                fh = int(round(vad.VadConfig().hop_s * SR))  # the detector's frames
                out = list(range(ref[0] // fh, max(ref[0] // fh, s // fh))) + list(
                    range(e // fh, min(len(level), ref[1] // fh)))
                if out:
                    row["uncovered_peak_db"] = float(level[out].max() - level.max())
            row["start_minus_ref_s"] = (s - ref[0]) / SR
            row["end_minus_ref_s"] = (e - ref[1]) / SR
            full = clf.predict(y, SR).label
            row["agree"] = {f"{c:g}": clf.predict(y[max(0, s - int(c * SR)) : e + int(c * SR)],
                                                  SR).label == full for c in contexts}
        rows.append(row)
    # Per clip in the file: the span and the number of segments, not every segment.
    result["clips"] = [{**{k: v for k, v in r.items() if k != "segments"},
                        "n_segments": len(r["segments"]),
                        "span": [r["segments"][0][0], r["segments"][-1][1]] if r["segments"]
                        else None} for r in rows]
    sensitivity = {"silence 0.3 s around": [], "white -60 dBFS under": []}
    noise_rng = np.random.default_rng(0)
    for clip in [c for c in clips if "emodb" not in str(c)][::12]:
        y, _ = audio.load(clip, sr=SR)
        full = clf.predict(y, SR).label
        pad = np.zeros(int(0.3 * SR), np.float32)
        sensitivity["silence 0.3 s around"].append(
            clf.predict(np.concatenate([pad, y, pad]), SR).label == full)
        noise = (noise_rng.standard_normal(len(y)) * 10 ** (-60 / 20)).astype(np.float32)
        sensitivity["white -60 dBFS under"].append(clf.predict(y + noise, SR).label == full)
    result["sensitivity"] = sensitivity
    det = {corpus: [r for r in rows if r["corpus"] == corpus] for corpus in ("ravdess", "emodb")}
    det["all"] = rows

    # 2: rejection --------------------------------------------------------------------------------
    ns_rows = []
    for name, y in nonspeech_set(SR):
        segments = vad.speech_segments(y, SR)
        ns_rows.append({"name": name, "kind": name.split("_")[0], "seconds": len(y) / SR,
                        "speech": bool(segments),
                        "segments": [(s.start_s, s.end_s) for s in segments]})
    result["nonspeech"] = ns_rows

    # 3: padded frames ----------------------------------------------------------------------------
    rng = np.random.default_rng(20261202)
    pr = {c: {"tp": 0, "fp": 0, "fn": 0, "clips": 0} for c in CONDITIONS}
    for clip in clips[:: args.pad_step]:
        y, _ = audio.load(clip, sr=SR)
        ref = reference_span(y)
        for cond in CONDITIONS:
            z, truth = padded(y, ref, cond, rng)
            segments = vad.speech_segments(z, SR)
            got = mask(len(z), [(s.start, s.end) for s in segments])
            want = mask(len(z), [truth])
            c = pr[cond]
            c["tp"] += int(np.sum(got & want))
            c["fp"] += int(np.sum(got & ~want))
            c["fn"] += int(np.sum(~got & want))
            c["clips"] += 1
    for c in pr.values():
        c["precision"] = c["tp"] / max(1, c["tp"] + c["fp"])
        c["recall"] = c["tp"] / max(1, c["tp"] + c["fn"])
    result["padded"] = pr
    result["cpu_s_per_audio_s"] = t_vad / t_audio

    # tables --------------------------------------------------------------------------------------
    lines = []
    drows = []
    for name, rs in det.items():
        found = [r for r in rs if r["segments"]]
        cov = [r for r in found if r["covers"]]
        lead = [r["segments"][0][0] / SR for r in found]
        trail = [(r["n"] - r["segments"][-1][1]) / SR for r in found]
        ds = [r["start_minus_ref_s"] for r in found]
        de = [r["end_minus_ref_s"] for r in found]
        unc = [r["uncovered_s"] for r in found]
        drows.append([name, len(rs), f"{len(found)} ({100 * len(found) / len(rs):.2f}%)",
                      f"{len(cov)} ({100 * len(cov) / max(1, len(found)):.2f}%)",
                      f"{np.percentile(unc, 95):.2f} / {np.max(unc):.2f}",
                      f"{np.median(ds):+.2f} / {np.min(ds):+.2f}",
                      f"{np.median(de):+.2f} / {np.max(de):+.2f}",
                      f"{np.median(lead):.2f} / {np.median(trail):.2f}"])
    lines.append("### Speech found in the corpora\n\n" + C.table(
        ["clips", "n", "speech detected", "span covers the spoken part",
         "spoken part outside the span, s (95th pct / max)",
         "span start - reference, s (median / min)", "span end - reference, s (median / max)",
         "non-speech trimmed before / after, s (median)"], drows))
    by_kind = {}
    for r in ns_rows:
        k = by_kind.setdefault(r["kind"], [0, 0])
        k[0] += 1
        k[1] += not r["speech"]
    total = len(ns_rows)
    rejected = sum(not r["speech"] for r in ns_rows)
    krows = [[k, v[0], f"{v[1]} ({100 * v[1] / v[0]:.1f}%)"] for k, v in
             sorted(by_kind.items(), key=lambda kv: KINDS.index(kv[0]))]
    krows.append(["**all**", total, f"**{rejected} ({100 * rejected / total:.2f}%)**"])
    left = [r["uncovered_peak_db"] for r in rows if "uncovered_peak_db" in r]
    if left:
        lines.append(
            f"Of the {len(left)} clips with more than 0.1 s of the reference outside the detected "
            f"span, the loudest frame left out is a median {-np.median(left):.0f} dB under the "
            f"clip's loudest ({100 * np.mean(np.array(left) < -20):.0f}% of them more than 20 dB "
            "under).")
    lines.append("### Non-speech rejected\n\n" + C.table(["family", "signals", "rejected"], krows))
    prows = [[c, v["clips"], f"{v['precision']:.3f}", f"{v['recall']:.3f}"] for c, v in pr.items()]
    lines.append("### Frames (10 ms) on clips padded with 0.5-3 s of non-speech\n\n" + C.table(
        ["padding", "clips", "precision", "recall"], prows))
    arows = []
    for name, rs in det.items():
        found = [r for r in rs if r["segments"]]
        arows.append([name, len(found)] + [
            f"{100 * np.mean([r['agree'][f'{c:g}'] for r in found]):.1f}%" for c in contexts])
    lines.append("### The bundled model's label on the clip against the speech span alone\n\n"
                 + C.table(["clips", "n", "span only", "span +-0.3 s", "span +-0.6 s",
                            "span +-1.0 s"], arows))
    n_sens = len(sensitivity["white -60 dBFS under"])
    lines.append(f"The bundled model's label on {n_sens} RAVDESS clips changes for "
                 + " and ".join(f"{100 * (1 - np.mean(v)):.0f}% of them with {k}"
                                for k, v in sensitivity.items()) + ".")
    lines.append(f"Detector cost: {1000 * result['cpu_s_per_audio_s']:.2f} ms of CPU per second "
                 f"of 16 kHz audio (one thread).")
    table = "\n\n".join(lines)
    path = C.finish(result, table)
    (C.RESULTS / "vad.md").write_text(table + "\n")
    compact(path)


def compact(path: Path) -> None:
    """Rewrite the result with one line per clip and per non-speech signal."""
    import json

    result = json.loads(path.read_text())
    rows = {key: result.pop(key) for key in ("clips", "nonspeech")}
    text = json.dumps(result, indent=1)[:-2]
    for key, values in rows.items():
        text += f',\n "{key}": [\n' + ",\n".join("  " + json.dumps(v) for v in values) + "\n ]"
    path.write_text(text + "\n}\n")


if __name__ == "__main__":
    main()
