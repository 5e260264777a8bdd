"""The reference gateway: ``POST /predict`` -> publish (confirmed) -> wait for the notification.

The body travels as it came. One sent as ``application/octet-stream`` is marked so in the
message (the worker echoes it unchanged) and answered with that media type; any other is the
seed's JSON. Run with ``python -m load_testing.reference.gateway``
(``REF_PORT``, see the package doc).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import aio_pika
import orjson
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI, Request, Response

from load_testing.reference import names
from load_testing.reference.names import OPAQUE

__all__ = ["create_app", "main"]


def create_app() -> FastAPI:
    """The reference gateway's app; connections open in its lifespan."""
    waiting: dict[str, asyncio.Future[bytes]] = {}
    state: dict[str, object] = {}

    async def listen(client: aioredis.Redis) -> None:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(names.channel())
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            task_id, _, result = bytes(message["data"]).partition(b" ")
            future = waiting.get(task_id.decode())
            if future is not None and not future.done():
                future.set_result(result)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connection = await aio_pika.connect_robust(names.amqp_url())
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(names.queue(), durable=False)
        client = aioredis.Redis.from_url(names.redis_url())
        listener = asyncio.create_task(listen(client))
        state["exchange"] = channel.default_exchange
        try:
            yield
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await client.aclose()
            await connection.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        body = await request.body()
        opaque = request.headers.get("content-type") == OPAQUE
        task_id = uuid.uuid4().hex
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        waiting[task_id] = future
        try:
            exchange = state["exchange"]
            assert isinstance(exchange, aio_pika.abc.AbstractExchange)
            await exchange.publish(
                aio_pika.Message(body, message_id=task_id, content_type=OPAQUE if opaque else None),
                routing_key=names.queue(),
            )
            result = await asyncio.wait_for(future, 30)
        finally:
            waiting.pop(task_id, None)
        return Response(result, media_type=OPAQUE if opaque else "application/json")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(orjson.dumps({"status": "ok"}), media_type="application/json")

    return app


def main() -> None:
    """Serve on 127.0.0.1:REF_PORT."""
    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=int(os.environ.get("REF_PORT", "8100")),
        loop="uvloop",
        http="httptools",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
