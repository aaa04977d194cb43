"""The ingestion graph (JoinExampleGen's work) on hand-written CSVs, run for real on the DirectRunner."""

import calendar
import dataclasses
import datetime

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to

from twotower.config import SplitConfig, load_profile
from twotower.errors import DataError
from twotower.ingest import csv_source, encode, graph, rows, splits, tables
from twotower.schema.contract import profile_ranges

ARTICLES = """article_id,prod_name,product_type_name,product_group_name,colour_group_name,index_group_name,garment_group_name,detail_desc
0100000001,Strap top,Vest top,Garment Upper body,Black,Ladieswear,Jersey Basic,"Top, with straps"
0100000002,Denim TRS,Trousers,Garment Lower body,Blue,Divided,Trousers Denim,Jeans
0100000002,Denim TRS,Trousers,Garment Lower body,Blue,Divided,Trousers Denim,Jeans
0100000002,Other name,Trousers,Garment Lower body,Blue,Divided,Trousers Denim,Jeans
"""
CUSTOMERS = """customer_id,FN,Active,club_member_status,fashion_news_frequency,age,postal_code
u1,1.0,,ACTIVE,NONE,25,p1
u2,,,ACTIVE,Regularly,,p2
u3,,,ACTIVE,Regularly,150,p3
"""
# Line numbers count the header as line 1.
TRANSACTIONS = """t_dat,customer_id,article_id,price,sales_channel_id
2020-09-01,u1,0100000001,0.05,2
2020-09-10,u1,0100000002,0.03,1
2020-09-21,u2,0100000001,0.05,2
2020-09-01,u1,0100000001,0.05,2
2020-09-22,u9,0100000001,0.05,2
2020-09-22,u3,0100000001,0.05,2
2020-09-22,u1,0100000009,0.05,2
2020-09-22,u1,0100000001,-0.05,2
22/09/2020,u1,0100000001,0.05,2
2020-09-22,,0100000001,0.05,2
2020-09-22,u1,0100000001,abc,2
2020-09-22,u1,0100000001
2020-09-22,u1,"0100000001,0.05,2

"""
EXPECTED_QUARANTINE = [
    ("articles.csv", 5, rows.DUPLICATE_ID, "duplicate article_id '0100000002' (first at line 3)"),
    ("customers.csv", 4, rows.OUT_OF_RANGE, "column 'age': 150 is outside [16, 99]"),
    ("transactions_train.csv", 6, rows.UNKNOWN_USER, "customer_id 'u9' is not in customers.csv (or was quarantined)"),
    ("transactions_train.csv", 7, rows.UNKNOWN_USER, "customer_id 'u3' is not in customers.csv (or was quarantined)"),
    (
        "transactions_train.csv",
        8,
        rows.UNKNOWN_ITEM,
        "article_id '0100000009' is not in articles.csv (or was quarantined)",
    ),
    ("transactions_train.csv", 9, rows.OUT_OF_RANGE, "column 'price': -0.05 is outside [0, 1]"),
    ("transactions_train.csv", 10, rows.BAD_TIMESTAMP, "column 't_dat': cannot parse '22/09/2020' as '%Y-%m-%d'"),
    ("transactions_train.csv", 11, rows.EMPTY_ID, "column 'customer_id' is empty"),
    ("transactions_train.csv", 12, rows.NOT_A_NUMBER, "column 'price': 'abc' is not a number"),
    ("transactions_train.csv", 13, rows.FIELD_COUNT, "has 3 fields, the header has 5"),
    (
        "transactions_train.csv",
        14,
        rows.MALFORMED,
        "malformed CSV (unexpected end of data); values spanning lines are not supported",
    ),
]


def _day(text: str) -> int:
    return calendar.timegm(datetime.datetime.strptime(text, "%Y-%m-%d").timetuple())


@pytest.fixture
def data_dir(tmp_path):
    (tmp_path / "articles.csv").write_text(ARTICLES)
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "transactions_train.csv").write_text(TRANSACTIONS)
    return tmp_path


