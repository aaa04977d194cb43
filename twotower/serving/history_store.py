"""The online history store: each user's newest items, kept as events arrive (SQLite or Redis).

A store holds, per namespace (``MODEL/FEATURE``: one per history feature of a served model) and
user, the newest ``max_length`` items as ``(item_id, timestamp seconds, seq)``, newest first;
``seq`` orders items of one timestamp (a date-only timestamp format gives many) by arrival. An item
whose ``(item_id, timestamp)`` the user already has is not stored twice, so a retried call changes
nothing (the pipeline's ingestion drops such exact duplicates too). A user erased with ``forget``
is remembered (id and time), so a later reseed from a version's exported histories leaves out the
items that came before the erasure.

- ``sqlite:///PATH``: the standard library's sqlite3 in WAL mode, one connection per thread; every
  write is one transaction (``BEGIN IMMEDIATE``: writers from other processes wait their turn).
- ``redis://HOST:PORT/DB``: redis-py; one key per user (``twotower:h:NS:USER``), a write reads,
  merges and writes back under ``WATCH``/``MULTI`` (a concurrent writer makes it retry).

Both keep a user's items as one JSON value, merged here, so the two backends behave alike.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import urllib.parse
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import orjson

Entry = Tuple[str, float, int]  # (item id, timestamp in seconds, seq: arrival order within one timestamp)
Histories = Dict[str, List[Entry]]  # user -> entries, newest first
DEFAULT_FILE = "history.sqlite"
REDIS_PREFIX = "twotower:"


def merge(old: Sequence[Entry], new: Iterable[Entry], max_length: int) -> List[Entry]:
    """Returns ``old`` and ``new`` entries, newest first (timestamp, then seq), one per (item, timestamp), cut."""
    seen = {(e[0], e[1]) for e in old}
    merged = list(old)
    for entry in new:
        if (entry[0], entry[1]) not in seen:
            seen.add((entry[0], entry[1]))
            merged.append(entry)
    merged.sort(key=lambda e: (e[1], e[2]), reverse=True)
    return merged[:max_length]


def _encode(entries: Sequence[Entry]) -> bytes:
    return orjson.dumps([list(e) for e in entries])


def _decode(blob: Optional[bytes]) -> List[Entry]:
    return [(str(i), float(t), int(s)) for i, t, s in orjson.loads(blob)] if blob else []


class HistoryStore:
    """What both backends offer; ``url`` names the store in logs (no password)."""

    url = ""
    errors: Tuple[type, ...] = (sqlite3.Error, OSError)  # what a failing store raises (redis adds RedisError)

    def lookup(self, ns: str, users: Sequence[str]) -> Histories:
        """Returns {user: entries, newest first} for the ``users`` the namespace holds."""
        raise NotImplementedError

    def add(self, max_lengths: Mapping[str, int], events: Mapping[str, Sequence[Entry]]) -> None:
        """Merges ``events`` (user -> new entries) into every namespace of ``max_lengths`` (ns -> length)."""
        raise NotImplementedError

    def reseed(self, ns: str, max_length: int, seeds: Iterable[Tuple[str, List[Entry]]]) -> int:
        """Replaces namespace ``ns`` with ``seeds`` ((user, entries) pairs; erased users' older items left out).

        Returns how many users it holds after."""
        raise NotImplementedError

    def forget(self, user: str) -> int:
        """Erases ``user`` from every namespace and remembers the erasure; returns the entries removed."""
        raise NotImplementedError

    def forgotten(self) -> Dict[str, float]:
        """Returns {user: time of erasure} of every erased user."""
        raise NotImplementedError

    def ping(self) -> None:
        """Raises one of ``self.errors`` unless the store answers."""
        raise NotImplementedError

    def close(self) -> None:
        """Releases connections."""


def _without_forgotten(
    seeds: Iterable[Tuple[str, List[Entry]]], forgotten: Mapping[str, float]
) -> Iterable[Tuple[str, List[Entry]]]:
    for user, entries in seeds:
        erased = forgotten.get(user)
        if erased is not None:
            entries = [e for e in entries if e[1] > erased]
        if entries:
            yield user, entries


class SQLiteStore(HistoryStore):
    """A SQLite file in WAL mode: ``history(ns, user, entries)`` and ``forgotten(user, at)``."""

    def __init__(self, path: str, timeout: float = 10.0):
        self.path, self.url, self._timeout = path, f"sqlite:///{path}", timeout
        self._local = threading.local()
        self._all: List[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS history (ns TEXT, user TEXT, entries BLOB, PRIMARY KEY (ns, user))")
            db.execute("CREATE TABLE IF NOT EXISTS forgotten (user TEXT PRIMARY KEY, at REAL)")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # the event log, fsynced, is what survives a power cut
            self._local.db = db
            with self._lock:
                self._all.append(db)
        return db

    def _write(self) -> _Transaction:
        return _Transaction(self._db())

    def lookup(self, ns: str, users: Sequence[str]) -> Histories:
        out: Histories = {}
        db = self._db()
        for start in range(0, len(users), 500):  # SQLite's limit on bound parameters
            chunk = list(users[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = db.execute(f"SELECT user, entries FROM history WHERE ns = ? AND user IN ({marks})", [ns, *chunk])
            out.update((user, _decode(blob)) for user, blob in rows)
        return out

    def add(self, max_lengths: Mapping[str, int], events: Mapping[str, Sequence[Entry]]) -> None:
        with self._write() as db:
            for ns, max_length in max_lengths.items():
                users = list(events)
                old = {}
                for start in range(0, len(users), 500):
                    chunk = users[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    sql = f"SELECT user, entries FROM history WHERE ns = ? AND user IN ({marks})"
                    old.update(db.execute(sql, [ns, *chunk]))
                rows = [(ns, u, _encode(merge(_decode(old.get(u)), events[u], max_length))) for u in users]
                db.executemany("INSERT OR REPLACE INTO history VALUES (?, ?, ?)", rows)

    def reseed(self, ns: str, max_length: int, seeds: Iterable[Tuple[str, List[Entry]]]) -> int:
        forgotten = self.forgotten()
        with self._write() as db:
            db.execute("DELETE FROM history WHERE ns = ?", (ns,))
            rows = ((ns, u, _encode(e[:max_length])) for u, e in _without_forgotten(seeds, forgotten))
            db.executemany("INSERT OR REPLACE INTO history VALUES (?, ?, ?)", rows)
            return db.execute("SELECT COUNT(*) FROM history WHERE ns = ?", (ns,)).fetchone()[0]

    def forget(self, user: str) -> int:
        with self._write() as db:
            removed = sum(len(_decode(b)) for (b,) in db.execute("SELECT entries FROM history WHERE user = ?", (user,)))
            db.execute("DELETE FROM history WHERE user = ?", (user,))
            db.execute("INSERT OR REPLACE INTO forgotten VALUES (?, ?)", (user, time.time()))
        return removed

    def forgotten(self) -> Dict[str, float]:
        return dict(self._db().execute("SELECT user, at FROM forgotten"))

    def ping(self) -> None:
        self._db().execute("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()


class _Transaction:
    """``with``: one ``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an error) on a connection."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self.db.execute("ROLLBACK" if kind is not None else "COMMIT")


