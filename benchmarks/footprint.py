"""Install footprint: a fresh venv with ser-edge's runtime against one with librosa + scikit-learn.

Three virtual environments are made in a temporary folder (and removed afterwards): an empty one
(the baseline: pip and setuptools), one with ``pip install <repo>`` (a wheel built from the
committed tree, ``git archive HEAD``, with the runtime dependencies only), and one with
``pip install librosa==0.11.0 scikit-learn`` and their dependencies. The size on disk of each
``site-packages`` folder is summed as ``du`` does (allocated blocks), with and without the
baseline's pip/setuptools; the largest distributions are listed.

usage: ``python -m benchmarks.footprint [--librosa-spec librosa==0.11.0 scikit-learn]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import _common as C

# Not part of what an application needs at run time (names as group() makes them).
TOOLING = {"pip", "setuptools", "distutils", "distutils_hack", "pkg_resources", "wheel"}


def du(path: Path) -> int:
    """Bytes allocated on disk under ``path`` (as ``du -s``), symlinks not followed."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def top_level_sizes(site: Path) -> dict[str, int]:
    """Bytes per top-level entry of ``site-packages`` (packages, .dist-info, .so, .libs)."""
    sizes = {}
    for entry in site.iterdir():
        sizes[entry.name] = du(entry) if entry.is_dir() else os.lstat(entry).st_blocks * 512
    return sizes


def group(sizes: dict[str, int]) -> dict[str, int]:
    """Sizes per distribution: ``numpy``, ``numpy.libs``, ``numpy-*.dist-info`` summed as one."""
    out: dict[str, int] = {}
    for name, size in sizes.items():
        key = name.split("-")[0].split(".")[0].lstrip("_").lower()
        out[key] = out.get(key, 0) + size
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def make_venv(folder: Path, packages: list[str]) -> Path:
    """Create a venv in ``folder``, pip install ``packages``; its site-packages folder."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    py = folder / "bin" / "python"
    if packages:
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *packages], check=True)
    found = sorted(folder.glob("lib/python*/site-packages"))
    return found[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--librosa-spec", nargs="+", default=["librosa==0.11.0", "scikit-learn"],
                    help="what the seeds' venv installs")
    args = ap.parse_args(argv)
    result = C.start("footprint", args)
    with tempfile.TemporaryDirectory(prefix="ser-edge-footprint-") as tmp:
        tmp = Path(tmp)
        src = tmp / "src"
        src.mkdir()
        archive = subprocess.run(["git", "-C", str(C.ROOT), "archive", "--format=tar", "HEAD"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        head = subprocess.run(["git", "-C", str(C.ROOT), "rev-parse", "--short", "HEAD"],
                              check=True, capture_output=True, text=True).stdout.strip()
        venvs = {"empty venv (pip, setuptools)": [],
                 "ser-edge (pip install <repo>)": [str(src)],
                 "librosa + scikit-learn": list(args.librosa_spec)}
        sizes = {}
        for name, packages in venvs.items():
            print(f"installing {name} ...", file=sys.stderr, flush=True)
            site = make_venv(tmp / f"venv{len(sizes)}", packages)
            entries = top_level_sizes(site)
            tooling = sum(v for k, v in group(entries).items() if k in TOOLING)
            freeze = subprocess.run([str(site.parents[2] / "bin" / "python"), "-m", "pip",
                                     "freeze", "--disable-pip-version-check"],
                                    capture_output=True, text=True).stdout.split()
            sizes[name] = {"site_packages_bytes": sum(entries.values()),
                           "without_tooling_bytes": sum(entries.values()) - tooling,
                           "by_package_bytes": group(entries), "freeze": freeze}
    result.update(repo_commit=head, venvs=sizes)
    a = sizes["ser-edge (pip install <repo>)"]["without_tooling_bytes"]
    b = sizes["librosa + scikit-learn"]["without_tooling_bytes"]
    result["ratio_librosa_over_ser_edge"] = b / a
    rows = []
    for name, s in sizes.items():
        top = ", ".join(f"{k} {v / 2**20:.0f}" for k, v in [
            kv for kv in s["by_package_bytes"].items() if kv[0] not in TOOLING][:6])
        rows.append([name, f"{s['site_packages_bytes'] / 2**20:.1f}",
                     f"{s['without_tooling_bytes'] / 2**20:.1f}", len(s["freeze"]), top or "-"])
    text = C.table(["venv", "site-packages MiB", "without pip/setuptools MiB", "distributions",
                    "largest (MiB)"], rows)
    text += (f"\n\nlibrosa + scikit-learn / ser-edge: {b / a:.1f}x on disk "
             f"(ser-edge built from commit {head}, runtime dependencies only)")
    C.finish(result, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
