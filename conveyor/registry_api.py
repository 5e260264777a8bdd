"""The registry's HTTP API as typed models: used by the registry, the workers and the gateway.

The JSON shapes are documented in docs/protocol.md (a worker in another language sends the
same ``Registration``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from conveyor.protocol import VERSION_PATTERN

__all__ = [
    "MAX_FEATURES",
    "Feature",
    "FieldSchema",
    "InstanceAck",
    "MessageFields",
    "MessageSchema",
    "ModelDetail",
    "ModelSummary",
    "Registration",
    "TensorDeclaration",
    "VersionSummary",
]

MAX_FEATURES = 32
"""The most features one registration may announce."""

Feature = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,64}$")]
"""A feature's name: 1-64 lower-case letters, digits or '-' (e.g. ``task-batch``)."""


class Registration(BaseModel):
    """What a worker instance sends to register: its model's version, queue, schemas and
    features.

    A version's schema (types and descriptor set) never changes once registered: the registry
    refuses (409) a registration of an existing version with another schema. Its ``features``
    belong to the instance, not to the version: instances of one version may announce
    different ones (during a rolling upgrade), so they are no part of the schema.
    """

    version: str = Field(pattern=f"^{VERSION_PATTERN.pattern}$")
    queue: str = Field(min_length=1, max_length=255, description="The version's durable queue.")
    request_type: str = Field(min_length=1, description="Full name of the request message.")
    response_type: str = Field(min_length=1, description="Full name of the response message.")
    descriptor_set: str = Field(
        min_length=1, description="Base64 FileDescriptorSet holding both message types."
    )
    example_request: dict[str, Any] = Field(default_factory=dict)
    features: list[Feature] = Field(
        default_factory=list,
        max_length=MAX_FEATURES,
        description=(
            "What this instance supports beyond the base protocol, e.g. 'task-batch' "
            "(conveyor.protocol.TASK_BATCH_FEATURE); an older worker announces none."
        ),
    )
    max_batch_size: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description=(
            "The most tasks the worker runs in one model call; 0 when it does not batch (and "
            "from an older worker). Like the example request, the latest registration's counts."
        ),
    )


class TensorDeclaration(BaseModel):
    """A tensor field's ``(conveyor.v1.tensor)`` option: its datatype and dims."""

    datatype: str = Field(description="An Open Inference Protocol datatype: FP32, UINT8, BYTES...")
    dims: list[int] = Field(description="The shape; -1 is a dimension of any size.")


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
    tensor: TensorDeclaration | None = Field(
        default=None, description="A tensor field's declared datatype and dims."
    )


class MessageFields(BaseModel):
    """A message type's full name and fields."""

    type: str
    fields: list[FieldSchema]


class MessageSchema(MessageFields):
    """One message type: its full name, its descriptor set and a readable field list."""

    descriptor_set: str = Field(description="Base64 FileDescriptorSet (shared by both types).")


class VersionSummary(BaseModel):
    """One version of a model: alive while it has a live instance."""

    version: str
    status: Literal["alive", "dead"]
    instances: int = Field(description="Live instances of this version.")
    queue: str
    features: list[str] = Field(
        default_factory=list,
        description=(
            "The features every live instance of this version announced, sorted; empty when "
            "no instance is alive (or from a registry that predates features)."
        ),
    )
    max_batch_size: int = Field(
        default=0,
        description="The most tasks one model call runs, as the latest registration said; "
        "0: no batching.",
    )


class ModelSummary(VersionSummary):
    """A model as listed by ``GET /models``: its default version, and every version.

    ``version``, ``status``, ``instances``, ``queue`` and ``features`` describe the default
    version: the highest live one (the highest registered one when none is alive).
    """

    name: str
    versions: list[VersionSummary] = Field(description="Every registered version, ascending.")


class ModelDetail(ModelSummary):
    """A model as shown by ``GET /models/{name}[/versions/{version}]``.

    ``version``, ``status``, ``instances``, ``queue``, ``features`` and the schemas describe the
    version asked for (the default version without one).
    """

    request: MessageSchema
    response: MessageSchema
    example_request: dict[str, Any]


class InstanceAck(BaseModel):
    """Answer to a registration or heartbeat."""

    model: str
    instance_id: str
    liveness_window: float
