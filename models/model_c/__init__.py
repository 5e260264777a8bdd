"""ModelC: a small word-level n-gram text generator that streams its words."""

from models.model_c.model import ModelC

__all__ = ["ModelC"]
