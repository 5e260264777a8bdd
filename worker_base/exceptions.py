"""Exceptions of the worker base.

WorkerError
├── BrokerUnavailable   -- RabbitMQ did not answer within the start-up timeout
├── InvalidRequest      -- raised by a model: the request is invalid (stored as INVALID_ARGUMENT)
├── RegistrationError   -- the registry refused or could not be reached
└── SchemaError         -- a descriptor set could not be built or read
"""


class WorkerError(Exception):
    """Base class of every worker_base error."""


class BrokerUnavailable(WorkerError):
    """RabbitMQ did not accept a connection within the start-up timeout."""


class InvalidRequest(WorkerError):
    """Raised by ``process_request`` when the request is well-formed but not acceptable.

    The task's result becomes an ``INVALID_ARGUMENT`` error naming ``field`` (the gateway answers
    422), instead of a ``MODEL_ERROR``.
    """

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class RegistrationError(WorkerError):
    """The registry refused a registration or heartbeat, or could not be reached."""


class SchemaError(WorkerError):
    """A FileDescriptorSet could not be built from descriptors or read back."""
