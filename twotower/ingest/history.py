"""Each interaction's history (feature kind ``history``): the same user's strictly earlier interactions.

For a profile with a history feature (``{name: recent_items, source: interaction, kind: history,
max_length: 50}``), ingestion groups the accepted interactions by user and, in time order, attaches
to each one two example features:

- ``NAME``: bytes list, the item ids of the user's interactions strictly before this one, most
  recent first, at most ``max_length`` (interactions at the same timestamp, such as one basket
  on one day, are never each other's history);
- ``NAME_age_days``: float list of the same length, how many days before this interaction each was.

Eval and test examples see every earlier interaction, train included; nothing at or after their
own time. The ``histories`` split holds one example per user with the same two features as of the
end of the data (ages from the newest interaction, whose time is the example's timestamp column),
which the export packs for serving (``export.histories``).
"""

from __future__ import annotations

import dataclasses
import os
import struct
import zlib
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from twotower.config import Profile
from twotower.ingest import encode
from twotower.ingest.splits import HISTORIES, SECONDS_PER_DAY, SPLIT_STATS, Boundaries, add_stat, split_of

AGE_SUFFIX = "_age_days"
# What one accepted interaction carries to the per-user step, packed in one bytes object (``pack_entry``):
# seconds, line, item id and the encoded features of the interaction row itself, without the user id
# (the user's id and features and the item's features are joined there, once per user or from side
# inputs). Packed bytes go straight into a partition file (``UserPartitions``) and back.
Entry = bytes
_HEAD = struct.Struct("<qqH")  # seconds, line, item id length
# Interactions reach the per-user step grouped by a stable hash of their user into this many
# partitions. Each chunk writes its share of each partition to one scratch file (``UserPartitions``),
# and a partition's files are read and decoded together (``AttachHistories``), so only file names
# pass through the runner: grouping per user made one runner element per interaction, all held by the
# local runner's controller (9.4 GB and 4.6k rows/s at 10M rows). A worker holds one partition at a time.
USER_PARTITIONS = 64
_RECORD = struct.Struct("<HI")  # user id length, entry length


@dataclasses.dataclass(frozen=True)
class HistorySpec:
    """One history feature: its example feature names and how many items it keeps."""

    name: str
    max_length: int

    @property
    def ages(self) -> str:
        """The name of the feature holding the ages in days."""
        return self.name + AGE_SUFFIX


def history_specs(profile: Profile) -> List[HistorySpec]:
    """Returns the profile's history features (model or not), in profile order."""
    return [HistorySpec(f.name, f.max_length) for f in profile.features if f.kind == "history"]


def pack_entry(seconds: int, line: int, item: str, body: bytes) -> Entry:
    """Returns one interaction as the per-user step receives it; ``unpack_entry`` reverses it."""
    encoded = item.encode()
    return _HEAD.pack(seconds, line, len(encoded)) + encoded + body


def unpack_entry(entry: Entry) -> Tuple[int, int, str, bytes]:
    """Returns (seconds, line, item id, body) of a ``pack_entry`` result."""
    seconds, line, length = _HEAD.unpack_from(entry)
    start = _HEAD.size
    return seconds, line, entry[start : start + length].decode(), entry[start + length :]


class UserPartitions:
    """One chunk's (user, entry) pairs, packed into ``partitions`` bytes objects by a stable hash of the user.

    The hash is CRC-32 of the user id, not Python's ``hash``, which differs between worker processes.
    """

    def __init__(self, partitions: int = USER_PARTITIONS):
        self._parts = [bytearray() for _ in range(partitions)]

    def add(self, user: str, entry: Entry) -> None:
        """Appends one interaction of ``user`` to its partition."""
        encoded = user.encode()
        part = self._parts[zlib.crc32(encoded) % len(self._parts)]
        part += _RECORD.pack(len(encoded), len(entry))
        part += encoded
        part += entry

    def write(self, directory: str, chunk: int) -> Iterator[Tuple[int, str]]:
        """Writes each partition that received any pairs to ``directory``; yields (partition, file).

        A file's name depends only on the partition and the chunk, so a retried chunk overwrites its
        own files. ``directory`` may be any Beam file system path (local, ``gs://``).
        """
        for index, part in enumerate(self._parts):
            if part:
                path = os.path.join(directory, f"p{index:04d}-c{chunk:06d}")
                with FileSystems.create(path, compression_type="uncompressed") as f:
                    f.write(bytes(part))
                yield index, path


