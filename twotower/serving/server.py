"""``twotower serve``: TF Serving's REST API over every pushed version, on aiohttp.

Endpoints (as TF Serving's; tensorflow.org/tfx/serving/api_rest):

- ``GET  /v1/models/NAME[/versions/N|/labels/L]`` model status;
- ``GET  /v1/models/NAME[/versions/N|/labels/L]/metadata`` signature defs;
- ``POST /v1/models/NAME[/versions/N|/labels/L]:predict`` row or columnar format;
- ``GET  /metrics`` (also ``/monitoring/prometheus/metrics``) Prometheus text;
- ``POST /v1/events``, ``GET|DELETE /v1/users/ID/history``: the online history store (``online``).

Errors are ``{"error": message}`` with TF Serving's status codes: 400 for a bad
request (including an unknown signature or label, which TF Serving reports as
INVALID_ARGUMENT, and more rows than ``max_rows``), 404 for an unknown model or
version, 408 for a body slower than ``read_timeout``, 413 for a body over
``max_body_bytes``, 503 past ``max_connections``; 500 only for a fault of the
server itself, answered "internal error" with a request id the log carries with
the traceback.

aiohttp (``http_server``) reads, frames and answers on one event-loop thread. A
request's rows go to the model in pieces of at most ``max_batch_size`` rows, one
piece after another, so a large request never holds the model for long; model
calls run in the batch threads (``batching.Batcher``), and large bodies are
decoded, checked and encoded in a separate thread, off the event loop. A poll
thread loads and unloads versions (``models.ModelRegistry``). SIGTERM drains:
the port closes, idle keep-alive connections close, every request already read
is answered in full, and the process exits within ``drain_seconds``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import gc
import logging
import re
import signal
import threading
import time
import urllib.parse
from typing import Any, Callable, Dict, List, Optional, Tuple

import tensorflow as tf
from aiohttp import web

from twotower.serving import http_server, rest
from twotower.serving.batching import Batcher
from twotower.serving.http_server import JSON, HttpError
from twotower.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from twotower.serving.metrics import ServerMetrics
from twotower.serving.models import InvalidArgument, ModelRegistry, NotFound, ServingError
from twotower.serving.online import open_service

log = logging.getLogger(__name__)

OFF_LOOP_BYTES = 64 * 1024  # bodies larger than this are decoded and checked off the event loop
_MODEL_PATH = re.compile(
    r"^/v1/models/(?P<model>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<what>/metadata|:[A-Za-z]+)?$"
)
METRICS_PATHS = ("/metrics", "/monitoring/prometheus/metrics")
HISTORY_PATHS = ("/v1/events", "/v1/users/")


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Everything ``twotower serve`` takes: where the models are, the port, batching, limits and reload policy."""

    serving_dir: str
    model_names: Tuple[str, ...] = ()  # empty: every model directory under serving_dir
    host: str = "0.0.0.0"
    port: int = 8501
    max_batch_size: int = 32  # rows per model call; 1 turns batching off
    batch_timeout_ms: float = 0.0  # 0: no waiting; batches form from requests queued while the model runs
    batch_threads: int = 1
    keep_versions: int = 1
    poll_seconds: float = 1.0  # 0: load once at start, no hot reload
    labels: Tuple[Tuple[str, int], ...] = ()
    max_body_bytes: int = 1 << 20
    max_rows: int = 1000  # rows (instances) per predict request
    read_timeout: float = 30.0  # seconds for a request's head, and again for its body
    idle_timeout: float = 75.0  # seconds a keep-alive connection may wait for its next request
    max_connections: int = 1024  # lowered to fit the open-file limit
    drain_seconds: float = 30.0  # SIGTERM: longest wait for accepted requests to be answered
    follow_symlinks: bool = False  # load versions whose symlinks lead outside serving_dir
    tf_threads: int = 0  # TensorFlow intra- and inter-op threads; 0: TensorFlow's default (one per core)
    history_store: str = ""  # sqlite:///PATH, redis://HOST:PORT/DB; "": SERVING_DIR/history.sqlite; "none": off
    event_log_dir: str = ""  # "": SERVING_DIR/.events


