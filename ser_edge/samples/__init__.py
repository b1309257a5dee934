"""Two speech clips shipped with ser-edge, to try it on before any recording of your own.

One speaker of EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al. 2005), says the
same German sentence in anger (``angry.wav``) and in sadness (``sad.wav``): 16 kHz, mono, 16-bit
WAV, about 2.2 s each, the original samples unchanged. CC0 1.0 (as audEERING packages EmoDB);
``README.md`` beside them gives their original names, and ``LICENSE-CC0-1.0.txt`` the licence.

``ser-edge classify --sample`` classifies them; ``ser-edge info`` prints where they are.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SAMPLES", "SAMPLE"]

_HERE = Path(__file__).resolve().parent

#: The sample clips by the emotion they were recorded in: ``{"angry": path, "sad": path}``.
SAMPLES: dict[str, Path] = {name: _HERE / f"{name}.wav" for name in ("angry", "sad")}

#: The clip the quickstart classifies.
SAMPLE: Path = SAMPLES["angry"]
