"""``python -m export`` through typer's CliRunner, on a few RAVDESS clips linked into tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("librosa")
pytest.importorskip("sklearn")
pytest.importorskip("skl2onnx")

from typer.testing import CliRunner  # noqa: E402

from export.__main__ import app  # noqa: E402
from export.onnx_export import read_metadata  # noqa: E402

SMALL = ["--sr", "16000", "--n-mels", "64", "--n-mfcc", "20", "--tuning", "0", "-j", "1", "-q"]


@pytest.fixture(scope="module")
def tiny_ravdess(ravdess_dir, tmp_path_factory):
    """Actors 01 and 02, angry and sad, statement 01: 8 clips as symlinks."""
    root = tmp_path_factory.mktemp("ravdess")
    for actor in ("01", "02"):
        (root / f"Actor_{actor}").mkdir()
        for emotion in ("04", "05"):
            for intensity in ("01", "02"):
                for rep in ("01",):
                    name = f"03-01-{emotion}-{intensity}-01-{rep}-{actor}"
                    src = next((ravdess_dir / f"Actor_{actor}").glob(name + ".*"))
                    (root / f"Actor_{actor}" / src.name).symlink_to(src)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def test_train_writes_a_checked_model(tiny_ravdess, cache, tmp_path):
    out = tmp_path / "m.onnx"
    args = ["train", "-c", f"ravdess={tiny_ravdess}", "-o", str(out), "--folds", "2"]
    args += ["--params", '{"max_iter": 100}', "--cache-dir", str(cache), *SMALL]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "UAR" in result.output
    meta = read_metadata(out)
    assert meta["labels"] == ["angry", "sad"]
    assert meta["metrics"]["speaker_independent"]["n_folds"] == 2
    assert "random_split" in meta["metrics"]
    assert meta["training"]["n_clips"] == 8
    assert meta["training"]["estimator_params"]["max_iter"] == 100
    assert meta["feature_config"]["sr"] == 16000


def test_features_csv_and_evaluate_report(tiny_ravdess, cache, tmp_path):
    csv = tmp_path / "f.csv"
    result = CliRunner().invoke(
        app, ["features", "-c", f"ravdess={tiny_ravdess}", "-o", str(csv),
              "--cache-dir", str(cache), *SMALL],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(csv.read_text().splitlines()) == 1 + 8
    report = tmp_path / "report"
    result = CliRunner().invoke(
        app, ["evaluate", "-c", f"ravdess={tiny_ravdess}", "-o", str(report), "--folds", "2",
              "--models", "mlp,tree", "--cache-dir", str(cache), *SMALL],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("metrics.json", "summary.md", "confusion.png", "per_class_f1.png",
                 "model_comparison.png", "predictions.csv"):  # fmt: skip
        assert (report / name).is_file(), name
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["models"]) == {"mlp", "tree"}
    assert "speaker-independent" in (report / "summary.md").read_text()


def test_bad_input_is_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["train", "-c", f"ravdess={tmp_path / 'nope'}", *SMALL])
    assert result.exit_code == 2
    assert "error:" in result.output and "not found" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(app, ["evaluate", "-o", str(tmp_path), "--models", "xgb"])
    assert result.exit_code == 2
    assert "unknown model" in result.output
    recipe = Path(__file__).resolve().parent.parent / "export" / "recipes" / "mlp.json"
    result = CliRunner().invoke(app, ["evaluate", "-o", str(tmp_path), "--recipe", str(recipe),
                                      "--protocol", "emobox", "--protocol", "random"])
    assert result.exit_code == 2
    assert "unknown protocol random" in result.output and "Traceback" not in result.output


def test_train_writes_the_fused_model_too(tiny_ravdess, cache, tmp_path):
    from ser_edge import Classifier

    out, fused = tmp_path / "m.onnx", tmp_path / "m-waveform.onnx"
    args = ["train", "-c", f"ravdess={tiny_ravdess}", "-o", str(out), "--no-evaluate",
            "--waveform-out", str(fused), "--params", '{"max_iter": 50}', "--cache-dir",
            str(cache), *SMALL]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"wrote {fused}" in result.output and "input 'waveform'" in result.output
    a, b = Classifier(out), Classifier(fused)
    assert (a.input_kind, b.input_kind) == ("features", "waveform")
    clip = next(tiny_ravdess.glob("Actor_01/*.flac"))
    p, q = a.classify(clip), b.classify(clip)
    assert p.label == q.label
    assert max(abs(p.probabilities[k] - q.probabilities[k]) for k in p.probabilities) <= 1e-3
    # A configuration that cannot be fused stops before training, naming the field.
    args[args.index("--tuning") + 1] = "estimate"
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "FeatureConfig.tuning" in result.output
