"""Every figure of the README and docs/, written from the committed result files.

No measured number is typed into a document. Each document marks where a figure goes and this
script writes it there::

    <!-- figures NAME -->
    (a block: a table and where it was measured)
    <!-- /figures -->

    the default model <!-- figure NAME -->mlp<!-- /figure --> (a value in a sentence)

from the result files: ``benchmarks/results/*.json`` (each benchmark's own table, ``table_md``,
and its machine, date and command), the bundled models' evaluation reports
(``ser_edge/models/*-report/report.json``), their timings (``benchmarks/results/models*.json``)
and the comparison of every recipe (``export/reports/comparison.md``, written by ``python -m
export compare``). ``tests/test_docs.py`` fails when a document and its result files disagree.

The names a document may use are :data:`BLOCKS` (and ``results:NAME`` for any
``benchmarks/results/NAME.json``) and :data:`VALUES`. A new section of the reports needs no
line here: every protocol of a report (an entry with a ``protocol`` and a ``uar_mean``, the
pairs of ``cross_corpus`` included) and every perturbation of its robustness table becomes a
row of the bundled models' table.

usage: ``python -m docs.figures`` rewrites the documents; ``--check`` lists the stale figures
and exits with status 1 if there are any.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

#: The documents whose figures this script writes.
DOCUMENTS = ("README.md", "docs/*.md")

#: The model cards, whose marked figures it writes too (their older prose still types figures:
#: they are kept to the markers they have, not checked for typed ones).
CARDS = ("ser_edge/models/*.md",)

# A figure's name is lower case (``results:batch``), so that a page can show the markers'
# form (``<!-- figures NAME -->``) without being one.
_BLOCK = re.compile(r"(<!-- figures ([a-z0-9][a-z0-9:_.-]*) -->\n)(.*?)(<!-- /figures -->)",
                    re.DOTALL)
_VALUE = re.compile(r"(<!-- figure ([a-z0-9][a-z0-9:_.-]*) -->)(.*?)(<!-- /figure -->)",
                    re.DOTALL)


# -- the sources -------------------------------------------------------------------------------


@cache
def result(name: str) -> dict[str, Any]:
    """``benchmarks/results/NAME.json``."""
    return json.loads((RESULTS / f"{name}.json").read_text())


@cache
def bundled() -> dict[str, dict[str, Any]]:
    """Each bundled model's report, by name, the default first as ``BUNDLED_MODELS`` lists."""
    from ser_edge.model import BUNDLED_MODELS

    return {name: json.loads((path.parent / f"{name}-report" / "report.json").read_text())
            for name, path in BUNDLED_MODELS.items()}


def default_model() -> str:
    """The default bundled model's name (``ser_edge.model.DEFAULT_MODEL``)."""
    from ser_edge.model import DEFAULT_MODEL

    return DEFAULT_MODEL


@cache
def timings() -> dict[str, dict[str, Any]]:
    """Each model's size, parameters, inference and cold start.

    From the newest ``benchmarks/results/models*.json`` that measured it (by the file's date).
    """
    runs = sorted((result(p.stem) for p in RESULTS.glob("models*.json")),
                  key=lambda r: r["date"])
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        for name, entry in run["models"].items():
            out[name] = {**entry, "date": run["date"][:10], "file": run["benchmark"]}
    return out


# -- how figures are written -------------------------------------------------------------------


