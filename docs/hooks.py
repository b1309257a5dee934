"""MkDocs hooks: what the site builds from the repository itself, so that it cannot go stale.

- The command-line references, from the typer apps (``ser-edge`` and ``python -m export``),
  as typer's own ``utils docs`` writes them.
- The repository files the documents link to (model cards and reports, recipes, benchmark
  results, images), mounted at their repository paths; a link from a page of ``docs/`` that
  climbs out of it (``../ser_edge/models/mlp.md``, as GitHub resolves it) is rewritten to the
  mounted copy, and a mounted file's link into ``docs/`` (``../../docs/accuracy.md``) to the
  page, so that links work in both places and ``mkdocs build --strict`` checks them.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent

#: Repository files served by the site at their own paths.
MOUNTED = (
    "ser_edge/models/*.md",
    "ser_edge/models/*-report/summary.md",
    "ser_edge/models/*-report/*.png",
    "ser_edge/models/*-report/report.json",
    "ser_edge/samples/README.md",
    "export/recipes/*.json",
    "export/reports/*.md",
    "export/reports/*.json",
    "export/reports/baseline/*.json",
    "export/reports/**/summary.md",
    "export/reports/**/card.md",
    "export/reports/**/*.png",
    "benchmarks/results/*",
    "examples/web/screenshot.png",
    "LICENSE",
)

#: Generated pages: the command-line references.
REFERENCES = {
    "reference/cli.md": ("ser_edge.cli", "ser-edge", "The `ser-edge` command"),
    "reference/export.md": ("export.__main__", "python -m export",
                            "Training: `python -m export`"),
}

_LINK = re.compile(r"(\]\()(\.\./[^)\s#]+)([^)\s]*\))")


def _cli_reference(module: str, name: str, title: str) -> str:
    import importlib
    import sys

    if str(ROOT) not in sys.path:  # export/ is not installed: it is imported from the clone
        sys.path.insert(0, str(ROOT))

    import typer
    from typer.cli import get_docs_for_click

    app = importlib.import_module(module).app
    command = typer.main.get_command(app)
    ctx = typer.Context(command)
    text = get_docs_for_click(obj=command, ctx=ctx, name=name, title=title)
    return ("<!-- Generated at build time from the typer app (docs/hooks.py): "
            "not a file of the repository. -->\n\n" + text)


def on_files(files: Files, config: Any) -> Files:
    """Add the generated references and the mounted repository files."""
    for uri, (module, name, title) in REFERENCES.items():
        files.append(File.generated(config, uri, content=_cli_reference(module, name, title)))
    seen = {f.src_uri for f in files}
    for pattern in MOUNTED:
        for path in sorted(ROOT.glob(pattern)):
            uri = path.relative_to(ROOT).as_posix()
            if path.is_file() and uri not in seen:
                files.append(File.generated(config, uri, abs_src_path=str(path)))
                seen.add(uri)
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Point a docs page's links out of ``docs/`` at the mounted copies."""
    docs = Path(config["docs_dir"]).resolve()
    here = posixpath.dirname(page.file.src_uri)
    if page.file.abs_src_path is None or not Path(page.file.abs_src_path).resolve().is_relative_to(
            docs):
        # A mounted file: its links are repository paths, but docs/'s pages are at the root.
        def into_docs(m: re.Match[str]) -> str:
            target = posixpath.normpath(posixpath.join(here, m[2]))
            if not target.startswith("docs/"):
                return m[0]
            return m[1] + posixpath.relpath(target[len("docs/"):], here or ".") + m[3]

        return _LINK.sub(into_docs, markdown)

    def fix(m: re.Match[str]) -> str:
        target = posixpath.normpath(posixpath.join("docs", here, m[2]))
        if target.startswith("docs/") or files.get_file_from_path(target) is None:
            return m[0]  # a page of docs/, or not mounted: left for --strict to report
        return m[1] + posixpath.relpath(target, here or ".") + m[3]

    return _LINK.sub(fix, markdown)
