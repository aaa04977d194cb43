"""The HTTP/1.1 layer under the REST API: aiohttp's server with the limits, timeouts and drain of ``twotower serve``.

aiohttp reads and frames every request (its llhttp parser refuses duplicate or
conflicting lengths, unknown transfer codings, bad chunk sizes and bare-LF lines
with 400), handles keep-alive and pipelining, and closes a keep-alive connection
left idle for ``keepalive_timeout`` after an answer. What a server facing
untrusted clients needs on top of that lives here:

- an idle deadline for a new connection's first byte (``idle_timeout``), a deadline
  for each request head from its first byte (``head_timeout``), and a body deadline
  enforced by ``read_body`` (``read_timeout``, answered with 408);
- a cap on open connections (``ConnectionCap``): past it the least recently used
  idle connection is closed to make room, and if every connection is busy the new
  one's requests get 503;
- log lines about client faults and accept errors rate-limited (``RateLimit``): one
  line per kind per interval, with the count of the ones left out;
- requests aiohttp cannot parse are answered as JSON errors, like every other error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import secrets
import threading
import time
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple

from aiohttp import web
from aiohttp.http import HttpVersion11
from aiohttp.web_protocol import ERROR as UNPARSED_REQUEST
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

JSON = "application/json"
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout"}
REASONS.update({413: "Payload Too Large", 500: "Internal Server Error", 503: "Service Unavailable"})
FD_SPARE = 32  # open files kept free beyond those open at start: a new version's files, logs
LOG_INTERVAL_S = 10.0


class HttpError(Exception):
    """A request answered with ``status`` before it reached the API; ``close_now``: without reading on."""

    def __init__(self, status: int, message: str, close_now: bool = False):
        super().__init__(message)
        self.status, self.close_now = status, close_now


def request_id() -> str:
    """Returns a new id for a request that failed on our side: in its 500 body and in the log with the traceback."""
    return secrets.token_hex(6)


def error_body(message: str) -> bytes:
    """Returns TF Serving's error body, ``{"error": message}``."""
    return json.dumps({"error": message}).encode()


def error_response(status: int, message: str) -> web.Response:
    """Returns a JSON error response with the status's reason phrase."""
    return web.Response(status=status, reason=REASONS.get(status), body=error_body(message), content_type=JSON)


