"""evaluate() and the RetrievalEvaluator executor on tiny real data: TFRecords and SavedModels made here.

The "models" are real SavedModels whose ``serving_default`` takes ``customer_id`` and answers a fixed
ranking, so every metric below is worked out by hand. Data (hm profile column names; @day of the interaction):

  known (train): u1 -> a@1, u1 -> b@8, u2 -> a@2, u3 -> c@10
  held out (eval): u1 -> c@11, u2 -> b@12, u4 -> d@11    u4 never trained: the cold-start slice
  catalog: a, b, c, d

  GOOD ranks [c, b, a, d]: u1 hit at 1, u2 at 2, u4 at 4 -> recall@1 = 1/3, recall@2 = 2/3
  BAD  ranks [d, a, b, c]: u1 hit at 4, u2 at 3, u4 at 1 -> recall@1 = 1/3, recall@2 = 1/3
  popularity [a, b, c]:    u2 hit at 2                   -> recall@1 = 0,   recall@2 = 1/3
  recent_popularity, 7 days up to day 10 (t > day 3): b@8, c@10 tie at 1 (all-time 1 each, then id); then a, d
                    [b, c, a, d]: u1 hit at 2, u2 at 1   -> recall@1 = 1/3, recall@2 = 2/3   (the best baseline)
  repurchase: u1 [b@8, a@1], u2 [a, then recent b], u4 recent [b, c]
                                 u2 hit at 2             -> recall@1 = 0,   recall@2 = 1/3
  item_knn: cos(a, b) = 1 / sqrt(2 x 1); u1 {a, b} -> [a, b] (tie, by id), u2 {a} -> [b, then popularity a],
            u4 -> popularity [a, b]:  u2 hit at 1       -> recall@1 = 1/3, recall@2 = 1/3
  ease (l2 300): u1 {a, b} -> a 1/301, b 1/302 -> [a, b]; u2 {a} -> b 1/302 -> [b, a]; u4 -> popularity
                                 u2 hit at 1             -> recall@1 = 1/3, recall@2 = 1/3
"""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from twotower.components.evaluator import executor
from twotower.config import load_profile
from twotower.evaluation import evaluate as ev
from twotower.evaluation.held_out import check_comparable, read_columns, read_held_out
from twotower.export.assets import HISTORY_ASSET

DAY = 86_400
GOOD = [b"c", b"b", b"a", b"d"]
BAD = [b"d", b"a", b"b", b"c"]
STALE = [b"z", b"c", b"b", b"a"]  # z is not in the catalogue any more: dropped, leaving GOOD's order
TRAIN = [(b"u1", b"a", 1), (b"u1", b"b", 8), (b"u2", b"a", 2), (b"u3", b"c", 10)]
HELD_OUT = [(b"u1", b"c", 11), (b"u2", b"b", 12), (b"u4", b"d", 11)]
CATALOG = [b"a", b"b", b"c", b"d"]
BASELINES = ["popularity", "recent_popularity", "repurchase", "item_knn", "ease"]


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


