"""ModelB classifies iris flowers: four measurements in, label and probabilities out."""

import asyncio
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from google.protobuf.message import DecodeError, Message

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


MAX_FEATURE = 1e100
"""Largest feature magnitude accepted (centimetres; far beyond any flower, far below where the
classifier's arithmetic overflows float64)."""


class ModelB(Model):
    """A scikit-learn logistic regression trained on iris; batches up to 32 flowers per call."""

    name = "model_b"
    version = "1"
    max_batch_size = 32
    # Longer waits give larger batches but no more throughput here (docs/performance.md);
    # a lone client stops waiting it out after a few batches of one (worker_base).
    max_batch_delay_ms = 2.0

    def __init__(self, model_path: Path | None = None) -> None:
        self._path = model_path
        self._artifact: dict[str, Any] | None = None

    async def load(self) -> None:
        """Load the trained pipeline (training a dev copy if needed)."""
        path = self._path or resolve_model_path(ModelBSettings())
        self._artifact = await asyncio.to_thread(joblib.load, path)

    def _features(self, body: bytes) -> list[float]:
        """The request's features, checked: the right number, all finite."""
        assert self._artifact is not None
        request = model_b_pb2.ModelBRequest.FromString(body)
        names: list[str] = self._artifact["feature_names"]
        if len(request.features) != len(names):
            raise InvalidRequest(
                f"expected {len(names)} features ({', '.join(names)}), got {len(request.features)}",
                field="features",
            )
        for i, value in enumerate(request.features):
            if not math.isfinite(value):
                raise InvalidRequest(f"feature {names[i]} is not finite", field=f"features[{i}]")
            if abs(value) > MAX_FEATURE:  # the model's arithmetic would overflow float64
                raise InvalidRequest(
                    f"feature {names[i]} is out of range (at most {MAX_FEATURE:g} in magnitude)",
                    field=f"features[{i}]",
                )
        return list(request.features)

    def _response(self, probabilities: Sequence[float]) -> model_b_pb2.ModelBResponse:
        assert self._artifact is not None
        names: list[str] = self._artifact["class_names"]
        best = max(range(len(names)), key=lambda i: probabilities[i])
        return model_b_pb2.ModelBResponse(
            label=names[best],
            probabilities={name: float(p) for name, p in zip(names, probabilities, strict=True)},
        )

    async def process_request(self, body: bytes) -> model_b_pb2.ModelBResponse:
        """Predict the class of one flower."""
        return (await self._predict([body]))[0]  # type: ignore[return-value]

    async def process_batch(self, bodies: Sequence[bytes]) -> Sequence[Message | Exception]:
        """Predict the classes of several flowers in one scikit-learn call.

        A request that is not valid fails alone; the others are predicted together.
        """
        return await self._predict(bodies, per_item_errors=True)

    async def _predict(
        self, bodies: Sequence[bytes], per_item_errors: bool = False
    ) -> list[Message | Exception]:
        if self._artifact is None:
            raise RuntimeError("ModelB.load() has not run")
        outcomes: list[Message | Exception | None] = [None] * len(bodies)
        rows: list[list[float]] = []
        positions: list[int] = []
        for i, body in enumerate(bodies):
            try:
                rows.append(self._features(body))
                positions.append(i)
            except (InvalidRequest, DecodeError) as e:
                if not per_item_errors:
                    raise
                outcomes[i] = e
        if rows:
            # On the event loop, not in a thread: a call is mostly scikit-learn's Python input
            # checks, holding the GIL, so a thread would run nothing in parallel; it would only
            # add a hand-off and, while the loop is busy, wait for the GIL's switch interval.
            pipeline = self._artifact["pipeline"]
            probabilities = pipeline.predict_proba(np.asarray(rows, dtype=np.float64))
            for position, row in zip(positions, probabilities, strict=True):
                outcomes[position] = self._response(row)
        return [outcome for outcome in outcomes if outcome is not None]

    def get_request_format(self) -> MessageDescriptor:
        """Return the ModelBRequest descriptor."""
        return model_b_pb2.ModelBRequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        """Return the ModelBResponse descriptor."""
        return model_b_pb2.ModelBResponse.DESCRIPTOR

    def example_request(self) -> dict[str, Any]:
        """Return a setosa flower."""
        return {"features": [5.1, 3.5, 1.4, 0.2]}
