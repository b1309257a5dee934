"""Seed files and byte-level mutations for fuzzing the public loaders.

Shared by the seeded mutation test in the default run (``tests/test_fuzz.py``) and the
coverage-guided atheris harness (``tests/fuzz/atheris_loaders.py``). The seeds are made here, from
a speech-like signal, with soundfile: no audio file is stored in the repository.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

__all__ = ["SEEDS", "seed_files", "mutate", "flac_with_total_samples", "SUFFIX",
           "metadata_seeds"]

#: name -> (soundfile format, subtype, channels).
SEEDS: dict[str, tuple[str, str, int]] = {
    "wav16": ("WAV", "PCM_16", 1),
    "wavfloat": ("WAV", "FLOAT", 2),
    "flac": ("FLAC", "PCM_16", 1),
    "flac24": ("FLAC", "PCM_24", 2),
    "ogg": ("OGG", "VORBIS", 1),
    "mp3": ("MP3", "MPEG_LAYER_III", 1),
}

#: File name extension per seed, so that extension-based detection sees what a user's file has.
SUFFIX = {"wav16": ".wav", "wavfloat": ".wav", "flac": ".flac", "flac24": ".flac", "ogg": ".ogg",
          "mp3": ".mp3"}


def _speech_like(n: int, sr: int, seed: int) -> np.ndarray:
    t = np.arange(n) / sr
    phase = 2 * np.pi * (150.0 * t - (3.0 / 5.0) * np.cos(2 * np.pi * 5.0 * t))
    y = sum(np.sin(h * phase) / h for h in range(1, 9)) * 0.2
    return (y + 0.005 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def seed_files(seconds: float = 0.25, sr: int = 16000) -> dict[str, bytes]:
    """Small valid files, one per entry of :data:`SEEDS`, as bytes."""
    out = {}
    for i, (name, (fmt, subtype, channels)) in enumerate(SEEDS.items()):
        n = int(seconds * sr)
        y = np.stack([_speech_like(n, sr, i + c) for c in range(channels)], axis=1)
        buf = io.BytesIO()
        sf.write(buf, y, sr, format=fmt, subtype=subtype)
        out[name] = buf.getvalue()
    return out


def flac_with_total_samples(data: bytes, total: int) -> bytes:
    """A FLAC file whose STREAMINFO claims ``total`` samples (36 bits), the rest unchanged."""
    if data[:4] != b"fLaC" or data[4] & 0x7F != 0:
        raise ValueError("not a FLAC file starting with its STREAMINFO block")
    field = bytearray(data)
    start = 8 + 10  # 'fLaC', the block header, min/max block and frame sizes
    bits = int.from_bytes(field[start:start + 8], "big")
    bits = (bits & ~((1 << 36) - 1)) | (total & ((1 << 36) - 1))
    field[start:start + 8] = bits.to_bytes(8, "big")
    return bytes(field)


_INTERESTING = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF,
                0x80000000, 0xFFFFFFFF, 2**36 - 1, 2**63 - 1, 2**64 - 1]


def mutate(data: bytes, rng: np.random.Generator, others: list[bytes] | None = None) -> bytes:
    """One to three random mutations of ``data``, favouring the header (the first 256 bytes).

    Bit flips, random bytes, "interesting" integers (0, 0x7FFFFFFF, 2**64 - 1, ...) in 1 to 8
    bytes of either byte order, truncation, deletion and duplication of a span, and splicing
    with another seed (its head on this file's body, or the reverse).
    """
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        if not out:
            break
        n = len(out)
        header = min(n, 256)
        where = int(rng.integers(0, header if rng.random() < 0.7 else n))
        op = int(rng.integers(0, 8))
        if op == 0:  # bit flips
            for _ in range(int(rng.integers(1, 9))):
                i = int(rng.integers(0, header if rng.random() < 0.7 else n))
                out[i] ^= 1 << int(rng.integers(0, 8))
        elif op == 1:  # random bytes
            span = int(rng.integers(1, 17))
            out[where:where + span] = rng.integers(0, 256, span, dtype=np.uint8).tobytes()
        elif op == 2:  # an interesting integer
            width = int(rng.choice([1, 2, 4, 8]))
            value = int(rng.choice(_INTERESTING)) & ((1 << (8 * width)) - 1)
            order = "little" if rng.random() < 0.5 else "big"
            out[where:where + width] = value.to_bytes(width, order)
        elif op == 3:  # truncate
            del out[int(rng.integers(0, n)):]
        elif op == 4:  # delete a span
            del out[where:where + int(rng.integers(1, 257))]
        elif op == 5:  # duplicate a span
            span = bytes(out[where:where + int(rng.integers(1, 513))])
            at = int(rng.integers(0, n))
            out[at:at] = span
        elif op == 6 and others:  # splice with another seed
            other = others[int(rng.integers(0, len(others)))]
            cut = int(rng.integers(0, min(n, len(other)) + 1))
            out = bytearray(other[:cut] + out[cut:]) if rng.random() < 0.5 else bytearray(
                out[:cut] + other[cut:])
        else:  # a length field set to a huge value: the first 4 bytes after a chunk id
            for tag in (b"data", b"RIFF", b"fmt ", b"fLaC", b"OggS", b"Xing", b"Info"):
                i = out.find(tag)
                if i >= 0 and rng.random() < 0.5:
                    value = int(rng.choice(_INTERESTING[-6:])) & 0xFFFFFFFF
                    out[i + 4:i + 8] = value.to_bytes(4, "little")
    return bytes(out)


def metadata_seeds() -> list[tuple[str, str]]:
    """``(key, JSON text)`` of valid model metadata: the values the fuzzers start from."""
    import json

    from ser_edge.features import FeatureConfig

    configs = [FeatureConfig(), FeatureConfig(features=("mfcc", "mfcc_delta"), level_db=-20.0,
                                              frames="active", norm="meanvar", top_db=60.0)]
    labels = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    training = {"recipe": {"name": "mlp", "description": "a model", "weights": [0.5, 0.5],
                           "augment": {"kinds": ["pitch"], "copies": 3}},
                "temperature": 1.2, "corpora": [{"name": "ravdess", "n_clips": 1440}]}
    return ([("feature_config", c.to_json()) for c in configs]
            + [("labels", json.dumps(labels)), ("training", json.dumps(training)),
               ("min_frames", "16")])
