"""Re-drive: move a model's dead-lettered tasks back to its queues (see ``redrive.py``)."""
