"""Exceptions of the gateway; only ``api.routes`` turns them into HTTP answers.

GatewayError (a conveyor.errors.ConveyorError)
├── ModelNotFound        -- the registry never heard of the model (or version)    (404)
├── TaskNotFound         -- unknown or expired task id                            (404)
├── InvalidRequest       -- body, name or parameter not acceptable                (422)
├── PayloadTooLarge      -- body over the limit                                   (413)
├── UnsupportedMediaType -- body not JSON                                         (415)
├── Unauthorized         -- missing or wrong API key                              (401)
├── TaskConflict         -- cancelling a task that finished or runs               (409)
├── Overloaded           -- the model's queue or the gateway is full              (429)
├── ModelUnavailable     -- the model has no live instance                        (503)
├── ServiceUnavailable   -- RabbitMQ, Redis or the registry cannot be reached     (503)
├── InvalidResult        -- the worker stored a response that cannot be read      (502)
├── ResultTimeout        -- no result before the deadline                         (504)
└── TaskFailed           -- the worker stored an error for the task       (422/500/504)
"""

from conveyor.errors import ConveyorError


class GatewayError(ConveyorError):
    """Base class of every gateway error; ``model`` and ``field`` say what it is about."""

    def __init__(self, message: str, *, model: str | None = None, field: str | None = None):
        super().__init__(message)
        self.model = model
        self.field = field


class ModelNotFound(GatewayError):
    """The registry has no model of that name, or no such version of it."""

    code = "model_not_found"


class TaskNotFound(GatewayError):
    """No task of that id is known (never submitted, or expired)."""

    code = "task_not_found"


class InvalidRequest(GatewayError):
    """The request body, a name or a parameter is not acceptable."""

    code = "invalid_request"


class PayloadTooLarge(GatewayError):
    """The body is larger than ``MAX_BODY_BYTES``."""

    code = "body_too_large"


class UnsupportedMediaType(GatewayError):
    """The body is declared as something other than JSON."""

    code = "unsupported_media_type"


class Unauthorized(GatewayError):
    """The request carries no API key, or a wrong one."""

    code = "unauthorized"


class TaskConflict(GatewayError):
    """The task cannot be cancelled: it finished, or a worker runs it."""

    code = "task_conflict"

    def __init__(self, message: str, *, task_id: str, status: str) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.status = status


class Overloaded(GatewayError):
    """The model's queue or the gateway's own in-flight bound is full; retry later."""

    code = "overloaded"

    def __init__(self, message: str, *, model: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, model=model)
        self.retry_after = retry_after


class ModelUnavailable(GatewayError):
    """The model (version) is registered but no instance is alive (or its queue is not there
    yet, as after a broker restart until a worker declares it again)."""

    code = "model_unavailable"
    retry_after = 1
    """Seconds the 503 asks the client to wait: workers come back on their own."""


class ServiceUnavailable(GatewayError):
    """A component the gateway needs (``dependency``) cannot be reached; retry later."""

    code = "service_unavailable"

    def __init__(
        self, message: str, *, dependency: str, model: str | None = None, retry_after: int = 1
    ) -> None:
        super().__init__(message, model=model)
        self.dependency = dependency
        self.retry_after = retry_after


class RegistryUnavailable(ServiceUnavailable):
    """The registry cannot be reached, and nothing usable is cached."""

    code = "registry_unavailable"

    def __init__(self, message: str, *, model: str | None = None) -> None:
        super().__init__(message, dependency="registry", model=model)


class InvalidResult(GatewayError):
    """The worker stored a response the gateway cannot read as the model's response message."""

    code = "bad_result"


class ResultTimeout(GatewayError):
    """No result arrived before the request's timeout."""

    code = "timeout"

    def __init__(self, message: str, *, model: str, task_id: str | None) -> None:
        super().__init__(message, model=model)
        self.task_id = task_id


class TaskFailed(GatewayError):
    """The worker stored an error result; ``code`` is the TaskError code name in lower case."""

    def __init__(
        self, message: str, *, code: str, model: str, task_id: str, field: str | None = None
    ) -> None:
        super().__init__(message, model=model, field=field)
        self.code = code.lower()
        self.task_id = task_id
