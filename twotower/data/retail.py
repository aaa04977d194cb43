"""Deterministic, streaming generator of synthetic cash-and-carry (wholesale retail) data.

Writes ``products.csv``, ``customers.csv`` and ``sales.csv`` in the shape of the ``retail``
profile: a generic export of a cash-and-carry chain whose customers are businesses
(HoReCa, traders, offices, others) in a handful of cities. Purchases have learnable structure:
long-tailed product popularity, category preferences that depend on the customer type (and a
little on the city), repeat purchases from a per-customer set of staples, receipts of several
lines at one checkout time, a weekly cycle (Sundays nearly closed) and opening hours. Sales are
sampled with numpy one day (or chunk) at a time and written in time order, so memory scales
with the number of customers and products, never with the number of transactions.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import os

import numpy as np

from twotower.data import _retail_vocab as vocab
from twotower.data.synthetic import basket_sizes

SALES_COLUMNS, PRODUCT_COLUMNS, CUSTOMER_COLUMNS = vocab.SALES_COLUMNS, vocab.PRODUCT_COLUMNS, vocab.CUSTOMER_COLUMNS
SALES_FILE, PRODUCTS_FILE, CUSTOMERS_FILE = vocab.SALES_FILE, vocab.PRODUCTS_FILE, vocab.CUSTOMERS_FILE
CATEGORY_NAMES: tuple[str, ...] = tuple(c[0] for c in vocab.CATEGORIES)
CUSTOMER_TYPE_NAMES: tuple[str, ...] = tuple(t[0] for t in vocab.CUSTOMER_TYPES)
CITY_NAMES: tuple[str, ...] = tuple(c[0] for c in vocab.CITIES)
_N_CAT = len(vocab.CATEGORIES)


@dataclasses.dataclass(frozen=True)
class RetailData:
    """Summary of one :func:`generate_retail` run.

    ``first_date``/``last_date`` are the UTC dates ('YYYY-MM-DD') of the first and last sales
    rows written (the whole window when no row was written).
    """

    out_dir: str
    customers: int
    products: int
    transactions: int
    first_date: str
    last_date: str


@dataclasses.dataclass(frozen=True)
class _Knobs:
    """Behaviour of the simulated customers (fixed; kept together instead of module globals)."""

    staples: int = 6  # products each customer buys again and again
    basket_p: float = 0.25  # geometric receipt size parameter (mean 4 lines)
    pref_concentration: float = 6.0  # Dirichlet concentration of a customer's category mix around its type's
    city_sigma: float = 0.15  # log-sd of a city's category multipliers: a mild effect
    popularity_sigma: float = 1.3  # log-sd of product popularity: a long tail
    price_sigma: float = 0.4  # log-sd of prices around the category's typical price
    pack_price_step: float = 2.0  # price factor from one pack size of a subcategory to the next larger
    promo_p: float = 0.1  # chance a line is on promotion
    promo_factor: float = 0.85  # price factor of a promotion
    day_sigma: float = 0.1  # day-to-day volume noise (log-sd)
    redraws: int = 5  # attempts (by taste, then at random) to replace a product already on the receipt
    chunk_rows: int = 65_536  # max sales rows sampled at once


@dataclasses.dataclass(frozen=True)
class _Catalog:
    ids: np.ndarray  # str product ids
    category: np.ndarray  # category position per product
    price: np.ndarray  # shelf price per product
    order: np.ndarray  # products sorted by category
    start: np.ndarray  # per category: first position in ``order``
    end: np.ndarray  # per category: one past the last position in ``order``
    cum: np.ndarray  # cumulative popularity along ``order``

    def draw(self, categories: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Returns one product per row of ``categories`` (non-empty ones), by popularity; ``u`` uniform [0, 1)."""
        start, end = self.start[categories], self.end[categories]
        lo = np.where(start > 0, self.cum[np.maximum(start - 1, 0)], 0.0)
        pos = np.searchsorted(self.cum, lo + u * (self.cum[end - 1] - lo), side="right")
        return self.order[np.clip(pos, start, end - 1)]


@dataclasses.dataclass(frozen=True)
class _Customers:
    ids: np.ndarray  # str customer ids
    kind: np.ndarray  # customer type position
    activity_cdf: np.ndarray  # cumulative visit-rate weights
    pref_cdf: np.ndarray  # (n, categories) cumulative category preferences
    staples: np.ndarray  # (n, knobs.staples) product positions


