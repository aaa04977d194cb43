"""The online history store in a server: seeded per version, fed by events, read by predictions.

``HistoryService`` ties ``history_store`` (the store), ``event_log`` (the log) and ``events`` (the
checks) to the versions a ``ModelRegistry`` loads:

- ``prepare(servable)`` (the registry's hook, before a version serves): for the newest version of a
  model with a history feature, the store's namespace ``MODEL/FEATURE`` is reseeded from the
  version's exported histories (``export.histories``; each item's time is the data end ``as_of``
  less its age) and the logged events newer than ``as_of`` are replayed on top, so no event is
  lost across a push; its signatures then fill a row without a history from the store.
- ``post_events``: checked events go into every namespace, then into the log (fsynced), under one
  lock that reseeds also take: an event is never half in a reseed. Store down: 503, nothing logged.
- ``lookup``: the items of a user, newest first, and their ages in days before the later of ``as_of``
  and the user's newest item. Store down: the rows get no history (logged, counted), never an error.
- ``history`` / ``forget``: ``GET`` / ``DELETE /v1/users/ID/history``; an erasure also rewrites the log.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import logging
import os
import re
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np

from twotower.config import Profile, from_dict
from twotower.export.assets import PROFILE_ASSET
from twotower.export.histories import UserHistories
from twotower.ingest.csv_source import TimestampParser
from twotower.serving.event_log import EventLog
from twotower.serving.events import SKEW_SECONDS, EventChecker, group_by_user
from twotower.serving.history_store import Entry, HistoryStore, open_store
from twotower.serving.metrics import ServerMetrics
from twotower.serving.models import InvalidArgument, NotFound, Servable, ServingError
from twotower.transform.features import ITEM_ID
from twotower.vocab.vocabularies import EXTRA_DIR, VOCABULARIES_JSON

log = logging.getLogger(__name__)
EVENT_LOG_DIR = ".events"  # under the serving directory: a dot, so no model directory
USER_PATH = re.compile(r"^/v1/users/(?P<user>.+)/history$")
DAY = 86400.0


class Unavailable(ServingError):
    """The history store or the event log failed: retry later (HTTP 503)."""

    status = 503


@dataclasses.dataclass(frozen=True)
class Namespace:
    """One history feature of a model version, as the store keeps it."""

    name: str  # MODEL/FEATURE
    feature: str
    max_length: int
    as_of: float  # the version's data end (seconds); 0 when it exported no histories
    exported: Optional[UserHistories]


@dataclasses.dataclass(frozen=True)
class ModelState:
    """The newest prepared version of a model: its namespaces, profile and catalogue."""

    version: int
    namespaces: Dict[str, Namespace]  # history ids input -> namespace
    profile: Profile
    catalogue: frozenset


def catalogue_of(version_dir: str) -> List[str]:
    """Returns the item ids of a version's item vocabulary (``assets.extra/vocab/``): its catalogue."""
    with open(os.path.join(version_dir, EXTRA_DIR, VOCABULARIES_JSON), encoding="utf-8") as f:
        entry = json.load(f)["features"][ITEM_ID]
    with open(os.path.join(version_dir, EXTRA_DIR, entry["vocabulary"]), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def exported_entries(histories: UserHistories) -> Iterator[Tuple[str, List[Entry]]]:
    """Yields (user, entries newest first) of exported histories; an item's time is ``as_of`` less its age."""
    ids = [bytes(x).decode("utf-8") for x in histories.item_ids]
    items, ages, offsets = np.asarray(histories.items), np.asarray(histories.ages, np.float64), histories.offsets
    for u, user in enumerate(histories.users):
        lo, hi = int(offsets[u]), int(offsets[u + 1])
        n = hi - lo
        yield (
            bytes(user).decode("utf-8"),
            [(ids[items[lo + i]], histories.as_of - float(ages[lo + i]) * DAY, n - i) for i in range(n)],
        )


class HistoryService:
    """The store, the log and the checks behind the history endpoints and the predictions' history inputs."""

    def __init__(
        self, store: HistoryStore, log_dir: str, metrics: ServerMetrics, clock: Callable[[], float] = time.time
    ):
        self.store, self.log_dir, self.metrics, self._clock = store, log_dir, metrics, clock
        self.log: Optional[EventLog] = None  # opened with the first model's profile (its interactions columns)
        self.checker: Optional[EventChecker] = None  # the newest profile's columns, every served catalogue
        self._models: Dict[str, ModelState] = {}  # replaced, never mutated: readers need no lock
        self._lock = threading.Lock()  # event writes, reseeds and erasures, one at a time
        self._unseeded: Set[str] = set()  # models whose reseed failed (store down): retried with the next events
        self._seq = 0

    # --- versions ------------------------------------------------------------------------------------------------

    def prepare(self, servable: Servable) -> None:
        """Reseeds the store for a newly loaded version (the newest of its model) and fills its rows from it."""
        h = servable.histories
        if h is None:
            return
        current = self._models.get(servable.model)
        if current is not None and current.version > servable.version:
            self._attach(servable)  # an older version loaded beside a newer one reads the newer one's store
            return
        with open(os.path.join(servable.path, PROFILE_ASSET), encoding="utf-8") as f:
            profile = from_dict(json.load(f), where=os.path.join(servable.path, PROFILE_ASSET))
        lengths = {f.name: f.max_length for f in profile.features if f.kind == "history"}
        namespaces = {
            feature: Namespace(
                f"{servable.model}/{feature}",
                feature,
                h.stores[feature].max_length if feature in h.stores else lengths.get(feature, 50),
                float(h.stores[feature].as_of) if feature in h.stores else 0.0,
                h.stores.get(feature),
            )
            for feature in h.features
        }
        state = ModelState(servable.version, namespaces, profile, frozenset(catalogue_of(servable.path)))
        self._models = {**self._models, servable.model: state}
        catalogue = frozenset().union(*(m.catalogue for m in self._models.values()))
        self.checker = EventChecker(profile, catalogue)
        if self.log is None:
            self.log = EventLog(self.log_dir, self.checker.columns)
        with self._lock:
            self._reseed(servable.model)
        self._attach(servable)

    def _attach(self, servable: Servable) -> None:
        """Makes the servable's signatures fill a row without a history from the store."""
        h = servable.histories
        assert h is not None
        online = dataclasses.replace(h, online=functools.partial(self.lookup, servable.model))
        for signature in servable.signatures.values():
            if signature.fill is not None and h.optional <= set(signature.inputs):
                signature.fill = online.fill

    def _reseed(self, model: str) -> None:
        """Reseeds every namespace of ``model`` (holding the lock); on a store error, marks it for a retry."""
        state = self._models[model]
        try:
            for ns in state.namespaces.values():
                started = time.perf_counter()
                seeds = exported_entries(ns.exported) if ns.exported is not None else iter(())
                users = self.store.reseed(ns.name, ns.max_length, seeds)
                replayed = self._replay(state, ns)
                self._observe("reseed", started)
                log.info("history store %s: %s seeded with %d users, %d events replayed", self.store.url, ns.name,
                         users, replayed)  # fmt: skip
            self._unseeded.discard(model)
        except self.store.errors as e:
            self.metrics.store_errors.inc("reseed")
            self._unseeded.add(model)
            log.error("history store %s: reseeding %s failed (%s); retried with the next events", self.store.url,
                      model, e)  # fmt: skip

    def _replay(self, state: ModelState, ns: Namespace) -> int:
        """Adds the logged events newer than ``ns.as_of`` to ``ns``; returns how many."""
        assert self.log is not None
        d, parse = state.profile.data, TimestampParser(state.profile.data.timestamp_format)
        since = datetime.datetime.fromtimestamp(max(0.0, ns.as_of - SKEW_SECONDS), datetime.timezone.utc)
        events: Dict[str, List[Entry]] = {}
        count = 0
        for row in self.log.rows(since.strftime("%Y-%m-%d")):
            seconds = parse(row.get(d.timestamp, ""))
            if seconds is not None and seconds > ns.as_of:
                events.setdefault(row[d.user_id], []).append((row[d.item_id], float(seconds), self._next_seq()))
                count += 1
        if events:
            self.store.add({ns.name: ns.max_length}, events)
        return count

    def _next_seq(self) -> int:
        self._seq = max(self._seq + 1, time.time_ns())
        return self._seq

    def _observe(self, op: str, started: float) -> None:
        self.metrics.store_latency.observe(time.perf_counter() - started, op)

    # --- predictions ---------------------------------------------------------------------------------------------

    def lookup(self, model: str, feature: str, users: Sequence[bytes]) -> Tuple[List[List[bytes]], List[List[float]]]:
        """Returns (item ids, ages in days) per user, newest first; none for every user when the store fails."""
        ns = self._models[model].namespaces[feature]
        started = time.perf_counter()
        try:
            found = self.store.lookup(ns.name, [u.decode("utf-8", "replace") for u in users])
        except self.store.errors as e:
            self.metrics.store_errors.inc("lookup")
            self.metrics.fallbacks.inc(amount=len(users))
            log.warning("history store %s down (%s): %d rows predicted without their stored history",
                        self.store.url, e, len(users))  # fmt: skip
            return [[] for _ in users], [[] for _ in users]
        self._observe("lookup", started)
        ids, ages = [], []
        for user in users:
            entries = found.get(user.decode("utf-8", "replace"), [])
            now = max([ns.as_of] + [e[1] for e in entries[:1]])
            ids.append([e[0].encode("utf-8") for e in entries])
            ages.append([(now - e[1]) / DAY for e in entries])
        return ids, ages

    # --- the endpoints -------------------------------------------------------------------------------------------

    def post_events(self, body: bytes) -> Dict[str, Any]:
        """Stores the events of a ``POST /v1/events`` body; returns the answer; raises ServingError (400, 503)."""
        models, checker = self._models, self.checker
        if checker is None or self.log is None:
            raise Unavailable("no model with a history feature is loaded yet; events cannot be checked")
        try:
            events = checker.parse(body, self._clock())
        except InvalidArgument:
            self.metrics.events.inc("rejected")
            raise
        lengths = {ns.name: ns.max_length for m in models.values() for ns in m.namespaces.values()}
        with self._lock:
            for model in list(self._unseeded):
                self._reseed(model)
            started = time.perf_counter()
            try:
                self.store.add(lengths, group_by_user(events, [self._next_seq() for _ in events]))
            except self.store.errors as e:
                self.metrics.store_errors.inc("add")
                self.metrics.events.inc("unavailable", amount=len(events))
                log.error("history store %s down (%s): %d events refused (503)", self.store.url, e, len(events))
                raise Unavailable(f"history store unavailable ({type(e).__name__}); nothing stored, retry") from None
            self._observe("add", started)
            try:
                self.log.append([e.row for e in events])
            except OSError as e:
                self.metrics.events.inc("unavailable", amount=len(events))
                log.error("event log %s not written (%s): %d events refused (503)", self.log.directory, e, len(events))
                raise Unavailable(f"event log not written ({e.strerror or e}); retry") from None
        self.metrics.events.inc("accepted", amount=len(events))
        return {"stored": len(events)}

    def history(self, user: str) -> Dict[str, Any]:
        """Returns what the store holds for ``user``: {model: {feature: [{item_id, timestamp, time}]}}."""
        out: Dict[str, Any] = {}
        for model, state in sorted(self._models.items()):
            for feature, ns in state.namespaces.items():
                try:
                    entries = self.store.lookup(ns.name, [user]).get(user, [])
                except self.store.errors as e:
                    self.metrics.store_errors.inc("lookup")
                    raise Unavailable(f"history store unavailable ({type(e).__name__}); retry") from None
                out.setdefault(model, {})[feature] = [
                    {"item_id": item, "timestamp": ts, "time": _iso(ts)} for item, ts, _ in entries
                ]
        return {"user": user, "histories": out}

    def forget(self, user: str) -> Dict[str, Any]:
        """Erases ``user`` from the store (remembered, so reseeds leave their older items out) and the log."""
        with self._lock:
            try:
                entries = self.store.forget(user)
            except self.store.errors as e:
                self.metrics.store_errors.inc("forget")
                raise Unavailable(f"history store unavailable ({type(e).__name__}); nothing erased, retry") from None
            rows = 0
            if self.log is not None:
                user_column = next(iter(self._models.values())).profile.data.user_id
                rows = self.log.erase(user_column, user)
        log.info("erased user %r: %d stored items, %d event log rows", user, entries, rows)
        return {"user": user, "erased": {"store_items": entries, "event_log_rows": rows}}

    def dispatch(self, method: str, path: str, body: bytes) -> Dict[str, Any]:
        """Returns the answer of an events or users request; raises ServingError."""
        if path.rstrip("/") == "/v1/events":
            if method != "POST":
                raise InvalidArgument(f"Malformed request: {method} {path} (events are POSTed)")
            return self.post_events(body)
        match = USER_PATH.match(path)
        if match is None:
            raise NotFound(f"Not found: {method} {path} (a user's history is /v1/users/ID/history)")
        if method == "GET":
            return self.history(match["user"])
        if method == "DELETE":
            return self.forget(match["user"])
        raise InvalidArgument(f"Malformed request: {method} {path} (GET or DELETE a user's history)")

    def close(self) -> None:
        """Closes the store's connections."""
        self.store.close()


def open_service(config: Any, metrics: ServerMetrics) -> HistoryService:
    """Returns the history service of a ``ServerConfig``: its ``history_store`` and ``event_log_dir``."""
    store = open_store(config.history_store, config.serving_dir)
    return HistoryService(store, config.event_log_dir or os.path.join(config.serving_dir, EVENT_LOG_DIR), metrics)


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="seconds")
