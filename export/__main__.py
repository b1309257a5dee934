"""``python -m export``: extract features, evaluate models, search the grid, train and export ONNX.

Sub-commands
------------
``features``  write a feature table (CSV) of corpora.
``evaluate``  compare models speaker-independently (plus random split, cross-corpus); report folder.
``grid``      cross-validate the feature and MLP grids of :mod:`export.grid`.
``train``     train one model on all of the chosen clips, evaluate it, and write the ONNX model.
``fuse``      put the feature extraction into the model's graph: one ONNX file, waveform in.
``score``     a built model on whole corpora it never saw: UAR and each emotion's recall.
``data get``  download a corpus from its official source into ser-edge's layout.
``teacher``   Whisper tiny.en's embeddings of every clip, cached (the ``teacher`` extra).
``teacher-probe``  the teacher's linear probe on EmoBox's folds and leave-one-corpus-out.
"""

from __future__ import annotations

import json
import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from ser_edge.errors import ParameterError, SerEdgeError
from ser_edge.features import FeatureConfig

from .data import SOURCES
from .teacher import PROBE_C, PROBE_CORPORA, TEACHER_CORPORA
from .train import DEFAULT_FEATURE_CONFIG, DEFAULT_PARAMS, DEFAULT_SEED, MODELS

app = typer.Typer(
    help="Train speech-emotion models on real corpora, evaluate them honestly, export ONNX.",
    no_args_is_help=True,
    add_completion=False,
)

_D = DEFAULT_FEATURE_CONFIG
_D_FEATURES = ",".join(_D.features)
_D_STATS = ",".join(_D.stats)
_D_TUNING = "estimate" if _D.tuning is None else repr(_D.tuning)
_D_CHROMA = "none" if _D.chroma_threshold is None else repr(_D.chroma_threshold)


@app.callback()
def _root(
    ctx: typer.Context,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            metavar="ADDRESS",
            help="Compute the features on a Dask cluster (tcp://HOST:8786; the 'cluster' extra). "
            "Its workers need the export extra and the corpora at the same paths.",
        ),
    ] = None,
) -> None:
    """Train speech-emotion models on real corpora, evaluate them honestly, export ONNX."""
    if scheduler is not None:
        from .features import use_scheduler

        try:
            ctx.with_resource(use_scheduler(scheduler))
        except SerEdgeError as exc:
            raise _fail(exc) from None


class Model(str, Enum):
    """Classifier choices."""

    mlp = "mlp"
    knn = "knn"
    svm = "svm"
    rf = "rf"
    tree = "tree"


class DftMethod(str, Enum):
    """How the fused graph computes the spectrum (export.onnx_features.dft_power)."""

    fft2 = "fft2"
    matmul = "matmul"
    onnx_dft = "onnx-dft"


class DftDtype(str, Enum):
    """Arithmetic of the fused graph's DFT."""

    float32 = "float32"
    float64 = "float64"


class Stage(str, Enum):
    """Grid stages."""

    features = "features"
    mlp = "mlp"
    refine = "refine"
    tiebreak = "tiebreak"


