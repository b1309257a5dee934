"""The ``ser-edge`` command: classify, listen, timeline, info, features, bench.

A thin typer front end over the Python API (:class:`ser_edge.Classifier`). It imports nothing
heavy at start-up: numpy, soundfile and onnxruntime are imported by the command that needs them,
so ``ser-edge --help`` and ``ser-edge --version`` answer at once on a Raspberry Pi.

Exit status: 0 when every file was classified, 1 when at least one file failed or held no speech
(each failure is one line on stderr naming the file and the reason), 2 for a usage error (an
unknown option, a bad value, an output that cannot be written), 3 when the model cannot be used
(or gave something other than probabilities for a file), 4 when the Dask cluster of
``--scheduler`` cannot be used, 141 when standard output was closed early (``| head``), the status
of a program killed by SIGPIPE, quietly.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import sys
import textwrap
import warnings
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._names import display_name, printable
from ._threads import default_to_one_thread
from ._version import __version__
from .errors import AudioWarning, ClusterError, ModelError, NoSpeechError, SerEdgeError

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

    from .model import Classifier, Failure, Prediction

# One BLAS/OpenMP thread unless the user chose otherwise, set before any command loads numpy.
default_to_one_thread()

__all__ = ["app", "main", "AUDIO_EXTENSIONS", "find_audio"]

#: Exit statuses, as documented in ``--help`` and docs/errors.md.
EXIT_OK = 0
EXIT_FILE_FAILED = 1
EXIT_USAGE = 2
EXIT_MODEL = 3
#: ``--scheduler``: the Dask cluster cannot be used (the ``cluster`` extra is missing, the
#: scheduler does not answer).
EXIT_CLUSTER = 4
#: Standard output closed before everything was written (``ser-edge classify dir | head -1``):
#: 128 + SIGPIPE, what a shell reports for ``cat`` or ``yes`` in the same place.
EXIT_BROKEN_PIPE = 141

#: The ``PATH`` that reads audio from standard input.
STDIN = "-"

#: File name extensions taken from folders: the formats libsndfile reads. A file named on the
#: command line is tried whatever its extension.
AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .aiff .aif .aifc .au .snd .caf .w64 .rf64 "
    ".sd2 .voc .htk .svx .8svx .paf .pvf .sds .ircam .sf .xi .avr .wve .nist .sph .mpc".split()
)

#: Show a progress bar (on stderr, when it is a terminal) from this many files on.
PROGRESS_MIN_FILES = 5

EXIT_CODES_HELP = (
    "Exit status: 0 every file classified; 1 at least one file failed or held no speech (one "
    "line on stderr each, the other files are still classified); 2 usage error; 3 the model "
    "cannot be used; 4 the Dask cluster (--scheduler) cannot be used; 141 standard output "
    "closed early (e.g. by head)."
)

app = typer.Typer(
    name="ser-edge",
    help=(
        "Speech emotion recognition for edge devices: librosa-exact features in numpy and an "
        "ONNX model, no librosa at run time.\n\n"
        "Examples:\n\n"
        "  ser-edge classify clip.wav\n\n"
        "  ser-edge classify recordings/ --json > emotions.jsonl\n\n"
        "  ser-edge timeline call.wav\n\n"
        "  arecord -f S16_LE -r 16000 -c 1 | ser-edge listen -\n\n"
        "  ser-edge info\n\n"
        "  ser-edge bench\n\n" + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class OutputFormat(str, Enum):
    """How ``classify`` prints its results."""

    text = "text"
    json = "json"
    csv = "csv"


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ser-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Speech emotion recognition for edge devices."""


# -- helpers -------------------------------------------------------------------------------------


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"ser-edge: error: {message}", err=True)
    return typer.Exit(code=code)


def _out(text: str) -> None:
    """Write to standard output at once.

    A closed pipe ends the command quietly (exit 141); standard output closed (``>&-``) or that
    cannot be written (a full disk) ends it with one line and exit status 2.
    """
    if sys.stdout is None:
        raise _fail("standard output is closed: nowhere to write the results (--output FILE "
                    "writes them to a file)", EXIT_USAGE)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise _closed_pipe() from None
    except OSError as exc:
        _discard_stdout()
        raise _fail(f"standard output: cannot write ({exc.strerror or exc})",
                    EXIT_USAGE) from None


def _closed_pipe() -> typer.Exit:
    _discard_stdout()
    return typer.Exit(code=EXIT_BROKEN_PIPE)


def _discard_stdout() -> None:
    # Whatever is still buffered for stdout would fail again at exit: send it nowhere.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # pragma: no cover - stdout without a descriptor
        pass


def _stdin_closed() -> bool:
    """Whether standard input was closed when ser-edge started (``<&-``)."""
    return sys.stdin is None


#: The ``--model`` option of every command that uses a model.
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", metavar="NAME|FILE",
                 help="A bundled model's name (see `ser-edge models`) or an ONNX model file "
                      "exported by `python -m export`.",
                 show_default="the default bundled model"),
]


def _load_classifier(model: str | None) -> Classifier:
    from .model import Classifier

    try:
        return Classifier(model)
    except ModelError as exc:
        raise _fail(str(exc), EXIT_MODEL) from None


#: ``--adapt/--no-adapt`` of listen and timeline: by default, as the model can.
AdaptOpt = Annotated[
    bool | None,
    typer.Option("--adapt/--no-adapt",
                 help="Adapt to the speaker and microphone as the audio comes (a profile of "
                      "their speech statistics, used once it holds the model's minimum).",
                 show_default="when the model supports it"),
]


def _auto_adapt(clf: Classifier, adapt: bool | None) -> bool:
    """``--adapt/--no-adapt``, or when neither is given, whether the model can adapt."""
    if adapt is not None:
        return adapt
    return clf.adaptation is not None and clf.input_kind != "waveform"


#: ``--profile`` of classify, listen and timeline.
ProfileOpt = Annotated[
    Path | None,
    typer.Option("--profile", metavar="FILE",
                 help="A speaker profile (JSON): read first if it exists, and written back "
                      "with what this run learnt when adapting. Carries a speaker's "
                      "statistics across runs.", show_default=False),
]


def _adapting(clf: Classifier, adapt: bool, profile: Path | None) -> None:
    """Give ``clf`` a speaker profile (``profile`` if it exists) and let it learn (``adapt``)."""
    from .adapt import SpeakerProfile
    from .errors import ParameterError

    if not adapt and profile is None:
        return
    try:
        if profile is not None and profile.exists():
            clf.profile = SpeakerProfile.load(profile, clf.feature_config)
            clf.new_profile()  # the model must adapt at all
        elif not adapt:
            raise _fail(f"{display_name(profile)}: no such profile: make one with --adapt",
                        EXIT_USAGE)
        else:
            clf.profile = clf.new_profile()
    except ModelError as exc:
        raise _fail(str(exc), EXIT_MODEL) from None
    except ParameterError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    clf.adapt = adapt


def _save_profile(clf: Classifier, profile: Path | None) -> None:
    """Write the learnt profile to ``profile`` (a one-line error if it cannot be written)."""
    if profile is None or clf.profile is None or not clf.adapt:
        return
    try:
        clf.profile.save(profile)
    except OSError as exc:
        raise _fail(f"{display_name(profile)}: cannot write the profile: {_one_line(exc)}",
                    EXIT_FILE_FAILED) from None


def find_audio(paths: list[Path], *, stdin: bool = False) -> list[tuple[Path, str | None]]:
    """Expand files and folders into a list of ``(path, problem)``.

    Folders are searched recursively for files whose extension is in :data:`AUDIO_EXTENSIONS`
    (any case), in sorted order. Hidden entries (names starting with ``.``: macOS's ``._clip.wav``,
    ``.git``) are skipped, and so are symbolic links to folders; a file named directly is kept
    whatever its name or extension. ``problem`` is None, or a one-line reason why the path
    cannot be used: missing, permission denied (a named path, or a subfolder that cannot be
    searched), a broken symbolic link found in a folder, a folder without audio files. With
    ``stdin``, ``-`` stands for standard input.
    """
    found: list[tuple[Path, str | None]] = []
    for path in paths:
        name = display_name(path)
        if stdin and str(path) == STDIN:
            found.append((path, None))
            continue
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            broken = os.path.islink(path)
            found.append((path, f"{name}: broken symbolic link (its target does not exist)"
                          if broken else f"{name}: no such file or folder"))
            continue
        except PermissionError:
            found.append((path, f"{name}: permission denied"))
            continue
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            found.append((path, f"{name}: {reason}"))
            continue
        if not stat.S_ISDIR(mode):
            found.append((path, None))
            continue
        before = len(found)
        _scan(path, found)
        if len(found) == before:
            found.append((path, f"{name}: no audio files in this folder"))
    return found


