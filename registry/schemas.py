"""Request and response bodies of the registry's HTTP API."""

from typing import Any, Literal

from pydantic import BaseModel, Field


class Registration(BaseModel):
    """What a worker instance sends to register: its model's version, queue and schemas."""

    version: str = Field(min_length=1, max_length=200)
    queue: str = Field(min_length=1, max_length=255)
    request_type: str = Field(min_length=1, description="Full name of the request message.")
    response_type: str = Field(min_length=1, description="Full name of the response message.")
    descriptor_set: str = Field(
        min_length=1, description="Base64 FileDescriptorSet holding both message types."
    )
    example_request: dict[str, Any] = Field(default_factory=dict)


class MessageSchema(BaseModel):
    """One message type: its full name, its descriptor set and a readable field list."""

    type: str
    descriptor_set: str = Field(description="Base64 FileDescriptorSet (shared by both types).")
    fields: list[dict[str, Any]]


class ModelSummary(BaseModel):
    """A model as listed by ``GET /models``."""

    name: str
    status: Literal["alive", "dead"]
    version: str
    instances: int
    queue: str


class ModelDetail(ModelSummary):
    """A model as shown by ``GET /models/{name}``."""

    request: MessageSchema
    response: MessageSchema
    example_request: dict[str, Any]


class InstanceAck(BaseModel):
    """Answer to a registration or heartbeat."""

    model: str
    instance_id: str
    liveness_window: float