CorpusOpt = Annotated[
    list[str],
    typer.Option(
        "--corpus",
        "-c",
        help="Corpus to use, repeatable: ravdess, emodb, tess=/folder, folder=/folder "
        "(without '=folder' it is looked up under $SER_EDGE_DATA).",
    ),
]
EmotionsOpt = Annotated[
    str,
    typer.Option(help="Emotion subset: 'all', '4class', '6class' or a comma-separated list."),
]
SrOpt = Annotated[int, typer.Option("--sr", help="Analysis sample rate, Hz.")]
NfftOpt = Annotated[int, typer.Option("--n-fft", help="FFT length, samples.")]
HopOpt = Annotated[int, typer.Option("--hop-length", help="Hop between frames, samples.")]
NmfccOpt = Annotated[int, typer.Option("--n-mfcc", help="Number of MFCCs.")]
NmelsOpt = Annotated[int, typer.Option("--n-mels", help="Number of mel bands.")]
FeaturesOpt = Annotated[str, typer.Option("--features", help="Comma list of mfcc,chroma,mel.")]
StatsOpt = Annotated[str, typer.Option("--stats", help="Comma list of mean,std,min,max.")]
MelDbOpt = Annotated[bool, typer.Option("--mel-db/--mel-power", help="Pool the mel block in dB.")]
ChromaThresholdOpt = Annotated[
    str,
    typer.Option(
        "--chroma-threshold",
        help="Chroma frames below this power stay unscaled (silence), or 'none' (librosa's).",
    ),
]
TuningOpt = Annotated[
    str, typer.Option("--tuning", help="Chroma tuning in bins, or 'estimate' (per clip).")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed of training and splits.")]
JobsOpt = Annotated[int, typer.Option("--jobs", "-j", help="Worker processes (max 2 advised).")]
CacheOpt = Annotated[Path | None, typer.Option("--cache-dir", help="Feature cache folder.")]
TeacherCacheOpt = Annotated[Path | None, typer.Option(
    "--teacher-cache-dir", help="With --recipe, a student's (its 'teacher' field): the cache of "
    "the teacher's embeddings (`python -m export teacher --cache-dir`). Default: --cache-dir.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
FoldsOpt = Annotated[int, typer.Option("--folds", help="Speaker-independent folds.")]
RecipeOpt = Annotated[
    Path | None,
    typer.Option("--recipe", help="A recipe file (export/recipes/*.json): corpora, features, "
                 "model, augmentation, calibration. Overrides the feature and model options."),
]
CrossOpt = Annotated[
    list[str] | None,
    typer.Option("--cross-corpus", help="Corpus to test cross-corpus on (repeatable)."),
]


def _config(
    sr: int,
    n_fft: int,
    hop_length: int,
    n_mfcc: int,
    n_mels: int,
    features: str,
    stats: str,
    mel_db: bool,
    tuning: str,
    chroma_threshold: str = _D_CHROMA,
) -> FeatureConfig:
    tune = None if tuning.strip().lower() in ("estimate", "none") else float(tuning)
    floor = None if chroma_threshold.strip().lower() == "none" else float(chroma_threshold)
    return FeatureConfig(
        features=tuple(s.strip() for s in features.split(",") if s.strip()),
        sr=sr,
        n_fft=n_fft,
        hop_length=hop_length,
        n_mfcc=n_mfcc,
        n_mels=n_mels,
        tuning=tune,
        chroma_threshold=floor,
        mel_db=mel_db,
        stats=tuple(s.strip() for s in stats.split(",") if s.strip()),
    )


def _emotions(text: str) -> str | list[str]:
    text = text.strip()
    return [s.strip() for s in text.split(",")] if "," in text else text


def _command() -> str:
    return "python -m export " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=2)


def _compact(res: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "protocol",
        "n_folds",
        "uar_mean",
        "uar_std",
        "accuracy_mean",
        "accuracy_std",
        "macro_f1_mean",
        "macro_f1_std",
        "uar",
        "accuracy",
        "macro_f1",
        "n_train",
        "n_test",
        "train_corpus",
        "test_corpus",
        "emotions",
        "labels",
        "confusion",
    )
    return {k: res[k] for k in keys if k in res}


def _clip_id(clip: Any) -> str:
    return f"{clip.corpus}:{clip.path.parent.name}/{clip.path.name}"


@app.command()
def features(
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV file to write.")],
    corpus: CorpusOpt = ["ravdess"],  # noqa: B006 - typer reads the default
    emotions: EmotionsOpt = "all",
    sr: SrOpt = _D.sr,
    n_fft: NfftOpt = _D.n_fft,
    hop_length: HopOpt = _D.hop_length,
    n_mfcc: NmfccOpt = _D.n_mfcc,
    n_mels: NmelsOpt = _D.n_mels,
    features: FeaturesOpt = _D_FEATURES,
    stats: StatsOpt = _D_STATS,
    mel_db: MelDbOpt = _D.mel_db,
    tuning: TuningOpt = _D_TUNING,
    chroma_threshold: ChromaThresholdOpt = _D_CHROMA,
    jobs: JobsOpt = 2,
    cache_dir: CacheOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Write one CSV row per clip: path, corpus, speaker, emotion, other labels, features."""
    from .corpora import write_feature_csv
    from .dataset import load_dataset

    try:
        config = _config(sr, n_fft, hop_length, n_mfcc, n_mels, features, stats, mel_db, tuning,
                         chroma_threshold)
        data = load_dataset(
            corpus, config, emotions=_emotions(emotions), n_jobs=jobs, cache_dir=cache_dir,
            progress=not quiet,
        )  # fmt: skip
        write_feature_csv(out, data.clips, data.X, config.feature_names())
    except SerEdgeError as exc:
        raise _fail(exc) from None
    typer.echo(f"wrote {len(data.clips)} clips x {config.n_features} features to {out}")


def _evaluate_one(data: Any, model: str, params: dict, seed: int, folds: int, jobs: int) -> dict:
    from .evaluate import cross_validate, random_split

    cv = cross_validate(
        data.X, data.y, data.speakers, model=model, params=params, seed=seed, n_folds=folds,
        n_jobs=jobs,
    )  # fmt: skip
    rs = random_split(data.X, data.y, model=model, params=params, seed=seed)
    return {"cv": cv, "random": rs}


def _cross(data: Any, cross: list[str], config: FeatureConfig, model: str, params: dict,
           seed: int, jobs: int, cache_dir: Path | None, quiet: bool) -> dict:  # fmt: skip
    from .dataset import load_dataset
    from .evaluate import cross_corpus

    out = {}
    for spec in cross:
        other = load_dataset([spec], config, n_jobs=jobs, cache_dir=cache_dir, progress=not quiet)
        name = other.clips[0].corpus
        train_name = "+".join(sorted({c.corpus for c in data.clips}))
        out[name] = cross_corpus(
            data.X, data.y, other.X, other.y, train_corpus=train_name, test_corpus=name,
            model=model, params=params, seed=seed,
        )  # fmt: skip
    return out


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write.")] = Path(
        "ser_edge/models/mlp.onnx"
    ),
    corpus: CorpusOpt = ["ravdess"],  # noqa: B006
    emotions: EmotionsOpt = "all",
    model: Annotated[Model, typer.Option(help="Classifier.")] = Model.mlp,
    params: Annotated[
        str, typer.Option(help="JSON object of classifier parameters over the defaults.")
    ] = "{}",
    seed: SeedOpt = DEFAULT_SEED,
    sr: SrOpt = _D.sr,
    n_fft: NfftOpt = _D.n_fft,
    hop_length: HopOpt = _D.hop_length,
    n_mfcc: NmfccOpt = _D.n_mfcc,
    n_mels: NmelsOpt = _D.n_mels,
    features: FeaturesOpt = _D_FEATURES,
    stats: StatsOpt = _D_STATS,
    mel_db: MelDbOpt = _D.mel_db,
    tuning: TuningOpt = _D_TUNING,
    chroma_threshold: ChromaThresholdOpt = _D_CHROMA,
    folds: FoldsOpt = 6,
    evaluate: Annotated[
        bool, typer.Option("--evaluate/--no-evaluate", help="Measure metrics for the metadata.")
    ] = True,
    cross_corpus: CrossOpt = None,
    waveform_out: Annotated[
        Path | None,
        typer.Option("--waveform-out", help="Also write the fused model (waveform in) here, "
                     "as `python -m export fuse` does."),
    ] = None,
    recipe: RecipeOpt = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="With --recipe: the report folder of `evaluate --recipe` "
                     "(its figures and calibration temperature go into the model)."),
    ] = None,
    jobs: JobsOpt = 2,
    cache_dir: CacheOpt = None,
    teacher_cache_dir: TeacherCacheOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train one model on all chosen clips, measure it, check ONNX against sklearn, write it."""
    from .dataset import load_dataset
    from .fuse import check_fusable
    from .onnx_export import export_onnx
    from .train import fit_pipeline

    if recipe is not None:
        _train_recipe(recipe, report, out, waveform_out, jobs, cache_dir, quiet,
                      teacher_cache_dir)
        return
    try:
        config = _config(sr, n_fft, hop_length, n_mfcc, n_mels, features, stats, mel_db, tuning,
                         chroma_threshold)
        if waveform_out is not None:
            check_fusable(config)  # before the training, not after
        extra = json.loads(params)
        if not isinstance(extra, dict):
            raise SerEdgeError(f"--params must be a JSON object, got {params!r}")
        data = load_dataset(
            corpus, config, emotions=_emotions(emotions), n_jobs=jobs, cache_dir=cache_dir,
            progress=not quiet,
        )  # fmt: skip
        metrics: dict[str, Any] = {"speaker_independent": {}}
        if evaluate:
            res = _evaluate_one(data, model.value, extra, seed, folds, jobs)
            metrics = {
                "speaker_independent": _compact(res["cv"]),
                "random_split": _compact(res["random"]),
            }
            if cross_corpus:
                cc = _cross(data, cross_corpus, config, model.value, extra, seed, jobs,
                            cache_dir, quiet)  # fmt: skip
                metrics["cross_corpus"] = {k: _compact(v) for k, v in cc.items()}
        pipeline = fit_pipeline(data.X, data.y, model=model.value, params=extra, seed=seed)
        training = {
            "corpora": data.describe(),
            "n_clips": len(data.clips),
            "emotion_subset": emotions,
            "model": model.value,
            "params_over_defaults": extra,
            "seed": seed,
            "command": _command(),
        }
        export_onnx(
            pipeline, feature_config=config, labels=list(pipeline.classes_), training=training,
            metrics=metrics, path=out, check_rows=data.X,
        )  # fmt: skip
    except (SerEdgeError, json.JSONDecodeError) as exc:
        raise _fail(exc) from None
    si = metrics["speaker_independent"]
    summary = f"UAR {si['uar_mean']:.3f} ± {si['uar_std']:.3f}" if si else "not evaluated"
    typer.echo(
        f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB): {model.value}, {len(data.clips)} "
        f"clips, {config.n_features} features, speaker-independent {summary}"
    )
    if waveform_out is not None:
        _fuse_and_report(out, waveform_out, DftMethod.fft2, DftDtype.float32)


def _fuse_and_report(model: Path, out: Path, dft: DftMethod, dtype: DftDtype) -> None:
    from .fuse import GRAPH_KEY, fuse_file

    try:
        fused = fuse_file(model, out, dft=dft.value, dft_dtype=np.dtype(dtype.value).type)
    except SerEdgeError as exc:
        raise _fail(exc) from None
    meta = {p.key: p.value for p in fused.metadata_props}
    config = FeatureConfig.from_json(meta["feature_config"])
    check = json.loads(meta[GRAPH_KEY]).get("check", {})
    typer.echo(
        f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB): input 'waveform', float32 "
        f"(1, n_samples), mono at {config.sr} Hz; features in the graph ({dft.value} DFT, "
        f"{dtype.value}); outputs {', '.join(o.name for o in fused.graph.output)}; "
        f"largest probability difference from the numpy features on "
        f"{check.get('signals', 0)} check signals: {check.get('max_probability_difference')}"
    )


@app.command("fuse")
def fuse_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Fused ONNX file to write.")],
    model: Annotated[str | None, typer.Argument(
        metavar="MODEL", help="A bundled model's name (ser-edge models) or an ONNX model "
        "written by `train` (features in); without it, the default bundled model.",
        show_default=False)] = None,
    dft: Annotated[DftMethod, typer.Option(help="How the graph computes the spectrum.")] = (
        DftMethod.fft2),
    dft_dtype: Annotated[DftDtype, typer.Option(help="Arithmetic of the DFT.")] = (
        DftDtype.float32),
) -> None:
    """One ONNX file from waveform to emotion: the model's features computed in its graph.

    The fused model takes 'waveform', float32 (1, n_samples), mono at the model's sample rate,
    and gives the model's outputs ('label', 'probabilities') with its metadata; it is checked
    against the numpy features + the model on seeded signals before it is written. Without
    MODEL, the default bundled model's: what the JavaScript examples run
    (``--out examples/default-waveform.onnx``).
    """
    from ser_edge.model import resolve_model

    _fuse_and_report(resolve_model(model), out, dft, dft_dtype)


