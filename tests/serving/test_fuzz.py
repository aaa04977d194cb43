"""Property-based fuzzing of predict bodies over HTTP: whatever a client sends, the answer is never a 5xx."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.conftest import MODEL

pytestmark = pytest.mark.slow

PREDICT = f"/v1/models/{MODEL}:predict"
INPUTS = ["customer_id", "age", "club_member_status", "fashion_news_frequency"]
SIGNATURES = ["serving_default", "query_embedding", "candidate_embedding", "scann", "nope", ""]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
# values a client might put in a feature: right or wrong type, nested, b64 objects
feature_values = scalars | st.lists(scalars, max_size=3) | st.fixed_dictionaries({"b64": st.text(max_size=12)})
instances = st.dictionaries(st.sampled_from(INPUTS) | st.text(max_size=6), feature_values, max_size=6)
near_valid = st.fixed_dictionaries(
    {},
    optional={
        "signature_name": st.sampled_from(SIGNATURES) | json_values,
        "instances": st.lists(instances | json_values, max_size=4) | json_values,
        "inputs": st.dictionaries(st.sampled_from(INPUTS), st.lists(feature_values, max_size=3) | json_values)
        | json_values,
    },
)


def _check(client, body: bytes) -> None:
    status, answer = client.raw("POST", PREDICT, body, {"Content-Type": "application/json"})
    assert status < 500, (status, body[:300], answer[:300])
    doc = json.loads(answer)
    if status == 200:
        assert "predictions" in doc or "outputs" in doc
    else:
        assert status in (400, 404, 413) and isinstance(doc["error"], str) and doc["error"]


@FUZZ
@given(doc=near_valid)
def test_near_valid_requests_never_5xx(client, doc):
    _check(client, json.dumps(doc).encode())


@FUZZ
@given(doc=json_values)
def test_any_json_document_never_5xx(client, doc):
    _check(client, json.dumps(doc).encode())


@FUZZ
@given(body=st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_never_5xx(client, body):
    _check(client, body)


BASE = {"customer_id": "c1", "age": 30.0, "club_member_status": "ACTIVE", "fashion_news_frequency": "NONE"}
perturbed = st.lists(
    st.fixed_dictionaries({}, optional={name: feature_values for name in INPUTS}).map(lambda changes: BASE | changes),
    min_size=1,
    max_size=3,
)


@FUZZ
@given(rows=perturbed, signature=st.sampled_from(SIGNATURES[:4]), columnar=st.booleans())
def test_valid_requests_with_fuzzed_values_never_5xx(client, rows, signature, columnar):
    doc = {"signature_name": signature}
    if columnar:
        doc["inputs"] = {name: [row[name] for row in rows] for name in rows[0]}
    else:
        doc["instances"] = rows
    _check(client, json.dumps(doc).encode())
