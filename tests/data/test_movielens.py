"""Tests for the MovieLens-100K loader (twotower.data.movielens), on the real data.

The recbole==1.2.1 wheel is downloaded once per machine into the loader's own cache
($TWOTOWER_CACHE, else ~/.cache/twotower/wheels) and reused by every later run.
"""

from __future__ import annotations

import collections
import csv
import datetime as dt
import os
import pathlib

import pytest

from twotower.config import load_profile
from twotower.data import movielens
from twotower.data.movielens import MovieLensData, write_movielens
from twotower.errors import MovieLensError


def _read(path: pathlib.Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        return next(reader), list(reader)


class _Files:
    """The three CSV files of one run, parsed with the csv module."""

    def __init__(self, out_dir: pathlib.Path) -> None:
        self.ratings_header, self.ratings = _read(out_dir / "ratings.csv")
        self.movies_header, self.movies = _read(out_dir / "movies.csv")
        self.users_header, self.users = _read(out_dir / "users.csv")
        self.movie = {r[0]: r for r in self.movies}
        self.user = {r[0]: r for r in self.users}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[MovieLensData, _Files]:
    out = tmp_path_factory.mktemp("movielens")
    return write_movielens(str(out)), _Files(out)


def test_summary_and_exact_counts(run: tuple[MovieLensData, _Files]) -> None:
    info, files = run
    assert (info.ratings, info.users, info.movies) == (100_000, 943, 1682)
    assert (len(files.ratings), len(files.users), len(files.movies)) == (100_000, 943, 1682)
    assert (info.first_date, info.last_date) == ("1997-09-20", "1998-04-22")
    assert sorted(os.listdir(info.out_dir)) == ["movies.csv", "ratings.csv", "users.csv"]  # no .tmp left


def test_headers_are_the_profile_columns(run: tuple[MovieLensData, _Files]) -> None:
    _, files = run
    p = load_profile("movielens")
    d = p.data
    names = {f.name for f in p.features if f.kind != "history"}  # history: derived by ingestion
    assert set(files.users_header) == {d.user_id} | {f.name for f in p.features_of("user")}
    assert set(files.movies_header) == {d.item_id, d.item_name} | {f.name for f in p.features_of("item")}
    assert set(files.ratings_header) == {d.user_id, d.item_id, d.timestamp} | {
        f.name
        for f in p.features_of("interaction")
        if f.kind != "history"  # history: derived by ingestion
    }
    assert names <= set(files.users_header + files.movies_header + files.ratings_header)
    assert files.ratings_header == ["user_id", "item_id", "rating", "timestamp"]
    assert files.movies_header == ["item_id", "title", "year", "genres"]
    assert files.users_header == ["user_id", "age", "gender", "occupation"]


def test_referential_integrity_and_unique_ids(run: tuple[MovieLensData, _Files]) -> None:
    _, files = run
    assert len(files.user) == 943 and len(files.movie) == 1682
    assert all(r[0] in files.user and r[1] in files.movie for r in files.ratings)
    assert len({(r[0], r[1]) for r in files.ratings}) == 100_000  # nobody rates a movie twice


def test_known_rows(run: tuple[MovieLensData, _Files]) -> None:
    _, files = run
    assert files.ratings[0] == ["196", "242", "3", "881250949"]  # first line of ml-100k.inter
    assert files.movie["1"] == ["1", "Toy Story", "1995", "Animation|Children's|Comedy"]
    assert files.movie["12"][1] == "Usual Suspects, The"
    assert files.user["1"] == ["1", "24", "M", "technician"]
    # RecBole's item 267 is "unkonwn" with no year; item 1412 kept "(1995)" in its title and "V" as its year
    assert files.movie["267"] == ["267", "unkonwn", "", "unknown"]
    assert files.movie["1412"][1:3] == ["Land Before Time III: The Time of the Great Giving", "1995"]


def test_value_ranges_and_vocabularies(run: tuple[MovieLensData, _Files]) -> None:
    _, files = run
    ages = [int(r[1]) for r in files.users]
    assert (min(ages), max(ages)) == (7, 73)
    assert collections.Counter(r[2] for r in files.users) == {"M": 670, "F": 273}
    assert len({r[3] for r in files.users}) == 21
    years = [int(r[2]) for r in files.movies if r[2]]
    assert len(years) == 1681 and (min(years), max(years)) == (1922, 1998)
    genres = {g for r in files.movies for g in r[3].split("|")}
    assert len(genres) == 19 and {"Sci-Fi", "Film-Noir", "Children's", "unknown"} <= genres
    stars = collections.Counter(r[2] for r in files.ratings)
    assert stars == {"4": 34174, "3": 27145, "5": 21201, "2": 11370, "1": 6110}
    seconds = [int(r[3]) for r in files.ratings]
    assert (min(seconds), max(seconds)) == (874724710, 893286638)


def test_titles_with_commas_round_trip(run: tuple[MovieLensData, _Files]) -> None:
    info, files = run
    assert all(len(r) == 4 for r in files.movies)
    assert sum("," in r[1] for r in files.movies) == 411
    raw = (pathlib.Path(info.out_dir) / "movies.csv").read_text(encoding="utf-8")
    assert '12,"Usual Suspects, The",1995,Crime|Thriller\n' in raw
    assert "\r" not in raw
    assert "Misérables, Les" in {r[1] for r in files.movies}  # UTF-8 kept


def test_profile_split_fractions(run: tuple[MovieLensData, _Files]) -> None:
    _, files = run
    split = load_profile("movielens").split
    # The pipeline counts back whole days from the day after the last rating (1998-04-23 UTC).
    after_last = int(dt.datetime(1998, 4, 23, tzinfo=dt.timezone.utc).timestamp())
    test_start = after_last - split.test_days * 86400
    eval_start = test_start - split.eval_days * 86400
    seconds = [int(r[3]) for r in files.ratings]
    n_test = sum(s >= test_start for s in seconds)
    n_eval = sum(eval_start <= s < test_start for s in seconds)
    assert (split.eval_days, split.test_days) == (7, 21)
    assert (n_eval, n_test) == (9037, 7572)  # 9.04% and 7.57%, as the profile's comment says


def test_cache_dir_from_env_and_home(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("TWOTOWER_CACHE", str(tmp_path / "mine"))
    assert movielens.default_cache_dir() == str(tmp_path / "mine")
    monkeypatch.delenv("TWOTOWER_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert movielens.default_cache_dir() == str(tmp_path / ".cache" / "twotower" / "wheels")


def test_cached_wheel_is_reused_without_pip(run: tuple[MovieLensData, _Files], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # any pip download would now fail
    path = movielens.fetch_wheel()
    assert os.path.basename(path) == "recbole-1.2.1-py3-none-any.whl"
    assert os.path.getsize(path) == 2_130_151


def test_offline_download_error_says_how_to_place_the_wheel(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip behaves as if offline: no index to download from
    cache = tmp_path / "empty-cache"
    with pytest.raises(MovieLensError) as info:
        write_movielens(str(tmp_path / "out"), cache_dir=str(cache))
    message = str(info.value)
    assert "pip download" in message and "recbole==1.2.1" in message and "failed" in message
    assert str(cache) in message and "recbole-1.2.1-py3-none-any.whl" in message
    assert os.listdir(cache) == []  # the staging folder is cleaned up
    assert not (tmp_path / "out").exists()


def test_a_damaged_cached_wheel_is_named(tmp_path: pathlib.Path) -> None:
    (tmp_path / "recbole-1.2.1-py3-none-any.whl").write_bytes(b"not a wheel")
    with pytest.raises(MovieLensError, match="sha256") as info:
        write_movielens(str(tmp_path / "out"), cache_dir=str(tmp_path))
    assert str(tmp_path / "recbole-1.2.1-py3-none-any.whl") in str(info.value)