def _scan(folder: Path, found: list[tuple[Path, str | None]]) -> None:
    """Append the audio files under ``folder`` (and its problems) to ``found``, sorted by name."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda entry: entry.name)
    except PermissionError:
        found.append((folder, f"{display_name(folder)}: permission denied (folder not searched)"))
        return
    except OSError as exc:
        found.append((folder, f"{display_name(folder)}: cannot list folder ({exc.strerror})"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = folder / entry.name
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            _scan(path, found)
            continue
        if os.path.splitext(entry.name)[1].lower() not in AUDIO_EXTENSIONS:
            continue
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            if entry.is_symlink():
                found.append((path, f"{display_name(path)}: broken symbolic link (its target "
                              "does not exist)"))
            continue
        except OSError:  # e.g. a link into a folder we may not search: let opening it say why
            found.append((path, None))
            continue
        if stat.S_ISREG(mode):
            found.append((path, None))


@contextlib.contextmanager
def _progress(total: int, done: int, enabled: bool) -> Iterator[Any]:
    """The progress bar of typer (click's) on stderr, from ``done`` of ``total``; None if disabled.

    Result lines share the terminal with it: :func:`_above_bar` clears its line before one is
    written, and the bar's next step draws it again below; the finished bar stays. Its module
    is imported only when a bar is drawn.
    """
    if not enabled:
        yield None
        return
    with typer.progressbar(length=total, file=sys.stderr, show_pos=True, width=30,
                           bar_template="[%(bar)s] %(info)s") as bar:
        bar.update(done)
        yield bar


def _above_bar(bar: Any) -> None:
    """Clear the progress bar's line, if one is drawn, so that a result line takes its place."""
    if bar is not None:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def _stderr_is_terminal() -> bool:
    return sys.stderr is not None and sys.stderr.isatty()


def _shown(path: Path) -> str:
    """How a path from the command line is printed (``-`` reads standard input)."""
    return "<stdin>" if str(path) == STDIN else display_name(_source(path))


def _text_line(p: Prediction, top_k: int, width: int) -> str:
    ranked = p.top(top_k)
    label, confidence = ranked[0]
    rest = ", ".join(f"{name} {prob:.2f}" for name, prob in ranked[1:])
    line = f"{display_name(p.path):<{width}}  {label:<9}  {confidence:.2f}"
    return f"{line}  {rest}" if rest else line


# -- commands ------------------------------------------------------------------------------------


@app.command(
    help=(
        "Classify the emotion of speech recordings.\n\n"
        "PATHS are audio files or folders (searched recursively for audio files: WAV, FLAC, "
        "OGG/Opus, MP3, AIFF, CAF, ...; hidden files skipped), or - for standard input. One "
        "line per file: path, label, confidence and the next-best labels. A file in which no "
        "speech is detected gets no emotion but the error 'no speech detected' (--no-vad "
        "classifies it anyway).\n\n"
        "Many files are classified by several worker processes (--jobs, default: every usable "
        "core, once the batch is big enough to be worth it), or by a Dask cluster "
        "(--scheduler); the output is the same, in input order unless --unordered. --output "
        "appends the results to a file as they come; --resume continues an interrupted run, "
        "skipping the files already in it.\n\n"
        "Examples:\n\n"
        "  ser-edge classify clip.wav\n\n"
        "  ser-edge classify recordings/ --top-k 2\n\n"
        "  ser-edge classify a.flac b.wav --json\n\n"
        "  ser-edge classify recordings/ --csv > emotions.csv\n\n"
        "  ser-edge classify archive/ --output emotions.jsonl --resume\n\n"
        "  ser-edge classify /shared/archive/ --scheduler tcp://10.0.0.1:8786 -o emotions.csv\n\n"
        "  curl -s https://example.org/clip.flac | ser-edge classify -\n\n"
        "  ser-edge classify --sample\n\n" + EXIT_CODES_HELP
    ),
)
def classify(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Audio files or folders; - reads standard input.", metavar="PATH",
                       show_default=False, readable=False),
    ] = None,
    sample: Annotated[
        bool,
        typer.Option("--sample", help="Classify the two clips shipped with ser-edge (EmoDB, CC0: "
                                      "one speaker, angry and sad), after any PATH."),
    ] = False,
    json_: Annotated[
        bool,
        typer.Option(
            "--json",
            help=(
                "One JSON object per line: path, label, probabilities, top, duration_s, "
                "sample_rate; or path and error."
            ),
        ),
    ] = False,
    csv_: Annotated[
        bool,
        typer.Option(
            "--csv",
            help=(
                "CSV with a header: path, label, confidence, duration_s, sample_rate, one column "
                "per label, error."
            ),
        ),
    ] = False,
    top_k: Annotated[
        int,
        typer.Option("--top-k", "-k", min=1, help="Labels shown per file (text and --json)."),
    ] = 3,
    model: ModelOpt = None,
    no_vad: Annotated[
        bool,
        typer.Option("--no-vad", help="Classify files even when no speech is detected in them."),
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1,
                     help="Worker processes, each with one thread and the model loaded once, "
                          "at most the usable cores. 1: none, everything in this process.",
                     show_default="the usable cores, for a batch worth starting them"),
    ] = None,
    unordered: Annotated[
        bool,
        typer.Option("--unordered", help="Print each result as soon as it is ready, not in "
                                         "input order."),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE",
                     help="Append the results to FILE (.jsonl: JSON lines, .csv: CSV) as they "
                          "come, one flushed line each, instead of printing them.",
                     show_default=False),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the --output file of an interrupted run: skip "
                                      "the files already in it (with their result or error)."),
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", metavar="ADDRESS",
                     help="Classify on a Dask cluster (tcp://HOST:8786; the 'cluster' extra). "
                          "Its workers must read the files at the same absolute paths. Name only "
                          "a scheduler you trust: Dask unpickles what it sends.",
                     show_default=False),
    ] = None,
    adapt: Annotated[
        bool,
        typer.Option("--adapt", help="Adapt to the speaker and microphone: learn a profile from "
                                     "the speech of every file first, then classify each with "
                                     "it. For the files of one speaker; in this process. The "
                                     "model must support it (see `ser-edge info`)."),
    ] = False,
    profile: ProfileOpt = None,
) -> None:
    """Classify the emotion of speech recordings."""
    if not paths and not sample:
        typer.echo(ctx.get_usage(), err=True)
        typer.echo("ser-edge: error: no PATH: name audio files or folders, or - for standard "
                   "input", err=True)
        typer.echo("Try 'ser-edge classify --sample' (two clips shipped with ser-edge), or "
                   "'ser-edge classify --help'.", err=True)
        raise typer.Exit(code=EXIT_USAGE)
    if sample:
        from .samples import SAMPLES

        paths = [*(paths or []), *SAMPLES.values()]
    if json_ and csv_:
        raise typer.BadParameter("choose one of --json and --csv", param_hint="--json/--csv")
    if jobs is not None and scheduler is not None:
        raise typer.BadParameter("choose one of --jobs (this machine) and --scheduler (a Dask "
                                 "cluster)", param_hint="--jobs/--scheduler")
    if resume and output is None:
        raise typer.BadParameter("--resume continues an --output file", param_hint="--resume")
    if resume and any(str(path) == STDIN for path in paths):
        raise typer.BadParameter("standard input (-) cannot be resumed: what it held last time "
                                 "cannot be told; classify it without --resume",
                                 param_hint="--resume")
    fmt = OutputFormat.json if json_ else OutputFormat.csv if csv_ else OutputFormat.text
    if output is not None:
        from .results import FORMATS

        kind = FORMATS.get(output.suffix.lower())
        if kind is None:
            raise typer.BadParameter(f"the extension picks the format: {', '.join(FORMATS)}",
                                     param_hint="--output")
        if fmt is not OutputFormat.text and fmt.value != kind:
            raise typer.BadParameter(f"--{fmt.value} with a .{output.suffix[1:]} file",
                                     param_hint="--output")
        fmt = OutputFormat(kind)
    if (adapt or profile is not None) and scheduler is not None:
        raise typer.BadParameter("a speaker profile is used in this process, not on a cluster",
                                 param_hint="--adapt/--profile")
    clf = _load_classifier(model)
    top_k = min(top_k, len(clf.labels))
    items = find_audio(paths, stdin=True)
    _adapting(clf, adapt, profile)
    if adapt:  # first every file's speech into the profile, then each classified with it
        _learn(clf, items)
        _save_profile(clf, profile)
        clf.adapt = False
    jobs = 1 if clf.profile is not None else _capped_jobs(jobs)
    from .results import model_identity

    # Records name their model by its digest; text output has no records (and no hashing).
    model_id = ("" if fmt is OutputFormat.text else
                model_identity(clf.name or clf.model_path.name, clf.sha256))
    sink = _results_file(output, clf, resume, model_id) if output is not None else None
    try:
        _classify(items, clf, fmt, top_k, sink, jobs=jobs, ordered=not unordered,
                  scheduler=scheduler, vad=not no_vad, model_id=model_id)
    finally:
        if sink is not None:
            sink.close()


