"""Custom TFX components of twotower, one folder each."""
