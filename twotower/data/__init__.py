"""Data sources: the synthetic H&M-format and retail generators and the MovieLens-100K loader.

Layer: just above config; may import config and errors only.
"""
