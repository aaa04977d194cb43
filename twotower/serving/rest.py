"""TF Serving's REST API bodies: predict requests in, predictions, status and metadata out.

Request and response shapes follow tensorflow.org/tfx/serving/api_rest:

- row format: ``{"signature_name": s, "instances": [{input: value, ...}, ...]}`` ->
  ``{"predictions": [{output: value, ...}, ...]}`` (a bare list per row when the
  signature has one output; instances may be bare values when it has one input);
- columnar format: ``{"inputs": {input: [value per row], ...}}`` -> ``{"outputs":
  {output: [value per row], ...}}`` (a bare list for one input / one output);
- strings may be sent as ``{"b64": base64}``; outputs named ``*_bytes`` come back so;
- floats accept ``NaN`` / ``Infinity``, as TF Serving's JSON does (and answers carry them so).

Every problem with a body raises ``InvalidArgument`` (HTTP 400) with a message
naming the field at fault; nothing a client sends reaches the model unchecked,
and a request of more than ``max_rows`` rows is refused before its rows are read.
Answers are encoded with orjson (the standard library's json when a float is not
finite); a row's top-K ids or names go in as the bytes the model returned, joined
(no decoding per value) when they are UTF-8 that JSON takes verbatim. A large
answer is encoded in pieces (``encode_piece``, ``join_pieces``) as its rows come
back from the model.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import orjson
import tensorflow as tf

from twotower.serving.models import (
    DEFAULT_SIGNATURE,
    INIT_OP,
    Columns,
    InvalidArgument,
    Servable,
    Signature,
    TensorInfo,
    VersionState,
)

ROW, COLUMNAR = "row", "columnar"
_NEEDS_ESCAPE = b'"\\' + bytes(range(32))  # bytes a JSON string cannot hold verbatim
_STRING, _FLOAT32 = tf.string, tf.float32
_INT_RANGE = {
    tf.int8: (-(2**7), 2**7 - 1),
    tf.int16: (-(2**15), 2**15 - 1),
    tf.int32: (-(2**31), 2**31 - 1),
    tf.int64: (-(2**63), 2**63 - 1),
    tf.uint8: (0, 2**8 - 1),
    tf.uint16: (0, 2**16 - 1),
    tf.uint32: (0, 2**32 - 1),
    tf.uint64: (0, 2**64 - 1),
}


@dataclasses.dataclass
class PredictRequest:
    """A checked predict request: which signature, the rows as columns, and the format to answer in."""

    signature: Signature
    columns: Columns
    rows: int
    format: str  # ROW or COLUMNAR


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "list", dict: "object"}.get(type(value), type(value).__name__)


def _leaf(value: Any, dtype: tf.DType, where: str) -> Any:
    """Returns one scalar of ``dtype`` from a JSON value, or raises InvalidArgument naming ``where``."""
    kind = type(value)
    if dtype is _STRING and kind is str:  # the common cases first (DTypes are interned; == is slow)
        return value.encode("utf-8", "surrogatepass")
    if dtype is _FLOAT32 and (kind is float or (kind is int and -(2**1023) < value < 2**1023)):
        return float(value)
    if value is None:
        missing = '""' if dtype == tf.string else "NaN"
        raise InvalidArgument(f"{where}: null is not a value; send {missing} for a missing value")
    if dtype == tf.string:
        if isinstance(value, str):
            return value.encode("utf-8", "surrogatepass")
        if isinstance(value, dict) and list(value) == ["b64"] and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError) as e:
                raise InvalidArgument(f"{where}: invalid base64 in {_show(value)}: {e}") from None
        raise InvalidArgument(f"{where}: {_show(value)} ({_kind(value)}) is not of expected type: string")
    if isinstance(value, bool):
        if dtype == tf.bool:
            return value
    elif dtype.is_floating:
        if isinstance(value, (int, float)):
            try:
                return float(value)
            except OverflowError:
                raise InvalidArgument(f"{where}: {_show(value)} is out of range for {dtype.name}") from None
    elif dtype.is_integer:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int):
            low, high = _INT_RANGE[dtype]
            if not low <= value <= high:
                raise InvalidArgument(f"{where}: {_show(value)} is out of range for {dtype.name}")
            return value
    raise InvalidArgument(f"{where}: {_show(value)} ({_kind(value)}) is not of expected type: {dtype.name}")


def _value(value: Any, info: TensorInfo, where: str) -> Any:
    """Returns one row of an input (a scalar, or nested lists for ``[batch, d1, ...]`` inputs), checked."""
    dims = (info.shape or (None,))[1:]

    def walk(v: Any, depth: int, at: str) -> Any:
        if depth == len(dims):
            return _leaf(v, info.dtype, at)
        if not isinstance(v, list):
            want = "x".join("?" if d is None else str(d) for d in dims[depth:])
            raise InvalidArgument(f"{at}: expected a list of shape [{want}], got {_kind(v)} {_show(v)}")
        if dims[depth] is not None and len(v) != dims[depth]:
            raise InvalidArgument(f"{at}: expected {dims[depth]} values, got {len(v)}")
        return [walk(x, depth + 1, f"{at}[{i}]") for i, x in enumerate(v)]

    return walk(value, 0, where)


def _shape(value: Any, depth: int) -> Any:
    """Returns the shape of ``depth`` levels of nested lists, or None when they are ragged."""
    if depth == 0:
        return ()
    inner = {_shape(v, depth - 1) for v in value}
    if len(inner) > 1 or None in inner:
        return None
    return (len(value),) + (inner.pop() if inner else (0,) * (depth - 1))


def _check_rectangular(column: list, info: TensorInfo, where: str) -> None:
    """Raises unless every row of an input with unknown dimensions has the same shape (a tensor is not ragged)."""
    dims = (info.shape or (None,))[1:]
    shapes = {_shape(v, len(dims)) for v in column} if None in dims else {()}
    if len(shapes) != 1 or None in shapes:
        raise InvalidArgument(f"{where}: ragged nested lists; every row must have the same shape")


def _check_names(sent: Sequence[str], signature: Signature, where: str) -> None:
    expected = set(signature.inputs)
    if set(sent) != expected and not (set(sent) <= expected and expected - set(sent) <= signature.optional):
        extra = sorted(set(sent) - expected)
        missing = sorted(expected - set(sent) - signature.optional)
        raise InvalidArgument(
            f"{where}: inputs do not match signature {signature.name!r}: "
            f"missing {missing}, unexpected {extra} (expected {sorted(expected)})"
        )


def _check_rows(rows: int, max_rows: int) -> None:
    if rows > max_rows:
        raise InvalidArgument(
            f"request has {rows} rows; the server takes at most {max_rows} per request "
            "(twotower serve --max-rows): send them in several requests"
        )


def _rows_format(instances: Any, signature: Signature, max_rows: int) -> Columns:
    if not isinstance(instances, list):
        raise InvalidArgument(f'"instances" must be a list of rows, got {_kind(instances)}')
    if not instances:
        raise InvalidArgument('"instances" is empty: send at least one row')
    _check_rows(len(instances), max_rows)
    names = list(signature.inputs)
    columns: Columns = {name: [] for name in names}
    for i, row in enumerate(instances):
        if not isinstance(row, dict):
            if len(names) != 1:
                raise InvalidArgument(
                    f"instances[{i}]: expected an object with inputs {sorted(names)}, got {_kind(row)} {_show(row)}"
                )
            row = {names[0]: row}
        _check_names(list(row), signature, f"instances[{i}]")
        for name in names:
            at = f"instances[{i}].{name}"  # an optional input left out is None: the signature fills it
            columns[name].append(_value(row[name], signature.inputs[name], at) if name in row else None)
    for name in names:
        if name not in signature.optional:  # optional (history) lists may differ in length: padded
            _check_rectangular(columns[name], signature.inputs[name], f"instances[*].{name}")
    return columns


def _columnar_format(inputs: Any, signature: Signature, max_rows: int) -> Columns:
    names = list(signature.inputs)
    if not isinstance(inputs, dict) or (len(names) == 1 and list(inputs) != names):
        if len(names) != 1:
            raise InvalidArgument(f'"inputs" must be an object with inputs {sorted(names)}, got {_kind(inputs)}')
        inputs = {names[0]: inputs}
    _check_names(list(inputs), signature, '"inputs"')
    _check_rows(max((len(v) for v in inputs.values() if isinstance(v, list)), default=0), max_rows)
    columns: Columns = {}
    for name in names:
        if name not in inputs:  # an optional input left out: filled by the signature
            continue
        values = inputs[name]
        if not isinstance(values, list):
            raise InvalidArgument(f"inputs.{name}: expected a list with one value per row, got {_kind(values)}")
        columns[name] = [_value(v, signature.inputs[name], f"inputs.{name}[{j}]") for j, v in enumerate(values)]
        if name not in signature.optional:
            _check_rectangular(columns[name], signature.inputs[name], f"inputs.{name}")
    sizes = {name: len(values) for name, values in columns.items()}
    if len(set(sizes.values())) != 1:
        raise InvalidArgument(f"inputs: every input needs one value per row; 0th-dimension sizes differ: {sizes}")
    if not next(iter(sizes.values())):
        raise InvalidArgument("inputs: no rows: send at least one value per input")
    rows = next(iter(sizes.values()))
    return {name: columns.get(name, [None] * rows) for name in names}


def parse_predict(body: bytes, servable: Servable, max_rows: int = 1 << 62) -> PredictRequest:
    """Returns the checked request in ``body`` for ``servable``; raises InvalidArgument naming what is wrong.

    A request of more than ``max_rows`` rows is refused before its rows are checked.
    """
    if not body.strip():
        raise InvalidArgument("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except RecursionError:
        raise InvalidArgument("JSON Parse error: nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, bad UTF-8, over-long integers
        raise InvalidArgument(f"JSON Parse error: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f'request body must be a JSON object with "instances" or "inputs", got {_kind(doc)}')
    name = doc.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(name, str):
        raise InvalidArgument(f'"signature_name" must be a string, got {_kind(name)} {_show(name)}')
    name = name or DEFAULT_SIGNATURE
    signature = servable.signatures.get(name)
    if signature is None or name == INIT_OP:
        raise InvalidArgument(
            f'Serving signature name: "{name}" not found in signature def (have: {sorted(servable.signatures)})'
        )
    if ("instances" in doc) == ("inputs" in doc):
        raise InvalidArgument('request body must have exactly one of "instances" (row format) or "inputs" (columnar)')
    if "instances" in doc:
        columns, fmt = _rows_format(doc["instances"], signature, max_rows), ROW
    else:
        columns, fmt = _columnar_format(doc["inputs"], signature, max_rows), COLUMNAR
    return PredictRequest(signature, columns, len(next(iter(columns.values()))), fmt)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _b64(value: Any) -> Dict[str, str]:
    return {"b64": base64.b64encode(value if isinstance(value, bytes) else str(value).encode()).decode("ascii")}


def _nest(flat: List[Any], shape: Sequence[int]) -> List[Any]:
    """Returns ``flat`` (row-major) as nested lists of ``shape``."""
    if len(shape) <= 1:
        return flat
    step = len(flat) // shape[0] if shape[0] else 0
    return [_nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def _json_string_rows(array: np.ndarray) -> Optional[List[Any]]:
    """Returns a string array of 2+ dimensions as nested lists of its innermost lists already in JSON.

    The innermost lists (a row's top-K ids or names) are ``orjson.Fragment``s built
    by joining the bytes as they are, with no per-value decoding; this holds only
    when every value is UTF-8 that JSON takes verbatim (no quote, backslash or
    control character). Returns None otherwise.
    """
    if array.ndim < 2:
        return None
    flat = array.ravel().tolist()
    try:
        joined = b",".join(flat)  # TypeError unless all are bytes; the commas keep UTF-8 sequences apart
        joined.decode("utf-8")
    except (TypeError, UnicodeDecodeError):
        return None
    if len(joined.translate(None, _NEEDS_ESCAPE)) != len(joined):
        return None
    k = array.shape[-1]
    if k == 0:
        return _nest([orjson.Fragment(b"[]")] * int(np.prod(array.shape[:-1])), array.shape[:-1])
    rows = [orjson.Fragment(b'["' + b'","'.join(flat[i : i + k]) + b'"]') for i in range(0, len(flat), k)]
    return _nest(rows, array.shape[:-1])


def _to_json(name: str, array: np.ndarray, exact: bool) -> Any:
    """Returns ``array`` as nested lists: strings decoded (``*_bytes`` outputs as {"b64": ...}).

    With ``exact`` (the answer goes to orjson) string rows come as ready JSON where they can.
    """
    if array.dtype.kind not in ("O", "S"):
        return array.tolist()
    leaf = _b64 if name.endswith("_bytes") else _text
    if leaf is _text and exact:
        rows = _json_string_rows(array)
        if rows is not None:
            return rows

    def walk(v: Any) -> Any:
        return [walk(x) for x in v] if isinstance(v, list) else leaf(v)

    return walk(array.tolist())


def dumps(doc: Any) -> bytes:
    """Returns ``doc`` as JSON: orjson's, or the standard library's for what orjson would change (NaN, big ints)."""
    try:
        return orjson.dumps(doc)
    except TypeError:
        return json.dumps(doc).encode()


def _all_finite(outputs: Mapping[str, np.ndarray]) -> bool:
    """True unless a float output holds NaN or an infinity (a float64 sum carries either through)."""
    return all(
        math.isfinite(np.add.reduce(a, axis=None, dtype=np.float64)) for a in outputs.values() if a.dtype.kind == "f"
    )


def _items(values: Any, exact: bool) -> bytes:
    """Returns the JSON of the list ``values`` without its brackets: the items, comma-separated."""
    text = orjson.dumps(values) if exact else json.dumps(values, separators=(",", ":")).encode()
    return text[1:-1]


Piece = Union[bytes, Dict[str, bytes]]


def encode_piece(request: PredictRequest, outputs: Mapping[str, np.ndarray]) -> Piece:
    """Returns the JSON of some consecutive rows' answers, for ``join_pieces``.

    ``outputs`` are ``[rows, ...]`` arrays; NaN and infinities come out as
    ``NaN``/``Infinity`` (TF Serving's JSON), which orjson would write as null.
    """
    exact = _all_finite(outputs)
    values = {name: _to_json(name, array, exact) for name, array in outputs.items()}
    if len(values) == 1:
        return _items(next(iter(values.values())), exact)
    if request.format == COLUMNAR:
        return {name: _items(v, exact) for name, v in values.items()}
    names, rows = list(values), len(next(iter(values.values())))
    return _items([{n: values[n][i] for n in names} for i in range(rows)], exact)


def join_pieces(request: PredictRequest, pieces: Sequence[Piece]) -> bytes:
    """Returns the response body of a predict request from its pieces, shaped as TF Serving shapes it."""
    key = b'{"outputs":' if request.format == COLUMNAR else b'{"predictions":'
    if pieces and isinstance(pieces[0], dict):
        names = list(pieces[0])
        columns = [dumps(n) + b":[" + b",".join(p[n] for p in pieces if p[n]) + b"]" for n in names]  # type: ignore
        return key + b"{" + b",".join(columns) + b"}}"
    return key + b"[" + b",".join(p for p in pieces if p) + b"]}"  # type: ignore


def format_predict(request: PredictRequest, outputs: Mapping[str, np.ndarray]) -> bytes:
    """Returns the JSON response body of a predict request, shaped as TF Serving shapes it."""
    return join_pieces(request, [encode_piece(request, outputs)])


def status_body(states: Sequence[VersionState]) -> Dict[str, Any]:
    """Returns the model status API body (GetModelStatusResponse as JSON)."""
    return {
        "model_version_status": [
            {
                "version": str(s.version),
                "state": s.state,
                "status": {"error_code": s.error_code, "error_message": s.error_message},
            }
            for s in states
        ]
    }


def metadata_body(servable: Servable) -> Dict[str, Any]:
    """Returns the model metadata API body (GetModelMetadataResponse as JSON)."""
    return {
        "model_spec": {"name": servable.model, "signature_name": "", "version": str(servable.version)},
        "metadata": {"signature_def": {"signature_def": servable.signature_defs}},
    }