def _capped_jobs(jobs: int | None) -> int | None:
    """``--jobs``, at most the usable cores; a larger request is lowered, and says so once."""
    from ._threads import usable_cores

    cores = usable_cores()
    if jobs is None or jobs <= cores:
        return jobs
    typer.echo(f"ser-edge: --jobs {jobs} is more than the {cores} usable cores: using {cores}",
               err=True)
    return cores


def _learn(clf: Classifier, items: list[tuple[Path, str | None]]) -> None:
    """Add every usable file's speech to ``clf``'s profile (problems are reported later)."""
    for path, problem in items:
        if problem is not None or str(path) == STDIN:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.learn(path)
        except (SerEdgeError, OSError):
            continue
    if not clf.adaptation.ready(clf.profile):
        typer.echo(f"ser-edge: warning: {clf.profile.seconds:.1f} s of speech is less than the "
                   f"{clf.adaptation.min_seconds:g} s the model adapts with: not adapted",
                   err=True)


def _results_file(output: Path, clf: Classifier, resume: bool, model_id: str) -> Any:
    from .errors import ParameterError
    from .results import ResultsFile

    try:
        return ResultsFile(output, labels=clf.labels, resume=resume, model=model_id)
    except ParameterError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None


def _classify(items: list[tuple[Path, str | None]], clf: Classifier, fmt: OutputFormat,
              top_k: int, sink: Any, *, jobs: int | None, ordered: bool,
              scheduler: str | None, vad: bool = True, model_id: str = "") -> None:
    """Classify ``items`` (from :func:`find_audio`), print or append each result, exit status.

    ``vad``: a file without speech is a :class:`~ser_edge.Failure` (``--no-vad``: False), in
    this process and in every worker (:meth:`~ser_edge.Classifier.classify_many`'s option).
    ``model_id``: the :func:`~ser_edge.results.model_identity` each record names. The status is
    3 if the model gave something other than probabilities for a file (the batch goes on), else
    1 if a file failed.
    """
    from . import batch

    done = sink.done if sink is not None else {}
    skip = [str(path) != STDIN and _shown(path) in done for path, _ in items]
    failed_before = sum(done[_shown(path)] is not None
                        for (path, _), s in zip(items, skip, strict=True) if s)
    if any(skip):
        typer.echo(f"ser-edge: {display_name(sink.path)}: {sum(skip)} of {len(items)} files "
                   f"there already ({failed_before} failed); classifying the other "
                   f"{len(items) - sum(skip)}", err=True)
    todo = [item for item, s in zip(items, skip, strict=True) if not s]
    sources = [_batch_source(path, problem) for path, problem in todo]
    width = min(max((len(_shown(p)) for p, _ in todo), default=0), 60)
    if sink is not None:
        write = _writer(sink)
    else:
        write = _out
        if fmt is OutputFormat.csv:
            from .results import csv_header, csv_line

            write(csv_line(csv_header(clf.labels)))
    failed, model_failed = 0, False
    shown = len(items) >= PROGRESS_MIN_FILES and _stderr_is_terminal()
    try:
        with _progress(len(items), sum(skip), shown) as bar:
            for outcome in batch.outcomes(sources, model=clf, jobs=jobs, ordered=ordered,
                                          scheduler=scheduler, options={"vad": vad}):
                _above_bar(bar)
                failed += _emit(outcome, fmt, write, top_k, width, len(clf.labels), model_id)
                model_failed = model_failed or isinstance(
                    getattr(outcome.result, "error", None), ModelError)
                if bar is not None:
                    bar.update(1)
    except ModelError as exc:  # a worker could not load the model
        raise _fail(str(exc), EXIT_MODEL) from None
    except ClusterError as exc:
        raise _fail(str(exc), EXIT_CLUSTER) from None
    failed += failed_before
    if failed:
        if len(items) > 1:
            typer.echo(f"ser-edge: {failed} of {len(items)} files failed", err=True)
        raise typer.Exit(code=EXIT_MODEL if model_failed else EXIT_FILE_FAILED)


def _writer(sink: Any) -> Any:
    def write(text: str) -> None:
        try:
            sink.write(text)
        except OSError as exc:
            raise _fail(f"{display_name(sink.path)}: cannot write the results file "
                        f"({exc.strerror or exc})", EXIT_USAGE) from None

    return write


class _Problem(Exception):
    """A path that cannot be classified, found before decoding (missing, permission denied)."""


def _problem(path: Path, message: str) -> Failure:
    from .model import Failure

    return Failure(_source_name(path), _Problem(message))


def _source_name(path: Path) -> str:
    """The name of a command-line path's source, unescaped (``<stdin>`` for ``-``)."""
    from ._names import source_name

    return source_name(_source(path))


class _Stdin:
    """Standard input as a source named ``<stdin>``; read once, so it is always copied first."""

    name = "<stdin>"

    def read(self, size: int = -1) -> bytes:
        return sys.stdin.buffer.read(size)


def _source(path: Path) -> Any:
    if str(path) == STDIN:
        return _Stdin()
    # A file called '<stdin>' is named by a longer path: its records must not read as stdin's.
    return f".{os.sep}{path}" if str(path) == _Stdin.name else path


def _batch_source(path: Path, problem: str | None) -> Any:
    """What ``classify`` hands to :mod:`ser_edge.batch` for a path of :func:`find_audio`.

    A :class:`~ser_edge.Failure` for a path with a problem (or a terminal on standard input), a
    source object for ``-``, the path itself otherwise.
    """
    if problem is not None:
        return _problem(path, problem)
    if str(path) == STDIN and _stdin_closed():
        return _problem(path, "<stdin>: standard input is closed: pipe or redirect audio into "
                        "it (ser-edge classify - < clip.wav)")
    if str(path) == STDIN and sys.stdin is not None and sys.stdin.isatty():
        return _problem(path, "<stdin>: standard input is a terminal: pipe or redirect audio "
                        "into it (ser-edge classify - < clip.wav)")
    return _source(path)


def _warn(said: list[str]) -> None:
    """Print a file's warnings, one ``ser-edge: warning: ...`` line each, on stderr."""
    for message in said:
        typer.echo(f"ser-edge: warning: {message}", err=True)


