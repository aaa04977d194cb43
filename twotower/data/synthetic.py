"""Deterministic, streaming generator of synthetic H&M-format data.

Writes ``articles.csv``, ``customers.csv`` and ``transactions_train.csv`` with exactly the
file names, columns, column order and value formats of the Kaggle "H&M Personalized Fashion
Recommendations" data. Purchases have learnable structure: long-tailed item popularity and
customer activity, age-dependent customer tastes over (index group, product group, colour)
buckets, repeat purchases of bought articles or their colour variants, a weekly and yearly
volume cycle and seasonal product groups. Transactions are sampled hierarchically with numpy
one day (or chunk) at a time and streamed to disk, so memory scales with the number of
customers and articles, never with the number of transactions.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import os
import sys

import numpy as np
from tqdm import tqdm

from twotower.data import _hm_vocab as vocab
from twotower.data._hm_articles import PRICE_WIDTH, Catalog, sample_rows, top_k, write_articles

ARTICLE_COLUMNS, CUSTOMER_COLUMNS, TRANSACTION_COLUMNS = (
    vocab.ARTICLE_COLUMNS, vocab.CUSTOMER_COLUMNS, vocab.TRANSACTION_COLUMNS,
)  # fmt: skip

_N_IG, _N_PG, _N_COL = len(vocab.INDEX_GROUPS), len(vocab.PRODUCT_GROUPS), len(vocab.COLOURS)
# The bundled demo data set (`make demo`, `twotower run` without --data, `twotower data generate`).
DEMO_CUSTOMERS = 5000
DEMO_ARTICLES = 1200
DEMO_TRANSACTIONS = 200_000


@dataclasses.dataclass(frozen=True)
class GeneratedData:
    """Summary of one :func:`generate_hm` run.

    ``first_date``/``last_date`` are the dates ('YYYY-MM-DD') of the first and last
    transaction rows written (the window ends when no transaction was written).
    """

    out_dir: str
    customers: int
    articles: int
    transactions: int
    first_date: str
    last_date: str


@dataclasses.dataclass(frozen=True)
class _Knobs:
    """Behaviour of the simulated shoppers (fixed; kept together instead of module globals)."""

    repeat_p: float = 0.15  # chance a purchase comes from the customer's own history
    same_article_p: float = 0.5  # within a repeat: same article, else a colour variant
    primary_index_group_p: float = 0.9  # within taste: primary, else secondary index group
    taste_beta: tuple[float, float] = (9.0, 1.5)  # per-customer share of taste purchases
    taste_pop_power: float = 0.5  # flatter popularity inside a customer's taste buckets
    season_amp: float = 0.9  # log-amplitude of article seasonality
    basket_p: float = 0.4  # geometric basket size parameter (mean 2.5 items)
    base_price_p: float = 0.65  # chance a row uses the article's undiscounted price
    history: int = 4  # remembered articles per customer
    chunk_rows: int = 65536  # max transaction rows sampled at once
    customer_chunk: int = 25_000  # customers generated and written at once


@dataclasses.dataclass(frozen=True)
class _Customers:
    ids: np.ndarray  # (n, 64) uint8 ascii customer_id
    activity_cdf: np.ndarray  # cumulative purchase-rate weights
    primary: np.ndarray  # preferred index group
    secondary: np.ndarray  # second index group
    pref_pg: np.ndarray  # (n, 3) preferred product groups
    pref_pg_w: np.ndarray  # (n, 3) their weights (0 = unused slot)
    pref_col: np.ndarray  # (n, 3) preferred colours
    n_col: np.ndarray  # number of used colour slots
    taste_p: np.ndarray  # share of purchases from taste buckets
    online_p: np.ndarray  # chance of sales channel 2
    history: np.ndarray  # (n, h) recently bought articles, -1 = empty


def basket_sizes(rng: np.random.Generator, n: int, basket_p: float) -> np.ndarray:
    """Returns geometric(``basket_p``) basket sizes summing to exactly ``n`` (the last one cut short)."""
    sizes = rng.geometric(basket_p, size=int(n * basket_p) + 16)
    while sizes.sum() < n:
        sizes = np.concatenate([sizes, rng.geometric(basket_p, size=n // 2 + 16)])
    cum = np.cumsum(sizes)
    last = int(np.searchsorted(cum, n))
    sizes = sizes[: last + 1]
    sizes[-1] -= cum[last] - n
    return sizes


def _write_customers(path: str, rng: np.random.Generator, n: int, seed: int, knobs: _Knobs) -> _Customers:
    """Write customers.csv and return the per-customer tastes needed for sampling."""
    n_postal = max(10, n // 5)
    postal = np.array(
        [hashlib.sha256(f"hm-postal:{seed}:{j}".encode()).hexdigest() for j in range(n_postal)], dtype="S64"
    )
    postal_cdf = np.cumsum(rng.lognormal(0, 1.5, n_postal))
    pg_prior = np.full((_N_IG, _N_PG), 1e-9)
    for entry in vocab.INDEXES:
        for g, w in entry[5].items():
            pg_prior[entry[2], g] += entry[3] * w
    log_pg = 0.5 * np.log(pg_prior / pg_prior.sum(axis=1, keepdims=True))
    log_col = 0.5 * np.log([c[6] for c in vocab.COLOURS])
    out = _Customers(
        ids=np.empty((n, 64), np.uint8), activity_cdf=np.empty(n), primary=np.empty(n, np.int8),
        secondary=np.empty(n, np.int8), pref_pg=np.empty((n, 3), np.int8),
        pref_pg_w=np.empty((n, 3), np.float32), pref_col=np.empty((n, 3), np.int8),
        n_col=np.empty(n, np.int8), taste_p=np.empty(n, np.float32),
        online_p=np.empty(n, np.float32), history=np.full((n, knobs.history), -1, np.int32),
    )  # fmt: skip
    activity = np.empty(n)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CUSTOMER_COLUMNS)
        for lo in range(0, n, knobs.customer_chunk):
            hi = min(n, lo + knobs.customer_chunk)
            m = hi - lo
            young = rng.random(m) < 0.45
            age = np.where(young, rng.normal(24, 4, m), rng.normal(50, 10, m))
            age = np.clip(np.rint(age), 16, 99).astype(np.int64)
            ig_p = np.stack([np.interp(age, vocab.AGE_ANCHORS, row) for row in vocab.AGE_INDEX_GROUP_PROBS], axis=1)
            out.primary[lo:hi] = sample_rows(rng, ig_p)
            out.secondary[lo:hi] = sample_rows(rng, ig_p)
            out.pref_pg[lo:hi] = top_k(rng, log_pg[out.primary[lo:hi]], 3)
            n_pg = rng.choice(3, size=m, p=[0.3, 0.45, 0.25]) + 1
            w = rng.gamma(1.0, size=(m, 3)) + 0.05
            out.pref_pg_w[lo:hi] = np.where(np.arange(3) < n_pg[:, None], w, 0.0)
            out.pref_col[lo:hi] = top_k(rng, np.broadcast_to(log_col, (m, _N_COL)), 3)
            out.n_col[lo:hi] = rng.integers(2, 4, size=m)
            out.taste_p[lo:hi] = rng.beta(*knobs.taste_beta, size=m)
            out.online_p[lo:hi] = rng.beta(2.1, 0.9, size=m)
            activity[lo:hi] = rng.lognormal(0, 1.2, m) + 0.1  # floor: everyone shops sometimes

            fn = rng.random(m) < 0.35
            active = np.where(fn, rng.random(m) < 0.95, rng.random(m) < 0.01)
            club = rng.choice(["ACTIVE", "PRE-CREATE", "LEFT CLUB", ""], size=m, p=[0.927, 0.068, 0.0004, 0.0046])
            news = np.where(fn, np.where(rng.random(m) < 0.97, "Regularly", "Monthly"), "NONE")
            news = np.where(rng.random(m) < 0.01, "", news)
            age_txt = np.where(rng.random(m) < 0.01, "", age.astype(str))
            post = np.searchsorted(postal_cdf, rng.random(m) * postal_cdf[-1], side="right")
            ids = [hashlib.sha256(f"hm-customer:{seed}:{i}".encode()).hexdigest() for i in range(lo, hi)]
            out.ids[lo:hi] = np.frombuffer("".join(ids).encode(), np.uint8).reshape(m, 64)
            postal_txt = np.char.decode(postal[np.minimum(post, n_postal - 1)], "ascii")
            columns = (np.where(fn, "1.0", ""), np.where(active, "1.0", ""), club, news, age_txt, postal_txt)
            writer.writerows(zip(ids, *(col.tolist() for col in columns), strict=True))
    np.cumsum(activity, out=out.activity_cdf)
    return out


def _segments(key: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Articles ordered by bucket key plus each bucket's [start, end) in that order."""
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    keys = np.arange(n_keys)
    return order, np.searchsorted(sorted_key, keys, "left"), np.searchsorted(sorted_key, keys, "right")


