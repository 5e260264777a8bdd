"""ModelB classifies iris flowers: four measurements in, label and probabilities out."""

import asyncio
from pathlib import Path
from typing import Any

import joblib

from models.model_b import train
from models.model_b.config import BUNDLED_MODEL, DEV_MODEL, ModelBSettings
from proto import model_b_pb2
from worker_base import InvalidRequest, MessageDescriptor, Model


def resolve_model_path(settings: ModelBSettings) -> Path:
    """Return the model file to load, training a dev copy when none is configured or bundled."""
    if settings.path is not None:
        return settings.path
    if BUNDLED_MODEL.exists():
        return BUNDLED_MODEL
    if not DEV_MODEL.exists():
        train.write(DEV_MODEL)
    return DEV_MODEL


class ModelB(Model):
    """A scikit-learn logistic regression trained on iris."""

    name = "model_b"
    version = "1"

    def __init__(self, model_path: Path | None = None) -> None:
        self._path = model_path
        self._artifact: dict[str, Any] | None = None

    async def load(self) -> None:
        """Load the trained pipeline (training a dev copy if needed)."""
        path = self._path or resolve_model_path(ModelBSettings())
        self._artifact = await asyncio.to_thread(joblib.load, path)

    async def process_request(self, body: bytes) -> model_b_pb2.ModelBResponse:
        """Predict the class of one flower."""
        if self._artifact is None:
            raise RuntimeError("ModelB.load() has not run")
        request = model_b_pb2.ModelBRequest()
        request.ParseFromString(body)
        expected = len(self._artifact["feature_names"])
        if len(request.features) != expected:
            raise InvalidRequest(
                f"expected {expected} features "
                f"({', '.join(self._artifact['feature_names'])}), got {len(request.features)}",
                field="features",
            )
        # Compute off the event loop, so heartbeats and other tasks go on meanwhile.
        pipeline = self._artifact["pipeline"]
        batch = [list(request.features)]
        probabilities = (await asyncio.to_thread(pipeline.predict_proba, batch))[0]
        names: list[str] = self._artifact["class_names"]
        best = max(range(len(names)), key=lambda i: probabilities[i])
        return model_b_pb2.ModelBResponse(
            label=names[best],
            probabilities={name: float(p) for name, p in zip(names, probabilities, strict=True)},
        )

    def get_request_format(self) -> MessageDescriptor:
        """Return the ModelBRequest descriptor."""
        return model_b_pb2.ModelBRequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        """Return the ModelBResponse descriptor."""
        return model_b_pb2.ModelBResponse.DESCRIPTOR

    def example_request(self) -> dict[str, Any]:
        """Return a setosa flower."""
        return {"features": [5.1, 3.5, 1.4, 0.2]}
