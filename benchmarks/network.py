"""Emotion on the network: the cost of --mqtt, a window's trip to a subscriber, serve's rate.

Against issue 25's targets, on real speech (RAVDESS clips end to end, resampled to 16 kHz):

1. **CPU overhead of ``listen --mqtt``**: ``ser-edge listen - --json`` on an hour of 16 kHz
   int16 PCM from a file, with and without ``--mqtt`` to a mosquitto on 127.0.0.1 started
   here; CPU seconds (user + system) of the ser-edge process alone (``wait4``), the runs
   alternated. Target: at most 5% more. On a loaded machine two runs of the same command
   differ by more than that, so the publisher's own CPU is measured too: ``MqttPublisher`` in
   this process (paho's network thread included) publishing as many windows at the pace
   ``listen`` made them, as a share of ``listen``'s CPU.
2. **Latency, window end to subscriber**: ``StreamingClassifier`` and ``MqttPublisher`` in this
   process, fed 10 ms chunks at the pace of real time, a paho subscriber in this process too (one
   clock): from the moment the chunk that completes a window is handed to ``push`` to the
   moment the subscriber has its message; split into the classification (``push``) and the trip
   through the broker. Target: median at most 20 ms.
3. **serve**: ``ser-edge serve --workers 2`` and a client of four threads, each with a kept-alive
   HTTP connection, POSTing a 3 s WAV clip (16 kHz) to ``/classify``; requests per second and
   latency percentiles over ``--requests`` requests after a warm-up, and the resident memory of
   each worker every 500 requests (psutil). Targets: at least 100 requests/s, p95 at most 50 ms,
   memory flat. The client runs on the same two cores as the server. To read the rate against,
   the CPU milliseconds per request of each worker and of the client over the same run,
   ``Classifier.classify`` of the same clip alone in this process (what a worker cannot do
   without: two cores give at most 2000 / that requests/s), and the floor of the HTTP stack:
   ``GET /health`` (no body, no classification) with the same client, against the same server.

The machine is shared: the load average at start and end is in the result.

usage: ``python -m benchmarks.network [--hour-seconds 3600] [--latency-seconds 120]
[--requests 10000]``; writes ``benchmarks/results/network.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _common as C

SR = 16000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:g} s")


class Broker:
    """mosquitto on 127.0.0.1 and a free port, in a folder of its own."""

    def __init__(self, folder: Path):
        binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
        if binary is None:
            raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
        import getpass

        self.port = free_port()
        conf = folder / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                        f"user {getpass.getuser()}\npersistence false\n")
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        self.url = f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def speech_16k(seconds: float) -> np.ndarray:
    """``seconds`` of int16 speech at 16 kHz: one minute of RAVDESS clips, tiled."""
    import soxr

    minute = soxr.resample(C._source_48k(60.0), 48000, SR)
    pcm = (np.clip(minute, -1, 1) * 32767).astype("<i2")
    n = int(seconds * SR)
    return np.tile(pcm, -(-n // len(pcm)))[:n]


# -- 1. CPU overhead -----------------------------------------------------------------------------


def cpu_overhead(folder: Path, broker: Broker, seconds: float, reps: int) -> dict[str, Any]:
    raw = folder / "speech.raw"
    speech_16k(seconds).tofile(raw)
    exe = C.SER_EDGE_EXE
    runs: dict[str, list[dict[str, float]]] = {"listen": [], "listen --mqtt": []}
    commands = {
        "listen": f"exec '{exe}' listen - --json < '{raw}' > /dev/null",
        "listen --mqtt": f"exec '{exe}' listen - --json --mqtt {broker.url}/bench "
                         f"--ha-discovery < '{raw}' > /dev/null",
    }
    for rep in range(reps):
        for name, command in commands.items():
            r = C.run_child(["sh", "-c", command], env=C.child_env())
            runs[name].append({"cpu_s": r["user_s"] + r["sys_s"], "wall_s": r["wall_s"],
                               "peak_rss_mb": r["peak_rss_mb"]})
            print(f"cpu overhead: {name} run {rep + 1}: {runs[name][-1]['cpu_s']:.1f} s CPU",
                  flush=True)
    cpu = {name: statistics.median(r["cpu_s"] for r in rs) for name, rs in runs.items()}
    return {"audio_s": seconds, "windows": int((seconds - 3) // 1) + 1, "runs": runs,
            "cpu_s_median": cpu,
            "overhead_pct": 100 * (cpu["listen --mqtt"] - cpu["listen"]) / cpu["listen"]}


def publisher_cpu(broker: Broker, windows: int, rate: float) -> dict[str, Any]:
    """CPU of ``MqttPublisher`` alone (this process's, paho's network thread included) for
    ``windows`` results at ``rate`` a second: the overhead without the noise of two long runs
    on a loaded machine."""
    from ser_edge import Classifier
    from ser_edge.mqtt import MqttPublisher

    clf = Classifier()
    record = {"start_s": 0.0, "end_s": 3.0, "speech": True, "label": clf.labels[0],
              "probabilities": {label: 1 / len(clf.labels) for label in clf.labels}}
    c0 = time.process_time()
    pub = MqttPublisher(f"{broker.url}/cpu", labels=clf.labels, ha_discovery=True)
    for i in range(windows):
        # The label changes now and then, as a mood does: the state is sent on a change.
        pub.publish({**record, "end_s": 3.0 + i, "label": clf.labels[(i // 10) % 2]})
        time.sleep(1 / rate)
    pub.close()
    return {"windows": windows, "rate_per_s": rate, "cpu_s": time.process_time() - c0}


# -- 2. latency ----------------------------------------------------------------------------------


def latency(broker: Broker, seconds: float) -> dict[str, Any]:
    import paho.mqtt.client as paho

    from ser_edge import Classifier, StreamingClassifier
    from ser_edge.mqtt import MqttPublisher

    clf = Classifier()
    received: dict[float, float] = {}
    subscribed = threading.Event()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        received[json.loads(msg.payload)["end_s"]] = time.perf_counter()

    sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-sub")
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("lat/emotion", qos=1)
    sub.loop_start()
    subscribed.wait(10)
    pub = MqttPublisher(f"{broker.url}/lat", labels=clf.labels)
    stream = StreamingClassifier(clf, sr=SR)
    pcm = speech_16k(seconds)
    step = SR // 100
    handed, published = {}, {}
    t0 = time.perf_counter()
    for i in range(0, len(pcm), step):
        due = t0 + i / SR  # real time: this chunk's audio has been recorded by now
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        start = time.perf_counter()
        results = stream.push(pcm[i : i + step])
        done = time.perf_counter()
        for r in results:
            pub.publish(r.to_dict())
            handed[round(r.end_s, 6)], published[round(r.end_s, 6)] = start, done
    deadline = time.monotonic() + 10
    while len(received) < len(handed) and time.monotonic() < deadline:
        time.sleep(0.01)
    pub.close()
    sub.disconnect()
    sub.loop_stop()
    keys = sorted(set(handed) & set(received))
    total = [1000 * (received[k] - handed[k]) for k in keys]
    classify = [1000 * (published[k] - handed[k]) for k in keys]
    trip = [1000 * (received[k] - published[k]) for k in keys]

    def stats(v: list[float]) -> dict[str, float]:
        return C.summary(v) | {"p95": float(np.percentile(v, 95))}

    return {"audio_s": seconds, "windows": len(handed), "received": len(keys),
            "end_to_end_ms": stats(total), "classify_ms": stats(classify),
            "broker_trip_ms": stats(trip)}


# -- 3. serve ------------------------------------------------------------------------------------


def serve(folder: Path, requests: int, warmup: int, threads: int) -> dict[str, Any]:
    import psutil

    clip = C.make_clip(folder, 3.0, SR)
    body = clip.read_bytes()
    port = free_port()
    proc = subprocess.Popen([str(C.SER_EDGE_EXE), "serve", "--workers", "2", "--port", str(port),
                             "--max-concurrent", str(4 * threads)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=C.child_env())
    try:
        wait_for_port(port, 120)
        # uvicorn's supervisor starts the workers; wait until both answer.
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        while len(parent.children(recursive=True)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        latencies: list[float] = []
        lock = threading.Lock()
        counter = [0]
        memory: list[dict[str, Any]] = []

        def worker_rss() -> dict[str, float]:
            """Each worker's resident memory, in MiB (not multiprocessing's resource tracker)."""
            return {str(p.pid): p.memory_info().rss / 2**20
                    for p in parent.children(recursive=True)
                    if "resource_tracker" not in " ".join(p.cmdline())}

        def client(total: int, record: bool) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            while True:
                with lock:
                    if counter[0] >= total:
                        break
                    counter[0] += 1
                    n = counter[0]
                t = time.perf_counter()
                conn.request("POST", "/classify", body,
                             {"Content-Type": "application/octet-stream"})
                response = conn.getresponse()
                data = response.read()
                took = time.perf_counter() - t
                if response.status != 200:
                    raise RuntimeError(f"status {response.status}: {data[:200]!r}")
                if record:
                    with lock:
                        latencies.append(took)
                        if n % 500 == 0:
                            memory.append({"requests": n, "rss_mb": worker_rss()})
            conn.close()

        def run(total: int, record: bool) -> float:
            counter[0] = 0
            pool = [threading.Thread(target=client, args=(total, record))
                    for _ in range(threads)]
            t = time.perf_counter()
            for th in pool:
                th.start()
            for th in pool:
                th.join()
            return time.perf_counter() - t

        def cpu_s() -> dict[str, float]:
            return {str(p.pid): sum(p.cpu_times()[:2]) for p in parent.children(recursive=True)
                    if "resource_tracker" not in " ".join(p.cmdline())}

        run(warmup, False)
        memory.append({"requests": 0, "rss_mb": worker_rss()})
        cpu0, own0 = cpu_s(), os.times()
        wall = run(requests, True)
        cpu1, own1 = cpu_s(), os.times()
        worker_cpu = {pid: 1000 * (cpu1[pid] - cpu0[pid]) / requests for pid in cpu0 if pid in cpu1}
        client_cpu = 1000 * (own1.user - own0.user + own1.system - own0.system) / requests
        # The floor: the same client and server, GET /health (no body, no classification).
        floor = http_floor(port, threads, min(requests, 3000))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    ms = sorted(1000 * x for x in latencies)
    first, last = memory[0]["rss_mb"], memory[-1]["rss_mb"]
    growth = {pid: last.get(pid, float("nan")) - first[pid] for pid in first}
    return {"clip": f"3 s, {SR} Hz, 16-bit WAV ({len(body)} bytes)", "workers": 2,
            "client_threads": threads, "requests": len(ms), "warmup": warmup, "wall_s": wall,
            "requests_per_s": len(ms) / wall,
            "latency_ms": C.summary(ms) | {"p95": float(np.percentile(ms, 95)),
                                           "p99": float(np.percentile(ms, 99))},
            "memory": memory, "rss_growth_mb": growth,
            "worker_cpu_ms_per_request": worker_cpu, "client_cpu_ms_per_request": client_cpu,
            "classify_cpu_ms": classify_cpu_ms(body), "floor_get_health": floor}


def http_floor(port: int, threads: int, requests: int) -> dict[str, Any]:
    """Requests/s and latency of ``GET /health`` with ``threads`` kept-alive connections."""
    latencies: list[float] = []
    lock = threading.Lock()
    left = [requests]

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if left[0] <= 0:
                    break
                left[0] -= 1
            t = time.perf_counter()
            conn.request("GET", "/health")
            response = conn.getresponse()
            response.read()
            took = time.perf_counter() - t
            with lock:
                latencies.append(took)
        conn.close()

    pool = [threading.Thread(target=client) for _ in range(threads)]
    t = time.perf_counter()
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    wall = time.perf_counter() - t
    ms = [1000 * x for x in latencies]
    return {"requests": len(ms), "requests_per_s": len(ms) / wall,
            "latency_ms": C.summary(ms) | {"p95": float(np.percentile(ms, 95))}}


def classify_cpu_ms(body: bytes, reps: int = 200) -> float:
    """CPU milliseconds of ``Classifier.classify`` on the POSTed clip, in this process (the
    median of ``reps``): what a worker cannot do without."""
    import io

    from ser_edge import Classifier

    clf = Classifier()
    for _ in range(10):
        clf.classify(io.BytesIO(body))
    times = []
    for _ in range(reps):
        t = time.process_time()
        clf.classify(io.BytesIO(body))
        times.append(1000 * (time.process_time() - t))
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hour-seconds", type=float, default=3600.0,
                    help="audio for the CPU overhead, in seconds")
    ap.add_argument("--reps", type=int, default=3, help="runs of each, alternated")
    ap.add_argument("--latency-seconds", type=float, default=120.0,
                    help="real-time stream for the latency, in seconds")
    ap.add_argument("--requests", type=int, default=10000, help="requests to serve")
    ap.add_argument("--threads", type=int, default=4, help="client threads")
    args = ap.parse_args()
    result = C.start("network", args)
    result["source"] = C.source_kind()
    with tempfile.TemporaryDirectory(prefix="ser-edge-network-") as d:
        folder = Path(d)
        broker = Broker(folder)
        try:
            result["cpu_overhead"] = cpu = cpu_overhead(folder, broker, args.hour_seconds,
                                                        args.reps)
            windows = cpu["windows"]
            rate = windows / statistics.median(r["wall_s"] for r in cpu["runs"]["listen"])
            cpu["publisher_alone"] = pub = publisher_cpu(broker, windows, rate)
            pub["pct_of_listen"] = 100 * pub["cpu_s"] / cpu["cpu_s_median"]["listen"]
            result["latency"] = lat = latency(broker, args.latency_seconds)
        finally:
            broker.stop()
        result["serve"] = srv = serve(folder, args.requests, 200, args.threads)
    growth = srv["rss_growth_mb"].values()
    load = f"load average {result['loadavg_start']} at start"
    table = C.table(
        ["measure", "result", "target"],
        [[f"listen --mqtt, CPU over listen ({cpu['audio_s'] / 3600:g} h of 16 kHz audio)",
          f"{cpu['overhead_pct']:+.1f}% ({cpu['cpu_s_median']['listen']:.1f} s -> "
          f"{cpu['cpu_s_median']['listen --mqtt']:.1f} s, median of {args.reps} runs each)",
          "<= 5%"],
         [f"the MQTT publisher alone, in process ({pub['windows']} windows)",
          f"{pub['cpu_s']:.2f} s CPU = {pub['pct_of_listen']:.1f}% of listen's", "<= 5%"],
         [f"window end -> subscriber, median ({lat['windows']} windows)",
          f"{lat['end_to_end_ms']['median']:.1f} ms (p95 {lat['end_to_end_ms']['p95']:.1f}; "
          f"classify {lat['classify_ms']['median']:.1f}, broker trip "
          f"{lat['broker_trip_ms']['median']:.1f})", "<= 20 ms"],
         [f"serve, 2 workers, 3 s clips ({srv['requests']} requests, "
          f"{srv['client_threads']} client threads)",
          f"{srv['requests_per_s']:.0f} requests/s", ">= 100"],
         ["serve, latency p95", f"{srv['latency_ms']['p95']:.1f} ms (median "
          f"{srv['latency_ms']['median']:.1f})", "<= 50 ms"],
         ["serve, CPU per request", "workers " + ", ".join(
             f"{v:.1f}" for v in srv["worker_cpu_ms_per_request"].values())
          + f" ms (classify alone {srv['classify_cpu_ms']:.1f} ms), client "
          f"{srv['client_cpu_ms_per_request']:.1f} ms", ""],
         ["serve's floor: GET /health, the same client",
          f"{srv['floor_get_health']['requests_per_s']:.0f} requests/s (p95 "
          f"{srv['floor_get_health']['latency_ms']['p95']:.1f} ms)", ""],
         [f"serve, worker memory over {srv['requests']} requests",
          ", ".join(f"{g:+.1f} MiB" for g in growth) + " (from "
          + ", ".join(f"{v:.0f}" for v in srv["memory"][0]["rss_mb"].values()) + " MiB)",
          "flat"]])
    C.finish(result, table + f"\n\nTaken on a shared machine ({load}).")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
