"""The synthetic H&M catalogue: ``articles.csv`` with the Kaggle file's columns, and what sampling needs of it.

Products come in colour variants (one product_code, several article_ids); index group,
product group and type, colours, prices, names and descriptions are drawn from the real
file's vocabularies (``_hm_vocab``).
"""

from __future__ import annotations

import csv
import dataclasses
import types

import numpy as np

from twotower.data import _hm_vocab as vocab

ARTICLE_COLUMNS = vocab.ARTICLE_COLUMNS
N_PG, N_COL = len(vocab.PRODUCT_GROUPS), len(vocab.COLOURS)
PRICE_WIDTH = 20  # bytes reserved per formatted price


@dataclasses.dataclass(frozen=True)
class Catalog:
    ig: np.ndarray  # per article: index group position
    pg: np.ndarray  # product group position
    colour: np.ndarray  # colour position
    season: np.ndarray  # seasonal amplitude (+ summer, - winter)
    pop: np.ndarray  # base popularity weight
    prod_start: np.ndarray  # first article of the same product_code
    prod_count: np.ndarray  # number of articles with that product_code
    ids: np.ndarray  # (n, 10) uint8 ascii article_id
    prices: np.ndarray  # (n, k, PRICE_WIDTH) uint8 ascii prices, zero-padded


def sample_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Draw one category per row of a (n, k) probability matrix."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cum[:, -1]
    return np.minimum((u[:, None] >= cum).sum(axis=1), probs.shape[1] - 1)


def top_k(rng: np.random.Generator, logits: np.ndarray, k: int) -> np.ndarray:
    """Draw k distinct categories per row without replacement (Gumbel top-k)."""
    keys = logits + rng.gumbel(size=logits.shape)
    return np.argsort(-keys, axis=1, kind="stable")[:, :k]


