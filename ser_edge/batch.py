"""Many files at once: every core of this machine, or the workers of a Dask cluster.

:func:`classify_many` classifies a list of files with several worker processes, each with one
BLAS/onnxruntime thread and one :class:`~ser_edge.Classifier` loaded once, and yields one result
per file, in input order by default. The processes come from existing engines:

- on this machine, :class:`concurrent.futures.ProcessPoolExecutor` (start method ``forkserver``
  where there is one, else ``spawn``; never ``fork`` from a process that runs onnxruntime);
- on a cluster, Dask distributed (``scheduler="tcp://host:8786"`` or a ``distributed.Client``;
  the optional extra ``cluster``, imported only when asked for). Every worker must read the files
  at the same absolute paths (shared storage) and have ser-edge installed.

Files go to the workers in small batches (:data:`BATCH_SIZE`), with a bounded number of batches in
flight, so memory stays bounded and results come back while the rest is classified. A file that
cannot be classified gives a :class:`~ser_edge.Failure`, as with
:meth:`Classifier.classify_many <ser_edge.Classifier.classify_many>`, and the batch goes on. A
worker that dies (killed, out of memory, a crash in a decoder) does not stop the batch either: Dask
retries the worker's tasks itself; the local pool is restarted and the files that were in flight
are tried again one at a time, so that a file that kills its worker twice is reported as a
``Failure`` and every other file still gets its result. Each file is yielded exactly once.

Without ``jobs`` (the ``ser-edge classify`` default) the files are classified in this process as
long as the work left looks small: a worker pool costs a few tenths of a second to start, so it is
started only once the time per file measured so far, times the files left, exceeds
:data:`POOL_MIN_WORK_S`. One file, or a handful, never starts a pool.

This module imports nothing heavy at start-up: numpy, onnxruntime, multiprocessing and Dask are
imported when a batch needs them.
"""

from __future__ import annotations

import copy
import os
import sys
import time
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ._names import display_name, source_name
from .errors import AudioError, AudioWarning, ClusterError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from .model import Classifier, Failure, Prediction

__all__ = [
    "Outcome",
    "classify_many",
    "outcomes",
    "classify_one",
    "default_jobs",
    "dask_client",
    "scheduler_address",
    "probe_scheduler",
    "BATCH_SIZE",
    "POOL_MIN_WORK_S",
]

#: Files per task sent to a worker: to a local process, and to a Dask worker (whose tasks cost
#: more to schedule).
BATCH_SIZE = {"local": 8, "dask": 32}

#: Without ``jobs``, a worker pool is started once the work left is estimated at more than this
#: many seconds (time per file so far times files left): below it, starting the workers would cost
#: about as much as it saves.
POOL_MIN_WORK_S = 1.0

#: Seconds to wait for a Dask scheduler to answer, and then for its first worker.
CONNECT_TIMEOUT_S = 10.0

#: Most bytes read from a scheduler's first message (its handshake: about 60 bytes).
HANDSHAKE_MAX_BYTES = 64 << 10

#: How often, in seconds, an idle local worker checks that the process that started it is alive.
_WATCH_PARENT_S = 1.0


def default_jobs() -> int:
    """The number of CPU cores this process may use (``len(os.sched_getaffinity(0))``).

    Returns
    -------
    jobs : int >= 1
        The cores of the process's CPU affinity mask where the platform has one (Linux), else
        ``os.cpu_count()``.
    """
    from ._threads import usable_cores

    return usable_cores()


@dataclass(frozen=True)
class Outcome:
    """What became of one source of a batch.

    Attributes
    ----------
    index : int
        Its position in the sources given.
    result : Prediction or Failure
        Its prediction, or why it could not be classified.
    warnings : tuple of str
        The :class:`~ser_edge.AudioWarning` messages it raised (one line each, each naming the
        file; the file was still classified), in the order raised, without repeats.
    worker : str
        Where it was classified: ``""`` for this process, ``"pid N"`` for a local worker process,
        or a Dask worker's address.
    """

    index: int
    result: Prediction | Failure
    warnings: tuple[str, ...] = ()
    worker: str = ""


