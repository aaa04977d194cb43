"""The real pipeline, end to end, on tiny generated data (LocalDagRunner, SQLite MLMD)."""

import csv
import os

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from twotower import cli
from twotower.config import load_profile
from twotower.data.synthetic import generate_hm
from twotower.pipeline.local import METADATA_FILE, run_local
from twotower.serving.recommend import latest_version, recommend

pytestmark = pytest.mark.slow

COMPONENTS = [
    "JoinExampleGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "DataGate",
    "Transform",
    "Trainer",
    "RetrievalEvaluator",
    "Pusher",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = str(root / "data")
    generate_hm(data, customers=600, articles=200, transactions=12000, seed=1, progress=False)
    result = run_local(load_profile("hm"), data_root=data, pipeline_root=str(root / "pipeline"))
    return root, data, result


def test_every_component_executed(run):
    root, _, _ = run
    store = metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(str(root / "pipeline" / METADATA_FILE))
    )
    states = {}
    for context in store.get_contexts_by_type("node"):
        node = context.name.split(".")[-1]
        states[node] = [e.last_known_state for e in store.get_executions_by_context(context.id)]
    for component in COMPONENTS:
        assert states.get(component) == [metadata_store_pb2.Execution.COMPLETE], component


def test_model_beats_popularity_and_is_pushed(run):
    _, _, result = run
    model, popularity = result.metrics["models"]["twotower"], result.metrics["models"]["popularity"]
    assert model["recall@50"] > 1.05 * popularity["recall@50"], result.metrics
    assert model["recall@10"] > popularity["recall@10"], result.metrics
    assert result.metrics["blessing"]["blessed"] is True
    assert result.pushed_model is not None and os.path.isdir(result.pushed_model)
    # TF Serving layout: <serving_dir>/<model_name>/<numeric version>/saved_model.pb
    assert os.path.basename(result.pushed_model).isdigit()
    assert os.path.isfile(os.path.join(result.pushed_model, "saved_model.pb"))


def test_pushed_model_recommends_catalogue_items(run, capsys):
    root, data, result = run
    serving_dir = str(root / "pipeline" / "serving")
    assert latest_version(serving_dir) == result.pushed_model
    with open(os.path.join(data, "articles.csv"), newline="") as f:
        catalogue = {row["article_id"]: row["prod_name"] for row in csv.DictReader(f)}
    with open(os.path.join(data, "customers.csv"), newline="") as f:
        customer = next(csv.DictReader(f))["customer_id"]
    recs = recommend(serving_dir, customer, k=10, data_dir=data)
    assert len(recs) == 10 and len({r.item_id for r in recs}) == 10
    assert all(r.item_id in catalogue and r.name == catalogue[r.item_id] for r in recs)
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True)
    # an unknown customer with no features still gets answers (OOV embedding)
    assert len(recommend(serving_dir, "not-a-customer", k=5)) == 5
    assert cli.main(["recommend", "--serving-dir", serving_dir, "--customer-id", customer, "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert f"top-3 for customer {customer}" in out and recs[0].item_id in out