def _decode(serialized: bytes) -> dict:
    example = tf.train.Example.FromString(serialized)
    out = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = [v.decode() if isinstance(v, bytes) else v for v in getattr(feature, kind).value]
        # a column is one value; a history feature (the profile's recent_items) a tuple, maybe empty
        out[name] = values[0] if len(values) == 1 and not name.startswith("recent_items") else tuple(values)
    return out


def _key(record: dict) -> tuple:
    return tuple(sorted((k, round(v, 4) if isinstance(v, float) else v) for k, v in record.items()))


def test_split_boundaries_count_whole_days_back_from_the_newest_day():
    newest = _day("2020-09-22") + 12 * 3600
    # test = the last 7 days (16..22 Sep), eval = the 7 days before (9..15 Sep)
    b = splits.split_boundaries(SplitConfig(eval_days=7, test_days=7), newest)
    assert (b.eval_start, b.test_start) == (_day("2020-09-09"), _day("2020-09-16"))
    b = splits.split_boundaries(SplitConfig(eval_days=1), newest)
    assert (b.eval_start, b.test_start) == (_day("2020-09-22"), None)
    fixed = splits.split_boundaries(SplitConfig(eval_days=7, eval_start="2020-01-01", test_start="2020-02-01"), newest)
    assert (fixed.eval_start, fixed.test_start) == (_day("2020-01-01"), _day("2020-02-01"))
    assert [splits.split_of(_day(d), b) for d in ("2020-09-21", "2020-09-22")] == ["train", "eval"]


def test_timestamp_parser_formats_and_unparsable_values():
    assert csv_source.TimestampParser("%Y-%m-%d")("2020-09-22") == _day("2020-09-22")
    assert csv_source.TimestampParser("unix")("1600000000") == 1600000000
    # unparsable -> None; the row parser turns that into a bad_timestamp quarantine reason (tested below)
    assert csv_source.TimestampParser("%Y-%m-%d")("22/09/2020") is None
    assert csv_source.TimestampParser("unix")("soon") is None


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_chunks_keep_line_numbers(tmp_path, newline):
    path = tmp_path / "x.csv"
    lines = ["h"] + [f"row{i}," + "x" * (i % 7) for i in range(200)]
    path.write_bytes((newline.join(lines) + newline).encode())
    chunks = csv_source.plan_chunks(str(path), chunk_bytes=50)
    assert len(chunks) > 10 and sum(c.lines for c in chunks) == 200
    read = [(n, raw.decode()) for c in chunks for n, raw in csv_source.read_lines(c)]
    assert read == [(i + 1, text) for i, text in enumerate(lines)][1:]


