"""Exceptions of the worker base.

WorkerError (a conveyor.errors.ConveyorError)
└── InvalidRequest   -- raised by a model: the request is invalid (stored as INVALID_ARGUMENT)
"""

from conveyor.errors import ConveyorError


class WorkerError(ConveyorError):
    """Base class of every worker_base error."""

    code = "worker_error"


class InvalidRequest(WorkerError):
    """Raised by ``process_request`` when the request is well-formed but not acceptable.

    The task's result becomes an ``INVALID_ARGUMENT`` error naming ``field`` (the gateway answers
    422), instead of a ``MODEL_ERROR``.
    """

    code = "invalid_argument"

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field
