"""The streaming baseline: model_c's generator inside one FastAPI process, answering
Server-Sent Events directly (no queue, no store).

``POST /generate`` with model_c's request JSON streams one event a word, in the format
Conveyor's streams use (``id:`` and ``data: {"text": " word"}``), then ``event: done``. The
generator is model_c's own class, run with the same ``CHUNK_DELAY_MS``, so the only difference
from Conveyor's stream is the path between generator and client. Run with
``python -m load_testing.reference.stream_gateway`` (``REF_PORT``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from google.protobuf import json_format

from models.model_c.model import ModelC
from proto import model_c_pb2

__all__ = ["create_app", "main"]


def create_app() -> FastAPI:
    """The baseline's app; the model loads in its lifespan."""
    model = ModelC()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await model.load()
        yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/generate")
    async def generate(request: Request) -> StreamingResponse:
        message = json_format.Parse(await request.body(), model_c_pb2.ModelCRequest())
        body = message.SerializeToString()

        async def events() -> AsyncIterator[bytes]:
            index = 0
            async for piece in model.process_stream(body):
                data = json.dumps({"text": piece.text}, separators=(",", ":"))
                yield f"id: {index}\ndata: {data}\n\n".encode()
                index += 1
            yield b'event: done\ndata: {"status":"done"}\n\n'

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def main() -> None:
    """Serve the baseline on 127.0.0.1:``REF_PORT``."""
    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=int(os.environ.get("REF_PORT", "8090")),
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