def _write_products(path: str, rng: np.random.Generator, n: int, knobs: _Knobs) -> _Catalog:
    """Writes products.csv; returns the per-product arrays the sampler needs."""
    share = np.array([c[1] for c in vocab.CATEGORIES])
    category = rng.choice(_N_CAT, size=n, p=share / share.sum())
    n_sub = np.array([len(c[4]) for c in vocab.CATEGORIES])
    sub = (rng.random(n) * n_sub[category]).astype(np.int64)
    pick = rng.random((n, 3))  # brand, noun, pack size
    n_sizes = np.zeros((_N_CAT, n_sub.max()), np.int64)  # pack sizes per (category, subcategory)
    for c, entry in enumerate(vocab.CATEGORIES):
        n_sizes[c, : n_sub[c]] = [len(sub[2]) for sub in entry[4]]
    size = (pick[:, 2] * n_sizes[category, sub]).astype(np.int64)
    typical = np.array([c[2] for c in vocab.CATEGORIES])[category] * knobs.pack_price_step**size
    price = np.maximum(np.round(typical * rng.lognormal(0.0, knobs.price_sigma, n), 2), 0.19)
    popularity = rng.lognormal(0.0, knobs.popularity_sigma, n)
    ids = np.array([f"P{i + 1:06d}" for i in range(n)])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(PRODUCT_COLUMNS)
        for i in range(n):
            name, _, _, brands, subcategories = vocab.CATEGORIES[category[i]]
            subcategory, nouns, sizes = subcategories[sub[i]]
            brand = brands[int(pick[i, 0] * len(brands))]
            noun = nouns[int(pick[i, 1] * len(nouns))]
            writer.writerow((ids[i], f"{brand} {noun} {sizes[size[i]]}", name, subcategory))
    order = np.argsort(category, kind="stable")
    cats = np.arange(_N_CAT)
    start = np.searchsorted(category[order], cats, "left")
    end = np.searchsorted(category[order], cats, "right")
    return _Catalog(ids, category, price, order, start, end, np.cumsum(popularity[order]))


def _write_customers(path: str, rng: np.random.Generator, n: int, catalog: _Catalog, knobs: _Knobs) -> _Customers:
    """Writes customers.csv; returns the per-customer tastes the sampler needs."""
    type_share = np.array([t[1] for t in vocab.CUSTOMER_TYPES])
    kind = rng.choice(len(type_share), size=n, p=type_share / type_share.sum())
    city_share = np.array([c[1] for c in vocab.CITIES])
    city = rng.choice(len(city_share), size=n, p=city_share / city_share.sum())
    city_factor = rng.lognormal(0.0, knobs.city_sigma, (len(city_share), _N_CAT))
    type_pref = np.array([t[5] for t in vocab.CUSTOMER_TYPES])
    type_pref = type_pref / type_pref.sum(axis=1, keepdims=True)
    pref = rng.gamma(knobs.pref_concentration * type_pref[kind]) * city_factor[city]
    pref[:, catalog.end == catalog.start] = 0.0  # categories without products cannot be bought
    pref_cdf = np.cumsum(pref / pref.sum(axis=1, keepdims=True), axis=1)
    pref_cdf[:, np.flatnonzero(catalog.end > catalog.start).max() :] = 1.0  # no rounding past the last category
    activity = rng.lognormal(0.0, 1.0, n) * np.array([t[2] for t in vocab.CUSTOMER_TYPES])[kind] + 0.05
    rows = np.repeat(np.arange(n), knobs.staples)
    staples = catalog.draw(_pick_rows(rng, pref_cdf[rows]), rng.random(len(rows))).reshape(n, knobs.staples)
    ids = np.array([f"C{i + 1:06d}" for i in range(n)])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CUSTOMER_COLUMNS)
        writer.writerows(
            zip(ids.tolist(), [CITY_NAMES[c] for c in city], [CUSTOMER_TYPE_NAMES[k] for k in kind], strict=True)
        )
    return _Customers(ids, kind, np.cumsum(activity), pref_cdf, staples)


def _pick_rows(rng: np.random.Generator, cdf: np.ndarray) -> np.ndarray:
    """Returns one column per row of a (n, k) cumulative probability matrix whose rows end at 1."""
    u = rng.random(len(cdf))
    return np.minimum((u[:, None] >= cdf).sum(axis=1), cdf.shape[1] - 1)


