"""An ONNX worker installed from our wheel, as a user outside this repository runs it.

``WheelWorker`` makes a fresh venv with ``conveyor-worker[onnx]`` pip-installed offline
(``tools.wheel.venv``: our wheel, its locked dependencies), then runs its ``conveyor-onnx``
console script beside a running :class:`load_testing.stack.Stack`, with only the variables it
is given: it imports nothing from this repository's runfiles. On exit it stops the worker,
deletes its model's queues and the venv.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import aio_pika

import load_testing
from conveyor.protocol import declared_queues
from load_testing.stack import Stack
from tools.stack.cleanup import delete_queues
from tools.stack.probes import models_alive
from tools.stack.process import Service, stop_all
from tools.stack.waiting import wait_until
from tools.wheel import venv

__all__ = ["WheelWorker", "worker_wheel"]

START_TIMEOUT_S = 120.0


def worker_wheel() -> Path:
    """The ``conveyor-worker`` wheel Bazel built (a runfile of this binary)."""
    # The runfiles tree, not the source tree a symlink there leads to.
    wheel_dir = Path(load_testing.__file__).absolute().parent.parent / "tools" / "wheel"
    found = sorted(wheel_dir.glob("conveyor_worker-*.whl"))
    if not found:
        raise FileNotFoundError(f"no conveyor_worker wheel in {wheel_dir}")
    return found[-1]


class WheelWorker:
    """``conveyor-onnx`` from a fresh venv, serving ``model`` on ``stack``'s brokers."""

    def __init__(self, log_dir: Path, stack: Stack, model: str, env: Mapping[str, str]) -> None:
        self.log_dir = log_dir
        self.stack = stack
        self.model = model
        self.env = dict(env)
        self.root = Path(tempfile.mkdtemp(prefix="conveyor-wheel-worker-"))
        self.service: Service | None = None

    @property
    def pid(self) -> int:
        """The worker's process id (its process group's leader)."""
        assert self.service is not None, "the worker is not running"
        return self.service.pid

    def start(self) -> WheelWorker:
        """Install the venv, start the worker and wait until the gateway serves its model."""
        site = Path(aio_pika.__file__).resolve().parent.parent  # the locked site-packages
        bin_dir = venv.make_venv(self.root, [worker_wheel()], site, ["conveyor-worker[onnx]"])
        env = {
            **venv.clean_env(),
            "AMQP_URL": self.stack.amqp_url,
            "REDIS_URL": self.stack.redis_url,
            "REGISTRY_URL": self.stack.registry_url,
            "MODEL_NAME": self.model,
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        env.pop("PIP_NO_INDEX", None)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.service = Service(
            "conveyor-onnx",
            env,
            self.log_dir,
            "wheel_worker",
            argv=[str(bin_dir / "conveyor-onnx")],
            exact_env=True,
        )
        service = self.service

        def serving() -> bool:
            if not service.alive():
                raise RuntimeError(f"conveyor-onnx exited:\n{service.log()}")
            return models_alive(self.stack.api_url, (self.model,))

        wait_until(serving, START_TIMEOUT_S, what=f"{self.model} served from the wheel")
        return self

    def stop(self) -> None:
        """Stop the worker, delete its queues and the venv."""
        if self.service is not None:
            stop_all([self.service])
            self.service = None
        delete_queues(self.stack.amqp_url, declared_queues(self.model, "1"))
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> WheelWorker:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