def unpack_partition(blobs: Iterable[bytes]) -> Dict[str, List[Entry]]:
    """Returns {user: entries} from ``UserPartitions`` files' contents, entries in the order they were added."""
    by_user: Dict[str, List[Entry]] = {}
    for blob in blobs:
        pos, end = 0, len(blob)
        while pos < end:
            user_length, entry_length = _RECORD.unpack_from(blob, pos)
            pos += _RECORD.size
            user = blob[pos : pos + user_length].decode()
            pos += user_length
            by_user.setdefault(user, []).append(blob[pos : pos + entry_length])
            pos += entry_length
    return by_user


def read_partition(paths: Iterable[str]) -> Dict[str, List[Entry]]:
    """Returns {user: entries} of one partition's files (``UserPartitions.write``), in file name order.

    Files are read one at a time as they are unpacked, so a file's bytes are dropped once its entries are out.
    """
    return unpack_partition(_read(path) for path in sorted(paths))


def _read(path: str) -> bytes:
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return f.read()


class HistoryEncoder:
    """Encodes each of a user's interactions' history features, without re-encoding an item per row.

    The user's items are encoded once, newest first, into one buffer; a row's history is then one
    slice of it (its most recent ``max_length`` strictly earlier items are adjacent there), and its
    ages one vector operation. Same bytes as encoding the lists and age tuples with ``encode.encode_features``.
    """

    def __init__(self, specs: Sequence[HistorySpec], item_ids: Sequence[str], seconds: np.ndarray):
        self._specs, self._n = specs, len(item_ids)
        values = [encode.bytes_value(i.encode()) for i in reversed(item_ids)]
        self._buffer = b"".join(values)
        self._offsets = np.cumsum([0] + [len(v) for v in values]).tolist()
        self._newest_first = seconds[::-1].astype(np.float64)

    def encode(self, end: int, now: int) -> bytes:
        """Returns the encoded features of the history ``[:end]`` (time order) seen from time ``now``."""
        parts = []
        first = self._n - end  # items[end - 1] in newest-first order
        for spec in self._specs:
            last = first + min(end, spec.max_length)
            ids = self._buffer[self._offsets[first] : self._offsets[last]]
            ages = ((now - self._newest_first[first:last]) / SECONDS_PER_DAY).astype("<f4").tobytes()
            parts += [encode.bytes_list_feature(spec.name, ids), encode.float_list_feature(spec.ages, ages)]
        return b"".join(parts)

    def encode_rows(self, ends: np.ndarray, now: np.ndarray) -> List[bytes]:
        """Returns ``[encode(ends[i], now[i]) for i ...]``, the same bytes; ``ends``, ``now``: ``[rows]`` int.

        The ages of every row come out of one array operation per feature (a ``[rows, max_length]``
        matrix), not a few per row: per row, only the slicing of two byte strings is left.
        """
        rows = len(ends)
        features: List[List[bytes]] = [[] for _ in range(rows)]
        firsts = self._n - ends  # per row, the newest-first position of its items[end - 1]
        for spec in self._specs:
            lengths = np.minimum(ends, spec.max_length)
            width = int(lengths.max()) if rows else 0
            positions = np.minimum(firsts[:, None] + np.arange(width), self._n - 1)  # past a row's length: unused
            ages = ((now[:, None] - self._newest_first[positions]) / SECONDS_PER_DAY).astype("<f4").tobytes()
            step = 4 * width
            for i, (first, length) in enumerate(zip(firsts.tolist(), lengths.tolist(), strict=True)):
                ids = self._buffer[self._offsets[first] : self._offsets[first + length]]
                features[i] += [
                    encode.bytes_list_feature(spec.name, ids),
                    encode.float_list_feature(spec.ages, ages[i * step : i * step + 4 * length]),
                ]
        return [b"".join(parts) for parts in features]


