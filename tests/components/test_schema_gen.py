"""ContractSchemaGen, run through its real executor: the contract file plus the derived history columns."""

import dataclasses
import os

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from twotower.components.schema_gen.component import ContractSchemaGen
from twotower.components.schema_gen.executor import Executor
from twotower.config import Feature, load_profile


def test_executor_writes_the_contract_with_history_columns(tmp_path):
    profile = load_profile("hm")
    profile = dataclasses.replace(profile, features=profile.features + (Feature("recent", "interaction", "history"),))
    component = ContractSchemaGen(profile)
    assert component.exec_properties["schema_file"] == profile.contract.schema
    schema = standard_artifacts.Schema()
    schema.uri = str(tmp_path)
    Executor().Do({}, {"schema": [schema]}, dict(component.exec_properties))
    written = io_utils.parse_pbtxt_file(os.path.join(tmp_path, "schema.pbtxt"), schema_pb2.Schema())
    names = [f.name for f in written.feature]
    assert names[-2:] == ["recent", "recent_age_days"] and "customer_id" in names
