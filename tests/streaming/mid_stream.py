"""A worker SIGKILLed mid-stream, the way every streaming test here kills one."""

from __future__ import annotations

import threading
from collections.abc import Callable

from tests.integration.stack import Stack

MODEL_C = "models.model_c"

Reader = Callable[[str, Callable[[], None]], None]
"""Reads one stream from a model (its name), calling the callback at its fifth piece."""


def kill_mid_stream(stack: Stack, read: Reader) -> str:
    """Serve a new model_c on ``stack`` with a worker that ``read`` reads from (a piece every
    100 ms); SIGKILL that worker at the fifth piece, start another (5 ms a piece), and wait for
    ``read`` to end. Returns the model's name; raises what ``read`` raised."""
    model = stack.model_name("model_c")
    doomed = stack.start_worker(MODEL_C, model, CHUNK_DELAY_MS="100", WORKER_PREFETCH="1")
    fifth = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            read(model, fifth.set)
        except BaseException as e:  # raised again by the test's thread
            failure.append(e)
        finally:
            fifth.set()

    reader = threading.Thread(target=run, name="stream-reader")
    reader.start()
    assert fifth.wait(60), "no five pieces in time"
    if failure:
        raise failure[0]
    doomed.signal(9)
    doomed.process.wait(30)
    stack.start_worker(MODEL_C, model, CHUNK_DELAY_MS="5")
    reader.join(120)
    assert not reader.is_alive(), "the stream did not end"
    if failure:
        raise failure[0]
    return model
