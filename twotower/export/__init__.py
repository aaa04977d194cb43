"""Build-time work, done once after fitting: everything a trained model is packaged with.

- ``package``: fit (``trainer.train.fit``), then package; ``train_and_export`` is what ``run_fn`` calls;
- ``signatures``: the SavedModel's ``serving_default``, ``query_embedding``, ``candidate_embedding``;
- ``vocabularies``: ``vocabularies.json`` and the vocabulary files;
- ``index``, ``scann_index``, ``scann_tune``, ``scann_savedmodel``: the retrieval index and its tuning;
- ``onnx_export``, ``onnx_convert``: the ONNX towers;
- ``assets``: where each of these sits in the model directory (no TensorFlow).

Layer: above trainer; may import the trainer and everything below it, never serving.
"""
