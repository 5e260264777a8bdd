"""The benchmark's identity tensor model (``--scenario tensors``); not a deployed model."""

from load_testing.tensor_model.model import TensorModel

__all__ = ["TensorModel"]
