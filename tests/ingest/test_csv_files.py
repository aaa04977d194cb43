"""CSV files as people send them: gzip, other delimiters and encodings, BOMs, duplicate or spaced column names,
CR-only line breaks, binary files and huge cells. Bad input fails naming the file; nothing is lost."""

import dataclasses
import gzip

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that

from tests.ingest.test_graph import ARTICLES, CUSTOMERS, TRANSACTIONS
from twotower.config import load_profile
from twotower.errors import ConfigError, DataError
from twotower.ingest import csv_source, graph, rows
from twotower.schema.contract import profile_ranges

FILES = {"articles.csv": ARTICLES, "customers.csv": CUSTOMERS, "transactions_train.csv": TRANSACTIONS}


def _check_counts(data_dir, profile, expected, suffix=""):
    """Runs the ingestion graph; checks {file: (read, accepted, quarantined, duplicates)} inside the pipeline."""

    def check(reports):
        (report,) = reports
        files = report["files"]
        assert {f: (c["read"], c["accepted"], c["quarantined"], c["duplicates"]) for f, c in files.items()} == {
            name + suffix: counts for name, counts in expected.items()
        }
        for c in files.values():
            assert c["read"] == c["accepted"] + c["quarantined"] + c["duplicates"]  # nothing lost

    with beam.Pipeline() as pipeline:
        result = graph.build_ingestion(pipeline, str(data_dir), profile, profile_ranges(profile))
        assert_that(result.report, check, label="report")


PLAIN = {
    "articles.csv": (4, 2, 1, 1),
    "customers.csv": (3, 2, 1, 0),
    "transactions_train.csv": (13, 3, 9, 1),
}


@pytest.mark.parametrize("variant", ["gzip-named-csv", "csv.gz", "tsv-latin-1"])
def test_gzip_files_and_other_dialects_ingest_row_for_row_as_the_plain_csv(tmp_path, variant):
    profile = load_profile("hm")
    d = profile.data
    for name, text in FILES.items():
        if variant == "gzip-named-csv":  # gzip bytes behind a .csv name, as Kaggle downloads sometimes are
            (tmp_path / name).write_bytes(gzip.compress(text.encode()))
        elif variant == "csv.gz":
            (tmp_path / f"{name}.gz").write_bytes(gzip.compress(text.encode()))
        else:
            (tmp_path / name).write_bytes(text.replace(",", "\t").replace("Strap top", "Strap tôp").encode("latin-1"))
    if variant == "csv.gz":
        files = {"interactions": d.interactions + ".gz", "items": d.items + ".gz", "users": d.users + ".gz"}
        profile = dataclasses.replace(profile, data=dataclasses.replace(d, **files))
    if variant == "tsv-latin-1":
        profile = dataclasses.replace(profile, data=dataclasses.replace(d, delimiter="\t", encoding="latin-1"))
    _check_counts(tmp_path, profile, PLAIN, ".gz" if variant == "csv.gz" else "")


def _write(tmp_path, name, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_a_header_that_repeats_a_column_name_fails_naming_it(tmp_path):
    path = _write(tmp_path, "t.csv", b"price,customer_id,price,qty,qty\n1,u,2,3,4\n")
    with pytest.raises(DataError, match=r"t\.csv: the header repeats column name\(s\) \['price', 'qty'\]"):
        csv_source.read_header(path)


def test_binary_cr_only_and_empty_files_fail_naming_the_file_in_a_short_message(tmp_path):
    xlsx = _write(tmp_path, "sales.csv", b"PK\x03\x04" + bytes(range(256)) * 10)
    with pytest.raises(DataError, match=r"sales\.csv: not a CSV text file"):
        csv_source.read_header(xlsx)
    cr_only = _write(tmp_path, "mac.csv", b"a,b\r" + b"1,2\r" * 200_000)
    with pytest.raises(DataError) as e:
        csv_source.read_header(cr_only)
    assert "mac.csv: lines end with a lone CR" in str(e.value) and len(str(e.value)) < 300
    truncated = _write(tmp_path, "cut.csv", gzip.compress(b"a,b\n" * 1000)[:40])
    with pytest.raises(DataError, match=r"cut\.csv: cannot be read as gzip"):
        csv_source.read_header(truncated)
    with pytest.raises(DataError, match=r"empty\.csv: file is empty"):
        csv_source.read_header(_write(tmp_path, "empty.csv", b""))


def test_a_bom_spaces_in_column_names_and_the_movielens_dialect(tmp_path):
    path = _write(tmp_path, "bom.csv", "\ufeffCustomer ID,Unit Price\nu1,2.5\n".encode())
    assert csv_source.read_header(path) == ["Customer ID", "Unit Price"]
    dat = _write(tmp_path, "ratings.dat", "user::item::rating::title\n1::10::5::Amélie\n".encode("latin-1"))
    dialect = csv_source.Dialect("::", "latin-1")
    assert csv_source.read_header(dat, dialect) == ["user", "item", "rating", "title"]
    spec = rows.TableSpec("ratings.dat", ("user", "item", "rating", "title"), ("user", "title"), ("user",), (), {})
    spec = dataclasses.replace(spec, dialect=dialect)
    assert rows.RowParser(spec)("1::10::5::Amélie".encode("latin-1")) == {"user": "1", "title": "Amélie"}


def test_a_huge_cell_is_quoted_in_200_characters_with_its_length(tmp_path):
    spec = rows.TableSpec("t.csv", ("id", "price"), ("id", "price"), ("id",), ("price",), {})
    reject = rows.RowParser(spec)(b"u1," + b"9" * 10_000_000 + b"x")
    assert reject.kind == rows.NOT_A_NUMBER
    assert len(reject.reason) < 300 and "(10,000,001 characters in all)" in reject.reason


def test_the_profile_refuses_column_names_tensorflow_would_change_and_bad_dialects():
    profile = load_profile("retail")
    for name in ("Customer ID", "customer.id", "customer-id", "Country", "städt"):
        features = tuple(dataclasses.replace(f, name=name) if f.name == "city" else f for f in profile.features)
        with pytest.raises(ConfigError, match=rf"feature '{name}'.*lowercase ASCII letters, digits and '_'"):
            _validate(dataclasses.replace(profile, features=features))
    not_modelled = tuple(
        dataclasses.replace(f, name="Unit Price") if f.name == "revenue" else f for f in profile.features
    )
    _validate(dataclasses.replace(profile, features=not_modelled))  # model: false: never a signature input
    for data, message in (({"delimiter": ""}, "data.delimiter"), ({"encoding": "klingon"}, "data.encoding")):
        with pytest.raises(ConfigError, match=message):
            _validate(dataclasses.replace(profile, data=dataclasses.replace(profile.data, **data)))


def _validate(profile):
    from twotower.config.checks import check_values

    check_values(profile, "retail.yaml")
