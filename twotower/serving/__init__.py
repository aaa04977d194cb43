"""Serving: loading pushed versions and asking them for recommendations."""
