"""The evaluation report folder: ``metrics.json``, ``summary.md``, PNG plots (matplotlib, Agg)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .protocols import emobox_parameters

__all__ = ["write_report", "plot_confusion", "plot_per_class_f1", "plot_model_comparison"]

_MODEL_NAMES = {
    "mlp": "MLP",
    "knn": "k-NN",
    "svm": "SVM (RBF)",
    "rf": "random forest",
    "tree": "decision tree",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(
    confusion: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str
) -> Path:
    """Save a row-normalised confusion-matrix heatmap (rows: true emotion; each row sums to 1)."""
    plt = _pyplot()
    C = np.asarray(confusion, dtype=float)
    N = C / np.maximum(C.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=110)
    im = ax.imshow(N, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(N.shape[0]):
        for j in range(N.shape[1]):
            ax.text(
                j, i, f"{N[i, j]:.2f}", ha="center", va="center", fontsize=7,
                color="white" if N[i, j] > 0.5 else "black",
            )  # fmt: skip
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_per_class_f1(models: Mapping[str, Mapping[str, Any]], path: Path, title: str) -> Path:
    """Save grouped bars of per-class F1 (out-of-fold), one group per emotion, one bar per model."""
    plt = _pyplot()
    names = list(models)
    labels = list(next(iter(models.values()))["labels"])
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
    x = np.arange(len(labels))
    for k, name in enumerate(names):
        f1 = [models[name]["per_class"][label]["f1-score"] for label in labels]
        ax.bar(
            x + (k - (len(names) - 1) / 2) * width, f1, width, label=_MODEL_NAMES.get(name, name)
        )
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel("F1")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(names), 5))
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_model_comparison(models: Mapping[str, Mapping[str, Any]], path: Path, title: str) -> Path:
    """Save bars of UAR, accuracy and macro-F1 (mean over folds, error bar = std) per model."""
    plt = _pyplot()
    names = list(models)
    metrics = [("uar", "UAR"), ("accuracy", "accuracy"), ("macro_f1", "macro-F1")]
    width = 0.8 / len(metrics)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for k, (key, label) in enumerate(metrics):
        means = [models[n][f"{key}_mean"] for n in names]
        stds = [models[n][f"{key}_std"] for n in names]
        ax.bar(x + (k - 1) * width, means, width, yerr=stds, capsize=3, label=label)
    ax.set_xticks(x, [_MODEL_NAMES.get(n, n) for n in names])
    ax.set_ylim(0, 1)
    ax.set_ylabel("score (mean ± std over folds)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _fmt(mean: float, std: float | None = None) -> str:
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def _strip(result: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "predictions"}


def write_report(folder: str | Path, report: Mapping[str, Any]) -> Path:
    """Write ``metrics.json``, ``summary.md``, ``predictions.csv`` and the plots.

    Parameters
    ----------
    folder : str or Path
        Created if needed; files in it are overwritten.
    report : mapping
        ``title``, ``feature_config`` (JSON string), ``dataset`` (list of corpus descriptions),
        ``seed``, ``default_model``, ``models`` (name -> :func:`export.evaluate.cross_validate`
        result, with ``params``), optionally ``random_split`` and ``cross_corpus`` (name ->
        result) and ``grid`` (list of rows with ``label``, ``n_features``, ``uar_mean``, ...),
        ``clips`` (paths in the order of the predictions), ``command``.

    Returns
    -------
    folder : Path
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    models = report["models"]
    default = report["default_model"]
    best = models[default]
    labels = best["labels"]

    metrics = {k: v for k, v in report.items() if k not in ("models", "clips")}
    metrics["models"] = {name: _strip(res) for name, res in models.items()}
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")

    if report.get("clips"):
        lines = ["clip,true," + ",".join(models)]
        for i, clip in enumerate(report["clips"]):
            row = [models[name]["predictions"][i] for name in models]
            lines.append(f"{clip},{report['truth'][i]}," + ",".join(row))
        (folder / "predictions.csv").write_text("\n".join(lines) + "\n")

    plot_confusion(
        best["confusion"],
        labels,
        folder / "confusion.png",
        f"{_MODEL_NAMES.get(default, default)}: {best['protocol']}, summed over folds\n"
        f"UAR {_fmt(best['uar_mean'], best['uar_std'])}",
    )
    plot_per_class_f1(models, folder / "per_class_f1.png", f"per-class F1, {best['protocol']}")
    plot_model_comparison(models, folder / "model_comparison.png", best["protocol"])

    md = [f"# {report.get('title', 'Evaluation report')}", ""]
    if report.get("command"):
        md += ["Written by:", "", "```", report["command"], "```", ""]
    md += ["## Data", ""]
    for c in report.get("dataset", []):
        emo = ", ".join(f"{k} {v}" for k, v in c["emotions"].items())
        md.append(f"- {c['name']}: {c['n_clips']} clips, {c['n_speakers']} speakers ({emo})")
    md += ["", "## Features", "", f"`FeatureConfig.from_json('{report['feature_config']}')`", ""]
    md += [
        f"## Speaker-independent results ({best['n_folds']} folds by speaker)",
        "",
        "Folds split by speaker: every clip of a speaker is in one fold; mean ± std over folds. "
        "UAR = unweighted average recall (balanced accuracy).",
        "",
        "| model | UAR | accuracy | macro-F1 | ONNX size |",
        "|---|---|---|---|---|",
    ]
    for name, res in models.items():
        size = res.get("onnx_bytes")
        size_txt = f"{size / 1024:.0f} KiB" if size else "-"
        md.append(
            f"| {_MODEL_NAMES.get(name, name)}{' (default)' if name == default else ''} | "
            f"{_fmt(res['uar_mean'], res['uar_std'])} | "
            f"{_fmt(res['accuracy_mean'], res['accuracy_std'])} | "
            f"{_fmt(res['macro_f1_mean'], res['macro_f1_std'])} | {size_txt} |"
        )
    md += ["", "Parameters:", ""]
    for name, res in models.items():
        md.append(f"- {_MODEL_NAMES.get(name, name)}: `{json.dumps(res.get('params', {}))}`")
    md += ["", f"Seed: {report.get('seed')}. Only the MLP's parameters were searched (grid below);"]
    md += ["the other models use fixed, common settings.", ""]
    md += [f"### Per-class report ({_MODEL_NAMES.get(default, default)}, out-of-fold)", ""]
    md += ["| emotion | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label in labels:
        r = best["per_class"][label]
        md.append(
            f"| {label} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1-score']:.3f} | "
            f"{int(r['support'])} |"
        )
    md += ["", "### Confusion matrix (rows true, columns predicted, summed over folds)", ""]
    md += ["| true \\ predicted | " + " | ".join(labels) + " |"]
    md += ["|---" * (len(labels) + 1) + "|"]
    for label, row in zip(labels, best["confusion"], strict=True):
        md.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    md += ["", "### Per fold", "", "| fold | test speakers | UAR | accuracy | macro-F1 |"]
    md += ["|---|---|---|---|---|"]
    for k, f in enumerate(best["folds"]):
        spk = ", ".join(s.split(":")[-1] for s in f["speakers"])
        md.append(
            f"| {k + 1} | {spk} | {f['uar']:.3f} | {f['accuracy']:.3f} | {f['macro_f1']:.3f} |"
        )
    md += ["", "![confusion](confusion.png)", "", "![per-class F1](per_class_f1.png)", ""]
    md += ["![model comparison](model_comparison.png)", ""]

    if report.get("random_split"):
        md += ["## Random split (NOT speaker-independent)", ""]
        any_res = next(iter(report["random_split"].values()))
        md += [
            f"Protocol: {any_res['protocol']}, seed {report.get('seed')}. The same actors appear "
            "in training and test, as in many published figures; this overstates the accuracy "
            "on a new voice. For comparison only.",
            "",
        ]
        md += ["| model | UAR | accuracy | macro-F1 |", "|---|---|---|---|"]
        for name, res in report["random_split"].items():
            md.append(
                f"| {_MODEL_NAMES.get(name, name)} | {res['uar']:.3f} | {res['accuracy']:.3f} | "
                f"{res['macro_f1']:.3f} |"
            )
        md.append("")
    if report.get("cross_corpus"):
        md += ["## Cross-corpus", ""]
        md += ["| model | train → test | emotions | n test | UAR | accuracy | macro-F1 |"]
        md += ["|---|---|---|---|---|---|---|"]
        for name, res in report["cross_corpus"].items():
            md.append(
                f"| {_MODEL_NAMES.get(name, name)} | "
                f"{res['train_corpus']} → {res['test_corpus']} | "
                f"{', '.join(res['emotions'])} | {res['n_test']} | {res['uar']:.3f} | "
                f"{res['accuracy']:.3f} | {res['macro_f1']:.3f} |"
            )
        md.append("")
    if report.get("grid"):
        md += ["## Feature and MLP grid (speaker-independent 6-fold UAR on RAVDESS, 8 classes)", ""]
        md += report.get("grid_note", []) + [""]
        md += [
            "| # | configuration | n features | UAR | accuracy | macro-F1 |",
            "|---|---|---|---|---|---|",
        ]
        for k, row in enumerate(report["grid"]):
            md.append(
                f"| {k + 1} | {row['label']} | {row['n_features']} | "
                f"{_fmt(row['uar_mean'], row['uar_std'])} | {row['accuracy_mean']:.3f} | "
                f"{row['macro_f1_mean']:.3f} |"
            )
        md.append("")
    (folder / "summary.md").write_text("\n".join(md))
    return folder


# -- recipe reports (python -m export evaluate --recipe) ----------------------------------------


def plot_robustness(robustness: Mapping[str, Mapping[str, float]], clean_uar: float, path: Path,
                    title: str) -> Path:
    """Save bars per perturbation: the share of labels unchanged, and the UAR beside clean's."""
    plt = _pyplot()
    names = list(robustness)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    ax.bar(x - 0.2, [robustness[n]["label_unchanged"] for n in names], 0.4,
           label="label unchanged (share of clips)")
    ax.bar(x + 0.2, [robustness[n]["uar"] for n in names], 0.4, label="UAR")
    ax.axhline(clean_uar, color="black", lw=1, ls="--", label=f"UAR, clean ({clean_uar:.3f})")
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _recall_table(entries: Mapping[str, Mapping[str, Any]], labels: Sequence[str]) -> list[str]:
    heads = ["protocol", *labels]
    md = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for name, entry in entries.items():
        cells = []
        for label in labels:
            r = entry["recall"].get(label)
            cells.append("-" if r is None else (f"**{r:.2f}**" if r < 0.10 else f"{r:.2f}"))
        md.append(f"| {name} | " + " | ".join(cells) + " |")
    return md


def loco_table(loco: Mapping[str, Any], labels: Sequence[str]) -> list[str]:
    """Markdown rows: per corpus of a leave-one-corpus-out entry, UAR and each emotion's recall.

    Parameters
    ----------
    loco : mapping
        :func:`export.recipe.evaluate_recipe`'s ``loco`` entry (or one of its ``adapted``
        variants: the same keys).
    labels : sequence of str
        The columns' emotions, in order; an emotion a corpus lacks is ``-``; a recall under
        0.10 is bold.

    Returns
    -------
    lines : list of str
    """
    labels = [e for e in labels if any(e in c["recall"] for c in loco["corpora"].values())]
    md = ["| corpus (clips) | UAR | " + " | ".join(labels) + " |",
          "|---|---|" + "---|" * len(labels)]
    for corpus, c in loco["corpora"].items():
        cells = ["-" if e not in c["recall"] else
                 (f"**{c['recall'][e]:.2f}**" if c["recall"][e] < 0.10 else
                  f"{c['recall'][e]:.2f}") for e in labels]
        md.append(f"| {corpus} ({c['n_clips']}) | {c['uar']:.3f} | " + " | ".join(cells) + " |")
    mean = [f"{loco['recall_mean'][e]:.2f}" if e in loco["recall_mean"] else "-" for e in labels]
    md.append(f"| **mean** | **{loco['uar_mean']:.3f}** | " + " | ".join(mean) + " |")
    return md


def _loco_section(loco: Mapping[str, Any], labels: Sequence[str]) -> list[str]:
    md = ["## Leave one corpus out", "",
          "Each corpus in turn is never trained on: the model is trained on every other corpus "
          "(model selection and early stopping on held-out speakers of those) and tested on all "
          "of it. The model answers with every label it knows; recall is over the corpus's own "
          "emotions. Bold: recall under 0.10.", ""]
    md += loco_table(loco, labels)
    md += ["", f"Mean UAR {loco['uar_mean']:.3f} (lowest {loco['uar_min']:.3f}); emotions never "
           "recognised: " + (", ".join(loco["zero_recall"]) or "none") + ".", ""]
    for variant in loco.get("adapted", {}).values():
        md += [f"### Adapted to the speaker: {variant['description']}", ""]
        md += loco_table(variant, labels)
        md += [""]
    return md


def write_recipe_report(folder: str | Path, report: Mapping[str, Any], *,
                        title: str | None = None) -> Path:
    """Write a recipe's evaluation: ``report.json``, ``summary.md``, plots, OOF predictions.

    Parameters
    ----------
    folder : str or Path
        Created if needed; files in it are overwritten.
    report : mapping
        :func:`export.recipe.evaluate_recipe`'s report.
    title : str, optional

    Returns
    -------
    folder : Path
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    recipe = report["recipe"]
    name = recipe["name"]
    data = {k: v for k, v in report.items() if not k.startswith("_")}
    (folder / "report.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    result = report.get("_emobox_result")
    if result is not None and report.get("clips"):
        lines = ["clip,true,predicted," + ",".join(result["labels"])]
        for s in result["splits"]:
            for i, P in zip(s["test"], s["proba"]["clean"], strict=True):
                probs = ",".join(f"{p:.5f}" for p in P)
                lines.append(f"{report['clips'][i]},{report['truth'][i]},"
                             f"{result['labels'][int(np.argmax(P))]},{probs}")
        (folder / "predictions.csv").write_text("\n".join(lines) + "\n")

    emobox = report.get("emobox")
    protocols = {"EmoBox folds (RAVDESS)": emobox,
                 "contiguous folds (RAVDESS)": report.get("contiguous"),
                 "EmoDB pairs": report.get("emodb"),
                 **{f"cross-corpus {k}": v for k, v in report.get("cross_corpus", {}).items()}}
    protocols = {k: v for k, v in protocols.items() if v}
    for key, entry in protocols.items():
        slug = key.split(" (")[0].replace(" ", "_").replace("->", "to").replace("-", "_")
        plot_confusion(entry["confusion"], entry["labels"], folder / f"confusion_{slug}.png",
                       f"{name}: {key}, out-of-fold\nUAR {_fmt(entry['uar_mean'])}")
    if emobox and emobox.get("robustness"):
        plot_robustness(emobox["robustness"], emobox["uar_mean"], folder / "robustness.png",
                        f"{name}: robustness on EmoBox's held-out folds")
    loco = report.get("loco")
    for corpus, entry in (loco or {}).get("corpora", {}).items():
        plot_confusion(entry["confusion"], entry["labels"], folder / f"confusion_loco_{corpus}.png",
                       f"{name}: leave one corpus out, {corpus}\nUAR {_fmt(entry['uar'])}")

    md = [f"# {title or name + ': evaluation report'}", ""]
    if recipe.get("description"):
        md += [recipe["description"], ""]
    md += ["Written by `python -m export evaluate --recipe` from the recipe below; every figure "
           "is speaker-independent and out-of-fold (no speaker in both training and test; "
           "model selection and early stopping on training speakers only).", ""]
    md += ["## Data", ""]
    for c in report.get("dataset", []):
        emo = ", ".join(f"{k} {v}" for k, v in c["emotions"].items())
        md.append(f"- {c['name']}: {c['n_clips']} clips, {c['n_speakers']} speakers ({emo})")
    md += ["", "## Results", "", "| protocol | UAR (mean ± std over folds) | accuracy | "
           "macro-F1 | folds |", "|---|---|---|---|---|"]
    for key, entry in protocols.items():
        md.append(f"| {key} | {_fmt(entry['uar_mean'], entry['uar_std'])} | "
                  f"{entry['accuracy_mean']:.3f} | {entry['macro_f1_mean']:.3f} | "
                  f"{entry['n_folds']} |")
    if emobox:
        md += ["", "### Beside EmoBox's published results (same folds, UA)", "",
               "| model | parameters | UAR |", "|---|---|---|",
               f"| **{name}** (this report) | {report.get('n_parameters', '-')} | "
               f"**{emobox['uar_mean']:.3f}** |"]
        for model, ua in sorted(emobox["published"].items(), key=lambda kv: kv[1]):
            md.append(f"| {model} (EmoBox) | {emobox_parameters(model)} | {ua:.3f} |")
        md += ["", "Per fold: " + ", ".join(f"{f['name'].split()[-1]}: {f['uar']:.3f}"
                                            for f in emobox["folds"]), ""]
        for key, entry in (emobox.get("adapted") or {}).items():
            md += [f"Adapted to each test speaker ({key}: "
                   + ("the profile of all their clips" if key == "adapted" else
                      f"a profile of {key.split()[-2]} s of their speech") + f"): UAR "
                   f"{entry['uar_mean']:.3f} (folds " + ", ".join(f"{u:.3f}" for u in
                                                                 entry["folds"]) + ").", ""]
        held = emobox.get("held_out")
        if held:
            md += [f"On each fold's held-out *training* speakers (what a choice between models "
                   f"may look at; a network's early stopping saw them): UAR "
                   f"{held['uar_mean']:.3f} (folds "
                   + ", ".join(f"{u:.3f}" for u in held["folds"]) + ").", ""]
    if loco:
        md += _loco_section(loco, recipe["emotions"])
    md += ["## Recall of each emotion (out-of-fold)", "",
           "Bold: under 0.10.", ""]
    md += _recall_table(protocols, recipe["emotions"])
    weak = {k: v["weak_emotions"] for k, v in protocols.items() if v["weak_emotions"]}
    md += ["", "Emotions under 0.10 recall: " + ("; ".join(f"{k}: {', '.join(v)}"
                                                           for k, v in weak.items())
                                                 if weak else "none") + ".", ""]
    if emobox and emobox.get("robustness"):
        md += ["## Robustness (EmoBox's held-out folds)", "",
               "Each test clip perturbed (other seeds, noise and rooms than training; babble from "
               "the test fold's other speakers; SNR over the whole clip), classified by the "
               "model of its fold.", "",
               "| perturbation | label unchanged | UAR |", "|---|---|---|",
               f"| none | 1.00 | {emobox['uar_mean']:.3f} |"]
        for k, v in emobox["robustness"].items():
            md.append(f"| {k} | {v['label_unchanged']:.2f} | {v['uar']:.3f} |")
        md += ["", "![robustness](robustness.png)", ""]
    if emobox and emobox.get("calibration"):
        c = emobox["calibration"]
        temps = ", ".join(f"{t:.2f}" for t in c["fold_temperatures"])
        md += ["## Calibration", "",
               f"Expected calibration error (15 bins) of the out-of-fold probabilities: "
               f"{c['ece_15_bins']:.3f} as trained, {c['ece_15_bins_calibrated']:.3f} with a "
               f"temperature fitted in each fold on held-out training speakers ({temps}); "
               f"negative log-likelihood {c['nll']:.3f} -> {c['nll_calibrated']:.3f}. The "
               f"model's temperature, {c['temperature']:.2f}, is fitted on all out-of-fold "
               "probabilities and applied inside the ONNX graph.", ""]
    md += ["## Recipe", "", "```json", json.dumps(recipe, indent=1), "```", ""]
    if report.get("seconds"):
        md += [f"Evaluation time: {report['seconds'] / 60:.0f} min on this machine.", ""]
    (folder / "summary.md").write_text("\n".join(md))
    return folder