@contextlib.contextmanager
def _audio_warnings(said: list[str]) -> Iterator[None]:
    """Collect the :class:`~ser_edge.AudioWarning` lines raised inside into ``said``, once each.

    Other warnings are not ours to silence: they are shown as Python shows them.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AudioWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, AudioWarning):
                    text = " ".join(str(w.message).split())
                    if text not in said:
                        said.append(text)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _emit(outcome: Any, fmt: OutputFormat, write: Any, top_k: int, width: int,
          n_labels: int, model_id: str = "") -> bool:
    """Print one file's warnings and error on stderr and write its record; True if it failed.

    Each kind of per-file result has its branch here: a prediction, or a failure.
    """
    result, said = outcome.result, outcome.warnings
    _warn(list(said))
    if hasattr(result, "error"):  # a Failure
        message = str(result.error) if isinstance(result.error, _Problem) else result.message
        typer.echo(f"ser-edge: error: {message}", err=True)
        if fmt is OutputFormat.json:  # no speech: the reason alone, as issue 12 documents
            from .results import json_failure

            if isinstance(result.error, NoSpeechError):
                from .model import NO_SPEECH

                message = NO_SPEECH
            write(json_failure(result, message, model_id) + "\n")
        elif fmt is OutputFormat.csv:
            from .results import csv_failure, csv_line

            write(csv_line(csv_failure(result, message, n_labels, model_id)))
        return True
    if fmt is OutputFormat.json:  # a Prediction
        from .results import json_record

        write(json_record(result, top_k, said, model_id) + "\n")
    elif fmt is OutputFormat.csv:
        from .results import csv_line, csv_row

        write(csv_line(csv_row(result, model_id)))
    else:
        write(_text_line(result, top_k, width) + "\n")
    return False


@app.command(
    help=(
        "List the bundled models: name, the default, what the model takes, file size, and its "
        "speaker-independent UAR on EmoBox's RAVDESS folds and robustness, from its metadata. "
        "Use a name with --model.\n\n"
        "Examples:\n\n"
        "  ser-edge models\n\n"
        "  ser-edge classify clip.wav --model mlp\n\n"
        "Exit status: 0 ok; 3 a bundled model cannot be used."
    )
)
def models(
    json_: Annotated[
        bool, typer.Option("--json", help="One JSON object per model, a line each.")
    ] = False,
) -> None:
    """List the bundled models."""
    from .model import BUNDLED_MODELS, DEFAULT_MODEL

    rows = []
    for name in BUNDLED_MODELS:
        clf = _load_classifier(name)
        metrics = clf.metadata.get("metrics") or {}
        si = metrics.get("speaker_independent") or {}
        robust = metrics.get("robustness") or {}
        rows.append({
            "name": name, "default": name == DEFAULT_MODEL, "input_kind": clf.input_kind,
            "bytes": clf.model_path.stat().st_size, "labels": list(clf.labels),
            "uar": si.get("uar_mean"), "protocol": si.get("protocol"),
            "white_noise_20db_unchanged": robust.get("white noise 20 dB SNR"),
            "ravdess_to_emodb_uar": ((metrics.get("cross_corpus") or {}).get(
                "ravdess -> emodb") or {}).get("uar"),
            "loco_uar": (metrics.get("loco") or {}).get("uar_mean"),
            "description": ((clf.metadata.get("training") or {}).get("recipe") or {}).get(
                "description", ""),
            "path": str(clf.model_path),
        })
    if json_:
        for row in rows:
            _out(json.dumps(row) + "\n")
        return
    width = max(6, *(len(row["name"]) + 1 for row in rows))
    figure = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    # The figures on one line, the description wrapped beneath: 80 columns show it all.
    columns = min(max(shutil.get_terminal_size().columns, 40), INFO_WIDTH)
    _out(f"{'name':<{width}} {'input':<9} {'size':>9} {'UAR':>6} {'LOCO':>6} {'R->E':>6} "
         f"{'noise':>6}\n")
    for row in rows:
        star = "*" if row["default"] else " "
        _out(f"{row['name'] + star:<{width}} {row['input_kind']:<9} "
             f"{row['bytes'] / 1024:>6.0f} KiB {figure(row['uar'], '.3f'):>6} "
             f"{figure(row['loco_uar'], '.3f'):>6} "
             f"{figure(row['ravdess_to_emodb_uar'], '.3f'):>6} "
             f"{figure(row['white_noise_20db_unchanged'], '.2f'):>6}\n")
        if row["description"]:
            _out(textwrap.fill(printable(row["description"]), width=columns - 1,
                               initial_indent="  ", subsequent_indent="  ",
                               break_long_words=False, break_on_hyphens=False) + "\n")
    _out("\n" + textwrap.fill(
        "* the default. UAR: speaker-independent, EmoBox's RAVDESS folds (8 emotions, chance "
        "0.125); LOCO: mean UAR over six corpora, each never trained on (leave one corpus "
        "out); R->E: UAR on EmoDB of the model trained on RAVDESS alone (6 emotions, chance "
        "0.167); noise: share of labels unchanged by white noise at 20 dB SNR.",
        width=columns - 1) + "\n")


@app.command(
    help=(
        "Describe a model: labels, features, training data, accuracy and versions, from its "
        "metadata.\n\n"
        "Examples:\n\n"
        "  ser-edge info\n\n"
        "  ser-edge info --model my-model.onnx --json\n\n"
        "Exit status: 0 ok; 2 usage error; 3 the model cannot be used."
    )
)
def info(
    model: ModelOpt = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print the model's metadata as one JSON object.")
    ] = False,
) -> None:
    """Describe a model."""
    clf = _load_classifier(model)
    if json_:
        record = {"model_path": str(clf.model_path), **clf.metadata}
        _out(json.dumps(record, indent=2, sort_keys=True) + "\n")
        return
    from .samples import SAMPLES

    samples = _field("samples:", ", ".join(map(str, SAMPLES.values())) + " (EmoDB, CC0 1.0: "
                     "ser-edge classify --sample)")
    # Metadata is the model file's text: no control character reaches the terminal.
    _out("".join(f"{printable(line)}\n" for line in [*_describe(clf), *samples]))


#: Width of ``ser-edge info``'s lines, and of the label column before each value.
INFO_WIDTH, INFO_LABEL = 100, 11

# Joins a name to its value so that wrapping never parts them ("tol 0.0001").
_TIE = "\u00a0"


def _augmented(recipe: dict[str, Any]) -> str:
    """A recipe's augmentation in a few words (``ser-edge info``)."""
    aug = recipe.get("augment") or {}
    kinds = ", ".join(aug.get("kinds") or [])
    return f"{kinds} ({aug.get('copies', 0)} copies of each clip)" if kinds else "none"


def _field(label: str, text: str) -> list[str]:
    """One labelled field of ``ser-edge info``, wrapped under its value's column, never cut."""
    indent = " " * INFO_LABEL
    lines = textwrap.wrap(text, width=INFO_WIDTH, initial_indent=f"{label:<{INFO_LABEL}}",
                          subsequent_indent=indent, break_long_words=False,
                          break_on_hyphens=False) or [label]
    return [line.replace(_TIE, " ") for line in lines]


