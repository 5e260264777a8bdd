"""Conveyor's worker base: subclass ``Model``, then ``run_model(MyModel())``."""

from conveyor.descriptors import MessageDescriptor
from conveyor.errors import SchemaError
from worker_base.config import Settings
from worker_base.exceptions import InvalidRequest, RetryableError, WorkerError
from worker_base.model import Model
from worker_base.worker import Worker, run_model

__all__ = [
    "InvalidRequest",
    "MessageDescriptor",
    "Model",
    "RetryableError",
    "SchemaError",
    "Settings",
    "Worker",
    "WorkerError",
    "run_model",
]
