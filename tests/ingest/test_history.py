"""History features attached by ingestion: strictly earlier, most recent first, eval/test see train, no future.

Hand-written CSVs in the hm profile's shape go through the real ingestion graph (DirectRunner);
every expected history is worked out next to the data.
"""

import dataclasses
import zlib

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to

from twotower.config import Feature, SplitConfig, load_profile
from twotower.ingest import encode, graph, history
from twotower.schema.contract import profile_ranges

ARTICLES = """article_id,prod_name,product_type_name,product_group_name,colour_group_name,index_group_name,garment_group_name
a1,A1,Vest top,Garment Upper body,Black,Ladieswear,Jersey Basic
a2,A2,Trousers,Garment Lower body,Blue,Divided,Trousers Denim
a3,A3,Vest top,Garment Upper body,Black,Ladieswear,Jersey Basic
a4,A4,Trousers,Garment Lower body,Blue,Divided,Trousers Denim
a9,A9,Trousers,Garment Lower body,Blue,Divided,Trousers Denim
"""
CUSTOMERS = """customer_id,club_member_status,fashion_news_frequency,age
u1,ACTIVE,NONE,30
u2,ACTIVE,NONE,40
"""
# Days: train before 2020-09-09, eval 09..15, test 16..22 (7 + 7 days back from the newest day, 22 Sep).
TRANSACTIONS = """t_dat,customer_id,article_id,price,sales_channel_id
2020-09-01,u1,a1,0.01,1
2020-09-01,u1,a2,0.01,1
2020-09-03,u1,a3,0.01,1
2020-09-10,u1,a4,0.01,1
2020-09-17,u1,a1,0.01,1
2020-09-22,u1,a9,0.01,1
2020-09-05,u2,a2,0.01,1
"""
DAY = 86400


def _profile(max_length: int = 50, **split):
    p = load_profile("hm")
    feature = Feature("recent_items", "interaction", "history", max_length=max_length)
    p = dataclasses.replace(p, features=p.features + (feature,))
    return dataclasses.replace(p, split=dataclasses.replace(p.split, **split)) if split else p


@pytest.fixture
def data_dir(tmp_path):
    (tmp_path / "articles.csv").write_text(ARTICLES)
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "transactions_train.csv").write_text(TRANSACTIONS)
    return tmp_path


def _history(serialized: bytes) -> tuple:
    """(user, item, [history ids], [ages in days]) of one example."""
    f = tf.train.Example.FromString(serialized).features.feature
    ids = tuple(v.decode() for v in f["recent_items"].bytes_list.value)
    ages = tuple(round(a, 3) for a in f["recent_items_age_days"].float_list.value)
    item = f["article_id"].bytes_list.value[0].decode() if "article_id" in f else None
    return f["customer_id"].bytes_list.value[0].decode(), item, ids, ages


def _run(data_dir, profile, expected):
    with beam.Pipeline() as pipeline:
        result = graph.build_ingestion(pipeline, str(data_dir), profile, profile_ranges(profile))
        for name, rows in expected.items():
            got = result.splits[name] | f"History[{name}]" >> beam.Map(_history)
            assert_that(got, equal_to(rows), label=name)


def test_histories_are_strictly_earlier_most_recent_first_across_splits(data_dir):
    _run(
        data_dir,
        _profile(),
        {
            # the two 1 Sep items are one basket: neither is the other's history
            "train": [
                ("u1", "a1", (), ()),
                ("u1", "a2", (), ()),
                ("u1", "a3", ("a2", "a1"), (2.0, 2.0)),
                ("u2", "a2", (), ()),
            ],
            # eval and test see everything before them, train included; a9 (22 Sep) is nobody's history
            "eval": [("u1", "a4", ("a3", "a2", "a1"), (7.0, 9.0, 9.0))],
            "test": [
                ("u1", "a1", ("a4", "a3", "a2", "a1"), (7.0, 14.0, 16.0, 16.0)),
                ("u1", "a9", ("a1", "a4", "a3", "a2", "a1"), (5.0, 12.0, 19.0, 21.0, 21.0)),
            ],
            # as of the end of the data (22 Sep): every interaction, the newest first
            "histories": [
                ("u1", None, ("a9", "a1", "a4", "a3", "a2", "a1"), (0.0, 5.0, 12.0, 19.0, 21.0, 21.0)),
                ("u2", None, ("a2",), (17.0,)),
            ],
        },
    )


def test_max_length_keeps_the_most_recent(data_dir):
    _run(
        data_dir,
        _profile(max_length=2),
        {
            "test": [("u1", "a1", ("a4", "a3"), (7.0, 14.0)), ("u1", "a9", ("a1", "a4"), (5.0, 12.0))],
            "histories": [("u1", None, ("a9", "a1"), (0.0, 5.0)), ("u2", None, ("a2",), (17.0,))],
        },
    )


def test_per_user_split_histories_hold_no_future(data_dir):
    # u1 has 6 interactions: the last 2 (33%) are test, the 1 before (16%) eval
    profile = _profile(mode="per_user", test_fraction=0.34, eval_fraction=0.17)
    profile = dataclasses.replace(profile, split=SplitConfig(mode="per_user", test_fraction=0.34, eval_fraction=0.17))
    _run(
        data_dir,
        profile,
        {
            "eval": [("u1", "a4", ("a3", "a2", "a1"), (7.0, 9.0, 9.0))],
            "test": [
                ("u1", "a1", ("a4", "a3", "a2", "a1"), (7.0, 14.0, 16.0, 16.0)),
                ("u1", "a9", ("a1", "a4", "a3", "a2", "a1"), (5.0, 12.0, 19.0, 21.0, 21.0)),
            ],
        },
    )


