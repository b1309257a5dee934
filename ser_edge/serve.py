"""``ser-edge serve``: classify over HTTP, and a live stream over a WebSocket.

An ASGI application (starlette) served by uvicorn, the ``serve`` extra, imported only here:

- ``POST /classify``: an audio file in the body (any format ``classify`` reads) gives the JSON
  object ``classify --json`` prints for it (:func:`ser_edge.results.json_record`, the path
  ``<request>``). A file that cannot be used gives ``classify --json``'s failure record
  (:func:`ser_edge.results.json_failure`: the one-line error ``classify`` prints) with status
  400, or 422 for a file without speech; the server goes on.
- ``WebSocket /listen``: raw PCM in binary messages, its format as query parameters with the
  names and defaults of ``listen -``'s options (``rate``, ``channels``, ``format``, ``window``,
  ``hop``, ``smooth``, ``vad``); each result window comes back as a text message, the JSON object
  ``listen --json`` prints. A text message ``end`` flushes the stream (the last windows) and
  closes it. Bad parameters refuse the handshake with 400 and the error line.
- ``GET /health``: ``{"status": "ok", ...}`` with the model and how busy the worker is.
- ``GET /model``: the model's metadata, as ``ser-edge info --json`` prints it.

Limits, per worker process: a body (or a WebSocket message) of at most ``max_bytes`` (413
past it), and at most ``max_concurrent`` requests and streams at once (503, with
``Retry-After``, past it). One file is classified at a time per worker (a worker is one core's
worth: onnxruntime runs one thread); ``workers`` processes share the port. The model is loaded
once per process, when the application is made.
"""

from __future__ import annotations

import io
import json
import os
import threading
import warnings
from dataclasses import asdict, dataclass
from typing import Any

from .errors import (
    AudioWarning,
    ModelError,
    NetworkError,
    NoSpeechError,
    ParameterError,
    SerEdgeError,
)

__all__ = ["ServeConfig", "create_app", "app_from_env", "run", "INSTALL_HINT", "REQUEST_NAME"]

#: The one line of advice when the ``serve`` extra is missing.
INSTALL_HINT = "ser-edge serve needs starlette and uvicorn: pip install 'ser-edge[serve]'"

#: What a POSTed file is called in its record and its error line.
REQUEST_NAME = "<request>"

#: The environment variable through which :func:`run` hands its configuration to the workers.
CONFIG_ENV = "SER_EDGE_SERVE_CONFIG"


@dataclass(frozen=True)
class ServeConfig:
    """What a worker serves, and its limits.

    Attributes
    ----------
    model : str or None
        A bundled model's name or an ONNX model file; None: the default bundled model.
    max_bytes : int > 0
        Largest request body, and WebSocket message, in bytes.
    max_concurrent : int > 0
        Requests and streams a worker takes at once; more get 503.
    top_k : int > 0
        The ``top`` pairs of a ``/classify`` record (``classify --top-k``).
    vad : bool
        Refuse a file without speech (``classify``'s default; ``--no-vad`` classifies it).
    """

    model: str | None = None
    max_bytes: int = 16 * 2**20
    max_concurrent: int = 8
    top_k: int = 3
    vad: bool = True

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_concurrent", "top_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"{name} must be a positive integer, got {value!r}")


def _require() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise NetworkError(INSTALL_HINT) from None


class _RequestBody(io.BytesIO):
    """A POSTed file as ``Classifier.classify`` reads it: in memory, named ``<request>``."""

    name = REQUEST_NAME


class _TooLarge(Exception):
    pass