def _uar(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("uar_mean") is None:
        return "–"
    std = entry.get("uar_std")
    return f"{entry['uar_mean']:.3f}" + (f" ± {std:.3f}" if std else "")


def _share(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def measured(run: dict[str, Any]) -> str:
    """Where and how a benchmark result was measured, in one sentence."""
    m, v = run["machine"], run["versions"]
    model = f"; model: {run['model']}" if run.get("model") else ""
    return (f"Measured by `{run['command']}` on {run['date'][:10]} ({m['cpu']}, "
            f"{m['cpu_count']} cores, Python {v['python']}, onnxruntime {v['onnxruntime']}"
            f"{model}; the run's every figure: "
            f"[benchmarks/results/{run['benchmark']}.json]"
            f"(../benchmarks/results/{run['benchmark']}.json)).")


def _protocols(report: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(key, description, entry)`` for each protocol of a report.

    An entry with a UAR (``uar_mean``) is a protocol, described by its ``protocol`` text: the
    report's top-level ones (EmoBox's folds first), then those one level down in a top-level
    entry that has no UAR of its own, such as ``cross_corpus``'s pairs (``"ravdess ->
    emodb"``, described as "trained on ravdess, tested on emodb") or a section of several
    runs that a new protocol adds.
    """
    def uar(value: Any) -> bool:
        return isinstance(value, dict) and "uar_mean" in value

    for key in sorted((k for k, v in report.items() if uar(v)), key=lambda k: k != "emobox"):
        yield key, report[key].get("protocol", key), report[key]
    for key, group in report.items():
        if isinstance(group, dict) and not uar(group):
            for sub, entry in group.items():
                if uar(entry):
                    train, arrow, test = sub.partition(" -> ")
                    text = f"trained on {train}, tested on {test}" if arrow else entry.get(
                        "protocol", f"{key}, {sub}")
                    yield f"{key}/{sub}", text, entry


def bundled_accuracy() -> str:
    """The bundled models side by side: every protocol, robustness, calibration, cost."""
    reports = bundled()
    names = list(reports)
    rows: dict[str, list[str]] = {}
    for name in names:  # every protocol any model was measured on, in the order first met
        for key, text, _ in _protocols(reports[name]):
            rows.setdefault(key, [f"UAR, {text}"])
    for key in rows:
        for name in names:
            entry = dict((k, e) for k, _, e in _protocols(reports[name])).get(key)
            rows[key].append(_uar(entry))
    perturbations: dict[str, None] = {}
    for name in names:
        perturbations.update(dict.fromkeys(reports[name].get("emobox", {}).get("robustness", {})))
    for p in perturbations:
        row = [f"label unchanged / UAR, {p}"]
        for name in names:
            r = reports[name].get("emobox", {}).get("robustness", {}).get(p)
            row.append("–" if r is None else f"{r['label_unchanged']:.2f} / {r['uar']:.3f}")
        rows[f"robustness/{p}"] = row
    ece = ["expected calibration error (15 bins), calibrated"]
    for name in names:
        c = reports[name].get("emobox", {}).get("calibration", {})
        ece.append("–" if "ece_15_bins_calibrated" not in c
                   else f"{c['ece_15_bins_calibrated']:.3f} (temperature {c['temperature']:.2f})")
    cost = ["file, parameters; inference for 3 s (one thread); cold start of `classify`"]
    for name in names:
        t = timings().get(name)
        cost.append("–" if t is None else
                    f"{t['bytes'] / 1024:.0f} KiB, {t['parameters']:,}; "
                    f"{t['inference_s'] * 1e3:.2f} ms; {t['cold_wall_median_s']:.2f} s")
    cards = ["model card, report"] + [
        f"[card](../ser_edge/models/{n}.md), [report](../ser_edge/models/{n}-report/summary.md)"
        for n in names]
    header = [""] + [f"**`{n}`** (default)" if n == default_model() else f"`{n}`"
                     for n in names]
    table = _table(header, [*rows.values(), ece, cost, cards])
    measured_on = sorted({t["file"] for n in names if (t := timings().get(n))})
    return (table + "\n\nEvery figure from the model's report (`ser_edge/models/NAME-report/"
            "report.json`); size and timings from "
            + ", ".join(f"[{f}.json](../benchmarks/results/{f}.json)" for f in measured_on)
            + " (`python -m benchmarks.models`).")


def comparison() -> str:
    """Every evaluated recipe beside EmoBox's published results."""
    return (ROOT / "export" / "reports" / "comparison.md").read_text().strip()


def results_table(name: str) -> str:
    """A benchmark's own table (``table_md``) and where it was measured."""
    run = result(name)
    table = run["table_md"].strip().replace("|value|", "\\|value\\|")
    return f"{table}\n\n{measured(run)}"


def sample_output() -> str:
    """What ``ser-edge classify --sample`` prints with the default model.

    The samples' folder is shortened: it depends on where ser-edge is installed.
    """
    import subprocess

    from ser_edge.samples import SAMPLES

    folder = next(iter(SAMPLES.values())).parent
    out = subprocess.run([sys.executable, "-m", "ser_edge.cli", "classify",
                          *(p.name for p in SAMPLES.values())], cwd=folder, capture_output=True,
                         text=True, check=True).stdout
    lines = "".join(f"…/ser_edge/samples/{line}\n" for line in out.splitlines())
    return f"```console\n$ ser-edge classify --sample\n{lines}```"


def librosa_comparison() -> str:
    """The table of ser-edge against librosa + scikit-learn (``benchmarks.summary``).

    Over the cold start, latency, throughput, footprint and scaling runs.
    """
    from benchmarks.summary import comparison as table

    return table().strip()


def report(name: str) -> dict[str, Any]:
    """A recipe's evaluation report, the bundled model's if it is bundled.

    From ``ser_edge/models/NAME-report/``, else ``export/reports/NAME/``.

    Raises
    ------
    KeyError
        If neither folder has a ``report.json``.
    """
    for folder in (ROOT / "ser_edge" / "models" / f"{name}-report",
                   ROOT / "export" / "reports" / name):
        if (folder / "report.json").is_file():
            return json.loads((folder / "report.json").read_text())
    raise KeyError(f"no report of {name}")


#: The model the voices issue started from, whose figures are the "before" of the LOCO table:
#: its report is kept under export/reports/, its score on the four corpora it never saw under
#: export/reports/baseline/ (``python -m export score``).
BASELINE = "mlp-cnn3-robust-geometric"


def _baseline() -> dict[str, float]:
    """The previous default's UAR on each corpus it never saw.

    The four new corpora by ``export score``; RAVDESS and EmoDB by its cross-corpus protocol
    (trained on the other one alone).
    """
    score = json.loads((ROOT / "export" / "reports" / "baseline"
                        / f"{BASELINE}-score.json").read_text())
    out = {name: c["uar"] for name, c in score["corpora"].items()}
    cross = report(BASELINE)["cross_corpus"]
    out["ravdess"] = cross["emodb -> ravdess"]["uar_mean"]
    out["emodb"] = cross["ravdess -> emodb"]["uar_mean"]
    return out


def loco_model() -> str | None:
    """The bundled model whose leave-one-corpus-out figures the documents show.

    The default if its report has them (:func:`export.compare.loco_entry`: more than two
    corpora left out), else the first bundled model whose report does.
    """
    from export.compare import loco_entry

    return next((name for name, r in bundled().items() if loco_entry(r)), None)  # default first


def _loco_mean(name: str) -> str:
    """A model's leave-one-corpus-out mean UAR, unadapted, from its report."""
    from export.compare import loco_entry

    return f"{loco_entry(report(name))['uar_mean']:.3f}"


def loco() -> str:
    """Leave one corpus out: the bundled model measured so, per corpus, as trained and adapted.

    Beside the previous default (:func:`_baseline`).
    """
    name = loco_model()
    if name is None:
        return "No bundled model's report has leave-one-corpus-out figures."
    entry = bundled()[name]["loco"]
    before = _baseline()
    adapted = entry.get("adapted", {})
    names = [k for k in ("adapted 10 s", "adapted 30 s", "adapted 60 s", "adapted")
             if k in adapted]
    header = ["corpus (clips)", f"`{BASELINE}`" + (" (default)" if BASELINE == default_model()
                                                  else " (before)"),
              f"**`{name}`**", *[f"adapted, {k.split()[-2]} s" if k != "adapted"
                                 else "adapted, all" for k in names]]
    rows = []
    for corpus, c in entry["corpora"].items():
        b = before.get(corpus)
        rows.append([f"{corpus} ({c['n_clips']})", "–" if b is None else f"{b:.3f}"
                     + ("*" if corpus in ("ravdess", "emodb") else ""), f"{c['uar']:.3f}",
                     *[f"{adapted[k]['corpora'][corpus]['uar']:.3f}" for k in names]])
    mean_before = np.mean([before[c] for c in entry["corpora"] if c in before])
    rows.append(["**mean**", f"{mean_before:.3f}", f"**{entry['uar_mean']:.3f}**",
                 *[f"{adapted[k]['uar_mean']:.3f}" for k in names]])
    return (_table(header, rows) + "\n\nUAR over each corpus's own emotions that the "
            f"other corpora have, the answer being the likeliest of those. \\* `{BASELINE}` "
            "was trained on RAVDESS and EmoDB: for these two, its cross-corpus figure "
            "(trained on the other one alone). From the model's report "
            f"([report.json](../ser_edge/models/{name}-report/report.json)) and "
            f"[export/reports/baseline/{BASELINE}-score.json](../export/reports/baseline/"
            f"{BASELINE}-score.json) (`python -m export score`).")


def loco_recall() -> str:
    """Leave one corpus out: recall of each emotion on each corpus (:func:`loco_model`)."""
    name = loco_model()
    if name is None:
        return "No bundled model's report has leave-one-corpus-out figures."
    report = bundled()[name]
    entry = report["loco"]
    labels = [e for e in report["recipe"]["emotions"] if e in entry["recall_mean"]]
    rows = [[corpus] + ["–" if e not in c["recall"] else f"{c['recall'][e]:.2f}"
                        for e in labels] for corpus, c in entry["corpora"].items()]
    rows.append(["**mean**"] + [f"{entry['recall_mean'][e]:.2f}" for e in labels])
    return f"`{name}`:\n\n" + _table(["corpus", *labels], rows)


#: The voices issue's candidates, in the order they were fixed (their reports under
#: export/reports/, the bundled ones under ser_edge/models/NAME-report/).
CANDIDATES = ("mlp-cnn3-robust-geometric", "ens6-mb-adapt", "mlp-cnn3-re",
              "mlp-cnn3-robust-geometric-floor", "mlp-cnn3-robust-geometric-trim", "ens-re-adapt",
              "mlp-re", "mlpnet-re-adapt", "mlp-cnn3-robust-geometric-quiet",
              "mlp-cnn3-robust-geometric-quiet40")


def voices_candidates() -> str:
    """The voices issue's candidates: EmoBox folds, held-out training speakers, LOCO, padding."""
    keys = ("digital silence 0.6 s around", "white noise -60 dBFS 0.6 s around",
            "gate under -50 dBFS", "telephone band", "reverberation RT60 0.5 s")
    header = ["recipe", "corpora", "EmoBox folds", "held-out training speakers",
              "LOCO mean (adapted)", "RAVDESS → EmoDB", "EmoDB → RAVDESS",
              *[f"unchanged: {k}" for k in keys]]
    from export.compare import loco_entry

    rows = []
    for name in CANDIDATES:
        r = report(name)
        e, loco_ = r["emobox"], loco_entry(r)
        adapted = loco_.get("adapted", {}).get("adapted", {}).get("uar_mean")
        rob = e.get("robustness", {})
        rows.append([
            f"`{name}`", str(len(r["recipe"]["corpora"])) if "corpora" in r["recipe"] else "–",
            _uar(e), f"{e['held_out']['uar_mean']:.3f}" if "held_out" in e else "–",
            (f"{loco_['uar_mean']:.3f}" + (f" ({adapted:.3f})" if adapted else "")) if loco_
            else "–",
            _uar(r["cross_corpus"]["ravdess -> emodb"]).split(" ")[0],
            _uar(r["cross_corpus"]["emodb -> ravdess"]).split(" ")[0],
            *[_share(rob[k]["label_unchanged"]) if k in rob else "–" for k in keys]])
    return (_table(header, rows) + "\n\nEach from its report (`python -m export evaluate "
            "--recipe export/recipes/NAME.json`); LOCO over six corpora only for recipes "
            "trained on six (the others' is the two cross-corpus columns); a dash where a "
            "recipe was not measured so.")


#: Issue 21's distillation runs, in the order the students add to the labels-only network: the
#: same network, features and augmentation trained on the labels alone, then with the teacher's
#: soft labels, then with its soft labels and embeddings.
STUDENTS = ("cnn-mlpfeat-robust-re", "student-cnn-soft", "student-cnn")


def _teacher_probe() -> dict[str, Any]:
    """The teacher's linear probe (``python -m export teacher-probe``)."""
    return json.loads((ROOT / "export" / "reports" / "teacher-probe" / "probe.json").read_text())


def students() -> str:
    """The students of Whisper beside their teacher, the labels-only network and the default.

    UAR on EmoBox's RAVDESS folds (mean ± standard deviation, and each fold), and across the two
    lossless corpora, each from its report; then EmoBox's published results on the same folds.
    """
    header = ["model", "learns from", "EmoBox folds", *[f"fold {i}" for i in range(1, 7)],
              "held-out training speakers", "RAVDESS → EmoDB", "EmoDB → RAVDESS"]
    probe = _teacher_probe()
    rows = [["teacher: Whisper tiny.en + linear probe", "labels, on the encoder's embeddings",
             _uar(probe["emobox"]), *[f"{f['uar']:.3f}" for f in probe["emobox"]["folds"]],
             "–", "–", "–"]]
    sources = {"cnn-mlpfeat-robust-re": "labels", "student-cnn-soft": "labels + soft labels",
               "student-cnn": "labels + soft labels + embeddings"}
    for name in (*STUDENTS, default_model()):
        r = report(name)
        cross = r.get("cross_corpus", {})
        rows.append([f"`{name}`" + (" (default)" if name == default_model() else ""),
                     sources.get(name, "labels (ensemble)"), _uar(r["emobox"]),
                     *[f"{f['uar']:.3f}" for f in r["emobox"]["folds"]],
                     _uar(r["emobox"].get("held_out")).split(" ")[0],
                     *[_uar(cross.get(pair)).split(" ")[0]
                       for pair in ("ravdess -> emodb", "emodb -> ravdess")]])
    published = ", ".join(f"{k} {v:.3f}" for k, v in probe["emobox"]["published"].items())
    return (_table(header, rows) + "\n\nThe students from their reports (`python -m export "
            "evaluate --recipe export/recipes/NAME.json --protocol emobox --protocol cross`), "
            "the teacher from `python -m export teacher-probe`. EmoBox's published UAR on the "
            f"same folds: {published}.")


#: The blocks a document may hold, by name (and ``results:NAME``).
BLOCKS: dict[str, Callable[[], str]] = {
    "bundled-accuracy": bundled_accuracy,
    "loco": loco,
    "loco-recall": loco_recall,
    "voices-candidates": voices_candidates,
    "students": students,
    "comparison": comparison,
    "librosa-comparison": librosa_comparison,
    "sample-output": sample_output,
}


def _install_mib(which: str) -> str:
    venv = result("footprint")["venvs"][which]
    return f"{venv['without_tooling_bytes'] / 2**20:.0f} MiB"


def _package_mib(package: str) -> str:
    sizes = result("footprint")["venvs"]["ser-edge (pip install <repo>)"]["by_package_bytes"]
    return f"{sizes[package] / 2**20:.0f} MiB"


def _default(key: str) -> str:
    return _uar(bundled()[default_model()].get(key))


def _default_cross(pair: str) -> str:
    return _uar((bundled()[default_model()].get("cross_corpus") or {}).get(pair))


#: The values a sentence may hold, by name.
VALUES: dict[str, Callable[[], str]] = {
    "default-model": default_model,
    "teacher-emobox-uar": lambda: _uar(_teacher_probe()["emobox"]),
    "teacher-loco-uar": lambda: f"{_teacher_probe()['loco']['uar_mean']:.3f}",
    "teacher-encoder-parameters": lambda: (
        f"{result('teacher_encoder')['teacher']['encoder_parameters']['total'] / 1e6:.1f} M"),
    "loco-model": lambda: str(loco_model()),
    "loco-model-uar": lambda: _loco_mean(str(loco_model())),
    "default-emobox-uar": lambda: _default("emobox"),
    "default-ravdess-to-emodb-uar": lambda: _default_cross("ravdess -> emodb"),
    "default-cold-start": lambda: f"{timings()[default_model()]['cold_wall_median_s']:.2f} s",
    "default-inference": lambda: f"{timings()[default_model()]['inference_s'] * 1e3:.2f} ms",
    "default-size": lambda: f"{timings()[default_model()]['bytes'] / 1024:.0f} KiB",
    "install-size": lambda: _install_mib("ser-edge (pip install <repo>)"),
    "install-packages": lambda: str(len(
        result("footprint")["venvs"]["ser-edge (pip install <repo>)"]["freeze"])),
    "librosa-install-size": lambda: _install_mib("librosa + scikit-learn"),
    "onnxruntime-size": lambda: _package_mib("onnxruntime"),
    "numpy-size": lambda: _package_mib("numpy"),
}


def model_value(name: str, key: str) -> str:
    """One figure of a bundled model's report or benchmark, for its model card.

    ``key``: ``emobox``, ``loco``, ``loco-adapted`` (each test speaker's whole profile),
    ``loco-min``, ``r2e``, ``e2r``, ``held-out`` (UAR on held-out training speakers),
    ``temperature``, ``size``, ``parameters``, ``inference``, ``cold-start``, ``minutes``
    (the evaluation's time), ``folds`` (UAR of each EmoBox fold).

    Raises
    ------
    KeyError
        If the key is unknown or the report lacks it.
    """
    report = bundled()[name]
    loco_ = report.get("loco", {})
    t = timings().get(name, {})
    values: dict[str, Callable[[], str]] = {
        "emobox": lambda: _uar(report["emobox"]),
        "loco": lambda: f"{loco_['uar_mean']:.3f}",
        "loco-adapted": lambda: f"{loco_['adapted']['adapted']['uar_mean']:.3f}",
        "loco-min": lambda: f"{loco_['uar_min']:.3f}",
        "r2e": lambda: _uar(report["cross_corpus"]["ravdess -> emodb"]),
        "e2r": lambda: _uar(report["cross_corpus"]["emodb -> ravdess"]),
        "held-out": lambda: f"{report['emobox']['held_out']['uar_mean']:.3f}",
        "temperature": lambda: f"{report['emobox']['calibration']['temperature']:.2f}",
        "size": lambda: f"{t['bytes'] / 1024:.0f} KiB",
        "parameters": lambda: f"{t['parameters']:,}",
        "inference": lambda: f"{t['inference_s'] * 1e3:.2f} ms",
        "cold-start": lambda: f"{t['cold_wall_median_s']:.2f} s",
        "minutes": lambda: f"{report['seconds'] / 60:.0f} min",
        "folds": lambda: ", ".join(f"{f['uar']:.3f}" for f in report["emobox"]["folds"]),
    }
    return values[key]()


def model_robustness(name: str) -> str:
    """A bundled model's robustness on EmoBox's folds beside the default's.

    Labels unchanged and UAR under each perturbation; a dash where a report lacks it.
    """
    ours, default = bundled()[name]["emobox"], bundled()[default_model()]["emobox"]
    rows = []
    for key in sorted(set(ours["robustness"]) | set(default["robustness"])):
        cells = [[_share(r["robustness"][key]["label_unchanged"]),
                  f"{r['robustness'][key]['uar']:.3f}"] if key in r["robustness"] else ["–", "–"]
                 for r in (ours, default)]
        rows.append([key, cells[0][0], cells[1][0], cells[0][1], cells[1][1]])
    return _table(["perturbation", f"unchanged, `{name}`", f"`{default_model()}`",
                   f"UAR, `{name}`", f"`{default_model()}`"], rows)


def model_loco(name: str) -> str:
    """A bundled model's leave-one-corpus-out table: UAR per corpus, as trained and adapted."""
    entry = bundled()[name]["loco"]
    adapted = entry.get("adapted", {})
    names = [k for k in ("adapted 10 s", "adapted 30 s", "adapted 60 s", "adapted")
             if k in adapted]
    header = ["corpus", "UAR", *[f"adapted, {k.split()[-2]} s" if k != "adapted"
                                 else "adapted, all" for k in names]]
    rows = [[corpus, f"{c['uar']:.3f}", *[f"{adapted[k]['corpora'][corpus]['uar']:.3f}"
                                          for k in names]]
            for corpus, c in entry["corpora"].items()]
    rows.append(["**mean**", f"**{entry['uar_mean']:.3f}**",
                 *[f"{adapted[k]['uar_mean']:.3f}" for k in names]])
    return _table(header, rows)


def render(name: str) -> str:
    """The Markdown a marker ``name`` stands for.

    Besides :data:`BLOCKS` and :data:`VALUES`: ``results:NAME`` (a benchmark's table),
    ``model:NAME:KEY`` (:func:`model_value`), ``model-loco:NAME`` (:func:`model_loco`) and
    ``model-robustness:NAME`` (:func:`model_robustness`), for the model cards.

    Raises
    ------
    KeyError
        If no figure has that name.
    """
    if name.startswith("results:"):
        return results_table(name.split(":", 1)[1])
    if name.startswith("model:"):
        _, model, key = name.split(":")
        return model_value(model, key)
    if name.startswith("model-loco:"):
        return model_loco(name.split(":", 1)[1])
    if name.startswith("model-robustness:"):
        return model_robustness(name.split(":", 1)[1])
    if name in BLOCKS:
        return BLOCKS[name]()
    return VALUES[name]()


# -- the documents -----------------------------------------------------------------------------


def documents(cards: bool = False) -> list[Path]:
    """The README and the pages of docs/ (and with ``cards``, the model cards)."""
    patterns = DOCUMENTS + (CARDS if cards else ())
    return sorted({p for pattern in patterns for p in ROOT.glob(pattern)})


def rewrite(text: str) -> str:
    """``text`` with every marked figure written anew."""
    text = _BLOCK.sub(lambda m: f"{m[1]}{render(m[2])}\n{m[4]}", text)
    return _VALUE.sub(lambda m: f"{m[1]}{render(m[2])}{m[4]}", text)


def stale() -> list[str]:
    """``file: figure NAME`` for every figure that is not what its result files say."""
    out = []
    for path in documents(cards=True):
        text = path.read_text()
        for pattern, fresh in ((_BLOCK, lambda m: f"{render(m[2])}\n"),
                               (_VALUE, lambda m: render(m[2]))):
            for m in pattern.finditer(text):
                if m[3] != fresh(m):
                    out.append(f"{path.relative_to(ROOT)}: figure {m[2]}")
    return out


#: What a measured figure looks like in prose: a number with two or more decimals
#: (``0.592``, ``1.17 ms``), or one in scientific notation with decimals (``4.6e-06``; a
#: tolerance such as ``1e-4`` is a setting).
_MEASURED = re.compile(r"(?<![\w.\-])\d+\.\d{2,}(?![\w.])|\b\d\.\d+e-\d+\b"
                       r"|(?<![\w.])\d+(?:\.\d+)?\s?(?:%|x\b|MB\b|MiB\b|KiB\b|GB\b)")

#: Numbers of that look that are not measured: chance levels, versions, targets, settings.
NOT_MEASURED = frozenset({
    "0.125", "0.167",  # chance: 1/8, 1/6
    "3.10", "3.11", "3.12", "3.13", "3.11.2",  # Python versions
    "50x", "2x",  # targets the streaming and fused benchmarks were written for
    "16 MiB",  # how much of a pipe is held in memory (ser_edge.audio)
    "256 MiB",  # the largest model file read (ser_edge.modelfile.MAX_MODEL_BYTES)
    "64 KiB",  # the most of a Dask scheduler's handshake read (ser_edge.batch)
})


def without_code(text: str) -> str:
    """Markdown ``text`` without its code blocks and code spans."""
    return re.sub(r"`[^`]*`", "", re.sub(r"```.*?```", "", text, flags=re.DOTALL))


def loose_figures(text: str) -> list[str]:
    """Measured-looking numbers of ``text`` outside the figure markers, code and links.

    Returns
    -------
    found : list of str
        Each such number, then the words around it: ``"0.592 (in: ...the UAR was 0.592 on...)"``.
    """
    text = without_code(_VALUE.sub("", _BLOCK.sub("", text)))
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    return [f"{m[0]} (in: ...{text[max(0, m.start() - 30):m.end() + 10]}...)".replace("\n", " ")
            for m in _MEASURED.finditer(text) if m[0] not in NOT_MEASURED]


def main(argv: list[str] | None = None) -> int:
    """``python -m docs.figures [--check]``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="list stale figures; change nothing")
    args = ap.parse_args(argv)
    if args.check:
        found = stale()
        for line in found:
            print(f"{line} is stale (python -m docs.figures writes it)")
        return 1 if found else 0
    for path in documents(cards=True):
        text = path.read_text()
        new = rewrite(text)
        if new != text:
            path.write_text(new)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
