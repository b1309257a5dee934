"""Batches at scale: clips per second of ``ser-edge classify`` with --jobs 1, --jobs 2 and a Dask
cluster of 2 worker processes, memory per worker, and the cold start of one clip before/after.

Each mode is the real command over the RAVDESS folder, in a fresh process, output to /dev/null
(``--json``): ``--jobs 1``, ``--jobs 2``, and ``--scheduler`` to a ``distributed.LocalCluster`` of
2 worker processes with one thread each, started beforehand as a user's cluster would be (the
command's time includes connecting to it). Clips per second is the number of clips over the wall
time from start to exit, start-up included. The modes alternate, in a rotated order each round.

The machine is shared: each run records the load average and, from ``/proc/stat``, the CPU used
by other processes during the run (in cores), beside the run's own CPU time (the command and its
workers, sampled every 0.1 s with psutil). Clips per CPU second shows whether the work per clip
stays the same in parallel; wall-clock speed-ups are only meaningful when the other processes
leave the cores free.

Memory per worker: the peak resident set (``VmHWM``) of each worker process, sampled while it
runs; for the cluster, of the Dask worker processes (their lifetime peak, Dask included).

The cold start (``--baseline DIR``): ``ser-edge classify CLIP`` in a fresh process, with this
checkout's ``ser_edge`` and with the one in DIR (e.g. ``git archive main ser_edge | tar -x -C
DIR``), alternating; wall and CPU time (``wait4``) and peak memory.

usage: ``python -m benchmarks.batch [--limit N] [--rounds 3] [--baseline DIR] [--cold-runs 15]``
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import _common as C

MODES = ("jobs 1", "jobs 2", "cluster of 2")

#: A run is quiet when the other processes on the machine used fewer cores than this.
QUIET = 0.25


def _proc_stat() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


def _hwm_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Sampler(threading.Thread):
    """Every 0.1 s: CPU time and peak memory of a process tree and of extra processes."""

    def __init__(self, root: int, extra: list[int] = ()):
        super().__init__(daemon=True)
        import psutil

        self.psutil, self.root, self.extra = psutil, root, list(extra)
        self.cpu: dict[int, float] = {}
        self.hwm: dict[int, float] = {}
        self.cmd: dict[int, str] = {}
        self.parent: dict[int, int] = {}
        self.start_cpu = {pid: self._cpu(pid) for pid in self.extra}
        self.stop = threading.Event()

    def _cpu(self, pid: int) -> float:
        try:
            t = self.psutil.Process(pid).cpu_times()
            return t.user + t.system
        except self.psutil.Error:
            return self.cpu.get(pid, 0.0)

    def sample(self) -> None:
        try:
            root = self.psutil.Process(self.root)
            procs = [root, *root.children(recursive=True)]
        except self.psutil.Error:
            procs = []
        procs += [self.psutil.Process(p) for p in self.extra if self.psutil.pid_exists(p)]
        for p in procs:
            try:
                t = p.cpu_times()
                self.cpu[p.pid] = t.user + t.system
                if p.pid not in self.cmd:
                    self.cmd[p.pid] = " ".join(p.cmdline())[:200]
                    self.parent[p.pid] = p.ppid()
            except self.psutil.Error:
                continue
            hwm = _hwm_mb(p.pid)
            if hwm is not None:
                self.hwm[p.pid] = max(hwm, self.hwm.get(p.pid, 0.0))

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(0.1)

    def finish(self) -> None:
        self.stop.set()
        self.join()

    def cpu_s(self) -> float:
        return sum(v - self.start_cpu.get(pid, 0.0) for pid, v in self.cpu.items())

    def workers(self) -> list[int]:
        """Local pool workers: children of the forkserver; else the extra processes."""
        servers = {pid for pid, cmd in self.cmd.items() if "forkserver" in cmd
                   and self.parent.get(pid) == self.root}
        found = [pid for pid, ppid in self.parent.items() if ppid in servers]
        return found or [p for p in self.extra if p in self.hwm]


def run_mode(mode: str, folder: Path, n: int, address: str | None,
             cluster_pids: list[int]) -> dict[str, Any]:
    cmd = [str(C.SER_EDGE_EXE), "classify", "--json", str(folder)]
    if mode == "jobs 1":
        cmd += ["--jobs", "1"]
    elif mode == "jobs 2":
        cmd += ["--jobs", "2"]
    else:
        cmd += ["--scheduler", address]
    load0 = C.loadavg()
    busy0, total0 = _proc_stat()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=C.child_env())
    sampler = Sampler(proc.pid, cluster_pids if mode.startswith("cluster") else [])
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.finish()
    busy1, total1 = _proc_stat()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {proc.returncode}: {err.strip()[-500:]}")
    cores = os.cpu_count() or 1
    machine = (busy1 - busy0) / max(total1 - total0, 1) * cores  # cores busy, on average
    own = sampler.cpu_s()
    workers = sampler.workers()
    return {
        "mode": mode, "wall_s": wall, "clips_per_s": n / wall, "cpu_s": own,
        "clips_per_cpu_s": n / own if own else None,
        "machine_busy_cores": machine, "others_cores": max(0.0, machine - own / wall),
        "loadavg_before": load0, "loadavg_after": C.loadavg(),
        "parent_peak_mb": sampler.hwm.get(proc.pid),
        "worker_peak_mb": [sampler.hwm[p] for p in workers],
    }


def cold_start(clip: Path, baseline: Path, runs: int) -> dict[str, Any]:
    """``ser-edge classify CLIP`` with this checkout's ser_edge and the baseline's, alternating."""
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = 'ser-edge'; "
            "from ser_edge.cli import main; main()")
    trees = {"after (this checkout)": C.ROOT, "before (baseline)": baseline}
    for tree in trees.values():  # what an installed package has: compiled modules
        compileall.compile_dir(str(tree / "ser_edge"), quiet=1)
    out: dict[str, list[dict]] = {name: [] for name in trees}
    env = C.child_env()
    for tree in trees.values():  # warm-up: page cache
        C.run_child([sys.executable, "-c", code, str(tree), "classify", str(clip)], env)
    for i in range(runs):
        names = list(trees) if i % 2 == 0 else list(trees)[::-1]
        for name in names:
            r = C.run_child([sys.executable, "-c", code, str(trees[name]), "classify", str(clip)],
                            env)
            r.pop("stdout")
            r["loadavg"] = C.loadavg()
            out[name].append(r)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, help="only the first N clips (a folder of links)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each mode, alternating")
    ap.add_argument("--baseline", type=Path, help="a tree holding the ser_edge to compare the "
                    "cold start with")
    ap.add_argument("--cold-runs", type=int, default=15, help="cold-start runs of each tree")
    args = ap.parse_args(argv)
    files = C.ravdess_files(args.limit)
    if not files:
        sys.exit("RAVDESS not found: set SER_EDGE_DATA (see export/paths.py)")
    import tempfile

    from distributed import LocalCluster

    result = C.start("batch", args)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ser-edge-batch-") as tmp:
        folder = files[0].parent.parent
        if args.limit:
            folder = Path(tmp) / "clips"
            folder.mkdir()
            for f in files:
                (folder / f"{f.parent.name}-{f.name}").symlink_to(f)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster:
            cluster_pids = _worker_pids(cluster)
            # a Dask worker's own memory, before ser-edge is imported in it
            result["cluster_worker_idle_rss_mb"] = [_rss_mb(p) for p in cluster_pids]
            # warm-up: page cache, and each cluster worker's model
            for mode in MODES:
                run_mode(mode, folder, len(files), cluster.scheduler_address, cluster_pids)
            for r in range(args.rounds):
                order = MODES[r % 3:] + MODES[: r % 3]
                for mode in order:
                    one = run_mode(mode, folder, len(files), cluster.scheduler_address,
                                   cluster_pids)
                    one["round"] = r
                    runs.append(one)
                    print(f"round {r + 1}/{args.rounds} {mode}: {one['clips_per_s']:.0f} clips/s,"
                          f" others {one['others_cores']:.2f} cores, load "
                          f"{one['loadavg_before'][0]}", file=sys.stderr, flush=True)
        cold = cold_start(files[0], args.baseline, args.cold_runs) if args.baseline else None

    stats: dict[str, Any] = {}
    rows = []
    for mode in MODES:
        rs = [r for r in runs if r["mode"] == mode]
        rate = [r["clips_per_s"] for r in rs]
        per_cpu = [r["clips_per_cpu_s"] for r in rs if r["clips_per_cpu_s"]]
        others = [r["others_cores"] for r in rs]
        load = [r["loadavg_before"][0] for r in rs]
        peak = [m for r in rs for m in r["worker_peak_mb"]]
        stats[mode] = {"clips_per_s": C.summary(rate), "clips_per_cpu_s": C.summary(per_cpu),
                       "others_cores": C.summary(others), "load1": C.summary(load),
                       "worker_peak_mb_max": max(peak) if peak else None,
                       "parent_peak_mb_max": max((r["parent_peak_mb"] or 0) for r in rs)}
        rows.append([
            f"--jobs {mode[-1]}" if mode.startswith("jobs") else "--scheduler, LocalCluster of 2",
            f"{statistics.median(rate):.0f}", f"{max(rate):.0f}",
            f"{statistics.median(per_cpu):.0f}" if per_cpu else "n/a",
            f"{stats[mode]['worker_peak_mb_max']:.0f}" if peak else "n/a (in-process)",
            f"{statistics.median(others):.2f}", f"{statistics.median(load):.2f}",
        ])
    med = {m: stats[m]["clips_per_s"]["median"] for m in MODES}
    best = {m: stats[m]["clips_per_s"]["max"] for m in MODES}
    # paired: each jobs 2 run over the jobs 1 run of the same round
    def of(mode: str) -> list[dict[str, Any]]:
        return [r for r in runs if r["mode"] == mode]

    paired = [statistics.median(b["clips_per_s"] / a["clips_per_s"]
                                for a, b in zip(of(x), of(y), strict=True))
              for x, y in (("jobs 1", "jobs 2"), ("jobs 2", "cluster of 2"))]
    ratios = {
        "jobs2_over_jobs1_median": med["jobs 2"] / med["jobs 1"],
        "jobs2_over_jobs1_best": best["jobs 2"] / best["jobs 1"],
        "jobs2_over_jobs1_paired": paired[0],
        "cluster_over_jobs2_median": med["cluster of 2"] / med["jobs 2"],
        "cluster_over_jobs2_best": best["cluster of 2"] / best["jobs 2"],
        "cluster_over_jobs2_paired": paired[1],
        "cpu_per_clip_jobs2_over_jobs1": (stats["jobs 1"]["clips_per_cpu_s"]["median"]
                                          / stats["jobs 2"]["clips_per_cpu_s"]["median"]),
    }
    # Wall-clock targets are judged on quiet runs only: other processes under QUIET cores.
    quiet = [r for r in runs if r["others_cores"] < QUIET]

    def judged(x: str, y: str, target: float) -> bool | None:
        a = [r["clips_per_s"] for r in quiet if r["mode"] == x]
        b = [r["clips_per_s"] for r in quiet if r["mode"] == y]
        return max(b) / max(a) >= target if a and b else None

    targets = {
        "jobs2_1.8x": judged("jobs 1", "jobs 2", 1.8),
        "cluster_within_15pct": judged("jobs 2", "cluster of 2", 0.85),
        "worker_memory_100mb": (stats["jobs 2"]["worker_peak_mb_max"] or 1e9) <= 100,
    }
    result.update(n_clips=len(files), corpus="RAVDESS (48 kHz FLAC)", runs=runs, stats=stats,
                  ratios=ratios, targets=targets, quiet_runs=len(quiet))
    text = C.table([f"ser-edge classify, {len(files)} RAVDESS clips", "clips/s (median)",
                    "clips/s (best)", "clips per CPU s", "peak RSS per worker MB",
                    "other processes' CPU (cores)", "load (1 min)"], rows)
    text += (f"\n\n--jobs 2 / --jobs 1: {ratios['jobs2_over_jobs1_median']:.2f}x median, "
             f"{ratios['jobs2_over_jobs1_best']:.2f}x best, "
             f"{ratios['jobs2_over_jobs1_paired']:.2f}x paired by round; CPU per clip "
             f"{ratios['cpu_per_clip_jobs2_over_jobs1']:.2f}x jobs 1's\n"
             f"cluster / --jobs 2: {ratios['cluster_over_jobs2_median']:.2f}x median, "
             f"{ratios['cluster_over_jobs2_best']:.2f}x best, "
             f"{ratios['cluster_over_jobs2_paired']:.2f}x paired\n"
             f"runs with other processes using under {QUIET} cores: {len(quiet)} of "
             f"{len(runs)}")
    idle = [m for m in result.get("cluster_worker_idle_rss_mb", []) if m]
    if idle:
        text += (f"\na Dask worker process before ser-edge is loaded in it: {max(idle):.0f} MB "
                 "resident")
    busy = min((r["others_cores"] for r in runs), default=0.0)

    def verdict(ok: bool | None) -> str:
        if ok is None:
            return (f"NOT MEASURABLE (other processes used {busy:.2f} cores or more in every "
                    "run)")
        return "met" if ok else "MISSED"

    text += (f"\ntargets (wall clock, judged on runs where other processes used under {QUIET} "
             f"cores): jobs 2 >= 1.8x jobs 1 {verdict(targets['jobs2_1.8x'])}; cluster within "
             f"15% of jobs 2 {verdict(targets['cluster_within_15pct'])}; memory per local "
             f"worker <= 100 MB {verdict(targets['worker_memory_100mb'])}")
    if cold:
        result["cold_start"] = cold
        crow = []
        for name, rs in cold.items():
            wall = C.summary([r["wall_s"] for r in rs])
            cpu = C.summary([r["user_s"] + r["sys_s"] for r in rs])
            rss = C.summary([r["peak_rss_mb"] for r in rs])
            crow.append([name, wall["n"], f"{wall['median']:.3f}", f"{wall['min']:.3f}",
                         f"{cpu['median']:.3f}", f"{cpu['min']:.3f}", f"{rss['median']:.0f}"])
        text += "\n\n" + C.table(["cold start, `ser-edge classify` one clip", "runs",
                                  "wall median s", "wall min s", "CPU median s", "CPU min s",
                                  "peak RSS MB"], crow)
    C.finish(result, text)
    return 0


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _worker_pids(cluster: Any) -> list[int]:
    from distributed import Client

    with Client(cluster) as client:
        return list(client.run(os.getpid).values())


if __name__ == "__main__":
    sys.exit(main())
