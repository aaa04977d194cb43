"""History inputs at serving: filled from the exported histories when absent, used as sent, checked (400s)."""

import numpy as np
import pytest

from tests.serving.conftest import MODEL, FakeIndex
from twotower.export.histories import UserHistories, load_histories, pack_histories
from twotower.serving.histories import HistoryInputs, merge_history

PREDICT = f"/v1/models/{MODEL}:predict"


def _store():
    arrays = pack_histories([b"u2", b"u1"], [[b"b", b"a"], [b"c"]], [[1.0, 3.0], [2.0]])
    return UserHistories("h", "h_age_days", 50, 0, **arrays)


def test_pack_and_lookup_by_hand():
    store = _store()
    assert store.users.tolist() == [b"u1", b"u2"] and store.offsets.tolist() == [0, 1, 3]
    assert store.lookup([b"u2", b"nobody", b"u1"]) == ([[b"b", b"a"], [], [b"c"]], [[1.0, 3.0], [], [2.0]])


def test_fill_only_rows_without_a_history_and_pad_to_one_width():
    inputs = HistoryInputs("user", {"h": "h_age_days"}, {"h": _store()})
    columns = {
        "user": [b"u2", b"u1", b"u9", b"u1"],
        "h": [None, [b"x"], None, []],
        "h_age_days": [None, None, None, []],
    }
    out = inputs.fill(columns)
    assert out["h"] == [[b"b", b"a"], [b"x", b""], [b"", b""], [b"", b""]]  # stored, as sent, unknown user, empty
    ages = np.array(out["h_age_days"], dtype=float)
    np.testing.assert_array_equal(ages[0], [1.0, 3.0])
    assert np.isnan(ages[1:]).all()  # sent without ages: unknown; none: padding
    assert inputs.optional == {"h", "h_age_days"}


def test_merge_history_replaces_and_adds_items_by_their_served_score():
    index = FakeIndex(items=5)
    ids = np.array([[b"item-1", b"item-2"]], dtype=object)
    names = np.array([[b"name 1", b"name 2"]], dtype=object)
    scores = np.array([[0.5, 0.4]], np.float32)
    out = {"history_item_ids": np.array([[b"item-4", b"item-2", b""]]), "history_scores": np.array([[0.45, 0.6, -1e9]])}
    merged_ids, merged_names, merged_scores = merge_history(ids, names, scores, out, index, k=2)
    assert merged_ids.tolist() == [[b"item-2", b"item-1"]] and merged_names.tolist() == [[b"name 2", b"name 1"]]
    np.testing.assert_allclose(merged_scores, [[0.6, 0.5]])
    merged_ids, merged_names, _ = merge_history(ids, names, scores, out, index, k=3)
    assert merged_ids.tolist() == [[b"item-2", b"item-1", b"item-4"]] and merged_names[0][2] == b"name 4"


@pytest.mark.slow
def test_server_fills_a_known_users_history_and_takes_one_sent_instead(client, customers, serving_dir):
    store = load_histories(f"{serving_dir}/{MODEL}/1")["recent_items"]
    known = next(c for c in customers if store.lookup([c["customer_id"].encode()])[0][0])
    ids, ages = store.lookup([known["customer_id"].encode()])
    explicit = {**known, "recent_items": [i.decode() for i in ids[0]], "recent_items_age_days": ages[0]}
    filled = client.post(PREDICT, {"instances": [known]})[1]["predictions"][0]
    sent = client.post(PREDICT, {"instances": [explicit]})[1]["predictions"][0]
    assert filled["item_ids"] == sent["item_ids"]  # absent: the stored history, exactly as if sent
    np.testing.assert_allclose(filled["scores"], sent["scores"], atol=1e-5)
    none = client.post(PREDICT, {"instances": [{**known, "recent_items": []}]})[1]["predictions"][0]
    assert none["item_ids"] != filled["item_ids"]  # an empty list: no history, not the stored one
    other = {**known, "recent_items": [ids[0][-1].decode(), "no-such-item"]}  # ragged vs the next row: padded
    status, body = client.post(PREDICT, {"instances": [other, known]})
    assert status == 200 and body["predictions"][1]["item_ids"] == filled["item_ids"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "history, message",
    [
        ("0108775015", "instances[0].recent_items: expected a list of shape [?], got string"),
        ([1, 2], "instances[0].recent_items[0]: 1 (number) is not of expected type: string"),
        ([["a"]], 'instances[0].recent_items[0]: ["a"] (list) is not of expected type: string'),
    ],
)
def test_a_history_that_is_not_a_list_of_strings_is_a_400_naming_the_field(client, customers, history, message):
    status, body = client.post(PREDICT, {"instances": [{**customers[0], "recent_items": history}]})
    assert status == 400 and message in body["error"]
