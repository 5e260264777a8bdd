"""The core's exceptions; every Conveyor package derives its own base from ``ConveyorError``.

ConveyorError
├── SchemaError            -- a descriptor set could not be built or read
├── BrokerUnavailable      -- RabbitMQ did not answer within the start-up timeout
└── RegistryClientError    -- a call to the registry failed (raised by the registry client)
    ├── RegistryUnavailable  -- unreachable, or it answered with a server error
    ├── ModelNotRegistered   -- it has no model of that name
    └── RegistryRefused      -- it refused the call (a client error other than 404)

Each error has a snake_case ``code``: the ``error.code`` of the JSON error contract when a
service's route layer answers it (see ``conveyor.web``).
"""


class ConveyorError(Exception):
    """Base class of every Conveyor error; ``code`` names the failure in snake_case."""

    code: str = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SchemaError(ConveyorError):
    """A FileDescriptorSet could not be built from descriptors or read back."""

    code = "invalid_schema"


class BrokerUnavailable(ConveyorError):
    """RabbitMQ did not accept a connection within the start-up timeout."""

    code = "broker_unavailable"


class RegistryClientError(ConveyorError):
    """A call to the registry failed."""

    code = "registry_error"


class RegistryUnavailable(RegistryClientError):
    """The registry could not be reached, or answered with a server error."""

    code = "registry_unavailable"


class ModelNotRegistered(RegistryClientError):
    """The registry has no model of that name."""

    code = "model_not_found"


class RegistryRefused(RegistryClientError):
    """The registry refused the call (a 4xx other than 404); ``status`` is its HTTP status."""

    code = "registry_refused"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
