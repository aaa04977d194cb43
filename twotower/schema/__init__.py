"""Data contracts: curated TFDV schemas (``<profile>.pbtxt``), checks against them, and drift reports."""
