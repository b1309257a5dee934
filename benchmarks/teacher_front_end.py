"""How far is the teacher's front end from its references, on every lossless clip?

``export.teacher.log_mel_spectrogram`` (numpy, float64, rounded to float32) against
(a) Whisper's log-mel written with librosa 0.11.0 in float64 (``librosa.stft(center=True,
pad_mode="reflect")``, ``librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)``, the last frame
dropped: the tests' reference) and (b) openai-whisper's own ``log_mel_spectrogram`` (float32
torch), when it is installed. Clips: every RAVDESS and EmoDB clip (FLAC, lossless), loaded at
16 kHz as the teacher loads them. Per corpus: the largest and the mean absolute difference.

    python -m benchmarks.teacher_front_end [--every N]
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks._common import finish, start
from export.corpora import parse_corpus
from export.dataset import resolve_corpus
from export.features import reference_load
from export.teacher import SAMPLE_RATE, log_mel_spectrogram

CORPORA = ("ravdess", "emodb")


def librosa_log_mel(y: np.ndarray) -> np.ndarray:
    """Whisper's log-mel with librosa, in float64 (as tests/test_teacher.py writes it)."""
    import librosa

    S = np.abs(librosa.stft(y.astype(np.float64), n_fft=400, hop_length=160, win_length=400,
                            window="hann", center=True, pad_mode="reflect")) ** 2
    bank = librosa.filters.mel(sr=16000, n_fft=400, n_mels=80, fmin=0.0, fmax=None, htk=False,
                               norm="slaney", dtype=np.float32)
    log_spec = np.log10(np.maximum(bank.astype(np.float64) @ S[:, :-1], 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def _whisper():
    try:
        import torch
        import whisper.audio
    except ImportError:
        return None
    return lambda y: whisper.audio.log_mel_spectrogram(torch.from_numpy(y), n_mels=80).numpy()


def measure(every: int) -> dict:
    whisper = _whisper()
    out: dict = {"whisper_installed": whisper is not None, "corpora": {}}
    for name in CORPORA:
        clips = parse_corpus(*resolve_corpus(name)).clips[::every]
        worst = {"librosa": 0.0, "whisper": 0.0}
        total = {"librosa": 0.0, "whisper": 0.0}
        where = {"librosa": "", "whisper": ""}
        values = 0
        for clip in clips:
            y = reference_load(clip.path, SAMPLE_RATE)
            M = log_mel_spectrogram(y=y)
            refs = {"librosa": librosa_log_mel(y)}
            if whisper is not None:
                refs["whisper"] = whisper(y)
            for key, R in refs.items():
                d = np.abs(M.astype(np.float64) - R)
                total[key] += float(d.sum())
                if d.max() > worst[key]:
                    worst[key], where[key] = float(d.max()), clip.path.name
            values += M.size
        out["corpora"][name] = {
            "clips": len(clips), "values": values,
            **{f"max_{k}": worst[k] for k in refs}, **{f"mean_{k}": total[k] / values
                                                       for k in refs},
            **{f"worst_clip_{k}": where[k] for k in refs}}
        print(f"{name}: {len(clips)} clips, " + ", ".join(
            f"{k} max {worst[k]:.2e}" for k in refs), flush=True)
    return out


def table(result: dict) -> str:
    keys = ["librosa"] + (["whisper"] if result["whisper_installed"] else [])
    md = ["Largest and mean |difference| of export.teacher.log_mel_spectrogram (values of "
          "(log10 + 4) / 4, range 2 per clip) from:", "",
          "| corpus | clips | " + " | ".join(
              f"{k} max | {k} mean" for k in keys) + " |",
          "|---|---|" + "---|---|" * len(keys)]
    for name, c in result["corpora"].items():
        md.append(f"| {name} | {c['clips']} | " + " | ".join(
            f"{c[f'max_{k}']:.2e} | {c[f'mean_{k}']:.2e}" for k in keys) + " |")
    md += ["", "librosa: float64, the tests' reference; whisper: openai-whisper's own function "
           "(float32 torch)" + ("" if result["whisper_installed"] else " (not installed)") + "."]
    return "\n".join(md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1, help="every N-th clip of each corpus")
    args = parser.parse_args()
    result = start("teacher_front_end", args)
    result.update(measure(args.every))
    finish(result, table(result))


if __name__ == "__main__":
    main()