def _describe(clf: Classifier) -> list[str]:
    """``ser-edge info``: every value in full, metrics with three decimals, counts as integers."""
    cfg = clf.feature_config
    meta = clf.metadata
    blocks = ", ".join(f"{k} {v}" for k, v in cfg.block_sizes.items())
    if clf.input_kind == "frames":
        pooled = f"{sum(cfg.block_sizes.values())} rows per frame = {' + '.join(cfg.features)} "
        pooled += f"({blocks}), the frame sequence itself"
    else:
        stats = ", ".join(f"{name} {'/'.join(cfg.stats_of(name))}" for name in cfg.features)
        pooled = f"{cfg.n_features} = {' + '.join(cfg.features)} ({blocks}) pooled over time "
        pooled += f"({stats})"
    level = []
    if cfg.trim_zeros:
        level.append("digital silence (samples exactly 0) trimmed from both ends first")
    if cfg.trim_top_db is not None:
        level.append(f"ends quieter than {cfg.trim_top_db:g} dB under the loudest sample trimmed")
    if cfg.align_peak:
        level.append("frames aligned to start on the loudest sample")
    if cfg.level_db is not None:
        level.append(f"level normalised to {cfg.level_db:g} dBFS")
    if cfg.frames == "active":
        floor = "noise floor" if cfg.active_floor_range_db is None else \
            f"noise floor of the frames within {cfg.active_floor_range_db:g} dB"
        level.append(f"active frames only (within {cfg.active_range_db:g} dB of the loudest, "
                     f"{cfg.active_floor_db:g} dB above the {floor})")
    if cfg.norm is not None:
        level.append(f"per-utterance {'mean' if cfg.norm == 'mean' else 'mean and variance'} "
                     "normalisation")
    top = "no top_db" if cfg.top_db is None else f"top_db {cfg.top_db:g}"
    lines = [
        *_field("model:", str(clf.model_path) + (f" (bundled: {clf.name})" if clf.name else "")),
        *_field("labels:", ", ".join(clf.labels)),
        *_field("features:", pooled),
        *_field("analysis:", f"{cfg.sr} Hz, n_fft {cfg.n_fft}, hop {cfg.hop_length}, "
                f"fmin {cfg.fmin:g} Hz, fmax {'sr/2' if cfg.fmax is None else f'{cfg.fmax:g} Hz'}, "
                f"{'HTK' if cfg.htk else 'Slaney'} mel, mel in {'dB' if cfg.mel_db else 'power'}"
                f", {top}" + ("; " + "; ".join(level) if level else "")),
    ]
    if clf.input_kind == "waveform":
        lines += _field("input:", f"waveform, float32 (1, n_samples), mono at {cfg.sr} Hz: the "
                        "features above are computed inside the ONNX graph (python -m export fuse)")
    elif clf.input_kind == "frames":
        lines += _field("input:", f"frame matrix, float32 (1, {sum(cfg.block_sizes.values())}, "
                        f"n_frames), at least {clf.min_frames} frames")
    if clf.adaptation is not None and clf.input_kind != "waveform":
        lines += _field("adapts:", f"to the speaker and microphone once a profile holds "
                        f"{clf.adaptation.min_seconds:g} s of speech (the rows of "
                        f"{', '.join(clf.adaptation.blocks)} standardised by the speaker's "
                        "statistics; classify --adapt, listen and timeline, --profile FILE)")
    training = meta.get("training")
    if isinstance(training, dict):
        recipe = training.get("recipe")
        if isinstance(recipe, dict):
            lines += _field("recipe:", f"{recipe.get('name')}: {recipe.get('description', '')}"
                            .strip().rstrip(":"))
            members = [m for m in recipe.get("members") or [] if isinstance(m, dict)]
            if members:  # an ensemble: each member's model, weight and augmentation
                weights = list(recipe.get("weights") or []) + [None] * len(members)
                lines += _field("members:", "; ".join(
                    f"{m.get('name')} ({m.get('model')}"
                    + (f", weight {w:g}" if isinstance(w, (int, float)) else "")
                    + f", augmented: {_augmented(m)})"
                    for m, w in zip(members, weights[:len(members)], strict=True)))
                how = ("weighted geometric mean, normalised" if recipe.get("combine") ==
                       "geometric" else "weighted mean")
                storage = training.get("storage")
                if isinstance(storage, dict):  # weights rounded: what the build measured
                    change = storage.get("max_probability_change")
                    change = f"{change:.1e}" if isinstance(change, float) else _value(change)
                    how += (f"; weights stored as {storage.get('dtype')} (probabilities within "
                            f"{change} of float32 on {_value(storage.get('clips_checked'))} "
                            "clips)")
                lines += _field("combined:", how)
            else:
                lines += _field("augmented:", _augmented(recipe))
        if isinstance(training.get("temperature"), (int, float)):
            lines += _field("calibrate:", f"probabilities at temperature "
                            f"{training['temperature']:.3f} (fitted out-of-fold)")
        estimator = training.get("estimator")
        steps = training.get("pipeline")
        if estimator:
            extra = (f" (pipeline: {' -> '.join(map(str, steps))})"
                     if isinstance(steps, list) else "")
            lines += _field("estimator:", f"{estimator}{extra}")
        corpora = training.get("corpora")
        if isinstance(corpora, list):
            for i, corpus in enumerate(corpora):
                lines += _field("training:" if i == 0 else "", _corpus(corpus))
        elif corpora is not None:
            lines += _field("training:", _value(corpora))
        if "seed" in training:
            lines += _field("seed:", _value(training["seed"]))
        params = training.get("estimator_params")
        if isinstance(params, dict) and params:
            lines += _field("params:", _value(params))
    metrics = meta.get("metrics")
    if isinstance(metrics, dict):
        first = True
        # The figure to expect on new voices first, then the others as the metadata lists them.
        ordered = sorted(metrics.items(), key=lambda item: item[0] != "speaker_independent")
        for key, value in ordered:
            text = _metrics(value)
            if text:
                lines += _field("metrics:" if first else "", f"{key.replace('_', '-')}: {text}")
                first = False
    versions = training.get("versions") if isinstance(training, dict) else None
    from importlib.metadata import PackageNotFoundError, version

    try:
        ort_version = version("onnxruntime")
    except PackageNotFoundError:  # pragma: no cover - a runtime dependency
        ort_version = "?"
    lines += _field(
        "versions:",
        f"ser-edge {__version__}, onnxruntime {ort_version}"
        + (f"; trained with {_value(versions)}" if versions else ""),
    )
    return lines


def _corpus(corpus: Any) -> str:
    if not isinstance(corpus, dict) or "name" not in corpus:
        return _value(corpus)
    text = f"{corpus['name']}: {corpus.get('n_clips', '?')} clips"
    if "n_speakers" in corpus:
        text += f", {corpus['n_speakers']} speakers"
    if isinstance(corpus.get("emotions"), dict):
        text += f" ({_value(corpus['emotions'])})"
    return text


def _metrics(value: Any) -> str:
    """A metrics entry's numbers, each as :func:`_metric` writes it, and its protocol.

    ``x_mean`` with ``x_std`` reads ``x 0.498 (std 0.060)``; confusion matrices and label lists
    are left to ``--json``.
    """
    if not isinstance(value, dict):
        return _metric(value) if isinstance(value, (int, float)) else ""
    parts, protocol = [], value.get("protocol")
    for key, item in value.items():
        if key.endswith("_std") and f"{key[:-4]}_mean" in value:
            continue
        if isinstance(item, dict):
            inner = _metrics(item)
            if inner:
                parts.append(f"{key} ({inner})")
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            std = value.get(f"{key[:-5]}_std") if key.endswith("_mean") else None
            if isinstance(std, (int, float)):
                parts.append(f"{key[:-5]}{_TIE}{_metric(item)}{_TIE}(std{_TIE}{_metric(std)})")
            else:
                parts.append(f"{key}{_TIE}{_metric(item)}")
    text = ", ".join(parts)
    if isinstance(protocol, str) and text:
        text += f"; {protocol}"
    return text


