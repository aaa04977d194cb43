"""tf.train.Example messages encoded by hand in protobuf's wire format (example.proto / feature.proto).

Five times faster than building the messages, which otherwise dominates ingestion time; the
entries of a user or an item are encoded once and concatenated onto each of their interactions.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, Iterable

Record = Dict[str, Any]


def _varint(n: int) -> bytes:
    n &= 0xFFFFFFFFFFFFFFFF  # int64 as protobuf encodes it: two's complement, 10 bytes when negative
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_ONE_BYTE = [bytes((i,)) for i in range(128)]
_KEYS: Dict[str, bytes] = {}


def _size(n: int) -> bytes:
    return _ONE_BYTE[n] if n < 128 else _varint(n)


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
        key = _KEYS.get(name)
        if key is None:
            encoded = name.encode()
            key = _KEYS.setdefault(name, b"\x0a" + _size(len(encoded)) + encoded)  # map entry key
        if name in ints:
            packed = _varint(int(value))
            inner = b"\x0a" + _size(len(packed)) + packed
            feature = b"\x1a" + _size(len(inner)) + inner  # int64_list { value: packed varint }
        elif isinstance(value, float):
            feature = b"\x12\x06\x0a\x04" + struct.pack("<f", value)  # float_list { value: packed float }
        elif isinstance(value, tuple):
            packed = struct.pack(f"<{len(value)}f", *value)
            inner = b"\x0a" + _size(len(packed)) + packed if value else b""
            feature = b"\x12" + _size(len(inner)) + inner  # float_list { value: packed floats }
        elif isinstance(value, list):
            values = [str(v).encode() for v in value]
            inner = b"".join(b"\x0a" + _size(len(v)) + v for v in values)
            feature = b"\x0a" + _size(len(inner)) + inner  # bytes_list { value, value, ... }
        else:
            data = str(value).encode()
            inner = b"\x0a" + _size(len(data)) + data
            feature = b"\x0a" + _size(len(inner)) + inner  # bytes_list { value }
        entry = key + b"\x12" + _size(len(feature)) + feature  # map entry {key, value: Feature}
        parts.append(b"\x0a" + _size(len(entry)) + entry)  # Features.feature (map)
    return b"".join(parts)


def wrap_example(features: bytes) -> bytes:
    """Returns a serialized tf.train.Example made of ``encode_features`` outputs (concatenated, distinct keys)."""
    return b"\x0a" + _size(len(features)) + features  # Example.features


def to_example(record: Record, int_columns: Iterable[str] = ()) -> bytes:
    """Returns ``record`` as a serialized tf.train.Example: floats, float lists (tuples), bytes lists (lists of
    strings), int64s, else bytes.

    Integers are written as int64 for ``int_columns`` only.
    """
    return wrap_example(encode_features(record, int_columns))
