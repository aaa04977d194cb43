"""MovieLens-100K as three CSV files, read from the ``recbole==1.2.1`` wheel on PyPI.

The MovieLens terms forbid redistributing the data, so it is never committed nor shipped:
:func:`write_movielens` downloads the RecBole wheel (which carries ``ml-100k`` as tab-separated
"atomic files" with typed headers such as ``user_id:token``) into a local cache with pip, reads
the three files straight out of the zip and converts them line by line into the CSVs the
``movielens`` profile describes. Nothing is installed and the wheel is never unpacked.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Iterator, Sequence

from twotower.errors import MovieLensError

WHEEL_REQUIREMENT = "recbole==1.2.1"
WHEEL_NAME = "recbole-1.2.1-py3-none-any.whl"
WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
CACHE_ENV = "TWOTOWER_CACHE"
_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.{}"

RATINGS_FILE, MOVIES_FILE, USERS_FILE = "ratings.csv", "movies.csv", "users.csv"
RATINGS_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "rating", "timestamp")
MOVIES_COLUMNS: tuple[str, ...] = ("item_id", "title", "year", "genres")
USERS_COLUMNS: tuple[str, ...] = ("user_id", "age", "gender", "occupation")

# Fields read from each atomic file, by the name before the ':type' suffix of its header.
_INTER_FIELDS = ("user_id", "item_id", "rating", "timestamp")
_ITEM_FIELDS = ("item_id", "movie_title", "release_year", "class")
_USER_FIELDS = ("user_id", "age", "gender", "occupation")
_TITLE_YEAR = re.compile(r"^(.*\S)\s*\((\d{4})\)$")  # "Title (1995)": RecBole left the year in a few titles


@dataclasses.dataclass(frozen=True)
class MovieLensData:
    """Summary of one :func:`write_movielens` run.

    ``first_date``/``last_date`` are the UTC dates ('YYYY-MM-DD') of the earliest and latest rating.
    """

    out_dir: str
    ratings: int
    users: int
    movies: int
    first_date: str
    last_date: str


def default_cache_dir() -> str:
    """Returns the wheel cache directory: ``$TWOTOWER_CACHE`` if set, else ``~/.cache/twotower/wheels``."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "twotower", "wheels")