# -- one file ------------------------------------------------------------------------------------


def classify_one(clf: Classifier, source: Any,
                 options: Mapping[str, Any] | None = None) -> tuple[Prediction | Failure,
                                                                    list[str]]:
    """Classify one source, collecting its :class:`~ser_edge.AudioWarning` messages.

    The unit of work of every batch, in this process or a worker: what ``ser-edge classify`` prints
    for a file comes from here.

    Parameters
    ----------
    clf : Classifier
    source : str, bytes, os.PathLike or binary file object
        As :meth:`Classifier.classify <ser_edge.Classifier.classify>` takes it.
    options : mapping, optional
        Keyword arguments for :meth:`Classifier.classify_many <ser_edge.Classifier.classify_many>`.

    Returns
    -------
    result : Prediction or Failure
    said : list of str
        The audio warnings' messages, one line each, without repeats. Other warnings are shown
        as usual (``warnings.showwarning``).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AudioWarning)
        (result,) = clf.classify_many([source], **(options or {}))
    said: list[str] = []
    for w in caught:
        if issubclass(w.category, AudioWarning):
            text = " ".join(str(w.message).split())
            if text not in said:
                said.append(text)
        else:  # not ours to silence
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return result, said


# -- the worker side -----------------------------------------------------------------------------

_CLASSIFIERS: dict[str | None, Any] = {}


def _classifier(model: str | None) -> Classifier:
    """Return this process's classifier for ``model``: loaded on first use, then kept."""
    clf = _CLASSIFIERS.get(model)
    if clf is None:
        if "numpy" not in sys.modules:  # a Dask worker started without the nanny's settings
            from ._threads import default_to_one_thread

            default_to_one_thread()
        from .model import Classifier

        clf = _CLASSIFIERS[model] = Classifier(model, num_threads=1)
    return clf


def _worker_name() -> str:
    if "distributed" in sys.modules:
        try:
            from distributed import get_worker

            return str(get_worker().address)
        except ValueError:  # not in a Dask worker
            pass
    return f"pid {os.getpid()}"


def _init_local_worker(parent: int) -> None:
    """Start a local worker: one BLAS thread, Ctrl-C left to the parent, gone when it is."""
    import signal
    import threading

    from ._threads import default_to_one_thread

    default_to_one_thread()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    threading.Thread(target=_watch_parent, args=(parent,), name="ser-edge-watch-parent",
                     daemon=True).start()


def _watch_parent(parent: int) -> None:
    # A parent killed with SIGKILL cannot stop its pool: the workers would wait for work forever.
    while _alive(parent):
        time.sleep(_WATCH_PARENT_S)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:  # a zombie is dead too
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _classify_batch(model: str | None, options: Mapping[str, Any] | None,
                    sources: list[tuple[Any, Any]]) -> tuple[str, list[tuple[Any, list[str]]]]:
    """A worker's task: classify ``(source, given)`` pairs; ``given`` names a renamed source."""
    import pickle

    clf = _classifier(model)
    results = []
    for source, given in sources:
        result, said = classify_one(clf, source, options)
        if given is not None:
            result, said = _renamed(result, said, source, given)
        if hasattr(result, "error"):
            try:
                pickle.dumps(result.error)
            except Exception:  # an exception that cannot travel: keep its message
                result = replace(result, error=AudioError(result.message))
        results.append((result, said))
    return _worker_name(), results


def _renamed(result: Any, said: list[str], source: Any, given: Any) -> tuple[Any, list[str]]:
    """``result`` and ``said`` naming ``given`` where they name ``source`` (its absolute path)."""
    old, new = display_name(source), display_name(given)

    def fix(text: str) -> str:
        return new + text[len(old):] if text.startswith(old) else text

    said = [fix(text) for text in said]
    if hasattr(result, "error"):
        error = copy.copy(result.error)
        if isinstance(error, OSError):
            if error.filename is not None and os.fsdecode(error.filename) == source_name(source):
                error.filename = source_name(given)
        else:
            error.args = (fix(str(error)),) + tuple(error.args[1:])
        return replace(result, path=source_name(given), error=error), said
    return replace(result, path=source_name(given)), said