def _feature(value) -> tf.train.Feature:
    """bytes / int -> a one-value feature; a list of bytes or floats -> a list feature."""
    if isinstance(value, bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    if isinstance(value, int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    if all(isinstance(v, bytes) for v in value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=value))
    return tf.train.Feature(float_list=tf.train.FloatList(value=value))


def _write(path, rows) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for row in rows:
            features = tf.train.Features(feature={k: _feature(v) for k, v in row.items()})
            writer.write(tf.train.Example(features=features).SerializeToString())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    profile = load_profile("hm")
    user, item, time = profile.data.user_id, profile.data.item_id, profile.data.timestamp
    evaluator = dataclasses.replace(
        profile.evaluator, ks=(1, 2), blessing_k=2, min_recall=0.1, min_lift_over_popularity=1.0
    )
    profile = dataclasses.replace(profile, evaluator=evaluator)
    examples = root / "examples"
    _write(examples / "Split-train" / "data.gz", [{user: u, item: i, time: d * DAY} for u, i, d in TRAIN])
    _write(examples / "Split-eval" / "data.gz", [{user: u, item: i, time: d * DAY} for u, i, d in HELD_OUT])
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


def test_first_run_scores_every_baseline_on_the_same_users(world):
    result = _evaluate(world, "good")
    assert result["baseline"] is None
    assert list(result["models"]) == ["twotower", *BASELINES]
    expected = {
        "twotower": (1 / 3, 2 / 3),
        "popularity": (0, 1 / 3),
        "recent_popularity": (1 / 3, 2 / 3),
        "repurchase": (0, 1 / 3),
        "item_knn": (1 / 3, 1 / 3),
        "ease": (1 / 3, 1 / 3),
    }
    for name, (at_1, at_2) in expected.items():
        table = result["models"][name]
        assert (table["recall@1"], table["recall@2"]) == pytest.approx((at_1, at_2)), name
    # recall curves, K = 1..max(ks), one per model
    assert result["recall_curve"]["twotower"] == pytest.approx([1 / 3, 2 / 3])
    assert result["recall_curve"]["recent_popularity"] == pytest.approx([1 / 3, 2 / 3])
    assert set(result["recall_curve"]) == set(result["models"])
    assert result["baselines"] == {"computed": BASELINES, "skipped": {}, "window_days": 7, "knn_neighbours": 100}
    # u4 has no known interaction: the cold-start slice, where nothing finds d at rank <= 2
    assert result["cold_start"]["users"] == 1 and set(result["cold_start"]["models"]) == set(result["models"])
    assert all(t["recall@2"] == 0 for t in result["cold_start"]["models"].values())
    assert result["cold_start"]["intervals"]["twotower"]["recall@2"] == [0.0, 0.0]


def test_every_metric_of_every_model_has_a_reproducible_interval_around_it(world):
    result = _evaluate(world, "good")
    intervals = result["intervals"]
    assert set(intervals) == set(result["models"])
    assert result["bootstrap"] == {"samples": 1000, "seed": 0, "users": 3, "confidence": 0.95}
    for name, table in result["models"].items():
        # coverage is not a mean over users: a resample of users would only shrink it, so it has no interval
        assert list(intervals[name]) == ["recall@1", "recall@2", "ndcg@10", "map@12"]
        for metric, (lo, hi) in intervals[name].items():
            assert 0 <= lo <= table[metric] <= hi <= 1, (name, metric)
    # twotower's recall@2 per user is [1, 1, 0]: a resample drawing only u4 (3 draws of 1/3: 1/27 = 3.7%) gives
    # 0, one without u4 (8/27) gives 1, so the 2.5th and 97.5th percentiles are 0 and 1
    assert intervals["twotower"]["recall@2"] == [0.0, 1.0]
    assert _evaluate(world, "good")["intervals"] == intervals  # seeded: the same every run


def test_blessing_against_the_best_baseline_reports_the_paired_difference(world):
    # GOOD ties the best baseline, recent_popularity, on every user at recall@2 ([1, 1, 0] both): a difference
    # of 0 with the interval [0, 0]; a tie is not a loss, so it is blessed ...
    blessing = _evaluate(world, "good")["blessing"]
    assert blessing["blessed"] is True and blessing["last_blessed_recall"] is None
    assert blessing["best_baseline"] == "recent_popularity" and blessing["against"] == BASELINES
    assert blessing["difference"] == {"value": 0.0, "interval": [0.0, 0.0]}
    assert blessing["reason"] == (
        "recall 0.6667 >= 0.1000 and >= 1 x popularity 0.3333; recall 0.6667 >= 1 x best baseline "
        "recent_popularity 0.6667 (paired difference +0.0000, 95% CI [+0.0000, +0.0000]); "
        "no blessed model yet: no regression check"
    )
    # ... unless the difference must be significant
    strict = _evaluate(world, "good", require_significance=True)["blessing"]
    assert strict["blessed"] is False and "whose interval is not above 0 (require_significance)" in strict["reason"]
    # BAD (1/3) is below recent_popularity (2/3): per user [0, 0, 1] - [1, 1, 0]
    bad = _evaluate(world, "bad")["blessing"]
    assert bad["blessed"] is False and bad["difference"]["value"] == pytest.approx(-1 / 3)
    assert "; recall 0.3333 < 1 x best baseline recent_popularity 0.6667 (paired difference -0.3333" in bad["reason"]
    # against popularity alone BAD passes (1/3 >= 1/3)
    assert _evaluate(world, "bad", bless_against=("popularity",))["blessing"]["blessed"] is True


def test_model_worse_than_the_last_blessed_is_not_blessed(world):
    # BAD passes the thresholds and popularity (1/3 >= 0.1, 1/3 >= 1 x 1/3) but is below GOOD's 2/3
    result = _evaluate(world, "bad", baseline="good", bless_against=("popularity",))
    baseline = result["baseline"]
    assert baseline["uri"] == world[1]["good"] and "error" not in baseline
    assert baseline["metrics"]["recall@2"] == pytest.approx(2 / 3)
    assert baseline["intervals"]["recall@2"] == [0.0, 1.0]
    assert baseline["cold_start"]["recall@2"] == 0.0  # u4 (cold) has d at rank 4 in GOOD
    assert baseline["items_not_in_catalogue"] == 0
    assert result["recall_curve"]["last_blessed"] == pytest.approx([1 / 3, 2 / 3])
    assert "last_blessed" not in result["models"] and "last_blessed" not in result["intervals"]
    assert result["cold_start"]["users"] == 1 and "last_blessed" not in result["cold_start"]["models"]
    blessing = result["blessing"]
    assert blessing["blessed"] is False and blessing["last_blessed_recall"] == pytest.approx(2 / 3)
    assert blessing["reason"].startswith("recall 0.3333 < 1 x last blessed model 0.6667 (max_regression 0); ")
    # allowing a 60% loss: 1/3 >= 0.4 x 2/3 = 0.2667 -> blessed, and the reason names the comparison
    relaxed = _evaluate(world, "bad", baseline="good", max_regression=0.6, bless_against=("popularity",))["blessing"]
    assert relaxed["blessed"] is True and "and >= 0.4 x last blessed model 0.6667; " in relaxed["reason"]


def test_better_model_than_the_last_blessed_is_blessed(world):
    blessing = _evaluate(world, "good", baseline="bad")["blessing"]
    assert blessing["blessed"] is True and blessing["last_blessed_recall"] == pytest.approx(1 / 3)
    assert "and >= 1 x last blessed model 0.3333; " in blessing["reason"]


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
    result = _evaluate(world, "bad", baseline=baseline, bless_against=("popularity",))
    assert result["baseline"]["error"].startswith(error) and "metrics" not in result["baseline"]
    assert "last_blessed" not in result["recall_curve"]
    # the thresholds and popularity alone decide: BAD passes them
    blessing = result["blessing"]
    assert blessing["blessed"] is True and blessing["last_blessed_recall"] is None
    assert f"; last blessed model not compared ({error}" in blessing["reason"]


def test_check_comparable_names_the_input():
    string, number = tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.float32)
    check_comparable({"customer_id": string}, {"customer_id": string, "age": number})  # a subset is fine
    with pytest.raises(ValueError, match="takes 'age' as float32, the current model as string"):
        check_comparable({"age": number}, {"age": string})
    with pytest.raises(ValueError, match="takes 'recent_items' of shape"):
        check_comparable({"recent_items": string}, {"recent_items": tf.TensorSpec([None, None], tf.string)})


