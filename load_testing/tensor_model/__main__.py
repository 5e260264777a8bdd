"""Run the tensor model as a worker: ``python -m load_testing.tensor_model``."""

from load_testing.tensor_model.model import TensorModel
from worker_base import run_model

if __name__ == "__main__":
    run_model(TensorModel())
