"""JoinExampleGen's Beam graph on hand-written CSVs, run for real on the DirectRunner."""

import calendar
import datetime

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to
from tfx.utils import proto_utils

from twotower.components.example_gen import executor
from twotower.components.example_gen.component import JoinExampleGen, profile_to_custom_config
from twotower.config import load_profile

ARTICLES = """article_id,prod_name,product_type_name,product_group_name,colour_group_name,index_group_name,garment_group_name,detail_desc
0100000001,Strap top,Vest top,Garment Upper body,Black,Ladieswear,Jersey Basic,"Top, with straps"
0100000002,Denim TRS,Trousers,Garment Lower body,Blue,Divided,Trousers Denim,Jeans
"""
CUSTOMERS = """customer_id,FN,Active,club_member_status,fashion_news_frequency,age,postal_code
u1,1.0,,ACTIVE,NONE,25,p1
u2,,,ACTIVE,Regularly,,p2
"""
TRANSACTIONS = """t_dat,customer_id,article_id,price,sales_channel_id
2020-09-01,u1,0100000001,0.05,2
2020-09-20,u1,0100000002,0.03,1
2020-09-21,u2,0100000001,0.05,2
2020-09-22,u9,0100000001,0.05,2
"""


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
        value = getattr(feature, kind).value[0]
        out[name] = value.decode() if isinstance(value, bytes) else value
    return out


def _key(record: dict) -> tuple:
    return tuple(sorted((k, round(v, 4) if isinstance(v, float) else v) for k, v in record.items()))


def test_eval_start_is_midnight_of_first_eval_day():
    # newest interaction 2020-09-22 12:00 with 7 eval days -> eval covers 16..22 Sep
    assert executor.eval_start(_day("2020-09-22") + 12 * 3600, 7) == _day("2020-09-16")
    assert executor.eval_start(_day("2020-09-22"), 1) == _day("2020-09-22")


def test_parse_timestamp_formats_and_error():
    assert executor.parse_timestamp("2020-09-22", "%Y-%m-%d", "f.csv", "t") == _day("2020-09-22")
    assert executor.parse_timestamp("1600000000", "unix", "f.csv", "t") == 1600000000
    with pytest.raises(executor.DataError, match="f.csv: column 't': cannot parse '22/09/2020'"):
        executor.parse_timestamp("22/09/2020", "%Y-%m-%d", "f.csv", "t")


def test_join_split_and_catalog(data_dir):
    profile = load_profile("hm")
    # u9 is unknown: dropped (and counted). Newest known interaction 2020-09-21, 7 eval days -> eval from 15 Sep.
    item1 = {
        "prod_name": "Strap top",
        "product_type_name": "Vest top",
        "product_group_name": "Garment Upper body",
        "colour_group_name": "Black",
        "index_group_name": "Ladieswear",
        "garment_group_name": "Jersey Basic",
        "article_id": "0100000001",
    }
    item2 = {
        "prod_name": "Denim TRS",
        "product_type_name": "Trousers",
        "product_group_name": "Garment Lower body",
        "colour_group_name": "Blue",
        "index_group_name": "Divided",
        "garment_group_name": "Trousers Denim",
        "article_id": "0100000002",
    }
    u1 = {"customer_id": "u1", "age": 25.0, "club_member_status": "ACTIVE", "fashion_news_frequency": "NONE"}
    u2 = {"customer_id": "u2", "club_member_status": "ACTIVE", "fashion_news_frequency": "Regularly"}  # no age
    expected_train = [{**item1, **u1, "t_dat": _day("2020-09-01")}]
    expected_eval = [{**item2, **u1, "t_dat": _day("2020-09-20")}, {**item1, **u2, "t_dat": _day("2020-09-21")}]
    with beam.Pipeline() as pipeline:
        splits = executor.build_splits(pipeline, str(data_dir), profile)
        decoded = {name: pc | f"Decode{name}" >> beam.Map(lambda s: _key(_decode(s))) for name, pc in splits.items()}
        assert_that(decoded["train"], equal_to([_key(r) for r in expected_train]), label="train")
        assert_that(decoded["eval"], equal_to([_key(r) for r in expected_eval]), label="eval")
        assert_that(decoded["catalog"], equal_to([_key(item1), _key(item2)]), label="catalog")


def test_missing_column_names_file_and_column(data_dir):
    (data_dir / "customers.csv").write_text("customer_id,age\nu1,3\n")
    with pytest.raises(executor.DataError, match=r"customers.csv: missing column\(s\) \['club_member_status'"):
        with beam.Pipeline() as pipeline:
            executor.build_splits(pipeline, str(data_dir), load_profile("hm"))


def test_ragged_row_and_bad_number_name_the_file(data_dir):
    (data_dir / "customers.csv").write_text(CUSTOMERS + "u3,,,ACTIVE,NONE,old,p3\n")
    with pytest.raises(Exception, match=r"customers.csv: column 'age': 'old' is not a number"):
        with beam.Pipeline() as pipeline:
            executor.build_splits(pipeline, str(data_dir), load_profile("hm"))
    (data_dir / "customers.csv").write_text(CUSTOMERS + "u3,1.0\n")
    with pytest.raises(Exception, match=r"customers.csv: a row has 2 fields, the header 7"):
        with beam.Pipeline() as pipeline:
            executor.build_splits(pipeline, str(data_dir), load_profile("hm"))


def test_profile_survives_the_custom_config_round_trip():
    profile = load_profile("hm")
    exec_properties = {"custom_config": proto_utils.proto_to_json(profile_to_custom_config(profile))}
    assert executor.profile_from_exec_properties(exec_properties) == profile
    assert JoinExampleGen(input_base="/data", profile=profile).exec_properties["input_base"] == "/data"
