"""The README and docs/ against the result files, and the README as a front door.

Every figure of the documents stands between the markers ``python -m docs.figures`` writes
(``docs/figures.py``): a figure that is not what its result file says fails here, and so does a
measured-looking number typed outside them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from docs import figures

ROOT = Path(__file__).resolve().parents[1]


def test_every_figure_is_what_its_result_file_says() -> None:
    assert figures.stale() == [], "run `python -m docs.figures` and commit what it changed"


@pytest.mark.parametrize("path", figures.documents(), ids=lambda p: p.name)
def test_no_figure_is_typed_by_hand(path: Path) -> None:
    assert figures.loose_figures(path.read_text()) == []


def test_every_figure_name_is_known_and_every_block_closed() -> None:
    for path in figures.documents(cards=True):
        text = figures.without_code(path.read_text())
        opened = re.findall(r"<!-- figures? ([a-z0-9][a-z0-9:_.-]*) -->", text)
        closed = re.findall(r"<!-- /figures? -->", text)
        assert len(opened) == len(closed), path.name
        for name in opened:
            figures.render(name)  # KeyError for a name no figure has


def test_a_stale_figure_is_found_and_rewritten(tmp_path: Path) -> None:
    text = ("The default model, <!-- figure default-model -->old<!-- /figure -->.\n\n"
            "<!-- figures results:batch -->\n| old | table |\n<!-- /figures -->\n")
    fresh = figures.rewrite(text)
    assert f"-->{figures.default_model()}<!--" in fresh
    assert figures.result("batch")["table_md"].strip().splitlines()[0] in fresh
    assert figures.rewrite(fresh) == fresh
    assert figures.loose_figures(fresh) == []
    typed = "UAR 0.592, 1.17 ms, 4.6e-06, 91%, 175 MiB; chance 0.125, within 1e-4, `0.77 s`"
    assert [f.split(" (in: ")[0] for f in figures.loose_figures(typed)] == [
        "0.592", "1.17", "4.6e-06", "91%", "175 MiB"]


def test_the_bundled_table_has_a_row_for_every_protocol_of_the_reports(monkeypatch) -> None:
    """A protocol a report adds (leave one corpus out, say) is a row without a line of code."""
    reports = {name: dict(report) for name, report in figures.bundled().items()}
    for report in reports.values():  # a protocol of the default alone
        report.pop("loco", None)
    default = figures.default_model()
    reports[default]["loco"] = {"protocol": "leave one corpus out, seven corpora",
                                "uar_mean": 0.4321, "uar_std": 0.05}
    reports[default]["adaptation"] = {  # a section of several runs, one level down
        "5 clips": {"protocol": "adapted to the speaker on 5 clips", "uar_mean": 0.61},
        "note": "not a protocol"}
    monkeypatch.setattr(figures, "bundled", lambda: reports)
    table = figures.bundled_accuracy()
    for text, figure in (("leave one corpus out", "0.432 ± 0.050"),
                         ("adapted to the speaker on 5 clips", "0.610")):
        (row,) = [line for line in table.splitlines() if text in line]
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1 + list(reports).index(default)] == figure
        assert cells.count("–") == len(reports) - 1
    assert "trained on ravdess, tested on emodb" in table  # cross_corpus's pairs


def test_the_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), link