@pytest.mark.parametrize("chunk_bytes", [csv_source.DEFAULT_CHUNK_BYTES, 40])
def test_every_row_is_accepted_quarantined_or_a_duplicate(data_dir, chunk_bytes):
    profile = load_profile("hm")
    item1 = {
        "prod_name": "Strap top",
        "product_type_name": "Vest top",
        "product_group_name": "Garment Upper body",
        "colour_group_name": "Black",
        "index_group_name": "Ladieswear",
        "garment_group_name": "Jersey Basic",
        "article_id": "0100000001",
    }
    item2 = {**item1, "prod_name": "Denim TRS", "product_type_name": "Trousers", "article_id": "0100000002"}
    item2.update(product_group_name="Garment Lower body", colour_group_name="Blue", index_group_name="Divided")
    item2.update(garment_group_name="Trousers Denim")
    u1 = {"customer_id": "u1", "age": 25.0, "club_member_status": "ACTIVE", "fashion_news_frequency": "NONE"}
    u2 = {"customer_id": "u2", "club_member_status": "ACTIVE", "fashion_news_frequency": "Regularly"}  # no age
    sale = lambda price, channel: {"price": price, "sales_channel_id": channel}  # noqa: E731
    # Newest accepted-or-not timestamp is 2020-09-22: test from 16 Sep, eval from 9 Sep (7 + 7 days).
    # and the profile's history feature: u1's eval purchase has the train one, 9 days before, behind it
    history = lambda ids=(), ages=(): {"recent_items": ids, "recent_items_age_days": ages}  # noqa: E731
    expected = {
        "train": [{**item1, **u1, **sale(0.05, "2"), "t_dat": _day("2020-09-01"), **history()}],
        "eval": [{**item2, **u1, **sale(0.03, "1"), "t_dat": _day("2020-09-10"), **history(("0100000001",), (9.0,))}],
        "test": [{**item1, **u2, **sale(0.05, "2"), "t_dat": _day("2020-09-21"), **history()}],
    }
    with beam.Pipeline() as pipeline:
        result = graph.build_ingestion(pipeline, str(data_dir), profile, profile_ranges(profile), chunk_bytes)
        for name, records in expected.items():
            decoded = result.splits[name] | f"Decode{name}" >> beam.Map(lambda s: _key(_decode(s)))
            assert_that(decoded, equal_to([_key(r) for r in records]), label=f"split_{name}")
        catalog = result.splits["catalog"] | "DecodeCatalog" >> beam.Map(lambda s: _decode(s)["article_id"])
        assert_that(catalog, equal_to(["0100000001", "0100000002"]), label="catalog")
        quarantine = result.quarantine | beam.Map(lambda q: (q["file"], q["line"], q["kind"], q["reason"]))
        assert_that(quarantine, equal_to(EXPECTED_QUARANTINE), label="quarantine")

        def check_report(reports):
            (report,) = reports
            # articles: 4 read = 2 accepted + 1 conflicting duplicate id + 1 identical line
            assert report["files"]["articles.csv"] == {
                "read": 4,
                "accepted": 2,
                "quarantined": 1,
                "duplicates": 1,
                "reasons": {"duplicate_id": 1},
            }
            assert report["files"]["customers.csv"]["accepted"] == 2
            # transactions: lines 2..14 = 13 rows (the blank line 15 is not a row)
            #   = 3 accepted + 9 quarantined (lines 6..14) + 1 duplicate (line 5 repeats line 2)
            t = report["files"]["transactions_train.csv"]
            assert (t["read"], t["accepted"], t["quarantined"], t["duplicates"]) == (13, 3, 9, 1)
            # all files: 4 + 3 + 13 = 20 read = 7 accepted + 11 quarantined + 2 duplicates
            assert (report["rows_read"], report["rows_accepted"]) == (20, 7)
            assert (report["rows_quarantined"], report["duplicates_removed"]) == (11, 2)
            assert report["splits"]["eval"] == {"examples": 1, "first": "2020-09-10", "last": "2020-09-10"}
            assert report["splits"]["catalog"] == {"examples": 2}
            assert report["boundaries"] == {"eval_start": "2020-09-09", "test_start": "2020-09-16"}

        assert_that(result.report, check_report, label="report")


def test_missing_column_names_file_and_column(data_dir):
    (data_dir / "customers.csv").write_text("customer_id,age\nu1,3\n")
    with pytest.raises(DataError, match=r"customers.csv: missing column\(s\) \['club_member_status'"):
        with beam.Pipeline() as pipeline:
            graph.build_ingestion(pipeline, str(data_dir), load_profile("hm"))


def test_missing_file_is_named(data_dir):
    (data_dir / "articles.csv").unlink()
    with pytest.raises(DataError, match=r"articles.csv: file not found"):
        tables.check_inputs(str(data_dir), load_profile("hm"))


def test_hand_encoded_example_equals_the_protobuf_one():
    record = {"customer_id": "ü1", "age": 25.5, "t_dat": 1600000000, "neg": -3, "price": -0.0508, "empty": ""}
    expected = tf.train.Example()
    f = expected.features.feature
    f["customer_id"].bytes_list.value.append("ü1".encode())
    f["age"].float_list.value.append(25.5)
    f["t_dat"].int64_list.value.append(1600000000)
    f["neg"].int64_list.value.append(-3)
    f["price"].float_list.value.append(-0.0508)
    f["empty"].bytes_list.value.append(b"")
    assert tf.train.Example.FromString(encode.to_example(record, int_columns=["t_dat", "neg"])) == expected