def first_at_same_time(seconds: np.ndarray) -> np.ndarray:
    """Returns ``[n]`` int: for each position of sorted ``seconds``, the first position with the same value.

    Everything before that position is strictly earlier, which is what a history may hold.
    """
    n = len(seconds)
    if not n:
        return np.zeros(0, np.int64)
    new = np.empty(n, dtype=bool)  # not np.r_, whose overhead is felt once per user at 1.4M users
    new[0] = True
    np.not_equal(seconds[1:], seconds[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    return np.repeat(starts, np.diff(starts, append=n))


def positional_splits(n: int, test_fraction: float, eval_fraction: float) -> List[str]:
    """Returns the split of each of a user's ``n`` interactions in time order (``split.mode: per_user``).

    The last ``test_fraction`` are test and the ``eval_fraction`` before them eval; counts round down.
    """
    n_test, n_eval = int(n * test_fraction), int(n * eval_fraction)
    return ["test" if i >= n - n_test else ("eval" if i >= n - n_test - n_eval else "train") for i in range(n)]


class AttachHistories(beam.DoFn):
    """(partition, its files) -> its users' examples with their histories, tagged by split; split stats; HISTORIES.

    Used when the profile has a history feature or splits per user: both need a user's interactions
    together and in time order. Ties in time keep file order. Users are taken in sorted order, so
    the output does not depend on which chunk was read first.
    """

    def __init__(self, profile: Profile):
        s = profile.split
        self._specs = history_specs(profile)
        self._per_user = (s.test_fraction, s.eval_fraction) if s.mode == "per_user" else None
        self._user_id, self._timestamp = profile.data.user_id, profile.data.timestamp

    def process(
        self,
        keyed: Tuple[int, Iterable[str]],
        users: Mapping[str, bytes],
        items: Mapping[str, bytes],
        boundaries: Boundaries,
        newest: Optional[int],
    ) -> Iterator[Any]:
        by_user = read_partition(keyed[1])
        stats: Dict[str, List[int]] = {}
        for user in sorted(by_user):
            user_bytes = encode.encode_features({self._user_id: user}) + users[user]  # entries carry no user id
            yield from self._user_examples(user, by_user.pop(user), user_bytes, items, boundaries, newest, stats)
        yield beam.pvalue.TaggedOutput(SPLIT_STATS, stats)

    def _user_examples(
        self,
        user: str,
        entries: List[Entry],
        user_bytes: bytes,
        items: Mapping[str, bytes],
        boundaries: Boundaries,
        newest: Optional[int],
        stats: Dict[str, List[int]],
    ) -> Iterator[Any]:
        ordered = sorted(unpack_entry(e) for e in entries)  # by (seconds, line)
        seconds = np.array([e[0] for e in ordered], dtype=np.int64)
        item_ids = [e[2] for e in ordered]
        splits = positional_splits(len(ordered), *self._per_user) if self._per_user else None
        histories = HistoryEncoder(self._specs, item_ids, seconds)
        encoded = histories.encode_rows(first_at_same_time(seconds), seconds)
        for i, (when, _, item, body) in enumerate(ordered):
            split = splits[i] if splits else split_of(when, boundaries)
            add_stat(stats, split, when)
            example = body + user_bytes + items[item] + encoded[i]
            yield beam.pvalue.TaggedOutput(split, encode.wrap_example(example))
        if self._specs and newest is not None:
            record = {self._user_id: user, self._timestamp: newest}  # the time the ages count back from
            final = encode.encode_features(record, (self._timestamp,)) + histories.encode(len(ordered), newest)
            yield beam.pvalue.TaggedOutput(HISTORIES, encode.wrap_example(final))
