"""Approximate top-K retrieval over the catalogue: a ScaNN index built, tuned and pushed with each model.

``export.index.build_and_save`` (called when a trained model is packaged) writes, under
``MODEL_DIR/assets.extra/`` (TF Serving ignores that folder, the Pusher copies it
with the version):

- ``scann/``: the index our REST server searches (``load_index``): ``index.json``
  (kind, settings, validated Recall@K, build seconds), ``item_ids.npy`` and
  ``item_names.npy`` (``[n]`` bytes, row order of the catalogue embeddings) and,
  for a ScaNN index, ``searcher/`` (ScaNN's own files) or, for a small catalogue,
  ``embeddings.npy`` (``[n, dim]`` float32, searched exactly).
- ``scann_savedmodel/``: a second SavedModel whose ``serving_default`` takes the
  same raw query features as the model's and answers with a
  ``tfrs.layers.factorized_top_k.ScaNN`` layer. It needs ScaNN's custom ops
  (``load_scann_savedmodel``, or the tf-serving-scann image), so the model's own
  SavedModel stays loadable by the stock TF Serving image. Only written for a
  ScaNN index: below ``BRUTE_FORCE_BELOW`` items the model's exact
  ``serving_default`` is already as fast.

Settings come from the catalogue size (``derive_config``), then the search-time
knobs (leaves searched, candidates re-scored exactly) are tuned on validation
queries against exact brute force (``scann_tune.tune``): the cheapest pair whose
Recall@K, less ``scann_tune.CONFIDENCE_Z`` standard errors, reaches ``TARGET_RECALL`` wins.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import re
import tempfile
import time
from typing import Any, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from twotower.export.assets import INDEX_DIR
from twotower.export.scann_tune import REORDER_MULTIPLES, exact_top_k, recall, tune

# exact_top_k and recall stay importable from here (the bench, the TFRS layer's export)
__all__ = [
    "Index",
    "IndexConfig",
    "build_index",
    "derive_config",
    "exact_top_k",
    "load_index",
    "recall",
    "save_index",
]

INDEX_JSON = "index.json"
FORMAT = 1
# Below this many items an exact search costs <= ~0.1 ms a query on one core (numpy,
# dim 64, measured: 0.06 ms at 5k, 0.12 ms at 10k, 0.5 ms at 20k), so an
# approximate index would trade recall for nothing a client notices.
BRUTE_FORCE_BELOW = 10_000
TARGET_RECALL = 0.95
VALIDATION_QUERIES = 1000
# Threads a batched search runs on: ScaNN's query pool (one thread per CPU, less
# one) and the calling thread.
SEARCH_THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def import_scann() -> Any:
    """Returns the ``scann`` module, or raises an ImportError that says how to install it."""
    try:
        import scann
    except ImportError as error:
        raise ImportError(
            "ScaNN is needed for catalogues of >= 10,000 items: `pip install scann==1.3.2` "
            "(Linux x86-64 wheels only; the version is pinned in constraints.txt)"
        ) from error
    return scann


@dataclasses.dataclass(frozen=True)
class IndexConfig:
    """How an index is built (``kind``, tree and hashing) and searched (``leaves_to_search``, ``reorder``)."""

    kind: str  # "scann" or "brute_force"
    num_leaves: int = 0  # k-means partitions of the catalogue
    leaves_to_search: int = 0  # partitions scored per query
    reorder: int = 0  # candidates re-scored with the float32 embeddings
    spherical: bool = True  # k-means on the unit sphere (the towers' embeddings are L2-normalised)
    dims_per_block: int = 1  # asymmetric hashing: dimensions per 4-bit code
    anisotropic_threshold: float = 0.2  # ScaNN's recommended value for unit-norm dot products
    training_sample_size: int = 0


def derive_config(n: int, k: int = 100) -> IndexConfig:
    """Returns the build settings for a catalogue of ``n`` items searched for top ``k``.

    Brute force below ``BRUTE_FORCE_BELOW`` items; otherwise round(2 sqrt(n))
    leaves (twice ScaNN's rule of thumb; 2,000 at 1M items: 3% to 35% less CPU
    a query than sqrt(n) at the same Recall@100 on the six bench catalogues),
    spherical k-means on up to 250,000 items (at 1M x 64, searching 4% of
    1,000 leaves: Recall@100 0.965 vs 0.953 with plain k-means), one dimension
    per 4-bit code (two need 4x the candidates re-scored: ~40% more CPU) and a
    first guess of 2% of the leaves and 4K re-scored candidates, replaced by ``tune``.
    """
    if n < BRUTE_FORCE_BELOW:
        return IndexConfig(kind="brute_force")
    leaves = max(2, round(2 * math.sqrt(n)))
    return IndexConfig(
        kind="scann",
        num_leaves=leaves,
        leaves_to_search=max(1, round(0.02 * leaves)),
        reorder=min(n, 4 * k),
        training_sample_size=min(n, 250_000),
    )


class Index:
    """The catalogue index of one model version: exact for small catalogues, ScaNN otherwise.

    ``search`` is safe from several threads, but single queries from 2 or 4 threads
    ran no faster than from one (200k items, 2 cores): batch them, as a batch
    is split over ``SEARCH_THREADS`` threads (32 rows: 19.9k vs 11.1k queries/s
    on one thread, 1M items, 2 cores).
    """

    def __init__(
        self,
        ids: np.ndarray,
        names: np.ndarray,
        config: IndexConfig,
        searcher: Any = None,
        embeddings: Optional[np.ndarray] = None,
        info: Optional[Dict[str, Any]] = None,
    ):
        """``ids``/``names``: ``[n]`` bytes; ``searcher``: a ScaNN searcher (kind scann) or
        ``embeddings``: ``[n, dim]`` float32 (kind brute_force); ``info``: what ``index.json`` records."""
        self.ids = np.asarray(ids, dtype=bytes)
        self.names = np.asarray(names, dtype=bytes)
        self.config = config
        self.searcher = searcher
        self.embeddings = embeddings
        self.info = info if info is not None else {}
        self.validation: Optional[Tuple[np.ndarray, np.ndarray]] = None  # (queries, exact top-K) tuned on; not saved
        self.dim = int(self.info.get("dim") or embeddings.shape[1])

    @property
    def size(self) -> int:
        """Returns the number of catalogue items."""
        return len(self.ids)

    @functools.cached_property
    def name_of(self) -> Dict[bytes, bytes]:
        """Returns {item id: item name} (built on first use: merging history items into results needs names)."""
        return dict(zip(self.ids.tolist(), self.names.tolist(), strict=True))

    def search(self, query_embeddings: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns the top ``k`` items of each query, best first.

        ``query_embeddings``: ``[n, dim]`` float32 (a query tower's output).
        Returns (item_ids ``[n, k']`` bytes, item_names ``[n, k']`` bytes,
        scores ``[n, k']`` float32 dot products) with k' = min(k, catalogue size).
        """
        indices, scores = self.search_indices(query_embeddings, k)
        return np.take(self.ids, indices), np.take(self.names, indices), scores  # take: 1.5x faster than [indices]

    def search_indices(
        self,
        query_embeddings: np.ndarray,
        k: int,
        leaves_to_search: Optional[int] = None,
        reorder: Optional[int] = None,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Returns (catalogue row indices ``[n, k']`` int64, scores ``[n, k']`` float32), best first.

        ``leaves_to_search``/``reorder`` override the tuned values (ScaNN only).
        """
        queries = np.ascontiguousarray(query_embeddings, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"query_embeddings: expected [n, {self.dim}] float32, got shape {queries.shape}")
        if k < 1:
            raise ValueError(f"k: must be >= 1, got {k}")
        k = min(k, self.size)
        if len(queries) == 0:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        if self.config.kind == "brute_force":
            return _brute_force(queries, self.embeddings, k)
        leaves = leaves_to_search or self.config.leaves_to_search
        pre = max(reorder or self.config.reorder, k)
        if len(queries) == 1:
            found, scores = self.searcher.search(queries[0], k, pre, leaves)
            if len(found) < k:  # the searched leaves held fewer than k items: search them all
                found, scores = self.searcher.search(queries[0], k, pre, self.config.num_leaves)
            return np.asarray(found, np.int64)[None], np.asarray(scores, np.float32)[None]
        # ScaNN cuts a batch into pieces of ceil(rows / pool threads), at most batch_size rows,
        # and its pool has one thread per CPU less one: with its default batch_size (256), a
        # batch under 256 rows on 2 CPUs is one piece, searched by one thread.
        piece = math.ceil(len(queries) / SEARCH_THREADS)
        found, scores = self.searcher.search_batched_parallel(queries, k, pre, leaves, batch_size=piece)
        found, scores = np.asarray(found, np.int64), np.asarray(scores, np.float32)
        short = np.isnan(scores).any(axis=1)  # ScaNN pads rows it could not fill with NaN scores
        if short.any():
            found[short], scores[short] = self.searcher.search_batched(queries[short], k, pre, self.config.num_leaves)
        return found, scores


def _brute_force(queries: np.ndarray, embeddings: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    scores = queries @ embeddings.T
    top = (
        np.argpartition(-scores, k - 1, axis=1)[:, :k]
        if k < scores.shape[1]
        else np.tile(np.arange(k), (len(scores), 1))
    )
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1).astype(np.int64), np.take_along_axis(top_scores, order, axis=1)


def _build_searcher(embeddings: np.ndarray, config: IndexConfig, k: int) -> Any:
    scann = import_scann()
    return (
        scann.scann_ops_pybind.builder(embeddings, k, "dot_product")
        .tree(
            num_leaves=config.num_leaves,
            num_leaves_to_search=config.leaves_to_search,
            training_sample_size=config.training_sample_size,
            spherical=config.spherical,
        )
        .score_ah(config.dims_per_block, anisotropic_quantization_threshold=config.anisotropic_threshold)
        .reorder(min(len(embeddings), max(REORDER_MULTIPLES) * k))
        .build()
    )


def build_index(
    ids: np.ndarray,
    names: np.ndarray,
    embeddings: np.ndarray,
    k: int = 100,
    queries: Optional[np.ndarray] = None,
    target_recall: float = TARGET_RECALL,
    seed: int = 0,
) -> Index:
    """Builds and tunes the index of a catalogue; returns it with ``info`` filled (see ``index.json``).

    ``ids``/``names``: ``[n]`` bytes; ``embeddings``: ``[n, dim]`` float32, L2-normalised;
    ``queries``: ``[m, dim]`` float32 query embeddings to tune on (up to
    ``VALIDATION_QUERIES`` used); without them, catalogue embeddings stand in for queries.
    """
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    n, dim = embeddings.shape
    if len(ids) != n or len(names) != n:
        raise ValueError(f"ids ({len(ids)}), names ({len(names)}) and embeddings ({n}) must have as many rows")
    k = min(k, n)
    config = derive_config(n, k)
    started = time.monotonic()
    info: Dict[str, Any] = {"format": FORMAT, "kind": config.kind, "size": n, "dim": dim, "k": k}
    if config.kind == "brute_force":
        info.update(build_seconds=round(time.monotonic() - started, 3), recall_at_k=1.0)
        return Index(ids, names, config, embeddings=embeddings, info=info)
    rng = np.random.default_rng(seed)
    queries = queries if queries is not None and len(queries) else None
    source = "query embeddings" if queries is not None else "catalogue embeddings"
    pool = queries if queries is not None else embeddings
    pool = np.ascontiguousarray(pool[rng.permutation(len(pool))[:VALIDATION_QUERIES]], dtype=np.float32)
    index = Index(ids, names, config, searcher=_build_searcher(embeddings, config, k), info=info)
    built = time.monotonic()
    exact, _ = exact_top_k(pool, embeddings, k)
    tuned, probes = tune(index, pool, exact, target_recall)
    chosen = next(
        p for p in reversed(probes) if (p["leaves_to_search"], p["reorder"]) == (tuned.leaves_to_search, tuned.reorder)
    )
    achieved = chosen["recall"]
    if achieved < target_recall:
        logging.warning(
            "ScaNN reaches Recall@%d %.3f < %.2f on %d items; serving this catalogue by exact search",
            k, achieved, target_recall, n,
        )  # fmt: skip
        info.update(kind="brute_force", build_seconds=round(time.monotonic() - started, 3), recall_at_k=1.0)
        return Index(ids, names, IndexConfig(kind="brute_force"), embeddings=embeddings, info=info)
    index.config, index.validation = tuned, (pool, exact)
    info.update(
        config=dataclasses.asdict(tuned),
        recall_at_k=achieved,
        recall_lower_bound=chosen["lower_bound"],
        target_recall=target_recall,
        validation={"queries": len(pool), "source": source, "probes": probes},
        build_seconds=round(built - started, 3),
        tune_seconds=round(time.monotonic() - built, 3),
        scann_version=_scann_version(),
    )
    logging.info(
        "ScaNN index of %d items: %d leaves, searching %d, re-scoring %d; Recall@%d %.3f on %d %s",
        n, tuned.num_leaves, tuned.leaves_to_search, tuned.reorder, k, achieved, len(pool), source,
    )  # fmt: skip
    return index


def _scann_version() -> str:
    from importlib.metadata import version

    return version("scann")


def _write_npy(path: str, array: np.ndarray) -> None:
    with tf.io.gfile.GFile(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def _read_npy(path: str) -> np.ndarray:
    with tf.io.gfile.GFile(path, "rb") as f:
        return np.load(f, allow_pickle=False)


def save_index(index: Index, directory: str) -> None:
    """Writes ``index`` to ``directory`` (local or any tf.io.gfile path): the layout in the module docstring."""
    tf.io.gfile.makedirs(directory)
    _write_npy(os.path.join(directory, "item_ids.npy"), index.ids)
    _write_npy(os.path.join(directory, "item_names.npy"), index.names)
    if index.config.kind == "brute_force":
        _write_npy(os.path.join(directory, "embeddings.npy"), index.embeddings)
    else:
        searcher_dir = os.path.join(directory, "searcher")
        tf.io.gfile.makedirs(searcher_dir)
        with tempfile.TemporaryDirectory() as local:
            index.searcher.serialize(local)
            for name in os.listdir(local):
                with open(os.path.join(local, name), "rb") as src:
                    data = src.read()
                # ScaNN records absolute paths; keep bare names (load_index fills them in)
                if name == "scann_assets.pbtxt":
                    data = re.sub(rb'asset_path: "[^"]*/([^"/]+)"', rb'asset_path: "\1"', data)
                with tf.io.gfile.GFile(os.path.join(searcher_dir, name), "wb") as dst:
                    dst.write(data)
    with tf.io.gfile.GFile(os.path.join(directory, INDEX_JSON), "w") as f:
        json.dump(index.info, f, indent=2)


def load_index(version_dir: str) -> Optional[Index]:
    """Returns the index pushed with a model version, or None when the version has none.

    ``version_dir``: ``serving_dir/<model>/<version>`` (or a model directory);
    the index is ``version_dir/assets.extra/scann``. ScaNN searchers load from
    local paths only.
    """
    directory = os.path.join(version_dir, INDEX_DIR)
    path = os.path.join(directory, INDEX_JSON)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        info = json.load(f)
    if info.get("format") != FORMAT:
        raise ValueError(f"{path}: index format {info.get('format')}, this code reads format {FORMAT}")
    ids = _read_npy(os.path.join(directory, "item_ids.npy"))
    names = _read_npy(os.path.join(directory, "item_names.npy"))
    if info["kind"] == "brute_force":
        embeddings = _read_npy(os.path.join(directory, "embeddings.npy"))
        return Index(ids, names, IndexConfig(kind="brute_force"), embeddings=embeddings, info=info)
    searcher_dir = os.path.abspath(os.path.join(directory, "searcher"))
    if "://" in directory or not os.path.isdir(searcher_dir):
        raise ValueError(f"{searcher_dir}: ScaNN loads from a local directory; copy the version there first")
    with open(os.path.join(searcher_dir, "scann_assets.pbtxt"), encoding="utf-8") as f:
        assets = re.sub(r'asset_path: "([^"]+)"', lambda m: f'asset_path: "{searcher_dir}/{m.group(1)}"', f.read())
    pybind = import_scann().scann_ops_pybind
    searcher = pybind.ScannSearcher(pybind.scann_pybind.ScannNumpy(searcher_dir, assets))
    return Index(ids, names, IndexConfig(**info["config"]), searcher=searcher, info=info)
