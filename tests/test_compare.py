"""The model-comparison table reads reports and benchmarks, and lists EmoBox's published rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

from export.compare import comparison_rows, comparison_table  # noqa: E402
from ser_edge.errors import ParameterError  # noqa: E402


def _report(folder: Path, uar: float) -> Path:
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps({
        "emobox": {"uar_mean": uar, "uar_std": 0.04,
                   "robustness": {"gain -20 dB": {"label_unchanged": 1.0, "uar": uar},
                                  "white noise 20 dB SNR": {"label_unchanged": 0.8, "uar": 0.4},
                                  "reverberation RT60 0.5 s": {"label_unchanged": 0.7,
                                                               "uar": 0.4}},
                   "calibration": {"ece_15_bins_calibrated": 0.05}},
        "cross_corpus": {"ravdess -> emodb": {"uar_mean": 0.45}},
        # LOCO over six corpora (mlp); over two (cnn), which is its cross-corpus pair: not shown
        "loco": {"uar_mean": 0.3, "adapted": {"adapted": {"uar_mean": 0.33}},
                 "corpora": dict.fromkeys("abcdef" if uar == 0.5 else "ab", {})},
    }))
    return folder


def test_rows_and_table(tmp_path: Path) -> None:
    reports = {"mlp": _report(tmp_path / "a", 0.5), "cnn": _report(tmp_path / "b", 0.55)}
    bench = {"mlp": {"parameters": 1234, "bytes": 2048, "inference_s": 0.0002}}
    rows = comparison_rows(reports, bench)
    assert [r["name"] for r in rows] == ["mlp", "cnn"]
    assert rows[0]["emobox"] == 0.5 and rows[0]["white_20"] == 0.8 and rows[0]["r2e"] == 0.45
    assert rows[0]["rt60_0.5"] == 0.7
    assert rows[0]["parameters"] == 1234 and rows[1]["parameters"] is None
    assert rows[0]["contiguous"] is None  # a protocol the report lacks
    table = comparison_table(reports, bench).splitlines()
    assert table[2].startswith("| mlp | 0.500 ± 0.040 |") and "1,234" in table[2]
    assert "2 KiB" in table[2] and "0.20 ms" in table[2]
    # gain, white noise, RT60, silence and gate (not measured), ECE
    assert "| 1.00 | 0.80 | 0.70 | – | – | 0.050 |" in table[2]
    assert table[2].startswith("| mlp | 0.500 ± 0.040 | 0.300 | 0.330 |")  # LOCO, adapted
    assert table[3].startswith("| cnn | 0.550 ± 0.040 | – | – |")
    assert any(line.startswith("| hubert-base (EmoBox, published) | 0.654 |") for line in table)
    assert all(line.count("|") == table[0].count("|") for line in table)


def test_an_unreadable_report_is_a_parameter_error(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="not a readable report"):
        comparison_rows({"x": tmp_path / "missing"})


def test_compare_command_takes_several_benchmark_files(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from export.__main__ import app

    old, new = tmp_path / "models.json", tmp_path / "models-new.json"
    old.write_text(json.dumps({"models": {"mlp": {"parameters": 1, "bytes": 1024,
                                                  "inference_s": 1e-4},
                                          "cnn": {"parameters": 2, "bytes": 2048,
                                                  "inference_s": 2e-4}}}))
    new.write_text(json.dumps({"models": {"cnn": {"parameters": 3, "bytes": 3072,
                                                  "inference_s": 3e-4}}}))
    args = ["compare", "--report", f"mlp={_report(tmp_path / 'a', 0.5)}",
            "--report", f"cnn={_report(tmp_path / 'b', 0.55)}", "--bench", str(old),
            "--bench", str(new), "--out", str(tmp_path / "t.md")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "t.md").read_text().splitlines()
    assert "| 1 | 1 KiB | 0.10 ms |" in rows[2] and "| 3 | 3 KiB | 0.30 ms |" in rows[3]