class RedisStore(HistoryStore):
    """Redis through redis-py: ``twotower:h:NS:USER`` -> entries (JSON), ``twotower:forgotten`` -> {user: at}."""

    def __init__(self, url: str, timeout: float = 1.0):
        try:
            import redis
        except ImportError:
            raise ValueError(f"--history-store {url}: redis-py is not installed (pip install redis)") from None
        self.errors = (redis.RedisError, OSError)
        parts = urllib.parse.urlsplit(url)
        self.url = f"redis://{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._watch_error = redis.WatchError

    def _key(self, ns: str, user: str) -> str:
        return f"{REDIS_PREFIX}h:{ns}:{user}"

    def lookup(self, ns: str, users: Sequence[str]) -> Histories:
        if not users:
            return {}
        blobs = self._redis.mget([self._key(ns, u) for u in users])
        return {u: _decode(b) for u, b in zip(users, blobs, strict=True) if b is not None}

    def add(self, max_lengths: Mapping[str, int], events: Mapping[str, Sequence[Entry]]) -> None:
        if not max_lengths or not events:
            return
        keys = [(ns, u, self._key(ns, u)) for ns in max_lengths for u in events]
        while True:
            with self._redis.pipeline() as pipe:
                try:
                    pipe.watch(*[k for _, _, k in keys])
                    old = pipe.mget([k for _, _, k in keys]) if keys else []
                    pipe.multi()
                    pipe.sadd(f"{REDIS_PREFIX}namespaces", *max_lengths)
                    for (ns, user, key), blob in zip(keys, old, strict=True):
                        pipe.set(key, _encode(merge(_decode(blob), events[user], max_lengths[ns])))
                    pipe.execute()
                    return
                except self._watch_error:  # another writer changed a key in between: read again
                    continue

    def reseed(self, ns: str, max_length: int, seeds: Iterable[Tuple[str, List[Entry]]]) -> int:
        forgotten = self.forgotten()
        self._redis.sadd(f"{REDIS_PREFIX}namespaces", ns)  # forget() erases a user in each
        pattern = self._key(ns, "*")
        for keys in _chunks(self._redis.scan_iter(match=pattern, count=1000), 1000):
            self._redis.unlink(*keys)
        users = 0
        for chunk in _chunks(_without_forgotten(seeds, forgotten), 1000):
            with self._redis.pipeline(transaction=False) as pipe:
                for user, entries in chunk:
                    pipe.set(self._key(ns, user), _encode(entries[:max_length]))
                pipe.execute()
            users += len(chunk)
        return users

    def forget(self, user: str) -> int:
        removed = 0
        for ns in sorted(n.decode() for n in self._redis.smembers(f"{REDIS_PREFIX}namespaces")):
            blob = self._redis.getdel(self._key(ns, user))
            removed += len(_decode(blob))
        self._redis.hset(f"{REDIS_PREFIX}forgotten", user, repr(time.time()))
        return removed

    def forgotten(self) -> Dict[str, float]:
        return {k.decode(): float(v) for k, v in self._redis.hgetall(f"{REDIS_PREFIX}forgotten").items()}

    def ping(self) -> None:
        self._redis.ping()

    def close(self) -> None:
        self._redis.close()


def _chunks(items: Iterable, size: int) -> Iterable[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def open_store(url: str, serving_dir: str) -> HistoryStore:
    """Returns the store ``url`` names (``sqlite:///PATH`` or ``redis://HOST:PORT/DB``; "" is
    ``sqlite:///SERVING_DIR/history.sqlite``); raises ValueError naming the flag for any other."""
    if not url:
        return SQLiteStore(os.path.join(serving_dir, DEFAULT_FILE))
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") - 1 :] if url.startswith("sqlite:////") else url[len("sqlite:///") :]
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise ValueError(f"--history-store {url}: directory {directory} does not exist")
        return SQLiteStore(path)
    if url.startswith(("redis://", "rediss://")):
        return RedisStore(url)
    raise ValueError(f"--history-store {url!r}: expected sqlite:///PATH or redis://HOST:PORT/DB")
