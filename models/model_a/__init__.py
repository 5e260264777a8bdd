"""ModelA: the seed's echo model."""

from models.model_a.model import ModelA

__all__ = ["ModelA"]
