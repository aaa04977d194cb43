"""ContractSchemaGen: the profile's contract schema, plus the columns ingestion derives (history features)."""
