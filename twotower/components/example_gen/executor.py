"""JoinExampleGen executor: runs the ingestion graph (``twotower.ingest``) and enforces the ingestion contract.

It writes each split as gzipped TFRecords straight from the ingest step (no
shuffle: TFX's stock WriteSplit reshuffles, which on the local runner holds every
example in memory), the quarantined rows and ``report.json`` to the quarantine
artifact, and then fails the run, after writing, if the accounting does not add
up, a file is over the quarantine limit, or a split is empty.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List

from google.protobuf import wrappers_pb2
from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from twotower.config import Profile, from_dict
from twotower.ingest import graph
from twotower.ingest.report import check_report, read_report
from twotower.ingest.splits import split_names
from twotower.ingest.write import write_outputs

QUARANTINE_KEY = "quarantine"


def pack_config(profile: Profile, ranges: Dict[str, Any], chunk_bytes: int) -> str:
    """Returns the JSON the component carries in ``custom_config``: profile, row ranges, chunk size."""
    return json.dumps({"profile": profile.to_dict(), "ranges": ranges, "chunk_bytes": chunk_bytes}, sort_keys=True)


def unpack_config(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    """Returns {'profile': Profile, 'ranges': {column: (min, max)}, 'chunk_bytes': int} from exec properties."""
    custom = example_gen_pb2.CustomConfig()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY], custom)
    packed = wrappers_pb2.StringValue()
    if not custom.custom_config.Unpack(packed):
        raise ValueError("JoinExampleGen: custom_config does not hold a JSON StringValue")
    raw = json.loads(packed.value)
    return {
        "profile": from_dict(raw["profile"], where="custom_config"),
        "ranges": {k: tuple(v) for k, v in raw["ranges"].items()},
        "chunk_bytes": int(raw["chunk_bytes"]),
    }


class Executor(base_beam_executor.BaseBeamExecutor):
    """Joins a profile's CSV files, splits them by time and quarantines bad rows (see module docstring)."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        """Writes the examples and quarantine artifacts; raises DataError when the data breaks the contract."""
        self._log_startup(input_dict, output_dict, exec_properties)
        config = unpack_config(exec_properties)
        profile = config["profile"]
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        quarantine = artifact_utils.get_single_instance(output_dict[QUARANTINE_KEY])
        names = split_names(profile)
        examples.split_names = artifact_utils.encode_split_names(names)
        split_dirs = {name: artifact_utils.get_split_uri([examples], name) for name in names}
        # the grouping by user's partition files (a history feature): under TFX's temp directory, which
        # Dataflow workers can read too; deleted once the pipeline has run
        scratch = os.path.join(self._get_tmp_dir(), "by_user") if self._context else None
        try:
            with self._make_beam_pipeline() as pipeline:
                ingestion = graph.build_ingestion(
                    pipeline,
                    exec_properties[standard_component_specs.INPUT_BASE_KEY],
                    profile,
                    config["ranges"],
                    config["chunk_bytes"],
                    scratch,
                )
                write_outputs(ingestion, split_dirs, quarantine.uri)
        finally:
            if scratch and fileio.exists(scratch):
                fileio.rmtree(scratch)
        report = read_report(quarantine.uri)
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples, "tfrecords_gzip")
        for key in ("rows_read", "rows_accepted", "rows_quarantined", "duplicates_removed"):
            quarantine.set_int_custom_property(key, report[key])
        check_report(report, profile, quarantine.uri)
