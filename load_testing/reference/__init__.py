"""A minimal reference system the benchmark compares Conveyor with: the bare transport.

``gateway`` (FastAPI) publishes each request to one RabbitMQ queue with publisher confirms and
waits on a Redis pub/sub notification; ``worker`` consumes it, echoes the data (or, for an
``application/octet-stream`` body, the body unchanged), and does a Redis ``SET`` + ``PUBLISH`` of
the result. No registry, validation, deadlines, request ids, admission
control or durability of results: what is left is the cost of the transport itself.

Both read ``AMQP_URL``, ``REDIS_URL`` and ``REF_TAG`` (the queue and channel names' suffix);
the gateway also ``REF_PORT``, the worker ``REF_RESULT_TTL`` (seconds a result is kept, 60).
"""