def _metric(value: Any) -> str:
    """A metric: rates with three decimals, counts as integers."""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _value(value: Any) -> str:
    """A metadata value in full: ``key value, ...``, numbers as written (``0.001``, ``1e-08``)."""
    if isinstance(value, dict):
        return ", ".join(f"{k}{_TIE}{_value(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value) if isinstance(value, str) else repr(value)


@app.command(
    help=(
        "Print the model's input for an audio file as JSON, for people who embed their own "
        "model: path, sample_rate (of the analysis, Hz), names, values, and the feature "
        "configuration. The input is the pooled feature vector, or, for a frame-level model "
        "(the default), the frame matrix: a row name and a list of n_frames values per row.\n\n"
        "Examples:\n\n"
        "  ser-edge features clip.wav\n\n"
        "  ser-edge features clip.wav --model mlp       # the MLP's 272 pooled values\n\n"
        "  ser-edge features clip.wav --model my-model.onnx > clip.json\n\n"
        "Exit status: 0 ok; 1 the file cannot be used; 2 usage error; 3 the model cannot be used."
    ),
    no_args_is_help=True,
)
def features(
    path: Annotated[
        Path, typer.Argument(help="An audio file; - reads standard input.", metavar="PATH",
                             show_default=False, readable=False)
    ],
    model: ModelOpt = None,
) -> None:
    """Print the model's input for an audio file as JSON (vector, or frame matrix)."""
    if str(path) == STDIN and _stdin_closed():
        raise _fail("<stdin>: standard input is closed: pipe or redirect audio into it "
                    "(ser-edge features - < clip.wav)", EXIT_FILE_FAILED)
    clf = _load_classifier(model)
    said: list[str] = []
    try:
        with _audio_warnings(said):
            x = clf.features(_source(path))
    except (SerEdgeError, OSError) as exc:
        from .model import error_line

        _warn(said)
        raise _fail(error_line(_source_name(path), exc), EXIT_FILE_FAILED) from None
    _warn(said)
    cfg = clf.feature_config
    frames = x.ndim == 2
    record = {
        "path": _shown(path),
        "sample_rate": cfg.sr,
        "names": cfg.row_names() if frames else cfg.feature_names(),
        "values": x.tolist(),
        **({"n_frames": int(x.shape[1])} if frames else {}),
        "feature_config": json.loads(cfg.to_json()),
    }
    _out(json.dumps(record) + "\n")


# -- live and long audio -------------------------------------------------------------------------


class PcmFormat(str, Enum):
    """Raw PCM sample formats ``listen -`` reads."""

    s16le = "s16le"
    f32le = "f32le"


BAR_WIDTH = 20


def _bar(p: float) -> str:
    filled = int(round(p * BAR_WIDTH))
    return "#" * filled + "." * (BAR_WIDTH - filled)


def _clock(seconds: float) -> str:
    minutes, s = divmod(max(seconds, 0.0), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{s:04.1f}" if hours else f"{minutes}:{s:04.1f}"


def _mic_chunks(rate: int, channels: int, device: str | None) -> Any:
    """Blocks of the default (or named) microphone through sounddevice, as they are recorded."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library is missing
        raise _fail(
            "the microphone needs sounddevice and PortAudio: pip install 'ser-edge[mic]' "
            "(and on a Raspberry Pi: sudo apt install libportaudio2), or pipe raw PCM to "
            f"`ser-edge listen -` ({type(exc).__name__}: {_one_line(exc)})", EXIT_FILE_FAILED
        ) from None
    import queue

    blocks: queue.Queue = queue.Queue()

    def callback(indata: Any, frames: int, time: Any, status: Any) -> None:
        blocks.put(indata.copy())

    dev: str | int | None = int(device) if device is not None and device.isdigit() else device
    try:
        stream = sd.InputStream(samplerate=rate, channels=channels, dtype="float32",
                                device=dev, blocksize=max(1, rate // 20), callback=callback)
    except Exception as exc:  # sounddevice.PortAudioError, ValueError for a bad device
        raise _fail(f"cannot open the microphone: {_one_line(exc)}", EXIT_FILE_FAILED) from None
    with stream:
        while True:
            try:
                yield blocks.get(timeout=0.5)
            except queue.Empty:
                continue


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


#: ``--mqtt`` and its options, shared by listen and timeline.
MqttOpt = Annotated[
    str | None,
    typer.Option("--mqtt", metavar="URL",
                 help="Also publish each result to an MQTT broker: mqtt://host[:port]/prefix "
                      "(mqtts:// for TLS). JSON on PREFIX/emotion (QoS 1), the label retained "
                      "on PREFIX/state, online/offline (the last will) on PREFIX/availability. "
                      "Needs the 'mqtt' extra.", show_default=False),
]
MqttCredentialsOpt = Annotated[
    Path | None,
    typer.Option("--mqtt-credentials", metavar="FILE",
                 help="A file of KEY=VALUE lines: SER_EDGE_MQTT_USERNAME, "
                      "SER_EDGE_MQTT_PASSWORD, SER_EDGE_MQTT_CA_FILE, SER_EDGE_MQTT_CERT_FILE, "
                      "SER_EDGE_MQTT_KEY_FILE (also read from the environment; never from the "
                      "command line).", show_default=False),
]
HaDiscoveryOpt = Annotated[
    bool,
    typer.Option("--ha-discovery", help="With --mqtt: announce an emotion sensor to Home "
                                        "Assistant (MQTT discovery under homeassistant/)."),
]
MqttQueueOpt = Annotated[
    int,
    typer.Option("--mqtt-queue", min=1, max=1_000_000,
                 help="With --mqtt: results kept while the broker is unreachable; past that "
                      "the oldest are dropped (said once, counted at the end)."),
]


def _mqtt_publisher(url: str | None, creds_file: Path | None, ha_discovery: bool,
                    queue: int, clf: Classifier) -> Any:
    """The :class:`~ser_edge.mqtt.MqttPublisher` of ``--mqtt``, or None without it."""
    if url is None:
        if creds_file is not None or ha_discovery:
            raise typer.BadParameter("--mqtt-credentials and --ha-discovery go with --mqtt URL",
                                     param_hint="--mqtt")
        return None
    from . import mqtt
    from .errors import NetworkError

    try:
        mqtt.parse_url(url)
        creds = mqtt.credentials(creds_file)
    except NetworkError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    try:
        return mqtt.MqttPublisher(url, labels=clf.labels, creds=creds, ha_discovery=ha_discovery,
                                  queue_size=queue, model=clf.name or clf.model_path.name,
                                  warn=mqtt.print_warning)
    except NetworkError as exc:
        raise _fail(str(exc), EXIT_FILE_FAILED) from None


def _mqtt_close(publisher: Any) -> None:
    """Close ``--mqtt``'s publisher and say how many results never reached the broker."""
    if publisher is None:
        return
    unsent = publisher.close()
    if unsent:
        typer.echo(f"ser-edge: warning: {unsent} result(s) never reached the MQTT broker "
                   f"({publisher.dropped} dropped while it was unreachable)", err=True)


@app.command(
    help=(
        "Recognise emotion live: from the microphone, or from raw PCM on standard input "
        "(SOURCE '-').\n\n"
        "Every HOP seconds the last WINDOW seconds are classified; one line per window: time, "
        "label, confidence and a bar, or 'no speech'. --json prints one JSON object per window "
        "instead. Ctrl-C stops (exit status 0); so does the end of standard input.\n\n"
        "The microphone needs the 'mic' extra (pip install 'ser-edge[mic]'; on a Raspberry Pi "
        "also sudo apt install libportaudio2).\n\n"
        "Examples:\n\n"
        "  ser-edge listen\n\n"
        "  arecord -f S16_LE -r 16000 -c 1 | ser-edge listen -\n\n"
        "  ser-edge listen - --rate 48000 --channels 2 --format f32le --json < stream.raw\n\n"
        "Exit status: 0 stopped by Ctrl-C or the end of the input; 1 the input cannot be used "
        "(no microphone, bad samples); 2 usage error; 3 the model cannot be used; 141 standard "
        "output closed early (e.g. by head)."
    )
)
def listen(
    source: Annotated[
        str | None,
        typer.Argument(help="'-' to read raw PCM from standard input; omit for the microphone.",
                       metavar="[SOURCE]", show_default=False),
    ] = None,
    rate: Annotated[
        int, typer.Option("--rate", "-r", min=1000, max=768000, help="Sample rate, in Hz.")
    ] = 16000,
    channels: Annotated[
        int, typer.Option("--channels", "-c", min=1, max=64, help="Channels (interleaved).")
    ] = 1,
    format_: Annotated[
        PcmFormat,
        typer.Option("--format", "-f", help="Sample format of standard input."),
    ] = PcmFormat.s16le,
    window: Annotated[
        float, typer.Option("--window", min=0.1, max=600.0, help="Window length, in seconds.")
    ] = 3.0,
    hop: Annotated[
        float, typer.Option("--hop", min=0.05, max=600.0, help="Seconds between windows.")
    ] = 1.0,
    smooth: Annotated[
        int, typer.Option("--smooth", min=1, max=10_000,
                          help="Average the probabilities over this many windows with speech.")
    ] = 1,
    speech_only: Annotated[
        bool, typer.Option("--speech-only", help="Print only windows with speech.")
    ] = False,
    json_: Annotated[
        bool,
        typer.Option("--json", help="One JSON object per window: start_s, end_s, speech, label, "
                                    "probabilities."),
    ] = False,
    device: Annotated[
        str | None,
        typer.Option("--device", help="Microphone: a sounddevice device name or number.",
                     show_default="the default input"),
    ] = None,
    no_vad: Annotated[
        bool, typer.Option("--no-vad", help="Classify every window, speech or not.")
    ] = False,
    model: ModelOpt = None,
    adapt: AdaptOpt = None,
    profile: ProfileOpt = None,
    mqtt: MqttOpt = None,
    mqtt_credentials: MqttCredentialsOpt = None,
    ha_discovery: HaDiscoveryOpt = False,
    mqtt_queue: MqttQueueOpt = 1000,
) -> None:
    """Recognise emotion live, from the microphone or standard input."""
    if source not in (None, "-"):
        raise typer.BadParameter("SOURCE is '-' (standard input) or nothing (the microphone)",
                                 param_hint="SOURCE")
    clf = _load_classifier(model)
    _adapting(clf, _auto_adapt(clf, adapt), profile)
    publisher = _mqtt_publisher(mqtt, mqtt_credentials, ha_discovery, mqtt_queue, clf)
    try:
        _listen(source, rate, channels, format_.value, window, hop, smooth, speech_only, json_,
                device, not no_vad, clf, publisher)
    except KeyboardInterrupt:  # Ctrl-C: the normal way to stop listening
        _out("")  # every line is already written; a closed pipe still ends quietly
    finally:
        _mqtt_close(publisher)
        _save_profile(clf, profile)


def _listen(source: str | None, rate: int, channels: int, fmt: str, window: float, hop: float,
            smooth: int, speech_only: bool, json_: bool, device: str | None, vad: bool,
            clf: Classifier, publisher: Any = None) -> None:
    from .errors import ParameterError
    from .stream import StreamingClassifier, pcm_chunks

    try:
        stream = StreamingClassifier(clf, sr=rate, channels=channels, window_s=window, hop_s=hop,
                                     smoothing=smooth, vad=vad)
    except ParameterError as exc:
        raise typer.BadParameter(str(exc)) from None
    if source == "-":
        if _stdin_closed():
            raise _fail("standard input is closed: pipe raw PCM into it (arecord -f S16_LE -r "
                        "16000 -c 1 | ser-edge listen -)", EXIT_FILE_FAILED)
        frame_bytes = (2 if fmt == "s16le" else 4) * channels
        chunks = pcm_chunks(sys.stdin.buffer, format=fmt, channels=channels,
                            chunk_bytes=max(frame_bytes, rate // 50 * frame_bytes))
        where = "standard input"
    else:
        chunks = _mic_chunks(rate, channels, device)
        where = "microphone"

    def emit(results: list) -> None:
        lines = []
        for r in results:
            if publisher is not None:  # every window, the no-speech ones included
                publisher.publish(r.to_dict())
            if speech_only and not r.speech:
                continue
            if json_:
                lines.append(json.dumps(r.to_dict()))
            elif r.speech:
                lines.append(f"{_clock(r.start_s):>9} - {_clock(r.end_s):<9} {r.label:<9} "
                             f"{r.confidence:.2f}  {_bar(r.confidence)}")
            else:
                lines.append(f"{_clock(r.start_s):>9} - {_clock(r.end_s):<9} no speech")
        if lines:  # at once, so that a pipe reader sees each window as it comes
            _out("".join(f"{line}\n" for line in lines))

    try:
        for chunk in chunks:
            emit(stream.push(chunk))
        emit(stream.flush())
    except SerEdgeError as exc:
        code = EXIT_MODEL if isinstance(exc, ModelError) else EXIT_FILE_FAILED
        raise _fail(f"{where}: {_one_line(exc)}", code) from None


@app.command(
    help=(
        "Show a long recording as a timeline of emotions: the stretches of speech voice "
        "activity detection finds, each with its label and probabilities.\n\n"
        "Segments longer than --max-segment seconds are cut into equal pieces; stretches without "
        "speech get no emotion. The file is read in bounded memory, whatever its length (twice: "
        "once to find the speech, once to classify it). Text by default: start, end, label, "
        "confidence, next-best labels; or --json (one object per segment) or --csv. --plot "
        "draws emotion over time into an image (needs the 'plot' extra: matplotlib).\n\n"
        "Examples:\n\n"
        "  ser-edge timeline call.wav\n\n"
        "  ser-edge timeline call.wav --csv > call.csv\n\n"
        "  ser-edge timeline call.wav --plot call.png\n\n"
        "  sox call.wav -t flac - | ser-edge timeline -\n\n"
        "Exit status: 0 ok; 1 the file cannot be used or holds no speech; 2 usage error; 3 the "
        "model cannot be used; 141 standard output closed early (e.g. by head)."
    ),
    no_args_is_help=True,
)
def timeline(
    path: Annotated[
        Path, typer.Argument(help="An audio file; - reads standard input.", metavar="PATH",
                             show_default=False, readable=False)
    ],
    json_: Annotated[
        bool,
        typer.Option("--json", help="One JSON object per segment: path, start_s, end_s, label, "
                                    "probabilities."),
    ] = False,
    csv_: Annotated[
        bool,
        typer.Option("--csv", help="CSV with a header: start_s, end_s, label, confidence, one "
                                   "column per label."),
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Also draw emotion over time into this image (PNG, SVG, "
                                    "PDF).", show_default=False),
    ] = None,
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=1, help="Labels shown per segment (text).")
    ] = 3,
    max_segment: Annotated[
        float, typer.Option("--max-segment", min=0.5, max=3600.0,
                            help="Longer segments are cut into pieces, in seconds.")
    ] = 8.0,
    context: Annotated[
        float, typer.Option("--context", min=0.0, max=600.0,
                            help="Audio classified with each segment on either side, in "
                                 "seconds (never past half-way to the next segment).")
    ] = 0.6,
    model: ModelOpt = None,
    adapt: AdaptOpt = None,
    profile: ProfileOpt = None,
    mqtt: MqttOpt = None,
    mqtt_credentials: MqttCredentialsOpt = None,
    ha_discovery: HaDiscoveryOpt = False,
    mqtt_queue: MqttQueueOpt = 1000,
) -> None:
    """Show a long recording as a timeline of emotions."""
    if json_ and csv_:
        raise typer.BadParameter("choose one of --json and --csv", param_hint="--json/--csv")
    if plot is not None:
        from .timeline import check_plotting

        try:
            check_plotting()
        except ImportError as exc:
            raise _fail(str(exc), EXIT_FILE_FAILED) from None
    name = _shown(path)
    if str(path) == STDIN and _stdin_closed():
        raise _fail("<stdin>: standard input is closed: pipe or redirect audio into it "
                    "(ser-edge timeline - < call.wav)", EXIT_FILE_FAILED)
    if str(path) == STDIN and sys.stdin is not None and sys.stdin.isatty():
        raise _fail("<stdin>: standard input is a terminal: pipe or redirect audio into it "
                    "(ser-edge timeline - < call.wav)", EXIT_FILE_FAILED)
    clf = _load_classifier(model)
    _adapting(clf, _auto_adapt(clf, adapt), profile)
    publisher = _mqtt_publisher(mqtt, mqtt_credentials, ha_discovery, mqtt_queue, clf)
    try:
        _timeline_out(path, name, clf, json_, csv_, plot, top_k, max_segment, context, profile,
                      publisher)
    finally:
        _mqtt_close(publisher)


def _timeline_out(path: Path, name: str, clf: Classifier, json_: bool, csv_: bool,
                  plot: Path | None, top_k: int, max_segment: float, context: float,
                  profile: Path | None, publisher: Any) -> None:
    from .model import NO_SPEECH, error_line
    from .timeline import timeline as _timeline

    writer = None
    if csv_:
        from .results import csv_line

        def writer(row: list[Any]) -> None:
            _out(csv_line(row))

        writer(["start_s", "end_s", "label", "confidence", *clf.labels])
    segments = []
    said: list[str] = []
    failure, code = None, EXIT_FILE_FAILED
    try:
        with _audio_warnings(said):
            for seg in _timeline(_source(path), clf, context_s=context,
                                 max_segment_s=max_segment):
                segments.append(seg)
                record = {"path": name, **seg.to_dict()}
                if publisher is not None:
                    publisher.publish(record)
                if json_:
                    _out(json.dumps(record) + "\n")
                elif writer is not None:
                    writer([f"{seg.start_s:.3f}", f"{seg.end_s:.3f}", seg.label,
                                     f"{seg.confidence:.6f}"]
                                    + [f"{p:.6f}" for p in seg.probabilities.values()])
                else:
                    ranked = sorted(seg.probabilities.items(), key=lambda kv: -kv[1])[:top_k]
                    rest = ", ".join(f"{label} {p:.2f}" for label, p in ranked[1:])
                    _out(f"{_clock(seg.start_s):>9} - {_clock(seg.end_s):<9} {seg.label:<9} "
                         f"{seg.confidence:.2f}" + (f"  {rest}" if rest else "") + "\n")
    except (SerEdgeError, OSError) as exc:
        failure = error_line(_source_name(path), exc)
        code = EXIT_MODEL if isinstance(exc, ModelError) else EXIT_FILE_FAILED
    finally:  # the file's warnings first, then its error if any
        _warn(said)
    _save_profile(clf, profile)
    if failure is not None:
        raise _fail(failure, code)
    if not segments:
        typer.echo(f"ser-edge: error: {name}: {NO_SPEECH}", err=True)
        if json_:
            _out(json.dumps({"path": name, "error": NO_SPEECH}) + "\n")
        raise typer.Exit(code=EXIT_FILE_FAILED)
    if plot is not None:
        from .timeline import plot_timeline

        title = name if str(path) == STDIN else display_name(path.name)
        try:
            plot_timeline(segments, clf.labels, plot, title=title)
        except (OSError, ValueError) as exc:
            raise _fail(f"{display_name(plot)}: cannot write the plot: {_one_line(exc)}",
                        EXIT_FILE_FAILED) from None



@app.command(
    help=(
        "Serve emotion recognition over HTTP: POST /classify (an audio file in the body; the "
        "JSON of classify --json), WebSocket /listen (raw PCM in, each window's JSON of listen "
        "--json out; ?rate=&channels=&format=&window=&hop=&smooth=&vad= as listen's options; "
        "the text message 'end' flushes), GET /health, GET /model (info --json).\n\n"
        "Binds 127.0.0.1 (this machine only) unless --host says otherwise. Bad audio gets "
        "classify's error line with status 400 (422: no speech), a body over --max-bytes 413, "
        "more than --max-concurrent requests at once 503. The model is loaded once per worker "
        "process. Needs the 'serve' extra (pip install 'ser-edge[serve]'). Requests are logged "
        "on stderr.\n\n"
        "Examples:\n\n"
        "  ser-edge serve\n\n"
        "  curl --data-binary @clip.wav http://127.0.0.1:8000/classify\n\n"
        "  ser-edge serve --host 0.0.0.0 --port 8080 --workers 2\n\n"
        "SIGINT (Ctrl-C) or SIGTERM stops it gracefully: requests under way are answered "
        "first (up to 5 s). Exit status: 1 the server cannot start (the extra is missing, the "
        "port is taken); 2 usage error; 3 the model cannot be used."
    )
)
def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to bind: 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, max=64,
                          help="Worker processes (one core each), the model loaded in each.")
    ] = 1,
    model: ModelOpt = None,
    max_bytes: Annotated[
        int, typer.Option("--max-bytes", min=1, help="Largest request body or WebSocket "
                                                     "message, in bytes.")
    ] = 16 * 2**20,
    max_concurrent: Annotated[
        int, typer.Option("--max-concurrent", min=1, help="Requests and streams a worker takes "
                                                          "at once; more get 503.")
    ] = 8,
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=1, help="The top pairs of a /classify record.")
    ] = 3,
    no_vad: Annotated[
        bool, typer.Option("--no-vad", help="Classify files even when no speech is detected.")
    ] = False,
) -> None:
    """Serve emotion recognition over HTTP and WebSocket."""
    from .errors import NetworkError

    try:
        from . import serve as _serve

        config = _serve.ServeConfig(model=model, max_bytes=max_bytes,
                                    max_concurrent=max_concurrent, top_k=top_k, vad=not no_vad)
        _serve.run(config, host=host, port=port, workers=workers)
    except NetworkError as exc:
        raise _fail(str(exc), EXIT_FILE_FAILED) from None
    except ModelError as exc:
        raise _fail(str(exc), EXIT_MODEL) from None
    except SystemExit as exc:  # uvicorn's exit when it cannot bind: its reason is logged
        if exc.code not in (0, None):
            raise _fail(f"the server could not start on {host}:{port} (see above)",
                        EXIT_FILE_FAILED) from None


