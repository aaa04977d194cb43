"""evaluate() and the RetrievalEvaluator executor on tiny real data: TFRecords and SavedModels made here.

The "models" are real SavedModels whose ``serving_default`` takes ``customer_id`` and answers a fixed
ranking, so every metric below is worked out by hand. Data (hm profile column names):

  train:   u1 -> a, u1 -> b, u2 -> a, u3 -> c      popularity: a (2), b (1), c (1) -> [a, b, c]
  held out (eval): u1 -> c, u2 -> b, u4 -> d       u4 never trained: the cold-start slice
  catalog: a, b, c, d

  GOOD ranks [c, b, a, d]: u1 hit at 1, u2 at 2, u4 at 4 -> recall@1 = 1/3, recall@2 = 2/3
  BAD  ranks [d, a, b, c]: u1 hit at 4, u2 at 3, u4 at 1 -> recall@1 = 1/3, recall@2 = 1/3
  popularity [a, b, c]:    u2 hit at 2                   -> recall@1 = 0,   recall@2 = 1/3
"""

import dataclasses
import json
import os

import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from twotower.components.evaluator import executor
from twotower.config import load_profile
from twotower.evaluation import evaluate as ev
from twotower.export.assets import HISTORY_ASSET

GOOD = [b"c", b"b", b"a", b"d"]
BAD = [b"d", b"a", b"b", b"c"]
STALE = [b"z", b"c", b"b", b"a"]  # z is not in the catalogue any more: dropped, leaving GOOD's order
TRAIN = [(b"u1", b"a"), (b"u1", b"b"), (b"u2", b"a"), (b"u3", b"c")]
HELD_OUT = [(b"u1", b"c"), (b"u2", b"b"), (b"u4", b"d")]
CATALOG = [b"a", b"b", b"c", b"d"]


class FixedRanking(tf.Module):
    """A retrieval SavedModel in miniature: every query gets ``items``, best first.

    It has what the evaluator reads of a real export: ``query_embedding`` (every query embeds to [1]),
    the catalogue ``item_ids`` / ``item_embeddings`` (each item's embedding is its score) and
    ``serving_default`` (top items and scores).
    """

    def __init__(self, items, age_input=False):
        super().__init__()
        self.item_ids = tf.Variable(items)
        self.item_embeddings = tf.Variable([[float(len(items) - rank)] for rank in range(len(items))])
        signature = {"customer_id": tf.TensorSpec([None], tf.string, name="customer_id")}
        if age_input:  # as if the profile had gained a feature since this model was blessed
            signature["age"] = tf.TensorSpec([None], tf.float32, name="age")
        self.serve = tf.function(self._serve, input_signature=[signature])
        self.query = tf.function(self._query, input_signature=[signature])

    def _query(self, features):
        return {"embedding": tf.ones([tf.shape(features["customer_id"])[0], 1])}

    def _serve(self, features):
        scores = tf.matmul(self._query(features)["embedding"], self.item_embeddings, transpose_b=True)
        top = tf.math.top_k(scores, k=2)  # like serving.top_k: shorter than the catalogue
        return {"item_ids": tf.gather(self.item_ids, top.indices), "scores": top.values}


def _save(module, path) -> str:
    signatures = {
        "serving_default": module.serve.get_concrete_function(),
        "query_embedding": module.query.get_concrete_function(),
    }
    tf.saved_model.save(module, str(path), signatures=signatures)
    return str(path)


def _write(path, rows) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for row in rows:
            features = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v])) for k, v in row.items()}
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    profile = load_profile("hm")
    user, item = profile.data.user_id, profile.data.item_id
    evaluator = dataclasses.replace(
        profile.evaluator, ks=(1, 2), blessing_k=2, min_recall=0.1, min_lift_over_popularity=1.0
    )
    profile = dataclasses.replace(profile, evaluator=evaluator)
    examples = root / "examples"
    _write(examples / "Split-train" / "data.gz", [{user: u, item: i} for u, i in TRAIN])
    _write(examples / "Split-eval" / "data.gz", [{user: u, item: i} for u, i in HELD_OUT])
    _write(examples / "Split-catalog" / "data.gz", [{item: i} for i in CATALOG])
    models = {
        "good": _save(FixedRanking(GOOD), root / "good"),
        "bad": _save(FixedRanking(BAD), root / "bad"),
        "stale": _save(FixedRanking(STALE), root / "stale"),
        "age": _save(FixedRanking(GOOD, age_input=True), root / "age"),
    }
    splits = {s: [str(examples / f"Split-{s}" / "*")] for s in ("train", "eval", "catalog")}
    return profile, models, splits, root


