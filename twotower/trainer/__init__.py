"""The two-tower trainer: input pipeline, towers, training loop and export."""