def _sample(
    rng: np.random.Generator, n: int, cus: _Customers, cat: _Catalog, knobs: _Knobs
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Samples ``n`` sales rows in receipts; returns (customer, product, revenue, receipt's first row)."""
    sizes = basket_sizes(rng, n, knobs.basket_p)
    who = np.searchsorted(cus.activity_cdf, rng.random(len(sizes)) * cus.activity_cdf[-1], side="right")
    customer = np.repeat(np.minimum(who, len(cus.activity_cdf) - 1), sizes)
    first = np.repeat(np.cumsum(sizes) - sizes, sizes)

    kind = cus.kind[customer]
    staple_p = np.array([t[3] for t in vocab.CUSTOMER_TYPES])[kind]
    staple = rng.random(n) < staple_p
    product = np.empty(n, np.int64)
    product[staple] = cus.staples[customer[staple], rng.integers(0, knobs.staples, int(staple.sum()))]
    browse = ~staple
    # A receipt lists each product once: redraw repeats by taste, then (for narrow tastes) from the
    # whole catalogue; only a catalogue smaller than a receipt keeps some.
    for attempt in range(2 * knobs.redraws + 1):
        if attempt <= knobs.redraws:
            categories = _pick_rows(rng, cus.pref_cdf[customer[browse]])
            product[browse] = cat.draw(categories, rng.random(len(categories)))
        else:
            product[browse] = rng.integers(0, len(cat.ids), int(browse.sum()))
        _, once = np.unique(first * len(cat.ids) + product, return_index=True)
        browse = np.ones(n, bool)
        browse[once] = False
        if not browse.any():
            break

    units = 1 + rng.poisson(np.array([t[4] for t in vocab.CUSTOMER_TYPES])[kind])
    factor = np.where(rng.random(n) < knobs.promo_p, knobs.promo_factor, 1.0)
    revenue = np.maximum(np.round(cat.price[product] * units * factor, 2), 0.01)
    return customer, product, revenue, first


def _write_sales(
    path: str, rng: np.random.Generator, cus: _Customers, cat: _Catalog, n_tx: int, dates: list[dt.date], knobs: _Knobs
) -> list[dt.date]:
    """Streams sales.csv day by day, chunk by chunk, in time order; returns the dates that got rows."""
    weekly = np.array(vocab.WEEKDAY_WEIGHTS)[[d.weekday() for d in dates]]
    weight = weekly * rng.lognormal(0.0, knobs.day_sigma, len(dates))
    per_day = rng.multinomial(n_tx, weight / weight.sum())
    hours = np.array(vocab.HOUR_WEIGHTS, dtype=np.float64)
    per_second = np.repeat(hours / hours.sum() / 3600.0, 3600)
    used: list[dt.date] = []
    with open(path, "w", newline="", encoding="utf-8") as fh:
        fh.write(",".join(SALES_COLUMNS) + "\n")
        for day, count in zip(dates, per_day.tolist(), strict=True):
            if not count:
                continue
            used.append(day)
            midnight = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp())
            seconds_cum = np.cumsum(rng.multinomial(count, per_second))
            for lo in range(0, count, knobs.chunk_rows):
                n = min(knobs.chunk_rows, count - lo)
                customer, product, revenue, first = _sample(rng, n, cus, cat, knobs)
                # rows are in time order; every line of a receipt shares its first line's checkout second
                second = np.searchsorted(seconds_cum, np.arange(lo, lo + n), side="right")
                stamp = midnight + second[first]
                ids = (cus.ids[customer].tolist(), cat.ids[product].tolist())
                rows = zip(*ids, revenue.tolist(), stamp.tolist(), strict=True)
                fh.write("".join(f"{c},{p},{r:.2f},{t}\n" for c, p, r, t in rows))
    return used


def generate_retail(
    out_dir: str,
    customers: int,
    products: int,
    transactions: int,
    seed: int = 0,
    days: int = 120,
    start_date: str = "2024-01-01",
) -> RetailData:
    """Generate synthetic cash-and-carry ``products.csv``, ``customers.csv`` and ``sales.csv``.

    Files (header line first): ``sales.csv`` = customer_id, product_id, revenue (EUR, 2 decimals,
    > 0), timestamp (int seconds since the epoch, non-decreasing); ``products.csv`` = product_id,
    product_name, category, subcategory; ``customers.csv`` = customer_id, city, customer_type.

    Args:
        out_dir: Output directory, created if missing; existing files are overwritten.
        customers: Number of customer rows (>= 1).
        products: Number of product rows (>= 1).
        transactions: Exact number of sales rows (>= 0).
        seed: Non-negative seed; the same arguments give byte-identical files.
        days: Window length; timestamps fall in [start_date, start_date + days) UTC.
        start_date: First day of the window, 'YYYY-MM-DD'.

    Returns:
        A :class:`RetailData` summary of what was written.

    Raises:
        ValueError: Naming the argument: non-positive sizes, a negative seed or a malformed ``start_date``.
    """
    for name, value, least in (
        ("customers", customers, 1), ("products", products, 1), ("transactions", transactions, 0),
        ("days", days, 1), ("seed", seed, 0),
    ):  # fmt: skip
        if value < least:
            raise ValueError(f"generate_retail: '{name}' must be >= {least}, got {value}")
    try:
        start = dt.date.fromisoformat(start_date)
    except ValueError as e:
        raise ValueError(f"generate_retail: 'start_date' must be YYYY-MM-DD, got {start_date!r}") from e
    dates = [start + dt.timedelta(days=d) for d in range(days)]
    os.makedirs(out_dir, exist_ok=True)
    knobs = _Knobs()
    product_rng, customer_rng, sales_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    catalog = _write_products(os.path.join(out_dir, PRODUCTS_FILE), product_rng, products, knobs)
    people = _write_customers(os.path.join(out_dir, CUSTOMERS_FILE), customer_rng, customers, catalog, knobs)
    used = _write_sales(os.path.join(out_dir, SALES_FILE), sales_rng, people, catalog, transactions, dates, knobs)
    first, last = (used[0], used[-1]) if used else (dates[0], dates[-1])
    return RetailData(out_dir, customers, products, transactions, first.isoformat(), last.isoformat())
