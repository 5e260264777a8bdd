"""``bazel run //tools/redrive -- --model NAME [--limit N]``: re-drive a model's dead letters.

Reads ``AMQP_URL`` and ``REDIS_URL`` from the environment, as the services do; prints what it
did as JSON (``moved``, ``skipped``, ``left``).
"""

import argparse
import asyncio
import dataclasses
import json
import sys

from conveyor.errors import ConveyorError
from conveyor.protocol import valid_model_name
from conveyor.settings import AmqpSettings, RedisSettings
from tools.redrive.redrive import redrive


class Settings(AmqpSettings, RedisSettings):
    """Where RabbitMQ and Redis are."""


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, re-drive, print the report; the exit code says if it failed."""
    parser = argparse.ArgumentParser(
        prog="redrive", description="Move a model's dead-lettered tasks back to its queues."
    )
    parser.add_argument("--model", required=True, help="the model whose dead letters to move")
    parser.add_argument("--limit", type=int, default=None, help="move at most this many")
    args = parser.parse_args(argv)
    if not valid_model_name(args.model):
        parser.error(f"not a model name: {args.model!r}")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    settings = Settings()
    try:
        report = asyncio.run(redrive(settings.amqp_url, settings.redis_url, args.model, args.limit))
    except ConveyorError as e:
        print(json.dumps({"error": {"code": e.code, "message": e.message}}), file=sys.stderr)
        return 1
    print(json.dumps(dataclasses.asdict(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