def _evaluate(world, model, baseline=None, **evaluator):
    profile, models, splits, _ = world
    if evaluator:
        profile = dataclasses.replace(profile, evaluator=dataclasses.replace(profile.evaluator, **evaluator))
    baseline_dir = models.get(baseline, baseline)
    return ev.evaluate(profile, models[model], splits["train"], splits["eval"], splits["catalog"], baseline_dir)


def test_first_run_blesses_on_thresholds_alone(world):
    result = _evaluate(world, "good")
    assert result["baseline"] is None
    assert result["models"]["twotower"]["recall@2"] == pytest.approx(2 / 3)
    assert result["models"]["popularity"]["recall@2"] == pytest.approx(1 / 3)
    # recall curves, K = 1..max(ks): GOOD 1/3, 2/3; popularity 0, 1/3
    assert result["recall_curve"]["twotower"] == pytest.approx([1 / 3, 2 / 3])
    assert result["recall_curve"]["popularity"] == pytest.approx([0, 1 / 3])
    assert set(result["recall_curve"]) == set(result["models"])
    blessing = result["blessing"]
    assert blessing["blessed"] is True and blessing["last_blessed_recall"] is None
    assert blessing["reason"] == (
        "recall 0.6667 >= 0.1000 and >= 1 x popularity 0.3333; no blessed model yet: thresholds only"
    )


def test_model_worse_than_the_last_blessed_is_not_blessed(world):
    # BAD passes both thresholds (1/3 >= 0.1, 1/3 >= 1 x popularity 1/3) but is below GOOD's 2/3
    result = _evaluate(world, "bad", baseline="good")
    baseline = result["baseline"]
    assert baseline["uri"] == world[1]["good"] and "error" not in baseline
    assert baseline["metrics"]["recall@2"] == pytest.approx(2 / 3)
    assert baseline["cold_start"]["recall@2"] == 0.0  # u4 (cold) has d at rank 4 in GOOD
    assert baseline["items_not_in_catalogue"] == 0
    assert result["recall_curve"]["last_blessed"] == pytest.approx([1 / 3, 2 / 3])
    assert "last_blessed" not in result["models"]  # the table of this run's model and baselines stays as it was
    assert result["cold_start"]["users"] == 1 and "last_blessed" not in result["cold_start"]["models"]
    blessing = result["blessing"]
    assert blessing["blessed"] is False and blessing["last_blessed_recall"] == pytest.approx(2 / 3)
    assert blessing["reason"] == "recall 0.3333 < 1 x last blessed model 0.6667 (max_regression 0)"
    # allowing a 60% loss: 1/3 >= 0.4 x 2/3 = 0.2667 -> blessed, and the reason names the comparison
    relaxed = _evaluate(world, "bad", baseline="good", max_regression=0.6)["blessing"]
    assert relaxed["blessed"] is True and relaxed["reason"].endswith("and >= 0.4 x last blessed model 0.6667")


def test_better_model_than_the_last_blessed_is_blessed(world):
    blessing = _evaluate(world, "good", baseline="bad")["blessing"]
    assert blessing["blessed"] is True and blessing["last_blessed_recall"] == pytest.approx(1 / 3)
    assert blessing["reason"].endswith("and >= 1 x last blessed model 0.3333")


def test_items_gone_from_the_catalogue_are_dropped_from_the_last_blessed_lists(world):
    # STALE = [z, c, b, a]: z left the catalogue, so it ranks as GOOD; z was in the top 2 of all 3 users
    baseline = _evaluate(world, "good", baseline="stale")["baseline"]
    assert baseline["metrics"]["recall@2"] == pytest.approx(2 / 3)
    assert baseline["items_not_in_catalogue"] == 3


@pytest.mark.parametrize(
    "baseline, error",
    [
        ("age", "ValueError: the last blessed model takes input 'age', which the current model does not"),
        ("/nonexistent/model", "OSError: SavedModel file does not exist"),
    ],
)
def test_last_blessed_that_cannot_be_scored_is_reported_and_skipped(world, baseline, error):
    result = _evaluate(world, "bad", baseline=baseline)
    assert result["baseline"]["error"].startswith(error) and "metrics" not in result["baseline"]
    assert "last_blessed" not in result["recall_curve"]
    # thresholds alone decide: BAD passes them
    blessing = result["blessing"]
    assert blessing["blessed"] is True and blessing["last_blessed_recall"] is None
    assert f"; last blessed model not compared ({error}" in blessing["reason"]


