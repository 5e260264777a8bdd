"""Run ModelA as a worker: ``python -m models.model_a``."""

from models.model_a.model import ModelA
from worker_base import run_model

if __name__ == "__main__":
    run_model(ModelA())