# -- engines -------------------------------------------------------------------------------------


class _LocalEngine:
    """Worker processes on this machine: a ProcessPoolExecutor."""

    kind = "local"
    #: A dead worker breaks the whole pool: suspects are re-run one at a time.
    isolates = True

    def __init__(self, workers: int, model: str | None, options: Mapping[str, Any] | None):
        self.workers, self.model, self.options = workers, model, options
        self._start()
        # A worker must start: some systems forbid processes, semaphores or a temporary folder.
        from concurrent.futures.process import BrokenProcessPool

        try:
            self._pool.submit(os.getpid).result()
        except (OSError, BrokenProcessPool) as exc:
            self._pool.shutdown(wait=False, cancel_futures=True)
            raise _NoPool(str(exc)) from None

    def _start(self) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        if "forkserver" in mp.get_all_start_methods():
            ctx = mp.get_context("forkserver")
            # Read when the server starts (once per process): numpy with one BLAS thread.
            ctx.set_forkserver_preload(["ser_edge._worker"])
        else:  # pragma: no cover - Windows
            ctx = mp.get_context("spawn")
        self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx,
                                         initializer=_init_local_worker,
                                         initargs=(os.getpid(),))

    def window(self) -> int:
        return 2 * self.workers

    def submit(self, sources: list[tuple[Any, Any]]) -> Any:
        return self._pool.submit(_classify_batch, self.model, self.options, sources)

    def wait(self, futures: Iterable[Any]) -> set[Any]:
        from concurrent.futures import FIRST_COMPLETED, wait

        return set(wait(list(futures), return_when=FIRST_COMPLETED).done)

    def died(self, exc: BaseException) -> bool:
        from concurrent.futures.process import BrokenProcessPool

        return isinstance(exc, BrokenProcessPool)

    def restart(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._start()

    def close(self, running: Iterable[Any], clean: bool) -> None:
        for future in running:
            future.cancel()
        self._pool.shutdown(wait=clean, cancel_futures=True)


class _NoPool(Exception):
    """Worker processes cannot be started here."""


class _DaskEngine:
    """The workers of a Dask cluster."""

    kind = "dask"
    #: Dask retries the tasks of a dead worker itself and blames a task only after repeated deaths.
    isolates = False

    def __init__(self, client: Any, model: str | None, options: Mapping[str, Any] | None):
        self.client, self.model, self.options = client, model, options
        self._threads, self._asked = 1, -1e9

    def window(self) -> int:
        now = time.monotonic()
        if now - self._asked > 2.0:  # workers come and go: ask the scheduler now and then
            self._threads = max(1, sum(self.client.nthreads().values()))
            self._asked = now
        return 2 * self._threads

    def submit(self, sources: list[tuple[Any, Any]]) -> Any:
        return self.client.submit(_classify_batch, self.model, self.options, sources, pure=False)

    def wait(self, futures: Iterable[Any]) -> set[Any]:
        from distributed import wait

        with self.client.as_current():
            return set(wait(list(futures), return_when="FIRST_COMPLETED").done)

    def died(self, exc: BaseException) -> bool:
        from distributed import KilledWorker

        return isinstance(exc, KilledWorker)

    def restart(self) -> None:  # pragma: no cover - never asked: isolates is False
        pass

    def close(self, running: Iterable[Any], clean: bool) -> None:
        running = list(running)
        if running:
            self.client.cancel(running)


@contextmanager
def dask_client(scheduler: Any) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler``, for the length of a ``with`` block.

    A scheduler named by its address is tried first with a bounded probe
    (:func:`probe_scheduler`: its handshake, at most :data:`HANDSHAKE_MAX_BYTES` read, within
    :data:`CONNECT_TIMEOUT_S` seconds), so that a listener that is not a Dask scheduler (a web
    server, one that never speaks, one that sends noise) costs at most that; then Dask connects,
    and at least one worker must join within :data:`CONNECT_TIMEOUT_S` seconds. Name only a
    scheduler you trust: Dask's client decodes (unpickles) what the scheduler sends it.

    Parameters
    ----------
    scheduler : str or distributed.Client or distributed.deploy.Cluster
        A scheduler's address (``"tcp://host:8786"``, ``"host:8786"``, or ``"tls://host:8786"``
        with Dask's TLS settings configured), a client (used as it is and left open), or a
        cluster object such as ``distributed.LocalCluster`` (its ``scheduler_address``).

    Yields
    ------
    client : distributed.Client

    Raises
    ------
    ClusterError
        If Dask distributed is not installed (``pip install 'ser-edge[cluster]'``), the address
        is not a ``tcp://`` (or configured ``tls://``) one, nothing answers there as a Dask
        scheduler within :data:`CONNECT_TIMEOUT_S` seconds, or the scheduler has no worker
        within as long again.
    ParameterError
        If ``scheduler`` is none of the above types.
    """
    try:
        import distributed
    except ImportError as exc:
        raise ClusterError(
            "a Dask cluster needs the 'cluster' extra: pip install 'ser-edge[cluster]' "
            f"({exc})") from None
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    address = getattr(scheduler, "scheduler_address", scheduler)
    if not isinstance(address, str) or not address:
        raise ParameterError(f"scheduler must be an address such as 'tcp://host:8786', a "
                             f"distributed.Client or a cluster, got {scheduler!r}")
    shown = display_name(address)
    scheme, host, port = scheduler_address(address)
    ssl_context = None
    if scheme == "tls":
        from distributed.security import Security

        ssl_context = Security().get_connection_args("client").get("ssl_context")
        if ssl_context is None:
            raise ClusterError(f"the Dask scheduler at {shown}: tls:// needs Dask's TLS "
                               "settings (distributed.comm.tls: ca-file, client cert and key), "
                               "and none are configured")
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    probe_scheduler(host, port, timeout=CONNECT_TIMEOUT_S, ssl_context=ssl_context,
                    name=shown)
    try:
        client = distributed.Client(f"{scheme}://{_host_port(host, port)}",
                                    timeout=max(1.0, deadline - time.monotonic()),
                                    set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise ClusterError(f"cannot reach the Dask scheduler at {shown} ({text})") from None
    try:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"the Dask scheduler at {shown} has no workers: none joined within "
                f"{CONNECT_TIMEOUT_S:g} s (start some: dask worker {shown})") from exc
        yield client
    finally:
        client.close()


#: The address schemes :func:`dask_client` takes.
SCHEDULER_SCHEMES = ("tcp", "tls")


def scheduler_address(address: str) -> tuple[str, str, int]:
    """Split a scheduler's address into scheme, host and port.

    Parameters
    ----------
    address : str
        ``tcp://HOST:PORT``, ``tls://HOST:PORT`` or ``HOST:PORT`` (TCP); an IPv6 host in
        brackets (``tcp://[::1]:8786``).

    Returns
    -------
    scheme : {"tcp", "tls"}
    host : str
    port : int in [1, 65535]

    Raises
    ------
    ClusterError
        If the address has another scheme (``http://``, ``inproc://``, ``ucx://``), or no host
        or port.
    """
    shown = display_name(address)
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme not in SCHEDULER_SCHEMES:
        raise ClusterError(f"the Dask scheduler address {shown} is not tcp://HOST:PORT (or "
                           f"tls://HOST:PORT): {display_name(scheme)}:// is not supported")
    if rest.startswith("["):
        host, _, port = rest[1:].partition("]")
        port = port[1:] if port.startswith(":") else ""
    else:
        host, _, port = rest.rpartition(":")
    bad = not host or any(c.isspace() or c in "/?#@[]" for c in host)
    if bad or not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ClusterError(f"the Dask scheduler address {shown} is not tcp://HOST:PORT "
                           "(a host and a port from 1 to 65535)")
    return scheme, host, int(port)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def probe_scheduler(host: str, port: int, *, timeout: float = CONNECT_TIMEOUT_S,
                    ssl_context: Any = None, name: str | None = None) -> None:
    """Check that a Dask scheduler answers at ``host:port``, at a bounded cost.

    Connects, sends a Dask client's handshake and reads the scheduler's (a Dask comm message:
    an 8-byte length, frame lengths, a msgpack map naming the peer's Python), in a thread that
    is given up after ``timeout`` seconds (name resolution included); at most
    :data:`HANDSHAKE_MAX_BYTES` are read, and nothing is unpickled.

    Parameters
    ----------
    host : str
    port : int
    timeout : float > 0
        Seconds the whole probe may take.
    ssl_context : ssl.SSLContext, optional
        For a ``tls://`` scheduler.
    name : str, optional
        The address as messages show it.

    Raises
    ------
    ClusterError
        If the connection fails, nothing answers within ``timeout``, or what answers does not
        speak Dask's protocol.
    """
    import threading

    shown = name or _host_port(host, port)
    outcome: list[BaseException | None] = []
    deadline = time.monotonic() + timeout

    def run() -> None:
        try:
            _handshake(host, port, deadline, ssl_context)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=run, name="ser-edge-probe-scheduler", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if not outcome:
        raise ClusterError(f"cannot reach the Dask scheduler at {shown} (no answer within "
                           f"{timeout:g} s)")
    exc = outcome[0]
    if isinstance(exc, _NotDask):
        raise ClusterError(f"{shown} is not a Dask scheduler ({exc})")
    if isinstance(exc, TimeoutError):  # socket.timeout too
        raise ClusterError(f"cannot reach the Dask scheduler at {shown} (no answer within "
                           f"{timeout:g} s)")
    if isinstance(exc, OSError):
        text = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
        raise ClusterError(f"cannot reach the Dask scheduler at {shown} ({text})")
    if exc is not None:  # pragma: no cover - a bug
        raise exc


class _NotDask(Exception):
    """What answered does not speak Dask's protocol."""


def _handshake(host: str, port: int, deadline: float, ssl_context: Any) -> None:
    import socket
    import struct

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        return remaining

    with socket.create_connection((host, port), timeout=left()) as raw:
        sock = raw
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(
                raw, server_hostname=host if ssl_context.check_hostname else None)
        try:
            sock.settimeout(left())
            sock.sendall(_client_handshake())
            header = _recv(sock, 8, left)
            (size,) = struct.unpack("<Q", header)
            if size > HANDSHAKE_MAX_BYTES:  # what a web server's "HTTP/1.0 400" looks like
                raise _NotDask(f"it answered {_preview(header)}, not a Dask handshake")
            body = _recv(sock, size, left)
        finally:
            if sock is not raw:
                sock.close()
    if not _is_dask_handshake(body):
        raise _NotDask(f"it answered {_preview(header + body)}, not a Dask handshake")


def _recv(sock: Any, n: int, left: Any) -> bytes:
    chunks, got = [], 0
    while got < n:
        sock.settimeout(left())
        chunk = sock.recv(min(n - got, 1 << 16))
        if not chunk:
            raise _NotDask(f"it closed the connection after {got} of {n} bytes"
                           if got else "it closed the connection without a word")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _client_handshake() -> bytes:
    """A Dask client's first message: its handshake, as ``distributed.comm.tcp`` frames it."""
    import pickle
    import struct

    import msgpack

    payload = msgpack.packb({"compression": None, "python": list(sys.version_info[:3]),
                             "pickle-protocol": pickle.HIGHEST_PROTOCOL}, use_bin_type=True)
    frames = struct.pack("<QQ", 1, len(payload)) + payload
    return struct.pack("<Q", len(frames)) + frames


def _is_dask_handshake(body: bytes) -> bool:
    import struct

    import msgpack

    try:
        (n_frames,) = struct.unpack_from("<Q", body)
        if not 1 <= n_frames <= 16:
            return False
        lengths = struct.unpack_from(f"<{n_frames}Q", body, 8)
        start = 8 * (1 + n_frames)
        if start + sum(lengths) != len(body):
            return False
        info = msgpack.unpackb(body[start:start + lengths[0]], raw=False,
                               strict_map_key=False)
    except (struct.error, ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError):
        return False
    return isinstance(info, dict) and "python" in info


def _preview(data: bytes, limit: int = 24) -> str:
    return repr(data[:limit]) + ("..." if len(data) > limit else "")


# -- batches -------------------------------------------------------------------------------------


class _Task:
    """Sources sent to a worker together: ``(index, source, given)`` each."""

    __slots__ = ("items", "suspect", "future")

    def __init__(self, items: list[tuple[int, Any, Any]], suspect: bool = False):
        self.items = items
        self.suspect = suspect  # was in flight when a worker died
        self.future: Any = None


def _is_path(source: Any) -> bool:
    return isinstance(source, (str, bytes, os.PathLike))


def _is_failure(source: Any) -> bool:
    from .model import Failure

    return isinstance(source, Failure)


def outcomes(
    sources: Iterable[Any],
    *,
    model: Classifier | str | os.PathLike[str] | None = None,
    jobs: int | None = None,
    ordered: bool = True,
    scheduler: Any = None,
    batch_size: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> Iterator[Outcome]:
    """Classify many sources with several processes; one :class:`Outcome` per source.

    Parameters
    ----------
    sources : iterable of str, bytes, os.PathLike, binary file objects or Failure
        Audio files. Paths go to the workers; file objects (standard input, say) are classified in
        this process; a :class:`~ser_edge.Failure` (a path found unusable beforehand) is passed
        through as the outcome of its place.
    model : Classifier or str or os.PathLike or None
        The model: a loaded :class:`~ser_edge.Classifier` (used in this process; the workers load
        its ``model_path``), a model file, or None for the bundled model. On a cluster a model
        file must be readable by every worker at the same absolute path; the bundled model is
        each worker's own (the same ser-edge must be installed on every machine).
    jobs : int >= 1 or None
        Worker processes on this machine. None: the usable cores (:func:`default_jobs`), started
        only once the work left is estimated at more than :data:`POOL_MIN_WORK_S` seconds; 1:
        everything in this process; N > 1: a pool of ``min(N, usable cores, paths)`` processes
        (none for a single path: more processes than cores only compete for them).
    ordered : bool
        Yield in input order (default), or as results come (``False``).
    scheduler : str or distributed.Client or cluster, optional
        Send the paths to a Dask cluster instead (see :func:`dask_client`); ``jobs`` must then be
        None.
    batch_size : int >= 1, optional
        Files per task; default :data:`BATCH_SIZE` of the engine.
    options : mapping, optional
        Keyword arguments for :meth:`Classifier.classify_many
        <ser_edge.Classifier.classify_many>`, the same for every file.

    Yields
    ------
    Outcome
        One per source: in input order, or as they come with ``ordered=False``.

    Raises
    ------
    ParameterError
        If ``jobs`` or ``batch_size`` is not a positive integer, or both ``jobs`` and
        ``scheduler`` are given.
    ModelError
        If the model cannot be loaded (here or by a worker).
    ClusterError
        If the Dask scheduler cannot be used.
    """
    from .model import Classifier, bundled_name

    for name, value in (("jobs", jobs), ("batch_size", batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ParameterError(f"{name} must be a positive integer, got {value!r}")
    if jobs is not None and scheduler is not None:
        raise ParameterError("give jobs (processes on this machine) or scheduler (a Dask "
                             "cluster), not both")
    items = list(sources)
    clf = model if isinstance(model, Classifier) else None
    given = clf.model_path if clf is not None else model
    # A bundled model is each worker's own, by name: on another machine it lives elsewhere.
    name = bundled_name(given)
    model_path = name if name is not None else os.path.abspath(given)
    state = _Batch(items, clf, model_path, options, ordered, batch_size)
    if scheduler is not None:
        with dask_client(scheduler) as client:
            yield from state.pooled(0, _DaskEngine(client, model_path, options))
    elif jobs is None:
        yield from state.auto(default_jobs())
    elif min(jobs, default_jobs()) > 1 and state.paths_from(0) > 1:
        yield from state.local(0, min(jobs, default_jobs(), state.paths_from(0)))
    else:
        yield from state.serial(0, len(items))


class _Batch:
    """The sources of one :func:`outcomes` call and the ways to run them."""

    def __init__(self, items: list[Any], clf: Any, model_path: str | None,
                 options: Mapping[str, Any] | None, ordered: bool, batch_size: int | None):
        self.items, self.clf, self.model_path = items, clf, model_path
        self.options, self.ordered, self.batch_size = options, ordered, batch_size
        self.kind = ["done" if _is_failure(s) else "path" if _is_path(s) else "here"
                     for s in items]
        # paths left from each position on
        self._paths_after = [0] * (len(items) + 1)
        for i in range(len(items) - 1, -1, -1):
            self._paths_after[i] = self._paths_after[i + 1] + (self.kind[i] == "path")

    def paths_from(self, start: int) -> int:
        return self._paths_after[start]

    def here(self, i: int) -> Outcome:
        """The outcome of source ``i`` worked out in this process."""
        source = self.items[i]
        if self.kind[i] == "done":
            return Outcome(i, source)
        result, said = classify_one(self.classifier(), source, self.options)
        return Outcome(i, result, tuple(said))

    def classifier(self) -> Classifier:
        """Return the classifier of this process, loaded on first use."""
        if self.clf is None:
            self.clf = _classifier(self.model_path)
        return self.clf

    def serial(self, start: int, stop: int) -> Iterator[Outcome]:
        for i in range(start, stop):
            yield self.here(i)

    def auto(self, jobs: int) -> Iterator[Outcome]:
        """In this process until the work left looks worth a pool of ``jobs`` processes."""
        spent, timed = 0.0, 0
        for i in range(len(self.items)):
            left = self.paths_from(i)
            if (jobs > 1 and left > 1 and timed
                    and spent / timed * left > POOL_MIN_WORK_S):
                yield from self.local(i, min(jobs, left))
                return
            if self.kind[i] == "path":
                self.classifier()  # its loading is not the files' time
            t0 = time.perf_counter()
            outcome = self.here(i)
            if self.kind[i] == "path":
                spent += time.perf_counter() - t0
                timed += 1
            yield outcome

    def local(self, start: int, workers: int) -> Iterator[Outcome]:
        """Sources ``start:`` with ``workers`` local processes, or here if none can start."""
        try:
            engine = _LocalEngine(workers, self.model_path, self.options)
        except (_NoPool, OSError):  # no /dev/shm, no temporary folder, no fork: one process
            yield from self.serial(start, len(self.items))
            return
        yield from self.pooled(start, engine)

    def pooled(self, start: int, engine: Any) -> Iterator[Outcome]:
        """Sources ``start:`` with ``engine``'s workers (file objects and failures here)."""
        size = self.batch_size or BATCH_SIZE[engine.kind]
        rename = engine.kind == "dask"
        paths = [i for i in range(start, len(self.items)) if self.kind[i] == "path"]
        queue: deque[_Task] = deque()
        for k in range(0, len(paths), size):
            task = []
            for i in paths[k:k + size]:
                source = self.items[i]
                if rename:  # the workers' working folder is not ours
                    task.append((i, os.path.abspath(os.fspath(source)), source))
                else:
                    task.append((i, source, None))
            queue.append(_Task(task))
        running: dict[Any, _Task] = {}
        ready: dict[int, Outcome] = {}
        order = iter(range(start, len(self.items)))
        expected = next(order, None)
        clean = False
        try:
            if not self.ordered:  # what this process does, first
                for i in range(start, len(self.items)):
                    if self.kind[i] != "path":
                        yield self.here(i)
            while queue or running:
                suspects = engine.isolates and any(t.suspect for t in (*queue,
                                                                      *running.values()))
                limit = 1 if suspects else engine.window()
                while queue and len(running) < limit:
                    task = queue.popleft()
                    task.future = engine.submit([(s, g) for _, s, g in task.items])
                    running[task.future] = task
                done = engine.wait(running)
                finished: list[Outcome] = []
                broken: list[_Task] = []
                for future in done:
                    task = running.pop(future)
                    try:
                        worker, results = future.result()
                    except Exception as exc:  # noqa: BLE001 - sorted out just below
                        if not engine.died(exc):
                            raise
                        broken.append(task)
                        continue
                    for (i, _, _), (result, said) in zip(task.items, results, strict=True):
                        finished.append(Outcome(i, result, tuple(said), worker))
                if broken and engine.isolates:  # the pool is gone, and every task in it
                    broken += running.values()
                    running.clear()
                    engine.restart()
                retry: list[_Task] = []
                for task in sorted(broken, key=lambda t: t.items[0][0]):
                    if len(task.items) == 1 and (task.suspect or not engine.isolates):
                        i, source, given = task.items[0]
                        finished.append(Outcome(i, _worker_died(given or source)))
                    else:
                        retry += [_Task([item], suspect=True) for item in task.items]
                queue.extendleft(reversed(retry))
                if not self.ordered:
                    yield from sorted(finished, key=lambda o: o.index)
                    continue
                for outcome in finished:
                    ready[outcome.index] = outcome
                while expected is not None and (self.kind[expected] != "path"
                                                or expected in ready):
                    yield (ready.pop(expected) if self.kind[expected] == "path"
                           else self.here(expected))
                    expected = next(order, None)
            while self.ordered and expected is not None:  # file objects after the last path
                yield self.here(expected)
                expected = next(order, None)
            clean = True
        finally:
            engine.close(list(running), clean)


def _worker_died(source: Any) -> Failure:
    from .model import Failure

    return Failure(source_name(source), AudioError(
        f"{display_name(source)}: the worker process died while classifying this file "
        "(a crash, or killed: out of memory?); tried twice"))


def classify_many(
    sources: Iterable[Any],
    *,
    model: Classifier | str | os.PathLike[str] | None = None,
    jobs: int | None = None,
    ordered: bool = True,
    scheduler: Any = None,
    batch_size: int | None = None,
    vad: bool = True,
) -> Iterator[Prediction | Failure]:
    """Classify many files with every core, or a Dask cluster; a bad file does not stop the rest.

    The parallel counterpart of :meth:`Classifier.classify_many
    <ser_edge.Classifier.classify_many>`, with the same results: each worker process runs the
    same code with one thread. :class:`~ser_edge.AudioWarning` s raised in a worker are raised
    again here, in order, as each file's result is yielded.

    Parameters
    ----------
    sources : iterable of str, bytes, os.PathLike or binary file objects
        Audio files.
    model, jobs, ordered, scheduler, batch_size
        As for :func:`outcomes`.
    vad : bool
        As for :meth:`Classifier.classify <ser_edge.Classifier.classify>`: a file in which voice
        activity detection finds no speech is a :class:`~ser_edge.Failure` (its error a
        :class:`~ser_edge.NoSpeechError`); ``False`` classifies it anyway.

    Yields
    ------
    Prediction or Failure
        One per source, in input order unless ``ordered=False``.

    Raises
    ------
    ParameterError, ModelError, ClusterError
        As :func:`outcomes`.

    Examples
    --------
    >>> from ser_edge.batch import classify_many
    >>> for r in classify_many(paths, jobs=4):  # doctest: +SKIP
    ...     print(r.path, getattr(r, "label", None) or r.message)
    """
    for outcome in outcomes(sources, model=model, jobs=jobs, ordered=ordered,
                            scheduler=scheduler, batch_size=batch_size,
                            options={"vad": vad}):
        for text in outcome.warnings:
            warnings.warn(text, AudioWarning, stacklevel=2)
        yield outcome.result
