"""A fourth profile written from scratch, run end to end: no contract (the pipeline infers a schema), the item
name also a text feature, and empty optional values (item names, item and user features) all the way through."""

import csv
import json
import os

import pytest
import yaml

from twotower import cli
from twotower.data.retail import generate_retail

pytestmark = pytest.mark.slow

PROFILE = {
    "name": "wholesale",
    "data": {
        "interactions": "sales.csv",
        "items": "products.csv",
        "users": "customers.csv",
        "user_id": "customer_id",
        "item_id": "product_id",
        "timestamp": "timestamp",
        "timestamp_format": "unix",
        "item_name": "product_name",
    },
    "features": [
        {"name": "city", "source": "user", "kind": "categorical"},
        {"name": "customer_type", "source": "user", "kind": "categorical"},
        {"name": "product_name", "source": "item", "kind": "text", "separator": " "},
        {"name": "category", "source": "item", "kind": "categorical"},
        {"name": "subcategory", "source": "item", "kind": "categorical"},
        {"name": "revenue", "source": "interaction", "kind": "numeric", "model": False},
    ],
    "split": {"eval_days": 14, "test_days": 14},
    "trainer": {
        "epochs": 1,
        "batch_size": 256,
        "learning_rate": 0.1,
        "embedding_dim": 8,
        "hidden_units": [16],
        "temperature": 0.1,
    },
    "evaluator": {
        "ks": [10],
        "blessing_k": 10,
        "min_recall": 0.0,
        "min_lift_over_popularity": 0.0,
        "min_lift_over_best_baseline": 0.0,  # a one-epoch model: this test is about the data, not the blessing
        "exclude_seen": False,
    },
    "serving": {"model_name": "wholesale", "top_k": 10},
}


def _blank(path: str, column: str, every: int) -> list:
    """Empties ``column`` in every ``every``-th row of a CSV; returns the ids (first column) of those rows."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    i, blanked = rows[0].index(column), []
    for n, row in enumerate(rows[1:]):
        if n % every == 0:
            row[i] = ""
            blanked.append(row[0])
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return blanked


def test_a_profile_from_scratch_with_empty_optional_values_runs_end_to_end(tmp_path, capsys):
    data = str(tmp_path / "data")
    generate_retail(data, customers=300, products=120, transactions=5000, seed=2)
    unnamed = _blank(os.path.join(data, "products.csv"), "product_name", 7)  # names, as 356 real stock codes
    _blank(os.path.join(data, "products.csv"), "subcategory", 5)  # item features
    _blank(os.path.join(data, "customers.csv"), "city", 4)  # user features
    config = tmp_path / "wholesale.yaml"
    config.write_text(yaml.safe_dump(PROFILE))
    serving = str(tmp_path / "serving")
    args = ["run", "--config", str(config), "--data", data, "--pipeline-root", str(tmp_path / "root")]
    assert cli.main(args + ["--serving-dir", serving]) == 0, capsys.readouterr().err[-3000:]
    (version,) = os.listdir(os.path.join(serving, "wholesale"))
    with open(os.path.join(serving, "wholesale", version, "assets.extra", "vocabularies.json"), encoding="utf-8") as f:
        assert f.read()  # packaged: the export ran past embed_catalog
    from twotower.serving.models import load_servable

    servable = load_servable("wholesale", int(version), os.path.join(serving, "wholesale", version))
    answer = servable.signatures["serving_default"](
        {"customer_id": [b"C000001", b"nobody"], "city": [b"", b""], "customer_type": [b"", b"Trader"]}
    )
    ids = answer["item_ids"].astype(str)
    names = answer["item_names"].astype(str)
    assert ids.shape == (2, 10)
    shown = dict(zip(ids.ravel(), names.ravel(), strict=True))
    assert all(shown[i] in ("", i) for i in unnamed if i in shown)  # an unnamed item: "" or its id, never a crash
    assert json.loads(json.dumps(shown))


def test_unnamed_catalogue_items_under_a_contract_that_requires_names_do_not_fail_the_export(tmp_path, capsys):
    """The retail log's 356 stock codes without a description: accepted, trained past, then the export died."""
    from twotower.config import PROFILE_DIR, load_profile

    data = str(tmp_path / "data")
    generate_retail(data, customers=300, products=120, transactions=5000, seed=4)
    with open(os.path.join(data, "products.csv"), "a", encoding="utf-8") as f:
        f.writelines(f"P9{n:05d},,Soft Drinks,Water\n" for n in range(20))  # never sold: only in the catalogue
    with open(os.path.join(PROFILE_DIR, "retail.yaml"), encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    raw["contract"]["schema"] = load_profile("retail").contract.schema  # absolute: the YAML moves to tmp_path
    raw["trainer"].update(epochs=1, embedding_dim=8, hidden_units=[16])
    raw["evaluator"].update(min_recall=0.0, min_lift_over_popularity=0.0, min_lift_over_best_baseline=0.0)
    config = tmp_path / "retail.yaml"
    config.write_text(yaml.safe_dump(raw))
    serving = str(tmp_path / "serving")
    args = ["run", "--config", str(config), "--data", data, "--pipeline-root", str(tmp_path / "root")]
    assert cli.main(args + ["--serving-dir", serving]) == 0, capsys.readouterr().err[-3000:]
    (version,) = os.listdir(os.path.join(serving, "twotower-retail"))
    with open(os.path.join(serving, "twotower-retail", version, "assets.extra", "vocabularies.json")) as f:
        assert f.read()
