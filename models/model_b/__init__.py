"""ModelB: an iris classifier trained with scikit-learn."""

from models.model_b.model import ModelB

__all__ = ["ModelB"]
