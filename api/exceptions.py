"""Exceptions of the gateway; only ``api.routes`` turns them into HTTP answers.

GatewayError
├── ModelNotFound        -- the registry never heard of the model            (404)
├── ModelUnavailable     -- the model has no live instance                   (503)
├── RegistryUnavailable  -- the registry cannot be reached                   (503)
├── InvalidRequest       -- body not JSON or not fitting the schema          (422)
├── ResultTimeout        -- no result before the deadline                    (504)
├── TaskNotFound         -- unknown or expired task id                       (404)
└── TaskFailed           -- the worker stored an error for the task   (422/500/504)
"""


class GatewayError(Exception):
    """Base class of every gateway error; ``model`` and ``field`` say what it is about."""

    def __init__(self, message: str, *, model: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.model = model
        self.field = field


class ModelNotFound(GatewayError):
    """The registry has no model of that name."""


class ModelUnavailable(GatewayError):
    """The model is registered but no instance is alive."""


class RegistryUnavailable(GatewayError):
    """The registry could not be reached or answered with an error."""


class InvalidRequest(GatewayError):
    """The request body is not JSON or does not fit the model's request message."""


class ResultTimeout(GatewayError):
    """No result arrived before the request's timeout."""

    def __init__(self, message: str, *, model: str, task_id: str) -> None:
        super().__init__(message, model=model)
        self.task_id = task_id


class TaskNotFound(GatewayError):
    """No task of that id is known (never submitted, or expired)."""


class TaskFailed(GatewayError):
    """The worker stored an error result; ``code`` is the TaskError code name."""

    def __init__(
        self, message: str, *, code: str, model: str, task_id: str, field: str | None = None
    ) -> None:
        super().__init__(message, model=model, field=field)
        self.code = code
        self.task_id = task_id