class RestServer:
    """The REST server: ``start()`` in a background thread (tests, benchmarks) or ``serve_forever()``."""

    def __init__(self, config: ServerConfig, registry: Optional[ModelRegistry] = None):
        """``registry`` defaults to one over ``config.serving_dir`` (tests pass their own loader through one)."""
        self.config = config
        self.registry = registry or ModelRegistry(
            config.serving_dir,
            config.model_names,
            config.keep_versions,
            dict(config.labels),
            follow_symlinks=config.follow_symlinks,
        )
        self.metrics = ServerMetrics(self.registry.loaded)
        if self.registry.on_load is None:
            self.registry.on_load = self._record_load
        if self.registry.on_change is None:
            self.registry.on_change = settle_heap
        self.history = None if config.history_store == "none" else open_service(config, self.metrics)
        if self.history is not None and self.registry.prepare is None:
            self.registry.prepare = self.history.prepare
        self._store_pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="history")
        self.batcher: Optional[Batcher] = None
        self.port: Optional[int] = None
        self.received = self.answered = 0  # request heads read / answers written (any status): the drain's log line
        self.draining = False
        self._runner: Optional[web.ServerRunner] = None
        self._cap: Optional[http_server.ConnectionCap] = None
        self._off_loop = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rest-json")
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._stopped: Optional[asyncio.Event] = None

    # --- life cycle ----------------------------------------------------------------------------------------------

    def _record_load(self, model: str, version: int, ok: bool, seconds: float) -> None:
        self.metrics.loads.inc(model, "ok" if ok else "error")

    def _record_batch(self, key: Tuple[str, str, str, int], rows: int) -> None:
        model, version, signature, _ = key
        self.metrics.predictions.inc(model, version, signature, amount=rows)
        self.metrics.batch_size.observe(rows, model, signature)

    async def _open(self) -> None:
        c = self.config
        if c.tf_threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(c.tf_threads)
                tf.config.threading.set_inter_op_parallelism_threads(c.tf_threads)
            except RuntimeError:  # TensorFlow already ran something in this process
                log.warning("--tf-threads %d ignored: TensorFlow was initialised before the server", c.tf_threads)
        http_server.install_rate_limit()
        self.batcher = Batcher(c.max_batch_size, c.batch_timeout_ms / 1000.0, c.batch_threads, self._record_batch)
        self.registry.start(c.poll_seconds)  # the port opens once the versions on disk are loaded, as TF Serving's
        self._stopped = asyncio.Event()
        self._cap = http_server.ConnectionCap(http_server.max_connections_for(c.max_connections))
        server = http_server.WebServer(
            self._handle,
            self._cap,
            head_timeout=c.read_timeout,
            idle_timeout=c.idle_timeout,
            lingering_time=min(10.0, c.read_timeout),
            access_log=None,
            logger=logging.getLogger(http_server.__name__),
        )
        self._runner = web.ServerRunner(server, shutdown_timeout=c.drain_seconds)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, c.host, c.port).start()
        except OSError:
            await self._runner.cleanup()
            self.registry.stop()
            self.batcher.close()
            raise
        self.port = self._runner.addresses[0][1]

    async def _close(self) -> None:
        """Drains: stops accepting, closes idle connections, answers what was read, then stops the threads."""
        assert self._runner is not None and self._cap is not None and self.batcher is not None
        started, deadline = time.monotonic(), time.monotonic() + self.config.drain_seconds
        self.draining = True
        in_flight = sum(1 for c in self._cap.open if c.answering)
        try:  # aiohttp: close the port, close idle connections, wait for the handlers, their answers written
            await asyncio.wait_for(self._runner.cleanup(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            log.warning("drain: requests still running after --drain-seconds %g; closing", self.config.drain_seconds)
        while self._cap.open and time.monotonic() < deadline:  # the last answers' bytes leave the socket buffers
            await asyncio.sleep(0.01)
        for connection in list(self._cap.open):
            connection.force_close()
        self.registry.stop()
        self.batcher.close()
        self._off_loop.shutdown(wait=True)
        self._store_pool.shutdown(wait=True)
        if self.history is not None:
            self.history.close()
        log.info(
            "drained in %.2fs: %d requests received and %d answered in all, %d in flight at the signal",
            time.monotonic() - started,
            self.received,
            self.answered,
            in_flight,
        )

    def start(self) -> RestServer:
        """Loads the models and serves in a background thread; returns once the port is open (``self.port``)."""
        ready = threading.Event()
        failure: Dict[str, BaseException] = {}

        def run() -> None:
            self._loop = new_event_loop()
            try:
                self._loop.run_until_complete(self._open())
            except BaseException as e:  # handed to the caller of start()
                failure["error"] = e
                ready.set()
                return
            ready.set()
            assert self._stopped is not None
            self._loop.run_until_complete(self._stopped.wait())
            self._loop.run_until_complete(self._close())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="rest-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure["error"]
        return self

    def stop(self) -> None:
        """Stops a server started with ``start()``, draining as on SIGTERM."""
        if self._loop is not None and self._stopped is not None and self._thread is not None:
            if self._thread.is_alive():  # a second stop() is a no-op
                self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join()

    def serve_forever(self, on_ready: Optional[Callable[[RestServer], None]] = None) -> None:
        """Serves until SIGINT or SIGTERM, then drains; ``on_ready(server)`` once listening."""

        async def main() -> None:
            await self._open()
            assert self._stopped is not None
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._stopped.set)
            if on_ready is not None:
                on_ready(self)
            await self._stopped.wait()
            await self._close()

        loop = new_event_loop()
        try:
            loop.run_until_complete(main())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    # --- HTTP ----------------------------------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answers one request whose head aiohttp has read, writing the whole answer; never raises."""
        started = time.perf_counter()
        connection = request.protocol
        connection.begin()
        self.received += 1
        close_now = False
        try:
            try:
                if connection.refused:
                    limit = self._cap.limit if self._cap is not None else 0
                    raise HttpError(503, f"server at its connection limit (--max-connections {limit}); retry later")
                body = await http_server.read_body(request, self.config.max_body_bytes, self.config.read_timeout)
                api, status, content_type, payload = await self._dispatch(request.method, request.raw_path, body)
            except HttpError as e:
                api, status, content_type, payload = "other", e.status, JSON, http_server.error_body(str(e))
                close_now = e.close_now
            response = web.Response(status=status, reason=http_server.REASONS.get(status), body=payload)
            response.headers["Content-Type"] = content_type
            if self.draining or status in (408, 413, 503):
                response.force_close()  # the connection ends with this answer
            self._record(api, status, started)
            try:
                await response.prepare(request)  # written here, so a drain waits for the last byte
                await response.write_eof()
            except ConnectionError:  # the client left; nothing to answer
                return response
            self.answered += 1
            if close_now:
                connection.force_close()  # no lingering for a body the client holds back or sends too slowly
            return response
        finally:
            connection.end()

    def _record(self, api: str, status: int, started: float) -> None:
        code = str(status)
        self.metrics.requests.inc(api, code)
        if status >= 400:
            self.metrics.errors.inc(api, code)
        self.metrics.latency.observe(time.perf_counter() - started, api)

    # --- the API -------------------------------------------------------------------------------------------------

    async def _dispatch(self, method: str, target: str, body: bytes) -> Tuple[str, int, str, bytes]:
        """Returns (api, status, content type, body) for one request; never raises."""
        path = urllib.parse.unquote(target.split("?", 1)[0])
        if path in METRICS_PATHS and method == "GET":
            return "metrics", 200, METRICS_CONTENT_TYPE, self.metrics.render().encode()
        api = "other"
        try:
            match = _MODEL_PATH.match(path)
            if path.startswith(HISTORY_PATHS):
                api = "events" if path.startswith(HISTORY_PATHS[0]) else "history"
                if self.history is None:
                    raise NotFound(f"Not found: {method} {path}: the history store is off (--history-store none)")
                loop = asyncio.get_running_loop()
                answer = await loop.run_in_executor(self._store_pool, self.history.dispatch, method, path, body)
                return api, 200, JSON, rest.dumps(answer)
            if not path.startswith("/v1/"):
                raise NotFound(f"Not found: {method} {path} (the API is under /v1/models/ and /metrics)")
            if path.rstrip("/") == "/v1/models":
                raise InvalidArgument("Missing model name in request.")
            if match is None:
                raise InvalidArgument(f"Malformed request: {method} {path}")
            model, label, what = match["model"], match["label"], match["what"] or ""
            version = _version(match["version"], method, path)
            if method == "GET" and what == "":
                api = "status"
                return api, 200, JSON, rest.dumps(rest.status_body(self.registry.status(model, version, label)))
            if method == "GET" and what == "/metadata":
                api = "metadata"
                return api, 200, JSON, rest.dumps(rest.metadata_body(self.registry.get(model, version, label)))
            if method == "POST" and what == ":predict":
                api = "predict"
                return api, 200, JSON, await self._predict(model, version, label, body)
            if method == "POST" and what in (":classify", ":regress"):
                raise InvalidArgument(f"{what[1:]} is not supported: the model has no such signature; use :predict")
            raise InvalidArgument(f"Malformed request: {method} {path}")
        except ServingError as e:
            details = getattr(e, "details", None)  # BadEvents: the bad events by index and reason
            body = rest.dumps({"error": str(e), **details}) if details else http_server.error_body(str(e))
            return api, e.status, JSON, body
        except tf.errors.InvalidArgumentError as e:  # the model refused the values, as TF Serving reports it
            return api, 400, JSON, http_server.error_body(e.message.strip().splitlines()[0])
        except Exception:  # a fault of ours: logged with its traceback under an id the client sees
            rid = http_server.request_id()
            log.exception("request %s: %s %s failed", rid, method, path)
            return api, 500, JSON, http_server.error_body(f"internal error (request id {rid})")

    async def _predict(self, model: str, version: Optional[int], label: Optional[str], body: bytes) -> bytes:
        """Returns the predict response body; the rows go to the model ``max_batch_size`` at a time."""
        servable = self.registry.get(model, version, label)
        loop = asyncio.get_running_loop()
        if len(body) > OFF_LOOP_BYTES:
            request = await loop.run_in_executor(
                self._off_loop, rest.parse_predict, body, servable, self.config.max_rows
            )
        else:
            request = rest.parse_predict(body, servable, self.config.max_rows)
        signature, size = request.signature, self.config.max_batch_size
        key = (servable.model, str(servable.version), signature.name, id(signature))  # queued tasks keep it alive
        assert self.batcher is not None
        if request.rows <= size:
            outputs = await asyncio.wrap_future(self.batcher.submit(key, signature, request.columns, request.rows))
            return rest.format_predict(request, outputs)
        pieces: List[Any] = []
        for start in range(0, request.rows, size):
            columns = {name: values[start : start + size] for name, values in request.columns.items()}
            rows = len(next(iter(columns.values())))
            outputs = await asyncio.wrap_future(self.batcher.submit(key, signature, columns, rows))
            pieces.append(loop.run_in_executor(self._off_loop, rest.encode_piece, request, outputs))
        return rest.join_pieces(request, await asyncio.gather(*pieces))


def new_event_loop() -> asyncio.AbstractEventLoop:
    """Returns uvloop's event loop (libuv's sockets and timers: about half asyncio's cost per request), if installed."""
    try:
        import uvloop
    except ImportError:
        log.info("uvloop not installed: serving on asyncio's event loop (pip install uvloop for less CPU per request)")
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def settle_heap() -> None:
    """Collects garbage once, then exempts every object alive (the loaded models) from later collections.

    A loaded SavedModel is hundreds of thousands of Python objects; without this,
    each full collection walks them all and stalls every request for ~200 ms
    (measured: the max latency under load dropped from 216 ms to 13 ms). Run after
    each load or unload, so an unloaded version's objects are collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _version(text: Optional[str], method: str, path: str) -> Optional[int]:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()):  # "²" or Arabic-Indic digits are no version number
        raise InvalidArgument(f"Malformed request: {method} {path} (a version is a number)")
    if int(text) >= 2**63:
        raise InvalidArgument(f"Failed to convert version: {text}")
    return int(text)
