"""The event log: every accepted event, in the profile's interactions CSV layout, one file per day.

``DIR/events-YYYY-MM-DD.csv`` (the UTC day the server accepted the events) has the interactions
file's columns (``ingest.rows.profile_columns``: user id, item id, timestamp in the profile's
format, then the interaction features, empty when an event did not send them) under a header, so a
copy of the data directory whose interactions file has these rows appended trains on them (README,
"Online history store"). ``append`` writes, flushes and fsyncs before it returns: an event a client
was told is stored survives a crash of the server or the machine. ``erase`` rewrites each file
without a user's rows (a new file, fsynced, renamed over the old: never half a file).
"""

from __future__ import annotations

import csv
import datetime
import io
import os
import re
import threading
import time
from typing import Callable, Dict, Iterator, List, Sequence

FILE = re.compile(r"^events-(\d{4}-\d{2}-\d{2})\.csv$")


def _day(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d")


class EventLog:
    """Appends rows (dicts by column) to the day's CSV file under ``directory``; thread-safe."""

    def __init__(self, directory: str, columns: Sequence[str], clock: Callable[[], float] = time.time):
        os.makedirs(directory, exist_ok=True)
        self.directory, self.columns, self._clock = directory, tuple(columns), clock
        self._lock = threading.Lock()
        self._checked: set = set()  # files whose header and last line were checked by this process

    def path_of(self, day: str) -> str:
        """Returns the file of ``day`` (YYYY-MM-DD)."""
        return os.path.join(self.directory, f"events-{day}.csv")

    def days(self) -> List[str]:
        """Returns the days that have a file, oldest first."""
        return sorted(m.group(1) for m in map(FILE.match, os.listdir(self.directory)) if m)

    def _text(self, rows: Sequence[Dict[str, str]], header: bool) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if header:
            writer.writerow(self.columns)
        writer.writerows([row.get(c, "") for c in self.columns] for row in rows)
        return out.getvalue().encode("utf-8")

    def append(self, rows: Sequence[Dict[str, str]]) -> str:
        """Appends ``rows`` to today's file and fsyncs it (and a new file's directory); returns the file."""
        with self._lock:
            path = self.path_of(_day(self._clock()))
            new = not os.path.exists(path)
            if not new and path not in self._checked:
                self._check(path)
            self._checked.add(path)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, self._text(rows, header=new))
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:
                _fsync_dir(self.directory)
            return path

    def _check(self, path: str) -> None:
        """Raises unless ``path`` has this log's header; cuts a last line left unfinished by a crash (never
        acknowledged: its fsync had not returned)."""
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
        if tuple(header) != self.columns:
            raise ValueError(f"{path}: header {header} is not the profile's interactions columns {list(self.columns)}")
        with open(path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
                os.fsync(f.fileno())

    def rows(self, since_day: str = "") -> Iterator[Dict[str, str]]:
        """Yields every row of the files of ``since_day`` (YYYY-MM-DD) and later, in the order written."""
        for day in self.days():
            if day < since_day:
                continue
            with open(self.path_of(day), newline="", encoding="utf-8") as f:
                yield from csv.DictReader(f)

    def erase(self, column: str, value: str) -> int:
        """Rewrites every file without the rows whose ``column`` is ``value``; returns how many rows went."""
        removed = 0
        with self._lock:
            for day in self.days():
                path = self.path_of(day)
                with open(path, newline="", encoding="utf-8") as f:
                    rows = list(csv.DictReader(f))
                kept = [r for r in rows if r.get(column) != value]
                if len(kept) == len(rows):
                    continue
                removed += len(rows) - len(kept)
                tmp = path + ".tmp"
                with open(tmp, "wb") as f:
                    f.write(self._text(kept, header=True))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            if removed:
                _fsync_dir(self.directory)
        return removed


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