def _by_hand(cache_dir: str) -> str:
    return (
        f"To place the wheel by hand, run on a machine with access to PyPI\n"
        f"    python -m pip download --no-deps --only-binary=:all: {WHEEL_REQUIREMENT} -d DIR\n"
        f"and copy DIR/{WHEEL_NAME} into {cache_dir} (or point ${CACHE_ENV} or --cache at its folder)."
    )


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(cache_dir: str, target: str) -> None:
    """Runs pip download into a temporary folder of ``cache_dir`` and moves the wheel to ``target``."""
    os.makedirs(cache_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".download-", dir=cache_dir)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", WHEEL_REQUIREMENT]
    cmd += ["-d", staging, "--disable-pip-version-check"]
    try:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise MovieLensError(f"could not run `{' '.join(cmd)}`: {e}\n{_by_hand(cache_dir)}") from e
        fetched = os.path.join(staging, WHEEL_NAME)
        if proc.returncode != 0 or not os.path.isfile(fetched):
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            raise MovieLensError(
                f"downloading {WHEEL_REQUIREMENT} with `{' '.join(cmd)}` failed (exit {proc.returncode}); "
                f"pip said:\n{tail}\n{_by_hand(cache_dir)}"
            )
        os.replace(fetched, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_wheel(cache_dir: str | None = None) -> str:
    """Returns the path of the ``recbole==1.2.1`` wheel in ``cache_dir``, downloading it with pip if missing.

    Args:
        cache_dir: Folder that keeps the wheel; default :func:`default_cache_dir`.

    Raises:
        MovieLensError: pip failed (e.g. offline) or the cached file is not the expected wheel;
            the message says how to place the wheel by hand.
    """
    cache_dir = os.path.abspath(cache_dir or default_cache_dir())
    path = os.path.join(cache_dir, WHEEL_NAME)
    if not os.path.isfile(path):
        _download(cache_dir, path)
    actual = _sha256(path)
    if actual != WHEEL_SHA256:
        raise MovieLensError(
            f"{path}: sha256 is {actual}, expected {WHEEL_SHA256} ({WHEEL_NAME} from PyPI); "
            f"delete the file and run again.\n{_by_hand(cache_dir)}"
        )
    return path


def _atomic_rows(
    zf: zipfile.ZipFile, where: str, member: str, fields: Sequence[str]
) -> Iterator[tuple[int, list[str]]]:
    """Yields (line number, [value of each of ``fields``]) for the data lines of one atomic file."""
    label = f"{where}!{member}"
    if member not in zf.namelist():
        raise MovieLensError(f"{where}: has no {member}; is it the {WHEEL_REQUIREMENT} wheel?")
    with zf.open(member) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        header = text.readline().rstrip("\r\n").split("\t")
        names = [h.split(":", 1)[0] for h in header]
        missing = [f for f in fields if f not in names]
        if missing:
            raise MovieLensError(f"{label} line 1: header {header} lacks field(s) {missing}")
        index = [names.index(f) for f in fields]
        for line_no, line in enumerate(text, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            values = line.split("\t")
            if len(values) != len(header):
                raise MovieLensError(f"{label} line {line_no}: {len(values)} fields, the header has {len(header)}")
            yield line_no, [values[i].strip() for i in index]


def _number(value: str, where: str, field: str, integral: bool) -> float:
    """Returns ``value`` as a finite float (an integral one if ``integral``); raises naming the field."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or (integral and number != int(number)):
        kind = "an integer" if integral else "a number"
        raise MovieLensError(f"{where}: field '{field}' is {value!r}, not {kind}")
    return number


def _title_and_year(title: str, year: str) -> tuple[str, str]:
    """Returns (title, year): the 4-digit release year, else one left at the end of the title, else ''."""
    if re.fullmatch(r"\d{4}", year):
        return title, year
    found = _TITLE_YEAR.match(title)
    if found:
        return found.group(1), found.group(2)
    return title, ""


class _AtomicWriter:
    """Writes one output CSV to ``path + '.tmp'``; ``commit`` renames it into place."""

    def __init__(self, path: str, header: Sequence[str]):
        self.path = path
        self._fh = open(path + ".tmp", "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self._fh, lineterminator="\n")
        self.writer.writerow(header)

    def commit(self) -> None:
        self._fh.close()
        os.replace(self.path + ".tmp", self.path)

    def abort(self) -> None:
        self._fh.close()
        os.remove(self.path + ".tmp")


def _convert(zf: zipfile.ZipFile, where: str, out: dict[str, _AtomicWriter]) -> MovieLensData:
    """Streams the three atomic files into the writers; returns the summary (out_dir left empty)."""
    users: set[str] = set()
    member = _MEMBER.format("user")
    for line_no, (user_id, age, gender, occupation) in _atomic_rows(zf, where, member, _USER_FIELDS):
        at = f"{where}!{member} line {line_no}"
        if not user_id or user_id in users:
            raise MovieLensError(f"{at}: field 'user_id' is {'empty' if not user_id else 'a duplicate: ' + user_id}")
        users.add(user_id)
        age_text = str(int(_number(age, at, "age", integral=True))) if age else ""
        out["users"].writer.writerow((user_id, age_text, gender, occupation))

    movies: set[str] = set()
    member = _MEMBER.format("item")
    for line_no, (item_id, title, year, genres) in _atomic_rows(zf, where, member, _ITEM_FIELDS):
        at = f"{where}!{member} line {line_no}"
        if not item_id or item_id in movies:
            raise MovieLensError(f"{at}: field 'item_id' is {'empty' if not item_id else 'a duplicate: ' + item_id}")
        movies.add(item_id)
        title, year = _title_and_year(title, year)
        out["movies"].writer.writerow((item_id, title, year, "|".join(genres.split())))

    count, first, last = 0, math.inf, -math.inf
    member = _MEMBER.format("inter")
    for line_no, (user_id, item_id, rating, timestamp) in _atomic_rows(zf, where, member, _INTER_FIELDS):
        at = f"{where}!{member} line {line_no}"
        if user_id not in users:
            raise MovieLensError(f"{at}: field 'user_id' {user_id!r} is not in the users file")
        if item_id not in movies:
            raise MovieLensError(f"{at}: field 'item_id' {item_id!r} is not in the items file")
        stars = _number(rating, at, "rating", integral=False)
        seconds = int(_number(timestamp, at, "timestamp", integral=True))
        out["ratings"].writer.writerow((user_id, item_id, f"{stars:g}", seconds))
        count += 1
        first, last = min(first, seconds), max(last, seconds)

    def day(seconds: float) -> str:
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).date().isoformat() if count else ""

    return MovieLensData("", count, len(users), len(movies), day(first), day(last))


def write_movielens(out_dir: str, cache_dir: str | None = None) -> MovieLensData:
    """Write MovieLens-100K as ``ratings.csv``, ``movies.csv`` and ``users.csv`` into ``out_dir``.

    Files (header line first, csv-module quoting): ``ratings.csv`` = user_id, item_id, rating,
    timestamp (int seconds since the epoch); ``movies.csv`` = item_id, title, year (may be empty),
    genres ('|'-joined); ``users.csv`` = user_id, age, gender, occupation. Rows keep the order of
    the source files. A file appears only once it is complete.

    Args:
        out_dir: Output directory, created if missing; existing files are overwritten.
        cache_dir: Where the ``recbole==1.2.1`` wheel is kept (downloaded with pip if missing);
            default ``$TWOTOWER_CACHE``, else ``~/.cache/twotower/wheels``.

    Returns:
        A :class:`MovieLensData` summary: 100000 ratings, 943 users, 1682 movies.

    Raises:
        MovieLensError: The wheel cannot be downloaded (the message says how to place it by hand)
            or one of its files has a malformed line (named by file and line).
    """
    wheel = fetch_wheel(cache_dir)
    os.makedirs(out_dir, exist_ok=True)
    try:
        zf = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as e:
        raise MovieLensError(f"{wheel}: not a zip file ({e}); delete it and run again") from e
    out: dict[str, _AtomicWriter] = {}
    with zf:
        try:
            out["users"] = _AtomicWriter(os.path.join(out_dir, USERS_FILE), USERS_COLUMNS)
            out["movies"] = _AtomicWriter(os.path.join(out_dir, MOVIES_FILE), MOVIES_COLUMNS)
            out["ratings"] = _AtomicWriter(os.path.join(out_dir, RATINGS_FILE), RATINGS_COLUMNS)
            summary = _convert(zf, wheel, out)
        except BaseException:
            for writer in out.values():
                writer.abort()
            raise
    for writer in out.values():
        writer.commit()
    return dataclasses.replace(summary, out_dir=out_dir)