@app.command("evaluate")
def evaluate_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder to write.")],
    corpus: CorpusOpt = ["ravdess"],  # noqa: B006
    emotions: EmotionsOpt = "all",
    models: Annotated[
        str, typer.Option("--models", help=f"Comma list from {', '.join(MODELS)}.")
    ] = ",".join(MODELS),
    seed: SeedOpt = DEFAULT_SEED,
    sr: SrOpt = _D.sr,
    n_fft: NfftOpt = _D.n_fft,
    hop_length: HopOpt = _D.hop_length,
    n_mfcc: NmfccOpt = _D.n_mfcc,
    n_mels: NmelsOpt = _D.n_mels,
    features: FeaturesOpt = _D_FEATURES,
    stats: StatsOpt = _D_STATS,
    mel_db: MelDbOpt = _D.mel_db,
    tuning: TuningOpt = _D_TUNING,
    chroma_threshold: ChromaThresholdOpt = _D_CHROMA,
    folds: FoldsOpt = 6,
    cross_corpus: CrossOpt = None,
    grid: Annotated[
        Path | None, typer.Option("--grid", help="grid.json (from 'grid') to include.")
    ] = None,
    title: Annotated[str, typer.Option(help="Report title.")] = "Evaluation report",
    recipe: RecipeOpt = None,
    protocol: Annotated[list[str] | None, typer.Option(
        "--protocol", help="With --recipe: only these protocols (repeatable): emobox, "
        "contiguous, emodb, cross. Default: all.")] = None,
    jobs: JobsOpt = 2,
    cache_dir: CacheOpt = None,
    teacher_cache_dir: TeacherCacheOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Compare models speaker-independently; write metrics.json, summary.md and plots."""
    if recipe is not None:
        _evaluate_recipe(recipe, out, jobs, cache_dir, quiet, protocol, teacher_cache_dir)
        return
    from .dataset import load_dataset
    from .onnx_export import export_onnx
    from .report import write_report
    from .train import fit_pipeline

    try:
        config = _config(sr, n_fft, hop_length, n_mfcc, n_mels, features, stats, mel_db, tuning,
                         chroma_threshold)
        names = [m.strip() for m in models.split(",") if m.strip()]
        for name in names:
            if name not in MODELS:
                raise SerEdgeError(f"unknown model {name!r}; choose from {MODELS}")
        data = load_dataset(
            corpus, config, emotions=_emotions(emotions), n_jobs=jobs, cache_dir=cache_dir,
            progress=not quiet,
        )  # fmt: skip
        results, random, cross = {}, {}, {}
        for name in names:
            res = _evaluate_one(data, name, {}, seed, folds, jobs)
            pipeline = fit_pipeline(data.X, data.y, model=name, seed=seed)
            onnx_model = export_onnx(
                pipeline, feature_config=config, labels=list(pipeline.classes_),
                training={"model": name, "seed": seed}, metrics={"speaker_independent": {}},
                check_rows=data.X,
            )  # fmt: skip
            res["cv"]["onnx_bytes"] = len(onnx_model.SerializeToString())
            clf_params = pipeline.steps[-1][1].get_params()
            keys = [*DEFAULT_PARAMS[name], "random_state"]
            res["cv"]["params"] = {k: clf_params[k] for k in keys if k in clf_params}
            results[name], random[name] = res["cv"], res["random"]
            if cross_corpus:
                for k, v in _cross(data, cross_corpus, config, name, {}, seed, jobs, cache_dir,
                                   quiet).items():  # fmt: skip
                    cross[f"{name}" if len(cross_corpus) == 1 else f"{name}:{k}"] = v
            if not quiet:
                typer.echo(
                    f"{name:5s} UAR {res['cv']['uar_mean']:.3f} ± {res['cv']['uar_std']:.3f}  "
                    f"acc {res['cv']['accuracy_mean']:.3f}  F1 {res['cv']['macro_f1_mean']:.3f}"
                )
        report = {
            "title": title,
            "command": _command(),
            "feature_config": config.to_json(),
            "dataset": data.describe(),
            "seed": seed,
            "default_model": names[0],
            "models": results,
            "random_split": random,
            "cross_corpus": cross,
            "clips": [_clip_id(c) for c in data.clips],
            "truth": data.y.tolist(),
        }
        if grid is not None:
            loaded = json.loads(Path(grid).read_text())
            report["grid"] = loaded["rows"]
            report["grid_note"] = loaded.get("note", [])
        write_report(out, report)
    except SerEdgeError as exc:
        raise _fail(exc) from None
    typer.echo(f"wrote report to {out}")


@app.command("grid")
def grid_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON file of grid rows (appended).")],
    stage: Annotated[Stage, typer.Option(help="Which grid of export.grid to run.")],
    sr: SrOpt = _D.sr,
    n_fft: NfftOpt = _D.n_fft,
    hop_length: HopOpt = _D.hop_length,
    n_mfcc: NmfccOpt = _D.n_mfcc,
    n_mels: NmelsOpt = _D.n_mels,
    features: FeaturesOpt = _D_FEATURES,
    stats: StatsOpt = _D_STATS,
    mel_db: MelDbOpt = _D.mel_db,
    tuning: TuningOpt = _D_TUNING,
    chroma_threshold: ChromaThresholdOpt = _D_CHROMA,
    seed: SeedOpt = DEFAULT_SEED,
    jobs: JobsOpt = 2,
    cache_dir: CacheOpt = None,
) -> None:
    """Cross-validate the feature grid (default MLP) or the MLP grid (given features), RAVDESS."""
    from .corpora import parse_corpus
    from .dataset import resolve_corpus
    from .grid import FEATURE_GRID, MLP_GRID, REFINE_GRID, TIEBREAK_GRID, Base, run_grid

    try:
        name, root = resolve_corpus("ravdess")
        clips = parse_corpus(name, root).clips
        paths = [c.path for c in clips]
        y = np.array([c.emotion for c in clips])
        speakers = np.array([c.speaker for c in clips])
        if stage is Stage.features:
            entries = [(label, base, fields, {}) for label, base, fields in FEATURE_GRID]
        elif stage is Stage.refine:
            entries = list(REFINE_GRID)
        elif stage is Stage.tiebreak:
            entries = list(TIEBREAK_GRID)
        else:
            config = _config(sr, n_fft, hop_length, n_mfcc, n_mels, features, stats, mel_db, tuning,
                         chroma_threshold)
            base = Base(config.sr, config.n_fft, config.hop_length, config.n_mels)
            fields = {
                "features": config.features, "n_mfcc": config.n_mfcc, "stats": config.stats,
                "mel_db": config.mel_db, "tuning": config.tuning,
            }  # fmt: skip
            entries = [(f"MLP {label}", base, fields, p) for label, p in MLP_GRID]
        rows = run_grid(paths, y, speakers, entries, n_jobs=jobs, cache_dir=cache_dir, seed=seed)
    except SerEdgeError as exc:
        raise _fail(exc) from None
    old = json.loads(out.read_text()) if out.is_file() else {"rows": []}
    old["rows"] = [r for r in old["rows"] if r["label"] not in {x["label"] for x in rows}] + rows
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(old, indent=1) + "\n")
    typer.echo(f"wrote {len(rows)} rows to {out}")


def _evaluate_recipe(path: Path, out: Path, jobs: int, cache_dir: Path | None,
                     quiet: bool, protocols: list[str] | None = None,
                     teacher_cache_dir: Path | None = None) -> None:
    """``evaluate --recipe``: every protocol, robustness and calibration, as a report folder."""
    from .recipe import PROTOCOLS, TrainingRecipe, evaluate_recipe
    from .report import write_recipe_report

    unknown = sorted(set(protocols or ()) - set(PROTOCOLS))
    if unknown:
        raise _fail(ParameterError(f"unknown protocol {', '.join(unknown)}; choose from "
                                   f"{', '.join(PROTOCOLS)}")) from None
    try:
        recipe = TrainingRecipe.load(path)
        report = evaluate_recipe(recipe, jobs=jobs, cache_dir=cache_dir, quiet=quiet,
                                 protocols=tuple(protocols or PROTOCOLS),
                                 log=lambda line: typer.echo(f"{recipe.name}: {line}"),
                                 teacher_cache_dir=teacher_cache_dir)
        report["command"] = _command()
        write_recipe_report(out, report)
    except SerEdgeError as exc:
        raise _fail(exc) from None
    typer.echo(f"wrote report to {out}")


def _train_recipe(path: Path, report_dir: Path | None, out: Path, waveform_out: Path | None,
                  jobs: int, cache_dir: Path | None, quiet: bool,
                  teacher_cache_dir: Path | None = None) -> None:
    """``train --recipe``: the model on every clip, with the report's figures and temperature."""
    from .recipe import TrainingRecipe, build_model

    try:
        recipe = TrainingRecipe.load(path)
        report = None
        if report_dir is not None:
            report = json.loads((Path(report_dir) / "report.json").read_text())
        if waveform_out is not None:
            from .fuse import check_fusable

            check_fusable(recipe.feature_config)
        summary = build_model(recipe, out, report=report, jobs=jobs, cache_dir=cache_dir,
                              quiet=quiet, teacher_cache_dir=teacher_cache_dir)
        if waveform_out is not None:
            from .fuse import fuse_file

            fuse_file(out, waveform_out)
    except (SerEdgeError, OSError, json.JSONDecodeError) as exc:
        raise _fail(exc) from None
    typer.echo(f"wrote {out} ({summary['bytes'] / 1024:.0f} KiB): {recipe.name}, "
               f"{summary['n_clips']} clips, temperature {summary['temperature']:.2f}")


