"""Conveyor's worker base: subclass ``Model``, then ``run_model(MyModel())``.

``TensorModel`` and ``TensorSpec`` (a model declared by its tensors, ``worker_base.tensor_model``)
need numpy, which only tensor models install (the worker wheel's ``tensors`` extra): they are
imported when first used.
"""

from typing import TYPE_CHECKING, Any

from conveyor.descriptors import MessageDescriptor
from conveyor.errors import SchemaError
from worker_base.config import Settings
from worker_base.exceptions import InvalidRequest, RetryableError, WorkerError
from worker_base.model import Model
from worker_base.worker import Worker, run_model

if TYPE_CHECKING:
    from worker_base.tensor_model import TensorModel, TensorSpec

__all__ = [
    "InvalidRequest",
    "MessageDescriptor",
    "Model",
    "RetryableError",
    "SchemaError",
    "Settings",
    "TensorModel",
    "TensorSpec",
    "Worker",
    "WorkerError",
    "run_model",
]

_TENSOR_NAMES = frozenset({"TensorModel", "TensorSpec"})


def __getattr__(name: str) -> Any:
    if name not in _TENSOR_NAMES:
        raise AttributeError(f"module 'worker_base' has no attribute {name!r}")
    try:
        from worker_base import tensor_model
    except ModuleNotFoundError as e:
        raise ImportError(
            f"worker_base.{name} needs {e.name}: pip install 'conveyor-worker[tensors]'"
        ) from e
    return getattr(tensor_model, name)
