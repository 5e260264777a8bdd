"""Conveyor's shared core: what the gateway, the registry and the workers all speak.

It sits below ``api/``, ``registry/`` and ``worker_base/`` and imports none of them (see
docs/architecture.md for the layers).
"""
