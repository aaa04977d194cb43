"""A closed-loop HTTP load generator (asyncio, standard library) for the REST server's benchmark and tests.

Each of ``clients`` keep-alive connections sends a request, waits for the whole
answer, and sends the next at once, for ``seconds``. Latency is measured from the
first byte written to the last byte read. Any answer other than 200, and any
connection failure, counts as a failed request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple


@dataclasses.dataclass
class LoadResult:
    """What a run measured: latencies of the successful requests (seconds) and the failures."""

    clients: int
    seconds: float
    latencies: List[float]
    failures: List[str]

    @property
    def requests(self) -> int:
        """Returns how many requests got an answer (any status) or failed to."""
        return len(self.latencies) + len(self.failures)

    def percentile(self, q: float) -> float:
        """Returns the ``q``-th percentile (0-100) of latency in milliseconds (nearest rank)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(q / 100.0 * len(ordered)))
        return 1000.0 * ordered[rank - 1]

    def summary(self) -> Dict[str, float]:
        """Returns {clients, requests, failed, qps, p50_ms, p95_ms, p99_ms, max_ms}."""
        return {
            "clients": self.clients,
            "requests": self.requests,
            "failed": len(self.failures),
            "qps": round(len(self.latencies) / self.seconds, 1),
            "p50_ms": round(self.percentile(50), 2),
            "p95_ms": round(self.percentile(95), 2),
            "p99_ms": round(self.percentile(99), 2),
            "max_ms": round(1000.0 * max(self.latencies, default=float("nan")), 2),
        }


def post_request(host: str, port: int, path: str, body: bytes) -> bytes:
    """Returns the bytes of an HTTP/1.1 keep-alive POST of a JSON ``body`` to ``path``."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


async def _read_response(reader: asyncio.StreamReader) -> Tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


@dataclasses.dataclass(frozen=True)
class _Plan:
    host: str
    port: int
    requests: Sequence[bytes]
    warmup_until: float
    until: float
    stop: Optional[threading.Event]

    def running(self) -> bool:
        return time.perf_counter() < self.until and not (self.stop is not None and self.stop.is_set())


async def _client(plan: _Plan, start: int, out: LoadResult) -> None:
    cycle = itertools.islice(itertools.cycle(plan.requests), start, None)
    writer: Optional[asyncio.StreamWriter] = None
    while plan.running():
        request = next(cycle)
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(plan.host, plan.port)
            writer.write(request)
            status, body = await _read_response(reader)
            ok = status == 200
            failure = f"HTTP {status}: {body[:200]!r}"
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            ok, failure = False, f"{type(e).__name__}: {e}"
            if writer is not None:
                writer.close()
            writer = None
        if started < plan.warmup_until:
            continue
        if ok:
            out.latencies.append(time.perf_counter() - started)
        else:
            out.failures.append(failure)
    if writer is not None:
        writer.close()


async def closed_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    clients: int,
    seconds: float,
    warmup_seconds: float = 0.0,
    stop: Optional[threading.Event] = None,
) -> LoadResult:
    """Runs ``clients`` closed-loop clients cycling through ``requests`` (raw HTTP bytes) and returns the result.

    The run lasts ``warmup_seconds`` (not measured) + ``seconds``, or until ``stop`` is set.
    """
    started = time.perf_counter()
    warmup_until = started + warmup_seconds
    plan = _Plan(host, port, requests, warmup_until, warmup_until + seconds, stop)
    out = LoadResult(clients, seconds, [], [])
    step = max(1, len(requests) // clients)
    await asyncio.gather(*(_client(plan, i * step, out) for i in range(clients)))
    out.seconds = max(1e-9, min(seconds, time.perf_counter() - warmup_until))
    return out


def run_load(
    host: str,
    port: int,
    requests: Sequence[bytes],
    clients: int,
    seconds: float,
    warmup_seconds: float = 0.0,
    stop: Optional[threading.Event] = None,
) -> LoadResult:
    """Blocking ``closed_loop`` in a fresh event loop."""
    return asyncio.run(closed_loop(host, port, requests, clients, seconds, warmup_seconds, stop))
