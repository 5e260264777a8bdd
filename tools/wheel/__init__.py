"""Conveyor's wheels: the builder, and venvs with them installed."""
