"""tf.train.Example messages encoded by hand in protobuf's wire format (example.proto / feature.proto).

Five times faster than building the messages, which otherwise dominates ingestion time; the
entries of a user or an item are encoded once and concatenated onto each of their interactions.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, Iterable, Tuple

Record = Dict[str, Any]


def _varint(n: int) -> bytes:
    n &= 0xFFFFFFFFFFFFFFFF  # int64 as protobuf encodes it: two's complement, 10 bytes when negative
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# lengths below 16384 (one or two varint bytes) cover a 50-item history's lists and most examples
_SIZES = [_varint(n) for n in range(1 << 14)]
_KEYS: Dict[str, bytes] = {}


def _size(n: int) -> bytes:
    return _SIZES[n] if n < 16384 else _varint(n)


def _key(name: str) -> bytes:
    """Returns the encoded map entry key of feature ``name`` (cached)."""
    key = _KEYS.get(name)
    if key is None:
        encoded = name.encode()
        key = _KEYS.setdefault(name, b"\x0a" + _size(len(encoded)) + encoded)
    return key


def _entry(name: str, feature: bytes) -> bytes:
    """Returns one ``Features.feature`` map entry {key: name, value: the encoded Feature ``feature``}."""
    entry = _key(name) + b"\x12" + _size(len(feature)) + feature
    return b"\x0a" + _size(len(entry)) + entry


def bytes_value(value: bytes) -> bytes:
    """Returns one encoded ``bytes_list`` value; ``bytes_list_feature`` takes a concatenation of them."""
    return b"\x0a" + _size(len(value)) + value


def bytes_list_feature(name: str, values: bytes) -> bytes:
    """Returns the map entry of a bytes_list feature from its values already encoded (``bytes_value`` joined)."""
    return _entry(name, b"\x0a" + _size(len(values)) + values)


def float_list_feature(name: str, packed: bytes) -> bytes:
    """Returns the map entry of a float_list feature from its values packed as little-endian float32."""
    inner = b"\x0a" + _size(len(packed)) + packed if packed else b""
    return _entry(name, b"\x12" + _size(len(inner)) + inner)


def encode_features(record: Record, int_columns: Iterable[str] = ()) -> bytes:
    """Returns the serialized map entries of ``record``'s features; ``wrap_example`` makes them an Example.

    Encoded by hand in the wire format of example.proto / feature.proto: five times
    faster than building the message, which otherwise dominates ingestion time, and
    the entries of a user or an item are encoded once and concatenated onto each of
    their interactions. Tags: 0x0a = field 1, 0x12 = field 2, 0x1a = field 3.
    """
    ints = set(int_columns)
    parts = []
    for name, value in record.items():
        if name in ints:
            packed = _varint(int(value))
            inner = b"\x0a" + _size(len(packed)) + packed
            parts.append(_entry(name, b"\x1a" + _size(len(inner)) + inner))  # int64_list { value: packed varint }
        elif isinstance(value, float):
            parts.append(_entry(name, b"\x12\x06\x0a\x04" + struct.pack("<f", value)))  # float_list { value }
        elif isinstance(value, tuple):
            parts.append(float_list_feature(name, struct.pack(f"<{len(value)}f", *value)))
        elif isinstance(value, list):
            parts.append(bytes_list_feature(name, b"".join(bytes_value(str(v).encode()) for v in value)))
        else:
            parts.append(bytes_list_feature(name, bytes_value(str(value).encode())))  # bytes_list { value }
    return b"".join(parts)


class CachedEncoder:
    """Callable: record -> ``encode_features(record, int_columns)``, the same bytes, remembering each entry.

    An interaction row's values repeat (its date, its item, a channel), so the map entry of a
    (feature, value) pair is encoded once and looked up after that, at most ``limit`` values per
    feature. Strings, integers and floats other than zero are remembered (0.0 and -0.0 are equal keys
    with different bytes); lists and tuples are encoded each time.
    """

    def __init__(self, int_columns: Iterable[str] = (), limit: int = 100_000):
        self._ints = tuple(int_columns)
        self._limit = limit
        self._entries: Dict[Tuple[str, type], Dict[Any, bytes]] = {}

    def __call__(self, record: Record) -> bytes:
        parts = []
        for name, value in record.items():
            kind = type(value)
            if kind not in _REMEMBERED or (kind is float and value == 0.0):
                parts.append(encode_features({name: value}, self._ints))
                continue
            entries = self._entries.get((name, kind))
            if entries is None:
                entries = self._entries[(name, kind)] = {}
            entry = entries.get(value)
            if entry is None:
                entry = encode_features({name: value}, self._ints)
                if len(entries) < self._limit:
                    entries[value] = entry
            parts.append(entry)
        return b"".join(parts)


_REMEMBERED = (str, int, float)


def wrap_example(features: bytes) -> bytes:
    """Returns a serialized tf.train.Example made of ``encode_features`` outputs (concatenated, distinct keys)."""
    return b"\x0a" + _size(len(features)) + features  # Example.features


def to_example(record: Record, int_columns: Iterable[str] = ()) -> bytes:
    """Returns ``record`` as a serialized tf.train.Example: floats, float lists (tuples), bytes lists (lists of
    strings), int64s, else bytes.

    Integers are written as int64 for ``int_columns`` only.
    """
    return wrap_example(encode_features(record, int_columns))
