"""Exceptions of the gateway; only ``api.routes`` turns them into HTTP answers.

GatewayError (a conveyor.errors.ConveyorError)
├── ModelNotFound        -- the registry never heard of the model            (404)
├── ModelUnavailable     -- the model has no live instance                   (503)
├── RegistryUnavailable  -- the registry cannot be reached                   (503)
├── InvalidRequest       -- body not JSON or not fitting the schema          (422)
├── ResultTimeout        -- no result before the deadline                    (504)
├── TaskNotFound         -- unknown or expired task id                       (404)
├── InvalidResult        -- the worker stored a response that cannot be read (502)
└── TaskFailed           -- the worker stored an error for the task   (422/500/504)
"""

from conveyor.errors import ConveyorError


class GatewayError(ConveyorError):
    """Base class of every gateway error; ``model`` and ``field`` say what it is about."""

    def __init__(self, message: str, *, model: str | None = None, field: str | None = None):
        super().__init__(message)
        self.model = model
        self.field = field


class ModelNotFound(GatewayError):
    """The registry has no model of that name."""

    code = "model_not_found"


class ModelUnavailable(GatewayError):
    """The model is registered but no instance is alive."""

    code = "model_unavailable"


class RegistryUnavailable(GatewayError):
    """The registry could not be reached or answered with an error."""

    code = "registry_unavailable"


class InvalidRequest(GatewayError):
    """The request body is not JSON or does not fit the model's request message."""

    code = "invalid_request"


class ResultTimeout(GatewayError):
    """No result arrived before the request's timeout."""

    code = "timeout"

    def __init__(self, message: str, *, model: str, task_id: str) -> None:
        super().__init__(message, model=model)
        self.task_id = task_id


class TaskNotFound(GatewayError):
    """No task of that id is known (never submitted, or expired)."""

    code = "task_not_found"


class InvalidResult(GatewayError):
    """The worker stored a response the gateway cannot read as the model's response message."""

    code = "bad_result"


class TaskFailed(GatewayError):
    """The worker stored an error result; ``code`` is the TaskError code name in lower case."""

    def __init__(
        self, message: str, *, code: str, model: str, task_id: str, field: str | None = None
    ) -> None:
        super().__init__(message, model=model, field=field)
        self.code = code.lower()
        self.task_id = task_id