@app.command(
    help=(
        "Benchmark ser-edge on this machine: warm latency per stage, cold start, throughput and "
        "live streaming (processing time per second of audio, latency from a window's end to "
        "its result, memory), as Markdown tables (or --json).\n\n"
        "Without PATH it times a synthetic 3 s speech-like clip at 48 kHz, written to a "
        "temporary folder and deleted afterwards. With PATHs (files or folders) it times the "
        "first file per stage and in cold start, and every file in throughput. If librosa is "
        "installed (and scikit-learn, for inference), librosa's side is timed too and the "
        "ratios printed. BLAS/OpenMP are pinned to one thread (set before numpy loads, and for "
        "the cold-start processes). With the defaults it takes a few seconds on a desktop "
        "computer, longer on a Raspberry Pi, and longer still with librosa (its first run "
        "after install compiles with numba; --no-librosa skips it).\n\n"
        "Examples:\n\n"
        "  ser-edge bench\n\n"
        "  ser-edge bench recordings/ --reps 10 --cold-runs 5\n\n"
        "  ser-edge bench --json > bench.json\n\n"
        "Exit status: 0 ok; 1 a file cannot be used or a measurement failed; 2 usage error; "
        "3 the model cannot be used."
    )
)
def bench(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Audio files or folders (default: a synthetic clip).",
                       metavar="PATH", show_default=False),
    ] = None,
    model: ModelOpt = None,
    reps: Annotated[
        int, typer.Option("--reps", min=1, help="Repetitions per stage (warm latency).")
    ] = 5,
    cold_runs: Annotated[
        int,
        typer.Option("--cold-runs", min=0, help="Fresh processes for the cold start (0: skip)."),
    ] = 3,
    stream_seconds: Annotated[
        float,
        typer.Option("--stream-seconds", min=0.0,
                     help="Seconds of live stream timed (StreamingClassifier in 10 ms chunks, at "
                          "the model's rate and the clip's own; 0: skip)."),
    ] = 60.0,
    no_librosa: Annotated[
        bool,
        typer.Option("--no-librosa", help="Do not time librosa's side even if it is installed."),
    ] = False,
    json_: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object: machine, versions, date, every run."),
    ] = False,
) -> None:
    """Benchmark ser-edge on this machine."""
    # First, before anything loads numpy: its BLAS reads the thread variables once.
    from .bench import pin_threads

    threads = pin_threads()
    from . import bench as _bench

    clf = _load_classifier(model)
    files: list[Path] = []
    if paths:
        items = find_audio(paths)
        problems = [problem for _, problem in items if problem is not None]
        if problems:
            for problem in problems[1:]:
                typer.echo(f"ser-edge: error: {problem}", err=True)
            raise _fail(problems[0], EXIT_FILE_FAILED)
        files = [path for path, _ in items]
    log = (lambda line: typer.echo(f"ser-edge bench: {line}", err=True)) if (
        _stderr_is_terminal() and not json_) else None
    try:
        result = _bench.run(files, model=clf, reps=reps, cold_runs=cold_runs,
                            stream_seconds=stream_seconds,
                            compare_librosa=not no_librosa, threads=threads, log=log)
    except (SerEdgeError, OSError) as exc:
        from .model import error_line

        raise _fail(error_line(files[0] if files else "synthetic clip", exc),
                    EXIT_FILE_FAILED) from None
    except RuntimeError as exc:
        raise _fail(str(exc).splitlines()[0], EXIT_FILE_FAILED) from None
    if json_:
        _out(json.dumps(result, indent=2) + "\n")
    else:
        _out(_bench.to_markdown(result) + "\n")
    failures = result["throughput"]["failures"]
    for message in failures:
        typer.echo(f"ser-edge: error: {message}", err=True)
    if failures:
        raise typer.Exit(code=EXIT_FILE_FAILED)


def _hold_closed_descriptors() -> None:
    """Put ``/dev/null`` on standard descriptors closed at start (``>&-``, ``<&-``, ``2>&-``).

    Python then has no ``sys.stdin`` / ``sys.stdout`` / ``sys.stderr`` (None), which the
    commands check; the descriptor itself is held, so that no file opened later (a results file,
    a model) takes its number and receives what a library writes to it.
    """
    for fd, stream in enumerate((sys.stdin, sys.stdout, sys.stderr)):
        if stream is not None:
            continue
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, os.O_RDWR)
                if null != fd:
                    os.dup2(null, fd)
                    os.close(null)
            except OSError:  # pragma: no cover - no /dev/null
                pass


def main() -> None:
    """Run the ``ser-edge`` command (the console script's entry point)."""
    _hold_closed_descriptors()
    try:
        app(prog_name="ser-edge")
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.stderr.write("\n")
        raise SystemExit(130) from None
    except BrokenPipeError:  # pragma: no cover - a write that did not go through _out
        raise SystemExit(_closed_pipe().exit_code) from None


if __name__ == "__main__":
    main()
