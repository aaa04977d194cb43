"""Every baseline's top-k lists for the held-out users, fitted on the known interactions, same exclusions.

- ``popularity``: all-time counts of the known interactions;
- ``recent_popularity``: counts of their last ``evaluator.window_days`` days (then all-time counts);
- ``repurchase``: the user's own known items, most recent first, then recent popularity;
- ``item_knn``: sparse cosine item-item similarity, ``evaluator.knn_neighbours`` per item, summed over the
  user's known items, then popularity;
- ``ease``: EASE (``evaluator.ease_l2``), skipped above ``baselines.MAX_EASE_ITEMS`` items; users without known
  interactions get popularity.

With ``evaluator.exclude_seen`` a user's known items are left out of every list (the model's too), so
repurchase then has nothing of its own and equals recent popularity.
"""

from __future__ import annotations

import itertools
from typing import Dict, Iterable, List, Sequence, Set, Tuple

import numpy as np

from twotower.config import EvaluatorConfig, Profile
from twotower.evaluation import baselines, history_baselines, metrics
from twotower.evaluation.held_out import HeldOut


def fill(head: Iterable[bytes], ranking: Iterable[bytes], exclude: Set[bytes], k: int) -> List[bytes]:
    """Returns up to ``k`` items: ``head`` in order, then ``ranking``; excluded and already listed items skipped."""
    out: List[bytes] = []
    listed: Set[bytes] = set()
    for item in itertools.chain(head, ranking):
        if item in exclude or item in listed:
            continue
        out.append(item)
        listed.add(item)
        if len(out) == k:
            break
    return out


def ease_lists(
    known_users: np.ndarray,
    known_items: np.ndarray,
    users: Sequence[bytes],
    catalogue: Sequence[bytes],
    l2: float,
    k: int,
    exclude_seen: bool,
    fallback: Sequence[bytes],
) -> List[List[bytes]]:
    """Returns EASE's top-``k`` item ids per user; users without history get ``fallback`` (popularity)."""
    index = {item: i for i, item in enumerate(catalogue)}
    known = np.array([item in index for item in known_items], dtype=bool)
    user_ids = {u: i for i, u in enumerate(sorted(set(known_users[known])))}
    pairs_u = np.array([user_ids[u] for u in known_users[known]], dtype=np.int64)
    pairs_i = np.array([index[i] for i in known_items[known]], dtype=np.int64)
    weights = baselines.ease_weights(pairs_u, pairs_i, len(catalogue), l2)
    history: Dict[bytes, List[int]] = {}
    for u, i in zip(pairs_u, pairs_i, strict=True):
        history.setdefault(u, []).append(i)
    by_user = {u: np.unique(history.get(j, [])) for u, j in user_ids.items()}
    warm = [u for u in users if len(by_user.get(u, ())) > 0]
    top = baselines.ease_recommend([by_user[u] for u in warm], weights, min(k, len(catalogue)), exclude_seen)
    lists = {u: [catalogue[i] for i in row] for u, row in zip(warm, top, strict=True)}
    return [lists.get(u, list(fallback)) for u in users]


def _known_by_index(held_out: HeldOut) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Dict[bytes, int]]:
    """Returns the known interactions on catalogue items as (user index, item index, time) arrays and the user
    index of each known user. Items outside the catalogue cannot be recommended and are left out.
    """
    index = {item: i for i, item in enumerate(held_out.catalogue)}
    items = np.fromiter((index.get(i, -1) for i in held_out.known_items), np.int64, len(held_out.known_items))
    ok = items >= 0
    names, users = np.unique(held_out.known_users[ok], return_inverse=True)
    return users.astype(np.int64), items[ok], held_out.known_times[ok], {u: j for j, u in enumerate(names)}


def history_lists(
    held_out: HeldOut, k: int, evaluator: EvaluatorConfig, popular: Sequence[bytes]
) -> Dict[str, List[List[bytes]]]:
    """Returns {name: per held-out user top-``k`` ids} for recent_popularity, repurchase and item_knn (those in
    ``evaluator.baselines``), fitted on ``held_out``'s known interactions; exclusions are ``held_out.seen``.

    ``popular``: item ids by all-time count, item_knn's fill.
    """
    names = evaluator.baselines
    catalogue, users, seen = held_out.catalogue, held_out.users, held_out.seen
    known_u, known_i, known_t, user_index = _known_by_index(held_out)
    indptr, recent_first = history_baselines.most_recent_first(known_u, known_i, known_t, len(user_index))

    def own(user: bytes) -> np.ndarray:  # the user's distinct known items, most recent first
        j = user_index.get(user)
        return recent_first[indptr[j] : indptr[j + 1]] if j is not None else np.zeros(0, dtype=np.int64)

    ranked = history_baselines.recent_popularity_ranking(known_i, known_t, len(catalogue), evaluator.window_days)
    recent = [catalogue[i] for i in ranked]
    out: Dict[str, List[List[bytes]]] = {}
    if "recent_popularity" in names:
        out["recent_popularity"] = [fill((), recent, seen.get(u, set()), k) for u in users]
    if "repurchase" in names:
        out["repurchase"] = [fill((catalogue[i] for i in own(u)), recent, seen.get(u, set()), k) for u in users]
    if "item_knn" in names:
        weights = history_baselines.item_knn_weights(known_u, known_i, len(catalogue), evaluator.knn_neighbours)
        heads = history_baselines.item_knn_recommend([own(u) for u in users], weights, k, evaluator.exclude_seen)
        out["item_knn"] = [
            fill((catalogue[i] for i in head), popular, seen.get(u, set()), k)
            for u, head in zip(users, heads, strict=True)
        ]
    return out


def baseline_lists(profile: Profile, held_out: HeldOut, k: int) -> Tuple[Dict[str, List[List[bytes]]], Dict[str, str]]:
    """Returns ({baseline: each held-out user's top-``k`` item ids}, {baseline not computed: why}).

    The baselines are ``evaluator.baselines``, in ``config.BASELINES`` order.
    """
    ev = profile.evaluator
    ranking = metrics.popularity_ranking(held_out.known_items)
    seen, users = held_out.seen, held_out.users
    lists = {"popularity": [metrics.exclude(ranking[: k + len(seen.get(u, ()))], seen.get(u, set()), k) for u in users]}
    lists.update(history_lists(held_out, k, ev, ranking))
    skipped: Dict[str, str] = {}
    n_items = len(held_out.catalogue)
    if "ease" in ev.baselines:
        if ev.ease_l2 <= 0:
            skipped["ease"] = "evaluator.ease_l2 is 0"
        elif not baselines.ease_feasible(n_items, baselines.MAX_EASE_ITEMS):
            skipped["ease"] = f"{n_items:,} items > {baselines.MAX_EASE_ITEMS:,} (its dense inverse would not fit)"
        else:
            lists["ease"] = ease_lists(
                held_out.known_users,
                held_out.known_items,
                users,
                held_out.catalogue,
                ev.ease_l2,
                k,
                ev.exclude_seen,
                fallback=ranking[:k],  # a user without history has nothing to exclude
            )
    return {name: lists[name] for name in ev.baselines if name in lists}, skipped
