"""Ingestion: the profile's CSV files -> checked, joined, time-split tf.Examples, quarantine and report.

Used by JoinExampleGen (``components/example_gen``), ``twotower validate`` (``schema.validate``),
``trainer.prepare`` and the local runner's up-front checks. May import config, data and schema
(never a module that imports it back); nothing here imports the trainer, export or serving.

- ``csv_source``: files cut into byte-range chunks that keep line numbers; timestamps.
- ``rows``: one line -> a checked record or the reason it is quarantined.
- ``encode``: records -> tf.Example bytes in protobuf's wire format.
- ``tables``: the users and items files, keyed by id; duplicate ids; up-front input checks.
- ``dedup``: exact duplicate lines of the interactions file.
- ``splits``: train / eval / test boundaries, by date or per user.
- ``graph``: the Beam graph that ties them together (``build_ingestion``).
- ``report``, ``write``: the accounting report and its checks; writing splits and quarantine.
"""
