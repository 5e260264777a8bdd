"""Run ModelC as a worker: ``python -m models.model_c``."""

from models.model_c.model import ModelC
from worker_base import run_model

if __name__ == "__main__":
    run_model(ModelC())
