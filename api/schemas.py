"""The gateway's own response bodies (the registry's are in ``conveyor.registry_api``)."""

from typing import Any, Literal

from pydantic import BaseModel, Field

from conveyor.registry_api import ModelDetail


class TaskAccepted(BaseModel):
    """Answer to an asynchronous predict (202)."""

    task_id: str
    model: str
    version: str
    status: Literal["pending"]
    status_url: str
    stream_url: str | None = Field(
        default=None,
        description="With stream=true: GET it for the task's pieces as Server-Sent Events.",
    )


class TaskError(BaseModel):
    """Why a task failed."""

    code: str
    message: str
    field: str | None = None


class Progress(BaseModel):
    """What the model last reported of a running task."""

    fraction: float | None = Field(default=None, description="Done so far, 0 to 1; null: unknown.")
    message: str = ""
    unix_ms: int = Field(description="When it was reported.")


class CallbackState(BaseModel):
    """Where a task's completion callback stands."""

    url: str
    state: Literal["waiting", "pending", "delivered", "undeliverable"] = Field(
        description="waiting: the task has not ended; pending: being delivered or retried; "
        "delivered: a 2xx came back; undeliverable: every attempt failed."
    )
    attempts: int = 0
    last_error: str | None = None
    delivered_unix_ms: int | None = None
    next_attempt_unix_ms: int | None = None


class TaskState(BaseModel):
    """A task as ``GET /tasks/{id}`` (and ``DELETE``) reports it."""

    task_id: str
    model: str
    version: str | None = None
    status: Literal["pending", "done", "failed", "cancelled"]
    result: dict[str, Any] | None = Field(default=None, description="The response, when done.")
    error: TaskError | None = Field(default=None, description="Why it failed or was cancelled.")
    stage: Literal["queued", "running", "retrying"] | None = Field(
        default=None, description="Where a pending asynchronous task is."
    )
    position: int | None = Field(
        default=None,
        description="Queued: about how many of the version's asynchronous tasks are ahead.",
    )
    estimated_start_unix_ms: int | None = Field(
        default=None,
        description="Queued: when it should start, from the version's measured drain rate.",
    )
    progress: Progress | None = Field(default=None, description="Running: the model's report.")
    attempt: int | None = Field(
        default=None, description="Which run this is (1: the first); shown once retried."
    )
    attempts: list[TaskError] | None = Field(
        default=None, description="The errors of the earlier runs, oldest first (retries)."
    )
    callback: CallbackState | None = Field(default=None, description="With a callback_url.")


class ModelView(ModelDetail):
    """A model version as the gateway shows it: the registry's view plus its queues."""

    queued: int | None = Field(
        default=None, description="Tasks waiting in the version's queues (None: unknown)."
    )
    dead_letters: int | None = Field(
        default=None, description="Tasks in the model's dead-letter queue (None: unknown)."
    )