def _artifact(cls, uri, artifact_id=None):
    artifact = cls()
    artifact.uri = str(uri)
    if artifact_id is not None:
        artifact.id = artifact_id
    return artifact


def _run_executor(profile, root, tmp_path, inputs, splits=("train", "eval", "catalog")):
    """Runs the evaluator executor on ``inputs`` (model, baseline) and ``root``'s examples; returns (metrics, blessing)."""
    examples = _artifact(standard_artifacts.Examples, root / "examples")
    examples.split_names = artifact_utils.encode_split_names(list(splits))
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
    # every baseline leaves out the same seen items (u1 {a, b}, u2 {a}): each then finds u1's c and u2's b
    # within 2 and misses u4's d -> 2/3 (popularity [a, b, c] -> u1 [c], u2 [b, c]; recent [b, c, a, d] ->
    # u1 [c, d], u2 [b, c]; repurchase = recent; item_knn: u1's neighbours are all seen -> popularity's c,
    # u2 {a} -> b; ease: u1 c, d score 0 and a, b are excluded -> [c, d], u2 b 1/302)
    for name in BASELINES:
        assert result["models"][name]["recall@2"] == pytest.approx(2 / 3), name


def test_executor_holds_out_test_and_knows_train_and_eval(world, tmp_path):
    # With a test split the known interactions are train + eval: u4's eval purchase d@11 is its history, so
    # repurchase ranks d first for u4 (test: d@14) and b (eval, day 12) first for u2 (test: b@15).
    profile, models, _, root = world
    user, item, time = profile.data.user_id, profile.data.item_id, profile.data.timestamp
    for split, rows in (("train", TRAIN), ("eval", HELD_OUT), ("test", [(b"u4", b"d", 14), (b"u2", b"b", 15)])):
        _write(
            tmp_path / "examples" / f"Split-{split}" / "data.gz",
            [{user: u, item: i, time: d * DAY} for u, i, d in rows],
        )
    _write(tmp_path / "examples" / "Split-catalog" / "data.gz", [{item: i} for i in CATALOG])
    model = _artifact(standard_artifacts.Model, tmp_path / "model", 5)
    _save(FixedRanking(GOOD), tmp_path / "model" / "Format-Serving")
    result, _ = _run_executor(profile, tmp_path, tmp_path, {"model": [model]}, ["train", "eval", "test", "catalog"])
    assert result["held_out_split"] == "test" and result["eval_users"] == 2
    assert result["train_interactions"] == len(TRAIN) + len(HELD_OUT) and result["cold_start"]["users"] == 0
    assert result["models"]["repurchase"]["recall@1"] == 1.0


