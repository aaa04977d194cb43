"""RetrievalEvaluator: Recall@K of the exported model vs a popularity baseline; blessing."""
