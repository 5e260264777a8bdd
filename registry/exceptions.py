"""Exceptions of the registry; only ``registry.errors`` turns them into HTTP answers.

RegistryError (a conveyor.errors.ConveyorError)
├── ModelNotFound     -- no model of that name was ever registered          (404)
├── InstanceNotFound  -- the instance is unknown or its liveness expired    (404)
└── InvalidSchema     -- the registration's descriptor set lacks its types  (422)
"""

from conveyor.errors import ConveyorError


class RegistryError(ConveyorError):
    """Base class of every registry error."""


class ModelNotFound(RegistryError):
    """No model of that name was ever registered."""

    code = "model_not_found"


class InstanceNotFound(RegistryError):
    """The instance is unknown or its liveness window passed without a heartbeat."""

    code = "instance_not_found"


class InvalidSchema(RegistryError):
    """The registration's descriptor set is unreadable or lacks its message types."""

    code = "invalid_schema"
