"""ModelC continues a prompt with words drawn from an n-gram table, one word a piece.

Request ``{"prompt": str, "max_tokens": int, "seed": int, "temperature": float}`` (all but the
prompt optional), each piece ``{"text": " word"}``: the word with its leading space, so the
pieces concatenated are the continuation. It follows the text-generation contract
(docs/protocol.md) and implements only ``process_stream``: a request that does not ask for a
stream gets the whole text in one answer (``Model.combine``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from models.model_c import train
from models.model_c.config import BUNDLED_TABLE, CORPUS, ModelCSettings
from models.model_c.ngram import Ngrams
from proto import model_c_pb2
from worker_base import InvalidRequest, MessageDescriptor, Model

DEFAULT_MAX_TOKENS = 16
"""Words generated when the request does not say."""
MAX_TOKENS = 2048
"""The most words one request may ask for."""
DEFAULT_TEMPERATURE = 1.0
MAX_TEMPERATURE = 2.0


def load_table(settings: ModelCSettings) -> Ngrams:
    """The configured table, else the bundled one, else one trained on the corpus now."""
    if settings.model_c_path is not None:
        return Ngrams.load(settings.model_c_path)
    if BUNDLED_TABLE.exists():
        return Ngrams.load(BUNDLED_TABLE)
    return Ngrams(train.train(CORPUS.read_text(encoding="utf-8")))


class ModelC(Model):
    """A word-level n-gram generator trained at build time on ``corpus.txt``."""

    name = "model_c"
    version = "1"
    text_generation = True
    # A stream holds its runner until its last word, mostly waiting (CHUNK_DELAY_MS).
    concurrency = 64

    def __init__(self, table_path: Path | None = None, chunk_delay_ms: float | None = None):
        self._table_path = table_path
        self._chunk_delay_ms = chunk_delay_ms
        self._ngrams: Ngrams | None = None
        self._delay = 0.0

    async def load(self) -> None:
        """Read the table (see ``load_table``) and the delay of each piece."""
        settings = ModelCSettings()
        if self._table_path is not None:
            settings = settings.model_copy(update={"model_c_path": self._table_path})
        self._ngrams = await asyncio.to_thread(load_table, settings)
        delay_ms = settings.chunk_delay_ms if self._chunk_delay_ms is None else self._chunk_delay_ms
        self._delay = delay_ms / 1000

    async def process_stream(self, body: bytes) -> AsyncIterator[model_c_pb2.ModelCResponse]:
        """Yield ``max_tokens`` words continuing the prompt, each after ``CHUNK_DELAY_MS``."""
        if self._ngrams is None:
            raise RuntimeError("ModelC.load() has not run")
        request = model_c_pb2.ModelCRequest.FromString(body)
        count, temperature = _checked(request)
        for word in self._ngrams.generate(request.prompt, count, request.seed, temperature):
            if self._delay:
                await asyncio.sleep(self._delay)
            yield model_c_pb2.ModelCResponse(text=" " + word)

    def get_request_format(self) -> MessageDescriptor:
        """Return the ModelCRequest descriptor."""
        return model_c_pb2.ModelCRequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        """Return the ModelCResponse descriptor."""
        return model_c_pb2.ModelCResponse.DESCRIPTOR

    def example_request(self) -> dict[str, Any]:
        """Return a prompt about the corpus' lighthouse."""
        return {"prompt": "The keeper climbed the", "max_tokens": 16, "seed": 7}


def _checked(request: model_c_pb2.ModelCRequest) -> tuple[int, float]:
    """The request's word count and temperature, defaults applied; ``InvalidRequest`` when out
    of range."""
    count = request.max_tokens if request.HasField("max_tokens") else DEFAULT_MAX_TOKENS
    if not 1 <= count <= MAX_TOKENS:
        raise InvalidRequest(
            f"max_tokens must be between 1 and {MAX_TOKENS}, not {count}", field="max_tokens"
        )
    temperature = request.temperature if request.HasField("temperature") else DEFAULT_TEMPERATURE
    if not (math.isfinite(temperature) and 0 <= temperature <= MAX_TEMPERATURE):
        raise InvalidRequest(
            f"temperature must be between 0 and {MAX_TEMPERATURE:g}, not {temperature:g}",
            field="temperature",
        )
    return count, temperature
