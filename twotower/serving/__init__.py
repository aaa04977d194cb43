"""What runs in a server: the TF Serving REST API, batching, the model registry and reload, metrics, clients.

Layer: above export; it loads what export built (``export.assets``, ``export.scann_index``) and never
imports the trainer. Nothing below imports it.
"""
