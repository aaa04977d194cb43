"""Data sources for twotower: loaders and the synthetic H&M-format generator."""
