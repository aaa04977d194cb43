"""Which split an interaction belongs to: by date (train < eval < test) or, per user, by order in time.

``split_boundaries`` turns the profile's ``split.*`` into the first second of eval and of
test, and ``split_of`` places an interaction by its timestamp; ``split.mode: per_user``
holds out each user's latest interactions instead (``history.positional_splits``). Both keep,
per split, the number of examples and their first and last timestamp for the ingestion report.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Dict, Iterable, List, Optional

from twotower.config import Profile, SplitConfig

SECONDS_PER_DAY = 86400
SPLIT_STATS = "split_stats"
CATALOG = "catalog"  # one example per item: the candidates
HISTORIES = "histories"  # one example per user: their history as of the end of the data (a history feature)
TABLE_SPLITS = (CATALOG, HISTORIES)  # splits that are not interactions: no statistics checks, no training


@dataclasses.dataclass(frozen=True)
class Boundaries:
    """First second (UTC) of the eval split and of the test split (None: no test split)."""

    eval_start: int
    test_start: Optional[int]


def split_names(profile: Profile) -> List[str]:
    """Returns the output splits: train, eval, [test,] catalog [, histories (with a history feature)]."""
    s = profile.split
    has_test = s.mode == "per_user" or s.test_days or s.test_start
    histories = [HISTORIES] if any(f.kind == "history" for f in profile.features) else []
    return ["train", "eval"] + (["test"] if has_test else []) + [CATALOG] + histories


def interaction_splits(profile: Profile) -> List[str]:
    """Returns the splits made of interactions: train, eval [, test]."""
    return [n for n in split_names(profile) if n not in TABLE_SPLITS]


def _midnight(date: str) -> int:
    return int(datetime.datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=datetime.timezone.utc).timestamp())


def split_boundaries(split: SplitConfig, newest: Optional[int]) -> Boundaries:
    """Returns the boundaries from fixed dates or, counted back in whole days, from the ``newest`` timestamp."""
    after_last = (newest // SECONDS_PER_DAY + 1) * SECONDS_PER_DAY if newest is not None else 0
    test_start: Optional[int] = None
    if split.test_start:
        test_start = _midnight(split.test_start)
    elif split.test_days:
        test_start = after_last - split.test_days * SECONDS_PER_DAY
    if split.eval_start:
        eval_start = _midnight(split.eval_start)
    else:
        eval_start = (test_start if test_start is not None else after_last) - split.eval_days * SECONDS_PER_DAY
    return Boundaries(eval_start, test_start)


def split_of(timestamp: int, b: Boundaries) -> str:
    """Returns 'train', 'eval' or 'test' for an interaction at ``timestamp``."""
    if b.test_start is not None and timestamp >= b.test_start:
        return "test"
    return "eval" if timestamp >= b.eval_start else "train"


def day(seconds: Optional[int]) -> Optional[str]:
    """Returns the UTC date 'YYYY-MM-DD' of ``seconds`` since the epoch (None for None)."""
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d")


def add_stat(stats: Dict[str, List[int]], split: str, seconds: int) -> None:
    """Counts an example of ``split`` at ``seconds`` into ``stats``: {split: [examples, first, last]}."""
    s = stats.setdefault(split, [0, seconds, seconds])
    s[0], s[1], s[2] = s[0] + 1, min(s[1], seconds), max(s[2], seconds)


def merge_split_stats(parts: Iterable[Dict[str, List[int]]]) -> Dict[str, List[int]]:
    """Returns the union of per-chunk ``add_stat`` records: examples summed, first and last widened."""
    merged: Dict[str, List[int]] = {}
    for part in parts:
        for split, (n, lo, hi) in part.items():
            m = merged.setdefault(split, [0, lo, hi])
            merged[split] = [m[0] + n, min(m[1], lo), max(m[2], hi)]
    return merged
