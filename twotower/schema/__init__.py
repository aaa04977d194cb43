"""Data contracts: curated TFDV schemas (``<profile>.pbtxt``), checks of statistics against them, drift reports,
schema drafts, and ``twotower validate`` (ingestion + statistics + checks in one Beam job).

Layer: beside ingest (schema may use ingest: ``validate`` runs it); may import config, data and ingest.
"""
