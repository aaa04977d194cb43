"""``twotower query``: recommendations from a running server, through its REST API only (no TensorFlow).

The client reads the signature's inputs from the metadata API, sends the user
id, the features given, and every other input as missing ("" for strings, NaN
for floats; integer inputs are time features and get the request time; a history
list is left out, so ``twotower serve`` fills the user's stored history), then
asks ``:predict`` in the row format.
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List, Mapping, Optional

FLOAT_TYPES = ("DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16")


class QueryError(ValueError):
    """The server could not be reached or refused the request; the message says which and why."""


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
            message = json.loads(text)["error"]
        except (ValueError, KeyError, TypeError):
            message = text[:500]
        raise QueryError(f"{url}: HTTP {e.code}: {message}") from None
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
