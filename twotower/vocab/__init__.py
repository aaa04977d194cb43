"""Vocabularies exported with a model (``assets.extra/vocabularies.json``) and lookups for serving and inspection."""
