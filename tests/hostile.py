"""Hostile input for the tests (issue 23): bad model files, listeners that are not Dask
schedulers, and ``ser-edge`` run with closed or full standard streams, each run bounded in time.

Models are made from a valid source model (the tests' tiny one) with onnx; nothing is stored in
the repository. Listeners bind 127.0.0.1 on a free port, in this process's threads.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Seconds a scheduler probe may take in these tests (the command's own default is 10).
CONNECT_TIMEOUT_S = 2.0

#: Seconds any one ``ser-edge`` run may take here before the test fails (a hang is a failure).
RUN_TIMEOUT_S = 120


# -- running ser-edge ----------------------------------------------------------------------------


def ser_edge(*args: str | Path, cwd: Path | None = None, stdin: bytes | str | None = None,
             stdout: str = "pipe", file_size: int | None = None,
             connect_timeout_s: float | None = None,
             timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run ``ser-edge`` (this checkout's) in a fresh process; a hang fails the test.

    Parameters
    ----------
    args : str or Path
        The command line after ``ser-edge``.
    cwd : Path, optional
    stdin : bytes, "closed" or None
        What standard input holds; ``"closed"``: descriptor 0 closed (``<&-``); None: empty.
    stdout : {"pipe", "closed", "full"}
        Captured; closed (``>&-``); or ``/dev/full`` (every write fails with ENOSPC).
    file_size : int, optional
        ``RLIMIT_FSIZE`` in bytes (``ulimit -f``), SIGXFSZ ignored: a write past it fails with
        EFBIG, as on a full disk.
    connect_timeout_s : float, optional
        :data:`ser_edge.batch.CONNECT_TIMEOUT_S` for this run.
    timeout : float
        Seconds before the run is killed (``subprocess.TimeoutExpired``).
    """
    code = "import sys\n"
    if connect_timeout_s is not None:
        code += f"import ser_edge.batch\nser_edge.batch.CONNECT_TIMEOUT_S = {connect_timeout_s}\n"
    code += "from ser_edge.cli import main\nsys.argv[0] = 'ser-edge'\nmain()\n"
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, PYTHONPATH=path)
    env.pop("PYTHONWARNINGS", None)  # a numpy warning on the terminal is a failure here
    closed = [fd for fd, how in ((0, stdin), (1, stdout)) if how == "closed"]

    def prepare() -> None:
        for fd in closed:
            os.close(fd)
        if file_size is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    out: Any = subprocess.PIPE
    full = None
    if stdout == "full":
        full = out = open(os.devnull if not Path("/dev/full").exists() else "/dev/full", "wb")
    try:
        proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, env=env,
                              input=stdin if isinstance(stdin, bytes) else b"",
                              stdout=out, stderr=subprocess.PIPE, preexec_fn=prepare,
                              timeout=timeout, check=False)
    finally:
        if full is not None:
            full.close()
    return subprocess.CompletedProcess(proc.args, proc.returncode, _text(proc.stdout),
                                       _text(proc.stderr))


def _text(data: bytes | None) -> str:
    return "" if data is None else data.decode("utf-8", "replace")


# -- bad model files -----------------------------------------------------------------------------


def _onnx() -> Any:
    return pytest.importorskip("onnx")


def metadata_of(model: Path) -> dict[str, str]:
    """A model file's ``metadata_props``, as text."""
    return {p.key: p.value for p in _onnx().load(str(model)).metadata_props}


def rewrite_metadata(src: Path, dst: Path, **entries: str | None) -> Path:
    """Copy an ONNX model, replacing (str) or deleting (None) metadata entries."""
    onnx = _onnx()
    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in entries.items():
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    _set_metadata(model, props)
    onnx.save_model(model, str(dst))
    return dst


def _set_metadata(model: Any, props: dict[str, str]) -> None:
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def with_feature_config(src: Path, dst: Path, **fields: Any) -> Path:
    """Copy a model, changing fields of its ``feature_config`` metadata (any JSON value)."""
    config = json.loads(metadata_of(src)["feature_config"])
    config.update(fields)
    return rewrite_metadata(src, dst, feature_config=json.dumps(config))


#: What :func:`output_model` can make its ``probabilities`` output.
OUTPUTS = ("softmax", "logits", "nan", "int64", "scalar", "rank3", "empty")


