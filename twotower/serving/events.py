"""Events in: ``POST /v1/events`` bodies checked like rows of the profile's interactions file.

A body is ``{"events": [{USER_ID: ..., ITEM_ID: ..., TIMESTAMP: ...}, ...]}`` with the profile's
column names (``data.user_id``, ``data.item_id``, ``data.timestamp``), at most ``MAX_EVENTS`` a call.
An event may carry the interactions file's other columns too (the interaction features, such as a
price); any other key is refused. Each event is checked as ingestion checks an interactions row: ids
not empty, the item in the model's catalogue, the timestamp parsed with ``data.timestamp_format``
(``unix``: seconds) and not later than the server's clock (plus ``skew`` seconds), numeric columns
finite numbers. A call with any bad event is refused whole, each bad event named by index and reason.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from typing import Any, Collection, Dict, List, Tuple

from twotower.config import Profile
from twotower.ingest.csv_source import TimestampParser
from twotower.ingest.rows import profile_columns
from twotower.serving.models import InvalidArgument

MAX_EVENTS = 1000
SKEW_SECONDS = 60.0  # a client's clock may run this much ahead of the server's


@dataclasses.dataclass(frozen=True)
class Event:
    """A checked event: its user, item and time (seconds), and its row for the event log (column -> cell)."""

    user: str
    item: str
    timestamp: float
    row: Dict[str, str]


class BadEvents(InvalidArgument):
    """A call with bad events: ``rejected`` lists ``{"index": i, "reason": text}`` for each."""

    def __init__(self, rejected: List[Dict[str, Any]], total: int):
        shown = "; ".join(f"events[{r['index']}]: {r['reason']}" for r in rejected[:5])
        more = f" (and {len(rejected) - 5} more)" if len(rejected) > 5 else ""
        super().__init__(f"{len(rejected)} of {total} events rejected, none stored: {shown}{more}")
        self.rejected, self.details = rejected, {"rejected": rejected}


class EventChecker:
    """Checks events against a profile's interactions columns and a catalogue of item ids."""

    def __init__(self, profile: Profile, catalogue: Collection[str], skew: float = SKEW_SECONDS):
        d = profile.data
        self.user_id, self.item_id, self.timestamp = d.user_id, d.item_id, d.timestamp
        self.columns = profile_columns(profile)[d.interactions]
        self.numeric = {f.name for f in profile.columns_of("interaction") if f.kind == "numeric"}
        self.format, self.catalogue, self.skew = d.timestamp_format, catalogue, skew
        self._parse = TimestampParser(d.timestamp_format)

    def parse(self, body: bytes, now: float) -> List[Event]:
        """Returns the checked events of a request body; raises InvalidArgument (BadEvents for bad events)."""
        try:
            doc = json.loads(body) if body.strip() else None
        except (ValueError, RecursionError) as e:
            raise InvalidArgument(f"JSON Parse error: {e}") from None
        if not isinstance(doc, dict) or set(doc) != {"events"} or not isinstance(doc["events"], list):
            raise InvalidArgument('request body must be {"events": [{...}, ...]}')
        events = doc["events"]
        if not events or len(events) > MAX_EVENTS:
            raise InvalidArgument(f'"events" has {len(events)} events; send 1 to {MAX_EVENTS} per call')
        checked, rejected = [], []
        for i, raw in enumerate(events):
            event = self.check(raw, now)
            if isinstance(event, str):
                rejected.append({"index": i, "reason": event})
            else:
                checked.append(event)
        if rejected:
            raise BadEvents(rejected, len(events))
        return checked

    def check(self, raw: Any, now: float) -> Any:
        """Returns the Event of one raw event, or the reason it is refused (a string)."""
        if not isinstance(raw, dict):
            return f"an event is an object with {self.user_id!r}, {self.item_id!r} and {self.timestamp!r}"
        unknown = sorted(set(raw) - set(self.columns))
        if unknown:
            return f"unknown field(s) {unknown}; an event has the interactions columns {list(self.columns)}"
        row: Dict[str, str] = {}
        for column in self.columns:
            value = raw.get(column)
            if value is None or value == "":
                if column in (self.user_id, self.item_id, self.timestamp):
                    return f"column {column!r} is empty" if column in raw else f"column {column!r} is missing"
                continue
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                return f"column {column!r}: {json.dumps(value)[:60]} is not a string or a number"
            row[column] = value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
        for column in self.numeric & set(row):
            try:
                number = float(row[column])
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                return f"column {column!r}: {row[column][:60]!r} is not a number"
        item = row[self.item_id]
        if item not in self.catalogue:
            return f"column {self.item_id!r}: unknown item {item[:60]!r} (not in the model's catalogue)"
        seconds = self._parse(row[self.timestamp])
        if seconds is None:
            return f"column {self.timestamp!r}: cannot parse {row[self.timestamp][:60]!r} as {self.format!r}"
        if seconds > now + self.skew:
            clock = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat(timespec="seconds")
            return f"column {self.timestamp!r}: {row[self.timestamp]!r} is in the future (server time {clock})"
        return Event(row[self.user_id], item, float(seconds), row)


def group_by_user(events: List[Event], seqs: List[int]) -> Dict[str, List[Tuple[str, float, int]]]:
    """Returns {user: [(item, timestamp, seq)]} of ``events`` with their ``seqs`` (store entries)."""
    out: Dict[str, List[Tuple[str, float, int]]] = {}
    for event, seq in zip(events, seqs, strict=True):
        out.setdefault(event.user, []).append((event.item, event.timestamp, seq))
    return out
