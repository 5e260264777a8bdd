"""Conveyor's worker base: subclass ``Model``, then ``run_model(MyModel())``."""

from worker_base.config import Settings
from worker_base.exceptions import InvalidRequest, RegistrationError, SchemaError, WorkerError
from worker_base.model import MessageDescriptor, Model
from worker_base.runner import Worker, run_model

__all__ = [
    "InvalidRequest",
    "MessageDescriptor",
    "Model",
    "RegistrationError",
    "SchemaError",
    "Settings",
    "Worker",
    "WorkerError",
    "run_model",
]
