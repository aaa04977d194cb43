"""What more than one command prints: metric tables and ranked recommendations. No TensorFlow here."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence


def print_models(models: Mapping[str, Dict[str, float]]) -> None:
    """Prints one row per model and one column per metric."""
    keys = list(next(iter(models.values())))
    print(f"{'model':<18}" + "".join(f"{k:>13}" for k in keys))
    for name, table in models.items():
        print(f"{name:<18}" + "".join(f"{table[k]:>13.4f}" for k in keys))


def print_recommendations(title: str, recs: Sequence[Any]) -> None:
    """Prints ``title`` and one ranked line per recommendation (``item_id``, ``name``, ``score``)."""
    print(title)
    for rank, rec in enumerate(recs, 1):
        print(f"  {rank:>2}. {rec.item_id}  {rec.name:<40.40}  {rec.score:.3f}")