def output_model(src: Path, dst: Path, output: str) -> Path:
    """A model over ``src``'s pooled features (its metadata) whose ``probabilities`` are bad.

    ``output`` (:data:`OUTPUTS`): a valid ``softmax`` of a random projection; its ``logits``;
    ``nan`` (0 / 0); ``int64`` (the logits cast); ``scalar`` (their sum, shape ``()``);
    ``rank3`` (``(N, 1, n_labels)``); ``empty`` (``(N, 0)``).
    """
    _onnx()
    from onnx import TensorProto, helper, numpy_helper

    from ser_edge.features import FeatureConfig

    props = metadata_of(src)
    n_features = FeatureConfig.from_json(props["feature_config"]).n_features
    n_labels = len(json.loads(props["labels"]))
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(
        (0.01 * rng.standard_normal((n_features, n_labels))).astype(np.float32), "W")]
    nodes = [helper.make_node("MatMul", ["features", "W"], ["logits"])]
    shape: list[Any] | None = [None, n_labels]
    kind = TensorProto.FLOAT
    if output == "softmax":
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1))
    elif output == "logits":
        nodes.append(helper.make_node("Identity", ["logits"], ["probabilities"]))
    elif output == "nan":
        nodes += [helper.make_node("Sub", ["logits", "logits"], ["zero"]),
                  helper.make_node("Div", ["zero", "zero"], ["probabilities"])]
    elif output == "int64":
        nodes.append(helper.make_node("Cast", ["logits"], ["probabilities"], to=TensorProto.INT64))
        kind = TensorProto.INT64
    elif output == "scalar":
        nodes.append(helper.make_node("ReduceSum", ["logits"], ["probabilities"], keepdims=0))
        shape = []
    elif output == "rank3":
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis"))
        nodes += [helper.make_node("Softmax", ["logits"], ["soft"], axis=-1),
                  helper.make_node("Unsqueeze", ["soft", "axis"], ["probabilities"])]
        shape = [None, 1, n_labels]
    elif output == "empty":
        inits += [numpy_helper.from_array(np.array([0], np.int64), name)
                  for name in ("start", "stop")]
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis"))
        nodes.append(helper.make_node("Slice", ["logits", "start", "stop", "axis"],
                                      ["probabilities"]))
        shape = [None, 0]
    else:
        raise ValueError(output)
    return _save_graph(dst, nodes, inits, props, n_features, kind, shape)


def constant_output_model(src: Path, dst: Path, value: np.ndarray) -> Path:
    """A model over ``src``'s pooled features (its metadata) that always outputs ``value``."""
    _onnx()
    from onnx import helper, numpy_helper

    from ser_edge.features import FeatureConfig

    props = metadata_of(src)
    n_features = FeatureConfig.from_json(props["feature_config"]).n_features
    tensor = numpy_helper.from_array(np.asarray(value), "value")
    nodes = [helper.make_node("Constant", [], ["probabilities"], value=tensor)]
    return _save_graph(dst, nodes, [], props, n_features, tensor.data_type, None)


def _save_graph(dst: Path, nodes: list, inits: list, props: dict[str, str], n_features: int,
                kind: int, shape: list[Any] | None) -> Path:
    onnx = _onnx()
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, "hostile",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("probabilities", kind, shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    _set_metadata(model, props)
    onnx.save_model(model, str(dst))
    return dst


def external_data_model(src: Path, folder: Path, *, escape: str | None = None) -> Path:
    """``src`` with its weights in ``folder/weights.bin``, the model ``folder/model.onnx``.

    ``escape``: ``"link"`` makes ``weights.bin`` a symbolic link to a file outside ``folder``;
    ``"dotdot"`` names ``../weights.bin`` (the file moved up a folder); ``"absolute"`` names
    the file's absolute path (moved up a folder too).
    """
    onnx = _onnx()
    from onnx import numpy_helper
    from onnx.external_data_helper import _get_all_tensors, convert_model_to_external_data

    folder.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(src))
    for tensor in _get_all_tensors(model):  # values in raw_data, which alone can go outside
        if tensor.data_type != onnx.TensorProto.STRING:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin",
                                   size_threshold=1024)  # the weights, not shapes
    path = folder / "model.onnx"
    onnx.save_model(model, str(path))
    if escape == "link":
        outside = folder.parent / f"{folder.name}-weights.bin"
        shutil.move(folder / "weights.bin", outside)
        (folder / "weights.bin").symlink_to(outside)
    elif escape in ("dotdot", "absolute"):
        shutil.move(folder / "weights.bin", folder.parent / "weights.bin")
        location = ("../weights.bin" if escape == "dotdot"
                    else str((folder.parent / "weights.bin").resolve()))
        model = onnx.load(str(path), load_external_data=False)
        for tensor in _external_tensors(model):
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = location
        onnx.save_model(model, str(path))
    return path


def _external_tensors(model: Any) -> Iterator[Any]:
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    return (t for t in _get_all_tensors(model) if uses_external_data(t))


# -- listeners that are not Dask schedulers ------------------------------------------------------


@contextmanager
def listener(kind: str) -> Iterator[str]:
    """A TCP listener on 127.0.0.1 that is not a Dask scheduler; yields its ``tcp://`` address.

    ``kind``: ``"silent"`` accepts and never speaks; ``"noise"`` sends 64 KiB of random bytes
    (their first 8 read as a length of many exabytes) on every connection; ``"http"`` is
    ``http.server`` (it waits for a request line that never comes).
    """
    if kind == "http":
        from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

        server = ThreadingHTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"tcp://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
        return
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    held: list[socket.socket] = []
    noise = np.random.default_rng(23).integers(0, 256, 64 << 10, dtype=np.uint8).tobytes()

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:  # closed
                return
            held.append(conn)
            if kind == "noise":
                try:
                    conn.sendall(noise)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
        for conn in held:
            conn.close()


@contextmanager
def scheduler_without_workers() -> Iterator[str]:
    """A real Dask scheduler on 127.0.0.1 with no worker; yields its address."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp://",
                                  host="127.0.0.1", dashboard_address=":0") as cluster:
        yield cluster.scheduler_address