class HistoryRanking(tf.Module):
    """A SavedModel whose queries are lists: it ranks each user's ``recent_items`` by 1 / (1 + age in days).

    ``query_embedding`` takes ``customer_id`` [batch], ``recent_items`` [batch, None] string and
    ``recent_ages`` [batch, None] float32; item embeddings are one-hot, so a query's score for item j is the sum
    of 1 / (1 + age) over its history entries equal to j (padding b'' matches no item).
    """

    def __init__(self):
        super().__init__()
        self.item_ids = tf.Variable(CATALOG)
        self.item_embeddings = tf.Variable(tf.eye(len(CATALOG)))
        signature = {
            "customer_id": tf.TensorSpec([None], tf.string, name="customer_id"),
            "recent_items": tf.TensorSpec([None, None], tf.string, name="recent_items"),
            "recent_ages": tf.TensorSpec([None, None], tf.float32, name="recent_ages"),
        }
        self.serve = tf.function(self._serve, input_signature=[signature])
        self.query = tf.function(self._query, input_signature=[signature])

    def _query(self, features):
        match = tf.cast(tf.equal(features["recent_items"][:, :, None], self.item_ids[None, None, :]), tf.float32)
        weights = 1.0 / (1.0 + features["recent_ages"])  # [batch, width]
        return {"embedding": tf.reduce_sum(match * weights[:, :, None], axis=1)}  # [batch, items]

    def _serve(self, features):
        scores = tf.matmul(self._query(features)["embedding"], self.item_embeddings, transpose_b=True)
        top = tf.math.top_k(scores, k=2)
        return {"item_ids": tf.gather(self.item_ids, top.indices), "scores": top.values}


