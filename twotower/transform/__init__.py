"""Feature preprocessing with TensorFlow Transform (the Transform stage)."""
