"""Server metrics in the Prometheus text exposition format (version 0.0.4), standard library only.

Counters and histograms keyed by label values; every update takes one lock, so
the event loop and the batch threads can record into the same registry.
"""

from __future__ import annotations

import bisect
import math
import threading
from typing import Callable, Dict, List, Sequence, Tuple

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = Tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Labels, extra: str = "") -> str:
    pairs = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _number(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


class Counter:
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name: str, doc: str, labels: Sequence[str], lock: threading.Lock):
        self.name, self.doc, self.label_names, self._lock = name, doc, tuple(labels), lock
        self._values: Dict[Labels, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        """Adds ``amount`` to the count of ``labels`` (one value per label name)."""
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        """Returns the current count of ``labels`` (0 if never incremented)."""
        with self._lock:
            return self._values.get(labels, 0.0)

    def lines(self) -> List[str]:
        return [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in sorted(self._values.items())]


class Gauge:
    """Values read at scrape time from a callback returning {label values: value}."""

    kind = "gauge"

    def __init__(self, name: str, doc: str, labels: Sequence[str], read: Callable[[], Dict[Labels, float]]):
        self.name, self.doc, self.label_names, self._read = name, doc, tuple(labels), read

    def lines(self) -> List[str]:
        return [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in sorted(self._read().items())]


class Histogram:
    """Cumulative buckets, sum and count per label set."""

    kind = "histogram"

    def __init__(
        self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float], lock: threading.Lock
    ) -> None:
        self.name, self.doc, self.label_names, self._lock = name, doc, tuple(labels), lock
        self.buckets = tuple(sorted(buckets))
        self._counts: Dict[Labels, List[int]] = {}
        self._sums: Dict[Labels, float] = {}

    def observe(self, value: float, *labels: str) -> None:
        """Records one observation of ``value`` under ``labels``."""
        i = bisect.bisect_left(self.buckets, value)
        with self._lock:
            counts = self._counts.setdefault(labels, [0] * (len(self.buckets) + 1))
            counts[i] += 1
            self._sums[labels] = self._sums.get(labels, 0.0) + value

    def count(self, *labels: str) -> int:
        """Returns how many observations ``labels`` has."""
        with self._lock:
            return sum(self._counts.get(labels, ()))

    def lines(self) -> List[str]:
        out = []
        for key, counts in sorted(self._counts.items()):
            running = 0
            for bound, n in zip(self.buckets + (math.inf,), counts, strict=True):
                running += n
                le = _labels(self.label_names, key, f'le="{_number(bound)}"')
                out.append(f"{self.name}_bucket{le} {running}")
            out.append(f"{self.name}_sum{_labels(self.label_names, key)} {_number(self._sums[key])}")
            out.append(f"{self.name}_count{_labels(self.label_names, key)} {running}")
        return out


class ServerMetrics:
    """What the server records: requests, latency, errors, predictions, batches, loaded versions, the history store."""

    def __init__(self, loaded_versions: Callable[[], Dict[Labels, float]]):
        """``loaded_versions`` returns {(model, version): 1.0} for the versions serving now."""
        lock = threading.Lock()
        self.requests = Counter(
            "twotower_requests_total", "HTTP requests by API and status code.", ("api", "code"), lock
        )
        self.errors = Counter(
            "twotower_request_errors_total",
            "Requests answered with an error, by API and status code.",
            ("api", "code"),
            lock,
        )
        self.latency = Histogram(
            "twotower_request_latency_seconds",
            "Time from a request's headers read to its answer written, by API.",
            ("api",),
            LATENCY_BUCKETS,
            lock,
        )
        self.predictions = Counter(
            "twotower_predictions_total",
            "Rows (instances) predicted, by model, version and signature.",
            ("model", "version", "signature"),
            lock,
        )
        self.batch_size = Histogram(
            "twotower_batch_size_rows", "Rows per batch sent to the model.", ("model", "signature"), BATCH_BUCKETS, lock
        )
        self.loads = Counter(
            "twotower_model_loads_total", "Version loads by model and outcome (ok, error).", ("model", "outcome"), lock
        )
        self.loaded = Gauge(
            "twotower_model_version_loaded",
            "1 for each version loaded and serving.",
            ("model", "version"),
            loaded_versions,
        )
        self.events = Counter(
            "twotower_events_total",
            "Events posted, by outcome: accepted, rejected (400 calls), unavailable (503: store or log down).",
            ("outcome",),
            lock,
        )
        self.store_latency = Histogram(
            "twotower_history_store_latency_seconds",
            "History store operations by kind (lookup, add, reseed, forget).",
            ("op",),
            STORE_BUCKETS,
            lock,
        )
        self.store_errors = Counter(
            "twotower_history_store_errors_total", "History store operations that failed, by kind.", ("op",), lock
        )
        self.fallbacks = Counter(
            "twotower_history_store_fallbacks_total",
            "Rows predicted without their stored history because the history store failed.",
            (),
            lock,
        )
        self._all = (self.requests, self.errors, self.latency, self.predictions, self.batch_size, self.loads)
        self._all += (self.events, self.store_latency, self.store_errors, self.fallbacks)
        self._lock = lock

    def render(self) -> str:
        """Returns every metric in the Prometheus text format."""
        out = []
        with self._lock:
            for metric in self._all:
                out += [f"# HELP {metric.name} {metric.doc}", f"# TYPE {metric.name} {metric.kind}", *metric.lines()]
        loaded = self.loaded.lines()
        out += [f"# HELP {self.loaded.name} {self.loaded.doc}", f"# TYPE {self.loaded.name} gauge", *loaded]
        out += [
            "# HELP twotower_loaded_versions Number of versions loaded and serving.",
            "# TYPE twotower_loaded_versions gauge",
            f"twotower_loaded_versions {len(loaded)}",
        ]
        return "\n".join(out) + "\n"
