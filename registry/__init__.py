"""Conveyor's model registry: which models exist, their schemas, and which are alive."""

from registry.app import create_app
from registry.config import Settings

__all__ = ["Settings", "create_app"]