def _format_price(sek: float) -> str:
    """Price as the Kaggle files write it: SEK / 590 with 16 decimals."""
    text = f"{sek / 590.0:.16f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _draw_articles(rng: np.random.Generator, n: int) -> types.SimpleNamespace:
    """Draws every per-product and per-article attribute of ``n`` articles (the random part of the catalogue)."""
    counts = np.minimum(1 + rng.poisson(1.3, size=n), 10)
    cum = np.cumsum(counts)
    n_prod = int(np.searchsorted(cum, n)) + 1
    counts = counts[:n_prod]
    counts[-1] -= int(cum[n_prod - 1]) - n
    prod = np.repeat(np.arange(n_prod), counts)
    first = np.cumsum(counts) - counts
    gap = max(1, min(18, 850_000 // n_prod))
    codes = 108_775 + np.cumsum(rng.integers(1, 2 * gap, size=n_prod)) - 1

    idx_w = np.array([x[3] for x in vocab.INDEXES])
    index = rng.choice(len(vocab.INDEXES), size=n_prod, p=idx_w / idx_w.sum())
    pg_prob = np.zeros((len(vocab.INDEXES), N_PG))
    for i, entry in enumerate(vocab.INDEXES):
        for g, w in entry[5].items():
            pg_prob[i, g] = w
    pg = sample_rows(rng, pg_prob[index])
    type_prob = np.zeros((N_PG, len(vocab.PRODUCT_TYPES)))
    for t, entry in enumerate(vocab.PRODUCT_TYPES):
        type_prob[entry[2], t] = entry[6]
    ptype = sample_rows(rng, type_prob[pg])
    n_sec = np.array([len(x[4]) for x in vocab.INDEXES])
    section = (rng.random(n_prod) * n_sec[index]).astype(np.int64)

    col_w = np.array([c[6] for c in vocab.COLOURS])
    col_rank = top_k(rng, np.broadcast_to(np.log(col_w), (n_prod, N_COL)), 10)
    colour = col_rank[prod, np.arange(n) - first[prod]]
    steps = rng.integers(1, 13, size=n)
    steps[first] = rng.integers(1, 30, size=n_prod)
    step_cum = np.cumsum(steps)
    suffix = step_cum - (step_cum[first] - steps[first])[prod]
    article_ids = codes[prod] * 1000 + suffix
    ga_w = np.array([g[2] for g in vocab.GRAPHICAL_APPEARANCES])
    graph = rng.choice(len(ga_w), size=n, p=ga_w / ga_w.sum())

    base_sek = np.array([t[5] for t in vocab.PRODUCT_TYPES])[ptype] * rng.lognormal(0, 0.3, n_prod)
    snap = np.abs(np.log(base_sek)[:, None] - np.log(np.array(vocab.PRICE_POINTS_SEK))[None, :]).argmin(axis=1)
    sek = np.array(vocab.PRICE_POINTS_SEK)[snap][prod]
    n_prices = 8
    sale = np.floor(sek[:, None] * rng.uniform(0.5, 0.98, size=(n, n_prices))) + 0.99
    sale[:, 0] = sek
    distinct, which = np.unique(np.minimum(sale, sek[:, None]), return_inverse=True)
    price_txt = np.array([_format_price(x) for x in distinct], dtype=f"S{PRICE_WIDTH}")
    prices = price_txt.view(np.uint8).reshape(-1, PRICE_WIDTH)[which.reshape(n, n_prices)]

    stem = rng.integers(0, len(vocab.PRODUCT_NAME_STEMS), size=n_prod)
    mod = rng.integers(0, len(vocab.PRODUCT_NAME_MODIFIERS), size=n_prod)
    name_kind = rng.integers(0, 3, size=n_prod)
    mats = rng.integers(0, len(vocab.MATERIALS), size=n_prod)
    feats = top_k(rng, np.zeros((n_prod, len(vocab.FEATURES))), 3)
    fits = rng.integers(0, len(vocab.FITS), size=n_prod)
    special = rng.random(n_prod) < 0.02
    no_desc = rng.random(n) < 0.004

    return types.SimpleNamespace(**{k: v for k, v in locals().items() if k != "rng"})


def _write_article_rows(path: str, d: types.SimpleNamespace) -> None:
    """Writes articles.csv from the draws ``d``: one row per article, in the Kaggle file's columns."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(ARTICLE_COLUMNS)
        for p in range(d.n_prod):
            i_code, i_name, ig, _, sections, _ = vocab.INDEXES[d.index[p]]
            t_no, t_name, g, gg_no, _, _, _, short = vocab.PRODUCT_TYPES[d.ptype[p]]
            m = vocab.PRODUCT_NAME_MODIFIERS[d.mod[p]]
            s = vocab.PRODUCT_NAME_STEMS[d.stem[p]]
            name = (f"{s} {m} {short}", f"{m} {short.lower()}", f"{s} {short.lower()}")[d.name_kind[p]]
            if d.special[p]:
                gg_no = 1016
            elif i_code == "G" and g <= 2:
                gg_no = 1006
            elif t_no == 272 and m == "Denim":
                gg_no = 1012
            f1, f2, f3 = (vocab.FEATURES[j] for j in d.feats[p])
            mat = vocab.MATERIALS[d.mats[p]]
            desc = (
                f"{t_name} in {mat} with {f1}, {f2} and {f3}."
                if d.fits[p] % 2
                else f"{vocab.FITS[d.fits[p]]} {t_name.lower()} in {mat} with {f1} and {f2}."
            )
            sec_no, sec_name = sections[d.section[p]]
            dept_no = 1001 + 100 * int(d.index[p]) + 10 * g
            dept_name = vocab.DEPARTMENT_STEMS[g] + vocab.DEPARTMENT_SUFFIX[i_code]
            ig_name, ig_no = vocab.INDEX_GROUPS[ig]
            for a in range(d.first[p], d.first[p] + d.counts[p]):
                ga_no, ga_name, _ = vocab.GRAPHICAL_APPEARANCES[d.graph[a]]
                cg, cg_name, pv, pv_name, pm, pm_name, _ = vocab.COLOURS[d.colour[a]]
                writer.writerow(
                    (f"{d.article_ids[a]:010d}", f"{d.codes[p]:07d}", name, t_no, t_name,
                     vocab.PRODUCT_GROUPS[g], ga_no, ga_name, cg, cg_name, pv, pv_name, pm,
                     pm_name, dept_no, dept_name, i_code, i_name, ig_no, ig_name, sec_no,
                     sec_name, gg_no, vocab.GARMENT_GROUPS[gg_no], "" if d.no_desc[a] else desc)
                )  # fmt: skip


def write_articles(path: str, rng: np.random.Generator, n: int) -> Catalog:
    """Write articles.csv and return the per-article arrays needed for sampling."""
    d = _draw_articles(rng, n)
    _write_article_rows(path, d)
    ig_of_index = np.array([x[2] for x in vocab.INDEXES])
    art_pop = rng.lognormal(0, 0.9, d.n_prod)[d.prod] * rng.lognormal(0, 0.5, n)
    ids = np.array([f"{x:010d}" for x in d.article_ids], dtype="S10").view(np.uint8)
    season = np.array([t[4] for t in vocab.PRODUCT_TYPES])[d.ptype][d.prod]
    pop = art_pop * (d.col_w[d.colour] / d.col_w.mean()) ** 0.5  # common colours sell a bit more
    first, counts = d.first[d.prod], d.counts[d.prod]
    return Catalog(
        ig_of_index[d.index][d.prod], d.pg[d.prod], d.colour, season, pop, first, counts, ids.reshape(n, 10), d.prices
    )
