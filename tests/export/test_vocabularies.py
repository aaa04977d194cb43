"""vocabularies.json and the vocabulary files exported next to a model, and the lookups over them."""

import json
import os

import pytest
import tensorflow as tf
import tensorflow_transform as tft

from tests.transform.test_feature_kinds import analyze_and_transform, feature_profile
from twotower.export.vocabularies import export_vocabularies
from twotower.vocab.vocabularies import load_vocabularies


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    profile = feature_profile()
    out = str(tmp_path_factory.mktemp("tft_out"))
    analyze_and_transform(profile, str(tmp_path_factory.mktemp("tft")), out)
    model_dir = str(tmp_path_factory.mktemp("model"))
    path = export_vocabularies(profile, tft.TFTransformOutput(out), model_dir)
    return profile, tft.TFTransformOutput(out), model_dir, path


def test_json_describes_every_model_feature_and_the_ids(exported):
    profile, _, model_dir, path = exported
    assert path == os.path.join(model_dir, "assets.extra", "vocabularies.json")
    with open(path, encoding="utf-8") as f:
        entries = json.load(f)["features"]
    assert set(entries) == {"user_id", "item_id"} | {f.name for f in profile.model_features}
    assert entries["user_id"] == {
        "kind": "id",
        "source": "user",
        "tower": "query",
        "columns": ["customer_id"],
        "output": {"dtype": "int64", "shape": []},
        "min_frequency": 2,
        "vocabulary": "vocab/user_id",
        "size": 20,  # u0..u19; the 10 users seen once share the OOV bucket, index 20
        "oov_buckets": 1,
        "table_size": 21,
        "embedding_dim": profile.trainer.embedding_dim,
    }
    club, desc, age = entries["club"], entries["desc"], entries["age"]
    assert (club["size"], club["table_size"], club["embedding_dim"], club["min_frequency"]) == (2, 3, 8, 5)
    assert desc["output"] == {"dtype": "int64", "shape": [16]} and desc["padding"] == -1 and desc["separator"] == ""
    assert (age["transform"], age["buckets"], age["table_size"], age["embedding_dim"]) == ("quantiles", 4, 5, 8)
    assert "vocabulary" not in age
    cross = entries["type_x_colour"]
    assert (cross["cross"], cross["columns"], cross["table_size"]) == (["type", "colour"], ["type", "colour"], 7)
    assert entries["when"]["columns"] == ["ts"] and entries["when"]["output"] == {"dtype": "float32", "shape": [6]}
    assert "table_size" not in entries["when"] and "embedding_dim" not in entries["when"]
    assert (entries["vec"]["dim"], entries["vec"]["embedding_dim"], entries["vec"]["tower"]) == (3, 8, "candidate")


def test_vocabulary_files_are_copied_and_load_back(exported):
    _, output, model_dir, _ = exported
    vocab = load_vocabularies(model_dir)
    for name in ("user_id", "item_id", "club", "desc", "genres"):
        assert vocab.values(name) == [v.decode() for v in output.vocabulary_by_name(name)], name
    assert sorted(vocab.values("club")) == ["ACTIVE", "LEFT CLUB"]


def test_index_agrees_with_the_transform_graph(exported):
    _, output, model_dir, _ = exported
    vocab = load_vocabularies(model_dir)
    layer = output.transform_features_layer()
    clubs = ["ACTIVE", "LEFT CLUB", "RARE", "never seen"]
    got = layer({"club": tf.constant([[c] for c in clubs])})["club"].numpy().tolist()
    assert [vocab.index("club", c) for c in clubs] == got == [got[0], got[1], 2, 2]


def test_missing_export_and_features_without_vocabulary_are_named(exported, tmp_path):
    _, _, model_dir, _ = exported
    with pytest.raises(FileNotFoundError, match="vocabularies.json: not found"):
        load_vocabularies(str(tmp_path))
    with pytest.raises(KeyError, match="feature 'age' has no vocabulary; these do: .*'club'"):
        load_vocabularies(model_dir).values("age")
