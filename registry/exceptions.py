"""Exceptions of the registry; only ``registry.errors`` turns them into HTTP answers.

RegistryError (a conveyor.errors.ConveyorError)
├── ModelNotFound     -- no model (or no such version of it) was ever registered    (404)
├── InstanceNotFound  -- the instance is unknown or its liveness expired            (404)
├── InvalidSchema     -- the registration's descriptor set lacks its types          (422)
├── SchemaConflict    -- the version is registered with another schema              (409)
├── VersionInUse      -- a version with live instances cannot be forgotten          (409)
└── Unauthorized      -- a mutating call without the registry key                   (401)
"""

from conveyor.errors import ConveyorError


class RegistryError(ConveyorError):
    """Base class of every registry error."""


class ModelNotFound(RegistryError):
    """No model of that name, or no such version of it, was ever registered."""

    code = "model_not_found"


class InstanceNotFound(RegistryError):
    """The instance is unknown or its liveness window passed without a heartbeat."""

    code = "instance_not_found"


class InvalidSchema(RegistryError):
    """The registration's descriptor set is unreadable or lacks its message types."""

    code = "invalid_schema"


class SchemaConflict(RegistryError):
    """The version is already registered with a different schema; a new schema needs a new
    version, so a gateway never feeds a worker a message it cannot parse."""

    code = "schema_conflict"


class VersionInUse(RegistryError):
    """The version still has live instances."""

    code = "version_in_use"


class Unauthorized(RegistryError):
    """A mutating call came without the registry key (or with a wrong one)."""

    code = "unauthorized"