@app.command("score")
def score_cmd(
    corpus: Annotated[list[str], typer.Option(
        "--corpus", help="A corpus the model never saw: NAME or NAME=FOLDER (repeatable).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON file to write.")],
    model: Annotated[str | None, typer.Option(
        "--model", help="A bundled model's name or an ONNX file.")] = None,
    every: Annotated[int, typer.Option("--every", min=1,
                                       help="Every N-th clip of each corpus.")] = 1,
    adapt: Annotated[bool, typer.Option(
        "--adapt", help="Adapt to each speaker (a profile of all their clips) first.")] = False,
) -> None:
    """A built model on whole corpora it never saw: UAR and each emotion's recall."""
    from .score import score_corpora

    try:
        result = score_corpora(model, corpus, every=every, adapt=adapt, log=typer.echo)
    except (SerEdgeError, OSError) as exc:
        raise _fail(exc) from None
    result["command"] = _command()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    typer.echo(f"mean UAR {result['uar_mean']:.3f}; wrote {out}")


@app.command("compare")
def compare_cmd(
    report: Annotated[list[str], typer.Option(
        "--report", help="NAME=FOLDER: a model's report of `evaluate --recipe` (repeatable).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Markdown file to write.")],
    bench: Annotated[list[Path] | None, typer.Option(
        "--bench", help="benchmarks/results/models*.json: parameters, size, inference time "
        "(repeatable: a model takes its figures from the last file that has it).")
    ] = None,
) -> None:
    """The model-comparison table: each report beside EmoBox's published rows."""
    from .compare import comparison_table

    try:
        reports = dict(item.split("=", 1) for item in report)
        measured = {}
        for path in bench or []:
            measured.update(json.loads(path.read_text())["models"])
        table = comparison_table(reports, measured)
    except (SerEdgeError, OSError, ValueError, KeyError) as exc:
        raise _fail(exc) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    typer.echo(table, nl=False)


