r"""The model-comparison table: every recipe's evaluation beside EmoBox's published rows.

One row per evaluated recipe (the ``report.json`` that ``python -m export evaluate --recipe``
writes): EmoBox-fold UAR, the other protocols, two robustness columns and calibration, and,
when ``benchmarks/models.py`` measured the model's ONNX file, its parameters, size and
inference time. Then EmoBox's published rows on the same folds (UAR only: their models are
large self-supervised encoders, not measured here)::

    python -m export compare --report mlp=ser_edge/models/mlp-report \\
        --report cnn=export/reports/cnn --bench benchmarks/results/models.json \\
        --out export/reports/comparison.md
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ser_edge.errors import ParameterError

from .protocols import emobox_parameters, emobox_published

__all__ = ["comparison_rows", "comparison_table", "loco_entry"]

_HEADER = ["model", "EmoBox UAR (6 folds)", "LOCO UAR (6 corpora)", "LOCO adapted",
           "contiguous UAR", "EmoDB UAR", "RAVDESS→EmoDB", "EmoDB→RAVDESS", "gain −20 dB",
           "white 20 dB", "RT60 0.5 s", "silence around", "gate −50 dB", "ECE (calibrated)",
           "parameters", "file", "inference, 3 s"]

def _read(folder: str | Path) -> dict[str, Any]:
    path = Path(folder)
    path = path / "report.json" if path.is_dir() else path
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ParameterError(f"{path}: not a readable report ({exc})") from None


def loco_entry(report: Mapping[str, Any]) -> dict[str, Any]:
    """A report's leave-one-corpus-out entry, if it left out more than two corpora, else ``{}``.

    A recipe of RAVDESS and EmoDB alone has a LOCO of two folds, which is its cross-corpus pair
    (reported as such), not a figure to set beside six corpora's.
    """
    loco = report.get("loco") or {}
    return dict(loco) if len(loco.get("corpora", {})) > 2 else {}


def comparison_rows(reports: Mapping[str, str | Path],
                    bench: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The figures of each report (and its benchmark, by the same name), as dicts.

    Parameters
    ----------
    reports : mapping of str to path
        Model name -> report folder (or its ``report.json``).
    bench : mapping, optional
        ``benchmarks/results/models.json``'s ``models`` entry: name -> ``parameters``,
        ``bytes``, ``inference_s``.

    Returns
    -------
    rows : list of dict
        ``name``, ``emobox``, ``emobox_std``, ``loco``, ``loco_adapted`` (leave one corpus
        out, mean UAR, as :func:`loco_entry`; adapted with each test speaker's whole profile),
        ``contiguous``, ``emodb``, ``r2e``, ``e2r``, ``gain_-20``, ``white_20``, ``rt60_0.5``,
        ``silence``, ``gate`` (labels unchanged), ``ece``, ``parameters``, ``bytes``,
        ``inference_s`` (absent figures are None).

    Raises
    ------
    ParameterError
        If a report cannot be read.
    """
    rows = []
    for name, folder in reports.items():
        r = _read(folder)
        emobox = r.get("emobox", {})
        rob = emobox.get("robustness", {})
        cross = r.get("cross_corpus", {})
        b = (bench or {}).get(name, {})
        loco = loco_entry(r)
        rows.append({
            "name": name,
            "emobox": emobox.get("uar_mean"), "emobox_std": emobox.get("uar_std"),
            "loco": loco.get("uar_mean"),
            "loco_adapted": loco.get("adapted", {}).get("adapted", {}).get("uar_mean"),
            "silence": rob.get("digital silence 0.6 s around", {}).get("label_unchanged"),
            "gate": rob.get("gate under -50 dBFS", {}).get("label_unchanged"),
            "contiguous": r.get("contiguous", {}).get("uar_mean"),
            "emodb": r.get("emodb", {}).get("uar_mean"),
            "r2e": cross.get("ravdess -> emodb", {}).get("uar_mean"),
            "e2r": cross.get("emodb -> ravdess", {}).get("uar_mean"),
            "gain_-20": rob.get("gain -20 dB", {}).get("label_unchanged"),
            "white_20": rob.get("white noise 20 dB SNR", {}).get("label_unchanged"),
            "rt60_0.5": rob.get("reverberation RT60 0.5 s", {}).get("label_unchanged"),
            "ece": emobox.get("calibration", {}).get("ece_15_bins_calibrated"),
            "parameters": b.get("parameters"), "bytes": b.get("bytes"),
            "inference_s": b.get("inference_s"),
        })
    return rows


def comparison_table(reports: Mapping[str, str | Path],
                     bench: Mapping[str, Any] | None = None) -> str:
    """:func:`comparison_rows` and EmoBox's published rows as a Markdown table."""
    def f(v: float | None, fmt: str = "{:.3f}") -> str:
        return "–" if v is None else fmt.format(v)

    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for r in comparison_rows(reports, bench):
        emobox = "–" if r["emobox"] is None else f"{r['emobox']:.3f} ± {r['emobox_std']:.3f}"
        cells = [r["name"], emobox, f(r["loco"]), f(r["loco_adapted"]), f(r["contiguous"]),
                 f(r["emodb"]), f(r["r2e"]), f(r["e2r"]),
                 f(r["gain_-20"], "{:.2f}"), f(r["white_20"], "{:.2f}"),
                 f(r["rt60_0.5"], "{:.2f}"), f(r["silence"], "{:.2f}"), f(r["gate"], "{:.2f}"),
                 f(r["ece"]),
                 f(r["parameters"], "{:,}"),
                 f(None if r["bytes"] is None else r["bytes"] / 1024, "{:.0f} KiB"),
                 f(None if r["inference_s"] is None else r["inference_s"] * 1e3, "{:.2f} ms")]
        lines.append("| " + " | ".join(cells) + " |")
    for name, uar in emobox_published().items():
        cells = [f"{name} (EmoBox, published)", f"{uar:.3f}", *["–"] * 12,
                 emobox_parameters(name), "–", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
