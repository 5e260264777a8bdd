"""Run ModelB as a worker: ``python -m models.model_b``."""

from models.model_b.model import ModelB
from worker_base import run_model

if __name__ == "__main__":
    run_model(ModelB())