def _draw(cum: np.ndarray, order: np.ndarray, start: np.ndarray, end: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Sample an article inside each bucket [start, end) proportionally to its weight."""
    lo = np.where(start > 0, cum[np.maximum(start - 1, 0)], 0.0)
    pos = np.searchsorted(cum, lo + u * (cum[end - 1] - lo), side="right")
    return order[np.clip(pos, start, end - 1)]


class _Sampler:
    """Hierarchical per-day sampler: customer -> bucket -> article within bucket."""

    def __init__(self, cat: Catalog, cus: _Customers, knobs: _Knobs) -> None:
        self.cat, self.cus, self.knobs = cat, cus, knobs
        n_art = len(cat.ig)
        bucket = (cat.ig * _N_PG + cat.pg) * _N_COL + cat.colour
        self.levels = [
            _segments(bucket, _N_IG * _N_PG * _N_COL),
            _segments(cat.ig * _N_PG + cat.pg, _N_IG * _N_PG),
            _segments(cat.ig, _N_IG),
            (np.arange(n_art), np.zeros(1, np.int64), np.full(1, n_art)),
        ]
        self.cums: list[np.ndarray] = []
        self.pg_factor = np.ones(_N_PG)
        self.pg_season = np.array(vocab.PRODUCT_GROUP_SEASON)

    def start_day(self, day: dt.date) -> None:
        """Refresh seasonal article and product-group weights: O(articles) per day."""
        wave = np.cos(2 * np.pi * (day.timetuple().tm_yday - 196) / 365.25)
        season = np.exp(self.knobs.season_amp * self.cat.season * wave)
        taste_w = self.cat.pop**self.knobs.taste_pop_power * season
        self.cums = [np.cumsum(taste_w[order]) for order, _, _ in self.levels[:3]]
        self.cums.append(np.cumsum(self.cat.pop * season))
        self.pg_factor = np.exp(self.pg_season * wave)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``n`` rows grouped in baskets; return (customer, article) indices."""
        cus, cat, k = self.cus, self.cat, self.knobs
        sizes = basket_sizes(rng, n, k.basket_p)
        u = rng.random(len(sizes)) * cus.activity_cdf[-1]
        who = np.searchsorted(cus.activity_cdf, u, side="right")
        c = np.repeat(np.minimum(who, len(cus.activity_cdf) - 1), sizes)

        art = np.empty(n, np.int64)
        past = cus.history[c, rng.integers(0, k.history, n)].astype(np.int64)
        repeat = (rng.random(n) < k.repeat_p) & (past >= 0)
        taste = ~repeat & (rng.random(n) < cus.taste_p[c])
        other = ~repeat & ~taste

        h = past[repeat]
        variant = cat.prod_start[h] + (rng.random(len(h)) * cat.prod_count[h]).astype(np.int64)
        art[repeat] = np.where(rng.random(len(h)) < k.same_article_p, h, variant)

        ct = c[taste]
        nt = len(ct)
        ig = np.where(rng.random(nt) < k.primary_index_group_p, cus.primary[ct], cus.secondary[ct])
        pref = cus.pref_pg[ct].astype(np.int64)
        pg = pref[np.arange(nt), sample_rows(rng, cus.pref_pg_w[ct] * self.pg_factor[pref])]
        slot = (rng.random(nt) * cus.n_col[ct]).astype(np.int64)
        col = cus.pref_col[ct, slot].astype(np.int64)
        keys = [(ig * _N_PG + pg) * _N_COL + col, ig * _N_PG + pg, ig.astype(np.int64)]
        u = rng.random(nt)
        chosen = np.empty(nt, np.int64)
        in_season = rng.random(nt) < self.pg_factor[pg]  # off-season tastes fall back to popular
        chosen[~in_season] = self._popular(u[~in_season])
        todo = np.flatnonzero(in_season)
        for level, key in enumerate(keys):
            order, start, end = self.levels[level]
            s, e = start[key[todo]], end[key[todo]]
            ok = e > s
            chosen[todo[ok]] = _draw(self.cums[level], order, s[ok], e[ok], u[todo[ok]])
            todo = todo[~ok]
        chosen[todo] = self._popular(u[todo])
        art[taste] = chosen
        art[other] = self._popular(rng.random(int(other.sum())))

        cus.history[c, rng.integers(0, k.history, n)] = art
        return c, art

    def _popular(self, u: np.ndarray) -> np.ndarray:
        order, _, end = self.levels[3]
        zeros = np.zeros(len(u), np.int64)
        return _draw(self.cums[3], order, zeros, zeros + end[0], u)


def _daily_counts(rng: np.random.Generator, n_tx: int, dates: list[dt.date]) -> np.ndarray:
    """Split ``n_tx`` rows over days following a weekly and a yearly cycle."""
    weekly = np.array([0.95, 0.9, 0.95, 1.0, 1.1, 1.2, 1.0])[[d.weekday() for d in dates]]
    doy = np.array([d.timetuple().tm_yday for d in dates])
    yearly = 1 + 0.25 * np.cos(2 * np.pi * (doy - 196) / 365.25)
    weight = weekly * yearly * rng.lognormal(0, 0.1, len(dates))
    return rng.multinomial(n_tx, weight / weight.sum())


def _write_transactions(
    path: str, rng: np.random.Generator, sampler: _Sampler, n_tx: int, dates: list[dt.date], progress: bool
) -> list[dt.date]:
    """Stream transactions_train.csv day by day; return the dates that got rows."""
    cat, cus, knobs = sampler.cat, sampler.cus, sampler.knobs
    n_prices = cat.prices.shape[1]
    p0 = 87  # offset of the price field in a fixed-width row
    width = p0 + PRICE_WIDTH + 3
    used: list[dt.date] = []
    bar = tqdm(total=n_tx, unit="rows", unit_scale=True, desc="transactions", disable=not progress, file=sys.stderr)
    with open(path, "wb") as fh, bar:
        fh.write((",".join(TRANSACTION_COLUMNS) + "\n").encode())
        for day, count in zip(dates, _daily_counts(rng, n_tx, dates), strict=True):
            if count:
                used.append(day)
                sampler.start_day(day)
            date_bytes = np.frombuffer(day.isoformat().encode(), np.uint8)
            for done in range(0, int(count), knobs.chunk_rows):
                n = min(knobs.chunk_rows, int(count) - done)
                c, art = sampler.sample(rng, n)
                full = rng.random(n) < knobs.base_price_p
                price_no = np.where(full, 0, rng.integers(1, n_prices, n))
                rows = np.zeros((n, width), np.uint8)
                rows[:, :10] = date_bytes
                rows[:, [10, 75, 86, p0 + PRICE_WIDTH]] = ord(",")
                rows[:, 11:75] = cus.ids[c]
                rows[:, 76:86] = cat.ids[art]
                rows[:, p0 : p0 + PRICE_WIDTH] = cat.prices[art, price_no]
                rows[:, p0 + PRICE_WIDTH + 1] = np.where(rng.random(n) < cus.online_p[c], ord("2"), ord("1"))
                rows[:, -1] = ord("\n")
                flat = rows.ravel()
                fh.write(flat[flat != 0].tobytes())
                bar.update(n)
    return used


def generate_hm(
    out_dir: str,
    customers: int = 2000,
    articles: int = 500,
    transactions: int = 60000,
    seed: int = 0,
    start_date: str = "2020-06-01",
    days: int = 112,
    progress: bool = True,
) -> GeneratedData:
    """Generate synthetic H&M-format ``articles.csv``, ``customers.csv``, ``transactions_train.csv``.

    Args:
        out_dir: Output directory, created if missing; existing files are overwritten.
        customers: Number of customer rows (>= 1).
        articles: Number of article rows (>= 1).
        transactions: Exact number of transaction rows (>= 0), sorted by ``t_dat``.
        seed: Non-negative seed; the same arguments give byte-identical files.
        start_date: First day of the window, 'YYYY-MM-DD'.
        days: Window length; dates fall in [start_date, start_date + days).
        progress: Show a tqdm bar over transaction rows on stderr.

    Returns:
        A :class:`GeneratedData` summary of what was written.

    Raises:
        ValueError: On non-positive sizes, a negative seed or a malformed ``start_date``.
    """
    if customers < 1 or articles < 1 or transactions < 0 or days < 1 or seed < 0:
        raise ValueError("customers, articles and days must be >= 1; transactions and seed >= 0")
    start = dt.date.fromisoformat(start_date)
    dates = [start + dt.timedelta(days=d) for d in range(days)]
    os.makedirs(out_dir, exist_ok=True)
    knobs = _Knobs()
    art_rng, cus_rng, tx_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    catalog = write_articles(os.path.join(out_dir, "articles.csv"), art_rng, articles)
    people = _write_customers(os.path.join(out_dir, "customers.csv"), cus_rng, customers, seed, knobs)
    sampler = _Sampler(catalog, people, knobs)
    used = _write_transactions(
        os.path.join(out_dir, "transactions_train.csv"), tx_rng, sampler, transactions, dates, progress
    )
    first, last = (used[0], used[-1]) if used else (dates[0], dates[-1])
    return GeneratedData(out_dir, customers, articles, transactions, first.isoformat(), last.isoformat())