def test_check_comparable_names_the_input():
    ev.check_comparable({"customer_id": tf.string}, {"customer_id": tf.string, "age": tf.float32})  # a subset is fine
    with pytest.raises(ValueError, match="takes 'age' as float32, the current model as string"):
        ev.check_comparable({"age": tf.float32}, {"age": tf.string})


def _artifact(cls, uri, artifact_id=None):
    artifact = cls()
    artifact.uri = str(uri)
    if artifact_id is not None:
        artifact.id = artifact_id
    return artifact


def _run_executor(profile, root, tmp_path, inputs):
    """Runs the evaluator executor on ``inputs`` (model, baseline) and ``root``'s examples; returns (metrics, blessing)."""
    examples = _artifact(standard_artifacts.Examples, root / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval", "catalog"])
    evaluation = _artifact(standard_artifacts.ModelEvaluation, tmp_path / "evaluation")
    blessing = _artifact(standard_artifacts.ModelBlessing, tmp_path / "blessing")
    executor.Executor().Do(
        {**inputs, "examples": [examples]},
        {"evaluation": [evaluation], "blessing": [blessing]},
        {"profile": profile.to_json()},
    )
    with open(tmp_path / "evaluation" / executor.METRICS_FILE) as f:
        return json.load(f), blessing


def test_executor_writes_metrics_plots_and_the_blessing_the_resolver_reads(world, tmp_path):
    profile, models, _, root = world
    model = _artifact(standard_artifacts.Model, tmp_path / "model", 11)
    _save(FixedRanking(GOOD), tmp_path / "model" / "Format-Serving")
    history = {
        "phases": [
            {"name": "warmup", "first_epoch": 0, "last_epoch": 0},
            {"name": "main", "first_epoch": 1, "last_epoch": 2},
        ],
        "epochs": [
            {"epoch": e, "phase": "main" if e else "warmup", "loss": 3.0 - e, "val_loss": None} for e in range(3)
        ],
    }
    os.makedirs(tmp_path / "model" / "Format-Serving" / "assets.extra")
    (tmp_path / "model" / "Format-Serving" / HISTORY_ASSET).write_text(json.dumps(history))
    last_blessed = _artifact(standard_artifacts.Model, tmp_path / "last", 7)
    _save(FixedRanking(BAD), tmp_path / "last" / "Format-Serving")

    result, blessing = _run_executor(profile, root, tmp_path, {"model": [model], "baseline_model": [last_blessed]})
    assert result["baseline"]["model_id"] == 7 and result["baseline"]["uri"] == str(
        tmp_path / "last" / "Format-Serving"
    )
    assert result["held_out_split"] == "eval" and result["blessing"]["blessed"] is True
    plots = result["plots"]
    assert plots == {
        "recall_at_k": str(tmp_path / "evaluation" / executor.RECALL_PLOT),
        "loss_by_phase": str(tmp_path / "evaluation" / executor.LOSS_PLOT),
        "skipped": {},
    }
    for path in (plots["recall_at_k"], plots["loss_by_phase"]):
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # what LatestBlessedModelStrategy and the Pusher read
    assert blessing.get_int_custom_property("blessed") == 1
    assert blessing.get_int_custom_property("current_model_id") == 11
    assert blessing.get_int_custom_property("baseline_model_id") == 7
    assert os.path.isfile(tmp_path / "blessing" / "BLESSED")


def test_executor_without_history_skips_the_loss_plot(world, tmp_path):
    profile, models, _, root = world
    model = _artifact(standard_artifacts.Model, tmp_path / "model", 3)
    _save(FixedRanking(GOOD), tmp_path / "model" / "Format-Serving")
    result, blessing = _run_executor(profile, root, tmp_path, {"model": [model]})
    assert result["baseline"] is None and result["plots"]["loss_by_phase"] is None
    assert "no assets.extra/history.json in" in result["plots"]["skipped"]["loss_by_phase"]
    assert os.path.isfile(result["plots"]["recall_at_k"])
    assert not os.path.exists(tmp_path / "evaluation" / executor.LOSS_PLOT)
    assert blessing.get_int_custom_property("current_model_id") == 3
    assert not blessing.has_custom_property("baseline_model_id")


def test_seen_items_are_excluded_below_the_served_top_k(world):
    # BAD = [d, a, b, c] is served 2 deep; u1 saw a, b and u2 saw a in training. Ranked past the served
    # depth, u1 gets [d, c] (hits c), u2 [d, b] (hits b), u4 [d, a] (hits d): nothing falls short.
    result = _evaluate(world, "bad", exclude_seen=True)
    assert result["models"]["twotower"]["recall@2"] == pytest.approx(1.0)
    assert result["recall_curve"]["twotower"] == pytest.approx([1 / 3, 1.0])
