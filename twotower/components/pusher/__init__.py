"""Pusher: the stock Pusher, then TF Serving's ``models.config`` written next to the pushed models."""