class RateLimit(logging.Filter):
    """Lets one record of each kind through per ``interval`` seconds; the next one says how many were left out.

    A kind is the logger, the message template's first line and the exception type
    (with its errno), so a flood of ``accept()`` errors or malformed requests costs
    one line per interval, not one per event.
    """

    def __init__(self, interval: float = LOG_INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.interval, self._clock = interval, clock
        self._kinds: Dict[Tuple[Any, ...], Tuple[float, int]] = {}  # kind -> (last let through, left out since)
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        kind = (record.name, str(record.msg).split("\n", 1)[0], type(exc).__name__, getattr(exc, "errno", None))
        now = self._clock()
        with self._lock:
            last, left_out = self._kinds.get(kind, (-float("inf"), 0))
            if now - last < self.interval:
                self._kinds[kind] = (last, left_out + 1)
                return False
            self._kinds[kind] = (now, 0)
        if left_out:
            record.msg = f"{record.msg} [{left_out} more like this in the last {self.interval:g} s not logged]"
        return True


RATE_LIMITED_LOGGERS = ("asyncio", "aiohttp.server", "aiohttp.internal", "aiohttp.web", __name__)
RATE_LIMITED_LOGGERS += ("twotower.serving.online",)  # a history store down: a line per interval, not per request


def install_rate_limit(interval: float = LOG_INTERVAL_S) -> RateLimit:
    """Rate-limits the loggers of the event loop, aiohttp and this module (once per process); returns the filter."""
    for name in RATE_LIMITED_LOGGERS:
        for existing in logging.getLogger(name).filters:
            if isinstance(existing, RateLimit):
                return existing
    limit = RateLimit(interval)
    for name in RATE_LIMITED_LOGGERS:
        logging.getLogger(name).addFilter(limit)
    return limit


def open_files() -> int:
    """Returns how many files this process has open (Linux ``/proc``; elsewhere a guess of 64)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 64


def max_connections_for(requested: int) -> int:
    """Returns ``requested``, lowered so the connections fit in the open-file limit with ``FD_SPARE`` left over."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return requested
    allowed = max(1, soft - open_files() - FD_SPARE)
    if requested > allowed:
        log.warning("--max-connections %d lowered to %d: open-file limit (ulimit -n) %d", requested, allowed, soft)
        return allowed
    return requested


class ConnectionCap:
    """Keeps at most ``limit`` connections open: an idle one is closed for a newcomer, else the newcomer gets 503."""

    def __init__(self, limit: int):
        self.limit = limit
        self.open: Dict[Connection, None] = {}  # insertion-ordered set

    def opened(self, connection: Connection) -> None:
        self.open[connection] = None
        if len(self.open) <= self.limit:
            return
        idle = [c for c in self.open if c.idle and c is not connection]
        if idle:
            victim = min(idle, key=lambda c: c.last_used)
            self.open.pop(victim, None)
            log.warning("--max-connections %d reached: closed the least recently used idle connection", self.limit)
            victim.force_close()
        else:
            connection.refused = True
            log.warning("--max-connections %d reached and every connection busy: answering 503", self.limit)

    def closed(self, connection: Connection) -> None:
        self.open.pop(connection, None)


class Connection(RequestHandler):
    """aiohttp's connection protocol, plus a deadline for each request head and the state the cap needs."""

    def __init__(self, manager: Any, *, cap: ConnectionCap, head_timeout: float, idle_timeout: float, **kwargs: Any):
        super().__init__(manager, keepalive_timeout=idle_timeout, **kwargs)
        self.cap, self.head_timeout, self.idle_timeout = cap, head_timeout, idle_timeout
        self.answering = False  # the API is answering a request of this connection
        self.refused = False  # opened past the cap while every connection was busy: its requests get 503
        self.last_used = time.monotonic()
        self._head_timer: Optional[asyncio.TimerHandle] = None
        self._first_byte_timer: Optional[asyncio.TimerHandle] = None

    @property
    def idle(self) -> bool:
        """True between requests: nothing being answered, no request head on its way."""
        return not self.answering and self._head_timer is None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._first_byte_timer = asyncio.get_running_loop().call_later(self.idle_timeout, self._never_spoke)
        self.cap.opened(self)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._stop_timers()
        self.cap.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._first_byte_timer is not None:
            self._first_byte_timer.cancel()
            self._first_byte_timer = None
        if self._head_timer is None and not self.answering:  # the first bytes of a request head
            self._head_timer = asyncio.get_running_loop().call_later(self.head_timeout, self._head_timed_out)
        super().data_received(data)

    def begin(self) -> None:
        """Called when the API starts answering a request (its head has arrived)."""
        self._stop_timers()
        self.answering = True

    def end(self) -> None:
        """Called when the API has written its answer."""
        self.answering = False
        self.last_used = time.monotonic()

    def _stop_timers(self) -> None:
        for timer in (self._head_timer, self._first_byte_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._first_byte_timer = None

    def _never_spoke(self) -> None:
        self._first_byte_timer = None
        log.warning("connection sent nothing within %gs (--idle-timeout); closed", self.idle_timeout)
        self.force_close()

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.answering:
            log.warning("request head not received within %gs (--read-timeout); connection closed", self.head_timeout)
            self.force_close()

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: Optional[BaseException] = None, message: Any = None
    ) -> web.StreamResponse:
        """Answers what aiohttp could not parse (400) or a fault of the HTTP layer (500) as a JSON error; closes."""
        if request.writer.output_size > 0:
            raise ConnectionError("the response has started: no error response can follow")
        if status >= 500:
            rid = request_id()
            log.error("request %s: the HTTP layer failed", rid, exc_info=exc)
            text = f"internal error (request id {rid})"
        else:
            text = str(getattr(exc, "message", None) or message or "bad request").strip().split("\n", 1)[0]
            text = f"malformed HTTP request: {text.rstrip(':')}"
            log.warning("%s (from %s)", text, request.remote)
        response = error_response(status, text)
        response.force_close()
        return response


class WebServer(web.Server):
    """aiohttp's low-level server whose connections are ``Connection``s under one ``ConnectionCap``."""

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        cap: ConnectionCap,
        head_timeout: float,
        idle_timeout: float,
        **handler_args: Any,
    ):
        """``handler_args`` go to every connection (lingering_time, logger, access_log, ...)."""
        super().__init__(handler, request_factory=self._request, **handler_args)
        self.cap, self._handler_args = cap, handler_args
        self._timeouts = {"head_timeout": head_timeout, "idle_timeout": idle_timeout}

    def __call__(self) -> Connection:
        loop = asyncio.get_running_loop()
        return Connection(self, cap=self.cap, loop=loop, **self._timeouts, **self._handler_args)

    def _request(self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> web.BaseRequest:
        if message is UNPARSED_REQUEST:  # answered in the version this server speaks (aiohttp would say HTTP/1.0)
            message = message._replace(version=HttpVersion11)
        return web.BaseRequest(message, payload, protocol, writer, task, asyncio.get_running_loop())


async def read_body(request: web.BaseRequest, limit: int, timeout: float) -> bytes:
    """Returns the request's body; raises HttpError 413 past ``limit`` bytes, 408 when it takes over ``timeout`` s."""
    too_big = f"request body exceeds the server's limit of {limit} bytes (twotower serve --max-body-bytes)"
    expects = request.headers.get("Expect", "").lower() == "100-continue"
    length = request.content_length
    if length is not None and length > limit:
        raise HttpError(413, too_big, close_now=expects)  # with Expect, the client holds the body back: close
    if expects:  # the interim answer the client waits for before it sends the body
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    content = request.content
    if content.is_eof():  # the whole body came with the head: the common case
        body = content.read_nowait()
    else:
        try:
            body = await asyncio.wait_for(_read_up_to(content, limit), timeout)
        except asyncio.TimeoutError:
            message = f"request body not received within {timeout:g}s (twotower serve --read-timeout)"
            raise HttpError(408, message, close_now=True) from None
    if len(body) > limit:
        raise HttpError(413, too_big)
    return body


async def _read_up_to(content: Any, limit: int) -> bytes:
    chunks, size = [], 0
    while size <= limit:
        chunk = await content.readany()
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
