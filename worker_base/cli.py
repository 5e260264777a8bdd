"""``conveyor-worker``: run a model class from any importable module as a Conveyor worker.

    conveyor-worker run package.module:ModelClass

The worker's settings come from the same environment variables as ``//models/<name>:server``
(``AMQP_URL``, ``REDIS_URL``, ``REGISTRY_URL``, ``MODEL_NAME``, ``WORKER_CONCURRENCY``, ...:
``worker_base.Settings``). A target that cannot be imported, or is not a ``Model`` subclass
constructible without arguments, is reported on stderr with exit status 2 (a usage error),
before any connection is made.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from worker_base.config import Settings
from worker_base.model import Model
from worker_base.worker import run_model

USAGE_ERROR = 2


class TargetError(Exception):
    """The ``module:Class`` target names no usable ``Model`` subclass (the message says why)."""


def load_model(target: str) -> Model:
    """Import ``package.module:ModelClass`` and return an instance of the class.

    The current directory is on the import path, after the installed packages (so a
    checkout in the current directory never shadows them). Raises
    ``TargetError`` when the target is malformed, the module or class is missing, the class is
    not a ``Model`` subclass, or constructing it fails.
    """
    module_name, sep, class_name = target.partition(":")
    if not sep or not module_name or not class_name or ":" in class_name:
        raise TargetError(f"expected package.module:ModelClass, got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise TargetError(f"cannot import module {module_name!r}: {error}") from error
    found: object = module
    for part in class_name.split("."):
        if not hasattr(found, part):
            raise TargetError(f"module {module_name!r} has no attribute {class_name!r}")
        found = getattr(found, part)
    if not isinstance(found, type) or not issubclass(found, Model):
        raise TargetError(f"{target} is not a subclass of worker_base.Model")
    try:
        return found()
    except Exception as error:
        raise TargetError(f"{target}() failed: {type(error).__name__}: {error}") from error


def parser() -> argparse.ArgumentParser:
    """The command line: ``conveyor-worker run TARGET``."""
    root = argparse.ArgumentParser(
        prog="conveyor-worker",
        description="Serve a Conveyor model: a worker_base.Model subclass in any module.",
        epilog="Settings come from environment variables (AMQP_URL, REDIS_URL, REGISTRY_URL, "
        "MODEL_NAME, MODEL_VERSION, WORKER_CONCURRENCY, WORKER_PROCESSES, MAX_BATCH_SIZE, "
        "LOG_FORMAT, ...), as for the models built in the Conveyor repository.",
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run a model class as a worker until SIGTERM or SIGINT",
        description="Import MODULE, construct CLASS() and serve it until SIGTERM or SIGINT.",
    )
    run.add_argument("target", metavar="MODULE:CLASS", help="e.g. my_models.echo:EchoModel")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        model = load_model(args.target)
    except TargetError as error:
        print(f"conveyor-worker: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"conveyor-worker: error: invalid settings: {error}", file=sys.stderr)
        return USAGE_ERROR
    run_model(model, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
