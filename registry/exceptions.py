"""Exceptions of the registry.

RegistryError
├── ModelNotFound     -- no model of that name was ever registered
├── InstanceNotFound  -- the instance is unknown or its liveness expired
└── InvalidSchema     -- the registration's descriptor set does not hold its message types
"""


class RegistryError(Exception):
    """Base class of every registry error."""


class ModelNotFound(RegistryError):
    """No model of that name was ever registered."""


class InstanceNotFound(RegistryError):
    """The instance is unknown or its liveness window passed without a heartbeat."""


class InvalidSchema(RegistryError):
    """The registration's descriptor set is unreadable or lacks its message types."""