@app.command("teacher")
def teacher_cmd(
    corpus: CorpusOpt = list(TEACHER_CORPORA),  # noqa: B006 - typer reads the default
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes, each "
                                      "running the teacher on one thread.")] = 1,
    cache_dir: CacheOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Whisper tiny.en's frame embeddings of every clip of the corpora, cached per clip.

    Needs the 'teacher' extra. The cache tag names the teacher, its packages' versions, int8 and
    the front end; a second run reads the cache and computes nothing. Prints the time.
    """
    import time

    from .features import is_cached
    from .teacher import TeacherSpec, corpus_clips, cpu_seconds, teacher_embeddings

    t0, c0 = time.time(), cpu_seconds()
    try:
        spec = TeacherSpec.installed()
        paths = [c.path for c in corpus_clips(corpus)]
        todo = sum(not is_cached(p, spec.tag, cache_dir) for p in paths)
        teacher_embeddings(paths, pooled=True, spec=spec, n_jobs=jobs, cache_dir=cache_dir,
                           progress=not quiet)
    except SerEdgeError as exc:
        raise _fail(exc) from None
    wall, cpu = time.time() - t0, cpu_seconds() - c0
    workers = "" if jobs == 1 else ", the workers' not counted"
    typer.echo(f"{len(paths)} clips of {', '.join(corpus)}: computed {todo}, read "
               f"{len(paths) - todo} from the cache; {wall:.1f} s wall, {cpu:.1f} s CPU "
               f"(this process{workers})")


@app.command("teacher-probe")
def teacher_probe_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder to write.")] = Path(
        "export/reports/teacher-probe"),
    corpus: CorpusOpt = list(PROBE_CORPORA),  # noqa: B006 - typer reads the default
    c: Annotated[float, typer.Option("--c",
                                     help="The logistic regression's C, fixed before the run.")
                 ] = PROBE_C,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes for "
                                      "embeddings not yet cached.")] = 1,
    cache_dir: CacheOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """The teacher's linear probe on EmoBox's RAVDESS folds and leave-one-corpus-out.

    UAR per fold, per corpus and per emotion, out-of-fold; writes probe.json and summary.md.
    """
    from .teacher import run_probe, write_probe_report

    try:
        report = run_probe(corpora=corpus, C=c, n_jobs=jobs, cache_dir=cache_dir,
                           progress=not quiet, log=typer.echo)
    except SerEdgeError as exc:
        raise _fail(exc) from None
    report["command"] = _command()
    write_probe_report(out, report)
    typer.echo(f"wrote {out}")


data_app = typer.Typer(help="The corpora, one command away from their official sources.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

#: The corpora ``data get`` knows.
CorpusName = Enum("CorpusName", {name: name for name in SOURCES}, type=str)


@data_app.command("get")
def data_get(
    name: Annotated[CorpusName, typer.Argument(help="The corpus.", metavar="NAME",
                                               show_default=False)],
    to: Annotated[Path | None, typer.Option(
        "--to", help="The data folder to put it in (the corpus goes into DIR/NAME).",
        metavar="DIR", show_default="$SER_EDGE_DATA, else ../shared/data beside the project")
    ] = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="Another place for the same archive (a mirror).")] = None,
    sha256: Annotated[str | None, typer.Option(
        "--sha256", help="The archive's SHA-256, checked instead of the publisher's checksum.")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Download a corpus, check it, convert it to FLAC in ser-edge's layout, print its licence.

    RAVDESS (speech) comes from its Zenodo record, EmoDB from its site. An interrupted download
    resumes where it stopped (run the command again); the archive is checked against the
    publisher's checksum (or --sha256), and the converted audio against the SHA-256 of the
    samples this project's models were trained and tested on.
    """
    from .data import DataError, get

    try:
        get(name.value, to, url=url, sha256=sha256, progress=not quiet, log=typer.echo)
    except DataError as exc:
        raise _fail(exc) from None


#: The optional dependencies of ``python -m export`` and the extra that installs each (the rest
#: are the ``export`` extra's): a missing one is a line of advice, not a traceback.
EXTRA_OF = {"torch": "nets", "distributed": "cluster"}
EXPORT_EXTRA = ("onnx", "skl2onnx", "sklearn", "librosa", "matplotlib", "joblib", "tqdm",
                "audiomentations", "pyroomacoustics", "scipy", "numba", *EXTRA_OF)


def main() -> None:
    """Entry point of ``python -m export``.

    Raises
    ------
    SystemExit
        With status 2 and one line on stderr when a command needs an extra that is not
        installed (``pip install -e ".[export]"``; ``nets`` for torch).
    """
    try:
        app()
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in EXPORT_EXTRA:
            raise
        extra = EXTRA_OF.get(top, "export")
        command = " ".join(["python -m export", *sys.argv[1:2]])
        typer.echo(f"error: {command} needs the '{extra}' extra ({top} is not installed): "
                   f"pip install -e '.[{extra}]'", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
