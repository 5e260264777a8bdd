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


class TaskError(BaseModel):
    """Why a task failed."""

    code: str
    message: str
    field: str | None = None


class TaskState(BaseModel):
    """A task as ``GET /tasks/{id}`` (and ``DELETE``) reports it."""

    task_id: str
    model: str
    version: str | None = None
    status: Literal["pending", "done", "failed", "cancelled"]
    result: dict[str, Any] | None = Field(default=None, description="The response, when done.")
    error: TaskError | None = Field(default=None, description="Why it failed or was cancelled.")


class ModelView(ModelDetail):
    """A model version as the gateway shows it: the registry's view plus its queues."""

    queued: int | None = Field(
        default=None, description="Tasks waiting in the version's queues (None: unknown)."
    )
    dead_letters: int | None = Field(
        default=None, description="Tasks in the model's dead-letter queue (None: unknown)."
    )
