"""Exceptions of the worker base.

WorkerError (a conveyor.errors.ConveyorError)
├── InvalidRequest   -- raised by a model: the request is invalid (stored as INVALID_ARGUMENT)
├── InvalidOutput    -- a tensor model's outputs do not match its specs (stored as MODEL_ERROR)
└── RetryableError   -- raised by a model: this run failed, another may not (the task is retried)
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


class InvalidOutput(WorkerError):
    """Raised by a ``TensorModel`` whose ``infer`` returned outputs that do not match its output
    specs (one missing, another datatype or shape): a fault of the model, so the task fails as
    ``MODEL_ERROR``."""

    code = "invalid_output"


class RetryableError(WorkerError):
    """Raised by ``process_request`` (or returned by ``process_batch`` for one request) when
    this run failed but a later one may succeed: a dependency timed out, a resource was busy.

    The task runs again after a backoff, up to its ``max_retries`` (``worker_base.retry_policy``);
    once none is left it fails as ``MODEL_ERROR``, its result listing every attempt's error. The
    exception types a model names in ``Model.retry_on`` count as retryable too.
    """

    code = "retryable"