def test_per_user_split_holds_out_each_users_latest_interactions(tmp_path):
    (tmp_path / "articles.csv").write_text(ARTICLES.splitlines()[0] + "\n" + ARTICLES.splitlines()[1] + "\n")
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    days = [f"2020-09-{d:02d}" for d in range(1, 11)]
    # u1: 5 interactions, u2: 10, in shuffled file order
    lines = [f"{day},u1,0100000001,0.0{i},1" for i, day in enumerate(days[:5])]
    lines += [f"{day},u2,0100000001,0.0{i},2" for i, day in enumerate(days)]
    (tmp_path / "transactions_train.csv").write_text(
        "t_dat,customer_id,article_id,price,sales_channel_id\n" + "\n".join(reversed(lines)) + "\n"
    )
    profile = load_profile("hm")
    profile = dataclasses.replace(profile, split=SplitConfig(mode="per_user", test_fraction=0.2, eval_fraction=0.2))
    # u1: int(5*0.2)=1 test (day 5), 1 eval (day 4), 3 train; u2: 2 test (days 9-10), 2 eval (7-8), 6 train
    expected = {
        "train": [("u1", d) for d in days[:3]] + [("u2", d) for d in days[:6]],
        "eval": [("u1", days[3])] + [("u2", d) for d in days[6:8]],
        "test": [("u1", days[4])] + [("u2", d) for d in days[8:]],
    }
    with beam.Pipeline() as pipeline:
        result = graph.build_ingestion(pipeline, str(tmp_path), profile, profile_ranges(profile))
        for name, pairs in expected.items():
            got = result.splits[name] | f"Key{name}" >> beam.Map(
                lambda s: (lambda r: (r["customer_id"], r["t_dat"]))(_decode(s))
            )
            assert_that(got, equal_to([(u, _day(d)) for u, d in pairs]), label=f"per_user_{name}")

        def check(reports):
            (report,) = reports
            assert report["boundaries"] == {"mode": "per_user", "eval_fraction": 0.2, "test_fraction": 0.2}
            assert {n: s["examples"] for n, s in report["splits"].items()} == {
                "train": 9,
                "eval": 3,
                "test": 3,
                "catalog": 1,
                "histories": 2,  # one per user: the hm profile's history feature as of the end of the data
            }

        assert_that(result.report, check, label="report")


def _vector(serialized: bytes) -> tuple:
    feature = tf.train.Example.FromString(serialized).features.feature
    vector = list(feature["desc_vec"].float_list.value) if "desc_vec" in feature else None
    return feature["article_id"].bytes_list.value[0].decode(), vector


def test_dense_vector_cells_become_float_lists_and_bad_ones_are_quarantined(tmp_path):
    profile = load_profile("hm")
    vec = dataclasses.replace(profile.features[0], name="desc_vec", source="item", kind="dense", dim=3)
    profile = dataclasses.replace(profile, features=profile.features + (vec,))
    item = "Denim,Trousers,Garment Lower body,Blue,Divided,Trousers Denim,Jeans"
    (tmp_path / "articles.csv").write_text(
        ARTICLES.splitlines()[0] + ",desc_vec\n"
        f"0100000001,{item},0.5 -1 2.5\n"
        f"0100000002,{item},0.5 1\n"  # line 3: 2 values
        f"0100000003,{item},0.5 one 2\n"  # line 4: not a number
        f"0100000004,{item},\n"  # no vector: missing, not an error
    )
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "transactions_train.csv").write_text(
        TRANSACTIONS.splitlines()[0] + "\n2020-09-01,u1,0100000001,0.05,2\n"
    )
    with beam.Pipeline() as pipeline:
        result = graph.build_ingestion(pipeline, str(tmp_path), profile, profile_ranges(profile))
        vectors = result.splits["catalog"] | beam.Map(_vector)
        assert_that(vectors, equal_to([("0100000001", [0.5, -1.0, 2.5]), ("0100000004", None)]), label="vectors")
        quarantine = result.quarantine | beam.Filter(lambda q: q["file"] == "articles.csv")
        reasons = quarantine | beam.Map(lambda q: (q["line"], q["kind"], q["reason"]))
        expected = [
            (3, rows.BAD_VECTOR, "column 'desc_vec': has 2 values, the profile's dim is 3"),
            (4, rows.BAD_VECTOR, "column 'desc_vec': 'one' is not a finite number"),
        ]
        assert_that(reasons, equal_to(expected), label="quarantine")
