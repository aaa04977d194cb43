"""Vocabularies exported with a model (``assets.extra/vocabularies.json``) and lookups for serving and clients.

Layer: above transform; reads files only (``export.vocabularies`` writes them).
"""
