"""Reading what the evaluator scores: the held-out users, their queries, and the interactions known before them.

"Known" interactions are those of every split before the held-out one (train, and eval when test is held out):
the baselines are fitted on them, and with ``evaluator.exclude_seen`` every model's lists leave them out.
Queries are each held-out user's raw features as a serving client sends them, taken from the user's earliest
held-out interaction, so any history feature in it holds known interactions only.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Sequence, Set, Tuple

import numpy as np
import tensorflow as tf

from twotower.config import Profile
from twotower.trainer import data
from twotower.transform.features import to_dense


def input_specs(signature: Any) -> Dict[str, tf.TensorSpec]:
    """Returns {input name: TensorSpec} of a serving signature: ``[batch]`` features, ``[batch, None]`` lists."""
    return dict(signature.structured_input_signature[1])


def is_list(spec: tf.TensorSpec) -> bool:
    """Returns True for an input that takes a list per query (``[batch, None]``, e.g. a user's recent items)."""
    return spec.shape.rank == 2


def check_comparable(baseline_inputs: Mapping[str, tf.TensorSpec], current_inputs: Mapping[str, tf.TensorSpec]) -> None:
    """Raises ValueError unless every input of the last blessed model is an input of the current one, same dtype
    and rank.

    The held-out data is read once, with the current model's inputs; an earlier model that needs another
    feature (or the same feature with another type or shape) cannot be scored on it.
    """
    for name, spec in sorted(baseline_inputs.items()):
        if name not in current_inputs:
            raise ValueError(
                f"the last blessed model takes input '{name}', which the current model does not "
                f"(the profile's features changed since): inputs {sorted(baseline_inputs)} vs {sorted(current_inputs)}"
            )
        current = current_inputs[name]
        if current.dtype != spec.dtype:
            raise ValueError(
                f"the last blessed model takes '{name}' as {spec.dtype.name}, the current model as {current.dtype.name}"
            )
        if is_list(current) != is_list(spec):
            raise ValueError(
                f"the last blessed model takes '{name}' of shape {spec.shape}, the current model {current.shape}"
            )


def _padded(chunks: Sequence[np.ndarray], dtype: tf.DType) -> np.ndarray:
    """Returns the [rows, width] concatenation of [rows_i, width_i] ``chunks``, right-padded with b'' (strings)
    or 0 (numbers, as ``dtype``).

    width is the longest list, at least 1 (a column of padding is no history, as an empty list is).
    """
    width = max([1] + [c.shape[1] for c in chunks])
    pad = b"" if dtype == tf.string else 0
    rows = sum(c.shape[0] for c in chunks)
    out = np.full((rows, width), pad, dtype=object if dtype == tf.string else dtype.as_numpy_dtype)
    row = 0
    for c in chunks:
        out[row : row + c.shape[0], : c.shape[1]] = c
        row += c.shape[0]
    return out


def _shared(values: np.ndarray, pool: Dict[bytes, bytes]) -> np.ndarray:
    """Returns ``values`` ([n] object, bytes) whose equal ids are one object, the first of them kept in ``pool``.

    TensorFlow gives each row its own bytes object. Reading the 1.5M known interactions of 5% of the H&M
    size (user, item, time) took 333 MB that way and takes 107 MB shared (bench/evaluator_read_memory.py;
    at the full size's 31M rows, by the same bytes per row: about 6.8 GB against 2.2 GB).
    """
    out = np.empty(len(values), dtype=object)
    out[:] = [pool.setdefault(v, v) for v in values.tolist()]
    return out


def read_columns(
    patterns: Sequence[str], spec: Mapping[str, tf.io.VarLenFeature], lists: Sequence[str] = ()
) -> Dict[str, np.ndarray]:
    """Returns every feature of ``spec``: ``[n]`` numpy arrays ('' / NaN / 0 where missing), and for the names in
    ``lists`` ``[n, width]`` arrays right-padded with b'' (strings) or 0.0 (numbers) to the longest list.
    """
    chunks: Dict[str, List[np.ndarray]] = {name: [] for name in spec}
    pools: Dict[str, Dict[bytes, bytes]] = {name: {} for name in spec}
    for batch in data.raw_dataset(patterns, spec):
        for name in spec:
            if name in lists:
                pad = b"" if spec[name].dtype == tf.string else 0
                chunks[name].append(tf.sparse.to_dense(batch[name], default_value=pad).numpy())
            elif spec[name].dtype == tf.string:
                chunks[name].append(_shared(to_dense(batch[name]).numpy(), pools[name]))
            else:
                chunks[name].append(to_dense(batch[name]).numpy())
    out = {}
    for name, parts in chunks.items():
        if name in lists:
            out[name] = _padded(parts, spec[name].dtype)
        else:
            out[name] = np.concatenate(parts) if parts else np.zeros(0, dtype=spec[name].dtype.as_numpy_dtype)
    return out


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """The held-out users, what they interacted with, and the interactions known before them."""

    users: List[bytes]  # sorted
    truth: List[Set[bytes]]  # per user: held-out items
    queries: Dict[str, np.ndarray]  # per input: [users] values (or [users, width] lists) of each user's first row
    seen: Dict[bytes, Set[bytes]]  # known items per held-out user; empty unless evaluator.exclude_seen
    known_users: np.ndarray  # [known interactions] user ids
    known_items: np.ndarray  # [known interactions] item ids
    known_times: np.ndarray  # [known interactions] int64 seconds (data.timestamp)
    catalogue: List[bytes]  # sorted item ids of the catalog split
    interactions: int  # held-out interactions


def _first_rows(
    users: np.ndarray, items: np.ndarray, times: np.ndarray
) -> Tuple[Dict[bytes, Set[bytes]], Dict[bytes, int]]:
    """Returns ({user: held-out items}, {user: row of the user's earliest interaction, first in file order})."""
    truth: Dict[bytes, Set[bytes]] = {}
    first: Dict[bytes, int] = {}
    for row, (user, item, t) in enumerate(zip(users, items, times, strict=True)):
        truth.setdefault(user, set()).add(item)
        if user not in first or t < times[first[user]]:
            first[user] = row
    return truth, first


def read_held_out(
    profile: Profile,
    inputs: Mapping[str, tf.TensorSpec],
    known_patterns: Sequence[str],
    held_out_patterns: Sequence[str],
    catalog_patterns: Sequence[str],
) -> HeldOut:
    """Reads the held-out, known and catalog examples once; ``inputs`` are the query features to keep.

    An input of rank 2 (``is_list``) is read as a variable-length feature and padded per user to
    ``[users, width]``: b'' after string lists, 0.0 after numeric ones.
    """
    d = profile.data
    ids = {name: tf.io.VarLenFeature(tf.string) for name in (d.user_id, d.item_id)}
    ids[d.timestamp] = tf.io.VarLenFeature(tf.int64)
    spec = {name: tf.io.VarLenFeature(s.dtype) for name, s in inputs.items()}
    spec.update(ids)
    lists = [name for name, s in inputs.items() if is_list(s)]
    held = read_columns(held_out_patterns, spec, lists)
    known = read_columns(known_patterns, ids)
    catalogue = sorted(set(read_columns(catalog_patterns, {d.item_id: tf.io.VarLenFeature(tf.string)})[d.item_id]))

    truth, first_row = _first_rows(held[d.user_id], held[d.item_id], held[d.timestamp])
    users = sorted(truth)
    rows = np.array([first_row[u] for u in users], dtype=np.int64)
    seen: Dict[bytes, Set[bytes]] = {}
    if profile.evaluator.exclude_seen:  # the held-out users' only: at the H&M size they are 120k of 1.37M users
        for user, item in zip(known[d.user_id], known[d.item_id], strict=True):
            if user in truth:
                seen.setdefault(user, set()).add(item)
    return HeldOut(
        users=users,
        truth=[truth[u] for u in users],
        queries={name: held[name][rows] for name in inputs},
        seen=seen,
        known_users=known[d.user_id],
        known_items=known[d.item_id],
        known_times=known[d.timestamp].astype(np.int64),
        catalogue=catalogue,
        interactions=int(len(held[d.item_id])),
    )
