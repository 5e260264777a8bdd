"""The registry's HTTP API as typed models: used by the registry, the workers and the gateway.

The JSON shapes are documented in docs/protocol.md (a worker in another language sends the
same ``Registration``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "FieldSchema",
    "InstanceAck",
    "MessageFields",
    "MessageSchema",
    "ModelDetail",
    "ModelSummary",
    "Registration",
]


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


class FieldSchema(BaseModel):
    """One field of a message, readable: name, JSON name, type, and nested types inline."""

    name: str
    json_name: str
    type: str = Field(description="Protobuf type in lower case: double, string, message, ...")
    repeated: bool
    message_type: str | None = Field(default=None, description="Full name, for message fields.")
    message: MessageFields | None = Field(
        default=None, description="The nested message's fields (absent when recursive)."
    )
    enum_values: list[str] | None = None


class MessageFields(BaseModel):
    """A message type's full name and fields."""

    type: str
    fields: list[FieldSchema]


class MessageSchema(MessageFields):
    """One message type: its full name, its descriptor set and a readable field list."""

    descriptor_set: str = Field(description="Base64 FileDescriptorSet (shared by both types).")


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
