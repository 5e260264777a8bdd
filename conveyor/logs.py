"""Log lines of every Conveyor service, with the ids in play.

``configure_logging()`` makes the root logger write one JSON object per line to stderr
(``LOG_FORMAT=json``, the default) or a readable line (``LOG_FORMAT=text``, for development).
Each line carries time, level, service, logger and message, plus whichever of ``request_id``,
``task_id``, ``model`` and ``version`` the current context holds: the gateway opens a context
per request (``begin()``), a worker binds one per task (``bound()``), so one request can be
followed across processes with a grep for its id. While tracing is on (``conveyor.tracing``), a
line written inside a span also carries that span's ``trace_id`` and ``span_id``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

from pydantic import Field

from conveyor import tracing
from conveyor.settings import ServiceSettings

__all__ = [
    "LogContext",
    "LogSettings",
    "begin",
    "bound",
    "configure_logging",
    "current",
    "note",
]

_IDS = ("request_id", "task_id", "model", "version")


class LogContext:
    """The ids of what the current code works on (empty strings: not known)."""

    __slots__ = _IDS

    def __init__(
        self, request_id: str = "", task_id: str = "", model: str = "", version: str = ""
    ) -> None:
        self.request_id = request_id
        self.task_id = task_id
        self.model = model
        self.version = version

    def ids(self) -> dict[str, str]:
        """The ids that are set."""
        return {name: value for name in _IDS if (value := getattr(self, name))}


_context: ContextVar[LogContext | None] = ContextVar("conveyor_log_context", default=None)


def current() -> LogContext | None:
    """The context of the running code, if one was opened."""
    return _context.get()


def begin(request_id: str) -> LogContext:
    """Open a context for a request in the current task (the gateway's edge, per request; each
    request runs in a task of its own, so nothing needs resetting)."""
    context = LogContext(request_id)
    _context.set(context)
    return context


def note(model: str, version: str, task_id: str = "") -> None:
    """Record in the current context (if any) which model version (and task) the request is
    for."""
    context = _context.get()
    if context is not None:
        context.model = model
        context.version = version
        if task_id:
            context.task_id = task_id


@contextmanager
def bound(
    request_id: str = "", task_id: str = "", model: str = "", version: str = ""
) -> Iterator[LogContext]:
    """A context for the code inside the ``with`` block (a worker's task)."""
    token = _context.set(LogContext(request_id, task_id, model, version))
    try:
        yield _context.get() or LogContext()
    finally:
        _context.reset(token)


def _timestamp(created: float) -> str:
    seconds = int(created)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{int((created - seconds) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, service, logger, message, ids, exc."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, object] = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _context.get()
        if context is not None:
            entry.update(context.ids())
        if tracing.tracer is not None:
            ids = tracing.current_ids()
            if ids is not None:
                entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """A readable line: time, level, service, logger, message, then the ids as ``key=value``."""

    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)s " + service + " %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as readable text."""
        line = super().format(record)
        context = _context.get()
        if context is not None:
            ids = context.ids()
            if tracing.tracer is not None and (span := tracing.current_ids()) is not None:
                ids["trace_id"], ids["span_id"] = span
            if ids:
                line += " [" + " ".join(f"{k}={v}" for k, v in ids.items()) + "]"
        return line


LogFormat = Literal["json", "text"]
LogLevel = Literal["debug", "info", "warning", "error"]


class LogSettings(ServiceSettings):
    """How a service logs (``LOG_FORMAT``, ``LOG_LEVEL``)."""

    log_format: LogFormat = Field(
        default="json", description="json: one JSON object per line; text: readable lines."
    )
    log_level: LogLevel = Field(
        default="info", description="debug adds a line per request (gateway) and per task."
    )


def configure_logging(service: str, log_format: LogFormat = "json", level: str = "info") -> None:
    """Send every logger's records (uvicorn's too) to stderr in ``log_format``."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter(service) if log_format == "json" else TextFormatter(service)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True
    for noisy in ("httpx", "httpcore", "aio_pika", "aiormq"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