def test_a_planted_future_purchase_is_in_no_history(data_dir):
    # a purchase on the last day: it may be a target, never anyone's history (but the end-of-data one)
    with open(data_dir / "transactions_train.csv", "a") as f:
        f.write("2020-09-22,u2,a3,0.01,1\n")
    with beam.Pipeline() as pipeline:
        result = graph.build_ingestion(pipeline, str(data_dir), _profile())
        interactions = [result.splits[n] for n in ("train", "eval", "test")] | beam.Flatten()
        leaked = (
            interactions
            | beam.Map(_history)
            | beam.Filter(lambda h: h[0] == "u2" and "a3" in h[2])
            | beam.combiners.Count.Globally()
        )
        assert_that(leaked, equal_to([0]), label="no_leak")


def test_first_at_same_time_and_positional_splits():
    seconds = np.array([5, 5, 7, 9, 9, 9])
    assert history.first_at_same_time(seconds).tolist() == [0, 0, 2, 3, 3, 3]
    assert history.first_at_same_time(np.zeros(0, np.int64)).tolist() == []
    assert history.first_at_same_time(np.array([3])).tolist() == [0]
    assert history.first_at_same_time(np.array([1, 2, 3])).tolist() == [0, 1, 2]
    # 10 interactions, 20% test, 10% eval: positions 8, 9 test, 7 eval
    assert history.positional_splits(10, 0.2, 0.1) == ["train"] * 7 + ["eval"] + ["test"] * 2


def test_empty_lists_encode_as_empty_features():
    example = tf.train.Example.FromString(encode.to_example({"ids": [], "ages": (), "one": ["x", "yz"]}))
    f = example.features.feature
    assert list(f["ids"].bytes_list.value) == [] and f["ids"].WhichOneof("kind") == "bytes_list"
    assert list(f["ages"].float_list.value) == [] and f["ages"].WhichOneof("kind") == "float_list"
    assert list(f["one"].bytes_list.value) == [b"x", b"yz"]


def plain_history(specs, items, seconds, end, now):
    """The definition, written plainly: {name: items[end-1], items[end-2], ... (at most max_length), ages in days}."""
    out = {}
    for spec in specs:
        start = max(0, end - spec.max_length)
        out[spec.name] = list(items[start:end][::-1])
        out[spec.ages] = tuple(float(a) for a in (now - seconds[start:end][::-1]) / 86_400)
    return out


def test_history_encoder_writes_the_bytes_of_the_plain_encoding():
    """The per-user buffer slicing gives exactly encode_features(plain_history(...)) for every row."""
    rng = np.random.default_rng(3)
    specs = [history.HistorySpec("recent", 3), history.HistorySpec("long", 50)]
    for n in (0, 1, 2, 7, 60, 130):
        seconds = np.sort(rng.integers(0, 5, n) * 86_400 + rng.integers(0, 3, n)).astype(np.int64)
        items = [f"item-{rng.integers(0, 200)}" for _ in range(n)]
        encoder = history.HistoryEncoder(specs, items, seconds)
        starts = history.first_at_same_time(seconds)
        for i in range(n):
            plain = encode.encode_features(plain_history(specs, items, seconds, int(starts[i]), int(seconds[i])))
            assert encoder.encode(int(starts[i]), int(seconds[i])) == plain, (n, i)
        assert encoder.encode(n, 10**6) == encode.encode_features(plain_history(specs, items, seconds, n, 10**6))
        assert encoder.encode_rows(starts, seconds) == [
            encoder.encode(int(e), int(t)) for e, t in zip(starts, seconds, strict=True)
        ]


def test_entries_pack_and_unpack():
    body = encode.encode_features({"price": 0.5, "article_id": "0108775015"})
    entry = history.pack_entry(-86_400, 12, "0108775015", body)
    assert history.unpack_entry(entry) == (-86_400, 12, "0108775015", body)
    assert history.unpack_entry(history.pack_entry(5, 0, "ü", b"")) == (5, 0, "ü", b"")


def test_user_partitions_round_trip_through_files_with_every_user_in_one_partition(tmp_path):
    pairs = [(f"user{i % 7}", history.pack_entry(i, i, f"item{i}", b"x" * i)) for i in range(40)] + [("ü", b"")]
    files = []
    for chunk, part in enumerate((pairs[:25], pairs[25:])):  # two chunks, one user's entries in both
        partitions = history.UserPartitions(partitions=4)
        for user, entry in part:
            partitions.add(user, entry)
        files += list(partitions.write(str(tmp_path), chunk))
    by_partition = {}
    for index, path in files:
        by_partition.setdefault(index, []).append(path)
    assert len(by_partition) > 1
    seen = {}
    for paths in by_partition.values():
        for user, entries in history.read_partition(paths).items():
            assert user not in seen  # a user lives in exactly one partition
            seen[user] = entries
    expected = {}
    for user, entry in pairs:
        expected.setdefault(user, []).append(entry)  # in the order added, chunk by chunk
    assert seen == expected
    # the partition is a function of the user id alone (CRC-32), the same in every worker process
    assert {i for i, p in files if "user3" in history.read_partition([p])} == {zlib.crc32(b"user3") % 4}