def test_list_inputs_are_read_padded_and_taken_from_each_users_earliest_row(world, tmp_path):
    profile, _, splits, _ = world
    user, item, time = profile.data.user_id, profile.data.item_id, profile.data.timestamp
    # u1's day-12 row comes first in the file and its history already holds d (bought on day 11, held out);
    # the query must be the day-11 row, whose history is known items only.
    rows = [
        (b"u1", b"c", 12, [b"d", b"b", b"a"], [1.0, 4.0, 11.0]),
        (b"u1", b"d", 11, [b"b", b"a"], [3.0, 10.0]),
        (b"u2", b"b", 12, [b"a"], [10.0]),
        (b"u4", b"d", 11, [], []),
    ]
    held_out = tmp_path / "Split-eval" / "data.gz"
    examples = []
    for u, i, d, recent, ages in rows:
        history = {"recent_items": recent, "recent_ages": ages} if recent else {}  # u4: the features are absent
        examples.append({user: u, item: i, time: d * DAY, **history})
    _write(held_out, examples)
    path = _save(HistoryRanking(), tmp_path / "history_model")
    inputs = ev.input_specs(tf.saved_model.load(path).signatures["serving_default"])
    assert inputs["recent_items"].shape.as_list() == [None, None]
    data = read_held_out(profile, inputs, splits["train"], [str(held_out)], splits["catalog"])
    # width 3 (the longest list in the split), b"" / 0.0 after each list; u1 from its day-11 row
    assert data.users == [b"u1", b"u2", b"u4"]
    assert data.queries["recent_items"].tolist() == [[b"b", b"a", b""], [b"a", b"", b""], [b"", b"", b""]]
    assert data.queries["recent_ages"].dtype == np.float32
    np.testing.assert_array_equal(data.queries["recent_ages"], [[3, 10, 0], [10, 0, 0], [0, 0, 0]])
    assert data.truth == [{b"c", b"d"}, {b"b"}, {b"d"}]
    assert data.seen == {}  # evaluator.exclude_seen is off
    # with it on: the seen items of the held-out users only; u3, known but not held out, is left out
    excluding = dataclasses.replace(profile, evaluator=dataclasses.replace(profile.evaluator, exclude_seen=True))
    seen = read_held_out(excluding, inputs, splits["train"], [str(held_out)], splits["catalog"]).seen
    assert seen == {b"u1": {b"a", b"b"}, b"u2": {b"a"}}
    # the model: u1 [b (1/4), a (1/11), c, d], u2 [a, b, c, d], u4 [a, b, c, d] (ties: lower index first)
    # recall@2: u1 0 of {c, d}, u2 1 (b), u4 0 -> 1/3; had u1's day-12 row been used, [d, b] would hit d
    assert ev.model_lists(tf.saved_model.load(path), data, 2, check_served=True) == [
        [b"b", b"a"],
        [b"a", b"b"],
        [b"a", b"b"],
    ]
    result = ev.evaluate(profile, path, splits["train"], [str(held_out)], splits["catalog"])
    assert result["models"]["twotower"]["recall@2"] == pytest.approx(1 / 3)


def test_read_columns_keeps_one_object_per_distinct_id(tmp_path):
    # TensorFlow hands each row its own bytes object; 31M known rows of 1.4M users must not keep 31M copies
    rows = [{"user": f"u{i % 3}".encode(), "t": i} for i in range(10)]
    _write(tmp_path / "a.gz", rows[:6])
    _write(tmp_path / "b.gz", rows[6:])  # the pool spans files and batches
    spec = {"user": tf.io.VarLenFeature(tf.string), "t": tf.io.VarLenFeature(tf.int64)}
    columns = read_columns([str(tmp_path / "a.gz"), str(tmp_path / "b.gz")], spec)
    users = columns["user"]
    assert sorted(users.tolist()) == sorted(r["user"] for r in rows)
    assert users.dtype == object and len({id(u) for u in users}) == 3
    assert sorted(columns["t"].tolist()) == list(range(10))
