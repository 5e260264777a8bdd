"""Log lines: JSON or text, with the ids of the current context."""

import json
import logging

import pytest

from conveyor import logs


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("conveyor.test", logging.INFO, __file__, 1, message, args, None)


def test_json_line_has_time_level_service_message_and_ids() -> None:
    formatter = logs.JsonFormatter("api")
    with logs.bound(request_id="r-1", task_id="t-1", model="m", version="2"):
        line = formatter.format(_record("hello %s", "there"))
    entry = json.loads(line)
    assert entry["level"] == "info"
    assert entry["service"] == "api"
    assert entry["message"] == "hello there"
    assert entry["time"].endswith("Z") and "T" in entry["time"]
    assert (entry["request_id"], entry["task_id"], entry["model"], entry["version"]) == (
        "r-1", "t-1", "m", "2",
    )  # fmt: skip
    assert "\n" not in line


def test_ids_left_out_outside_a_context_and_after_it() -> None:
    formatter = logs.JsonFormatter("worker")
    with logs.bound(request_id="r-2"):
        inside = json.loads(formatter.format(_record("x")))
    outside = json.loads(formatter.format(_record("x")))
    assert inside["request_id"] == "r-2" and "task_id" not in inside
    assert "request_id" not in outside


def test_exceptions_stay_on_one_line() -> None:
    formatter = logs.JsonFormatter("worker")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = formatter.format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exc"]


def test_begin_and_note_fill_the_request_context() -> None:
    async def request() -> logs.LogContext | None:
        logs.begin("req-9")
        logs.note("m", "1", "task-9")
        return logs.current()

    import asyncio

    context = asyncio.run(request())
    assert context is not None
    assert context.ids() == {
        "request_id": "req-9",
        "task_id": "task-9",
        "model": "m",
        "version": "1",
    }


def test_text_lines_are_readable() -> None:
    formatter = logs.TextFormatter("registry")
    with logs.bound(request_id="r-3", model="m"):
        line = formatter.format(_record("ready"))
    assert " INFO registry conveyor.test: ready [request_id=r-3 model=m]" in line


def test_configure_logging_writes_json_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure_logging("api", "json", "debug")
    try:
        logging.getLogger("api.something").debug("visible at debug")
        logging.getLogger("httpx").info("quiet")
        err = capsys.readouterr().err.strip().splitlines()
        assert [json.loads(line)["message"] for line in err] == ["visible at debug"]
    finally:
        logging.getLogger().handlers.clear()
        logging.getLogger().setLevel(logging.WARNING)


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "text")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = logs.LogSettings()
    assert (settings.log_format, settings.log_level) == ("text", "debug")
