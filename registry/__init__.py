"""Conveyor's model registry: which models exist, their schemas, and which are alive."""

from registry.config import Settings
from registry.main import create_app

__all__ = ["Settings", "create_app"]