def create_app(config: ServeConfig | None = None, classifier: Any = None) -> Any:
    """The ASGI application: the routes of the module, over one loaded model.

    Parameters
    ----------
    config : ServeConfig, optional
        The model and the limits (default ``ServeConfig()``).
    classifier : Classifier, optional
        A loaded classifier to serve instead of loading ``config.model``.

    Returns
    -------
    starlette.applications.Starlette

    Raises
    ------
    NetworkError
        If the ``serve`` extra is not installed.
    ModelError
        If the model cannot be used.
    """
    _require()
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    from .model import NO_SPEECH, Classifier, error_line
    from .results import json_failure, json_record, model_identity
    from .stream import PcmDecoder, StreamingClassifier

    config = config or ServeConfig()
    clf = classifier if classifier is not None else Classifier(config.model)
    model_id = model_identity(clf.name or clf.model_path.name, clf.sha256)
    one_at_a_time = threading.Lock()  # warnings are caught process-wide: one file at a time
    busy = [0]

    def failure(message: str, status: int) -> Response:
        return Response(json_failure_of(message) + "\n", status_code=status,
                        media_type="application/json",
                        headers={"Retry-After": "1"} if status == 503 else None)

    def too_busy() -> str:
        return (f"busy: {config.max_concurrent} requests and streams at once already "
                "(try again)")

    def classify_bytes(data: bytes) -> tuple[int, str]:
        with one_at_a_time, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AudioWarning)
            try:
                p = clf.classify(_RequestBody(data), vad=config.vad)
            except NoSpeechError:
                return 422, json_failure_of(NO_SPEECH)
            except ModelError as exc:  # the model's fault, not the request's
                return 500, json_failure_of(error_line(REQUEST_NAME, exc))
            except (SerEdgeError, OSError) as exc:
                return 400, json_failure_of(error_line(REQUEST_NAME, exc))
        said = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught
                                  if issubclass(w.category, AudioWarning)))
        return 200, json_record(p, min(config.top_k, len(clf.labels)), said, model_id)

    def json_failure_of(message: str) -> str:
        from .model import Failure

        return json_failure(Failure(REQUEST_NAME, ValueError(message)), message, model_id)

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > config.max_bytes:
            raise _TooLarge
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > config.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    async def classify(request: Request) -> Response:
        if busy[0] >= config.max_concurrent:
            return failure(too_busy(), 503)
        busy[0] += 1
        try:
            try:
                data = await read_body(request)
            except _TooLarge:
                return failure(f"{REQUEST_NAME}: larger than the {config.max_bytes} bytes this "
                               "server takes", 413)
            status, record = await run_in_threadpool(classify_bytes, data)
            return Response(record + "\n", status_code=status, media_type="application/json")
        finally:
            busy[0] -= 1

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": model_id, "pid": os.getpid(),
                             "busy": busy[0], "max_concurrent": config.max_concurrent})

    async def model(request: Request) -> Response:
        return JSONResponse({"model_path": str(clf.model_path), **clf.metadata})

    def stream_params(query: Any) -> tuple[StreamingClassifier, PcmDecoder]:
        """A stream from ``listen -``'s options given as query parameters."""
        known = {"rate", "channels", "format", "window", "hop", "smooth", "vad"}
        unknown = sorted(set(query) - known)
        if unknown:
            raise ParameterError(f"unknown parameter {unknown[0]!r}: the parameters are "
                                 f"{', '.join(sorted(known))}")

        def number(name: str, kind: type, default: Any) -> Any:
            text = query.get(name)
            if text is None:
                return default
            try:
                return kind(text)
            except ValueError:
                what = "an integer" if kind is int else "a number"
                raise ParameterError(f"{name}={text!r} is not {what}") from None

        vad = query.get("vad", "true").lower()
        if vad not in ("true", "false", "1", "0"):
            raise ParameterError(f"vad={query.get('vad')!r}: true or false")
        fmt = query.get("format", "s16le")
        decoder = PcmDecoder(format=fmt, channels=number("channels", int, 1))
        stream = StreamingClassifier(clf, sr=number("rate", int, 16000),
                                     channels=decoder.channels,
                                     window_s=number("window", float, 3.0),
                                     hop_s=number("hop", float, 1.0),
                                     smoothing=number("smooth", int, 1),
                                     vad=vad in ("true", "1"))
        return stream, decoder

    async def listen(websocket: WebSocket) -> None:
        if busy[0] >= config.max_concurrent:
            await websocket.send_denial_response(failure(too_busy(), 503))
            return
        try:
            stream, decoder = stream_params(websocket.query_params)
        except SerEdgeError as exc:
            await websocket.send_denial_response(failure(" ".join(str(exc).split()), 400))
            return
        busy[0] += 1
        try:
            await websocket.accept()

            async def send(results: list) -> None:
                for r in results:
                    await websocket.send_text(json.dumps(r.to_dict()))

            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is None:
                    if (message.get("text") or "").strip() == "end":
                        await send(await run_in_threadpool(stream.flush))
                        await websocket.close(1000)
                        return
                    await websocket.close(1003, "send PCM as binary messages, or the text end")
                    return
                try:
                    results = await run_in_threadpool(
                        lambda d=data: stream.push(decoder.push(d)))
                except SerEdgeError as exc:
                    await websocket.close(1007, " ".join(str(exc).split())[:120])
                    return
                await send(results)
        except WebSocketDisconnect:
            return
        finally:
            busy[0] -= 1

    app = Starlette(routes=[
        Route("/classify", classify, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/model", model, methods=["GET"]),
        WebSocketRoute("/listen", listen),
    ])
    app.state.classifier = clf
    app.state.config = config
    return app


def app_from_env() -> Any:
    """The application of :func:`run`'s configuration (uvicorn's factory in each worker).

    Returns
    -------
    starlette.applications.Starlette
        :func:`create_app` of the :class:`ServeConfig` in ``SER_EDGE_SERVE_CONFIG`` (JSON), or of
        the defaults when it is not set.
    """
    text = os.environ.get(CONFIG_ENV)
    return create_app(ServeConfig(**json.loads(text)) if text else ServeConfig())


def run(config: ServeConfig | None = None, *, host: str = "127.0.0.1", port: int = 8000,
        workers: int = 1, log_level: str = "info") -> None:
    """Serve until stopped (SIGINT or SIGTERM): uvicorn with ``workers`` processes.

    Parameters
    ----------
    config : ServeConfig, optional
        The model and the limits.
    host : str
        Address to bind; the default answers this machine only.
    port : int
        TCP port; 0 picks a free one.
    workers : int >= 1
        Worker processes, each with the model loaded once.
    log_level : str
        uvicorn's log level (``info`` logs every request on stderr).

    Raises
    ------
    NetworkError
        If the ``serve`` extra is missing.
    ModelError
        If the model cannot be used (checked here, before any worker starts).
    """
    _require()
    import uvicorn

    from .model import Classifier

    config = config or ServeConfig()
    clf = Classifier(config.model)  # a bad model is one line here, not a traceback per worker
    options = dict(host=host, port=port, log_level=log_level, ws_max_size=config.max_bytes,
                   timeout_graceful_shutdown=5, server_header=False,
                   http="ser_edge._serve_http:NoDelayHTTPProtocol")  # Nagle off: see there
    if workers == 1:  # this process serves: the model loaded once, here
        uvicorn.run(create_app(config, clf), **options)
        return
    os.environ[CONFIG_ENV] = json.dumps(asdict(config))
    uvicorn.run("ser_edge.serve:app_from_env", factory=True, workers=workers, **options)
