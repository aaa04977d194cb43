"""``twotower query`` and ``twotower events``: a running server's REST API only (no TensorFlow).

``query`` reads the signature's inputs from the metadata API, sends the user
id, the features given, and every other input as missing ("" for strings, NaN
for floats; integer inputs are time features and get the request time; a history
list is left out, so ``twotower serve`` fills the user's stored history), then
asks ``:predict`` in the row format. ``send_events`` posts a CSV in the interactions layout to
``/v1/events``, ``MAX_EVENTS`` rows a call.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

MAX_EVENTS = 1000  # serving.events.MAX_EVENTS: the server's limit per call
FLOAT_TYPES = ("DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16")


class QueryError(ValueError):
    """The server could not be reached or refused the request; the message says which and why."""

    def __init__(self, message: str, details: Optional[Mapping[str, Any]] = None):
        super().__init__(message)
        self.details = dict(details or {})  # the server's error body past "error" (a 400's rejected events)


@dataclasses.dataclass(frozen=True)
class RecommendedItem:
    """One recommended item, as the server returned it."""

    item_id: str
    name: str
    score: float


def call(url: str, body: Optional[Mapping[str, Any]] = None, timeout: float = 10.0) -> Dict[str, Any]:
    """Returns the JSON answer of a GET (``body`` None) or POST; raises QueryError with the server's message."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        text = e.read().decode("utf-8", "replace")
        try:
            doc = json.loads(text)
            message = doc.pop("error")
        except (ValueError, KeyError, TypeError, AttributeError):
            message, doc = text[:500], {}
        raise QueryError(f"{url}: HTTP {e.code}: {message}", doc) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise QueryError(f"{url}: cannot reach the server ({reason}); is `twotower serve` running?") from None


def model_url(url: str, model_name: str, version: Optional[int] = None) -> str:
    """Returns ``URL/v1/models/NAME[/versions/N]``."""
    base = f"{url.rstrip('/')}/v1/models/{model_name}"
    return f"{base}/versions/{version}" if version is not None else base


def _id_input(inputs: Mapping[str, Any], id_feature: Optional[str]) -> str:
    if id_feature is not None:
        if id_feature not in inputs:
            raise QueryError(f"--id-feature {id_feature!r} is not an input of the signature: {sorted(inputs)}")
        return id_feature
    ids = [n for n, spec in inputs.items() if spec.get("dtype") == "DT_STRING" and n.lower().endswith("id")]
    if len(ids) != 1:
        raise QueryError(f"cannot tell the user id input among {sorted(inputs)}; name it with --id-feature")
    return ids[0]


def _cell(name: str, dtype: str, text: Optional[str]) -> Any:
    """Returns the JSON value of input ``name``: ``text`` converted to ``dtype``, or the missing value."""
    try:
        if dtype == "DT_STRING":
            return text if text is not None else ""
        if dtype in FLOAT_TYPES:
            return float(text) if text not in (None, "") else float("nan")
        if dtype == "DT_BOOL":
            return text is not None and text.lower() in ("1", "true", "yes")
        return int(float(text)) if text not in (None, "") else int(time.time())
    except ValueError:
        raise QueryError(f"--feature {name}={text!r}: not a {dtype[3:].lower()} value") from None


def query(
    url: str,
    user_id: str,
    model_name: str = "twotower",
    k: int = 10,
    signature: str = "serving_default",
    features: Optional[Mapping[str, str]] = None,
    id_feature: Optional[str] = None,
    version: Optional[int] = None,
    timeout: float = 10.0,
) -> List[RecommendedItem]:
    """Returns the top ``k`` items the server at ``url`` recommends for ``user_id``."""
    base = model_url(url, model_name, version)
    defs = call(f"{base}/metadata", timeout=timeout)["metadata"]["signature_def"]["signature_def"]
    if signature not in defs:
        raise QueryError(f"{base}: no signature {signature!r}; it has {sorted(n for n in defs if n[:2] != '__')}")
    inputs = defs[signature]["inputs"]
    features = dict(features or {})
    unknown = sorted(set(features) - set(inputs))
    if unknown:
        raise QueryError(f"--feature {unknown}: not inputs of {signature!r}, which takes {sorted(inputs)}")
    features[_id_input(inputs, id_feature)] = user_id
    # a list input ([batch, None]: a history) is left to the server, which fills the user's stored history
    lists = {name for name, spec in inputs.items() if len(spec.get("tensor_shape", {}).get("dim", [])) == 2}
    instance = {
        name: _cell(name, spec.get("dtype", ""), features.get(name))
        for name, spec in inputs.items()
        if name not in lists or name in features
    }
    answer = call(f"{base}:predict", {"signature_name": signature, "instances": [instance]}, timeout=timeout)
    row = answer["predictions"][0]
    try:
        ids, names, scores = row["item_ids"], row["item_names"], row["scores"]
    except (KeyError, TypeError):
        raise QueryError(f"{signature!r} does not answer with item_ids, item_names and scores") from None
    return [RecommendedItem(i, n, float(s)) for i, n, s in list(zip(ids, names, scores, strict=True))[:k]]


def csv_batches(path: str, batch: int = MAX_EVENTS, from_line: int = 2) -> Iterator[Tuple[int, List[Dict[str, str]]]]:
    """Yields (file line of the first row, up to ``batch`` events) of a CSV (or .csv.gz) with a header row,
    from file line ``from_line`` on. An event has the row's non-empty cells by column name."""
    opener: Callable[..., Any] = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8") as f:
        rows, first = [], 2
        for line, row in enumerate(csv.DictReader(f), start=2):
            if line < from_line:
                continue
            if not rows:
                first = line
            rows.append({k: v for k, v in row.items() if k is not None and v not in (None, "")})
            if len(rows) == batch:
                yield first, rows
                rows = []
        if rows:
            yield first, rows


def send_events(url: str, path: str, batch: int = MAX_EVENTS, from_line: int = 2, timeout: float = 30.0) -> int:
    """Posts the CSV ``path`` to ``URL/v1/events`` in calls of ``batch`` rows; returns the events stored.

    Raises QueryError at the first call refused, naming the file lines stored before it and, for a 400,
    each bad row by file line and reason (a refused call stores none of its rows)."""
    if not 1 <= batch <= MAX_EVENTS:
        raise QueryError(f"--batch {batch}: the server takes 1 to {MAX_EVENTS} events per call")
    stored = 0
    for first, rows in csv_batches(path, batch, from_line):
        try:
            stored += int(call(f"{url.rstrip('/')}/v1/events", {"events": rows}, timeout=timeout)["stored"])
        except QueryError as e:
            bad = [f"{path}:{first + r['index']}: {r['reason']}" for r in e.details.get("rejected", [])]
            done = f"{stored} events stored, lines {from_line}-{first - 1}" if stored else "no events stored"
            raise QueryError("; ".join([f"{e} ({done}; go on with --from-line {first})", *bad[:20]])) from None
    return stored
