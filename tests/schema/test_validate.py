"""`twotower validate`, `twotower drift` and `twotower schema infer` on small generated data, for real.

Each case edits a copy of one generated H&M-shaped data set: bad rows past the
quarantine limit, a categorical value outside the contract's domain, a shifted
age distribution, and an unchanged copy that must pass.
"""

import csv
import json
import os
import shutil

import pytest
import tensorflow_data_validation as tfdv
import yaml

from twotower import cli
from twotower.config import BASELINES, PROFILE_DIR
from twotower.data.synthetic import generate_hm

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    data = str(tmp_path_factory.mktemp("validate") / "clean")
    generate_hm(data, customers=400, articles=150, transactions=6000, seed=3, progress=False)
    return data


@pytest.fixture(scope="module")
def clean_validation(clean, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("validate") / "out")
    code = cli.main(["validate", "--data", clean, "--out", out])
    with open(os.path.join(out, "validation.json")) as f:
        return code, json.load(f), out


def _copy(src: str, dst) -> str:
    shutil.copytree(src, str(dst))
    return str(dst)


def _edit_column(path: str, column: str, edit) -> int:
    """Rewrites ``column`` of every data row with ``edit(row_number, value)``; returns the rows changed."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    i, changed = rows[0].index(column), 0
    for n, row in enumerate(rows[1:]):
        new = edit(n, row[i])
        changed += new != row[i]
        row[i] = new
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return changed


def test_clean_data_passes_and_accounts_for_every_row(clean_validation, clean):
    code, v, out = clean_validation
    assert code == 0 and v["passed"] is True
    with open(os.path.join(clean, "transactions_train.csv")) as f:
        lines = sum(1 for _ in f) - 1
    t = v["files"]["transactions_train.csv"]
    assert t["read"] == lines
    assert v["rows_read"] == v["rows_accepted"] + v["rows_quarantined"] + v["duplicates_removed"]
    assert v["rows_read"] == 400 + 150 + lines
    assert v["quarantine"] == [] and v["anomalies"] == []
    # catalog (one row per item) and histories (one per user) are derived, not a partition of the rows
    assert sum(s["examples"] for n, s in v["splits"].items() if n not in ("catalog", "histories")) == t["accepted"]
    assert os.path.isfile(os.path.join(out, "statistics", "Split-train", "FeatureStats.pb"))


def test_bad_rows_over_the_limit_fail_with_file_line_and_reason(clean, tmp_path, capsys):
    data = _copy(clean, tmp_path / "data")
    # every 10th price negative: 10% of transactions > the 5% limit
    changed = _edit_column(
        os.path.join(data, "transactions_train.csv"), "price", lambda n, v: "-1" if n % 10 == 0 else v
    )
    out = str(tmp_path / "out")
    assert cli.main(["validate", "--data", data, "--out", out]) == cli.EXIT_REJECTED
    with open(os.path.join(out, "validation.json")) as f:
        v = json.load(f)
    assert v["passed"] is False and v["problems"]["quarantine_over_limit"] == ["transactions_train.csv"]
    t = v["files"]["transactions_train.csv"]
    # a changed row identical to an earlier changed row is a duplicate, not quarantined
    assert t["reasons"] == {"out_of_range": t["quarantined"]} and 0.09 * t["read"] < t["quarantined"] <= changed
    assert t["read"] == t["accepted"] + t["quarantined"] + t["duplicates"]
    first = v["quarantine"][0]
    assert first == {"file": "transactions_train.csv", "line": 2, "reason": "column 'price': -1 is outside [0, 1]"}
    with open(os.path.join(out, "quarantine.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == t["quarantined"] and rows[0]["row"].split(",")[3] == "-1"
    assert "FAILED" in capsys.readouterr().out


def test_contract_violation_names_the_feature(clean, tmp_path, capsys):
    data = _copy(clean, tmp_path / "data")
    # a third of the articles in an index group the contract does not know
    _edit_column(os.path.join(data, "articles.csv"), "index_group_name", lambda n, v: "Kidswear" if n % 3 == 0 else v)
    out = str(tmp_path / "out")
    assert cli.main(["validate", "--data", data, "--out", out]) == cli.EXIT_REJECTED
    with open(os.path.join(out, "validation.json")) as f:
        v = json.load(f)
    assert v["problems"]["contract_violations"] >= 1 and v["problems"]["quarantine_over_limit"] == []
    kinds = {(a["feature"], a["kind"]) for a in v["anomalies"]}
    assert ("index_group_name", "ENUM_TYPE_UNEXPECTED_STRING_VALUES") in kinds
    assert "index_group_name" in capsys.readouterr().out


def test_drift_against_a_baseline_fails_unless_accepted(clean, clean_validation, tmp_path):
    _, _, baseline = clean_validation
    unchanged = _copy(clean, tmp_path / "same")
    assert cli.main(["validate", "--data", unchanged, "--out", str(tmp_path / "o1"), "--baseline", baseline]) == 0

    shifted = _copy(clean, tmp_path / "shifted")
    _edit_column(os.path.join(shifted, "customers.csv"), "age", lambda n, v: str(min(99, int(v) + 25)) if v else v)
    out = str(tmp_path / "o2")
    assert cli.main(["validate", "--data", shifted, "--out", out, "--baseline", baseline]) == cli.EXIT_REJECTED
    with open(os.path.join(out, "validation.json")) as f:
        v = json.load(f)
    assert v["problems"]["drifted_features"] == ["age"] and v["problems"]["contract_violations"] == 0
    args = ["validate", "--data", shifted, "--out", str(tmp_path / "o3"), "--baseline", baseline, "--accept-drift"]
    assert cli.main(args) == 0

    # the drift report: statistics in, report.json + report.html out
    report_dir = str(tmp_path / "report")
    assert cli.main(["drift", "--baseline", baseline, "--current", out, "--out", report_dir]) == cli.EXIT_REJECTED
    with open(os.path.join(report_dir, "report.json")) as f:
        report = json.load(f)
    assert report["drifted"] == ["age"]
    age = next(f for f in report["features"] if f["feature"] == "age")
    assert age["metric"] == "jensen_shannon" and age["distance"] > age["threshold"] == 0.05
    with open(os.path.join(report_dir, "report.html")) as f:
        page = f.read()
    assert "age" in page and "data:image/png;base64," in page
    same = str(tmp_path / "same-report")
    assert cli.main(["drift", "--baseline", baseline, "--current", str(tmp_path / "o1"), "--out", same]) == 0


def test_schema_infer_drafts_a_contract_the_data_passes(clean, tmp_path):
    path = str(tmp_path / "draft.pbtxt")
    assert cli.main(["schema", "infer", "--data", clean, "--out", path]) == 0
    schema = tfdv.load_schema_text(path)
    features = {f.name: f for f in schema.feature}
    assert features["age"].float_domain.min >= 16 and features["age"].float_domain.max <= 99
    assert features["customer_id"].presence.min_fraction == 1.0
    assert "SERVING" in features["article_id"].not_in_environment
    assert "SERVING" not in features["age"].not_in_environment
    with open(path) as f:
        assert f.read().startswith("# Draft data contract for profile 'hm'")


def test_movielens_passes_its_contract(tmp_path):
    data, out = str(tmp_path / "ml"), str(tmp_path / "out")
    assert cli.main(["data", "movielens", "--out", data]) == 0
    assert cli.main(["validate", "--config", "movielens", "--data", data, "--out", out]) == 0
    with open(os.path.join(out, "validation.json")) as f:
        v = json.load(f)
    # MovieLens-100K: 100,000 ratings by 943 users of 1,682 movies, nothing quarantined
    assert v["files"]["ratings.csv"]["accepted"] == 100_000 and v["rows_read"] == 100_000 + 943 + 1682
    assert v["rows_quarantined"] == 0 and v["anomalies"] == []


def test_a_fourth_profile_needs_only_a_yaml_file(tmp_path):
    data = str(tmp_path / "shop")
    assert cli.main(["data", "generate", "--profile", "retail", "--out", data, "--transactions", "3000"]) == 0
    with open(os.path.join(PROFILE_DIR, "retail.yaml")) as f:
        raw = yaml.safe_load(f)
    raw["name"] = "my-shop"
    del raw["contract"]  # no schema file: row checks only, the pipeline would infer a schema
    path = tmp_path / "my-shop.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = str(tmp_path / "out")
    assert cli.main(["validate", "--config", str(path), "--data", data, "--out", out]) == 0
    with open(os.path.join(out, "validation.json")) as f:
        v = json.load(f)
    assert v["profile"] == "my-shop" and v["schema"] is None and v["files"]["sales.csv"]["read"] == 3000


def test_bench_quality_reports_model_and_baselines_on_a_per_user_split(clean, tmp_path):
    # the hm profile with one short softmax phase instead of its 7 epochs: this test checks the report, not the model
    with open(os.path.join(PROFILE_DIR, "hm.yaml")) as f:
        raw = yaml.safe_load(f)
    raw["contract"]["schema"] = os.path.join(PROFILE_DIR, raw["contract"]["schema"])  # the YAML moves to tmp_path
    raw["trainer"].update(epochs=1, embedding_dim=8, hidden_units=[16], phases=[{"name": "softmax", "epochs": 1}])
    profile = tmp_path / "hm-short.yaml"
    profile.write_text(yaml.safe_dump(raw))
    out = str(tmp_path / "quality.json")
    args = ["bench", "quality", "--profile", str(profile), "--data", clean, "--split", "per_user", "--out", out]
    assert cli.main(args + ["--work-dir", str(tmp_path)]) == 0
    with open(out) as f:
        report = json.load(f)
    assert list(report["models"]) == ["twotower", *BASELINES]
    for name, table in report["models"].items():
        assert {"recall@10", "recall@50", "recall@100", "ndcg@10", "map@12"} <= set(table)
        lo, hi = report["intervals"][name]["recall@50"]  # with its 95% bootstrap interval over the held-out users
        assert lo <= table["recall@50"] <= hi
    assert report["bootstrap"]["users"] == report["split"]["held_out_users"]
    assert report["blessing"]["best_baseline"] in BASELINES and "(paired difference " in report["blessing"]["reason"]
    assert report["split"]["rule"] == {"mode": "per_user", "eval_fraction": 0.1, "test_fraction": 0.2}
    # every customer with >= 5 purchases has a test item, so held-out users are most customers
    assert report["split"]["held_out"] == "test" and report["split"]["held_out_users"] > 100
    assert report["train_examples_per_s"] > 0


def test_a_drafted_contract_accepts_every_split_of_the_data_it_was_drafted_from(clean, tmp_path):
    data = _copy(clean, tmp_path / "data")

    def rename_late_status(n, value):  # a value first seen in eval/test (as Iceland was in the retail log)
        return "NEW_STATUS" if n % 50 == 0 and n > 0 else value

    _edit_column(os.path.join(data, "customers.csv"), "club_member_status", rename_late_status)
    draft = str(tmp_path / "draft.pbtxt")
    assert cli.main(["schema", "infer", "--data", data, "--out", draft]) == 0
    features = {f.name: f for f in tfdv.load_schema_text(draft).feature}
    assert features["t_dat"].int_domain.HasField("min") and not features["t_dat"].int_domain.HasField("max")
    assert not features["club_member_status"].HasField("domain")  # open unless asked
    with open(os.path.join(PROFILE_DIR, "hm.yaml")) as f:
        raw = yaml.safe_load(f)
    raw["contract"]["schema"] = draft
    config = tmp_path / "drafted.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = str(tmp_path / "out")
    assert cli.main(["validate", "--config", str(config), "--data", data, "--out", out]) == 0
    with open(os.path.join(out, "validation.json")) as f:
        v = json.load(f)
    assert v["rows_quarantined"] == 0 and v["anomalies"] == [], (v["rows_quarantined"], v["anomalies"])
    closed = str(tmp_path / "closed.pbtxt")
    args = ["schema", "infer", "--data", data, "--out", closed, "--closed-domain", "club_member_status"]
    assert cli.main(args) == 0
    schema = tfdv.load_schema_text(closed)
    status = next(f for f in schema.feature if f.name == "club_member_status")
    values = next(d.value for d in schema.string_domain if d.name == status.domain)
    assert "NEW_STATUS" in values and "ACTIVE" in values  # every split's values, not the train split's alone
